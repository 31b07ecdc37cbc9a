"""Likelihood inference on the condition of a conditional density model p(x | c).

A model is anything with `log_prob(x, condition=c) -> (N,)` (nats) for x (N, D) and c (N, C)
and the attributes `dim` and `condition_dim`: any conditional flow of the contract
(flows/base.py: continuous, spline coupling, autoregressive spline), or a closed-form density
for checking (`data.gaussians.AnalyticShiftedGaussianModel`).

- `class_posterior`: p(c_k | x) over a discrete set of candidate conditions (log space).
- `fit_condition`: maximum-likelihood (or MAP, with a log prior) condition, by projected Adam
  ascent from several starts followed by Newton polishing; vectorised over many independent
  events, or joint over a set of events sharing one condition (summed log-likelihood).
- `likelihood_interval`: the interval where -2 ln L rises by 1 (68.3% for one parameter);
  the fit's curvature gives the other uncertainty, sigma = sqrt(diag((-H)^-1)).
- `profile_likelihood`: ln L on a grid of one condition coordinate, maximised over the others.
- `rk4_likelihood(flow)`: a copy of a flow whose public calls use fixed-step RK4 with the exact
  trace: d ln p / dc by plain backpropagation, XLA-compiled. This is the fast choice for the
  hundreds of gradient evaluations a fit needs (Dopri5's adjoint works too, but is slower).

Shapes: per-event fits take x (N, D) and return one condition per event ("groups" G = N). Joint
fits take x (M, D) (one data set, G = 1) or (G, M, D) (G data sets of M events each).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from scipy.special import logsumexp

from .errors import ConditionError, DataError
from .flows.continuous import ContinuousFlow, FlowConfig

LogPrior = Callable[[tf.Tensor], tf.Tensor]


# ----------------------------------------------------------------------------- models
def condition_dim(model) -> int:
    """C, the condition dimension of a model (its `condition_dim`)."""
    c = getattr(model, "condition_dim", None)
    if not c:
        raise ConditionError("likelihood inference needs a conditional model (condition_dim "
                             ">= 1); this model takes no condition")
    return int(c)


def rk4_likelihood(flow: ContinuousFlow, num_steps: int = 8) -> ContinuousFlow:
    """A snapshot of `flow` whose public calls integrate with RK4 (num_steps) and exact trace.

    The weights are copied now; later training of `flow` does not reach the copy. The attribute
    `jit_compile = True` tells the inference functions to XLA-compile their gradient kernel.
    """
    cfg = FlowConfig.from_dict({**flow.config.to_dict(), "eval_solver": "rk4",
                                "eval_solver_kwargs": {"num_steps": int(num_steps)},
                                "eval_trace": "exact"})
    copy = ContinuousFlow(cfg, name="rk4_likelihood")
    for dst, src in zip(copy.trainable_variables, flow.trainable_variables, strict=True):
        dst.assign(src)
    copy.jit_compile = True
    return copy


class _RowEvaluator:
    """ln p(x_r | c_r) and its gradient w.r.t. c_r for rows r, in fixed-size padded chunks.

    One compiled kernel per (model, chunk size): under XLA every caller pads to the same shape,
    so it compiles once per model instead of once per problem size. Without XLA the graph is
    traced once, shape-generic, and nothing is padded.
    """

    def __init__(self, model, chunk_rows: int, jit_compile: bool):
        self.model, self.chunk, self.pad = model, int(chunk_rows), jit_compile

        def value_and_grad(x, c):
            with tf.GradientTape() as tape:
                tape.watch(c)
                lp = model.log_prob(x, condition=c)
            return lp, tape.gradient(lp, c)

        # shape-generic signature: one trace; XLA still compiles per concrete (padded) shape
        spec = [tf.TensorSpec([None, getattr(model, "dim", None)], tf.float32),
                tf.TensorSpec([None, condition_dim(model)], tf.float32)]
        self._fn = tf.function(value_and_grad, jit_compile=jit_compile, input_signature=spec)

    def __call__(self, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (R, D), c (R, C) -> ln p (R,) float64, d ln p / dc (R, C) float64."""
        n, k = len(x), self.chunk
        lp, grad = np.empty(n), np.empty(c.shape)
        for s in range(0, n, k):
            xs, cs = x[s:s + k], c[s:s + k]
            m = len(xs)
            if m < k and self.pad:  # pad with copies of the first row: one compiled shape
                xs = np.concatenate([xs, np.repeat(xs[:1], k - m, 0)])
                cs = np.concatenate([cs, np.repeat(cs[:1], k - m, 0)])
            v, g = self._fn(tf.constant(xs, tf.float32), tf.constant(cs, tf.float32))
            lp[s:s + m], grad[s:s + m] = v.numpy()[:m], g.numpy()[:m]
        return lp, grad


_EVALUATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _evaluator(model, chunk_rows: int, jit_compile: bool | None) -> _RowEvaluator:
    jit = bool(getattr(model, "jit_compile", False)) if jit_compile is None else jit_compile
    per_model = _EVALUATORS.setdefault(model, {})
    key = (int(chunk_rows), jit)
    if key not in per_model:
        per_model[key] = _RowEvaluator(model, chunk_rows, jit)
    return per_model[key]


# ----------------------------------------------------------------------------- input checks
def _check_x(model, x, joint: bool) -> np.ndarray:
    """x as float32 groups (G, M, D): per-event (N, D) -> (N, 1, D); joint (M, D) -> (1, M, D)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"x must be numeric, got dtype {arr.dtype}")
    d = getattr(model, "dim", None)
    want = "(M, D) or (G, M, D)" if joint else "(N, D)"
    ok_rank = arr.ndim in (2, 3) if joint else arr.ndim == 2
    if not ok_rank or (d is not None and arr.shape[-1] != d) or arr.size == 0:
        raise DataError(f"x must have shape {want.replace('D', str(d))}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError("x contains NaN or infinite values")
    arr = arr.astype(np.float32)
    if not joint:
        return arr[:, None, :]
    return arr[None] if arr.ndim == 2 else arr


def _check_bounds(bounds, c_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each a scalar or (C,), -> two (C,) float64 arrays; +-inf when None."""
    if bounds is None:
        return np.full(c_dim, -np.inf), np.full(c_dim, np.inf)
    try:
        lo, hi = bounds
        lo = np.broadcast_to(np.asarray(lo, np.float64), (c_dim,)).copy()
        hi = np.broadcast_to(np.asarray(hi, np.float64), (c_dim,)).copy()
    except (TypeError, ValueError):
        raise ConditionError(f"bounds must be (lower, upper), each a number or of shape "
                             f"({c_dim},)") from None
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
        raise ConditionError("bounds must not be NaN")
    if np.any(lo > hi):
        raise ConditionError(f"bounds have lower > upper ({lo.tolist()} > {hi.tolist()}); "
                             f"expected (lower, upper) with lower <= upper, each of shape "
                             f"({c_dim},)")
    return lo, hi


def _check_starts(init, c_dim: int, n_groups: int) -> np.ndarray:
    """Starting conditions -> (G, S, C) float64.

    Accepted: a number (C = 1), (C,) one start, (S, C) starts shared by every group (for C = 1
    also (S,)), or (G, S, C) per group.
    """
    arr = np.asarray(init, dtype=np.float64) if np.asarray(init).dtype.kind in "biuf" else None
    if arr is None:
        raise ConditionError(f"init must be numeric with shape (S, {c_dim}) or "
                             f"(G, S, {c_dim})")
    if arr.ndim == 0 and c_dim == 1:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr[:, None] if c_dim == 1 else arr[None]
    if arr.ndim == 2:
        arr = np.broadcast_to(arr, (n_groups, *arr.shape))
    if arr.ndim != 3 or arr.shape[-1] != c_dim or arr.shape[0] != n_groups or arr.shape[1] < 1:
        raise ConditionError(f"init must have shape (S, {c_dim}) or ({n_groups}, S, {c_dim}), "
                             f"got {np.shape(init)}")
    if not np.all(np.isfinite(arr)):
        raise ConditionError("init must be finite")
    return arr.copy()


