"""The host engine's shifted E-step (:func:`bayesgmm.engines.numpy._e_step_batch` with
``peak``): the log-probabilities shifted by each parameter set's peak instead of each
row's maximum.

Truth: scipy's Gaussian densities (log p(x) and the responsibilities' feature sums,
computed here without the moments form), the closed form of a component's peak
(log w_k - ½ log|2π Σ_k|), and the row-maximum path for every covariance type. The guard
is checked on a row far from every component, where the clip before exp would cost
digits: the shifted pass refuses it, and the E-step still equals scipy.

Glossary: N samples, D features, K components, L parameter sets, F moment features."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm._xp import NUMPY
from bayesgmm.covariance import moment_theta
from bayesgmm.engines import numpy as host
from bayesgmm.initialize import params_from_centers
from bayesgmm.params import GMMParams, pad_components
from bayesgmm.selection import all_covariance_types


@pytest.fixture(scope="module")
def offset_rows():
    """Three 3-D clusters far from the origin (offset 1e3), uneven sample weights."""
    rng = np.random.default_rng(3)
    centers = np.array([[0.0, 0, 0], [4, 0, 1], [0, 5, -2]]) + 1e3
    X = np.concatenate([c + rng.normal(0, s, (n, 3)) @ np.diag([1.0, 0.5, 2.0])
                        for c, s, n in zip(centers, (0.5, 1.0, 0.8), (120, 90, 110))])
    return X, rng.uniform(0.2, 2.0, len(X)), centers


def _fitted(X, w, centers, kind, n_iter=4):
    """Realistic parameters of ``kind``: a few host EM iterations from the centres."""
    start = params_from_centers(centers, len(centers), kind)
    p, _ = host.fit(X, start, sample_weight=w, max_iter=n_iter, hard_start=True)
    return p.to_numpy(np.float64)


def _covariances(p):
    """(K, D, D) covariance matrices of ``p`` from scikit-learn's layout."""
    cov = host.sklearn_covariances(p)["covariances_"]
    K, D = p.means.shape
    if cov.ndim == 1:  # spherical: (K,)
        return cov[:, None, None] * np.eye(D)
    if cov.ndim == 2 and cov.shape == (K, D) and p.covariance_type != "tied":
        return np.stack([np.diag(c) for c in cov])  # diag: (K, D)
    return np.broadcast_to(cov, (K, D, D))  # full (K, D, D) or tied (D, D)


def _scipy_e_step(X, w, p):
    """Σ w r T(x) (K, F) and Σ w log p(x) from scipy's densities (no moments form)."""
    cov = _covariances(p)
    lp = np.stack([np.log(p.weights[k]) + multivariate_normal(p.means[k], cov[k]).logpdf(X)
                   for k in range(len(p.weights))], axis=1)  # (N, K)
    ln = logsumexp(lp, axis=1)
    r = np.exp(lp - ln[:, None]) * w[:, None]
    return r.T, w @ ln


def _batch(ps, center):
    """theta (L, F, K) and means (L, K, D) of parameter sets of one K."""
    kind = ps[0].covariance_type
    stack = [np.stack([getattr(p, f) for p in ps]) for f in ("weights", "means", "cov_factor")]
    return moment_theta(*stack, center, kind, NUMPY), stack[1]


# Σ w log p(x) against scipy's on rows near 1,000: the natural parameters' constant terms
# (μᵀΣ⁻¹μ ~ 10⁶) cancel ~6 of float64's 16 digits, so the BLAS's summation order moves
# the last digits kept (5e-12 relative on an AVX-512 machine's OpenBLAS, NumPy 2.0).
LL_RTOL = 1e-10


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_shifted_e_step_equals_scipy_on_offset_data(offset_rows, kind):
    X, w, centers = offset_rows
    ps = [_fitted(X, w, centers + s, kind) for s in (0.0, 0.7)]
    w_, center, T = host._prepare(X, w, kind)
    theta, means = _batch(ps, center)
    peak = host._peak(theta, means, center, kind)
    with np.errstate(all="ignore"):
        shifted = host._e_step_peak(theta, T, np.ascontiguousarray(T.T), w_, peak)
    assert shifted is not None  # every row near a component: the shifted pass holds
    S, wll = shifted
    for i, p in enumerate(ps):
        r, truth = _scipy_e_step(X, w, p)
        # LL_RTOL: the rows sit near 1,000 and the quadratic's terms cancel ~6 digits
        np.testing.assert_allclose(wll[i], truth, rtol=LL_RTOL)
        # the sums of weighted responsibilities times T(x) (the statistics' matmul)
        np.testing.assert_allclose(S[i], r @ T, rtol=1e-9, atol=1e-9 * np.abs(r @ T).max())


