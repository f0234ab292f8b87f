"""Stochastic variational inference with a (low-rank) multivariate-normal autoguide over
the unconstrained parameters, initialised at the EM point; draws come back as
``GMMParams`` with batch shape (1, n_draws)."""

from __future__ import annotations

import jax
import numpy as np
from numpyro.infer import SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoMultivariateNormal
from numpyro.optim import Adam

from bayesgmm.bayes.inference.result import InferenceResult, SVIInfo
from bayesgmm.bayes.inference.target import bound_model, init_sites
from bayesgmm.bayes.model import Priors, from_sites
from bayesgmm.params import GMMParams


def fit_svi(key, X, init: GMMParams, *, n_components: int, covariance_type: str = "full",
            priors: Priors, n_steps: int = 3000, n_draws: int = 1000,
            learning_rate: float = 0.01, low_rank: int | None = None,
            progress_bar: bool = False) -> InferenceResult:
    """Fit the guide by ELBO (``n_steps`` Adam steps), then draw ``n_draws`` posterior
    draws from it.

    ``low_rank`` switches to ``AutoLowRankMultivariateNormal`` with that rank (for many
    parameters); default a full-covariance multivariate normal guide.
    """
    model = bound_model(n_components, covariance_type, priors)
    sites = init_sites(init, model, X.dtype)
    init_loc = init_to_value(values=sites)
    guide = (AutoMultivariateNormal(model, init_loc_fn=init_loc, init_scale=0.01)
             if low_rank is None else
             AutoLowRankMultivariateNormal(model, init_loc_fn=init_loc, rank=low_rank,
                                           init_scale=0.01))
    svi = SVI(model, guide, Adam(learning_rate), Trace_ELBO())
    k_fit, k_draw = jax.random.split(key)
    result = svi.run(k_fit, n_steps, X, progress_bar=progress_bar)
    draws = guide.sample_posterior(k_draw, result.params, sample_shape=(n_draws,))
    draws = {k: np.asarray(v)[None] for k, v in draws.items() if k != "obs"}
    elbo = -np.asarray(result.losses)
    info = SVIInfo(elbo=elbo, n_steps=n_steps,
                   final_elbo=float(elbo[-max(10, n_steps // 10):].mean()))
    return InferenceResult("svi", from_sites(draws, covariance_type), draws, info)
