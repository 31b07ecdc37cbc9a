"""The tutorial's conditional toy data (Part 2), with analytic densities and estimators.

Synthetic by construction; every quantity a flow is compared with is known in closed form.

- Discrete: two isotropic Gaussians in D dimensions, N(mean_1 * 1, sigma^2 I) with condition 1
  and N(mean_0 * 1, sigma^2 I) with condition 0 (tutorial: means 0 and -3, sigma 0.5, D = 2).
  The Bayes-optimal classifier thresholds the likelihood ratio; its accuracy is a Normal CDF.
- Continuous: c ~ U[c_low, c_high], x ~ N((c, ..., c), I). The likelihood of c given x is
  Gaussian with maximum at mean(x) (the average of x's coordinates) and standard deviation
  1 / sqrt(D); for M events sharing c, mean of all coordinates and 1 / sqrt(D M).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from scipy.stats import norm


@dataclass(frozen=True)
class TwoGaussians:
    """Discrete toy: condition 1 -> N(mean_1, sigma^2 I), condition 0 -> N(mean_0, sigma^2 I).

    mean_1, mean_0: the value of every coordinate of each mean. sigma: common width.
    dim: D. prior_1: the fraction of condition-1 events (0.5 in the tutorial).
    """

    mean_1: float = 0.0
    mean_0: float = -3.0
    sigma: float = 0.5
    dim: int = 2
    prior_1: float = 0.5

    def __post_init__(self) -> None:
        if not self.sigma > 0 or self.dim < 1 or not 0 < self.prior_1 < 1:
            raise ValueError("need sigma > 0, dim >= 1 and 0 < prior_1 < 1")
        if self.mean_1 == self.mean_0:
            raise ValueError("the two means must differ")

    def sample(self, n_per_class: int, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """n_per_class draws of each class, shuffled: x (2n, D) float32, condition (2n, 1)."""
        rng = np.random.default_rng(seed)
        c = np.repeat([1.0, 0.0], n_per_class)
        means = np.where(c == 1.0, self.mean_1, self.mean_0)[:, None]
        x = means + self.sigma * rng.standard_normal((2 * n_per_class, self.dim))
        order = rng.permutation(2 * n_per_class)
        return x[order].astype(np.float32), c[order, None].astype(np.float32)

    def log_density(self, x: np.ndarray, condition: np.ndarray | float) -> np.ndarray:
        """log p(x | c) for c in {0, 1}, shape (N,), nats."""
        x = np.asarray(x, np.float64)
        c = np.broadcast_to(np.asarray(condition, np.float64).reshape(-1), (len(x),))
        if not np.all((c == 0) | (c == 1)):
            raise ValueError("the discrete toy's condition is 0 or 1")
        mean = np.where(c == 1, self.mean_1, self.mean_0)[:, None]
        return (-0.5 * ((x - mean) ** 2).sum(1) / self.sigma**2
                - self.dim * np.log(self.sigma * np.sqrt(2 * np.pi)))

    def posterior_1(self, x: np.ndarray) -> np.ndarray:
        """Exact p(c = 1 | x) with the class prior `prior_1`, shape (N,)."""
        log_odds = (self.log_density(x, 1.0) - self.log_density(x, 0.0)
                    + np.log(self.prior_1 / (1 - self.prior_1)))
        return 1.0 / (1.0 + np.exp(-log_odds))

    @property
    def separation(self) -> float:
        """Distance between the two means, in units of sigma."""
        return abs(self.mean_1 - self.mean_0) * np.sqrt(self.dim) / self.sigma

    def bayes_accuracy(self) -> float:
        """Accuracy of the Bayes-optimal classifier (likelihood-ratio threshold with the prior).

        Projected on the line joining the means, each class is N(+-d/2, 1) in sigma units; the
        prior shifts the threshold by ln(pi_0 / pi_1) / d.
        """
        d = self.separation
        shift = np.log((1 - self.prior_1) / self.prior_1) / d
        return float(self.prior_1 * norm.cdf(d / 2 - shift)
                     + (1 - self.prior_1) * norm.cdf(d / 2 + shift))


@dataclass(frozen=True)
class ShiftedGaussian:
    """Continuous toy: c ~ U[c_low, c_high], x ~ N((c, ..., c), I_D)."""

    c_low: float = -3.0
    c_high: float = 3.0
    dim: int = 2

    def __post_init__(self) -> None:
        if not self.c_high > self.c_low or self.dim < 1:
            raise ValueError("need c_high > c_low and dim >= 1")

    def sample_conditions(self, n: int, seed: int | None = 0, low: float | None = None,
                          high: float | None = None) -> np.ndarray:
        """n conditions uniform on [low, high] (default: the training interval), shape (n, 1)."""
        low = self.c_low if low is None else low
        high = self.c_high if high is None else high
        rng = np.random.default_rng(seed)
        return rng.uniform(low, high, size=(n, 1)).astype(np.float32)

    def sample(self, condition: np.ndarray, seed: int | None = 0) -> np.ndarray:
        """One x per row of `condition` (N, 1): shape (N, D) float32."""
        c = np.asarray(condition, np.float64).reshape(-1, 1)
        rng = np.random.default_rng(seed)
        return (c + rng.standard_normal((len(c), self.dim))).astype(np.float32)

    def log_density(self, x: np.ndarray, condition: np.ndarray | float) -> np.ndarray:
        """log p(x | c), shape (N,), nats; condition broadcast to (N, 1)."""
        x = np.asarray(x, np.float64)
        c = np.broadcast_to(np.asarray(condition, np.float64).reshape(-1, 1), (len(x), 1))
        return -0.5 * ((x - c) ** 2).sum(1) - 0.5 * self.dim * np.log(2 * np.pi)

    def ml_estimate(self, x: np.ndarray) -> np.ndarray:
        """Analytic maximum-likelihood c per event: the mean of x's coordinates, shape (N,)."""
        return np.asarray(x, np.float64).mean(axis=1)

    def ml_sigma(self, n_events: int = 1) -> float:
        """Standard deviation of the ML estimate from n_events events: 1 / sqrt(D n)."""
        return float(1.0 / np.sqrt(self.dim * n_events))

    def joint_ml_estimate(self, x: np.ndarray) -> float:
        """Analytic ML c for events x (M, D) that share one condition: mean of all entries."""
        return float(np.asarray(x, np.float64).mean())


class AnalyticShiftedGaussianModel:
    """log p(x | c) of `ShiftedGaussian` in TensorFlow, with the flows' `log_prob` interface.

    Lets the inference code (gradient ascent, intervals, posteriors) be checked against closed
    forms, and serves as the reference likelihood in the toy script. The condition may have
    C > 1 columns: the mean is then (c_1, ..., c_C) in D = C dimensions.
    """

    def __init__(self, dim: int = 2, condition_dim: int = 1):
        if condition_dim not in (1, dim):
            raise ValueError("condition_dim must be 1 (mean (c,...,c)) or dim (mean c)")
        self.dim, self.condition_dim = dim, condition_dim

    def log_prob(self, x, condition=None) -> tf.Tensor:
        """log N(x; mean(c), I), shape (N,), for x (N, D) and condition (N, C)."""
        if condition is None:
            raise ValueError(f"this model is conditional: pass condition= of shape "
                             f"(N, {self.condition_dim})")
        x = tf.convert_to_tensor(x, tf.float32)
        c = tf.convert_to_tensor(condition, tf.float32)
        r = x - c  # (N, D) - (N, 1) broadcasts for C = 1
        return -0.5 * tf.reduce_sum(r * r, axis=1) - 0.5 * self.dim * np.log(2 * np.pi)