def grid_starts(bounds, num: int, seed: int = 0) -> np.ndarray:
    """`num` starting conditions spread over finite bounds, shape (num, C).

    C = 1: the centres of `num` equal cells; C > 1: the box centre plus uniform draws.
    """
    lo, hi = (np.atleast_1d(np.asarray(b, np.float64)) for b in bounds)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ConditionError("grid_starts needs finite bounds")
    if len(lo) == 1:
        return lo + (hi - lo) * ((np.arange(num) + 0.5) / num)[:, None]
    rng = np.random.default_rng(seed)
    return np.concatenate([(lo + hi)[None] / 2,
                           lo + (hi - lo) * rng.uniform(size=(num - 1, len(lo)))])


def gaussian_prior(mean, sigma) -> LogPrior:
    """A Normal log prior on the condition (independent coordinates), up to a constant."""
    mean = tf.constant(np.atleast_1d(mean), tf.float64)
    sigma = tf.constant(np.atleast_1d(sigma), tf.float64)
    if np.any(sigma.numpy() <= 0):
        raise ConditionError("gaussian_prior: sigma must be > 0")

    def log_prior(c: tf.Tensor) -> tf.Tensor:
        return -0.5 * tf.reduce_sum(((c - mean) / sigma) ** 2, axis=-1)

    return log_prior