@pytest.mark.parametrize("kind", all_covariance_types())
def test_shifted_e_step_equals_the_row_maximum_path(offset_rows, kind):
    X, w, centers = offset_rows
    ps = [_fitted(X, w, centers + s, kind) for s in (0.0, -0.4, 0.9)]
    w_, center, T = host._prepare(X, w, kind)
    TT = np.ascontiguousarray(T.T)
    theta, means = _batch(ps, center)
    peak = host._peak(theta, means, center, kind)
    with np.errstate(all="ignore"):
        S0, wll0 = host._e_step_batch(theta, T, TT, w_, None)
        S1, wll1 = host._e_step_peak(theta, T, TT, w_, peak)
    np.testing.assert_allclose(wll1, wll0, rtol=1e-13)
    np.testing.assert_allclose(S1, S0, rtol=1e-12, atol=1e-12 * np.abs(S0).max())


def test_peak_is_the_closed_form_maximum(offset_rows):
    """max_k log w_k - ½ log|2π Σ_k|, and no row's log p(x, z = k) exceeds it."""
    X, w, centers = offset_rows
    p = _fitted(X, w, centers, "full")
    _, center, T = host._prepare(X, w, "full")
    theta, means = _batch([p], center)
    cov = _covariances(p)
    closed = max(np.log(p.weights[k]) - 0.5 * np.linalg.slogdet(2 * np.pi * cov[k])[1]
                 for k in range(len(p.weights)))
    peak = host._peak(theta, means, center, "full")
    np.testing.assert_allclose(peak, [closed], rtol=1e-12)
    assert (T @ theta[0]).max() <= peak[0] + 1e-9


def test_far_row_takes_the_row_maximum_path():
    """A compact component sets the peak high; a row far from every component has all
    its shifted log-probabilities below the guard's limit: the shifted pass refuses the
    call, and the E-step equals scipy."""
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1e-3, (50, 2)), rng.normal(0, 1.0, (200, 2)) + 3,
                        [[80.0, -60.0]]])
    w = np.ones(len(X))
    p = params_from_centers(np.array([[0.0, 0.0], [3.0, 3.0]]), 2, "full").to_numpy(np.float64)
    p = GMMParams(p.weights, p.means, p.cov_factor * np.array([1e-3, 1.0])[:, None, None],
                  "full")
    np.testing.assert_allclose(_covariances(p)[0], 1e-6 * np.eye(2))  # the compact one
    w_, center, T = host._prepare(X, w, "full")
    TT = np.ascontiguousarray(T.T)
    theta, means = _batch([p], center)
    peak = host._peak(theta, means, center, "full")
    lp = T @ theta[0]
    assert (lp[-1] - peak[0]).max() < np.log(host._PEAK_FLOOR)  # the far row, shifted
    with np.errstate(all="ignore"):
        assert host._e_step_peak(theta, T, TT, w_, peak) is None  # guard: exact path
        S, wll = host._e_step_batch(theta, T, TT, w_, None, peak)
    r, truth = _scipy_e_step(X, w, p)
    # the row-maximum path's own accuracy here (a 1e-6 variance, a row 5,000 nats out)
    np.testing.assert_allclose(wll[0], truth, rtol=1e-10)
    np.testing.assert_allclose(S[0], r @ T, rtol=1e-9, atol=1e-9 * np.abs(r @ T).max())


