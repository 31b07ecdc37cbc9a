"""Trace estimators: the augmented dynamics d/dt (x, log-det[, kinetic, jacobian-frobenius]).

Continuous flows need tr(df/dx) along the trajectory. Three estimators:

- `exact`: the full Jacobian, from the backbone's forward-mode `value_and_jacobian` when it has
  one (no backward pass), else by D reverse-mode passes (`batch_jacobian`). Noise-free; the
  right choice up to a few tens of dimensions.
- `hutchinson_gaussian` / `hutchinson_rademacher`: eps^T (df/dx) eps with one probe eps per row,
  drawn once per solve (as in FFJORD), one backward pass per evaluation. Unbiased; Rademacher
  probes have lower variance.

The regularised form also integrates the RNODE terms |f|^2 (kinetic energy) and
|df/dx|_F^2 (exact) or |eps^T df/dx|^2 (Hutchinson), so solvers see one nested state.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

TRACE_ESTIMATORS = ("exact", "hutchinson_gaussian", "hutchinson_rademacher")


def check_trace(kind: str) -> str:
    if kind not in TRACE_ESTIMATORS:
        raise ValueError(f"unknown trace estimator {kind!r}; choose one of {TRACE_ESTIMATORS}")
    return kind


def draw_probe(kind: str, shape, generator: tf.random.Generator, dtype=tf.float32):
    """A Hutchinson probe of `shape`: standard Normal or Rademacher (+-1) entries."""
    if kind == "hutchinson_gaussian":
        return generator.normal(shape, dtype=dtype)
    return tf.where(generator.uniform(shape, dtype=dtype) < 0.5,
                    tf.constant(-1.0, dtype), tf.constant(1.0, dtype))


def jacobian_terms(rhs: Callable, kind: str, t, x, probe, kwargs: dict):
    """(f (B,D), per-coordinate trace contributions (B,D), Frobenius term (B,))."""
    if kind == "exact":
        if hasattr(rhs, "value_and_jacobian"):
            f, jac = rhs.value_and_jacobian(t, x, **kwargs)
        else:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                f = rhs(t, x, **kwargs)
            jac = tape.batch_jacobian(f, x)
        return f, tf.linalg.diag_part(jac), tf.reduce_sum(jac * jac, axis=[1, 2])
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        f = rhs(t, x, **kwargs)
    vjp = tape.gradient(f, x, output_gradients=probe)  # eps^T df/dx
    return f, probe * vjp, tf.reduce_sum(vjp * vjp, axis=1)


def augmented_dynamics(rhs: Callable, kind: str, probe=None, regularize: bool = False,
                       counter: tf.Variable | None = None) -> Callable:
    """The right-hand side for the state (x, log-det) or, if `regularize`, (x, log-det, ke, jf).

    `counter` (an int64 variable) is incremented once per evaluation: function evaluations,
    forward and backward, for benchmarks and logs.
    """

    def fn(t, state, **kwargs):
        x = state[0]
        if counter is not None:
            counter.assign_add(1)
        f, tr, frob = jacobian_terms(rhs, kind, t, x, probe, kwargs)
        if not regularize:
            return f, tr
        return f, tr, tf.reduce_sum(f * f, axis=1), frob

    return fn
