"""Tutorial Part 2: conditional flows p(x | c) and inference on the condition.

Discrete case: two Gaussians (condition 1 and 0); samples per condition, where each Gaussian
lands in base space, and classification with p(c | x) against the Bayes-optimal accuracy.
Continuous case: x ~ N((c, c), I), c uniform; samples at several c, per-event maximum-likelihood
fits of c with intervals (bias, RMS, pulls, coverage) against the analytic estimator mean(x),
a MAP fit with a Normal prior, and a joint fit of one c from many events.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import inference as inf
from ..fileio import write_json
from ..fit import FitSettings, fit
from ..flows.continuous import ContinuousFlow, FlowConfig
from ..flows.flow_matching import FlowMatching
from . import plots_conditional as plots
from .gaussians import AnalyticShiftedGaussianModel, ShiftedGaussian, TwoGaussians

# Acceptance limits of the issue (docs/walkthrough_part2.md).
ACCURACY_MARGIN = 0.01
RMS_RATIO_LIMIT = 0.10
COVERAGE_RANGE = (0.62, 0.74)
JOINT_PULL_LIMIT = 3.0


@dataclass
class Part2Settings:
    """Defaults: the full run (about 10 minutes on 2 CPU cores)."""

    # discrete toy (tutorial: N(0, 0.5^2) for c = 1, N(-3, 0.5^2) for c = 0, 4096 each)
    n_per_class: int = 4096
    n_test_per_class: int = 4096
    discrete_epochs: int = 20
    # continuous toy: c ~ U[c_low, c_high], x ~ N((c, c), I)
    n_continuous: int = 16384
    c_low: float = -3.0
    c_high: float = 3.0
    test_low: float = -1.5  # known draws are taken inside the training interval
    test_high: float = 1.5
    continuous_epochs: int = 30
    n_fits: int = 1000  # per-event fits of known draws
    n_joint: int = 1000  # events in the joint fit
    starts: int = 4
    fit_steps: int = 60  # Adam steps before Newton polishing
    prior_sigma: float = 1.0  # Normal(0, prior_sigma) prior of the MAP demonstration
    hypotheses: tuple[float, float] = (0.0, 0.5)  # two-point test with the continuous model
    # flow and training
    stacked: int = 1
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    rk4_steps: int = 6  # training solver steps
    likelihood_rk4_steps: int = 8  # RK4 steps of the inference likelihood
    batch_size: int = 512
    lr: float = 5e-3
    reg: float = 0.01  # RNODE kinetic and Jacobian weights (maximum-likelihood epochs)
    jit_compile: bool = True
    objective: str = "max_likelihood"  # | flow_matching (both models)
    draws: int = 1  # flow matching: path samples per data point and step
    finetune_share: float = 0.0  # flow matching: share of each model's epochs by likelihood
    finetune_lr: float = 0.0  # the fine-tune's own peak learning rate
    seed: int = 0
    n_plot: int = 2000
    curve_events: int = 4
    extra: dict = field(default_factory=dict)

    def flow_config(self, seed_offset: int = 0) -> FlowConfig:
        return FlowConfig(
            dim=2, condition_dim=1, num_stacked=self.stacked,
            backbone_kwargs={"hidden": list(self.hidden), "activation": self.activation},
            train_solver="rk4", train_solver_kwargs={"num_steps": self.rk4_steps},
            train_trace="exact", eval_solver="dopri5",
            eval_solver_kwargs={"atol": 1e-5, "rtol": 1e-5, "max_steps": 2000},
            eval_trace="exact", seed=self.seed + seed_offset)

    def __post_init__(self) -> None:
        for epochs in (self.discrete_epochs, self.continuous_epochs):
            self.fit_settings(epochs).train_settings()  # the Trainer's checks, before any work

    def fit_settings(self, epochs: int) -> FitSettings:
        finetune = (max(1, round(self.finetune_share * epochs))
                    if self.finetune_share > 0 else 0)
        return FitSettings(epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                           kinetic=self.reg, jacobian=self.reg, jit_compile=self.jit_compile,
                           seed=self.seed, objective=self.objective,
                           flow_matching=FlowMatching(draws=self.draws),
                           finetune_epochs=finetune, finetune_lr=self.finetune_lr)


# Each objective's recipe on top of the dataclass defaults (docs/walkthrough_part2.md).
# Flow matching: a high learning rate with 4 path samples per point, then a third of the
# epochs by likelihood (the same split as Part 1's recipe).
RECIPES: dict[str, dict] = {
    "max_likelihood": {},
    "flow_matching": dict(objective="flow_matching", draws=4, lr=2e-2, finetune_lr=2e-3,
                          finetune_share=0.4, discrete_epochs=40, continuous_epochs=60),
}


def part2_settings(objective: str = "max_likelihood", **overrides) -> Part2Settings:
    """The recipe of `objective` (RECIPES) with `overrides` on top."""
    if objective not in RECIPES:
        raise ValueError(f"objective must be one of {sorted(RECIPES)}, got {objective!r}")
    return Part2Settings(**{**RECIPES[objective], **overrides})


def quick_settings(objective: str = "max_likelihood", **overrides) -> Part2Settings:
    """A smoke run (well under a minute of work): tiny data, few epochs and fits."""
    base = dict(n_per_class=1024, n_test_per_class=512, discrete_epochs=2, n_continuous=2048,
                continuous_epochs=3, n_fits=40, n_joint=200, starts=2, fit_steps=30,
                hidden=(16, 16), rk4_steps=4, likelihood_rk4_steps=4, n_plot=200,
                curve_events=2, jit_compile=False)
    return part2_settings(objective, **{**base, **overrides})


def _train(flow: ContinuousFlow, x, c, s: Part2Settings, epochs: int, log) -> dict:
    history = fit(flow, x, s.fit_settings(epochs), condition=c, log=log)
    return history


def _cloud(z: np.ndarray) -> dict:
    """Mean and covariance of points (N, D), and the mean squared radius (D for N(0, I))."""
    return {"mean": z.mean(0), "covariance": np.cov(z, rowvar=False),
            "mean_squared_radius": float((z * z).sum(1).mean())}


# ----------------------------------------------------------------------------- discrete
def run_discrete(s: Part2Settings, out: Path, log=print) -> tuple[dict, dict]:
    toy = TwoGaussians()
    x, c = toy.sample(s.n_per_class, seed=s.seed)
    flow = ContinuousFlow(s.flow_config())
    history = _train(flow, x, c, s, s.discrete_epochs, log)
    flow.save(out / "discrete_model")
    t0 = time.perf_counter()
    a: dict = {"toy": dataclasses.asdict(toy)}

    # samples per condition (accurate Dopri5 path)
    n = s.n_plot
    samples = {k: flow.sample(n, condition=float(k), seed=s.seed + 10 + k).numpy()
               for k in (0, 1)}
    truth = {k: toy.sample(n, seed=s.seed + 20 + k)[0] for k in (0, 1)}
    x_test, c_test = toy.sample(s.n_test_per_class, seed=s.seed + 1)
    own = {k: x_test[c_test[:, 0] == k][:n] for k in (0, 1)}
    a["samples_per_condition"] = {
        f"c={k}": {"model": _cloud(samples[k]),
                   "true_mean": [toy.mean_1 if k else toy.mean_0] * 2,
                   "true_sigma": toy.sigma} for k in (0, 1)}
    plots.panels([{"true c=1": truth[1], "true c=0": truth[0]},
                  {"flow c=1": samples[1], "flow c=0": samples[0]}],
                 ["data: two Gaussians", "flow samples per condition"],
                 out / "discrete_samples.png")

    # where each Gaussian lands in base space: with its own and with the other condition
    base_own = {k: flow.to_latent(own[k], condition=float(k))[0].numpy() for k in (0, 1)}
    base_wrong = {k: flow.to_latent(own[k], condition=float(1 - k))[0].numpy() for k in (0, 1)}
    a["base_space"] = {f"c={k} samples, inverted with c={k}": _cloud(base_own[k])
                       for k in (0, 1)}
    a["base_space"].update({f"c={k} samples, inverted with c={1 - k}": _cloud(base_wrong[k])
                            for k in (0, 1)})
    plots.panels([{"c=1 with c=1": base_own[1], "c=0 with c=0": base_own[0]},
                  {"c=1 with c=0": base_wrong[1], "c=0 with c=1": base_wrong[0]}],
                 ["base space, inverted with their own condition",
                  "base space, inverted with the other condition"],
                 out / "discrete_base_space.png")

    # classification with p(c | x): the inference likelihood is an RK4 snapshot (checked here)
    lik = inf.rk4_likelihood(flow, s.likelihood_rk4_steps)
    probe = x_test[:512]
    d_lp = (lik.log_prob(probe, condition=c_test[:512]).numpy()
            - flow.log_prob(probe, condition=c_test[:512]).numpy())
    post = inf.class_posterior(lik, x_test, [0.0, 1.0], prior=[0.5, 0.5])
    pred = (post[:, 1] > 0.5).astype(np.float32)
    acc = float(np.mean(pred == c_test[:, 0]))
    bayes_pred = (toy.posterior_1(x_test) > 0.5).astype(np.float32)
    a["classification"] = {
        "n_test": len(x_test), "accuracy": acc, "bayes_optimal_accuracy": toy.bayes_accuracy(),
        "bayes_rule_accuracy_on_this_sample": float(np.mean(bayes_pred == c_test[:, 0])),
        "separation_sigma": toy.separation,
        "mean_abs_posterior_difference": float(np.abs(post[:, 1]
                                                      - toy.posterior_1(x_test)).mean()),
        "within_1_point": abs(acc - toy.bayes_accuracy()) <= ACCURACY_MARGIN}
    a["rk4_vs_dopri5_max_abs_dlogp"] = float(np.abs(d_lp).max())
    a["evaluation_seconds"] = time.perf_counter() - t0
    return a, history


# ----------------------------------------------------------------------------- continuous
def _coverage_stats(true_c, fitted, sigma, lower, upper, analytic) -> dict:
    err, err_an = fitted - true_c, analytic - true_c
    pulls = err / sigma
    rms, rms_an = float(np.sqrt(np.mean(err**2))), float(np.sqrt(np.mean(err_an**2)))
    return {
        "n": len(true_c), "bias": float(err.mean()),
        "bias_stat_error": float(err.std() / np.sqrt(len(err))), "rms": rms,
        "analytic_rms": rms_an, "rms_ratio_minus_1": rms / rms_an - 1.0,
        "rms_fit_minus_analytic": float(np.sqrt(np.mean((fitted - analytic) ** 2))),
        "pull_mean": float(pulls.mean()), "pull_std": float(pulls.std()),
        "mean_sigma": float(sigma.mean()),
        "coverage_delta_2lnL_1": float(np.mean((true_c >= lower) & (true_c <= upper))),
        "coverage_curvature_1sigma": float(np.mean(np.abs(pulls) <= 1.0)),
        "mean_interval_half_width": float(np.mean((upper - lower) / 2))}


def run_continuous(s: Part2Settings, out: Path, log=print) -> tuple[dict, dict]:
    toy = ShiftedGaussian(s.c_low, s.c_high)
    c = toy.sample_conditions(s.n_continuous, seed=s.seed + 100)
    x = toy.sample(c, seed=s.seed + 101)
    flow = ContinuousFlow(s.flow_config(seed_offset=1))
    history = _train(flow, x, c, s, s.continuous_epochs, log)
    flow.save(out / "continuous_model")
    t0 = time.perf_counter()
    a: dict = {"toy": dataclasses.asdict(toy)}

    shown = (-2.0, 0.0, 2.0)
    samples = {v: flow.sample(s.n_plot, condition=v, seed=s.seed + 110).numpy() for v in shown}
    a["samples_at_c"] = {f"c={v}": {**_cloud(samples[v]), "true_mean": [v, v]} for v in shown}
    plots.panels([{f"c={v}": samples[v] for v in shown}], ["flow samples, x ~ N((c, c), I)"],
                 out / "continuous_samples.png", lim=5.0)

    lik = inf.rk4_likelihood(flow, s.likelihood_rk4_steps)
    bounds = (s.c_low, s.c_high)
    starts = inf.grid_starts(bounds, s.starts)

    # per-event ML fits of known draws
    true_c = toy.sample_conditions(s.n_fits, seed=s.seed + 200, low=s.test_low,
                                   high=s.test_high)
    xt = toy.sample(true_c, seed=s.seed + 201)
    true_c = true_c[:, 0].astype(np.float64)
    t_fit = time.perf_counter()
    res = inf.fit_condition(lik, xt, starts, bounds=bounds, steps=s.fit_steps)
    lower, upper = inf.likelihood_interval(lik, xt, res, bounds=bounds)
    t_fit = time.perf_counter() - t_fit
    fitted, sigma = res.condition[:, 0], res.sigma[:, 0]
    analytic = toy.ml_estimate(xt)
    a["per_event_fits"] = _coverage_stats(true_c, fitted, sigma, lower, upper, analytic)
    a["per_event_fits"].update({
        "analytic_sigma": toy.ml_sigma(1), "at_bound": int(res.at_bound.sum()),
        "seconds": t_fit, "starts": s.starts, "adam_steps": s.fit_steps})
    plots.fitted_vs_true(true_c, fitted, analytic, sigma, (fitted - true_c) / sigma,
                         out / "fitted_vs_true.png")

    # the same optimiser on the closed-form likelihood: isolates optimiser from flow errors
    exact = AnalyticShiftedGaussianModel()
    res_exact = inf.fit_condition(exact, xt, starts, bounds=bounds, steps=s.fit_steps)
    inside = ~res_exact.at_bound[:, 0]
    a["optimiser_on_analytic_likelihood"] = {
        "max_abs_error_vs_mean_x": float(np.abs(res_exact.condition[inside, 0]
                                                - analytic[inside]).max()),
        "max_abs_sigma_error": float(np.abs(res_exact.sigma[inside, 0]
                                            - toy.ml_sigma(1)).max())}

    # MAP with a Normal(0, prior_sigma) prior; analytic MAP = mean(x) D s^2 / (D s^2 + 1)
    prior = inf.gaussian_prior(0.0, s.prior_sigma)
    res_map = inf.fit_condition(lik, xt, starts, bounds=bounds, prior=prior, steps=s.fit_steps)
    shrink = 2 * s.prior_sigma**2 / (2 * s.prior_sigma**2 + 1)
    map_exact = analytic * shrink
    a["map_fits"] = {
        "prior": f"Normal(0, {s.prior_sigma})",
        "rms_fit_minus_analytic_map": float(np.sqrt(np.mean((res_map.condition[:, 0]
                                                             - map_exact) ** 2))),
        "mean_posterior_sigma": float(np.nanmean(res_map.sigma[:, 0])),
        "analytic_posterior_sigma": float(np.sqrt(1 / (2 + 1 / s.prior_sigma**2)))}

    # log-likelihood curves against c for a few events
    grid = np.linspace(s.c_low, s.c_high, 121)
    k = s.curve_events
    ll_flow = inf.profile_likelihood(lik, xt[:k], grid)
    ll_true = np.stack([toy.log_density(np.repeat(xt[i:i + 1], len(grid), 0), grid)
                        for i in range(k)])
    plots.likelihood_curves(grid, ll_flow, ll_true, true_c[:k], fitted[:k],
                            out / "likelihood_curves.png", "per-event log-likelihood")

    # joint fit of one condition from n_joint events
    c_joint = float(toy.sample_conditions(1, seed=s.seed + 300, low=s.test_low,
                                          high=s.test_high)[0, 0])
    xj = toy.sample(np.full((s.n_joint, 1), c_joint), seed=s.seed + 301)
    t_joint = time.perf_counter()
    rj = inf.fit_condition(lik, xj, starts, bounds=bounds, joint=True, steps=s.fit_steps)
    lo_j, hi_j = inf.likelihood_interval(lik, xj, rj, bounds=bounds, joint=True)
    t_joint = time.perf_counter() - t_joint
    cj, sj = float(rj.condition[0, 0]), float(rj.sigma[0, 0])
    se = toy.ml_sigma(s.n_joint)
    a["joint_fit"] = {
        "n_events": s.n_joint, "true_c": c_joint, "fitted_c": cj, "sigma_curvature": sj,
        "interval": [float(lo_j[0]), float(hi_j[0])], "analytic_estimate":
            toy.joint_ml_estimate(xj), "analytic_standard_error": se,
        "deviation_in_standard_errors": (cj - c_joint) / se,
        "analytic_deviation_in_standard_errors": (toy.joint_ml_estimate(xj) - c_joint) / se,
        "seconds": t_joint}
    jgrid = cj + se * np.linspace(-4, 4, 81)
    jl_flow = inf.profile_likelihood(lik, xj, jgrid, joint=True)
    jl_true = np.array([toy.log_density(xj, v).sum() for v in jgrid])
    plots.likelihood_curves(jgrid, jl_flow[None], jl_true[None], np.array([c_joint]),
                            np.array([cj]), out / "joint_likelihood.png",
                            f"joint log-likelihood of {s.n_joint} events")

    # two-hypothesis test with the continuous model: c in `hypotheses`, equal priors
    h0, h1 = s.hypotheses
    pair = TwoGaussians(mean_1=h1, mean_0=h0, sigma=1.0)
    xh, ch = pair.sample(s.n_test_per_class, seed=s.seed + 400)
    post = inf.class_posterior(lik, xh, [h0, h1])
    acc = float(np.mean((post[:, 1] > 0.5) == (ch[:, 0] == 1)))
    a["two_hypothesis_test"] = {
        "hypotheses": [h0, h1], "n_test": len(xh), "accuracy": acc,
        "bayes_optimal_accuracy": pair.bayes_accuracy(),
        "mean_abs_posterior_difference": float(np.abs(post[:, 1]
                                                      - pair.posterior_1(xh)).mean())}
    a["evaluation_seconds"] = time.perf_counter() - t0
    return a, history


# ----------------------------------------------------------------------------- driver
def acceptance(a: dict) -> dict:
    """The issue's acceptance checks, each True/False."""
    cls, pe, jf = a["discrete"]["classification"], a["continuous"]["per_event_fits"], \
        a["continuous"]["joint_fit"]
    return {
        "discrete_accuracy_within_1_point_of_bayes":
            abs(cls["accuracy"] - cls["bayes_optimal_accuracy"]) <= ACCURACY_MARGIN,
        "rms_within_10_percent_of_analytic": abs(pe["rms_ratio_minus_1"]) <= RMS_RATIO_LIMIT,
        "coverage_68_in_range":
            COVERAGE_RANGE[0] <= pe["coverage_delta_2lnL_1"] <= COVERAGE_RANGE[1],
        "at_least_200_draws": pe["n"] >= 200,
        "joint_fit_within_3_standard_errors":
            abs(jf["deviation_in_standard_errors"]) <= JOINT_PULL_LIMIT}


