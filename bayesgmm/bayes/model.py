"""The Bayesian Gaussian mixture in NumPyro, on GMMParams-shaped sites.

Glossary: N samples, D features, K components.

Model (``covariance_type="full"``)::

    weights              ~ Dirichlet(α·1_K)            (or truncated stick-breaking)
    for k in component:
        means[k]         ~ Normal(m0, s0)               (D,)
        scales[k]        ~ InverseGamma(a, σ0·(a+1))    (D,)  per-feature std devs, mode σ0
                           (or LogNormal(log σ0, τ), see below)
        corr_chol[k]     ~ LKJCholesky(D, η)            (D, D)
        L_k = diag(scales[k]) · corr_chol[k]            lower Cholesky of Σ_k
    for n in obs_id:
        obs[n]           ~ Σ_k weights[k] N(μ_k, Σ_k)   z_n marginalised (log-sum-exp)

``covariance_type="diag"`` drops ``corr_chol`` (Σ_k = diag(scales[k]²)). The model takes
the types whose per-component relaxation (``ops(type).bayes_type`` in
:mod:`bayesgmm.covariance`) is themselves; ``ops(type).correlated`` says whether it
samples ``corr_chol``. A tied or spherical EM fit starts it through its relaxation
(:func:`to_sites`). No code here names a covariance type.

Site names equal ``GMMParams`` field names where they coincide (``weights``, ``means``)
plus ``scales`` and ``corr_chol``; plates are ``component`` and ``obs_id`` (ArviZ dims).
The likelihood is :class:`MixtureLikelihood`, whose ``log_prob`` is the same
precision-Cholesky kernel EM uses (:func:`bayesgmm.density.log_resp`), so NUTS sees no
discrete site and no per-component ``MultivariateNormal`` objects.

Design notes: the scale prior must keep a component from collapsing onto a few points.
A HalfNormal prior let MAP keep a component collapsed on one point (scale ≈ 1e-3; issue
3 measurements). A LogNormal (the default until issue 21) still lets a component
collapse onto m tied or nearly collapsed points: its log density falls like
-(log s)²/2τ², the likelihood gains -m log s, and the posterior mode of log s sits m·τ²
below log σ0 (on standardised iris with K = 4 a chain found a spike with a 230-nat
higher log density; in the coverage study, draws at s ≈ 0.1 with the truth's smallest
0.71 made posterior memberships less calibrated than EM's, issue 21). The default,
InverseGamma(a, b = σ0·(a+1)) on each scale (mode σ0 = 0.5 · data std, a = 5), has a
density falling like exp(-b/s) towards 0: with m points tied the mode of log s sits at
log(b/(a+m)), a floor relative to the data scale that shrinks only like 1/m. In the
coverage study (docs/calibration/README.md) it brought the posterior-mean memberships'
calibration error closer to EM's plug-in one than the LogNormal did, without reaching
it: where components overlap, chains can settle in a configuration that merges two
clusters and splits a third, which no scale prior tried removes. Default priors are
weakly informative and scaled to the data (see :class:`Priors`); a user can set any
field.

The distributions are built with ``validate_args=False``. NumPyro checks arguments and
sample supports by default. Here the priors are checked once on the host
(:meth:`Priors.validate`), and the samplers only ever propose values through the
support's bijection. Inside a compiled sampler the checks are dead weight: 96 of 822
operations in the density and its gradient.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesgmm.covariance import TABLE, ops
from bayesgmm.bayes.missing import marginal_log_prob
from bayesgmm.density import log_resp, sample as mixture_sample
from bayesgmm.params import GMMParams

__all__ = ["Priors", "MixtureLikelihood", "MarginalMixtureLikelihood", "gmm_model",
           "from_sites", "to_sites", "check_model_type", "MODEL_COVARIANCE_TYPES",
           "SCALE_PRIORS"]

# The types the model samples as they are: each its own per-component relaxation.
SCALE_PRIORS = ("lognormal", "inverse_gamma")
MODEL_COVARIANCE_TYPES = tuple(ct for ct, table in TABLE.items() if table.bayes_type == ct)


@dataclasses.dataclass(frozen=True)
class Priors:
    """Prior hyper-parameters. ``None`` fields are filled from the data by :meth:`resolve`.

    Attributes
    ----------
    weight_concentration : float, default 1.0
        Dirichlet concentration α of every component (1 = uniform on the simplex).
        With ``weight_prior="stick_breaking"``, the Dirichlet-process concentration.
        Small values (< 0.1) favour emptying components but produced hundreds of
        divergences in the issue-3 measurements: check ``sample_stats.diverging``.
    weight_prior : {"dirichlet", "stick_breaking"}, default "dirichlet"
        ``stick_breaking`` is the truncated Dirichlet process (as scikit-learn's
        ``BayesianGaussianMixture``): over-specify K and let the posterior empty unused
        components.
    mean_loc : array (D,) or None
        Prior centre of every mean; default the data mean.
    mean_scale : array (D,) or float or None
        Prior std of every mean coordinate; default 2 × the data std per feature (so
        clusters anywhere in the data's range are plausible).
    scale_loc : array (D,) or float or None
        Where the component std devs' prior sits: the mode of the InverseGamma (the
        default family), the median of the LogNormal; default 0.5 × data std.
    scale_log_sd : float, default 1.0
        Std of log(scales) of ``scale_prior="lognormal"`` (unused by the default
        family): 1.0 spans a factor ~7 either way at ±2 sd.
    lkj_concentration : float, default 2.0
        LKJ η on each correlation matrix; η > 1 shrinks mildly towards independence.
    marginalize_missing : bool, default False
        The likelihood treats NaN in X as missing at random and marginalises it
        (:class:`MarginalMixtureLikelihood`). :meth:`resolve` sets it when X has NaN
        (and fills the other defaults from each feature's observed values).
    scale_prior : {"inverse_gamma", "lognormal"}, default "inverse_gamma"
        The family of the component std devs' prior. ``"inverse_gamma"``:
        InverseGamma(``scale_shape``, ``scale_loc · (scale_shape + 1)``), mode
        ``scale_loc``; its density falls like exp(-b/s) towards 0, a floor relative to
        the data's scale that keeps a component from collapsing onto a few tied or
        duplicated rows (see the module's design notes); ``scale_log_sd`` is then
        unused. ``"lognormal"``: LogNormal(log ``scale_loc``, ``scale_log_sd``), the
        default before issue 21 (``Priors(scale_prior="lognormal")`` restores it), which
        lets m tied rows pull log s down by m·``scale_log_sd``².
    scale_shape : float, default 5.0
        The InverseGamma shape a of ``scale_prior="inverse_gamma"`` (larger: the scales
        concentrate around ``scale_loc``). With a = 5 the prior's central 90% of a
        component std dev is 0.66-3.0 × ``scale_loc`` (0.33-1.5 × the data std by
        default); a cluster narrower than that needs data to say so: 30 points of a
        cluster 0.1 × the data std wide put the posterior mode ~45% above its width,
        300 points ~4%. Chosen by the coverage study (docs/calibration/README.md): the
        shapes 2 and 3 left posterior memberships markedly less calibrated; 5 and 8
        did alike, and 5 is the weaker prior.
    """

    weight_concentration: float = 1.0
    weight_prior: str = "dirichlet"
    mean_loc: object = None
    mean_scale: object = None
    scale_loc: object = None
    scale_log_sd: float = 1.0
    lkj_concentration: float = 2.0
    marginalize_missing: bool = False
    scale_prior: str = "inverse_gamma"
    scale_shape: float = 5.0

    def resolve(self, X) -> "Priors":
        """Validate against X's D features (:meth:`validate`), then fill ``None`` fields
        from the data; returns NumPy-valued priors."""
        X = np.asarray(X)
        D = X.shape[1]
        self.validate(D)
        holes = bool(np.isnan(X).any())
        mean = np.nanmean(X, axis=0) if holes else X.mean(axis=0)
        std = np.nanstd(X, axis=0) if holes else X.std(axis=0)
        std = np.where(std > 0, std, 1.0)

        def vec(value, default):
            v = np.asarray(default if value is None else value, float)
            return np.broadcast_to(v, (D,)).copy()

        return Priors(
            weight_concentration=float(self.weight_concentration),
            weight_prior=self.weight_prior,
            mean_loc=vec(self.mean_loc, mean),
            mean_scale=vec(self.mean_scale, 2.0 * std),
            scale_loc=vec(self.scale_loc, 0.5 * std),
            scale_log_sd=float(self.scale_log_sd),
            lkj_concentration=float(self.lkj_concentration),
            marginalize_missing=bool(self.marginalize_missing) or holes,
            scale_prior=self.scale_prior,
            scale_shape=float(self.scale_shape),
        )

    def validate(self, n_features: int) -> None:
        """A one-line ``ValueError`` naming the field and the fix for a prior the model
        cannot use with ``n_features`` features: a non-numeric, non-finite or
        non-positive concentration or scale, a per-feature field of the wrong length,
        an unknown ``weight_prior``."""
        for name in ("weight_concentration", "scale_log_sd", "lkj_concentration",
                     "scale_shape"):
            value = _numbers(name, getattr(self, name), n_features, scalar=True)
            if not value > 0:
                raise ValueError(f"Priors.{name} must be > 0, got {value!r}; pass a "
                                 f"positive number or leave the default")
        for name in ("mean_loc", "mean_scale", "scale_loc"):
            value = getattr(self, name)
            if value is None:
                continue
            v = _numbers(name, value, n_features)
            if name != "mean_loc" and np.any(v <= 0):
                raise ValueError(f"Priors.{name} must be > 0 in every feature, got "
                                 f"{v.tolist()}; pass positive values or None for the "
                                 f"data-scaled default")
        if self.weight_prior not in ("dirichlet", "stick_breaking"):
            raise ValueError(f"Priors.weight_prior must be 'dirichlet' or 'stick_breaking', "
                             f"got {self.weight_prior!r}")
        if self.scale_prior not in SCALE_PRIORS:
            raise ValueError(f"Priors.scale_prior must be one of {SCALE_PRIORS}, got "
                             f"{self.scale_prior!r}")

    def scale_distribution(self, dtype, validate_args=False):
        """The prior of one component's (D,) std devs (resolved priors): LogNormal, or
        InverseGamma with mode ``scale_loc``, as a NumPyro distribution, event (D,)."""
        as_ = lambda v: jnp.asarray(v, dtype)
        if self.scale_prior == "inverse_gamma":
            a = as_(self.scale_shape)
            d = dist.InverseGamma(a, as_(self.scale_loc) * (a + 1), validate_args=validate_args)
        else:
            d = dist.LogNormal(jnp.log(as_(self.scale_loc)), as_(self.scale_log_sd),
                               validate_args=validate_args)
        return d.to_event(1)


class MixtureLikelihood(dist.Distribution):
    """p(x | θ) = Σ_k w_k N(x | μ_k, Σ_k) for one parameter set; event shape (D,).

    ``log_prob`` is :func:`bayesgmm.density.log_resp`'s log-sum-exp over the
    precision-Cholesky kernel, the code EM runs.
    """

    support = constraints.real_vector
    arg_constraints = {}
    pytree_data_fields = ("params",)

    def __init__(self, params: GMMParams, *, validate_args=None):
        self.params = params
        super().__init__(batch_shape=(), event_shape=(params.n_features,),
                         validate_args=validate_args)

    def log_prob(self, value):
        flat = value.reshape(-1, value.shape[-1])
        return log_resp(self.params, flat)[1].reshape(value.shape[:-1])

    def sample(self, key, sample_shape=()):
        n = math.prod(sample_shape) if sample_shape else 1
        X, _ = mixture_sample(key, self.params, n)
        return X.reshape(*sample_shape, self.params.n_features)


class MarginalMixtureLikelihood(MixtureLikelihood):
    """:class:`MixtureLikelihood` where NaN in the value marks missing coordinates: each
    row's density is its observed coordinates' marginal
    (:func:`bayesgmm.bayes.missing.marginal_log_prob`)."""

    def log_prob(self, value):
        flat = value.reshape(-1, value.shape[-1])
        return marginal_log_prob(self.params, flat).reshape(value.shape[:-1])


def from_sites(sites: dict, covariance_type: str = "full") -> GMMParams:
    """Model sites (any leading batch dims, e.g. ``(chain, draw)``) -> ``GMMParams``.

    With the stick-breaking prior, ``weights`` is a deterministic site; where it is
    missing (an autoguide's draws) it is computed from ``stick_fractions``."""
    scales = sites["scales"]
    if "weights" in sites:
        weights = sites["weights"]
    else:
        v = sites["stick_fractions"]
        weights = _stick_breaking(v, np if isinstance(v, np.ndarray) else jnp)
    if check_model_type(covariance_type).correlated:
        factor = scales[..., :, None] * sites["corr_chol"]  # diag(s) · C: rows scaled
    else:
        factor = scales
    return GMMParams(weights, sites["means"], factor, covariance_type)


def to_sites(params: GMMParams, covariance_type: str | None = None, *,
             weight_prior: str = "dirichlet") -> dict:
    """``GMMParams`` (any type, e.g. an EM fit) -> model sites, for ``init_to_value``.

    A tied or spherical fit is expanded to per-component full (or diag) covariances.
    ``weight_prior="stick_breaking"`` gives ``stick_fractions`` (the sample site of that
    prior) instead of ``weights``: v_k = w_k / (1 - Σ_{j<k} w_j), clipped into (0, 1).
    """
    covariance_type = covariance_type or ops(params.covariance_type).bayes_type
    full = jnp.asarray(params.full_covariances)  # (*B, K, D, D)
    weights = jnp.asarray(params.weights)
    weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    sites = {"means": jnp.asarray(params.means)}
    if weight_prior == "stick_breaking":
        remaining = 1 - jnp.cumsum(weights, axis=-1) + weights  # stick left before k
        tiny = jnp.finfo(weights.dtype).eps
        v = weights[..., :-1] / jnp.maximum(remaining[..., :-1], tiny)
        sites["stick_fractions"] = jnp.clip(v, tiny, 1 - tiny)
    else:
        sites["weights"] = weights
    if not check_model_type(covariance_type).correlated:
        sites["scales"] = jnp.sqrt(jnp.diagonal(full, axis1=-2, axis2=-1))
        return sites
    L = jnp.linalg.cholesky(full)
    scales = jnp.sqrt(jnp.sum(L * L, axis=-1))  # row norms of L = sqrt(diag Σ)
    sites["scales"] = scales
    sites["corr_chol"] = L / scales[..., :, None]
    return sites


def gmm_model(X=None, *, n_components: int, covariance_type: str = "full",
              priors: Priors, n_features: int | None = None, n_obs: int | None = None):
    """NumPyro model of a K-component Gaussian mixture; ``priors`` must be resolved.

    ``X=None`` samples from the prior predictive (give ``n_features`` and ``n_obs``).
    """
    correlated = check_model_type(covariance_type).correlated
    K = n_components
    D = X.shape[1] if X is not None else n_features
    N = X.shape[0] if X is not None else n_obs
    dtype = X.dtype if X is not None else jnp.zeros(()).dtype
    as_ = lambda v: jnp.asarray(v, dtype)
    nocheck = dict(validate_args=False)  # see the module's design notes
    alpha = as_(priors.weight_concentration)
    if priors.weight_prior == "dirichlet":
        weights = numpyro.sample("weights", dist.Dirichlet(jnp.full((K,), alpha), **nocheck))
    else:
        with numpyro.plate("stick", K - 1):
            v = numpyro.sample("stick_fractions", dist.Beta(jnp.ones((), dtype), alpha, **nocheck))
        weights = numpyro.deterministic("weights", _stick_breaking(v))
    with numpyro.plate("component", K):
        means = numpyro.sample(
            "means",
            dist.Normal(as_(priors.mean_loc), as_(priors.mean_scale), **nocheck).to_event(1))
        scales = numpyro.sample("scales", priors.scale_distribution(dtype, **nocheck))
        sites = {"weights": weights, "means": means, "scales": scales}
        if correlated:
            sites["corr_chol"] = numpyro.sample(
                "corr_chol", dist.LKJCholesky(D, as_(priors.lkj_concentration), **nocheck))
    params = from_sites(sites, covariance_type)
    with numpyro.plate("obs_id", N):
        likelihood = (MarginalMixtureLikelihood if priors.marginalize_missing
                      else MixtureLikelihood)
        numpyro.sample("obs", likelihood(params, **nocheck), obs=X)


def check_model_type(covariance_type: str):
    """The covariance table's entry (:func:`bayesgmm.covariance.ops`) of a type the
    model samples; a ``ValueError`` naming the fix for the others."""
    if covariance_type not in MODEL_COVARIANCE_TYPES:
        known = isinstance(covariance_type, str) and covariance_type in TABLE
        fix = (f"; use covariance_type={TABLE[covariance_type].bayes_type!r}, its "
               f"per-component relaxation" if known else "")
        raise ValueError(f"The Bayesian model samples per-component covariances, so "
                         f"covariance_type must be one of {MODEL_COVARIANCE_TYPES}, got "
                         f"{covariance_type!r}{fix}")
    return ops(covariance_type)


def _stick_breaking(v, xp=jnp):
    """Truncated stick-breaking: K-1 fractions -> K weights on the simplex."""
    one = xp.ones(v.shape[:-1] + (1,), v.dtype)
    remaining = xp.concatenate([one, xp.cumprod(1 - v, axis=-1)], axis=-1)
    return xp.concatenate([v, one], axis=-1) * remaining


def _numbers(name: str, value, n_features: int, scalar: bool = False) -> np.ndarray:
    """``Priors.<name>`` as a finite float array: a scalar, or (when not ``scalar``) one
    value per feature; a ``ValueError`` naming the field otherwise."""
    shape = "a number" if scalar else f"a number or {n_features} numbers (one per feature)"
    try:
        v = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"Priors.{name} must be {shape}, got {value!r}") from None
    if v.shape not in (((),) if scalar else ((), (n_features,))):
        raise ValueError(f"Priors.{name} must be {shape} for data of {n_features} features, "
                         f"got shape {v.shape}: give it per feature of X, or a scalar")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"Priors.{name} must be finite, got {value!r}")
    return v
