"""The inference a fit runs: MAP from the EM solution, then the chosen method from the
MAP.

Glossary: N samples, D features, K components.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from bayesgmm.bayes.inference.map import fit_map
from bayesgmm.bayes.inference.nuts import sample_nuts
from bayesgmm.bayes.inference.result import InferenceResult
from bayesgmm.bayes.inference.svi import fit_svi
from bayesgmm.params import GMMParams
from bayesgmm.validation import check_positive_int

__all__ = ["METHODS", "SETTINGS", "check_settings", "run", "run_centred", "data_centre"]

METHODS = ("nuts", "map", "svi")
# run's settings beside the model: BayesianGaussianMixture's parameters of these names
SETTINGS = ("method", "n_chains", "n_warmup", "n_draws", "jitter", "target_accept_prob",
            "n_svi_steps", "progress_bar", "max_tree_depth", "n_padded")


def check_settings(method: str = "nuts", *, n_chains: int = 4, n_warmup: int = 500,
                   n_draws: int = 500, jitter: float = 0.05, target_accept_prob: float = 0.8,
                   n_svi_steps: int = 3000, progress_bar: bool = False,
                   max_tree_depth: int = 10, n_padded: int | None = None) -> None:
    """Refuse settings :func:`run` cannot use, with a ``ValueError`` naming the argument
    and the valid range."""
    if method not in METHODS:
        raise ValueError(f"Invalid value for 'method': {method!r}; 'method' should be one "
                         f"of {METHODS}")
    check_positive_int(n_chains, "n_chains")
    check_positive_int(n_warmup, "n_warmup", minimum=0)
    check_positive_int(n_draws, "n_draws")
    check_positive_int(n_svi_steps, "n_svi_steps")
    check_positive_int(max_tree_depth, "max_tree_depth")
    if n_padded is not None:  # >= n_components: checked by run
        check_positive_int(n_padded, "n_padded")
    if not 0 < target_accept_prob < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
    if not isinstance(progress_bar, (bool, np.bool_)):
        raise ValueError(f"progress_bar must be True or False, got {progress_bar!r}")
    if not (isinstance(jitter, (int, float, np.number)) and np.isfinite(jitter)
            and jitter >= 0):
        raise ValueError(f"jitter must be >= 0, got {jitter!r}")


def run(key, X, init: GMMParams, method: str, *, n_components: int, covariance_type: str,
        priors, n_chains: int = 4, n_warmup: int = 500, n_draws: int = 500,
        jitter: float = 0.05, target_accept_prob: float = 0.8, n_svi_steps: int = 3000,
        progress_bar: bool = False, max_tree_depth: int = 10,
        n_padded: int | None = None) -> tuple[InferenceResult, GMMParams]:
    """MAP from ``init`` (an EM fit), then ``method`` from the MAP, drawing with ``key``
    (MAP itself is deterministic).

    Parameters
    ----------
    key : PRNG key
    X : array of shape (N, D)
        float32 or float64; the results keep this dtype.
    init : GMMParams
        Batch shape (); any covariance type (a tied or spherical fit starts the model
        through its per-component relaxation).
    method : {"nuts", "map", "svi"}
    n_components, covariance_type, priors
        The model (:func:`bayesgmm.bayes.model.gmm_model`); ``priors`` resolved.
    n_chains, n_warmup, n_draws, jitter, target_accept_prob, n_svi_steps, progress_bar,
    max_tree_depth
        As :class:`bayesgmm.BayesianGaussianMixture`'s parameters of these names;
        checked by :func:`check_settings`.
    n_padded : int, optional
        (>= n_components) MAP and NUTS run the programs of the model padded to this
        many components, which every n_components up to it shares
        (:mod:`bayesgmm.bayes.potential`; :func:`bayesgmm.bayes.compare_n_components`).

    Returns
    -------
    result : InferenceResult
        The method's draws, batch shape (C, S), and its report.
    map_params : GMMParams
        The MAP point, batch shape (): the reference labeling, and BIC/AIC's point.
        Both are NumPy arrays on the host.
    """
    check_settings(method, n_chains=n_chains, n_warmup=n_warmup, n_draws=n_draws,
                   jitter=jitter, target_accept_prob=target_accept_prob,
                   n_svi_steps=n_svi_steps, progress_bar=progress_bar,
                   max_tree_depth=max_tree_depth, n_padded=n_padded)
    if n_padded is not None and int(n_padded) < n_components:
        raise ValueError(f"n_padded={n_padded} is below n_components={n_components}; pad "
                         f"to at least the number of components")
    kw = dict(n_components=n_components, covariance_type=covariance_type, priors=priors)
    map_result = fit_map(key, X, init, n_padded=n_padded, **kw)
    map_params = jax.tree_util.tree_map(lambda a: a[0, 0], map_result.params)
    if method == "map":
        return map_result, map_params
    if method == "nuts":
        result = sample_nuts(key, X, map_params, n_warmup=n_warmup, n_draws=n_draws,
                             n_chains=n_chains, jitter=jitter,
                             target_accept_prob=target_accept_prob, progress_bar=progress_bar,
                             max_tree_depth=max_tree_depth, n_padded=n_padded, **kw)
    else:
        result = fit_svi(key, X, map_params, n_steps=n_svi_steps, n_draws=n_draws,
                         progress_bar=progress_bar, **kw)
    return result, map_params


def data_centre(X) -> np.ndarray:
    """Each feature's mean over its observed values, (D,) float64, computed on the host:
    the centre :func:`run_centred` fits around."""
    return np.nanmean(np.asarray(X, np.float64), axis=0)


def run_centred(run_fn, key, X, init, *, priors, **kwargs):
    """``run_fn`` (:func:`run`, or :func:`bayesgmm.bayes.robust.run` with its ``Start``)
    on the data centred on their feature means c (:func:`data_centre`), the model
    shifted with them; the means of the draws and of the MAP point come back shifted by
    c. The model is translation-equivariant (the default prior centre of the means is
    the data mean, the other priors and the noise region's extents do not move), so
    this is the same posterior; but its coordinates no longer carry the data's
    location. Centring happens on the host in float64 (X - c, the start's means - c,
    ``priors.mean_loc`` - c), then X is cast back to its dtype; the draws are shifted
    back in float64, then cast.

    Why: MAP, NUTS and SVI move the means in standard units but were not centred, so in
    float32 the means of data far from 0 lived where float32's resolution is coarse
    next to their posterior spread. NUTS (1 chain, 150 + 150) on make_blobs(300, 3) / 8
    + 1e4 (resolution 1e-3, a mean's posterior sd 0.0035), make_blobs(3000, 3) + 1e4
    and make_blobs(300, 3) + 1e5 ran every tree to max_tree_depth, its step size
    collapsed (0.56 at offset 0; 3.3e-4, 2.5e-4, 1.6e-3), bulk ESS 1.4 of 150 draws,
    means up to 0.06, 0.07 and 0.2 off the offset-0 fit's; centred, all three are
    healthy at the offset-0 step size (the noise model's NUTS, NumPyro's, alike)."""
    dtype = np.asarray(X).dtype
    c = data_centre(X)
    Xc = (np.asarray(X, np.float64) - c).astype(dtype)
    shift = lambda p, by: dataclasses.replace(  # noqa: E731
        p, means=(np.asarray(p.means, np.float64) + by).astype(np.asarray(p.means).dtype))
    # the start is shifted in float64, then cast (a float64 start keeps its precision)
    init = (shift(init, -c).astype(dtype) if dataclasses.is_dataclass(init)
            else init._replace(params=shift(init.params, -c)))  # robust.Start: cast there
    centred = dataclasses.replace(priors, mean_loc=np.asarray(priors.mean_loc, np.float64) - c)
    result, map_params = run_fn(key, Xc, init, priors=centred, **kwargs)
    sites = dict(result.sites)
    sites["means"] = (np.asarray(sites["means"], np.float64) + c).astype(
        np.asarray(sites["means"]).dtype)
    result = result._replace(params=shift(result.params, c), sites=sites)
    return result, shift(map_params, c)
