"""FlashSim data loading: chunked, shuffled, sharded reader vs the reference one-row-per-call
reader (H5Dataset.__getitem__), side by side in the same run, on synthetic jets in several
HDF5 files; plus what one training step of the CPU-sized jets model consumes.

Last line: one JSON object with the headline figures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_record  # noqa: E402


class OneRowReader:
    """The reference reader: np.searchsorted over file strides, one HDF5 row per call."""

    def __init__(self, paths, n_conditions):
        self.files = [h5py.File(p, "r") for p in paths]
        self.strides = np.cumsum([len(f["data"]) for f in self.files])
        self.n_c = n_conditions

    def __getitem__(self, index):
        file_idx = int(np.searchsorted(self.strides, index, side="right"))
        idx = index - (self.strides[file_idx - 1] if file_idx > 0 else 0)
        data = self.files[file_idx]["data"]
        return data[idx, self.n_c:], data[idx, :self.n_c]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=400_000, help="rows over all files")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--one_row_samples", "--one-row-samples", type=int, default=5000)
    ap.add_argument("--train_steps", "--train-steps", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="smoke run")
    args = ap.parse_args()
    start_load = load_record("start")
    if args.small:
        args.rows, args.one_row_samples, args.train_steps = 40_000, 1000, 2

    from ffjord_kit.flashsim.preprocessing import ModelTransform, make_transform_fn
    from ffjord_kit.flashsim.reader import ChunkedReader, make_dataset
    from ffjord_kit.flashsim.schemas import JETS
    from ffjord_kit.flashsim.synthetic import make_synthetic_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_loader."))
    paths = make_synthetic_dataset("jets", args.rows, args.files, tmp, n_val=10, n_test=10)["train"]
    rng = np.random.default_rng(0)
    results = {}

    one = OneRowReader(paths, JETS.n_conditions)
    idx = rng.integers(0, args.rows, args.one_row_samples)
    t0 = time.perf_counter()
    for i in idx:
        one[int(i)]
    results["one_row_per_call"] = args.one_row_samples / (time.perf_counter() - t0)
    print(f"one-row reader: {results['one_row_per_call']:,.0f} rows/s", file=sys.stderr,
          flush=True)

    reader = ChunkedReader(paths, JETS, chunk_rows=16384, shuffle_chunks=8)
    ident = lambda rows: (rows[:, 14:], rows[:, :14])
    t0 = time.perf_counter()
    n = sum(len(x) for x, _ in reader.iter_batches(2048, ident))
    results["chunked_raw"] = n / (time.perf_counter() - t0)

    transform = ModelTransform.fit(JETS, next(reader.iter_chunks()))
    fn = make_transform_fn(transform, rng)
    t0 = time.perf_counter()
    n = sum(len(x) for x, _ in reader.iter_batches(2048, fn))
    results["chunked_preprocessed"] = n / (time.perf_counter() - t0)

    ds = make_dataset(reader, 2048, fn, 0, JETS.n_targets, JETS.n_conditions)
    t0 = time.perf_counter()
    n = sum(int(x.shape[0]) for x, _ in ds)
    results["tf_data_preprocessed"] = n / (time.perf_counter() - t0)
    print(f"tf.data: {results['tf_data_preprocessed']:,.0f} rows/s; timing a training step",
          file=sys.stderr, flush=True)

    # What training consumes: CPU-sized jets model, batch 2048.
    import tensorflow as tf
    import tf_keras

    from ffjord_kit.distributed.backend import SingleProcess
    from ffjord_kit.flashsim.config import load_config
    from ffjord_kit.flows.spline_coupling import SplineCouplingFlow
    from ffjord_kit.train_step import make_apply, make_loss_and_grad

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs/flashsim_jets_cpu.json")
    flow = SplineCouplingFlow(cfg.flow)
    # The Trainer's own step: compiled loss and gradient, then the optimizer update.
    step = SingleProcess().train_step(
        make_loss_and_grad(flow), make_apply(tf_keras.optimizers.Adam(1e-3),
                                             flow.trainable_variables))
    batches = list(ds.take(args.train_steps + 1))
    step(*batches[0])
    t0 = time.perf_counter()
    for xb, cb in batches[1:]:
        step(xb, cb)
    results["training_step_consumes"] = args.train_steps * 2048 / (time.perf_counter() - t0)

    base = results["one_row_per_call"]
    print(f"{'reader':28s} {'rows/s':>12s} {'vs one-row':>11s} {'vs training':>12s}")
    for name, rate in results.items():
        print(f"{name:28s} {rate:12,.0f} {rate / base:10.1f}x "
              f"{rate / results['training_step_consumes']:11.1f}x")
    print(f"(device: {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}; "
          f"{args.rows} synthetic jet rows in {args.files} files)")
    end_load = load_record("end")
    print(json.dumps({
        "one_row_rows_per_s": round(base),
        "tf_data_rows_per_s": round(results["tf_data_preprocessed"]),
        "speedup_vs_one_row": round(results["tf_data_preprocessed"] / base, 1),
        "vs_training_consumption": round(results["tf_data_preprocessed"]
                                         / results["training_step_consumes"], 1),
        "load_start": start_load, "load_end": end_load}))
    return 0


if __name__ == "__main__":
    from ffjord_kit.errors import run_cli

    run_cli(main)
