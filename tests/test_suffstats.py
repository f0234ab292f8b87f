"""bayesgmm.suffstats: the sufficient statistics behind every EM (in-memory, chunked,
sharded, streamed).

Truth: NumPy's weighted means and covariances computed directly from the same
responsibilities and weights. (Whole fits through these statistics are held to
scikit-learn in tests/test_engines_jax.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import in_scope

from bayesgmm.params import GMMParams


@pytest.mark.parametrize("kernel", ["centred", "moments"])
@pytest.mark.parametrize("chunk_size", [None, 37])
def test_statistics_of_given_responsibilities_match_numpy(kernel, chunk_size):
    """The initialisation's M-step from soft responsibilities and weights (summed over
    37-row chunks, the last one clamped, or in one block) gives NumPy's weighted
    means and covariances, on data offset by 1e3."""
    from bayesgmm.engines.jax import m_step
    from bayesgmm.suffstats import stats_from_resp
    rng = np.random.RandomState(11)
    X = rng.normal(0, 1, (250, 3)) * [1, 2, 0.5] + 1e3
    r = rng.dirichlet(np.ones(4), len(X))
    w = rng.uniform(0, 2, len(X)) * (rng.uniform(size=len(X)) > 0.1)
    rw = r * w[:, None]
    nk = rw.sum(0)
    means = rw.T @ X / nk[:, None]
    covs = np.stack([(rw[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
                     for k in range(4)])
    with in_scope(np.float64):
        template = GMMParams(jnp.ones(4), jnp.zeros((4, 3)), jnp.stack([jnp.eye(3)] * 4),
                             "full")
        stats = stats_from_resp(jnp.asarray(X), jnp.asarray(r), jnp.asarray(w), "full",
                                kernel=kernel, chunk_size=chunk_size)
        p = m_step(stats, covariance_type="full", reg_covar=0.0, previous=template)
    np.testing.assert_allclose(stats.nk, nk, rtol=1e-12)
    np.testing.assert_allclose(p.weights, nk / nk.sum(), rtol=1e-12)
    np.testing.assert_allclose(p.means, means, rtol=1e-12)
    np.testing.assert_allclose(p.covariances, covs, rtol=1e-8)


@pytest.mark.parametrize("ct", ["spherical", "diag", "full"])
def test_moments_error_in_closed_form(ct):
    """ρ_k for components with covariance σ_k² I, whatever the layout: Σ_ab |P_ab| =
    D / σ² and the mean square of x - c over the component is |μ_k - c|² + D σ²; an
    inactive component (weight 0) counts 0. The guard is eps · max ρ <= GUARD."""
    from bayesgmm.covariance import ops
    from bayesgmm.suffstats import GUARD, moments_error, moments_exact
    D, sig = 3, np.array([1.0, 0.5, 0.01, 2.0])
    means = np.array([[0.0, 0, 0], [1, 2, 3], [30, 30, 30], [5, 5, 5]])
    weights = np.array([0.3, 0.3, 0.4, 0.0])
    c = np.array([0.5, 0.5, 0.5])
    with in_scope(np.float64):
        cov = sig[:, None, None] ** 2 * np.eye(D)
        factor = ops(ct).from_covariance(
            cov if ct == "full" else sig[:, None] ** 2 * np.ones(D) if ct == "diag" else sig ** 2)
        p = GMMParams(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(factor), ct)
        rho = np.asarray(moments_error(p, jnp.asarray(c)))
        expect = D / sig**2 * (((means - c) ** 2).sum(1) + D * sig**2) * (weights > 0)
        np.testing.assert_allclose(rho, expect, rtol=1e-12)
        assert bool(moments_exact(p, jnp.asarray(c)))  # float64: eps · 8e7 is tiny
        p32 = jax.tree_util.tree_map(np.asarray, p.astype(jnp.float32))
    with in_scope(np.float32):
        c32 = jnp.asarray(c, jnp.float32)
        far = jax.tree_util.tree_map(jnp.asarray, p32)
        near = GMMParams(jnp.asarray([0.5, 0.5, 0.0, 0.0], jnp.float32), far.means,
                         far.cov_factor, ct)
        verdict = bool(moments_exact(far, c32)), bool(moments_exact(near, c32))
    # float32: the compact far component (ρ = 8.1e7) is over the guard; without it
    # (ρ <= 114) the moments form is exact
    assert np.finfo(np.float32).eps * expect.max() > GUARD and verdict == (False, True)


def test_chunked_centred_statistics_are_about_the_means_whatever_center():
    """The centred kernel's statistics are about each component's mean: summed over
    37-row chunks with a moments centre passed along (as a caller that switched kernels
    may), they still give the unchunked M-step, and the weighted means and covariances
    NumPy computes from the same responsibilities."""
    from bayesgmm.density import log_resp
    from bayesgmm.engines.jax import m_step
    from bayesgmm.suffstats import e_step_stats_chunked
    rng = np.random.RandomState(12)
    X = rng.normal(0, 1, (250, 3)) * [1, 2, 0.5] + 1e3
    w = rng.uniform(0, 2, len(X))
    def run(p, X, w, c):  # one program (op-by-op dispatch took most of the test's time)
        stats = e_step_stats_chunked(p, X, w, 37, kernel="centred", center=c)
        return (m_step(stats, covariance_type="full", reg_covar=0.0, previous=p),
                jnp.exp(log_resp(p, X)[0]))

    with in_scope(np.float64):
        p = GMMParams(jnp.full(3, 1 / 3), jnp.asarray(X[:3]), jnp.stack([jnp.eye(3)] * 3),
                      "full")
        new, r = jax.jit(run)(p, jnp.asarray(X), jnp.asarray(w), jnp.asarray(X.mean(0)))
        r = np.asarray(r)
    rw = r * w[:, None]
    nk = rw.sum(0)
    means = rw.T @ X / nk[:, None]
    covs = np.stack([(rw[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
                     for k in range(3)])
    np.testing.assert_allclose(new.means, means, rtol=1e-12)
    np.testing.assert_allclose(new.covariances, covs, rtol=1e-8)


@pytest.mark.parametrize("ct", ["diag"])
def test_two_layout_feature_table_gives_scipy_statistics(ct):
    """diag/spherical EM keeps its features in both layouts (FeatureTable: [1, x - c,
    (x - c)²], float64) or the centred data in both layouts (DataTable: x - c, squared
    per chunk; float32) and runs the statistics as (F, C) @ (C, K) or (D, C) @ (C, K)
    (spherical takes the same code with its own θ; its fits are held to scikit-learn
    in tests/test_engines_jax.py). With either table, in 37-row chunks (the last
    clamped), with the exp shifted by the bound (static, or chosen by a traced flag
    once per pass) or by row maxima, the statistics about the centre equal those of
    responsibilities from scipy's normal densities, on data offset by 1e3 with uneven
    weights; a point 1e4 standard deviations out underflows the bound's pass, is
    counted, and the E-step redone with row maxima keeps it (and equals scipy again)."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from bayesgmm.covariance import ops
    from bayesgmm.engines.jax import e_step
    from bayesgmm.suffstats import (
        DataTable,
        FeatureTable,
        e_step_stats_chunked,
        feature_table,
    )
    rng = np.random.RandomState(13)
    X = rng.normal(0, 1, (250, 3)) * [1, 2, 0.5] + 1e3
    w = rng.uniform(0, 2, len(X)) * (rng.uniform(size=len(X)) > 0.1)
    means, c = X[:3] + 0.1, X.mean(0)
    sd = np.array([[1.0, 2, 0.5], [1.5, 1, 1], [0.7, 0.7, 0.7]])
    sd = sd if ct == "diag" else sd[:, 0]
    weights = np.array([0.5, 0.3, 0.2])
    # the outlier replaces the last row (same shapes: the jitted pass is not recompiled)
    Xo, wo = X.copy(), w.copy()
    Xo[-1], wo[-1] = [1e4, 1e4, 1e4], 1.0

    def truth(X, w):
        scale = sd[:, None, :] if ct == "diag" else sd[:, None, None]
        lp = norm.logpdf(X[None], means[:, None], scale).sum(-1).T + np.log(weights)
        rw = np.exp(lp - logsumexp(lp, axis=1, keepdims=True)) * w[:, None]
        u = X - c
        return rw.sum(0), rw.T @ u, rw.T @ (u * u), w @ logsumexp(lp, axis=1)

    def check(stats, X, w):
        for got, want in zip((stats.nk, stats.sx, stats.sxx, stats.sum_wll), truth(X, w)):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-9)

    def data_table(X):  # what float32 keeps, built here in float64 for scipy's 1e-10
        return DataTable(X - cj, (X - cj).T)

    with in_scope(np.float32):  # float32 keeps the centred data, not the features
        U = feature_table(jnp.asarray(X, jnp.float32), jnp.asarray(c, jnp.float32), ct)
        assert isinstance(U, DataTable) and U.cols.shape == (3, 250)
    with in_scope(np.float64):
        p = GMMParams(jnp.asarray(weights), jnp.asarray(means),
                      ops(ct).from_covariance(jnp.asarray(sd**2)), ct)
        Xj, wj, cj = jnp.asarray(X), jnp.asarray(w), jnp.asarray(c)
        Xoj, woj = jnp.asarray(Xo), jnp.asarray(wo)
        run = lambda flag, X, w, T: e_step_stats_chunked(
            p, X, w, 37, kernel="moments", center=cj, bound_shift=flag, features=T)
        run = jax.jit(run)  # a traced flag: one program, the choice made per pass
        redone = []
        for make in (lambda X: feature_table(X, cj, ct), data_table):
            table = make(Xj)
            if make is not data_table:
                assert isinstance(table, FeatureTable) and table.cols.shape == (7, 250)
            for flag in (False, True):
                check(run(jnp.asarray(flag), Xj, wj, table), X, w)
            # the outlier: counted by the bound's pass, kept by the E-step's redo
            table = make(Xoj)
            assert int(run(jnp.asarray(True), Xoj, woj, table).n_underflow) == 1
            redone.append(e_step(p, Xoj, woj, 37, kernel="moments", center=cj,
                                 bound_shift=True, features=table))
    for stats in redone:
        assert int(stats.n_underflow) == 1
        check(stats, Xo, wo)


