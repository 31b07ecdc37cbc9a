"""KLM on the one Trainer (experiments/klm.py): validation NLL falls, the best model is saved
with its preprocessing, a run stopped by SIGTERM mid-epoch resumes to the uninterrupted
result, and a run without data names --synthetic."""

import json
import os
import signal

import numpy as np
import pytest

from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.errors import DataError
from ffjord_kit.experiments.runner import RunOptions, run_experiment
from ffjord_kit.klm.model import KLMTimingModel
from ffjord_kit.klm.split import split_table
from ffjord_kit.klm.synthetic import generate_table
from ffjord_kit.training import Trainer

CONFIG = {
    "data": {"path": None, "synthetic_rows": 3000, "synthetic_seed": 2, "split_seed": 0},
    "model": {"num_layers": 2, "hidden_units": 16, "hidden_layers": 2, "num_bins": 6},
    "training": {"learning_rate": 3e-3, "batch_size": 128, "epochs": 2,
                 "checkpoint_every_steps": 5},
}
STEPS_PER_EPOCH = 2400 // 128  # 18


def _run(tmp_path, run_dir, load=False, trainer_cls=None, **kw):
    cfg = tmp_path / "klm.json"
    cfg.write_text(json.dumps(CONFIG))
    return run_experiment(RunOptions(model_name="klm", config=str(cfg), run_dir=str(run_dir),
                                     synthetic=True, load=load, progress=False, report=False,
                                     **kw), SingleProcess(), log=lambda s: None)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("klm_full")
    _run(out, out / "run")
    return out / "run"


def test_validation_nll_falls_and_best_model_is_saved(full_run):
    history = json.loads((full_run / "history.json").read_text())
    assert history["epoch"] == [1, 2] and history["val_nll"][1] < history["val_nll"][0]
    model = KLMTimingModel.load(full_run / "model")
    val = split_table(generate_table(3000, seed=2), seed=0)["val"]
    # The trainer's validation NLL is in the flow's standardised time; the model's log p is
    # per ns: they differ by the preprocessing's log-Jacobian, nothing else.
    nll_per_ns = -np.mean(model.log_prob(val.time, val.context))
    assert nll_per_ns + model.prep.log_abs_det_time == pytest.approx(
        min(history["val_nll"]), abs=1e-4)


class _TermAt(Trainer):
    at = STEPS_PER_EPOCH + 7  # epoch 2, step 7: the newest checkpoint is from SIGTERM itself

    def _build_loss_and_grad(self, objective):
        inner, count = super()._build_loss_and_grad(objective), [0]

        def loss_and_grad(x, c=None):
            count[0] += 1
            if count[0] == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            return inner(x, c)

        return loss_and_grad


def test_sigterm_mid_epoch_then_resume_matches_the_uninterrupted_run(full_run, tmp_path,
                                                                     monkeypatch):
    import ffjord_kit.experiments.runner as runner

    monkeypatch.setattr(runner, "Trainer", _TermAt)
    _run(tmp_path, tmp_path / "run")
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 7)
    monkeypatch.setattr(runner, "Trainer", Trainer)
    _run(tmp_path, tmp_path / "run", load=True)
    a, b = KLMTimingModel.load(full_run / "model"), KLMTimingModel.load(tmp_path / "run" / "model")
    for x, y in zip(a.flow.weight_variables(), b.flow.weight_variables(), strict=True):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=0, atol=1e-6)


def test_no_data_names_the_synthetic_option(tmp_path):
    cfg = tmp_path / "klm.json"
    cfg.write_text(json.dumps(CONFIG))
    with pytest.raises(DataError, match="--synthetic"):
        run_experiment(RunOptions(model_name="klm", config=str(cfg), run_dir=str(tmp_path / "r"),
                                  data_folder=str(tmp_path / "missing.h5")), SingleProcess())
