"""--model_name klm: the EIC KLM photon-timing flow (conditional autoregressive RQ spline) on
the one Trainer.

Data: the config's `data.path`, or --data_folder (a photon file .h5/.hdf5/.npz/.npy, or a
folder holding klm.h5). Without either, `--synthetic` uses the project's SYNTHETIC timing model
(klm/synthetic.py), regenerated from its seed (deterministic), so that the validation can also
redraw true times for its statistical floor. The rows are split 80/10/10; the preprocessing
(standardised time and context) is fitted on the training split and saved with the model, so
`KLMTimingModel.load(<run>/model)` gives log p(t | context) per ns and physical samples.

Training: Adam with L2 weight decay (torch's weight_decay), constant or cosine learning rate per
step, mid-epoch checkpoints every `checkpoint_every_steps`; the best validation epoch is kept.
The final report is the binned validation of klm/validation.py on the test split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..distributed.backend import Backend
from ..errors import DataError
from ..fileio import write_json
from ..flows.autoregressive_spline import ConditionalAutoregressiveSplineFlow
from ..klm.config import KLMConfig, load_config
from ..klm.model import KLMTimingModel
from ..klm.pipeline import (
    QUICK_OVERRIDES,
    format_validation,
    load_data,
    validation_summary,
    with_overrides,
)
from ..klm.preprocessing import KLMPreprocessing
from ..klm.split import split_table
from ..klm.validation import plot_validation, validate
from ..training.datasets import ArrayData, ShardedBatches
from ..training.loop import TrainSettings
from .base import DEFAULT_DATA_FOLDER, REPO_ROOT, Experiment, Plan, RunOptions

DATA_FILE = "klm.h5"


def settings_from(config: KLMConfig) -> TrainSettings:
    t = config.training
    return TrainSettings(
        lr=t.learning_rate, max_epochs=t.epochs, early_stop=0,
        schedule="cosine_step" if t.lr_schedule == "cosine" else "constant",
        min_lr=t.learning_rate * t.lr_final_fraction, clip_norm=0.0,
        weight_decay=t.weight_decay, jit_compile=False,
        checkpoint_every_steps=t.checkpoint_every_steps)


def _data_path(opts: RunOptions, config: KLMConfig) -> str | None:
    """The photon file to read: the config's, --data_folder's, or ./data/klm.h5 if present."""
    if config.data.path:
        return config.data.path
    base = Path(opts.data_folder) if opts.data_folder else DEFAULT_DATA_FOLDER
    path = base / DATA_FILE if base.is_dir() else base
    if path.is_file():
        return str(path)
    if opts.data_folder and not opts.synthetic:
        raise DataError(f"{path} not found: give --data_folder naming the KLM photon file "
                        f"(.h5/.hdf5/.npz/.npy) or a folder holding {DATA_FILE}, or pass "
                        f"--synthetic to train on the project's synthetic timing model")
    if not opts.synthetic:
        raise DataError("no KLM data: set data.path in the config or give --data_folder, or "
                        "pass --synthetic to train on the project's synthetic timing model")
    return None


@dataclasses.dataclass
class KLMExperiment(Experiment):
    name: str = "klm"
    description: str = "EIC KLM photon hit time given (theta, muon time, hit z, momentum)"

    def configure(self, opts: RunOptions) -> tuple[KLMConfig, dict, str]:
        config = load_config(opts.config or REPO_ROOT / "configs" / "klm.json")
        if opts.quick:
            config = with_overrides(config, QUICK_OVERRIDES)
        if opts.epochs is not None:
            config = with_overrides(config, {"training": {"epochs": opts.epochs}})
        config = with_overrides(config, opts.overrides)
        config = with_overrides(config, {"data": {"path": _data_path(opts, config)}})
        return config, config.to_dict(), self.name

    def plan(self, config: KLMConfig, opts: RunOptions, backend: Backend) -> Plan:
        table, redraw, provenance = load_data(config)
        splits = split_table(table, config.data.split_seed)
        prep = KLMPreprocessing.fit(splits["train"])

        def arrays(split: str) -> ArrayData:
            part = splits[split]
            return ArrayData(prep.encode_time(part.time), prep.encode_context(part.context))

        t = config.training

        def report(flow, out: Path) -> dict:
            result = validate(KLMTimingModel(flow, prep), splits["test"], config.validation,
                              config.sampling, redraw)
            write_json(out / "validation.json", result.report)
            plot_validation(result, out)
            print(format_validation(result.report))
            return {"data_source": provenance["source"],
                    **{k: v for k, v in validation_summary(result.report).items()
                       if not isinstance(v, (dict, list))}}

        return Plan(
            build_flow=lambda: ConditionalAutoregressiveSplineFlow(config.model),
            settings=settings_from(config),
            train=ShardedBatches(arrays("train"), backend, t.batch_size, t.seed),
            val=ShardedBatches(arrays("val"), backend, t.val_batch_size, t.seed,
                               shuffle=False),
            summary=(f"klm: {self.description}; data {provenance['source']}, {len(table):,} "
                     f"rows -> train {len(splits['train']):,}, val {len(splits['val']):,}, "
                     f"test {len(splits['test']):,}"),
            metadata={"preprocessing": prep.to_dict(), "data": provenance},
            report=report)


EXPERIMENTS = {"klm": KLMExperiment()}
