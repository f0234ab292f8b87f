"""Stochastic variational inference with a (low-rank) multivariate-normal autoguide over
the unconstrained parameters, initialised at the EM point; draws come back as
``GMMParams`` with batch shape (1, n_draws).

Glossary: N samples, D features, K components.

Without a progress bar the guide's initialisation, the ``n_steps`` ELBO steps and the
draws run as one compiled program, kept per configuration (as MAP's): NumPyro's
``SVI.run`` initialises, and ``sample_posterior`` draws, op by op, each operation a
small program of its own (most of a cold SVI fit's time: 125 s of the test suite's
rising-ELBO test under load). The arithmetic is NumPyro's, step for step.

The guide moves the means in each feature's standard units (:func:`guided`): the model's
``means`` site is sampled as ``(means - mean(X)) / sd(X)`` (a reparameterisation, so the
posterior and the ELBO are the model's), so that Adam's steps of about
``learning_rate`` and the guide's initial spread (0.01) are fractions of the data's
spread, whatever its units. In the data's units SVI on make_blobs / 1000 merged every
cluster (690 nats below its EM start), and on data in thousands the guide's spread of
0.01 had to grow ten-thousandfold in 3,000 steps.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoMultivariateNormal
from numpyro.infer.reparam import Reparam
from numpyro.optim import Adam

from bayesgmm.compilation import jit
from bayesgmm.bayes.inference.result import InferenceResult, SVIInfo
from bayesgmm.bayes.inference.target import (bound_model, feature_units, init_sites,
                                             prior_arrays, program_key, rebound)
from bayesgmm.bayes.model import Priors, from_sites
from bayesgmm.params import GMMParams

__all__ = ["fit_svi", "guided", "STANDARD_MEANS"]

#: The guide's site of the means in standard units (:func:`guided`).
STANDARD_MEANS = "means_standard"

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
        svi, draw = guided(model, X, sites, learning_rate, low_rank)
        result = svi.run(k_fit, n_steps, X, progress_bar=True)
        draws, losses = draw(k_draw, result.params, n_draws), result.losses
    else:
        config = (n_components, covariance_type, program_key(priors), n_steps, n_draws,
                  float(learning_rate), low_rank)
        if config not in _RUNNERS:
            _RUNNERS[config] = jit(_program(model, n_steps, n_draws, learning_rate, low_rank))
        draws, losses = _RUNNERS[config](k_fit, k_draw, X, sites, prior_arrays(priors, X.dtype))
    draws = {k: np.asarray(v)[None] for k, v in draws.items()}
    elbo = -np.asarray(losses)
    info = SVIInfo(elbo=elbo, n_steps=n_steps,
                   final_elbo=float(elbo[-max(10, n_steps // 10):].mean()))
    return InferenceResult("svi", from_sites(draws, covariance_type), draws, info)


def guided(model, X, sites: dict, learning_rate, low_rank: int | None = None):
    """NumPyro's SVI of ``model`` on X with a (low-rank) multivariate-normal autoguide
    started at ``sites``, the means in each feature's standard units (the module's
    notes); returns ``(svi, draw)``, ``draw(key, params, n)`` the guide's ``n`` draws by
    the model's site names (the means in the data's units, no ``obs``). Called inside a
    traced program, X may be traced."""
    loc, scale = feature_units(X)
    scaled = handlers.reparam(model, config={"means": _Standard(loc, scale)})
    start = {k: v for k, v in sites.items() if k != "means"}
    start[STANDARD_MEANS] = (sites["means"] - loc) / scale
    init_loc = init_to_value(values=start)
    guide = (AutoMultivariateNormal(scaled, init_loc_fn=init_loc, init_scale=0.01)
             if low_rank is None else
             AutoLowRankMultivariateNormal(scaled, init_loc_fn=init_loc, rank=low_rank,
                                           init_scale=0.01))

    def draw(key, params, n: int) -> dict:
        out = guide.sample_posterior(key, params, sample_shape=(n,))
        means = loc + scale * out[STANDARD_MEANS]
        out = {k: v for k, v in out.items() if k not in ("obs", STANDARD_MEANS, "means")}
        return {"means": means, **out}

    return SVI(scaled, guide, Adam(learning_rate), Trace_ELBO()), draw


class _Standard(Reparam):
    """A Normal site sampled as ``(value - loc) / scale``, its value ``loc + scale · z``:
    the same prior, in other units (the ELBO is unchanged: the Jacobian enters the
    model's density and the guide's alike)."""

    def __init__(self, loc, scale):
        self.loc, self.scale = loc, scale

    def __call__(self, name, fn, obs):
        fn, expand_shape, event_dim = self._unwrap(fn)
        if obs is not None or not isinstance(fn, dist.Normal):
            raise TypeError(f"{name}: standard units need a latent Normal site, got {fn}")
        z = numpyro.sample(STANDARD_MEANS, self._wrap(
            dist.Normal((fn.loc - self.loc) / self.scale, fn.scale / self.scale,
                        validate_args=False), expand_shape, event_dim))
        return None, self.loc + self.scale * z


def _program(model, n_steps: int, n_draws: int, learning_rate, low_rank):
    """(k_fit, k_draw, X, start sites, prior arrays) -> (draws (n_draws, ...) by site,
    losses (n_steps,)): ``SVI.run``'s initialisation and ``lax.scan`` of ``SVI.update``,
    then ``sample_posterior``, traced into one program; the model's data-scaled priors
    are the argument's (:func:`bayesgmm.bayes.inference.target.prior_arrays`)."""

    def run(k_fit, k_draw, X, sites, arrays):
        svi, draw = guided(rebound(model, arrays), X, sites, learning_rate, low_rank)
        state = svi.init(k_fit, X)
        state, losses = jax.lax.scan(lambda s, _: svi.update(s, X), state, None,
                                     length=n_steps)
        return draw(k_draw, svi.get_params(state), n_draws), losses

    return run
