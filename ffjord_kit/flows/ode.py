"""ODE solvers, as swappable parts with the `ode_solve_fn` interface of `tfb.FFJORD`.

Each solver is a small object whose `solve(ode_fn, initial_time, initial_state,
solution_times, constants=None)` returns a `Solution` whose `states` are stacked along a new
leading axis, one entry per solution time (nested structures allowed). `ode_fn(t, state,
**constants)` is the right-hand side.

- `Dopri5`: TFP's adaptive Dormand-Prince; gradients by the adjoint method (TFP's own). The
  accurate choice for evaluation and the tutorial's ("stock") training configuration.
- `RK4`: classical fixed-grid Runge-Kutta, differentiated by plain backpropagation through the
  steps (discretise-then-optimise). Exactly 4 evaluations a step, a static graph that XLA
  compiles once, and gradients that are exact for the discrete map. Paired with kinetic-energy
  regularisation (straight trajectories), a few steps integrate the learned field accurately:
  check with `Dopri5` at evaluation time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf
from tensorflow_probability.python.math.ode import DormandPrince


class Solution(NamedTuple):
    times: tf.Tensor
    states: Any  # nested structure of (T, ...) tensors


class Dopri5:
    """Adaptive Dormand-Prince 5(4) with adjoint gradients (TFP), tolerances atol/rtol."""

    name = "dopri5"

    def __init__(self, atol: float = 1e-5, rtol: float = 1e-3, max_steps: int = 1000,
                 first_step_size: float = 1e-2):
        self.atol, self.rtol, self.max_steps = float(atol), float(rtol), int(max_steps)
        self._solver = DormandPrince(atol=self.atol, rtol=self.rtol,
                                     max_num_steps=self.max_steps,
                                     first_step_size=first_step_size)

    def solve(self, ode_fn: Callable, initial_time, initial_state, solution_times,
              constants: dict | None = None, **kwargs) -> Solution:
        res = self._solver.solve(ode_fn, initial_time, initial_state,
                                 solution_times=solution_times, constants=constants or {})
        return Solution(res.times, res.states)

    def config(self) -> dict:
        return {"solver": self.name, "atol": self.atol, "rtol": self.rtol,
                "max_steps": self.max_steps}


def _axpy(y, a: float, k):
    """y + a k for nested states."""
    return tf.nest.map_structure(lambda yi, ki: yi + a * ki, y, k)


class RK4:
    """Fixed-grid classical Runge-Kutta with `num_steps` steps over the integration interval.

    Intermediate solution times are hit exactly: each interval between consecutive requested
    times gets its share of steps (at least one).
    """

    name = "rk4"

    def __init__(self, num_steps: int = 8):
        if num_steps < 1:
            raise ValueError("RK4 needs num_steps >= 1")
        self.num_steps = int(num_steps)

    def solve(self, ode_fn: Callable, initial_time, initial_state, solution_times,
              constants: dict | None = None, **kwargs) -> Solution:
        constants = constants or {}
        f = lambda t, y: ode_fn(t, y, **constants)
        nest = tf.nest
        times = [float(t) for t in tf.get_static_value(tf.convert_to_tensor(solution_times))]
        t0 = float(tf.get_static_value(tf.convert_to_tensor(initial_time)))
        span = abs(times[-1] - t0) or 1.0
        y, t, out = initial_state, t0, []
        for t_end in times:
            n = max(1, round(self.num_steps * abs(t_end - t) / span)) if t_end != t else 0
            h = (t_end - t) / n if n else 0.0
            for _ in range(n):  # unrolled: a static graph XLA compiles once
                k1 = f(t, y)
                k2 = f(t + h / 2, _axpy(y, h / 2, k1))
                k3 = f(t + h / 2, _axpy(y, h / 2, k2))
                k4 = f(t + h, _axpy(y, h, k3))
                y = _axpy(y, h / 6, nest.map_structure(
                    lambda b1, b2, b3, b4: b1 + 2 * b2 + 2 * b3 + b4, k1, k2, k3, k4))
                t += h
            t = t_end
            out.append(y)
        states = nest.map_structure(lambda *ys: tf.stack(ys, axis=0), *out)
        return Solution(tf.constant(times), states)

    def config(self) -> dict:
        return {"solver": self.name, "num_steps": self.num_steps}


SOLVERS = {"dopri5": Dopri5, "rk4": RK4}


def make_solver(solver: str = "dopri5", **settings) -> Dopri5 | RK4:
    """Build a solver by name with its settings (unknown settings for that solver ignored)."""
    try:
        cls = SOLVERS[solver]
    except KeyError:
        raise ValueError(f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)}") from None
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in settings.items() if k in accepted and v is not None})
