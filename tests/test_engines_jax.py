"""The compiled engine (bayesgmm.engines.jax): parity with scikit-learn from identical
initial parameters, JAX hygiene (jit = eager, vmap = loop, compiled once), invariances,
weights, float32 robustness, collapsed components.

Nearly all of this module's time is XLA compiling EM programs, one per (N, D, K,
covariance type, dtype, max_iter, chunk_size, kernel): so the tests share shapes and
options where the check does not depend on them (8 iterations on the 400-row 'aniso'
shape and on iris' shape; other row counts padded to those with zero-weight rows), and
starts are computed on the host (:func:`_init`: nothing to compile)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, in_scope
from test_collapse import collapse_case
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

from bayesgmm.covariance import ops
from bayesgmm.engines import numpy as host
from bayesgmm.engines import jax as em
from bayesgmm.initialize import init_params, init_params_batch
from bayesgmm.params import GMMParams


def _sk_from(p0: GMMParams, max_iter, X):
    """scikit-learn started from exactly our initial parameters, tol=0: runs max_iter."""
    sk = SkGM(p0.n_components, covariance_type=p0.covariance_type, tol=0.0, max_iter=max_iter,
              weights_init=np.asarray(p0.weights, np.float64),
              means_init=np.asarray(p0.means, np.float64),
              precisions_init=np.asarray(p0.precisions, np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk.fit(X)


def _init(X, K, ct, seed=0, dtype=np.float64):
    """A k-means start computed on the host (scikit-learn's KMeans labels, then their
    M-step): the tests need a sound start, and an eager init_params compiles about as
    long as the EM program it starts."""
    X = np.asarray(X, np.float64)
    labels = KMeans(K, n_init=1, random_state=seed).fit(X).labels_
    nk, means, cov = _estimate_gaussian_parameters(X, np.eye(K)[labels], 1e-6, ct)
    p = GMMParams.from_sklearn(nk / len(X), means, covariance_type=ct, covariances=cov)
    return p.to_numpy(dtype)


def _padded_to(X, n_rows):
    """``X`` with rows of weight 0 appended up to ``n_rows`` (copies of its first rows),
    and the weights: the fit of ``X`` in the program of an ``n_rows``-row data set."""
    extra = n_rows - len(X)
    return (np.concatenate([X, X[:extra]]),
            np.concatenate([np.ones(len(X)), np.zeros(extra)]))


def _sk_fit64(X, p0, max_iter):
    """The float64 truth for the float32 tests: scikit-learn from ``p0``, tol=0:
    (covariances, lower bound)."""
    sk = _sk_from(p0, max_iter, X)
    return sk.covariances_, sk.lower_bound_


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def _assert_parity(p, cov, info, sk, rtol, lb_rtol):
    """Our EM result against scikit-learn's after the same iterations."""
    assert _rel(p.weights, sk.weights_) < rtol
    assert _rel(p.means, sk.means_) < rtol
    assert _rel(cov, sk.covariances_) < rtol
    assert abs(float(info.lower_bound) - sk.lower_bound_) / abs(sk.lower_bound_) < lb_rtol


