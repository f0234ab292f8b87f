"""Calibration (bayes/calibration.py): the statistics against their null distributions,
then simulation-based calibration of NUTS and SVI (Talts et al. 2018) on a reduced study,
with a mutant that must fail it, interval coverage and membership calibration from known
parameters, and 1/sqrt(N) convergence of EM and MAP. benchmarks/sbc.py runs the full
study (docs/calibration/README.md).

The reduced SBC study: fixed priors (below), K=2, D=2, N=50, 40 replications, 19
thinned draws each (ranks 0..19, 5 chi-square bins of 4), 11 scalars (a weight, 4 mean
coordinates, 4 log standard deviations, 2 correlations) of the components sorted by
their first mean coordinate. The test fails when any scalar's chi-square or ECDF
p-value is below ALPHA / 11 (Bonferroni), so under a correct sampler the false-alarm
rate over seeds is at most 2 · ALPHA = 2% (one chance for each of the two tests); the
seeds are fixed, so a given code base passes or fails deterministically. The mutant fits
with the scale prior's median doubled (scale_loc 1 -> 2): measured p-values ~1e-17
(chi-square) and at the ECDF floor 1/2001 on the four log standard deviations; on
20 replications (what the test runs) <= 1e-5 and the floor.

The sparse over-fitted mixture (sparse=True: K=4, Dirichlet(0.5 / K)) has its own
reduced SBC on label-invariant scalars (sorted weights, occupied components, the
heaviest component, the log-likelihood; calibration.sparse_scalars), same thresholds.
"""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import in_scope
from scipy import stats

from bayesgmm.bayes import calibration as cal
from bayesgmm.bayes.estimator import SPARSE_CONCENTRATION
from bayesgmm.bayes.model import Priors
from bayesgmm.params import GMMParams

pytestmark = pytest.mark.usefixtures("standard_promotion")

ALPHA = 0.01
SBC_PRIORS = Priors(weight_concentration=5.0, mean_loc=np.zeros(2), mean_scale=3.0,
                    scale_loc=1.0, scale_log_sd=0.3, lkj_concentration=2.0,
                    scale_prior="lognormal")
MUTANT_PRIORS = dataclasses.replace(SBC_PRIORS, scale_loc=2.0)
SBC = dict(n_replications=40, n_samples=50, n_draws=19)
# The sparse over-fitted mixture (the estimator's sparse=True): K=4, Dirichlet(0.5 / K)
SPARSE_K = 4
SPARSE_PRIORS = dataclasses.replace(SBC_PRIORS, weight_concentration=SPARSE_CONCENTRATION
                                    / SPARSE_K)


# ---- the statistics, against their null distributions ---------------------------------


def test_uniform_ranks_pass_and_skewed_ranks_fail():
    rng = np.random.default_rng(5)
    L = 19
    uniform = rng.integers(0, L + 1, size=(200, 300))  # 300 columns of 200 uniform ranks
    p_chi = cal.chi2_uniformity(uniform, L, n_bins=5)
    p_ecdf = cal.ecdf_uniformity(uniform[:, :100], L, n_sim=1000)
    # Under the null both p-values are uniform: the false-alarm rate at 5% is ~5%.
    assert 0.02 < np.mean(p_chi < 0.05) < 0.09
    assert 0.01 < np.mean(p_ecdf < 0.05) < 0.11
    assert stats.kstest(p_chi, "uniform").pvalue > 0.01
    # Ranks piled in the middle (an overdispersed posterior) or shifted (a biased one).
    middle = np.clip(rng.binomial(L, 0.5, size=(200, 5)), 0, L)
    shifted = np.minimum(uniform[:, :5] + 4, L)
    for bad in (middle, shifted):
        assert np.all(cal.chi2_uniformity(bad, L) < 1e-4)
        assert np.all(cal.ecdf_uniformity(bad, L) < 1e-3)
    with pytest.raises(ValueError, match="multiple"):
        cal.chi2_uniformity(uniform, 20, n_bins=5)


