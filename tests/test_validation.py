"""Input checks at the edge (bayesgmm.validation): scikit-learn's words and classes,
our fixes, and no dependence on scikit-learn or JAX to import."""

import re
import warnings
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bayesgmm.validation import (
    ConvergenceWarning,
    NotFittedError,
    check_array_2d,
    check_is_fitted,
    check_means_init,
    check_precisions_init,
    check_random_state_key,
    check_weights_init,
    compute_scope,
)

ROOT = Path(__file__).resolve().parents[1]


def test_warning_and_error_classes_are_sklearns():
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    assert issubclass(ConvergenceWarning, SkConvergenceWarning)
    assert issubclass(ConvergenceWarning, UserWarning)
    assert issubclass(NotFittedError, SkNotFittedError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_classes_work_without_sklearn():
    """scikit-learn is not a run-time dependency: with it unimportable the classes are
    plain UserWarning / ValueError+AttributeError subclasses and do their job."""
    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["sklearn"] = None  # any import of scikit-learn now fails
        from bayesgmm.validation import ConvergenceWarning, NotFittedError, check_is_fitted
        assert ConvergenceWarning.__mro__[1] is UserWarning, ConvergenceWarning.__mro__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn("x", ConvergenceWarning)
        assert caught[0].category is ConvergenceWarning

        class Unfitted:
            def __sklearn_is_fitted__(self):
                return False
        try:
            check_is_fitted(Unfitted())
        except ValueError as e:
            assert isinstance(e, AttributeError) and "Unfitted instance is not fitted" in str(e)
        else:
            raise AssertionError("no error")
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.mark.parametrize("check,args,sklearn_words,ours", [
    (check_weights_init, ([[0.5], [0.5]], 2, np.float64),
     "The parameter 'weights' should have the shape of (2,), but got (2, 1)", "weights_init"),
    (check_weights_init, ([1.5, -0.5], 2, np.float64),
     "The parameter 'weights' should be in the range [0, 1], but got max value 1.50000, "
     "min value -0.50000", "weights_init"),
    (check_weights_init, ([0.5, 0.6], 2, np.float64),
     "The parameter 'weights' should be normalized, but got sum(weights) = 1.10000",
     "divide weights_init by its sum"),
    (check_means_init, (np.zeros((3, 2)), 2, 2, np.float64),
     "The parameter 'means' should have the shape of (2, 2), but got (3, 2)", "means_init"),
    (check_precisions_init, (np.ones((3, 2)), "diag", 2, 2, np.float64),
     "The parameter 'diag precision' should have the shape of (2, 2), but got (3, 2)",
     "precisions_init"),
    (check_precisions_init, (np.array([[[1.0, 2], [2, 1]]] * 2), "full", 2, 2, np.float64),
     "'full precision' should be symmetric, positive-definite",
     "precisions_init of component 0 is not"),
    (check_precisions_init, (-np.ones((2, 2)), "diag", 2, 2, np.float64),
     "'diag precision' should be positive", "diag precision"),
])
def test_init_errors_say_sklearns_words_and_ours(check, args, sklearn_words, ours):
    with pytest.raises(ValueError, match=re.escape(sklearn_words)) as err:
        check(*args)
    assert ours in str(err.value)


def test_valid_inits_pass_through_in_the_dtype():
    w = check_weights_init([0.25, 0.75], 2, np.float32)
    assert w.dtype == np.float32 and w.tolist() == [0.25, 0.75]
    m = check_means_init([[0, 1], [2, 3]], 2, 2, np.float64)
    assert m.dtype == np.float64 and m.shape == (2, 2)


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5, 2**40 + 3])
def test_random_state_key_is_jax_prngkey(seed):
    """The estimator's key, built on the host, is jax.random.PRNGKey's for the seed."""
    import jax

    np.testing.assert_array_equal(check_random_state_key(seed),
                                  np.asarray(jax.random.PRNGKey(seed % 2**32)))


def test_random_state_none_draws_from_numpys_global_state():
    np.random.seed(3)
    a = check_random_state_key(None)
    np.random.seed(3)
    assert np.array_equal(a, check_random_state_key(None))
    rs = np.random.RandomState(1)
    assert not np.array_equal(check_random_state_key(rs), check_random_state_key(rs))
    with pytest.raises(ValueError, match="random_state must be None, an int"):
        check_random_state_key("seed")