@pytest.mark.parametrize("kernel", ["centred", "moments"])
@pytest.mark.parametrize("name", ["blobs", "aniso", "iris"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_parity_with_sklearn_float64(datasets, name, ct, kernel):
    """blobs (300 rows) is fitted padded to aniso's 400 with weight-0 rows: one program
    serves both, and the padding must change nothing."""
    X = datasets[name]
    K = 3
    p0 = _init(X, K, ct)
    n_iter = 8
    sk = _sk_from(p0, n_iter, X)
    Xf, w = _padded_to(X, len(datasets["aniso"])) if name == "blobs" else (X, None)
    with in_scope(np.float64):
        p, info = em.fit(jnp.asarray(Xf), p0, sample_weight=None if w is None else jnp.asarray(w),
                         tol=0.0, max_iter=n_iter, kernel=kernel)
        p = jax.tree_util.tree_map(np.asarray, p)
        cov = GMMParams(*jax.tree_util.tree_leaves(p), ct).covariances
    assert int(info.n_iter) == sk.n_iter_ == n_iter
    _assert_parity(p, cov, info, sk, rtol=1e-6, lb_rtol=1e-6)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_parity_with_sklearn_float32(datasets, ct):
    """float32 EM against float64 scikit-learn: the tolerance float32 reaches (1e-4)."""
    X = datasets["aniso"]
    p0 = _init(X, 3, ct)
    sk = _sk_from(p0, 8, X)
    with in_scope(np.float32):
        p, info = em.fit(jnp.asarray(X, jnp.float32), p0.to_numpy(np.float32), tol=0.0,
                         max_iter=8)
        assert p.means.dtype == jnp.float32 and info.lower_bound.dtype == jnp.float32
        cov = p.to_numpy().covariances
    _assert_parity(p, cov, info, sk, rtol=1e-4, lb_rtol=1e-5)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_lower_bound_never_decreases_and_weights_on_simplex(datasets, ct):
    X = datasets["iris"]
    p0 = _init(X, 4, ct, seed=3)
    with in_scope(np.float64):
        p, info = em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=60)
        hist = np.asarray(info.history)
        weights = np.asarray(p.weights)
    assert np.all(np.diff(hist) >= -1e-10)
    assert np.isclose(np.sum(weights), 1.0, atol=1e-12) and np.all(weights > 0)


def test_reported_counts_are_those_of_the_returned_parameters(datasets):
    """``info.nk`` are the effective counts the last M-step turned into the returned
    parameters, so weights = nk / N (the M-step's closed form) and, padded or not, they
    sum to N. After 3 iterations far from convergence, counts from any other E-step
    would miss the weights by ~1e-2."""
    X = datasets["aniso"]
    p0 = _init(X, 3, "full", seed=1)
    with in_scope(np.float64):
        p, info = em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=3)
    p_next, _ = host.fit(X, p.to_numpy(), tol=0.0, max_iter=1)  # one more iteration
    nk = np.asarray(info.nk)
    assert np.asarray(info.n_iter) == 3
    np.testing.assert_allclose(nk.sum(), len(X), rtol=1e-12)
    np.testing.assert_allclose(nk / len(X), np.asarray(p.weights), rtol=1e-10)
    assert np.max(np.abs(np.asarray(p_next.weights) - np.asarray(p.weights))) > 1e-4


def test_jit_equals_eager(datasets):
    X = datasets["aniso"]
    p0 = _init(X, 3, "full")
    with in_scope(np.float64):
        jitted, info_j = em.fit(jnp.asarray(X), p0, tol=1e-8, max_iter=8)
        with jax.disable_jit():
            eager, info_e = em._fit(jnp.asarray(X), p0, None, 1e-8, 1e-6, 8, None)
    assert int(info_j.n_iter) == int(info_e.n_iter)
    np.testing.assert_allclose(jitted.means, eager.means, rtol=1e-10)
    np.testing.assert_allclose(jitted.cov_factor, eager.cov_factor, rtol=1e-9, atol=1e-12)


