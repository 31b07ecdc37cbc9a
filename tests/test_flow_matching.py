"""Flow matching for continuous flows: the loss, the time convention over stacked blocks, the OT
coupling, every backbone, the Trainer (fine-tune, resume after SIGKILL) and a known density."""

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from test_backbones import CASES as BACKBONE_SHAPES

from ffjord_kit import backbones  # noqa: F401
from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.fit import FitSettings, fit
from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.flows.flow_matching import FlowMatching, flow_matching_loss, ot_permutation
from ffjord_kit.toys.moons import sample_moons
from ffjord_kit.train_step import make_loss_and_grad
from ffjord_kit.training import ArrayData, ShardedBatches, Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- the loss
def _affine_pairs(n=64, a=0.5, b=(1.0, -2.0), seed=0):
    """z ~ N(0, I) and x = a z + b: on the straight path the velocity is a known field."""
    z = np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)
    return z, (a * z + np.asarray(b, np.float32)).astype(np.float32)


def _true_velocity(s, y, a, b):
    """d x_s / ds at the path point y = (1 - s + s a) z + s b (sigma_min = 0), for (N,) s."""
    s = tf.reshape(s, [-1, 1])
    return (a - 1.0) * (y - s * b) / (1.0 - s + s * a) + b


@pytest.mark.parametrize("blocks,final_time", [(1, 1.0), (2, 0.5), (3, 2.0)])
def test_loss_zero_for_the_target_field_and_positive_otherwise(blocks, final_time):
    a, b = 0.5, tf.constant([1.0, -2.0])
    z, x = _affine_pairs()
    u = tf.constant(np.random.default_rng(1).uniform(size=len(x)), tf.float32)

    def field(i, scale=1.0):
        # Block i's field in its local time t = (K s - i) T, in local units (v = K T f).
        def f(t, y, c=None):
            s = (i + t / final_time) / blocks
            return scale * _true_velocity(s, y, a, b) / (blocks * final_time)
        return f

    exact = flow_matching_loss([field(i) for i in range(blocks)], x, z, None, u, 0.0,
                               final_time)
    assert float(exact) < 1e-10
    # A wrong scale, or the blocks' windows swapped, is penalised.
    wrong = flow_matching_loss([field(i, 1.1) for i in range(blocks)], x, z, None, u, 0.0,
                               final_time)
    assert float(wrong) > 1e-3
    if blocks > 1:
        swapped = flow_matching_loss([field(i) for i in reversed(range(blocks))], x, z, None,
                                     u, 0.0, final_time)
        assert float(swapped) > 1e-3


def test_loss_gradient_finite_and_a_few_steps_lower_it():
    flow = ContinuousFlow(FlowConfig(dim=2, num_stacked=2,
                                     backbone_kwargs={"hidden": [32, 32], "activation": "tanh"}))
    step = make_loss_and_grad(flow, objective="flow_matching")
    x = tf.constant(sample_moons(4096, seed=0))
    rng = np.random.default_rng(2)
    z = tf.constant(rng.standard_normal((4096, 2)), tf.float32)
    u = tf.constant(rng.uniform(size=4096), tf.float32)

    def fixed_loss():  # the same (x, z, s) draws before and after: no sampling noise
        return float(flow_matching_loss(flow._dynamics, x, z, None, u))

    before = fixed_loss()
    opt = tf_keras.optimizers.Adam(1e-2)
    for i in range(30):
        loss, aux, grads = step(x[256 * (i % 16): 256 * (i % 16 + 1)])
        assert set(aux) == {"flow_matching"}
        assert all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)
        opt.apply_gradients(zip(grads, flow.trainable_variables, strict=True))
    assert fixed_loss() < 0.9 * before


