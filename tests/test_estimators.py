"""GaussianMixture facade: scikit-learn's estimator checks, conventions, dtypes, errors."""

import pickle
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import ConvergenceWarning, GaussianMixture, NotFittedError
from bayesgmm.metrics import adjusted_rand_score

# Every scikit-learn estimator check runs. The array-API check skips itself unless
# SCIPY_ARRAY_API is set. One is expected to fail for the 2-component estimator (with one
# component the seeds cannot differ, so it passes there), with this reason:
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "k-means++ draws its random seeds differently on weighted rows than on repeated "
        "rows, so the two fits start (and stop, at tol) at different points. From the same "
        "initial parameters weighted EM equals repetition to 1e-9: see "
        "tests/test_em.py::test_integer_sample_weight_equals_repetition."
    ),
}


@parametrize_with_checks(
    [GaussianMixture(), GaussianMixture(n_components=2, covariance_type="diag")],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS if est.n_components > 1 else {},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_seed_article_code_runs_unchanged(blobs):
    """The tutorial's scikit-learn code with only the import changed."""
    X, y, _ = blobs
    n_components = np.arange(1, 21)
    models = [GaussianMixture(n, covariance_type="full", random_state=0).fit(X)
              for n in n_components]
    bic = [m.bic(X) for m in models]
    aic = [m.aic(X) for m in models]
    assert n_components[int(np.argmin(bic))] == 4
    assert n_components[int(np.argmin(aic))] == 4
    gmm = GaussianMixture(n_components=4).fit(X)
    labels = gmm.predict(X)
    proba = gmm.predict_proba(X)
    assert adjusted_rand_score(y, labels) >= 0.99
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert labels.dtype == np.int64 and isinstance(labels, np.ndarray)


@pytest.mark.parametrize("engine", ["jax", "numpy"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_matches_sklearn_fit_from_same_init(blobs, ct, engine):
    """Full facade path (validation, init override, n_iter, converged) vs scikit-learn,
    compiled and on the host (on data this small ``engine="auto"`` picks the host)."""
    X, _, _ = blobs
    with pytest.warns(ConvergenceWarning):
        init = GaussianMixture(4, covariance_type=ct, random_state=1, max_iter=1,
                               engine=engine).fit(X)
    kw = dict(covariance_type=ct, weights_init=init.weights_, means_init=init.means_,
              precisions_init=init.precisions_, tol=1e-6)
    ours = GaussianMixture(4, engine=engine, **kw).fit(X)
    ref = SkGM(4, **kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_ and ours.converged_ == ref.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr), rtol=1e-6,
                                   atol=1e-10, err_msg=attr)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-10)
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-10)
    assert len(ours.lower_bounds_) == ours.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("engine", ["jax", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(blobs, dtype, engine):
    X = blobs[0].astype(dtype)
    gm = GaussianMixture(3, random_state=0, engine=engine).fit(X)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, attr).dtype == dtype, attr
    assert gm.predict_proba(X).dtype == dtype
    assert gm.score_samples(X).dtype == dtype
    assert gm.sample(4)[0].dtype == dtype
    assert gm.params_.dtype == dtype


def test_float32_moments_kernel_matches_default(blobs):
    """kernel="moments" (4x faster in float32 on a CPU) gives the float32 default's fit."""
    X = blobs[0].astype(np.float32)
    a = GaussianMixture(4, random_state=0, engine="jax").fit(X)
    b = GaussianMixture(4, random_state=0, kernel="moments", engine="jax").fit(X)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-3, atol=1e-5)
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-5)


