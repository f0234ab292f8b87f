"""EM on the host, in NumPy, for data too small to be worth compiling.

Glossary: N samples, D features, K components, R restarts, F moment features.

The compiled path (:mod:`bayesgmm.engines.jax`) pays for XLA compilation once per shape and
process: about 1.1 s for a BIC sweep's programs on a 2-core CPU, whatever N. On the
tutorial's 300 x 2 blobs the sweep then runs in 0.04 s, and scikit-learn's whole loop
takes 0.25 s. So for small problems this module runs the same algorithm in NumPy,
where an EM iteration costs tens of microseconds and nothing is compiled. The
estimators choose it (``engine="auto"``) when one pass costs at most
:data:`~bayesgmm.engines.choose.HOST_WORK` (N·K·F multiply-adds);
:func:`bayesgmm.engines.choose.choose` decides.

The algorithm is :func:`bayesgmm.engines.jax.fit`'s, step for step: the same hard first pass
from k-means centres, the same M-step (scikit-learn's ``10·eps`` on the counts,
inactive zero-weight components, ``reg_covar`` on the diagonal), the same stopping rule
and the same :class:`bayesgmm.engines.jax.FitInfo` (a non-finite step is not applied but
reported, with its component). It uses the moments kernel (:mod:`bayesgmm.suffstats`):
features ``T(x) = [1, x - c, (x - c)^{⊗2}]`` of the rows, centred on the weighted data
mean, made once per fit; then each E-step is one (N, F) @ (F, K) matmul and the
statistics one (K, N) @ (N, F) matmul. Everything is computed in float64, whatever the
input's dtype (results are cast back), so float32 input needs no centred kernel here.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from bayesgmm.covariance import ops
from bayesgmm.engines.jax import FitInfo
from bayesgmm.params import GMMParams

__all__ = ["fit", "fit_restarts", "lloyd",
           "lloyd_batch", "log_resp", "criteria_terms", "sklearn_covariances"]

_LOG_2PI = math.log(2 * math.pi)


# ---- the moments form ----------------------------------------------------------------


@functools.cache
def _triu(D: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle indices of a D x D matrix (``np.triu_indices``' order), the weight
    of each product x_a x_b in a quadratic form (1 on the diagonal, else 2), and for
    each of the D² entries (row-major) its position in that order."""
    iu, ju = np.triu_indices(D)
    pos = np.empty((D, D), np.intp)
    pos[iu, ju] = pos[ju, iu] = np.arange(len(iu))
    return iu, ju, np.where(iu == ju, 1.0, 2.0), pos.ravel()


@functools.cache
def _eye(D: int) -> np.ndarray:
    return np.eye(D)


def _features(X: np.ndarray, center: np.ndarray, full_moments: bool) -> np.ndarray:
    """:func:`bayesgmm.density.moments_features` in NumPy: (N, F)."""
    xc = X - center
    if full_moments:
        iu, ju = _triu(X.shape[1])[:2]
        second = xc[:, iu] * xc[:, ju]
    else:
        second = xc * xc
    return np.concatenate([np.ones((X.shape[0], 1)), xc, second], axis=1)


def _tril_inv(L: np.ndarray) -> np.ndarray:
    return np.linalg.inv(L)  # the inverse of a lower-triangular matrix is lower-triangular


def _precision(p: GMMParams) -> tuple[np.ndarray, np.ndarray]:
    """(precision (K, D, D) for full/tied or its diagonal (K, D), log|U_k| (K,)), U_k the
    precision's Cholesky factor."""
    K, D, f = p.n_components, p.n_features, p.cov_factor
    kind = p.covariance_type
    if kind in ("full", "tied"):
        Li = _tril_inv(f)
        P = np.swapaxes(Li, -1, -2) @ Li
        logdet = -np.log(np.diagonal(f, axis1=-2, axis2=-1)).sum(axis=-1)
        if kind == "tied":
            P, logdet = np.broadcast_to(P, (K, D, D)), np.full(K, logdet)
        return P, logdet
    if kind == "diag":
        return 1.0 / (f * f), -np.log(f).sum(axis=-1)
    return np.broadcast_to((1.0 / (f * f))[:, None], (K, D)), -D * np.log(f)


