"""Two real Horovod ranks on loopback: `horovodrun -np 2 -H localhost:2 --gloo`, and plain
srun (simulated) with the Gloo rendezvous rank 0 serves. Needs Horovod (`make horovod`)."""

import re

import pytest
from dist_helpers import (
    describe,
    load_weights,
    max_rel_diff,
    result_json,
    run_workers,
    two_rank_run,
)
from test_slurm_launch import slow, train_and_resume

from ffjord_kit.distributed import horovod_available

pytestmark = pytest.mark.skipif(
    not horovod_available(),
    reason="horovod is not importable: build it with `make horovod` (scripts/build_horovod.sh)")


def _losses(stdout: str, rank: int) -> list[str]:
    # horovodrun prefixes each line with the rank ("[1]<stdout>:"); the check prints its own.
    return re.findall(rf"rank {rank} step \d+ loss (\S+)", stdout)


def test_horovodrun_two_ranks_average_and_agree(tmp_path_factory):
    results, out = two_rank_run("horovod", tmp_path_factory.mktemp("two_horovod"))
    assert results[0].returncode == 0, describe(results)
    result = result_json(out)
    assert result["backend"] == "horovod" and result["ranks"] == 2
    assert result["rank_weight_spread"] == 0.0
    text = results[0].stdout
    assert _losses(text, 0) == _losses(text, 1) and len(_losses(text, 0)) == result["steps"]


def test_srun_gloo_rendezvous_matches_horovodrun(tmp_path, tmp_path_factory):
    results = run_workers(2, "slurm", tmp_path, backend="horovod")
    assert [r.returncode for r in results] == [0, 0], describe(results)
    assert result_json(tmp_path)["ranks"] == 2
    _, out = two_rank_run("horovod", tmp_path_factory.mktemp("two_horovod"))
    assert max_rel_diff(load_weights(out), load_weights(tmp_path)) < 1e-6


@slow
def test_simulated_srun_trains_and_resumes_with_horovod(tmp_path):
    train_and_resume(tmp_path, "horovod")
