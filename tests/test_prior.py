"""MAP-EM with a conjugate prior, and equal weights (bayesgmm.engines.mixture_m_step's
``prior`` and ``equal_weights``, threaded through both engines, FitOptions and
GaussianMixture).

Truth, all computed here independently of the library's M-step:
* the normal-inverse-Wishart posterior mode in closed form (Fraley & Raftery 2007):
  κ_n = n_k + κ, μ_k = (n_k x̄_k + κ m0) / κ_n, Σ_k = (Λ + W_k + κ n_k/κ_n (x̄_k - m0)(...)ᵀ)
  / (ν + n_k + D + 2), with its restrictions to the tied, diagonal and spherical
  families, evaluated on responsibilities computed with scipy's densities: a
  converged fit is a fixed point of it;
* the MAP objective, Σ log p(x) + Σ_k [log N(μ_k | m0, Σ_k/κ) + log IW(Σ_k | ν, Λ)]
  with scipy's densities, never decreases along EM, for all 14 models;
* R's mclust 6.0.0, run once (``Mclust(iris[, 1:4], G = 3, modelNames = "VVV",
  prior = priorControl(), control = emControl(tol = c(1e-14, 1e-14)))`` and the same
  with ``emControl(equalPro = TRUE, ...)`` and no prior): its log-likelihood, BIC and
  means, written out below;
* the two engines against each other; the degenerate case where plain EM collapses.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import invwishart, multivariate_normal

import bayesgmm
from bayesgmm.covariance import MCLUST_MODELS, Prior, ops
from bayesgmm.engines import numpy as host
from bayesgmm.fitting import FitOptions, resolve_prior
from bayesgmm.params import GMMParams

# mclust 6.0.0, iris (150 x 4), VVV, G = 3, priorControl(), tol 1e-14 (see the docstring)
MCLUST_PRIOR_LOGLIK = -192.695283864809
MCLUST_PRIOR_BIC = -605.858520669853  # mclust's sign: 2 loglik - npar log n, npar 44
MCLUST_PRIOR_MEANS = np.array([  # columns of m$parameters$mean, one row per component
    [5.006167433191377, 3.427925881515650, 1.462459108182009, 0.246190628539754],
    [5.93687966725149, 2.76266796603798, 4.23012602308897, 1.30882169985174],
    [6.55098946894537, 2.96930509185098, 5.50665870244955, 2.00237205221237]])
# mclustBIC(iris, G = 1:2, "VVV", prior = priorControl(), tol 1e-14): a default prior per K
MCLUST_PRIOR_BIC_K12 = {1: -831.494922570687, 2: -592.512820355143}
# the same with emControl(equalPro = TRUE) and no prior: npar 42
MCLUST_EQUAL_LOGLIK = -180.659325420768
MCLUST_EQUAL_BIC = -571.765333193579

TIGHT = dict(tol=1e-13, reg_covar=0.0, max_iter=3000, random_state=0)


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    return load_iris().data


def _niw_prior(X, K, model):
    """mclust's defaultPrior, written out: shrinkage 0.01, the column means, dof D + 2,
    scale var(X) / K^(2/D) (the mean variance times I for diagonal/spherical models)."""
    D = X.shape[1]
    fac = (1.0 / K) ** (2.0 / D)
    cov = np.cov(X.T)
    diagonal = model[2] == "I"
    scale = fac * (np.trace(cov) / D * np.eye(D) if diagonal else cov)
    return 0.01, X.mean(0), D + 2.0, scale


def _full_covariances(p: GMMParams) -> np.ndarray:
    return ops(p.covariance_type, np).to_full_covariance(
        np.asarray(p.cov_factor, np.float64), p.n_components, p.n_features)


def _responsibilities(p: GMMParams, X):
    """(resp (N, K), Σ log p(x)) with scipy's densities."""
    covs = _full_covariances(p)
    lp = np.stack([np.log(p.weights[k]) + multivariate_normal(p.means[k], covs[k]).logpdf(X)
                   for k in range(p.n_components)], axis=1)
    ln = logsumexp(lp, axis=1)
    return np.exp(lp - ln[:, None]), ln.sum()