def test_check_array_2d_reads_jax_arrays_and_keeps_float_dtypes():
    import jax.numpy as jnp

    X = check_array_2d(jnp.ones((3, 2), jnp.float32))
    assert isinstance(X, np.ndarray) and X.dtype == np.float32
    assert check_array_2d([[1, 2], [3, 4]]).dtype == np.float64
    with pytest.raises(TypeError, match="Sparse X is not supported"):
        import scipy.sparse

        check_array_2d(scipy.sparse.eye(3))


def test_compute_scope_is_float64_only_inside():
    import jax
    import jax.numpy as jnp

    assert not jax.config.jax_enable_x64
    with compute_scope(np.float64):
        assert jnp.ones(2).dtype == jnp.float64
    with compute_scope(np.float32):
        assert jnp.ones(2).dtype == jnp.float32
    assert not jax.config.jax_enable_x64


def test_check_is_fitted_uses_the_protocol_and_sklearns_message():
    from bayesgmm import GaussianMixture

    with pytest.raises(NotFittedError, match="This GaussianMixture instance is not fitted "
                                             "yet. Call 'fit' with appropriate arguments"):
        check_is_fitted(GaussianMixture())
    check_is_fitted(GaussianMixture(1).fit(np.arange(6.0).reshape(3, 2)))


def test_nullable_table_columns_are_read_as_float_with_nan_for_na():
    """pandas' nullable dtypes (Float64, Int64) hold pd.NA, which NumPy reads as
    objects: X.to_numpy(float, na_value=nan) is the truth; float32 columns stay float32."""
    pd = pytest.importorskip("pandas")

    df = pd.DataFrame({"a": [1.5, 2.0, 3.0], "b": [4, None, 6]}).astype(
        {"a": "Float64", "b": "Int64"})
    X = check_array_2d(df, missing="marginalize")
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1.5, 4.0], [2.0, np.nan], [3.0, 6.0]])
    with pytest.raises(ValueError, match=r"contains NaN \(first at row 1, column 1\)"):
        check_array_2d(df)
    single = check_array_2d(pd.DataFrame({"a": [1.0, 2.0]}, dtype="Float32"))
    assert single.dtype == np.float32 and single.tolist() == [[1.0], [2.0]]
    with pytest.raises(ValueError, match="X must be numeric"):
        check_array_2d(pd.DataFrame({"a": ["x", None]}))
    # a table's text or category columns are named, with the fix
    table = pd.DataFrame({"x": [1.0, 2.0], "species": ["setosa", "virginica"],
                          "site": pd.Categorical(["a", "b"])})
    with pytest.raises(ValueError, match=r"non-numeric columns are \['species', 'site'\]: "
                                         r"drop them, e.g. X.drop\(columns="):
        check_array_2d(table)


def test_nan_message_names_the_option_only_where_there_is_one():
    X = np.array([[0.0, np.nan], [1.0, 2.0]])
    with pytest.raises(ValueError, match="pass missing='marginalize' to sweep; else drop"):
        check_array_2d(X, marginalize_in="sweep")
    with pytest.raises(ValueError) as err:
        check_array_2d(X)
    assert "missing=" not in str(err.value) and "drop or impute" in str(err.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_whose_squares_overflow_are_refused_naming_the_largest(dtype):
    """The bound is sqrt(finfo.max) / 2^16: a value above it is named with its place;
    one just below passes, and so does float32 data offset by 1e5."""
    bound = np.sqrt(np.finfo(dtype).max) / 2**16
    X = np.ones((4, 2), dtype)
    X[2, 1] = -np.asarray(bound * 1.01, dtype)
    with pytest.raises(ValueError, match=r"magnitude .*\(row 2, column 1\).*standardise"):
        check_array_2d(X)
    X[2, 1] = -np.asarray(bound * 0.99, dtype)
    assert check_array_2d(X).dtype == dtype
    assert check_array_2d(np.ones((4, 2), dtype) + 1e5).dtype == dtype
    X[0, 0] = np.nan  # NaN is not a magnitude
    assert check_array_2d(X, missing="marginalize").shape == (4, 2)


def test_date_and_time_columns_are_refused_naming_them():
    """pandas reads dates and durations as nanoseconds: a DataFrame with a date column
    beside two features was fitted with it as a third (means of 1.6e15). Refused,
    naming the columns and the fix; the table without them fits."""
    pd = pytest.importorskip("pandas")
    from bayesgmm import GaussianMixture

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 2)), columns=["a", "b"])
    for column in (pd.date_range("2020-01-01", periods=60),
                   pd.date_range("2020-01-01", periods=60, tz="UTC"),
                   pd.to_timedelta(np.arange(60), "D")):
        with pytest.raises(ValueError, match=r"date or time columns \['t'\].*"
                                             r"X.drop\(columns=\['t'\]\)"):
            GaussianMixture(2).fit(X.assign(t=column))
    assert GaussianMixture(2).fit(X).n_features_in_ == 2


