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
:mod:`bayesgmm.covariance`) is their own table entry: ``full`` and ``diag``
(:data:`MODEL_COVARIANCE_TYPES`, the names the compiled code is keyed on) and their
mclust names ``VVV`` and ``VVI`` (:data:`MODEL_NAMES`; :func:`model_type` maps each to
its canonical name). ``ops(type).correlated`` says whether it samples ``corr_chol``. A
tied or spherical EM fit starts it through its relaxation (:func:`to_sites`). No code
here names a covariance type.

Site names equal ``GMMParams`` field names where they coincide (``weights``, ``means``)
plus ``scales`` and ``corr_chol``; plates are ``component`` and ``obs_id`` (ArviZ dims).
The likelihood is :class:`MixtureLikelihood`, whose ``log_prob`` is the same
precision-Cholesky kernel EM uses (:func:`bayesgmm.density.log_resp`), so NUTS sees no
discrete site and no per-component ``MultivariateNormal`` objects.

Messy data (issue 19), all optional and off by default (fields at the end of
:class:`Priors`, which :class:`bayesgmm.BayesianGaussianMixture` sets from its
``missing``, ``noise`` and ``component`` options)::

    noise_weight         ~ Beta(α, K·α)                 the uniform noise component's π_0
    df[k]                ~ Gamma(2, 0.1)                (or fixed) Student-t degrees of freedom
    obs[n]               ~ (1 - π_0) Σ_k w_k f_k(x_no) + π_0 / V_o