def test_objective_is_checked():
    flow = ContinuousFlow(FlowConfig(dim=2))
    with pytest.raises(ValueError, match="objective"):
        flow.loss(tf.zeros([4, 2]), objective="score_matching")
    with pytest.raises(ValueError, match="max_likelihood only"):
        flow.loss(tf.zeros([4, 2]), objective="flow_matching", kinetic=0.1)
    with pytest.raises(ValueError, match="objective"):
        TrainSettings(objective="nope")
    with pytest.raises(ValueError, match="finetune_epochs"):
        TrainSettings(max_epochs=3, finetune_epochs=1)  # a fine-tune needs flow matching
    with pytest.raises(ValueError, match="coupling"):
        FlowMatching(coupling="sinkhorn-ish")
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow, SplineFlowConfig
    spline = SplineCouplingFlow(SplineFlowConfig(features=2, context_features=0,
                                                 num_flow_steps=1, hidden=4, num_blocks=1))
    with pytest.raises(ValueError, match="spline_coupling flows train by max_likelihood"):
        make_loss_and_grad(spline, objective="flow_matching")


def test_toy_recipes_are_valid_and_one_flag_away():
    from ffjord_kit.toys.tutorial_part1 import DEFAULT_OBJECTIVE, part1_settings
    from ffjord_kit.toys.tutorial_part2 import part2_settings

    assert DEFAULT_OBJECTIVE == "flow_matching"
    fm, ml = part1_settings("flow_matching"), part1_settings("max_likelihood")
    assert fm.finetune_epochs > 0 and ml.finetune_epochs == 0 and ml.objective == "max_likelihood"
    assert fm.flow_config() == ml.flow_config()  # the same network either way
    p2 = part2_settings("flow_matching")
    assert p2.fit_settings(p2.continuous_epochs).train_settings().finetune_epochs == 24
    with pytest.raises(ValueError, match="finetune_epochs"):
        part1_settings("flow_matching", epochs=10)  # shorter than its fine-tune


# ------------------------------------------------------------------------------- the coupling
def test_ot_permutation_is_the_exact_assignment():
    rng = np.random.default_rng(3)
    x, z = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    perm = ot_permutation(x, z, block=64)
    cost = lambda p: float(np.sum((x - z[list(p)]) ** 2))  # noqa: E731
    best = min(itertools.permutations(range(6)), key=cost)
    assert cost(perm) == pytest.approx(cost(best))
    assert sorted(perm) == list(range(6))
    # Sub-batches: a permutation within each block of rows, never lowering below the optimum.
    x, z = rng.standard_normal((100, 3)), rng.standard_normal((100, 3))
    perm = ot_permutation(x, z, block=32)
    assert sorted(perm) == list(range(100))
    for start in range(0, 100, 32):
        assert set(perm[start:start + 32]) == set(range(start, min(start + 32, 100)))
    assert np.sum((x - z[perm]) ** 2) < np.sum((x - z) ** 2)


def test_ot_never_pairs_different_conditions():
    rng = np.random.default_rng(4)
    c = rng.integers(0, 3, size=(90, 1)).astype(np.float32)
    x, z = rng.standard_normal((90, 2)), rng.standard_normal((90, 2))
    perm = ot_permutation(x, z, c, block=16)
    assert sorted(perm) == list(range(90))
    np.testing.assert_array_equal(c[perm], c)  # every row keeps a partner of its condition
    assert np.any(perm != np.arange(90))  # and pairs did change within the groups
    # Continuous conditions (no two alike): the coupling stays the independent one.
    c = rng.standard_normal((90, 2))
    np.testing.assert_array_equal(ot_permutation(x, z, c), np.arange(90))


# ------------------------------------------------------------------------------- backbones
BACKBONE_CASES = {"mlp": (3, 2, {"hidden": [8, 8]}), **BACKBONE_SHAPES}


@pytest.mark.parametrize("name", list(BACKBONE_CASES))
def test_every_backbone_takes_one_time_per_row_and_trains_by_flow_matching(name):
    dim, cdim, kw = BACKBONE_CASES[name]
    flow = ContinuousFlow(FlowConfig(dim=dim, condition_dim=cdim, num_stacked=2, backbone=name,
                                     backbone_kwargs=kw, seed=1))
    net = flow.backbones[0]
    x = tf.random.stateless_normal([6, dim], seed=[1, 2])
    c = tf.random.stateless_normal([6, cdim], seed=[3, 4])
    t = tf.constant([0.1, 0.3, 0.5, 0.7, 0.9, 0.2])
    per_row = net(t, x, c).numpy()
    for i in range(6):
        np.testing.assert_allclose(per_row[i], net(float(t[i]), x[i:i + 1], c[i:i + 1])[0],
                                   rtol=1e-5, atol=1e-6)
    loss, aux, grads = make_loss_and_grad(flow, objective="flow_matching")(x, c)
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert all(g is not None and bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)


