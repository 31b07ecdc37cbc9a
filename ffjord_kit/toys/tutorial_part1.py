"""Tutorial Part 1: an unconditional FFJORD on two moons, and the answers to its questions.

1. log p(0, 0.5) under the model, next to the exact value;
2. where the base point (-0.1, 0.6) lands in moon space;
3. whether moon samples pushed through the inverse come back N(0, I).
Plus the test NLL (exact trace, adaptive solver) and its KL divergence to the true density.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import TrainingDiverged
from ..fileio import write_json
from ..fit import FitSettings, fit
from ..flows.continuous import ContinuousFlow, FlowConfig
from ..flows.flow_matching import FlowMatching
from . import plots2d
from .moons import DEFAULT_NOISE, moons_entropy, moons_log_density, sample_moons

QUESTION_POINT = (0.0, 0.5)
BASE_POINT = (-0.1, 0.6)


@dataclass
class Part1Settings:
    """Defaults: the project's fast configuration (see docs/walkthrough_part1.md)."""

    n_train: int = 8192
    n_test: int = 4096
    noise: float = DEFAULT_NOISE
    stacked: int = 1
    hidden: tuple[int, ...] = (64, 64, 64)
    activation: str = "tanh"
    solver: str = "rk4"  # training solver
    rk4_steps: int = 6
    trace: str = "exact"  # training trace estimator
    atol: float = 1e-5  # evaluation (and dopri5 training) tolerances
    rtol: float = 1e-5
    epochs: int = 150
    batch_size: int = 512
    lr: float = 8e-3
    kinetic: float = 0.01
    jacobian: float = 0.01
    jit_compile: bool = True
    objective: str = "max_likelihood"  # | flow_matching
    coupling: str = "independent"  # flow matching: independent | ot
    sigma_min: float = 0.0  # flow matching: end width of the path
    draws: int = 1  # flow matching: path samples per data point and step
    finetune_epochs: int = 0  # flow matching: the last N epochs by maximum likelihood
    finetune_lr: float = 0.0  # the fine-tune's own peak learning rate (0: schedule goes on)
    seed: int = 0
    grid: int = 100  # density map resolution per axis
    n_plot: int = 4000

    def __post_init__(self) -> None:
        self.fit_settings().train_settings()  # the Trainer's checks, before any work

    def fit_settings(self) -> FitSettings:
        return FitSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           kinetic=self.kinetic, jacobian=self.jacobian,
                           jit_compile=self.jit_compile, seed=self.seed,
                           objective=self.objective,
                           flow_matching=FlowMatching(self.sigma_min, self.coupling,
                                                      draws=self.draws),
                           finetune_epochs=self.finetune_epochs, finetune_lr=self.finetune_lr)

    def flow_config(self) -> FlowConfig:
        train_kwargs = ({"num_steps": self.rk4_steps} if self.solver == "rk4" else
                        {"atol": self.atol, "rtol": self.rtol})
        return FlowConfig(
            dim=2, num_stacked=self.stacked,
            backbone_kwargs={"hidden": list(self.hidden), "activation": self.activation},
            train_solver=self.solver, train_solver_kwargs=train_kwargs, train_trace=self.trace,
            eval_solver="dopri5",
            eval_solver_kwargs={"atol": self.atol, "rtol": self.rtol, "max_steps": 4000},
            eval_trace="exact", seed=self.seed)


# Each objective's recipe, on top of the dataclass defaults (measured in bench_moons.py and
# docs/walkthrough_part1.md). Flow matching: 94 epochs of straight-path regression with 4 path
# samples per point at a high learning rate, then 64 epochs of maximum likelihood (RNODE) on the
# same cosine schedule's tail.
DEFAULT_OBJECTIVE = "flow_matching"
RECIPES: dict[str, dict] = {
    "max_likelihood": {},
    "flow_matching": dict(objective="flow_matching", epochs=158, finetune_epochs=64, draws=4,
                          lr=2e-2, finetune_lr=2e-3),
}