@pytest.mark.parametrize("options, message", [
    ({"warm_start": "no"}, r"Invalid value for 'warm_start': 'no'; it should be True or False"),
    ({"verbose": "x"}, r"Invalid value for 'verbose': 'x'; 'verbose' should be an integer >= 0"),
    ({"weights_init": "a"}, r"Invalid weights_init: it must be numeric"),
    ({"means_init": [["a", "b"], [1, 2]]}, r"Invalid means_init: it must be numeric"),
    ({"weights_init": [np.nan, 0.5]}, r"'weights' contains NaN or infinity"),
])
def test_option_values_of_the_wrong_kind_name_the_option(options, message):
    """A truthy "no" was taken as warm_start=True; int("x") failed inside the progress
    report; a string init gave NumPy's bare "could not convert"; a NaN weight was
    reported as a range of 0.5 to 0.5."""
    from bayesgmm import GaussianMixture

    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **options).fit(X)
    GaussianMixture(2, warm_start=np.bool_(True), verbose=False).fit(X)  # bools pass


def test_ragged_rows_and_missing_model_lists_are_named():
    from bayesgmm import GaussianMixture
    from bayesgmm.selection import sweep

    with pytest.raises(ValueError, match="its rows differ in length"):
        GaussianMixture(2).fit([[1.0, 2.0], [3.0]])
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(TypeError, match="n_components must be a sequence of ints"):
        sweep(X, None)
    with pytest.raises(TypeError, match="covariance_types must be a model name or a "
                                        "sequence of them"):
        sweep(X, [1, 2], None)


def test_criteria_functions_check_their_input():
    """selection.bic/aic/icl (public) returned NaN for a NaN row or negative weights,
    failed inside JAX on a wrong width, and on a list or an estimator with an
    AttributeError. They check as a fit does, and still equal the estimator's own
    criteria (and trace under jit)."""
    import jax

    from bayesgmm import GaussianMixture
    from bayesgmm.selection import aic, bic, icl

    X = np.random.default_rng(0).normal(size=(60, 2))
    gm = GaussianMixture(2, random_state=0).fit(X)
    for fn in (bic, aic, icl):
        with pytest.raises(ValueError, match="contains NaN"):
            fn(gm.params_, np.r_[X, [[np.nan, 0.0]]])
        with pytest.raises(ValueError, match="Negative values in sample_weight"):
            fn(gm.params_, X, sample_weight=-np.ones(60))
        with pytest.raises(ValueError, match="X has 3 features, but the params hold 2"):
            fn(gm.params_, np.ones((3, 3)))
        with pytest.raises(TypeError, match="takes a GMMParams, got GaussianMixture .*params_"):
            fn(gm, X)
    np.testing.assert_allclose(float(bic(gm.params_, X.tolist())), gm.bic(X), rtol=1e-6)
    np.testing.assert_allclose(float(aic(gm.params_, X)), gm.aic(X), rtol=1e-6)
    np.testing.assert_allclose(float(jax.jit(lambda x: bic(gm.params_, x))(X)), gm.bic(X),
                               rtol=1e-6)


@pytest.mark.parametrize("kind", ["VEV", "full", "VEI", "EVV"])
def test_a_constant_feature_without_reg_covar_is_reported_by_every_model(kind):
    """With reg_covar=0 a feature constant on every row leaves no variance: VEV's
    clamp left 2e-308 and the fit scored +350 nats where the other models report the
    collapse. Every model now says so."""
    from bayesgmm import GaussianMixture

    X = np.random.default_rng(0).normal(size=(100, 2))
    X[:, 1] = 3.0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, covariance_type=kind, reg_covar=0, random_state=0).fit(X)


