"""Initial parameters for EM, in JAX (jit-able, so restarts vmap over keys).

Glossary: N samples, D features, K components.

Methods (scikit-learn's ``init_params`` names):

``kmeans``
    Greedy k-means++ seeds, then ``n_lloyd`` weighted Lloyd iterations; hard labels.
``k-means++``
    Greedy k-means++ seeds; each sample assigned to its nearest seed.
``random_from_data``
    K distinct samples drawn (by weight) as seeds; each sample assigned to the nearest.
``random``
    Responsibilities drawn uniformly and normalised (scikit-learn's ``random``).

Design note: scikit-learn gives ``k-means++`` and ``random_from_data`` a responsibility of
1 on the seed point only, which starts every covariance at ``reg_covar`` and makes the
first E-step erratic; assigning each sample to its nearest seed costs one distance pass
and starts EM from sensible covariances. The responsibilities then go through the same
M-step as EM (weighted, centred statistics).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from bayesgmm._typing import Array, PRNGKey
from bayesgmm.covariance import HIGHEST
from bayesgmm.em import m_step
from bayesgmm.params import GMMParams
from bayesgmm.suffstats import stats_from_resp

__all__ = ["INIT_METHODS", "kmeans_plusplus", "kmeans", "init_resp", "init_params",
           "init_params_batch"]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def _sq_dist(X: Array, C: Array) -> Array:
    """(N, M) squared distances, computed centred-safe enough for seeding."""
    return jnp.sum((X[:, None, :] - C[None, :, :]) ** 2, axis=-1)


def kmeans_plusplus(key: PRNGKey, X: Array, sample_weight: Array, n_clusters: int) -> Array:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii; scikit-learn's greedy variant).

    Each new seed is the best of ``2 + ⌊log K⌋`` candidates drawn with probability
    ∝ w · D², the one that most reduces the weighted potential.

    Returns
    -------
    centers : array of shape (K, D)
    """
    N, D = X.shape
    n_trials = 2 + int(math.log(n_clusters))
    key0, key = jax.random.split(key)
    first = jax.random.categorical(key0, jnp.log(sample_weight))
    centers = jnp.zeros((n_clusters, D), X.dtype).at[0].set(X[first])
    closest = jnp.sum((X - X[first]) ** 2, axis=-1)  # (N,)

    def body(i, carry):
        centers, closest, key = carry
        key, sub = jax.random.split(key)
        pot = closest * sample_weight
        logits = jnp.log(jnp.maximum(pot, 0.0))
        # All-zero potential (duplicates): fall back to weights.
        logits = jnp.where(jnp.sum(pot) > 0, logits, jnp.log(sample_weight))
        cand = jax.random.categorical(sub, logits, shape=(n_trials,))
        d = _sq_dist(X, X[cand])  # (N, n_trials)
        new_closest = jnp.minimum(closest[:, None], d)
        best = jnp.argmin(jnp.sum(new_closest * sample_weight[:, None], axis=0))
        return centers.at[i].set(X[cand[best]]), new_closest[:, best], key

    centers, _, _ = jax.lax.fori_loop(1, n_clusters, body, (centers, closest, key))
    return centers


def kmeans(
    key: PRNGKey, X: Array, sample_weight: Array, n_clusters: int, n_lloyd: int = 30
) -> tuple[Array, Array]:
    """Weighted Lloyd's algorithm from k-means++ seeds; a fixed number of iterations.

    Returns
    -------
    centers : array of shape (K, D)
    labels : array of shape (N,), int32
    """
    centers = kmeans_plusplus(key, X, sample_weight, n_clusters)

    def body(_, centers):
        labels = jnp.argmin(_sq_dist(X, centers), axis=1)
        onehot = jax.nn.one_hot(labels, n_clusters, dtype=X.dtype) * sample_weight[:, None]
        counts = jnp.sum(onehot, axis=0)
        sums = jnp.matmul(onehot.T, X, precision=HIGHEST)
        # An emptied cluster keeps its previous centre.
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    centers = jax.lax.fori_loop(0, n_lloyd, body, centers)
    return centers, jnp.argmin(_sq_dist(X, centers), axis=1).astype(jnp.int32)


def init_resp(
    key: PRNGKey, X: Array, sample_weight: Array, n_components: int, method: str
) -> Array:
    """Initial responsibilities (N, K) by ``method`` (one of :data:`INIT_METHODS`)."""
    K = n_components
    dtype = X.dtype
    if method == "kmeans":
        _, labels = kmeans(key, X, sample_weight, K)
        return jax.nn.one_hot(labels, K, dtype=dtype)
    if method == "k-means++":
        seeds = kmeans_plusplus(key, X, sample_weight, K)
        return jax.nn.one_hot(jnp.argmin(_sq_dist(X, seeds), axis=1), K, dtype=dtype)
    if method == "random_from_data":
        # Gumbel top-k: K distinct rows with probability ∝ weight, without replacement.
        g = jax.random.gumbel(key, (X.shape[0],), dtype) + jnp.log(sample_weight)
        idx = jax.lax.top_k(g, K)[1]
        return jax.nn.one_hot(jnp.argmin(_sq_dist(X, X[idx]), axis=1), K, dtype=dtype)
    if method == "random":
        r = jax.random.uniform(key, (X.shape[0], K), dtype)
        return r / jnp.sum(r, axis=1, keepdims=True)
    raise ValueError(
        f"Unimplemented initialization method {method!r}; init_params should be one of "
        f"{INIT_METHODS}"
    )


def init_params(
    key: PRNGKey,
    X: Array,
    n_components: int,
    covariance_type: str = "full",
    method: str = "kmeans",
    *,
    sample_weight: Array | None = None,
    reg_covar: float = 1e-6,
) -> GMMParams:
    """Initial ``GMMParams`` from ``method``'s responsibilities via one M-step.

    vmap over ``key`` for restarts: ``jax.vmap(lambda k: init_params(k, X, K))(keys)``.
    """
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], X.dtype)
    resp = init_resp(key, X, sample_weight, n_components, method)
    stats = stats_from_resp(X, resp, sample_weight, covariance_type)
    return m_step(stats, covariance_type=covariance_type, reg_covar=reg_covar)


def _init_params_batch(keys, X, n_components, covariance_type, method, sample_weight,
                       reg_covar):
    one = lambda k: init_params(k, X, n_components, covariance_type, method,
                                sample_weight=sample_weight, reg_covar=reg_covar)
    return jax.vmap(one)(keys)


_init_params_batch_jit = jax.jit(
    _init_params_batch, static_argnames=("n_components", "covariance_type", "method"))


def init_params_batch(
    keys: Array,
    X: Array,
    n_components: int,
    covariance_type: str = "full",
    method: str = "kmeans",
    *,
    sample_weight: Array | None = None,
    reg_covar: float = 1e-6,
) -> GMMParams:
    """:func:`init_params` vmapped over ``keys (R, 2)``: batch shape ``(R,)``, jitted."""
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], X.dtype)
    return _init_params_batch_jit(keys, X, n_components, covariance_type, method,
                                  sample_weight, reg_covar)
