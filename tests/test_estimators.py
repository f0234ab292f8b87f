"""GaussianMixture facade: scikit-learn's estimator checks, conventions, dtypes, errors."""

import itertools
import pickle
import re
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import (ConvergenceWarning, DegenerateComponentWarning, GaussianMixture,
                      NotFittedError, RobustMixture)
from bayesgmm.fitting import FitOptions, fit
from bayesgmm.metrics import adjusted_rand_score
from bayesgmm.params import GMMParams, take_components

# Every scikit-learn estimator check runs. The array-API check skips itself unless
# SCIPY_ARRAY_API is set. One is expected to fail for the 2-component estimator (with one
# component the seeds cannot differ, so it passes there), with this reason:
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "k-means++ draws its random seeds differently on weighted rows than on repeated "
        "rows, so the two fits start (and stop, at tol) at different points. From the same "
        "initial parameters weighted EM equals repetition to 1e-9: see "
        "tests/test_engines_jax.py::test_integer_sample_weight_equals_repetition."
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


@pytest.mark.parametrize("make", [lambda: GaussianMixture(2, random_state=0),
                                  lambda: RobustMixture(2, random_state=0)],
                         ids=["GaussianMixture", "RobustMixture"])
def test_dataframe_columns_become_feature_names_and_are_checked(blobs, make):
    """As scikit-learn: a DataFrame fit sets feature_names_in_; a table with other or
    reordered columns is refused (it was scored as the fit's features: other labels),
    an array is taken; a fit on an array removes the names."""
    pd = pytest.importorskip("pandas")
    X = blobs[0][:100]
    df = pd.DataFrame(X, columns=["a", "b"])
    model = make().fit(df)
    assert model.feature_names_in_.dtype == object
    assert model.feature_names_in_.tolist() == ["a", "b"]
    np.testing.assert_array_equal(model.predict(X), model.predict(df))
    for method in ("predict", "predict_proba", "score_samples", "score", "bic"):
        with pytest.raises(ValueError, match=r"\['b', 'a'\].*another order.*"
                                             r"pass X\[model.feature_names_in_\]"):
            getattr(model, method)(df[["b", "a"]])
    with pytest.raises(ValueError, match=r"unseen at fit: \['c'\]; seen at fit, yet now "
                                         r"missing: \['b'\]"):
        model.predict(df.rename(columns={"b": "c"}))
    np.testing.assert_array_equal(model.predict(df[["b", "a"]][["a", "b"]]), model.predict(X))
    model.fit(X)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match=f"X has feature names, but {type(model).__name__} "
                                         "was fitted without feature names") as caught:
        swapped = model.predict(df[["b", "a"]])  # no names to check against: by position
    assert caught[0].filename == __file__  # the user's line, not the library's
    np.testing.assert_array_equal(swapped, model.predict(X[:, ::-1]))


def test_tables_without_str_column_names_as_scikit_learn(blobs):
    """A table whose columns are 0, 1 against a fit on named columns is taken by
    position with scikit-learn's warning (it was silent); columns mixing str and int
    names are refused with scikit-learn's TypeError (they were fitted as an array)."""
    from sklearn.mixture import GaussianMixture as SkGM

    pd = pytest.importorskip("pandas")
    X = blobs[0][:100]
    df = pd.DataFrame(X, columns=["a", "b"])
    model = GaussianMixture(2, random_state=0).fit(df)
    sk = SkGM(2, random_state=0).fit(df)
    numbered = pd.DataFrame(X)
    for m in (model, sk):
        with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                             f"{type(m).__name__} was fitted with feature "
                                             "names"):
            m.predict(numbered)
    np.testing.assert_array_equal(model.predict(numbered), model.predict(X))
    mixed = pd.DataFrame(X, columns=["a", 1])
    for m in (GaussianMixture(2, random_state=0), SkGM(2, random_state=0)):
        with pytest.raises(TypeError, match="only supported if all input features have "
                                            "string names"):
            m.fit(mixed)


def test_partial_fit_takes_the_first_batchs_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(blobs[0][:100], columns=["a", "b"])
    gm = GaussianMixture(2, random_state=0).partial_fit(df)
    assert gm.feature_names_in_.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="another order"):
        gm.partial_fit(df[["b", "a"]])


@pytest.mark.parametrize("make, fix", [
    (lambda: GaussianMixture(2), "pass missing='marginalize' to GaussianMixture; else drop"),
    (lambda: RobustMixture(2), "; drop or impute those rows"),
], ids=["GaussianMixture", "RobustMixture"])
def test_nan_message_names_each_estimators_own_fix(make, fix):
    """The message named GaussianMixture's option for every estimator; RobustMixture has
    no missing option."""
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN") as err:
        make().fit(X)
    assert fix in str(err.value)
    if isinstance(make(), RobustMixture):
        assert "missing=" not in str(err.value)


@pytest.mark.parametrize("make", [lambda: GaussianMixture(2, random_state=0),
                                  lambda: RobustMixture(2, random_state=0)],
                         ids=["GaussianMixture", "RobustMixture"])
def test_data_whose_squares_overflow_is_refused_at_fit_and_predict(blobs, make):
    """X * 1e200 gave ~100 overflow warnings and an IndexError at fit, NaN memberships at
    predict; both now name the largest value and the fix."""
    X = blobs[0][:100]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"magnitude [0-9.]+e\+200 .*rescale X"):
            make().fit(X * 1e200)
        model = make().fit(X)
        with pytest.raises(ValueError, match=r"magnitude [0-9.]+e\+200 .*rescale X"):
            model.predict_proba(X * 1e200)


@pytest.mark.parametrize("engine", ["jax", "numpy"])
def test_float32_data_offset_by_1e5_still_fits(engine):
    """The magnitude bound (float32: 2.8e14) leaves room for offset data: two
    well-separated clusters at 1e5 are found, their means near the generating ones."""
    rng = np.random.default_rng(0)
    centres = np.array([[1e5, 1e5], [1e5 + 20, 1e5 - 20]])
    X = (np.repeat(centres, 100, axis=0) + rng.normal(size=(200, 2))).astype(np.float32)
    gm = GaussianMixture(2, random_state=0, engine=engine).fit(X)
    assert gm.means_.dtype == np.float32
    means = gm.means_[np.argsort(gm.means_[:, 0])]
    np.testing.assert_allclose(means, centres, atol=0.5)
    assert np.isfinite(gm.predict_proba(X)).all()


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


