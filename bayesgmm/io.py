"""Saving and loading fits: the ``models/<name>/`` folder format.

A saved fit is a folder with

``params.npz``
    ``weights (K,)``, ``means (K, D)``, ``cov_factor`` (by type; see
    :mod:`bayesgmm.covariance`), and ``covariance_type`` as a 0-d string array.
``meta.json``
    ``bayesgmm_version``, ``estimator`` (class name), ``estimator_params`` (the
    constructor arguments that are JSON-serialisable), ``dtype``, ``n_features_in``,
    ``lower_bound``, ``lower_bounds``, ``n_iter``, ``converged``, and anything in ``extra``.

plus whatever the caller writes beside them (figures, ``config.toml``, ``sweep.csv``).

``meta.json`` also holds ``n_padded``, the padded number of components the fit's
compiled programs ran at: the loaded model pads as far when it scores, so it runs the
same programs and its predictions equal the saved model's bit for bit (another padded
size rounds differently in float32). Loading goes through
:meth:`bayesgmm.GaussianMixture.from_params`; nothing here imports JAX.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bayesgmm.engines import FitInfo
from bayesgmm.estimators import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.validation import check_is_fitted

__all__ = ["save_params", "load_params", "save_model", "load_model"]


def save_params(params: GMMParams, path: str | Path) -> Path:
    """Write ``params`` (batch shape ``()``) to ``path`` (``.npz``)."""
    path = Path(path)
    np.savez(path, weights=np.asarray(params.weights), means=np.asarray(params.means),
             cov_factor=np.asarray(params.cov_factor),
             covariance_type=np.array(params.covariance_type))
    return path


def load_params(path: str | Path) -> GMMParams:
    """The :class:`GMMParams` written by :func:`save_params`, NumPy leaves."""
    with np.load(path) as z:
        return GMMParams(z["weights"], z["means"], z["cov_factor"], str(z["covariance_type"]))


def save_model(model, directory: str | Path, *, extra: dict | None = None) -> Path:
    """Write a fitted :class:`bayesgmm.GaussianMixture` to ``directory`` (created)."""
    from bayesgmm import __version__

    check_is_fitted(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_params(model.params_, directory / "params.npz")
    est_params = {k: v for k, v in model.get_params().items()
                  if v is None or isinstance(v, bool | int | float | str)}
    meta = {
        "bayesgmm_version": __version__,
        "estimator": type(model).__name__,
        "estimator_params": est_params,
        "dtype": str(model.params_.dtype),
        "n_features_in": int(model.n_features_in_),
        # the padded size its programs ran at: predictions after loading use the same ones
        "n_padded": int(model.n_padded_),
        "lower_bound": model.lower_bound_,
        "lower_bounds": model.lower_bounds_,
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        **(extra or {}),
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    return directory


def load_model(directory: str | Path):
    """Rebuild the fitted estimator saved by :func:`save_model`."""
    directory = Path(directory)
    if not (directory / "params.npz").is_file():
        raise FileNotFoundError(f"No saved model in {directory} (params.npz missing)")
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("estimator") != "GaussianMixture":
        raise ValueError(f"{directory} holds a {meta.get('estimator')!r}, not a GaussianMixture")
    params = load_params(directory / "params.npz")
    params = GMMParams(*(np.asarray(a, dtype=meta["dtype"]) for a in
                         (params.weights, params.means, params.cov_factor)),
                       params.covariance_type)
    info = FitInfo(meta["lower_bound"], meta["n_iter"], meta["converged"], False, -1,
                   np.asarray(meta["lower_bounds"], dtype=float), np.zeros(params.n_components))
    # Padded as when fitted, so predictions run the same programs and agree bit for bit;
    # older saves lack the field.
    return GaussianMixture.from_params(params, info=info, n_padded=meta.get("n_padded"),
                                       **meta["estimator_params"])