def _theta(p: GMMParams, center: np.ndarray) -> np.ndarray:
    """:func:`bayesgmm.density.moments_theta` in NumPy: (F, K), with
    ``log p(x, z = k) = T(x) θ_k``; zero-weight components get ``-inf``."""
    D = p.n_features
    m = p.means - center
    P, logdet = _precision(p)
    if p.covariance_type in ("full", "tied"):  # P = Liᵀ Li: symmetric; its upper half
        iu, ju, twice, _ = _triu(D)
        quad = -0.5 * (P.reshape(-1, D * D)[:, iu * D + ju] * twice).T
        Pm = (P @ m[:, :, None])[:, :, 0]
    else:
        quad = -0.5 * P.T
        Pm = P * m
    log_w = np.log(p.weights)  # -inf for a padding component (callers ignore divide)
    const = -0.5 * (D * _LOG_2PI + (m * Pm).sum(axis=-1)) + logdet + log_w
    return np.concatenate([const[None, :], Pm.T, quad], axis=0)


def _as64(p: GMMParams) -> GMMParams:
    return GMMParams(*(np.asarray(a, np.float64) for a in (p.weights, p.means, p.cov_factor)),
                     p.covariance_type)


def _log_norm(lp: np.ndarray) -> np.ndarray:
    """log Σ_k exp(lp) of joint log-probabilities (..., N, K) over the last axis, shifted
    by finite row maxima."""
    top = lp.max(axis=-1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top + np.log(np.exp(lp - top[..., None]).sum(axis=-1))


# ---- EM ------------------------------------------------------------------------------


def _e_step(p: GMMParams, T: np.ndarray, TT: np.ndarray, w: np.ndarray,
            center: np.ndarray, hard: bool):
    """(nk (K,), sx (K, D), sxx, Σ w log p(x)) as :func:`bayesgmm.suffstats.e_step_stats`
    with the moments kernel, from the features ``T (N, F)`` and their transpose ``TT``;
    ``hard`` gives each row wholly to its most probable component (split evenly between
    exact ties). Callers silence NumPy's floating-point warnings (-inf for padding; a
    failing step is caught by its result).

    The log-probabilities are laid out (K, N): reductions over K then run along
    contiguous rows (measured, N=300, K=20: 47 -> 27 µs a pass)."""
    lp = _theta(p, center).T @ TT  # (K, N)
    top = lp.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    if hard:
        e = (lp >= top).astype(lp.dtype)
    else:  # clipped: below -708 exp makes denormals (or 0) on NumPy's slow path (24 ->
        # 12 µs at N=300, K=20); 1e-304 for 0 changes no sum at float64 precision
        e = lp - top
        np.exp(np.maximum(e, -700.0, out=e), out=e)
    total = e.sum(axis=0)
    log_norm = top + np.log(total)
    share = w / total
    wll = w @ log_norm
    if not (np.isfinite(wll) and np.isfinite(share).all()):  # rows of weight 0 or 0 mass
        live = w > 0
        share = np.where(live & (total > 0), w / np.where(total > 0, total, 1.0), 0.0)
        wll = np.where(live, w * log_norm, 0.0).sum()
    S = (e * share) @ T  # (K, F)
    D = center.shape[0]
    sxx = S[:, 1 + D:]
    if p.covariance_type in ("full", "tied"):
        sxx = sxx[:, _triu(D)[3]].reshape(-1, D, D)
    return S[:, 0], S[:, 1:1 + D], sxx, wll


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of (..., D, D); NaN where a matrix is not positive
    definite (as JAX returns), instead of NumPy's exception for the whole batch."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        if cov.ndim == 2:
            return np.full_like(cov, np.nan)
        return np.stack([_cholesky(c) for c in cov])


def _factor(kind: str, sxx, nk, delta, total, reg) -> np.ndarray:
    """:meth:`bayesgmm.covariance.CovarianceOps.factor_from_moments` in NumPy."""
    D = delta.shape[1]
    if kind == "full":
        cov = sxx / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
        cov += reg * _eye(D)
        return _cholesky(cov)
    if kind == "tied":
        cov = (sxx.sum(axis=0) - (nk[:, None] * delta).T @ delta) / total
        return _cholesky(0.5 * (cov + cov.T) + reg * _eye(D))
    var = sxx / nk[:, None] - delta * delta
    if kind == "spherical":
        var = var.mean(axis=-1)
    return np.sqrt(var + reg)


def _factor_ok(kind: str, f: np.ndarray, K: int) -> np.ndarray:
    """(K,) bool: finite factors with a positive diagonal."""
    if kind in ("full", "tied"):
        d = np.diagonal(f, axis1=-2, axis2=-1)
        ok = np.isfinite(f).all(axis=(-2, -1)) & (d > 0).all(axis=-1)
        return np.broadcast_to(ok, (K,))
    ok = np.isfinite(f) & (f > 0)
    return ok.all(axis=-1) if kind == "diag" else ok


def _m_step(stats, previous: GMMParams, center, reg) -> GMMParams:
    """:func:`bayesgmm.engines.jax.m_step` with ``previous``: zero-weight components stay as they
    were."""
    nk, sx, sxx, _ = stats
    kind = previous.covariance_type
    nk = nk + 10 * np.finfo(np.float64).eps
    active = previous.weights > 0
    mass = np.where(active, nk, 0.0)
    delta = sx / nk[:, None]
    total = mass.sum()
    weights = mass / total
    factor = _factor(kind, sxx, nk, delta, total, reg)
    if active.all():
        return GMMParams(weights, center + delta, factor, kind)
    means = np.where(active[:, None], center + delta, previous.means)
    axis = ops(kind).component_axis
    if axis is not None:
        factor = np.where(active.reshape((-1,) + (1,) * (-axis - 1)), factor,
                          previous.cov_factor)
    return GMMParams(weights, means, factor, kind)


def _fit(T, w, center, params: GMMParams, tol, reg_covar, max_iter, hard_start):
    """EM from ``params`` (float64, batch shape ``()``) on features ``T``."""
    K, kind = params.n_components, params.covariance_type
    total_w, TT = w.sum(), np.ascontiguousarray(T.T)
    lower_bound, n_iter, converged, nonfinite, bad = -np.inf, 0, False, False, -1
    history = np.full(max_iter, np.nan)
    nk = np.zeros(K)
    hard = bool(hard_start)
    while n_iter < max_iter and not converged and not nonfinite:
        with np.errstate(all="ignore"):
            stats = _e_step(params, T, TT, w, center, hard)
            lb = stats[3] / total_w
            new = _m_step(stats, params, center, reg_covar)
        comp_ok = _factor_ok(kind, new.cov_factor, K)
        all_ok = bool(comp_ok.all())
        ok = all_ok and bool(np.isfinite(lb)) and bool(np.isfinite(new.means).all())
        bad = -1 if all_ok else int(np.argmin(comp_ok))
        if ok:
            params, nk = new, stats[0]
        if not hard:
            history[n_iter] = lb
            converged = ok and abs(lb - lower_bound) < tol
            if ok:
                lower_bound = lb
            n_iter += 1
        nonfinite, hard = not ok, False
    info = FitInfo(np.float64(lower_bound), np.int32(n_iter), np.bool_(converged),
                   np.bool_(nonfinite), np.int32(bad), history, nk)
    return params, info


def _prepare(X, sample_weight, covariance_type):
    """(weights, their data mean, the features of the rows), in float64."""
    X = np.asarray(X, np.float64)
    w = (np.ones(X.shape[0]) if sample_weight is None
         else np.asarray(sample_weight, np.float64))
    center = w @ X / np.sum(w)
    return w, center, _features(X, center, ops(covariance_type).full_moments)


def _out_dtype(X) -> np.dtype:
    """The dtype results are returned in: X's float dtype (float32 stays float32)."""
    return np.result_type(np.asarray(X).dtype, np.float32)


def _info_as(info: FitInfo, dtype) -> FitInfo:
    return info._replace(lower_bound=np.asarray(info.lower_bound, dtype),
                         history=np.asarray(info.history, dtype),
                         nk=np.asarray(info.nk, dtype))


def _cast(params: GMMParams, info: FitInfo, dtype) -> tuple[GMMParams, FitInfo]:
    p = GMMParams(*(np.asarray(a, dtype) for a in (params.weights, params.means,
                                                   params.cov_factor)),
                  params.covariance_type)
    return p, _info_as(info, dtype)


def fit(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
        reg_covar: float = 1e-6, max_iter: int = 100,
        hard_start: bool = False) -> tuple[GMMParams, FitInfo]:
    """:func:`bayesgmm.engines.jax.fit` on the host: the same iterations, stopping rule and
    :class:`~bayesgmm.engines.jax.FitInfo`, in float64 NumPy; results in X's dtype."""
    w, center, T = _prepare(X, sample_weight, params.covariance_type)
    p, info = _fit(T, w, center, _as64(params), tol, reg_covar, max_iter, hard_start)
    return _cast(p, info, _out_dtype(X))


def fit_restarts(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, screen_iter: int = 0,
                 hard_start: bool = False) -> tuple[GMMParams, FitInfo, FitInfo]:
    """:func:`bayesgmm.engines.jax.fit_restarts` on the host: each of the R starts (batch shape
    ``(R,)``) in turn, sharing one feature table; the best by lower bound (the first
    maximum; non-finite fits lose), or small-EM with ``screen_iter``."""
    dtype = _out_dtype(X)
    w, center, T = _prepare(X, sample_weight, params.covariance_type)
    starts = [_as64(GMMParams(params.weights[r], params.means[r], params.cov_factor[r],
                              params.covariance_type))
              for r in range(np.shape(params.weights)[0])]
    run = lambda p, t, n, hard: _fit(T, w, center, p, t, reg_covar, n, hard)

    def best_of(results):
        scores = [-np.inf if i.nonfinite else float(i.lower_bound) for _, i in results]
        return results[int(np.argmax(scores))]

    if not screen_iter or screen_iter >= max_iter or len(starts) == 1:
        results = [run(p, tol, max_iter, hard_start) for p in starts]
        p, info = best_of(results)
    else:  # small-EM, as em.fit_restarts
        results = [run(p, -1.0, screen_iter, hard_start) for p in starts]
        start, start_info = best_of(results)
        p, info = run(start, tol, max_iter - screen_iter, False)
        info = info._replace(n_iter=np.int32(info.n_iter + start_info.n_iter),
                             history=np.concatenate([start_info.history, info.history]))
    all_info = FitInfo(*(np.stack(v) for v in zip(*(i for _, i in results))))
    return (*_cast(p, info, dtype), _info_as(all_info, dtype))


# ---- k-means -------------------------------------------------------------------------


def lloyd(X, sample_weight, centers, n_active: int | None = None, n_lloyd: int = 30,
          tol: float = 1e-4) -> np.ndarray:
    """:func:`bayesgmm.initialize.lloyd` on the host (float64): weighted Lloyd
    iterations from ``centers (K, D)``, at most ``n_lloyd``, stopping once the centres
    move less than ``tol`` times the mean feature variance; centres past ``n_active``
    are padding and get no rows. Returns the centres, (K, D)."""
    X = np.asarray(X, np.float64)
    w = np.asarray(sample_weight, np.float64)
    K = centers.shape[0]
    active = np.arange(K) < (K if n_active is None else n_active)
    total = np.sum(w)
    mean = w @ X / total
    Xc = X - mean
    threshold = tol * np.mean(w @ (Xc * Xc) / total)
    c = np.asarray(centers, np.float64) - mean
    shift, i = np.inf, 0
    # (K, N) layout, in-place updates and per-feature bincounts: no (K, N) one-hot
    # (measured, N=300, D=2, K=20: ~45 -> ~20 µs an iteration)
    XcT, wXcT = np.ascontiguousarray(Xc.T), np.ascontiguousarray((Xc * w[:, None]).T)
    while i < n_lloyd and shift > threshold:
        score = c @ XcT  # (K, N): |c|² - 2 x·c, the distance up to |x|²
        score *= -2.0
        score += (c * c).sum(axis=1)[:, None]
        if not active.all():
            score[~active] = np.inf
        labels = score.argmin(axis=0)
        counts = np.bincount(labels, w, K)
        sums = np.stack([np.bincount(labels, row, K) for row in wXcT], axis=1)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-30)[:, None], c)
        shift, c, i = ((new - c) ** 2).sum(), new, i + 1
    return c + mean