def _faithful_with_constant(value=3.0):
    from bayesgmm.datasets import load_faithful

    X = load_faithful().X
    return X, np.column_stack([X, np.full(len(X), value)])


def test_a_constant_feature_moves_bic_between_models_so_sweep_refuses_it():
    """The column tells the clusters nothing, yet it moves BIC between covariance
    models (its likelihood is reg_covar's and its parameter count differs per model):
    on Old Faithful EEE,3 is mclust's choice and beats EEI,3 without the column; with a
    constant column EEI,3 beats it (mclust 6.0, fed the same column, picks EEE,1 at
    a BIC of +14,056: its variance there is round-off's). A search refuses the column, naming it and the fix, with and
    without missing values."""
    from bayesgmm import GaussianMixture
    from bayesgmm.selection import sweep

    X, Xc = _faithful_with_constant()

    def bic(kind, data):
        return GaussianMixture(3, covariance_type=kind, init_params="hc", tol=1e-8,
                               max_iter=1000).fit(data).bic(data)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the column's own warning: tested below
        assert bic("EEE", X) < bic("EEI", X)
        assert bic("EEI", Xc) < bic("EEE", Xc)
    with pytest.raises(ValueError, match=r"^sweep: X's column 2 is constant \(3 in every "
                       r"row\).*choice moves with it.*np\.delete\(X, 2, axis=1\)$"):
        sweep(Xc, range(1, 3), "all")
    holes = Xc.copy()
    holes[0, 2] = holes[5, 0] = np.nan
    with pytest.raises(ValueError, match=r"column 2 is constant \(3 in every row where it "
                       r"is observed\)"):
        sweep(holes, range(1, 3), ["EEE"], missing="marginalize")
    twice = np.column_stack([Xc, np.full(len(X), -1.0)])
    with pytest.raises(ValueError, match=r"2 such columns.*drop those columns"):
        sweep(twice, range(1, 3), ["EEE"])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(Xc, columns=["eruptions", "waiting", "site"])
    with pytest.raises(ValueError, match=r"column 2 \('site'\) is constant.*"
                       r"X\.drop\(columns='site'\)$"):
        sweep(frame, range(1, 3), ["EEE"])


@pytest.mark.parametrize("kind", ["diag", "full", "EEV"])
def test_a_fit_with_a_constant_feature_warns_at_the_users_line_and_clusters_as_without(kind):
    """A fit goes on, as scikit-learn's does, with a ConstantFeatureWarning at the user's
    line; its memberships are those of the fit without the column (every component's
    variance there is reg_covar, so the column adds the same log-density to each), to
    round-off. A column constant but for one row is not constant: no warning."""
    from bayesgmm import ConstantFeatureWarning, GaussianMixture

    X, Xc = _faithful_with_constant(-40.0)
    with pytest.warns(ConstantFeatureWarning, match=r"column 2 is constant \(-40 in every "
                      r"row\).*np\.delete\(X, 2, axis=1\)") as rec:
        with_column = GaussianMixture(3, covariance_type=kind, random_state=0).fit(Xc)
    assert {w.filename for w in rec if w.category is ConstantFeatureWarning} == {__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the spike's one-row component: not this test's
        warnings.simplefilter("error", ConstantFeatureWarning)
        alone = GaussianMixture(3, covariance_type=kind, random_state=0).fit(X)
        spike = Xc.copy()
        spike[7, 2] += 1.0
        GaussianMixture(3, covariance_type=kind, random_state=0).fit(spike)
    np.testing.assert_allclose(with_column.predict_proba(Xc), alone.predict_proba(X),
                               atol=1e-6)
    np.testing.assert_allclose(with_column.means_[:, :2], alone.means_, rtol=1e-6)


def test_a_column_constant_on_a_subset_only_draws_no_warning_from_the_librarys_own_fits():
    """The noise model's Gaussian start fits the rows outside its first noise guess,
    where a column constant but for one outlier is constant: that internal fit stays
    quiet; a t mixture (no noise region) on a constant column warns once."""
    from bayesgmm import ConstantFeatureWarning, RobustMixture

    X, Xc = _faithful_with_constant()
    near = Xc.copy()
    near[0, 2] += 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantFeatureWarning)
        RobustMixture(2, noise=True, random_state=0).fit(near)
    with pytest.warns(ConstantFeatureWarning, match="column 2 is constant") as rec:
        RobustMixture(2, component="t", random_state=0).fit(Xc)
    assert [w.filename for w in rec if w.category is ConstantFeatureWarning] == [__file__]


