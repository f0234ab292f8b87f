"""Built-in data sets reproduce scikit-learn's; ARI matches scikit-learn's."""

import numpy as np
import pytest
import sklearn.datasets
from sklearn.metrics import adjusted_rand_score as sk_ari

from bayesgmm import GaussianMixture
from bayesgmm.datasets import blobs_truth, make_blobs, make_mixture
from bayesgmm.metrics import adjusted_rand_score
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
