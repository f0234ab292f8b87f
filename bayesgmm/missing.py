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
  per fit (:func:`patterns`, an integer code per row), and each row's moments features
  ``T(u) = [1, u, u⊗u]`` of u = x - c, with u = 0 on its missing features, are made
  once (:func:`layout`), as the host engine (:mod:`bayesgmm.engines.numpy`) does for
  complete rows. Per iteration, every pattern's tables come from one batched pass over
  (P, K, D, D) arrays (:func:`pattern_tables`): the marginal's natural parameters θ_p
  (zero on the missing features' rows, so ``T(u) θ_p = log w_k N(x_o | μ_o, Σ_oo)``),
  and the affine completion ``E[x - c | x_o, k] = a + A u`` with its conditional
  covariance. The rows then cost what a complete-data iteration costs: per block one
  (K, F) @ (F, C) matmul for the E-step and one (K, C) @ (C, F) for the sums of T,
  which the completion maps to the statistics afterwards, once per pattern. Everything
  runs in float64; results come back in X's dtype.
* Compiled rows. On large data (E-step work N·K·F over :data:`COMPILED_WORK`) the
  rows' part of the E-step (the two matmuls and the softmax per block, the (P, K, F)
  sums of T) runs compiled, in float64: :func:`padded_layout` sorts the rows by
  pattern into blocks of one pattern each (8192 rows, then 256-row blocks for the
  rest, padded with zero-weight rows), and one ``lax.scan`` per block size takes each
  block's θ_p by a dynamic index. The pattern tables, the completion and the M-step
  stay on the host (small: P·K D×D matrices). Measured (N=10⁶, D=8, K=16, 20% MCAR,
  255 patterns, float64, wall on the loaded 2-core machine): 376 ms an iteration
  against the compiled complete-data engine's 329-443 ms (1.1x), where the host
  E-step took 587 ms (``benchmarks/missing.py``). Rows padded: at most 255 a pattern;
  the grouping costs about 1.2 s once per fit. JAX is imported only when that path
  runs (the initialisation may run compiled through :func:`bayesgmm.fitting.fit` too).
* Masked marginals. The marginal on the observed features o is computed without
  gathering O x O blocks: Σ̃ = Σ on o x o, the identity elsewhere, so Σ̃⁻¹ holds
  Σ_oo⁻¹ on o x o and log|Σ̃| = log|Σ_oo| (the trick a JAX version would use per row;
  here per pattern). At D = 8 there are at most 256 patterns, P·K small Choleskies an
  iteration; ``benchmarks/missing.py`` measures the iteration against a complete-data
  one.
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
from bayesgmm.covariance import moment_features, moment_sums, ops
from bayesgmm.engines import FitInfo, host_collapsed_at, mixture_m_step, step_health
from bayesgmm.params import GMMParams, take_components
from bayesgmm.validation import (
    DegenerateComponentWarning,
    check_array_2d,
    check_n_samples,
    check_sample_weight,
)

__all__ = ["CHUNK_ROWS", "BLOCK_ROWS", "COMPILED_WORK", "Patterns", "PatternTables", "Block",
           "Layout", "Padded", "has_missing", "check_missing", "patterns", "layout",
           "padded_layout", "pattern_tables", "fit", "em", "log_resp", "criteria", "impute"]

#: Rows per block of one pattern: bounds the (C, K) scratch of the E-step.
CHUNK_ROWS = 2**16

#: Rows per block of the compiled E-step (:func:`padded_layout`), large then small:
#: each pattern's rows fill whole large blocks, and the rest is padded to whole small
#: blocks, so the many small patterns waste few rows (at most a small block each) and
#: the large ones pay the loop's per-block overhead rarely.
BLOCK_ROWS = (8192, 256)

#: E-step work (N·K·F multiply-adds, F = 1 + D + D(D+1)/2) above which :func:`em` runs
#: its E-step compiled (``compiled=None``); below it, on the host, where nothing
#: compiles (compiling the E-step costs about a second).
COMPILED_WORK = 2**24

_LOG_2PI = math.log(2 * math.pi)


class Patterns(NamedTuple):
    """The rows of X grouped by which features they observe."""

    observed: np.ndarray  # (P, D) bool: the observed features of each pattern
    rows: list  # P int64 arrays of row indices, each non-empty, ascending