def test_a_constant_combination_of_features_is_found_in_the_datas_units():
    """Columns that are linearly dependent, by construction: shares that sum to 1 (in
    float64 and float32), a column made of two others (its relation read back in the
    data's units, by name), a relation only to 1e-4 (found where reg_covar exceeds the
    data's variance along it). Independent columns are not flagged, also 1e4 from the
    origin (the relation is found on centred data), nor iris; NaN rows are skipped."""
    from sklearn.datasets import load_iris

    from bayesgmm.validation import constant_combination

    X, _ = _faithful_with_constant()
    rng = np.random.default_rng(0)
    shares = rng.dirichlet([1, 2, 3], 200)
    assert constant_combination(shares)[0] == "x0 + x1 + x2"
    assert constant_combination(shares.astype(np.float32))[0] == "x0 + x1 + x2"
    mixed = np.column_stack([X, 2 * X[:, 0] - 0.5 * X[:, 1]])
    combination, variance = constant_combination(mixed, ["erupt", "wait", "mix"])
    assert combination == "erupt - 0.25·wait - 0.5·mix" and variance < 1e-10
    rounded = np.round(shares, 4)
    assert constant_combination(rounded) is None
    combination, variance = constant_combination(rounded, reg_covar=1e-6)
    assert combination == "x0 + x1 + x2" and 1e-12 < variance < 1e-6
    for independent in (X, X + 1e4, load_iris().data, rng.normal(size=(200, 5))):
        assert constant_combination(independent, reg_covar=1e-6) is None
    holes = np.column_stack([X, X[:, 0] + X[:, 1]])
    holes[3, 0] = np.nan
    assert constant_combination(holes)[0] == "x0 + x1 - x2"
    assert constant_combination(rng.normal(size=(4, 5))) is None  # N <= D: always


def test_sweep_warns_where_a_combination_of_features_is_constant():
    """Old Faithful with a third column, the sum of the two: along x0 + x1 - x2 the full
    models' likelihood is reg_covar's, so the best diagonal model falls from 9 BIC
    units behind the best full one to more than 1,000; sweep says so once, at the
    user's line, naming the combination."""
    from bayesgmm import ConstantFeatureWarning
    from bayesgmm.selection import sweep

    X, _ = _faithful_with_constant()
    diagonal = {"EII", "VII", "EEI", "VEI", "EVI", "VVI"}

    def gap(table):
        kinds = np.asarray(table["covariance_type"]).astype(str)
        bic = np.asarray(table["bic"])
        is_diagonal = np.isin(kinds, sorted(diagonal))
        return bic[is_diagonal].min() - bic[~is_diagonal].min()

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantFeatureWarning)
        assert abs(gap(sweep(X, range(1, 10), "all"))) < 20
    with pytest.warns(ConstantFeatureWarning, match=r"linearly dependent: x0 \+ x1 - x2 is "
                      r"constant .*below reg_covar=1e-06") as rec:
        table = sweep(np.column_stack([X, X.sum(axis=1)]), range(1, 10), "all")
    assert [w.filename for w in rec if w.category is ConstantFeatureWarning] == [__file__]
    assert gap(table) > 1000


def _faithful_with_levels(seed=0):
    X, _ = _faithful_with_constant()
    rng = np.random.default_rng(seed)
    return np.column_stack([X, rng.integers(1, 4, len(X)).astype(float)])


def _smallest_variance(model):
    return min(np.linalg.eigvalsh(c).min() for c in model.params_.full_covariances)