def _map_mode(X, resp, prior, family):
    """The MAP weights, means and covariances (K, D, D) for the responsibilities, in
    closed form: per component (VVV), one shared (EEE), per-feature (VVI), one
    variance per component (VII)."""
    kappa, m0, nu, Lam = prior
    N, D = X.shape
    nk = resp.sum(0)
    xbar = resp.T @ X / nk[:, None]
    kn = nk + kappa
    means = (nk[:, None] * xbar + kappa * m0) / kn[:, None]
    Wt, nt = [], nk + nu + D + 2
    for k in range(len(nk)):
        Xc = X - xbar[k]
        d = xbar[k] - m0
        Wt.append(Lam + (resp[:, k, None] * Xc).T @ Xc + kappa * nk[k] / kn[k] * np.outer(d, d))
    Wt = np.stack(Wt)
    if family == "VVV":
        covs = Wt / nt[:, None, None]
    elif family == "EEE":
        covs = np.broadcast_to(Wt.sum(0) / nt.sum(), Wt.shape)
    elif family == "VVI":
        covs = np.stack([np.diag(np.diag(W) / n) for W, n in zip(Wt, nt)])
    else:  # VII
        covs = np.stack([np.trace(W) / (D * n) * np.eye(D) for W, n in zip(Wt, nt)])
    return nk / N, means, covs


def _log_prior(p: GMMParams, prior) -> float:
    """Σ_k log N(μ_k | m0, Σ_k / κ) + log IW(Σ_k | ν, Λ) (scipy); a shared covariance
    carries one inverse-Wishart term per component, as the M-step counts it."""
    kappa, m0, nu, Lam = prior
    covs = _full_covariances(p)
    return sum(multivariate_normal(m0, covs[k] / kappa).logpdf(p.means[k])
               + invwishart(nu, Lam).logpdf(covs[k]) for k in range(p.n_components))


def _fit(X, K, model, **kw):
    kw = {**TIGHT, **kw}
    return bayesgmm.GaussianMixture(K, covariance_type=model, **kw).fit(X)


# ---- the fixed point is the NIW posterior mode; mclust's numbers ----------------------------


def test_vvv_on_iris_is_the_niw_mode_and_mclusts_fit(iris):
    """VVV, K=3 with mclust's default prior: the converged parameters equal the closed-form
    MAP M-step of their own responsibilities, and mclust's log-likelihood, BIC and means."""
    g = _fit(iris, 3, "full", prior="default", engine="numpy")
    assert g.converged_
    resp, loglik = _responsibilities(g.params_, iris)
    weights, means, covs = _map_mode(iris, resp, _niw_prior(iris, 3, "VVV"), "VVV")
    np.testing.assert_allclose(g.weights_, weights, rtol=1e-9)
    np.testing.assert_allclose(g.means_, means, rtol=1e-9)
    np.testing.assert_allclose(g.covariances_, covs, rtol=1e-8)
    np.testing.assert_allclose(loglik, MCLUST_PRIOR_LOGLIK, rtol=1e-10)
    np.testing.assert_allclose(-g.bic(iris), MCLUST_PRIOR_BIC, rtol=1e-10)
    order = np.argsort(g.means_[:, 0])
    np.testing.assert_allclose(g.means_[order], MCLUST_PRIOR_MEANS, rtol=1e-9)
    # the prior moved the fit: maximum likelihood stops elsewhere (mclust: -180.186)
    plain = _fit(iris, 3, "full", engine="numpy")
    assert plain.score(iris) * 150 > loglik + 5


@pytest.mark.parametrize("K", [1, 2])
def test_vvv_bic_with_the_default_prior_of_each_k_is_mclusts(iris, K):
    """prior='default' is built for each K (its scale is var(X) / K^(2/D)): mclust's
    BIC at K = 1 (one closed-form MAP step) and K = 2."""
    g = _fit(iris, K, "full", prior="default", engine="numpy")
    np.testing.assert_allclose(-g.bic(iris), MCLUST_PRIOR_BIC_K12[K], rtol=1e-10)


def test_a_sweep_with_the_default_prior_is_mclusts(iris):
    """selection.sweep passes the prior to every fit (its host batch path runs the
    likelihood M-step, so a prior leaves it for fitting.fit): mclust's BIC per K."""
    from bayesgmm.selection import sweep

    result = sweep(iris, [1, 2], ["full"], prior="default", engine="numpy", **TIGHT)
    np.testing.assert_array_equal(result["n_components"], [1, 2])
    np.testing.assert_allclose(-result["bic"], [MCLUST_PRIOR_BIC_K12[1],
                                                MCLUST_PRIOR_BIC_K12[2]], rtol=1e-10)


