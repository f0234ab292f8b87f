"""Sufficient statistics of EM: the one kernel behind in-memory, chunked, sharded and
streamed EM.

Glossary: N samples, D features, K components, C rows per chunk.

Three kernels compute the same statistics:

* ``"centred"``: per-component centred data ``X - μ_k`` (K, C, D), projected by each
  precision Cholesky factor (batched matmuls); exact for any offset.
* ``"moments"`` (float64 default): the exponential-family form. With one shared shift
  ``c`` (:func:`mixture_center`) and features ``T(x) = [1, x - c, (x - c)^{⊗2}]``
  (1 + D + D(D+1)/2 columns for full/tied, 1 + 2D for diag/spherical), the E-step's
  joint log-probabilities are one ``(C, F) @ (F, K)`` matmul and all statistics are one
  ``(K, C) @ (C, F)`` matmul: no (K, C, D) intermediate, and half the flops. It
  subtracts ``(|μ_k - c| / σ_k)²``-sized terms, so in float32 a compact cluster far
  from ``c`` would lose every digit: float32 takes it only through ``"guarded"``. Since ``c`` is fixed
  for a whole fit, so are the features: EM computes them once when they fit in
  :data:`FEATURE_CACHE_BYTES` (:func:`feature_cache`), and every iteration only reads
  them. diag keeps them in both layouts (:class:`FeatureTable`), so that the
  statistics' dot is ``(F, C) @ (C, K)``: XLA's CPU backend runs it in YNNPACK, where
  ``(C, K)ᵀ @ (C, F)`` went to Eigen with a transposed operand (its slowest part).
  In float32, diag keeps only ``x - c`` in both layouts (:class:`DataTable`)
  and squares it per chunk in cache: the same sums from less than half the memory, and
  faster there (slower in float64, which keeps the features). Isotropic types
  (spherical = VII, EII) keep ``[1, x - c, |x - c|²]`` (:class:`IsotropicTable`, D + 2
  columns) in both dtypes: their log-densities need only ``|x - c|²`` and their
  M-steps only the sum over D of the squares' statistics.
* ``"guarded"`` (float32 default): the moments form where it is exact, the centred
  form elsewhere, chosen before each pass from the parameters alone
  (:func:`moments_exact`, a ``lax.cond``): the moments form's round-off is about
  ``eps · ρ_k``, with ρ_k (:func:`moments_error`) the size of the terms it cancels near
  component k, about ``(|μ_k - c| / σ_k)²``. Well-conditioned fits run at the moments
  form's speed in float32; a compact component far from ``c`` sends the pass to the
  centred form, exact for any offset. All chunks, devices and stream blocks of a pass
  see the same parameters, so they take the same branch and their sums share a shift.
  Under ``vmap`` a ``cond`` with a batched predicate runs both branches, so vmapped
  restarts take one guard for all of them (``guard_axis``: a ``pmin`` over the vmap
  axis; the moments form only where it is exact for every restart), and other vmapped
  EM (bootstrap refits) the centred form (:mod:`bayesgmm.engines.jax`). Measured
  (N=2e5, D=8, K=16, 4 restarts, 10 iterations, float32, CPU time): full 3.70 -> 0.60
  s, diag 2.50 -> 0.51 s against the centred form.

Candidates measured for float32 (N=2e5, D=8, K=32, full, E-step CPU time on a loaded
2-core machine, same run): centred (2048-row chunks) 85 ms, centred (8192) 107 ms,
moments 35-38 ms; a "whitened" form, ``y_nk = L_k⁻¹(x_n - c) - L_k⁻¹(μ_k - c)`` as one
(C, D) @ (D, K·D) matmul minus a bias, scatter ``L (Σ r y yᵀ) Lᵀ``: 87 ms in a (K, C, D)
layout, 133 ms in (C, K·D), 490 ms with the products as features. The whitened form's
(C, K·D) intermediate is as large as the centred form's (K, C, D) one, so it is no
faster; hi/lo split features still round θ and the matmul's accumulation at
``eps · ρ``, so only a per-component-centred pass is exact for large ρ.

Design note (float32): the statistics are accumulated *centred on a shift* ``m_k``,
fixed for the whole pass (the means of the parameters the E-step used):
``sx_k = Σ w r (x - m_k)`` and ``sxx_k = Σ w r (x - m_k)(x - m_k)ᵀ``. Sums over chunks,
devices (``psum``) or a stream are exact, and the M-step's
``Σ_k = sxx_k / n_k - δ_k δ_kᵀ`` (``δ_k = sx_k / n_k``) never subtracts two large
numbers, unlike the textbook ``E[xxᵀ] - E[x]E[x]ᵀ`` that cancels to 0 in float32 for
data offset by 1e4. Padding rows carry weight 0, so any N can be chunked.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesgmm._typing import Array
from bayesgmm.covariance import HIGHEST, moment_sums, n_moment_features, ops
from bayesgmm.density import (
    JAX,
    centred_log_prob,
    data_center,
    log_prob_bound,
    mixture_center,
    moments_features,
    moments_theta,
)
from bayesgmm.density import KERNELS as _DENSITY_KERNELS
from bayesgmm.params import GMMParams

__all__ = [
    "KERNELS",
    "GUARD",
    "resolve_kernel",
    "moments_error",
    "moments_exact",
    "FEATURE_CACHE_BYTES",
    "FeatureTable",
    "DataTable",
    "IsotropicTable",
    "feature_table",
    "feature_cache",
    "SuffStats",
    "accumulate",
    "e_step_stats",
    "e_step_stats_chunked",
    "sum_over_chunks",
    "stats_from_resp",
    "add",
    "scale",
    "recenter",
    "psum",
    "auto_chunk_size",
]


class SuffStats(NamedTuple):
    """Weighted sufficient statistics, centred on ``shift``."""

    nk: Array  # (K,)  Σ_n w_n r_nk
    sx: Array  # (K, D)  Σ_n w_n r_nk (x_n - shift_k)
    sxx: Array  # full/tied (K, D, D); diag/spherical (K, D): Σ w r (x - shift_k)^{⊗2}
    # (from an IsotropicTable: Σ w r |x - shift_k|² / D in each of the D entries)
    shift: Array  # (K, D)  the centre; not summed (identical across chunks)
    sum_w: Array  # ()  Σ_n w_n
    sum_wll: Array  # ()  Σ_n w_n log p(x_n); the E-step's log-likelihood
    # rows (w > 0) whose exp underflowed under ``bound_shift`` (then recompute without)
    n_underflow: Array | int = 0


class FeatureTable(NamedTuple):
    """The moments features of all rows in both layouts (diag; see
    :func:`feature_table`).

    With the rows' layout alone the statistics' dot contracts the first axis of both
    operands, (K, C) @ (C, F) from ``(C, K)ᵀ`` and ``(C, F)``, which XLA's CPU backend
    hands to Eigen; with ``cols`` it is ``(F, C) @ (C, K)``, which it fuses with the
    E-step's dot, ``exp`` and row sums into one YNNPACK call. Measured (N=10⁶, D=8,
    K=32, one E-step's core on one pinned core, CPU time): see ``benchmarks/README.md``.
    """

    rows: Array  # (N, F)  T(x_n) per row
    cols: Array  # (F, N)  the same, transposed (contiguous along N)


class DataTable(NamedTuple):
    """The centred data ``x_n - c`` of all rows in both layouts: what float32
    diag EM keeps for a fit instead of a :class:`FeatureTable` (see
    :func:`feature_table`).

    Each chunk squares its rows in cache and runs the E-step as ``(x - c)² @ θ_quad +
    (x - c) @ θ_lin + θ_0`` and the statistics as ``Σ r``, ``(D, C) @ (C, K)`` and
    ``(D, C)² @ (C, K)``: the same sums as the feature table's (the same rounded
    ``x - c``, squared alike), from 2D numbers a row instead of 2(2D + 1). Measured
    (N=10⁶, D=8, K=32, one pinned core, CPU time, the chunk's core alone): float32
    35-41 ms against the table's 43-50 (one E-step, both alternating in one process:
    1.06-1.19x); float64 74-89 against 56-62, so float64 keeps the table
    (``benchmarks/README.md``, float32's "diag and spherical" and the candidates).
    """

    rows: Array  # (N, D)  x_n - c per row
    cols: Array  # (D, N)  the same, transposed (contiguous along N)


class IsotropicTable(NamedTuple):
    """The features ``[1, x - c, |x - c|²]`` of all rows in both layouts: what EM keeps
    for a fit of an isotropic type (one standard deviation per component: spherical =
    VII, and EII) instead of a :class:`FeatureTable` (float64; F = D + 2 columns instead
    of 2D + 1) or a :class:`DataTable` (float32; one dot each way instead of two).

    An isotropic component's quadratic natural parameters are one number, -½ σ_k⁻²,
    in each of the D squares' rows of θ, so its log-density needs only ``|x - c|²``,
    and its M-step only the sum over D of ``Σ w r (x - c)²``: the chunk's dots are
    ``(C, D + 2) @ (D + 2, K)`` and ``(D + 2, C) @ (C, K)``, and the statistics carry
    ``Σ w r |x - c|² / D`` in each of the D entries of ``sxx`` (the same sum over D, which
    is all that VII's and EII's M-steps, their MAP M-steps and :func:`recenter` read).
    Measured (N=10⁶, D=8, K=32, float64, one pinned core, CPU time): see
    ``benchmarks/README.md``, "diag and spherical".
    """

    rows: Array  # (N, D + 2)  [1, x_n - c, |x_n - c|²] per row
    cols: Array  # (D + 2, N)  the same, transposed (contiguous along N)


#: EM's E-step kernels (see the module note); ``"auto"`` resolves by dtype.
KERNELS = (*_DENSITY_KERNELS, "guarded")

#: The guarded kernel takes the moments form when ``eps · max_k ρ_k`` (ρ:
#: :func:`moments_error`) is at most this, the centred form otherwise. Measured (float32
#: moments fits against float64 from the same start, 15 iterations, one component of
#: standard deviation σ at distance 30 from two unit ones, D=3): eps·ρ = 4.6e-4 gave a
#: relative log-likelihood error of 1.2e-6 and covariances within 9e-5; 5e-3 gave 2.6e-5
#: (over the 1e-5 asked of well-conditioned data); 0.5 an infinite lower bound. The
#: centred form stayed within 6e-7 on covariances throughout.
GUARD = 2.0**-10


def resolve_kernel(kernel: str, dtype) -> str:
    """``"auto"`` is ``"moments"`` in float64 and ``"guarded"`` otherwise (module note);
    raises ``ValueError`` naming the valid kernels."""
    if kernel not in KERNELS:
        raise ValueError(f"Invalid value for 'kernel': {kernel!r}; 'kernel' should be in "
                         f"{KERNELS}")
    if kernel == "auto":
        return "moments" if jnp.dtype(dtype) == jnp.float64 else "guarded"
    return kernel


def moments_error(params: GMMParams, center: Array) -> Array:
    """ρ_k (K,): the size of the terms the moments form cancels for rows of component k,
    relative to the result, so that its round-off is about ``eps · ρ_k`` (in a
    log-density near μ_k, and relative in the M-step's covariance).

    ``ρ_k = Σ_ab |P_k,ab| · (|μ_k - c|² + tr Σ_k)``: the absolute sum of the precision's
    entries (the quadratic natural parameters; it bounds P_k's largest eigenvalue)
    times the mean squared size of ``x - c`` over the component. A compact component
    far from the shift (ρ ≈ (r/σ)²) and a very elongated one (ρ ≈ its condition
    number) are both large. Inactive components (weight 0) count 0.
    """
    theta = moments_theta(params, center)  # (F, K)
    K, D = params.n_components, params.n_features
    quad = 2 * jnp.sum(jnp.abs(theta[1 + D:]), axis=0)  # Σ_ab |P_ab| per component
    cov = ops(params.covariance_type, JAX).to_full_covariance(params.cov_factor, K, D)
    spread = jnp.trace(cov, axis1=-2, axis2=-1)  # (K,)
    reach = jnp.sum((params.means - center) ** 2, axis=-1) + spread
    return jnp.where(params.weights > 0, quad * reach, 0.0)


def moments_exact(params: GMMParams, center: Array) -> Array:
    """() bool: the moments form's round-off is within :data:`GUARD` for every component
    (``eps · max_k ρ_k <= GUARD``, :func:`moments_error`); False for non-finite
    parameters."""
    eps = jnp.finfo(params.means.dtype).eps
    return eps * jnp.max(moments_error(params, center)) <= GUARD


def accumulate(Xc: Array, rw: Array, covariance_type: str) -> tuple[Array, Array, Array]:
    """(nk, sx, sxx) from centred data ``Xc (K, C, D)`` and weighted resp ``rw (C, K)``."""
    nk = jnp.sum(rw, axis=0)
    sx = jnp.einsum("nk,knd->kd", rw, Xc, precision=HIGHEST)
    sxx = ops(covariance_type, JAX).second_moment(rw, Xc)
    return nk, sx, sxx


def _normalise(log_prob: Array, sample_weight: Array, bound: Array | None = None,
               use_bound: Array | bool = True,
               hard: Array | bool = False) -> tuple[Array, Array, Array, Array]:
    """(log p(x_n), e, s, n_underflow) from joint log-probabilities (C, K), with one
    ``exp`` over the (C, K) block (``logsumexp`` then ``exp`` takes two): the weighted
    responsibilities are ``w_n · p(z_n = k | x_n) = e_nk · s_n``, left as a product for
    the caller to form where it uses them (:func:`_feature_sums`).

    The ``exp`` is shifted by each row's maximum, or, given ``bound`` (a scalar upper
    bound on every entry, :func:`bayesgmm.density.log_prob_bound`) and ``use_bound``
    (a bool, possibly traced), by that bound: no max pass, no overflow, but a row far
    below the bound (a point many standard deviations from every component) may
    underflow. Such rows (w > 0, row sum below sqrt(tiny)) are counted, and the caller
    recomputes the block with row maxima.

    ``hard`` (a bool, possibly traced; needs row maxima, so not with ``use_bound``):
    each row's whole weight goes to its most probable component (split evenly between
    exact ties), as in a k-means assignment; ``log p`` is then meaningless.
    """
    def row_max():
        top = jnp.max(log_prob, axis=1)  # K is axis 1; reduce it
        return jnp.where(jnp.isfinite(top), top, 0.0)

    if bound is None or use_bound is False:
        top, use_bound = row_max(), False
    elif use_bound is True:
        top = jnp.broadcast_to(bound, log_prob.shape[:1])
    else:  # traced: the max pass runs only when asked for
        top = jax.lax.cond(use_bound, lambda: jnp.broadcast_to(bound, log_prob.shape[:1]),
                           row_max)
    e = jnp.exp(log_prob - top[:, None])
    if hard is not False:  # a select in the exp's fusion: no extra pass over the block
        e = jnp.where(hard, (log_prob >= top[:, None]).astype(e.dtype), e)
    return _row_sums(e, top, sample_weight, use_bound)


def _row_sums(e: Array, top: Array, sample_weight: Array,
              use_bound: Array | bool) -> tuple[Array, Array, Array, Array]:
    """(log p(x_n), e, s, n_underflow) from e = exp(log p(x_n, k) - top_n) (C, K): the
    second half of :func:`_normalise`."""
    total = jnp.sum(e, axis=1)  # K is axis 1; reduce it
    log_norm = top + jnp.log(total)
    live = sample_weight > 0
    s = jnp.where(live & (total > 0), sample_weight / total, 0.0)
    if use_bound is False:
        return log_norm, e, s, jnp.zeros((), jnp.int32)
    tiny = math.sqrt(float(jnp.finfo(total.dtype).tiny))
    n_under = jnp.sum(live & (total < tiny), dtype=jnp.int32)
    return log_norm, e, s, jnp.where(use_bound, n_under, 0)


def _feature_sums(e: Array, s: Array, T: Array) -> Array:
    """S = Σ_n e_nk s_n T_n (K, F) from e (C, K), s (C,) and features T (C, F).

    Measured against the (F, C) @ (C, K) layout of the scaled, transposed features
    (kept so by optimisation barriers; XLA otherwise folds the transposes back into
    this dot): 14% faster for the statistics of one diag E-step alone, but 9-11%
    slower for a whole float64 diag iteration and 50-70% slower for float32 full
    (N=10⁶, D=8, K=32, CPU time, side by side), so the plain form stays."""
    return jnp.matmul((e * s[:, None]).T, T, precision=HIGHEST)


def _wll(sample_weight: Array, log_norm: Array) -> Array:
    # A padded row (w=0) may still have log_norm = -inf in float32; mask, don't multiply.
    return jnp.sum(jnp.where(sample_weight > 0, sample_weight * log_norm, 0.0))


def _centred_stats(params: GMMParams, X: Array, sample_weight: Array,
                   hard: Array | bool = False) -> SuffStats:
    log_prob, Xc = centred_log_prob(params, X)  # (C, K), (K, C, D)
    log_norm, e, s, n_under = _normalise(log_prob, sample_weight, hard=hard)
    nk, sx, sxx = accumulate(Xc, e * s[:, None], params.covariance_type)
    return SuffStats(nk, sx, sxx, params.means, jnp.sum(sample_weight),
                     _wll(sample_weight, log_norm), n_under)


def _moment_stats(S: Array, center: Array, covariance_type: str):
    """(nk, sx, sxx, shift) from the sums of features S (K, F) (T = [1, x - c,
    products], weighted by w r)."""
    K, D = S.shape[0], center.shape[-1]
    return (*moment_sums(S, center, covariance_type, JAX), jnp.broadcast_to(center, (K, D)))


def _moments_stats(params: GMMParams, T: Array, sample_weight: Array,
                   center: Array, bound_shift: bool | Array = False,
                   hard: Array | bool = False, Tt: Array | None = None) -> SuffStats:
    """The exponential-family form: log p(x, k) = T(x) θ_k with
    T(x) = [1, x - c, (x - c)^{⊗2}] (``T``: :func:`moments_features` of the rows), so
    the E-step is one (C, F) @ (F, K) matmul and the statistics are one (K, C) @ (C, F)
    matmul; no (K, C, D) intermediate.

    ``Tt`` (F, C): the same features transposed (a :class:`FeatureTable`'s ``cols``);
    the statistics are then ``Tt @ (e · s)``, (F, C) @ (C, K), a plain matmul that
    XLA's CPU backend fuses with the E-step's dot, ``exp`` and row sums into one
    library call (see :class:`FeatureTable`)."""
    log_prob = lambda theta: jnp.matmul(T, theta, precision=HIGHEST)
    if Tt is None:
        sums = lambda e, s: _feature_sums(e, s, T)
    else:  # (F, C) @ (C, K); the barrier keeps XLA from folding the transpose back in
        sums = lambda e, s: jax.lax.optimization_barrier(
            jnp.matmul(Tt, e * s[:, None], precision=HIGHEST)).T
    return _natural_stats(params, log_prob, sums, sample_weight, center, bound_shift, hard)


def _isotropic_stats(params: GMMParams, T: Array, Tt: Array, sample_weight: Array,
                     center: Array, bound_shift: bool | Array = False,
                     hard: Array | bool = False) -> SuffStats:
    """:func:`_moments_stats` of an isotropic type from an :class:`IsotropicTable`'s
    chunk, ``T = [1, x - c, |x - c|²]`` (C, D + 2) and its transpose ``Tt``: θ's first
    D + 2 rows (the constant, the D linear rows and the first squares' row, equal to
    every other squares' row) give the log-densities; the sums come back in T's
    ``[1, x - c, (x - c)²]`` columns with ``Σ r |x - c|² / D`` in each square's."""
    D = T.shape[1] - 2

    def sums(e, s):  # (D + 2, C) @ (C, K); the barrier keeps this layout (YNNPACK)
        S = jax.lax.optimization_barrier(jnp.matmul(Tt, e * s[:, None], precision=HIGHEST)).T
        return jnp.concatenate([S[:, :1 + D], jnp.broadcast_to(S[:, 1 + D:] / D,
                                                              (S.shape[0], D))], axis=1)

    return _natural_stats(params, lambda theta: jnp.matmul(T, theta[:D + 2], precision=HIGHEST),
                          sums, sample_weight, center, bound_shift, hard)


def _data_stats(params: GMMParams, U: Array, Ut: Array, sample_weight: Array,
                center: Array, bound_shift: bool | Array = False,
                hard: Array | bool = False) -> SuffStats:
    """:func:`_moments_stats` of diag from a :class:`DataTable`'s chunk,
    ``U = x - c`` (C, D) and its transpose ``Ut`` (D, C): the squares are made in cache,
    the E-step is ``U² @ θ_quad + U @ θ_lin`` (+ θ_0) and the statistics ``Σ_n r``,
    ``Ut @ r`` and ``Ut² @ r`` (r = e · s, (C, K)), stacked as T's columns
    ``[1, x - c, (x - c)²]``."""
    D = U.shape[1]

    def log_prob(theta):  # θ's rows: the constant, D linear, D squares (T's columns)
        return (jnp.matmul(U * U, theta[1 + D:], precision=HIGHEST)
                + jnp.matmul(U, theta[1:1 + D], precision=HIGHEST) + theta[0])

    def sums(e, s):
        r = e * s[:, None]
        # the barriers keep each (D, C) @ (C, K) dot in this layout (YNNPACK)
        lin = jax.lax.optimization_barrier(jnp.matmul(Ut, r, precision=HIGHEST))
        sq = jax.lax.optimization_barrier(jnp.matmul(Ut * Ut, r, precision=HIGHEST))
        return jnp.concatenate([jnp.sum(r, axis=0)[None], lin, sq], axis=0).T  # (K, F)

    return _natural_stats(params, log_prob, sums, sample_weight, center, bound_shift, hard)


def _natural_stats(params: GMMParams, log_prob, sums, sample_weight: Array, center: Array,
                   bound_shift: bool | Array, hard: Array | bool) -> SuffStats:
    """The moments form's pass over one chunk, given ``log_prob(θ) -> (C, K)`` (the
    joint log-densities for natural parameters θ (F, K)) and ``sums(e, s) -> (K, F)``
    (Σ_n e_nk s_n T_n; see :func:`_normalise`)."""
    theta = moments_theta(params, center)
    bound = None if bound_shift is False else log_prob_bound(params)
    if bound_shift is True and hard is False:  # the bound in θ's constant row (T_n0 = 1)
        e = jnp.exp(log_prob(theta.at[0].add(-bound)))
        top = jnp.broadcast_to(bound, sample_weight.shape)
        log_norm, e, s, n_under = _row_sums(e, top, sample_weight, True)
    else:
        log_norm, e, s, n_under = _normalise(log_prob(theta), sample_weight, bound,
                                             bound_shift, hard)
    nk, sx, sxx, shift = _moment_stats(sums(e, s), center, params.covariance_type)
    return SuffStats(nk, sx, sxx, shift, jnp.sum(sample_weight), _wll(sample_weight, log_norm),
                     n_under)


def e_step_stats(params: GMMParams, X: Array, sample_weight: Array, *,
                 kernel: str = "auto", center: Array | None = None,
                 bound_shift: bool | Array = False, hard: bool | Array = False) -> SuffStats:
    """E-step on one block of rows: responsibilities, then weighted statistics.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``.
    X : array of shape (C, D)
    sample_weight : array of shape (C,)
        Non-negative; padding rows have weight 0.
    kernel : {"auto", "centred", "moments", "guarded"}
        Static. See the module note.
    center : array of shape (D,), optional
        The moments (and guarded) kernel's shift; :func:`mixture_center` of ``params`` by default.
        Blocks that are summed must share it.
    bound_shift : bool or traced bool
        Moments kernel only. Shift the ``exp`` by a bound, not each row's maximum (see
        ``_normalise``; a traced flag chooses at run time, from one compiled pass, and
        static ``False`` compiles no bound at all); rows that underflow are counted in
        ``n_underflow``, and the statistics are then wrong: recompute without it
        (:func:`bayesgmm.engines.jax.e_step` does).
    hard : bool or traced bool
        Give each row wholly to its most probable component (with equal weights and
        identity covariances, its nearest mean: k-means' assignment). Needs row maxima:
        pass ``bound_shift`` False where ``hard`` may be True.
    """
    kernel = resolve_kernel(kernel, X.dtype)
    if kernel == "centred":
        return _centred_stats(params, X, sample_weight, hard)
    center = mixture_center(params) if center is None else center
    if kernel == "guarded":  # both branches share the statistics' structure
        return jax.lax.cond(
            moments_exact(params, center),
            lambda: e_step_stats(params, X, sample_weight, kernel="moments", center=center,
                                 bound_shift=bound_shift, hard=hard),
            lambda: _centred_stats(params, X, sample_weight, hard))
    T = moments_features(X, center, params.covariance_type)
    return _moments_stats(params, T, sample_weight, center, bound_shift, hard)


def sum_over_chunks(block, rows: tuple, sample_weight: Array, chunk_size: int, *,
                    add=None, zero=None, axes: tuple[int, ...] | None = None):
    """``block(*row_chunks, weight_chunk)`` summed over chunks of rows with ``lax.scan``:
    scratch memory is O(chunk_size) whatever N, and the arrays are never copied.

    Each step reads rows ``[i·C, (i+1)·C)`` of every array in ``rows`` (each (N, ...),
    or with N on the axis ``axes`` names for it: (F, N) for a transposed table) and of
    ``sample_weight (N,)`` with ``dynamic_slice``; the last chunk's start is clamped to
    ``N - C``, and the rows it re-reads get weight 0, so ``block`` must give
    zero-weight rows no weight. ``chunk_size`` is static; ``>= N`` is a single call.
    ``add`` (default: leafwise ``+``) and ``zero`` (default: zeros shaped like the
    block's result) define the sum.
    """
    N = sample_weight.shape[0]
    if chunk_size >= N:
        return block(*rows, sample_weight)
    add = add or (lambda a, b: jax.tree_util.tree_map(jnp.add, a, b))
    n_chunks = -(-N // chunk_size)
    axes = axes or (0,) * len(rows)

    def body(acc, i):
        start = jnp.minimum(i * chunk_size, N - chunk_size)
        part = [jax.lax.dynamic_slice_in_dim(a, start, chunk_size, axis=ax)
                for a, ax in zip(rows, axes)]
        ws = jax.lax.dynamic_slice_in_dim(sample_weight, start, chunk_size)
        fresh = (start + jnp.arange(chunk_size, dtype=jnp.int32)) >= i * chunk_size
        return add(acc, block(*part, jnp.where(fresh, ws, 0.0))), None

    if zero is None:
        shape = jax.eval_shape(block, *[jax.lax.slice_in_dim(a, 0, chunk_size, axis=ax)
                                        for a, ax in zip(rows, axes)],
                               sample_weight[:chunk_size])
        zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shape)
    total, _ = jax.lax.scan(body, zero, jnp.arange(n_chunks, dtype=jnp.int32))
    return total


def e_step_stats_chunked(params: GMMParams, X: Array, sample_weight: Array,
                         chunk_size: int, *, kernel: str = "auto",
                         center: Array | None = None, bound_shift: bool | Array = False,
                         features: Array | None = None,
                         hard: bool | Array = False, guard_axis: str | None = None) -> SuffStats:
    """E-step statistics summed over row chunks (:func:`sum_over_chunks`): scratch
    memory is O(chunk_size · (K · D + D²)) whatever N, and X is never copied.

    Parameters
    ----------
    X : array of shape (N, D)
    sample_weight : array of shape (N,)
    chunk_size : int
        Static; ``>= N`` means a single pass.
    kernel, center, bound_shift, hard
        As in :func:`e_step_stats`.
    guard_axis : str, optional
        Guarded kernel under ``vmap``: the vmapped axis's name. The guard is then one
        for every member (the moments form only if it is exact for all of them), so
        the ``cond`` keeps one branch per pass instead of running both.
    features : array of shape (N, F) or FeatureTable, optional
        Moments kernel: :func:`moments_features` of all of ``X`` for this ``center``,
        computed once (:func:`feature_cache`; for diag/spherical in both layouts,
        :class:`FeatureTable`); chunks then read them instead of ``X``.
    """
    kernel = resolve_kernel(kernel, X.dtype)
    if kernel in ("moments", "guarded") and center is None:
        center = mixture_center(params)  # one shift for every chunk
    if kernel == "guarded":
        # One choice for the whole pass (the parameters decide), so the chunks' sums
        # share a shift; the centred branch takes its own, smaller chunks.
        N, D = X.shape
        exact_chunk = min(chunk_size, auto_chunk_size(N, params.n_components, D,
                                                      X.dtype.itemsize, "centred"))
        exact = moments_exact(params, center)
        if guard_axis is not None:  # all members of the vmapped batch agree
            exact = jax.lax.pmin(exact.astype(jnp.int32), guard_axis) > 0
        return jax.lax.cond(
            exact,
            lambda: e_step_stats_chunked(params, X, sample_weight, chunk_size,
                                         kernel="moments", center=center,
                                         bound_shift=bound_shift, features=features,
                                         hard=hard),
            lambda: e_step_stats_chunked(params, X, sample_weight, exact_chunk,
                                         kernel="centred", hard=hard))
    if (isinstance(features, (FeatureTable, DataTable, IsotropicTable))
            and not isinstance(bound_shift, bool)):
        # The traced choice of the shift made once for the pass, not in every chunk: a
        # cond inside the chunk splits its fused kernel. The bound's pass is not hard
        # (``hard`` needs row maxima; callers pass a traced bound_shift that is False
        # whenever hard is True, as :func:`bayesgmm.engines.jax.e_step` does).
        def pass_with(use_bound, hard):
            return e_step_stats_chunked(params, X, sample_weight, chunk_size, kernel=kernel,
                                        center=center, bound_shift=use_bound,
                                        features=features, hard=hard)

        return jax.lax.cond(bound_shift, lambda: pass_with(True, False),
                            lambda: pass_with(False, hard))
    axes = None
    if isinstance(features, FeatureTable):  # both layouts of T, chunked alike
        rows, axes = (features.rows, features.cols), (0, 1)
        block = lambda ts, tts, ws: _moments_stats(params, ts, ws, center, bound_shift,
                                                   hard, tts)
    elif isinstance(features, IsotropicTable):  # both layouts of [1, x - c, |x - c|²]
        rows, axes = (features.rows, features.cols), (0, 1)
        block = lambda ts, tts, ws: _isotropic_stats(params, ts, tts, ws, center, bound_shift,
                                                     hard)
    elif isinstance(features, DataTable):  # both layouts of x - c; squares per chunk
        rows, axes = (features.rows, features.cols), (0, 1)
        block = lambda us, uts, ws: _data_stats(params, us, uts, ws, center, bound_shift,
                                                hard)
    elif features is not None:  # rows of T instead of rows of X
        rows = (features,)
        block = lambda ts, ws: _moments_stats(params, ts, ws, center, bound_shift, hard)
    else:
        rows = (X,)
        block = lambda xs, ws: e_step_stats(params, xs, ws, kernel=kernel, center=center,
                                            bound_shift=bound_shift, hard=hard)
    if chunk_size >= X.shape[0]:
        return block(*rows, sample_weight)
    shape = jax.eval_shape(block, *[jax.lax.slice_in_dim(a, 0, chunk_size, axis=ax)
                                    for a, ax in zip(rows, axes or (0,) * len(rows))],
                           sample_weight[:chunk_size])
    # the centred kernel's statistics are about each component's mean, whatever center
    shift = (params.means if kernel == "centred"
             else jnp.broadcast_to(center, params.means.shape))
    zero = jax.tree_util.tree_map(jnp.zeros_like, shape)._replace(shift=shift)
    return sum_over_chunks(block, rows, sample_weight, chunk_size, add=add, zero=zero,
                           axes=axes)


def recenter(stats: SuffStats, shift: Array, covariance_type: str) -> SuffStats:
    """The same statistics centred on a new ``shift (K, D)`` (exact):
    with d = old - new, ``sx' = sx + nk d`` and ``sxx' = sxx + sx dᵀ + d sxᵀ + nk d dᵀ``
    (diagonal forms for diag/spherical: the table's ``shift_second``)."""
    d = stats.shift - shift
    sxx = ops(covariance_type, JAX).shift_second(stats.sxx, stats.sx, d, stats.nk)
    return stats._replace(sx=stats.sx + stats.nk[:, None] * d, sxx=sxx, shift=shift)


def scale(stats: SuffStats, factor) -> SuffStats:
    """Multiply every summed statistic by ``factor`` (the shift is unchanged)."""
    return SuffStats(stats.nk * factor, stats.sx * factor, stats.sxx * factor, stats.shift,
                     stats.sum_w * factor, stats.sum_wll * factor, stats.n_underflow)


def stats_from_resp(
    X: Array, resp: Array, sample_weight: Array, covariance_type: str, kernel: str = "auto",
    chunk_size: int | None = None,
) -> SuffStats:
    """Statistics for given responsibilities ``resp (N, K)`` (initialisation), summed over
    row chunks (:func:`sum_over_chunks`; ``chunk_size`` static, ``None`` picks one from
    the shapes), so no (N, F) feature table or (K, N, D) block is materialised. Moments
    kernel (float64 default): centred on the weighted data mean; centred kernel: on
    each component's own mean."""
    N, D = X.shape
    K = resp.shape[1]
    kernel = resolve_kernel(kernel, X.dtype)
    kernel = "centred" if kernel == "guarded" else kernel  # once per fit: take the exact one
    chunk_size = chunk_size or auto_chunk_size(N, K, D, X.dtype.itemsize, kernel)
    if kernel == "moments":
        center = data_center(X, sample_weight)
        shift = jnp.broadcast_to(center, (K, D))

        def block(xs, rs, ws):
            T = moments_features(xs, center, covariance_type)
            return _moment_stats(_feature_sums(rs, ws, T), center, covariance_type)[:3]
    else:
        nk = jnp.matmul(sample_weight, resp, precision=HIGHEST) + 10 * jnp.finfo(X.dtype).eps
        shift = jnp.matmul((resp * sample_weight[:, None]).T, X, precision=HIGHEST) / nk[:, None]

        def block(xs, rs, ws):
            return accumulate(xs[None, :, :] - shift[:, None, :], rs * ws[:, None],
                              covariance_type)
    nk, sx, sxx = sum_over_chunks(block, (X, resp), sample_weight, chunk_size)
    zero = jnp.zeros((), X.dtype)
    return SuffStats(nk, sx, sxx, shift, jnp.sum(sample_weight), zero)


def add(a: SuffStats, b: SuffStats) -> SuffStats:
    """Sum two blocks' statistics (same shift)."""
    return SuffStats(
        a.nk + b.nk, a.sx + b.sx, a.sxx + b.sxx, a.shift, a.sum_w + b.sum_w, a.sum_wll + b.sum_wll,
        a.n_underflow + b.n_underflow,
    )


def psum(stats: SuffStats, axis_name: str) -> SuffStats:
    """Sum statistics across devices inside ``shard_map``/``pmap`` (shift is replicated)."""
    summed = jax.lax.psum(stats._replace(shift=jnp.zeros_like(stats.shift)), axis_name)
    return summed._replace(shift=stats.shift)


#: Largest feature table (N x F x itemsize bytes) EM keeps for a whole fit. Measured
#: (N=1e6, D=8, K=32, float64, 360 MB table, 2-core CPU): 16% less time per iteration
#: than recomputing the features in every chunk. Above it, memory stays O(chunk).
FEATURE_CACHE_BYTES = 512 * 2**20


def keeps_feature_table(X: Array, covariance_type: str, kernel: str,
                        cache: bool | None = None) -> bool:
    """Whether EM keeps the moments features of all rows for a fit: not for the centred
    kernel or ``cache=False``, and (``cache=None``) not for a table over
    :data:`FEATURE_CACHE_BYTES` (both layouts counted where :func:`feature_table`
    keeps two)."""
    if kernel not in ("moments", "guarded") or cache is False:
        return False
    full = ops(covariance_type).full_moments
    D = X.shape[1]
    F = (2 * D if _keeps_data(X.dtype, covariance_type)
         else 2 * (D + 2) if _isotropic(covariance_type)
         else n_moment_features(D, full) * (1 if full else 2))
    return cache is True or X.shape[0] * F * X.dtype.itemsize <= FEATURE_CACHE_BYTES


def _keeps_data(dtype, covariance_type: str) -> bool:
    """Whether EM keeps a :class:`DataTable` (the centred data, squared per chunk) rather
    than the features: diag below float64, where it is the faster of the two (measured;
    see :class:`DataTable`). Isotropic types keep their D + 2 features in either dtype
    (:class:`IsotropicTable`: faster than the DataTable in float32 too)."""
    return (not ops(covariance_type).full_moments and not _isotropic(covariance_type)
            and jnp.dtype(dtype).itemsize < jnp.dtype(jnp.float64).itemsize)


def _isotropic(covariance_type: str) -> bool:
    """Whether a type's factor is one number per component (its component axis is the
    factor's last: spherical = VII, and EII), so that its E-step needs only
    ``|x - c|²`` and its M-step only the sum over D of the squares' statistics
    (:class:`IsotropicTable`)."""
    table = ops(covariance_type)
    return not table.full_moments and table.component_axis == -1


def feature_table(X: Array, center: Array, covariance_type: str
                  ) -> Array | FeatureTable | DataTable | IsotropicTable:
    """The moments features of all rows (:func:`moments_features`) as EM keeps them for
    a fit: one (N, F) array for full/tied, a :class:`FeatureTable` (both layouts) for
    diag in float64, a :class:`DataTable` (``x - c`` in both layouts, squared per
    chunk) for diag in float32, and an :class:`IsotropicTable` (``[1, x - c,
    |x - c|²]``, both layouts) for spherical (and EII) in either dtype."""
    if _keeps_data(X.dtype, covariance_type):
        U = X - center
        # the barrier keeps Uᵀ a table of its own, as for FeatureTable below
        return DataTable(U, jax.lax.optimization_barrier(U.T))
    if _isotropic(covariance_type):
        U = X - center
        ones = jnp.ones((U.shape[0], 1), U.dtype)
        # one (N, D + 2) array (as moments_features), and its transpose a table of its own
        T = jax.lax.optimization_barrier(
            jnp.concatenate([ones, U, jnp.sum(U * U, axis=1, keepdims=True)], axis=1))
        return IsotropicTable(T, jax.lax.optimization_barrier(T.T))
    T = moments_features(X, center, covariance_type)
    if ops(covariance_type).full_moments:
        return T
    # the barrier keeps Tᵀ a table of its own (XLA would fold the transpose into the dot)
    return FeatureTable(T, jax.lax.optimization_barrier(T.T))


def feature_cache(X: Array, center: Array | None, covariance_type: str, kernel: str,
                  cache: bool | None = None
                  ) -> Array | FeatureTable | DataTable | IsotropicTable | None:
    """The moments features of all rows for a fit with fixed ``center``
    (:func:`feature_table`), or None where :func:`keeps_feature_table` says no."""
    if not keeps_feature_table(X, covariance_type, kernel, cache):
        return None
    return feature_table(X, center, covariance_type)


def auto_chunk_size(n_samples: int, n_components: int, n_features: int, itemsize: int,
                    kernel: str = "centred") -> int:
    """Rows per chunk; all rows if they fit.

    Centred kernel: each (K, C, D) projection is about 8 MiB. Measured (N=2e5, D=8, K=32,
    float64, 2-core CPU): 1.5x faster than 64 MiB (11.2 vs 7.4 GFLOP/s). Moments kernel:
    the features (C, 1 + D + D(D+1)/2; sized for full covariance whatever the type) plus
    two (C, K) blocks are about 16 MiB. Measured
    (N=1e6, D=8, K=32): 16k-row chunks 248 ms/iteration, 4k-row chunks 290 ms.
    Smaller chunks pay the scan's per-step overhead. The row count is a multiple of
    256: an odd count misaligns every block (measured, moments kernel, same shapes:
    19239-row chunks 282 ms/iteration, 19418 rows 214 ms).

    The rows are then spread evenly over the chunks the budget needs: the last chunk
    re-reads rows of the one before (with weight 0), and 24576-row chunks over 10^5
    rows would re-read 23% of them (measured, N=1e5, D=8, K=20, float64: E-step 16.1
    -> 13.1 ms with 20224-row chunks).
    """
    D, K = n_features, n_components
    moments = kernel in ("moments", "guarded")  # guarded: the moments branch's chunks
    budget = (16 if moments else 8) * 2**20
    width = (n_moment_features(D, True) + 2 * K) if moments else K * D
    rows = max(256, budget // max(1, width * itemsize) // 256 * 256)
    if n_samples <= rows:
        return int(n_samples)
    n_chunks = -(-n_samples // rows)
    even = -(-n_samples // n_chunks)  # ceil(N / n_chunks), then up to a multiple of 256
    return int(min(n_samples, -(-even // 256) * 256))
