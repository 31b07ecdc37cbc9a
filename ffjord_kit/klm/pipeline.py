"""KLM data and reports used by the experiment (experiments/klm.py) and the scripts: load or
generate data, config overrides, validation of a saved model, the per-bin table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import merge_overrides
from ..fileio import ensure_writable_dir, write_json
from .config import KLMConfig
from .model import KLMTimingModel
from .reader import read_table
from .schema import KLMTable
from .split import split_table
from .synthetic import TimingModel, draw_photon_times, generate_table
from .validation import TruthRedraw, plot_validation, validate

QUICK_OVERRIDES = {
    "data": {"synthetic_rows": 20000},
    "model": {"num_layers": 2, "hidden_units": 16, "hidden_layers": 2},
    "training": {"epochs": 1, "batch_size": 256, "checkpoint_every_steps": 50},
    "validation": {"upsample": 2, "density_contexts": 50, "density_mc": 16, "min_events": 100},
}


def with_overrides(config: KLMConfig, overrides: dict) -> KLMConfig:
    """A copy of `config` with {section: {key: value}} replaced (keys checked)."""
    return KLMConfig.from_dict(merge_overrides(config.to_dict(), overrides))


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


def validation_summary(rep: dict) -> dict:
    """The headline figures of a validation report."""
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
