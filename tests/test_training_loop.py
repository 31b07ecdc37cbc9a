"""The Trainer: exact resume (after a clean stop, after SIGTERM mid-epoch, after SIGKILL during
a checkpoint write), NaN rollback, schedules, sharding, TensorBoard output.

Tiny flows run eagerly (tf.config.run_functions_eagerly): tracing costs more than these steps.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ffjord_kit.distributed.backend import SingleProcess
from ffjord_kit.errors import TrainingDiverged, UserError
from ffjord_kit.flows.continuous import ContinuousFlow, FlowConfig
from ffjord_kit.toys.moons import sample_moons
from ffjord_kit.training import ArrayData, ShardedBatches, Trainer, TrainSettings
from ffjord_kit.training.checkpoint import RunLock
from ffjord_kit.training.schedule import EarlyStopping, ReduceOnPlateau

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def eager():
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def make_flow() -> ContinuousFlow:
    return ContinuousFlow(FlowConfig(
        dim=2, num_stacked=1, backbone="dense_unet",
        backbone_kwargs={"layer_sizes": [8, 4], "activation": "tanh"},
        train_solver="rk4", train_solver_kwargs={"num_steps": 1},
        train_trace="hutchinson_rademacher", seed=3))


def make_data(backend=None):
    backend = backend or SingleProcess()
    train = ArrayData(sample_moons(128, seed=1))
    val = ArrayData(sample_moons(32, seed=2))
    return (ShardedBatches(train, backend, 64, seed=5),
            ShardedBatches(val, backend, 64, seed=5, shuffle=False))


SETTINGS = dict(lr=2e-2, early_stop=0, lr_patience=1, lr_factor=0.5, kinetic=0.01,
                jacobian=0.01, jit_compile=False)


def train(run_dir, max_epochs, resume=False, trainer_cls=Trainer, **overrides):
    flow = make_flow()
    trainer = trainer_cls(flow, TrainSettings(max_epochs=max_epochs, **{**SETTINGS, **overrides}),
                          run_dir=run_dir, log=lambda m: None, progress=False)
    result = trainer.fit(*make_data(), resume=resume)
    return flow, trainer, result


def weights(flow):
    return [v.numpy() for v in flow.weight_variables()]


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


class SignalAt(Trainer):
    """Sends itself `signum` during training step number `at` (1-based, counted per Trainer)."""

    at, signum = 5, signal.SIGTERM

    def _build_loss_and_grad(self, objective):
        inner, count = super()._build_loss_and_grad(objective), [0]

        def loss_and_grad(x, c=None):
            count[0] += 1
            if count[0] == self.at:
                os.kill(os.getpid(), self.signum)
            return inner(x, c)

        return loss_and_grad


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run (2 steps per epoch)."""
    tf.config.run_functions_eagerly(True)
    flow, _, result = train(tmp_path_factory.mktemp("ref"), 3)
    tf.config.run_functions_eagerly(False)
    return weights(flow), result.history


def test_uninterrupted_run_learns_and_writes_outputs(tmp_path, reference):
    _, history = reference
    assert history["epoch"] == [1, 2, 3]
    assert history["val_nll"][-1] < history["val_nll"][0]
    flow, _, _ = train(tmp_path, 1)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoint" / "state.json").is_file()


def test_resume_after_clean_stop_matches_uninterrupted(tmp_path, reference):
    train(tmp_path, 2)
    flow, _, result = train(tmp_path, 3, resume=True)
    assert result.history["epoch"] == [1, 2, 3]
    np.testing.assert_allclose(result.history["loss"], reference[1]["loss"], rtol=1e-6)
    assert_same(weights(flow), reference[0])


