"""Sampling photon times on their physical support: draws below a minimum time are redrawn.

The flow's density leaks a little mass below t = 0, where no photon can arrive. The
physical model is the flow truncated to t >= t_min and renormalised:

    p_phys(t | c) = p(t | c) 1[t >= t_min] / A(c),   A(c) = P_flow(t >= t_min | c),

which rejection sampling draws exactly. Redrawing is bounded (`max_rounds`), so a minimum
time the model cannot reach stops with a clear message instead of looping forever.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .model import KLMTimingModel

MAX_COPIES = 16  # draws per pending row in one resampling round


class UnreachableMinimumTime(UserError):
    """The bounded resampling could not put every sample above the minimum time."""


@dataclass(frozen=True)
class PhysicalSamples:
    """Times (N,) [ns] all >= min_time; flow draws made, acceptance rate (fraction of all
    draws that were >= min_time: the flow's mean P(t >= min_time | c) over the contexts
    still pending, an overall estimate in round 1), rounds used."""

    time: np.ndarray
    draws: int
    acceptance_rate: float
    rounds: int


def sample_physical(model: KLMTimingModel, context: np.ndarray, rng: np.random.Generator,
                    min_time: float | None = 0.0, max_rounds: int = 100,
                    batch_size: int = 65536) -> PhysicalSamples:
    """One photon time per context row (N, 4), redrawing rows below `min_time` [ns] up to
    `max_rounds` rounds in total (the first copy >= min_time of each row is kept, an exact
    draw from the truncated density). `min_time=None` disables the constraint.

    Raises UnreachableMinimumTime naming the rows left and the acceptance rate."""
    context = np.asarray(context, dtype=np.float64)
    n = len(context)
    time = model.sample_raw(context, rng, batch_size)
    if min_time is None:
        return PhysicalSamples(time, n, 1.0, 1)
    ok = time >= min_time
    draws, accepted_draws, rounds = n, int(ok.sum()), 1
    pending = np.flatnonzero(~ok)
    while pending.size and rounds < max_rounds:
        # Several i.i.d. copies per pending row, sized from the acceptance seen so far:
        # fewer rounds (each a full pass through the flow), same truncated distribution.
        rate = accepted_draws / draws
        copies = MAX_COPIES if rate == 0 else int(min(MAX_COPIES, np.ceil(2.0 / rate)))
        redraw = model.sample_raw(np.repeat(context[pending], copies, axis=0), rng,
                                  batch_size).reshape(pending.size, copies)
        good = redraw >= min_time
        draws += redraw.size
        accepted_draws += int(good.sum())
        rounds += 1
        found = good.any(axis=1)
        time[pending[found]] = redraw[found, good[found].argmax(axis=1)]  # first good copy
        pending = pending[~found]
    rate = accepted_draws / draws
    if pending.size:
        raise UnreachableMinimumTime(
            f"minimum time {min_time} ns unreachable: after {rounds} rounds {pending.size} of "
            f"{n} contexts still have no sample >= {min_time} ns (acceptance rate "
            f"{rate:.3g}); lower the minimum time or raise sampling.max_rounds")
    return PhysicalSamples(time, draws, rate, rounds)


def acceptance_per_context(model: KLMTimingModel, context: np.ndarray,
                           rng: np.random.Generator, min_time: float, n_mc: int = 64,
                           batch_size: int = 65536) -> np.ndarray:
    """Monte Carlo estimate of A(c) = P(t >= min_time | c) for each row (N,) from `n_mc`
    draws per context (floored at 1 / (2 n_mc) so its log stays finite)."""
    rep = np.repeat(np.asarray(context, np.float64), n_mc, axis=0)
    ok = model.sample_raw(rep, rng, batch_size) >= min_time
    frac = ok.reshape(len(context), n_mc).mean(axis=1)
    return np.maximum(frac, 0.5 / n_mc)


def truncated_density(model: KLMTimingModel, grid: np.ndarray, context: np.ndarray,
                      rng: np.random.Generator, min_time: float | None, n_mc: int = 64
                      ) -> np.ndarray:
    """Model density of the physical (truncated, renormalised) times on `grid` (G,) [1/ns],
    averaged over the contexts (M, 4): mean_c p(t | c) 1[t >= t_min] / A(c)."""
    grid = np.asarray(grid, np.float64)
    context = np.asarray(context, np.float64)
    m, g = len(context), len(grid)
    t = np.tile(grid, m)
    c = np.repeat(context, g, axis=0)
    dens = np.exp(model.log_prob(t, c)).reshape(m, g)
    if min_time is not None:
        acc = acceptance_per_context(model, context, rng, min_time, n_mc)
        dens = dens * (grid >= min_time)[None, :] / acc[:, None]
    return dens.mean(axis=0)