class PatternTables(NamedTuple):
    """Every pattern's marginal and completion for one parameter set (u = x - c, zero on
    a pattern's missing features)."""

    theta: np.ndarray  # (P, F, K) log w_k N(x_o | μ_ko, Σ_k,oo) = T(u) θ_p[:, k]
    # (P, K, D, D) E[x - c | x_o, k] = a + A u: identity on o x o, B_k = Σ_mo Σ_oo⁻¹ on m x o
    A: np.ndarray
    a: np.ndarray  # (P, K, D) zero on o; μ_m - c_m - B_k (μ_o - c_o) on m
    covariance: np.ndarray  # (P, K, D, D) Cov[x | x_o, k]: Σ_mm - B_k Σ_om on m x m, else 0


class Block(NamedTuple):
    """Rows of one pattern (or a chunk of them) with their features, made once a fit."""

    pattern: int  # index into the layout's patterns
    rows: np.ndarray  # (C,) int64 row indices
    # (F, C) float64 T(u)ᵀ, T(u) = [1, u, u⊗u] (full products), u_m = 0; laid out (F, C)
    # as the host engine's: the E-step's (K, C) reductions then run along contiguous rows
    features: np.ndarray


class Layout(NamedTuple):
    """X's rows as blocks of one pattern each, with their features (:func:`layout`)."""

    observed: np.ndarray  # (P, D) bool
    center: np.ndarray  # (D,) float64 c, the weighted mean of each feature's observed values
    blocks: list  # of Block


class Padded(NamedTuple):
    """X's rows sorted by pattern in blocks of one pattern each, padded with zero-weight
    rows (:func:`padded_layout`), for the compiled E-step."""

    observed: np.ndarray  # (P, D) bool
    center: np.ndarray  # (D,) float64, as Layout's
    # one (u, w, block_pattern) per block size R: u (B·R, D) float64 x - c, 0 on missing
    # features and padding; w (B·R,) row weights, 0 on padding; block_pattern (B,) int32
    levels: tuple


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


def layout(X: np.ndarray, w: np.ndarray | None = None,
           chunk_rows: int = CHUNK_ROWS) -> Layout:
    """Group the rows of ``X (N, D)`` by pattern (:func:`patterns`) into blocks of at
    most ``chunk_rows`` rows with their moments features about the observed means
    (weights ``w (N,)``, default ones). The features are full products whatever the
    covariance type: a pattern's marginal and completion need the cross moments."""
    X = np.asarray(X, np.float64)
    center = _observed_mean(X, np.ones(X.shape[0]) if w is None else w)
    pats = patterns(X)
    out = []
    for i, rows in enumerate(pats.rows):
        for j in range(0, len(rows), chunk_rows):
            idx = rows[j:j + chunk_rows]
            u = X[idx] - center
            T = moment_features(np.where(np.isnan(u), 0.0, u), np.zeros_like(center), "full",
                                NUMPY)
            out.append(Block(i, idx, np.ascontiguousarray(T.T)))
    return Layout(pats.observed, center, out)


