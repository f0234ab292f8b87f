"""The host (NumPy) engine: the same EM as the compiled one, chosen for small data.

Truth here is the compiled path (itself tested against scikit-learn in
test_engines_jax.py) run from identical starting parameters, scikit-learn itself, and
closed-form facts (which engine runs, that a small sweep compiles nothing, the moments of
samples)."""

import warnings

import jax
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from test_collapse import collapse_case
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import GaussianMixture, fitting
from bayesgmm.covariance import ops
from bayesgmm.engines import jax as em, numpy as host
from bayesgmm.engines.choose import HOST_WORK
from bayesgmm.initialize import lloyd_batch, params_from_centers
from bayesgmm.params import GMMParams, pad_components, take_components
from bayesgmm.selection import sweep
from bayesgmm.validation import ConvergenceWarning, compute_scope


@pytest.fixture(scope="module")
def offset_data():
    """Three 3-D clusters offset by 50, with uneven sample weights."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0, 0], [4, 0, 1], [0, 5, -2]]) + 50.0
    X = np.concatenate([c + rng.normal(0, s, (n, 3)) for c, s, n in
                        zip(centers, (0.5, 1.0, 0.8), (150, 100, 150))])
    return X, rng.uniform(0.2, 2.0, len(X))


def _leaves(p):
    return [np.asarray(a) for a in (p.weights, p.means, p.cov_factor)]


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_fit_equals_compiled_fit(offset_data, ct, hard):
    """From the same start (k-means-style centres, hard first pass or not), host EM takes
    the compiled path's iterations: same n_iter, bound, history, counts, parameters."""
    X, w = offset_data
    start = params_from_centers(X[[0, 200, 390, 10]], 4, ct)
    kw = dict(sample_weight=w, tol=1e-8, max_iter=60, hard_start=hard)
    with compute_scope(np.float64):
        pj, ij = jax.tree_util.tree_map(np.asarray, em.fit(X, start, **kw))
    ph, ih = host.fit(X, start, **kw)
    assert int(ih.n_iter) == int(ij.n_iter) and bool(ih.converged) == bool(ij.converged)
    assert float(ih.lower_bound) == pytest.approx(float(ij.lower_bound), rel=1e-12)
    np.testing.assert_allclose(ih.history, ij.history, rtol=1e-12)
    np.testing.assert_allclose(ih.nk, ij.nk, rtol=1e-9, atol=1e-9)
    for a, b in zip(_leaves(ph), _leaves(pj)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_padding_components_stay_inactive(offset_data, ct):
    """Zero-weight padding (as the compiled path's buckets add) changes nothing: the
    padded fit equals the plain one, and the padding keeps weight 0 and its parameters."""
    X, w = offset_data
    start = params_from_centers(X[[0, 200, 390]], 3, ct)
    padded = pad_components(start, 5)
    plain, info = host.fit(X, start, sample_weight=w, hard_start=True)
    got, got_info = host.fit(X, padded, sample_weight=w, hard_start=True)
    assert int(got_info.n_iter) == int(info.n_iter)
    np.testing.assert_array_equal(got.weights[3:], 0.0)
    np.testing.assert_array_equal(got.means[3:], padded.means[3:])
    for a, b in zip(_leaves(take_components(got, 3)), _leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("screen_iter", [0, 3])
def test_restarts_equal_compiled_restarts(offset_data, screen_iter):
    """n_init starts, all run to convergence or screened (small-EM), pick the same best
    restart with the same fit; every restart's info agrees."""
    X, _ = offset_data
    rng = np.random.default_rng(1)
    centers = np.stack([X[rng.choice(len(X), 3, replace=False)] for _ in range(4)])
    start = params_from_centers(centers, 3, "full")
    kw = dict(tol=1e-6, max_iter=40, screen_iter=screen_iter, hard_start=True)
    with compute_scope(np.float64):
        pj, ij, aj = jax.tree_util.tree_map(np.asarray, em.fit_restarts(X, start, **kw))
    ph, ih, ah = host.fit_restarts(X, start, **kw)
    assert int(ih.n_iter) == int(ij.n_iter)
    np.testing.assert_allclose(ah.lower_bound, aj.lower_bound, rtol=1e-10)
    np.testing.assert_array_equal(ah.n_iter, aj.n_iter)
    for a, b in zip(_leaves(ph), _leaves(pj)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_float32_input_gives_float32_results_close_to_the_compiled_float32_fit(offset_data):
    X = offset_data[0].astype(np.float32)
    start = params_from_centers(X[[0, 200, 390]], 3, "full")
    ph, ih = host.fit(X, start, hard_start=True)
    pj, ij = jax.tree_util.tree_map(np.asarray, em.fit(X, start, hard_start=True))
    assert all(a.dtype == np.float32 for a in _leaves(ph)) and ih.lower_bound.dtype == np.float32
    np.testing.assert_allclose(ph.means, pj.means, rtol=1e-5)
    assert float(ih.lower_bound) == pytest.approx(float(ij.lower_bound), rel=1e-5)


def test_lloyd_equals_compiled_lloyd_with_padding(offset_data):
    """Weighted Lloyd from the same centres, with two padding centres that take no rows."""
    X, w = offset_data
    rng = np.random.default_rng(2)
    centers = np.stack([X[rng.choice(len(X), 5, replace=False)] for _ in range(3)])
    with compute_scope(np.float64):
        ref = np.asarray(lloyd_batch(X, w, centers, n_active=3))
    got = host.lloyd_batch(X, w, centers, n_active=3)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(got[:, 3:], centers[:, 3:])  # padding never moves


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_scoring_equals_scikit_learn(blobs, ct):
    """log_resp, score_samples and BIC/AIC from the host against scikit-learn's own
    fitted model (its parameters converted to GMMParams)."""
    X = blobs[0]
    ref = SkGM(3, covariance_type=ct, random_state=0).fit(X)
    p = GMMParams.from_sklearn(ref.weights_, ref.means_, covariance_type=ct,
                               covariances=ref.covariances_)
    lr, ln = host.log_resp(p, X)
    np.testing.assert_allclose(ln, ref.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(np.exp(lr), ref.predict_proba(X), atol=1e-10)
    ll, _ = host.criteria_terms(p, X)
    assert -2 * ll + p.n_parameters * np.log(len(X)) == pytest.approx(ref.bic(X), rel=1e-10)
    for name, value in host.sklearn_covariances(p).items():
        np.testing.assert_allclose(value, getattr(ref, name), rtol=1e-8, err_msg=name)


@pytest.mark.parametrize("kw", [dict(), dict(init_params="k-means++", n_init=3),
                                dict(n_init=2, init_subsample=150),
                                dict(covariance_type="diag", n_init=3, restart_screen_iter=2)])
def test_estimator_engines_agree(offset_data, kw):
    """The facade with engine="numpy" and engine="jax": the same seeds, restarts and fit."""
    X, w = offset_data
    fits = {}
    for engine in ("numpy", "jax"):
        fits[engine] = GaussianMixture(3, random_state=0, engine=engine, **kw).fit(
            X, sample_weight=w)
        assert fits[engine].engine_ == engine
    a, b = fits["numpy"], fits["jax"]
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-8)
    assert a.bic(X) == pytest.approx(b.bic(X), rel=1e-10)


def test_auto_engine_follows_the_work_of_one_pass(blobs):
    X = blobs[0]  # 300 x 2: 300 * K * 6 <= HOST_WORK = 2^20 up to K = 582
    assert GaussianMixture(20, random_state=0).fit(X).engine_ == "numpy"
    big = np.tile(X, (150, 1)) + np.random.default_rng(0).normal(0, 0.01, (45000, 2))
    assert 45000 * 4 * 6 > HOST_WORK >= 300 * 4 * 6
    gm = GaussianMixture(4, random_state=0).fit(big)
    assert gm.engine_ == "jax"
    on_host = lambda n: fitting.score_plan(gm.params_, n, gm.engine).engine == "numpy"  # noqa: E731
    assert not on_host(len(big)) and on_host(len(X))
    assert GaussianMixture(4, random_state=0, engine="numpy").fit(big).engine_ == "numpy"
    small = GaussianMixture(4, random_state=0).fit(X)
    assert small.engine_ == "numpy"
    assert small.partial_fit(X).engine_ == "jax"  # online EM is compiled only
    with pytest.raises(ValueError, match="'engine' should be one of"):
        GaussianMixture(2, engine="gpu").fit(X)


def test_small_sweep_compiles_nothing(blobs):
    """The tutorial's sweep 1..20 on its 300 blobs, with predictions, runs no JAX
    compilation (the reason the host engine exists)."""
    compiled = []
    listener = lambda event, duration, **kw: compiled.append(event) if "compile" in event \
        else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        X = blobs[0] + 1000.0  # a shape no other test compiled for
        table = sweep(X, range(1, 21), random_state=0)
        gm = table.best["model"]
        gm.predict(X), gm.predict_proba(X), gm.score(X), gm.covariances_
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert table.best["n_components"] == 4
    assert compiled == []


def test_matches_scikit_learn_from_its_own_start(blobs):
    """engine="numpy" from scikit-learn's initial parameters, against scikit-learn."""
    X = blobs[0]
    with pytest.warns(ConvergenceWarning):
        init = GaussianMixture(4, random_state=1, max_iter=1, engine="numpy").fit(X)
    kw = dict(weights_init=init.weights_, means_init=init.means_,
              precisions_init=init.precisions_, tol=1e-8)
    ours = GaussianMixture(4, engine="numpy", **kw).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGM(4, **kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-8)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_collapsed_component_is_reported(ct, blobs):
    """reg_covar=0: the component whose variance is round-off is reported (nonfinite,
    bad_component) and the returned parameters are the last sound ones; the default
    reg_covar fits the same data from the same start."""
    X, start, k = collapse_case(ct, blobs)
    p, info = host.fit(X, start, reg_covar=0.0, max_iter=100)
    assert bool(info.nonfinite) and int(info.bad_component) == k
    assert all(np.isfinite(a).all() for a in _leaves(p))
    p, info = host.fit(X, start, max_iter=100)
    assert not bool(info.nonfinite) and int(info.bad_component) == -1
    assert ops(ct).factor_ok(p.cov_factor, p.n_components).all()


def _random_params(ct, rng, K=3, D=4):  # K != D: the factor's shape tells the type apart
    t = ops(ct)
    shape = t.factor_shape(K, D)
    if shape[-2:] == (D, D):
        f = np.tril(rng.normal(0, 0.5, shape), -1) + np.eye(D) * rng.uniform(0.5, 2.0,
                                                                             (*shape[:-1], 1))
    else:
        f = rng.uniform(0.5, 2.0, shape)
    return GMMParams(np.array([0.2, 0.3, 0.5]), rng.normal(0, 10, (K, D)), f, ct)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_sample_moments_and_counts(ct):
    """Counts per component are multinomial on the weights; each component's rows have
    its mean and covariance (5 standard errors); rows are ordered by component, as
    scikit-learn lays them out."""
    rng = np.random.default_rng(0)
    p = _random_params(ct, rng)
    n = 200_000
    X, labels = host.sample(np.random.default_rng(1), p, n)
    assert X.shape == (n, 4) and labels.shape == (n,) and X.dtype == np.float64
    assert np.all(np.diff(labels) >= 0)  # ordered by component
    counts = np.bincount(labels, minlength=3)
    w = p.weights
    assert np.all(np.abs(counts - n * w) <= 5 * np.sqrt(n * w * (1 - w)))
    covs = p.full_covariances
    for k in range(3):
        Xk, S = X[labels == k], covs[k]
        se_mean = np.sqrt(np.diag(S) / len(Xk))
        assert np.all(np.abs(Xk.mean(0) - p.means[k]) <= 5 * se_mean)
        se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S * S) / len(Xk))
        assert np.all(np.abs(np.cov(Xk.T) - S) <= 5 * se_cov)


def test_sample_layout_dtype_padding_and_reproducibility():
    rng = np.random.default_rng(2)
    p = _random_params("full", rng)
    padded = pad_components(p, 5)  # zero-weight components draw nothing
    X, labels = host.sample(np.random.default_rng(3), padded, 1000)
    assert set(np.unique(labels)) <= {0, 1, 2}
    again = host.sample(np.random.default_rng(3), padded, 1000)
    np.testing.assert_array_equal(X, again[0])
    np.testing.assert_array_equal(labels, again[1])
    p32 = GMMParams(*(np.asarray(a, np.float32) for a in (p.weights, p.means, p.cov_factor)),
                    "full")
    X32, _ = host.sample(np.random.default_rng(3), p32, 10)
    assert X32.dtype == np.float32
    for n in (0, 1):
        Xn, ln = host.sample(np.random.default_rng(4), p, n)
        assert Xn.shape == (n, 4) and ln.shape == (n,)
    # scikit-learn's own layout from the same parameters: counts, then rows by component
    sk = SkGM(3, covariance_type="full")
    sk.weights_, sk.means_, sk.covariances_ = p.weights, p.means, p.covariances
    _, sk_labels = sk.sample(1000)
    assert np.all(np.diff(sk_labels) >= 0) and sk_labels.dtype.kind == labels.dtype.kind


@pytest.mark.parametrize("warm", [False, True])
def test_layout_m_step_is_each_types_m_step_on_its_rows(warm):
    """covariance.layout_factor_from_moments (the host search's M-step of a batch of
    the full-storage models: one S_k and Cholesky pass, EVE's and VVE's rows in one
    orientation M-step) equals each type's own factor_from_moments on its rows,
    bitwise, cold and warm (previous factors), with members of fewer components
    (padding: count 10·eps)."""
    from bayesgmm._xp import NUMPY
    from bayesgmm.covariance import layout_factor_from_moments

    rng = np.random.default_rng(3)
    kinds = ["VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"]
    L, K, D = 2 * len(kinds), 4, 3
    A = rng.normal(size=(L, K, D, D))
    S = A @ np.swapaxes(A, -1, -2) + 0.2 * np.eye(D)
    nk = rng.uniform(3.0, 40.0, (L, K))
    nk[1::2, -1] = 0.0  # every second member has K - 1 components
    counts = nk + 10 * np.finfo(np.float64).eps
    sxx = S * counts[..., None, None]
    delta = rng.normal(size=(L, K, D))
    sxx = sxx + counts[..., None, None] * delta[..., :, None] * delta[..., None, :]
    total = np.where(nk > 0, counts, 0.0).sum(-1)
    previous = np.linalg.cholesky(S[::-1]) if warm else None
    segments = tuple((k, 2 * i, 2 * i + 2) for i, k in enumerate(kinds))
    got = layout_factor_from_moments(segments, sxx, counts, delta, total,
                                     np.asarray(1e-6), previous)
    for k, a, b in segments:
        want = ops(k, NUMPY).factor_from_moments(
            sxx[a:b], counts[a:b], delta[a:b], total[a:b], np.asarray(1e-6),
            None if previous is None else previous[a:b])
        np.testing.assert_array_equal(got[a:b], want, err_msg=k)
        assert np.isfinite(want).all()
