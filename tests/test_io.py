"""Saving and loading fits (bayesgmm.io) on real files: round trips of both estimators
whose loaded models answer as the originals did, the padded size kept so EM predictions
are bit for bit the same, atomic writes, every damaged file named in its error (never a
hint to allow_pickle), membership tables against responsibilities computed with SciPy."""

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import COVARIANCE_TYPES
from scipy.stats import multivariate_normal

import bayesgmm
from bayesgmm import GaussianMixture, NotFittedError
from bayesgmm.io import (FORMAT_VERSION, MissingModelFileError, ModelFormatError, load_model,
                         load_params, save_model, save_params, write_table)
from bayesgmm.params import GMMParams

# ---- EM -----------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path, datasets):
    X = datasets["iris"].astype(np.float32)
    gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.covariance_type == "tied" and back.means_.dtype == np.float32
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["n_iter"] == gm.n_iter_
    assert (meta["format"], meta["format_version"]) == ("bayesgmm-model", FORMAT_VERSION)
    with pytest.raises(FileNotFoundError, match="params.npz"):
        load_model(tmp_path / "nothing")


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_em_roundtrip_every_covariance_type(tmp_path, datasets, ct):
    """bayesgmm.save / bayesgmm.load: settings (an array one included), feature names and
    every output equal the original's."""
    X = datasets["iris"]
    means_init = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.1]])
    gm = GaussianMixture(3, covariance_type=ct, means_init=means_init, tol=1e-4,
                         random_state=np.random.RandomState(0)).fit(X)
    gm.feature_names_in_ = np.array(["sepal length", "sepal width", "petal length",
                                     "petal width"], dtype=object)
    assert bayesgmm.save(gm, tmp_path / "m") == tmp_path / "m"
    back = bayesgmm.load(tmp_path / "m")
    assert type(back) is GaussianMixture
    np.testing.assert_array_equal(back.means_init, means_init)
    assert back.tol == 1e-4 and back.covariance_type == ct
    assert back.random_state is None  # a RandomState is not saved; the meta says so
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["dropped_settings"] == ["random_state"]
    assert list(back.feature_names_in_) == list(gm.feature_names_in_)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(gm, attr), err_msg=attr)
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))
    assert back.bic(X) == gm.bic(X)
    table = back.membership_table(X)
    np.testing.assert_array_equal(table["label"], gm.predict(X))


