"""--model_name jets | muons: FlashSim conditional spline-coupling flows on the one Trainer.

Data: a folder with train_*.h5 (one or many files), val.h5 and optionally test.h5 in the
FlashSim layout (flashsim/reader.py), given as --data_folder (the folder itself, or a folder
holding `jets/` or `muons/`; default ./data/<kind>). `--synthetic` writes the project's
SYNTHETIC stand-in there when it is missing (flashsim/synthetic.py).

Training streams the files: each rank reads its own share of the chunks of an epoch (disjoint,
seeded per epoch), so gradients are averaged over ranks' distinct events each step. Batch norm
statistics are per rank, as in Horovod and PyTorch DDP. The model-space preprocessing is fitted
on the first `fit_rows` training rows (the same on every rank) and saved with the model.

Config: configs/flashsim_<kind>.json (--quick: flashsim_<kind>_cpu.json with a tiny flow).
"""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

import numpy as np

from ..config import merge_overrides, read_config_file
from ..distributed.backend import Backend
from ..errors import DataError
from ..flashsim.config import FlashSimConfig, config_from_dict
from ..flashsim.preprocessing import ModelTransform, drop_nonfinite_rows, make_transform_fn
from ..flashsim.reader import ChunkedReader, read_rows
from ..flashsim.synthetic import make_synthetic_dataset
from ..flows.spline_coupling import SplineCouplingFlow
from ..training.datasets import ArrayData, ShardedBatches, StreamingBatches
from ..training.loop import TrainSettings
from .base import REPO_ROOT, Experiment, Plan, RunOptions, locate_data

# --quick: the CPU config with these overrides (a tiny flow, one epoch on the first rows)
QUICK = {"flow": {"hidden": 16, "num_blocks": 1, "num_bins": 8, "num_flow_steps": 2},
         "training": {"epochs": 1, "batch_size": 256, "chunk_rows": 2048, "val_rows": 2000,
                      "fit_rows": 5000, "max_rows": 6144}}
# --synthetic: rows written once (train over two files, so the multi-file path is exercised)
SYNTHETIC = {"n_train": 200_000, "n_files": 2, "n_val": 20_000, "n_test": 40_000}


def train_files(folder: Path) -> list[str]:
    return sorted(glob.glob(str(folder / "train_*.h5")))


def _present(folder: Path) -> bool:
    return folder.is_dir() and bool(train_files(folder)) and (folder / "val.h5").is_file()


def settings_from(config: FlashSimConfig) -> TrainSettings:
    """The reference recipe: Adam, cosine annealing stepped per epoch (T_max = epochs) down to
    lr_min, no clipping, no early stopping; the best validation epoch is kept."""
    t = config.training
    return TrainSettings(lr=t.lr, max_epochs=t.epochs, early_stop=0, schedule="cosine_epoch",
                         min_lr=t.lr_min, clip_norm=0.0, jit_compile=False,
                         checkpoint_every_steps=t.checkpoint_every_steps)


@dataclasses.dataclass
class FlashSimExperiment(Experiment):
    name: str
    description: str

    def configure(self, opts: RunOptions) -> tuple[FlashSimConfig, dict, str]:
        small = "_cpu" if opts.quick else ""
        path = opts.config or REPO_ROOT / "configs" / f"flashsim_{self.name}{small}.json"
        raw = read_config_file(path)
        for overrides in (QUICK if opts.quick else {}, opts.overrides,
                          {"training": {"epochs": opts.epochs}} if opts.epochs else {}):
            raw = merge_overrides(raw, overrides)
        config = config_from_dict(raw, str(path))
        if config.schema.kind != self.name:
            raise DataError(f"config {path} is for {config.schema.kind}, not {self.name}")
        return config, config.to_dict(), self.name

    def plan(self, config: FlashSimConfig, opts: RunOptions, backend: Backend) -> Plan:
        schema, t = config.schema, config.training
        folder = locate_data(
            opts.data_folder, self.name, _present,
            lambda out: make_synthetic_dataset(self.name, out=out, seed=opts.seed, **SYNTHETIC),
            opts.synthetic, f"train_*.h5 and val.h5 in the FlashSim {self.name} layout")
        train_paths, val_paths = train_files(folder), [str(folder / "val.h5")]
        fit_rows, _ = drop_nonfinite_rows(read_rows(train_paths, schema, t.fit_rows))
        transform = ModelTransform.fit(schema, fit_rows, seed=t.seed)
        reader = ChunkedReader(train_paths, schema, t.chunk_rows, t.shuffle_chunks,
                               rank=backend.rank, size=backend.size, seed=t.seed,
                               limit=t.max_rows or None)
        total_rows = sum(b - a for _, a, b in reader.chunks)

        def batches(epoch: int):
            rng = np.random.default_rng([t.seed, epoch, backend.rank, 7])
            return reader.iter_batches(t.batch_size, make_transform_fn(transform, rng), epoch)

        val_rows, dropped = drop_nonfinite_rows(read_rows(val_paths, schema, t.val_rows))
        if len(val_rows) == 0:
            raise DataError(f"{val_paths[0]} holds no finite rows")
        n_c = schema.n_conditions
        val = ArrayData(transform.targets(val_rows[:, n_c:], np.random.default_rng(123)),
                        transform.conditions(val_rows[:, :n_c]))
        return Plan(
            build_flow=lambda: SplineCouplingFlow(config.flow),
            settings=settings_from(config),
            train=StreamingBatches(batches, total_rows // backend.size // t.batch_size,
                                   schema.n_targets, n_c),
            val=ShardedBatches(val, backend, 8192, t.seed, shuffle=False),
            summary=(f"{self.name}: {self.description}; {total_rows:,} training rows in "
                     f"{len(train_paths)} file(s) from {folder}, {len(val_rows):,} validation "
                     f"rows ({dropped} non-finite dropped)"),
            metadata={"kind": self.name, "preprocessing": transform.to_dict(),
                      "data": str(folder)},
            report=lambda flow, out: {"parameters": flow.num_parameters(),
                                      "data_source": str(folder)})


EXPERIMENTS = {
    "jets": FlashSimExperiment("jets", "FlashSim jets: 17 reco targets given 14 gen conditions"),
    "muons": FlashSimExperiment("muons",
                                "FlashSim muons: 22 reco targets given 30 gen conditions"),
}