def test_isotropic_table_gives_scipy_statistics_and_the_same_m_step():
    """Float64 EM of an isotropic type (spherical = VII, and EII) keeps the features
    [1, x - c, |x - c|²] (IsotropicTable, D + 2 columns instead of 2D + 1): from it, in
    37-row chunks (the last clamped) with the exp shifted by the bound or by row maxima,
    the counts, Σ w r (x - c), the sum over D of Σ w r (x - c)² and the log-likelihood
    equal those of responsibilities from scipy's normal densities (data offset by 1e3,
    uneven weights), and the M-steps of VII and EII (which pools the scale) from them
    equal those from the per-feature statistics of the plain moments pass (no table)."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from bayesgmm.engines.jax import m_step
    from bayesgmm.suffstats import IsotropicTable, e_step_stats_chunked, feature_table
    rng = np.random.RandomState(5)
    X = rng.normal(0, 1, (250, 3)) * [1, 2, 0.5] + 1e3
    w = rng.uniform(0, 2, len(X)) * (rng.uniform(size=len(X)) > 0.1)
    means, c, sd = X[:3] + 0.1, X.mean(0), np.array([1.0, 1.5, 0.7])
    weights = np.array([0.5, 0.3, 0.2])
    u = X - c
    lp = norm.logpdf(X[None], means[:, None], sd[:, None, None]).sum(-1).T + np.log(weights)
    rw = np.exp(lp - logsumexp(lp, axis=1, keepdims=True)) * w[:, None]
    truth = (rw.sum(0), rw.T @ u, rw.T @ (u * u).sum(1), w @ logsumexp(lp, axis=1))

    def run(p, X, w, c, T, flag):
        stats = e_step_stats_chunked(p, X, w, 37, kernel="moments", center=c,
                                     bound_shift=flag, features=T)
        plain = e_step_stats_chunked(p, X, w, 37, kernel="moments", center=c)
        steps = [[m_step(s, covariance_type=ct, reg_covar=1e-6,
                         previous=GMMParams(p.weights, p.means, p.cov_factor, ct))
                  for s in (stats, plain)] for ct in ("spherical", "EII")]
        return stats, steps

    with in_scope(np.float64):
        p = GMMParams(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(sd), "spherical")
        Xj, wj, cj = jnp.asarray(X), jnp.asarray(w), jnp.asarray(c)
        table = feature_table(Xj, cj, "spherical")
        assert isinstance(table, IsotropicTable) and table.cols.shape == (5, 250)
        assert isinstance(feature_table(Xj, cj, "EII"), IsotropicTable)
        run = jax.jit(run)  # one program; the flag traced
        for flag in (False, True):
            stats, steps = run(p, Xj, wj, cj, table, jnp.asarray(flag))
            got = (stats.nk, stats.sx, stats.sxx.sum(-1), stats.sum_wll)
            for g, want in zip(got, truth):
                np.testing.assert_allclose(np.asarray(g), want, rtol=1e-10, atol=1e-9)
            for new, ref in steps:
                for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(ref)):
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