def padded_layout(X: np.ndarray, w: np.ndarray | None = None,
                  block_rows: tuple[int, ...] = BLOCK_ROWS) -> Padded:
    """The rows of ``X (N, D)`` grouped by pattern (:func:`patterns`) into blocks of one
    pattern each, as float64 JAX arrays for the compiled E-step: each pattern fills
    whole blocks of ``block_rows[0]`` rows, its remaining rows whole blocks of the next
    size, and so on; the last size's last block is padded with zero-weight rows.
    u = x - c about the observed means, 0 where missing."""
    import jax

    from bayesgmm.validation import compute_scope

    X = np.asarray(X, np.float64)
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, np.float64)
    center = _observed_mean(X, w)
    pats = patterns(X)
    left = list(pats.rows)
    levels = []
    for i, size in enumerate(block_rows):
        last = i == len(block_rows) - 1
        index, block_pattern = [], []
        for p, rows in enumerate(left):
            n = -(-len(rows) // size) if last else len(rows) // size
            take = rows[:n * size]
            index.append(np.concatenate([take, np.full(n * size - len(take), -1, np.int64)]))
            block_pattern.append(np.full(n, p, np.int32))
            left[p] = rows[n * size:]
        index, block_pattern = np.concatenate(index), np.concatenate(block_pattern)
        if not block_pattern.size:
            continue
        real = index >= 0
        u = np.where(real[:, None], X[index] - center, 0.0)
        with compute_scope(np.float64):
            levels.append((jax.device_put(np.where(np.isnan(u), 0.0, u)),
                           jax.device_put(np.where(real, w[index], 0.0)),
                           jax.device_put(block_pattern)))
    return Padded(pats.observed, center, tuple(levels))


def pattern_tables(params: GMMParams, observed: np.ndarray,
                   center: np.ndarray) -> PatternTables:
    """Every pattern's marginal (as moments-form θ) and conditional completion.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``, float64 NumPy; any covariance type (its full covariances
        from the table's ``to_full_covariance``).
    observed : bool array of shape (P, D)
    center : array of shape (D,)

    Returns
    -------
    PatternTables
    """
    K, D = params.n_components, params.n_features
    S = ops(params.covariance_type, NUMPY).to_full_covariance(params.cov_factor, K, D)
    oo = (observed[:, :, None] & observed[:, None, :])[:, None]  # (P, 1, D, D)
    # Σ̃: Σ on o x o, identity elsewhere; its inverse is Σ_oo⁻¹ on o x o (module note)
    L = NUMPY.cholesky(np.where(oo, S[None], np.eye(D)))  # (P, K, D, D)
    Li = NUMPY.tril_inv(L)
    prec = np.where(oo, np.swapaxes(Li, -1, -2) @ Li, 0.0)  # Σ_oo⁻¹ placed, (P, K, D, D)
    log_det = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)  # ½ log|Σ_oo|, (P, K)
    mc = (params.means - center)[None] * observed[:, None, :]  # (μ - c) on o, (P, K, D)
    pm = (prec @ mc[..., None])[..., 0]
    n_obs = observed.sum(axis=1)[:, None]
    const = (np.log(params.weights) - log_det
             - 0.5 * (n_obs * _LOG_2PI + (mc * pm).sum(axis=-1)))  # (P, K)
    P = observed.shape[0]
    quad = ops("full", NUMPY).quadratic_theta(prec.reshape(P * K, D, D))  # (F2, P·K)
    quad = np.moveaxis(quad.reshape(-1, P, K), 1, 0)
    theta = np.concatenate([const[:, None, :], np.swapaxes(pm, -1, -2), quad], axis=1)
    miss = ~observed[:, None, :, None]  # (P, 1, D, 1): rows of the missing features
    B = np.where(miss, S[None] @ prec, 0.0)  # Σ_mo Σ_oo⁻¹ on m x o, else 0
    A = B + np.where(miss, 0.0, np.eye(D))
    a = np.where(miss[..., 0], (params.means - center)[None] - (
        B @ (params.means - center)[None, :, :, None])[..., 0], 0.0)
    mm = miss & np.swapaxes(miss, -1, -2)
    C = np.where(mm, S[None] - B @ S[None], 0.0)
    return PatternTables(theta, A, a, C)


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
    if options.prior is not None or options.equal_weights:
        raise ValueError("missing='marginalize' does not combine with prior= or "
                         "equal_weights=True yet; fit without them, or drop or impute the "
                         "rows with NaN first")
    X = check_array_2d(X, min_samples=2, missing="marginalize")
    check_missing(X, fitting_data=True)
    K = int(options.n_components)
    check_n_samples(X.shape[0], K)
    w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    init = _initial(X, w, options) if start is None else start
    if options.max_iter == 0:
        return init.to_numpy(X.dtype), fitting.unfitted_info(K, X.dtype)
    bound = start_lower_bound if start is not None else -math.inf
    params, info = em(X, init, sample_weight=w, tol=options.tol, reg_covar=options.reg_covar,
                      max_iter=int(options.max_iter), initial_lower_bound=bound,
                      stop_collapsed=bool(options.stop_collapsed))
    _report(info, X, options)
    return params, info