# ----------------------------------------------------------------------------- the problem
class _Objective:
    """sum over a group's events of ln p(x | c) + ln prior(c), for (G, K, C) conditions."""

    def __init__(self, model, groups: np.ndarray, prior: LogPrior | None, chunk_rows: int,
                 jit_compile: bool | None):
        self.groups, self.prior = groups, prior
        self.evaluate = _evaluator(model, chunk_rows, jit_compile)

    def __call__(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """c (G, K, C) -> (objective (G, K), gradient (G, K, C), log-likelihood (G, K))."""
        g, k, c_dim = c.shape
        m, d = self.groups.shape[1:]
        x_rows = np.broadcast_to(self.groups[:, None], (g, k, m, d)).reshape(-1, d)
        c_rows = np.broadcast_to(c[:, :, None], (g, k, m, c_dim)).reshape(-1, c_dim)
        lp, grad = self.evaluate(x_rows, c_rows)
        # Sums over events in float64: joint gradients of 1000s of events stay precise.
        loglik = lp.reshape(g, k, m).sum(-1)
        grad = grad.reshape(g, k, m, c_dim).sum(2)
        if self.prior is None:
            return loglik, grad, loglik
        ct = tf.constant(c.reshape(-1, c_dim), tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(ct)
            lpr = self.prior(ct)
        dpr = tape.gradient(lpr, ct)
        lpr = lpr.numpy().reshape(g, k)
        dpr = np.zeros((g * k, c_dim)) if dpr is None else dpr.numpy()
        return loglik + lpr, grad + dpr.reshape(g, k, c_dim), loglik

    def value(self, c: np.ndarray) -> np.ndarray:
        return self(c)[0]


def _hessian(objective: _Objective, c: np.ndarray, lo, hi, step: float) -> tuple:
    """Objective, gradient and Hessian at c (G, C) by central differences of exact gradients;
    lo, hi (G, C).

    Differences are taken inward where a bound is closer than `step`.
    """
    g, c_dim = c.shape
    eye = np.eye(c_dim) * step
    plus = np.minimum(c[:, None] + eye[None], hi[:, None])  # (G, C, C): row k moved along k
    minus = np.maximum(c[:, None] - eye[None], lo[:, None])
    pts = np.concatenate([c[:, None], plus, minus], axis=1)  # (G, 1 + 2C, C)
    obj, grad, loglik = objective(pts)
    width = (plus - minus)[:, np.arange(c_dim), np.arange(c_dim)]  # (G, C)
    width = np.where(width > 0, width, np.inf)
    hess = (grad[:, 1:1 + c_dim] - grad[:, 1 + c_dim:]) / width[:, :, None]  # d g_j / d c_k
    hess = 0.5 * (hess + np.swapaxes(hess, 1, 2))
    return obj[:, 0], grad[:, 0], loglik[:, 0], hess


@dataclass
class ConditionFit:
    """Result of `fit_condition`; leading axis G (events for per-event fits, data sets for
    joint fits).

    condition (G, C): the maximiser. log_likelihood (G,): sum of ln p(x | c) over the group's
    events at the maximiser (nats); objective (G,): the same plus the log prior. hessian
    (G, C, C): d^2 objective / dc^2 there; covariance = (-hessian)^-1 over the free coordinates
    and sigma its diagonal's square root (NaN where that Hessian is not negative definite; 0 for
    coordinates pinned by lower == upper). at_bound (G, C): the
    maximiser sits on a bound. starts / start_objective (G, S, C) / (G, S): each start's end
    point after the Adam phase. n_events: events per group.
    """

    condition: np.ndarray
    log_likelihood: np.ndarray
    objective: np.ndarray
    hessian: np.ndarray
    covariance: np.ndarray
    sigma: np.ndarray
    at_bound: np.ndarray
    starts: np.ndarray
    start_objective: np.ndarray
    n_events: int


def fit_condition(model, x, init, bounds=None, prior: LogPrior | None = None,
                  joint: bool = False, steps: int = 100, lr: float | None = None,
                  newton_steps: int = 4, fd_step: float = 1e-3, chunk_rows: int = 2048,
                  jit_compile: bool | None = None) -> ConditionFit:
    """The condition maximising ln p(x | c) (+ ln prior(c): MAP), from several starts.

    Args:
      model: has `log_prob(x, condition=)`, `dim` and `condition_dim` (any conditional flow).
      x: per-event (N, D), one condition fitted per event; joint=True: (M, D) or (G, M, D),
        one condition per data set, maximising the summed log-likelihood of its M events.
      init: starting conditions, (S, C) shared by all fits or (G, S, C); a number or (S,) when
        C = 1. Starts outside the bounds are moved onto them. `grid_starts` spreads S starts.
      bounds: (lower, upper), each a number or (C,); lower == upper pins a coordinate.
      prior: a differentiable log prior `f(c (K, C) float64 tensor) -> (K,)`, e.g.
        `gaussian_prior(mean, sigma)`; None for maximum likelihood.
      steps, lr: Adam ascent steps and initial step size (condition units; default 5% of the
        bound width, or 0.1 when unbounded), cosine-decayed to 1/1000 of it. Steps are
        projected onto the bounds.
      newton_steps: Newton iterations polishing the best start (Hessian from central
        differences, `fd_step` wide, of exact gradients); a step is kept only if it improves.
      chunk_rows: rows per compiled evaluation (events x starts are padded to multiples).
      jit_compile: XLA-compile the gradient kernel; None reads `model.jit_compile`.
    """
    c_dim = condition_dim(model)
    groups = _check_x(model, x, joint)
    lo, hi = (np.broadcast_to(b, (len(groups), c_dim)) for b in _check_bounds(bounds, c_dim))
    starts = _check_starts(init, c_dim, len(groups))
    objective = _Objective(model, groups, prior, chunk_rows, jit_compile)
    return _fit_groups(objective, starts, lo, hi, steps, lr, newton_steps, fd_step)


def _fit_groups(objective: _Objective, starts: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                steps: int, lr, newton_steps: int, fd_step: float) -> ConditionFit:
    """`fit_condition` on checked inputs: starts (G, S, C), per-group bounds lo, hi (G, C)."""
    if steps < 0 or newton_steps < 0 or not fd_step > 0:
        raise ValueError("steps and newton_steps must be >= 0, fd_step > 0")
    lo3, hi3 = lo[:, None], hi[:, None]
    starts = np.clip(starts, lo3, hi3)
    width = np.where(np.isfinite(hi - lo), hi - lo, np.nan)
    base_lr = lr if lr is not None else np.where(np.isnan(width), 0.1, 0.05 * width)
    base_lr = np.broadcast_to(np.asarray(base_lr, np.float64), lo.shape)[:, None]
    c, m, v = starts.copy(), np.zeros_like(starts), np.zeros_like(starts)
    b1, b2 = 0.9, 0.999
    for t in range(1, steps + 1):
        _, grad, _ = objective(c)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        rate = base_lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + np.cos(np.pi * (t - 1) / steps)))
        step = rate * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-12)
        c = np.clip(c + step, lo3, hi3)
    start_obj = objective.value(c)
    best = c[np.arange(len(c)), np.argmax(start_obj, axis=1)]  # (G, C)

    # Newton polishes the coordinates free in every group (not pinned by lower == upper)
    free = np.flatnonzero(np.all(hi > lo, axis=0))
    obj, grad, loglik, hess = _hessian(objective, best, lo, hi, fd_step)
    for _ in range(newton_steps if len(free) else 0):
        best, obj, moved = _newton_step(objective, best, obj, grad, hess, lo, hi, free)
        if not moved:
            break
        obj, grad, loglik, hess = _hessian(objective, best, lo, hi, fd_step)
    # covariance of the free coordinates; pinned ones have zero variance
    cov = np.zeros_like(hess)
    sub = -hess[:, free[:, None], free[None, :]]
    neg_def = np.all(np.linalg.eigvalsh(sub) > 0, axis=1) if len(free) else \
        np.ones(len(hess), bool)
    sub_cov = np.full_like(sub, np.nan)
    sub_cov[neg_def] = np.linalg.inv(sub[neg_def])
    cov[:, free[:, None], free[None, :]] = sub_cov
    sigma = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    at_bound = np.isclose(best, lo) | np.isclose(best, hi)
    return ConditionFit(condition=best, log_likelihood=loglik, objective=obj, hessian=hess,
                        covariance=cov, sigma=sigma, at_bound=at_bound, starts=c,
                        start_objective=start_obj, n_events=objective.groups.shape[1])