# ------------------------------------------------------------------------------- training
def test_flow_matching_learns_a_gaussian_density():
    """FM then exact-likelihood evaluation: log p matches N(mu, diag(sd^2)) on test points."""
    mu, sd = np.array([1.0, -0.5]), np.array([0.5, 1.5])
    rng = np.random.default_rng(0)
    x = (mu + sd * rng.standard_normal((4096, 2))).astype(np.float32)
    x_test = (mu + sd * rng.standard_normal((512, 2))).astype(np.float32)
    flow = ContinuousFlow(FlowConfig(
        dim=2, backbone_kwargs={"hidden": [32, 32], "activation": "tanh"},
        eval_solver_kwargs={"atol": 1e-5, "rtol": 1e-5, "max_steps": 2000}))
    history = fit(flow, x, FitSettings(epochs=40, batch_size=256, lr=1e-2,
                                       objective="flow_matching",
                                       flow_matching=FlowMatching(draws=4)), log=lambda m: None)
    assert np.all(np.isnan(history["nll"]))  # flow matching computes no likelihood in training
    assert history["loss"][-1] < history["loss"][0]
    truth = np.sum(-0.5 * ((x_test - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi), 1)
    diff = truth - flow.log_prob(x_test).numpy()
    assert abs(diff.mean()) < 0.03, diff.mean()  # the KL estimate on these points
    assert np.sqrt(np.mean(diff ** 2)) < 0.2, np.sqrt(np.mean(diff ** 2))  # untrained: > 1


def _fm_run(run_dir, max_epochs=3, resume=False, trainer_cls=Trainer):
    tf.config.run_functions_eagerly(True)
    flow = ContinuousFlow(FlowConfig(
        dim=2, backbone_kwargs={"hidden": [8, 8], "activation": "tanh"},
        train_solver_kwargs={"num_steps": 1}, seed=3))
    settings = TrainSettings(lr=2e-2, max_epochs=max_epochs, early_stop=0, schedule="constant",
                             jit_compile=False, objective="flow_matching",
                             flow_matching=FlowMatching(coupling="ot", ot_block=16),
                             finetune_epochs=1, kinetic=0.01, jacobian=0.01,
                             checkpoint_every_steps=2)
    trainer = trainer_cls(flow, settings, run_dir=run_dir, log=lambda m: None, progress=False,
                          tensorboard=False)
    data = ShardedBatches(ArrayData(sample_moons(128, seed=1)), SingleProcess(), 32, seed=5)
    result = trainer.fit(data, resume=resume)
    return [v.numpy() for v in flow.weight_variables()], result


def test_flow_matching_fine_tune_and_resume_after_sigkill_equal_uninterrupted(tmp_path):
    reference, result = _fm_run(tmp_path / "reference")
    nll = result.history["nll"]
    assert np.isnan(nll[0]) and np.isnan(nll[1]) and np.isfinite(nll[2])  # FM, FM, fine-tune
    run = tmp_path / "killed"
    # The child kills itself with SIGKILL at step 7 (epoch 2, after its step-6 checkpoint).
    r = subprocess.run([sys.executable, __file__, str(run), "7"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    resumed, result = _fm_run(run, resume=True)
    assert result.history["epoch"] == [1, 2, 3]
    for a, b in zip(resumed, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


if __name__ == "__main__":
    kill_at = int(sys.argv[2])

    class _KillAt(Trainer):
        def _build_loss_and_grad(self, objective):
            inner, count = super()._build_loss_and_grad(objective), [0]

            def loss_and_grad(x, c=None):
                count[0] += 1
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return inner(x, c)

            return loss_and_grad

    _fm_run(Path(sys.argv[1]), trainer_cls=_KillAt)
