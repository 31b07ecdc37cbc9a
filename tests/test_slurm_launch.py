"""The SLURM launch logic: environment parsing, backend choice, and the sbatch script's task
command run as 2 simulated srun tasks on this machine."""

import json
import os
import subprocess
import sys

import pytest
from dist_helpers import ENV, ROOT, describe

from ffjord_kit.distributed import launch
from ffjord_kit.distributed.launch import (
    DistributedError,
    choose_backend,
    expand_hostlist,
    expand_tasks_per_node,
    slurm_launch,
    tf_config_launch,
)
from ffjord_kit.distributed.local_launch import launch_local, worker_env

# A 2-rank training plus its resumption takes minutes on 2 shared cores: opt-in (CI sets it).
slow = pytest.mark.skipif(os.environ.get("FFJORD_KIT_SLOW_TESTS") != "1",
                          reason="2-rank train + resume runs take minutes; set "
                                 "FFJORD_KIT_SLOW_TESTS=1 to run them")

PERLMUTTER = {"SLURM_STEP_NUM_TASKS": "16", "SLURM_STEP_NODELIST": "nid[001000-001002,001007]",
              "SLURM_STEP_TASKS_PER_NODE": "4(x4)"}


def test_hostlist_and_tasks_per_node():
    assert expand_hostlist("nid[001000-001002,001007]") == [
        "nid001000", "nid001001", "nid001002", "nid001007"]
    assert expand_hostlist("a1,b[08-10]x,c") == ["a1", "b08x", "b09x", "b10x", "c"]
    assert expand_tasks_per_node("4(x3),2") == [4, 4, 4, 2]
    with pytest.raises(DistributedError):
        expand_tasks_per_node("4(x")


def test_rank_local_rank_and_host_of_a_16_gpu_step():
    env = dict(PERLMUTTER, SLURM_PROCID="13", SLURM_LOCALID="1", SLURMD_NODENAME="nid001007")
    info = slurm_launch(env)
    assert (info.rank, info.size, info.local_rank, info.local_size) == (13, 16, 1, 4)
    assert info.host == "nid001007" and info.node_index == 3 and info.tf_port(8888) == 8889
    assert slurm_launch({"SLURM_JOB_ID": "1", "SLURM_PROCID": "0"}) is None  # batch shell


@pytest.mark.parametrize("change, message", [
    ({"SLURM_STEP_NUM_TASKS": "15"}, "mismatched world size"),
    ({"SLURM_PROCID": "12"}, "not block-distributed"),
    ({"SLURMD_NODENAME": "login01"}, "not in the step's node list"),
])
def test_inconsistent_slurm_layouts_are_refused(change, message):
    env = dict(PERLMUTTER, SLURM_PROCID="13", SLURM_LOCALID="1", SLURMD_NODENAME="nid001007")
    env.update(change)
    with pytest.raises(DistributedError, match=message):
        slurm_launch(env)


def test_tf_config_parsing():
    cfg = {"cluster": {"worker": ["a:1000", "a:1001", "b:1000"]},
           "task": {"type": "worker", "index": 1}}
    info = tf_config_launch({"TF_CONFIG": json.dumps(cfg)})
    assert (info.rank, info.size, info.local_rank, info.local_size, info.port) == (1, 3, 1, 2,
                                                                                  1001)
    with pytest.raises(DistributedError, match="TF_CONFIG must be JSON"):
        tf_config_launch({"TF_CONFIG": "{"})


def test_backend_choice(monkeypatch):
    srun2 = worker_env(2, 0, "slurm", [9000], base={})
    monkeypatch.setattr(launch, "horovod_available", lambda: False)
    assert choose_backend("auto", srun2) == "tf"
    assert choose_backend("auto", {}) == "none"
    with pytest.raises(DistributedError, match="make horovod"):
        choose_backend("horovod", srun2)
    monkeypatch.setattr(launch, "horovod_available", lambda: True)
    assert choose_backend("auto", srun2) == "horovod"
    assert choose_backend("auto", worker_env(2, 0, "tf_config", [1, 2], base={})) == "tf"
    with pytest.raises(DistributedError, match="unknown backend"):
        choose_backend("mpi", {})


def _task_command(out, backend: str, extra: str = "", model: str = "moon",
                  data: str = "") -> list[str]:
    """The argv slurm/launch_env.sh builds for each srun task."""
    script = (f"source {ROOT}/slurm/launch_env.sh && FFJORD_PYTHON={sys.executable} "
              "ffjord_task_command")
    env = {"PATH": "/usr/bin:/bin", "FFJORD_BACKEND": backend, "FFJORD_MODEL": model,
           "FFJORD_OUT": str(out), "FFJORD_EXTRA_ARGS": extra, "FFJORD_DATA": data}
    res = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                         check=True)
    return res.stdout.splitlines()


def test_sbatch_task_command_adds_load_once_a_checkpoint_exists(tmp_path):
    argv = _task_command(tmp_path, "tf", "--quick --epochs 3")
    assert argv[1].endswith("scripts/train_parallel.py")
    assert argv[2:] == ["--model_name", "moon", "--backend", "tf", "--out", str(tmp_path),
                        "--quick", "--epochs", "3"]
    (tmp_path / "moon_tag" / "checkpoint").mkdir(parents=True)
    (tmp_path / "moon_tag" / "checkpoint" / "state.json").write_text("{}")
    assert "--load" in _task_command(tmp_path, "tf")


