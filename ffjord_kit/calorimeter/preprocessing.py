"""CaloFlow preprocessing of calorimeter showers and its exact inverse (pure functions).

Forward (`preprocess`), per shower with incident energy E (GeV) and layer energies E_0, E_1, E_2:
  - each layer's voxels divided by that layer's energy (an empty layer stays all-zero),
  - three layer-energy variables
        u0 = (E_0 + E_1 + E_2) / E,  u1 = E_0 / (E_0 + E_1 + E_2),  u2 = E_1 / (E_1 + E_2)
    (a ratio with a zero denominator is set to 0: its numerator is then 0 too, and the inverse
    multiplies it by a zero energy, so any value reconstructs the shower exactly),
  - every one of the 504 normalised voxels and u0, u1, u2 mapped by
        logit_alpha(x) = log(y / (1 - y)),  y = alpha + (1 - 2 alpha) x,  alpha = 1e-6,
  - features = [layer_0 (288), layer_1 (144), layer_2 (72), u0, u1, u2]: (N, 507) float32,
  - condition = log10(E / 10 GeV): (N, 1) float32, in [-1, 1] for 1-100 GeV.

Inverse (`postprocess`): sigmoid and un-squash, E_0 = E u0 u1, E_1 = E u0 (1 - u1) u2,
E_2 = E u0 (1 - u1)(1 - u2), each layer's voxels (negatives clipped to 0) renormalised to sum to 1
and multiplied by its layer energy. For preprocessed data the renormalisation changes nothing
beyond float rounding; for flow samples it makes the layer energies exactly those the u-variables
encode. Overflow is not modelled: `postprocess` returns overflow=None.

Precision: features are float32, so a voxel round-trips to 1e-5 relative when it holds more than
about 1e-5 of its layer's energy; smaller ones to an absolute error of a few 1e-11 of the layer
energy (the float32 resolution of logit_alpha near its lower end).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..transforms import ALPHA, inverse_logit_alpha, logit_alpha  # noqa: F401  (re-exported)
from .showers import LAYER_SHAPES, N_VOXELS, ShowerSet

N_FEATURES: int = N_VOXELS + 3  # 507
ENERGY_PIVOT_GEV: float = 10.0
_LAYER_SIZES = [h * w for h, w in LAYER_SHAPES]
_LAYER_OFFSETS = np.cumsum([0, *_LAYER_SIZES])


_ZERO_FEATURE = np.float32(logit_alpha(0.0))


def energy_to_condition(energy_gev: np.ndarray) -> np.ndarray:
    """log10(E / 10 GeV), (N, 1) float32."""
    return np.log10(np.asarray(energy_gev, dtype=np.float64) / ENERGY_PIVOT_GEV).astype(
        np.float32).reshape(-1, 1)


def condition_to_energy(condition: np.ndarray) -> np.ndarray:
    """Inverse of `energy_to_condition`: incident energy, (N, 1) float32, GeV."""
    return (ENERGY_PIVOT_GEV * 10.0 ** np.asarray(condition, dtype=np.float64)).astype(
        np.float32).reshape(-1, 1)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def layer_energy_variables(layer_energies: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """(u0, u1, u2), (N, 3) float64, from layer energies (N, 3) and incident energy (N, 1)."""
    e = np.asarray(layer_energies, dtype=np.float64)
    total = e.sum(axis=1)
    u0 = total / np.asarray(energy, dtype=np.float64)[:, 0]
    u1 = _safe_ratio(e[:, 0], total)
    u2 = _safe_ratio(e[:, 1], e[:, 1] + e[:, 2])
    return np.stack([u0, u1, u2], axis=1)


def layer_energies_from_variables(u: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Inverse of `layer_energy_variables`: layer energies (N, 3) float64, GeV."""
    u = np.asarray(u, dtype=np.float64)
    total = np.asarray(energy, dtype=np.float64)[:, 0] * u[:, 0]
    e0 = total * u[:, 1]
    e1 = total * (1.0 - u[:, 1]) * u[:, 2]
    e2 = total * (1.0 - u[:, 1]) * (1.0 - u[:, 2])
    return np.stack([e0, e1, e2], axis=1)


