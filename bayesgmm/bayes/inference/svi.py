"""Stochastic variational inference with a (low-rank) multivariate-normal autoguide over
the unconstrained parameters, initialised at the EM point; draws come back as
``GMMParams`` with batch shape (1, n_draws).

Glossary: N samples, D features, K components.

Without a progress bar the guide's initialisation, the ``n_steps`` ELBO steps and the
draws run as one compiled program, kept per configuration (as MAP's): NumPyro's
``SVI.run`` initialises, and ``sample_posterior`` draws, op by op, each operation a
small program of its own (most of a cold SVI fit's time: 125 s of the test suite's
rising-ELBO test under load). The arithmetic is NumPyro's, step for step.
"""

from __future__ import annotations

import jax
import numpy as np
from numpyro.infer import SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoMultivariateNormal
from numpyro.optim import Adam

from bayesgmm.compilation import jit
from bayesgmm.bayes.inference.result import InferenceResult, SVIInfo
from bayesgmm.bayes.inference.target import (bound_model, init_sites, prior_arrays,
                                             program_key, rebound)
from bayesgmm.bayes.model import Priors, from_sites
from bayesgmm.params import GMMParams

__all__ = ["fit_svi"]

# Compiled SVI programs by configuration (X and the start are arguments).
_RUNNERS: dict = {}


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
    k_fit, k_draw = jax.random.split(key)
    if progress_bar:  # NumPyro's loop, step by step with its bar
        svi, guide = _svi(model, sites, learning_rate, low_rank)
        result = svi.run(k_fit, n_steps, X, progress_bar=True)
        draws = guide.sample_posterior(k_draw, result.params, sample_shape=(n_draws,))
        losses = result.losses
    else:
        config = (n_components, covariance_type, program_key(priors), n_steps, n_draws,
                  float(learning_rate), low_rank)
        if config not in _RUNNERS:
            _RUNNERS[config] = jit(_program(model, n_steps, n_draws, learning_rate, low_rank))
        draws, losses = _RUNNERS[config](k_fit, k_draw, X, sites, prior_arrays(priors, X.dtype))
    draws = {k: np.asarray(v)[None] for k, v in draws.items() if k != "obs"}
    elbo = -np.asarray(losses)
    info = SVIInfo(elbo=elbo, n_steps=n_steps,
                   final_elbo=float(elbo[-max(10, n_steps // 10):].mean()))
    return InferenceResult("svi", from_sites(draws, covariance_type), draws, info)


def _svi(model, sites: dict, learning_rate, low_rank):
    """NumPyro's SVI of ``model`` with its autoguide started at ``sites``."""
    init_loc = init_to_value(values=sites)
    guide = (AutoMultivariateNormal(model, init_loc_fn=init_loc, init_scale=0.01)
             if low_rank is None else
             AutoLowRankMultivariateNormal(model, init_loc_fn=init_loc, rank=low_rank,
                                           init_scale=0.01))
    return SVI(model, guide, Adam(learning_rate), Trace_ELBO()), guide


def _program(model, n_steps: int, n_draws: int, learning_rate, low_rank):
    """(k_fit, k_draw, X, start sites, prior arrays) -> (draws (n_draws, ...) by site,
    losses (n_steps,)): ``SVI.run``'s initialisation and ``lax.scan`` of ``SVI.update``,
    then ``sample_posterior``, traced into one program; the model's data-scaled priors
    are the argument's (:func:`bayesgmm.bayes.inference.target.prior_arrays`)."""

    def run(k_fit, k_draw, X, sites, arrays):
        svi, guide = _svi(rebound(model, arrays), sites, learning_rate, low_rank)
        state = svi.init(k_fit, X)
        state, losses = jax.lax.scan(lambda s, _: svi.update(s, X), state, None,
                                     length=n_steps)
        draws = guide.sample_posterior(k_draw, svi.get_params(state), sample_shape=(n_draws,))
        return draws, losses

    return run
