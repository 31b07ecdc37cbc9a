"""A synthetic stand-in for the CaloGAN showers (photons, positrons, charged pions).

THIS IS NOT GEANT4. The CaloGAN files cannot be downloaded here, so this generator produces
showers with the CaloGAN layout (3x96, 12x12, 12x6 cells; energy in GeV, voxels in GeV in memory
and MeV on disk) and a plausible, parametrised structure, for everything downstream (training,
validation, the classifier metric) to run on. Its numbers say nothing about real detector
physics; a model trained on it must be retrained on the real files.

The model, per shower (all depths in radiation lengths X0; layers span [0, 3], [3, 19], [19, 21]
X0 like CaloGAN's 90/347/43 mm of lead/liquid argon; the face is 480 mm x 480 mm):

- incident energy E uniform in [1, 100] GeV (as CaloGAN), normal incidence at an impact point
  displaced by a Gaussian of 3 mm per axis;
- longitudinal profile dE/dt ~ Gamma(t - t0; a, b): b = 0.5/X0 for e/gamma, a = 1 + b t_max,
  t_max = ln(E / 7.4 MeV) + c with c = +0.5 (photons) or -0.5 (positrons), so the shower depth
  grows with log E; a per-shower log-normal jitter of 12% on a. Photons first convert at
  t0 ~ Exp(9/7 X0); positrons start at t0 = 0. Charged pions travel as a minimum-ionising
  track (7 MeV per X0 in the central cells) until a hadronic interaction at t0 ~ Exp(15 X0),
  then shower with b = 0.25/X0, t_max = 0.6 ln(E / GeV) + 2.5 and a visible (e/h) fraction of
  0.65; most pions do not start showering in the first two layers;
- lateral profile at each layer's mid-depth t: core plus halo, p f(r; R_core) + (1 - p)
  f(r; R_halo) with f the 2-D density R / (2 pi (r^2 + R^2)^(3/2)), whose integral over a
  rectangular cell is a closed-form solid angle. e/gamma: p = 0.85, R_core = 4 + 0.6 t mm,
  R_halo = 15 + 1.5 t mm; pions: p = 0.5, R_core = 20 + 1.0 t mm, R_halo = 60 + 2.0 t mm;
  a per-shower log-normal jitter of 10% on both radii; `width_scale` multiplies both radii
  (the knob behind the classifier metric's self-check);
- longitudinal and lateral leakage give the expected deposited fraction M / E < 1;
- sampling fluctuations: the deposited total T = E * Beta with mean M / E and variance
  (M / E)(1 - M / E) q / E (so T <= E always: energy is conserved), shared among the voxels by
  a Dirichlet with concentrations mu_v / q (mu_v the expected voxel energy), i.e. each voxel
  fluctuates like a count of energy quanta q (5 MeV for e/gamma, 50 MeV for pions);
- a cell readout threshold: voxels below 0.5 MeV read 0 (no additive noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..errors import UserError
from .showers import CELL_SIZES_MM, LAYER_SHAPES, ShowerSet

LAYER_DEPTHS_X0: tuple[tuple[float, float], ...] = ((0.0, 3.0), (3.0, 19.0), (19.0, 21.0))
CRITICAL_ENERGY_GEV: float = 7.4e-3  # lead
_CHUNK = 4096  # events generated per vectorised block (fixed: part of the seed's meaning)


@dataclass(frozen=True)
class ParticleModel:
    """Parameters of one particle type's synthetic showers (lengths in mm, depths in X0)."""

    b: float                   # Gamma-profile slope, 1/X0
    tmax_log_coeff: float      # t_max = coeff * ln(E / tmax_log_ref) + offset
    tmax_log_ref_gev: float
    tmax_offset: float
    start_mean_x0: float       # mean of the exponential shower-start depth (0: starts at 0)
    mip_gev_per_x0: float      # ionisation deposited before the shower starts
    visible_fraction: float    # e/h-like response of the cascade
    core_fraction: float
    core_r0: float
    core_slope: float
    halo_r0: float
    halo_slope: float
    quantum_gev: float         # sampling-fluctuation quantum q


