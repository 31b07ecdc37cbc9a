"""Physics observables of calorimeter showers, per shower, in GeV and mm.

These are the quantities a calorimeter model is judged on (CaloGAN / CaloFlow): the energy
response (total, per layer, fractions, deposited/incident), the longitudinal development (shower
depth), the lateral development (centroid and width per layer and direction), the sparsity and
the brightest voxels (the fine structure), and the mean shower image per layer.

Coordinates: cell centres in mm on the 480 mm x 480 mm face, centred at 0; "x" runs along a
layer's columns (last array axis), "y" along its rows. An empty layer has NaN centroid, width
and brightest-voxel ratio (no energy to weigh); distances drop and count NaNs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .showers import CELL_SIZES_MM, LAYER_SHAPES, ShowerSet

DEFAULT_VOXEL_THRESHOLD_GEV: float = 1e-5  # a voxel counts as hit above 0.01 MeV


@dataclass(frozen=True)
class ObservableSpec:
    """How to label and bin one observable."""

    label: str
    log_x: bool = False


def cell_centres_mm(layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(row centres (rows,), column centres (cols,)) of `layer` in mm."""
    (h, w), (ch, cw) = LAYER_SHAPES[layer], CELL_SIZES_MM[layer]
    return (np.arange(h) - (h - 1) / 2) * ch, (np.arange(w) - (w - 1) / 2) * cw


def _weighted_moments(layer: np.ndarray, layer_idx: int) -> dict[str, np.ndarray]:
    rows, cols = cell_centres_mm(layer_idx)
    e = layer.astype(np.float64)
    total = e.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        px = e.sum(axis=1) / total[:, None]  # (N, cols) energy share per column
        py = e.sum(axis=2) / total[:, None]  # (N, rows)
        cx = px @ cols
        cy = py @ rows
        wx = np.sqrt(np.maximum(px @ cols**2 - cx**2, 0.0))
        wy = np.sqrt(np.maximum(py @ rows**2 - cy**2, 0.0))
    return {"cx": cx, "cy": cy, "wx": wx, "wy": wy}


def shower_observables(showers: ShowerSet,
                       threshold_gev: float = DEFAULT_VOXEL_THRESHOLD_GEV
                       ) -> dict[str, np.ndarray]:
    """All per-shower observables of `showers`, each an (N,) float64 array.

    threshold_gev: a voxel above it counts as hit (sparsity); comparisons of a flow's samples,
    whose voxels are never exactly zero, with a reference need a common threshold.
    """
    n = len(showers)
    e_inc = showers.energy[:, 0].astype(np.float64)
    layer_e = showers.layer_energies().astype(np.float64)
    e_tot = layer_e.sum(axis=1)
    obs: dict[str, np.ndarray] = {"E_total": e_tot}
    for i in range(3):
        obs[f"E_layer_{i}"] = layer_e[:, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(3):
            obs[f"frac_layer_{i}"] = layer_e[:, i] / e_tot
        obs["deposit_ratio"] = e_tot / e_inc
        obs["shower_depth"] = (layer_e @ np.arange(3.0)) / e_tot
    for i, layer in enumerate(showers.layers):
        m = _weighted_moments(layer, i)
        obs[f"centroid_x_layer_{i}"] = m["cx"]
        obs[f"centroid_y_layer_{i}"] = m["cy"]
        obs[f"width_x_layer_{i}"] = m["wx"]
        obs[f"width_y_layer_{i}"] = m["wy"]
    for i, layer in enumerate(showers.layers):
        flat = layer.reshape(n, -1).astype(np.float64)
        obs[f"sparsity_layer_{i}"] = (flat > threshold_gev).mean(axis=1)
        top2 = -np.sort(-flat, axis=1)[:, :2]
        obs[f"brightest_layer_{i}"] = top2[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            obs[f"brightest_ratio_layer_{i}"] = ((top2[:, 0] - top2[:, 1])
                                                 / (top2[:, 0] + top2[:, 1]))
    return obs


def observable_specs() -> dict[str, ObservableSpec]:
    """Axis label and binning choice for every name `shower_observables` returns."""
    specs = {"E_total": ObservableSpec("total deposited energy [GeV]", log_x=True),
             "deposit_ratio": ObservableSpec("deposited / incident energy"),
             "shower_depth": ObservableSpec("shower depth (energy-weighted layer)")}
    for i in range(3):
        specs[f"E_layer_{i}"] = ObservableSpec(f"layer {i} energy [GeV]", log_x=True)
        specs[f"frac_layer_{i}"] = ObservableSpec(f"layer {i} energy fraction")
    for i in range(3):
        for d in ("x", "y"):
            specs[f"centroid_{d}_layer_{i}"] = ObservableSpec(f"layer {i} centroid {d} [mm]")
            specs[f"width_{d}_layer_{i}"] = ObservableSpec(f"layer {i} width {d} [mm]")
        specs[f"sparsity_layer_{i}"] = ObservableSpec(f"layer {i} fraction of hit voxels")
        specs[f"brightest_layer_{i}"] = ObservableSpec(f"layer {i} brightest voxel [GeV]",
                                                       log_x=True)
        specs[f"brightest_ratio_layer_{i}"] = ObservableSpec(
            f"layer {i} (E1-E2)/(E1+E2) brightest voxels")
    return specs


def mean_images(showers: ShowerSet) -> tuple[np.ndarray, ...]:
    """Mean deposit per voxel over all showers, one (rows, cols) array per layer, GeV."""
    return tuple(layer.astype(np.float64).mean(axis=0) for layer in showers.layers)


def mean_image_distance(reference: ShowerSet, generated: ShowerSet) -> dict[str, float]:
    """Per layer, sum |mean_gen - mean_ref| / sum mean_ref (0 = identical mean images)."""
    out = {}
    for i, (r, g) in enumerate(zip(mean_images(reference), mean_images(generated),
                                   strict=True)):
        out[f"layer_{i}"] = float(np.abs(g - r).sum() / max(r.sum(), 1e-30))
    return out


def classifier_features(showers: ShowerSet,
                        threshold_gev: float = DEFAULT_VOXEL_THRESHOLD_GEV) -> np.ndarray:
    """Per-shower inputs of the classifier AUC (evaluation/classifier_auc.py),
    (N, 504 + 1 + n_observables) float64.

    log10(voxel + threshold) (so sub-threshold voxels all look alike), log10(E_inc / GeV),
    then the high-level observables (NaN for an empty layer: the trees treat it as missing).
    """
    voxels = np.log10(showers.voxels().astype(np.float64) + threshold_gev)
    log_e = np.log10(showers.energy.astype(np.float64))
    obs = shower_observables(showers, threshold_gev)
    high = np.stack([obs[k] for k in sorted(obs)], axis=1)
    return np.concatenate([voxels, log_e, high], axis=1)
