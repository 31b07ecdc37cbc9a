"""SYNTHETIC gen -> reco jets and muons in the FlashSim layout (no CMS data can be had here).

This is a toy detector, not CMS physics: it exists so the whole chain (reader, training,
generation, validation) runs and so the model has realistic structure to learn -- steep gen
spectra, flavour mixtures, pt-dependent resolutions, flavour-dependent tagger scores with
correlations between taggers, integer multiplicities and ID flags, booleans, heavy tails. Every
number below is ours.

`synthetic_rows(kind, n, rng)` returns float32 rows [n, C + T] (conditions then targets,
targets through `reco_to_targets`), ready for `write_flashsim_h5`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..fileio import ensure_writable_dir
from .preprocessing import reco_to_targets, wrap_phi
from .reader import write_flashsim_h5
from .schemas import JETS, MUONS, get_schema


def _falling_pt(rng: np.random.Generator, n: int, pt_min: float, slope: float) -> np.ndarray:
    """A power-law-like steeply falling spectrum above pt_min (GeV)."""
    return pt_min * (1.0 - rng.uniform(size=n)) ** (-1.0 / slope)


def _beta(rng, a, b):
    return rng.beta(np.maximum(a, 0.05), np.maximum(b, 0.05))


def synthetic_jets(n: int, rng: np.random.Generator) -> np.ndarray:
    """n synthetic jets as FlashSim rows [n, 14 + 17]."""
    pt = _falling_pt(rng, n, 15.0, 3.0).clip(15.0, 3000.0)
    eta = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = pt * (0.05 + 0.1 * rng.gamma(2.0, 0.5, n)) / (1 + 0.3 * rng.uniform(size=n))
    u = rng.uniform(size=n)
    hadron = np.where(u < 0.2, 5, np.where(u < 0.32, 4, 0)).astype(float)
    light = rng.choice([1, 2, 3, 21, 21, 21, 0], size=n).astype(float)
    sign = rng.choice([-1.0, 1.0], size=n)
    parton = np.where(hadron > 0, sign * hadron, sign * light * (light < 21) + 21 * (light == 21))
    is_b, is_c = hadron == 5, hadron == 4

    # Gen muons near the jet: more often in b (semileptonic decays), absent -> defaults.
    def gen_muon(p_has):
        has = rng.uniform(size=n) < p_has
        dr = np.where(has, rng.exponential(0.12, n).clip(0, 0.4), 0.5)
        ang = rng.uniform(-np.pi, np.pi, n)
        mpt = np.where(has, pt * rng.beta(1.2, 6.0, n), 0.0)
        deta = np.where(has, dr * np.cos(ang), 0.5)
        dphi = np.where(has, dr * np.sin(ang), 0.5)
        return has, dr, mpt, deta, dphi
    has1, dr1, pt1, deta1, dphi1 = gen_muon(np.where(is_b, 0.35, np.where(is_c, 0.15, 0.03)))
    has2, dr2, pt2, deta2, dphi2 = gen_muon(np.where(has1, 0.1, 0.0))
    dr2, deta2, dphi2 = (np.where(has2, np.maximum(dr2, dr1), 0.5), deta2, dphi2)
    conditions = np.stack([dr1, pt1, deta1, dphi1, dr2, pt2, deta2, dphi2,
                           eta, mass, phi, pt, parton, hadron], axis=1)

    # Reco: response and resolution depend on pt; b jets with a muon lose the neutrino.
    res = np.sqrt((1.0 / np.sqrt(pt)) ** 2 + 0.05 ** 2)
    response = 0.98 - 0.06 * has1 * is_b - 0.02 * is_b
    pt_ratio = response + res * rng.standard_normal(n) + 0.03 * rng.standard_t(3, n) * res
    eta_res = 0.005 + 0.2 / pt
    reco_eta = eta + eta_res * rng.standard_normal(n)
    reco_phi = wrap_phi(phi + eta_res * rng.standard_normal(n))
    mass_ratio = np.exp(0.15 * rng.standard_normal(n) + 0.4 * res * rng.standard_normal(n))
    # Taggers share a latent "b-ness"; light jets sometimes get negative (default) scores.
    latent = np.where(is_b, 2.0, np.where(is_c, 0.3, -1.5)) + rng.standard_normal(n)
    sig = 1.0 / (1.0 + np.exp(-latent))
    deepb = _beta(rng, 8 * sig + 0.3, 8 * (1 - sig) + 0.3)
    flavb = np.clip(deepb + 0.05 * rng.standard_normal(n), 0, 1)
    csv = np.clip(0.8 * deepb + 0.2 * rng.uniform(size=n), 0, 1)
    csv = np.where(rng.uniform(size=n) < 0.03, -1.0, csv)
    cmva = np.clip(2 * deepb - 1 + 0.2 * rng.standard_normal(n), -1, 1)
    c_lat = np.where(is_c, 1.0, np.where(is_b, 0.3, -1.0)) + rng.standard_normal(n)
    deepc = _beta(rng, 3 / (1 + np.exp(-c_lat)) + 0.3, 3 + 0.3)
    flavc = np.clip(deepc + 0.04 * rng.standard_normal(n), 0, 1)
    deepb = np.where(rng.uniform(size=n) < 0.02, -1.0, deepb)
    gluon = np.abs(parton) == 21
    qgl = _beta(rng, np.where(gluon, 1.2, 3.0), np.where(gluon, 3.0, 1.2))
    qgl = np.where(rng.uniform(size=n) < 0.02, -1.0, qgl)
    n_const = rng.poisson(4 + 6 * np.log(pt / 10) + 6 * gluon)
    mu_ef = np.where(has1 & (dr1 < 0.4), np.clip(pt1 / pt + 0.05 * rng.standard_normal(n),
                                                 0, 1), rng.exponential(0.003, n)).clip(0, 1)
    area = 0.5 + 0.03 * rng.standard_normal(n) - 0.02 * (pt < 30)
    breg = 1.0 + 0.08 * is_b + 0.1 * has1 * is_b + 0.08 * rng.standard_normal(n)
    puid = np.where(pt > 50, 7, rng.choice([0, 4, 6, 7], size=n, p=[0.15, 0.1, 0.25, 0.5]))
    jetid = np.where(rng.uniform(size=n) < 0.97, 6, 2)
    reco = {"Jet_area": area, "Jet_btagCMVA": cmva, "Jet_btagCSVV2": csv,
            "Jet_btagDeepB": deepb, "Jet_btagDeepC": deepc, "Jet_btagDeepFlavB": flavb,
            "Jet_btagDeepFlavC": flavc, "Jet_eta": reco_eta, "Jet_bRegCorr": breg,
            "Jet_mass": mass_ratio * mass, "Jet_nConstituents": n_const, "Jet_phi": reco_phi,
            "Jet_pt": pt_ratio * pt, "Jet_qgl": qgl, "Jet_muEF": mu_ef, "Jet_puId": puid,
            "Jet_jetId": jetid}
    return np.concatenate([conditions.astype(np.float32),
                           reco_to_targets(JETS, conditions, reco)], axis=1)


def synthetic_muons(n: int, rng: np.random.Generator) -> np.ndarray:
    """n synthetic muons as FlashSim rows [n, 30 + 22]."""
    pt = _falling_pt(rng, n, 5.0, 2.5).clip(5.0, 1000.0)
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = rng.choice([-1.0, 1.0], size=n)
    prompt = rng.uniform(size=n) < 0.6  # from W/Z/top; the rest from b/c decays
    bits = np.zeros((n, 15))
    bits[:, 0] = prompt
    bits[:, 1] = prompt & (rng.uniform(size=n) < 0.9)
    bits[:, 2] = ~prompt
    bits[:, 7] = rng.uniform(size=n) < 0.5
    bits[:, 8] = prompt | (rng.uniform(size=n) < 0.2)
    bits[:, 13] = 1.0
    jet_dr = np.where(prompt, rng.uniform(0.4, 3.0, n), rng.exponential(0.15, n))
    ang = rng.uniform(-np.pi, np.pi, n)
    jet_pt = pt * np.where(prompt, rng.uniform(0.2, 3, n), rng.uniform(1.5, 8, n)) + 15
    jet_mass = jet_pt * rng.uniform(0.05, 0.2, n)
    npu = rng.poisson(30, n).astype(float)
    ntrue = npu + 2 * rng.standard_normal(n)
    pudens = np.maximum(npu / 40 + 0.1 * rng.standard_normal(n), 0.0)
    gpudens = np.maximum(pudens + 0.05 * rng.standard_normal(n), 0.0)
    sum_eoot = npu * rng.uniform(5, 15, n) + 1
    sum_loot = np.maximum(npu * rng.uniform(0, 10, n), 0.0)
    conditions = np.concatenate([
        np.stack([eta, phi, np.log(pt), charge], 1), bits,
        np.stack([jet_dr, jet_dr * np.cos(ang), jet_dr * np.sin(ang), np.log1p(jet_pt),
                  np.log1p(jet_mass), gpudens, npu, ntrue, pudens, np.log(sum_eoot),
                  np.log1p(sum_loot)], 1)], axis=1)

    res = 0.01 + 0.0001 * pt + 0.005 * (np.abs(eta) > 1.2)
    reco_pt = pt * (1 + res * rng.standard_normal(n) + 0.2 * res * rng.standard_t(2.5, n))
    reco_eta = eta + (3e-4 + 2e-3 / pt) * rng.standard_normal(n)
    reco_phi = wrap_phi(phi + (3e-4 + 3e-3 / pt) * rng.standard_normal(n))
    dxy_err = np.exp(np.log(0.002 + 0.02 / pt) + 0.2 * rng.standard_normal(n))
    dz_err = dxy_err * np.exp(0.3 + 0.2 * rng.standard_normal(n))
    displacement = np.where(prompt, 0.0, rng.exponential(0.03, n))
    dxy = (displacement * rng.choice([-1, 1], n) + dxy_err * rng.standard_normal(n))
    dz = 1.5 * displacement * rng.choice([-1, 1], n) + dz_err * rng.standard_normal(n)
    ip3d = np.sqrt(dxy ** 2 + dz ** 2)
    sip3d = ip3d / np.sqrt(dxy_err ** 2 + dz_err ** 2)
    p_glob = 1 / (1 + np.exp(-(pt - 8) / 1.5))
    is_global = rng.uniform(size=n) < p_glob
    is_tracker = is_global | (rng.uniform(size=n) < 0.9)
    is_pf = is_tracker & (rng.uniform(size=n) < 0.97)
    medium = is_global & is_pf & (rng.uniform(size=n) < np.where(prompt, 0.97, 0.85))
    soft = is_tracker & (sip3d < 20) & (rng.uniform(size=n) < 0.95)
    iso_scale = np.where(prompt, 0.03, 0.5) * np.exp(-np.clip(jet_dr - 0.4, 0, 3))
    iso03 = rng.exponential(iso_scale + 0.01, n) * (rng.uniform(size=n) > 0.3)
    iso03_chg = iso03 * rng.uniform(0.3, 1.0, n)
    iso04 = iso03 * (1.3 + 0.3 * rng.uniform(size=n))
    jet_rel_iso = np.where(jet_dr < 0.4, jet_pt / pt - 1, iso04) * rng.uniform(0.8, 1.0, n)
    jet_rel_iso = np.maximum(jet_rel_iso, 0.0)
    ptrel = np.where(jet_dr < 0.4, rng.gamma(2.0, 1.0, n), 0.0)
    soft_mva = np.clip(np.tanh(np.where(prompt, 1.5, 0.3) + 0.7 * rng.standard_normal(n)),
                       -1, 1)
    soft_mva_id = soft_mva > 0.58
    reco = {"Muon_eta": reco_eta, "Muon_phi": reco_phi, "Muon_pt": reco_pt, "Muon_dxy": dxy,
            "Muon_dxyErr": dxy_err, "Muon_dz": dz, "Muon_dzErr": dz_err, "Muon_ip3d": ip3d,
            "Muon_isGlobal": is_global, "Muon_isPFcand": is_pf, "Muon_isTracker": is_tracker,
            "Muon_jetPtRelv2": ptrel, "Muon_jetRelIso": jet_rel_iso, "Muon_mediumId": medium,
            "Muon_pfRelIso03_all": iso03, "Muon_pfRelIso03_chg": iso03_chg,
            "Muon_pfRelIso04_all": iso04, "Muon_ptErr": reco_pt * res, "Muon_sip3d": sip3d,
            "Muon_softId": soft, "Muon_softMva": soft_mva, "Muon_softMvaId": soft_mva_id}
    return np.concatenate([conditions.astype(np.float32),
                           reco_to_targets(MUONS, conditions, reco)], axis=1)


def synthetic_rows(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n synthetic FlashSim rows of `kind` ("jets" or "muons"), float32."""
    get_schema(kind)
    return synthetic_jets(n, rng) if kind == "jets" else synthetic_muons(n, rng)


def make_synthetic_dataset(kind: str, n_train: int, n_files: int, out: str | os.PathLike,
                           n_val: int = 20_000, n_test: int = 40_000,
                           seed: int = 0) -> dict[str, list[Path]]:
    """Write train_000.h5 ... (n_train rows over n_files files), val.h5 and test.h5 to `out`."""
    schema = get_schema(kind)
    out = ensure_writable_dir(out)
    rng = np.random.default_rng(seed)
    per_file = np.diff(np.linspace(0, n_train, n_files + 1).astype(int))
    train = [write_flashsim_h5(out / f"train_{i:03d}.h5", synthetic_rows(kind, int(m), rng),
                               schema) for i, m in enumerate(per_file)]
    val = write_flashsim_h5(out / "val.h5", synthetic_rows(kind, n_val, rng), schema)
    test = write_flashsim_h5(out / "test.h5", synthetic_rows(kind, n_test, rng), schema)
    return {"train": train, "val": [val], "test": [test]}