def test_criteria_terms_equal_scikit_learn_with_an_inactive_component(offset_rows):
    """Σ w log p(x) and Σ w H(r) from one exp pass (r = e / Σ e) against scikit-learn's
    score_samples and predict_proba; a padded zero-weight component adds nothing."""
    X, w, _ = offset_rows
    sk = SkGM(3, covariance_type="full", random_state=0, max_iter=5).fit(X)  # any θ
    p = GMMParams(sk.weights_, sk.means_, np.linalg.cholesky(sk.covariances_), "full")
    r = sk.predict_proba(X)
    entropy = -(w * np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0),
                           axis=1)).sum()
    truth = (w @ sk.score_samples(X), entropy)
    assert entropy > 1.0  # overlapping enough for the entropy to be checked
    for q in (p, pad_components(p.to_numpy(np.float64), 5)):
        ll, h = host.criteria_terms(q, X, w)
        np.testing.assert_allclose([ll, h], truth, rtol=1e-9)


def test_fit_with_a_far_row_equals_scikit_learn_from_the_same_start():
    """A row ~85 standard deviations from both starting components: the batch's first
    shifted E-step refuses it (checked), the K keeps the row maxima from then on, and
    the fit equals scikit-learn's EM from the same start."""
    from bayesgmm import GaussianMixture

    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0.0, 1.0, (40, 2)), rng.normal(4.0, 1.0, (40, 2)),
                        [[60.0, 60.0]]])
    start = dict(weights_init=np.array([0.5, 0.5]),
                 means_init=np.array([[0.0, 0.0], [4.0, 4.0]]),
                 precisions_init=np.stack([np.eye(2)] * 2))
    kw = dict(covariance_type="full", tol=1e-10, max_iter=500, reg_covar=1e-6)
    w, center, T = host._prepare(X, None, "full")
    theta = moment_theta(start["weights_init"][None], start["means_init"][None],
                         np.stack([np.eye(2)] * 2)[None], center, "full", NUMPY)
    peak = host._peak(theta, start["means_init"][None], center, "full")
    with np.errstate(all="ignore"):
        assert host._e_step_peak(theta, T, np.ascontiguousarray(T.T), w, peak) is None
    ours = GaussianMixture(2, engine="numpy", **start, **kw).fit(X)
    ref = SkGM(2, **start, **kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-8, atol=1e-8)


def test_padding_components_get_exact_zeros_and_cost_no_exp(offset_rows):
    """A batch padded to a larger K (inactive components: weight 0, constant term -inf)
    in the shifted E-step: the padding's feature sums are exactly 0 (its exp is not
    computed), and the active components' sums and Σ w log p(x) equal scipy's, as the
    unpadded batch's do (full and diag features; sets of 3 components padded to 5
    beside an unpadded set of 5). A NaN constant term is not taken for padding: the
    shifted pass refuses the batch (the row-maximum path then reports it)."""
    X, w, centers = offset_rows
    for kind in ("full", "diag"):
        p3 = _fitted(X, w, centers, kind)
        p5 = _fitted(X, w, np.concatenate([centers, centers[:2] + 1.5]), kind)
        ps = [pad_components(p3, 5).to_numpy(np.float64), p5]
        w_, center, T = host._prepare(X, w, kind)
        with np.errstate(all="ignore"):  # log(0) of the padding's weights: -inf
            theta, means = _batch(ps, center)
            peak = host._peak(theta, means, center, kind)
            S, wll = host._e_step_peak(theta, T, np.ascontiguousarray(T.T), w_, peak)
        assert (S[0, 3:] == 0.0).all()
        for i, (p, k) in enumerate(((p3, 3), (p5, 5))):
            r, truth = _scipy_e_step(X, w, p)
            np.testing.assert_allclose(wll[i], truth, rtol=LL_RTOL)
            np.testing.assert_allclose(S[i, :k], r @ T, rtol=1e-9,
                                       atol=1e-9 * np.abs(r @ T).max())
        broken = theta.copy()
        broken[1, 0, 2] = np.nan  # a NaN constant term is not padding: the guard refuses it
        with np.errstate(all="ignore"):
            assert host._e_step_peak(broken, T, np.ascontiguousarray(T.T), w_, peak) is None