def test_a_dataframe_fit_saves_and_loads_its_feature_names(tmp_path, datasets):
    """The names a DataFrame fit sets reach meta.json, come back as feature_names_in_,
    and the loaded model checks a table's columns as the original does."""
    df = pd.DataFrame(datasets["iris"], columns=["sl", "sw", "pl", "pw"])
    gm = GaussianMixture(3, random_state=0).fit(df)
    bayesgmm.save(gm, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["feature_names"] == list(df)
    back = bayesgmm.load(tmp_path / "m")
    assert back.feature_names_in_.tolist() == list(df) and back.feature_names_in_.dtype == object
    np.testing.assert_array_equal(back.predict(df), gm.predict(df))
    with pytest.raises(ValueError, match="another order"):
        back.predict(df[["sw", "sl", "pl", "pw"]])


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


def test_an_unversioned_save_loads_as_format_0(tmp_path, datasets):
    """Folders written before meta.json had format/format_version still load."""
    X = datasets["iris"]
    gm = GaussianMixture(2, random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    meta_path = tmp_path / "m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key in ("format", "format_version", "dropped_settings"):
        del meta[key]
    meta_path.write_text(json.dumps(meta))
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(X),
                                  gm.predict_proba(X))


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
    with pytest.raises(TypeError, match="load takes the path of a folder .* got NoneType"):
        load_model(None)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        save_model(GaussianMixture(2), tmp_path / "unfitted")
    assert not (tmp_path / "unfitted").exists()
    gm = GaussianMixture(2, random_state=0).fit(datasets["iris"])
    save_model(gm, tmp_path / "m")
    meta_path = tmp_path / "m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "estimator": "KMeans"}))
    with pytest.raises(ValueError, match="holds a 'KMeans', not a GaussianMixture or "
                                         "BayesianGaussianMixture"):
        load_model(tmp_path / "m")
    # an EM folder relabeled as Bayesian lacks the Bayesian entries: named, not a KeyError
    meta_path.write_text(json.dumps({**meta, "estimator": "BayesianGaussianMixture"}))
    with pytest.raises(ModelFormatError, match="meta.json lacks the key 'draws'"):
        load_model(tmp_path / "m")
    with pytest.raises(ValueError, match="may not set meta.json's own keys"):
        save_model(gm, tmp_path / "m2", extra={"n_iter": 3})


# ---- atomic writes --------------------------------------------------------------------------


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_a_failed_save_leaves_no_folder_and_an_old_one_intact(tmp_path, datasets):
    gm = GaussianMixture(2, random_state=0).fit(datasets["iris"])
    target = tmp_path / "out" / "sub" / "m"
    with pytest.raises(TypeError):  # not JSON-serialisable: fails after params.npz is written
        bayesgmm.save(gm, target, extra={"summary": object()})
    assert sorted(tmp_path.iterdir()) == []  # nor the parent folders it made
    bayesgmm.save(gm, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(TypeError):
        bayesgmm.save(gm, target, extra={"summary": object()})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert _siblings(target) == ["m"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        bayesgmm.save(gm, target, overwrite=False)


def test_a_resave_replaces_the_model_and_keeps_other_files(tmp_path, datasets):
    X = datasets["iris"]
    target = tmp_path / "m"
    bayesgmm.save(GaussianMixture(2, random_state=0).fit(X), target)
    (target / "clusters.png").write_bytes(b"png")
    (target / "plots").mkdir()
    (target / "plots" / "a.txt").write_text("a")
    gm3 = GaussianMixture(3, random_state=0).fit(X)
    bayesgmm.save(gm3, target)
    assert (target / "clusters.png").read_bytes() == b"png"
    assert (target / "plots" / "a.txt").read_text() == "a"
    assert bayesgmm.load(target).n_components == 3
    assert _siblings(target) == ["m"]


def test_loading_an_em_model_imports_no_jax(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import bayesgmm
        X = np.random.default_rng(0).normal(size=(300, 2))
        gm = bayesgmm.GaussianMixture(2, random_state=0).fit(X)
        bayesgmm.save(gm, {str(tmp_path / "m")!r})
        back = bayesgmm.load({str(tmp_path / "m")!r})
        assert (back.predict(X) == gm.predict(X)).all()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "numpyro")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- damaged folders ---------------------------------------------------------------------


def _rewrite_npz(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path, **arrays)  # object arrays are pickled by savez: what an attacker writes


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _npz_array(path, name):
    with np.load(path) as z:
        return z[name]


DAMAGE = {
    "params truncated": ("params.npz", _truncate,
                         r"params\.npz is not a valid \.npz archive \(truncated or damaged\?\)"),
    "params garbage": ("params.npz", lambda p: p.write_bytes(b"\x80\x04garbage" * 20),
                       r"params\.npz is not a valid \.npz archive"),
    "params missing": ("params.npz", lambda p: p.unlink(), r"params\.npz is missing"),
    "meta garbled": ("meta.json", lambda p: p.write_text(p.read_text()[:40]),
                     r"meta\.json is not valid JSON"),
    "meta missing": ("meta.json", lambda p: p.unlink(), r"meta\.json is missing"),
    "meta a list": ("meta.json", lambda p: p.write_text("[1, 2]"), "not an object"),
    "too new": ("meta.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "format_version": FORMAT_VERSION + 1})),
        "newer than this bayesgmm reads"),
    "nan means": ("params.npz", lambda p: _rewrite_npz(
        p, means=np.where(np.eye(2, 4, dtype=bool), np.nan, _npz_array(p, "means"))),
        r"means has a non-finite value at \[0, 0\]"),
    "negative weight": ("params.npz", lambda p: _rewrite_npz(
        p, weights=np.array([1.2, -0.2])), "weights are not on the simplex"),
    "weights sum": ("params.npz", lambda p: _rewrite_npz(
        p, weights=np.array([0.5, 0.6])), "weights are not on the simplex"),
    "object array": ("params.npz", lambda p: _rewrite_npz(
        p, weights=np.array([0.5, "x"], dtype=object)), "'weights' holds Python objects"),
    "means shape": ("params.npz", lambda p: _rewrite_npz(
        p, means=np.zeros((2, 3))), "3 features, meta.json's n_features_in says 4"),
    "factor shape": ("params.npz", lambda p: _rewrite_npz(
        p, cov_factor=np.ones((2, 4))), r"cov_factor has shape \(2, 4\)"),
    "not positive definite": ("params.npz", lambda p: _rewrite_npz(
        p, cov_factor=-_npz_array(p, "cov_factor")),
        "component 0 is not a positive-definite 'full' factor"),
    "integer means": ("params.npz", lambda p: _rewrite_npz(
        p, means=np.zeros((2, 4), dtype=np.int64)), "must be floating point"),
    "lost array": ("params.npz", lambda p: np.savez(p, weights=np.array([0.5, 0.5])),
                   "lacks the array 'means'"),
    "wrong covariance type": ("params.npz", lambda p: _rewrite_npz(
        p, covariance_type=np.array("ful")), "Invalid value for 'covariance_type': 'ful'"),
}


@pytest.fixture(scope="module")
def em_folder(tmp_path_factory, datasets):
    path = tmp_path_factory.mktemp("em") / "m"
    bayesgmm.save(GaussianMixture(2, random_state=0).fit(datasets["iris"]), path)
    return path


@pytest.mark.parametrize("case", DAMAGE)
def test_each_damaged_file_is_named_in_one_error(tmp_path, em_folder, case):
    name, damage, message = DAMAGE[case]
    folder = tmp_path / "m"
    shutil.copytree(em_folder, folder)
    damage(folder / name)
    with pytest.raises(ModelFormatError, match=message) as err:
        bayesgmm.load(folder)
    text = str(err.value)
    assert str(folder / name) in text
    # no message in the chain invites an unsafe load
    chain = [err.value, err.value.__cause__, err.value.__context__]
    assert not any("allow_pickle" in str(e) for e in chain if e is not None), chain
    if "missing" in case:
        assert isinstance(err.value, MissingModelFileError | FileNotFoundError)


# Values a damaged (or hand-edited) params.npz may hold that NumPy reads as finite floats,
# which load accepted and predicted NaN from: one shared check (validation.check_params)
# refuses them in load and in GaussianMixture.from_params alike.
UNUSABLE = {
    "huge means": (lambda p: GMMParams(p.weights, np.full_like(p.means, 1e300), p.cov_factor,
                                       p.covariance_type),
                   r"means has a value of magnitude 1e\+300 at \[0, 0\], above 2.05e\+149"),
    "underflowing factor": (lambda p: GMMParams(p.weights, p.means, p.cov_factor * 1e-300,
                                                p.covariance_type),
                            r"cov_factor of component 0 has a standard deviation of "
                            r"[\d.]+e-30\d on its diagonal, .* its variance underflows"),
    "overflowing factor": (lambda p: GMMParams(p.weights, p.means, p.cov_factor * 1e200,
                                               p.covariance_type),
                           "its variance overflows float64"),
}


@pytest.mark.parametrize("ct", [*COVARIANCE_TYPES, "VEV", "EEI", "EII"])
@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_params_are_refused_by_load_and_from_params(tmp_path, datasets, ct, case):
    """Means of 1e300 or a factor of 1e-300 gave all-NaN predict_proba and a NaN score
    after a load that raised nothing; now load names the file and the field, and
    from_params refuses the same parameters with the same words."""
    X = datasets["iris"]
    gm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    damage, message = UNUSABLE[case]
    bad = damage(gm.params_)
    folder = tmp_path / "m"
    bayesgmm.save(gm, folder)
    _rewrite_npz(folder / "params.npz", means=bad.means, cov_factor=bad.cov_factor)
    with pytest.raises(ModelFormatError, match=message) as err:
        bayesgmm.load(folder)
    assert str(folder / "params.npz") in str(err.value)
    assert "re-save or re-fit" in str(err.value)
    with pytest.raises(ValueError, match=message) as direct:
        GaussianMixture.from_params(bad)
    assert str(direct.value).startswith("params.")


def test_a_near_empty_component_still_loads(tmp_path, datasets):
    """The check refuses only what cannot be used: a legitimate fit whose third
    component holds one far-away row (weight 1/N, covariance reg_covar's) saves, loads
    and predicts as fitted."""
    X = np.vstack([datasets["blobs"][:200], [[40.0, -40.0]]])
    gm = GaussianMixture(5, covariance_type="diag", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateComponentWarning: the point of it
        gm.fit(X)
    tiny = gm.weights_.argmin()
    assert gm.weights_[tiny] * len(X) < 1.5 and gm.covariances_[tiny].max() < 1e-5
    bayesgmm.save(gm, tmp_path / "m")
    back = bayesgmm.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    assert np.isfinite(back.score(X))
    assert GaussianMixture.from_params(gm.params_).score(X) == back.score(X)


def test_a_string_n_components_in_meta_is_named_as_the_wrong_type(tmp_path, em_folder):
    """"n_components": "2" read "params.npz holds 2 components, meta.json's n_components
    says 2"; now the message says the field has the wrong type."""
    folder = tmp_path / "m"
    shutil.copytree(em_folder, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["estimator_params"]["n_components"] = "2"
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"meta.json's estimator_params\['n_components'\] "
                                               r"is '2', a JSON string, of the wrong type: it "
                                               r"must be a whole number \(params.npz holds 2 "
                                               r"components\)") as err:
        bayesgmm.load(folder)
    assert str(folder / "meta.json") in str(err.value)


def test_a_folder_that_is_no_saved_model_says_what_was_expected_and_found(tmp_path,
                                                                           em_folder):
    """load_params(folder) said "m is missing; re-save the model"."""
    with pytest.raises(MissingModelFileError, match=r"load_params reads a \.npz file .* but "
                                                    r"this is a folder, holding meta\.json, "
                                                    r"params\.npz; pass .*params\.npz"):
        load_params(em_folder)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("x")
    with pytest.raises(MissingModelFileError, match="this is a folder, holding a.txt$"):
        load_params(other)
    with pytest.raises(MissingModelFileError, match="but there is no such file"):
        load_params(tmp_path / "none.npz")
    with pytest.raises(MissingModelFileError, match=r"meta\.json is missing: .* holds no "
                                                    r"model saved by bayesgmm\.save .* it "
                                                    r"holds a\.txt"):
        bayesgmm.load(other)


def test_save_names_the_callers_path_when_it_cannot_write(tmp_path, em_folder):
    """save(g, "/proc/x") named the internal '/proc/.x.saving-<hex>' folder and save(g, 5)
    gave posixpath's "expected str, bytes or os.PathLike object, not int"."""
    gm = bayesgmm.load(em_folder)
    with pytest.raises(TypeError, match="save takes the path of a folder "
                                        r"\(a str or os.PathLike.*got int 5"):
        bayesgmm.save(gm, 5)
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "m"
    with pytest.raises(OSError, match=f"Cannot save the model to {target}: "
                                      f"{tmp_path / 'file'} is a file, not a folder") as err:
        bayesgmm.save(gm, target)
    assert ".saving-" not in str(err.value)
    if Path("/proc/self").is_dir():  # Linux: /proc takes no new folders, even from root
        with pytest.raises(OSError, match="Cannot save the model to /proc/x: its folder "
                                          "/proc is not writable") as err:
            bayesgmm.save(gm, "/proc/x")
        assert ".saving-" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("change, message", [
    ({"n_components": 4}, r"its n_components is 4 but it was fitted with 3 components.*"
                          r"refit .*model.set_params\(n_components=3\)"),
    ({"covariance_type": "diag"}, r"its covariance_type is 'diag' but it was fitted with "
                                  r"'full' covariances.*set_params\(covariance_type='full'\)"),
])
def test_save_refuses_settings_changed_since_the_fit(tmp_path, datasets, change, message):
    """set_params(n_components=4) on a 3-component fit saved a folder that load refused
    ("params.npz holds 3 components, meta.json's n_components says 4"); now save refuses,
    writing nothing."""
    gm = GaussianMixture(3, random_state=0).fit(datasets["iris"]).set_params(**change)
    with pytest.raises(ValueError, match=message):
        bayesgmm.save(gm, tmp_path / "deep" / "m")
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary one, no parents
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=message):
        bayesgmm.save(gm, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("change, name", [({"tol": "abc"}, "tol"),
                                          ({"reg_covar": -1.0}, "reg_covar"),
                                          ({"engine": "gpu9"}, "engine")])
def test_save_refuses_a_setting_made_invalid_after_the_fit(tmp_path, datasets, change, name):
    """set_params(tol="abc") after a fit saved a folder that load then refused
    ("meta.json's estimator_params are not valid GaussianMixture settings"); save runs
    the same check first, names the setting and writes nothing."""
    gm = GaussianMixture(3, random_state=0).fit(datasets["iris"]).set_params(**change)
    with pytest.raises(ValueError, match=f"Cannot save this GaussianMixture: Invalid value "
                                         f"for '{name}'.*set it back to a valid value"):
        bayesgmm.save(gm, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_another_name_of_the_fitted_model_saves_and_loads(tmp_path, datasets):
    """A 'full' fit relabeled covariance_type='VVV' (the same model) saved, and load
    refused it ("params.npz holds 'full' covariances, meta.json's covariance_type says
    'VVV'"); it loads under the setting's name and predicts as the original."""
    X = datasets["iris"]
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    gm.set_params(covariance_type="VVV")
    back = bayesgmm.load(bayesgmm.save(gm, tmp_path / "m"))
    assert back.covariance_type == "VVV" and back.params_.covariance_type == "VVV"
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))


@pytest.mark.parametrize("ct", ["full", "tied", "VEV", "EVE", "EEE"])
def test_a_factor_with_entries_above_its_diagonal_is_refused(tmp_path, datasets, ct):
    """A full/tied factor is the lower Cholesky L; an entry above the diagonal was
    accepted and the model contradicted itself (covariances_ used it as L Lᵀ, the
    log-density's triangular solve did not: score_samples 27 nats off SciPy's)."""
    X = datasets["iris"]
    gm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    folder = tmp_path / "m"
    bayesgmm.save(gm, folder)
    f = np.array(gm.params_.cov_factor)
    f[..., 0, 2] = 0.5
    _rewrite_npz(folder / "params.npz", cov_factor=f)
    which = "" if f.ndim == 2 else " of component 0"
    index = r"\[0, 2\]" if f.ndim == 2 else r"\[0, 0, 2\]"
    message = (f"cov_factor{which} has the nonzero entry 0.5 above its diagonal "
               f"\\(at {index}\\): a '{ct}' factor is the lower-triangular Cholesky factor")
    with pytest.raises(ModelFormatError, match=message) as err:
        bayesgmm.load(folder)
    assert str(folder / "params.npz") in str(err.value)
    bad = GMMParams(gm.params_.weights, gm.params_.means, f, ct)
    with pytest.raises(ValueError, match="params." + message):
        GaussianMixture.from_params(bad)


@pytest.mark.parametrize("ct, dtype", [("full", np.float64), ("diag", np.float32)])
def test_partial_fit_continues_after_a_load(tmp_path, datasets, ct, dtype):
    """online EM's running statistics were not saved: the loaded model's next partial_fit
    started over (means 7.1 away from the original's next step). online.npz keeps them,
    and the two models' next steps are bit for bit the same."""
    X = datasets["aniso"].astype(dtype)
    gm = GaussianMixture(3, covariance_type=ct, random_state=0)
    for batch in np.array_split(X[:300], 3):
        gm.partial_fit(batch)
    folder = tmp_path / "m"
    bayesgmm.save(gm, folder)
    assert (folder / "online.npz").is_file()
    assert json.loads((folder / "meta.json").read_text())["online"] is True
    back = bayesgmm.load(folder)
    gm.partial_fit(X[300:])
    back.partial_fit(X[300:])
    for attr in ("weights_", "means_", "covariances_", "lower_bound_", "n_iter_"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(gm, attr), err_msg=attr)
    # a full fit ends online learning: its save holds no online state
    bayesgmm.save(gm.fit(X), folder)
    assert not (folder / "online.npz").exists()
    assert "_online_state" not in bayesgmm.load(folder).__dict__


def test_a_damaged_online_state_is_named(tmp_path, datasets):
    X = datasets["iris"]
    gm = GaussianMixture(2, random_state=0).partial_fit(X)
    folder = tmp_path / "m"
    bayesgmm.save(gm, folder)
    _rewrite_npz(folder / "online.npz", sx=np.zeros((2, 3)))
    with pytest.raises(ModelFormatError, match=r"online\.npz's sx must be float64 of shape "
                                               r"\(2, 4\)"):
        bayesgmm.load(folder)
    (folder / "online.npz").unlink()
    with pytest.raises(MissingModelFileError, match=r"online\.npz is missing"):
        bayesgmm.load(folder)


@pytest.mark.parametrize("key, value, message", [
    ("engine", "gpu9", "Invalid value for 'engine': 'gpu9'"),
    ("tol", "abc", "Invalid value for 'tol': 'abc'"),
    ("reg_covar", -1, "Invalid value for 'reg_covar': -1"),
])
def test_invalid_settings_in_meta_are_refused_at_load(tmp_path, em_folder, key, value,
                                                      message):
    """An edited meta.json's engine "gpu9" (tol "abc", reg_covar -1) loaded, and failed
    at the next fit; the estimator's own check now refuses it at load, naming meta.json."""
    folder = tmp_path / "m"
    shutil.copytree(em_folder, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["estimator_params"][key] = value
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="meta.json's estimator_params are not valid "
                                               f"GaussianMixture settings: {message}") as err:
        bayesgmm.load(folder)
    assert str(folder / "meta.json") in str(err.value)


def test_engine_is_kept(tmp_path, datasets):
    """engine_, a documented fitted attribute, was absent after a load."""
    X = datasets["iris"]
    for engine in ("numpy", "jax"):
        gm = GaussianMixture(2, random_state=0, engine=engine).fit(X)
        assert bayesgmm.load(bayesgmm.save(gm, tmp_path / engine)).engine_ == engine
    online = GaussianMixture(2, random_state=0, engine="numpy").partial_fit(X)
    assert bayesgmm.load(bayesgmm.save(online, tmp_path / "online")).engine_ == "jax"


# ---- Bayesian ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_data():
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=80, centers=2, cluster_std=0.8, random_state=0)
    return X


def _fit_bayes(X, **kwargs):
    import jax

    from bayesgmm import BayesianGaussianMixture

    with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 50-draw run may be flagged; not the point here
        # but float64 data are read out in float64: JAX's truncation warning is an error
        warnings.filterwarnings("error", "Explicitly requested dtype float64")
        return BayesianGaussianMixture(2, random_state=0, **kwargs).fit(X)


@pytest.fixture(scope="module")
def nuts_saved(tmp_path_factory, small_data):
    fit = _fit_bayes(small_data, n_chains=2, n_warmup=50, n_draws=50)
    path = tmp_path_factory.mktemp("bayes") / "nuts"
    bayesgmm.save(fit, path)
    return fit, path


def _assert_same_elpd(a, b):
    assert (a.kind, a.n_samples, a.n_data_points, a.warning) == (
        b.kind, b.n_samples, b.n_data_points, b.warning)
    assert (a.elpd, a.se, a.p) == (b.elpd, b.se, b.p)
    np.testing.assert_array_equal(a.elpd_i, b.elpd_i)
    np.testing.assert_array_equal(a.pareto_k, b.pareto_k)


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_nuts_roundtrip_answers_as_the_original(nuts_saved, small_data):
    fit, path = nuts_saved
    X = small_data
    assert sorted(p.name for p in path.iterdir()) == [
        "draws.npz", "idata.nc", "idata_raw.nc", "meta.json", "params.npz", "summary.csv"]
    back = bayesgmm.load(path)
    assert type(back).__name__ == "BayesianGaussianMixture"
    assert {k: v for k, v in back.get_params().items()} == fit.get_params()
    assert back.params_.batch_shape == fit.params_.batch_shape == (2, 50)
    for field in ("weights", "means", "cov_factor"):
        np.testing.assert_array_equal(getattr(back.params_, field), getattr(fit.params_, field))
        np.testing.assert_array_equal(getattr(back.map_params_, field),
                                      np.asarray(getattr(fit.map_params_, field)))
    np.testing.assert_array_equal(back.relabeling_.permutations, fit.relabeling_.permutations)
    np.testing.assert_array_equal(back.predict_proba(X), fit.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), fit.predict(X))
    for a, b in zip(back.membership_interval(X, prob=0.8), fit.membership_interval(X, prob=0.8)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.score_samples(X), fit.score_samples(X))
    assert back.bic(X) == fit.bic(X)
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(fit, attr), err_msg=attr)
    pd.testing.assert_frame_equal(back.summary(), fit.summary())
    pd.testing.assert_frame_equal(back.summary(relabeled=False), fit.summary(relabeled=False))
    _assert_same_elpd(back.loo(), fit.loo())
    for a, b in zip(back.sample(5), fit.sample(5)):  # the same random_state, the same draws
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.coclustering(X[:10]), fit.coclustering(X[:10]))
    assert back.warnings_ == fit.warnings_
    np.testing.assert_array_equal(back.diagnostics_.step_size, fit.diagnostics_.step_size)
    # health_ comes back whole (a loaded fit had none: AttributeError)
    assert str(back.health_) == str(fit.health_)
    for name, a, b in zip(fit.health_._fields, back.health_, fit.health_):
        if name == "label_invariant":
            assert a.names == b.names and a.worst_point == b.worst_point
            for x, y in zip(a[1:4], b[1:4]):
                np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
            assert np.asarray(a).dtype == np.asarray(b).dtype, name


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_mclust_name_samples_its_model_and_is_saved(tmp_path, nuts_saved, small_data):
    """covariance_type="VVV" (mclust's name of "full", the same covariance-table entry)
    samples the very draws of the "full" fit with the same seed, keeps the name given
    (get_params, repr, params_, map_params_, relabeling_) as GaussianMixture does, and
    a save and load keep it."""
    fit, _ = nuts_saved
    vvv = _fit_bayes(small_data, n_chains=2, n_warmup=50, n_draws=50, covariance_type="VVV")
    assert vvv.get_params()["covariance_type"] == "VVV" and "'VVV'" in repr(vvv)
    for params in (vvv.params_, vvv.map_params_, vvv.relabeling_.params):
        assert params.covariance_type == "VVV"
    for field in ("weights", "means", "cov_factor"):
        np.testing.assert_array_equal(getattr(vvv.params_, field), getattr(fit.params_, field))
    np.testing.assert_array_equal(vvv.relabeling_.permutations, fit.relabeling_.permutations)
    np.testing.assert_array_equal(vvv.predict_proba(small_data), fit.predict_proba(small_data))
    bayesgmm.save(vvv, tmp_path / "vvv")
    with np.load(tmp_path / "vvv" / "draws.npz") as z:
        assert str(z["covariance_type"]) == "VVV"
    back = bayesgmm.load(tmp_path / "vvv")
    assert back.covariance_type == "VVV" and back.get_params() == vvv.get_params()
    assert back.params_.covariance_type == back.map_params_.covariance_type == "VVV"
    np.testing.assert_array_equal(back.params_.cov_factor, fit.params_.cov_factor)
    np.testing.assert_array_equal(back.predict_proba(small_data), vvv.predict_proba(small_data))


