"""Two real TensorFlow workers (MultiWorkerMirroredStrategy, TF_CONFIG on loopback)."""

import json
import signal
import socket

from dist_helpers import CHECK, ENV, describe, result_json, run_workers, two_rank_run

from ffjord_kit.distributed.local_launch import launch_local, worker_env


def _steps(stdout: str) -> list[str]:
    return [line.split(" ", 2)[2] for line in stdout.splitlines() if line.startswith("rank ")]


def test_two_workers_train_in_step(tmp_path_factory):
    results, out = two_rank_run("tf", tmp_path_factory.mktemp("two_tf"))
    assert [r.returncode for r in results] == [0, 0], describe(results)
    # Same averaged loss on both ranks, every step; rank 0 alone reports and writes.
    assert _steps(results[0].stdout) == _steps(results[1].stdout)
    assert len(_steps(results[0].stdout)) == result_json(out)["steps"]
    assert "{" in results[0].stdout and "{" not in results[1].stdout
    assert result_json(out)["rank_weight_spread"] == 0.0


def test_dead_worker_ends_the_other_with_a_clear_error(tmp_path):
    killed = []

    def kill_rank1_at_step_2(rank, line, procs):
        if rank == 1 and line.startswith("rank 1 step 2") and not killed:
            procs[1].send_signal(signal.SIGKILL)
            killed.append(True)

    # A silent peer is caught by the watchdog after FFJORD_KIT_STEP_TIMEOUT; a closed
    # connection sooner.
    results = run_workers(2, "tf_config", tmp_path, backend="tf",
                          extra=["--steps", "100000"], timeout_s=300,
                          on_line=kill_rank1_at_step_2,
                          extra_env={"FFJORD_KIT_STEP_TIMEOUT": "20"})
    assert killed, describe(results)
    survivor = results[0]
    assert survivor.returncode not in (0, -9), describe(results)  # -9: our timeout killed it
    ours = [line for line in survivor.stderr.splitlines() if line.startswith("error: rank 0:")]
    assert len(ours) == 1 and "another rank" in ours[0], describe(results)


def _single_worker(tf_config: dict, tmp_path) -> tuple[int, str]:
    env = worker_env(1, 0, "none", [])
    env.update(ENV, TF_CONFIG=json.dumps(tf_config))
    res = launch_local(1, [*CHECK, "--backend", "tf", "--out", str(tmp_path)], mode="none",
                       extra_env=env, timeout_s=200)[0]
    return res.returncode, res.stderr.strip()


def test_port_in_use_is_one_line_error(tmp_path):
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        rc, err = _single_worker({"cluster": {"worker": [f"localhost:{port}", "localhost:1"]},
                                  "task": {"type": "worker", "index": 0}}, tmp_path)
    assert rc == 2
    assert err.splitlines()[-1].startswith(f"error: port {port} ")
    assert "in use" in err and "Traceback" not in err


def test_mismatched_world_size_is_one_line_error(tmp_path):
    rc, err = _single_worker({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                              "task": {"type": "worker", "index": 2}}, tmp_path)
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: mismatched world size")