@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "VEV", "EEI"])
def test_scoring_a_compact_component_far_away_equals_scipy(kind):
    """A cluster of sd 1e-2 at 1e5 (1e7 of its sds from the data's mean): the moments
    form cancels terms of 1e14 there, and the host's score_samples were off by up to
    9e-3 (score inflated above the optimum, BIC with it; EEI's shared covariance by
    6e-7). The host scores such a fit by each component's centred rows instead (as the
    compiled float32 kernel's guard does): score_samples, predict_proba and the
    criteria equal scipy's densities of the same parameters."""
    from bayesgmm import GaussianMixture

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(500, 2)), 1e5 + 1e-2 * rng.normal(size=(500, 2))])
    gm = GaussianMixture(2, covariance_type=kind, random_state=0).fit(X)
    cov = np.asarray(gm.params_.full_covariances)
    joint = np.stack([np.log(gm.weights_[k]) + multivariate_normal(gm.means_[k], cov[k])
                      .logpdf(X) for k in range(2)], axis=1)
    truth = logsumexp(joint, axis=1)
    np.testing.assert_allclose(gm.score_samples(X), truth, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gm.predict_proba(X), np.exp(joint - truth[:, None]),
                               atol=1e-9)
    p = gm.params_.n_parameters
    np.testing.assert_allclose(gm.bic(X), -2 * truth.sum() + p * np.log(len(X)), rtol=1e-12)
    draws = GMMParams(*(np.stack([a, a]) for a in (gm.params_.weights, gm.params_.means,
                                                   gm.params_.cov_factor)), kind)
    np.testing.assert_allclose(host.score_draws(draws, X), np.stack([truth, truth]),
                               atol=1e-9)


# ---- EM's guard: a compact cluster far from the data's mean --------------------------


