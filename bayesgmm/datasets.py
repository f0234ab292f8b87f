"""Data sets with known generating parameters: the built-in demo data.

:func:`make_blobs` reproduces scikit-learn's algorithm draw for draw (same NumPy
``RandomState`` stream), so ``make_blobs(n_samples=300, centers=4, cluster_std=0.60,
random_state=0)`` is exactly the data of the tutorial this library started from,
without depending on scikit-learn. :func:`make_mixture` samples any ``GMMParams``
(anisotropic, overlapping, weighted), returning the truth alongside.

Two classic model-based clustering data sets are included as literal numbers (the
benchmark against R's mclust, ``benchmarks/mclust.py``, uses them):
:func:`load_faithful` (Old Faithful eruptions, 272 x 2, base R's ``datasets``) and
:func:`load_diabetes` (Reaven & Miller's diabetes data, 145 x 3, mclust's
``diabetes``). Both were written out from R 4.2.2 (mclust 6.0.0) with ``write.csv``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from bayesgmm.params import GMMParams

__all__ = ["make_blobs", "make_mixture", "blobs_truth", "Mixture", "Dataset",
           "load_faithful", "load_diabetes"]


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


class Dataset(NamedTuple):
    X: np.ndarray  # (N, D) float64
    y: np.ndarray | None  # (N,) int class codes, or None
    feature_names: tuple[str, ...]  # (D,)
    target_names: tuple[str, ...]  # the classes, in code order (empty without y)
    source: str


def load_faithful() -> Dataset:
    """Old Faithful geyser eruptions: 272 rows of (eruption time in minutes, waiting
    time to the next eruption in minutes).

    Source: R's ``datasets::faithful`` (Härdle 1991, from Azzalini & Bowman 1990,
    "A look at some data on the Old Faithful geyser", Applied Statistics 39, 357-365).
    mclust picks EEE (tied) with 3 components here, log-likelihood -1126.33.
    """
    X = np.array(_FAITHFUL.split(), dtype=np.float64).reshape(272, 2)
    return Dataset(X, None, ("eruptions", "waiting"), (), "R datasets::faithful")


def load_diabetes() -> Dataset:
    """Reaven & Miller's diabetes data: 145 non-obese adults, 3 measurements
    (``glucose``: plasma glucose response to oral glucose, ``insulin``: plasma insulin
    response, ``sspg``: steady-state plasma glucose) and the clinical class (Chemical
    diabetes, Normal, Overt diabetes: codes 0, 1, 2).

    Source: R package mclust's ``diabetes`` (Reaven & Miller 1979, "An attempt to define
    the nature of chemical diabetes using a multidimensional analysis", Diabetologia
    16, 17-24). Not scikit-learn's ``load_diabetes`` (a regression data set).
    """
    a = np.array(_DIABETES.split(), dtype=np.float64).reshape(145, 4)
    return Dataset(a[:, 1:], a[:, 0].astype(np.int64), ("glucose", "insulin", "sspg"),
                   ("Chemical", "Normal", "Overt"), "R mclust::diabetes")


# eruptions waiting, row by row (R 4.2.2, write.csv(faithful))
_FAITHFUL = """
3.6 79  1.8 54  3.333 74  2.283 62  4.533 85  2.883 55  4.7 88  3.6 85  1.95 51  4.35 85
1.833 54  3.917 84  4.2 78  1.75 47  4.7 83  2.167 52  1.75 62  4.8 84  1.6 52  4.25 79
1.8 51  1.75 47  3.45 78  3.067 69  4.533 74  3.6 83  1.967 55  4.083 76  3.85 78  4.433
79  4.3 73  4.467 77  3.367 66  4.033 80  3.833 74  2.017 52  1.867 48  4.833 80  1.833
59  4.783 90  4.35 80  1.883 58  4.567 84  1.75 58  4.533 73  3.317 83  3.833 64  2.1 53
4.633 82  2 59  4.8 75  4.716 90  1.833 54  4.833 80  1.733 54  4.883 83  3.717 71
1.667 64  4.567 77  4.317 81  2.233 59  4.5 84  1.75 48  4.8 82  1.817 60  4.4 92  4.167
78  4.7 78  2.067 65  4.7 73  4.033 82  1.967 56  4.5 79  4 71  1.983 62  5.067 76
2.017 60  4.567 78  3.883 76  3.6 83  4.133 75  4.333 82  4.1 70  2.633 65  4.067 73
4.933 88  3.95 76  4.517 80  2.167 48  4 86  2.2 60  4.333 90  1.867 50  4.817 78  1.833
63  4.3 72  4.667 84  3.75 75  1.867 51  4.9 82  2.483 62  4.367 88  2.1 49  4.5 83
4.05 81  1.867 47  4.7 84  1.783 52  4.85 86  3.683 81  4.733 75  2.3 59  4.9 89  4.417
79  1.7 59  4.633 81  2.317 50  4.6 85  1.817 59  4.417 87  2.617 53  4.067 69  4.25 77
1.967 56  4.6 88  3.767 81  1.917 45  4.5 82  2.267 55  4.65 90  1.867 45  4.167 83  2.8
56  4.333 89  1.833 46  4.383 82  1.883 51  4.933 86  2.033 53  3.733 79  4.233 81
2.233 60  4.533 82  4.817 77  4.333 76  1.983 59  4.633 80  2.017 49  5.1 96  1.8 53
5.033 77  4 77  2.4 65  4.6 81  3.567 71  4 70  4.5 81  4.083 93  1.8 53  3.967 89  2.2
45  4.15 86  2 58  3.833 78  3.5 66  4.583 76  2.367 63  5 88  1.933 52  4.617 93  1.917
49  2.083 57  4.583 77  3.333 68  4.167 81  4.333 81  4.5 73  2.417 50  4 85  4.167 74
1.883 55  4.583 77  4.25 83  3.767 83  2.033 51  4.433 78  4.083 84  1.833 46  4.417 83
2.183 55  4.8 81  1.833 57  4.8 76  4.1 84  3.966 77  4.233 81  3.5 87  4.366 77  2.25
51  4.667 78  2.1 60  4.35 82  4.133 91  1.867 53  4.6 78  1.783 46  4.367 77  3.85 84
1.933 49  4.5 83  2.383 71  4.7 80  1.867 49  3.833 75  3.417 64  4.233 76  2.4 53  4.8
94  2 55  4.15 76  1.867 50  4.267 82  1.75 54  4.483 75  4 78  4.117 79  4.083 78
4.267 78  3.917 70  4.55 79  4.083 70  2.417 54  4.183 86  2.217 50  4.45 90  1.883 54
1.85 54  4.283 77  3.95 79  2.333 64  4.15 75  2.35 47  4.933 86  2.9 63  4.583 85
3.833 82  2.083 57  4.367 82  2.133 67  4.35 74  2.2 54  4.45 83  3.567 73  4.5 73  4.15
88  3.817 80  3.917 71  4.45 83  2 56  4.283 79  4.767 78  4.533 84  1.85 58  4.25 83
1.983 43  2.25 60  4.75 75  4.117 81  2.15 46  4.417 90  1.817 46  4.467 74
"""

# class glucose insulin sspg, row by row; class 0 Chemical, 1 Normal, 2 Overt
# (mclust 6.0.0, write.csv(diabetes))
_DIABETES = """
1 80 356 124  1 97 289 117  1 105 319 143  1 90 356 199  1 90 323 240  1 86 381 157  1
100 350 221  1 85 301 186  1 97 379 142  1 97 296 131  1 91 353 221  1 87 306 178  1 78
290 136  1 90 371 200  1 86 312 208  1 80 393 202  1 90 364 152  1 99 359 185  1 85 296
116  1 90 345 123  1 90 378 136  1 88 304 134  1 95 347 184  1 90 327 192  1 92 386 279
1 74 365 228  1 98 365 145  1 100 352 172  1 86 325 179  1 98 321 222  1 70 360 134  1
99 336 143  1 75 352 169  1 90 353 263  1 85 373 174  1 99 376 134  1 100 367 182  1 78
335 241  1 106 396 128  1 98 277 222  1 102 378 165  1 90 360 282  1 94 291 94  1 80 269
121  1 93 318 73  1 86 328 106  1 85 334 118  1 96 356 112  1 88 291 157  1 87 360 292
1 94 313 200  1 93 306 220  1 86 319 144  1 86 349 109  1 96 332 151  1 86 323 158  1 89
323 73  1 83 351 81  0 98 478 151  1 100 398 122  1 110 426 117  0 88 439 208  0 100 429
201  1 80 333 131  0 89 472 162  0 91 436 148  1 96 418 130  1 95 391 137  1 82 390 375
1 84 416 146  0 90 413 344  1 100 385 192  1 86 393 115  1 93 376 195  1 107 403 267  1
112 414 281  0 94 426 213  1 93 364 156  1 93 391 221  1 90 356 199  1 99 398 76  1 93
393 490  0 85 425 143  1 89 318 73  0 96 465 237  0 111 558 748  0 107 503 320  0 114
540 188  0 101 469 607  0 108 486 297  0 112 568 232  0 105 527 480  0 103 537 622  0 99
466 287  0 102 599 266  0 110 477 124  0 102 472 297  0 96 456 326  0 95 517 564  0 112
503 408  0 110 522 325  0 92 476 433  0 104 472 180  0 75 45 392  0 92 442 109  0 92 541
313  0 92 580 132  0 93 472 285  0 112 562 139  0 88 423 212  0 114 643 155  0 103 533
120  2 300 1468 28  2 303 1487 23  2 125 714 232  2 280 1470 54  2 216 1113 81  2 190
972 87  2 151 854 76  2 303 1364 42  2 173 832 102  2 203 967 138  2 195 920 160  2 140
613 131  2 151 857 145  2 275 1373 45  2 260 1133 118  2 149 849 159  2 233 1183 73  2
146 847 103  2 124 538 460  2 213 1001 42  2 330 1520 13  2 123 557 130  2 130 670 44  2
120 636 314  2 138 741 219  2 188 958 100  2 339 1354 10  2 265 1263 83  2 353 1428 41
2 180 923 77  2 213 1025 29  2 328 1246 124  2 346 1568 15
"""
