"""bayesgmm.fitting: one fit function for every caller, and the scoring beside it,
against scikit-learn from identical starts, closed forms and invariances."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import fitting
from bayesgmm.fitting import FitOptions
from bayesgmm.params import GMMParams, take_components
from bayesgmm.validation import ConvergenceWarning


def _as(p: GMMParams, dtype) -> GMMParams:
    """NumPy leaves in ``dtype`` (JAX's astype would give float32 outside x64 mode)."""
    return GMMParams(*(np.asarray(a, dtype) for a in (p.weights, p.means, p.cov_factor)),
                     p.covariance_type)


def _sk_start(X, K, ct):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = SkGM(K, covariance_type=ct, random_state=0, max_iter=1).fit(X)
    return dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_)


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_fit_matches_sklearn_from_the_same_start(datasets, ct, engine):
    """fitting.fit alone (no estimator): scikit-learn's iterates, report and
    parameters, with the compiled path's padding as zero-weight components."""
    X = datasets["aniso"]
    start = _sk_start(X, 3, ct)
    options = FitOptions(n_components=3, covariance_type=ct, tol=1e-6, engine=engine, **start)
    params, info = fitting.fit(X, options)
    ref = SkGM(3, covariance_type=ct, tol=1e-6, **start).fit(X)
    assert params.n_components == fitting.plan(options, *X.shape).n_padded
    assert np.all(params.weights[3:] == 0)
    p = take_components(params, 3)
    assert (int(info.n_iter), bool(info.converged)) == (ref.n_iter_, ref.converged_)
    assert float(info.lower_bound) == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(info.history[:ref.n_iter_], ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(p.weights, ref.weights_, rtol=1e-9)
    np.testing.assert_allclose(p.means, ref.means_, rtol=1e-9)
    np.testing.assert_allclose(p.covariances, ref.covariances_, rtol=1e-8, atol=1e-12)
    assert info.nk.shape == (3,)
    np.testing.assert_allclose(np.sum(info.nk), len(X), rtol=1e-9)


def test_padding_changes_nothing(datasets):
    """The compiled fit at K=3 padded to 3, 4 or 16 components: the same fit."""
    X = datasets["aniso"]
    options = FitOptions(n_components=3, random_state=0, engine="jax")
    fits = {n: fitting.fit(X, options, n_padded=n) for n in (3, 4, 16)}
    assert {n: p.n_components for n, (p, _) in fits.items()} == {3: 3, 4: 4, 16: 16}
    p3, i3 = fits[3]
    for n in (4, 16):
        p, info = fits[n]
        assert int(info.n_iter) == int(i3.n_iter)
        np.testing.assert_allclose(take_components(p, 3).means, p3.means, rtol=1e-10)
        assert float(info.lower_bound) == pytest.approx(float(i3.lower_bound), rel=1e-12)


def test_host_and_compiled_fits_agree(datasets):
    X = datasets["iris"]
    options = FitOptions(n_components=3, random_state=1, n_init=3, init_params="k-means++")
    host, hi = fitting.fit(X, options.replace(engine="numpy"))
    comp, ci = fitting.fit(X, options.replace(engine="jax"))
    assert int(hi.n_iter) == int(ci.n_iter)
    np.testing.assert_allclose(host.means, take_components(comp, 3).means, rtol=1e-8)


def test_warm_start_measures_the_first_change_from_the_given_bound(datasets):
    """start_lower_bound within tol of the first iteration's bound: one iteration,
    converged; -inf (no previous fit): EM runs on."""
    X = datasets["iris"]
    options = FitOptions(n_components=3, random_state=0, tol=1e-10, max_iter=500)
    params, info = fitting.fit(X, options)
    start = take_components(params, 3)
    warm = options.replace(tol=1e-3, max_iter=50)
    _, near = fitting.fit(X, warm, start=start, start_lower_bound=float(info.lower_bound))
    assert (int(near.n_iter), bool(near.converged)) == (1, True)
    _, cold = fitting.fit(X, warm, start=start)
    assert int(cold.n_iter) == 2 and bool(cold.converged)


def test_max_iter_zero_returns_the_start_and_reports_no_iteration(datasets):
    X = datasets["iris"]
    start = _sk_start(X, 3, "diag")
    options = FitOptions(n_components=3, covariance_type="diag", max_iter=0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params, info = fitting.fit(X, options)
    np.testing.assert_array_equal(params.means, start["means_init"])
    np.testing.assert_allclose(1 / params.cov_factor**2, start["precisions_init"], rtol=1e-12)
    assert (int(info.n_iter), bool(info.converged), info.history.shape) == (0, False, (0,))
    assert np.isneginf(info.lower_bound)


def test_options_from_an_estimator_and_their_checks():
    from bayesgmm import GaussianMixture

    gm = GaussianMixture(3, tol=1e-4, warm_start=True, engine="numpy")
    options = FitOptions.from_mapping(gm.get_params())
    assert (options.n_components, options.tol, options.engine) == (3, 1e-4, "numpy")
    assert options.check() is options
    for bad, match in [(dict(n_components=0), "n_components"), (dict(max_iter=-1), "max_iter"),
                       (dict(kernel="fast"), "'kernel' should be in"),
                       (dict(engine="gpu"), "'engine' should be one of"),
                       (dict(init_params="magic"), "init_params"),
                       (dict(n_components=5, init_subsample=3), "init_subsample=3 rows")]:
        with pytest.raises(ValueError, match=match):
            options.replace(**bad).check()


def test_fit_refuses_bad_data_with_the_fix():
    options = FitOptions(n_components=5)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        fitting.fit(np.random.RandomState(0).normal(size=(4, 2)), options)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        start = GMMParams(np.full(5, 0.2), np.zeros((5, 2)), np.ones((5, 2)), "diag")
        fitting.fit(np.zeros((10, 3)), options.replace(covariance_type="diag"), start=start)


def test_plan_sends_small_fits_to_the_host_and_pads_only_compiled_ones(blobs):
    X = blobs[0]
    small = FitOptions(n_components=4)
    assert fitting.plan(small, *X.shape) == ("numpy", 4)
    assert fitting.plan(small, *X.shape, n_padded=20) == ("numpy", 4)
    assert fitting.plan(small.replace(engine="jax"), *X.shape) == ("jax", 32)
    assert fitting.plan(small.replace(engine="jax"), *X.shape, n_padded=20) == ("jax", 20)
    assert fitting.shared_features(X, small) is None  # nothing to share on the host


def test_shared_features_give_the_same_fit(datasets):
    """A sweep's feature table, made once: each fit that takes it equals one that
    makes its own."""
    X = datasets["aniso"]
    options = FitOptions(n_components=3, random_state=0, engine="jax")
    shared = fitting.shared_features(X, options.replace(n_components=8))
    assert shared is not None
    a, ai = fitting.fit(X, options, n_padded=8, shared=shared)
    b, bi = fitting.fit(X, options, n_padded=8)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-12)
    assert int(ai.n_iter) == int(bi.n_iter)


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scoring_matches_sklearn(datasets, engine, dtype):
    """log_resp and criteria of fitted parameters against scikit-learn's
    score_samples, predict_proba, bic and aic, on the host and compiled (padded)."""
    X = datasets["iris"]
    refs = [SkGM(k, random_state=0).fit(X) for k in (2, 3)]
    params = [_as(GMMParams.from_estimator(r), dtype) for r in refs]
    Xd = X.astype(dtype)
    rtol = 1e-10 if dtype == np.float64 else 2e-5  # float32: ~1e-6 of the data scale
    lr, ln = fitting.log_resp(params[1], Xd, engine=engine, fitted_padded=8)
    assert lr.dtype == ln.dtype == dtype and lr.shape == (150, 3)
    np.testing.assert_allclose(ln, refs[1].score_samples(X), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.exp(lr), refs[1].predict_proba(X), atol=rtol * 10)
    crit = fitting.criteria(params, Xd, engine=engine, fitted_padded=[8, 8])
    for c, r in zip(crit, refs):
        assert c["bic"] == pytest.approx(r.bic(X), rel=rtol)
        assert c["aic"] == pytest.approx(r.aic(X), rel=rtol)
        assert c["icl"] >= c["bic"]


def test_score_plan_pads_as_fitted_within_budget(blobs):
    p = GMMParams.from_estimator(SkGM(3, random_state=0).fit(blobs[0])).to_numpy()
    assert fitting.score_plan(p, 300) == ("numpy", 3)
    assert fitting.score_plan(p, 300, "jax", fitted_padded=32) == ("jax", 32)
    assert fitting.score_plan(p, 10**7, "jax", fitted_padded=32) == ("jax", 4)


def test_one_online_step_on_all_rows_is_one_em_iteration(datasets):
    """partial_fit's first step from a start, with the whole data as its batch: the
    running statistics are that batch's, so the step is one EM iteration (scikit-learn,
    max_iter=1, from the same start)."""
    X = datasets["iris"]
    start = _sk_start(X, 3, "full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SkGM(3, max_iter=1, **start).fit(X)
    p0 = GMMParams.from_sklearn(start["weights_init"], start["means_init"],
                                precisions=start["precisions_init"]).to_numpy()
    options = FitOptions(n_components=3)
    params, info, state = fitting.partial_fit(X, options, start=p0)
    np.testing.assert_allclose(params.means, ref.means_, rtol=1e-9)
    np.testing.assert_allclose(params.covariances, ref.covariances_, rtol=1e-8)
    assert float(info.lower_bound) == pytest.approx(ref.lower_bounds_[0], rel=1e-10)
    assert state.n_batches == 1
    params, info, state = fitting.partial_fit(X[:50], options, state, start=params)
    assert state.n_batches == 2 and int(info.n_iter) == 2


def test_sample_draws_from_the_params(blobs):
    p = GMMParams(np.array([0.25, 0.75]), np.array([[0.0, 0.0], [10.0, 10.0]]),
                  np.array([1.0, 2.0]), "spherical")
    X, y = fitting.sample(np.array([0, 3], np.uint32), p, 20000)
    assert X.shape == (20000, 2) and set(np.unique(y)) == {0, 1}
    assert np.mean(y == 1) == pytest.approx(0.75, abs=0.02)
    np.testing.assert_allclose(X[y == 1].mean(0), [10, 10], atol=0.1)
    np.testing.assert_allclose(X[y == 1].std(0), [2, 2], rtol=0.05)


def test_nonfinite_fit_names_the_component_in_sklearns_words():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    X[:10] += np.random.RandomState(0).normal(0, 0.1, (10, 2))
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*component \d got "
                                         r"a singular covariance.*Increase reg_covar \(now 0;"):
        fitting.fit(X, FitOptions(n_components=3, reg_covar=0.0, random_state=0))


def test_best_start_is_the_first_of_equals_within_round_off(blobs):
    """Two starts that reach one optimum with their components in another order end
    with lower bounds equal up to round-off, which differs between the engines; the
    first start then wins on both. A difference above round-off decides."""
    from bayesgmm.engines import numpy as host
    from bayesgmm.initialize import hc_params, hc_tree

    X = blobs[0]
    p = hc_params(X, None, hc_tree(X), 3, "full", 1e-6)
    order = [2, 0, 1]
    q = GMMParams(p.weights[order], p.means[order], p.cov_factor[order], "full")
    one = lambda s: GMMParams(*(np.asarray(a)[None] for a in (s.weights, s.means,  # noqa: E731
                                                              s.cov_factor)), "full")
    a = host.fit_restarts(X, one(p), tol=1e-8, reg_covar=1e-6, max_iter=500)
    b = host.fit_restarts(X, one(q), tol=1e-8, reg_covar=1e-6, max_iter=500)
    lb = float(a[1].lower_bound)
    assert float(b[1].lower_bound) == pytest.approx(lb, rel=1e-12)  # one optimum
    np.testing.assert_allclose(np.asarray(b[0].means)[[1, 2, 0]], a[0].means, rtol=1e-8)
    options = FitOptions(n_components=3)
    for nudge, winner in ((1e-13, 0), (-1e-13, 0), (1e-8, 1)):
        later = (b[0], b[1]._replace(lower_bound=np.asarray(lb + nudge * abs(lb))), b[2])
        best, _, _ = fitting._best_run([a, later], options)
        np.testing.assert_array_equal(best.means, [a, later][winner][0].means)
