"""Student-t components (bayesgmm.robust, RobustMixture(component="t")): the density
against scipy.stats.multivariate_t, the Gaussian limits against scikit-learn from
identical starts, the ECM degrees-of-freedom step against a direct maximisation,
recovery of a generating df, robustness to outliers, monotone EM over the table's
covariance models, and the errors."""

import math
import warnings

import numpy as np
import pytest
from scipy.special import digamma, gammaln
from scipy.stats import multivariate_t
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgmm import robust
from bayesgmm.covariance import TABLE, ops
from bayesgmm.estimators import GaussianMixture, RobustMixture
from bayesgmm.params import GMMParams

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
TRUE_MEANS = np.array([[-3.0, 0.0], [3.0, 1.0]])
TRUE_SCALES = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 0.8]]])


def t_mixture(seed, n=1500, df=4.0):
    """Two bivariate t components (TRUE_MEANS, TRUE_SCALES, ``df``), n rows each."""
    rng = np.random.default_rng(seed)
    parts = []
    for m, s in zip(TRUE_MEANS, TRUE_SCALES):
        z = rng.multivariate_normal(np.zeros(2), s, n)
        g = rng.gamma(df / 2, 2 / df, (n, 1))  # u ~ Gamma(ν/2, rate ν/2)
        parts.append(m + z / np.sqrt(g))
    return np.concatenate(parts)


def gaussian_blobs(seed, n=300):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.multivariate_normal(m, s, n)
                           for m, s in zip(TRUE_MEANS, TRUE_SCALES)])


def random_params(rng, covariance_type, K=3, D=3):
    """Random parameters of one covariance type, from random SPD matrices."""
    A = rng.normal(size=(K, D, D))
    covs = A @ np.swapaxes(A, -1, -2) + D * np.eye(D)
    table = ops(covariance_type, np)
    factor = {"full": np.linalg.cholesky(covs), "tied": np.linalg.cholesky(covs[0]),
              "diag": np.sqrt(covs.diagonal(axis1=1, axis2=2)),
              "spherical": np.sqrt(covs.diagonal(axis1=1, axis2=2).mean(1))}[covariance_type]
    assert factor.shape == table.factor_shape(K, D)
    return GMMParams(np.full(K, 1 / K), rng.normal(size=(K, D)) * 3, factor, covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_t_density_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    p = random_params(rng, covariance_type)
    X = rng.normal(size=(50, 3)) * 4
    df = np.array([1.5, 4.0, 30.0])
    log_f, maha = robust.component_log_prob(p, df, X)
    full = p.full_covariances
    for k in range(3):
        expect = multivariate_t(p.means[k], full[k], df=df[k]).logpdf(X)
        np.testing.assert_allclose(log_f[:, k], expect, rtol=1e-10)
        diff = X - p.means[k]
        np.testing.assert_allclose(maha[:, k],
                                   np.einsum("nd,de,ne->n", diff, np.linalg.inv(full[k]), diff))


def _start(X, covariance_type, K=2):
    gm = GaussianMixture(K, covariance_type=covariance_type, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = gm.fit(X).params_.to_numpy(np.float64)
    return p


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_components_equal_scikit_learn_from_the_same_start(covariance_type):
    X = gaussian_blobs(0)
    p = _start(X, covariance_type)
    start = robust.RobustParams(p, np.full(2, np.inf), np.float64(0.0), np.float64(np.inf))
    ours, info = robust.fit(X, start, tol=0.0, max_iter=25)
    sk = SkGaussianMixture(2, covariance_type=covariance_type, tol=0.0, max_iter=25,
                           weights_init=p.weights, means_init=p.means,
                           precisions_init=p.precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    np.testing.assert_allclose(ours.mixture.means, sk.means_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ours.mixture.covariances, sk.covariances_, rtol=1e-9,
                               atol=1e-10)
    np.testing.assert_allclose(ours.mixture.weights, sk.weights_, rtol=1e-9)
    assert info.history[-1] == pytest.approx(sk.lower_bound_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_large_fixed_df_equals_the_gaussian_fit(covariance_type):
    X = gaussian_blobs(1)
    p = _start(X, covariance_type)
    runs = {}
    for df in (np.inf, 1e7):
        start = robust.RobustParams(p, np.full(2, df), np.float64(0.0), np.float64(np.inf))
        runs[df] = robust.fit(X, start, tol=0.0, max_iter=25)[0].mixture
    np.testing.assert_allclose(runs[1e7].means, runs[np.inf].means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[1e7].covariances, runs[np.inf].covariances, rtol=1e-5)
    # and through the estimator: fixed df=inf is the Gaussian mixture
    a = RobustMixture(2, covariance_type=covariance_type, component="t", df=np.inf,
                      random_state=0, tol=1e-8).fit(X)
    b = RobustMixture(2, covariance_type=covariance_type, random_state=0, tol=1e-8).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)


def test_df_step_maximises_the_expected_complete_log_likelihood():
    """The ECM root against a direct grid maximisation of Q(ν) written with log Γ:
    Σ_n r [ (ν/2) log(ν/2) - log Γ(ν/2) + (ν/2)(E log u - E u) ]."""
    X = t_mixture(0, n=400, df=5.0)
    p = _start(X, "full")
    params = robust.RobustParams(p, np.array([3.0, 12.0]), np.float64(0.0), np.float64(np.inf))
    stats = robust.e_step(params, X, np.ones(len(X)))
    new = robust.update_df(stats, params.df, 2)
    grid = np.exp(np.linspace(np.log(0.5), np.log(200), 4001))
    for k in range(2):
        r, u = stats.resp[:, k], stats.u[:, k]
        half = 0.5 * (params.df[k] + 2)
        e_log_u = np.log(u) + digamma(half) - np.log(half)
        q = [(r * (0.5 * v * np.log(0.5 * v) - gammaln(0.5 * v)
                   + 0.5 * v * (e_log_u - u))).sum() for v in grid]
        best = grid[int(np.argmax(q))]
        assert new[k] == pytest.approx(best, rel=3e-3)


def test_df_estimate_recovers_the_generating_df():
    X = t_mixture(1, df=4.0)
    model = RobustMixture(2, component="t", random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert model.converged_
    assert np.all((model.df_ > 2.5) & (model.df_ < 7.0)), model.df_
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], TRUE_MEANS, atol=0.1)
    np.testing.assert_allclose(model.covariances_[order], TRUE_SCALES, atol=0.15)
    # Gaussian data: the estimated tails are light
    g = RobustMixture(2, component="t", random_state=0, tol=1e-6, max_iter=1000).fit(
        gaussian_blobs(2, n=1500))
    assert np.all(g.df_ > 30), g.df_


def test_t_is_robust_to_outliers():
    rng = np.random.default_rng(3)
    X = gaussian_blobs(3)
    outliers = rng.uniform(8, 14, (25, 2))  # 4% far to one side
    Xa = np.concatenate([X, outliers])
    gauss = GaussianMixture(2, random_state=0).fit(Xa)
    t = RobustMixture(2, component="t", random_state=0, tol=1e-6, max_iter=1000).fit(Xa)

    def mean_error(means):
        order = np.argsort(means[:, 0])
        return np.linalg.norm(means[order] - TRUE_MEANS, axis=1).max()

    assert mean_error(t.means_) < 0.5 * mean_error(gauss.means_)
    assert mean_error(t.means_) < 0.15


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type, noise):
    X = t_mixture(4, n=300, df=3.0)
    model = RobustMixture(2, covariance_type=covariance_type, component="t", noise=noise,
                          random_state=0, tol=1e-10, max_iter=300).fit(X)
    history = np.asarray(model.lower_bounds_)
    assert len(history) > 5
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))