@pytest.mark.usefixtures("standard_promotion")
def test_saved_draws_and_summary_csv(nuts_saved):
    """draws.npz holds the relabeled draws with (chain, draw) first; summary.csv's means
    of the weights are the draws' own means (computed here with NumPy)."""
    fit, path = nuts_saved
    with np.load(path / "draws.npz") as z:
        assert z["weights"].shape == (2, 50, 2) and z["means"].shape == (2, 50, 2, 2)
        assert z["cov_factor"].shape == (2, 50, 2, 2, 2) and z["permutations"].shape == (2, 50, 2)
        weights = z["weights"]
    table = pd.read_csv(path / "summary.csv", index_col=0)
    np.testing.assert_allclose(table.loc[["weights[0]", "weights[1]"], "mean"],
                               weights.mean(axis=(0, 1)), rtol=1e-12)
    assert {"sd", "eti94_lb", "eti94_ub", "ess_bulk", "r_hat"} <= set(table.columns)


@pytest.mark.usefixtures("standard_promotion")
def test_membership_table_against_scipy(nuts_saved, small_data):
    """label, probability and its 90% interval, from responsibilities per draw computed
    with scipy.stats.multivariate_normal and np.quantile."""
    fit, path = nuts_saved
    X = small_data[:12]
    table = bayesgmm.load(path).membership_table(X, prob=0.9)
    assert list(table) == ["label", "probability", "lower", "upper"]
    flat = fit.params_.flatten_batch()
    resp = []
    for w, m, L in zip(flat.weights, flat.means, flat.cov_factor):
        dens = np.stack([w[k] * multivariate_normal(m[k], L[k] @ L[k].T).pdf(X)
                         for k in range(2)], axis=1)
        resp.append(dens / dens.sum(axis=1, keepdims=True))
    resp = np.array(resp)  # (M, N, K)
    mean = resp.mean(axis=0)
    label = mean.argmax(axis=1)
    rows = np.arange(len(X))
    lo, hi = np.quantile(resp[:, rows, label], [0.05, 0.95], axis=0)
    np.testing.assert_array_equal(table["label"], label)
    np.testing.assert_allclose(table["probability"], mean[rows, label], atol=1e-9)
    np.testing.assert_allclose(table["lower"], lo, atol=1e-9)
    np.testing.assert_allclose(table["upper"], hi, atol=1e-9)
    assert np.all(table["lower"] <= table["upper"])
    # the default interval is membership_interval's (and the config's) 94%
    default = bayesgmm.load(path).membership_table(X)
    lo, hi = np.quantile(resp[:, rows, label], [0.03, 0.97], axis=0)
    np.testing.assert_allclose(default["lower"], lo, atol=1e-9)
    np.testing.assert_allclose(default["upper"], hi, atol=1e-9)