def em(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
       reg_covar: float = 1e-6, max_iter: int = 100, initial_lower_bound: float = -np.inf,
       chunk_rows: int = CHUNK_ROWS, compiled: bool | None = None,
       stop_collapsed: bool = False) -> tuple[GMMParams, FitInfo]:
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
    tol, reg_covar, max_iter, initial_lower_bound, stop_collapsed
        As :func:`bayesgmm.engines.numpy.fit`.
    chunk_rows : int
        Rows per chunk of a pattern (host E-step).
    compiled : bool, optional
        Run the E-step's rows compiled (JAX, float64; :func:`padded_layout`), or on the
        host (NumPy). ``None``: compiled when N·K·F exceeds :data:`COMPILED_WORK`. The
        pattern tables, the completion and the M-step run on the host either way.

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
    if compiled is None:
        D = X.shape[1]
        work = X.shape[0] * params.n_components * (1 + D + D * (D + 1) // 2)
        compiled = work > COMPILED_WORK
    parts = padded_layout(X, w) if compiled else layout(X, w, chunk_rows)
    params = params.to_numpy(np.float64)
    kind = params.covariance_type
    lower_bound, n_iter, converged, nonfinite, bad = (float(initial_lower_bound), 0, False,
                                                      False, -1)
    history = np.full(max_iter, np.nan)
    nk = np.zeros(params.n_components)
    collapsed = False
    with np.errstate(all="ignore"):  # -inf for a zero weight; a failing step is caught
        while n_iter < max_iter and not converged and not nonfinite and not collapsed:
            nk_new, sx, sxx, wll = _e_step(params, parts, w)
            lb = wll / total_w
            new = mixture_m_step(nk_new, sx, sxx, parts.center, covariance_type=kind,
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
            collapsed = stop_collapsed and ok and host_collapsed_at(params, nk, reg_covar,
                                                                    n_iter)
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
    parts = layout(X)
    lp = np.empty((X.shape[0], p.n_components))
    with np.errstate(divide="ignore"):  # log of a zero weight
        theta = pattern_tables(p, parts.observed, parts.center).theta
        for b in parts.blocks:
            lp[b.rows] = (theta[b.pattern].T @ b.features).T
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
    parts = layout(X)
    D = X.shape[1]
    with np.errstate(divide="ignore"):
        tab = pattern_tables(p, parts.observed, parts.center)
        for b in parts.blocks:
            m = np.flatnonzero(~parts.observed[b.pattern])
            if m.size == 0:
                continue
            lp = (tab.theta[b.pattern].T @ b.features).T  # (C, K)
            resp = np.exp(lp - _log_norm(lp)[:, None])
            u = b.features[1:1 + D].T
            fill = (tab.a[b.pattern][:, None, :] + u @ np.swapaxes(tab.A[b.pattern], -1, -2)
                    )[:, :, m] + parts.center[m]  # (K, C, M) E[x_m | x_o, k]
            if not draws:
                out[0][np.ix_(b.rows, m)] = np.einsum("ck,kcm->cm", resp, fill)
                continue
            cov = tab.covariance[b.pattern][:, m[:, None], m]
            out[:, b.rows[:, None], m] = _draw(rng, resp, fill, cov, n_imputations)
    return (out if draws else out[0]).astype(dtype)


# ---- internals -------------------------------------------------------------------------


def _observed_mean(X, w) -> np.ndarray:
    """(D,) the weighted mean of each feature's observed values: the features' centre
    (any centre is exact; the mean keeps the moments well conditioned)."""
    observed = ~np.isnan(X)
    ww = w[:, None] * observed
    count = ww.sum(axis=0)  # 0 for a feature never observed here (scoring): centre 0
    return (ww * np.where(observed, X, 0.0)).sum(axis=0) / np.where(count > 0, count, 1.0)


def _log_norm(lp: np.ndarray) -> np.ndarray:
    """log Σ_k exp(lp) over the last axis (K), shifted by finite row maxima."""
    top = lp.max(axis=-1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top + np.log(np.exp(lp - top[..., None]).sum(axis=-1))


def _e_step(p: GMMParams, parts: Layout, w):
    """Completed statistics about the layout's centre c: nk (K,), sx (K, D), sxx in
    the table's layout ((K, D, D) or (K, D)), and Σ w log p(x_o).

    Per block, one matmul gives the sums of T(u) weighted by w r; given x_o and
    component k the completed row is affine in u, E[x - c | x_o, k] = a + A u, so per
    pattern its sums are nk a + A s1 and nk a aᵀ + a (A s1)ᵀ + (A s1) aᵀ + A s2 Aᵀ, plus
    nk times the conditional covariance."""
    K, D = p.n_components, p.n_features
    P = parts.observed.shape[0]
    tab = pattern_tables(p, parts.observed, parts.center)
    if isinstance(parts, Padded):
        sums, wll = _compiled_sums(tab.theta, parts)
    else:
        sums, wll = _host_sums(tab.theta, parts, w)
    F = sums.shape[-1]
    n, s1, s2 = moment_sums(sums.reshape(P * K, F), parts.center, "full", NUMPY)
    n, s1, s2 = n.reshape(P, K), s1.reshape(P, K, D), s2.reshape(P, K, D, D)
    As1 = (tab.A @ s1[..., None])[..., 0]  # (P, K, D)
    a = tab.a
    outer = a[..., :, None] * As1[..., None, :]
    sx = (n[..., None] * a + As1).sum(axis=0)
    sxx = (n[..., None, None] * (a[..., :, None] * a[..., None, :] + tab.covariance) + outer
           + np.swapaxes(outer, -1, -2) + tab.A @ s2 @ np.swapaxes(tab.A, -1, -2)).sum(axis=0)
    if not ops(p.covariance_type, NUMPY).full_moments:
        sxx = np.diagonal(sxx, axis1=-2, axis2=-1).copy()
    return n.sum(axis=0), sx, sxx, wll


def _host_sums(theta: np.ndarray, parts: Layout, w: np.ndarray) -> tuple[np.ndarray, float]:
    """(P, K, F) sums of T(u) weighted by w r per pattern and Σ w log p(x_o), block by
    block in NumPy."""
    P, K = theta.shape[0], theta.shape[-1]
    F = parts.blocks[0].features.shape[0]
    sums = np.zeros((P, K, F))
    wll = 0.0
    for b in parts.blocks:
        e = theta[b.pattern].T @ b.features  # (K, C) log w_k N(x_o | k)
        top = e.max(axis=0)
        top = np.where(np.isfinite(top), top, 0.0)
        e -= top
        np.exp(np.maximum(e, -700.0, out=e), out=e)  # clipped: no denormals (host engine)
        total = e.sum(axis=0)
        wb = w[b.rows]
        live = wb > 0
        wll += np.sum(np.where(live, wb * (top + np.log(total)), 0.0))
        e *= np.where(live & (total > 0), wb / np.where(total > 0, total, 1.0), 0.0)
        sums[b.pattern] += e @ b.features.T  # (K, F)
    return sums, wll


def _compiled_sums(theta: np.ndarray, parts: Padded) -> tuple[np.ndarray, float]:
    """:func:`_host_sums` compiled, over the padded blocks of :func:`padded_layout`
    (float64)."""
    from bayesgmm.validation import compute_scope

    with compute_scope(np.float64):
        sums, wll = _compiled_sums_program()(np.asarray(theta, np.float64), parts.levels)
    return np.asarray(sums), float(wll)


_PROGRAM: list = []


def _compiled_sums_program():
    """The jitted block loop (built on first use: this module imports JAX only here).

    One ``lax.scan`` per block size, one step per block of one pattern: its θ_p (F, K)
    by a dynamic index, the features T(u) (C, F), one (C, F) @ (F, K) matmul, the
    softmax over K with row maxima, one (K, C) @ (C, F) matmul for the sums, added to
    that pattern's row of the (P, K, F) total by a dynamic update (measured, N=2e5,
    D=8, K=16, 1024-row blocks: 77 ms an E-step, where ``.at[p].add``, a scatter,
    took 90-240 ms). Padding rows have weight 0 and u = 0 (finite features)."""
    if _PROGRAM:
        return _PROGRAM[0]
    import jax
    import jax.numpy as jnp

    from bayesgmm.compilation import jit
    from bayesgmm.covariance import HIGHEST
    from bayesgmm.density import moments_features

    def run(theta, levels):
        P, F, K = theta.shape
        D = levels[0][0].shape[1]
        zero_center = jnp.zeros((D,), theta.dtype)

        def body(carry, block):
            sums, wll = carry
            ub, wb, p = block
            T = moments_features(ub, zero_center, "full")  # (C, F)
            lp = jnp.matmul(T, theta[p], precision=HIGHEST)  # (C, K)
            top = jnp.max(lp, axis=1)  # K is axis 1; reduce it
            top = jnp.where(jnp.isfinite(top), top, 0.0)
            e = jnp.exp(lp - top[:, None])
            total = jnp.sum(e, axis=1)
            live = wb > 0
            wll = wll + jnp.sum(jnp.where(live, wb * (top + jnp.log(total)), 0.0))
            s = jnp.where(live & (total > 0), wb / jnp.where(total > 0, total, 1.0), 0.0)
            S = jnp.matmul(e.T, T * s[:, None], precision=HIGHEST)  # (K, F)
            row = jax.lax.dynamic_index_in_dim(sums, p, keepdims=False)
            return (jax.lax.dynamic_update_index_in_dim(sums, row + S, p, 0), wll), None

        carry = (jnp.zeros((P, K, F), theta.dtype), jnp.zeros((), theta.dtype))
        for u, w, block_pattern in levels:
            n_blocks = block_pattern.shape[0]
            blocks = (u.reshape(n_blocks, -1, D), w.reshape(n_blocks, -1), block_pattern)
            carry, _ = jax.lax.scan(body, carry, blocks)  # B is axis 0: a step per block
        return carry

    _PROGRAM.append(jit(run))
    return _PROGRAM[0]


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
    if fitting.stopped_collapsed(info.converged, info.n_iter, options):
        fitting.warn_singular(info, options, stacklevel=5)
    elif not bool(info.converged):
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            f"parameters, or increase max_iter (now {options.max_iter}) or tol (now "
            f"{options.tol:g}).", validation.ConvergenceWarning, stacklevel=4)
