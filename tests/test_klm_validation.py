"""Context-binned validation: a model equal to the truth passes every bin against the
statistical floor, a shifted one fails; both floor methods agree; figures are written."""

import dataclasses

import numpy as np
import pytest

from ffjord_kit.flows.autoregressive_spline import AutoregressiveSplineConfig
from ffjord_kit.klm.config import SamplingConfig, ValidationConfig
from ffjord_kit.klm.model import KLMTimingModel
from ffjord_kit.klm.preprocessing import KLMPreprocessing
from ffjord_kit.klm.schema import KLMTable
from ffjord_kit.klm.synthetic import draw_context
from ffjord_kit.klm.validation import _floor, plot_validation, validate

PREP = KLMPreprocessing((0.0, 2.0, 1.5, 0.5), (50.0, 0.3, 0.5, 1.0), time_mean=12.0,
                        time_std=4.0)
VCFG = ValidationConfig(z_bins=2, momentum_bins=2, min_events=200, upsample=4,
                        density_contexts=20, density_mc=16)


@pytest.fixture(scope="module")
def test_table():
    # Truth: N(12, 4) ns whatever the context, which an untrained flow reproduces exactly.
    rng = np.random.default_rng(0)
    ctx = draw_context(3000, rng)
    return KLMTable(ctx, rng.normal(12.0, 4.0, len(ctx)))


@pytest.fixture(scope="module")
def flow():
    cfg = AutoregressiveSplineConfig(num_layers=1, hidden_units=8, hidden_layers=1)
    return KLMTimingModel.create(cfg, PREP).flow


def _redraw(ctx, rng):
    return rng.normal(12.0, 4.0, len(ctx))


def test_exact_model_passes_and_shifted_model_fails(test_table, flow, tmp_path):
    scfg = SamplingConfig(min_time_ns=None)
    good = validate(KLMTimingModel(flow, PREP), test_table, VCFG, scfg, _redraw)
    rep = good.report
    assert rep["bins_judged"] == 4 and rep["all_bins_pass"]
    assert rep["max_ks_over_floor"] < 2.0 and rep["sampling_acceptance_rate"] == 1.0
    assert sum(b["n_truth"] for b in rep["bins"]) == 3000
    assert good.generated.shape == (4 * 3000,)
    shifted = KLMTimingModel(flow, dataclasses.replace(PREP, time_mean=13.2))  # +0.3 sigma
    bad = validate(shifted, test_table, VCFG, scfg, _redraw).report
    assert bad["bins_passed"] == 0 and all(b["ks_over_floor"] > 2 for b in bad["bins"])
    paths = plot_validation(good, tmp_path)
    assert [p.name for p in paths] == ["overall.png", "bins.png", "summary.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_half_split_floor_matches_the_redraw_floor():
    rng = np.random.default_rng(1)
    truth = rng.normal(12.0, 4.0, 4000)
    ctx = np.zeros((4000, 4))
    a = _floor(truth, ctx, rng, repeats=100, redraw=_redraw)
    b = _floor(truth, ctx, rng, repeats=100, redraw=None)
    assert a["method"] == "redraw" and b["method"] == "half-split/sqrt2"
    assert b["ks"] == pytest.approx(a["ks"], rel=0.1)
    assert b["w1"] == pytest.approx(a["w1"], rel=0.1)