With the Dirichlet(α·1_K) on the components' relative weights w, Beta(α, K·α) on π_0 is
exactly a Dirichlet(α·1_{K+1}) on (π_0, (1 - π_0)·w) (the Dirichlet's aggregation
property), while ``weights`` stays a K-simplex, so relabeling and ``GMMParams`` are
unchanged. f_k is Gaussian or a multivariate t (closed form, Peel & McLachlan 2000), x_no
a row's observed coordinates (NaN marks a missing value; the marginal of a t or of a
Gaussian on them is of the same family), and V_o the noise region's volume projected on
them (the box's extents of the observed features). :func:`robust_log_joint` is that
likelihood, written out in JAX; :class:`RobustMixtureLikelihood` wraps it for the model.
The hand-written potential (:mod:`bayesgmm.bayes.potential`) does not cover a noise
component or t components: those models run on NumPyro's own potential
(:mod:`bayesgmm.bayes.robust`).

Design notes: the scale prior must keep a component from collapsing onto a few points.
A HalfNormal prior let MAP keep a component collapsed on one point (scale ≈ 1e-3; issue
3 measurements). A LogNormal (the default until issue 21) still lets a component
collapse onto m tied or nearly collapsed points: its log density falls like
-(log s)²/2τ², the likelihood gains -m log s, and the posterior mode of log s sits m·τ²
below log σ0 (on standardised iris with K = 4 a chain found a spike with a 230-nat
higher log density; in the coverage study, draws at s ≈ 0.1 with the truth's smallest
0.71 made posterior memberships less calibrated than EM's, issue 21). The default,
InverseGamma(a, b = σ0·(a+1)) on each scale (mode σ0 = 0.5 · Qn, a = 5), has a
density falling like exp(-b/s) towards 0: with m points tied the mode of log s sits at
log(b/(a+m)), a floor relative to the data scale that shrinks only like 1/m. The data
scale is Rousseeuw & Croux's Qn per feature (:func:`robust_spread`), not the std: Qn
equals the std on Gaussian data, but heavy tails do not inflate it and clusters far
apart only by a bounded factor. Centred on 0.5 · std, t(2) tails around two clusters put
the mode at 3 × the clusters' spread and the t model's MAP scale matrices 0.28 off the
truth (0.10 on Qn, 0.09 under the LogNormal). In the
coverage study (docs/calibration/README.md) it brought the posterior-mean memberships'
calibration error closer to EM's plug-in one than the LogNormal did, without reaching
it per data set. Where it loses, either the likelihood and the posterior are higher at a
configuration unlike the truth (two clusters merged, a third split), which the
posterior follows and EM's k-means start misses, or the posterior's spread around EM's
mode smooths the memberships; no scale or weight prior tried removes either. Pooled
over the data sets the posterior's memberships are the better calibrated (EM's are
over-confident), and on data drawn from the prior they are calibrated as they must be. Default priors are
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

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

from bayesgmm.covariance import CANONICAL, MCLUST_MODELS, TABLE, ops
from bayesgmm.bayes.missing import marginal_log_prob
from bayesgmm.density import log_resp, sample as mixture_sample
from bayesgmm.params import GMMParams

__all__ = ["Priors", "MixtureLikelihood", "MarginalMixtureLikelihood",
           "RobustMixtureLikelihood", "robust_log_joint", "gmm_model", "from_sites",
           "to_sites", "check_model_type", "check_model_features", "model_type",
           "MODEL_COVARIANCE_TYPES", "MODEL_NAMES", "SCALE_PRIORS",
           "COMPONENTS", "robust_spread", "QN_MAX_ROWS", "SCALE_SPREADS"]

# The types the model samples as they are: each its own per-component relaxation.
SCALE_PRIORS = ("lognormal", "inverse_gamma")
# The data's per-feature spread the default scale_loc is half of (Priors.scale_spread)
SCALE_SPREADS = ("qn", "std")
COMPONENTS = ("gaussian", "t")  # the components' family (as bayesgmm.RobustMixture's)
_LOG_2PI = math.log(2 * math.pi)
MODEL_COVARIANCE_TYPES = tuple(ct for ct, table in TABLE.items() if table.bayes_type == ct)
# Every name of those types' table entries (scikit-learn's and mclust's: "VVV" is "full")
MODEL_NAMES = tuple(ct for ct, table in TABLE.items() if TABLE[table.bayes_type] is table)
# Rows per feature :func:`robust_spread` looks at (a quantile sketch; ~3 ms a feature)
QN_MAX_ROWS = 2000


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
        components. MAP and SVI start from an EM fit with all K components, which
        splits clusters in twins; under the default scale prior they keep them (K=6 on
        three blobs: weights 0.33/0.20/0.18/0.13/0.13/0.03), since a twin half as wide
        as its cluster is within the prior's floor, and no scale prior that allows
        narrow real clusters can forbid it (tests/test_model.py measures it; that
        test's MAP and SVI pass with the LogNormal scale prior). NUTS can explore past
        that optimum.
    mean_loc : array (D,) or None
        Prior centre of every mean; default the data mean.
    mean_scale : array (D,) or float or None
        Prior std of every mean coordinate; default 2 × the data std per feature (so
        clusters anywhere in the data's range are plausible).
    scale_loc : array (D,) or float or None
        Where the component std devs' prior sits: the mode of the InverseGamma (the
        default family), the median of the LogNormal; default 0.5 × the data's spread
        per feature (``scale_spread``).
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
    noise_log_extent : array (D,) or None, default None
        A uniform noise component over a box with these log side lengths (log V is their
        sum), weight ``noise_weight ~ Beta(α, K·α)``; ``None``: no noise component.
        :class:`bayesgmm.BayesianGaussianMixture` (``noise=True``) sets it from the data's
        bounding box or a volume (``noise_volume``).
    component : {"gaussian", "t"}, default "gaussian"
        The components' family; ``"t"``: multivariate Student-t with ``df``.
    df : float or None, default None
        ``component="t"``: fixed degrees of freedom of every component; ``None``: each
        component's ``df`` is sampled, prior Gamma(``df_shape``, ``df_rate``).
    df_shape, df_rate : float, default 2.0 and 0.1
        The Gamma prior of estimated degrees of freedom (Juárez & Steel 2010: mean 20,
        mode 10, with mass on heavy tails ν < 5 and on nearly Gaussian ν > 50).
    scale_spread : {"qn", "std"}, default "qn"
        The data's per-feature spread that the default ``scale_loc`` is half of.
        ``"qn"``: Rousseeuw & Croux's robust scale (:func:`robust_spread`), which equals
        the std on Gaussian data but is not inflated by heavy tails, and by clusters far
        apart only by a bounded factor (issue 21: on t(2) data around two clusters the
        std put the mode at 3 × the clusters' spread and the t model's MAP scale matrices
        0.28 off, Qn 0.10). ``"std"``: the default before (``Priors(scale_spread="std")``
        restores it). Unused when ``scale_loc`` is given.
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
    noise_log_extent: object = None
    component: str = "gaussian"
    df: object = None
    df_shape: float = 2.0
    df_rate: float = 0.1
    scale_spread: str = "qn"

    def resolve(self, X) -> "Priors":
        """Validate against X's D features (:meth:`validate`), then fill ``None`` fields
        from the data; returns NumPy-valued priors. The data's moments are taken in
        float64 (in float32 the mean of make_blobs / 4 + 1e4 came out 3.5e-3 off: the
        prior's centre of the means moved with the data's location by more than the
        rounding of the data)."""
        X = np.asarray(X, np.float64)
        D = X.shape[1]
        self.validate(D)
        holes = bool(np.isnan(X).any())
        mean = np.nanmean(X, axis=0) if holes else X.mean(axis=0)
        std = np.nanstd(X, axis=0) if holes else X.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        spread = robust_spread(X) if self.scale_spread == "qn" else std  # (D,)
        spread = np.where(spread > 0, spread, std)

        def vec(value, default):
            v = np.asarray(default if value is None else value, float)
            return np.broadcast_to(v, (D,)).copy()

        return Priors(
            weight_concentration=float(self.weight_concentration),
            weight_prior=self.weight_prior,
            mean_loc=vec(self.mean_loc, mean),
            mean_scale=vec(self.mean_scale, 2.0 * std),
            scale_loc=vec(self.scale_loc, 0.5 * spread),
            scale_log_sd=float(self.scale_log_sd),
            lkj_concentration=float(self.lkj_concentration),
            marginalize_missing=bool(self.marginalize_missing) or holes,
            scale_prior=self.scale_prior,
            scale_shape=float(self.scale_shape),
            noise_log_extent=(None if self.noise_log_extent is None
                              else vec(self.noise_log_extent, 0.0)),
            component=self.component,
            df=None if self.df is None else float(self.df),
            df_shape=float(self.df_shape),
            df_rate=float(self.df_rate),
            scale_spread=self.scale_spread,
        )

    def validate(self, n_features: int) -> None:
        """A one-line ``ValueError`` naming the field and the fix for a prior the model
        cannot use with ``n_features`` features: a non-numeric, non-finite or
        non-positive concentration or scale, a per-feature field of the wrong length,
        an unknown ``weight_prior``."""
        for name in ("weight_concentration", "scale_log_sd", "lkj_concentration",
                     "scale_shape", "df_shape", "df_rate"):
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
        if self.scale_spread not in SCALE_SPREADS:
            raise ValueError(f"Priors.scale_spread must be one of {SCALE_SPREADS}, got "
                             f"{self.scale_spread!r}")
        if self.noise_log_extent is not None:
            _numbers("noise_log_extent", self.noise_log_extent, n_features)
        if self.component not in COMPONENTS:
            raise ValueError(f"Priors.component must be one of {COMPONENTS}, got "
                             f"{self.component!r}")
        if self.df is not None:
            if self.component != "t":
                raise ValueError(f"Priors.df={self.df!r} applies to component='t' only; "
                                 "set component='t' or leave df=None")
            value = _numbers("df", self.df, n_features, scalar=True)
            if not value > 0:
                raise ValueError(f"Priors.df must be > 0, got {self.df!r}; pass a positive "
                                 "number, or None to sample the degrees of freedom")

    @property
    def robust(self) -> bool:
        """Whether the model has a noise component or t components (the likelihood of
        :class:`RobustMixtureLikelihood`, which the hand-written potential does not
        cover)."""
        return self.noise_log_extent is not None or self.component != "gaussian"

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


class RobustMixtureLikelihood(MixtureLikelihood):
    """(1 - π_0) Σ_k w_k f_k(x_o) + π_0 / V_o for one parameter set: Gaussian or t
    components, an optional uniform noise component, NaN marking missing coordinates
    (:func:`robust_log_joint`); event shape (D,)."""

    pytree_data_fields = ("params", "df", "noise_weight", "noise_log_extent")
    pytree_aux_fields = ("marginalize",)

    def __init__(self, params: GMMParams, *, df=None, noise_weight=None,
                 noise_log_extent=None, marginalize: bool = False, validate_args=None):
        self.df, self.noise_weight = df, noise_weight
        self.noise_log_extent, self.marginalize = noise_log_extent, marginalize
        super().__init__(params, validate_args=validate_args)

    def log_prob(self, value):
        flat = value.reshape(-1, value.shape[-1])
        joint = robust_log_joint(self.params, flat, df=self.df, noise_weight=self.noise_weight,
                                 noise_log_extent=self.noise_log_extent,
                                 marginalize=self.marginalize)
        return jax.scipy.special.logsumexp(joint, axis=-1).reshape(value.shape[:-1])

    def sample(self, key, sample_shape=()):
        raise NotImplementedError("RobustMixtureLikelihood has no sampler (the model's prior "
                                  "predictive draws the Gaussian mixture only)")


def robust_log_joint(params: GMMParams, X, *, df=None, noise_weight=None,
                     noise_log_extent=None, marginalize: bool = False) -> jax.Array:
    """log π_k f_k(x_n) of each row and component, and the noise column's log π_0 / V.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``, any covariance type; ``weights`` (K,) on the simplex are the
        components' weights relative to each other.
    X : array of shape (N, D)
        NaN marks a missing value when ``marginalize`` (each row's density is then its
        observed coordinates' marginal); a row with none observed gets 0 everywhere.
    df : array of shape (K,), optional
        Student-t degrees of freedom of each component; ``None``: Gaussian components.
    noise_weight : scalar, optional
        π_0, with ``noise_log_extent`` (D,) the log side lengths of the noise box; the
        components' weights are then (1 - π_0) w_k. ``None``: no noise column.
    marginalize : bool
        Static: mask NaN (N·K Cholesky factors of D x D matrices) or not (K factors).

    Returns
    -------
    array of shape (N, K), or (N, K + 1) with the noise column last
        log-sum-exp over the last axis is log p(x_n); softmax gives the responsibilities.
    """
    X = jnp.asarray(X)
    K, D = params.n_components, params.n_features
    dtype = X.dtype
    S = ops(params.covariance_type).to_full_covariance(params.cov_factor, K, D)  # (K, D, D)
    if marginalize:
        obs = ~jnp.isnan(X)  # (N, D)
        oo = (obs[:, :, None] & obs[:, None, :])[:, None]  # (N, 1, D, D)
        L = jnp.linalg.cholesky(jnp.where(oo, S[None], jnp.eye(D, dtype=dtype)))  # (N, K, D, D)
        x0 = jnp.where(obs, X, jnp.zeros((), dtype))
        diff = jnp.where(obs[:, None, :], x0[:, None, :] - params.means[None], 0.0)
        y = jax.scipy.linalg.solve_triangular(L, diff[..., None], lower=True)[..., 0]
        n_obs = jnp.sum(obs, axis=-1).astype(dtype)[:, None]  # (N, 1)
    else:
        obs = None
        L = jnp.broadcast_to(jnp.linalg.cholesky(S), (X.shape[0], K, D, D))
        diff = X[:, None, :] - params.means[None]  # (N, K, D)
        y = jax.scipy.linalg.solve_triangular(L, diff[..., None], lower=True)[..., 0]
        n_obs = jnp.asarray(D, dtype)
    maha = jnp.sum(y * y, axis=-1)  # (N, K): the observed coordinates' squared distance
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)  # (N, K)
    if df is None:
        comp = -0.5 * (n_obs * _LOG_2PI + maha) - half_log_det
    else:
        nu = jnp.asarray(df, dtype)[None, :]  # (1, K)
        comp = (gammaln(0.5 * (nu + n_obs)) - gammaln(0.5 * nu)
                - 0.5 * n_obs * jnp.log(nu * math.pi) - half_log_det
                - 0.5 * (nu + n_obs) * jnp.log1p(maha / nu))
    joint = comp + jnp.log(params.weights)[None]
    if noise_weight is None:
        return joint
    pi0 = jnp.asarray(noise_weight, dtype)
    extent = jnp.asarray(noise_log_extent, dtype)  # (D,)
    log_v = (jnp.sum(jnp.where(obs, extent, 0.0), axis=-1) if obs is not None
             else jnp.sum(extent) * jnp.ones(X.shape[:1], dtype))  # (N,) log V_o
    noise = jnp.log(pi0) - log_v
    return jnp.concatenate([joint + jnp.log1p(-pi0), noise[:, None]], axis=-1)


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
        df = None
        if priors.component == "t":
            df = (jnp.full((K,), as_(priors.df)) if priors.df is not None else numpyro.sample(
                "df", dist.Gamma(as_(priors.df_shape), as_(priors.df_rate), **nocheck)))
    params = from_sites(sites, covariance_type)
    if priors.robust:
        noise_weight = None
        if priors.noise_log_extent is not None:
            noise_weight = numpyro.sample("noise_weight",
                                          dist.Beta(alpha, K * alpha, **nocheck))
        likelihood = RobustMixtureLikelihood(
            params, df=df, noise_weight=noise_weight,
            noise_log_extent=(None if noise_weight is None
                              else as_(priors.noise_log_extent)),
            marginalize=priors.marginalize_missing, **nocheck)
    elif priors.marginalize_missing:
        likelihood = MarginalMixtureLikelihood(params, **nocheck)
    else:
        likelihood = MixtureLikelihood(params, **nocheck)
    with numpyro.plate("obs_id", N):
        numpyro.sample("obs", likelihood, obs=X)


def check_model_type(covariance_type: str):
    """The covariance table's entry (:func:`bayesgmm.covariance.ops`) of a type the
    model samples (any of :data:`MODEL_NAMES`); a one-line ``ValueError`` naming the
    supported names and the fix for the others."""
    if not isinstance(covariance_type, str) or covariance_type not in MODEL_NAMES:
        raise ValueError(_refusal(covariance_type))
    return ops(covariance_type)


def check_model_features(covariance_type: str, n_features: int) -> None:
    """A one-line ``ValueError`` where the model cannot take data of ``n_features``: a
    correlated type (full, VVV) at one feature, where LKJCholesky(1, η) does not exist
    (NumPyro failed deep inside: "Dimension must be greater than or equal to 2"); at
    D = 1 the diag model is the same model."""
    if n_features == 1 and check_model_type(covariance_type).correlated:
        raise ValueError(
            f"covariance_type={covariance_type!r} needs at least 2 features (its LKJ prior "
            "on the correlations has no 1 x 1 form), and X has 1; at one feature it is the "
            "same model as 'diag': pass covariance_type='diag'")


def model_type(covariance_type: str) -> str:
    """The canonical name (one of :data:`MODEL_COVARIANCE_TYPES`) of a type the model
    samples: ``"VVV"`` -> ``"full"``, ``"VVI"`` -> ``"diag"``; the compiled programs, the
    potential and the caches are keyed on it. A ``ValueError`` as
    :func:`check_model_type` for the others."""
    return check_model_type(covariance_type).bayes_type


def _refusal(covariance_type) -> str:
    """The one-line message for a type the model does not sample: the supported names
    and, for a table type, its relaxation (by mclust's name for an mclust model)."""
    names = " or ".join(f"{ct!r} (mclust's {CANONICAL[ct]!r})"
                        for ct in MODEL_COVARIANCE_TYPES)
    fix = ""
    if isinstance(covariance_type, str) and covariance_type in TABLE:
        relaxed = TABLE[covariance_type].bayes_type
        if covariance_type in MCLUST_MODELS:
            relaxed = CANONICAL[relaxed]
        fix = f"; use covariance_type={relaxed!r}, its per-component relaxation"
    return (f"The Bayesian model samples per-component covariances, so covariance_type "
            f"must be {names}, got {covariance_type!r}{fix}")


def robust_spread(X, max_rows: int = QN_MAX_ROWS) -> np.ndarray:
    """Rousseeuw & Croux's (1993) Qn scale of each feature: 2.2219 × the first quartile
    (the h(h-1)/2-th smallest, h = n//2 + 1) of the pairwise distances |x_i - x_j|.

    The default scale prior is centred on it (``scale_loc = 0.5 · Qn``). For Gaussian data
    it estimates the std (the 2.2219 makes it consistent; Qn/std → 1); unlike the std it
    is not inflated by heavy tails (breakdown point 50%), and clusters far apart inflate
    it by a bounded factor, not by their separation: the lower quartile of the
    distances is made of pairs within one cluster as long as those are a quarter of all
    pairs (up to ~4 clusters of similar weight along a feature), so Qn is then a
    quantile of the within-cluster distances (two equal clusters: their median
    distance, ~2.1 × their own Qn). Measured: t(2) noise around two clusters 12 apart
    gives std 6.2, Qn 1.9 (the clusters' own Qn ~0.95); three unit blobs 8 apart std
    3.9, Qn 1.9; iris' petal length std 1.76, Qn 1.11. A lower quantile would measure
    the clusters' width itself but breaks down on duplicated rows (distances 0), the
    collapse the scale prior is there to prevent.

    Parameters
    ----------
    X : array of shape (N, D)
        NaN marks a missing value; each feature uses its observed values.
    max_rows : int
        At most this many rows per feature, evenly spaced in sorted order (quantiles of
        the feature, so the estimate is deterministic and the cost O(max_rows log
        max_rows) per bisection step).

    Returns
    -------
    array of shape (D,), float64, with the small-sample factors of Croux & Rousseeuw
    (1992); 0 where a feature has fewer than 2 distinct values (or ties in half its
    pairs).
    """
    X = np.asarray(X, np.float64)
    out = np.zeros(X.shape[1])
    for d in range(X.shape[1]):
        x = np.sort(X[:, d][~np.isnan(X[:, d])])
        if x.size > max_rows:  # evenly spaced order statistics: a quantile sketch
            x = x[np.linspace(0, x.size - 1, max_rows).round().astype(int)]
        n = x.size
        if n < 2:
            continue
        h = n // 2 + 1
        # the small-sample correction factors of Croux & Rousseeuw (1992)
        small = {2: 0.399, 3: 0.994, 4: 0.512, 5: 0.844, 6: 0.611, 7: 0.857, 8: 0.669,
                 9: 0.872}
        factor = small.get(n, n / (n + 1.4) if n % 2 else n / (n + 3.8))
        out[d] = 2.2219 * factor * _kth_distance(x, h * (h - 1) // 2)
    return out


def _kth_distance(x: np.ndarray, k: int) -> float:
    """The k-th smallest (from 1) of the pairwise distances x_j - x_i, i < j, of sorted x
    (n,), without forming the n(n-1)/2 of them: bisection on the distance t, counting
    the pairs within t by binary search (O(n log n) a step), then the largest distance
    within the final t."""
    n = x.size
    first = np.arange(n)
    count = lambda t: int(np.sum(np.searchsorted(x, x + t, side="right") - first - 1))
    lo, hi = 0.0, float(x[-1] - x[0])
    if count(lo) >= k:  # at least k tied pairs
        return 0.0
    while True:  # count(lo) < k <= count(hi)
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # lo and hi are adjacent floats
            break
        if count(mid) >= k:
            hi = mid
        else:
            lo = mid
    last = np.searchsorted(x, x + hi, side="right") - 1  # (n,): farthest j within hi
    return float(np.max(x[last] - x))


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