@pytest.mark.parametrize("model", ["VVV", "EEE", "VVI", "VII"])
def test_fixed_point_is_the_map_mode_of_each_closed_form_family(model):
    """Per component, shared, diagonal and spherical covariances: at convergence the
    parameters are the closed-form MAP M-step (restricted to the family) of their own
    responsibilities, with a prior given explicitly (not mclust's default)."""
    X = _three_clusters(0)
    rng = np.random.default_rng(1)
    D = X.shape[1]
    scale = np.diag(rng.uniform(0.3, 1.5, D))
    if model == "VII":
        scale = np.trace(scale) / D * np.eye(D)  # a spherical family sees a scalar scale
    prior = (0.5, X.mean(0) + rng.normal(size=D), D + 4.0, scale)
    g = _fit(X, 3, model, prior=Prior(*prior), engine="numpy")
    resp, _ = _responsibilities(g.params_, X)
    weights, means, covs = _map_mode(X, resp, prior, model)
    np.testing.assert_allclose(g.weights_, weights, rtol=1e-9)
    np.testing.assert_allclose(g.means_, means, rtol=1e-9)
    np.testing.assert_allclose(_full_covariances(g.params_), covs, rtol=1e-8, atol=1e-14)


# ---- the MAP objective never decreases, every model ----------------------------------------


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_map_objective_never_decreases_for_every_model(model):
    """EM step by step (one iteration per call, each from the last): the parameters stay
    finite and positive definite, and log-likelihood + log prior (scipy) never goes
    down; the log-likelihood alone is not what MAP-EM climbs."""
    X = _three_clusters(2)
    K = 3
    prior = _niw_prior(X, K, model)
    p = _start(X, K, model)
    objective = []
    for _ in range(25):
        p, info = host.fit(X, p, tol=0.0, reg_covar=0.0, max_iter=1, prior=Prior(*prior))
        assert not bool(info.nonfinite)
        covs = _full_covariances(p)
        assert np.all(np.isfinite(covs)) and np.all(np.linalg.eigvalsh(covs) > 0)
        objective.append(_responsibilities(p, X)[1] + _log_prior(p, prior))
    steps = np.diff(objective)
    assert np.all(steps >= -1e-9 * np.abs(objective[1:])), steps.min()
    assert objective[-1] > objective[0]


def test_equal_weights_objective_never_decreases_with_a_prior():
    """Equal weights and the prior together: still a monotone MAP-EM (weights fixed)."""
    X = _three_clusters(3)
    prior = _niw_prior(X, 3, "VVV")
    p = _start(X, 3, "VVV")
    objective = []
    for _ in range(20):
        p, _ = host.fit(X, p, tol=0.0, reg_covar=0.0, max_iter=1, prior=Prior(*prior),
                        equal_weights=True)
        assert np.all(p.weights == 1 / 3)
        objective.append(_responsibilities(p, X)[1] + _log_prior(p, prior))
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:]))


# ---- the two engines ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["VVV", "EEE", "VVI", "VII", "VEV", "EVE"])
@pytest.mark.parametrize("equal_weights", [False, True])
def test_host_and_compiled_engines_agree(model, equal_weights):
    """The same MAP-EM (prior='default', and equal weights) on both engines, float64:
    parameters to 1e-10, the same iterations."""
    X = _three_clusters(4)
    fits = {engine: _fit(X, 3, model, prior="default", equal_weights=equal_weights,
                         engine=engine, tol=1e-10) for engine in ("numpy", "jax")}
    a, b = fits["numpy"], fits["jax"]
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-10)


