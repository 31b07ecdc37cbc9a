"""--model_name calorimeter: CaloGAN showers (3 layer images + incident energy), conditional on
log10(E / 10 GeV), with the CaloFlow preprocessing (data/calorimeter_preprocessing.py).

The data file (DATA_FILE, default gamma.hdf5, in --data_folder, default ./data; or
--data_folder naming the file itself) is read with `read_calogan`; `--synthetic` writes the
project's synthetic photon showers there first when it is missing; a seeded 10% of the
showers is held out as the reference for the final report, which compares them with as many
generated showers at the same incident energies (evaluation/calorimeter_report.py: observable
histograms with Wasserstein/KS distances and their statistical floor, mean images, classifier
AUC) and gives the test NLL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..calorimeter.preprocessing import postprocess, preprocess
from ..calorimeter.showers import read_calogan, write_calogan
from ..calorimeter.synthetic import generate_showers
from ..config import Config
from ..errors import DataError
from ..training.datasets import ArrayData
from .base import FFJORDExperiment, Prepared, batched_log_prob, locate_data, make_sampler

TEST_FRACTION = 0.1
SYNTHETIC_SHOWERS = 30_000  # --synthetic: photons 1-100 GeV, as in docs/calorimeter.md


def load(cfg: Config, data_folder: str | None, quick: bool, seed: int,
         synthetic: bool = False) -> Prepared:
    def write_synthetic(target: Path) -> None:
        showers = generate_showers("gamma", SYNTHETIC_SHOWERS, seed=seed)
        write_calogan(target, showers, unit_scale=cfg["UNIT_SCALE"])

    path = locate_data(
        data_folder, cfg["DATA_FILE"], Path.is_file, write_synthetic, synthetic,
        f"the CaloGAN HDF5 file {cfg['DATA_FILE']} (keys energy (N, 1), layer_0 (N, 3, 96), "
        f"layer_1 (N, 12, 12), layer_2 (N, 12, 6))")
    showers = read_calogan(path, unit_scale=cfg["UNIT_SCALE"],
                           max_events=cfg["MAX_EVENTS"] or None)
    if len(showers) < 20:
        raise DataError(f"{path}: {len(showers)} showers are too few to train and evaluate "
                        f"(need at least 20)")
    order = np.random.default_rng([seed, 77]).permutation(len(showers))
    n_test = max(10, int(round(len(showers) * TEST_FRACTION)))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    x, c = preprocess(showers.subset(train_idx))
    reference = showers.subset(test_idx)
    xt, ct = preprocess(reference)
    return Prepared(ArrayData(x, c), ArrayData(xt, ct),
                    {"reference": reference, "source": str(path)})


def report(flow, cfg: Config, prepared: Prepared, out: Path, quick: bool, seed: int) -> dict:
    """Generated showers at the reference energies, the comparison report, and test NLL."""
    from ..calorimeter.report import write_calorimeter_report

    reference = prepared.meta["reference"]
    condition = prepared.test.condition
    features = make_sampler(flow)(len(condition), condition, seed=seed)
    generated = postprocess(features, condition)
    if cfg["READOUT_MEV"] > 0:
        generated = generated.with_readout_threshold(cfg["READOUT_MEV"] * 1e-3)
    np.savez(out / "samples.npz", features=features, condition=condition)
    rep = write_calorimeter_report(reference, generated, out / "calorimeter_report", seed=seed,
                                   with_auc=not quick, per_observable_plots=not quick)
    n_nll = min(len(condition), 64 if quick else 1000)
    log_p = batched_log_prob(flow, prepared.test.x[:n_nll], condition[:n_nll], batch=64)
    metrics = {"test_nll_nats": float(-log_p.mean()), "test_nll_events": n_nll,
               "reference_events": len(reference), "data_source": prepared.meta["source"]}
    if "classifier" in rep:
        metrics["classifier_auc"] = float(rep["classifier"]["auc"])
    return metrics


EXPERIMENTS = {"calorimeter": FFJORDExperiment(
    name="calorimeter", description="CaloGAN showers, 507 features, condition log10(E/10 GeV)",
    condition_dim=1,
    quick={"MAX_EVENTS": 300, "MAXEPOCH": 2, "BATCH": 64, "NSTACKED": 1, "NUM_STEPS": 1,
           "JIT": False, "NLAYERS": 2, "LAYER_SIZE": [32, 16], "EVAL_TRACE":
           "hutchinson_gaussian", "EVAL_ATOL": 1e-3, "EVAL_RTOL": 1e-3},
    load=load, report=report)}
