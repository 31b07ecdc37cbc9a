"""Compiled training steps for continuous flows, shared by the toy scripts and train_parallel.

The loss and its gradient are one `tf.function`, optionally XLA-compiled (`jit_compile`): with
the fixed-grid RK4 solver the graph is static and compiles once; TFP's adaptive solver with the
adjoint does not benefit (see benchmarks/bench_moons.py). The optimizer update is a separate,
non-XLA function so a distributed backend can average gradients in between.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from .flows.flow_matching import FlowMatching, ot_pair, repeat_rows


def make_loss_and_grad(flow, kinetic: float = 0.0, jacobian: float = 0.0,
                       jit_compile: bool = False, training: bool = True,
                       objective: str = "max_likelihood",
                       flow_matching: FlowMatching | None = None,
                       replica: tuple[int, int] = (0, 1)) -> Callable:
    """`fn(x, condition=None) -> (loss, aux dict, gradients)` for `flow.trainable_variables`.

    Any flow of the contract (flows/base.py); kinetic / jacobian are the continuous flows'
    RNODE weights, passed only when non-zero. `objective="flow_matching"` (continuous flows)
    regresses the field instead (flows/flow_matching.py); with `flow_matching.coupling == "ot"`
    the base draws are paired with the batch on the host first, then the XLA step runs.
    `replica` = (rank, size) of a data-parallel run (see `ContinuousFlow.draw_base`)."""
    if objective not in flow.objectives:
        raise ValueError(f"{flow.family} flows train by {' or '.join(flow.objectives)}, not "
                         f"{objective!r}")
    variables = flow.trainable_variables
    options = {k: v for k, v in (("kinetic", kinetic), ("jacobian", jacobian)) if v}
    fm = flow_matching or FlowMatching()
    if objective == "flow_matching":
        options.update(objective=objective, sigma_min=fm.sigma_min, draws=fm.draws,
                       replica=tuple(replica))

    def loss_and_grad(x, condition=None, base=None):
        with tf.GradientTape() as tape:
            loss, aux = flow.loss(x, condition, training=training, base=base, **options)
        grads = tape.gradient(loss, variables)
        return loss, aux, grads

    compiled = tf.function(loss_and_grad, jit_compile=jit_compile, reduce_retracing=True)
    if objective != "flow_matching" or fm.coupling == "independent":
        return compiled

    def coupled(x, condition=None):
        # The pairing is a host call (scipy), so it runs outside the XLA-compiled step; the
        # base draws come from the flow's checkpointed generator, so resume stays exact.
        xs, cs = repeat_rows(x, fm.draws), repeat_rows(condition, fm.draws)
        base = ot_pair(xs, flow.draw_base(tf.shape(xs)[0], replica), cs, fm.ot_block)
        return compiled(x, condition, base)

    return tf.function(coupled, reduce_retracing=True)


def make_apply(optimizer, variables, clip_norm: float | None = None,
               weight_decay: float = 0.0, norm_out: tf.Variable | None = None) -> Callable:
    """`fn(grads) -> global gradient norm`: clip by global norm, add the L2 term
    `weight_decay * w` (torch.optim.Adam's weight_decay), then one optimizer update.
    `norm_out`: a variable that receives the norm (read by the host after the step)."""

    @tf.function
    def apply(grads):
        norm = tf.linalg.global_norm(grads)
        if norm_out is not None:
            norm_out.assign(tf.cast(norm, norm_out.dtype))
        if clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
        if weight_decay:
            grads = [g + weight_decay * v for g, v in zip(grads, variables, strict=True)]
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
