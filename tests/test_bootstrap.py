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
    from bayesgmm import NotFittedError

    with pytest.raises(NotFittedError):
        bootstrap(GaussianMixture(2), X, 10)


def test_progress_bar_counts_refits(gaussian, capsys):
    X, model = gaussian
    quiet = bootstrap(model, X, 30, random_state=0, batch_size=8)
    shown = bootstrap(model, X, 30, random_state=0, batch_size=8, progress=True)
    assert "30/30" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet.means, shown.means)