def _newton_step(objective: _Objective, c, obj, grad, hess, lo, hi, free):
    """One safeguarded Newton step per group in the free coordinates; kept where it does not
    lower the objective."""
    h, g = hess[:, free[:, None], free[None, :]], grad[:, free]
    neg_def = np.all(np.linalg.eigvalsh(-h) > 0, axis=1)
    safe = np.where(neg_def[:, None, None], h, -np.eye(len(free))[None])
    delta = np.zeros_like(c)
    delta[:, free] = -np.linalg.solve(safe, g[..., None])[..., 0]
    delta[~neg_def] = 0.0
    trial = np.clip(c + delta, lo, hi)
    new_obj = objective.value(trial[:, None])[:, 0]
    # float32 densities cannot rank points this close to the optimum by value; accept a step
    # unless it loses more than the rounding noise of the summed log-likelihood.
    better = new_obj > obj - 1e-6 * (1.0 + np.abs(obj))
    moved = bool(np.any(better & np.any(np.abs(trial - c) > 1e-9, axis=1)))
    return (np.where(better[:, None], trial, c), np.where(better, new_obj, obj), moved)


# ----------------------------------------------------------------------------- uncertainties
def likelihood_interval(model, x, fit: ConditionFit, bounds=None,
                        prior: LogPrior | None = None, joint: bool = False, delta: float = 1.0,
                        iterations: int = 20, chunk_rows: int = 2048,
                        jit_compile: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The interval where -2 (objective - max) <= delta around each fit (1-D conditions).

    delta = 1 gives the 68.3% interval for one parameter. x, bounds, prior and joint must be
    those of the fit. A side that reaches a bound before the rise stops there (the interval
    is then open on that side). For C > 1 use `profile_likelihood` and `interval_from_profile`.
    Returns (lower (G,), upper (G,)).
    """
    if condition_dim(model) != 1:
        raise ConditionError("likelihood_interval is for one-dimensional conditions; for C > 1 "
                             "use profile_likelihood(..., index=k) and interval_from_profile")
    groups = _check_x(model, x, joint)
    lo, hi = _check_bounds(bounds, 1)
    objective = _Objective(model, groups, prior, chunk_rows, jit_compile)
    c_hat = fit.condition[:, 0]
    if c_hat.shape != (len(groups),):
        raise ConditionError(f"fit has {len(c_hat)} conditions but x has {len(groups)} groups")
    target = fit.objective - 0.5 * delta
    side = np.array([-1.0, 1.0])
    limit = np.where(side < 0, lo[0], hi[0])  # (2,)
    reach = np.abs(limit[None] - c_hat[:, None])  # (G, 2) distance to the bound per side
    scale = np.where(np.isfinite(fit.sigma[:, 0]), fit.sigma[:, 0], 0.1)
    inner = np.zeros((len(c_hat), 2))
    # f(t) = objective(c_hat +- t) - target: delta / 2 at t = 0, negative beyond the crossing;
    # for a Gaussian likelihood it crosses at t = sigma, so start a little further out.
    f_in = np.full(inner.shape, 0.5 * delta)
    outer = np.minimum(np.broadcast_to(1.25 * scale[:, None], inner.shape), reach)

    def f(dist):  # (G, 2) -> (G, 2)
        pts = (c_hat[:, None] + side[None] * dist)[..., None]
        return objective.value(pts) - target[:, None]

    f_out = f(outer)
    for _ in range(40):  # expand until the rise exceeds delta or the bound is reached
        done = (f_out < 0) | (outer >= reach)
        if np.all(done):
            break
        inner, f_in = np.where(done, inner, outer), np.where(done, f_in, f_out)
        outer = np.where(done, outer, np.minimum(2 * outer, reach))
        f_out = np.where(done, f_out, f(outer))
    crossed = f_out < 0
    last = np.zeros(inner.shape)  # Illinois regula falsi: +1 outer / -1 inner moved last
    def secant():  # the regula falsi point; uncrossed sides keep `outer`
        denom = np.where(crossed & (f_out != f_in), f_out - f_in, 1.0)
        return np.where(crossed, outer - f_out * (outer - inner) / denom, outer)

    for _ in range(iterations):
        t = secant()
        ft = f(t)
        out_side = crossed & (ft < 0)
        in_side = crossed & ~(ft < 0)
        f_in = np.where(out_side & (last > 0), 0.5 * f_in, f_in)
        f_out = np.where(in_side & (last < 0), 0.5 * f_out, f_out)
        outer, f_out = np.where(out_side, t, outer), np.where(out_side, ft, f_out)
        inner, f_in = np.where(in_side, t, inner), np.where(in_side, ft, f_in)
        last = np.where(out_side, 1.0, np.where(in_side, -1.0, last))
        if np.all(~crossed | (outer - inner <= 1e-7 * (1 + np.abs(c_hat[:, None])))):
            break
    edge = np.where(crossed, secant(), reach)
    return c_hat - edge[:, 0], c_hat + edge[:, 1]


def profile_likelihood(model, x, grid, joint: bool = False, index: int = 0, bounds=None,
                       init=None, **fit_kwargs) -> np.ndarray:
    """ln L (summed over each group's events) on a grid of condition coordinate `index`.

    C = 1: the log-likelihood at each grid value. C > 1: the other coordinates are re-fitted
    at each grid value (profiled), as `fit_condition` does from `init` (S, C) within `bounds`
    (fit_kwargs: steps, lr, newton_steps, fd_step, chunk_rows, jit_compile).
    Returns (N, K) for per-event x (N, D); (K,) for joint x (M, D); (G, K) for (G, M, D).
    """
    c_dim = condition_dim(model)
    groups = _check_x(model, x, joint)
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ConditionError(f"grid must be a 1-D array of finite values, got {grid.shape}")
    if not 0 <= index < c_dim:
        raise ConditionError(f"index must be in [0, {c_dim}), got {index}")
    g, k = len(groups), len(grid)
    if c_dim == 1:
        objective = _Objective(model, groups, None, fit_kwargs.get("chunk_rows", 2048),
                               fit_kwargs.get("jit_compile"))
        out = objective.value(np.broadcast_to(grid[None, :, None], (g, k, 1)).copy())
    else:
        lo, hi = _check_bounds(bounds, c_dim)
        if init is None:
            raise ConditionError(f"profiling a {c_dim}-D condition needs init of shape "
                                 f"(S, {c_dim})")
        # one fit over G x K groups, coordinate `index` pinned to the grid value by its bounds
        lo_k = np.tile(lo, (g * k, 1))
        hi_k = np.tile(hi, (g * k, 1))
        lo_k[:, index] = hi_k[:, index] = np.tile(grid, g)
        rep = np.repeat(groups, k, axis=0)
        objective = _Objective(model, rep, None, fit_kwargs.pop("chunk_rows", 2048),
                               fit_kwargs.pop("jit_compile", None))
        settings = {"steps": 100, "lr": None, "newton_steps": 4, "fd_step": 1e-3, **fit_kwargs}
        res = _fit_groups(objective, _check_starts(init, c_dim, g * k), lo_k, hi_k, **settings)
        out = res.log_likelihood.reshape(g, k)
    if joint and np.asarray(x).ndim == 2:
        return out[0]
    return out


def interval_from_profile(grid, log_likelihood, delta: float = 1.0) -> tuple[float, float]:
    """Where -2 (ln L - max ln L) crosses `delta` on a grid, by linear interpolation.

    grid (K,), log_likelihood (K,); a side that never crosses returns that grid end.
    """
    grid, ll = np.asarray(grid, np.float64), np.asarray(log_likelihood, np.float64)
    q = -2 * (ll - ll.max())
    i = int(np.argmax(ll))
    left, right = grid[0], grid[-1]
    for j in range(i, 0, -1):
        if q[j - 1] > delta:
            left = np.interp(delta, [q[j], q[j - 1]], [grid[j], grid[j - 1]])
            break
    for j in range(i, len(grid) - 1):
        if q[j + 1] > delta:
            right = np.interp(delta, [q[j], q[j + 1]], [grid[j], grid[j + 1]])
            break
    return float(left), float(right)


# ----------------------------------------------------------------------------- discrete
def class_log_likelihoods(model, x, candidates, batch_rows: int = 8192) -> np.ndarray:
    """ln p(x_i | c_k) for x (N, D) and candidate conditions (K, C) (or (K,) if C = 1): (N, K)."""
    c_dim = condition_dim(model)
    x = _check_x(model, x, joint=False)[:, 0]
    cand = np.asarray(candidates)
    if cand.dtype.kind not in "biuf":
        raise ConditionError(f"candidates must be numeric with shape (K, {c_dim})")
    cand = cand.astype(np.float32)
    if cand.ndim == 1 and c_dim == 1:
        cand = cand[:, None]
    if cand.ndim != 2 or cand.shape[1] != c_dim or len(cand) == 0:
        raise ConditionError(f"candidates must have shape (K, {c_dim}), got {cand.shape}")
    out = np.empty((len(x), len(cand)))
    for k, ck in enumerate(cand):
        for s in range(0, len(x), batch_rows):
            xs = x[s:s + batch_rows]
            out[s:s + len(xs), k] = model.log_prob(
                xs, condition=np.repeat(ck[None], len(xs), 0)).numpy()
    return out


def class_posterior(model, x, candidates, prior=None, batch_rows: int = 8192) -> np.ndarray:
    """p(c_k | x) over K candidate conditions, shape (N, K), rows summing to 1.

    prior: (K,) non-negative class weights (normalised here); None for equal priors. Computed
    as softmax_k(ln p(x | c_k) + ln prior_k) in log space, so far tails do not underflow.
    """
    ll = class_log_likelihoods(model, x, candidates, batch_rows)
    k = ll.shape[1]
    if prior is None:
        log_prior = np.full(k, -np.log(k))
    else:
        p = np.asarray(prior, np.float64)
        if p.shape != (k,) or np.any(p < 0) or not np.isfinite(p).all() or p.sum() <= 0:
            raise ConditionError(f"prior must be {k} non-negative weights, shape ({k},), "
                                 f"got {np.shape(prior)}")
        with np.errstate(divide="ignore"):
            log_prior = np.log(p / p.sum())
    joint = ll + log_prior[None]
    return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