@pytest.fixture(scope="module")
def other_nuts_saved(tmp_path_factory, small_data):
    """A second NUTS fit of nuts_saved's shapes (2 chains x 50 draws, K=2, D=2)."""
    path = tmp_path_factory.mktemp("bayes") / "other"
    bayesgmm.save(_fit_bayes(small_data[::-1], n_chains=2, n_warmup=50, n_draws=50), path)
    return path


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.parametrize("name", ["draws.npz", "idata.nc", "idata_raw.nc", "params.npz",
                                  "summary.csv"])
def test_a_file_from_another_fit_is_refused(tmp_path, nuts_saved, other_nuts_saved, name):
    """idata.nc or draws.npz copied from another fit of the same shape loaded silently,
    an inconsistent model; meta.json records each file's SHA-256 and load compares."""
    _, saved = nuts_saved
    other = other_nuts_saved
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    shutil.copy(other / name, folder / name)
    with pytest.raises(ModelFormatError, match=f"{name} is not the file this model was saved "
                                               r"with: .* \(copied from another fit or "
                                               r"edited\); save the model again") as err:
        bayesgmm.load(folder)
    assert str(folder / name) in str(err.value)
    # a folder saved before meta.json held the hashes loads, unverified
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["sha256"]) == {"params.npz", "draws.npz", "idata.nc", "idata_raw.nc",
                                   "summary.csv"}
    del meta["sha256"]
    (folder / "meta.json").write_text(json.dumps(meta))
    bayesgmm.load(folder)


