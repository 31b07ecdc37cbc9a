"""train_parallel.py end to end: one --quick run per model_name (subprocess), and bad input
(one line, exit code 2, nothing overwritten)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_parallel.py"


def run(*args, script=SCRIPT, timeout=420):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def one_error_line(stderr: str) -> str:
    """The single 'error: ...' line (TensorFlow's own start-up log lines aside)."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


def check_run(out: Path, model: str) -> dict:
    run_dir = out / model
    for name in ("config.json", "history.json", "loss_curve.png", "metrics.json",
                 "samples.npz", "model/flow.json", "checkpoint/state.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == 1 and np.isfinite(history["val_nll"]).all()
    return json.loads((run_dir / "metrics.json").read_text())


def test_moon_quick_then_resume_and_refusals(tmp_path):
    proc = run("--model_name", "moon", "--quick", "--epochs", "1", "--out", tmp_path,
               "--no_progress", script=ROOT / "scripts" / "toy_parallel.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_run(tmp_path, "moon")
    assert np.isfinite(metrics["test_nll_nats"]) and metrics["true_nll_nats"] < 0.6
    assert (tmp_path / "moon" / "samples.png").is_file()
    before = (tmp_path / "moon" / "metrics.json").read_bytes()
    # A second run into the same folder is refused (nothing overwritten) ...
    proc = run("--model_name", "moon", "--quick", "--epochs", "1", "--out", tmp_path)
    assert proc.returncode == 2 and "--load" in one_error_line(proc.stderr)
    assert (tmp_path / "moon" / "metrics.json").read_bytes() == before


def test_digits_quick(tmp_path):
    proc = run("--model_name", "digits", "--quick", "--epochs", "1", "--out", tmp_path,
               "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_run(tmp_path, "digits")
    assert metrics["levels"] == 17 and np.isfinite(metrics["test_bits_per_dim"])
    assert (tmp_path / "digits" / "samples_digit_3.png").is_file()
    grid = np.load(tmp_path / "digits" / "samples.npz")["digit_3"]
    assert grid.shape == (9, 8, 8) and grid.min() >= 0 and grid.max() <= 16


def test_mnist_quick_from_idx_files(tmp_path):
    from ffjord_kit.images.mnist import IDX_FILES, write_idx

    rng = np.random.default_rng(0)
    data_dir = tmp_path / "mnist"
    sizes = {"x_train": (40, 28, 28), "y_train": (40,), "x_test": (8, 28, 28), "y_test": (8,)}
    for key, stem in IDX_FILES.items():
        high = 10 if key.startswith("y") else 256
        write_idx(data_dir / f"{stem}.gz", rng.integers(0, high, sizes[key]))
    proc = run("--model_name", "mnist", "--quick", "--epochs", "1", "--out", tmp_path,
               "--data_folder", data_dir, "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_run(tmp_path, "mnist")
    assert metrics["levels"] == 256 and metrics["test_events"] == 8
    # Missing files: one line naming the folder and the files to put there.
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("--model_name", "mnist", "--quick", "--data_folder", empty, "--out",
               tmp_path / "o2")
    assert proc.returncode == 2 and "train-images-idx3-ubyte" in one_error_line(proc.stderr)


def test_calorimeter_quick_from_calogan_file(tmp_path):
    from ffjord_kit.calorimeter.showers import write_calogan
    from ffjord_kit.calorimeter.synthetic import generate_showers

    write_calogan(tmp_path / "gamma.hdf5", generate_showers("gamma", 120, seed=1))
    # The tutorial passes the file itself as --data_folder.
    proc = run("--model_name", "calorimeter", "--quick", "--epochs", "1", "--out", tmp_path,
               "--data_folder", tmp_path / "gamma.hdf5", "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_run(tmp_path, "calorimeter")
    assert np.isfinite(metrics["test_nll_nats"])
    assert (tmp_path / "calorimeter" / "calorimeter_report" / "report.json").is_file()


def test_bad_input_is_one_line(tmp_path):
    proc = run("--model_name", "cifar")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: unknown model_name 'cifar'; choose one of moon, "
                                   "mnist, digits, calorimeter, jets, muons, klm")
    bad = tmp_path / "bad.json"
    bad.write_text("{'SHAPE': [2], 'BATCH': 'many'}")
    proc = run("--model_name", "moon", "--config", bad, "--out", tmp_path)
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and "'BATCH'" in line and str(bad) in line
    assert not (tmp_path / "moon").exists()


def test_help_explains_every_flag():
    proc = run("--help")
    assert proc.returncode == 0
    for flag in ("--model_name", "--config", "--data_folder", "--load", "--out", "--epochs",
                 "--seed", "--quick"):
        assert flag in proc.stdout


def test_missing_data_names_synthetic_and_synthetic_runs_end_to_end(tmp_path):
    """Without data every physics model says how to get the synthetic stand-in (in one line,
    writing nothing); with --synthetic it is written once and trained on. (KLM's synthetic
    path runs end to end in test_klm_cli; muons share the jets code.)"""
    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.errors import DataError
    from ffjord_kit.experiments.runner import RunOptions, resolve_config

    data = tmp_path / "data"
    for model in ("calorimeter", "jets", "muons", "klm", "mnist"):
        opts = RunOptions(model_name=model, data_folder=str(data), out=str(tmp_path), quick=True)
        with pytest.raises(DataError, match="--synthetic") as err:
            exp, config, _, _ = resolve_config(opts)
            exp.plan(config, opts, SingleProcess())
        assert "\n" not in str(err.value)
    assert not data.exists()
    proc = run("--model_name", "jets", "--quick", "--out", tmp_path, "--data_folder", data)
    # One line, exit 2; TensorFlow's start-up messages are not shown.
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and "--synthetic" in proc.stderr
    proc = run("--model_name", "jets", "--quick", "--synthetic", "--epochs", "1", "--out",
               tmp_path, "--data_folder", data, "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "jets" / "metrics.json").read_text())
    assert metrics["model_name"] == "jets" and np.isfinite(metrics["best_val_nll"])
    assert (tmp_path / "jets" / "model" / "flow.json").is_file()
    assert sorted(p.name for p in (data / "jets").iterdir()) == [
        "test.h5", "train_000.h5", "train_001.h5", "val.h5"]