PARTICLES: dict[str, ParticleModel] = {
    "gamma": ParticleModel(b=0.5, tmax_log_coeff=1.0, tmax_log_ref_gev=CRITICAL_ENERGY_GEV,
                           tmax_offset=0.5, start_mean_x0=9.0 / 7.0, mip_gev_per_x0=0.0,
                           visible_fraction=1.0, core_fraction=0.85, core_r0=4.0,
                           core_slope=0.6, halo_r0=15.0, halo_slope=1.5, quantum_gev=0.005),
    "eplus": ParticleModel(b=0.5, tmax_log_coeff=1.0, tmax_log_ref_gev=CRITICAL_ENERGY_GEV,
                           tmax_offset=-0.5, start_mean_x0=0.0, mip_gev_per_x0=0.0,
                           visible_fraction=1.0, core_fraction=0.85, core_r0=4.0,
                           core_slope=0.6, halo_r0=15.0, halo_slope=1.5, quantum_gev=0.005),
    "piplus": ParticleModel(b=0.25, tmax_log_coeff=0.6, tmax_log_ref_gev=1.0, tmax_offset=2.5,
                            start_mean_x0=15.0, mip_gev_per_x0=0.007, visible_fraction=0.65,
                            core_fraction=0.5, core_r0=20.0, core_slope=1.0, halo_r0=60.0,
                            halo_slope=2.0, quantum_gev=0.05),
}
IMPACT_SIGMA_MM: float = 3.0
SHAPE_JITTER: float = 0.12
RADIUS_JITTER: float = 0.10
READOUT_THRESHOLD_GEV: float = 5e-4
MIP_RADIUS_MM: float = 1.0