def test_an_em_params_file_from_another_fit_is_refused(tmp_path, datasets):
    X = datasets["iris"]
    for seed in (0, 1):
        bayesgmm.save(GaussianMixture(3, random_state=seed, init_params="random").fit(X),
                      tmp_path / str(seed))
    shutil.copy(tmp_path / "1" / "params.npz", tmp_path / "0" / "params.npz")
    with pytest.raises(ModelFormatError, match="params.npz is not the file this model was "
                                               "saved with"):
        bayesgmm.load(tmp_path / "0")
    meta = json.loads((tmp_path / "0" / "meta.json").read_text())
    meta["sha256"] = {"params.npz": "xyz"}
    (tmp_path / "0" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="meta.json's sha256 must map"):
        bayesgmm.load(tmp_path / "0")


def test_bayesian_meta_and_permutation_messages_say_what_is_wrong(tmp_path, nuts_saved):
    """Without format and format_version meta.json was said to hold "a
    'BayesianGaussianMixture', not a GaussianMixture or BayesianGaussianMixture"; a
    permutations array of the right shape with a repeated label was said to be of the
    wrong shape; method "gibbs" loaded."""
    _, saved = nuts_saved
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items()
                                     if k not in ("format", "format_version")}))
    with pytest.raises(ModelFormatError, match="meta.json holds a BayesianGaussianMixture "
                                               "but lacks 'format' and 'format_version'"):
        bayesgmm.load(folder)
    meta_path.write_text(json.dumps({**meta, "estimator_params": {
        **meta["estimator_params"], "method": "gibbs"}}))
    with pytest.raises(ModelFormatError, match="not valid BayesianGaussianMixture settings: "
                                               ".*gibbs"):
        bayesgmm.load(folder)
    meta_path.write_text(json.dumps(meta))
    perms = _npz_array(folder / "draws.npz", "permutations").copy()
    perms[0, 0] = 0
    _rewrite_npz(folder / "draws.npz", permutations=perms)
    with pytest.raises(ModelFormatError, match=r"permutations must be \(2, 50, 2\) integer "
                                               r"permutations of 0..1, got rows that are not "
                                               r"permutations"):
        bayesgmm.load(folder)