def run(s: Part2Settings, out: Path, log=print) -> dict:
    """Train both toys, answer the Part 2 questions, write OUT/answers.json and the plots."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    answers: dict = {"settings": dataclasses.asdict(s)}
    log("== discrete condition: two Gaussians ==")
    answers["discrete"], h_disc = run_discrete(s, out, log)
    log("== continuous condition: x ~ N((c, c), I) ==")
    answers["continuous"], h_cont = run_continuous(s, out, log)
    for key, h in (("discrete", h_disc), ("continuous", h_cont)):
        answers[key]["training"] = {"seconds": h["seconds"][-1], "epochs": len(h["epoch"]),
                                    "final_train_nll": h["nll"][-1]}
    answers["continuous"]["training"]["true_entropy_nats"] = float(np.log(2 * np.pi * np.e))
    plots.loss_curves({"discrete": h_disc, "continuous": h_cont}, out / "training_nll.png")
    write_json(out / "history.json", {"discrete": h_disc, "continuous": h_cont})
    answers["acceptance"] = acceptance(answers)
    answers["plots"] = sorted(p.name for p in out.glob("*.png"))
    answers["wall_seconds"] = time.perf_counter() - t0
    # CPU seconds of this process: the wall time depends on what else shares the machine
    answers["cpu_seconds"] = time.process_time() - cpu0
    write_json(out / "answers.json", answers)
    return answers


def summary_lines(a: dict) -> list[str]:
    d, c = a["discrete"], a["continuous"]
    cls, pe, jf, mp = (d["classification"], c["per_event_fits"], c["joint_fit"], c["map_fits"])
    own = [d["base_space"][f"c={k} samples, inverted with c={k}"] for k in (0, 1)]
    wrong = [d["base_space"][f"c={k} samples, inverted with c={1 - k}"] for k in (0, 1)]
    th = c["two_hypothesis_test"]
    lines = [
        "base space: each Gaussian inverted with its own condition lands on N(0, I): means "
        + ", ".join(f"({m['mean'][0]:.2f}, {m['mean'][1]:.2f})" for m in own)
        + ", <r^2> " + ", ".join(f"{m['mean_squared_radius']:.2f}" for m in own)
        + " (2 for N(0, I)); with the other condition: means "
        + ", ".join(f"({m['mean'][0]:.2f}, {m['mean'][1]:.2f})" for m in wrong),
        f"classification p(c|x): accuracy {cls['accuracy']:.5f} vs Bayes-optimal "
        f"{cls['bayes_optimal_accuracy']:.5f} (n = {cls['n_test']})",
        f"two-hypothesis test c in {th['hypotheses']}: accuracy {th['accuracy']:.4f} vs Bayes "
        f"{th['bayes_optimal_accuracy']:.4f}",
        f"per-event ML fits (n = {pe['n']}): bias {pe['bias']:+.4f}, RMS {pe['rms']:.4f} vs "
        f"analytic {pe['analytic_rms']:.4f} ({100 * pe['rms_ratio_minus_1']:+.1f}%), pulls "
        f"{pe['pull_mean']:+.3f} +- {pe['pull_std']:.3f}, 68% coverage "
        f"{pe['coverage_delta_2lnL_1']:.3f} (curvature: {pe['coverage_curvature_1sigma']:.3f})",
        f"MAP with {mp['prior']}: RMS vs analytic MAP {mp['rms_fit_minus_analytic_map']:.4f}",
        f"joint fit of {jf['n_events']} events: c = {jf['fitted_c']:.4f} +- "
        f"{jf['sigma_curvature']:.4f} (true {jf['true_c']:.4f}, analytic "
        f"{jf['analytic_estimate']:.4f}): {jf['deviation_in_standard_errors']:+.2f} SE",
        "acceptance: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}"
                                   for k, v in a["acceptance"].items()),
        f"wall time {a['wall_seconds']:.0f} s, CPU time {a['cpu_seconds']:.0f} s",
    ]
    return lines
