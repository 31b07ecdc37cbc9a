"""FFJORD core: invertibility, exact log-densities, trace estimators, training, save/load."""

import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit.errors import ConditionError, DataError, UserError
from ffjord_kit.fit import FitSettings, fit
from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.flows.trace import augmented_dynamics, draw_probe
from ffjord_kit.networks import ODEMLP


def tiny_flow(condition_dim=0, stacked=1, solver="dopri5", trace="exact", seed=3):
    kw = {"num_steps": 4} if solver == "rk4" else {"atol": 1e-6, "rtol": 1e-6}
    cfg = FlowConfig(dim=2, condition_dim=condition_dim, num_stacked=stacked,
                     backbone_kwargs={"hidden": [16, 16], "activation": "tanh"},
                     train_solver=solver, train_solver_kwargs=kw, train_trace=trace,
                     eval_solver="dopri5",
                     eval_solver_kwargs={"atol": 1e-6, "rtol": 1e-6, "max_steps": 4000},
                     seed=seed)
    return ContinuousFlow(cfg)


def rand(n, d=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_inverse_of_forward_is_identity():
    flow = tiny_flow(condition_dim=1, stacked=2)
    z, c = rand(64), rand(64, 1, seed=1)
    x = flow.to_data(z, condition=c)[0].numpy()
    assert np.abs(x - z).max() > 1e-2  # the flow is not the identity
    z_back = flow.to_latent(x.copy(), condition=c)[0].numpy()  # a new tensor: no bijector cache
    np.testing.assert_allclose(z_back, z, atol=1e-4)


def brute_force_log_prob(flow, x, c):
    """log N(z) + log|det dz/dx| with the Jacobian from central finite differences, all
    perturbed points in one batch (float64 arithmetic on the results)."""
    eps = 1e-3
    offsets = np.array([[0, 0], [eps, 0], [-eps, 0], [0, eps], [0, -eps]], np.float32)
    pts = (x[:, None, :] + offsets[None]).reshape(-1, 2)
    z = flow.to_latent(pts, condition=np.repeat(c, 5, axis=0))[0].numpy().astype(np.float64)
    z = z.reshape(len(x), 5, 2)
    jac = np.stack([(z[:, 1] - z[:, 2]), (z[:, 3] - z[:, 4])], axis=-1) / (2 * eps)
    logn = -0.5 * (z[:, 0] ** 2).sum(1) - np.log(2 * np.pi)
    return logn + np.log(np.abs(np.linalg.det(jac)))


def test_log_prob_matches_change_of_variables():
    flow = tiny_flow(condition_dim=1, stacked=2)
    x, c = rand(5, seed=4) * 0.8, rand(5, 1, seed=5)
    np.testing.assert_allclose(flow.log_prob(x, condition=c).numpy(),
                               brute_force_log_prob(flow, x, c), atol=2e-3)


def test_forward_mode_jacobian_matches_autodiff():
    net = ODEMLP(dim=3, hidden=[8, 8], activation="softplus", condition_dim=2, seed=1)
    x, c = tf.constant(rand(7, 3)), tf.constant(rand(7, 2, seed=2))
    f, jac = net.value_and_jacobian(0.3, x, c)
    with tf.GradientTape() as tape:
        tape.watch(x)
        f2 = net(0.3, x, c)
    np.testing.assert_allclose(f.numpy(), f2.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jac.numpy(), tape.batch_jacobian(f2, x).numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["hutchinson_gaussian", "hutchinson_rademacher"])
def test_hutchinson_averages_to_exact_trace(kind):
    net = ODEMLP(dim=4, hidden=[16], seed=2)
    x = tf.constant(rand(3, 4))
    exact = augmented_dynamics(net, "exact")(0.5, (x, None))[1].numpy().sum(1)
    k = 20000  # probes per row, evaluated as one batch
    gen = tf.random.Generator.from_seed(0)
    x_rep = tf.tile(x, [k, 1])
    probe = draw_probe(kind, tf.shape(x_rep), gen)
    est = augmented_dynamics(net, kind, probe)(0.5, (x_rep, None))[1].numpy().sum(1)
    est = est.reshape(k, 3)
    sem = est.std(0) / np.sqrt(k)
    assert np.all(np.abs(est.mean(0) - exact) < 4 * sem + 1e-4)
    assert np.all(sem < 0.05 * np.abs(exact) + 0.02)  # the check has teeth


def test_rk4_train_path_agrees_with_adaptive_and_regularized_path():
    flow = tiny_flow(solver="rk4")
    x = rand(32, seed=6)
    lp_eval = flow.log_prob(x).numpy()
    lp_train = flow.log_prob(x, mode="train").numpy()
    np.testing.assert_allclose(lp_train, lp_eval, atol=5e-3)
    lp_reg, ke, jf = flow._log_prob_regularized(x)
    np.testing.assert_allclose(lp_reg.numpy(), lp_train, atol=1e-5)
    assert np.all(ke.numpy() > 0) and np.all(jf.numpy() > 0)


def test_training_lowers_nll_and_counts_evaluations():
    from ffjord_kit.toys.moons import sample_moons

    flow = tiny_flow(stacked=1, solver="rk4")
    x = sample_moons(1024, seed=0)
    before = float(-flow.log_prob(x[:256], mode="train").numpy().mean())
    hist = fit(flow, x, FitSettings(epochs=2, batch_size=128, lr=1e-2, kinetic=0.01,
                                    jacobian=0.01, jit_compile=False), log=lambda *_: None)
    after = float(-flow.log_prob(x[:256], mode="train").numpy().mean())
    assert after < before - 0.2
    assert hist["nfe_per_step"][-1] == 4 * 4  # RK4: 4 evaluations x 4 steps, 1 block


def test_save_load_gives_identical_outputs(tmp_path):
    flow = tiny_flow(condition_dim=3, solver="rk4")
    w = flow.backbones[0].weights_[0]
    w.assign(w + 0.1)  # not the initial state
    x, c = rand(16), rand(16, 3, seed=9)
    flow.save(tmp_path / "m")
    flow.save(tmp_path / "m")  # overwriting an existing save is atomic and works
    loaded = ContinuousFlow.load(tmp_path / "m")
    assert loaded.config == flow.config
    np.testing.assert_array_equal(loaded.log_prob(x, condition=c).numpy(),
                                  flow.log_prob(x, condition=c).numpy())
    np.testing.assert_array_equal(loaded.sample(8, condition=c[0], seed=1).numpy(),
                                  flow.sample(8, condition=c[0], seed=1).numpy())
    with pytest.raises(UserError, match="no saved flow"):
        ContinuousFlow.load(tmp_path / "missing")


def test_condition_errors_name_the_expected_shape():
    cond, plain = tiny_flow(condition_dim=2, stacked=1), tiny_flow(stacked=1)
    x = rand(4)
    with pytest.raises(ConditionError, match=r"\(N, 2\)"):
        cond.log_prob(x)
    with pytest.raises(ConditionError, match=r"\(4, 2\)"):
        cond.log_prob(x, condition=rand(3, 2))
    with pytest.raises(ConditionError, match=r"\(N, 2\)"):
        cond.log_prob(x, condition=rand(4, 3))
    with pytest.raises(ConditionError, match="numeric"):
        cond.log_prob(x, condition=np.array([["a", "b"]] * 4))
    with pytest.raises(ConditionError, match="unconditional"):
        plain.log_prob(x, condition=rand(4, 1))
    with pytest.raises(ConditionError, match=r"\(N, 2\)"):
        plain.log_prob(rand(4, 3))
    # one condition row broadcasts to every input row
    np.testing.assert_allclose(cond.log_prob(x, condition=[0.5, -1.0]).numpy(),
                               cond.log_prob(x, condition=np.tile([[0.5, -1.0]], (4, 1))).numpy(),
                               rtol=1e-6)


def test_trajectory_ends_where_forward_does():
    flow = tiny_flow(stacked=2)
    z = rand(10)
    states = flow.trajectory(z, [0.0, 0.25, 0.5, 1.0])
    assert states.shape == (4, 10, 2)
    np.testing.assert_allclose(states[0], z, atol=1e-6)
    np.testing.assert_allclose(states[-1], flow.to_data(z)[0].numpy(), atol=1e-4)


def test_nan_rows_are_refused_before_training_and_weights_kept():
    flow = tiny_flow(stacked=1, solver="rk4")
    x = rand(256)
    fit(flow, x, FitSettings(epochs=1, batch_size=128, jit_compile=False), log=lambda *_: None)
    good = [v.numpy() for v in flow.trainable_variables]
    x_bad = x.copy()
    x_bad[200] = np.nan
    with pytest.raises(DataError, match="1 of 256 events contain NaN"):
        fit(flow, x_bad, FitSettings(epochs=2, batch_size=256, jit_compile=False),
            log=lambda *_: None)
    for v, g in zip(flow.trainable_variables, good, strict=True):
        np.testing.assert_array_equal(v.numpy(), g)
