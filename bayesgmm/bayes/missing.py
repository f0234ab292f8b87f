"""The mixture likelihood of rows with missing values, for the Bayesian model (JAX).

Glossary: N samples, D features, K components; o the observed features of a row.

A NaN in ``X`` is a value missing at random; a row's likelihood is then its observed
coordinates' marginal, ``Σ_k w_k N(x_o | μ_ko, Σ_k,oo)``, the likelihood EM with
``missing="marginalize"`` climbs (:mod:`bayesgmm.missing`). Here it must be traced with
X as an argument (MAP and NUTS compile one program per shape), so the observed set is a
mask rather than a host-side grouping: per row and component, Σ̃ = Σ on o x o and the
identity elsewhere, whose Cholesky factor gives the Mahalanobis distance of the observed
coordinates (the missing ones centred to 0) and log|Σ̃| = log|Σ_oo|. That is N·K
Cholesky factors of D x D matrices per evaluation, affordable at the Bayesian path's N,
and its gradient is JAX's. Complete rows give the plain mixture density.

:class:`bayesgmm.bayes.model.MarginalMixtureLikelihood` and
:func:`bayesgmm.bayes.potential.potential` call :func:`marginal_log_prob` when the
model marginalises (``Priors.marginalize_missing``, set by ``Priors.resolve`` when X has
NaN), or when a concrete X holds NaN (:func:`marginalizes`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams

__all__ = ["marginal_log_prob", "marginalizes"]

_LOG_2PI = math.log(2 * math.pi)


def marginal_log_prob(params: GMMParams, X) -> jax.Array:
    """log p(x_o) = log Σ_k w_k N(x_o | μ_ko, Σ_k,oo) of each row, NaN marking missing.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``; any covariance type (the table's ``to_full_covariance``).
    X : array of shape (N, D)
        NaN where missing; a row with no observed value gets log p = 0.

    Returns
    -------
    array of shape (N,)
        In X's dtype; differentiable in ``params`` (and finite where X has NaN).
    """
    X = jnp.asarray(X)
    K, D = params.n_components, params.n_features
    dtype = X.dtype
    S = ops(params.covariance_type).to_full_covariance(params.cov_factor, K, D)  # (K, D, D)
    obs = ~jnp.isnan(X)  # (N, D)
    oo = (obs[:, :, None] & obs[:, None, :])[:, None]  # (N, 1, D, D)
    L = jnp.linalg.cholesky(jnp.where(oo, S[None], jnp.eye(D, dtype=dtype)))  # (N, K, D, D)
    x0 = jnp.where(obs, X, jnp.zeros((), dtype))
    diff = jnp.where(obs[:, None, :], x0[:, None, :] - params.means[None], 0.0)  # (N, K, D)
    y = jax.scipy.linalg.solve_triangular(L, diff[..., None], lower=True)[..., 0]
    log_det = jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)  # ½ log|Σ_oo|
    n_obs = jnp.sum(obs, axis=-1).astype(dtype)
    joint = (jnp.log(params.weights)[None] - log_det
             - 0.5 * (n_obs[:, None] * _LOG_2PI + jnp.sum(y * y, axis=-1)))  # (N, K)
    return logsumexp(joint, axis=-1)


def marginalizes(X, flag: bool = False) -> bool:
    """Whether the likelihood of ``X`` must marginalise missing values: ``flag`` (the
    model's static setting), or a concrete ``X`` holding NaN. Decided at trace time; a
    traced X relies on ``flag``."""
    if flag:
        return True
    if isinstance(X, jax.core.Tracer):
        return False
    return bool(np.isnan(np.asarray(X)).any())