def test_sigterm_mid_epoch_checkpoints_and_resume_matches(tmp_path, reference):
    SignalAt.at, SignalAt.signum = 3, signal.SIGTERM  # epoch 2, step 1
    _, _, result = train(tmp_path, 3, trainer_cls=SignalAt)
    assert result.stopped == "sigterm"
    import json
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 1)
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored
    flow, _, result = train(tmp_path, 3, resume=True)
    np.testing.assert_allclose(result.history["loss"], reference[1]["loss"], rtol=1e-6)
    assert_same(weights(flow), reference[0])


def test_sigkill_during_checkpoint_write_leaves_previous_intact(tmp_path, reference):
    # The child kills itself (SIGKILL) with the epoch-2 checkpoint fully written to its
    # temporary folder but not yet swapped in.
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(tmp_path.glob(".checkpoint.*.tmp")), "the half-done write should be left over"
    import json
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["epoch"] == 1
    flow, _, result = train(tmp_path, 3, resume=True)
    assert not list(tmp_path.glob(".checkpoint.*.tmp"))  # cleaned by the next save
    assert_same(weights(flow), reference[0])


def test_kill_between_renames_is_recovered(tmp_path):
    train(tmp_path, 1)
    # A kill between the two renames of a save leaves only the previous checkpoint.
    shutil.rmtree(tmp_path / "checkpoint.prev")
    os.replace(tmp_path / "checkpoint", tmp_path / "checkpoint.prev")
    flow, _, result = train(tmp_path, 2, resume=True)
    assert result.history["epoch"] == [1, 2]


def _damage(folder: Path) -> None:
    """Overwrite part of the weights file, as a new user trying --load on a broken disk would."""
    data = next((folder / "tf").glob("ckpt.data-*"))
    raw = bytearray(data.read_bytes())
    raw[: min(64, len(raw))] = b"\xff" * min(64, len(raw))
    data.write_bytes(bytes(raw))


