"""Densities against closed forms (scipy) and scikit-learn, batched = looped, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, in_scope
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import density
from bayesgmm.params import GMMParams


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def model(request, datasets):
    X = datasets["aniso"]
    sk = SkGM(3, covariance_type=request.param, random_state=0).fit(X)
    return sk, GMMParams.from_estimator(sk), X


def test_component_log_prob_matches_scipy(model):
    sk, p, X = model
    full = np.asarray(p.full_covariances)
    with in_scope(np.float64):
        lp = np.asarray(density.component_log_prob(p, jnp.asarray(X)))
    for k in range(3):
        ref = np.log(sk.weights_[k]) + multivariate_normal(sk.means_[k], full[k]).logpdf(X)
        np.testing.assert_allclose(lp[:, k], ref, rtol=1e-10)


def test_scores_match_sklearn(model):
    sk, p, X = model
    with in_scope(np.float64):
        lr, ln = density.log_resp(p, jnp.asarray(X))
        labels = np.asarray(density.predict(p, jnp.asarray(X)))
        lr, ln = np.asarray(lr), np.asarray(ln)
    np.testing.assert_allclose(ln, sk.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(np.exp(lr), sk.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(np.exp(lr).sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(labels, sk.predict(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_equals_loop_and_keeps_dtype(model, dtype):
    _, p, X = model
    with in_scope(dtype):
        p = p.astype(dtype)
        shift = jnp.arange(6, dtype=dtype).reshape(2, 3)[..., None, None] * 0.1
        batch = GMMParams(jnp.broadcast_to(p.weights, (2, 3, 3)), p.means + shift,
                          jnp.broadcast_to(p.cov_factor, (2, 3, *p.cov_factor.shape)),
                          p.covariance_type)
        Xj = jnp.asarray(X, dtype)
        lr, ln = density.log_resp(batch, Xj)
        assert lr.shape == (2, 3, len(X), 3) and ln.dtype == dtype
        for i in range(2):
            for j in range(3):
                _, ln_ij = density.log_resp(batch[i, j], Xj)
                np.testing.assert_allclose(ln[i, j], ln_ij, rtol=1e-6 if dtype == np.float32
                                           else 1e-12)


def test_sample_moments(model):
    _, p, _ = model
    with in_scope(np.float64):
        Xs, ys = density.sample(jax.random.PRNGKey(1), p, 40_000)
        Xs, ys = np.asarray(Xs), np.asarray(ys)
        full = np.asarray(p.full_covariances)
    counts = np.bincount(ys, minlength=3) / len(ys)
    np.testing.assert_allclose(counts, np.asarray(p.weights), atol=0.01)
    for k in range(3):
        np.testing.assert_allclose(Xs[ys == k].mean(0), np.asarray(p.means)[k], atol=0.05)
        np.testing.assert_allclose(np.cov(Xs[ys == k].T), full[k], rtol=0.08, atol=0.02)
