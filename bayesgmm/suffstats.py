"""Sufficient statistics of EM: the one kernel behind in-memory, chunked, sharded and
streamed EM.

Glossary: N samples, D features, K components, C rows per chunk.

Design note (float32): the statistics are accumulated *centred on a shift* ``m_k``,
fixed for the whole pass (the means of the parameters the E-step used):
``sx_k = Σ w r (x - m_k)`` and ``sxx_k = Σ w r (x - m_k)(x - m_k)ᵀ``. Sums over chunks,
devices (``psum``) or a stream are exact, and the M-step's
``Σ_k = sxx_k / n_k - δ_k δ_kᵀ`` (``δ_k = sx_k / n_k``) never subtracts two large
numbers, unlike the textbook ``E[xxᵀ] - E[x]E[x]ᵀ`` that cancels to 0 in float32 for
data offset by 1e4. Padding rows carry weight 0, so any N can be chunked.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayesgmm._typing import Array
from bayesgmm.covariance import HIGHEST, ops
from bayesgmm.density import centred_log_prob
from bayesgmm.params import GMMParams

__all__ = [
    "SuffStats",
    "accumulate",
    "e_step_stats",
    "e_step_stats_chunked",
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
    shift: Array  # (K, D)  the centre; not summed (identical across chunks)
    sum_w: Array  # ()  Σ_n w_n
    sum_wll: Array  # ()  Σ_n w_n log p(x_n); the E-step's log-likelihood


def accumulate(Xc: Array, rw: Array, covariance_type: str) -> tuple[Array, Array, Array]:
    """(nk, sx, sxx) from centred data ``Xc (K, C, D)`` and weighted resp ``rw (C, K)``."""
    nk = jnp.sum(rw, axis=0)
    sx = jnp.einsum("nk,knd->kd", rw, Xc, precision=HIGHEST)
    sxx = ops(covariance_type).second_moment(rw, Xc)
    return nk, sx, sxx


def e_step_stats(params: GMMParams, X: Array, sample_weight: Array) -> SuffStats:
    """E-step on one block of rows: responsibilities, then statistics centred on μ.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``.
    X : array of shape (C, D)
    sample_weight : array of shape (C,)
        Non-negative; padding rows have weight 0.
    """
    log_prob, Xc = centred_log_prob(params, X)  # (C, K), (K, C, D)
    log_norm = logsumexp(log_prob, axis=1)  # K is axis 1; reduce it
    rw = jnp.exp(log_prob - log_norm[:, None]) * sample_weight[:, None]
    nk, sx, sxx = accumulate(Xc, rw, params.covariance_type)
    # A padded row (w=0) may still have log_norm = -inf in float32; mask, don't multiply.
    wll = jnp.where(sample_weight > 0, sample_weight * log_norm, 0.0)
    return SuffStats(nk, sx, sxx, params.means, jnp.sum(sample_weight), jnp.sum(wll))


def e_step_stats_chunked(params: GMMParams, X: Array, sample_weight: Array,
                         chunk_size: int) -> SuffStats:
    """E-step statistics summed over row chunks with ``lax.scan``: scratch memory is
    O(chunk_size · K · D) whatever N, and X is never copied.

    Each step reads rows ``[i·C, (i+1)·C)`` with ``dynamic_slice``; the last chunk's start
    is clamped to ``N - C``, and the rows it re-reads get weight 0.

    Parameters
    ----------
    X : array of shape (N, D)
    sample_weight : array of shape (N,)
    chunk_size : int
        Static; ``>= N`` means a single pass.
    """
    N = X.shape[0]
    if chunk_size >= N:
        return e_step_stats(params, X, sample_weight)
    n_chunks = -(-N // chunk_size)

    def body(acc, i):
        start = jnp.minimum(i * chunk_size, N - chunk_size)
        xs = jax.lax.dynamic_slice_in_dim(X, start, chunk_size)
        ws = jax.lax.dynamic_slice_in_dim(sample_weight, start, chunk_size)
        fresh = (start + jnp.arange(chunk_size, dtype=jnp.int32)) >= i * chunk_size
        return add(acc, e_step_stats(params, xs, jnp.where(fresh, ws, 0.0))), None

    zero = jax.tree_util.tree_map(
        jnp.zeros_like, jax.eval_shape(e_step_stats, params, X[:chunk_size],
                                       sample_weight[:chunk_size]))
    zero = zero._replace(shift=params.means)
    stats, _ = jax.lax.scan(body, zero, jnp.arange(n_chunks, dtype=jnp.int32))
    return stats


def recenter(stats: SuffStats, shift: Array) -> SuffStats:
    """The same statistics centred on a new ``shift (K, D)`` (exact):
    with d = old - new, ``sx' = sx + nk d`` and ``sxx' = sxx + sx dᵀ + d sxᵀ + nk d dᵀ``
    (diagonal forms for diag/spherical)."""
    d = stats.shift - shift
    nk = stats.nk[:, None]
    sx = stats.sx + nk * d
    if stats.sxx.ndim == 3:  # full / tied: (K, D, D)
        outer = lambda a, b: a[:, :, None] * b[:, None, :]
        sxx = stats.sxx + outer(stats.sx, d) + outer(d, stats.sx) + nk[..., None] * outer(d, d)
    else:  # diag / spherical: (K, D)
        sxx = stats.sxx + 2 * stats.sx * d + nk * d * d
    return stats._replace(sx=sx, sxx=sxx, shift=shift)


def scale(stats: SuffStats, factor) -> SuffStats:
    """Multiply every summed statistic by ``factor`` (the shift is unchanged)."""
    return SuffStats(stats.nk * factor, stats.sx * factor, stats.sxx * factor, stats.shift,
                     stats.sum_w * factor, stats.sum_wll * factor)


def stats_from_resp(
    X: Array, resp: Array, sample_weight: Array, covariance_type: str
) -> SuffStats:
    """Statistics for given responsibilities (initialisation): centred on their own means."""
    rw = resp * sample_weight[:, None]
    nk = jnp.sum(rw, axis=0) + 10 * jnp.finfo(X.dtype).eps
    shift = jnp.matmul(rw.T, X, precision=HIGHEST) / nk[:, None]
    Xc = X[None, :, :] - shift[:, None, :]
    nk, sx, sxx = accumulate(Xc, rw, covariance_type)
    zero = jnp.zeros((), X.dtype)
    return SuffStats(nk, sx, sxx, shift, jnp.sum(sample_weight), zero)


def add(a: SuffStats, b: SuffStats) -> SuffStats:
    """Sum two blocks' statistics (same shift)."""
    return SuffStats(
        a.nk + b.nk, a.sx + b.sx, a.sxx + b.sxx, a.shift, a.sum_w + b.sum_w, a.sum_wll + b.sum_wll
    )


def psum(stats: SuffStats, axis_name: str) -> SuffStats:
    """Sum statistics across devices inside ``shard_map``/``pmap`` (shift is replicated)."""
    summed = jax.lax.psum(stats._replace(shift=jnp.zeros_like(stats.shift)), axis_name)
    return summed._replace(shift=stats.shift)


def auto_chunk_size(n_samples: int, n_components: int, n_features: int, itemsize: int) -> int:
    """Rows per chunk so each (K, C, D) intermediate is about 8 MiB; all rows if that fits.

    Measured (N=2e5, D=8, K=32, float64, 2-core CPU): 8 MiB chunks ran 1.5x faster than
    64 MiB ones (11.2 vs 7.4 GFLOP/s); smaller chunks pay the scan's per-step overhead.
    """
    budget = 8 * 2**20
    per_row = max(1, n_components * n_features * itemsize)
    rows = max(256, budget // per_row)
    return int(min(n_samples, rows))