def test_compiled_float32_with_a_prior_matches_float64():
    """float32 on the compiled engine (centred kernel): finite, and within float32's
    reach of the float64 MAP fit from the same start."""
    X = _three_clusters(5)
    kw = dict(prior="default", engine="jax", reg_covar=1e-6, tol=1e-6, max_iter=300)
    g64 = _fit(X, 3, "full", **kw)
    g32 = bayesgmm.GaussianMixture(3, means_init=g64.means_, random_state=0, **kw).fit(
        X.astype(np.float32))
    assert g32.means_.dtype == np.float32
    assert np.all(np.isfinite(g32.covariances_))
    np.testing.assert_allclose(g32.means_, g64.means_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(g32.covariances_, g64.covariances_, rtol=1e-2, atol=1e-3)


def test_a_sweeps_priors_share_one_program():
    """The prior's arrays are traced: two K with different default priors (the scale
    depends on K) at one padded size compile EM once."""
    from bayesgmm.engines import jax as em

    X = _three_clusters(6)
    before = em.TRACE_COUNT["fit"]
    for K in (2, 3):
        _fit(X, K, "full", prior="default", engine="jax", init_params="kmeans", tol=1e-3)
    traced = em.TRACE_COUNT["fit"] - before
    _fit(X, 4, "full", prior="default", engine="jax", init_params="kmeans", tol=1e-3)
    assert em.TRACE_COUNT["fit"] - before == traced  # K=4 pads as K=3 did: no new trace


# ---- a degenerate component -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_prior_holds_a_component_on_two_identical_points(engine):
    """Two identical rows far from a cluster, K=3, reg_covar=0: plain EM puts a
    component on them and collapses (a singular covariance, reported as an error);
    with the default prior that component holds the two rows with the prior's mode
    as its covariance, finite and positive definite."""
    X = np.concatenate([_three_clusters(7)[:60], np.full((2, 3), 9.0)])
    kw = dict(n_components=3, reg_covar=0.0, engine=engine, max_iter=300, tol=1e-10,
              random_state=0)
    with pytest.raises(ValueError, match="singular covariance"):
        bayesgmm.GaussianMixture(**kw).fit(X)
    g = bayesgmm.GaussianMixture(prior="default", **kw).fit(X)
    covs = g.covariances_
    assert g.converged_
    assert np.all(np.isfinite(covs)) and np.all(np.linalg.eigvalsh(covs) > 0)
    k = int(np.argmin(np.linalg.norm(g.means_ - 9.0, axis=1)))
    resp, _ = _responsibilities(g.params_, X)
    assert resp[-2:, k].min() > 0.99 and resp[:-2, k].max() < 1e-6  # it holds the 2 rows
    np.testing.assert_allclose(covs[k], _map_mode(X, resp, _niw_prior(X, 3, "VVV"),
                                                  "VVV")[2][k], rtol=1e-6)


# ---- equal weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equal_weights_stay_exactly_one_over_k(engine, dtype):
    """Unbalanced clusters (20/60/120 rows): the weights stay 1/K exactly (padded
    compiled fits too), while the means are the responsibility-weighted means of
    responsibilities computed with those weights (a fixed point)."""
    X = _three_clusters(8, sizes=(20, 60, 120)).astype(dtype)
    g = bayesgmm.GaussianMixture(3, equal_weights=True, engine=engine, tol=1e-13,
                                 max_iter=5000, random_state=0).fit(X)
    np.testing.assert_array_equal(g.weights_, np.full(3, 1 / 3, dtype))
    if dtype == np.float64:
        resp, _ = _responsibilities(g.params_, X)
        np.testing.assert_allclose(g.means_, resp.T @ X / resp.sum(0)[:, None], atol=1e-6)


def test_equal_weights_match_mclusts_equalpro_and_lose_to_free_weights(iris):
    """Iris, VVV, K=3: mclust's equalPro log-likelihood and BIC (K - 1 fewer
    parameters); free weights started from that fit only climb, and reach at least it."""
    g = _fit(iris, 3, "full", equal_weights=True, engine="numpy")
    loglik = g.score(iris) * len(iris)
    np.testing.assert_allclose(loglik, MCLUST_EQUAL_LOGLIK, rtol=1e-10)
    np.testing.assert_allclose(-g.bic(iris), MCLUST_EQUAL_BIC, rtol=1e-10)
    n_par = 3 * 4 + 3 * 10  # means and covariances, no weights
    np.testing.assert_allclose(g.bic(iris), -2 * loglik + n_par * np.log(150), rtol=1e-12)
    free = bayesgmm.GaussianMixture(3, weights_init=g.weights_, means_init=g.means_,
                                    precisions_init=g.precisions_, engine="numpy",
                                    reg_covar=0.0, tol=1e-10, max_iter=1000).fit(iris)
    assert free.score(iris) * len(iris) >= loglik - 1e-9
    assert free.bic(iris) == pytest.approx(-2 * free.score(iris) * 150 + 44 * np.log(150))


# ---- options ---------------------------------------------------------------------------------


def test_default_prior_is_resolved_per_fit(iris):
    """prior='default' is mclust's defaultPrior of the fitted data, K and model."""
    for K, model in ((2, "VVV"), (4, "VII"), (3, "EEE")):
        p = resolve_prior(FitOptions(n_components=K, covariance_type=model,
                                     prior="default"), iris)
        expected = _niw_prior(iris, K, model)
        assert (p.shrinkage, p.dof) == (expected[0], expected[2])
        np.testing.assert_allclose(p.mean, expected[1], rtol=1e-14)
        np.testing.assert_allclose(p.scale, expected[3], rtol=1e-12)


def test_bad_prior_and_equal_weights_are_named():
    X = _three_clusters(9)
    with pytest.raises(ValueError, match="'prior'.*'default'"):
        bayesgmm.GaussianMixture(2, prior="mclust").fit(X)
    bad = Prior(0.01, np.zeros(2), 5.0, np.eye(2))
    with pytest.raises(ValueError, match=r"3 features: its mean has shape \(2,\).*\(3, 3\)"):
        bayesgmm.GaussianMixture(2, prior=bad).fit(X)
    with pytest.raises(ValueError, match="dof is 1, expected more than D - 1 = 2"):
        bayesgmm.GaussianMixture(2, prior=Prior(0.01, np.zeros(3), 1.0, np.eye(3))).fit(X)
    with pytest.raises(ValueError, match="not symmetric positive definite"):
        bayesgmm.GaussianMixture(2, prior=Prior(0.01, np.zeros(3), 5.0, -np.eye(3))).fit(X)
    with pytest.raises(ValueError, match="'equal_weights'"):
        bayesgmm.GaussianMixture(2, equal_weights="yes").fit(X)


def test_no_prior_is_maximum_likelihood_unchanged(iris):
    """prior=None, equal_weights=False: the same fit as not passing them."""
    a = bayesgmm.GaussianMixture(3, random_state=0, engine="numpy").fit(iris)
    b = bayesgmm.GaussianMixture(3, random_state=0, engine="numpy", prior=None,
                                 equal_weights=False).fit(iris)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)


