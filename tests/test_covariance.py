"""The per-type table (bayesgmm.covariance) and its array namespaces (bayesgmm._xp).

Truth: every array function of every entry gives the same numbers over NumPy and over
jax.numpy (1e-12, float64, random valid factors), and the closed forms hold: the
precision is the inverse covariance, log-determinants match numpy.linalg.slogdet,
Mahalanobis distances match solves, the M-step's covariances match scikit-learn's
estimate, the moments form matches scipy's densities, and the parameter counts match
scikit-learn's formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, in_scope
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

from bayesgmm import _xp
from bayesgmm.covariance import (ARRAY_FUNCTIONS, RAW_TABLE, ROUNDOFF, TABLE, CovarianceOps,
                                 moment_features, moment_sums, moment_theta,
                                 n_moment_features, ops)

K, D, N = 3, 4, 9  # K != D, so a wrong axis shows as a wrong shape


def _factor(ct, rng, K=K, D=D):
    """A random valid factor: lower-triangular with a positive diagonal (full/tied) or
    positive standard deviations (diag/spherical)."""
    shape = ops(ct).factor_shape(K, D)
    if shape[-2:] == (D, D):
        f = np.tril(rng.normal(0, 0.4, shape), -1)
        return f + np.eye(D) * rng.uniform(0.5, 2.0, shape[:-1])[..., None, :]
    return rng.uniform(0.5, 2.0, shape)


def _stats(ct, rng):
    """Moment statistics of random weighted data about a shift: (sxx, nk, delta)."""
    X = rng.normal(0, 2, (N * 5, D)) + 3.0
    rw = rng.dirichlet(np.ones(K), len(X)) * rng.uniform(0.5, 2, (len(X), 1))
    shift = X.mean(0) + 0.3
    xc = X - shift
    second = ops(ct, np).second_features(xc)
    nk = rw.sum(0)
    sx = rw.T @ xc
    sxx = ops(ct, np).unpack_second(rw.T @ second)
    return sxx, nk, sx / nk[:, None]


def _inputs(ct, rng):
    """Arguments of every array function, valid for the type (NumPy, float64)."""
    t = ops(ct, np)
    f = _factor(ct, rng)
    U, P, S = t.to_precision_cholesky(f), t.to_precision(f), t.to_covariance(f)
    Xc = rng.normal(size=(K, N, D))
    rw = rng.dirichlet(np.ones(K), N)
    sxx, nk, delta = _stats(ct, rng)
    Pm = t.moment_precision(f, K, D)
    F2 = n_moment_features(D, t.full_moments) - 1 - D
    return {
        "to_covariance": (f,), "from_covariance": (S,), "to_precision_cholesky": (f,),
        "from_precision_cholesky": (U,), "to_precision": (f,), "from_precision": (P,),
        "to_full_covariance": (f, K, D), "precision_ok": (P,),
        "mahalanobis": (Xc, U), "log_det_precision_cholesky": (U, K, D),
        "log_det_precision": (f, K, D), "scale_noise": (f, 1, rng.normal(size=(N, D))),
        "second_moment": (rw, Xc),
        "factor_from_moments": (sxx, nk, delta, nk.sum(), np.float64(1e-6)),
        "factor_ok": (f, K), "moment_precision": (f, K, D),
        "precision_times": (Pm, rng.normal(size=(K, D))), "quadratic_theta": (Pm,),
        "second_features": (rng.normal(size=(N, D)),),
        "unpack_second": (rng.normal(size=(K, F2)),),
        "shift_second": (sxx, rng.normal(size=(K, D)), rng.normal(size=(K, D)), nk),
    }


def _to_jax(args):
    return tuple(jnp.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a
                 for a in args)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_every_function_is_the_same_over_numpy_and_jax(ct):
    """Each array function (all of them: a new field without inputs here fails) gives the
    same result over NumPy and jax.numpy, to 1e-12 in float64; NumPy results are NumPy
    arrays, JAX results JAX arrays, in the input's dtype."""
    inputs = _inputs(ct, np.random.default_rng(0))
    assert set(inputs) == set(ARRAY_FUNCTIONS)
    with in_scope(np.float64):
        for name in ARRAY_FUNCTIONS:
            args = inputs[name]
            a = getattr(ops(ct, np), name)(*args)
            b = getattr(ops(ct, jnp), name)(*_to_jax(args))
            assert isinstance(a, np.ndarray) and isinstance(b, jax.Array), name
            assert a.shape == b.shape, name
            if a.dtype != bool:
                assert a.dtype == b.dtype == np.float64, name
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_numpy_keeps_float32_and_jax_float32_is_close(ct):
    """float32 in, float32 out over NumPy; JAX in float32 agrees with NumPy in float64
    to float32 precision."""
    inputs = _inputs(ct, np.random.default_rng(1))
    with in_scope(np.float32):
        for name in ARRAY_FUNCTIONS:
            args = inputs[name]
            args32 = tuple(a.astype(np.float32) if isinstance(a, (np.ndarray, np.generic))
                           else a for a in args)
            a64 = getattr(ops(ct, np), name)(*args)
            a32 = getattr(ops(ct, np), name)(*args32)
            b32 = getattr(ops(ct, jnp), name)(*_to_jax(args32))
            if a64.dtype == bool:
                continue
            assert a32.dtype == np.float32 and b32.dtype == jnp.float32, name
            scale = np.max(np.abs(a64)) + 1e-30
            assert np.max(np.abs(a32 - a64)) / scale < 1e-4, name
            assert np.max(np.abs(np.asarray(b32) - a64)) / scale < 1e-4, name


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_closed_forms(ct):
    rng = np.random.default_rng(2)
    t = ops(ct, np)
    f = _factor(ct, rng)
    full = t.to_full_covariance(f, K, D)  # (K, D, D) dense covariances
    assert full.shape == (K, D, D)
    cov, prec, U = t.to_covariance(f), t.to_precision(f), t.to_precision_cholesky(f)
    np.testing.assert_allclose(_dense(cov), full, rtol=1e-12)
    # the precision is the inverse covariance; U Uᵀ is the precision (sklearn's layout)
    np.testing.assert_allclose(np.linalg.inv(full), _dense(prec), rtol=1e-10, atol=1e-12)
    if U.shape[-2:] == (D, D):
        np.testing.assert_allclose(U @ np.swapaxes(U, -1, -2), prec, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(np.tril(U, -1), 0.0)  # upper-triangular
    else:
        np.testing.assert_allclose(U * U, prec, rtol=1e-12)
    # round trips through every scikit-learn form
    for back, value in (("from_covariance", cov), ("from_precision", prec),
                        ("from_precision_cholesky", U)):
        np.testing.assert_allclose(getattr(t, back)(value), f, rtol=1e-10, atol=1e-12)
    # log|U_k| = -½ log|Σ_k|, from the factor and from U
    half_logdet = -0.5 * np.linalg.slogdet(full)[1]
    np.testing.assert_allclose(t.log_det_precision(f, K, D), half_logdet, rtol=1e-12)
    np.testing.assert_allclose(t.log_det_precision_cholesky(U, K, D), half_logdet,
                               rtol=1e-12)
    # squared Mahalanobis distances: (x - μ_k)ᵀ Σ_k⁻¹ (x - μ_k) by solves
    Xc = rng.normal(size=(K, N, D))
    expected = np.stack([np.einsum("nd,nd->n", Xc[k], np.linalg.solve(full[k], Xc[k].T).T)
                         for k in range(K)], axis=1)
    np.testing.assert_allclose(t.mahalanobis(Xc, U), expected, rtol=1e-10)
    # the noise map M_k (z -> x - μ_k) has M Mᵀ = Σ_k
    for k in range(K):
        M = t.scale_noise(f, k, np.eye(D)).T  # column j: the image of e_j
        np.testing.assert_allclose(M @ M.T, full[k], rtol=1e-10, atol=1e-12)
    # the moment precision is the inverse covariance (full/tied) or its diagonal
    P = t.moment_precision(f, K, D)
    inv = np.linalg.inv(full)
    np.testing.assert_allclose(P, inv if P.ndim == 3 else np.diagonal(inv, 0, -2, -1),
                               rtol=1e-10, atol=1e-12)
    assert np.all(t.factor_ok(f, K)) and np.all(t.precision_ok(prec))


def _dense(prec):
    """sklearn's covariances_ or precisions_ of any type as (K, D, D) matrices."""
    prec = np.asarray(prec)
    if prec.shape == (K, D, D):
        return prec
    if prec.shape == (D, D):
        return np.broadcast_to(prec, (K, D, D))
    if prec.shape == (K, D):
        return np.stack([np.diag(p) for p in prec])
    return prec[:, None, None] * np.eye(D)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_second_moments_of_centred_data(ct):
    """second_moment is Σ_n r_nk (x - m_k)(x - m_k)ᵀ (its diagonal for diag/spherical)."""
    rng = np.random.default_rng(3)
    Xc, rw = rng.normal(size=(K, N, D)), rng.dirichlet(np.ones(K), N)
    out = ops(ct, np).second_moment(rw, Xc)
    full = np.einsum("nk,kna,knb->kab", rw, Xc, Xc)
    np.testing.assert_allclose(out, full if out.ndim == 3 else np.diagonal(full, 0, -2, -1),
                               rtol=1e-12)


@pytest.mark.parametrize("reg", [0.0, 1e-3])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_m_step_factor_equals_scikit_learn(ct, reg):
    """factor_from_moments, from statistics about any shift, gives scikit-learn's
    covariance estimate from the same responsibilities."""
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (60, D)) * [1, 2, 0.5, 1] + 5.0
    resp = rng.dirichlet(np.ones(K), len(X))
    shift = X.mean(0) - 0.7
    t = ops(ct, np)
    nk = resp.sum(0)
    sx = resp.T @ (X - shift)
    sxx = t.unpack_second(resp.T @ t.second_features(X - shift))
    factor = t.factor_from_moments(sxx, nk, sx / nk[:, None], nk.sum(), reg)
    _, means, covs = _estimate_gaussian_parameters(X, resp, reg, ct)
    np.testing.assert_allclose(shift + sx / nk[:, None], means, rtol=1e-12)
    np.testing.assert_allclose(t.to_covariance(factor), covs, rtol=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_moments_form_is_the_mixture_density(ct):
    """T(x) θ_k = log w_k + log N(x | μ_k, Σ_k) (scipy), for any shift c; and the sums
    of the features unpack to the centred statistics."""
    rng = np.random.default_rng(5)
    t = ops(ct, np)
    f = _factor(ct, rng)
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(0, 3, (K, D))
    X, c = rng.normal(0, 3, (N, D)), rng.normal(size=D)
    full = t.to_full_covariance(f, K, D)
    T = moment_features(X, c, ct)
    lp = T @ moment_theta(w, mu, f, c, ct)
    expected = np.stack([np.log(w[k]) + multivariate_normal(mu[k], full[k]).logpdf(X)
                         for k in range(K)], axis=1)
    np.testing.assert_allclose(lp, expected, rtol=1e-10)
    # the same over JAX
    with in_scope(np.float64):
        lpj = moment_features(jnp.asarray(X), jnp.asarray(c), ct) @ moment_theta(
            *map(jnp.asarray, (w, mu, f, c)), ct)
    np.testing.assert_allclose(np.asarray(lpj), lp, rtol=1e-12)
    # statistics from feature sums
    r = rng.dirichlet(np.ones(K), N)
    nk, sx, sxx = moment_sums(r.T @ T, c, ct)
    outer = np.einsum("nk,na,nb->kab", r, X - c, X - c)
    np.testing.assert_allclose(nk, r.sum(0), rtol=1e-12)
    np.testing.assert_allclose(sx, r.T @ (X - c), rtol=1e-12)
    np.testing.assert_allclose(sxx, outer if sxx.ndim == 3 else np.diagonal(outer, 0, -2, -1),
                               rtol=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_shift_second_recentres_exactly(ct):
    rng = np.random.default_rng(6)
    t = ops(ct, np)
    X, r = rng.normal(size=(N, D)), rng.dirichlet(np.ones(K), N)
    old, new = rng.normal(size=(K, D)), rng.normal(size=(K, D))
    nk = r.sum(0)
    sx_old = np.stack([r[:, k] @ (X - old[k]) for k in range(K)])
    sxx_old = np.stack([r[:, k] @ t.second_features(X - old[k]) for k in range(K)])
    sxx_new = np.stack([r[:, k] @ t.second_features(X - new[k]) for k in range(K)])
    got = t.shift_second(t.unpack_second(sxx_old), sx_old, old - new, nk)
    np.testing.assert_allclose(got, t.unpack_second(sxx_new), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_sizes_and_parameter_counts_match_scikit_learn(ct):
    """n_parameters is scikit-learn's count minus the means and weights; the factor has
    scikit-learn's precisions_cholesky_ shape; component_axis indexes K."""
    for K_, D_ in ((1, 1), (3, 4), (5, 2)):
        sk = SkGM(K_, covariance_type=ct)
        sk.means_ = np.zeros((K_, D_))
        t = ops(ct)
        assert t.n_parameters(K_, D_) == sk._n_parameters() - K_ * D_ - (K_ - 1)
        X = np.random.default_rng(0).normal(size=(30, D_))
        fitted = SkGM(K_, covariance_type=ct, random_state=0).fit(X)
        assert t.factor_shape(K_, D_) == fitted.precisions_cholesky_.shape
        assert t.identity(K_, D_, np.float32).shape == t.factor_shape(K_, D_)
        if t.component_axis is not None:
            assert t.factor_shape(7, D_)[t.component_axis] == 7


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_health_and_precision_checks(ct):
    rng = np.random.default_rng(7)
    t = ops(ct, np)
    f = _factor(ct, rng)
    ident = t.identity(K, D, np.float64)
    np.testing.assert_allclose(t.to_covariance(ident), t.to_precision(ident))
    assert t.factor_ok(ident, K).all()
    bad = f.copy()
    bad.reshape(-1)[0] = np.nan
    assert not t.factor_ok(bad, K)[0]
    zero = f.copy()
    zero.reshape(-1)[0] = 0.0  # a zero standard deviation / Cholesky pivot
    assert not t.factor_ok(zero, K)[0]
    prec = t.to_precision(f)
    assert t.precision_ok(prec).all()
    neg = -np.asarray(prec)  # negative definite / negative precisions
    assert not t.precision_ok(neg).any()
    if np.ndim(prec) >= 2 and np.shape(prec)[-2:] == (D, D):
        skew = prec.copy()
        skew[..., 0, 1] += 1.0  # not symmetric
        assert not np.asarray(t.precision_ok(skew)).reshape(-1)[0]


@pytest.mark.parametrize("xp", [np, jnp])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_collapsed_component_gets_a_nan_factor(ct, xp):
    """A component on one point (or, for full/tied, on a line) has a variance that is
    round-off of its mean square about the shift: its factor is NaN and factor_ok flags
    it. reg_covar well above that round-off, or a tight but real cluster, pass."""
    rng = np.random.default_rng(8)
    t = ops(ct, xp)
    x0 = np.array([6.0, -3.0, 2.0, 1.0])
    X = np.concatenate([rng.normal(0, 1, (40, D)), np.repeat(x0[None], 5, 0)])
    resp = np.zeros((len(X), K))
    resp[:40, :K - 1] = rng.dirichlet(np.ones(K - 1), 40)
    resp[40:, K - 1] = 1.0  # the last component: five identical rows
    if ct == "tied":  # a shared covariance collapses when all rows lie on a line
        X = np.outer(rng.normal(0, 2, len(X)), [1.0, 2.0, -1.0, 0.5]) + 3.0
    shift = X.mean(0)
    tn = ops(ct, np)
    nk = resp.sum(0)
    sx = resp.T @ (X - shift)
    sxx = tn.unpack_second(resp.T @ tn.second_features(X - shift))
    with in_scope(np.float64):
        args = lambda reg: [xp.asarray(a) for a in (sxx, nk, sx / nk[:, None],  # noqa
                                                     nk.sum(), reg)]
        collapsed = np.asarray(t.factor_ok(t.factor_from_moments(*args(0.0)), K))
        healthy = np.asarray(t.factor_ok(t.factor_from_moments(*args(1e-6)), K))
    assert not collapsed[-1] and healthy.all()
    if ct != "tied":
        assert collapsed[:-1].all()
    # a real cluster with σ = 1e-5 at distance 10 from the shift is not collapse
    tight = np.concatenate([rng.normal(0, 1, (40, D)), 10.0 + 1e-5 * rng.normal(size=(5, D))])
    if ct == "tied":
        tight = rng.normal(0, 1e-3, (45, D)) + 10.0
    sx = resp.T @ (tight - shift)
    sxx = tn.unpack_second(resp.T @ tn.second_features(tight - shift))
    assert tn.factor_ok(tn.factor_from_moments(sxx, nk, sx / nk[:, None], nk.sum(), 0.0),
                        K).all()


def test_roundoff_threshold_is_far_from_legitimate_fits():
    """The documented margins: float64 flags σ/r below sqrt(ROUNDOFF·eps) ≈ 1.2e-7,
    float32 below 2.8e-3; and ROUNDOFF is 5x the largest collapse residue measured
    (12 eps)."""
    assert np.sqrt(ROUNDOFF * np.finfo(np.float64).eps) == pytest.approx(1.2e-7, rel=0.05)
    assert np.sqrt(ROUNDOFF * np.finfo(np.float32).eps) == pytest.approx(2.8e-3, rel=0.05)
    assert ROUNDOFF >= 5 * 12


def test_numpy_cholesky_gives_nan_per_failing_matrix_as_jax():
    good = np.array([[4.0, 1.0], [1.0, 3.0]])
    batch = np.stack([good, -good, good])
    with in_scope(np.float64):
        expected = np.asarray(jnp.linalg.cholesky(jnp.asarray(batch)))
    got = _xp.NUMPY.cholesky(batch)
    lower = np.tril_indices(2)  # JAX leaves the upper zeros; both fill the rest with NaN
    assert np.isnan(got[1][lower]).all() and np.isnan(expected[1][lower]).all()
    np.testing.assert_allclose(got[[0, 2]], expected[[0, 2]], rtol=1e-14)
    np.testing.assert_allclose(_xp.NUMPY.cholesky(batch.astype(np.float32))[0],
                               np.linalg.cholesky(good), rtol=1e-6)
    assert np.isnan(_xp.NUMPY.cholesky(-good)[lower]).all()
    # integer input takes the public function (converted), still NaN per failing matrix
    ints = np.stack([np.eye(2, dtype=int), -np.eye(2, dtype=int)])
    out = _xp.NUMPY.cholesky(ints)
    np.testing.assert_allclose(out[0], np.eye(2))
    assert np.isnan(out[1][lower]).all()
    L = np.linalg.cholesky(good)
    np.testing.assert_allclose(_xp.NUMPY.tril_inv(L) @ L, np.eye(2), atol=1e-14)


def test_ops_dispatches_on_its_arguments_and_binds_namespaces():
    f = _factor("full", np.random.default_rng(9))
    auto = ops("full")
    assert auto is TABLE["full"] and ops("full", np) is ops("full", "numpy")
    assert ops("full", jnp) is ops("full", "jax") is ops("full", _xp.namespace("jax"))
    assert isinstance(auto.to_covariance(f), np.ndarray)
    with in_scope(np.float64):
        assert isinstance(auto.to_covariance(jnp.asarray(f)), jax.Array)
        jitted = jax.jit(lambda L: auto.to_covariance(L))(jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(jitted), auto.to_covariance(f), rtol=1e-12)
    with pytest.raises(ValueError, match="'covariance_type' should be in"):
        ops("banana")
    with pytest.raises(ValueError, match="'covariance_type' should be in"):
        ops("banana", np)
    with pytest.raises(ValueError, match="Unknown array namespace"):
        ops("full", "torch")
    # the raw table's array functions take the namespace first
    assert isinstance(RAW_TABLE["full"], CovarianceOps)
    np.testing.assert_allclose(RAW_TABLE["full"].to_covariance(_xp.NUMPY, f),
                               auto.to_covariance(f))


def test_moment_feature_count():
    for D_ in (1, 2, 5):
        for ct in COVARIANCE_TYPES:
            T = moment_features(np.zeros((3, D_)), np.zeros(D_), ct)
            assert T.shape == (3, n_moment_features(D_, ops(ct).full_moments))


def test_numpy_decompositions_give_nan_per_failing_matrix_as_jax():
    """eigh, eigvalsh and svd of the NumPy namespace: NaN outputs for a matrix with NaN
    entries (NumPy alone raises for the batch), the others as numpy.linalg's, dtype kept;
    a while_loop runs as lax.while_loop does."""
    good = np.array([[4.0, 1.0], [1.0, 3.0]])
    batch = np.stack([good, np.full((2, 2), np.nan), 2 * good])
    for name in ("eigh", "eigvalsh", "svd"):
        got = getattr(_xp.NUMPY, name)(batch)
        want = getattr(np.linalg, name)(batch[[0, 2]])
        for g, w in zip(*((got, want) if isinstance(got, tuple) else ((got,), (want,)))):
            assert g.shape[0] == 3 and np.isnan(g[1]).all()
            np.testing.assert_allclose(np.abs(g[[0, 2]]), np.abs(w), rtol=1e-12)
        out32 = getattr(_xp.NUMPY, name)(batch.astype(np.float32))
        assert all(o.dtype == np.float32 for o in (out32 if isinstance(out32, tuple)
                                                   else (out32,)))
    count = lambda xp: xp.while_loop(lambda s: s[0] < 5, lambda s: (s[0] + 1, s[1] * 2.0),  # noqa
                                     (0, 1.0))
    assert count(_xp.NUMPY) == (5, 32.0)
    assert [float(v) for v in count(_xp.namespace("jax"))] == [5.0, 32.0]


def test_host_2x2_closed_forms_equal_lapack():
    """The host namespace's 2 x 2 closed forms (covariance._eigh, _eigvalsh, _polar,
    _gram_of_inverse; the search's M-steps call them thousands of times) equal
    numpy.linalg's: the same eigenvalues and reconstruction, orthonormal eigenvectors,
    the SVD's U Vᵀ for rotations and reflections alike, the inverse; NaN stays NaN per
    matrix, dtype kept; larger D keeps LAPACK's (and JAX its own: the closed forms are the
    host namespace's alone, ``_closed_2x2``)."""
    from bayesgmm import covariance as cv

    rng = np.random.default_rng(7)
    A = rng.normal(size=(40, 2, 2))
    S = A @ np.swapaxes(A, -1, -2)
    S[0] = np.diag([3.0, 1.0])  # already diagonal, either order
    S[1] = np.diag([1.0, 3.0])
    S[2] = 2.0 * np.eye(2)  # isotropic: any orthonormal basis
    S[3] = [[1.0, 1e-9], [1e-9, 1.0 + 1e-12]]
    w, V = cv._eigh(_xp.NUMPY, S)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(S), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(cv._eigvalsh(_xp.NUMPY, S), w, rtol=0, atol=0)
    np.testing.assert_allclose(V @ (w[..., None] * np.swapaxes(V, -1, -2)), S, atol=1e-13)
    np.testing.assert_allclose(np.swapaxes(V, -1, -2) @ V, np.broadcast_to(np.eye(2), S.shape),
                               atol=1e-14)
    F = rng.normal(size=(40, 2, 2))
    F[0] = np.diag([1.0, -2.0])  # a reflection
    U, _, Vt = np.linalg.svd(F)
    np.testing.assert_allclose(cv._polar(_xp.NUMPY, F), U @ Vt, atol=1e-13)
    L = np.linalg.cholesky(S[4:])
    np.testing.assert_allclose(cv._gram_of_inverse(_xp.NUMPY, L), np.linalg.inv(S[4:]),
                               rtol=1e-11)
    bad = S[:3].copy()
    bad[1] = np.nan
    assert np.isnan(cv._eigh(_xp.NUMPY, bad)[0][1]).all()
    assert np.isfinite(cv._eigh(_xp.NUMPY, bad)[1][[0, 2]]).all()
    assert cv._eigh(_xp.NUMPY, S.astype(np.float32))[1].dtype == np.float32
    assert cv._polar(_xp.NUMPY, F.astype(np.float32)).dtype == np.float32
    S3 = S[4:7, :, :].repeat(2, 1).repeat(2, 2)[:, :3, :3] + np.eye(3)  # D = 3: LAPACK's
    np.testing.assert_allclose(cv._eigh(_xp.NUMPY, S3)[0], np.linalg.eigvalsh(S3))
    # ... by its gufuncs in float64: numpy.linalg's numbers exactly, NaN per failed matrix
    S3[1, 0, 0] = np.nan
    good = [0, 2]
    w3, V3 = cv._eigh(_xp.NUMPY, S3)
    np.testing.assert_array_equal(w3[good], np.linalg.eigh(S3[good])[0])
    np.testing.assert_array_equal(V3[good], np.linalg.eigh(S3[good])[1])
    np.testing.assert_array_equal(cv._eigvalsh(_xp.NUMPY, S3)[good], np.linalg.eigvalsh(S3[good]))
    U3, _, Vt3 = np.linalg.svd(S3[good] - 2.0 * np.eye(3))
    np.testing.assert_array_equal(cv._polar(_xp.NUMPY, S3 - 2.0 * np.eye(3))[good], U3 @ Vt3)
    assert np.isnan(w3[1]).all() and np.isnan(cv._polar(_xp.NUMPY, S3)[1]).all()



def test_cold_orientation_shares_the_polar_factors_of_repeated_starts():
    """EVE's and VVE's cold orientation (the hierarchical starts of K = 2..9 as one
    batch) starts an empty component from EEE's orientation, the first start: such a
    start repeats the first, bitwise, so its polar factors are taken from the first
    instead of computed again (_polar_of_sources). The 50 steps with the shared factors
    equal, bitwise, the steps that compute every start (and _polar_of_sources equals
    U Vᵀ of numpy.linalg.svd), in 3-D and 4-D, for EVE, VVE and a batch of both."""
    from bayesgmm import covariance as cv

    rng = np.random.default_rng(11)
    F = rng.normal(size=(3, 4, 3, 3))
    F[:, 2] = F[:, 0]  # start 2 repeats start 0 in every member
    source = np.broadcast_to(np.array([0, 1, 0, 3]), (3, 4))
    U, _, Vt = np.linalg.svd(F)
    np.testing.assert_allclose(cv._polar_of_sources(_xp.NUMPY, F, source), U @ Vt,
                               rtol=0, atol=1e-14)
    np.testing.assert_array_equal(cv._polar_of_sources(_xp.NUMPY, F, source),
                                  cv._polar(_xp.NUMPY, F))
    for D in (3, 4):
        L, K = 4, 5
        A = rng.normal(size=(L, K, D, D))
        S = A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(D)
        nk = rng.uniform(5, 30, (L, K))
        own = np.array([2, 5, 3, 4])  # each member's K: the rest empty, as hc_params_many's
        empty = np.arange(K) >= own[:, None]
        nk[empty] = 10 * np.finfo(np.float64).eps
        S[empty] = 1e-6 * np.eye(D)
        for equal in (True, False, np.array([True, False, True, False])):
            got_O, got_d = cv._common_orientation(_xp.NUMPY, S, nk, nk.sum(-1), equal)
            # the same iterations with every start's polar factor computed
            W = nk[..., None, None] * S
            upper = np.linalg.eigvalsh(W)[..., -1][..., None, None] * np.eye(D) - W
            eee = np.linalg.eigh(W.sum(axis=-3))[1][:, None]
            starts = np.concatenate(
                [eee, np.where(empty[..., None, None], eee, np.linalg.eigh(S)[1])], axis=1)
            ops = (S, W, upper, nk, nk.sum(-1))
            if isinstance(equal, bool):
                step_of = lambda *a, e=equal: cv._orientation_step(_xp.NUMPY, e, *a)  # noqa: E731
            else:
                ops += (equal,)
                step_of = lambda *a: cv._orientation_step(_xp.NUMPY, a[-1], *a[:-1])  # noqa: E731
            O = cv._iterate_members(_xp.NUMPY, step_of, ops, starts, cv.COLD_MAX_ITER,
                                    batch_ndim=1)
            b, d = cv._orientation_diagonals(_xp.NUMPY, equal, S, nk, nk.sum(-1), O)
            best = np.argmin((nk[:, None, :, None] * (np.log(d) + b / d)).sum(axis=(-2, -1)),
                             axis=-1)
            rows = np.arange(L)
            np.testing.assert_array_equal(got_O, O[rows, best])
            np.testing.assert_array_equal(got_d, d[rows, best])


def test_padding_eigen_decompositions_are_lapacks_without_the_call():
    """The host M-steps of EEV, VEV (eigenvectors of S_k) and EVE, VVE (largest
    eigenvalue of W_k) take the answer for an empty component whose matrix is c·I
    (padding: reg_covar·I) without calling LAPACK: it equals numpy.linalg.eigh's and
    eigvalsh's, bitwise, for D = 1 and 3..6; an empty component whose matrix is not a
    multiple of I, and every other one, goes to LAPACK."""
    from bayesgmm import covariance as cv

    rng = np.random.default_rng(2)
    for D in (1, 3, 4, 5, 6):
        A = rng.normal(size=(3, 4, D, D))
        S = A @ np.swapaxes(A, -1, -2)
        nk = rng.uniform(1, 9, (3, 4))
        nk[0, 2:] = nk[2, 3] = 10 * np.finfo(np.float64).eps  # padding
        S[0, 2], S[0, 3] = 1e-6 * np.eye(D), 2.5 * np.eye(D)
        S[2, 3] = 1e-6 * np.eye(D) + (1e-9 * A[2, 3] if D > 1 else 1e-9)  # empty, not c·I
        assert cv._empty_scalars(_xp.NUMPY, S, nk).sum() == (3 if D == 1 else 2)  # 1 x 1: c·I
        w, V = cv._scalar_or_eigh(_xp.NUMPY, S, nk)
        np.testing.assert_array_equal(w, np.linalg.eigh(S)[0])
        np.testing.assert_array_equal(V, np.linalg.eigh(S)[1])
        np.testing.assert_array_equal(cv._scalar_or_eigvalsh(_xp.NUMPY, S, nk),
                                      np.linalg.eigvalsh(S))
        np.testing.assert_array_equal(cv._eig(_xp.NUMPY, S, nk)[1], V)
        # an empty component at inf·I (an overflowed scatter) is LAPACK's NaN, not inf
        S[0, 3] = np.inf * np.eye(D)
        with np.errstate(invalid="ignore"):
            w, V = cv._scalar_or_eigh(_xp.NUMPY, S, nk)
            assert np.isnan(w[0, 3]).all()
            assert np.isnan(cv._scalar_or_eigvalsh(_xp.NUMPY, S, nk)[0, 3]).all()


_INF_SCRIPT = r"""
import numpy as np
from bayesgmm import covariance as C
from bayesgmm.engines import numpy as host
from bayesgmm.params import GMMParams
from bayesgmm._xp import NUMPY
a = np.stack([np.array([[np.inf, 1, 0], [1, 2, 0], [0, 0, 1.0]]), 2 * np.eye(3)])
calls = [getattr(NUMPY, name) for name in ("svd", "eigh", "eigvalsh")]  # NumPy's linalg
calls += [lambda m, n=name: C._host_lapack(n, m) for name in C._GUFUNCS64]  # the gufuncs
for call in calls:
    out = call(a)
    out = out if isinstance(out, tuple) else (out,)
    assert all(np.isnan(o[0]).all() and np.isfinite(o[1]).all() for o in out), call
assert np.allclose(NUMPY.eigvalsh(a)[1], 2.0)
# three equal rows and reg_covar=0: a VVE component collapses onto them (inf precision)
rng = np.random.default_rng(3)
X = np.concatenate([np.repeat([[10.0, 10.0, 10.0]], 3, 0), rng.normal(0, 1, (60, 3))])
starts = [GMMParams(np.full(k, 1 / k), X[np.random.default_rng(1).choice(63, k, replace=False)],
                    C.ops("VVE").identity(k, 3, np.float64), "VVE") for k in (2, 3, 4)]
out = host.fit_many_models(X, {"VVE": starts}, tol=1e-6, max_iter=30, reg_covar=0.0)
print("done", [bool(info.nonfinite) for _, info in out["VVE"]])
"""


def test_host_lapack_answers_nan_for_a_non_finite_matrix():
    """LAPACK's SVD never returns on a matrix with an infinity (a VVE search with
    reg_covar=0 on duplicated rows hung in the polar factor): the host namespace's
    decompositions and the direct gufunc calls answer NaN for that matrix and
    decompose the others; the fit stops, flagged non-finite.
    In a subprocess with a timeout, so that the old hang fails instead of hanging."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _INF_SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout and "True" in out.stdout