@pytest.mark.usefixtures("standard_promotion")
def test_damaged_bayesian_files_are_named(tmp_path, nuts_saved):
    _, saved = nuts_saved
    cases = {
        "draws.npz": (lambda p: _rewrite_npz(p, means=_npz_array(p, "means")[:, :, :1]),
                      r"means has shape \(2, 50, 1, 2\); with K=2"),
        "idata.nc": (_truncate, "idata.nc is not a readable netCDF file"),
        "idata_raw.nc": (lambda p: p.unlink(), "idata_raw.nc is missing"),
    }
    for name, (damage, message) in cases.items():
        folder = tmp_path / name
        shutil.copytree(saved, folder)
        damage(folder / name)
        with pytest.raises(ModelFormatError, match=message) as err:
            bayesgmm.load(folder)
        assert str(folder / name) in str(err.value)
    # draws of another model than params.npz's: 3 components against 2
    folder = tmp_path / "other"
    shutil.copytree(saved, folder)
    with np.load(folder / "draws.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(weights=np.full((2, 50, 3), 1 / 3),
                  means=np.zeros((2, 50, 3, 2)),
                  cov_factor=np.broadcast_to(np.eye(2), (2, 50, 3, 2, 2)),
                  permutations=np.broadcast_to(np.arange(3), (2, 50, 3)))
    np.savez(folder / "draws.npz", **arrays)
    with pytest.raises(ModelFormatError, match="draws.npz holds 3 components, meta.json's "
                                               "n_components says 2"):
        bayesgmm.load(folder)
    # the ArviZ data as sampled in place of the relabeled one: no log-likelihood for loo()
    folder = tmp_path / "raw"
    shutil.copytree(saved, folder)
    shutil.copy(folder / "idata_raw.nc", folder / "idata.nc")
    with pytest.raises(ModelFormatError, match="idata.nc has no log_likelihood group"):
        bayesgmm.load(folder)
    # health_ of another shape (3 components' flags against 2)
    folder = tmp_path / "health"
    shutil.copytree(saved, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["health"]["collapsed"] = [[False] * 3] * 2
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="meta.json's health is damaged"):
        bayesgmm.load(folder)


# SVI is left out: a 300-step SVI fit took 96 s on the 2-core test machine
@pytest.mark.parametrize("method,ct,dtype", [("map", "full", np.float32),
                                             ("map", "diag", np.float64)])
@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # one draw: sd is NaN
def test_map_roundtrip(tmp_path, small_data, method, ct, dtype):
    """Priors with arrays among the settings; a MAP fit is one draw."""
    from bayesgmm import Priors

    X = small_data.astype(dtype)
    priors = Priors(weight_concentration=2.0, mean_loc=np.array([1.0, 2.0]), scale_loc=0.8)
    fit = _fit_bayes(X, method=method, covariance_type=ct, priors=priors)
    bayesgmm.save(fit, tmp_path / "m")
    back = bayesgmm.load(tmp_path / "m")
    assert back.params_.dtype == fit.params_.dtype == dtype
    assert back.params_.batch_shape == fit.params_.batch_shape
    assert back.priors.weight_concentration == 2.0 and back.priors.scale_loc == 0.8
    np.testing.assert_array_equal(back.priors.mean_loc, [1.0, 2.0])
    assert back.priors.mean_scale is None and back.covariance_type == ct
    np.testing.assert_array_equal(back.predict_proba(X), fit.predict_proba(X))
    assert back.bic(X) == fit.bic(X)
    pd.testing.assert_frame_equal(back.summary(kind="stats"), fit.summary(kind="stats"))
    table = back.membership_table(X)
    assert list(table) == ["label", "probability"]  # one draw: no interval
    np.testing.assert_array_equal(table["probability"], fit.predict_proba(X).max(axis=1))


@pytest.fixture(scope="module")
def map_fits(small_data):
    """MAP fits (one draw each, the cheapest) of a plain model, one with a noise
    component, and one on small_data with 10% of its values missing; and their data."""
    holes = small_data.copy()
    holes[np.random.default_rng(0).random(holes.shape) < 0.1] = np.nan
    holes[np.isnan(holes).all(axis=1), 0] = small_data[np.isnan(holes).all(axis=1), 0]
    return {"plain": (_fit_bayes(small_data, method="map"), small_data),
            "noise": (_fit_bayes(small_data, method="map", noise=True), small_data),
            "holes": (_fit_bayes(holes, method="map", missing="marginalize"), holes),
            "custom": (_fit_bayes(small_data, method="map", priors=CUSTOM_PRIORS), small_data)}