# ---- scikit-learn's own tests, run against bayesgmm.GaussianMixture -----------------
# Ported from scikit-learn 1.9's sklearn/mixture/tests/test_gaussian_mixture.py (BSD-3-
# Clause), with only the estimator changed, except where noted: its RandomData fixture,
# then the tests that exercise GaussianMixture's public behaviour. Not ported: the
# tests of scikit-learn's private helpers (_estimate_gaussian_*, _compute_*, suffstat),
# test_gaussian_mixture_precisions_init (calls the private _initialize), the array-API
# tests, and the Mock-based test that all three *_init skip the initialisation
# (test_all_inits_are_returned_as_given below checks the outcome instead).

SK_COVARIANCE_TYPE = ["full", "tied", "diag", "spherical"]


def _sk_generate_data(n_samples, n_features, weights, means, precisions, covariance_type,
                      dtype=np.float64):
    rng = np.random.RandomState(0)
    X = []
    if covariance_type == "spherical":
        for w, m, c in zip(weights, means, precisions["spherical"]):
            X.append(rng.multivariate_normal(m, c * np.eye(n_features),
                                             int(np.round(w * n_samples))).astype(dtype))
    if covariance_type == "diag":
        for w, m, c in zip(weights, means, precisions["diag"]):
            X.append(rng.multivariate_normal(m, np.diag(c),
                                             int(np.round(w * n_samples))).astype(dtype))
    if covariance_type == "tied":
        for w, m in zip(weights, means):
            X.append(rng.multivariate_normal(m, precisions["tied"],
                                             int(np.round(w * n_samples))).astype(dtype))
    if covariance_type == "full":
        for w, m, c in zip(weights, means, precisions["full"]):
            X.append(rng.multivariate_normal(m, c, int(np.round(w * n_samples))).astype(dtype))
    return np.vstack(X)


class SkRandomData:
    """scikit-learn's RandomData: known weights, means and covariances per type."""

    def __init__(self, rng, n_samples=200, n_components=2, n_features=2, scale=50,
                 dtype=np.float64):
        from scipy import linalg
        from sklearn.datasets import make_spd_matrix

        self.n_samples, self.n_components, self.n_features = n_samples, n_components, n_features
        self.weights = rng.rand(n_components).astype(dtype)
        self.weights = self.weights.astype(dtype) / self.weights.sum()
        self.means = rng.rand(n_components, n_features).astype(dtype) * scale
        self.covariances = {
            "spherical": 0.5 + rng.rand(n_components).astype(dtype),
            "diag": (0.5 + rng.rand(n_components, n_features).astype(dtype)) ** 2,
            "tied": make_spd_matrix(n_features, random_state=rng).astype(dtype),
            "full": np.array([make_spd_matrix(n_features, random_state=rng).astype(dtype) * 0.5
                              for _ in range(n_components)]),
        }
        self.precisions = {
            "spherical": 1.0 / self.covariances["spherical"],
            "diag": 1.0 / self.covariances["diag"],
            "tied": linalg.inv(self.covariances["tied"]),
            "full": np.array([linalg.inv(c) for c in self.covariances["full"]]),
        }
        self.X = {ct: _sk_generate_data(n_samples, n_features, self.weights, self.means,
                                        self.covariances, ct, dtype=dtype)
                  for ct in SK_COVARIANCE_TYPE}
        self.Y = np.hstack([np.full(int(np.round(w * n_samples)), k, dtype=int)
                            for k, w in enumerate(self.weights)])


def test_sk_gaussian_mixture_attributes():
    X = np.random.RandomState(0).rand(10, 2)
    gmm = GaussianMixture(n_components=2, tol=1e-4, n_init=3, max_iter=30, reg_covar=1e-1,
                          covariance_type="full", init_params="random").fit(X)
    assert (gmm.n_components, gmm.covariance_type, gmm.tol, gmm.reg_covar, gmm.max_iter,
            gmm.n_init, gmm.init_params) == (2, "full", 1e-4, 1e-1, 30, 3, "random")


def test_sk_check_weights():
    import re

    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    n_components = rand_data.n_components
    X = rand_data.X["full"]
    g = GaussianMixture(n_components=n_components)

    weights_bad_shape = rng.rand(n_components, 1)
    g.weights_init = weights_bad_shape
    msg = re.escape("The parameter 'weights' should have the shape of "
                    f"({n_components},), but got {weights_bad_shape.shape}")
    with pytest.raises(ValueError, match=msg):
        g.fit(X)

    # scikit-learn's message prints the minimum as "max value" and the maximum as
    # "min value"; ours prints each under its own name (same words otherwise).
    weights_bad_range = rng.rand(n_components) + 1
    g.weights_init = weights_bad_range
    msg = re.escape("The parameter 'weights' should be in the range [0, 1], but got"
                    f" max value {np.max(weights_bad_range):.5f}, "
                    f"min value {np.min(weights_bad_range):.5f}")
    with pytest.raises(ValueError, match=msg):
        g.fit(X)

    weights_bad_norm = rng.rand(n_components)
    weights_bad_norm = weights_bad_norm / (weights_bad_norm.sum() + 1)
    g.weights_init = weights_bad_norm
    msg = re.escape("The parameter 'weights' should be normalized, "
                    f"but got sum(weights) = {np.sum(weights_bad_norm):.5f}")
    with pytest.raises(ValueError, match=msg):
        g.fit(X)

    weights = rand_data.weights
    g = GaussianMixture(weights_init=weights, n_components=n_components)
    g.fit(X)
    np.testing.assert_array_equal(weights, g.weights_init)


def test_sk_check_means():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    n_components, n_features = rand_data.n_components, rand_data.n_features
    X = rand_data.X["full"]
    g = GaussianMixture(n_components=n_components)
    g.means_init = rng.rand(n_components + 1, n_features)
    with pytest.raises(ValueError, match="The parameter 'means' should have the shape of "):
        g.fit(X)
    g.means_init = rand_data.means
    g.fit(X)
    np.testing.assert_array_equal(rand_data.means, g.means_init)


