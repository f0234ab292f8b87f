"""Saving and loading fitted models: the ``models/<name>/`` folder format, and tables.

Glossary: N samples, D features, K components, C chains, S draws per chain.

:func:`save` writes a fitted :class:`bayesgmm.GaussianMixture` or
:class:`bayesgmm.BayesianGaussianMixture` to a folder, :func:`load` reads it back
(``models/README.md`` documents the format, version :data:`FORMAT_VERSION`):

``meta.json``
    ``format``, ``format_version``, ``bayesgmm_version``, ``estimator`` (class name),
    ``estimator_params`` (the constructor settings), ``dtype``, ``n_features_in``,
    ``feature_names`` (when the model has ``feature_names_in_``), the fit's report, and
    ``sha256``: each other file's SHA-256, which :func:`load` compares.
``params.npz``
    The point estimate (EM's fit; the MAP for a Bayesian fit): ``weights (K,)``,
    ``means (K, D)``, ``cov_factor`` (by type; :mod:`bayesgmm.covariance`) and
    ``covariance_type`` (a 0-d string array).
``online.npz``
    A GaussianMixture trained by ``partial_fit`` only: online EM's running statistics
    (:class:`bayesgmm.suffstats.SuffStats`' arrays) and ``n_batches``, so the loaded
    model's next ``partial_fit`` continues as the saved one's would (without them it
    started over, from its parameters, at step size 1).
``draws.npz``, ``idata.nc``, ``idata_raw.nc``, ``summary.csv``
    Bayesian fits only: the relabeled posterior draws with leading (C, S) and the
    relabeling's permutations, the ArviZ data as netCDF (relabeled, with the pointwise
    log-likelihood; and as sampled), and ``arviz.summary`` of the draws.

Design notes
------------
* Atomic: everything is written into a temporary sibling folder, which then replaces
  ``directory`` (renamed) only when complete; a failed save leaves no folder behind and
  an existing one as it was. Files in an existing folder that are not the model's
  (figures, ``config.toml``, tables) are carried over into the new one, so a save never
  deletes what it did not write.
* Validated: :func:`load` checks every file (shapes, finite values, weights on the
  simplex, positive-definite factors, draws that agree with the point estimate) and
  raises :class:`ModelFormatError` (a ``ValueError``) naming the file and the problem.
  The parameters' values are checked by :func:`bayesgmm.validation.check_params`, the
  check :meth:`GaussianMixture.from_params` makes too, so a file is refused exactly when
  its parameters would be (a finite 1e300 mean or 1e-300 factor predicted NaN).
* Fingerprinted: ``meta.json`` records the SHA-256 of every other file the save wrote,
  and :func:`load` refuses a file whose hash differs. Each file alone can be valid and of
  the right shapes yet come from another fit (``draws.npz`` or ``idata.nc`` copied from
  a run of the same K and D), which loaded silently as an inconsistent model. The
  contents are checked first, so a damaged file is still named for what is wrong with
  it; folders saved before the hashes were kept load unverified.
* No pickle: arrays are read with ``allow_pickle=False``, settings are JSON, and
  NumPy's own error for an object array (which suggests ``allow_pickle``) is replaced by
  one that names the file and array.
* A GaussianMixture folder keeps ``n_padded``, the padded number of components its
  compiled programs ran at: the loaded model pads as far, so its predictions equal the
  saved model's bit for bit. Loading one imports no JAX; a Bayesian one imports
  :mod:`bayesgmm.bayes`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import uuid
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bayesgmm.covariance import CANONICAL, ops
from bayesgmm.engines import FitInfo
from bayesgmm.estimators import GaussianMixture, check_settings, online_state, set_online_state
from bayesgmm.params import GMMParams
from bayesgmm.validation import check_is_fitted, check_params

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_FILES", "ModelFormatError",
           "MissingModelFileError", "save", "load", "save_model", "load_model",
           "save_params", "load_params", "write_table"]

#: ``meta.json``'s ``format``: what the folder is.
FORMAT = "bayesgmm-model"
#: The version this module writes and the newest it reads. 0 is the unversioned format
#: before it (GaussianMixture only, the same files without ``format``/``format_version``).
FORMAT_VERSION = 1
#: The files a save owns; anything else in the folder is the caller's and is kept.
MODEL_FILES = ("meta.json", "params.npz", "online.npz", "draws.npz", "idata.nc",
               "idata_raw.nc", "summary.csv")
ESTIMATORS = ("GaussianMixture", "BayesianGaussianMixture")
# meta.json keys a save writes itself; ``extra`` may not override them
_GM_KEYS = ("n_padded", "lower_bound", "lower_bounds", "n_iter", "converged", "online",
            "fit_engine")
_BAYES_KEYS = ("draws", "relabeling", "diagnostics", "has_idata_raw")
_RESERVED = ("format", "format_version", "bayesgmm_version", "estimator", "estimator_params",
             "dropped_settings", "dtype", "n_features_in", "feature_names", "sha256",
             *_GM_KEYS, *_BAYES_KEYS)
_PARAM_ARRAYS = ("weights", "means", "cov_factor")
# online.npz: online EM's running statistics (SuffStats' fields) and the batches seen
_ONLINE_ARRAYS = ("nk", "sx", "sxx", "shift", "sum_w", "sum_wll", "n_underflow", "n_batches")


class ModelFormatError(ValueError):
    """A saved model folder cannot be loaded; the message names the file and the problem."""


class MissingModelFileError(ModelFormatError, FileNotFoundError):
    """A file the saved model needs is missing (also a ``FileNotFoundError``)."""


# ---- saving ------------------------------------------------------------------------------


def save(model, directory: str | Path, *, overwrite: bool = True,
         extra: dict | None = None) -> Path:
    """Write a fitted estimator to the folder ``directory``, atomically.

    Parameters
    ----------
    model : GaussianMixture or BayesianGaussianMixture
        Fitted.
    directory : str or Path
        Created with its parents. An existing folder is replaced once the new one is
        complete; its files that are not the model's (:data:`MODEL_FILES`) are kept.
    overwrite : bool, default=True
        False: refuse (``FileExistsError``) when ``directory`` exists.
    extra : dict, optional
        JSON-serialisable entries added to ``meta.json`` (e.g. a run summary); they may
        not reuse the keys the format writes.

    Returns
    -------
    Path
        ``directory``.
    """
    name = type(model).__name__
    if name not in ESTIMATORS:
        raise TypeError(f"save writes a GaussianMixture or BayesianGaussianMixture, got {name}")
    check_is_fitted(model)
    _check_settings_fitted(model)
    clash = sorted(set(extra or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra may not set meta.json's own keys {clash}; rename them")
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"save takes the path of a folder (a str or os.PathLike, such as "
                        f"pathlib.Path); got {type(directory).__name__} {directory!r}")
    given, directory = directory, Path(os.path.abspath(directory))
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file, not a folder; choose another path")
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace the model "
                              "in it, or choose another folder")
    created = [p for p in directory.parents if not p.exists()]  # deepest first
    tmp = directory.parent / f".{directory.name}.saving-{uuid.uuid4().hex[:12]}"
    try:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as err:  # OSError's own message names the temporary folder
            raise _unwritable(given, directory, err) from None
        meta = _write_model(model, tmp)
        hashes = {name: _sha256(tmp / name) for name in MODEL_FILES
                  if name != "meta.json" and (tmp / name).is_file()}
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "bayesgmm_version": _library_version(), **meta, "sha256": hashes,
                **(extra or {})}
        _write_text(tmp / "meta.json", json.dumps(meta, indent=2, default=_json_default))
        if directory.exists():
            _carry_over(directory, tmp)
        _replace_folder(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # the parents this save made, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return directory


def _check_settings_fitted(model) -> None:
    """Refuse to save a model whose ``n_components`` or covariance model was changed
    (``set_params``) since its fit: meta.json would hold the new settings beside the
    fitted arrays, a folder that :func:`load` then refuses as contradicting itself.
    Another name of the same model (``"VVV"`` for a ``"full"`` fit) is the same fit.
    Every setting must pass the estimator's own check (:func:`check_settings`, as at
    load: an invalid one made a folder load refuses). A Bayesian fit's other settings too (:func:`bayesgmm.bayes.robust.changed_settings`:
    ``noise``, ``noise_volume``, ``component``, ``df``, ``missing``, ``sparse``,
    ``priors``, ``method``, ``n_chains``, ``n_draws``): after a change a folder was
    saved silently, its settings no longer the model its posterior was sampled under,
    or (``method="nuts"`` on a MAP fit) not the way it was drawn."""
    try:  # the check load makes: a setting made invalid after fit would be refused there
        check_settings(model)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cannot save this {type(model).__name__}: {err} (set_params after "
                         "fit?); set it back to a valid value before saving") from None
    params = model.params_ if type(model).__name__ == "GaussianMixture" else model.map_params_
    K, ct = params.n_components, params.covariance_type
    fix = "refit the model with the new setting (model.fit(X)) before saving it, or set it back"
    if not (isinstance(model.n_components, int | np.integer)
            and not isinstance(model.n_components, bool) and model.n_components == K):
        raise ValueError(
            f"Cannot save this {type(model).__name__}: its n_components is "
            f"{model.n_components!r} but it was fitted with {K} components (set_params "
            f"after fit?); {fix} (model.set_params(n_components={K}))")
    setting = model.covariance_type
    if not isinstance(setting, str) or CANONICAL.get(setting) != CANONICAL[ct]:
        raise ValueError(
            f"Cannot save this {type(model).__name__}: its covariance_type is "
            f"{setting!r} but it was fitted with {ct!r} covariances (set_params after "
            f"fit?); {fix} (model.set_params(covariance_type={ct!r}))")
    if type(model).__name__ == "GaussianMixture":
        return
    from bayesgmm.bayes.robust import changed_settings

    # priors_ None: a folder saved before they were kept (only the inference is compared)
    changed = changed_settings(model.get_params(), getattr(model, "priors_", None),
                               model.idata_)
    if changed:
        now = ", ".join(f"{name}={getattr(model, name)!r}" for name, _ in changed)
        then = ", ".join(f"{name}={value!r}" for name, value in changed)
        several = len(changed) > 1
        raise ValueError(
            f"Cannot save this {type(model).__name__}: it has {now}, but its posterior "
            f"was sampled with {then} (set_params after fit?); refit the model with the new "
            f"setting{'s' * several} (model.fit(X)) before saving it, or set "
            f"{'them' if several else 'it'} back (model.set_params({then}))")


def _unwritable(given, directory: Path, err: OSError) -> OSError:
    """``err`` (creating ``directory``'s parents or the temporary folder beside it) as
    the same kind of error, naming the path the caller gave and why it cannot be
    written there; OSError's own message names the internal temporary path."""
    blocker = next((p for p in reversed(directory.parents)
                    if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        why = f"{blocker} is a file, not a folder"
    elif not directory.parent.exists():
        why = f"its folder {directory.parent} does not exist and cannot be created"
    else:
        why = f"its folder {directory.parent} is not writable"
    reason = f" ({err.strerror})" if err.strerror else ""
    message = (f"Cannot save the model to {given}: {why}{reason}; choose a folder you can "
               "write to")
    return type(err)(message) if err.errno is None else type(err)(err.errno, message)


def save_model(model, directory: str | Path, *, extra: dict | None = None,
               overwrite: bool = True) -> Path:
    """:func:`save` under its earlier name (the command line calls it)."""
    return save(model, directory, overwrite=overwrite, extra=extra)


def save_params(params: GMMParams, path: str | Path) -> Path:
    """Write ``params`` (batch shape ``()`` or any batch dims) to ``path`` (``.npz``):
    ``weights``, ``means``, ``cov_factor`` and ``covariance_type``."""
    path = Path(path)
    p = params.to_numpy()
    np.savez(path, weights=p.weights, means=p.means, cov_factor=p.cov_factor,
             covariance_type=np.array(p.covariance_type))
    return path


def write_table(path: str | Path, table: dict, row_ids=None) -> Path:
    """Write a table of columns (e.g. ``membership_table``'s) as CSV, atomically.

    Parameters
    ----------
    path : str or Path
    table : dict of str to array of shape (N,)
        Columns in order; numbers are written in their shortest exact form.
    row_ids : sequence of length N, optional
        The first column, ``id`` (the data's row names or numbers); default 0..N-1.

    Returns
    -------
    Path
    """
    path = Path(path)
    columns = {str(k): np.asarray(v) for k, v in table.items()}
    if not columns:
        raise ValueError("write_table got an empty table; pass a dict of columns")
    if "id" in columns:
        raise ValueError("write_table writes the row ids as column 'id'; rename the "
                         "table's own 'id' column or pass it as row_ids")
    n = {k: v.shape for k, v in columns.items()}
    N = next(iter(columns.values())).shape[0] if next(iter(n.values())) else 0
    if any(len(s) != 1 or s[0] != N for s in n.values()):
        raise ValueError(f"write_table needs 1-D columns of one length; got shapes {n}")
    ids = np.arange(N) if row_ids is None else np.asarray(row_ids)
    if ids.shape != (N,):
        raise ValueError(f"row_ids must have one id per row, shape ({N},); got {ids.shape}")
    cells = [ids.astype(str)] + [v.astype(str) for v in columns.values()]
    tmp = path.parent / f".{path.name}.writing-{uuid.uuid4().hex[:12]}"
    try:
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", *columns])
            writer.writerows(zip(*cells))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---- loading -----------------------------------------------------------------------------


def load(directory: str | Path):
    """Rebuild the fitted estimator saved by :func:`save`, validating every file.

    Returns
    -------
    GaussianMixture or BayesianGaussianMixture
        Predicting as the saved model did. A GaussianMixture has ``engine_`` (not from a
        folder saved before meta.json held it) and, trained by ``partial_fit``, its
        online state (``online.npz``). A Bayesian one has ``params_`` (the draws),
        ``map_params_``, ``idata_``, ``idata_raw_``, ``relabeling_``, ``diagnostics_``,
        ``health_`` (not from a folder saved before meta.json held it),
        ``warnings_`` and the posterior means; not ``em_`` (the EM fit it started from).

    Raises
    ------
    ModelFormatError
        Naming the file and what is wrong with it (:class:`MissingModelFileError` for a
        missing file).
    """
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"load takes the path of a folder written by bayesgmm.save; got "
                        f"{type(directory).__name__} {directory!r}")
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not a folder" if directory.exists() else "does not exist"
        raise MissingModelFileError(
            f"No saved model in {directory}: the folder {what} (a model folder holds "
            "meta.json and params.npz, written by bayesgmm.save)")
    if not (directory / "meta.json").is_file():
        raise MissingModelFileError(
            f"{directory / 'meta.json'}: meta.json is missing: {directory} holds no model "
            f"saved by bayesgmm.save (whose folders hold meta.json and params.npz); it holds "
            f"{_listing(directory)}")
    meta = _read_meta(directory / "meta.json")
    settings = _decode_settings(meta, directory / "meta.json")
    params = _read_params(directory / "params.npz", meta)
    _check_settings(meta, settings, directory / "meta.json")
    if meta["estimator"] == "GaussianMixture":
        model = _load_em(directory, meta, params, settings)
    else:
        model = _load_bayes(directory, meta, params, settings)
    names = meta.get("feature_names")
    if names is not None:
        model.feature_names_in_ = np.asarray(names, dtype=object)
    _check_hashes(directory, meta)
    return model


def load_model(directory: str | Path):
    """:func:`load` under its earlier name (the command line calls it)."""
    return load(directory)


def load_params(path: str | Path) -> GMMParams:
    """The :class:`GMMParams` written by :func:`save_params`, validated, NumPy leaves.

    ``path`` is the ``.npz`` file (a saved model folder's is its ``params.npz``); a
    folder or a missing file is a :class:`MissingModelFileError` saying which was found.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"load_params takes the path of a .npz file written by save_params; "
                        f"got {type(path).__name__} {path!r}")
    path = Path(path)
    expected = ("load_params reads a .npz file written by bayesgmm.io.save_params (a saved "
                "model folder's is its params.npz)")
    if path.is_dir():
        model = (path / "params.npz").is_file()
        fix = (f"; pass {path / 'params.npz'}, or load the whole model with "
               f"bayesgmm.load({str(path)!r})" if model else "")
        raise MissingModelFileError(f"{path}: {expected}, but this is a folder, holding "
                                    f"{_listing(path)}{fix}")
    if not path.exists():
        raise MissingModelFileError(f"{path}: {expected}, but there is no such file")
    return _read_params(path, None)


# ---- writing helpers -----------------------------------------------------------------------


def _write_model(model, folder: Path) -> dict:
    """Write the arrays (and the Bayesian files) of ``model`` into ``folder``; returns
    its meta.json entries."""
    params = model.params_ if type(model).__name__ == "GaussianMixture" else model.map_params_
    params = params.to_numpy()
    save_params(params, folder / "params.npz")
    settings, dropped = _encode_settings(model.get_params())
    meta = {"estimator": type(model).__name__, "estimator_params": settings,
            "dropped_settings": dropped, "dtype": str(params.dtype),
            "n_features_in": int(model.n_features_in_)}
    if hasattr(model, "feature_names_in_"):
        meta["feature_names"] = [str(n) for n in model.feature_names_in_]
    if type(model).__name__ == "GaussianMixture":
        online = online_state(model)  # set by partial_fit, cleared by fit
        if online is not None:
            stats = {f: np.asarray(a) for f, a in zip(online.stats._fields, online.stats)}
            np.savez(folder / "online.npz", **stats,
                     n_batches=np.asarray(online.n_batches, dtype=np.int64))
        return {**meta, "n_padded": int(model.n_padded_), "lower_bound": model.lower_bound_,
                "lower_bounds": model.lower_bounds_, "n_iter": model.n_iter_,
                "converged": model.converged_, "online": online is not None,
                # engine_: where the fit ran (a from_params model has none)
                "fit_engine": model.__dict__.get("engine_")}
    return {**meta, **_write_bayes(model, folder)}


def _write_bayes(model, folder: Path) -> dict:
    from bayesgmm.bayes import arviz

    draws = model.params_.to_numpy()
    np.savez(folder / "draws.npz", weights=draws.weights, means=draws.means,
             cov_factor=draws.cov_factor, covariance_type=np.array(draws.covariance_type),
             permutations=np.asarray(model.relabeling_.permutations, dtype=np.int64))
    arviz.to_netcdf(model.idata_, folder / "idata.nc")
    has_raw = getattr(model, "idata_raw_", None) is not None
    if has_raw:
        arviz.to_netcdf(model.idata_raw_, folder / "idata_raw.nc")
    with warnings.catch_warnings():
        # a MAP fit is one draw: its sd and diagnostics are NaN, with NumPy's warnings
        warnings.simplefilter("ignore", RuntimeWarning)
        model.summary().to_csv(folder / "summary.csv")
    d = model.diagnostics_
    C, S = draws.batch_shape
    return {"draws": {"chain": C, "draw": S},
            "relabeling": {"n_switched": int(model.relabeling_.n_switched),
                           "n_iter": int(model.relabeling_.n_iter)},
            "diagnostics": {"n_divergent": np.asarray(d.n_divergent).tolist(),
                            "at_max_depth": np.asarray(d.at_max_depth, float).tolist(),
                            "step_size": np.asarray(d.step_size, float).tolist(),
                            "lp_rhat": float(d.lp_rhat), "finite": bool(d.finite),
                            "warnings": list(d.warnings)},
            "fit_warnings": [str(w) for w in model.warnings_],  # the health problems
            "health": _encode_health(model.health_),
            "has_idata_raw": has_raw,
            # the resolved priors: the messy-data model (noise region, t, missing) with them
            "priors": _encode_value(model.priors_) if hasattr(model, "priors_") else None}


def _library_version() -> str:
    # Read from the imported package, not imported from it: bayesgmm imports this module
    # (lazily, for bayesgmm.save and bayesgmm.load), so an import back would be a circle.
    return sys.modules["bayesgmm"].__version__


def _encode_settings(params: dict) -> tuple[dict, list[str]]:
    """Constructor settings as JSON: plain values as they are, arrays as
    ``{"__type__": "ndarray", "dtype", "data"}``, :class:`Priors` as
    ``{"__type__": "Priors", field: value...}``; the names of others (a ``RandomState``)
    are returned as dropped (the loaded model has their default)."""
    out, dropped = {}, []
    for name, value in params.items():
        encoded = _encode_value(value)
        if encoded is _DROP:
            dropped.append(name)
        else:
            out[name] = encoded
    return out, dropped


_DROP = object()


def _encode_value(value):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if type(value).__name__ == "Prior" and hasattr(value, "_fields"):  # covariance.Prior
        fields = {name: _encode_value(getattr(value, name)) for name in value._fields}
        if any(v is _DROP for v in fields.values()):
            return _DROP
        return {"__type__": "Prior", **fields}
    if isinstance(value, np.ndarray | list | tuple) and np.asarray(value).dtype.kind in "biuf":
        a = np.asarray(value)
        return {"__type__": "ndarray", "dtype": str(a.dtype), "data": a.tolist()}
    if type(value).__name__ == "Priors" and dataclasses.is_dataclass(value):
        fields = {f.name: _encode_value(getattr(value, f.name))
                  for f in dataclasses.fields(value)}
        if any(v is _DROP for v in fields.values()):
            return _DROP
        return {"__type__": "Priors", **fields}
    return _DROP


def _json_default(value):
    """NumPy scalars and arrays in ``extra`` as JSON numbers and lists."""
    if isinstance(value, np.generic | np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    raise TypeError(f"meta.json cannot hold {type(value).__name__} value {value!r}; pass "
                    "numbers, strings, booleans, lists or dicts in extra")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_text(path: Path, text: str) -> None:
    with path.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (or copy) the entries of ``old`` that are not model files into ``new``."""
    for entry in old.iterdir():
        if entry.name in MODEL_FILES or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _replace_folder(tmp: Path, directory: Path) -> None:
    """Rename the complete ``tmp`` to ``directory``; an existing ``directory`` is moved
    aside first and deleted after (put back if the rename fails)."""
    if not directory.exists():
        os.rename(tmp, directory)
        return
    old = directory.parent / f".{directory.name}.replaced-{uuid.uuid4().hex[:12]}"
    os.rename(directory, old)
    try:
        os.rename(tmp, directory)
    except BaseException:
        os.rename(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---- reading helpers -----------------------------------------------------------------------


def _listing(folder: Path, limit: int = 8) -> str:
    """What ``folder`` holds, for a message: its first ``limit`` names (folders with a
    trailing /) and a count of the rest."""
    try:
        names = sorted(p.name + "/" * p.is_dir() for p in folder.iterdir())
    except OSError as err:
        return f"entries that cannot be listed ({err.strerror})"
    if not names:
        return "nothing (it is empty)"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _fail(path: Path, problem: str) -> ModelFormatError:
    return ModelFormatError(f"{path}: {problem}")


def _check_hashes(directory: Path, meta: dict) -> None:
    """Refuse a file of the folder that is not the one the model was saved with: its
    SHA-256 differs from meta.json's ``sha256`` record. Called after the contents were
    read and checked (a damaged file is named for its damage); a recorded file that is
    absent was not needed (``summary.csv`` is not read back). Folders saved before the
    record (no ``sha256``) are not checked."""
    path = directory / "meta.json"
    record = meta.get("sha256")
    if record is None:
        return
    if not (isinstance(record, dict) and all(
            name in MODEL_FILES and name != "meta.json" and isinstance(h, str)
            and len(h) == 64 and all(c in "0123456789abcdef" for c in h)
            for name, h in record.items())):
        raise _fail(path, f"meta.json's sha256 must map the folder's model files "
                          f"({', '.join(MODEL_FILES[1:])}) to 64-digit hex SHA-256 "
                          f"hashes, got {record!r}; the file is damaged: re-save the model")
    for name, expected in record.items():
        file = directory / name
        if not file.is_file():
            continue
        actual = _sha256(file)
        if actual != expected:
            raise _fail(file, f"{name} is not the file this model was saved with: its "
                              f"SHA-256 is {actual[:16]}..., meta.json records "
                              f"{expected[:16]}... (copied from another fit or edited); "
                              "save the model again (from the fitted estimator), or put "
                              f"back the {name} saved with this meta.json")


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise MissingModelFileError(f"{path}: meta.json is missing; this folder holds no "
                                    "model saved by bayesgmm.save (re-save the model)")
    try:
        meta = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise _fail(path, "meta.json is not text (damaged?); re-save the model") from None
    except json.JSONDecodeError as err:
        raise _fail(path, f"meta.json is not valid JSON ({err.msg} at line {err.lineno}, "
                          f"column {err.colno}); the file is damaged: re-save the model"
                    ) from None
    if not isinstance(meta, dict):
        raise _fail(path, f"meta.json holds a JSON {type(meta).__name__}, not an object; "
                          "re-save the model")
    if "format" in meta and meta["format"] != FORMAT:
        raise _fail(path, f"meta.json's format is {meta['format']!r}, not {FORMAT!r}")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _fail(path, f"meta.json's format_version must be a whole number >= 0, got "
                          f"{version!r}")
    if version > FORMAT_VERSION:
        raise _fail(path, f"meta.json has format_version {version}, newer than this "
                          f"bayesgmm reads ({FORMAT_VERSION}); upgrade bayesgmm to load it")
    estimator = meta.get("estimator")
    if estimator not in ESTIMATORS:
        raise _fail(path, f"meta.json holds a {estimator!r}, not a GaussianMixture or "
                          "BayesianGaussianMixture")
    if version == 0 and estimator != "GaussianMixture":
        lost = [key for key in ("format", "format_version") if key not in meta]
        raise _fail(path, f"meta.json holds a {estimator} but lacks "
                          f"{' and '.join(repr(k) for k in lost) or 'a format_version >= 1'}"
                          f", which every saved {estimator} has (only GaussianMixture "
                          "folders were written before them); the file is damaged: re-save "
                          "the model")
    required = {"estimator_params": dict, "dtype": str, "n_features_in": int}
    required.update({"n_iter": int, "converged": bool, "lower_bound": (int, float),
                     "lower_bounds": list} if estimator == "GaussianMixture" else
                    {"draws": dict, "relabeling": dict, "diagnostics": dict})
    for key, kind in required.items():
        if key not in meta:
            raise _fail(path, f"meta.json lacks the key {key!r}; re-save the model")
        if not isinstance(meta[key], kind) or (kind is int and isinstance(meta[key], bool)):
            raise _fail(path, f"meta.json's {key!r} is {meta[key]!r}, of the wrong type")
    if meta["dtype"] not in ("float32", "float64"):
        raise _fail(path, f"meta.json's dtype must be 'float32' or 'float64', got "
                          f"{meta['dtype']!r}")
    if meta["n_features_in"] < 1:
        raise _fail(path, f"meta.json's n_features_in must be >= 1, got "
                          f"{meta['n_features_in']}")
    names = meta.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != meta["n_features_in"]
                              or not all(isinstance(n, str) for n in names)):
        raise _fail(path, f"meta.json's feature_names must be {meta['n_features_in']} "
                          f"strings (one per feature), got {names!r}")
    return meta


def _decode_settings(meta: dict, path: Path) -> dict:
    """The constructor settings of ``meta.json``, decoded (see :func:`_encode_settings`)
    and checked against the estimator's constructor."""
    settings = {k: _decode_value(v, f"estimator_params[{k!r}]", path)
                for k, v in meta["estimator_params"].items()}
    if meta["estimator"] == "GaussianMixture":
        valid = GaussianMixture().get_params()
    else:
        from bayesgmm.bayes import BayesianGaussianMixture

        valid = BayesianGaussianMixture().get_params()
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise _fail(path, f"meta.json's estimator_params has settings {unknown} that this "
                          f"bayesgmm's {meta['estimator']} does not take (saved by bayesgmm "
                          f"{meta.get('bayesgmm_version', '?')}); upgrade bayesgmm")
    return settings


def _check_settings(meta: dict, settings: dict, path: Path) -> None:
    """The estimator's own check of the decoded settings, so an edited setting (engine
    "gpu9", tol "abc", reg_covar -1) is refused at load, naming meta.json, not by the
    loaded model's next fit. After params.npz is read: its comparisons with
    n_components and covariance_type name the disagreement more clearly."""
    if meta["estimator"] == "GaussianMixture":
        estimator = GaussianMixture
    else:
        from bayesgmm.bayes import BayesianGaussianMixture as estimator
    try:
        check_settings(estimator(**settings))
    except (TypeError, ValueError) as err:
        raise _fail(path, f"meta.json's estimator_params are not valid {meta['estimator']} "
                          f"settings: {err}; the file was edited or is damaged: re-save "
                          "the model") from None


def _decode_value(value, where: str, path: Path):
    if not isinstance(value, dict):
        return value
    kind = value.get("__type__")
    if kind == "ndarray":
        try:
            return np.asarray(value["data"], dtype=np.dtype(value["dtype"]))
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(path, f"meta.json's {where} is not a valid array ({err})") from None
    if kind in ("Prior", "Priors"):  # covariance.Prior (EM's) or bayes.Priors
        cls = _prior_class(kind)
        fields = {k: _decode_value(v, f"{where}[{k!r}]", path)
                  for k, v in value.items() if k != "__type__"}
        try:
            return cls(**fields)
        except TypeError as err:
            raise _fail(path, f"meta.json's {where} is not a valid {kind} ({err})") from None
    raise _fail(path, f"meta.json's {where} is an object of unknown type {kind!r}")


def _prior_class(kind: str):
    """The class a saved prior decodes to (imported on demand: bayes loads NumPyro)."""
    if kind == "Prior":
        from bayesgmm.covariance import Prior

        return Prior
    from bayesgmm.bayes import Priors

    return Priors


def _read_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``.npz`` at ``path``, read with ``allow_pickle=False``;
    every failure is a :class:`ModelFormatError` naming the file (and the array)."""
    if not path.is_file():
        raise MissingModelFileError(f"{path}: {path.name} is missing; re-save the model")
    damaged = (f"{path.name} is not a valid .npz archive (truncated or damaged?); re-save "
               "the model")
    # Each failure is raised outside the handler that caught it, so NumPy's own message
    # (whose advice for a pickled file is to set allow_pickle) is not even the context.
    problem, archive = None, None
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        problem = damaged
    if problem is None and not isinstance(archive, np.lib.npyio.NpzFile):
        problem = damaged  # a lone .npy array, not an archive
    if problem is not None:
        raise _fail(path, problem)
    out = {}
    with archive:
        for name in names:
            if name not in archive.files:
                raise _fail(path, f"{path.name} lacks the array {name!r} (it has "
                                  f"{sorted(archive.files)}); re-save the model")
            try:
                out[name] = archive[name]
            except ValueError:  # NumPy's refusal of an object (pickled) array
                problem = (f"{path.name}'s array {name!r} holds Python objects, which "
                           "bayesgmm never writes and does not load (no pickle); re-save "
                           "the model")
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error):
                problem = damaged
            if problem is not None:
                raise _fail(path, problem)
    return out


def _read_params(path: Path, meta: dict | None, batch_ndim: int = 0) -> GMMParams:
    """The validated parameters in ``path``: batch_ndim leading batch dims (0 for
    params.npz, 2 for draws.npz), K and D from the arrays, checked against ``meta``."""
    z = _read_npz(path, (*_PARAM_ARRAYS, "covariance_type"))
    ct = z["covariance_type"]
    if ct.shape != () or ct.dtype.kind != "U":
        raise _fail(path, f"{path.name}'s covariance_type must be a 0-d string array, got "
                          f"dtype {ct.dtype} shape {ct.shape}")
    ct = str(ct)
    try:
        ops(ct)
    except ValueError as err:
        raise _fail(path, f"{path.name}: {err}") from None
    # Enough of the shapes to read K and D and compare them with meta.json first (its
    # message is the clearer one for another model's file); check_params does the rest.
    arrays = {name: z[name] for name in _PARAM_ARRAYS}
    for name, a in arrays.items():
        if a.dtype.kind != "f":
            raise _fail(path, f"{path.name}'s {name} must be floating point, got {a.dtype}")
    w, m, f = arrays["weights"], arrays["means"], arrays["cov_factor"]
    if w.ndim != batch_ndim + 1 or m.ndim != batch_ndim + 2:
        raise _fail(path, f"{path.name}'s weights {w.shape} and means {m.shape} must have "
                          f"{batch_ndim} batch dims before (K,) and (K, D)")
    if meta is not None:
        _check_against_meta(path, meta, ct, w.shape[-1], m.shape[-1])
        # the settings' name of the model (an alias, "VVV" for "full"): the estimator's
        ct = meta["estimator_params"].get("covariance_type", ct)
        with np.errstate(over="ignore"):  # a value beyond the dtype: inf, refused below
            w, m, f = (np.asarray(a, dtype=np.dtype(meta["dtype"])) for a in (w, m, f))
    # The values: from_params' check too (one function, so what one accepts the other does)
    try:
        return check_params(GMMParams(w, m, f, ct), batch_ndim=batch_ndim,
                            name=f"{path.name}'s ")
    except ValueError as err:
        problem = str(err)
    raise _fail(path, f"{problem}; the model is damaged: re-save or re-fit it")


def _check_against_meta(path: Path, meta: dict, ct: str, K: int, D: int) -> None:
    settings = meta["estimator_params"]
    # Types first: a string "2" would otherwise read "holds 2 components, ... says 2".
    for key, kind, what in (("n_components", int, f"a whole number ({path.name} holds "
                                                  f"{K} components)"),
                            ("covariance_type", str, f"a string ({path.name} holds {ct!r})")):
        value = settings.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise _fail(path.parent / "meta.json",
                        f"meta.json's estimator_params[{key!r}] is {value!r}, a JSON "
                        f"{_json_type(value)}, of the wrong type: it must be {what}; the "
                        "file is damaged: re-save the model")
    if D != meta["n_features_in"]:
        raise _fail(path, f"{path.name} holds {D} features, meta.json's n_features_in says "
                          f"{meta['n_features_in']}")
    if settings.get("n_components", K) != K:
        raise _fail(path, f"{path.name} holds {K} components, meta.json's n_components says "
                          f"{settings['n_components']}")
    said = settings.get("covariance_type", ct)
    if CANONICAL.get(said) != CANONICAL[ct]:  # another name of the same model is the same
        raise _fail(path, f"{path.name} holds {ct!r} covariances, meta.json's "
                          f"covariance_type says {said!r}")


def _json_type(value) -> str:
    """The JSON name of a decoded value's type (for messages about meta.json)."""
    return {str: "string", bool: "boolean", int: "number", float: "number", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _load_em(directory: Path, meta: dict, params: GMMParams, settings: dict):
    path = directory / "meta.json"
    K = params.n_components
    n_padded = meta.get("n_padded")  # unversioned saves may lack it: score at K
    if n_padded is not None and (not isinstance(n_padded, int) or n_padded < K):
        raise _fail(path, f"meta.json's n_padded must be a whole number >= {K} components, "
                          f"got {n_padded!r}")
    history = meta["lower_bounds"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in history):
        raise _fail(path, "meta.json's lower_bounds must be a list of numbers")
    info = FitInfo(meta["lower_bound"], meta["n_iter"], meta["converged"], False, -1,
                   np.asarray(history, dtype=float), np.zeros(K))
    model = GaussianMixture.from_params(params, info=info, n_padded=n_padded, **settings)
    engine = meta.get("fit_engine")  # older folders, from_params models: no engine_
    if engine not in (None, "jax", "numpy"):
        raise _fail(path, f"meta.json's fit_engine must be 'jax' or 'numpy' (where the fit "
                          f"ran), got {engine!r}; re-save the model")
    if engine is not None:
        model.engine_ = engine
    online = meta.get("online", False)  # older folders: none saved
    if not isinstance(online, bool):
        raise _fail(path, f"meta.json's online must be true or false, got {online!r}")
    if online:
        set_online_state(model, _read_online(directory / "online.npz", params))
    return model


def _read_online(path: Path, params: GMMParams):
    """online.npz as partial_fit's :class:`bayesgmm.fitting.OnlineState`, checked
    against the parameters (K, D, dtype) it continues from."""
    from bayesgmm.fitting import OnlineState
    from bayesgmm.suffstats import SuffStats

    z = _read_npz(path, _ONLINE_ARRAYS)
    K, D, dtype = params.n_components, params.n_features, params.dtype
    # SuffStats' second moments: (K, D, D) for the models of full moments, else (K, D)
    full = ops(params.covariance_type).full_moments
    shapes = {"nk": (K,), "sx": (K, D), "sxx": (K, D, D) if full else (K, D),
              "shift": (K, D), "sum_w": (), "sum_wll": ()}
    for name, shape in shapes.items():
        a = z[name]
        if a.shape != shape or a.dtype != dtype:
            raise _fail(path, f"online.npz's {name} must be {dtype} of shape {shape} (the "
                              f"model's {K} components, {D} features), got {a.dtype} "
                              f"{a.shape}; re-save the model")
        if not np.all(np.isfinite(a)):
            raise _fail(path, f"online.npz's {name} has a non-finite value; re-save the model")
    n_batches, n_underflow = z["n_batches"], z["n_underflow"]
    for name, a in (("n_batches", n_batches), ("n_underflow", n_underflow)):
        if a.shape != () or a.dtype.kind not in "iu" or a < 0:
            raise _fail(path, f"online.npz's {name} must be a whole number >= 0, got "
                              f"{a.dtype} {a.shape} {a!r}; re-save the model")
    stats = SuffStats(*(z[name] for name in shapes), n_underflow)
    return OnlineState(stats, int(n_batches))


def _load_bayes(directory: Path, meta: dict, params: GMMParams, settings: dict):
    from bayesgmm.bayes import BayesianGaussianMixture
    from bayesgmm.bayes.posterior import Diagnostics, Relabeling, posterior_mean

    draws_path = directory / "draws.npz"
    draws = _read_params(draws_path, meta, batch_ndim=2)
    C, S = draws.batch_shape
    if draws.covariance_type != params.covariance_type:
        raise _fail(draws_path, f"draws.npz holds {draws.covariance_type!r} draws, params.npz "
                                f"a {params.covariance_type!r} estimate")
    if meta["draws"] != {"chain": C, "draw": S}:
        raise _fail(draws_path, f"draws.npz holds {C} chains x {S} draws, meta.json's draws "
                                f"says {meta['draws']}")
    perms = _read_npz(draws_path, ("permutations",))["permutations"]
    K = params.n_components
    if (perms.shape != (C, S, K) or perms.dtype.kind not in "iu"
            or not np.array_equal(np.sort(perms, axis=-1),
                                  np.broadcast_to(np.arange(K), (C, S, K)))):
        got = (f"shape {perms.shape}" if perms.shape != (C, S, K) else
               f"dtype {perms.dtype}" if perms.dtype.kind not in "iu" else
               "rows that are not permutations (a label repeated or out of range)")
        raise _fail(draws_path, f"draws.npz's permutations must be ({C}, {S}, {K}) integer "
                                f"permutations of 0..{K - 1}, got {got}; re-save the model")
    shape = {"chain": C, "draw": S, "component": K, "feature": params.n_features}
    idata = _read_idata(directory / "idata.nc", shape, need_log_likelihood=True)
    raw = (_read_idata(directory / "idata_raw.nc", shape, need_log_likelihood=False)
           if meta.get("has_idata_raw") else None)
    model = BayesianGaussianMixture(**settings)
    model.map_params_, model.params_ = params, draws
    rel = meta["relabeling"]
    model.relabeling_ = Relabeling(draws, perms, int(rel.get("n_switched", 0)),
                                   int(rel.get("n_iter", 0)))
    model.idata_, model.idata_raw_ = idata, raw
    model.diagnostics_ = _diagnostics(Diagnostics, meta["diagnostics"], C,
                                      directory / "meta.json")
    saved = meta.get("fit_warnings", list(model.diagnostics_.warnings))  # older folders
    if not (isinstance(saved, list) and all(isinstance(w, str) for w in saved)):
        raise _fail(directory / "meta.json", "meta.json's fit_warnings must be a list of "
                                             "strings; re-save the model")
    model.warnings_ = saved
    if meta.get("health") is not None:  # older folders: no health_ (needs the data)
        model.health_ = _decode_health(meta["health"], C, S, K, directory / "meta.json")
    mean = posterior_mean(draws)
    model.weights_, model.means_ = np.asarray(mean.weights), np.asarray(mean.means)
    model.covariances_ = np.asarray(mean.covariances)
    model.n_features_in_ = params.n_features
    if meta.get("priors") is not None:  # older folders: no priors_, a Gaussian model
        from bayesgmm.bayes.robust import fitted_attributes

        priors = _decode_value(meta["priors"], "priors", directory / "meta.json")
        for name, value in fitted_attributes(draws, idata["posterior"], priors,
                                             model.weights_).items():
            setattr(model, name, value)
    return model


def _encode_health(h) -> dict:
    """``health_`` (:class:`~bayesgmm.bayes.posterior.Health`) as JSON values: its
    arrays as (nested) lists, ``label_invariant`` as a dict, NaN kept (JSON's NaN)."""
    def plain(v):
        if isinstance(v, tuple) and hasattr(v, "_fields"):  # label_invariant
            return {f: plain(x) for f, x in zip(v._fields, v)}
        if isinstance(v, (tuple, list)):
            return [str(x) for x in v]
        if isinstance(v, (np.ndarray, np.generic)):
            return v.tolist()
        return v

    return {f: plain(v) for f, v in zip(h._fields, h)}


def _decode_health(d, C: int, S: int, K: int, path: Path):
    """meta.json's ``health`` as a :class:`~bayesgmm.bayes.posterior.Health` of C chains
    of S draws and K components; a damaged entry is a :class:`ModelFormatError`."""
    from bayesgmm.bayes.posterior import Health, LabelInvariant

    shapes = {"collapsed": ((C, K), bool), "empty": ((C, K), bool), "stray": ((C,), bool),
              "chain_ok": ((C,), bool), "chain_lp": ((C,), float),
              "coclustering_disagreement": ((C,), float), "n_nonempty": ((C, S), np.int64),
              "slow": ((C,), bool)}
    try:
        out = dict(d)
        for name, (shape, dtype) in shapes.items():
            if name in out:
                out[name] = np.asarray(out[name], dtype=dtype).reshape(shape)
        out["lp_rhat"], out["ess_bulk_min"] = float(out["lp_rhat"]), float(out["ess_bulk_min"])
        if "loo_bound" in out:  # absent from files saved before they were kept
            out["loo_bound"] = float(out["loo_bound"])
            out["n_above_loo_bound"] = int(out["n_above_loo_bound"])
        out["n_high_pareto_k"], out["healthy"] = int(out["n_high_pareto_k"]), bool(out["healthy"])
        out["problems"] = tuple(str(p) for p in out["problems"])
        li = out.get("label_invariant")
        if li is not None:
            out["label_invariant"] = LabelInvariant(
                tuple(str(n) for n in li["names"]),
                *(np.asarray(li[f], float) for f in ("r_hat", "ess_bulk", "ess_tail")),
                int(li["worst_point"]))
        return Health(**out)
    except (TypeError, ValueError, KeyError) as err:
        raise _fail(path, f"meta.json's health is damaged ({type(err).__name__}: {err}); "
                          "re-save the model") from None


def _diagnostics(cls, d: dict, C: int, path: Path):
    """meta.json's ``diagnostics`` as a :class:`~bayesgmm.bayes.posterior.Diagnostics`."""
    try:
        out = cls(np.asarray(d.get("n_divergent", [0] * C), np.int64),
                  np.asarray(d.get("at_max_depth", [0.0] * C), float),
                  np.asarray(d.get("step_size", [np.nan] * C), float),
                  float(d.get("lp_rhat", np.nan)), bool(d.get("finite", True)),
                  tuple(str(w) for w in d.get("warnings", ())))
    except (TypeError, ValueError):
        out = None
    if out is None or any(np.shape(a) != (C,) for a in out[:3]):
        raise _fail(path, f"meta.json's diagnostics are not the run's health for {C} "
                          f"chains: {d!r}")
    return out


def _read_idata(path: Path, shape: dict[str, int], *, need_log_likelihood: bool):
    from bayesgmm.bayes import arviz

    if not path.is_file():
        raise MissingModelFileError(f"{path}: {path.name} is missing; re-save the model")
    try:
        idata = arviz.from_netcdf(path)
    except ImportError:
        raise
    except Exception as err:  # h5py/h5netcdf/xarray raise many kinds on a damaged file
        first_line = (str(err).splitlines() or [""])[0]
        raise _fail(path, f"{path.name} is not a readable netCDF file of ArviZ data "
                          f"({type(err).__name__}: {first_line}); re-save the model"
                    ) from None
    sizes = arviz.group_sizes(idata, "posterior")
    found = {dim: sizes.get(dim) for dim in shape}
    if found != shape:
        raise _fail(path, f"{path.name}'s posterior has dims {found}; draws.npz and "
                          f"params.npz have {shape}")
    if need_log_likelihood and not arviz.group_sizes(idata, "log_likelihood"):
        raise _fail(path, f"{path.name} has no log_likelihood group, which loo() and waic() "
                          "need; re-save the model")
    return idata