def _custom_priors():
    from bayesgmm import Priors

    return Priors(weight_concentration=2.0, mean_loc=np.array([1.0, 2.0]), scale_loc=0.8)


CUSTOM_PRIORS = _custom_priors()


@pytest.mark.parametrize("fit, change, message", [
    ("plain", {"noise": True}, r"it has noise=True, but its posterior was sampled with "
                               r"noise=False .*set it back \(model.set_params\(noise=False\)\)"),
    ("plain", {"component": "t", "df": 4.0},
     r"it has component='t', df=4.0, but its posterior was sampled with "
     r"component='gaussian', df=None .*refit the model with the new settings .*set them "
     r"back \(model.set_params\(component='gaussian', df=None\)\)"),
    ("noise", {"noise": False}, r"it has noise=False, but .* sampled with noise=True"),
    ("noise", {"noise_volume": 50.0},
     r"it has noise_volume=50.0, but .* sampled with noise_volume='box'"),
    ("noise", {"noise_volume": "hull"},
     r"it has noise_volume='hull', but .* sampled with noise_volume='box'"),
    ("holes", {"missing": "error"},
     r"it has missing='error', but .* sampled with missing='marginalize'"),
])
@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # one draw: sd is NaN
def test_bayes_save_refuses_model_settings_changed_since_the_fit(tmp_path, map_fits, fit,
                                                                 change, message):
    """set_params(noise=True) after a fit without noise saved silently a folder whose
    meta.json said noise=True beside a posterior sampled without it (and so for the
    other options that define the model); save refuses, naming the setting and its
    fitted value, and writes nothing; set back, the fit saves and loads as it was."""
    model, X = map_fits[fit]
    fitted = model.get_params()
    model.set_params(**change)
    try:
        with pytest.raises(ValueError, match="Cannot save this BayesianGaussianMixture: "
                                             + message):
            bayesgmm.save(model, tmp_path / "deep" / "m")
        assert list(tmp_path.iterdir()) == []
    finally:
        model.set_params(**{name: fitted[name] for name in change})
    back = bayesgmm.load(bayesgmm.save(model, tmp_path / "m"))
    assert back.get_params() == fitted
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("change, name", [({"noise_volume": "bogus"}, "noise_volume"),
                                          ({"n_warmup": -3}, "n_warmup")])
@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # one draw: sd is NaN
def test_bayes_save_refuses_a_setting_made_invalid_after_the_fit(tmp_path, map_fits, change,
                                                                 name):
    """A setting the fit does not compare (a noise volume without noise, the warm-up of a
    MAP fit) made invalid after fit saved a folder that load refused; save refuses it
    first, naming it, and writes nothing; set back, the fit saves and loads."""
    model, X = map_fits["plain"]
    fitted = model.get_params()
    model.set_params(**change)
    try:
        with pytest.raises(ValueError, match="Cannot save this BayesianGaussianMixture: "
                                             f"Invalid value for '{name}'"):
            bayesgmm.save(model, tmp_path / "m")
        assert list(tmp_path.iterdir()) == []
    finally:
        model.set_params(**fitted)
    back = bayesgmm.load(bayesgmm.save(model, tmp_path / "m"))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning",
                            "ignore:Estimated shape parameter of Pareto:UserWarning")
def test_bayes_save_keeps_settings_that_leave_the_model_as_fitted(tmp_path, map_fits,
                                                                  nuts_saved, svi_fit):
    """Settings that leave the model as fitted are not refused: missing="marginalize"
    on a fit of complete data, a noise volume without noise, priors that resolve to the
    fitted ones (the defaults spelled out; the fitted arrays; sparse beside a weight
    concentration given), counts the method does not use (a MAP point's chains and
    draws, SVI's chains), and settings of how the draws were reached or read out
    (warm-up, step-size target, jitter, tree depth, SVI steps, padding, seed,
    progress bar: the posterior is the one drawn)."""
    model, X = map_fits["plain"]
    cases = [
        (model, {"missing": "marginalize", "noise_volume": 5.0, "n_draws": 7, "n_chains": 3,
                 "priors": _priors(), "random_state": 5, "progress_bar": True}),
        (map_fits["custom"][0], {"sparse": True, "priors": _priors(
            weight_concentration=2.0, mean_loc=np.array([1.0, 2.0]),
            scale_loc=np.array([0.8, 0.8]))}),
        (nuts_saved[0], {"n_warmup": 7, "target_accept_prob": 0.9, "jitter": 0.1,
                         "max_tree_depth": 5, "n_svi_steps": 10, "n_padded": 4,
                         "random_state": 3, "progress_bar": True}),
        (svi_fit, {"n_chains": 3, "n_warmup": 7, "random_state": 3})]
    for i, (fit, change) in enumerate(cases):
        fitted = fit.get_params()
        fit.set_params(**change)
        try:
            back = bayesgmm.load(bayesgmm.save(fit, tmp_path / str(i)))
            _same_settings(back.get_params(), fit.get_params())
        finally:
            fit.set_params(**fitted)
        np.testing.assert_array_equal(back.predict_proba(X), fit.predict_proba(X))


def _priors(**fields):
    from bayesgmm import Priors

    return Priors(**fields)


def _same_settings(a: dict, b: dict) -> None:
    """Two get_params() equal, a Priors' arrays included."""
    plain = lambda d: {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                       for k, v in d.items()}
    np.testing.assert_equal(plain(a), plain(b))


def _refused_then_saved(tmp_path, model, X, change, message):
    """``change`` (set_params) makes save refuse with ``message``, writing nothing; set
    back, the model saves and loads, answering as it did; returns the loaded model."""
    fitted = model.get_params()
    tmp_path.mkdir(exist_ok=True)
    model.set_params(**change)
    try:
        with pytest.raises(ValueError, match="Cannot save this BayesianGaussianMixture: "
                                             + message):
            bayesgmm.save(model, tmp_path / "deep" / "m")
        assert list(tmp_path.iterdir()) == []
    finally:
        model.set_params(**{name: fitted[name] for name in change})
    back = bayesgmm.load(bayesgmm.save(model, tmp_path / "m"))
    _same_settings(back.get_params(), fitted)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    return back


