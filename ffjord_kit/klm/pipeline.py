"""End-to-end KLM runs used by the scripts: load or generate data, split, fit preprocessing,
train, validate, write reports into an output folder."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..fileio import ensure_writable_dir, write_json
from .config import KLMConfig
from .model import KLMTimingModel
from .preprocessing import KLMPreprocessing
from .reader import read_table
from .schema import KLMTable
from .split import split_table
from .synthetic import TimingModel, draw_photon_times, generate_table
from .training import KLMTrainer
from .validation import TruthRedraw, plot_validation, validate

QUICK_OVERRIDES = {
    "data": {"synthetic_rows": 20000},
    "model": {"num_layers": 2, "hidden_units": 16, "hidden_layers": 2},
    "training": {"epochs": 1, "batch_size": 256, "checkpoint_every_steps": 50},
    "validation": {"upsample": 2, "density_contexts": 50, "density_mc": 16, "min_events": 100},
}


def with_overrides(config: KLMConfig, overrides: dict) -> KLMConfig:
    """A copy of `config` with {section: {key: value}} replaced (keys checked)."""
    d = config.to_dict()
    for section, values in overrides.items():
        d[section] = {**d[section], **values}
    return KLMConfig.from_dict(d)


def load_data(config: KLMConfig) -> tuple[KLMTable, TruthRedraw | None, dict]:
    """The full table, a truth re-generator for synthetic data (else None) and a provenance
    dict for the reports."""
    dc = config.data
    if dc.path:
        table = read_table(dc.path, dc.hdf5_key, dc.rename, dc.drop_nonfinite)
        return table, None, {"source": str(dc.path), "rows": len(table)}
    timing = TimingModel()
    table = generate_table(dc.synthetic_rows, dc.synthetic_seed, timing)
    redraw = lambda ctx, rng: draw_photon_times(ctx, rng, timing)  # noqa: E731
    return table, redraw, {"source": "synthetic (ffjord_kit.klm.synthetic)",
                           "rows": len(table), "seed": dc.synthetic_seed,
                           "timing_model": timing.as_dict()}


def fingerprint(config: KLMConfig, n_train: int) -> dict:
    """What a checkpoint must match to be resumed (epochs may grow between runs)."""
    training = dataclasses.asdict(config.training)
    for key in ("checkpoint_every_steps", "val_batch_size", "max_nan_steps"):
        training.pop(key)
    if config.training.lr_schedule == "constant":
        training.pop("epochs")  # more epochs continue the same run; a cosine run would not
    return {"model": config.model.to_dict(), "training": training,
            "data": dataclasses.asdict(config.data), "n_train": n_train}


def run_training(config: KLMConfig, out: str | Path, resume: bool = True,
                 run_validation: bool = True, log: Callable[[str], None] = print,
                 stop_after_steps: int | None = None) -> dict:
    """Train (resuming from out/checkpoint when present), then validate the best model on the
    test split. Writes out/config_used.json, out/history.json, out/validation.json and the
    figures; returns the summary that is also written to out/report.json."""
    out = ensure_writable_dir(out)
    write_json(out / "config_used.json", config.to_dict())
    table, redraw, provenance = load_data(config)
    splits = split_table(table, config.data.split_seed)
    log(f"data: {provenance['source']}, {len(table)} rows -> train {len(splits['train'])}, "
        f"val {len(splits['val'])}, test {len(splits['test'])}")
    prep = KLMPreprocessing.fit(splits["train"])
    model = KLMTimingModel.create(config.model, prep)
    trainer = KLMTrainer(model, config.training,
                         len(splits["train"]) // config.training.batch_size)
    t0 = time.perf_counter()
    state = trainer.fit(splits["train"], splits["val"], out,
                        fingerprint(config, len(splits["train"])), resume, log,
                        stop_after_steps)
    train_seconds = time.perf_counter() - t0
    summary = {"data": provenance, "split": {k: len(v) for k, v in splits.items()},
               "epochs_done": state.epoch, "steps": state.step, "nan_steps": state.nan_steps,
               "best_val_nll": state.best_val_nll, "history": state.history,
               "train_seconds_this_call": train_seconds,
               "n_parameters": int(sum(np.prod(v.shape) for v in model.flow.trainable_variables))}
    write_json(out / "history.json", state.history)
    if run_validation and state.epoch > 0 and (out / "model").is_dir():
        best = KLMTimingModel.load(out / "model")
        result = validate(best, splits["test"], config.validation, config.sampling, redraw)
        write_json(out / "validation.json", result.report)
        plot_validation(result, out)
        summary["validation"] = _validation_summary(result.report)
        log(format_validation(result.report))
    write_json(out / "report.json", summary)
    return summary


def run_validation_only(config: KLMConfig, model_dir: str | Path, out: str | Path,
                        log: Callable[[str], None] = print) -> dict:
    """Validate a saved model on the test split of `config`'s data; writes validation.json
    and the figures into `out`."""
    out = ensure_writable_dir(out)
    table, redraw, _ = load_data(config)
    test = split_table(table, config.data.split_seed)["test"]
    model = KLMTimingModel.load(model_dir)
    result = validate(model, test, config.validation, config.sampling, redraw)
    write_json(out / "validation.json", result.report)
    plot_validation(result, out)
    log(format_validation(result.report))
    return result.report


def _validation_summary(rep: dict) -> dict:
    keys = ("n_test", "test_nll_untruncated", "sampling_acceptance_rate", "bins_judged",
            "bins_passed", "max_ks_over_floor", "all_bins_pass")
    out = {k: rep[k] for k in keys}
    out["overall_ks"], out["overall_w1"] = rep["overall"]["ks"], rep["overall"]["w1"]
    out["overall_floor_ks"] = rep["overall"]["floor_ks"]
    return out


def format_validation(rep: dict) -> str:
    """A plain-text table of the per-bin figures."""
    lines = [f"test NLL (untruncated flow) {rep['test_nll_untruncated']:.4f} nats; "
             f"acceptance rate t >= {rep['min_time_ns']} ns: "
             f"{rep['sampling_acceptance_rate']:.5f} ({rep['sampling_rounds']} rounds)",
             f"{'bin':>3} {'z range [cm]':>16} {'p range [GeV]':>14} {'n':>6} {'KS':>7} "
             f"{'floor':>7} {'ratio':>6} {'W1 [ns]':>8} {'W1 floor':>8} pass"]
    rows = [*rep["bins"], {**rep["overall"], "bin": "all", "z_range_cm": None,
                           "momentum_range_gev": None, "judged": True,
                           "passed": rep["overall"]["ks_over_floor"] <= rep["ks_tolerance"]}]
    for r in rows:
        zr = "{:.0f}..{:.0f}".format(*r["z_range_cm"]) if r.get("z_range_cm") else "-"
        pr = "{:.2f}..{:.2f}".format(*r["momentum_range_gev"]) \
            if r.get("momentum_range_gev") else "-"
        if r.get("ks") is None:
            lines.append(f"{r['bin']:>3} {zr:>16} {pr:>14} {r['n_truth']:>6} (too few rows)")
            continue
        verdict = ("yes" if r["passed"] else "NO") if r.get("judged") else "n/a"
        lines.append(f"{r['bin']:>3} {zr:>16} {pr:>14} {r['n_truth']:>6} {r['ks']:7.4f} "
                     f"{r['floor_ks']:7.4f} {r['ks_over_floor']:6.2f} {r['w1']:8.4f} "
                     f"{r['floor_w1']:8.4f} {verdict}")
    lines.append(f"bins passing KS <= {rep['ks_tolerance']} x floor: {rep['bins_passed']}/"
                 f"{rep['bins_judged']} (bins with >= {rep['min_events']} rows)")
    return "\n".join(lines)
