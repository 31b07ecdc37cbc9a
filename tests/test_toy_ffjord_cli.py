"""toy_ffjord.py end to end (--quick) and its bad-input handling."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "toy_ffjord.py"


# TensorFlow's C++ start-up lines (absl) reach stderr before any setting can silence them.
TF_NOISE = ("WARNING: All log messages", "I0000", "W0000", "E0000", "To enable")


def user_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.strip().splitlines() if ln and not ln.startswith(TF_NOISE)]


def run(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("objective", ["flow_matching", "max_likelihood"])
def test_quick_run_writes_answers_and_plots(tmp_path, objective):
    res = run("--objective", objective, "--quick", "--epochs", "2", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    answers = json.loads((tmp_path / "answers.json").read_text())
    assert answers["training"]["objective"] == objective
    assert answers["training"]["finetune_epochs"] == (1 if objective == "flow_matching" else 0)
    assert answers["nfe_per_sample_batch"] > 0
    q1 = answers["q1_log_prob_at_0_0.5"]
    assert abs(q1["true"] - (-0.636)) < 0.01 and q1["model"] < 0
    assert len(answers["q2_base_point_-0.1_0.6_lands_at"]["x"]) == 2
    assert len(answers["q3_inverse_of_moon_samples"]["ks_pvalue"]) == 2
    assert answers["kl_to_truth"] > 0
    for name in ["base_samples.png", "flow_samples.png", "density.png", "trajectories.png",
                 "loss.png"]:
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "model" / "flow.json").is_file()
    assert "Q1" in res.stdout and "KL to truth" in res.stdout


def test_bad_flags_and_unwritable_out(tmp_path):
    res = run("--epochs", "0")
    assert res.returncode == 2 and "must be >= 1" in res.stderr
    res = run("--objective", "max_likelihood", "--finetune_epochs", "3")
    assert res.returncode == 2 and "belong to --objective flow_matching" in res.stderr
    res = run("--epochs", "5", "--finetune_epochs", "9")
    assert res.returncode == 2 and "finetune_epochs must be in [0, epochs = 5]" in res.stderr
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    res = run("--quick", "--out", str(blocker / "sub"))
    assert res.returncode == 2
    lines = user_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: cannot create output folder"), lines
    assert "Traceback" not in res.stderr
    assert blocker.read_text() == "keep me"
