"""Built-in data sets reproduce scikit-learn's; ARI matches scikit-learn's; membership
uncertainty equals its closed forms and scipy's entropy."""

import numpy as np
import pytest
import sklearn.datasets
from sklearn.metrics import adjusted_rand_score as sk_ari

from bayesgmm import GaussianMixture
from bayesgmm.datasets import blobs_truth, make_blobs, make_mixture
from bayesgmm.metrics import adjusted_rand_score, membership_uncertainty
from bayesgmm.params import GMMParams


@pytest.mark.parametrize("kwargs", [
    dict(n_samples=300, centers=4, cluster_std=0.60, random_state=0),
    dict(n_samples=101, n_features=3, centers=5, cluster_std=[0.5, 1, 1.5, 2, 2.5],
         random_state=3),
    dict(n_samples=50, centers=[[0, 0], [5, 5]], shuffle=False, random_state=1),
])
def test_make_blobs_is_sklearns(kwargs):
    X, y = make_blobs(**kwargs)
    Xs, ys = sklearn.datasets.make_blobs(**kwargs)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)


def test_blobs_truth_is_recovered(blobs):
    X, y, centers = blobs
    truth = blobs_truth(centers, 0.60, 300)
    gm = GaussianMixture(4, covariance_type="spherical", random_state=0).fit(X)
    order = [int(np.argmin(np.linalg.norm(gm.means_ - c, axis=1))) for c in centers]
    np.testing.assert_allclose(gm.means_[order], truth.means, atol=0.15)
    np.testing.assert_allclose(np.sqrt(gm.covariances_[order]), truth.cov_factor, rtol=0.15)


def test_make_mixture_recovers_anisotropic_truth():
    L = np.array([[[1.0, 0], [0.9, 0.3]], [[0.5, 0], [-0.4, 0.2]], [[0.2, 0], [0, 1.5]]])
    truth = GMMParams(np.array([0.5, 0.3, 0.2]), np.array([[0.0, 0], [4, 4], [-4, 3]]), L)
    data = make_mixture(truth, 6000, random_state=0)
    gm = GaussianMixture(3, random_state=0).fit(data.X)
    order = [int(np.argmin(np.linalg.norm(gm.means_ - m, axis=1))) for m in truth.means]
    np.testing.assert_allclose(gm.weights_[order], truth.weights, atol=0.02)
    # 6000 draws: sampling error of a variance is about sqrt(2/n_k) relative (<= 6%).
    np.testing.assert_allclose(gm.covariances_[order], np.asarray(truth.covariances),
                               rtol=0.12, atol=0.03)
    assert adjusted_rand_score(data.y, gm.predict(data.X)) > 0.95


def test_ari_matches_sklearn():
    rng = np.random.RandomState(0)
    for _ in range(20):
        a, b = rng.randint(0, 4, 60), rng.randint(0, 5, 60)
        b[:30] = a[:30]
        assert adjusted_rand_score(a, b) == pytest.approx(sk_ari(a, b), abs=1e-12)
    assert adjusted_rand_score([0, 0, 1, 1], [5, 5, 3, 3]) == 1.0
    with pytest.raises(ValueError, match="equal length"):
        adjusted_rand_score([0, 1], [0, 1, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_membership_entropy_closed_forms(dtype):
    p = 0.2
    proba = np.array([[1.0, 0.0, 0.0],  # certain: 0
                      [1 / 3, 1 / 3, 1 / 3],  # uniform: 1
                      [0.5, 0.25, 0.25],  # H = 1.5 log 2, over log 3
                      [p, 1 - p, 0.0]], dtype=dtype)  # binary entropy, over log 3
    u = membership_uncertainty(proba)
    binary = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    truth = [0.0, 1.0, 1.5 * np.log(2) / np.log(3), binary / np.log(3)]
    assert u.dtype == dtype and u.shape == (4,)
    np.testing.assert_allclose(u, truth, rtol=1e-6 if dtype == np.float64 else 2e-5,
                               atol=1e-7)
    assert membership_uncertainty(np.ones((3, 1), dtype)).tolist() == [0.0, 0.0, 0.0]


def test_membership_entropy_is_scipys_on_a_fit(blobs):
    from scipy.stats import entropy

    X = blobs[0]
    proba = GaussianMixture(4, random_state=0).fit(X).predict_proba(X)
    u = membership_uncertainty(proba)
    np.testing.assert_allclose(u, entropy(proba, axis=1) / np.log(4), atol=1e-12)
    # invariant to permuting the components
    np.testing.assert_allclose(membership_uncertainty(proba[:, [2, 0, 3, 1]]), u, atol=1e-12)
    assert 0 <= u.min() and u.max() <= 1


def test_membership_interval_width_of_the_most_probable_component():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    lower = np.array([[0.5, 0.1, 0.0], [0.0, 0.1, 0.2]], dtype=np.float32)
    upper = np.array([[0.9, 0.4, 0.3], [0.3, 0.9, 0.7]], dtype=np.float32)
    u = membership_uncertainty(proba, lower=lower, upper=upper, kind="interval")
    np.testing.assert_allclose(u, [0.4, 0.5], rtol=1e-6)  # components 0 and 2
    assert u.dtype == np.float32
    # without proba: the component of the highest midpoint (0, then 1: 0.5 > 0.45)
    u = membership_uncertainty(lower=lower, upper=upper, kind="interval")
    np.testing.assert_allclose(u, [0.4, 0.8], rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="variance"), "kind must be one of"),
    (dict(), "needs proba"),
    (dict(proba=np.array([[0.5, 0.6]])), "row 0 is"),
    (dict(proba=np.array([[-2.0, 3.0]])), "not log-probabilities"),
    (dict(proba=np.array([0.5, 0.5])), r"shape \(N, K\)"),
    (dict(proba=np.array([[np.nan, 1.0]])), "NaN"),
    (dict(kind="interval", lower=np.zeros((2, 2))), "needs lower and upper"),
    (dict(kind="interval", lower=np.ones((2, 2)), upper=np.zeros((2, 2))), "upper is below"),
    (dict(kind="interval", lower=np.zeros((2, 2)), upper=np.ones((2, 3))), "same shape"),
])
def test_membership_uncertainty_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        membership_uncertainty(**kwargs)