def test_each_simulated_srun_task_sees_its_rank_and_ports():
    results = launch_local(2, [sys.executable,
                               str(ROOT / "scripts/describe_launch.py"), "--backend", "tf"],
                           mode="slurm", extra_env=ENV, timeout_s=120)
    assert [r.returncode for r in results] == [0, 0], describe(results)
    views = [json.loads(r.stdout.strip().splitlines()[-1]) for r in results]
    assert [(v["rank"], v["local_rank"], v["size"], v["host"]) for v in views] == [
        (0, 0, 2, "localhost"), (1, 1, 2, "localhost")]
    ports = [int(v["tf_address"].rsplit(":", 1)[1]) for v in views]
    assert ports[1] == ports[0] + 1 and all(v["backend"] == "tf" for v in views)


def train_and_resume(tmp_path, backend: str, model: str = "moon") -> None:
    """The sbatch task command as 2 simulated srun tasks: one epoch, then (as after a time-limit
    stop and resubmission) the same command again, which adds --load and goes on to epoch 2.
    For jets: the streaming FlashSim reader and batch-norm conditioners, whose statistics TF's
    engine keeps as synchronised variables (every rank must take part in each save)."""
    data = ""
    if model == "jets":
        from ffjord_kit.flashsim.synthetic import make_synthetic_dataset

        make_synthetic_dataset("jets", 4096, 2, tmp_path / "data", n_val=1024, n_test=10,
                               seed=1)
        data = str(tmp_path / "data")
    out = tmp_path / "out"
    extra = "--quick --no_progress --epochs {}"
    first = launch_local(2, _task_command(out, backend, extra.format(1), model, data),
                         mode="slurm", extra_env=ENV, timeout_s=900)
    assert [r.returncode for r in first] == [0, 0], describe(first)
    history1 = json.loads(next(out.glob("*/history.json")).read_text())
    argv = _task_command(out, backend, extra.format(2), model, data)
    assert "--load" in argv
    second = launch_local(2, argv, mode="slurm", extra_env=ENV, timeout_s=900)
    assert [r.returncode for r in second] == [0, 0], describe(second)
    history2 = json.loads(next(out.glob("*/history.json")).read_text())
    assert len(history1["val_nll"]) == 1 and len(history2["val_nll"]) == 2
    assert history2["val_nll"][0] == history1["val_nll"][0]  # epoch 1 kept, not retrained
    assert f"backend {backend} with 2 rank(s)" in second[0].stdout


@slow
def test_simulated_srun_trains_flashsim_and_resumes_with_tf(tmp_path):
    train_and_resume(tmp_path, "tf", model="jets")


FAKE_SRUN = """#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
exec "$@"
"""
FAKE_SBATCH = """#!/bin/bash
echo "$*" >> "$(dirname "$0")/sbatch_calls"
"""
# Stands in for train_parallel.py: trains until SIGTERM, then checkpoints and exits 0.
FAKE_TRAINER = """import pathlib, signal, sys, time
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
def stop(*_):
    (out / "tag" / "checkpoint").mkdir(parents=True, exist_ok=True)
    (out / "tag" / "checkpoint" / "state.json").write_text("{}")
    print("checkpointed", " ".join(args), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("training", " ".join(args), flush=True)
time.sleep(120)
"""


def test_sbatch_time_limit_checkpoints_and_resubmits(tmp_path):
    """USR1 (SLURM's --signal) -> SIGTERM to the ranks -> checkpoint -> sbatch again, and the
    resubmitted job's command resumes with --load (srun and sbatch replaced by stand-ins)."""
    import signal
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("sbatch", FAKE_SBATCH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "trainer.py").write_text(FAKE_TRAINER)
    out = tmp_path / "out"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "1",
           "SLURM_JOB_NODELIST": "nid001000", "SLURM_SUBMIT_DIR": str(ROOT),
           "FFJORD_SCRIPT": str(tmp_path / "trainer.py"), "FFJORD_OUT": str(out),
           "FFJORD_PYTHON": sys.executable, "FFJORD_VENV": str(tmp_path / "no_venv")}
    job = subprocess.Popen(["bash", str(ROOT / "slurm/perlmutter_16gpu.sbatch")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "logs" / "job-7.log"
    deadline = time.monotonic() + 60
    while "training" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and job.poll() is None, job.communicate()[0]
        time.sleep(0.2)
    job.send_signal(signal.SIGUSR1)
    stdout = job.communicate(timeout=60)[0]
    assert job.returncode == 0, stdout
    assert "checkpointed --model_name calorimeter --backend tf" in log.read_text()
    calls = (bin_dir / "sbatch_calls").read_text().splitlines()
    assert len(calls) == 1 and "FFJORD_RESUBMIT_COUNT=1" in calls[0]
    assert calls[0].endswith("slurm/perlmutter_16gpu.sbatch")
    env_next = {**env, "FFJORD_RESUBMIT_COUNT": "1"}
    script = "source slurm/launch_env.sh && ffjord_task_command"
    argv = subprocess.run(["bash", "-c", script], env=env_next, cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.split()
    assert argv[-1] == "--load"
