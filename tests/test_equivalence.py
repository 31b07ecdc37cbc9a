"""Averaged gradients: K steps on 2 ranks with B/2 rows each == K steps on 1 rank with B rows,
for every flow family (continuous, spline coupling, autoregressive spline) and for the
continuous flow trained by flow matching (its base draws and times follow the global rows).

Deterministic data order (step k uses rows k*B .. k*B+B-1, rank r every 2nd of them), exact
trace, fixed-step RK4, no dropout, plain SGD. Two controls show the comparison can fail:
summing the ranks' gradients (= doubling the learning rate) and ignoring the other rank
(training on one shard) both land far from the single-rank weights.
"""

import pytest
from dist_helpers import (
    LR,
    SECOND_JOB_FAMILIES,
    describe,
    load_weights,
    max_rel_diff,
    reference_weights,
    result_json,
    settings,
    two_rank_run,
)

from ffjord_kit.distributed import SingleProcess, horovod_available
from ffjord_kit.distributed.check import run_check

TOLERANCE = 1e-5


class _OneShardOnly(SingleProcess):
    """Rank 0 of 2 that never talks to rank 1: what ignoring the other rank's gradients is."""

    rank, size = 0, 2


FAMILIES = ["continuous", "spline_coupling", "autoregressive_spline", "flow_matching"]


@pytest.mark.parametrize("family", FAMILIES)
def test_controls_summed_or_ignored_gradients_differ(family, tmp_path):
    reference = reference_weights(tmp_path / "reference", family=family)
    run_check(SingleProcess(), settings(lr=2 * LR, family=family), out=tmp_path / "summed",
              log=lambda m: None)
    run_check(_OneShardOnly(), settings(family=family), out=tmp_path / "ignored",
              log=lambda m: None)
    assert max_rel_diff(reference, load_weights(tmp_path / "summed")) > 100 * TOLERANCE
    assert max_rel_diff(reference, load_weights(tmp_path / "ignored")) > 100 * TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("backend", ["tf", "horovod"])
def test_two_ranks_half_batch_equal_one_rank_full_batch(backend, family, tmp_path_factory):
    if backend == "horovod" and not horovod_available():
        pytest.skip("horovod is not importable; build it with `make horovod`")
    reference = reference_weights(tmp_path_factory.mktemp("reference"), family=family)
    if family == "continuous":  # the run the other distributed tests share
        results, out = two_rank_run(backend, tmp_path_factory.mktemp(f"two_{backend}"))
    else:  # the other families in one 2-rank job: one start-up
        results, out = two_rank_run(backend, tmp_path_factory.mktemp(f"two_{backend}_more"),
                                    SECOND_JOB_FAMILIES)
        out = out / family
    assert all(r.returncode == 0 for r in results), describe(results)
    result = result_json(out)
    assert result["ranks"] == 2 and result["backend"] == backend
    assert result["family"] == family and result["rank_weight_spread"] == 0.0
    assert max_rel_diff(reference, load_weights(out)) < TOLERANCE