@pytest.mark.parametrize("fit, change, message", [
    ("plain", {"priors": _priors(weight_concentration=3.0)},
     r"it has priors=Priors\(weight_concentration=3.0, .*\), but its posterior was sampled "
     r"with priors=None .*set it back \(model.set_params\(priors=None\)\)"),
    # a data-scaled default: the same fields, other numbers once resolved on the data
    ("plain", {"priors": _priors(scale_spread="std")},
     r"it has priors=Priors\(.*scale_spread='std'\), but .* sampled with priors=None"),
    ("plain", {"sparse": True},
     r"it has sparse=True, but .* sampled with sparse=False .*\(model.set_params\("
     r"sparse=False\)\)"),
    ("custom", {"priors": None},
     r"it has priors=None, but .* sampled with priors=Priors\(weight_concentration=2.0, "
     r".*mean_loc=array\(\[1\., 2\.\]\), .*scale_loc=array\(\[0\.8, 0\.8\]\)"),
    ("custom", {"priors": _priors(weight_concentration=2.0, mean_loc=np.array([1.0, 2.0]),
                                  scale_loc=0.9)},
     r"it has priors=Priors\(.*scale_loc=0.9.*\), but .* sampled with priors=Priors\("
     r".*scale_loc=array\(\[0\.8, 0\.8\]\)"),
    ("noise", {"noise": False, "priors": _priors(lkj_concentration=4.0)},
     r"it has noise=False, priors=Priors\(.*lkj_concentration=4.0.*\), but .* sampled "
     r"with noise=True, priors=None .*set them back"),
], ids=["weight", "spread", "sparse", "custom-none", "custom-scale", "noise-and-lkj"])
@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # one draw: sd is NaN
def test_bayes_save_refuses_priors_changed_since_the_fit(tmp_path, map_fits, fit, change,
                                                          message):
    """set_params(priors=...) or sparse after a fit saved silently a folder whose
    meta.json's priors were not the ones the posterior was sampled under; save refuses
    when they resolve on the training data (idata_'s observed_data) to other numbers
    than priors_, naming the setting and what gives the fitted priors; set back, it
    saves and loads as it was."""
    model, X = map_fits[fit]
    _refused_then_saved(tmp_path, model, X, change, message)


@pytest.fixture(scope="module")
def svi_fit(small_data):
    """The cheapest SVI fit (20 steps, 10 draws): one chain of draws, no sample_stats."""
    return _fit_bayes(small_data, method="svi", n_svi_steps=20, n_draws=10)


@pytest.mark.parametrize("fit, change, message", [
    ("map", {"method": "nuts"},
     r"it has method='nuts', but its posterior was sampled with method='map' .*set it back "
     r"\(model.set_params\(method='map'\)\)"),
    ("nuts", {"method": "map"}, r"it has method='map', but .* sampled with method='nuts'"),
    ("nuts", {"n_chains": 4}, r"it has n_chains=4, but .* sampled with n_chains=2 "),
    ("nuts", {"n_draws": 100}, r"it has n_draws=100, but .* sampled with n_draws=50 "),
    ("nuts", {"n_chains": 1, "n_draws": 10},
     r"it has n_chains=1, n_draws=10, but .* sampled with n_chains=2, n_draws=50 .*set "
     r"them back \(model.set_params\(n_chains=2, n_draws=50\)\)"),
    ("svi", {"method": "nuts"}, r"it has method='nuts', but .* sampled with method='svi'"),
    ("svi", {"n_draws": 20}, r"it has n_draws=20, but .* sampled with n_draws=10 "),
], ids=["map-method", "nuts-method", "nuts-chains", "nuts-draws", "nuts-both", "svi-method",
        "svi-draws"])
@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning",
                            "ignore:Estimated shape parameter of Pareto:UserWarning")
def test_bayes_save_refuses_inference_settings_changed_since_the_fit(
        tmp_path, map_fits, nuts_saved, svi_fit, small_data, fit, change, message):
    """A MAP fit saved with method="nuts" claimed to be posterior draws, a 2 x 50 NUTS
    fit saved with n_chains=4 or n_draws=100 a run it was not; save refuses, naming the
    method the fit's idata_ holds and its posterior's chains and draws. A loaded fit
    (idata_ read back from idata.nc) refuses the same change."""
    model = {"map": map_fits["plain"][0], "nuts": nuts_saved[0], "svi": svi_fit}[fit]
    back = _refused_then_saved(tmp_path / "fit", model, small_data, change, message)
    _refused_then_saved(tmp_path / "loaded", back, small_data, change, message)


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_bayes_folder_without_priors_still_loads_saves_and_checks_the_draws(tmp_path,
                                                                          nuts_saved,
                                                                          small_data):
    """A folder saved before meta.json kept the resolved priors loads without priors_
    and saves; its inference settings are still checked (read from idata.nc)."""
    _, saved = nuts_saved
    folder = tmp_path / "old"
    shutil.copytree(saved, folder)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["priors"]
    (folder / "meta.json").write_text(json.dumps(meta))
    old = bayesgmm.load(folder)
    assert not hasattr(old, "priors_")
    _refused_then_saved(tmp_path / "again", old, small_data, {"n_draws": 7},
                        r"it has n_draws=7, but .* sampled with n_draws=50 ")


# ---- tables ------------------------------------------------------------------------------


def test_em_membership_table_and_write_table(tmp_path, datasets):
    X = datasets["iris"]
    gm = GaussianMixture(3, random_state=0).fit(X)
    table = gm.membership_table(X)
    proba = gm.predict_proba(X)
    assert list(table) == ["label", "probability"]
    np.testing.assert_array_equal(table["label"], gm.predict(X))
    np.testing.assert_array_equal(table["probability"], proba.max(axis=1))
    path = write_table(tmp_path / "membership.csv", table)
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "label", "probability"] and len(rows) == len(X) + 1
    assert [int(r[0]) for r in rows[1:]] == list(range(len(X)))
    np.testing.assert_array_equal([int(r[1]) for r in rows[1:]], table["label"])
    np.testing.assert_array_equal([float(r[2]) for r in rows[1:]], table["probability"])
    ids = [f"plant, {i}" for i in range(len(X))]  # a comma in an id is quoted
    write_table(path, table, row_ids=ids)
    with path.open() as fh:
        assert [r[0] for r in list(csv.reader(fh))[1:]] == ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["membership.csv"]
    with pytest.raises(ValueError, match="one id per row"):
        write_table(path, table, row_ids=ids[:3])
    with pytest.raises(ValueError, match="1-D columns of one length"):
        write_table(path, {"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="prob must be a probability"):
        gm.membership_table(X, prob=1.5)