def part1_settings(objective: str = "max_likelihood", **overrides) -> Part1Settings:
    """The recipe of `objective` (RECIPES) with `overrides` on top."""
    if objective not in RECIPES:
        raise ValueError(f"objective must be one of {sorted(RECIPES)}, got {objective!r}")
    return Part1Settings(**{**RECIPES[objective], **overrides})


def quick_settings(objective: str = "max_likelihood", **overrides) -> Part1Settings:
    """A smoke run of about a minute: small data, few epochs, coarse plots."""
    base = dict(n_train=2048, n_test=512, epochs=3, batch_size=256, hidden=(32, 32),
                rk4_steps=4, grid=40, n_plot=500, atol=1e-4, rtol=1e-4)
    if objective == "flow_matching":
        base.update(finetune_epochs=1)
    return part1_settings(objective, **{**base, **overrides})


def batched_log_prob(flow: ContinuousFlow, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    return np.concatenate([flow.log_prob(x[i:i + batch]).numpy()
                           for i in range(0, len(x), batch)])


def normality_report(z: np.ndarray) -> dict:
    """Mean, covariance and per-axis KS tests of z (N, D) against N(0, 1)."""
    ks = [stats.kstest(z[:, d], "norm") for d in range(z.shape[1])]
    return {"mean": z.mean(0), "covariance": np.cov(z, rowvar=False),
            "ks_statistic": [k.statistic for k in ks], "ks_pvalue": [k.pvalue for k in ks],
            "normal_at_5pct": bool(all(k.pvalue > 0.05 for k in ks))}


def answer_questions(flow: ContinuousFlow, s: Part1Settings, out: Path, log=print) -> dict:
    """Compute the answers, metrics and plots for a trained flow; writes OUT/answers.json."""
    t0 = time.perf_counter()
    x_test = sample_moons(s.n_test, s.noise, seed=s.seed + 1)
    q = np.array([QUESTION_POINT], np.float32)
    answers: dict = {"settings": dataclasses.asdict(s)}
    answers["q1_log_prob_at_0_0.5"] = {
        "model": float(flow.log_prob(q).numpy()[0]),
        "true": float(moons_log_density(q, s.noise)[0])}
    landed = flow.to_data(np.array([BASE_POINT], np.float32))[0].numpy()[0]
    answers["q2_base_point_-0.1_0.6_lands_at"] = {
        "x": landed, "true_log_density_there": float(moons_log_density(landed[None], s.noise)[0])}
    z_test = flow.to_latent(x_test)[0].numpy()
    answers["q3_inverse_of_moon_samples"] = normality_report(z_test)

    logp = batched_log_prob(flow, x_test)
    entropy, entropy_err = moons_entropy(s.noise)
    nll = float(-logp.mean())
    answers["test_nll"] = {"nats": nll, "stat_error": float(logp.std() / np.sqrt(len(logp))),
                           "n_test": s.n_test, "trace": "exact", "solver": "dopri5",
                           "atol": s.atol, "rtol": s.rtol}
    answers["true_entropy"] = {"nats": entropy, "stat_error": entropy_err}
    answers["kl_to_truth"] = nll - entropy
    # The same KL from paired differences on the test points: far smaller statistical error.
    diff = moons_log_density(x_test, s.noise) - logp
    answers["kl_to_truth_paired"] = {"nats": float(diff.mean()),
                                     "stat_error": float(diff.std() / np.sqrt(len(diff)))}
    flow.reset_nfe()
    flow.log_prob(x_test[:512])
    answers["nfe_per_eval_log_prob"] = flow.nfe
    # The sampling cost: function evaluations of the adaptive solver for one batch of samples.
    flow.reset_nfe()
    flow.to_data(np.random.default_rng(s.seed + 3).standard_normal((512, 2)).astype(np.float32))
    answers["nfe_per_sample_batch"] = flow.nfe

    lim = ((-1.6, 2.6), (-1.1, 1.6))
    z_plot = np.random.default_rng(s.seed + 2).standard_normal((s.n_plot, 2)).astype(np.float32)
    plots2d.scatter(z_plot, out / "base_samples.png", "base samples z ~ N(0, I)")
    plots2d.scatter(flow.to_data(z_plot)[0].numpy(), out / "flow_samples.png",
                    "flow samples x = F(z)", color="tab:red", lim=lim)
    plots2d.scatter(z_test[: s.n_plot], out / "inverse_of_moons.png",
                    "moons pushed through the inverse", color="tab:green")
    xs, ys = np.linspace(*lim[0], s.grid), np.linspace(*lim[1], s.grid)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    logp_grid = batched_log_prob(flow, grid).reshape(len(ys), len(xs))
    plots2d.density_map(logp_grid, xs, ys, out / "density.png", "model density",
                        data=x_test[:2000])
    g = np.linspace(-2.0, 2.0, 9)
    z_grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    times = np.linspace(0.0, 1.0, 5)
    plots2d.trajectories(flow.trajectory(z_grid, times), times, out / "trajectories.png",
                         "a grid of base points flowing to moon space")
    answers["plots"] = sorted(p.name for p in out.glob("*.png"))
    answers["evaluation_seconds"] = time.perf_counter() - t0
    write_json(out / "answers.json", answers)
    return answers


def run(s: Part1Settings, out: Path, log=print) -> dict:
    """Train on two moons, save the model to OUT/model, answer the questions."""
    flow = ContinuousFlow(s.flow_config())
    x = sample_moons(s.n_train, s.noise, seed=s.seed)
    fit_settings = s.fit_settings()
    try:
        history = fit(flow, x, fit_settings, log=log)
    except TrainingDiverged:
        flow.save(out / "model")  # the restored last good weights
        raise
    flow.save(out / "model")
    write_json(out / "history.json", history)
    plots2d.loss_curve(history, out / "loss.png", keys=("loss", "nll"))
    answers = answer_questions(flow, s, out, log)
    answers["training"] = {"seconds": history["seconds"][-1], "epochs": len(history["epoch"]),
                           "objective": s.objective, "finetune_epochs": s.finetune_epochs,
                           "final_train_nll": history["nll"][-1],
                           "nfe_per_step": history["nfe_per_step"][-1]}
    write_json(out / "answers.json", answers)
    return answers


def summary_lines(a: dict) -> list[str]:
    q1, q2, q3 = (a["q1_log_prob_at_0_0.5"], a["q2_base_point_-0.1_0.6_lands_at"],
                  a["q3_inverse_of_moon_samples"])
    mean, cov = np.asarray(q3["mean"]), np.asarray(q3["covariance"])
    return [
        f"Q1  log p(0, 0.5): model {q1['model']:.3f} nats, exact {q1['true']:.3f} nats",
        f"Q2  base point (-0.1, 0.6) lands at ({q2['x'][0]:.3f}, {q2['x'][1]:.3f}); "
        f"true log density there {q2['true_log_density_there']:.2f}",
        f"Q3  inverse of moon samples: mean ({mean[0]:.3f}, {mean[1]:.3f}), cov "
        f"[[{cov[0, 0]:.3f}, {cov[0, 1]:.3f}], [{cov[1, 0]:.3f}, {cov[1, 1]:.3f}]], "
        f"KS p-values {q3['ks_pvalue'][0]:.3f}, {q3['ks_pvalue'][1]:.3f} -> "
        f"{'consistent with' if q3['normal_at_5pct'] else 'not'} N(0, I) at 5%",
        f"test NLL {a['test_nll']['nats']:.4f} +- {a['test_nll']['stat_error']:.4f} nats "
        f"(exact trace); true entropy {a['true_entropy']['nats']:.4f} nats; "
        f"KL to truth {a['kl_to_truth']:.4f} nats (paired estimate "
        f"{a['kl_to_truth_paired']['nats']:.4f} +- {a['kl_to_truth_paired']['stat_error']:.4f})",
    ]
