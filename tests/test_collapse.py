"""Collapsed components are errors, in every covariance type and both engines.

With ``reg_covar=0`` a component on one point (or on identical points; for full/tied,
on a line) has a covariance that is round-off (bayesgmm.covariance, ROUNDOFF). The
engines report it (FitInfo.nonfinite, bad_component; tests in test_engines_numpy.py and
test_engines_jax.py) and the estimator turns that into an error that names the
component and a reg_covar to try, as scikit-learn raises for a singular covariance.
The same data and start with the default reg_covar fit."""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

from bayesgmm import GaussianMixture
from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams


def collapse_case(ct, blobs):
    """(X, start, k): data on which a component collapses when ``reg_covar=0``, a start
    that puts component k there, and k. full/diag/spherical: five identical rows away
    from the seed blobs, component 4 started on them (σ = 0.05, so no other row weighs
    on it); tied: every row on one line (the shared covariance is singular; the first
    component is reported)."""
    X, _, centers = blobs
    if ct == "tied":
        X = np.stack([X[:, 0], 2.0 * X[:, 0] + 1.0], axis=1)
        means, k = X[[np.argmin(X[:, 0]), np.argmax(X[:, 0])]], 0
    else:
        x0 = np.array([6.0, -3.0])
        X = np.concatenate([X, np.repeat(x0[None], 5, axis=0)])
        means, k = np.concatenate([centers, x0[None]]), 4
    K = len(means)
    factor = np.array(ops(ct).identity(K, 2, np.float64))
    if ct != "tied":
        factor[4] *= 0.05
    return X, GMMParams(np.full(K, 1.0 / K), means, factor, ct), k


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_estimator_refuses_a_collapsed_component(ct, engine, blobs):
    X, start, k = collapse_case(ct, blobs)
    init = dict(weights_init=np.asarray(start.weights), means_init=np.asarray(start.means),
                precisions_init=np.asarray(start.precisions))
    K = start.n_components
    with pytest.raises(ValueError, match=rf"component {k} .*Increase reg_covar \(now 0; try"):
        GaussianMixture(K, covariance_type=ct, reg_covar=0.0, engine=engine, **init).fit(X)
    gm = GaussianMixture(K, covariance_type=ct, engine=engine, **init).fit(X)
    assert np.all(np.isfinite(gm.covariances_)) and np.isfinite(gm.score(X))
