"""What MAP, NUTS and SVI run on: the model with its static arguments bound, its
potential (the hand-written one of :mod:`bayesgmm.bayes.potential` where it covers the
model, else NumPyro's), and the moves between the model's sites and the unconstrained
space that optimisers and samplers work in.

Glossary: N samples, D features, K components; S the size of a flat unconstrained point.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from bayesgmm.bayes import potential
from bayesgmm.bayes.model import Priors, gmm_model, to_sites
from bayesgmm.params import GMMParams

__all__ = ["bound_model", "init_sites", "handwritten", "flat_potential", "constrained",
           "unconstrained", "priors_key"]


def bound_model(n_components: int, covariance_type: str, priors: Priors):
    """The model with its static arguments bound, so only X is a (traced) argument."""
    return functools.partial(gmm_model, n_components=n_components,
                             covariance_type=covariance_type, priors=priors)


def init_sites(init: GMMParams, model, dtype) -> dict:
    """The model's sample sites at ``init`` (a ``bound_model``'s covariance type and
    weight prior), in ``dtype``."""
    kw = model.keywords
    sites = to_sites(init, kw["covariance_type"], weight_prior=kw["priors"].weight_prior)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), sites)


def handwritten(model) -> bool:
    """Whether a ``bound_model`` runs on :mod:`bayesgmm.bayes.potential`."""
    return potential.supports(model.keywords["covariance_type"], model.keywords["priors"])


def flat_potential(model, X, unravel):
    """The potential of a flat unconstrained point (``unravel`` gives the sites): the
    hand-written one where :func:`handwritten`, else NumPyro's ``potential_energy``."""
    if handwritten(model):
        ct, priors = model.keywords["covariance_type"], model.keywords["priors"]
        return lambda f: potential.potential(unravel(f), X, ct, priors)
    return lambda f: potential_energy(model, (X,), {}, unravel(f))


def constrained(model, X, z: dict) -> dict:
    """Unconstrained sites -> the model's sites, deterministic ones included and ``obs``
    left out, by the same route as :func:`flat_potential`."""
    if handwritten(model):
        return potential.constrain(z, model.keywords["covariance_type"])
    sites = constrain_fn(model, (X,), {}, z, return_deterministic=True)
    return {k: v for k, v in sites.items() if k != "obs"}


def unconstrained(model, X, sites: dict) -> dict:
    """The model's sites -> unconstrained sites (NumPyro's ``unconstrain_fn``)."""
    return unconstrain_fn(model, (X,), {}, sites)


def priors_key(priors: Priors) -> tuple:
    """A hashable key of resolved priors, for the caches of compiled samplers/optimisers."""
    return tuple(np.asarray(v).tobytes() if v is not None and not isinstance(v, str) else v
                 for v in vars(priors).values())