def test_sk_check_precisions():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    n_components, n_features = rand_data.n_components, rand_data.n_features
    precisions_bad_shape = {
        "full": np.ones((n_components + 1, n_features, n_features)),
        "tied": np.ones((n_features + 1, n_features + 1)),
        "diag": np.ones((n_components + 1, n_features)),
        "spherical": np.ones((n_components + 1)),
    }
    precisions_not_pos = np.ones((n_components, n_features, n_features))
    precisions_not_pos[0] = np.eye(n_features)
    precisions_not_pos[0, 0, 0] = -1.0
    precisions_not_positive = {
        "full": precisions_not_pos,
        "tied": precisions_not_pos[0],
        "diag": np.full((n_components, n_features), -1.0),
        "spherical": np.full(n_components, -1.0),
    }
    not_positive_errors = {"full": "symmetric, positive-definite",
                           "tied": "symmetric, positive-definite",
                           "diag": "positive", "spherical": "positive"}
    for covar_type in SK_COVARIANCE_TYPE:
        X = SkRandomData(rng).X[covar_type]
        g = GaussianMixture(n_components=n_components, covariance_type=covar_type,
                            random_state=rng)
        g.precisions_init = precisions_bad_shape[covar_type]
        msg = f"The parameter '{covar_type} precision' should have the shape of"
        with pytest.raises(ValueError, match=msg):
            g.fit(X)
        g.precisions_init = precisions_not_positive[covar_type]
        with pytest.raises(ValueError,
                           match=f"'{covar_type} precision' should be "
                                 f"{not_positive_errors[covar_type]}"):
            g.fit(X)
        g.precisions_init = rand_data.precisions[covar_type]
        g.fit(X)
        np.testing.assert_array_equal(rand_data.precisions[covar_type], g.precisions_init)


def test_sk_gaussian_mixture_predict_predict_proba():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    for covar_type in SK_COVARIANCE_TYPE:
        X, Y = rand_data.X[covar_type], rand_data.Y
        g = GaussianMixture(n_components=rand_data.n_components, random_state=rng,
                            weights_init=rand_data.weights, means_init=rand_data.means,
                            precisions_init=rand_data.precisions[covar_type],
                            covariance_type=covar_type)
        msg = ("This GaussianMixture instance is not fitted yet. Call 'fit' "
               "with appropriate arguments before using this estimator.")
        with pytest.raises(NotFittedError, match=msg):
            g.predict(X)
        g.fit(X)
        np.testing.assert_array_equal(g.predict(X), g.predict_proba(X).argmax(axis=1))
        assert adjusted_rand_score(Y, g.predict(X)) > 0.95


@pytest.mark.filterwarnings("ignore:.*did not converge.*")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed, max_iter, tol", [
    (0, 2, 1e-7),  # strict non-convergence
    (1, 2, 1e-1),  # loose non-convergence
    (3, 300, 1e-7),  # strict convergence
    (4, 300, 1e-1),  # loose convergence
])
def test_sk_gaussian_mixture_fit_predict(seed, max_iter, tol, dtype):
    import copy

    rng = np.random.RandomState(seed)
    rand_data = SkRandomData(rng, dtype=dtype)
    for covar_type in SK_COVARIANCE_TYPE:
        X, Y = rand_data.X[covar_type], rand_data.Y
        g = GaussianMixture(n_components=rand_data.n_components, random_state=rng,
                            weights_init=rand_data.weights, means_init=rand_data.means,
                            precisions_init=rand_data.precisions[covar_type],
                            covariance_type=covar_type, max_iter=max_iter, tol=tol)
        f = copy.deepcopy(g)
        Y_pred1 = f.fit(X).predict(X)
        Y_pred2 = g.fit_predict(X)
        np.testing.assert_array_equal(Y_pred1, Y_pred2)
        assert adjusted_rand_score(Y, Y_pred2) > 0.95
        assert g.means_.dtype == dtype and g.weights_.dtype == dtype
        assert g.precisions_.dtype == dtype


def test_sk_gaussian_mixture_fit_predict_n_init():
    X = np.random.RandomState(0).randn(1000, 5)
    gm = GaussianMixture(n_components=5, n_init=5, random_state=0)
    np.testing.assert_array_equal(gm.fit_predict(X), gm.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sk_gaussian_mixture_fit(dtype):
    from sklearn.covariance import EmpiricalCovariance

    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, dtype=dtype)
    n_features, n_components = rand_data.n_features, rand_data.n_components
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        g = GaussianMixture(n_components=n_components, n_init=20, reg_covar=0,
                            random_state=rng, covariance_type=covar_type)
        g.fit(X)
        np.testing.assert_allclose(np.sort(g.weights_), np.sort(rand_data.weights),
                                   rtol=0.1, atol=1e-2)
        arg_idx1, arg_idx2 = g.means_[:, 0].argsort(), rand_data.means[:, 0].argsort()
        np.testing.assert_allclose(g.means_[arg_idx1], rand_data.means[arg_idx2],
                                   rtol=0.1, atol=1e-2)
        if covar_type == "full":
            prec_pred, prec_test = g.precisions_, rand_data.precisions["full"]
        elif covar_type == "tied":
            prec_pred = np.array([g.precisions_] * n_components)
            prec_test = np.array([rand_data.precisions["tied"]] * n_components)
        elif covar_type == "spherical":
            prec_pred = np.array([np.eye(n_features) * c for c in g.precisions_])
            prec_test = np.array([np.eye(n_features) * c
                                  for c in rand_data.precisions["spherical"]])
        else:
            prec_pred = np.array([np.diag(d) for d in g.precisions_])
            prec_test = np.array([np.diag(d) for d in rand_data.precisions["diag"]])
        arg_idx1 = np.trace(prec_pred, axis1=1, axis2=2).argsort()
        arg_idx2 = np.trace(prec_test, axis1=1, axis2=2).argsort()
        for k, h in zip(arg_idx1, arg_idx2):
            ecov = EmpiricalCovariance()
            ecov.covariance_ = prec_test[h]
            np.testing.assert_allclose(ecov.error_norm(prec_pred[k]), 0, atol=0.15)
        assert g.means_.dtype == dtype
        assert g.covariances_.dtype == dtype and g.precisions_.dtype == dtype


def test_sk_gaussian_mixture_fit_best_params():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    n_components, n_init = rand_data.n_components, 10
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        g = GaussianMixture(n_components=n_components, n_init=1, reg_covar=0,
                            random_state=rng, covariance_type=covar_type)
        ll = []
        for _ in range(n_init):
            g.fit(X)
            ll.append(g.score(X))
        g_best = GaussianMixture(n_components=n_components, n_init=n_init, reg_covar=0,
                                 random_state=rng, covariance_type=covar_type)
        g_best.fit(X)
        np.testing.assert_almost_equal(np.min(ll), g_best.score(X))


def test_sk_gaussian_mixture_fit_convergence_warning():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=1)
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        g = GaussianMixture(n_components=rand_data.n_components, n_init=1, max_iter=1,
                            reg_covar=0, random_state=rng, covariance_type=covar_type)
        msg = ("Best performing initialization did not converge. "
               "Try different init parameters, or increase max_iter, "
               "tol, or check for degenerate data.")
        with pytest.warns(ConvergenceWarning, match=msg):
            g.fit(X)