def test_a_feature_of_few_values_warns_and_the_search_then_picks_a_degenerate_fit():
    """Old Faithful beside a column of three levels (1, 2, 3 at random): the search's
    choice puts a component on one level, its variance there ten times reg_covar (mclust
    reports such cells as singular); with the levels spread by their rounding (uniform
    noise of width 1) it picks a sound fit. The search warns once, at the user's line,
    naming the column; a one-component fit does not."""
    from bayesgmm import DiscreteFeatureWarning, GaussianMixture
    from bayesgmm.selection import sweep

    X = _faithful_with_levels()
    with pytest.warns(DiscreteFeatureWarning, match=r"column 2 takes only 3 distinct values "
                      r"in 272 rows") as rec:
        table = sweep(X, range(1, 7), "all", random_state=0)
    assert [w.filename for w in rec if w.category is DiscreteFeatureWarning] == [__file__]
    assert _smallest_variance(table.best["model"]) < 1e-4
    spread = X.copy()
    spread[:, 2] += np.random.default_rng(1).uniform(-0.5, 0.5, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteFeatureWarning)
        table = sweep(spread, range(1, 7), "all", random_state=0)
        GaussianMixture(1).fit(X)
    assert _smallest_variance(table.best["model"]) > 1e-2
    with pytest.warns(DiscreteFeatureWarning, match="column 2") as rec:
        GaussianMixture(2, random_state=0).fit(X)
    assert [w.filename for w in rec if w.category is DiscreteFeatureWarning] == [__file__]


def test_few_values_are_counted_past_the_first_rows_and_nan_is_skipped():
    """The first 1,000 rows only screen: a column whose third value first appears later
    is still counted (3 values), one with 11 values is not flagged, NaN is not a value,
    and measured data (Old Faithful, iris) have more than ten values in every column."""
    from sklearn.datasets import load_iris

    from bayesgmm.validation import few_values_feature

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 3))
    X[:, 1] = np.r_[rng.integers(0, 2, 4000), np.full(1000, 7)]
    assert few_values_feature(X) == (1, 3)
    X[:, 1] = rng.integers(0, 11, 5000)
    assert few_values_feature(X) is None
    X[::7, 1] = np.nan
    X[:, 1] = np.where(np.isnan(X[:, 1]), np.nan, X[:, 1] % 4)
    assert few_values_feature(X) == (1, 4)
    faithful, _ = _faithful_with_constant()
    assert few_values_feature(faithful) is None and few_values_feature(load_iris().data) is None


def test_column_warnings_follow_a_successful_fit_name_frame_columns_and_spare_internal_fits(
        standard_promotion):
    """A fit refused for its settings or its rows says only that (no column warning
    before the error; with reg_covar=0 the warning's own claim would be false); a data
    frame's column is named, with a fix that works on a frame; the seed fit of a
    distributed run (process 0's rows alone) and the Bayesian model's EM start are the
    library's own fits and stay quiet (NumPyro's model runs under standard promotion)."""
    pd = pytest.importorskip("pandas")
    from jax.experimental import multihost_utils

    from bayesgmm import (BayesianGaussianMixture, ConstantFeatureWarning,
                          DiscreteFeatureWarning, GaussianMixture)
    from bayesgmm.distributed import _seed

    X, Xc = _faithful_with_constant()
    for make, data in ((lambda: GaussianMixture(2, covariance_type="nope"), Xc),
                       (lambda: GaussianMixture(2, tol=-1), Xc),
                       (lambda: GaussianMixture(5), Xc[:3]),
                       (lambda: GaussianMixture(2, reg_covar=0), Xc)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConstantFeatureWarning)
            with pytest.raises(ValueError):
                make().fit(data)
    frame = pd.DataFrame(np.column_stack([Xc, np.full(len(X), 2.0)]),
                         columns=["eruptions", "waiting", "site", "batch"])
    with pytest.warns(ConstantFeatureWarning, match=r"column 2 \('site'\) is constant.*"
                      r"2 such columns.*X\.loc\[:, X\.max\(\) > X\.min\(\)\]"):
        GaussianMixture(2, random_state=0).fit(frame)
    kept = frame.loc[:, frame.max() > frame.min()]
    assert list(kept.columns) == ["eruptions", "waiting"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantFeatureWarning)
        warnings.simplefilter("error", DiscreteFeatureWarning)
        _seed(Xc, 2, "full", 1e-6, {"random_state": 0}, multihost_utils)
    levels = _faithful_with_levels()[:120]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        BayesianGaussianMixture(2, method="map", random_state=0).fit(levels)
    assert [w.filename for w in rec if w.category is DiscreteFeatureWarning] == [__file__]
