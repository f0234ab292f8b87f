"""The bootstrap against closed forms: the standard error of a mean is sd/sqrt(N), of a
mixing weight sqrt(w(1-w)/N) for well-separated components; the sequential LRT finds the
number of well-separated clusters and does not reject a true one-component model."""

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.bootstrap import KINDS, _split_largest, bootstrap, bootstrap_lrt
from bayesgmm.datasets import make_blobs


@pytest.fixture(scope="module")
def gaussian():
    X = np.random.default_rng(1).normal([1.0, -2.0], [2.0, 0.5], size=(400, 2))
    return X, GaussianMixture(1, covariance_type="diag", tol=1e-8).fit(X)


@pytest.mark.parametrize("kind", KINDS)
def test_standard_error_of_a_mean_is_sd_over_root_n(gaussian, kind):
    X, model = gaussian
    result = bootstrap(model, X, 400, kind=kind, random_state=0)
    expected = X.std(axis=0) / np.sqrt(len(X))
    np.testing.assert_allclose(result.standard_errors()["means"][0], expected, rtol=0.15)
    low, high = result.intervals(0.95)["means"]
    assert np.all(low[0] < model.means_[0]) and np.all(model.means_[0] < high[0])
    # the covariance's SE: var * sqrt(2/N) for normal data
    var_se = result.standard_errors()["covariances"][0][np.diag_indices(2)]
    np.testing.assert_allclose(var_se, X.var(axis=0) * np.sqrt(2 / len(X)), rtol=0.2)


def test_standard_error_of_a_weight_is_binomial():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal([-8, 0], 1, (150, 2)), rng.normal([8, 0], 1, (350, 2))])
    model = GaussianMixture(2, random_state=0).fit(X)
    result = bootstrap(model, X, 500, random_state=1)
    w = model.weights_
    np.testing.assert_allclose(result.standard_errors()["weights"],
                               np.sqrt(w * (1 - w) / len(X)), rtol=0.15)
    assert result.weights.shape == (500, 2) and result.converged.all()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_split_keeps_every_covariance_layout(covariance_type):
    X, _ = make_blobs(n_samples=200, centers=2, random_state=0)
    p = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X).params_
    s = _split_largest(p)
    assert s.n_components == 3 and np.isclose(s.weights.sum(), 1)
    k = int(np.argmax(p.weights))
    np.testing.assert_allclose(np.asarray(s.full_covariances)[[k, 2]],
                               np.asarray(p.full_covariances)[[k, k]])
    np.testing.assert_allclose(s.means[k] + s.means[2], 2 * p.means[k])


def test_lrt_finds_three_separated_clusters():
    X, _ = make_blobs(n_samples=240, centers=[[-6, 0], [0, 6], [6, 0]], random_state=2)
    result = bootstrap_lrt(X, 5, n_boot=39, random_state=0, n_init=2)
    assert result.chosen == 3
    assert list(result.n_components) == [1, 2, 3]
    assert result.p_value[0] == result.p_value[1] == 1 / 40  # no replicate reached LRTS
    assert result.p_value[2] > 0.05
    assert "chosen: K = 3" in repr(result)


def test_lrt_keeps_one_component_for_gaussian_data(gaussian):
    X, _ = gaussian
    result = bootstrap_lrt(X, 3, covariance_type="diag", n_boot=39, random_state=0)
    assert result.chosen == 1 and result.p_value[0] > 0.05


def test_bad_input_named(gaussian):
    X, model = gaussian
    with pytest.raises(ValueError, match="kind must be one of 'nonparametric'"):
        bootstrap(model, X, 10, kind="jackknife")
    with pytest.raises(ValueError, match="X has 3 features, but the model was fitted on 2"):
        bootstrap(model, np.zeros((5, 3)), 10)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(model, X, 0)
    with pytest.raises(ValueError, match="max_components must be at least 2"):
        bootstrap_lrt(X, 1)
    for call in (lambda: bootstrap(model, X, 10, random_state="x"),
                 lambda: bootstrap_lrt(X, 2, random_state=-1)):
        with pytest.raises(TypeError, match="random_state must be None, an int >= 0"):
            call()
    from bayesgmm import NotFittedError

    with pytest.raises(NotFittedError):
        bootstrap(GaussianMixture(2), X, 10)


