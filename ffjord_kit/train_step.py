"""Compiled training steps for continuous flows, shared by the toy scripts and train_parallel.

The loss and its gradient are one `tf.function`, optionally XLA-compiled (`jit_compile`): with
the fixed-grid RK4 solver the graph is static and compiles once; TFP's adaptive solver with the
adjoint does not benefit (see benchmarks/bench_moons.py). The optimizer update is a separate,
non-XLA function so a distributed backend can average gradients in between.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def make_loss_and_grad(flow, kinetic: float = 0.0, jacobian: float = 0.0,
                       jit_compile: bool = False, training: bool = True) -> Callable:
    """`fn(x, condition=None) -> (loss, aux dict, gradients)` for `flow.trainable_variables`."""
    variables = flow.trainable_variables

    def loss_and_grad(x, condition=None):
        with tf.GradientTape() as tape:
            loss, aux = flow.loss(x, condition, kinetic=kinetic, jacobian=jacobian,
                                  training=training)
        grads = tape.gradient(loss, variables)
        return loss, aux, grads

    return tf.function(loss_and_grad, jit_compile=jit_compile, reduce_retracing=True)


def make_apply(optimizer, variables, clip_norm: float | None = None) -> Callable:
    """`fn(grads) -> global gradient norm`: clip by global norm, then one optimizer update."""

    @tf.function
    def apply(grads):
        norm = tf.linalg.global_norm(grads)
        if clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return norm

    return apply


def grads_finite(loss, grads) -> bool:
    """True when the loss and every gradient are finite (checked on the host)."""
    ok = tf.math.is_finite(loss)
    for g in grads:
        if g is not None:
            ok = tf.logical_and(ok, tf.reduce_all(tf.math.is_finite(g)))
    return bool(ok.numpy())
