"""Distances between 1-D samples, and the statistical floor they should be judged against."""

from __future__ import annotations

import numpy as np
from scipy import stats


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1-D samples, in the samples' units."""
    return float(stats.wasserstein_distance(np.ravel(a), np.ravel(b)))


def ks_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic (max CDF difference) and its p-value."""
    res = stats.ks_2samp(np.ravel(a), np.ravel(b))
    return float(res.statistic), float(res.pvalue)


def compare_samples(reference: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """W1 and KS between a reference and a generated 1-D sample (NaNs dropped, counted)."""
    reference = np.ravel(np.asarray(reference, dtype=np.float64))
    generated = np.ravel(np.asarray(generated, dtype=np.float64))
    ok_r, ok_g = np.isfinite(reference), np.isfinite(generated)
    ks, p = ks_distance(reference[ok_r], generated[ok_g])
    return {
        "w1": wasserstein1(reference[ok_r], generated[ok_g]),
        "ks": ks,
        "ks_pvalue": p,
        "n_reference": int(ok_r.sum()),
        "n_generated": int(ok_g.sum()),
        "n_nonfinite": int((~ok_r).sum() + (~ok_g).sum()),
    }


def statistical_floor(reference: np.ndarray, n: int, rng: np.random.Generator,
                      repeats: int = 5) -> dict[str, float]:
    """Mean W1 and KS between two disjoint random halves-of-size-`n` of `reference`.

    This is what a perfect model would score against a sample of size `n`: distances below it
    cannot be resolved. Needs len(reference) >= 2 n.
    """
    reference = np.ravel(np.asarray(reference, dtype=np.float64))
    reference = reference[np.isfinite(reference)]
    if len(reference) < 2 * n:
        raise ValueError(f"statistical_floor needs >= {2 * n} values, got {len(reference)}")
    w1s, kss = [], []
    for _ in range(repeats):
        idx = rng.permutation(len(reference))
        a, b = reference[idx[:n]], reference[idx[n:2 * n]]
        w1s.append(wasserstein1(a, b))
        kss.append(ks_distance(a, b)[0])
    return {"w1": float(np.mean(w1s)), "ks": float(np.mean(kss))}
