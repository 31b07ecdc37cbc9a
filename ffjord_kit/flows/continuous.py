"""`ContinuousFlow`: a stack of `tfb.FFJORD` blocks over a standard Normal base.

    flow = ContinuousFlow(FlowConfig(dim=2))
    flow.log_prob(x)                       # (N,) nats
    flow.sample(1000, seed=1)              # (1000, 2)
    z, log_det = flow.to_latent(x); x2, _ = flow.to_data(z)
    flow.log_prob(x, condition=c)          # conditional flows: c of shape (N, C) or (C,)

It implements the flow contract of `flows/base.py` (family "continuous").

Two solver/trace settings live in the config: `train_*` (used by `loss`, i.e. by training)
and `eval_*` (used by every public call: accurate adaptive solve and exact trace by default).
Conditions reach TFP through its name-keyed `bijector_kwargs`; that plumbing stays in here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_keras.src.mixed_precision.policy import policy_scope

from .. import networks
from .base import PRECISIONS, Flow, network_dtype_policy, register_family
from .dynamics import Dynamics
from .flow_matching import flow_matching_loss, repeat_rows
from .ode import make_solver
from .trace import augmented_dynamics, check_trace, draw_probe

tfb, tfd = tfp.bijectors, tfp.distributions

# Backbones that cast their inputs to the compute dtype, so they run under a mixed policy.
MIXED_PRECISION_BACKBONES = ("dense_unet", "conv_unet")


@dataclass
class FlowConfig:
    """Everything needed to rebuild a `ContinuousFlow` (saved in the model folder's flow.json).

    dim: D, data dimension. condition_dim: C (0: unconditional). num_stacked: FFJORD blocks.
    backbone / backbone_kwargs: a name in `networks.BACKBONES` and its settings.
    train_solver / eval_solver: 'rk4' or 'dopri5'; *_solver_kwargs: num_steps, or atol, rtol,
    max_steps. train_trace / eval_trace: 'exact', 'hutchinson_gaussian', 'hutchinson_rademacher'.
    final_time: T, the integration interval [0, T] of each block.
    precision: 'float32' | 'bfloat16' (dense_unet, conv_unet): the backbone computes in
    bfloat16 with float32 weights; the ODE state, the trace and the log-densities stay float32.
    """

    dim: int
    condition_dim: int = 0
    num_stacked: int = 1
    backbone: str = "mlp"
    backbone_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"hidden": [64, 64, 64], "activation": "tanh"})
    train_solver: str = "rk4"
    train_solver_kwargs: dict[str, Any] = field(default_factory=lambda: {"num_steps": 6})
    train_trace: str = "exact"
    eval_solver: str = "dopri5"
    eval_solver_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"atol": 1e-5, "rtol": 1e-5, "max_steps": 2000})
    eval_trace: str = "exact"
    final_time: float = 1.0
    seed: int = 0
    precision: str = "float32"

    def __post_init__(self) -> None:
        check_trace(self.train_trace)
        check_trace(self.eval_trace)
        if self.backbone not in networks.BACKBONES:
            # The Part 3 backbones register themselves on import; load them on demand so a
            # saved model rebuilds without the caller importing them first.
            import ffjord_kit.backbones  # noqa: F401
        if self.backbone not in networks.BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of "
                             f"{sorted(networks.BACKBONES)}")
        if self.dim < 1 or self.num_stacked < 1 or self.condition_dim < 0:
            raise ValueError("dim and num_stacked must be >= 1, condition_dim >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got "
                             f"{self.precision!r}")
        if self.precision != "float32" and self.backbone not in MIXED_PRECISION_BACKBONES:
            raise ValueError(f"precision {self.precision!r} is for the backbones "
                             f"{list(MIXED_PRECISION_BACKBONES)}, not {self.backbone!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown FlowConfig keys: {sorted(unknown)}")
        return cls(**d)


class _FFJORD(tfb.FFJORD):
    """tfb.FFJORD whose time-reversed field keeps the backbone's analytic Jacobian.

    TFP builds the inverse-time closure itself, hiding `value_and_jacobian`; replacing it with
    the equivalent `ReversedDynamics` lets the exact trace skip backward passes both ways.
    """

    def __init__(self, dynamics: Dynamics, solve_fn, trace_fn, final_time: float, name: str):
        super().__init__(state_time_derivative_fn=dynamics, ode_solve_fn=solve_fn,
                         trace_augmentation_fn=trace_fn, final_time=final_time, name=name)
        self._inv_state_time_derivative_fn = dynamics.reversed(final_time)


@register_family
class ContinuousFlow(Flow):
    """A stack of FFJORD blocks z -> x over N(0, I_D); `condition=` on every public call."""

    family = "continuous"

    def __init__(self, config: FlowConfig, name: str | None = "continuous_flow"):
        super().__init__(name=name)
        self.config = config
        d = config.dim
        backbone_cls = networks.BACKBONES[config.backbone]
        # Keras layers take the global dtype policy at construction: a mixed policy here
        # makes the backbones compute in bfloat16 (Dynamics casts their output back).
        with policy_scope(network_dtype_policy(config.precision)):
            self.backbones = [
                backbone_cls(dim=d, condition_dim=config.condition_dim,
                             seed=config.seed + 1000 * i, **config.backbone_kwargs)
                for i in range(config.num_stacked)]
        self._dynamics = [Dynamics(b) for b in self.backbones]
        self.generator = tf.random.Generator.from_seed(config.seed)
        self.nfe_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="nfe")
        # Flow matching's draws: stateless ops keyed on (seed, this counter). The probe
        # generator is replica-aware under TF's strategies (each replica folds in its id);
        # these draws must instead be the same global stream on every rank (`draw_base`).
        self.draw_counter = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="draw_counter",
            synchronization=tf.VariableSynchronization.ON_READ,  # updated per replica
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.base = tfd.MultivariateNormalDiag(loc=tf.zeros(d), scale_diag=tf.ones(d))
        self._solvers = {
            "train": make_solver(config.train_solver, **config.train_solver_kwargs),
            "eval": make_solver(config.eval_solver, **config.eval_solver_kwargs)}
        self._traces = {"train": config.train_trace, "eval": config.eval_trace}
        self._chains = {mode: self._build_chain(mode) for mode in ("train", "eval")}
        # Compiled public calls, built on first use; a plain dict held outside tf.Module's
        # attribute tracking so checkpoints hold variables only.
        object.__setattr__(self, "_compiled_fns", {})

    # ----------------------------------------------------------------------------- plumbing
    def _trace_fn(self, mode: str):
        kind = self._traces[mode]

        def trace_augmentation_fn(ode_fn, state_shape, dtype):
            probe = None if kind == "exact" else draw_probe(kind, state_shape, self.generator,
                                                            dtype)
            return augmented_dynamics(ode_fn, kind, probe, counter=self.nfe_counter)

        return trace_augmentation_fn

    def _build_chain(self, mode: str) -> tfb.Chain:
        blocks = [_FFJORD(dyn, self._solvers[mode].solve, self._trace_fn(mode),
                          self.config.final_time, name=f"ffjord_{mode}_{i}")
                  for i, dyn in enumerate(self._dynamics)]
        # Chain applies its last element first: block 0 acts first on z.
        return tfb.Chain(blocks[::-1], name=f"stack_{mode}")

    def _bijector_kwargs(self, mode: str, condition) -> dict:
        if condition is None:
            return {}
        return {b.name: {"condition": condition} for b in self._chains[mode].bijectors}

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def condition_dim(self) -> int:
        return self.config.condition_dim

    @classmethod
    def from_config_dict(cls, config: dict, dtype: str = "float32") -> ContinuousFlow:
        return cls(FlowConfig.from_dict(config))

    def _set_training(self, training: bool) -> None:
        for dyn in self._dynamics:
            dyn.training = training

    def _log_prob(self, x, c, mode: str):
        dist = tfd.TransformedDistribution(self.base, self._chains[mode])
        return dist.log_prob(x, bijector_kwargs=self._bijector_kwargs(mode, c))

    def _to_data(self, z, c):
        # TFP's FFJORD solves state and log-det together and caches the log-det: one solve.
        chain, kwargs = self._chains["eval"], self._bijector_kwargs("eval", c)
        return (chain.forward(z, **kwargs),
                chain.forward_log_det_jacobian(z, event_ndims=1, **kwargs))

    def _to_latent(self, x, c):
        chain, kwargs = self._chains["eval"], self._bijector_kwargs("eval", c)
        return (chain.inverse(x, **kwargs),
                chain.inverse_log_det_jacobian(x, event_ndims=1, **kwargs))

    def _call(self, name: str, x, c, mode: str = "eval"):
        """Run `name` as a tf.function when called eagerly (one trace per input signature);
        inline when already inside a traced function (e.g. a training step)."""
        impl = {"log_prob": lambda a, b: self._log_prob(a, b, mode),
                "to_data": self._to_data, "to_latent": self._to_latent}[name]
        if not tf.executing_eagerly():
            return impl(x, c)
        key = (name, mode)
        if key not in self._compiled_fns:
            self._compiled_fns[key] = tf.function(impl, reduce_retracing=True)
        return self._compiled_fns[key](x, c)

    # ----------------------------------------------------------------------------- public API
    def log_prob(self, x, condition=None, mode: str = "eval") -> tf.Tensor:
        """log p(x | condition) in nats, shape (N,), for x of shape (N, D)."""
        return self._call("log_prob", *self._inputs(x, condition), mode)

    def to_data(self, z, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Base -> data: x = F(z | condition) (N, D) and log|det dx/dz| (N,)."""
        return self._call("to_data", *self._inputs(z, condition))

    def to_latent(self, x, condition=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Data -> base: z = F^-1(x | condition) (N, D) and log|det dz/dx| (N,)."""
        return self._call("to_latent", *self._inputs(x, condition))

    def trajectory(self, z, times, condition=None) -> np.ndarray:
        """States along the flow from base (time 0) to data (time 1), shape (len(times), N, D).

        `times` are fractions in [0, 1] of the whole stack; block i covers [i/K, (i+1)/K].
        """
        z, c = self._inputs(z, condition)
        kwargs = {} if c is None else {"condition": c}
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or np.any(np.diff(times) <= 0) or times[0] < 0 or times[-1] > 1:
            raise ValueError("times must be increasing fractions in [0, 1]")
        k, big_t = self.config.num_stacked, self.config.final_time
        solver, out, state = self._solvers["eval"], [], z
        for i, dyn in enumerate(self._dynamics):
            lo, hi = i / k, (i + 1) / k
            inside = [t for t in times if lo <= t < hi or (i == k - 1 and t == hi)]
            local = sorted({(t - lo) * k * big_t for t in inside} | {big_t})
            sol = solver.solve(dyn, 0.0, state,
                               tf.constant(local, tf.float32), constants=kwargs)
            for t in inside:
                out.append(sol.states[local.index((t - lo) * k * big_t)].numpy())
            state = sol.states[-1]
        return np.stack(out)

    # ----------------------------------------------------------------------------- training
    objectives = ("max_likelihood", "flow_matching")

    def loss(self, x, condition=None, training: bool = True, kinetic: float = 0.0,
             jacobian: float = 0.0, objective: str = "max_likelihood", sigma_min: float = 0.0,
             draws: int = 1, base=None, replica: tuple[int, int] = (0, 1)
             ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Training objective and its parts.

        max_likelihood: mean NLL (nats) + kinetic * E|f|^2 + jacobian * E|J|_F^2, with the
        train solver and trace estimator; with both weights zero this is TFP's log_prob,
        otherwise the RNODE integrals ride along in the same solves.
        flow_matching: the straight-path regression of `flow_matching.py` (no ODE solve);
        Each row of x meets `draws` path samples; `base` (draws * N, D) are the base draws
        paired with the rows of x repeated `draws` times (e.g. by minibatch OT), drawn by
        `draw_base` when None; `replica` = (rank, size) takes this rank's rows of draws
        made for the global batch (so ranks draw differently, and 2 ranks at batch B/2 draw
        what 1 rank at batch B does). Returns (loss, {"flow_matching": loss}).
        """
        if objective not in self.objectives:
            raise ValueError(f"objective must be one of {self.objectives}, got {objective!r}")
        self._set_training(training)
        try:
            if objective == "flow_matching":
                if kinetic or jacobian:
                    raise ValueError("the RNODE weights (kinetic, jacobian) apply to "
                                     "max_likelihood only")
                fm = self._flow_matching_loss(x, condition, sigma_min, draws, base, replica)
                return fm, {"flow_matching": fm}
            if kinetic == 0.0 and jacobian == 0.0:
                nll = -tf.reduce_mean(self.log_prob(x, condition, mode="train"))
                return nll, {"nll": nll}
            logp, ke, jf = self._log_prob_regularized(x, condition)
            nll = -tf.reduce_mean(logp)
            ke, jf = tf.reduce_mean(ke), tf.reduce_mean(jf)
            return nll + kinetic * ke + jacobian * jf, {"nll": nll, "kinetic": ke,
                                                          "jacobian": jf}
        finally:
            self._set_training(False)

    def draw_base(self, n, replica: tuple[int, int] = (0, 1)) -> tf.Tensor:
        """n draws (n, D) from the base N(0, I), keyed on the flow's checkpointed counter.

        replica = (rank, size): every rank draws the global batch's n * size rows and keeps
        rows rank, rank + size, ... (how the data are sharded); every rank's counter stays in
        step, and a checkpoint restores it.
        """
        rank, size = replica
        return tf.random.stateless_normal([n, size, self.config.dim],
                                          self._next_seed())[:, rank]

    def _next_seed(self) -> tf.Tensor:
        count = self.draw_counter.assign_add(1, read_value=False)
        with tf.control_dependencies([count]):
            return tf.stack([tf.constant(self.config.seed, tf.int64),
                             tf.identity(self.draw_counter)])

    def _flow_matching_loss(self, x, condition, sigma_min: float, draws: int, base,
                            replica: tuple[int, int]) -> tf.Tensor:
        x, c = self._inputs(x, condition)
        x, c = repeat_rows(x, draws), repeat_rows(c, draws)
        n = tf.shape(x)[0]
        z = (self.draw_base(n, replica) if base is None
             else tf.convert_to_tensor(base, tf.float32))
        u = tf.random.stateless_uniform([n, replica[1]], self._next_seed())[:, replica[0]]
        return flow_matching_loss(self._dynamics, x, z, c, u, sigma_min,
                                  self.config.final_time)

    def _log_prob_regularized(self, x, condition=None):
        """log p(x), integral |f|^2 dt and integral |J|_F^2 dt (summed over blocks), (N,) each."""
        x, c = self._inputs(x, condition)
        constants = {} if c is None else {"condition": c}
        kind, solver, big_t = self._traces["train"], self._solvers["train"], \
            self.config.final_time
        n = tf.shape(x)[0]
        zeros = tf.zeros([n], tf.float32)
        logdet, ke, jf, state = zeros, zeros, zeros, x
        for dyn in reversed(self._dynamics):  # data -> base: last block first
            probe = None if kind == "exact" else draw_probe(kind, tf.shape(state),
                                                            self.generator)
            fn = augmented_dynamics(dyn.reversed(big_t), kind, probe, regularize=True,
                                    counter=self.nfe_counter)
            sol = solver.solve(fn, 0.0, (state, tf.zeros_like(state), zeros, zeros),
                               tf.constant([big_t]), constants=constants)
            state, dlogdet, dke, djf = (s[-1] for s in sol.states)
            logdet += tf.reduce_sum(dlogdet, axis=1)
            ke, jf = ke + dke, jf + djf
        return self.base.log_prob(state) + logdet, ke, jf

    # ----------------------------------------------------------------------------- bookkeeping
    def reset_nfe(self) -> None:
        self.nfe_counter.assign(0)

    @property
    def nfe(self) -> int:
        """ODE function evaluations since the last `reset_nfe` (forward and backward)."""
        return int(self.nfe_counter.numpy())

    def weight_variables(self) -> list[tf.Variable]:
        """The backbones' variables (not the probe generator or the NFE counter)."""
        return [v for b in self.backbones for v in b.variables]
