"""FlashSim on the one Trainer (experiments/flashsim.py): loss decrease, a streaming run killed
with SIGKILL mid-epoch and resumed equals an uninterrupted run; generation, validation, and the
scripts end to end (a missing data folder: tests/test_train_parallel_cli.py)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.errors import UserError
from ffjord_kit.experiments.runner import RunOptions, run_experiment
from ffjord_kit.flashsim.generation import generate_targets, write_generated
from ffjord_kit.flashsim.schemas import JETS
from ffjord_kit.flashsim.synthetic import make_synthetic_dataset
from ffjord_kit.flashsim.training import load_trained
from ffjord_kit.flashsim.validation import validate
from ffjord_kit.training import Trainer

REPO = Path(__file__).resolve().parent.parent
# 3000 rows over 2 files, batch 256: 11 streaming steps per epoch, a checkpoint every 4 steps.
TINY = {"kind": "jets",
        "flow": {"num_flow_steps": 2, "hidden": 16, "num_blocks": 1, "num_bins": 8,
                 "tail_bound": 3.0},
        "training": {"epochs": 2, "batch_size": 256, "lr": 3e-3, "chunk_rows": 512,
                     "shuffle_chunks": 2, "val_rows": 1000, "fit_rows": 3000,
                     "checkpoint_every_steps": 4}}
KILL_AT_STEP = 17  # epoch 2, step 6: the newest checkpoint is epoch 2, step 4


def _train(config: Path, data: Path, run_dir: Path, load: bool = False) -> None:
    run_experiment(RunOptions(model_name="jets", config=str(config), data_folder=str(data),
                              run_dir=str(run_dir), load=load, progress=False),
                   SingleProcess(), log=lambda s: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs")
    paths = make_synthetic_dataset("jets", 3000, 2, d / "data", n_val=1000, n_test=1500, seed=3)
    (d / "tiny.json").write_text(json.dumps(TINY))
    return {**paths, "folder": d / "data", "config": d / "tiny.json"}


def test_streaming_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(data, tmp_path):
    tf.config.experimental.enable_op_determinism()
    _train(data["config"], data["folder"], tmp_path / "full")
    hist = json.loads((tmp_path / "full" / "history.json").read_text())
    assert hist["epoch"] == [1, 2] and hist["val_nll"][1] < hist["val_nll"][0] < 24.0
    # The same run in a child process that SIGKILLs itself in the middle of epoch 2.
    proc = subprocess.run([sys.executable, __file__, str(data["config"]), str(data["folder"]),
                           str(tmp_path / "split")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((tmp_path / "split" / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 4)
    with pytest.raises(UserError, match="already holds a checkpoint"):
        _train(data["config"], data["folder"], tmp_path / "split")
    # A stale lock is left by the killed child; resuming takes it over.
    assert (tmp_path / "split" / ".lock").is_file()
    _train(data["config"], data["folder"], tmp_path / "split", load=True)
    resumed = json.loads((tmp_path / "split" / "history.json").read_text())
    np.testing.assert_allclose(resumed["val_nll"], hist["val_nll"], rtol=1e-5)
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
    assert "val_nll" in r.stdout and (tmp_path / "run" / "model" / "flow.json").is_file()
    r = _run("scripts/generate_flashsim.py", "--kind", "jets", "--model", str(tmp_path / "run"),
             "--input", str(tmp_path / "d" / "test.h5"), "--out", str(tmp_path / "g.h5"),
             "--upsample", "2")
    assert r.returncode == 0, r.stderr
    assert "objects/s" in r.stdout
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["data"].shape == (1200, 31)


if __name__ == "__main__":
    # Child of the SIGKILL test: train with a step that kills this process at KILL_AT_STEP.
    build = Trainer._build_loss_and_grad

    def killing(self, objective):
        inner, count = build(self, objective), [0]

        def loss_and_grad(x, c=None):
            count[0] += 1
            if count[0] == KILL_AT_STEP:
                os.kill(os.getpid(), signal.SIGKILL)
            return inner(x, c)

        return loss_and_grad

    Trainer._build_loss_and_grad = killing
    _train(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