def test_progress_bar_counts_refits(gaussian, capsys):
    X, model = gaussian
    quiet = bootstrap(model, X, 30, random_state=0, batch_size=8)
    shown = bootstrap(model, X, 30, random_state=0, batch_size=8, progress=True)
    assert "30/30" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet.means, shown.means)


# ---- the model's own settings, and what bootstrap refuses ---------------------------------


def test_equal_weights_model_is_refit_with_equal_weights():
    """Refits ignored equal_weights (weights SE 0.07 here); now every replicate keeps 1/K."""
    X, _ = make_blobs(n_samples=100, centers=2, random_state=0)
    model = GaussianMixture(2, equal_weights=True, random_state=0).fit(X)
    result = bootstrap(model, X, 20, random_state=0)
    np.testing.assert_array_equal(result.weights, 0.5)
    np.testing.assert_array_equal(result.standard_errors()["weights"], 0.0)
    assert result.standard_errors()["means"].min() > 0  # the means still vary


def test_prior_model_is_refit_with_its_prior():
    """A replicate equals the MAP-EM fit (prior="default", the fit's prior of X) of its
    resampled rows from the fitted parameters, done by the host engine as a warm fit;
    the maximum-likelihood refit the bootstrap ran before is far from it."""
    from bayesgmm.bootstrap import _resample

    X, _ = make_blobs(n_samples=60, centers=2, random_state=0)
    kw = dict(tol=1e-10, max_iter=1000)
    model = GaussianMixture(2, prior="default", random_state=0, **kw).fit(X)
    result = bootstrap(model, X, 3, random_state=0)
    W = _resample("nonparametric", np.random.default_rng(0), X, model.params_, 3)[1]
    for b in range(3):
        refit = lambda prior: GaussianMixture.from_params(  # noqa: E731
            model.params_, prior=prior, warm_start=True, engine="numpy", **kw).fit(
                X, sample_weight=W[b])
        direct = refit("default")
        np.testing.assert_allclose(result.means[b], direct.means_, rtol=1e-6)
        np.testing.assert_allclose(result.covariances[b], direct.covariances_, rtol=1e-6)
        assert not np.allclose(result.covariances[b], refit(None).covariances_, rtol=1e-2)


@pytest.mark.usefixtures("standard_promotion")
def test_other_estimators_are_refused_naming_what_to_use():
    from bayesgmm import RobustMixture
    from bayesgmm.bayes import BayesianGaussianMixture

    X, _ = make_blobs(n_samples=60, centers=2, random_state=0)
    with pytest.raises(TypeError, match="takes a fitted GaussianMixture, got a "
                                        "BayesianGaussianMixture; its posterior draws"):
        bootstrap(BayesianGaussianMixture(2), X, 10)
    with pytest.raises(TypeError, match="got a RobustMixture; .*bootstrap a GaussianMixture"):
        bootstrap(RobustMixture(2, random_state=0).fit(X), X, 10)


def test_nan_in_x_says_what_is_not_supported(gaussian):
    """A model fitted with missing="marginalize" was told to set missing="marginalize"."""
    X = gaussian[0].copy()
    model = GaussianMixture(1, missing="marginalize").fit(X)
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 5, column 1.*do not marginalise") as err:
        bootstrap(model, X, 10)
    assert "missing='marginalize'" not in str(err.value)


@pytest.mark.parametrize("n_boot, level, least", [(0, 0.05, 19), (10, 0.05, 19),
                                                  (18, 0.05, 19), (98, 0.01, 99),
                                                  (2, 0.3, 3)])
def test_lrt_refuses_an_n_boot_that_cannot_reach_the_level(gaussian, n_boot, level, least):
    """The smallest p-value of B replicates is 1/(B + 1); above level nothing is rejected
    (n_boot=0 ran and reported p = 1). The least n_boot named reaches the level."""
    with pytest.raises(ValueError, match=rf"n_boot={n_boot} cannot reach level={level}.*"
                                         rf"pass n_boot >= {least} "):
        bootstrap_lrt(gaussian[0], 3, n_boot=n_boot, level=level)
    assert 1 / (least + 1) <= level < 1 / least
    from bayesgmm.bootstrap import _check_reachable

    _check_reachable(least, level)  # no error
