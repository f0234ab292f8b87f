"""bayesgmm.suffstats: the sufficient statistics behind every EM (in-memory, chunked,
sharded, streamed).

Truth: NumPy's weighted means and covariances computed directly from the same
responsibilities and weights. (Whole fits through these statistics are held to
scikit-learn in tests/test_engines_jax.py.)"""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import in_scope

from bayesgmm.params import GMMParams


@pytest.mark.parametrize("kernel", ["centred", "moments"])
@pytest.mark.parametrize("chunk_size", [None, 37])
def test_statistics_of_given_responsibilities_match_numpy(kernel, chunk_size):
    """The initialisation's M-step from soft responsibilities and weights (summed over
    37-row chunks, the last one clamped, or in one block) gives NumPy's weighted
    means and covariances, on data offset by 1e3."""
    from bayesgmm.engines.jax import m_step
    from bayesgmm.suffstats import stats_from_resp
    rng = np.random.RandomState(11)
    X = rng.normal(0, 1, (250, 3)) * [1, 2, 0.5] + 1e3
    r = rng.dirichlet(np.ones(4), len(X))
    w = rng.uniform(0, 2, len(X)) * (rng.uniform(size=len(X)) > 0.1)
    rw = r * w[:, None]
    nk = rw.sum(0)
    means = rw.T @ X / nk[:, None]
    covs = np.stack([(rw[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
                     for k in range(4)])
    with in_scope(np.float64):
        template = GMMParams(jnp.ones(4), jnp.zeros((4, 3)), jnp.stack([jnp.eye(3)] * 4),
                             "full")
        stats = stats_from_resp(jnp.asarray(X), jnp.asarray(r), jnp.asarray(w), "full",
                                kernel=kernel, chunk_size=chunk_size)
        p = m_step(stats, covariance_type="full", reg_covar=0.0, previous=template)
    np.testing.assert_allclose(stats.nk, nk, rtol=1e-12)
    np.testing.assert_allclose(p.weights, nk / nk.sum(), rtol=1e-12)
    np.testing.assert_allclose(p.means, means, rtol=1e-12)
    np.testing.assert_allclose(p.covariances, covs, rtol=1e-8)
