"""The uniform noise component (bayesgmm.robust, RobustMixture(noise=True)): recovery of
the outliers and of the clusters against the generating parameters, the noise-free
limit against the plain Gaussian fit, BIC's parameter count and value against scipy's
densities, the noise region's volume against closed forms, nearest-neighbour cleaning,
monotone EM, float32, weights, scikit-learn's estimator checks, and the errors."""

import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import robust
from bayesgmm.estimators import GaussianMixture, RobustMixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MEANS = np.array([[-4.0, -3.0], [4.0, -2.0], [0.0, 4.0]])
COVS = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]],
                 [[0.6, -0.25], [-0.25, 0.4]]])
HALF = 20.0  # the background: uniform on [-20, 20]²


def blobs_with_noise(seed, n=300, frac=0.05):
    """Three Gaussian blobs (the generating MEANS, COVS) plus ``frac`` uniform noise on
    [-HALF, HALF]²: (clean rows, all rows, noise mask)."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.multivariate_normal(m, c, n) for m, c in zip(MEANS, COVS)])
    n_noise = int(round(frac * len(X) / (1 - frac)))
    noise = rng.uniform(-HALF, HALF, (n_noise, 2))
    return X, np.concatenate([X, noise]), np.r_[np.zeros(len(X), bool), np.ones(n_noise, bool)]


def errors(means, covs):
    """Worst component's mean distance and covariance Frobenius distance to the truth,
    components matched to the truth by the Hungarian method."""
    rows, cols = linear_sum_assignment(((means[:, None] - MEANS[None]) ** 2).sum(-1))
    mean_err = np.linalg.norm(means[rows] - MEANS[cols], axis=-1).max()
    cov_err = np.linalg.norm(covs[rows] - COVS[cols], axis=(-2, -1)).max()
    return mean_err, cov_err


def precision_recall(flagged, truth):
    hit = (flagged & truth).sum()
    return hit / flagged.sum(), hit / truth.sum()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("start", ["nn", "mask"])
def test_noise_recovers_outliers_and_clusters(seed, start):
    X, Xa, truth = blobs_with_noise(seed)
    init = "nn" if start == "nn" else truth
    model = RobustMixture(3, noise=True, noise_init=init, random_state=0, tol=1e-6,
                          max_iter=500).fit(Xa)
    assert model.converged_
    precision, recall = precision_recall(model.predict(Xa) == -1, truth)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    clean = GaussianMixture(3, random_state=0).fit(X)
    plain = GaussianMixture(3, random_state=0).fit(Xa)
    mean_clean, cov_clean = errors(clean.means_, clean.covariances_)
    mean_noise, cov_noise = errors(model.means_, model.covariances_)
    mean_plain, cov_plain = errors(plain.means_, plain.covariances_)
    assert mean_noise <= 2 * mean_clean and cov_noise <= 2 * cov_clean
    assert cov_plain > 10 * cov_clean  # the plain fit is pulled off by the background
    assert model.noise_weight_ == pytest.approx(truth.mean(), abs=0.02)
    np.testing.assert_allclose(model.weights_.sum() + model.noise_weight_, 1.0)


def test_no_noise_data_gives_a_tiny_noise_weight_and_the_plain_fit():
    X, _, _ = blobs_with_noise(3)
    model = RobustMixture(3, noise=True, random_state=0, tol=1e-9, max_iter=2000).fit(X)
    assert model.noise_weight_ < 0.005
    sk = SkGaussianMixture(3, random_state=0, tol=1e-9, max_iter=1000).fit(X)
    order = [int(np.argmin(((sk.means_ - m) ** 2).sum(-1))) for m in model.means_]
    np.testing.assert_allclose(model.means_, sk.means_[order], atol=0.02)
    np.testing.assert_allclose(model.covariances_, sk.covariances_[order], atol=0.03)
    np.testing.assert_allclose(model.weights_ / model.weights_.sum(), sk.weights_[order],
                               atol=0.01)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_counts_the_noise_weight_and_matches_scipy(covariance_type):
    _, Xa, _ = blobs_with_noise(0)
    model = RobustMixture(3, covariance_type=covariance_type, noise=True,
                          random_state=0).fit(Xa)
    plain = GaussianMixture(3, covariance_type=covariance_type).fit(Xa)
    assert model.n_parameters() == plain.params_.n_parameters + 1
    full = model.params_.mixture.full_covariances
    density = sum(w * multivariate_normal(m, c).pdf(Xa)
                  for w, m, c in zip(model.weights_, model.means_, full))
    volume = np.prod(Xa.max(0) - Xa.min(0))
    log_lik = np.log(density + model.noise_weight_ / volume).sum()
    p = model.n_parameters()
    assert model.bic(Xa) == pytest.approx(-2 * log_lik + p * np.log(len(Xa)), rel=1e-10)
    assert model.aic(Xa) == pytest.approx(-2 * log_lik + 2 * p, rel=1e-10)
    np.testing.assert_allclose(model.score_samples(Xa),
                               np.log(density + model.noise_weight_ / volume), rtol=1e-10)


def test_predict_proba_has_a_last_noise_column():
    _, Xa, _ = blobs_with_noise(0)
    model = RobustMixture(3, noise=True, random_state=0).fit(Xa)
    proba = model.predict_proba(Xa)
    assert proba.shape == (len(Xa), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = model.predict(Xa)
    np.testing.assert_array_equal(labels == -1, proba.argmax(axis=1) == 3)
    assert set(np.unique(labels)) == {-1, 0, 1, 2}
    # far outside every cluster: noise; at a cluster's mean: that cluster
    far = np.array([[19.0, 19.0]])
    assert model.predict(far)[0] == -1
    assert (model.predict(model.means_) == np.arange(3)).all()
    # without a noise component: K columns, no -1
    plain = RobustMixture(3, random_state=0).fit(Xa)
    assert plain.predict_proba(Xa).shape == (len(Xa), 3) and plain.predict(far)[0] >= 0


def test_noise_volume_options_against_closed_forms():
    rng = np.random.default_rng(0)
    # points in the triangle (0,0), (2,0), (0,1) with its corners: hull area 1, box 2
    u = rng.uniform(size=(200, 2))
    u = np.where(u.sum(1, keepdims=True) > 1, 1 - u, u)
    X = np.concatenate([u * [2.0, 1.0], [[0, 0], [2, 0], [0, 1]]])
    assert robust.noise_log_volume(X, "box") == pytest.approx(np.log(2.0))
    assert robust.noise_log_volume(X, "hull") == pytest.approx(np.log(1.0))
    assert robust.noise_log_volume(X, 7.5) == pytest.approx(np.log(7.5))
    # a grid on a 4 x 1 rectangle turned by 30° (a symmetric grid: its principal axes
    # are the sides): the axis box is larger, the box in the principal axes is 4
    u = np.stack(np.meshgrid(np.linspace(0, 4, 41), np.linspace(0, 1, 11)), -1).reshape(-1, 2)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    R = u @ np.array([[c, s], [-s, c]])
    box = np.prod(R.max(0) - R.min(0))
    assert robust.noise_log_volume(R, "box") == pytest.approx(np.log(box))
    assert robust.noise_log_volume(R, "hypvol") == pytest.approx(np.log(4.0), abs=1e-6)
    assert robust.noise_log_volume(R, "hull") == pytest.approx(np.log(4.0))
    assert robust.noise_log_volume(X, "hypvol") <= np.log(2.0) + 1e-12  # never above the box
    _, Xa, _ = blobs_with_noise(0)
    for volume, expect in [("box", np.prod(Xa.max(0) - Xa.min(0))), (2000.0, 2000.0)]:
        model = RobustMixture(3, noise=True, noise_volume=volume, random_state=0).fit(Xa)
        assert model.noise_volume_ == pytest.approx(expect)
    hull = RobustMixture(3, noise=True, noise_volume="hull", random_state=0).fit(Xa)
    assert hull.noise_volume_ < np.prod(Xa.max(0) - Xa.min(0))


def test_nn_clean_flags_the_sparse_process():
    # Byers & Raftery's model exactly: a dense uniform square in a sparse uniform field;
    # the field's points that fall inside the square are not recoverable
    rng = np.random.default_rng(0)
    X = np.r_[rng.uniform(0, 1, (900, 2)), rng.uniform(-5, 5, (100, 2))]
    sparse = np.r_[np.zeros(900, bool), np.ones(100, bool)] & (np.abs(X - 0.5) > 0.5).any(1)
    precision, recall = precision_recall(robust.nn_clean(X), sparse)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # Gaussian blobs: every outlier, and some sparse cluster edges that EM then reclaims
    # (an initialisation; test_noise_recovers_outliers_and_clusters holds the fit)
    _, Xa, truth = blobs_with_noise(1)
    precision, recall = precision_recall(robust.nn_clean(Xa), truth)
    assert precision >= 0.5 and recall >= 0.95, (precision, recall)
    # duplicated rows (k-th distance 0) are dense, not NaN
    dup = np.concatenate([Xa, np.repeat(Xa[:1], 12, axis=0)])
    assert not robust.nn_clean(dup)[-12:].any()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type):
    _, Xa, _ = blobs_with_noise(2)
    model = RobustMixture(3, covariance_type=covariance_type, noise=True, random_state=0,
                          tol=1e-10, max_iter=300).fit(Xa)
    history = np.asarray(model.lower_bounds_)
    assert len(history) > 5
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))


def test_float32_matches_float64():
    _, Xa, _ = blobs_with_noise(0)
    m64 = RobustMixture(3, noise=True, random_state=0, tol=1e-8, max_iter=500).fit(Xa)
    m32 = RobustMixture(3, noise=True, random_state=0, tol=1e-8, max_iter=500).fit(
        Xa.astype(np.float32))
    assert m32.means_.dtype == np.float32 and m32.covariances_.dtype == np.float32
    np.testing.assert_allclose(m32.means_, m64.means_, atol=1e-3)
    assert m32.noise_weight_ == pytest.approx(m64.noise_weight_, abs=1e-4)
    assert np.isfinite(m32.predict_proba(Xa.astype(np.float32))).all()


def test_integer_sample_weights_equal_repeated_rows():
    _, Xa, truth = blobs_with_noise(0)
    w = np.random.default_rng(1).integers(1, 3, len(Xa))
    kw = dict(noise=True, noise_init=truth, random_state=0, tol=1e-10, max_iter=1000)
    weighted = RobustMixture(3, **kw).fit(Xa, sample_weight=w)
    repeated = RobustMixture(3, **{**kw, "noise_init": np.repeat(truth, w)}).fit(
        np.repeat(Xa, w, axis=0))
    order = [int(np.argmin(((repeated.means_ - m) ** 2).sum(-1))) for m in weighted.means_]
    np.testing.assert_allclose(weighted.means_, repeated.means_[order], atol=1e-5)
    assert weighted.noise_weight_ == pytest.approx(repeated.noise_weight_, abs=1e-6)


def test_errors_name_the_problem():
    _, Xa, _ = blobs_with_noise(0)
    with pytest.raises(ValueError, match=r"noise_init has shape \(5,\).*boolean array of shape"):
        RobustMixture(3, noise=True, noise_init=np.zeros(5, bool)).fit(Xa)
    with pytest.raises(ValueError, match="noise_init has shape .* dtype int"):
        RobustMixture(3, noise=True, noise_init=np.zeros(len(Xa), int)).fit(Xa)
    with pytest.raises(ValueError, match="'noise_init'.*'nn'"):
        RobustMixture(3, noise=True, noise_init="knn").fit(Xa)
    with pytest.raises(ValueError, match="'noise_volume'"):
        RobustMixture(3, noise=True, noise_volume=-1.0).fit(Xa)
    with pytest.raises(ValueError, match="'noise'"):
        RobustMixture(3, noise="yes").fit(Xa)
    with pytest.raises(ValueError, match="leaving fewer than n_components"):
        RobustMixture(3, noise=True, noise_init=np.ones(len(Xa), bool)).fit(Xa)
    with pytest.raises(ValueError, match="noise_init .* is used only with noise=True"):
        RobustMixture(3, noise_init=np.zeros(len(Xa), bool)).fit(Xa)
    for noise in (False, True):  # fewer rows than components: not noise_init's fault
        with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
            RobustMixture(5, noise=noise).fit(Xa[:3])
    flat = np.c_[Xa[:, 0], np.ones(len(Xa))]
    with pytest.raises(ValueError, match="Feature 1 of X is constant"):
        RobustMixture(2, noise=True).fit(flat)
    with pytest.raises(ValueError, match="n_neighbors"):
        robust.nn_clean(Xa[:5], n_neighbors=5)


def test_estimator_protocol():
    from sklearn.base import clone

    model = RobustMixture(2, noise=True, noise_volume=10.0)
    assert clone(model).get_params() == model.get_params()
    assert "noise_volume=10.0" in repr(model)
    with pytest.raises(Exception, match="not fitted"):
        model.predict(np.zeros((2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(blobs_with_noise(0)[1])
    with pytest.raises(ValueError, match="3 features"):
        fitted.predict(np.zeros((2, 3)))


def test_reports_like_gaussian_mixture():
    """A fit stopped at max_iter warns (the starting Gaussian fit's own warning is not
    repeated); a collapsed component is a ValueError naming reg_covar."""
    import bayesgmm

    _, Xa, _ = blobs_with_noise(0)
    with pytest.warns(bayesgmm.ConvergenceWarning, match="robust EM did not converge") as rec:
        RobustMixture(3, noise=True, random_state=0, max_iter=2).fit(Xa)
    assert len(rec) == 1
    # a component on 20 identical rows, reg_covar=0: its scale collapses; the step is not
    # applied, and the report names the component
    from bayesgmm.params import GMMParams

    X = np.r_[np.zeros((20, 2)), np.random.default_rng(0).normal(size=(40, 2)) + 10]
    start = robust.RobustParams(
        GMMParams(np.array([0.3, 0.7]), np.array([[0.0, 0.0], [10.0, 10.0]]),
                  np.array([0.5, 1.0]), "spherical"), np.array([5.0, 5.0]), np.float64(0.0),
        np.float64(np.inf))
    params, info = robust.fit(X, start, reg_covar=0.0, max_iter=50, estimate_df=True)
    assert bool(info.nonfinite) and int(info.bad_component) == 0
    assert np.isfinite(params.mixture.cov_factor).all()  # the last sound parameters


@parametrize_with_checks(
    [RobustMixture(), RobustMixture(2, component="t"),
     RobustMixture(2, noise=True, noise_volume=100.0)],
    expected_failed_checks=lambda est: {} if est.n_components == 1 else {
        "check_sample_weight_equivalence_on_dense_data": (
            "k-means seeds the starting Gaussian fit differently on weighted and repeated "
            "rows (as GaussianMixture's, tests/test_estimators.py); from one start weights "
            "equal repetition: test_integer_sample_weights_equal_repeated_rows")},
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ConvergenceWarning on tiny data
        check(estimator)


def test_a_small_robust_fit_imports_neither_jax_nor_scikit_learn():
    """Like GaussianMixture's host path (tests/test_architecture.py): the starting fit runs
    on the host engine, the robust EM in NumPy (SciPy for log Γ, ψ, Brent, k-d tree)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import sys
        import numpy as np
        from bayesgmm.estimators import RobustMixture
        X = np.random.default_rng(0).normal(size=(300, 2))
        m = RobustMixture(2, noise=True, component="t", random_state=0).fit(X)
        m.predict(X), m.bic(X)
        assert "jax" not in sys.modules and "sklearn" not in sys.modules
    """)
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
