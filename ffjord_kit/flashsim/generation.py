"""Generation: gen-level conditions -> reconstructed objects, batched, with upsampling.

Output HDF5 (written atomically):
    data        float32 [N * upsample, C + T]: FlashSim layout (gen conditions, generated targets)
    gen_index   int64 [N * upsample]: the input row each draw belongs to
    reco/<name> float64 [N * upsample]: physical reco variables (pt in GeV, eta, phi, ...)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

from ..fileio import atomic_path
from ..flows.spline_coupling import SplineCouplingFlow
from .preprocessing import ModelTransform, targets_to_reco
from .reader import DATASET


def make_sampler(flow: SplineCouplingFlow):
    """A compiled sampler: (model conditions [B, C], seed [2] int32) -> model targets [B, T]."""
    d = flow.config.features

    @tf.function(input_signature=[tf.TensorSpec([None, flow.config.context_features],
                                                tf.float32),
                                  tf.TensorSpec([2], tf.int32)])
    def sample(c, seed):
        z = tf.random.stateless_normal([tf.shape(c)[0], d], seed=seed)
        return flow.to_data(z, condition=c)[0]

    return sample


def generate_targets(flow: SplineCouplingFlow, transform: ModelTransform,
                     gen_conditions: np.ndarray, upsample: int = 1, batch_size: int = 10_000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw `upsample` reco objects per gen row [N, C] (file units).

    Returns (target columns [N * upsample, T] float32, gen_index [N * upsample],
    objects per second of the sampling loop). Draws of one gen object are adjacent.
    """
    gen_index = np.repeat(np.arange(len(gen_conditions)), upsample)
    cond = transform.conditions(gen_conditions)[gen_index]
    sampler = make_sampler(flow)
    sampler(cond[:1], tf.constant([seed, -1], tf.int32))  # trace outside the timing
    parts = []
    t0 = time.perf_counter()
    for b, s in enumerate(range(0, len(cond), batch_size)):
        parts.append(sampler(cond[s:s + batch_size], tf.constant([seed, b], tf.int32)).numpy())
    rate = len(cond) / max(time.perf_counter() - t0, 1e-9)
    targets = transform.inverse_targets(np.concatenate(parts))
    return targets, gen_index, rate


def write_generated(path: str | os.PathLike, gen_conditions: np.ndarray, targets: np.ndarray,
                    gen_index: np.ndarray, transform: ModelTransform) -> Path:
    """Write the generation output file (layout in the module docstring), atomically."""
    schema = transform.schema
    cond = gen_conditions[gen_index]
    reco = targets_to_reco(schema, cond, targets)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(DATASET, data=np.concatenate([cond, targets], 1).astype(np.float32))
            f.create_dataset("gen_index", data=gen_index.astype(np.int64))
            grp = f.create_group("reco")
            for name, values in reco.items():
                grp.create_dataset(name, data=values)
            f.attrs["kind"] = schema.kind
            f.attrs["columns"] = schema.condition_names + schema.target_names
    return Path(path)
