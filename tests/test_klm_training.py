"""KLM training: validation NLL falls, best model saved, exact mid-epoch resume, NaN steps
skipped and counted, divergence reported."""

import dataclasses

import numpy as np
import pytest

from ffjord_kit.errors import ConfigError, TrainingDiverged
from ffjord_kit.flows.autoregressive_spline import AutoregressiveSplineConfig
from ffjord_kit.klm.config import TrainingConfig
from ffjord_kit.klm.model import KLMTimingModel
from ffjord_kit.klm.preprocessing import KLMPreprocessing
from ffjord_kit.klm.schema import KLMTable
from ffjord_kit.klm.split import split_table
from ffjord_kit.klm.synthetic import generate_table
from ffjord_kit.klm.training import KLMTrainer

MODEL = AutoregressiveSplineConfig(num_layers=2, hidden_units=16, hidden_layers=2, num_bins=6)
TRAIN = TrainingConfig(learning_rate=3e-3, batch_size=128, epochs=2, checkpoint_every_steps=5)
FP = {"test": 1}


@pytest.fixture(scope="module")
def splits():
    return split_table(generate_table(3000, seed=2), seed=0)


def _trainer(splits, cfg=TRAIN):
    model = KLMTimingModel.create(MODEL, KLMPreprocessing.fit(splits["train"]))
    return KLMTrainer(model, cfg)


@pytest.fixture(scope="module")
def full_run(splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    trainer = _trainer(splits)
    initial = trainer.mean_nll(splits["val"])
    state = trainer.fit(splits["train"], splits["val"], out, FP, log=lambda s: None)
    return trainer, state, initial, out


@pytest.fixture(scope="module")
def second_trainer(splits):
    """A second trainer (one more graph trace), shared by the resume and NaN tests."""
    return _trainer(splits)


def test_validation_nll_falls_and_best_model_is_saved(full_run, splits):
    trainer, state, initial, out = full_run
    assert state.epoch == 2 and state.nan_steps == 0 and len(state.history) == 2
    val = [h["val_nll"] for h in state.history]
    assert val[-1] < initial - 0.3  # the untrained flow is a Gaussian in standardised time
    best = KLMTimingModel.load(out / "model")
    assert best.prep == trainer.model.prep
    assert -np.mean(best.log_prob(splits["val"].time, splits["val"].context)) == \
        pytest.approx(min(val), abs=1e-5)


def test_mid_epoch_resume_reproduces_the_uninterrupted_run(full_run, second_trainer, splits,
                                                          tmp_path):
    reference, ref_state, _, _ = full_run
    first = second_trainer
    part = first.fit(splits["train"], splits["val"], tmp_path, FP, log=lambda s: None,
                     stop_after_steps=23)  # stops inside epoch 2 (18 batches per epoch)
    assert part.epoch == 1 and part.batch == 5
    # Scramble the in-memory weights: everything must come back from the checkpoint folder.
    for v in first.model.flow.trainable_variables:
        v.assign(np.random.default_rng(0).normal(size=v.shape).astype(np.float32))
    second = first
    state = second.fit(splits["train"], splits["val"], tmp_path, FP, log=lambda s: None)
    assert state.step == ref_state.step and state.epoch == 2
    for v_ref, v in zip(reference.model.flow.weight_variables(),
                        second.model.flow.weight_variables(), strict=True):
        np.testing.assert_allclose(v.numpy(), v_ref.numpy(), rtol=0, atol=1e-6, err_msg=v.name)
    assert [h["val_nll"] for h in state.history] == pytest.approx(
        [h["val_nll"] for h in ref_state.history], abs=1e-6)
    with pytest.raises(ConfigError, match="different model/data/training setup"):
        second.fit(splits["train"], splits["val"], tmp_path, {"test": 2}, log=lambda s: None)


def test_nan_batches_are_skipped_and_counted_then_divergence_is_reported(second_trainer, splits,
                                                                        tmp_path):
    train = splits["train"]
    time = train.time.copy()
    time[:3] = np.nan  # rows, not batches: count the shuffled batches that contain them
    bad = KLMTable(train.context, time)
    cfg = dataclasses.replace(TRAIN, epochs=1, checkpoint_every_steps=1000)
    trainer = second_trainer  # its weights are irrelevant here; only the counting matters
    trainer.config = cfg
    state = trainer.fit(bad, splits["val"], tmp_path / "a", FP, log=lambda s: None)
    perm = np.random.default_rng([cfg.seed, 0]).permutation(len(train))
    n_batches = len(train) // cfg.batch_size
    batch_of_row = np.empty(len(train), int)
    batch_of_row[perm] = np.arange(len(train)) // cfg.batch_size
    expected = len({b for b in batch_of_row[:3] if b < n_batches})
    assert expected >= 1 and state.nan_steps == expected
    assert all(np.isfinite(v.numpy()).all() for v in trainer.model.flow.weight_variables())
    trainer.config = dataclasses.replace(cfg, max_nan_steps=3)
    all_nan = KLMTable(train.context, np.full(len(train), np.nan))
    with pytest.raises(TrainingDiverged, match="consecutive steps had a NaN"):
        trainer.fit(all_nan, splits["val"], tmp_path / "b", FP, log=lambda s: None)