@pytest.mark.parametrize("covariance_type", tuple(TABLE))
def test_every_covariance_model_of_the_table(covariance_type):
    X = t_mixture(5, n=200, df=4.0)
    try:
        GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    except ValueError as exc:  # a model this data cannot take (e.g. a univariate alias)
        pytest.skip(str(exc)[:80])
    model = RobustMixture(2, covariance_type=covariance_type, component="t", random_state=0,
                          tol=1e-8, max_iter=200).fit(X)
    assert np.isfinite(model.means_).all() and np.isfinite(model.df_).all()
    assert model.lower_bounds_[-1] >= model.lower_bounds_[0]
    plain = GaussianMixture(2, covariance_type=covariance_type).fit(X)
    assert model.n_parameters() == plain.params_.n_parameters + 2  # one ν per component


def test_bic_counts_df_and_noise():
    X = t_mixture(6, n=200)
    plain = GaussianMixture(2).fit(X).params_.n_parameters
    both = RobustMixture(2, component="t", noise=True, random_state=0).fit(X)
    fixed = RobustMixture(2, component="t", df=4.0, random_state=0).fit(X)
    assert both.n_parameters() == plain + 2 + 1
    assert fixed.n_parameters() == plain
    full = fixed.params_.mixture.full_covariances
    density = sum(w * multivariate_t(m, c, df=4.0).pdf(X)
                  for w, m, c in zip(fixed.weights_, fixed.means_, full))
    log_lik = np.log(density).sum()
    assert fixed.bic(X) == pytest.approx(-2 * log_lik + plain * math.log(len(X)), rel=1e-10)


def test_float32_matches_float64():
    X = t_mixture(7, n=300)
    m64 = RobustMixture(2, component="t", random_state=0, tol=1e-9, max_iter=500).fit(X)
    m32 = RobustMixture(2, component="t", random_state=0, tol=1e-9, max_iter=500).fit(
        X.astype(np.float32))
    assert m32.means_.dtype == np.float32
    np.testing.assert_allclose(m32.means_, m64.means_, atol=1e-3)
    np.testing.assert_allclose(m32.df_, m64.df_, rtol=1e-2)


def test_errors_name_the_problem():
    X = gaussian_blobs(0, n=50)
    for df in (0, -1.0, "4"):
        with pytest.raises(ValueError, match="Invalid value for 'df'.*> 0"):
            RobustMixture(2, component="t", df=df).fit(X)
    with pytest.raises(ValueError, match="component='t' only"):
        RobustMixture(2, df=4.0).fit(X)
    with pytest.raises(ValueError, match="'component' should be in"):
        RobustMixture(2, component="cauchy").fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        RobustMixture(2, covariance_type="blocky").fit(X)
