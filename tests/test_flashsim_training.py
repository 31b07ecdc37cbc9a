"""FlashSim training (loss decrease, checkpoint/resume identical), generation, validation,
and the scripts end to end (including a one-line error on bad input)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit.errors import UserError
from ffjord_kit.flashsim.config import config_from_dict
from ffjord_kit.flashsim.generation import generate_targets, write_generated
from ffjord_kit.flashsim.schemas import JETS
from ffjord_kit.flashsim.synthetic import make_synthetic_dataset
from ffjord_kit.flashsim.training import cosine_lr, load_trained, train_flashsim
from ffjord_kit.flashsim.validation import validate

REPO = Path(__file__).resolve().parent.parent
TINY = {"kind": "jets",
        "flow": {"num_flow_steps": 2, "hidden": 16, "num_blocks": 1, "num_bins": 8,
                 "tail_bound": 3.0},
        "training": {"epochs": 2, "batch_size": 256, "lr": 3e-3, "chunk_rows": 512,
                     "shuffle_chunks": 2, "val_rows": 1000, "fit_rows": 3000}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs")
    return make_synthetic_dataset("jets", 3000, 2, d / "data", n_val=1000, n_test=1500, seed=3)


def test_cosine_schedule():
    assert cosine_lr(0, 10, 1e-3) == pytest.approx(1e-3)
    assert cosine_lr(5, 10, 1e-3) == pytest.approx(5e-4)
    assert cosine_lr(10, 10, 1e-3, 1e-5) == pytest.approx(1e-5)


def test_train_resume_identical_generate_validate(data, tmp_path):
    tf.config.experimental.enable_op_determinism()
    cfg = config_from_dict(TINY)
    kw = dict(progress=False, log=lambda s: None)
    full = train_flashsim(cfg, data["train"], data["val"], tmp_path / "full", **kw)
    hist = full["history"]
    assert len(hist) == 2 and hist[1]["val_nll"] < hist[0]["val_nll"] < 24.0
    # 1 epoch, then resume for the second: identical weights and history to the straight run.
    one = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=1))
    train_flashsim(one, data["train"], data["val"], tmp_path / "split", **kw)
    with pytest.raises(UserError, match="--resume"):
        train_flashsim(cfg, data["train"], data["val"], tmp_path / "split", **kw)
    resumed = train_flashsim(cfg, data["train"], data["val"], tmp_path / "split", resume=True,
                             **kw)
    np.testing.assert_allclose(resumed["history"][1]["val_nll"], hist[1]["val_nll"], rtol=1e-6)
    flow_a, tr = load_trained(tmp_path / "full", JETS)
    flow_b, _ = load_trained(tmp_path / "split", JETS)
    # Multi-threaded CPU reductions are not bitwise reproducible between runs (seen: 2e-5);
    # a wrong resume (lost optimizer state, replayed batches) moves weights by ~lr = 3e-3.
    for a, b in zip(flow_a.variables, flow_b.variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)

    # Generation with upsampling: draws adjacent per gen object, physical units, integers exact.
    with h5py.File(data["test"][0], "r") as f:
        rows = f["data"][:]
    gen = rows[:500, :14]
    targets, idx, rate = generate_targets(flow_a, tr, gen, upsample=3, batch_size=400, seed=1)
    assert targets.shape == (1500, 17) and rate > 0 and np.all(idx[:6] == [0, 0, 0, 1, 1, 1])
    assert np.all(np.isfinite(targets))
    nconst = targets[:, JETS.target_index("Jet_nConstituents")]
    assert np.all(nconst == np.round(nconst))
    assert np.all((targets[:, 12] >= 0) & (targets[:, 12] <= 3))  # pt ratio clip
    out = write_generated(tmp_path / "gen.h5", gen, targets, idx, tr)
    with h5py.File(out, "r") as f:
        pt = f["reco/Jet_pt"][:]
        np.testing.assert_allclose(pt, targets[:, 12] * gen[idx, 11], rtol=1e-5)
        assert f["data"].shape == (1500, 31)

    report = validate(JETS, rows[500:1500], np.concatenate([gen, targets[::3]], 1),
                      tmp_path / "val")
    assert report["n_variables"] == 17 and len(report["w1"]) == 17
    assert all(t["floor_w1"] > 0 for t in report["w1"])
    assert set(report["btag_roc"]["reference"]) >= {"Jet_btagDeepFlavB_b_vs_light"}
    for fig in ("histograms.png", "contours.png", "pt_profile.png", "btag_roc.png"):
        assert (tmp_path / "val" / fig).stat().st_size > 1000
    assert json.loads((tmp_path / "val" / "report.json").read_text())["kind"] == "jets"


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_scripts_end_to_end_and_bad_input(tmp_path):
    r = _run("scripts/make_flashsim_data.py", "--kind", "jets", "--n", "2000", "--files", "2",
             "--n-val", "500", "--n-test", "600", "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    r = _run("scripts/train_flashsim.py", "--kind", "jets", "--quick", "--no-progress",
             "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "val NLL" in r.stdout and (tmp_path / "run" / "model" / "flow.json").is_file()
    r = _run("scripts/generate_flashsim.py", "--kind", "jets", "--model", str(tmp_path / "run"),
             "--input", str(tmp_path / "d" / "test.h5"), "--out", str(tmp_path / "g.h5"),
             "--upsample", "2")
    assert r.returncode == 0, r.stderr
    assert "objects/s" in r.stdout
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["data"].shape == (1200, 31)
    # Bad input: a missing file in a list, a wrong kind -> one line, exit 2, nothing written.
    r = _run("scripts/train_flashsim.py", "--kind", "jets", "--quick", "--train",
             str(tmp_path / "d" / "train_000.h5"), str(tmp_path / "nope.h5"), "--val",
             str(tmp_path / "d" / "val.h5"), "--out", str(tmp_path / "run2"))
    # (TensorFlow's own C++ start-up lines may precede it on stderr.)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "nope.h5 does not exist" in errors[0]
    assert "Traceback" not in r.stderr and not (tmp_path / "run2" / "model").exists()
