"""Data sets with known generating parameters: the built-in demo data.

:func:`make_blobs` reproduces scikit-learn's algorithm draw for draw (same NumPy
``RandomState`` stream), so ``make_blobs(n_samples=300, centers=4, cluster_std=0.60,
random_state=0)`` is exactly the data of the tutorial this library started from,
without depending on scikit-learn. :func:`make_mixture` samples any ``GMMParams``
(anisotropic, overlapping, weighted), returning the truth alongside.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from bayesgmm.params import GMMParams

__all__ = ["make_blobs", "make_mixture", "blobs_truth", "Mixture"]


def _rng(random_state) -> np.random.RandomState:
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    raise ValueError(f"random_state must be None, an int or a RandomState, got {random_state!r}")


def make_blobs(
    n_samples: int = 100,
    n_features: int = 2,
    centers=None,
    cluster_std=1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    shuffle: bool = True,
    random_state=None,
    return_centers: bool = False,
):
    """Isotropic Gaussian blobs, identical to ``sklearn.datasets.make_blobs`` (int n_samples).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    centers : ndarray of shape (n_centers, n_features), if ``return_centers``
    """
    generator = _rng(random_state)
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if centers is None:
        centers = 3
    if isinstance(centers, numbers.Integral):
        n_centers = int(centers)
        centers = generator.uniform(center_box[0], center_box[1], size=(n_centers, n_features))
    else:
        centers = np.atleast_2d(np.asarray(centers, dtype=float))
        n_features = centers.shape[1]
        n_centers = centers.shape[0]
    if isinstance(cluster_std, numbers.Real):
        cluster_std = np.full(len(centers), cluster_std)
    cluster_std = np.asarray(cluster_std, dtype=float)
    if cluster_std.shape[0] != n_centers:
        raise ValueError(
            f"cluster_std has {cluster_std.shape[0]} entries but there are {n_centers} centers"
        )
    per_center = [n_samples // n_centers] * n_centers
    for i in range(n_samples % n_centers):
        per_center[i] += 1
    ends = np.cumsum(per_center)
    X = np.empty((n_samples, n_features), dtype=np.float64)
    y = np.empty((n_samples,), dtype=int)
    for i, (n, std) in enumerate(zip(per_center, cluster_std)):
        start = ends[i - 1] if i > 0 else 0
        X[start : ends[i]] = generator.normal(loc=centers[i], scale=std, size=(n, n_features))
        y[start : ends[i]] = i
    if shuffle:
        idx = np.arange(n_samples)
        generator.shuffle(idx)
        X, y = X[idx], y[idx]
    return (X, y, centers) if return_centers else (X, y)


def blobs_truth(centers, cluster_std, n_samples: int) -> GMMParams:
    """The generating mixture of :func:`make_blobs` (spherical; weights from the split)."""
    centers = np.asarray(centers, dtype=float)
    K = centers.shape[0]
    counts = np.full(K, n_samples // K) + (np.arange(K) < n_samples % K)
    std = np.broadcast_to(np.asarray(cluster_std, dtype=float), (K,)).copy()
    return GMMParams(counts / counts.sum(), centers, std, "spherical")


class Mixture(NamedTuple):
    X: np.ndarray  # (N, D)
    y: np.ndarray  # (N,) generating component
    params: GMMParams  # the truth


def make_mixture(params: GMMParams, n_samples: int, random_state=None) -> Mixture:
    """Draw ``n_samples`` from a known mixture with NumPy (any covariance type)."""
    rng = _rng(random_state)
    p = params.to_numpy()
    if p.batch_shape:
        raise ValueError(f"make_mixture needs batch shape (), got {p.batch_shape}")
    y = rng.choice(p.n_components, size=n_samples, p=p.weights / p.weights.sum())
    z = rng.standard_normal((n_samples, p.n_features))
    chol = np.linalg.cholesky(np.asarray(p.full_covariances, dtype=np.float64))  # (K, D, D)
    noise = np.einsum("nij,nj->ni", chol[y], z)
    return Mixture(p.means[y] + noise, y, p)
