"""Initialisation: k-means recovers blob centres; every method gives valid parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

from bayesgmm.initialize import INIT_METHODS, init_params, kmeans, kmeans_plusplus


def _match(found, truth):
    d = np.linalg.norm(found[:, None] - truth[None], axis=-1)
    return d.min(axis=0)  # distance from each true centre to the nearest found one


def test_kmeans_recovers_blob_centres(blobs):
    X, y, centers = blobs
    found, labels = kmeans(jax.random.PRNGKey(0), jnp.asarray(X, jnp.float32),
                           jnp.ones(len(X), jnp.float32), 4)
    assert np.all(_match(np.asarray(found), centers) < 0.2)
    assert labels.shape == (300,)


def test_kmeans_plusplus_spreads_seeds(blobs):
    X, _, centers = blobs
    hits = []
    for s in range(10):
        seeds = kmeans_plusplus(jax.random.PRNGKey(s), jnp.asarray(X, jnp.float32),
                                jnp.ones(len(X), jnp.float32), 4)
        hits.append(np.all(_match(np.asarray(seeds), centers) < 2.0))
    assert np.mean(hits) >= 0.8  # one seed per blob in most draws


def test_zero_weight_rows_are_never_seeds(blobs):
    X, y, _ = blobs
    w = (y != 0).astype(np.float32)
    for s in range(5):
        seeds = np.asarray(kmeans_plusplus(jax.random.PRNGKey(s), jnp.asarray(X, jnp.float32),
                                           jnp.asarray(w), 3))
        in_blob0 = (np.linalg.norm(X[y == 0][:, None] - seeds[None], axis=-1) < 1e-6).any()
        assert not in_blob0


@pytest.mark.parametrize("method", INIT_METHODS)
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_every_method_gives_valid_params(blobs, method, ct):
    X = jnp.asarray(blobs[0], jnp.float32)
    p = init_params(jax.random.PRNGKey(0), X, 4, ct, method)
    assert p.weights.shape == (4,) and p.means.shape == (4, 2)
    assert float(jnp.sum(p.weights)) == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.isfinite(np.asarray(p.cov_factor)))
    assert p.means.dtype == jnp.float32


def test_unknown_method():
    with pytest.raises(ValueError, match="init_params should be one of"):
        init_params(jax.random.PRNGKey(0), jnp.zeros((5, 2)), 2, "full", "nope")
