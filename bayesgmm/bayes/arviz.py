"""ArviZ conversion: every ArviZ call of the package lives here, so the move to ArviZ 1.x
(``xarray.DataTree``; needs Python 3.12) touches one file.

Groups and dims (ArviZ names):

``posterior``
    ``weights (chain, draw, component)``, ``means (chain, draw, component, feature)``,
    ``scales (chain, draw, component, feature)``, ``corr_chol`` and ``covariances``
    ``(chain, draw, component, feature, feature_bis)``.
``sample_stats``
    ``diverging, tree_depth, n_steps, step_size, energy, lp, acceptance_rate`` (NUTS);
    ``lp`` only for MAP; nothing for SVI.
``log_likelihood``
    ``obs (chain, draw, obs_id)``: pointwise log p(x_n | θ), for LOO/WAIC.
``observed_data``
    ``obs (obs_id, feature)``.

An EM or MAP fit exports as a single draw (chain=1, draw=1).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.compilation import jit
from bayesgmm.density import score_samples
from bayesgmm.params import GMMParams
from bayesgmm.validation import compute_scope

_score_samples_jit = jit(score_samples)

__all__ = ["to_inference_data", "from_params", "loo", "waic", "summary", "compare"]

DIMS = {
    "weights": ["component"],
    "means": ["component", "feature"],
    "scales": ["component", "feature"],
    "corr_chol": ["component", "feature", "feature_bis"],
    "covariances": ["component", "feature", "feature_bis"],
    "stick_fractions": ["stick"],
    "obs": ["obs_id", "feature"],
}


def _az():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ 0.23 warns about its 1.0 migration
        import arviz as az
    return az


def to_inference_data(params: GMMParams, X, *, sites: dict | None = None,
                      sample_stats: dict | None = None, log_likelihood: bool = True):
    """Build an ``arviz.InferenceData`` from (chain, draw)-batched ``params``.

    Parameters
    ----------
    params : GMMParams
        Batch shape (C, S).
    X : array of shape (N, D)
    sites : dict, optional
        Raw model sites (e.g. ``scales``, ``corr_chol``) with leading (C, S), added to
        the posterior as they are.
    sample_stats : dict, optional
        Arrays with leading (C, S).
    """
    az = _az()
    p = params.to_numpy()
    if len(p.batch_shape) != 2:
        raise ValueError(f"params must have batch shape (chain, draw), got {p.batch_shape}")
    X = np.asarray(X)
    posterior = {"weights": p.weights, "means": p.means,
                 "covariances": np.asarray(p.full_covariances)}
    for name, value in (sites or {}).items():
        if name not in posterior:
            posterior[name] = np.asarray(value)
    groups = {"posterior": posterior, "observed_data": {"obs": X}}
    if sample_stats:
        groups["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    if log_likelihood:
        groups["log_likelihood"] = {"obs": pointwise_log_likelihood(p, X)}
    C, S = p.batch_shape
    K, D = p.n_components, p.n_features
    coords = {"component": np.arange(K), "feature": np.arange(D),
              "feature_bis": np.arange(D), "obs_id": np.arange(X.shape[0])}
    if "stick_fractions" in posterior:
        coords["stick"] = np.arange(K - 1)
    dims = dict(DIMS)
    dims["obs"] = ["obs_id"]  # pointwise log-likelihood has no feature dim
    idata = az.from_dict(**{k: v for k, v in groups.items() if k != "observed_data"},
                         coords=coords, dims=dims)
    obs = az.from_dict(observed_data=groups["observed_data"], coords=coords,
                       dims={"obs": ["obs_id", "feature"]})
    idata.extend(obs)
    return idata


def from_params(params: GMMParams, X):
    """An EM or MAP fit (batch shape ()) as a one-draw ``InferenceData``."""
    one = jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], params)
    return to_inference_data(one, X)


def pointwise_log_likelihood(params: GMMParams, X, chunk: int = 64,
                             engine: str = "auto") -> np.ndarray:
    """log p(x_n | θ_cs), shape (C, S, N), in the data's dtype.

    ``engine="auto"``: in NumPy (float64, then cast) up to :data:`bayesgmm.engines.choose.HOST_DRAW_WORK`,
    else compiled in the data's dtype, chunked over draws; ``"numpy"`` / ``"jax"``
    force one."""
    from bayesgmm.engines import numpy as host
    from bayesgmm.engines.choose import choose

    C, S = params.batch_shape
    X = np.asarray(X)
    flat = params.flatten_batch()
    if choose("draws", engine, X.shape[0], params.n_components, params.n_features,
              params.covariance_type, n_draws=C * S).engine == "numpy":
        out = host.score_draws(jax.tree_util.tree_map(np.asarray, flat), X)
        return out.reshape(C, S, X.shape[0]).astype(X.dtype)
    out = []
    with compute_scope(X.dtype):
        Xj = jnp.asarray(X)
        for start in range(0, C * S, chunk):
            part = jax.tree_util.tree_map(lambda a: a[start:start + chunk], flat)
            out.append(np.asarray(_score_samples_jit(part.astype(X.dtype), Xj)))
    return np.concatenate(out).reshape(C, S, X.shape[0])


def loo(idata, **kwargs):
    """PSIS-LOO (``arviz.loo``) from the ``log_likelihood`` group."""
    return _az().loo(idata, **kwargs)


def waic(idata, **kwargs):
    return _az().waic(idata, **kwargs)


def summary(idata, var_names=("weights", "means", "scales"), **kwargs):
    """``arviz.summary`` of the (relabeled) posterior."""
    names = [v for v in var_names if v in idata.posterior]
    return _az().summary(idata, var_names=names, **kwargs)


def compare(models: dict, **kwargs):
    """``arviz.compare`` (PSIS-LOO by default) of named ``InferenceData``."""
    return _az().compare(models, **kwargs)