def lloyd_batch(X, sample_weight, centers, n_active: int | None = None) -> np.ndarray:
    """:func:`lloyd` for each restart's centres ``(R, K, D)``."""
    return np.stack([lloyd(X, sample_weight, c, n_active) for c in centers]).astype(
        _out_dtype(X))


# ---- scoring -------------------------------------------------------------------------


def log_resp(params: GMMParams, X) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bayesgmm.density.log_resp` on the host: log p(z = k | x) (N, K) and
    log p(x) (N,), in float64."""
    p = _as64(params)
    X = np.asarray(X, np.float64)
    center = np.mean(X, axis=0)
    lp = _features(X, center, ops(p.covariance_type).full_moments) @ _theta(p, center)
    ln = _log_norm(lp)
    return lp - ln[:, None], ln


def score_draws(params: GMMParams, X) -> np.ndarray:
    """log p(x_n | θ_m) (M, N) in float64 for M parameter sets (batch shape (M,)), e.g.
    posterior draws: features once, one (F, K) table per set, one batched product."""
    X = np.asarray(X, np.float64)
    center = np.mean(X, axis=0)
    T = _features(X, center, ops(params.covariance_type).full_moments)
    p = _as64(params)
    theta = np.stack([_theta(p[m], center) for m in range(p.batch_shape[0])])
    return _log_norm(T @ theta)  # (M, N, K) -> (M, N)


def criteria_terms(params: GMMParams, X, sample_weight=None) -> tuple[float, float]:
    """:func:`bayesgmm.selection.criteria_terms` on the host for one parameter set:
    (Σ w log p(x), Σ w H(r))."""
    lr, ln = log_resp(params, X)
    w = np.ones(len(ln)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    live = w > 0
    with np.errstate(invalid="ignore"):
        r = np.exp(lr)
        h = -np.sum(np.where(r > 0, r * lr, 0.0), axis=1)
    return (float(np.sum(np.where(live, w * ln, 0.0))),
            float(np.sum(np.where(live, w * h, 0.0))))


def sklearn_covariances(params: GMMParams) -> dict[str, np.ndarray]:
    """scikit-learn's ``covariances_``, ``precisions_`` and ``precisions_cholesky_`` of
    ``params`` (batch shape ``()``), computed in float64, returned in its dtype."""
    dtype = np.asarray(params.means).dtype
    f = np.asarray(params.cov_factor, np.float64)
    if params.covariance_type in ("full", "tied"):
        Li = _tril_inv(f)
        out = {"covariances_": f @ np.swapaxes(f, -1, -2),
               "precisions_": np.swapaxes(Li, -1, -2) @ Li,
               "precisions_cholesky_": np.swapaxes(Li, -1, -2)}
    else:
        out = {"covariances_": f * f, "precisions_": 1.0 / (f * f),
               "precisions_cholesky_": 1.0 / f}
    return {k: v.astype(dtype) for k, v in out.items()}
