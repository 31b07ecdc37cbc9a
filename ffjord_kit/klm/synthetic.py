"""Synthetic KLM photon timing: a documented physical model, so everything runs without the
(unavailable) ePIC simulation files. The data are SYNTHETIC, not detector simulation.

Geometry: a scintillator bar of length L along z, from -L/2 to +L/2, read out by one sensor
at z = +L/2; the far end (z = -L/2) reflects a fraction R of the light. A muon from a gun at
radial distance D0 in front of the bar crosses its thickness w at polar angle theta.

Per photon (all times in ns, lengths in cm):

1. muon hit time  t_mu = t0 + (D0 / sin theta) / (beta c),  t0 ~ U(0, gun_spread),
   beta = p / sqrt(p^2 + m_mu^2)    [context column `mu_hit_time`]
2. emission point along the muon path inside the bar, s ~ U(0, w / sin theta): emission time
   t_mu + s / (beta c) at bar position z + s cos theta  (theta moves the light source along z)
3. scintillation delay: rise (tau_r) + decay (tau_d) exponentials, i.e. the pulse shape
   (exp(-t/tau_d) - exp(-t/tau_r)) / (tau_d - tau_r)
4. propagation: isotropic emission; only light inside the total-internal-reflection cone
   (cos alpha in [sqrt(1 - 1/n^2), 1], uniform) is trapped. Half goes toward the sensor
   (distance d = L/2 - z), half away and reflects at the far end (d = (z + L/2) + L, kept
   with probability R). The path length is d / cos alpha at speed c/n: the effective speed
   along the bar is c cos alpha / n (15-19 cm/ns for n = 1.58). Photons survive attenuation
   with probability exp(-path / lambda_att) (rejection sampling on detected photons).
5. photon-sensor transit jitter: Gaussian with sigma_tts.

Photon hit time = sum of 2-5. It depends on z (propagation distance and its spread, the
reflected-light fraction), theta (muon flight time, emission spread), momentum (beta), and is
always > 0 because t_mu >= D0 / c ~ 1 ns >> sigma_tts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .schema import KLMTable

C_CM_PER_NS = 29.9792458
MUON_MASS_GEV = 0.1056584


@dataclass(frozen=True)
class TimingModel:
    """Parameters of the synthetic timing model (units in the field names)."""

    bar_length_cm: float = 200.0
    bar_thickness_cm: float = 2.0
    gun_distance_cm: float = 30.0
    gun_spread_ns: float = 0.5
    refractive_index: float = 1.58
    attenuation_length_cm: float = 300.0
    far_end_reflectivity: float = 0.5
    rise_time_ns: float = 0.9
    decay_time_ns: float = 2.1
    transit_jitter_ns: float = 0.3
    z_fraction: float = 0.95  # hit z uniform over this central fraction of the bar
    theta_range_rad: tuple[float, float] = (0.70, 2.44)  # about 40 to 140 degrees
    momentum_range_gev: tuple[float, float] = (0.3, 10.0)  # log-uniform

    def as_dict(self) -> dict:
        return asdict(self)


def draw_context(n: int, rng: np.random.Generator, model: TimingModel = TimingModel()
                 ) -> np.ndarray:
    """Muon kinematics for `n` photons: (n, 4) columns hit_z [cm], mu_hit_time [ns],
    theta [rad], mu_momentum [GeV/c]."""
    half = 0.5 * model.bar_length_cm * model.z_fraction
    z = rng.uniform(-half, half, n)
    theta = rng.uniform(*model.theta_range_rad, n)
    lo, hi = np.log(model.momentum_range_gev)
    p = np.exp(rng.uniform(lo, hi, n))
    beta = p / np.sqrt(p * p + MUON_MASS_GEV ** 2)
    t_mu = (rng.uniform(0.0, model.gun_spread_ns, n)
            + model.gun_distance_cm / np.sin(theta) / (beta * C_CM_PER_NS))
    return np.stack([z, t_mu, theta, p], axis=1)


def draw_photon_times(context: np.ndarray, rng: np.random.Generator,
                      model: TimingModel = TimingModel()) -> np.ndarray:
    """One detected photon's hit time [ns] per context row (shape (N,) from (N, 4)).

    Calling it twice with different generators gives two independent truth samples for the
    same contexts (used for the statistical floor of the validation)."""
    context = np.asarray(context, dtype=np.float64)
    n = context.shape[0]
    z, t_mu, theta, p = context.T
    beta = p / np.sqrt(p * p + MUON_MASS_GEV ** 2)
    out = np.empty(n)
    todo = np.arange(n)
    cos_crit = np.sqrt(1.0 - 1.0 / model.refractive_index ** 2)
    half_len = 0.5 * model.bar_length_cm
    while todo.size:  # rejection sampling: keep photons that reach the sensor
        m = todo.size
        zz, th, bb = z[todo], theta[todo], beta[todo]
        track = model.bar_thickness_cm / np.sin(th)
        s = rng.uniform(0.0, 1.0, m) * track
        z_emit = np.clip(zz + s * np.cos(th), -half_len, half_len)
        t_emit = t_mu[todo] + s / (bb * C_CM_PER_NS)
        toward = rng.uniform(size=m) < 0.5
        dist = np.where(toward, half_len - z_emit, (z_emit + half_len) + model.bar_length_cm)
        cos_a = rng.uniform(cos_crit, 1.0, m)
        path = dist / cos_a
        keep_prob = np.exp(-path / model.attenuation_length_cm)
        keep_prob = np.where(toward, keep_prob, keep_prob * model.far_end_reflectivity)
        kept = rng.uniform(size=m) < keep_prob
        scint = (rng.exponential(model.rise_time_ns, m)
                 + rng.exponential(model.decay_time_ns, m))
        t = (t_emit + scint + path * model.refractive_index / C_CM_PER_NS
             + rng.normal(0.0, model.transit_jitter_ns, m))
        out[todo[kept]] = t[kept]
        todo = todo[~kept]
    return out


def generate_table(n: int, seed: int, model: TimingModel = TimingModel()) -> KLMTable:
    """`n` synthetic photons (context and hit time), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    context = draw_context(n, rng, model)
    return KLMTable(context, draw_photon_times(context, rng, model))