# ---- helpers -----------------------------------------------------------------------------------


def _three_clusters(seed, sizes=(60, 60, 60)):
    """Three anisotropic clusters in 3-D."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, n in enumerate(sizes):
        A = rng.normal(size=(3, 3)) * (0.4 + 0.3 * k)
        parts.append(rng.normal(size=(n, 3)) @ A + 3.0 * rng.normal(size=3))
    return np.concatenate(parts)


def _start(X, K, model):
    """Equal weights, K spread rows as means, the identity covariance (host params)."""
    idx = np.linspace(0, len(X) - 1, K).astype(int)
    D = X.shape[1]
    return GMMParams(np.full(K, 1.0 / K), X[idx].copy(),
                     np.array(ops(model).identity(K, D, np.float64)), model)


def test_partial_fit_keeps_equal_weights_and_refuses_a_prior():
    """Online EM: equal weights stay 1/K batch after batch; a prior is an error that
    says to use fit."""
    X = _three_clusters(10, sizes=(30, 60, 90))
    rng = np.random.default_rng(0)
    g = bayesgmm.GaussianMixture(3, equal_weights=True, random_state=0)
    for batch in np.array_split(rng.permutation(X), 3):
        g.partial_fit(batch)
        np.testing.assert_array_equal(g.weights_, np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="partial_fit .* does not take a prior.*use fit"):
        bayesgmm.GaussianMixture(3, prior="default").partial_fit(X)


def test_a_fit_with_a_prior_saves_and_loads(tmp_path):
    """The prior (a covariance.Prior NamedTuple of arrays) is a constructor setting:
    it round-trips through meta.json, and the loaded model predicts the same."""
    import bayesgmm
    from bayesgmm.covariance import default_prior

    X = np.random.default_rng(0).normal(size=(120, 2)) + np.repeat([[0, 0], [5, 5]], 60, 0)
    prior = default_prior(X, 2, "full")
    gm = bayesgmm.GaussianMixture(2, prior=prior, random_state=0).fit(X)
    bayesgmm.save(gm, tmp_path / "m")
    back = bayesgmm.load(tmp_path / "m")
    assert type(back.prior).__name__ == "Prior"
    np.testing.assert_allclose(back.prior.scale, prior.scale)
    np.testing.assert_array_equal(back.predict(X), gm.predict(X))


def test_missing_values_refuse_a_prior_clearly():
    import bayesgmm

    X = np.random.default_rng(0).normal(size=(50, 2))
    X[0, 1] = np.nan
    with pytest.raises(ValueError, match="does not combine with prior="):
        bayesgmm.GaussianMixture(1, missing="marginalize", prior="default").fit(X)