def preprocess(showers: ShowerSet) -> tuple[np.ndarray, np.ndarray]:
    """CaloFlow features and condition of `showers` (GeV).

    Returns (features (N, 507) float32, condition (N, 1) float32). DataError if a shower deposits
    more than its incident energy (u0 >= 1: usually a wrong unit_scale) or has negative voxels.
    """
    n = len(showers)
    voxels = showers.voxels().astype(np.float64)
    if (voxels < 0).any():
        raise DataError(f"{int((voxels < 0).sum())} negative voxels; deposits must be >= 0")
    layer_e = np.stack([voxels[:, a:b].sum(axis=1) for a, b in
                        zip(_LAYER_OFFSETS[:-1], _LAYER_OFFSETS[1:], strict=True)], axis=1)
    u = layer_energy_variables(layer_e, showers.energy)
    over = u[:, 0] >= 1.0
    if over.any():
        raise DataError(f"{int(over.sum())} of {n} showers deposit at least their incident "
                        f"energy (max deposited/incident {float(u[:, 0].max()):.4g}); check "
                        "unit_scale (GeV per voxel unit)")
    normed = np.empty_like(voxels)
    for i, (a, b) in enumerate(zip(_LAYER_OFFSETS[:-1], _LAYER_OFFSETS[1:], strict=True)):
        normed[:, a:b] = _safe_ratio(voxels[:, a:b], layer_e[:, i:i + 1])
    features = np.concatenate([logit_alpha(normed), logit_alpha(u)], axis=1).astype(np.float32)
    return features, energy_to_condition(showers.energy)


def postprocess(features: np.ndarray, condition: np.ndarray) -> ShowerSet:
    """Showers (GeV) from CaloFlow features (N, 507) and condition (N, 1); inverse of `preprocess`.

    Works on any real-valued features (flow samples): voxels are clipped to >= 0 and each layer
    renormalised, u-variables clipped to [0, 1], non-finite feature rows give all-zero showers
    and are counted in `info["n_nonfinite_rows"]`.
    """
    features = np.asarray(features)
    condition = np.asarray(condition).reshape(-1, 1) if np.ndim(condition) == 1 else np.asarray(
        condition)
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise DataError(f"features have shape {features.shape}, expected (N, {N_FEATURES})")
    if condition.shape != (features.shape[0], 1):
        raise DataError(f"condition has shape {condition.shape}, expected "
                        f"({features.shape[0]}, 1)")
    n = features.shape[0]
    energy = condition_to_energy(condition)
    bad = ~np.isfinite(features).all(axis=1)
    x = inverse_logit_alpha(np.where(bad[:, None], -np.inf, features))
    # A feature at or below float32(logit_alpha(0)) encodes an exact zero: without this, zero
    # voxels would come back as float32 rounding residues of order 1e-12 of the layer energy.
    x[features <= _ZERO_FEATURE] = 0.0
    x = np.clip(x, 0.0, 1.0)
    layer_e = layer_energies_from_variables(x[:, N_VOXELS:], energy)
    layers = []
    for i, ((a, b), shape) in enumerate(zip(zip(_LAYER_OFFSETS[:-1], _LAYER_OFFSETS[1:],
                                                strict=True), LAYER_SHAPES, strict=True)):
        v = x[:, a:b]
        frac = _safe_ratio(v, v.sum(axis=1, keepdims=True))
        layers.append((frac * layer_e[:, i:i + 1]).astype(np.float32).reshape(n, *shape))
    return ShowerSet(energy=energy, layers=tuple(layers), overflow=None,
                     info={"n_nonfinite_rows": int(bad.sum())})