def _far_clusters(offset, rounded):
    """1,000 rows of N(0, I) and 1,000 of N(offset, 1e-4 I) in 2-D (the reviewer's
    data); ``rounded``: each value rounded to float32 and back (float64 rows)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(1000, 2)), offset + 1e-2 * rng.normal(size=(1000, 2))])
    if rounded:
        X = X.astype(np.float32).astype(np.float64)
    return X, np.repeat([0, 1], 1000)


def _labelled_optimum(X, labels, kind, reg_covar=1e-6):
    """The optimum of clusters so far apart that every responsibility is 0 or 1: the
    M-step of the true partition, from statistics centred on each cluster's own mean
    (no cancellation), repeated until the iterative M-steps (VEV, VVE) settle.
    Returns (weights, means, covariances (K, D, D))."""
    from bayesgmm.covariance import ops
    from bayesgmm.engines import mixture_m_step

    K = labels.max() + 1
    means = np.stack([X[labels == k].mean(axis=0) for k in range(K)])
    Xc = [X[labels == k] - means[k] for k in range(K)]
    sxx = np.stack([c.T @ c if ops(kind, NUMPY).full_moments else (c * c).sum(axis=0)
                    for c in Xc])
    nk = np.bincount(labels).astype(float)
    p = None
    for _ in range(300):
        p = mixture_m_step(nk, np.zeros_like(means), sxx, means, covariance_type=kind,
                           reg_covar=reg_covar, previous=p, xp=NUMPY)
    return p.weights, p.means, ops(kind, NUMPY).to_full_covariance(p.cov_factor, K,
                                                                   X.shape[1])


def _scipy_score(X, weights, means, covs):
    lp = np.stack([np.log(weights[k]) + multivariate_normal(means[k], covs[k]).logpdf(X)
                   for k in range(len(weights))], axis=1)
    return logsumexp(lp, axis=1).mean()


@pytest.mark.parametrize("rounded", [False, True], ids=["float64", "float32-rounded"])
@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "tied", "VEV", "EEI", "VVE"])
def test_host_fit_of_a_compact_cluster_far_from_the_mean(kind, rounded):
    """A compact cluster (sd 1e-2) 1e5 from the other (sd 1): in the moments form the
    M-step's ``sxx/n - δδᵀ`` cancels (|μ - c| / σ)² ~ 1e14, and the fit scored 2.4e-4
    below the optimum (full, diag, VEV; scikit-learn's full fit agrees with the
    optimum) or, on the float32-rounded rows, stopped with a singular covariance. With
    the guard (centred statistics for such members) the default fit, on the host, reaches
    the labelled optimum: scipy's score of its parameters within 1e-9 (VVE: 1e-6, its
    iterative M-step converges slowly at any offset, so it runs to tol=1e-8), and its
    covariances within 1e-9."""
    from bayesgmm import GaussianMixture
    from bayesgmm.covariance import ops

    X, labels = _far_clusters(1e5, rounded)
    weights, means, covs = _labelled_optimum(X, labels, kind)
    optimum = _scipy_score(X, weights, means, covs)
    slow = kind == "VVE"
    gm = GaussianMixture(2, covariance_type=kind, random_state=0,
                         **({"tol": 1e-8, "max_iter": 1000} if slow else {})).fit(X)
    p = gm.params_
    order = np.argsort(np.asarray(p.means)[:, 0])
    fitted = ops(kind, NUMPY).to_full_covariance(np.asarray(p.cov_factor, np.float64), 2, 2)
    score = _scipy_score(X, np.asarray(p.weights)[order], np.asarray(p.means)[order],
                         fitted[order])
    assert abs(score - optimum) <= (1e-6 if slow else 1e-9) * abs(optimum)
    if not slow:
        for k in range(2):
            np.testing.assert_allclose(fitted[order][k], covs[k], rtol=0,
                                       atol=1e-9 * np.abs(covs[k]).max())


@pytest.mark.parametrize("rounded", [False, True], ids=["float64", "float32-rounded"])
def test_host_sweep_of_a_compact_cluster_far_from_the_mean(rounded):
    """The model search's lockstep EM (:func:`bayesgmm.engines.numpy.fit_many_models`)
    takes the same guard, per member: each model's K = 2 fit reaches the labelled
    optimum's log-likelihood (to 1e-9; without the guard 2.4e-4 short, or a singular
    covariance on the rounded rows)."""
    from bayesgmm.selection import sweep

    X, labels = _far_clusters(1e5, rounded)
    kinds = ["full", "diag", "spherical", "tied", "VEV", "EEI"]
    result = sweep(X, [2], kinds, random_state=0)
    for kind, ll in zip(result["covariance_type"], result["log_likelihood"]):
        optimum = len(X) * _scipy_score(X, *_labelled_optimum(X, labels, str(kind)))
        assert abs(ll - optimum) <= 1e-9 * abs(optimum), kind


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_compiled_float64_fit_of_a_far_compact_cluster_is_exact(kind):
    """The compiled engine's float64 default is the moments form: on a cluster of sd
    1e-2 at 1e5 its fit's scores were off by 1e-2 and its covariances by 4e-2. A fit
    whose parameters fail the host's guard is run again with the centred kernel, and
    its scores go through the host's guarded path: score_samples equal scipy's
    densities of the fitted parameters, and the full fit reaches scikit-learn's."""
    from bayesgmm import GaussianMixture

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(500, 2)), 1e5 + 1e-2 * rng.normal(size=(500, 2))])
    gm = GaussianMixture(2, covariance_type=kind, engine="jax", random_state=0).fit(X)
    assert gm.engine_ == "jax"
    cov = np.asarray(gm.params_.full_covariances)
    truth = logsumexp(np.stack([np.log(gm.weights_[k]) + multivariate_normal(
        gm.means_[k], cov[k]).logpdf(X) for k in range(2)], axis=1), axis=1)
    np.testing.assert_allclose(gm.score_samples(X), truth, rtol=0, atol=1e-9)
    p = gm.params_.n_parameters
    np.testing.assert_allclose(gm.bic(X), -2 * truth.sum() + p * np.log(len(X)), rtol=1e-12)
    if kind == "full":
        assert truth.mean() >= SkGM(2, random_state=0).fit(X).score(X) - 1e-9
