"""scripts/toy_conditional.py end to end (--quick) and its one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "toy_conditional.py"


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_quick_run_writes_answers_plots_and_models(tmp_path):
    out = tmp_path / "run"
    proc = _run("--quick", "--out", str(out), "--seed", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((out / "answers.json").read_text())
    for name in ("discrete_samples.png", "discrete_base_space.png", "continuous_samples.png",
                 "likelihood_curves.png", "fitted_vs_true.png", "joint_likelihood.png",
                 "training_nll.png"):
        assert (out / name).stat().st_size > 1000 and name in a["plots"]
    cls = a["discrete"]["classification"]
    assert 0.0 <= cls["accuracy"] <= 1.0 and cls["bayes_optimal_accuracy"] > 0.9999
    pe = a["continuous"]["per_event_fits"]
    assert pe["n"] == 40 and np.isfinite(pe["rms"]) and 0 <= pe["coverage_delta_2lnL_1"] <= 1
    # the optimiser itself is exact on the closed-form likelihood, even in a smoke run
    assert a["continuous"]["optimiser_on_analytic_likelihood"]["max_abs_error_vs_mean_x"] < 1e-4
    jf = a["continuous"]["joint_fit"]
    assert a["settings"]["c_low"] <= jf["fitted_c"] <= a["settings"]["c_high"]
    assert set(a["acceptance"]) >= {"discrete_accuracy_within_1_point_of_bayes",
                                    "coverage_68_in_range", "joint_fit_within_3_standard_errors"}
    assert (out / "continuous_model" / "flow.json").is_file()
    assert "acceptance:" in proc.stdout


def test_unwritable_output_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = _run("--quick", "--out", str(blocker / "sub"), timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "Traceback" not in proc.stderr