def test_sk_multiple_init():
    rng = np.random.RandomState(0)
    X = rng.randn(50, 5)
    for cv_type in SK_COVARIANCE_TYPE:
        train1 = GaussianMixture(n_components=2, covariance_type=cv_type,
                                 random_state=0).fit(X).score(X)
        train2 = GaussianMixture(n_components=2, covariance_type=cv_type, random_state=0,
                                 n_init=5).fit(X).score(X)
        assert train2 >= train1


def test_sk_gaussian_mixture_n_parameters():
    # scikit-learn's test reads the private g._n_parameters(); ours is params_.n_parameters
    rng = np.random.RandomState(0)
    X = rng.randn(50, 5)
    n_params = {"spherical": 13, "diag": 21, "tied": 26, "full": 41}
    for cv_type in SK_COVARIANCE_TYPE:
        g = GaussianMixture(n_components=2, covariance_type=cv_type, random_state=rng).fit(X)
        assert g.params_.n_parameters == n_params[cv_type]


def test_sk_bic_1d_1component():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 1)
    bic_full = GaussianMixture(n_components=1, covariance_type="full",
                               random_state=rng).fit(X).bic(X)
    for covariance_type in ["tied", "diag", "spherical"]:
        bic = GaussianMixture(n_components=1, covariance_type=covariance_type,
                              random_state=rng).fit(X).bic(X)
        np.testing.assert_almost_equal(bic_full, bic)


def test_sk_gaussian_mixture_aic_bic():
    rng = np.random.RandomState(0)
    n_samples, n_features, n_components = 50, 3, 2
    X = rng.randn(n_samples, n_features)
    sgh = 0.5 * (np.linalg.slogdet(np.cov(X.T, bias=1))[1]
                 + n_features * (1 + np.log(2 * np.pi)))  # standard gaussian entropy
    for cv_type in SK_COVARIANCE_TYPE:
        g = GaussianMixture(n_components=n_components, covariance_type=cv_type,
                            random_state=rng, max_iter=200)
        g.fit(X)
        aic = 2 * n_samples * sgh + 2 * g.params_.n_parameters
        bic = 2 * n_samples * sgh + np.log(n_samples) * g.params_.n_parameters
        bound = n_features / np.sqrt(n_samples)
        assert (g.aic(X) - aic) / n_samples < bound
        assert (g.bic(X) - bic) / n_samples < bound


def test_sk_gaussian_mixture_verbose(capsys):
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        for verbose in (1, 2):
            GaussianMixture(n_components=rand_data.n_components, n_init=1, reg_covar=0,
                            random_state=rng, covariance_type=covar_type,
                            verbose=verbose).fit(X)
    assert "Initialization 0" in capsys.readouterr().out  # ours reports per restart


@pytest.mark.filterwarnings("ignore:.*did not converge.*")
@pytest.mark.parametrize("seed", (0, 1, 2))
def test_sk_warm_start(seed):
    random_state = seed
    rng = np.random.RandomState(random_state)
    X = rng.rand(500, 2)
    # the warm start gives the same result for the same number of iterations
    g = GaussianMixture(n_components=2, n_init=1, max_iter=2, reg_covar=0, init_params="kmeans",
                        random_state=random_state, warm_start=False)
    h = GaussianMixture(n_components=2, n_init=1, max_iter=1, reg_covar=0, init_params="kmeans",
                        random_state=random_state, warm_start=True)
    g.fit(X)
    score1 = h.fit(X).score(X)
    score2 = h.fit(X).score(X)
    np.testing.assert_almost_equal(g.weights_, h.weights_)
    np.testing.assert_almost_equal(g.means_, h.means_)
    np.testing.assert_almost_equal(g.precisions_, h.precisions_)
    assert score2 > score1
    # with warm_start=True, refits converge to a good solution
    g = GaussianMixture(n_components=2, n_init=1, max_iter=5, reg_covar=0, init_params="kmeans",
                        random_state=random_state, warm_start=False, tol=1e-6)
    h = GaussianMixture(n_components=2, n_init=1, max_iter=5, reg_covar=0, init_params="kmeans",
                        random_state=random_state, warm_start=True, tol=1e-6)
    g.fit(X)
    assert not g.converged_
    h.fit(X)
    for _ in range(1000):
        h.fit(X)
        if h.converged_:
            break
    assert h.converged_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sk_convergence_detected_with_warm_start():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng)
    X = rand_data.X["full"]
    for max_iter in (1, 2, 50):
        gmm = GaussianMixture(n_components=rand_data.n_components, warm_start=True,
                              max_iter=max_iter, random_state=rng)
        for _ in range(100):
            gmm.fit(X)
            if gmm.converged_:
                break
        assert gmm.converged_
        assert max_iter >= gmm.n_iter_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sk_score(dtype):
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=7, dtype=dtype)
    X = rand_data.X["full"]
    assert X.dtype == dtype
    gmm1 = GaussianMixture(n_components=rand_data.n_components, n_init=1, max_iter=1,
                           reg_covar=0, random_state=rng, covariance_type="full")
    msg = ("This GaussianMixture instance is not fitted yet. Call 'fit' with "
           "appropriate arguments before using this estimator.")
    with pytest.raises(NotFittedError, match=msg):
        gmm1.score(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm1.fit(X)
    assert gmm1.means_.dtype == dtype and gmm1.covariances_.dtype == dtype
    gmm_score_proba = gmm1.score_samples(X).mean()
    np.testing.assert_almost_equal(gmm1.score(X), gmm_score_proba,
                                   decimal=7 if dtype == np.float64 else 5)
    assert gmm_score_proba.dtype == dtype
    gmm2 = GaussianMixture(n_components=rand_data.n_components, n_init=1, reg_covar=0,
                           random_state=rng, covariance_type="full").fit(X)
    assert gmm2.score(X) > gmm1.score(X)


def test_sk_score_samples():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=7)
    X = rand_data.X["full"]
    gmm = GaussianMixture(n_components=rand_data.n_components, n_init=1, reg_covar=0,
                          random_state=rng, covariance_type="full")
    with pytest.raises(NotFittedError, match="This GaussianMixture instance is not fitted"):
        gmm.score_samples(X)
    assert gmm.fit(X).score_samples(X).shape[0] == rand_data.n_samples


@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_sk_monotonic_likelihood(engine):
    """Each warm max_iter=1 fit (one EM step, no regularisation) raises the training
    likelihood, until convergence is detected. Before warm fits measured their change
    from the previous lower bound, convergence never came and a 4e-16 decrease after
    hundreds of steps failed the test. engine="jax": ours, the same on the compiled
    path."""
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=7)
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        gmm = GaussianMixture(n_components=rand_data.n_components,
                              covariance_type=covar_type, reg_covar=0, warm_start=True,
                              max_iter=1, random_state=rng, tol=1e-7, engine=engine)
        current_log_likelihood = -np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(600):
                prev_log_likelihood = current_log_likelihood
                current_log_likelihood = gmm.fit(X).score(X)
                assert current_log_likelihood >= prev_log_likelihood
                if gmm.converged_:
                    break
            assert gmm.converged_