def test_vmapped_restarts_equal_a_loop(datasets):
    X = jnp.asarray(datasets["iris"], jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    batch = init_params_batch(keys, X, 3, "diag")  # init_params vmapped, one program
    best, best_info, all_info = em.fit_restarts(X, batch, tol=1e-4, max_iter=50)
    for r in range(4):
        p, info = em.fit(X, batch[r], tol=1e-4, max_iter=50)
        assert int(info.n_iter) == int(all_info.n_iter[r])
        np.testing.assert_allclose(info.lower_bound, all_info.lower_bound[r], rtol=1e-5)
    assert float(best_info.lower_bound) == pytest.approx(float(np.max(all_info.lower_bound)))


def test_fit_compiles_once_per_shape(datasets):
    X = jnp.asarray(datasets["blobs"], jnp.float32)
    p0 = _init(datasets["blobs"], 4, "spherical", dtype=np.float32)
    em.fit(X, p0, tol=1e-3, max_iter=17)
    before = em.TRACE_COUNT["fit"]
    em.fit(X, p0, tol=1e-5, reg_covar=1e-4, max_iter=17)  # traced scalars: no retrace
    em.fit(X + 1.0, p0, tol=1e-3, max_iter=17)
    assert em.TRACE_COUNT["fit"] == before
    em.fit(X[:200], p0, tol=1e-3, max_iter=17)  # a new shape compiles once more
    assert em.TRACE_COUNT["fit"] == before + 1


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_chunked_equals_unchunked(datasets, ct):
    X = jnp.asarray(datasets["iris"])
    p0 = _init(datasets["iris"], 3, ct)
    with in_scope(np.float64):
        X = jnp.asarray(datasets["iris"])
        full, i1 = em.fit(X, p0, tol=0.0, max_iter=8)
        chunked, i2 = em.fit(X, p0, tol=0.0, max_iter=8, chunk_size=37)  # 150 = 4*37 + 2
    np.testing.assert_allclose(full.means, chunked.means, rtol=1e-10)
    np.testing.assert_allclose(full.cov_factor, chunked.cov_factor, rtol=1e-9)
    assert float(i1.lower_bound) == pytest.approx(float(i2.lower_bound), rel=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repetition(datasets, ct):
    """Counts 0..7 on 200 rows summing to 400: the weighted rows (padded with weight-0
    rows) and the repeated ones are both 400 rows, aniso's shape."""
    X = datasets["aniso"][:200]
    w = np.random.RandomState(0).multinomial(400, np.full(len(X), 1 / len(X)))
    Xrep = np.repeat(X, w, axis=0)
    Xw, pad = _padded_to(X, len(Xrep))
    w = np.concatenate([w, pad[len(X):]]).astype(np.float64)
    p0 = _init(X, 3, ct)
    with in_scope(np.float64):
        pw, iw = em.fit(jnp.asarray(Xw), p0, sample_weight=jnp.asarray(w), tol=0.0, max_iter=8)
        pr, ir = em.fit(jnp.asarray(Xrep), p0, tol=0.0, max_iter=8)
    np.testing.assert_allclose(pw.means, pr.means, rtol=1e-9)
    np.testing.assert_allclose(pw.cov_factor, pr.cov_factor, rtol=1e-8)
    np.testing.assert_allclose(pw.weights, pr.weights, rtol=1e-9)
    assert float(iw.lower_bound) == pytest.approx(float(ir.lower_bound), rel=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_permutation_invariance(datasets, ct):
    """Permuting samples changes nothing; permuting components permutes the result."""
    X = datasets["aniso"]
    p0 = _init(X, 3, ct)
    perm_n = np.random.RandomState(1).permutation(len(X))
    perm_k = np.array([2, 0, 1])
    if ct == "tied":
        factor_k = p0.cov_factor
    else:
        factor_k = p0.cov_factor[perm_k]
    p0k = GMMParams(p0.weights[perm_k], p0.means[perm_k], factor_k, ct)
    with in_scope(np.float64):
        a, ia = em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=8)
        b, ib = em.fit(jnp.asarray(X[perm_n]), p0, tol=0.0, max_iter=8)
        c, ic = em.fit(jnp.asarray(X), p0k, tol=0.0, max_iter=8)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(a.means)[perm_k], c.means, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(a.weights)[perm_k], c.weights, rtol=1e-10)
    assert float(ia.lower_bound) == pytest.approx(float(ib.lower_bound), rel=1e-12)
    assert float(ia.lower_bound) == pytest.approx(float(ic.lower_bound), rel=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_affine_equivariance(datasets, ct):
    """X -> a X + b maps means to a μ + b, covariances to a² Σ, and shifts the mean
    log-likelihood by -D log|a| (reg_covar scaled by a² to keep the problem identical)."""
    X = datasets["iris"]
    a, b = 3.0, np.array([5.0, -2.0, 100.0, 0.5])
    p0 = _init(X, 3, ct)
    f_scale = a if ct != "spherical" else a
    p0t = GMMParams(p0.weights, a * p0.means + b, f_scale * p0.cov_factor, ct)
    with in_scope(np.float64):
        p, i = em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=8, reg_covar=1e-6)
        q, j = em.fit(jnp.asarray(a * X + b), p0t, tol=0.0, max_iter=8, reg_covar=1e-6 * a**2)
    cov_p, cov_q = p.to_numpy().covariances, q.to_numpy().covariances
    np.testing.assert_allclose(a * np.asarray(p.means) + b, q.means, rtol=1e-9)
    np.testing.assert_allclose(a**2 * cov_p, cov_q, rtol=1e-8, atol=1e-12)
    assert float(j.lower_bound) == pytest.approx(float(i.lower_bound) - 4 * np.log(a), rel=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_float32_offset_data_matches_float64(ct):
    """Data offset by 1e4: the naive E[x²]-E[x]² variance cancels to 0 in float32.
    Centred statistics keep float32 within 1e-3 of the float64 fit (scikit-learn's,
    from the same start)."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(4, 0.5, (200, 3))]) + 1e4
    p0 = _init(X, 2, ct)
    cov64, ll64 = _sk_fit64(X, p0, 15)
    with in_scope(np.float32):
        p32, i32 = em.fit(jnp.asarray(X, jnp.float32), p0.to_numpy(np.float32), tol=0.0,
                          max_iter=15)
    cov32 = p32.to_numpy().covariances
    assert not bool(i32.nonfinite)
    np.testing.assert_allclose(cov32, cov64, rtol=2e-3, atol=1e-4)
    assert float(i32.lower_bound) == pytest.approx(ll64, rel=1e-4)


def _offset_data():
    """Three clusters offset by 1e3 in iris' shape (150, 4), and uneven weights."""
    rng = np.random.RandomState(1)
    X = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(3, 0.3, (50, 4)),
                        rng.normal([5, -5, 0, 2], 2.0, (40, 4))]) + 1e3
    return X, rng.uniform(0.1, 3.0, len(X))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_moments_kernel_equals_centred_kernel(ct):
    """The two E-step kernels are the same algebra: on offset, weighted, chunked data
    they agree to float64 round-off (and every restart shares the moments shift).
    Iris' shape and chunks (150 rows, 37 a chunk): the moments fit is
    test_chunked_equals_unchunked's program."""
    X, w = _offset_data()
    p0 = _init(X, 3, ct)
    with in_scope(np.float64):
        Xj, wj = jnp.asarray(X), jnp.asarray(w)
        fits = {k: em.fit(Xj, p0, sample_weight=wj, tol=0.0, max_iter=8, chunk_size=37,
                          kernel=k) for k in ("centred", "moments")}
    (pc, ic), (pm, im) = fits["centred"], fits["moments"]
    np.testing.assert_allclose(pm.weights, pc.weights, rtol=1e-9)
    np.testing.assert_allclose(pm.means, pc.means, rtol=1e-11)
    np.testing.assert_allclose(pm.cov_factor, pc.cov_factor, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(np.asarray(im.history), np.asarray(ic.history), rtol=1e-11)


@pytest.mark.parametrize("cache", [True, False])
def test_bound_shift_falls_back_when_a_row_underflows(cache):
    """The fast E-step shifts each exp by a bound on all log-densities; a point 10^4
    standard deviations from every component underflows to 0 there. It is counted, the
    pass is redone with row maxima, and the fit equals the centred kernel's: finite
    lower bound, the outlier's mass kept. With and without the feature cache."""
    from bayesgmm.suffstats import e_step_stats
    e_step_stats = jax.jit(e_step_stats, static_argnames=("kernel", "bound_shift"))
    e_step = jax.jit(em.e_step, static_argnames=("chunk_size", "kernel", "bound_shift"))
    rng = np.random.RandomState(3)
    X = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3)),
                        [[1e4, 1e4, 1e4]]])
    p0 = _init(X[:-1], 2, "full")
    with in_scope(np.float64):
        Xj, w = jnp.asarray(X), jnp.ones(len(X))
        fast = e_step_stats(p0, Xj, w, kernel="moments", bound_shift=True)
        safe = e_step_stats(p0, Xj, w, kernel="moments")
        assert int(fast.n_underflow) == 1 and int(safe.n_underflow) == 0
        assert not np.isfinite(float(fast.sum_wll)) and np.isfinite(float(safe.sum_wll))
        redone = e_step(p0, Xj, w, 128, kernel="moments", bound_shift=True)
        assert int(redone.n_underflow) == 1  # reported, so later E-steps skip the try
        np.testing.assert_allclose(redone.sxx, safe.sxx, rtol=1e-12)
        fits = {k: em.fit(Xj, p0, tol=0.0, max_iter=5, chunk_size=128, kernel=k,
                          cache_features=cache) for k in ("centred", "moments")}
    (pc, ic), (pm, im) = fits["centred"], fits["moments"]
    assert np.all(np.isfinite(np.asarray(im.history)))
    np.testing.assert_allclose(np.asarray(im.history), np.asarray(ic.history), rtol=1e-10)
    np.testing.assert_allclose(pm.means, pc.means, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(im.nk).sum(), len(X), rtol=1e-12)