def test_damaged_newest_checkpoint_falls_back_to_previous(tmp_path, reference):
    train(tmp_path, 2)  # checkpoint = after epoch 2, checkpoint.prev = after epoch 1
    _damage(tmp_path / "checkpoint")
    messages = []
    flow = make_flow()
    trainer = Trainer(flow, TrainSettings(max_epochs=3, **SETTINGS), run_dir=tmp_path,
                      log=messages.append, progress=False)
    result = trainer.fit(*make_data(), resume=True)
    warning = [m for m in messages if m.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "checksum" in warning[0] and "\n" not in warning[0]
    assert result.history["epoch"] == [1, 2, 3]  # epoch 2 was trained again from epoch 1
    assert_same(weights(flow), reference[0])


def test_no_usable_checkpoint_is_one_line_error(tmp_path):
    train(tmp_path, 2)
    _damage(tmp_path / "checkpoint")
    _damage(tmp_path / "checkpoint.prev")
    with pytest.raises(UserError, match="no usable checkpoint") as info:
        train(tmp_path, 3, resume=True)
    assert "\n" not in str(info.value)


def test_run_folder_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(
            f'{{"host": "{__import__("socket").gethostname()}", "pid": {holder.pid}, '
            f'"heartbeat": 0}}')
        with pytest.raises(UserError, match=f"in use by process {holder.pid}"):
            train(tmp_path, 1)
    finally:
        holder.kill()
        holder.wait()
    notes = []
    with RunLock(tmp_path, warn=notes.append):  # the holder is gone: a stale lock
        assert (tmp_path / ".lock").is_file()
    assert notes and "stale lock" in notes[0] and not (tmp_path / ".lock").exists()
    # Another host's lock is stale once its heartbeat is older than stale_after.
    (tmp_path / ".lock").write_text('{"host": "elsewhere", "pid": 1, "heartbeat": 0}')
    with RunLock(tmp_path, warn=notes.append):
        pass
    import time
    (tmp_path / ".lock").write_text(
        f'{{"host": "elsewhere", "pid": 1, "heartbeat": {time.time()}}}')
    with pytest.raises(UserError, match="in use by process 1 on elsewhere"):
        RunLock(tmp_path).acquire()


class NaNAt(Trainer):
    """Returns a NaN loss at step `at`, and from then on when `forever`."""

    at, forever = 4, False

    def _build_loss_and_grad(self, objective):
        inner, count = super()._build_loss_and_grad(objective), [0]

        def loss_and_grad(x, c=None):
            count[0] += 1
            loss, aux, grads = inner(x, c)
            if count[0] == self.at or (self.forever and count[0] > self.at):
                loss = loss * np.nan
            return loss, aux, grads

        return loss_and_grad


def test_nan_rolls_back_once_and_lowers_lr(tmp_path):
    NaNAt.at, NaNAt.forever = 3, False  # first step of epoch 2
    flow, trainer, result = train(tmp_path, 2, trainer_cls=NaNAt, lr_patience=100)
    assert result.rolled_back and result.history["epoch"] == [1, 2]
    assert result.history["lr"] == pytest.approx([2e-2, 2e-3])
    assert all(np.isfinite(w).all() for w in weights(flow))


def test_nan_twice_raises_training_diverged(tmp_path):
    NaNAt.at, NaNAt.forever = 2, True
    with pytest.raises(TrainingDiverged, match="non-finite again after rolling back"):
        train(tmp_path, 2, trainer_cls=NaNAt)


def test_schedules():
    plateau = ReduceOnPlateau(patience=2, factor=0.1, min_lr=1e-4)
    lrs = [plateau.update(v, 1e-2) for v in (1.0, 0.9, 0.95, 0.91)]
    assert lrs == [1e-2, 1e-2, 1e-2, pytest.approx(1e-3)]
    assert plateau.update(5.0, 2e-4) == 2e-4 and plateau.update(5.0, 2e-4) == 1e-4
    stop = EarlyStopping(patience=2)
    assert [stop.update(v, e) for e, v in enumerate((3.0, 2.0, 2.5, 2.1), 1)] == [
        (True, False), (True, False), (False, False), (False, True)]
    assert stop.best_epoch == 2
    assert EarlyStopping(patience=0).update(1.0, 1) == (True, False)


def test_early_stopping_restores_best_weights(tmp_path):
    flow, trainer, result = train(tmp_path, 4, early_stop=1, lr=0.5)
    best = int(np.argmin(result.history["val_nll"])) + 1
    assert result.best_epoch == best
    if result.stopped == "early_stop":
        assert len(result.history["epoch"]) == best + 1


class FakeRank(SingleProcess):
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def test_sharding_and_lr_scaling():
    data = ArrayData(np.arange(21, dtype=np.float32).reshape(-1, 1) * np.ones((1, 2), np.float32))
    shards = [ShardedBatches(data, FakeRank(r, 2), 4, seed=0) for r in range(2)]
    assert [s.steps_per_epoch for s in shards] == [2, 2]  # 21 // 2 // 4 on every rank
    seen = [np.concatenate([b.numpy()[:, 0] for b in s.epoch(0)]) for s in shards]
    assert set(seen[0]) <= set(range(0, 21, 2)) and set(seen[1]) <= set(range(1, 21, 2))
    again = np.concatenate([b.numpy()[:, 0] for b in shards[0].epoch(0, skip_steps=1)])
    np.testing.assert_array_equal(again, seen[0][4:])
    trainer = Trainer(make_flow(), TrainSettings(lr=1e-3, scale_lr=True), FakeRank(0, 4),
                      run_dir="unused", tensorboard=False)
    assert trainer.base_lr == pytest.approx(4e-3)


if __name__ == "__main__":  # child of the SIGKILL test
    tf.config.run_functions_eagerly(True)
    run = Path(sys.argv[1])

    class KillDuringSave(Trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            saves = [0]

            def hook(tmp):
                saves[0] += 1
                if saves[0] == 3:  # 1: initial, 2: after epoch 1, 3: after epoch 2
                    os.kill(os.getpid(), signal.SIGKILL)

            self.store.before_swap = hook

    train(run, 3, trainer_cls=KillDuringSave)
