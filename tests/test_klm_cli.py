"""End-to-end KLM scripts via subprocess: synthetic HDF5 file -> train_klm --quick ->
reports and figures; bad input gives one error line and exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}


def _run(*args, check=True):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_quick_training_from_a_user_file_writes_reports(tmp_path):
    data = tmp_path / "photons.h5"
    _run("scripts/make_klm_data.py", "--out", data, "--rows", 12000, "--seed", 4)
    out = tmp_path / "run"
    proc = _run("scripts/train_klm.py", "--quick", "--data", data, "--out", out)
    assert "bins passing KS" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_source"] == str(data) and "train 9,600" in proc.stdout
    assert metrics["epochs"] == 1 and 0 <= metrics["bins_passed"] <= metrics["bins_judged"]
    val = json.loads((out / "validation.json").read_text())
    assert len(val["bins"]) == 12 and 0.9 < val["sampling_acceptance_rate"] <= 1.0
    assert all(np.isfinite(b["ks"]) for b in val["bins"])
    for name in ("overall.png", "bins.png", "summary.png", "model/flow.json",
                 "checkpoint/state.json", "history.json", "config.json"):
        assert (out / name).is_file(), name


def test_missing_column_is_one_line_and_exit_2(tmp_path):
    np.savez(tmp_path / "bad.npz", hit_z=np.zeros(50), theta=np.ones(50))
    proc = _run("scripts/validate_klm.py", "--data", tmp_path / "bad.npz", "--config",
                "configs/klm_cpu.json", "--model", tmp_path / "none", "--out", tmp_path / "v",
                check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "missing column(s)" in lines[-1]
    assert "mu_hit_time" in lines[-1] and "Traceback" not in proc.stderr