def test_ecdf_band_is_simultaneous():
    """95% of independent uniform rank sets stay inside the band at every point."""
    band = cal.ecdf_band(50, 19, prob=0.95)
    rng = np.random.default_rng(11)
    sets = rng.integers(0, 20, size=(2000, 50))
    ecdf = np.stack([(s[:, None] <= np.arange(20)).mean(0) for s in sets])  # (2000, L + 1)
    inside = np.all((ecdf >= band.lower - 1e-12) & (ecdf <= band.upper + 1e-12), axis=1)
    assert 0.93 < inside.mean() < 0.97


def test_coverage_and_ece_closed_forms():
    rng = np.random.default_rng(2)
    # Exact posterior: theta ~ N(0, 1), draws from N(x, 1) with x ~ N(theta, 1)... here
    # simply draws and truth from the same normal, so 90% intervals cover 90%.
    truth = rng.normal(size=(4000, 1))
    draws = rng.normal(size=(4000, 200, 1))
    assert abs(cal.interval_coverage(truth, draws, 0.9).mean() - 0.9) < 0.015
    # Labels drawn from the forecasts are calibrated; sharpened forecasts are not.
    logits = rng.normal(size=(20000, 3)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    z = (rng.random(20000)[:, None] > np.cumsum(p, 1)).sum(1)
    assert cal.expected_calibration_error(p, z) < 0.01
    sharp = p ** 3 / (p ** 3).sum(1, keepdims=True)
    assert cal.expected_calibration_error(sharp, z) > 0.05
    conf, freq, count = cal.reliability_curve(p, z)
    assert count.sum() == p.size
    # Brier: for labels drawn from p its expectation is the mean of 1 - Σ p_k² (each
    # term's variance, closed form); it is proper, so the sharpened forecasts and the
    # flattened ones score worse than the true ones. Confidence gap: ~0 for p, positive
    # for the sharpened (over-confident), negative for the flattened.
    expected = np.mean(1 - np.sum(p ** 2, 1))
    assert abs(cal.brier_score(p, z) - expected) < 0.01
    flat = p ** 0.5 / (p ** 0.5).sum(1, keepdims=True)
    assert cal.brier_score(sharp, z) > cal.brier_score(p, z) + 0.01
    assert cal.brier_score(flat, z) > cal.brier_score(p, z) + 0.01
    assert abs(cal.confidence_gap(p, z)) < 0.01
    assert cal.confidence_gap(sharp, z) > 0.05 and cal.confidence_gap(flat, z) < -0.05
    assert cal.brier_score(np.eye(3)[z], z) == 0.0
    # Pooled over 30 data sets of 400 points the true forecasts' ECE is the bias alone
    # (near 0); per data set the bins' sampling noise dominates (issue 21's 0.003 for
    # the true parameters is a pooled figure).
    P, Z = p[:12000].reshape(30, 400, 3), z[:12000].reshape(30, 400)
    per_set = np.mean([cal.expected_calibration_error(a, b) for a, b in zip(P, Z)])
    assert cal.pooled_calibration_error(P, Z) < 0.01 < per_set
    assert cal.pooled_calibration_error(P, Z) == cal.expected_calibration_error(
        P.reshape(-1, 3), Z.ravel())
    sharpP = sharp[:12000].reshape(30, 400, 3)
    assert cal.pooled_calibration_error(sharpP, Z) > 0.05
    keep = count > 500
    np.testing.assert_allclose(freq[keep], conf[keep], atol=0.03)


def test_pair_forecasts_closed_forms():
    """Co-clustering forecasts: Σ_k r_ik r_jk averaged over draws, by brute force; labels
    drawn from each draw's responsibilities (a draw picked at random per data set, as a
    posterior would) give calibrated pair forecasts, and the plug-in of one draw does
    not; binary ECE is 0 for forecasts equal to frequencies and |f - y| for one bin."""
    rng = np.random.default_rng(4)
    resp = rng.dirichlet(np.ones(3), size=(5, 7))  # (L=5, N=7, K=3)
    z = rng.integers(0, 3, 7)
    f, y = cal.pair_forecasts(resp, z)
    i, j = np.triu_indices(7, 1)
    want = [np.mean([resp[m, a] @ resp[m, b] for m in range(5)]) for a, b in zip(i, j)]
    np.testing.assert_allclose(f, want, rtol=1e-12)
    np.testing.assert_array_equal(y, z[i] == z[j])
    assert cal.binary_calibration_error(np.full(4, 0.25), [1, 0, 0, 0]) == 0.0
    assert cal.binary_calibration_error(np.full(3, 0.95), [1, 1, 1]) == pytest.approx(0.05)
    fs, ys, plug = [], [], []
    for _ in range(400):  # data sets: 2 draws of responsibilities, z from one of them
        r = rng.dirichlet(np.full(2, 0.7), size=(2, 12))  # (L=2, N=12, K=2)
        u = rng.random(12)
        zz = (u > r[rng.integers(2)][:, 0]).astype(int)
        a, b = cal.pair_forecasts(r, zz)
        fs.append(a)
        ys.append(b)
        plug.append(cal.pair_forecasts(r[:1], zz)[0])
    fs, ys, plug = np.concatenate(fs), np.concatenate(ys), np.concatenate(plug)
    assert cal.binary_calibration_error(fs, ys) < 0.02
    assert cal.binary_calibration_error(plug, ys) > 2 * cal.binary_calibration_error(fs, ys)


def test_prior_draws_follow_the_priors():
    """The simulator's draws have the priors' closed-form moments."""
    pri = SBC_PRIORS
    # 100 calls of 40 draws: the program the SBC tests use (compiled once, ~20 s)
    parts = [cal.sample_prior(jax.random.PRNGKey(i), pri, 2, 40) for i in range(100)]
    draws = GMMParams(*(np.concatenate(a) for a in zip(*((p.weights, p.means, p.cov_factor)
                                                         for p in parts))), "full")
    assert abs(draws.means.std() - 3.0) < 0.1 and abs(draws.means.mean()) < 0.1
    # Dirichlet(5, 5): the first weight has mean 1/2 and variance 1/44
    assert abs(draws.weights[:, 0].mean() - 0.5) < 0.01
    assert abs(draws.weights[:, 0].var() - 1 / 44) < 0.002
    sd = np.sqrt(np.diagonal(np.asarray(draws.full_covariances), axis1=-2, axis2=-1))
    assert abs(np.log(sd).mean()) < 0.02 and abs(np.log(sd).std() - 0.3) < 0.02
    with pytest.raises(ValueError, match="mean_scale"):
        cal.sample_prior(jax.random.PRNGKey(0), Priors(mean_loc=np.zeros(2)), 2, 3)


def test_order_components_is_label_invariant():
    rng = np.random.default_rng(4)
    L = np.tril(rng.normal(size=(50, 3, 2, 2)))
    L[..., [0, 1], [0, 1]] = np.exp(L[..., [0, 1], [0, 1]])
    draws = GMMParams(rng.dirichlet(np.ones(3), 50), rng.normal(size=(50, 3, 2)), L, "full")
    perm = np.array([2, 0, 1])
    swapped = GMMParams(draws.weights[:, perm], draws.means[:, perm],
                        draws.cov_factor[:, perm], "full")
    a, names = cal.sbc_scalars(cal.order_components(draws))
    b, _ = cal.sbc_scalars(cal.order_components(swapped))
    np.testing.assert_array_equal(a, b)
    assert len(names) == a.shape[1] == 2 + 6 + 6 + 3


# ---- simulation-based calibration ---------------------------------------------------


def _passes(result: cal.SBCResult) -> bool:
    P = len(result.names)
    return bool(result.chi2_p.min() > ALPHA / P and result.ecdf_p.min() > ALPHA / P)


def test_sbc_nuts_passes_and_the_mutant_fails():
    """Also: where θ is drawn from the prior the fit assumes, the posterior's
    co-clustering forecasts P(z_i = z_j | X) are calibrated by construction, EM's
    plug-in ones are not (measured pooled ECE 0.015 against EM's 0.067; the mutant's
    0.041 on its 20 data sets). The mutant fails on half the replications (measured
    log-sd chi-square p-values <= 1e-5 on 20, 1e-17 on 40)."""
    good = cal.run_sbc(0, SBC_PRIORS, method="nuts", **SBC)
    assert good.ranks.shape == (40, 11) and good.ranks.max() <= 19
    assert _passes(good), (good.chi2_p.round(4), good.ecdf_p.round(4))
    assert good.pair_ece_posterior < min(0.03, 0.5 * good.pair_ece_em), (
        good.pair_ece_posterior, good.pair_ece_em)
    mutant = cal.run_sbc(0, SBC_PRIORS, method="nuts", fit_priors=MUTANT_PRIORS,
                         replications=range(20), **SBC)  # the first 20 of the 40
    assert not _passes(mutant)
    log_sd = [i for i, n in enumerate(mutant.names) if n.startswith("log_sd")]
    assert np.all(mutant.chi2_p[log_sd] < ALPHA / 11)


def test_sparse_scalars_are_label_invariant_and_count_occupied_components():
    """sparse_scalars: the same values under any permutation of the components; K+
    counts the components z uses; the log-likelihood is scipy's."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(7)
    L = np.tril(rng.normal(size=(5, 4, 2, 2)) * 0.3)
    L[..., [0, 1], [0, 1]] = np.exp(L[..., [0, 1], [0, 1]])
    p = GMMParams(rng.dirichlet(np.full(4, 0.3), 5), rng.normal(size=(5, 4, 2)) * 3, L, "full")
    X = rng.normal(size=(5, 30, 2))
    z = rng.integers(0, 2, size=(5, 30)) * 3  # components 0 and 3 only: K+ = 2 (or 1)
    perm = np.array([3, 1, 0, 2])
    q = GMMParams(p.weights[:, perm], p.means[:, perm], p.cov_factor[:, perm], "full")
    inv = np.argsort(perm)
    with in_scope(np.float64):
        a, names = cal.sparse_scalars(p, X, z)
        b, _ = cal.sparse_scalars(q, X, inv[z])
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert names[:4] == ["w(1)", "w(2)", "w(3)", "n_occupied"] and names[-1] == "log_lik"
    np.testing.assert_array_equal(a[:, 3], [len(np.unique(zz)) for zz in z])
    assert np.all(np.diff(a[:, :3], axis=1) <= 0)  # weights in decreasing order
    cov = np.asarray(p.full_covariances)
    ll = [np.log(sum(p.weights[m, k] * multivariate_normal(p.means[m, k], cov[m, k]).pdf(X[m])
                     for k in range(4))).sum() for m in range(5)]
    np.testing.assert_allclose(a[:, -1], ll, rtol=1e-10)
    # drawn allocations follow the responsibilities: a component with weight ~1 centred
    # on the data takes every sample from far, light ones
    w = np.full((5, 4), 1e-12)
    w[:, 2] = 1.0
    means = np.full((5, 4, 2), 50.0)
    means[:, 2] = 0.0
    heavy = GMMParams(w / w.sum(1, keepdims=True), means, np.broadcast_to(np.eye(2), L.shape),
                      "full")
    c, _ = cal.sparse_scalars(heavy, X, seed=3)
    np.testing.assert_array_equal(c[:, 3], 1)
    np.testing.assert_array_equal(c[:, 4:6], 0.0)  # the heaviest component's mean
    with pytest.raises(ValueError, match="quantities"):
        cal.run_sbc(0, SBC_PRIORS, quantities="unsorted")


def test_sbc_sparse_overfitted_mixture_passes():
    """The over-fitted mixture (K=4, Dirichlet(0.125)) on 30 data sets of N=40, NUTS 2 x
    (100 + 100): sorted weights, occupied components, the heaviest component and the
    log-likelihood rank uniformly (benchmarks/sbc.py --sbc-sparse: the full study)."""
    res = cal.run_sbc(1, SPARSE_PRIORS, method="nuts", n_replications=30, n_samples=40,
                      n_components=SPARSE_K, n_draws=19, quantities="sparse", n_warmup=100,
                      n_draws_per_chain=100)
    assert res.ranks.shape == (30, 9) and res.ranks.max() <= 19
    assert _passes(res), (res.chi2_p.round(4), res.ecdf_p.round(4))


def test_sbc_svi_passes():
    result = cal.run_sbc(0, SBC_PRIORS, method="svi", **SBC)
    assert _passes(result), (result.chi2_p.round(4), result.ecdf_p.round(4))


# ---- coverage, membership calibration, convergence -------------------------------------

TRUTH = GMMParams.from_sklearn(
    np.array([0.4, 0.35, 0.25]), np.array([[0.0, 0.0], [2.5, 0.5], [1.0, 2.5]]),
    covariance_type="full",
    covariances=np.array([[[1.0, 0.3], [0.3, 1.0]], [[0.6, -0.2], [-0.2, 0.8]],
                          [[1.2, 0.0], [0.0, 0.5]]]))


def test_em_and_map_errors_shrink_like_one_over_root_n():
    """RMS error of 17 scalars, N = 250..4000, 2 data sets per size: log-log slope -0.5."""
    ns = np.array([250, 1000, 4000])
    em_err, map_err = cal.parameter_errors(0, TRUTH, ns, n_replications=2)
    for err in (em_err, map_err):
        slope, se = cal.log_log_slope(ns, err)
        assert -0.75 < slope < -0.3, (err, slope, se)


def test_coverage_and_membership_calibration_reduced():
    """3 data sets of N=400 from TRUTH (K=3 overlapping), default priors, NUTS 2 x
    (200 + 200): 90% intervals of 17 relabeled scalars cover 75-100% of 51 (the full
    study, benchmarks/sbc.py, has the precise number), the true parameters' memberships
    are calibrated, the posterior's within 0.12. Per data set the posterior-mean
    memberships are not always as well calibrated as EM's plug-in ones: on some data
    sets the likelihood and the posterior are higher at a configuration unlike the
    truth, which the posterior follows (docs/calibration/README.md, --modes); where θ
    is drawn from the prior they are calibrated and EM's are not, which
    test_sbc_nuts_passes_and_the_mutant_fails asserts."""
    res = cal.run_coverage(0, TRUTH, n_replications=3, n_warmup=200, n_draws_per_chain=200)
    assert res.covered.shape == (3, 17)
    assert 0.75 <= res.covered.mean() <= 1.0
    assert np.all(res.ece_truth < 0.05)
    assert np.all(res.ece_posterior < 0.12) and np.all(res.ece_em < 0.06)
    # The truth's memberships are the optimal forecast in expectation (a proper score),
    # so on average over the data sets they score below both fits' (on one data set EM,
    # fitted to it, can score below the truth: data set 3 of the full study); both fits
    # beat the uninformed forecast 1/K for every point (Brier 1 - 1/K). The full study
    # compares posterior and EM (docs/calibration/README.md, Brier rows).
    assert res.brier_truth.mean() < min(res.brier_em.mean(), res.brier_posterior.mean())
    assert np.all(np.maximum(res.brier_em, res.brier_posterior) < 1 - 1 / 3)
    np.testing.assert_allclose(res.proba.sum(-1), 1.0, atol=1e-5)
