"""Saving and loading fits (bayesgmm.io) on real files: exact round trips, the padded
size kept so predictions are bit for bit the same, clear errors."""

import json

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

from bayesgmm import GaussianMixture, NotFittedError
from bayesgmm.io import load_model, load_params, save_model, save_params
from bayesgmm.params import GMMParams


def test_save_load_roundtrip(tmp_path, datasets):
    X = datasets["iris"].astype(np.float32)
    gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.covariance_type == "tied" and back.means_.dtype == np.float32
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["n_iter"] == gm.n_iter_
    with pytest.raises(FileNotFoundError, match="params.npz"):
        load_model(tmp_path / "nothing")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loaded_model_pads_as_saved_and_predicts_bit_for_bit(tmp_path, datasets, dtype):
    """A compiled fit runs padded (K=3 on 400 rows: 32 components); the loaded model
    scores at the same size, so its programs and its rounding are the fit's."""
    X = datasets["aniso"].astype(dtype)
    gm = GaussianMixture(3, random_state=0, engine="jax").fit(X)
    assert gm.n_padded_ == 32
    save_model(gm, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.n_padded_ == 32 and back.get_params() == gm.get_params()
    for attr in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(gm, attr), err_msg=attr)
    assert (back.n_iter_, back.converged_, back.lower_bound_) == (
        gm.n_iter_, gm.converged_, gm.lower_bound_)
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))
    assert back.bic(X) == gm.bic(X)


def test_a_save_without_n_padded_loads_unpadded(tmp_path, datasets):
    """Saves from before the field: the model scores at its own K."""
    X = datasets["iris"]
    gm = GaussianMixture(3, random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    meta_path = tmp_path / "m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["n_padded"]
    meta_path.write_text(json.dumps(meta))
    back = load_model(tmp_path / "m")
    assert back.n_padded_ == 3
    np.testing.assert_allclose(back.predict_proba(X), gm.predict_proba(X), rtol=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_params_roundtrip_exactly(tmp_path, ct):
    rng = np.random.default_rng(0)
    K, D = 3, 2
    factor = {"full": np.tril(rng.random((K, D, D))) + np.eye(D), "tied": np.eye(D) * 2,
              "diag": rng.random((K, D)) + 1, "spherical": rng.random(K) + 1}[ct]
    p = GMMParams(np.array([0.2, 0.3, 0.5]), rng.normal(size=(K, D)), factor, ct)
    back = load_params(save_params(p, tmp_path / "p.npz"))
    assert back.covariance_type == ct
    for a, b in zip((p.weights, p.means, p.cov_factor), (back.weights, back.means,
                                                         back.cov_factor)):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_problem(tmp_path, datasets):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        save_model(GaussianMixture(2), tmp_path / "unfitted")
    gm = GaussianMixture(2, random_state=0).fit(datasets["iris"])
    save_model(gm, tmp_path / "m")
    meta_path = tmp_path / "m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "estimator": "BayesianGaussianMixture"}))
    with pytest.raises(ValueError, match="holds a 'BayesianGaussianMixture', not a "
                                         "GaussianMixture"):
        load_model(tmp_path / "m")
