"""Property tests (hypothesis) over COVARIANCE_TYPES x DTYPES x BATCH_SHAPES: any valid
mixture gives normalised responsibilities, a consistent log density, and survives the
round trip through scikit-learn's parameterisations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, in_scope
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from bayesgmm import density
from bayesgmm.params import GMMParams

BATCH_SHAPES = [(), (3,), (2, 2)]


def _random_params(rng, batch, K, D, ct, dtype):
    w = rng.dirichlet(np.ones(K), size=batch or None).astype(dtype)
    m = rng.normal(0, 3, (*batch, K, D)).astype(dtype)
    if ct in ("full", "tied"):
        shape = (*batch, K, D, D) if ct == "full" else (*batch, D, D)
        A = rng.normal(size=shape)
        S = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)
        f = np.linalg.cholesky(S)
    elif ct == "diag":
        f = rng.uniform(0.3, 2.0, (*batch, K, D))
    else:
        f = rng.uniform(0.3, 2.0, (*batch, K))
    return GMMParams(w, m, f.astype(dtype), ct)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 5), D=st.integers(1, 4),
       ct=st.sampled_from(COVARIANCE_TYPES), batch=st.sampled_from(BATCH_SHAPES),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_responsibilities_normalised_and_consistent(seed, K, D, ct, batch, dtype):
    rng = np.random.default_rng(seed)
    p = _random_params(rng, batch, K, D, ct, dtype)
    X = rng.normal(0, 4, (17, D)).astype(dtype)
    with in_scope(dtype):
        lr, ln = density.log_resp(p, jnp.asarray(X))
        lp = density.component_log_prob(p, jnp.asarray(X))
        lr, ln, lp = np.asarray(lr), np.asarray(ln), np.asarray(lp)
    assert lr.shape == (*batch, 17, K) and ln.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.exp(lr).sum(-1), 1.0, atol=tol)
    np.testing.assert_allclose(ln, logsumexp(lp.astype(np.float64), axis=-1), rtol=tol, atol=tol)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 4), D=st.integers(1, 4),
       ct=st.sampled_from(COVARIANCE_TYPES), batch=st.sampled_from(BATCH_SHAPES))
def test_sklearn_forms_round_trip(seed, K, D, ct, batch):
    rng = np.random.default_rng(seed)
    p = _random_params(rng, batch, K, D, ct, np.float64)
    for form in ("covariances", "precisions", "precisions_cholesky"):
        q = GMMParams.from_sklearn(p.weights, p.means, covariance_type=ct,
                                   **{form: getattr(p, form)})
        np.testing.assert_allclose(q.cov_factor, p.cov_factor, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_jit_of_log_resp_equals_eager(ct):
    p = _random_params(np.random.default_rng(0), (2,), 3, 2, ct, np.float32)
    X = jnp.asarray(np.random.default_rng(1).normal(size=(9, 2)), jnp.float32)
    eager = density.log_resp(p, X)[1]
    jitted = jax.jit(density.log_resp)(p, X)[1]
    np.testing.assert_allclose(eager, jitted, rtol=1e-6)
