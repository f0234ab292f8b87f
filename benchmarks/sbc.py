"""The calibration study (issue 21): simulation-based calibration of NUTS and SVI with a
mutant, interval coverage and membership calibration from known parameters, and the
1/sqrt(N) convergence of EM and MAP. Writes PNGs and docs/calibration/README.md and
prints the table.

    python benchmarks/sbc.py                    # the full study (hundreds of replications)
    python benchmarks/sbc.py --sbc 100 --coverage 12   # reduced counts

SBC: fixed priors (``SBC_PRIORS``), K=2, D=2, N=50, ranks of 11 scalars of the
components sorted by their first mean coordinate among 19 thinned draws
(:func:`bayesgmm.bayes.calibration.run_sbc`). Coverage and calibration: K=3 overlapping
components in 2-D (``TRUTH``), N=400, the estimator's default priors, draws relabeled to
the truth (:func:`bayesgmm.bayes.calibration.run_coverage`).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import time

import _common
import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from bayesgmm.bayes import calibration as cal
from bayesgmm.bayes.model import Priors
from bayesgmm.params import GMMParams

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration"
SBC_PRIORS = Priors(weight_concentration=5.0, mean_loc=np.zeros(2), mean_scale=3.0,
                    scale_loc=1.0, scale_log_sd=0.3, lkj_concentration=2.0)
MUTANT_PRIORS = Priors(weight_concentration=5.0, mean_loc=np.zeros(2), mean_scale=3.0,
                       scale_loc=2.0, scale_log_sd=0.3, lkj_concentration=2.0)
TRUTH = GMMParams.from_sklearn(
    np.array([0.4, 0.35, 0.25]), np.array([[0.0, 0.0], [2.5, 0.5], [1.0, 2.5]]),
    covariance_type="full",
    covariances=np.array([[[1.0, 0.3], [0.3, 1.0]], [[0.6, -0.2], [-0.2, 0.8]],
                          [[1.2, 0.0], [0.0, 0.5]]]))
ALPHA = 0.01
TIGHT_SCALE_LOG_SD = 0.4


EXPLANATION_HEAD = """## Why posterior-mean memberships were less calibrated than EM's

