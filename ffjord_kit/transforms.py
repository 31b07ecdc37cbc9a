"""Invertible elementwise preprocessing shared by the data sets (pure numpy functions).

    z = logit_alpha(x)            # x in [0, 1] -> R, float64
    x = inverse_logit_alpha(z)    # exact inverse
"""

from __future__ import annotations

import numpy as np

ALPHA: float = 1e-6  # keeps logit finite at 0 and 1 (the tutorial's and CaloFlow's choice)


def logit_alpha(x: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """logit(alpha + (1 - 2 alpha) x) for x in [0, 1] (float64)."""
    y = alpha + (1.0 - 2.0 * alpha) * np.asarray(x, dtype=np.float64)
    return np.log(y) - np.log1p(-y)


def inverse_logit_alpha(z: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Inverse of `logit_alpha` (float64); values outside [0, 1] are possible for any real z."""
    y = 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))
    return (y - alpha) / (1.0 - 2.0 * alpha)
