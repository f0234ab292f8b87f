"""What MAP, NUTS and SVI run on: the model with its static arguments bound, its
potential (the hand-written one of :mod:`bayesgmm.bayes.potential` where it covers the
model, else NumPyro's), and the moves between the model's sites and the unconstrained
space that optimisers and samplers work in.

Glossary: N samples, D features, K components; S the size of a flat unconstrained point.

Data-scaled priors (one program for every data set of a shape): :meth:`Priors.resolve`
fills :data:`DATA_FIELDS` from the data, so each data set has its own values. The MAP,
NUTS and SVI programs take them as an argument (:func:`prior_arrays`) and are cached by
:func:`program_key`, which leaves their values out; as constants, every new data set of
the same shape compiled its programs again (MAP 1.9 s, NUTS 3.8 s on 510 x 2, K = 3).

Padded (one program for every K of a comparison): a model bound with K_max components
(``bound_model(K_max, ...)``), its potential given ``n_active`` (the K of the fit, a
traced integer; :func:`bayesgmm.bayes.potential.potential`), and start points put into
the padded space on the host (:func:`padded_start`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from bayesgmm.bayes import potential
from bayesgmm.bayes.missing import marginalizes
from bayesgmm.bayes.model import Priors, check_model_type, gmm_model, to_sites
from bayesgmm.params import GMMParams

__all__ = ["bound_model", "init_sites", "handwritten", "flat_potential", "constrained",
           "unconstrained", "priors_key", "program_key", "prior_arrays", "rebound",
           "DATA_FIELDS", "padded_start", "padded_draws", "feature_units",
           "coordinate_units"]

#: The :class:`Priors` fields that :meth:`Priors.resolve` fills from the data, one value
#: per feature: the arguments of the programs keyed by :func:`program_key`.
DATA_FIELDS = ("mean_loc", "mean_scale", "scale_loc", "noise_log_extent")


def feature_units(X):
    """Each feature's mean and standard deviation over its observed values, shape (D,)
    each (a spread of 0 or none: 1): the units MAP, NUTS (:func:`coordinate_units`) and
    SVI's guide (:func:`bayesgmm.bayes.inference.svi.guided`) move the means in, so that
    a fit of ``c·X`` is ``c`` times the fit of X."""
    X = jnp.asarray(X)
    sd = jnp.nanstd(X, axis=0)
    return jnp.nanmean(X, axis=0), jnp.where(jnp.isfinite(sd) & (sd > 0), sd, 1.0).astype(X.dtype)


def coordinate_units(unravel, size: int, X):
    """(S,): each coordinate's unit of a flat unconstrained point of ``size`` that
    ``unravel`` maps to the model's sites: the feature's standard deviation for the
    means (:func:`feature_units`; the one site in the data's units) and 1 for the
    others (log scales, the weights' and correlations' unconstrained coordinates:
    unit-free). MAP's steps (:func:`bayesgmm.bayes.inference.map.minimise`), NUTS's
    jitter and coordinates are in these units, so that a fit of c·X is c times the fit
    of X: in the data's units, on make_blobs in ten-thousandths NUTS's chains started
    far outside the data and every tree ran to max_tree_depth."""
    sd = feature_units(X)[1]
    where = unravel(jnp.arange(size, dtype=sd.dtype))["means"]  # (..., K, D) positions
    units = jnp.ones(size, sd.dtype).at[where.astype(jnp.int32).reshape(-1)].set(
        jnp.broadcast_to(sd, where.shape).reshape(-1))
    return units


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


def flat_potential(model, X, unravel, n_active=None):
    """The potential of a flat unconstrained point (``unravel`` gives the sites): the
    hand-written one where :func:`handwritten`, else NumPyro's ``potential_energy``.
    ``n_active``: the padded potential (hand-written only), K = n_active of the bound
    model's K_max components active."""
    if handwritten(model):
        ct, priors = model.keywords["covariance_type"], model.keywords["priors"]
        # the moment kernel's features and the centred kernel's layout of X (transposed,
        # in blocks of rows): passes over X here, outside the sampler's and optimiser's
        # loops (None where NaN marks missing; features None for float32 data)
        complete = not marginalizes(X, priors.marginalize_missing)
        moments = potential.moments(X, ct) if complete else None
        blocks = potential.row_blocks(X) if complete else None
        return lambda f: potential.potential(unravel(f), X, ct, priors, n_active,
                                             moments=moments, blocks=blocks)
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


def padded_start(init: GMMParams, covariance_type: str, n_padded: int, dtype) -> np.ndarray:
    """``init`` (batch shape (), any covariance type, K components) as a flat point (S,)
    of the padded unconstrained space of ``n_padded`` components (masked ones at 0), in
    NumPy: nothing here is compiled, so no K gets a program of its own."""
    p = init.to_numpy(np.float64)
    full = np.asarray(p.full_covariances)  # (K, D, D); tied / spherical expanded
    sites = {"weights": p.weights / p.weights.sum(), "means": p.means}
    if check_model_type(covariance_type).correlated:
        L = np.linalg.cholesky(full)
        sites["scales"] = np.sqrt(np.sum(L * L, axis=-1))  # row norms of L = sqrt(diag Σ)
        sites["corr_chol"] = L / sites["scales"][:, :, None]
    else:
        sites["scales"] = np.sqrt(np.diagonal(full, axis1=-2, axis2=-1))
    z = potential.unconstrain(sites, covariance_type, n_padded)
    return np.concatenate([z[name].ravel() for name in sorted(z)]).astype(dtype)


def padded_draws(flat: np.ndarray, n_components: int, n_padded: int, n_features: int,
                 covariance_type: str) -> tuple[dict, np.ndarray]:
    """Flat padded unconstrained draws (*B, S) -> the K = ``n_components`` model's sites
    (*B, ...), constrained in NumPy, and the masked coordinates' standard normal log
    density (*B,) (:func:`bayesgmm.bayes.potential.masked_log_density`), which the
    padded potential adds to the model's."""
    z = potential.unflatten(flat, potential.unconstrained_shapes(n_padded, n_features,
                                                                 covariance_type))
    masked = potential.masked_log_density(z, n_components)
    active = potential.active_sites(z, n_components)
    return potential.constrain(active, covariance_type, xp=np), masked


def priors_key(priors: Priors) -> tuple:
    """A hashable key of resolved priors, for the caches of compiled samplers/optimisers."""
    return tuple(_value_key(v) for v in vars(priors).values())


def program_key(priors: Priors) -> tuple:
    """:func:`priors_key` with the values of :data:`DATA_FIELDS` left out (their shapes
    kept): the key of a program that takes them as an argument (:func:`prior_arrays`),
    so that every data set of one shape and the same other settings shares it."""
    return tuple(("shape", np.shape(v)) if name in DATA_FIELDS and v is not None
                 else _value_key(v) for name, v in vars(priors).items())


def _value_key(v):
    """A prior field's value as a hashable key: strings and None as they are, numbers
    and arrays by their bytes."""
    return np.asarray(v).tobytes() if v is not None and not isinstance(v, str) else v


def prior_arrays(priors: Priors, dtype) -> dict:
    """The :data:`DATA_FIELDS` of ``priors`` that are set, as NumPy arrays in the data's
    ``dtype`` (the model and the hand-written potential cast them so), and the scale
    prior's constants as the hand-written potential computes them on the host in float64
    (:func:`bayesgmm.bayes.potential.scale_terms`), so that the program computes what it
    computed with the priors as constants, bitwise: a program's argument, which
    :func:`rebound` puts back into the model."""
    arrays = {name: np.asarray(getattr(priors, name), dtype) for name in DATA_FIELDS
              if getattr(priors, name) is not None}
    if priors.scale_loc is not None:
        arrays["_scale_terms"] = potential.scale_terms(priors, dtype)
    return arrays


def rebound(model, arrays: dict):
    """A ``bound_model`` with its priors' :data:`DATA_FIELDS` replaced by ``arrays``
    (inside a program: traced, from :func:`prior_arrays`), the scale prior's constants
    attached for the hand-written potential."""
    kw = model.keywords
    fields = {k: v for k, v in arrays.items() if k in DATA_FIELDS}
    priors = dataclasses.replace(kw["priors"], **fields)
    if "_scale_terms" in arrays:  # read by potential._log_scale_elem; not a field
        object.__setattr__(priors, "_scale_terms", arrays["_scale_terms"])
    return bound_model(kw["n_components"], kw["covariance_type"], priors)