def test_float64_is_computed_in_float64_without_global_x64(blobs):
    """Without x64 mode JAX silently computes in float32 (~1e-7 relative); agreement with
    scikit-learn to 1e-10 after 20 iterations shows the whole fit ran in float64."""
    import jax

    assert not jax.config.jax_enable_x64
    X = blobs[0]
    init = GaussianMixture(4, random_state=0, max_iter=1, tol=0.0, engine="jax")
    with pytest.warns(ConvergenceWarning):
        init.fit(X)
    kw = dict(weights_init=init.weights_, means_init=init.means_,
              precisions_init=init.precisions_, tol=0.0, max_iter=20, engine="jax")
    ours = GaussianMixture(4, **kw)
    with pytest.warns(ConvergenceWarning):
        ours.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGM(4, **{k: v for k, v in kw.items() if k != "engine"}).fit(X)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-10)
    assert not jax.config.jax_enable_x64


def test_jax_array_input(blobs):
    X = jnp.asarray(blobs[0], jnp.float32)
    gm = GaussianMixture(4, random_state=0).fit(X)
    assert isinstance(gm.predict(X), np.ndarray)


def test_pipeline_gridsearch_clone_pickle(blobs):
    X = blobs[0]
    pipe = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture(random_state=0))])
    search = GridSearchCV(pipe, {"gmm__n_components": [2, 4, 6],
                                 "gmm__covariance_type": ["full", "spherical"]}, cv=3)
    search.fit(X)
    assert search.best_params_["gmm__n_components"] >= 4
    gm = GaussianMixture(4, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(again.predict_proba(X), gm.predict_proba(X))
    c = clone(gm)
    assert not hasattr(c, "params_") and c.get_params() == gm.get_params()
    assert repr(c) == "GaussianMixture(n_components=4, random_state=0)"


def test_n_init_picks_the_best_restart(datasets):
    X = datasets["iris"]
    single = [GaussianMixture(5, random_state=s).fit(X).lower_bound_ for s in range(5)]
    multi = GaussianMixture(5, n_init=8, random_state=0).fit(X)
    assert multi.lower_bound_ >= np.median(single) - 1e-9


def test_warm_start_continues(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, warm_start=True, max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(X)
    first = gm.lower_bounds_[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    assert gm.lower_bounds_[0] >= first - 1e-12


def test_sample_and_score(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    Xs, ys = gm.sample(2000)
    assert Xs.shape == (2000, 2) and np.all(np.diff(ys) >= 0)
    for k in range(4):
        np.testing.assert_allclose(Xs[ys == k].mean(0), gm.means_[k], atol=0.12)
    assert gm.score(X) == pytest.approx(np.mean(gm.score_samples(X)))
    assert gm.icl(X) >= gm.bic(X)


# ---- errors that name the problem ---------------------------------------------------

BAD_X = [
    (np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]), "contains NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0], [3, 4]]), "contains infinity"),
    (np.arange(10.0), "Expected 2D array"),
    (np.zeros((4, 2, 2)), "dim 3"),
    (np.zeros((0, 3)), "0 sample"),
    (np.zeros((1, 3)), "1 sample"),
]


@pytest.mark.parametrize("X,match", BAD_X)
def test_bad_X_is_refused(X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture().fit(X)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_components": 0}, "n_components"),
    ({"covariance_type": "banana"}, "covariance_type"),
    ({"init_params": "magic"}, "init_params"),
    ({"reg_covar": -1.0}, "reg_covar"),
    ({"tol": -1.0}, "tol"),
    ({"max_iter": -1}, "max_iter"),
    ({"n_init": 0}, "n_init"),
    ({"kernel": "fast"}, "kernel"),
    ({"n_components": 2, "weights_init": [0.5, 0.6]}, "normalized"),
    ({"n_components": 2, "weights_init": [1.0]}, "shape"),
    ({"n_components": 2, "weights_init": [1.5, -0.5]}, r"range \[0, 1\]"),
    ({"n_components": 2, "means_init": np.zeros((3, 2))}, "means_init.*shape"),
    ({"n_components": 2, "precisions_init": np.ones((2, 2))}, "shape"),
    ({"n_components": 2, "precisions_init": np.array([[[1.0, 2], [2, 1]]] * 2)},
     "positive-definite"),
    ({"n_components": 2, "covariance_type": "diag", "precisions_init": -np.ones((2, 2))},
     "positive"),
])
def test_bad_parameters_are_refused(blobs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs).fit(blobs[0])


def test_too_few_samples_for_components():
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(np.random.RandomState(0).normal(size=(4, 2)))


@pytest.mark.parametrize("w,match", [
    (np.full(300, np.nan), "NaN"),
    (-np.ones(300), "Negative"),
    (np.ones(7), "shape"),
    (np.zeros(300), "zero"),
])
def test_bad_sample_weight(blobs, w, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(blobs[0], sample_weight=w)


def test_feature_mismatch_and_unfitted(blobs):
    X = blobs[0]
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture().predict(X)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.predict(np.zeros((5, 3)))


@pytest.mark.parametrize("engine", ["jax", "numpy"])
def test_collapsed_component_error_names_component_and_reg_covar(engine):
    """Duplicated points with reg_covar=0: a component's covariance is exactly singular;
    both engines stop and name the component and the reg_covar that would help."""
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    X[:10] += np.random.RandomState(0).normal(0, 0.1, (10, 2))
    with pytest.raises(ValueError, match=r"component \d.*Increase reg_covar \(now 0; try"):
        GaussianMixture(3, reg_covar=0.0, random_state=0, engine=engine).fit(X)
    # The suggested fix works.
    gm = GaussianMixture(3, reg_covar=1e-3, random_state=0, engine=engine).fit(X)
    assert np.all(np.isfinite(gm.covariances_))


def test_convergence_warning(datasets):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        GaussianMixture(4, max_iter=2, tol=1e-12, random_state=0).fit(datasets["iris"])


def test_covariance_attributes_follow_the_latest_fit(blobs):
    """covariances_, precisions_ and precisions_cholesky_ are computed when read: absent
    before fit, scikit-learn's relations between them hold, and a refit replaces them."""
    X = blobs[0]
    gm = GaussianMixture(3, random_state=0)
    assert not hasattr(gm, "covariances_")
    gm.fit(X)
    first = gm.covariances_.copy()
    np.testing.assert_allclose(np.linalg.inv(first), gm.precisions_, rtol=1e-10)
    U = gm.precisions_cholesky_
    np.testing.assert_allclose(U @ np.swapaxes(U, 1, 2), gm.precisions_, rtol=1e-10)
    gm.set_params(n_components=2).fit(X * 2.0)
    assert gm.covariances_.shape == (2, 2, 2)
    np.testing.assert_allclose(gm.covariances_, gm.params_.covariances, rtol=1e-12)
    assert gm.covariances_.max() > first.max() * 2  # from the new fit, not the first


def test_scoring_many_rows_pads_no_further_than_the_budget(blobs, monkeypatch):
    """A model fitted on little data is padded far (K=3 on 300 rows: 32 components, one
    program for every K up to 32); scoring rows where that padding's work would be over
    budget pads less, with the same results."""
    import bayesgmm.engines.choose as choose_mod
    from bayesgmm.fitting import score_plan

    X = blobs[0]
    gm = GaussianMixture(3, random_state=0, engine="jax").fit(X)
    size = lambda n: score_plan(gm.params_, n, "jax", gm.n_padded_).n_padded  # noqa: E731
    assert gm.n_padded_ == 32 and size(len(X)) == 32
    assert size(10**7) == 4  # 10^7 rows x 2-D: only the next power of two
    proba, bic = gm.predict_proba(X), gm.bic(X)
    monkeypatch.setattr(choose_mod, "PAD_BELOW_WORK", 1000)  # now 300 rows are "many"
    assert size(len(X)) == 3
    np.testing.assert_allclose(gm.predict_proba(X), proba, rtol=1e-9, atol=1e-14)
    assert gm.bic(X) == pytest.approx(bic, rel=1e-12)
