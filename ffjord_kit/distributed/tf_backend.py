"""Data parallelism on TensorFlow's own engine, `tf.distribute.MultiWorkerMirroredStrategy`.

One worker process per GPU (or per CPU process), one replica per worker. Where the workers are
comes from `SlurmClusterResolver` under srun (gRPC ports port_base + local task index) or from
TF_CONFIG otherwise. The model and optimizer are created under `scope()` (mirrored variables,
equal on every worker from creation); each step computes this worker's gradients on its own
shard, averages them over workers with one all-reduce (MEAN), and applies the same update
everywhere. The optimizer's own cross-replica SUM is switched off in `prepare` because the
step has already averaged.
"""

from __future__ import annotations

import tensorflow as tf

from .collective import CollectiveBackend
from .launch import (
    DistributedError,
    LaunchInfo,
    Timeouts,
    pin_gpu,
)
from .watchdog import guarded_step

_MEAN = tf.distribute.ReduceOp.MEAN
_SUM = tf.distribute.ReduceOp.SUM
# What the engine raises when a peer's connection drops or a collective times out.
_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
         tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError)


def _no_aggregation(grads_and_vars):
    return grads_and_vars


class TFMultiWorkerBackend(CollectiveBackend):
    """MultiWorkerMirroredStrategy over the workers srun or TF_CONFIG describes."""

    name = "tf"
    lost_errors = _LOST
    # Batch-norm moving statistics are ON_READ variables here: reading them (to write a
    # checkpoint) is an all-reduce that every worker must join.
    writes_on_all_ranks = True

    def __init__(self, info: LaunchInfo, timeouts: Timeouts | None = None,
                 port_base: int = 8888):
        self._init_guard(info.rank, timeouts)
        self.info = info
        resolver = None
        if info.source == "slurm":
            # GPUs are pinned by pin_gpu (local rank), not by the resolver; it still needs one
            # "GPU slot" per task, or it drops tasks (zip over GPU slots) or divides by zero
            # on CPU nodes.
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
                port_base=port_base, gpus_per_node=max(info.tasks_per_host), gpus_per_task=1,
                auto_set_gpu=False)
            spec = resolver.cluster_spec()
            address = spec.task_address("worker", info.rank)
            expected = f"{info.host}:{port_base + info.local_rank}"
            if address != expected:  # SLURM rank order and TF's host sorting disagree
                raise DistributedError(
                    f"TensorFlow placed rank {info.rank} at {address} but it runs at {expected};"
                    " launch with srun --distribution=block on nodes listed in sorted order")
        elif info.source == "tf_config":
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        self.device = pin_gpu(info.local_rank)
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=self.timeouts.first_step,
            implementation=(tf.distribute.experimental.CommunicationImplementation.NCCL
                            if self.device else
                            tf.distribute.experimental.CommunicationImplementation.RING))
        try:
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options)
        except RuntimeError as exc:
            raise DistributedError(f"TensorFlow's multi-worker engine could not start ({exc}); "
                                   "create the backend before any other TensorFlow op") from None
        if self.strategy.num_replicas_in_sync != info.size:
            raise DistributedError(
                f"mismatched world size: {info.source} describes {info.size} workers but "
                f"TensorFlow formed {self.strategy.num_replicas_in_sync} replicas; use one GPU "
                "(or one CPU process) per worker")
        self.rank, self.size = info.rank, info.size
        self.local_rank = info.local_rank
        self._prepared = False

    def scope(self):
        return self.strategy.scope()

    def _local(self, value):
        return self.strategy.experimental_local_results(value)[0]

    def _all_reduce(self, op, values):
        """All-reduce a nest of tensors across workers; this worker's copy."""
        return self._all_reduce_fn(op, values)

    @tf.function(reduce_retracing=True)
    def _all_reduce_fn(self, op, values):
        # Compiled: run eagerly, the strategy's collectives are slow and warn each time.
        # tf.identity places the inputs on this replica's device (the collective's target).
        reduced = self.strategy.run(
            lambda v: tf.distribute.get_replica_context().all_reduce(
                op, tf.nest.map_structure(tf.identity, v)), args=(values,))
        return tf.nest.map_structure(self._local, reduced)

    def _broadcast_from_chief(self, variables: list) -> None:
        chief = 1.0 if self.is_chief else 0.0
        summed = self._all_reduce(_SUM, [tf.cast(v, tf.float64) * chief for v in variables])
        for v, total in zip(variables, summed, strict=True):
            v.assign(tf.cast(total, v.dtype))

    def _mean_tensor(self, tensor):
        return self._all_reduce(_MEAN, tensor)

    def prepare(self, variables, optimizer=None) -> None:
        """Rank 0's weights everywhere (so a checkpoint rank 0 alone loaded counts), and an
        optimizer that applies the already-averaged gradients as they are."""
        super().prepare(variables, optimizer)
        if optimizer is not None:
            optimizer.aggregate_gradients = _no_aggregation
        self._prepared = True

    def train_step(self, loss_and_grad, apply):
        if not self._prepared:
            raise RuntimeError("call backend.prepare(variables, optimizer) before train_step: "
                               "it switches off the optimizer's own gradient sum")
        strategy = self.strategy
        # The optimizer update synchronises (merge_call), which TF forbids inside a nested
        # tf.function: inline the Python body of a compiled `apply` into this step instead.
        apply = getattr(apply, "python_function", apply)

        def replica_step(x, condition):
            loss, aux, grads = loss_and_grad(x, condition)
            ctx = tf.distribute.get_replica_context()
            present = [i for i, g in enumerate(grads) if g is not None]
            reduced = ctx.all_reduce(_MEAN, [grads[i] for i in present])
            grads = list(grads)
            for i, g in zip(present, reduced, strict=True):
                grads[i] = g
            loss, aux = ctx.all_reduce(_MEAN, (loss, aux))
            apply(grads)
            return loss, aux

        @tf.function
        def step(x, condition=None):
            loss, aux = strategy.run(replica_step, args=(x, condition))
            return self._local(loss), {k: self._local(v) for k, v in aux.items()}

        return guarded_step(step, self.watchdog, self.timeouts.first_step, self.timeouts.step,
                            self.lost_errors)

    def shutdown(self) -> None:
        # Workers leave together, so none tears down a connection another still uses.
        self.barrier()
