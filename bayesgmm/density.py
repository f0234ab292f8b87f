"""Densities of a Gaussian mixture: log-probabilities, responsibilities, sampling.

Glossary: N samples, D features, K components, B = ``params.batch_shape``.

Each public function is written for one parameter set and lifted over the batch dims
``B`` with ``vmap`` (see :func:`bayesgmm.params.vmap_batch`), so an EM fit, ``n_init``
restarts and ``(chain, draw)`` posterior draws all go through the same code.

Numerics: in float32, samples are centred on each component's mean before any product
(``Xc = X - μ_k``), so float32 stays accurate for data far from the origin. In float64
the log-probabilities use the faster exponential-family form of
:func:`moments_log_prob`, the same kernel EM uses there. The normaliser over K is a
log-sum-exp.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayesgmm._typing import Array, PRNGKey
from bayesgmm._xp import namespace
from bayesgmm.covariance import HIGHEST, moment_features, moment_theta, ops
from bayesgmm.params import GMMParams, register_pytree, vmap_batch

__all__ = [
    "component_log_prob",
    "log_resp",
    "score_samples",
    "predict_proba",
    "predict",
    "sample",
    "centred_log_prob",
    "moments_log_prob",
    "moments_features",
    "moments_theta",
    "log_prob_bound",
    "mixture_center",
    "data_center",
]

register_pytree()  # GMMParams is a pytree wherever this module runs (it imports JAX)
JAX = namespace("jax")  # the table's functions bound to jax.numpy: traced, HIGHEST matmuls


def centred_log_prob(params: GMMParams, X: Array) -> tuple[Array, Array]:
    """Joint log p(x_n, z_n = k) for one parameter set, and the centred data it used.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``.
    X : array of shape (N, D)

    Returns
    -------
    log_prob : array of shape (N, K)
        ``log w_k + log N(x_n | μ_k, Σ_k)``.
    Xc : array of shape (K, N, D)
        ``X - μ_k`` per component; EM reuses it for the second moments.
    """
    table = ops(params.covariance_type, JAX)
    K, D = params.n_components, params.n_features
    prec_chol = table.to_precision_cholesky(params.cov_factor)
    Xc = X[None, :, :] - params.means[:, None, :]  # (K, N, D)
    maha = table.mahalanobis(Xc, prec_chol)  # (N, K)
    log_det = table.log_det_precision_cholesky(prec_chol, K, D)  # (K,)
    log_gauss = -0.5 * (D * math.log(2 * math.pi) + maha) + log_det
    return log_gauss + jnp.log(params.weights), Xc


KERNELS = ("auto", "centred", "moments")


def resolve_kernel(kernel: str, dtype) -> str:
    """``"auto"`` is ``"moments"`` in float64 and ``"centred"`` otherwise (see
    :mod:`bayesgmm.suffstats`); raises ``ValueError`` naming the valid kernels."""
    if kernel not in KERNELS:
        raise ValueError(f"Invalid value for 'kernel': {kernel!r}; 'kernel' should be in "
                         f"{KERNELS}")
    if kernel == "auto":
        return "moments" if jnp.dtype(dtype) == jnp.float64 else "centred"
    return kernel


def mixture_center(params: GMMParams) -> Array:
    """Σ_k w_k μ_k (D,): the one shift of the moments kernel (close to the data mean)."""
    return jnp.matmul(params.weights, params.means, precision=HIGHEST)


def data_center(X: Array, sample_weight: Array) -> Array:
    """The weighted data mean (D,): the moments kernel's shift where no parameters set it
    (initial statistics, criteria of many parameter sets, a sweep's feature table)."""
    return jnp.matmul(sample_weight, X, precision=HIGHEST) / jnp.sum(sample_weight)


def _log_det_precision(params: GMMParams) -> Array:
    """log|U_k| (K,), U_k the precision Cholesky factor: with log w_k, each component's
    log-density at its own mean, up to -D/2 log 2π."""
    return ops(params.covariance_type, JAX).log_det_precision(
        params.cov_factor, params.n_components, params.n_features)


def moments_features(X: Array, center: Array, covariance_type: str) -> Array:
    """The moments kernel's features ``T(x) = [1, x - c, (x - c)^{⊗2}]``, (N, F): the
    products x_a x_b, a <= b, for full/tied; the squares for diag/spherical
    (:func:`bayesgmm.covariance.moment_features` over jax.numpy)."""
    # The barrier keeps T one (N, F) array. Without it XLA splits the matmul of a
    # concatenation into one dot per part, the products' dot in a transposed layout
    # (measured, N=1e6, D=8, K=32, float64: E-step 282 -> 211 ms).
    return jax.lax.optimization_barrier(moment_features(X, center, covariance_type, JAX))


def moments_theta(params: GMMParams, center: Array) -> Array:
    """Natural parameters θ (F, K) with ``log p(x, z = k) = T(x) θ_k`` for the features of
    :func:`moments_features`; the first row is each component's constant term
    (:func:`bayesgmm.covariance.moment_theta` over jax.numpy)."""
    return moment_theta(params.weights, params.means, params.cov_factor, center,
                        params.covariance_type, JAX)


def moments_log_prob(params: GMMParams, X: Array, center: Array) -> tuple[Array, Array]:
    """Joint log p(x_n, z_n = k) in exponential-family form, and the features it used.

    ``log p(x, k) = T(x) θ_k`` (:func:`moments_features`, :func:`moments_theta`): one
    ``(N, F) @ (F, K)`` matmul, with no (K, N, D) intermediate. Exact algebra, but it
    subtracts terms of size ``(|μ_k - c| / σ_k)²``, so it is the float64 default only
    (see :mod:`bayesgmm.suffstats`).

    Returns
    -------
    log_prob : array of shape (N, K)
    T : array of shape (N, F)
    """
    T = moments_features(X, center, params.covariance_type)
    return jnp.matmul(T, moments_theta(params, center), precision=HIGHEST), T


def log_prob_bound(params: GMMParams) -> Array:
    """max_k of ``log w_k + log N(μ_k | μ_k, Σ_k)``: an upper bound on every joint
    log p(x, z = k), whatever x. EM's moments kernel shifts its ``exp`` by it instead of
    by each row's maximum (one pass over the (C, K) block fewer)."""
    log_peak = _log_det_precision(params) + jnp.log(params.weights)
    return jnp.max(log_peak) - 0.5 * params.n_features * math.log(2 * math.pi)


def _joint_log_prob(params: GMMParams, X: Array) -> Array:
    """(N, K) joint log-probabilities by the dtype's default kernel, as EM uses."""
    if resolve_kernel("auto", X.dtype) == "moments":
        return moments_log_prob(params, X, mixture_center(params))[0]
    return centred_log_prob(params, X)[0]


def component_log_prob(params: GMMParams, X: Array) -> Array:
    """Joint log p(x_n, z_n = k | θ).

    Parameters
    ----------
    params : GMMParams
        Batch shape ``B``.
    X : array of shape (N, D)

    Returns
    -------
    array of shape (*B, N, K)
    """
    fn = lambda p: _joint_log_prob(p, X)
    return vmap_batch(fn, len(params.batch_shape))(params)


def log_resp(params: GMMParams, X: Array) -> tuple[Array, Array]:
    """Log responsibilities log p(z_n = k | x_n) and per-sample log density.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``B``; ``()`` for one fit, ``(n_init,)`` or ``(chain, draw)``.
    X : array of shape (N, D)
        float32 or float64; results keep this dtype.

    Returns
    -------
    log_resp : array of shape (*B, N, K)
        Normalised over K with log-sum-exp; ``exp`` sums to 1 on the last axis.
    log_norm : array of shape (*B, N)
        log p(x_n), the per-sample score.

    See Also
    --------
    component_log_prob : the unnormalised (*B, N, K) term.
    """
    lp = component_log_prob(params, X)
    log_norm = logsumexp(lp, axis=-1)  # K is the last axis; reduce it
    return lp - log_norm[..., None], log_norm


def score_samples(params: GMMParams, X: Array) -> Array:
    """log p(x_n | θ), shape (*B, N)."""
    return log_resp(params, X)[1]


def predict_proba(params: GMMParams, X: Array) -> Array:
    """p(z_n = k | x_n, θ), shape (*B, N, K); rows sum to 1."""
    return jnp.exp(log_resp(params, X)[0])


def predict(params: GMMParams, X: Array) -> Array:
    """Most probable component per sample, shape (*B, N), int32."""
    return jnp.argmax(component_log_prob(params, X), axis=-1).astype(jnp.int32)


def sample(key: PRNGKey, params: GMMParams, n_samples: int) -> tuple[Array, Array]:
    """Draw ``n_samples`` points from the mixture.

    Returns
    -------
    X : array of shape (*B, n_samples, D)
    labels : array of shape (*B, n_samples), int32
        The component each point was drawn from.
    """
    table = ops(params.covariance_type, JAX)

    def one(key, p):
        p = jax.tree_util.tree_map(jnp.asarray, p)  # NumPy leaves cannot take traced indices
        kz, kx = jax.random.split(key)
        labels = jax.random.categorical(kz, jnp.log(p.weights), shape=(n_samples,))
        z = jax.random.normal(kx, (n_samples, p.n_features), dtype=p.means.dtype)
        noise = jax.vmap(lambda k, e: table.scale_noise(p.cov_factor, k, e))(labels, z)
        return p.means[labels] + noise, labels.astype(jnp.int32)

    B = params.batch_shape
    keys = jax.random.split(key, math.prod(B)).reshape(*B, *key.shape) if B else key
    return vmap_batch(one, len(B))(keys, params)