def _cell_edges(layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column cell edges of `layer` in mm, centred on the face."""
    (h, w), (ch, cw) = LAYER_SHAPES[layer], CELL_SIZES_MM[layer]
    return (np.arange(h + 1) - h / 2) * ch, (np.arange(w + 1) - w / 2) * cw


def cell_fractions(layer: int, x0: np.ndarray, y0: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Share of the lateral density R / (2 pi (r^2 + R^2)^1.5) centred at (x0, y0) in each cell.

    x0 (columns), y0 (rows), radius: (N,) mm. Returns (N, rows, cols); sums to < 1 (the rest
    leaks past the face). Uses the solid angle of a rectangle seen from height R.
    """
    y_edges, x_edges = _cell_edges(layer)
    x = x_edges[None, :] - x0[:, None]          # (N, cols+1)
    y = y_edges[None, :] - y0[:, None]          # (N, rows+1)
    r = radius[:, None, None]
    xx, yy = x[:, None, :], y[:, :, None]
    corner = np.arctan(xx * yy / (r * np.sqrt(r * r + xx * xx + yy * yy))) / (2.0 * np.pi)
    return corner[:, 1:, 1:] - corner[:, :-1, 1:] - corner[:, 1:, :-1] + corner[:, :-1, :-1]


def _profile_fractions(a: np.ndarray, b: float, start: np.ndarray) -> np.ndarray:
    """Share of a Gamma(a, b) depth profile starting at `start` inside each layer, (N, 3)."""
    cdf = []
    for lo, hi in LAYER_DEPTHS_X0:
        c_lo = special.gammainc(a, b * np.maximum(lo - start, 0.0))
        c_hi = special.gammainc(a, b * np.maximum(hi - start, 0.0))
        cdf.append(c_hi - c_lo)
    return np.stack(cdf, axis=1)


def expected_voxel_energies(model: ParticleModel, energy: np.ndarray, width_scale: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Expected deposit per voxel, (N, 504) GeV, for showers of incident `energy` (N,) GeV.

    Draws the per-shower shape fluctuations (start depth, profile jitter, impact point, radius
    jitter) from `rng`; the sampling fluctuations are applied by `_sample_deposits`.
    """
    n = len(energy)
    tmax = model.tmax_log_coeff * np.log(energy / model.tmax_log_ref_gev) + model.tmax_offset
    a = (1.0 + model.b * np.maximum(tmax, 0.5)) * np.exp(SHAPE_JITTER * rng.standard_normal(n))
    start = (rng.exponential(model.start_mean_x0, n) if model.start_mean_x0 > 0
             else np.zeros(n))
    x0, y0 = IMPACT_SIGMA_MM * rng.standard_normal((2, n))
    radius_jitter = np.exp(RADIUS_JITTER * rng.standard_normal(n))
    # Energy left for the cascade after the ionisation track; cascade profile in each layer.
    mip_total = model.mip_gev_per_x0 * np.minimum(start, LAYER_DEPTHS_X0[-1][1])
    cascade = (energy - mip_total) * model.visible_fraction
    long_frac = _profile_fractions(a, model.b, start)
    expected = []
    for layer, (lo, hi) in enumerate(LAYER_DEPTHS_X0):
        t_mid = 0.5 * (lo + hi)
        r_core = (model.core_r0 + model.core_slope * t_mid) * width_scale * radius_jitter
        r_halo = (model.halo_r0 + model.halo_slope * t_mid) * width_scale * radius_jitter
        lateral = (model.core_fraction * cell_fractions(layer, x0, y0, r_core)
                   + (1.0 - model.core_fraction) * cell_fractions(layer, x0, y0, r_halo))
        mu = (cascade * long_frac[:, layer])[:, None, None] * lateral
        if model.mip_gev_per_x0 > 0:
            track_len = np.clip(start, lo, hi) - lo
            track = cell_fractions(layer, x0, y0, np.full(n, MIP_RADIUS_MM))
            mu = mu + (model.mip_gev_per_x0 * track_len)[:, None, None] * track
        expected.append(np.maximum(mu, 0.0).reshape(n, -1))
    return np.concatenate(expected, axis=1)


def _sample_deposits(model: ParticleModel, energy: np.ndarray, expected: np.ndarray,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Sampling fluctuations and readout threshold on expected voxel energies (N, 504)."""
    n = len(energy)
    # Deposited total: Beta around the expected containment, so 0 < total < E (conservation).
    m = np.clip(expected.sum(axis=1) / energy, 1e-6, 1.0 - 1e-6)
    kappa = energy / model.quantum_gev
    total = energy * rng.beta(kappa * m, kappa * (1.0 - m))
    # Shares: a Dirichlet with concentrations mu / q, drawn as normalised Gamma variates.
    draws = rng.gamma(expected / model.quantum_gev + 1e-12)
    norm = draws.sum(axis=1, keepdims=True)
    voxels = np.divide(draws, norm, out=np.zeros_like(draws), where=norm > 0) * total[:, None]
    voxels[voxels < READOUT_THRESHOLD_GEV] = 0.0
    out, offset = [], 0
    for (h, w) in LAYER_SHAPES:
        out.append(voxels[:, offset:offset + h * w].reshape(n, h, w).astype(np.float32))
        offset += h * w
    return out


def generate_showers(particle: str, n: int, seed: int = 0, width_scale: float = 1.0,
                     energy_range_gev: tuple[float, float] = (1.0, 100.0)) -> ShowerSet:
    """`n` synthetic showers of `particle` ("gamma", "eplus" or "piplus"), energies in GeV.

    Deterministic for a given (particle, n, seed, width_scale, energy_range_gev). `width_scale`
    multiplies every lateral radius (1.2 gives 20% wider showers).
    """
    if particle not in PARTICLES:
        raise UserError(f"unknown particle '{particle}', expected one of {sorted(PARTICLES)}")
    if n < 1:
        raise UserError(f"n must be >= 1, got {n}")
    lo, hi = energy_range_gev
    if not (0 < lo <= hi):
        raise UserError(f"energy range must satisfy 0 < min <= max, got {energy_range_gev}")
    if not width_scale > 0:
        raise UserError(f"width_scale must be > 0, got {width_scale}")
    model = PARTICLES[particle]
    rng = np.random.default_rng(seed)
    energy = rng.uniform(lo, hi, n)
    parts: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, n, _CHUNK):
        e = energy[start:start + _CHUNK]
        block = _sample_deposits(model, e, expected_voxel_energies(model, e, width_scale, rng),
                                 rng)
        for i, layer in enumerate(block):
            parts[i].append(layer)
    info = {"generator_particle": particle, "generator_seed": seed,
            "generator_width_scale": width_scale,
            "generator_note": "synthetic stand-in for CaloGAN (ffjord_kit), not Geant4"}
    return ShowerSet(energy=energy.astype(np.float32).reshape(-1, 1),
                     layers=tuple(np.concatenate(p) for p in parts), overflow=None, info=info)


def expected_deposit_fraction(particle: str, energy_gev: float, n: int = 4000,
                              seed: int = 0) -> float:
    """Mean expected deposited/incident fraction at one energy (containment x response), from
    the model before sampling fluctuations; for sanity checks of generated samples."""
    rng = np.random.default_rng(seed)
    energy = np.full(n, float(energy_gev))
    expected = expected_voxel_energies(PARTICLES[particle], energy, 1.0, rng)
    return float(expected.sum(axis=1).mean() / energy_gev)