@pytest.mark.parametrize("covar_type", [
    "full", "tied", "diag", "spherical"])
def test_sk_regularisation(covar_type):
    import re

    rng = np.random.RandomState(0)
    n_samples, n_features = 10, 5
    X = np.vstack((np.ones((n_samples // 2, n_features)),
                   np.zeros((n_samples // 2, n_features))))
    gmm = GaussianMixture(n_components=n_samples, reg_covar=0, covariance_type=covar_type,
                          random_state=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        msg = re.escape(
            "Fitting the mixture model failed because some components have"
            " ill-defined empirical covariance (for instance caused by "
            "singleton or collapsed samples). Try to decrease the number "
            "of components, increase reg_covar, or scale the input data.")
        with pytest.raises(ValueError, match=msg):
            gmm.fit(X)
        gmm.set_params(reg_covar=1e-6).fit(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covar_type", SK_COVARIANCE_TYPE)
def test_sk_fitted_precision_covariance_consistency(covar_type, dtype):
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=7, dtype=dtype)
    X = rand_data.X[covar_type]
    gmm = GaussianMixture(n_components=rand_data.n_components, covariance_type=covar_type,
                          random_state=rng, n_init=5).fit(X)
    assert gmm.precisions_.dtype == dtype and gmm.covariances_.dtype == dtype
    decimal = 6 if dtype == np.float64 else 3
    if covar_type == "full":
        for prec, covar in zip(gmm.precisions_, gmm.covariances_):
            np.testing.assert_array_almost_equal(np.linalg.inv(prec), covar, decimal)
    elif covar_type == "tied":
        np.testing.assert_array_almost_equal(np.linalg.inv(gmm.precisions_),
                                             gmm.covariances_, decimal)
    else:
        np.testing.assert_array_almost_equal(gmm.precisions_, 1.0 / gmm.covariances_, decimal)


def test_sk_sample():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=7, n_components=3)
    n_features, n_components = rand_data.n_features, rand_data.n_components
    for covar_type in SK_COVARIANCE_TYPE:
        X = rand_data.X[covar_type]
        gmm = GaussianMixture(n_components=n_components, covariance_type=covar_type,
                              random_state=rng)
        with pytest.raises(NotFittedError, match="This GaussianMixture instance is not fitted"):
            gmm.sample(0)
        gmm.fit(X)
        with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
            gmm.sample(0)
        n_samples = 20000
        X_s, y_s = gmm.sample(n_samples)
        for k in range(n_components):
            if covar_type == "full":
                np.testing.assert_array_almost_equal(gmm.covariances_[k],
                                                     np.cov(X_s[y_s == k].T), decimal=1)
            elif covar_type == "tied":
                np.testing.assert_array_almost_equal(gmm.covariances_,
                                                     np.cov(X_s[y_s == k].T), decimal=1)
            elif covar_type == "diag":
                np.testing.assert_array_almost_equal(
                    gmm.covariances_[k], np.diag(np.cov(X_s[y_s == k].T)), decimal=1)
            else:
                np.testing.assert_array_almost_equal(
                    gmm.covariances_[k], np.var(X_s[y_s == k] - gmm.means_[k]), decimal=1)
        means_s = np.array([np.mean(X_s[y_s == k], 0) for k in range(n_components)])
        np.testing.assert_array_almost_equal(gmm.means_, means_s, decimal=1)
        assert X_s.shape == (n_samples, n_features)
        for sample_size in range(1, 100):  # scikit-learn's loop (nothing compiles per n)
            assert gmm.sample(sample_size)[0].shape == (sample_size, n_features)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sk_init():
    for random_state in range(15):
        rand_data = SkRandomData(np.random.RandomState(random_state), n_samples=50, scale=1)
        X = rand_data.X["full"]
        gmm1 = GaussianMixture(n_components=rand_data.n_components, n_init=1, max_iter=1,
                               random_state=random_state).fit(X)
        gmm2 = GaussianMixture(n_components=rand_data.n_components, n_init=10, max_iter=1,
                               random_state=random_state).fit(X)
        assert gmm2.lower_bound_ >= gmm1.lower_bound_


def test_sk_gaussian_mixture_setting_best_params():
    """scikit-learn's test for its issue 18216, with one deliberate difference: the
    initial means of components 0 and 1 sit exactly on data rows with a tiny variance,
    and with ``reg_covar=0`` one iteration collapses each onto its row. scikit-learn
    accepts the variances it is left with (3.6e-16 and 9.5e-16: round-off) and sets
    its attributes; bayesgmm refuses a collapsed component in every covariance type
    (the README's promise), naming it and a reg_covar to try. With a small reg_covar
    the fit runs and sets every attribute, as scikit-learn's test asks."""
    rnd = np.random.RandomState(0)
    X = rnd.uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                                204.78596008931834, 15.867423501783637, 85.4595728389735])
    weights_init = [0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                    0.06666666666666674, 0.7000000000000001, 0.10000000000000007]
    gmm = GaussianMixture(covariance_type="spherical", reg_covar=0, means_init=means_init,
                          weights_init=weights_init, random_state=rnd,
                          n_components=len(weights_init), precisions_init=precisions_init,
                          max_iter=1)
    with pytest.raises(ValueError, match=r"component 0 got a singular covariance.*reg_covar"):
        gmm.fit(X)
    gmm.set_params(reg_covar=1e-6)
    with pytest.warns(ConvergenceWarning):
        gmm.fit(X)
    assert not gmm.converged_
    for attr in ["weights_", "means_", "covariances_", "precisions_cholesky_", "n_iter_",
                 "lower_bound_", "lower_bounds_"]:
        assert hasattr(gmm, attr)


@pytest.mark.parametrize("global_random_seed", [0, 42])
@pytest.mark.parametrize("init_params", ["random", "random_from_data", "k-means++", "kmeans"])
def test_sk_init_means_not_duplicated(init_params, global_random_seed):
    rng = np.random.RandomState(global_random_seed)
    rand_data = SkRandomData(rng, scale=5)
    X = rand_data.X["full"]
    gmm = GaussianMixture(n_components=rand_data.n_components, init_params=init_params,
                          random_state=rng, max_iter=0)
    gmm.fit(X)
    for i_mean, j_mean in itertools.combinations(gmm.means_, r=2):
        assert not np.allclose(i_mean, j_mean)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("global_random_seed", [0, 42])
@pytest.mark.parametrize("init_params", ["random", "random_from_data", "k-means++", "kmeans"])
def test_sk_means_for_all_inits(init_params, global_random_seed, dtype):
    rng = np.random.RandomState(global_random_seed)
    rand_data = SkRandomData(rng, scale=5, dtype=dtype)
    X = rand_data.X["full"]
    gmm = GaussianMixture(n_components=rand_data.n_components, init_params=init_params,
                          random_state=rng)
    gmm.fit(X)
    assert gmm.means_.shape == (rand_data.n_components, X.shape[1])
    assert np.all(X.min(axis=0) <= gmm.means_)
    assert np.all(gmm.means_ <= X.max(axis=0))
    assert gmm.converged_
    assert gmm.means_.dtype == dtype
    assert gmm.covariances_.dtype == dtype and gmm.weights_.dtype == dtype


def test_sk_max_iter_zero():
    rng = np.random.RandomState(0)
    rand_data = SkRandomData(rng, scale=5)
    X = rand_data.X["full"]
    means_init = [[20, 30], [30, 25]]
    gmm = GaussianMixture(n_components=rand_data.n_components, random_state=rng,
                          means_init=means_init, tol=1e-06, max_iter=0)
    gmm.fit(X)
    np.testing.assert_allclose(gmm.means_, means_init)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sk_gaussian_mixture_precisions_init_diag(dtype):
    """Given precisions start EM where the estimated ones would (scikit-learn issue
    16944): the same number of iterations and the same result."""
    from sklearn.cluster import KMeans
    from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

    rng = np.random.RandomState(0)
    shifted_gaussian = rng.randn(300, 2) + np.array([20, 20])
    C = np.array([[0.0, -0.7], [3.5, 0.7]])
    stretched_gaussian = np.dot(rng.randn(300, 2), C)
    X = np.vstack([shifted_gaussian, stretched_gaussian]).astype(dtype)
    n_components, covariance_type, reg_covar, random_state = 2, "diag", 1e-6, 0
    resp = np.zeros((X.shape[0], n_components)).astype(dtype)
    label = KMeans(n_clusters=n_components, n_init=1, random_state=random_state).fit(X).labels_
    resp[np.arange(X.shape[0]), label] = 1
    _, _, covariance = _estimate_gaussian_parameters(X, resp, reg_covar=reg_covar,
                                                     covariance_type=covariance_type)
    precisions_init = 1 / covariance
    gm_with_init = GaussianMixture(n_components=n_components, covariance_type=covariance_type,
                                   reg_covar=reg_covar, precisions_init=precisions_init,
                                   random_state=random_state).fit(X)
    gm_without_init = GaussianMixture(n_components=n_components, init_params="kmeans",
                                      covariance_type=covariance_type, reg_covar=reg_covar,
                                      random_state=random_state).fit(X)
    for gm in (gm_with_init, gm_without_init):
        assert gm.means_.dtype == dtype and gm.covariances_.dtype == dtype
        assert gm.precisions_cholesky_.dtype == dtype
    assert gm_without_init.n_iter_ == gm_with_init.n_iter_
    np.testing.assert_allclose(gm_with_init.precisions_cholesky_,
                               gm_without_init.precisions_cholesky_,
                               rtol=1e-7 if dtype == np.float64 else 1e-4)


def test_sk_gaussian_mixture_single_component_stable():
    X = np.random.RandomState(0).multivariate_normal(np.zeros(2), np.identity(2), size=3)
    GaussianMixture(n_components=1).fit(X).sample()


# ---- scikit-learn's semantics for warm starts and max_iter=0, against scikit-learn ----


def _sk_start(X, K, ct="full"):
    """An identical start for both libraries: scikit-learn's one-iteration fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = SkGM(K, covariance_type=ct, random_state=0, max_iter=1).fit(X)
    return dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_,
                covariance_type=ct)


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("max_iter", [1, 3])
def test_warm_fits_follow_sklearn_step_by_step(datasets, engine, max_iter):
    """A sequence of warm fits from one start: after each, converged_, n_iter_, the
    lower bound and the parameters equal scikit-learn's, until it detects convergence
    (which a warm fit measures from the previous fit's lower bound)."""
    X = datasets["iris"]
    kw = dict(**_sk_start(X, 3), tol=1e-4, max_iter=max_iter, warm_start=True)
    ours, ref = GaussianMixture(3, engine=engine, **kw), SkGM(3, **kw)
    flags = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(60):
            ours.fit(X)
            ref.fit(X)
            assert (ours.converged_, ours.n_iter_) == (ref.converged_, ref.n_iter_)
            assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
            for attr in ("weights_", "means_", "covariances_"):
                np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr),
                                           rtol=1e-8, atol=1e-12, err_msg=attr)
            flags.append(ref.converged_)
            if ref.converged_:
                break
    assert flags[-1] and not any(flags[:-1]) and len(flags) > 1  # both outcomes compared


@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_warm_fit_of_a_converged_model_stops_after_one_iteration(datasets, engine):
    """A warm fit whose first iteration changes the lower bound by less than tol stops
    there, converged (scikit-learn's rule), although EM alone would run on: the
    engines measure the first change from -inf, so that iteration is run again alone."""
    X = datasets["iris"]
    kw = dict(**_sk_start(X, 3), tol=1e-9, max_iter=500)
    ours, ref = GaussianMixture(3, engine=engine, **kw).fit(X), SkGM(3, **kw).fit(X)
    ours.set_params(warm_start=True, tol=1e-3, max_iter=50)
    ref.set_params(warm_start=True, tol=1e-3, max_iter=50)
    ours.fit(X)
    ref.fit(X)
    assert ref.n_iter_ == 1 and ref.converged_
    assert (ours.n_iter_, ours.converged_) == (1, True)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-8)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_all_inits_are_returned_as_given_at_max_iter_zero(blobs, ct):
    """max_iter=0 with weights, means and precisions given: those, unchanged, and
    scikit-learn's report of no iteration (n_iter_ 0, lower bound -inf, not converged,
    no warning). scikit-learn 1.9 itself fails on this input (its _get_parameters reads
    a covariances_ it never set), so its report comes from a means_init-only fit."""
    X = blobs[0]
    kw = dict(**_sk_start(X, 4, ct), max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns nothing at max_iter=0
        ours = GaussianMixture(4, **kw).fit(X)
        ref = SkGM(4, covariance_type=ct, means_init=kw["means_init"], max_iter=0).fit(X)
    np.testing.assert_array_equal(ours.weights_, kw["weights_init"])
    np.testing.assert_array_equal(ours.means_, kw["means_init"])
    np.testing.assert_allclose(ours.precisions_, kw["precisions_init"], rtol=1e-10)
    assert (ours.n_iter_, ours.converged_, ours.lower_bounds_) == (0, False, [])
    assert (ref.n_iter_, ref.converged_, ref.lower_bounds_) == (0, False, [])
    assert ours.lower_bound_ == ref.lower_bound_ == -np.inf


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("method", ["kmeans", "k-means++", "random", "random_from_data"])
def test_max_iter_zero_returns_where_em_starts(datasets, method, engine):
    """The parameters of a max_iter=0 fit are the start a max_iter=1 fit iterates from:
    one scikit-learn EM step from them gives our one-iteration fit."""
    X = datasets["aniso"]
    make = lambda n: GaussianMixture(3, init_params=method, random_state=5,  # noqa: E731
                                     max_iter=n, engine=engine)
    start = make(0).fit(X)
    assert start.n_iter_ == 0 and np.isneginf(start.lower_bound_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = make(1).fit(X)
        ref = SkGM(3, weights_init=start.weights_, means_init=start.means_,
                   precisions_init=start.precisions_, max_iter=1).fit(X)
    assert one.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(one.means_, ref.means_, rtol=1e-8)
    np.testing.assert_allclose(one.covariances_, ref.covariances_, rtol=1e-7)


def test_warm_start_refuses_a_changed_model(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0, warm_start=True).fit(X)
    with pytest.raises(ValueError, match="previous fit, which has 4 'full' components, but "
                                         "n_components=3"):
        gm.set_params(n_components=3).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is "
                                         "expecting 2"):
        gm.set_params(n_components=4).fit(np.c_[X, X[:, :1]])


def test_warm_start_with_max_iter_zero_keeps_the_fit(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    means = gm.means_.copy()
    gm.set_params(warm_start=True, max_iter=0).fit(X)
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.n_iter_ == 0 and np.isneginf(gm.lower_bound_)


def test_convergence_warning_is_sklearns():
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    assert issubclass(ConvergenceWarning, SkConvergenceWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", SkConvergenceWarning)  # scikit-learn's filter wins
        GaussianMixture(4, max_iter=1, random_state=0).fit(np.random.RandomState(0).rand(50, 2))


# ---- from_params ----------------------------------------------------------------------


def test_from_params_is_the_fitted_estimator(datasets):
    """A fit's params, info and padded size given back: the same predictions bit for
    bit, the same report, constructor arguments passed through."""
    X = datasets["aniso"]
    options = FitOptions(n_components=3, covariance_type="diag", random_state=0,
                         engine="jax")
    padded, info = fit(X, options)
    gm = GaussianMixture(3, covariance_type="diag", random_state=0, engine="jax").fit(X)
    back = GaussianMixture.from_params(take_components(padded, 3), info=info,
                                       n_padded=padded.n_components, engine="jax")
    assert back.get_params()["covariance_type"] == "diag" and back.engine == "jax"
    assert back.n_padded_ == gm.n_padded_ == 32
    assert (back.n_iter_, back.converged_, back.lower_bound_, back.lower_bounds_) == (
        gm.n_iter_, gm.converged_, gm.lower_bound_, gm.lower_bounds_)
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    assert back.bic(X) == gm.bic(X)


def test_from_params_without_info_reports_no_iteration(blobs):
    ref = SkGM(4, random_state=0).fit(blobs[0])
    gm = GaussianMixture.from_params(GMMParams.from_estimator(ref))
    assert (gm.n_components, gm.covariance_type, gm.n_padded_) == (4, "full", 4)
    assert (gm.n_iter_, gm.converged_, gm.lower_bounds_) == (0, False, [])
    assert np.isneginf(gm.lower_bound_) and gm.n_features_in_ == 2
    np.testing.assert_allclose(gm.predict_proba(blobs[0]), ref.predict_proba(blobs[0]),
                               atol=1e-10)
    with pytest.raises(ValueError, match="params hold 4 'full' components, but from_params "
                                         "got n_components=3"):
        GaussianMixture.from_params(gm.params_, n_components=3)


def test_from_params_refuses_unusable_params(blobs):
    """from_params checked nothing: weights [-0.5, 1.5] or a NaN mean predicted NaN, a
    factor of the wrong shape failed in a matrix inverse ("inv: Input operand 0 does not
    have enough dimensions"), a str in an AttributeError. The check is load's
    (validation.check_params)."""
    X = blobs[0]
    p = GaussianMixture(2, random_state=0).fit(X).params_
    cases = {
        "negative weights": (GMMParams(np.array([-0.5, 1.5]), p.means, p.cov_factor),
                             r"params.weights are not on the simplex \(a probability "
                             r"vector: non-negative, summing to 1\): min -0.5"),
        "weights sum": (GMMParams(np.array([0.5, 0.6]), p.means, p.cov_factor),
                        r"params.weights are not on the simplex.* sums in \[1.1, 1.1\]"),
        "nan mean": (GMMParams(p.weights, np.where(np.eye(2, dtype=bool), np.nan, p.means),
                               p.cov_factor), r"params.means has a non-finite value at "
                                              r"\[0, 0\]"),
        "factor shape": (GMMParams(p.weights, p.means, p.cov_factor[0]),
                         r"params.cov_factor has shape \(2, 2\); with K=2 components, D=2 "
                         r"features \('full'\) it must be \(2, 2, 2\)"),
        "diag factor of full": (GMMParams(p.weights, p.means, np.ones((2, 2)), "diag"), None),
        "batched": (GMMParams(p.weights[None], p.means[None], p.cov_factor[None]),
                    r"params.weights \(1, 2\) and params.means \(1, 2, 2\) must have "
                    r"shapes \(K,\) and \(K, D\)"),
        "integer means": (GMMParams(p.weights, np.array([[0, 0], [5, 5]]), p.cov_factor),
                          r"params.means must be floating point, got int64"),
        "negative factor": (GMMParams(p.weights, p.means, -p.cov_factor),
                            "params.cov_factor of component 0 is not a positive-definite "
                            "'full' factor"),
    }
    for name, (params, message) in cases.items():
        if message is None:  # a valid diag model: accepted
            assert np.isfinite(GaussianMixture.from_params(params).score(X)), name
            continue
        with pytest.raises(ValueError, match=message):
            GaussianMixture.from_params(params)
    with pytest.raises(TypeError, match="params must be a bayesgmm.GMMParams .*got str 'x'"):
        GaussianMixture.from_params("x")
    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'ful'"):
        GaussianMixture.from_params(GMMParams(p.weights, p.means, p.cov_factor, "ful"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_data_in_small_units_warns_and_the_fixes_work(dtype):
    """reg_covar is absolute (scikit-learn's): on blobs in thousandths its 1e-6 is a
    cluster's whole variance and EM blurs the clusters (adjusted Rand index to the
    generating labels 0.34 against 0.82 in the original units; scikit-learn's 0.31).
    The fit warns, naming the feature, the share and both fixes, at the user's line;
    each fix recovers the original units' clustering. No warning in those units."""
    from bayesgmm import DataScaleWarning

    X, y = make_blobs(300, centers=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataScaleWarning)
        ref = adjusted_rand_score(y, GaussianMixture(4, random_state=0).fit(X).predict(X))
    small = (X * 1e-3).astype(dtype)
    with pytest.warns(DataScaleWarning, match=r"reg_covar=1e-06 is \d+% of feature 0's "
                      r"variance .*Rescale the data .* lower reg_covar to about") as rec:
        blurred = GaussianMixture(4, random_state=0).fit(small).predict(small)
    assert rec[0].filename == __file__
    assert adjusted_rand_score(y, blurred) < ref - 0.3  # the harm the warning names
    suggested = float(re.search(r"lower reg_covar to about ([0-9.e+-]+)\.",
                                str(rec[0].message)).group(1))
    for fixed, data in ((GaussianMixture(4, random_state=0, reg_covar=suggested), small),
                        (GaussianMixture(4, random_state=0),
                         (small - small.mean(0)) / small.std(0))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataScaleWarning)
            labels = fixed.fit(data).predict(data)
        assert adjusted_rand_score(y, labels) > ref - 0.02


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_feature_whose_squares_underflow_is_refused(dtype):
    """make_blobs scaled to 1e-170 (float64; 1e-17 in float32): the variance summed 0,
    and EM returned three identical components and uniform predict_proba without a
    word. Refused, naming the feature and the fix; the same data rescaled fits."""
    X, y = make_blobs(150, centers=3, random_state=0)
    scale = 1e-170 if dtype == np.float64 else 1e-17
    tiny = (X * [1.0, scale]).astype(dtype) if dtype == np.float32 else X * [1.0, scale]
    with pytest.raises(ValueError, match=r"X's feature 1 spans only [0-9.e-]+ .*underflow "
                                         r"float(64|32).*\(c - c.min\(\)\) / "):
        GaussianMixture(3, random_state=0).fit(tiny)
    from bayesgmm.selection import sweep
    with pytest.raises(ValueError, match="feature 1 spans only"):
        sweep(tiny, n_components=[1, 2])
    rescaled = tiny.copy()  # the fix the message names
    c = rescaled[:, 1]
    rescaled[:, 1] = (c - c.min()) / (c.max() - c.min())
    labels = GaussianMixture(3, random_state=0).fit(rescaled).predict(rescaled)
    assert adjusted_rand_score(y, labels) > 0.5
    # predicting rows that close together is fine: the fit's units are not theirs
    GaussianMixture(3, random_state=0).fit(X).predict(X[:2] * 1e-170)


@pytest.mark.parametrize("each", [1e-20, 1e200])
def test_sample_weights_out_of_range_are_refused(each):
    """Weights count rows, so their scale matters: at 1e-20 each the M-step's 10·eps
    outweighed every count and all means collapsed onto the data's mean; at 1e200 each
    the tree's merges overflowed (an IndexError deep inside). Both refused, naming the
    fix; a scale of 1e-10 is still fine and fits as unit weights do."""
    X, _ = make_blobs(200, centers=3, random_state=0)
    with pytest.raises(ValueError, match=r"sample_weight sums to [0-9.e+-]+, (below|above) "
                                         r".*sample_weight / sample_weight.mean\(\)"):
        GaussianMixture(3, random_state=0).fit(X, sample_weight=np.full(200, each))
    small = GaussianMixture(3, random_state=0).fit(X, sample_weight=np.full(200, 1e-10))
    unit = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(small.means_, unit.means_, atol=1e-5)


def test_partial_fit_on_small_units_warns_on_the_first_batch():
    """Online EM adds reg_covar to every batch's covariances as fit does: the first
    batch's units are checked (once: later batches share them), at the user's line."""
    from bayesgmm import DataScaleWarning

    X, _ = make_blobs(600, centers=3, random_state=0)
    for scale, expected in ((1.0, 0), (1e-4, 1)):
        gm = GaussianMixture(3, random_state=0)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            for batch in np.split(X * scale, 3):
                gm.partial_fit(batch)
        found = [w for w in rec if issubclass(w.category, DataScaleWarning)]
        assert len(found) == expected, [str(w.message) for w in rec]
        assert all(w.filename == __file__ for w in found)


@pytest.mark.parametrize("kwargs", [{}, {"engine": "jax"}, {"missing": "marginalize"}])
def test_a_sweep_on_small_units_warns_once(kwargs):
    """Once per search, whichever path its fits take (the host batch, one compiled fit
    per K, the missing-data fits), at the user's line."""
    from bayesgmm import DataScaleWarning
    from bayesgmm.selection import sweep

    X, _ = make_blobs(200, centers=3, random_state=1)
    X = X * 1e-4
    if kwargs.get("missing"):
        X[0, 1] = np.nan
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sweep(X, n_components=[1, 2, 3], covariance_types=["full", "diag"], **kwargs)
    scale = [w for w in rec if issubclass(w.category, DataScaleWarning)]
    assert len(scale) == 1 and scale[0].filename == __file__, [str(w.message) for w in rec]


def test_the_units_warning_leaves_constant_features_and_bad_values_alone():
    """No warning for a feature constant but for a few rows (its variance says nothing
    of units, and the suggested reg_covar would leave its components singular); a
    feature of tiny spread gets the share as a factor; a reg_covar that is not a number
    is refused by the options' own check, not by a TypeError from the units check."""
    from bayesgmm import DataScaleWarning
    from bayesgmm.selection import sweep

    X, y = make_blobs(300, centers=4, random_state=0)
    spike = np.zeros((300, 1))
    spike[0] = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataScaleWarning)
        GaussianMixture(4, random_state=0).fit(np.hstack([X, spike]))
    noise = np.random.default_rng(0).normal(0, 1e-9, (300, 1))
    with pytest.warns(DataScaleWarning, match=r"is [0-9.e+]+ times feature 2's variance"):
        GaussianMixture(4, random_state=0).fit(np.hstack([X, noise]))
    for bad in ("1e-6", None):
        with pytest.raises(ValueError, match="reg_covar"):
            sweep(X, n_components=[1, 2], reg_covar=bad)
