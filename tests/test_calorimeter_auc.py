"""The classifier-AUC metric's self-checks, and the validation report end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ffjord_kit.calorimeter.observables import classifier_features, shower_observables
from ffjord_kit.calorimeter.report import compare_showers, write_observable_plots
from ffjord_kit.calorimeter.showers import write_calogan
from ffjord_kit.calorimeter.synthetic import generate_showers
from ffjord_kit.errors import DataError
from ffjord_kit.evaluation.classifier_auc import classifier_auc


def shower_auc(reference, generated, **kw):
    return classifier_auc(classifier_features(reference), classifier_features(generated), **kw)

REPO = Path(__file__).resolve().parents[1]
N_AUC = 2500  # per sample: 1500 train + 1000 held out, AUC standard error ~0.013


@pytest.fixture(scope="module")
def reference():
    return generate_showers("gamma", N_AUC, seed=101)


def test_auc_of_independent_samples_is_at_most_0p53(reference):
    same = generate_showers("gamma", N_AUC, seed=202)
    res = shower_auc(reference, same, seed=0, n_threads=1)
    assert res["n_test_per_sample"] == 1000 and res["n_train_per_sample"] == 1500
    assert res["auc"] <= 0.53, res


def test_auc_of_widths_scaled_by_1p2_is_above_0p7(reference):
    wide = generate_showers("gamma", N_AUC, seed=303, width_scale=1.2)
    res = shower_auc(reference, wide, seed=0, n_threads=1)
    assert res["auc"] > 0.7, res


def test_features_and_too_few_events(reference):
    x = classifier_features(reference.subset(slice(0, 10)))
    assert x.shape[0] == 10 and x.shape[1] > 505
    assert np.isfinite(x[:, :505]).all()
    with pytest.raises(DataError, match="at least 20 training and 20 held-out"):
        shower_auc(reference.subset(slice(0, 30)), reference.subset(slice(30, 60)))


def test_report_flags_the_widened_observables(reference):
    wide = generate_showers("gamma", 1000, seed=404, width_scale=1.2)
    rep = compare_showers(reference, wide, seed=1, with_auc=False)
    ratios = {k: v["w1_over_floor"] for k, v in rep["observables"].items()}
    worst = max(ratios, key=ratios.get)
    assert worst.startswith("width_"), ratios
    assert ratios[worst] > 5 and ratios["E_total"] < ratios[worst] / 3
    assert rep["mean_image_l1"]["layer_1"] > 0.05


def test_plot_calo_end_to_end(tmp_path):
    write_calogan(tmp_path / "ref.h5", generate_showers("eplus", 300, seed=1))
    write_calogan(tmp_path / "gen.h5", generate_showers("eplus", 300, seed=2))
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_calo.py"),
                          "--reference", str(tmp_path / "ref.h5"), "--generated",
                          str(tmp_path / "gen.h5"), "--out", str(out), "--no_per_observable"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    report = json.loads((out / "report.json").read_text())
    assert summary["auc"] == report["classifier"]["auc"] and 0.0 <= summary["auc"] <= 1.0
    assert report["n_reference"] == 300 and len(report["observables"]) == 30
    for name in ("overview.png", "mean_images.png"):
        assert (out / name).stat().st_size > 10000, name
    assert not (out / "observables").exists()


def test_per_observable_plots(reference, tmp_path):
    ref, gen = reference.subset(slice(0, 200)), reference.subset(slice(200, 400))
    rep = compare_showers(ref, gen, with_auc=False)
    names = ["width_x_layer_1", "E_total"]
    folder = write_observable_plots(shower_observables(ref), shower_observables(gen), rep,
                                    tmp_path / "obs", names)
    assert sorted(p.name for p in folder.iterdir()) == ["E_total.png", "width_x_layer_1.png"]
    assert all(p.stat().st_size > 5000 for p in folder.iterdir())
