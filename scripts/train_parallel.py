"""Train any model of the toolkit, on one process or data-parallel: continuous flows (FFJORD) on
moon, mnist, digits or calorimeter data, spline flows on FlashSim jets or muons and EIC KLM timing.

The tutorial's Part 3 script: per-data-set configs, checkpoints every epoch, exact resume
(--load), SIGTERM -> checkpoint and clean exit, and samples/plots/validation at the end. Examples:

    python scripts/train_parallel.py --model_name moon --quick
    python scripts/train_parallel.py --model_name digits --out runs
    python scripts/train_parallel.py --model_name mnist --data_folder ~/data/mnist
    python scripts/train_parallel.py --model_name calorimeter --data_folder data/gamma.hdf5
    python scripts/train_parallel.py --model_name jets --quick --synthetic
    python scripts/train_parallel.py --model_name moon --load      # resume runs/<MODEL>
    srun python scripts/train_parallel.py --model_name klm --synthetic --backend tf
"""

from __future__ import annotations

import argparse

from ffjord_kit.cli_args import add_common_flags
from ffjord_kit.distributed import BACKEND_CHOICES, Backend
from ffjord_kit.distributed import make_backend as start_backend
from ffjord_kit.errors import run_cli
from ffjord_kit.experiments import MODULES, get_experiment


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", required=True, metavar="NAME",
                   help=f"data set and model: {', '.join(MODULES)} (digits: scikit-learn's "
                        f"8x8 digits, an offline stand-in for mnist)")
    p.add_argument("--config", default=None,
                   help="config file (default: configs/config_<model_name>.json; "
                        "configs/flashsim_<kind>.json for jets and muons; configs/klm.json)")
    p.add_argument("--data_folder", default=None,
                   help="the input data: for mnist a folder with mnist.npz or the four IDX "
                        "files (default ~/.keras/datasets); for calorimeter the CaloGAN file or "
                        "its folder; for jets/muons a folder with train_*.h5 and val.h5; for "
                        "klm a photon file (default for these: ./data)")
    p.add_argument("--out", default="runs",
                   help="output folder; the run goes to <out>/<MODEL> (default: runs)")
    p.add_argument("--load", action="store_true",
                   help="resume from the checkpoint in <out>/<MODEL> (model, optimizer, "
                        "schedules, epoch, random state)")
    p.add_argument("--epochs", type=int, default=None,
                   help="maximum epochs (overrides the config's MAXEPOCH)")
    p.add_argument("--seed", type=int, default=0, help="seed for data split, init and shuffling")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: a few hundred events, tiny batches, 2 epochs")
    add_common_flags(p, synthetic=True)
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="data-parallel engine: horovod (horovodrun, or srun), tf "
                        "(MultiWorkerMirroredStrategy under srun or TF_CONFIG), none, or auto "
                        "(horovod if installed and several ranks, else tf under srun/TF_CONFIG,"
                        " else none); see docs/parallel.md")
    p.add_argument("--port_base", type=int, default=None,
                   help="under srun: first gRPC port of the TF workers (default 8888) or "
                        "Horovod's rendezvous port on rank 0 (default 29400)")
    return p


def make_backend(args: argparse.Namespace) -> Backend:
    """The data-parallel engine for this run; started before any TensorFlow op."""
    return start_backend(args.backend, port_base=args.port_base)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    get_experiment(args.model_name)  # an unknown name fails here, before TensorFlow loads
    from ffjord_kit.experiments.runner import RunOptions, run_experiment

    backend = make_backend(args)
    try:
        return run_experiment(RunOptions(
            model_name=args.model_name, config=args.config, data_folder=args.data_folder,
            out=args.out, load=args.load, epochs=args.epochs, seed=args.seed, quick=args.quick,
            synthetic=args.synthetic, progress=not args.no_progress), backend)
    finally:
        backend.shutdown()


if __name__ == "__main__":
    run_cli(main)