Issue 21 measured an ECE of 0.047 for NUTS against 0.023 for EM. On data set 3 (the
largest gap of a 4-set pilot), the relabeling method is not the cause (the three methods
differ by 0.02), and neither is chain disagreement (log-density R-hat 1.01-1.05). Collapse is:
under the default scale prior, LogNormal(log(0.5 · data std), 1.0), some draws shrink a
component to a standard deviation near 0.1 (the truth's smallest is 0.71), a spike on a
few points, and those draws' memberships, averaged in, are over-confident near the spike
and flatten the rest. A narrower scale prior (`scale_log_sd=0.4`) keeps the draws away
from such spikes and brings the posterior's ECE to the MAP's. Over the 30 data sets
above it lowers the mean ECE and the number of data sets worse than EM, but not the
worst case: that data set's chains sit in different modes (log-density R-hat near 1.1),
a degenerate fit that the run's health checks must flag rather than a calibration error. The remaining gap to EM is
already in the MAP point, before any sampling (`python benchmarks/sbc.py --explain`):"""

EXPLANATION_TAIL = """The fix belongs in the default priors (a scale prior that keeps components
from collapsing onto a few points, issue 21 item 3): the table above is the check to rerun
when they change."""


def plot_sbc(result: cal.SBCResult, title: str, path: pathlib.Path) -> None:
    """Rank histograms (with the 99% binomial range of a bin's count) and ECDF
    differences inside the simultaneous 95% band, one column per scalar."""
    P, L, R = len(result.names), result.n_draws, result.ranks.shape[0]
    n_bins = 5
    fig, axes = plt.subplots(2, P, figsize=(1.9 * P, 4.2), squeeze=False)
    lo, hi = stats.binom.ppf([0.005, 0.995], R, 1 / n_bins)
    band = cal.ecdf_band(R, L)
    for j, name in enumerate(result.names):
        ax = axes[0, j]
        ax.axhspan(lo, hi, color="0.85")
        ax.hist(result.ranks[:, j], bins=np.linspace(0, L + 1, n_bins + 1), color="C0")
        ax.set_title(f"{name}\nχ² p={result.chi2_p[j]:.2g}", fontsize=7)
        ax.set_yticks([])
        ax = axes[1, j]
        ecdf = (result.ranks[:, j][:, None] <= np.arange(L + 1)).mean(0)
        ax.fill_between(band.z, band.lower - band.z, band.upper - band.z, color="0.85",
                        step="post")
        ax.step(band.z, ecdf - band.z, where="post", color="C1")
        ax.set_title(f"ECDF p={result.ecdf_p[j]:.2g}", fontsize=7)
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_reliability(cov: cal.CoverageResult, path: pathlib.Path,
                     tight: cal.CoverageResult) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for proba, label in ((cov.proba, "NUTS posterior mean, default priors"),
                         (tight.proba, f"NUTS, scale_log_sd={TIGHT_SCALE_LOG_SD}"),
                         (cov.proba_em, "EM plug-in")):
        conf, freq, count = cal.reliability_curve(proba.reshape(-1, proba.shape[-1]),
                                                  cov.labels.ravel())
        keep = count > 0
        ax.plot(conf[keep], freq[keep], "o-", label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("forecast p(z = k)")
    ax.set_ylabel("observed frequency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def explain(data_set: int = 3, seed: int = 0) -> str:
    """Why the posterior's memberships can be less calibrated than EM's: on one data set
    of the coverage study (same seeds as :func:`bayesgmm.bayes.calibration.run_coverage`),
    the ECE of EM, of the MAP, and of the posterior mean under each relabeling method, and
    the smallest component standard deviation the draws reach, under the default scale
    prior and the narrow one. Returns a markdown section."""
    from bayesgmm.bayes.inference import sample_nuts
    from bayesgmm.bayes.posterior import membership
    from bayesgmm.bayes.relabel import log_responsibilities, relabel

    R = data_set + 1
    truth = TRUTH.astype(np.float32)
    k_data, k_fit = jax.random.split(jax.random.PRNGKey(seed))
    batch = GMMParams(*(np.broadcast_to(a, (R, *a.shape)) for a in
                        (truth.weights, truth.means, truth.cov_factor)), "full")
    Xs, zs = cal.simulate(k_data, batch, 400)
    X, z = Xs[data_set], zs[data_set]
    key = jax.random.split(k_fit, R)[data_set]
    one = lambda p: jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], p)
    true_sd = np.sqrt(np.diagonal(np.asarray(TRUTH.full_covariances), axis1=-2, axis2=-1))
    lines = [f"Data set {data_set} of the coverage study (N=400); the truth's smallest "
             f"component standard deviation is {true_sd.min():.2f}.", "",
             "| priors | EM | MAP | posterior, Hungarian | ECR | Stephens | smallest sd "
             "in any draw |", "|---|---|---|---|---|---|---|"]
    for label, priors in (("default", Priors()),
                          (f"scale_log_sd={TIGHT_SCALE_LOG_SD}",
                           Priors(scale_log_sd=TIGHT_SCALE_LOG_SD))):
        pri = priors.resolve(X)
        em, start = cal.em_and_map(X, pri, 3, seed + data_set)
        ece = []
        for p in (em, start):
            aligned = relabel(one(p), truth).params
            ece.append(cal.expected_calibration_error(
                np.exp(log_responsibilities(aligned, X))[0, 0], z))
        res = sample_nuts(key, X, start, n_components=3, priors=pri, n_warmup=300,
                          n_draws=300, n_chains=2)
        for method in ("hungarian", "ecr", "stephens"):
            draws = relabel(res.params, truth, method=method, X=X).params
            ece.append(cal.expected_calibration_error(membership(draws, X)[0], z))
        sd = np.sqrt(np.diagonal(np.asarray(res.params.full_covariances), axis1=-2, axis2=-1))
        lines.append(f"| {label} | " + " | ".join(f"{e:.3f}" for e in ece)
                     + f" | {sd.min():.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sbc", type=int, default=300, help="SBC replications")
    parser.add_argument("--coverage", type=int, default=40, help="coverage replications")
    parser.add_argument("--errors", type=int, default=4, help="data sets per size")
    parser.add_argument("--explain", action="store_true",
                        help="only print the membership-calibration explanation table")
    args = parser.parse_args()
    if args.explain:
        print(explain())
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows, t_start = [], time.perf_counter()
    sbc = {}
    for name, method, fit_priors in (("NUTS", "nuts", None), ("SVI", "svi", None),
                                     ("NUTS, mutant (scale prior median x2)", "nuts",
                                      MUTANT_PRIORS)):
        res = cal.run_sbc(0, SBC_PRIORS, method=method, fit_priors=fit_priors,
                          n_replications=args.sbc, n_samples=50, n_draws=19)
        sbc[name] = res
        P = len(res.names)
        passed = res.chi2_p.min() > ALPHA / P and res.ecdf_p.min() > ALPHA / P
        fname = f"sbc_{method}{'_mutant' if fit_priors is not None else ''}.png"
        plot_sbc(res, f"SBC {name}: {args.sbc} replications", OUT / fname)
        rows.append((name, args.sbc, res.chi2_p.min(), res.names[int(res.chi2_p.argmin())],
                     res.ecdf_p.min(), "pass" if passed else "FAIL", res.seconds, fname))
        print(rows[-1], flush=True)
    cov = cal.run_coverage(0, TRUTH, n_replications=args.coverage)
    print("coverage (default priors)", cov.covered.mean(), cov.ece_posterior.mean(),
          cov.ece_em.mean(), flush=True)
    # The same data sets under a narrower scale prior (log-sd 0.4 instead of 1): the
    # default lets draws put a component on a few points (see the README's explanation)
    tight = cal.run_coverage(0, TRUTH, n_replications=args.coverage,
                             priors=Priors(scale_log_sd=TIGHT_SCALE_LOG_SD))
    print("coverage (narrow scale prior)", tight.covered.mean(), tight.ece_posterior.mean(),
          flush=True)
    plot_reliability(cov, OUT / "reliability.png", tight)
    ns = np.array([250, 500, 1000, 2000, 4000])
    em_err, map_err = cal.parameter_errors(0, TRUTH, ns, n_replications=args.errors)
    em_slope, map_slope = cal.log_log_slope(ns, em_err), cal.log_log_slope(ns, map_err)
    per_param = cov.covered.mean(0)
    tight_param = tight.covered.mean(0)
    lines = [
        "# Calibration of the Bayesian mixture",
        "",
        f"Produced by `python benchmarks/sbc.py --sbc {args.sbc} --coverage {args.coverage} "
        f"--errors {args.errors}` on {datetime.date.today()}, {_common.machine()}; "
        f"{time.perf_counter() - t_start:.0f} s in all. The code is "
        "`bayesgmm/bayes/calibration.py`; a reduced copy of each check runs in "
        "`tests/test_calibration.py`.",
        "",
        "## Simulation-based calibration (Talts et al. 2018)",
        "",
        "Fixed priors: weights Dirichlet(5, 5); means Normal(0, 3); component standard "
        "deviations LogNormal(0, 0.3); LKJ(2). K=2, D=2, N=50 points per data set. Each fit "
        "starts as the estimator does (EM, then MAP); NUTS runs 2 chains x (200 + 200), SVI "
        "2000 Adam steps of a full-rank normal guide. Ranks of 11 scalars (a weight, 4 mean "
        "coordinates, 4 log standard deviations, 2 correlations) of the components sorted "
        "by their first mean coordinate, among 19 thinned draws. A method passes when every "
        f"scalar's chi-square (5 bins) and simultaneous-ECDF p-value exceeds {ALPHA}/11 "
        "(Bonferroni; false-alarm rate at most 2%). The mutant fits with the scale prior's "
        "median doubled.",
        "",
        "| fit | replications | min χ² p (scalar) | min ECDF p | verdict | fit time (s) | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, R, p, worst, pe, verdict, secs, fname in rows:
        lines.append(f"| {name} | {R} | {p:.3g} ({worst}) | {pe:.3g} | {verdict} | "
                     f"{secs:.0f} | [{fname}]({fname}) |")
    lines += [
        "",
        "## Coverage and membership calibration (known parameters)",
        "",
        f"K=3 overlapping components in 2-D (`TRUTH` in the script), N=400, {args.coverage} "
        "data sets, the estimator's default priors, NUTS 2 chains x (300 + 300), draws "
        "relabeled to the truth (Hungarian). Class-wise expected calibration error (10 "
        "bins) of the posterior-mean memberships, EM's plug-in memberships and the true "
        "parameters' memberships, on the same data.",
        "",
        f"The second column refits the same data sets with `Priors(scale_log_sd="
        f"{TIGHT_SCALE_LOG_SD})` (the default is 1.0).",
        "",
        f"| quantity | default priors | scale_log_sd={TIGHT_SCALE_LOG_SD} |",
        "|---|---|---|",
        f"| 90% interval coverage, all 17 scalars | {cov.covered.mean():.3f} | "
        f"{tight.covered.mean():.3f} |",
        f"| coverage, lowest scalar | {per_param.min():.3f} "
        f"({cov.names[int(per_param.argmin())]}) | {tight_param.min():.3f} "
        f"({tight.names[int(tight_param.argmin())]}) |",
        f"| coverage, highest scalar | {per_param.max():.3f} | {tight_param.max():.3f} |",
        f"| ECE, NUTS posterior mean (mean over data sets; worst) | "
        f"{cov.ece_posterior.mean():.4f}; {cov.ece_posterior.max():.4f} | "
        f"{tight.ece_posterior.mean():.4f}; {tight.ece_posterior.max():.4f} |",
        f"| ECE, EM plug-in | {cov.ece_em.mean():.4f}; {cov.ece_em.max():.4f} | same |",
        f"| ECE, true parameters | {cov.ece_truth.mean():.4f}; {cov.ece_truth.max():.4f} "
        "| same |",
        f"| data sets where NUTS's ECE exceeds EM's | "
        f"{int((cov.ece_posterior > cov.ece_em).sum())} of {args.coverage} | "
        f"{int((tight.ece_posterior > tight.ece_em).sum())} of {args.coverage} |",
        f"| log-density R-hat, max over data sets | {np.nanmax(cov.lp_rhat):.3f} | "
        f"{np.nanmax(tight.lp_rhat):.3f} |",
        "",
        "![reliability](reliability.png)",
        "",
        "## Convergence of EM and MAP",
        "",
        f"RMS error of the 17 scalars against the truth, {args.errors} data sets per size "
        "(estimates relabeled to the truth); slope of log error on log N (1/sqrt(N): -0.5).",
        "",
        "| N | " + " | ".join(str(n) for n in ns) + " | slope ± s.e. |",
        "|---|" + "---|" * (len(ns) + 1),
        "| EM | " + " | ".join(f"{e:.4f}" for e in em_err)
        + f" | {em_slope[0]:.2f} ± {em_slope[1]:.2f} |",
        "| MAP | " + " | ".join(f"{e:.4f}" for e in map_err)
        + f" | {map_slope[0]:.2f} ± {map_slope[1]:.2f} |",
        "",
    ]
    lines += [EXPLANATION_HEAD, "", explain(), "", EXPLANATION_TAIL, ""]
    text = "\n".join(lines)
    (OUT / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