def test_bound_shift_equals_row_max_on_ordinary_data():
    """Without underflow the bound-shifted pass is the same arithmetic up to round-off."""
    from bayesgmm.suffstats import e_step_stats_chunked
    e_step_stats_chunked = jax.jit(e_step_stats_chunked,
                                   static_argnames=("chunk_size", "kernel", "bound_shift"))
    rng = np.random.RandomState(4)
    X = np.concatenate([rng.normal(0, 1, (300, 4)), rng.normal(3, 0.2, (100, 4))]) + 50.0
    p0 = _init(X, 3, "full")
    with in_scope(np.float64):
        Xj, w = jnp.asarray(X), jnp.asarray(rng.uniform(0.5, 2, len(X)))
        a = e_step_stats_chunked(p0, Xj, w, 96, kernel="moments", bound_shift=True)
        b = e_step_stats_chunked(p0, Xj, w, 96, kernel="moments")
    assert int(a.n_underflow) == 0
    for name in ("nk", "sx", "sxx", "sum_wll"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_feature_cache_changes_nothing(ct):
    """Features kept for the whole fit = features recomputed per chunk, to round-off,
    for single fits and vmapped restarts (the cached single fit is
    test_chunked_equals_unchunked's program)."""
    X, _ = _offset_data()
    with in_scope(np.float64):
        Xj = jnp.asarray(X)
        p0 = _init(X, 3, ct)
        on, off = (em.fit(Xj, p0, tol=0.0, max_iter=8, chunk_size=37, cache_features=c)
                   for c in (True, False))
        P = jax.tree_util.tree_map(lambda *a: jnp.stack(a), p0, _init(X, 3, ct, seed=1))
        ron, roff = (em.fit_restarts(Xj, P, tol=0.0, max_iter=8, cache_features=c)
                     for c in (True, False))
    np.testing.assert_allclose(np.asarray(on[1].history), np.asarray(off[1].history),
                               rtol=1e-12)
    np.testing.assert_allclose(on[0].cov_factor, off[0].cov_factor, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(ron[2].history), np.asarray(roff[2].history),
                               rtol=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_moments_kernel_in_float32_on_offset_data(ct):
    """The moments kernel's shared shift (the mixture mean) removes a global offset, so
    explicitly chosen in float32 it still matches float64 on data offset by 1e4."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(4, 0.5, (200, 3))]) + 1e4
    p0 = _init(X, 2, ct)
    cov64, _ = _sk_fit64(X, p0, 15)
    with in_scope(np.float32):
        p32, i32 = em.fit(jnp.asarray(X, jnp.float32), p0.to_numpy(np.float32), tol=0.0,
                          max_iter=15, kernel="moments")
    cov32 = p32.to_numpy().covariances
    assert not bool(i32.nonfinite)
    np.testing.assert_allclose(cov32, cov64, rtol=5e-3, atol=1e-3)


def test_unknown_kernel_is_refused(datasets):
    p0 = _init(datasets["iris"], 2, "full")
    with pytest.raises(ValueError, match="'kernel' should be in"):
        em.fit(jnp.asarray(datasets["iris"], jnp.float32), p0.to_numpy(np.float32),
               kernel="fast")


def test_nonfinite_step_is_flagged_not_applied(datasets):
    """A NaN-producing step (negative reg_covar makes a covariance indefinite) stops the
    loop, flags the component and keeps the last finite parameters."""
    X = datasets["blobs"]
    p0 = _init(X, 4, "full")
    with in_scope(np.float64):
        p, info = em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=10, reg_covar=-100.0)
    assert bool(info.nonfinite)
    assert int(info.n_iter) == 1
    assert 0 <= int(info.bad_component) < 4
    assert np.all(np.isfinite(np.asarray(p.cov_factor)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_collapsed_component_is_reported(ct, dtype, blobs):
    """reg_covar=0: the component whose variance is round-off is reported (nonfinite,
    bad_component; the host engine reports the same one) and the returned parameters
    are the last sound ones; the default reg_covar fits the same data from the same
    start. float64 (moments kernel) and float32 (centred kernel).

    In float32 the tied fit's line is thin only to round-off: its thickness resolves to
    ROUNDOFF · eps32 · (the mean square along it, ~40) ≈ 3e-4, so the default reg_covar
    (1e-6) is itself round-off there and is reported too; 1e-2 fits."""
    X, start, k = collapse_case(ct, blobs)
    sound = 1e-2 if (ct, dtype) == ("tied", np.float32) else 1e-6
    with in_scope(dtype):
        Xj, p0 = jnp.asarray(X, dtype), start.to_numpy(dtype)
        p, info = em.fit(Xj, p0, reg_covar=0.0, max_iter=100)
        assert bool(info.nonfinite) and int(info.bad_component) == k
        assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(p))
        if sound != 1e-6:
            assert bool(em.fit(Xj, p0, max_iter=100)[1].nonfinite)
        p, info = em.fit(Xj, p0, reg_covar=sound, max_iter=100)
        assert not bool(info.nonfinite) and int(info.bad_component) == -1
        assert np.asarray(ops(ct).factor_ok(p.cov_factor, p.n_components)).all()


@pytest.mark.parametrize("method", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_padding_is_exact(datasets, ct, method):
    """K=3 padded to 8 zero-weight components gives the unpadded fit: padding components
    stay at weight exactly 0 and change no sum."""
    from bayesgmm.params import take_components

    X = datasets["aniso"]
    with in_scope(np.float64):
        Xj = jnp.asarray(X)
        a = init_params(jax.random.PRNGKey(4), Xj, 3, ct, method)
        b = init_params(jax.random.PRNGKey(4), Xj, 8, ct, method, n_active=3)
        pa, ia = em.fit(Xj, a, tol=1e-6, max_iter=8)
        pb, ib = em.fit(Xj, b, tol=1e-6, max_iter=8)
        pb3 = jax.tree_util.tree_map(np.asarray, take_components(pb, 3))
        pad_w = np.asarray(pb.weights)[3:]
    assert int(ia.n_iter) == int(ib.n_iter)
    np.testing.assert_array_equal(pad_w, 0.0)
    np.testing.assert_allclose(pb3.means, pa.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pb3.cov_factor, pa.cov_factor, rtol=1e-12, atol=1e-12)
    assert float(ib.lower_bound) == pytest.approx(float(ia.lower_bound), rel=1e-13)


def test_a_shared_feature_table_gives_the_same_fit(monkeypatch):
    """A feature table made once from the data (the sweep's) = each fit's own table, to
    round-off; none is made for the centred kernel or above the cache budget."""
    from bayesgmm import suffstats
    rng = np.random.RandomState(6)
    X = np.concatenate([rng.normal(0, 1, (300, 3)), rng.normal(4, 0.5, (200, 3))]) + 100
    p0 = jax.tree_util.tree_map(lambda a: a[None], _init(X, 4, "full"))
    with in_scope(np.float64):
        Xj, w = jnp.asarray(X), jnp.ones(len(X))
        shared = em.data_features(Xj, w, "full")
        np.testing.assert_allclose(shared[0], X.mean(0), rtol=1e-14)
        a, ia, _ = em.fit_restarts(Xj, p0, tol=0.0, max_iter=8)
        b, ib, _ = em.fit_restarts(Xj, p0, tol=0.0, max_iter=8, shared=shared)
        assert em.data_features(Xj, w, "full", kernel="centred") is None
        monkeypatch.setattr(suffstats, "FEATURE_CACHE_BYTES", 1000)
        assert em.data_features(Xj, w, "full") is None
    np.testing.assert_allclose(np.asarray(ib.history), np.asarray(ia.history), rtol=1e-12)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-12)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-9, atol=1e-12)


def _precisions(cov, ct):
    return np.linalg.inv(cov) if ct in ("full", "tied") else 1.0 / cov


@pytest.mark.parametrize("kernel", ["centred", "moments"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_hard_start_is_the_m_step_of_nearest_centre_labels(datasets, ct, kernel):
    """EM from centres with ``hard_start``: a first, uncounted pass gives every row to
    its nearest centre (k-means' labels) and takes their M-step. Truth: scikit-learn
    started from its own M-step of those labels, computed here in NumPy."""
    from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

    from bayesgmm.initialize import params_from_centers

    X = datasets["aniso"] + 50.0  # off the origin: the moments kernel shifts its features
    K, reg, n_iter = 3, 1e-6, 8
    centers = X[[0, 150, 300]]
    labels = np.argmin(((X[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    nk, means, cov = _estimate_gaussian_parameters(X, np.eye(K)[labels], reg, ct)
    sk = SkGM(K, covariance_type=ct, tol=0.0, max_iter=n_iter, weights_init=nk / len(X),
              means_init=means, precisions_init=_precisions(cov, ct))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    with in_scope(np.float64):
        p, info = em.fit(jnp.asarray(X), params_from_centers(centers, K, ct), tol=0.0,
                         max_iter=n_iter, reg_covar=reg, kernel=kernel, hard_start=True)
        p = jax.tree_util.tree_map(np.asarray, p)
        cov_ours = GMMParams(*jax.tree_util.tree_leaves(p), ct).covariances
    assert int(info.n_iter) == sk.n_iter_ == n_iter  # the hard pass is not an iteration
    assert np.all(np.isfinite(np.asarray(info.history)[:n_iter]))
    _assert_parity(p, cov_ours, info, sk, rtol=1e-6, lb_rtol=1e-9)


def test_hard_start_ignores_padding_and_vmaps_over_restarts(datasets):
    """Padding centres (weight 0) never take a row; restarts vmapped with small-EM
    screening equal each start run alone (the screen's winner continues without a
    second hard pass). A start's screening is its first 3 iterations alone: its lower
    bound is the third entry of the alone fit's history (tol=0 stops none early)."""
    from bayesgmm.initialize import params_from_centers
    from bayesgmm.params import take_components

    X = datasets["blobs"]
    rng = np.random.default_rng(1)
    starts = np.stack([X[rng.choice(len(X), 4, replace=False)] for _ in range(3)])
    padded = np.concatenate([starts, np.repeat(starts[:, :1] + 0.01, 2, axis=1)], axis=1)
    with in_scope(np.float64):
        Xj = jnp.asarray(X)
        alone = [em.fit(Xj, params_from_centers(s, 4, "full"), tol=0.0, max_iter=10,
                        hard_start=True) for s in starts]
        best, info, all_info = em.fit_restarts(Xj, params_from_centers(padded, 4, "full"),
                                               tol=0.0, max_iter=10, screen_iter=3,
                                               hard_start=True)
    screened = [float(np.asarray(i.history)[2]) for _, i in alone]
    np.testing.assert_allclose(np.asarray(all_info.lower_bound), screened, rtol=1e-10)
    winner = int(np.argmax(screened))
    assert np.all(np.asarray(best.weights)[4:] == 0)
    np.testing.assert_allclose(take_components(best, 4).means,
                               np.asarray(alone[winner][0].means), rtol=1e-9)
    assert int(info.n_iter) == int(alone[winner][1].n_iter) == 10
