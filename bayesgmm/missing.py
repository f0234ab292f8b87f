"""Missing values (missing at random) in EM: marginal E-step, completed M-step.

Glossary: N samples, D features, K components, P missingness patterns (distinct sets of
observed features among the rows), O observed and M missing features of one pattern
(O + M = D), C rows of one chunk of one pattern.

A NaN in ``X`` is a value missing at random. For a row with observed coordinates o and
missing ones m, component k's law of the observed part is the marginal
N(x_o | μ_o, Σ_oo), and given x_o the missing part is Gaussian with

    E[x_m | x_o, k] = μ_m + B_k (x_o - μ_o),   B_k = Σ_mo Σ_oo⁻¹,
    Cov[x_m | x_o, k] = C_k = Σ_mm - B_k Σ_om.

EM (Ghahramani & Jordan 1994) then runs as usual on completed statistics:

* E-step: responsibilities from the observed coordinates' marginals (a row's log
  density is log Σ_k w_k N(x_o | μ_o, Σ_oo), the observed-data likelihood EM climbs);
* M-step: the expected complete-data statistics Σ r E[x], Σ r E[x xᵀ] (the missing block
  of E[x xᵀ] gains C_k), then the per-type table's own M-step
  (:func:`bayesgmm.engines.mixture_m_step`, ``factor_from_moments``), so every
  covariance model of :mod:`bayesgmm.covariance` works unchanged. Constrained models
  (tied, diag, spherical, mclust's) are exact EM too: their complete-data likelihood
  depends on the data only through these statistics.

Design notes
------------
* Host engine, grouped by pattern. Rows are grouped by their missingness pattern once
  per fit (:func:`patterns`, an integer code per row); per pattern and iteration the
  conditional laws of the K components are computed once (K Cholesky factors of O x O
  blocks, :func:`conditionals`), and the rows of the pattern go through batched matmuls
  in chunks of at most :data:`CHUNK_ROWS` (scratch memory stays O(K·C·D) whatever N).
  Everything runs in float64 NumPy; results come back in X's dtype. Nothing here
  imports JAX (the initialisation may run compiled through :func:`bayesgmm.fitting.fit`
  on large data).
* Per-row masking (one program for all patterns, the JAX way) costs a D x D Cholesky
  per row and component (N·K of them) where grouping costs P·K; at D = 8 there are at
  most 256 patterns, so grouping wins on the host (``benchmarks/missing.py`` measures
  the iteration against a complete-data one). The Bayesian likelihood
  (:mod:`bayesgmm.bayes.missing`) masks instead: it must be differentiable and runs on
  small N.
* The covariances come from the table's ``to_full_covariance``; the statistics go back
  in the table's layout (``full_moments``: all products, else the squares), so a new
  covariance model needs nothing here.
* Initialisation: one EM iteration of the plain model (``init_params``, ``n_init``
  restarts, ``*_init`` values all as in :func:`bayesgmm.fitting.fit`) on the data with
  each missing value replaced by its column's observed mean; then this EM on the data
  with holes.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from bayesgmm import fitting, validation
from bayesgmm._xp import NUMPY
from bayesgmm.covariance import moment_features, moment_sums, moment_theta, ops
from bayesgmm.engines import FitInfo, mixture_m_step, step_health
from bayesgmm.params import GMMParams, take_components
from bayesgmm.validation import (
    DegenerateComponentWarning,
    check_array_2d,
    check_sample_weight,
)

__all__ = ["CHUNK_ROWS", "Patterns", "Conditionals", "Block", "has_missing", "check_missing",
           "patterns", "conditionals", "blocks", "fit", "em", "log_resp", "criteria", "impute"]

#: Rows per block of one pattern: bounds the (C, K) scratch of the E-step.
CHUNK_ROWS = 2**16

_LOG_2PI = math.log(2 * math.pi)


class Patterns(NamedTuple):
    """The rows of X grouped by which features they observe."""

    observed: np.ndarray  # (P, D) bool: the observed features of each pattern
    rows: list  # P int64 arrays of row indices, each non-empty, ascending


class Conditionals(NamedTuple):
    """Every component's law of x given the observed features o of one pattern (O
    observed, M missing)."""

    chol: np.ndarray  # (K, O, O) L, lower Cholesky of the marginal covariance Σ_oo = L Lᵀ
    regression: np.ndarray  # (K, M, O) B = Σ_mo Σ_oo⁻¹
    covariance: np.ndarray  # (K, M, M) C = Σ_mm - B Σ_om


class Block(NamedTuple):
    """Rows of one pattern (or a chunk of them) with their features, made once a fit."""

    observed: np.ndarray  # (D,) bool
    rows: np.ndarray  # (C,) int64 row indices
    features: np.ndarray  # (C, F_o) float64 [1, u, u⊗u] of u = x_o - c_o (full products)


# ---- validation ------------------------------------------------------------------------


def has_missing(X: np.ndarray) -> bool:
    """Whether a checked ``X`` holds a NaN."""
    return bool(np.isnan(X).any())


def check_missing(X: np.ndarray, *, fitting_data: bool = False) -> None:
    """Refuse what marginalisation cannot handle, naming it and the fix.

    Every row needs an observed value; data to fit needs every feature observed in at
    least one row (otherwise nothing estimates that feature's mean)."""
    observed = ~np.isnan(X)
    empty = np.flatnonzero(~observed.any(axis=1))
    if empty.size:
        raise ValueError(
            f"Row(s) {empty[:10].tolist()} of X have no observed value (all "
            f"{X.shape[1]} features are NaN; {empty.size} such rows): "
            "missing='marginalize' needs at least one observed feature per row; drop "
            "those rows.")
    if fitting_data:
        never = np.flatnonzero(~observed.any(axis=0))
        if never.size:
            raise ValueError(
                f"Feature(s) {never.tolist()} of X are NaN in every row: nothing "
                "estimates their mean or variance; drop those columns before fitting.")


# ---- patterns and conditional laws ----------------------------------------------------


def patterns(X: np.ndarray) -> Patterns:
    """Group the rows of ``X (N, D)`` by their set of observed (non-NaN) features."""
    observed = ~np.isnan(X)
    N, D = observed.shape
    if D <= 62:  # one integer code per row: a 1-D unique, far faster than axis=0
        code = observed.astype(np.int64) @ (np.int64(1) << np.arange(D, dtype=np.int64))
        _, inverse = np.unique(code, return_inverse=True)
    else:
        _, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    ends = np.cumsum(counts)
    rows = np.split(order, ends[:-1])
    return Patterns(observed[order[ends - counts]], rows)


def conditionals(covariances: np.ndarray, observed: np.ndarray) -> Conditionals:
    """The K components' marginals on the ``observed (D,)`` features and conditional
    laws of the others.

    Parameters
    ----------
    covariances : array of shape (K, D, D)
        float64 (the table's ``to_full_covariance``).
    observed : bool array of shape (D,)
    """
    o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
    S_mo = covariances[:, m[:, None], o]
    L = NUMPY.cholesky(covariances[:, o[:, None], o])  # NaN if not positive definite
    Li = NUMPY.tril_inv(L)
    B = S_mo @ np.swapaxes(Li, -1, -2) @ Li
    C = covariances[:, m[:, None], m] - B @ np.swapaxes(S_mo, -1, -2)
    return Conditionals(L, B, C)


def blocks(X: np.ndarray, center: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> list[Block]:
    """The rows of ``X (N, D)`` as :class:`Block` s: grouped by pattern
    (:func:`patterns`), at most ``chunk_rows`` rows each, with the moments features of
    their observed coordinates about ``center (D,)`` (full products, whatever the
    covariance type: the marginal of any model is a Gaussian on O features)."""
    out = []
    for obs, rows in zip(*patterns(X)):
        o = np.flatnonzero(obs)
        for i in range(0, len(rows), chunk_rows):
            idx = rows[i:i + chunk_rows]
            T = moment_features(X[np.ix_(idx, o)], center[o], "full", NUMPY)
            out.append(Block(obs, idx, T))
    return out


# ---- the fit ---------------------------------------------------------------------------


def fit(X, options: fitting.FitOptions, *, sample_weight=None, start: GMMParams | None = None,
        start_lower_bound: float = -math.inf) -> tuple[GMMParams, FitInfo]:
    """Fit a Gaussian mixture by EM to ``X`` with NaN as missing at random.

    :func:`bayesgmm.fitting.fit`'s contract (the same options, warm start, report,
    warnings and errors) for data with holes; see the module note for the algorithm
    and the initialisation.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NaN marks a missing value; every row needs an observed value and every
        feature one observed row.
    options : FitOptions
    sample_weight : array-like of shape (n_samples,), optional
    start : GMMParams, optional
        A warm start (batch shape ``()``, K components).
    start_lower_bound : float
        The lower bound ``start`` was fitted to.

    Returns
    -------
    params : GMMParams
        Batch shape ``()``, K components, NumPy in X's dtype.
    info : FitInfo
        ``lower_bound``: the mean observed-data log-likelihood.
    """
    options = options.check()
    X = check_array_2d(X, min_samples=2, missing="marginalize")
    check_missing(X, fitting_data=True)
    K = int(options.n_components)
    if X.shape[0] < K:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, "
                         f"n_samples = {X.shape[0]}")
    w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    init = _initial(X, w, options) if start is None else start
    if options.max_iter == 0:
        return init.to_numpy(X.dtype), fitting.unfitted_info(K, X.dtype)
    bound = start_lower_bound if start is not None else -math.inf
    params, info = em(X, init, sample_weight=w, tol=options.tol, reg_covar=options.reg_covar,
                      max_iter=int(options.max_iter), initial_lower_bound=bound)
    _report(info, X, options)
    return params, info


def em(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
       reg_covar: float = 1e-6, max_iter: int = 100, initial_lower_bound: float = -np.inf,
       chunk_rows: int = CHUNK_ROWS) -> tuple[GMMParams, FitInfo]:
    """EM from ``params`` on ``X`` with NaN as missing: the iterations, stopping rule and
    :class:`~bayesgmm.engines.FitInfo` of :func:`bayesgmm.engines.numpy.fit` (which it
    equals on complete data), with the marginal E-step and completed M-step.

    Parameters
    ----------
    X : array of shape (N, D)
        float32 or float64, NaN where missing (checked: :func:`check_missing`).
    params : GMMParams
        Batch shape ``()``.
    sample_weight : array of shape (N,), optional
    tol, reg_covar, max_iter, initial_lower_bound
        As :func:`bayesgmm.engines.numpy.fit`.
    chunk_rows : int
        Rows per chunk of a pattern.

    Returns
    -------
    params : GMMParams
        In X's dtype.
    info : FitInfo
    """
    dtype = np.result_type(np.asarray(X).dtype, np.float32)
    X = np.asarray(X, np.float64)
    w = (np.ones(X.shape[0]) if sample_weight is None
         else np.asarray(sample_weight, np.float64))
    total_w = w.sum()
    center = _observed_mean(X, w)
    parts = blocks(X, center, chunk_rows)
    params = params.to_numpy(np.float64)
    kind = params.covariance_type
    lower_bound, n_iter, converged, nonfinite, bad = (float(initial_lower_bound), 0, False,
                                                      False, -1)
    history = np.full(max_iter, np.nan)
    nk = np.zeros(params.n_components)
    with np.errstate(all="ignore"):  # -inf for a zero weight; a failing step is caught
        while n_iter < max_iter and not converged and not nonfinite:
            nk_new, sx, sxx, wll = _e_step(params, parts, w, center)
            lb = wll / total_w
            new = mixture_m_step(nk_new, sx, sxx, center, covariance_type=kind,
                                 reg_covar=reg_covar, previous=params, xp=NUMPY)
            ok, component_ok = step_health(new, lb, NUMPY)
            ok = bool(ok)
            bad = -1 if ok or component_ok.all() else int(component_ok.argmin())
            if ok:
                params, nk = new, nk_new
            history[n_iter] = lb
            converged = ok and abs(lb - lower_bound) < tol
            if ok:
                lower_bound = lb
            n_iter += 1
            nonfinite = not ok
    info = FitInfo(np.asarray(lower_bound, dtype), np.int32(n_iter), np.bool_(converged),
                   np.bool_(nonfinite), np.int32(bad), history.astype(dtype), nk.astype(dtype))
    return params.to_numpy(dtype), info


# ---- scoring and imputation ------------------------------------------------------------


def log_resp(params: GMMParams, X) -> tuple[np.ndarray, np.ndarray]:
    """log p(z = k | x_o) (N, K) and log p(x_o) (N,), each row's observed coordinates'
    marginal, in X's and ``params``' common dtype.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``.
    X : array of shape (N, D)
        NaN where missing; every row needs an observed value.
    """
    dtype = np.result_type(np.asarray(X).dtype, params.dtype)
    X = np.asarray(X, np.float64)
    p = params.to_numpy(np.float64)
    center = _observed_mean(X, np.ones(X.shape[0]))
    lp = np.empty((X.shape[0], p.n_components))
    with np.errstate(divide="ignore"):  # log of a zero weight
        for part, cond in _with_conditionals(p, blocks(X, center)):
            lp[part.rows] = part.features @ _theta(p, cond, part.observed, center)
    ln = _log_norm(lp)
    return (lp - ln[:, None]).astype(dtype), ln.astype(dtype)


def criteria(params: GMMParams, X) -> dict:
    """``bic``, ``aic`` and ``icl`` of ``params`` on ``X`` with holes, from the observed
    coordinates' likelihood (floats)."""
    lr, ln = log_resp(params, X)
    lr, ln = lr.astype(np.float64), ln.astype(np.float64)
    with np.errstate(invalid="ignore"):
        r = np.exp(lr)
        entropy = -np.sum(np.where(r > 0, r * lr, 0.0))
    return {k: float(v) for k, v in fitting.criteria_from_terms(
        ln.sum(), entropy, params.n_parameters, X.shape[0]).items()}


def impute(params: GMMParams, X, n_imputations: int | None = None,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Fill the NaN of ``X`` from the fitted mixture.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``.
    X : array of shape (N, D)
        NaN where missing; every row needs an observed value.
    n_imputations : int, optional
        ``None``: the conditional means E[x_m | x_o] = Σ_k r_k(x_o) (μ_km + B_k (x_o -
        μ_ko)), the responsibilities from the observed coordinates. Else that many
        draws from p(x_m | x_o): a component from the responsibilities, then its
        Gaussian conditional.
    rng : numpy.random.Generator, optional
        For the draws.

    Returns
    -------
    array of shape (N, D), or (n_imputations, N, D)
        X's observed values unchanged, in X's and ``params``' common dtype.
    """
    dtype = np.result_type(np.asarray(X).dtype, params.dtype)
    X = np.asarray(X, np.float64)
    p = params.to_numpy(np.float64)
    draws = n_imputations is not None
    rng = np.random.default_rng() if rng is None else rng
    out = np.repeat(X[None], n_imputations if draws else 1, axis=0)
    center = _observed_mean(X, np.ones(X.shape[0]))
    with np.errstate(divide="ignore"):
        for part, cond in _with_conditionals(p, blocks(X, center)):
            o, m, idx = np.flatnonzero(part.observed), np.flatnonzero(~part.observed), part.rows
            if m.size == 0:
                continue
            lp = part.features @ _theta(p, cond, part.observed, center)  # (C, K)
            resp = np.exp(lp - _log_norm(lp)[:, None])
            diff = X[np.ix_(idx, o)][None] - p.means[:, None, o]  # (K, C, O)
            fill = p.means[:, None, m] + diff @ np.swapaxes(cond.regression, -1, -2)  # (K,C,M)
            if not draws:
                out[0][np.ix_(idx, m)] = np.einsum("ck,kcm->cm", resp, fill)
                continue
            out[:, idx[:, None], m] = _draw(rng, resp, fill, cond.covariance, n_imputations)
    return (out if draws else out[0]).astype(dtype)


# ---- internals -------------------------------------------------------------------------


def _observed_mean(X, w) -> np.ndarray:
    """(D,) the weighted mean of each feature's observed values: the features' centre
    (any centre is exact; the mean keeps the moments well conditioned)."""
    observed = ~np.isnan(X)
    ww = w[:, None] * observed
    count = ww.sum(axis=0)  # 0 for a feature never observed here (scoring): centre 0
    return (ww * np.where(observed, X, 0.0)).sum(axis=0) / np.where(count > 0, count, 1.0)


def _with_conditionals(p: GMMParams, parts: list[Block]):
    """(block, its pattern's :class:`Conditionals`) per block; each pattern's computed
    once, from the table's full covariances."""
    cov = ops(p.covariance_type, NUMPY).to_full_covariance(p.cov_factor, p.n_components,
                                                           p.n_features)
    cache: dict[bytes, Conditionals] = {}
    for part in parts:
        key = part.observed.tobytes()
        if key not in cache:
            cache[key] = conditionals(cov, part.observed)
        yield part, cache[key]


def _theta(p: GMMParams, cond: Conditionals, observed, center) -> np.ndarray:
    """(F_o, K): log w_k N(x_o | μ_ko, Σ_k,oo) = T(x_o) θ_k for a block's features."""
    return moment_theta(p.weights, p.means[:, observed], cond.chol, center[observed], "full",
                        NUMPY)


def _log_norm(lp: np.ndarray) -> np.ndarray:
    """log Σ_k exp(lp) over the last axis (K), shifted by finite row maxima."""
    top = lp.max(axis=-1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top + np.log(np.exp(lp - top[..., None]).sum(axis=-1))


def _e_step(p: GMMParams, parts: list[Block], w, center):
    """Completed statistics about ``center``: nk (K,), sx (K, D), sxx in the table's
    layout ((K, D, D) or (K, D)), and Σ w log p(x_o).

    Per block, the moments of u = x_o - c_o come from one matmul, S = (w r)ᵀ T; given
    x_o and component k the completed row is affine in u, E[x - c | x_o, k] = a_k + A_k u
    (A_k = [I; B_k] placed on the observed and missing features), so its sums are
    nk a + A s1 and nk a aᵀ + a (A s1)ᵀ + (A s1) aᵀ + A s2 Aᵀ, plus nk C_k on the
    missing block."""
    K, D = p.n_components, p.n_features
    nk, sx, sxx = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    wll = 0.0
    for part, cond in _with_conditionals(p, parts):
        obs = part.observed
        o, m = np.flatnonzero(obs), np.flatnonzero(~obs)
        lp = part.features @ _theta(p, cond, obs, center)  # (C, K)
        top = lp.max(axis=1)
        top = np.where(np.isfinite(top), top, 0.0)
        e = np.exp(np.maximum(lp - top[:, None], -700.0))
        total = e.sum(axis=1)
        wi = w[part.rows]
        live = wi > 0
        wll += np.sum(np.where(live, wi * (top + np.log(total)), 0.0))
        share = np.where(live & (total > 0), wi / np.where(total > 0, total, 1.0), 0.0)
        S = (e * share[:, None]).T @ part.features  # (K, F_o)
        n_p, s1, s2 = moment_sums(S, center[o], "full", NUMPY)
        A = np.zeros((K, D, o.size))
        A[:, o, np.arange(o.size)] = 1.0
        A[:, m, :] = cond.regression
        a = np.zeros((K, D))
        a[:, m] = (p.means[:, m] - center[m]
                   - (cond.regression @ (p.means[:, o] - center[o])[:, :, None])[:, :, 0])
        As1 = (A @ s1[:, :, None])[:, :, 0]
        nk += n_p
        sx += n_p[:, None] * a + As1
        outer = a[:, :, None] * As1[:, None, :]
        sxx += (n_p[:, None, None] * a[:, :, None] * a[:, None, :] + outer
                + np.swapaxes(outer, -1, -2) + A @ s2 @ np.swapaxes(A, -1, -2))
        sxx[:, m[:, None], m] += n_p[:, None, None] * cond.covariance
    if not ops(p.covariance_type, NUMPY).full_moments:
        sxx = np.diagonal(sxx, axis1=-2, axis2=-1).copy()
    return nk, sx, sxx, wll


def _draw(rng, resp, fill, covariance, n: int) -> np.ndarray:
    """n draws (n, C, M): a component per row from ``resp (C, K)``, then its
    conditional N(fill (K, C, M), covariance (K, M, M))."""
    C, K = resp.shape
    cum = np.cumsum(resp, axis=1)
    u = rng.random((n, C, 1)) * cum[:, -1:]
    z = np.minimum((u > cum).sum(axis=-1), K - 1)  # (n, C) component per draw
    L = NUMPY.cholesky(covariance)  # (K, M, M)
    noise = rng.standard_normal((n, C, fill.shape[-1]))
    rows = np.arange(C)
    return fill[z, rows] + np.einsum("ncij,ncj->nci", L[z], noise)


def _initial(X, w, options: fitting.FitOptions) -> GMMParams:
    """The plain model's initialisation and first EM iteration on mean-imputed data."""
    filled = np.where(np.isnan(X), _observed_mean(X, w).astype(X.dtype), X)
    with warnings.catch_warnings():  # one iteration is a start, not a fit
        warnings.simplefilter("ignore", validation.ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        params, _ = fitting.fit(filled, options.replace(max_iter=min(int(options.max_iter), 1)),
                                sample_weight=w)
    return take_components(params, int(options.n_components)).to_numpy()


def _report(info: FitInfo, X, options: fitting.FitOptions) -> None:
    """Raise for a non-finite fit; warn when it did not converge."""
    if bool(info.nonfinite):
        k = int(info.bad_component)
        raise ValueError(
            f"Fitting the mixture model to data with missing values failed: "
            f"{'component ' + str(k) if k >= 0 else 'a component'} got a singular "
            f"covariance at iteration {int(info.n_iter)}. Increase reg_covar (now "
            f"{options.reg_covar:g}) or decrease n_components (now "
            f"{options.n_components}).")
    if not bool(info.converged):
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            f"parameters, or increase max_iter (now {options.max_iter}) or tol (now "
            f"{options.tol:g}).", validation.ConvergenceWarning, stacklevel=4)
