"""Densities of a Gaussian mixture: log-probabilities, responsibilities, sampling.

Glossary: N samples, D features, K components, B = ``params.batch_shape``.

Each public function is written for one parameter set and lifted over the batch dims
``B`` with ``vmap`` (see :func:`bayesgmm.params.vmap_batch`), so an EM fit, ``n_init``
restarts and ``(chain, draw)`` posterior draws all go through the same code.

Numerics: samples are centred on each component's mean before any product
(``Xc = X - μ_k``), so float32 stays accurate for data far from the origin; the
normaliser over K is a log-sum-exp.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from bayesgmm._typing import Array, PRNGKey
from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams, vmap_batch

__all__ = [
    "component_log_prob",
    "log_resp",
    "score_samples",
    "predict_proba",
    "predict",
    "sample",
    "centred_log_prob",
]


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
    table = ops(params.covariance_type)
    K, D = params.n_components, params.n_features
    prec_chol = table.to_precision_cholesky(params.cov_factor)
    Xc = X[None, :, :] - params.means[:, None, :]  # (K, N, D)
    maha = table.mahalanobis(Xc, prec_chol)  # (N, K)
    log_det = table.log_det_precision_cholesky(prec_chol, K, D)  # (K,)
    log_gauss = -0.5 * (D * math.log(2 * math.pi) + maha) + log_det
    return log_gauss + jnp.log(params.weights), Xc


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
    fn = lambda p: centred_log_prob(p, X)[0]
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
    table = ops(params.covariance_type)

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
