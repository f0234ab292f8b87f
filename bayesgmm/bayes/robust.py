"""Messy data in the Bayesian mixture: the EM start, the inference run and the posterior
read-outs of the models with missing values, a uniform noise component or Student-t
components (:func:`bayesgmm.bayes.model.robust_log_joint`; issue 19).

Glossary: N samples, D features, K components, C chains, S draws per chain, M = C·S
draws; the noise component, when there is one, is column K (the last) of the
memberships, as in :class:`bayesgmm.RobustMixture`.

Which path runs
---------------
* Missing values only (``Priors.marginalize_missing``): the common path,
  :func:`bayesgmm.bayes.inference.run`, on the hand-written potential (which
  marginalises NaN through :func:`bayesgmm.bayes.missing.marginal_log_prob`).
* A noise component or t components (``Priors.robust``): :func:`run` here, on NumPyro's
  own potential of :func:`bayesgmm.bayes.model.gmm_model` (``potential_energy``), with
  NumPyro's NUTS kernel. Two things keep these models off the common path, both in
  modules this one does not own: :func:`bayesgmm.bayes.potential.supports` does not know
  ``Priors.robust`` (it would hand them the Gaussian potential), and
  :func:`bayesgmm.bayes.inference.target.init_sites` builds the start from a
  ``GMMParams`` alone (no ``noise_weight`` or ``df``). With those two changes,
  :func:`run` reduces to ``inference.run`` (see the branch's report).

The same MAP (Adam from the EM start, :func:`bayesgmm.bayes.inference.map.minimise`),
NUTS (per-chain jitter around the MAP) and SVI (a multivariate-normal guide started at
the MAP) as the common path, on NumPyro's potential: slower to compile, same answers.

After the run, :func:`finish` corrects what :func:`bayesgmm.bayes.posterior.from_inference`
computes with the Gaussian, complete-data density: the ``log_likelihood`` group (LOO,
WAIC), ``observed_data`` (NaN kept) and the health checks that read them.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp
from numpyro.infer import NUTS
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from bayesgmm.bayes import arviz, posterior
from bayesgmm.bayes.inference import InferenceResult, NUTSInfo, SVIInfo
from bayesgmm.bayes.inference.map import map_info, minimise
from bayesgmm.bayes.inference.nuts import EXTRA_FIELDS
from bayesgmm.bayes.inference.svi import guided
from bayesgmm.bayes.inference.target import (bound_model, coordinate_units, prior_arrays,
                                             program_key, rebound)
from bayesgmm.bayes.model import (COMPONENTS, Priors, from_sites, model_type, robust_log_joint,
                                  to_sites)
from bayesgmm.compilation import jit
from bayesgmm.missing import has_missing
from bayesgmm.params import GMMParams

__all__ = ["Start", "NOISE_START", "DF_START_BOUNDS", "SPARSE_CONCENTRATION", "check_options",
           "noise_log_extent", "model_priors", "fitted_method", "changed_options",
           "changed_settings", "em_start", "start_sites", "run", "draw_sites",
           "fitted_attributes", "log_joint", "membership", "pointwise_log_likelihood",
           "log_predictive_density", "finish"]

#: The noise weight a start gets when no robust EM fit gives one (data with holes).
NOISE_START = 0.05
#: An EM estimate of ν starts the sampler within these bounds (the Gamma(2, 0.1) prior
#: has 99% of its mass below 66; EM's ν can sit at its bound of 1000).
DF_START_BOUNDS = (1.0, 100.0)
#: sparse=True: Dirichlet concentration SPARSE_CONCENTRATION / K on the weights (an
#: over-fitted mixture, Rousseau & Mengersen 2011; Malsiner-Walli et al. 2016).
SPARSE_CONCENTRATION = 0.5

# Compiled MAP programs by configuration (X is an argument).
_MAP_RUNNERS: dict = {}


class Start(NamedTuple):
    """Where inference starts: an EM fit, with the robust sites' values."""

    params: GMMParams  # batch shape (); weights (K,) relative (sum to 1)
    noise_weight: float | None  # π_0 (None: no noise component)
    df: np.ndarray | None  # (K,) degrees of freedom (None: Gaussian, or ν fixed)


def check_options(*, missing="error", noise=False, noise_volume="box", component="gaussian",
                  df=None) -> None:
    """A ``ValueError`` naming the option for an invalid ``missing``, ``noise``,
    ``noise_volume``, ``component`` or ``df`` of :class:`bayesgmm.BayesianGaussianMixture`
    (the values :class:`bayesgmm.RobustMixture` and ``GaussianMixture`` take, except an
    infinite ``df``: use ``component="gaussian"``)."""
    from bayesgmm.robust import NOISE_VOLUMES
    from bayesgmm.validation import check_missing_option

    check_missing_option(missing)
    if not isinstance(noise, (bool, np.bool_)):
        raise ValueError(f"noise must be True or False, got {noise!r}")
    number = lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    if not ((isinstance(noise_volume, str) and noise_volume in NOISE_VOLUMES) or (
            number(noise_volume) and np.isfinite(noise_volume) and noise_volume > 0)):
        raise ValueError(f"Invalid value for 'noise_volume': {noise_volume!r}; expected one "
                         f"of {NOISE_VOLUMES} or a finite volume > 0")
    if component not in COMPONENTS:
        raise ValueError(f"Invalid value for 'component': {component!r}; 'component' should "
                         f"be in {COMPONENTS}")
    if df is not None and (component != "t" or not number(df)
                           or not (np.isfinite(df) and df > 0)):
        raise ValueError(f"Invalid value for 'df': {df!r}; df fixes the degrees of freedom "
                         "of component='t' (a finite number > 0), or None to sample them")


def noise_log_extent(X, volume="box") -> np.ndarray:
    """Log side lengths (D,) of the noise region: the observed bounding box's
    (``"box"``), or a cube of the volume ``volume`` (a number, or ``"hypvol"``/``"hull"``
    of :func:`bayesgmm.robust.noise_log_volume` on the complete rows). Their sum is log V;
    a row with holes sees the box of its observed features."""
    from bayesgmm.robust import noise_log_volume

    X = np.asarray(X, np.float64)
    D = X.shape[1]
    if isinstance(volume, str) and volume == "box":
        span = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
        if not (span > 0).all():
            d = int(np.argmin(span))
            raise ValueError(f"Feature {d} of X is constant, so the noise region has volume "
                             "0; drop that feature or give noise_volume= a positive volume")
        return np.log(span)
    complete = X[~np.isnan(X).any(axis=1)]
    if isinstance(volume, str) and complete.shape[0] <= D:
        raise ValueError(f"noise_volume={volume!r} needs more than {D} complete rows, got "
                         f"{complete.shape[0]}; use noise_volume='box' or a number")
    log_v = noise_log_volume(complete, volume)
    return np.full(D, log_v / D)


def model_priors(priors, X, *, n_components: int, sparse: bool = False,
                 noise_log_extent=None, component: str = "gaussian", df=None) -> Priors:
    """The resolved priors :class:`bayesgmm.BayesianGaussianMixture` fits X (N, D) under
    (its ``priors_``): ``priors`` (a :class:`Priors`, None for the defaults) with
    ``sparse``'s weight concentration (``SPARSE_CONCENTRATION / n_components`` where
    ``weight_concentration`` is left at its default), the messy-data fields
    (``noise_log_extent``: the noise region's, :func:`noise_log_extent`; ``component``,
    ``df``; NaN in X marginalised) and the data-scaled defaults
    (:meth:`Priors.resolve`). The estimator's fit and :func:`changed_settings` both
    call it."""
    priors = priors or Priors()
    if sparse and priors.weight_concentration == Priors.weight_concentration:
        priors = dataclasses.replace(
            priors, weight_concentration=SPARSE_CONCENTRATION / int(n_components))
    return dataclasses.replace(
        priors, noise_log_extent=noise_log_extent, component=component, df=df,
        marginalize_missing=priors.marginalize_missing or has_missing(X)).resolve(X)


def fitted_method(idata) -> str:
    """The inference method whose draws ``idata`` (a fit's ``idata_``) holds, read from
    its ``sample_stats`` group (:meth:`InferenceResult.sample_stats`): NUTS's has
    ``diverging``, MAP's only ``lp``, SVI has none. A fit's groups record it, also in
    a folder saved before this was read."""
    if "sample_stats" not in idata:
        return "svi"
    return "nuts" if "diverging" in idata["sample_stats"].data_vars else "map"


def changed_settings(settings: dict, priors: Priors | None, idata) -> list[tuple[str, object]]:
    """The settings of :class:`bayesgmm.BayesianGaussianMixture` that no longer give the
    posterior a fit holds (``set_params`` after fit), each with the value that does:
    :func:`changed_options` (the model's options), then the priors (``sparse``,
    ``priors``: :func:`model_priors` on the training data no longer gives ``priors``),
    then the inference (``method``: :func:`fitted_method`; ``n_chains`` and ``n_draws``
    of NUTS, ``n_draws`` of SVI: the posterior's chain and draw sizes; a MAP point has
    neither).

    Not compared, as the fit does not record them (the folder's draws stay what they
    are): how the posterior was reached (``n_warmup``, ``target_accept_prob``,
    ``jitter``, ``max_tree_depth``, ``n_svi_steps``, ``n_padded``, the EM start's
    settings, ``random_state``), and settings no read-out of the fit depends on
    (``progress_bar``). ``n_components`` and ``covariance_type`` are
    :func:`bayesgmm.io.save`'s own check.

    Parameters
    ----------
    settings : dict
        The estimator's ``get_params()``.
    priors : Priors or None
        Its ``priors_``; None (a folder saved before they were kept): only the inference
        settings are compared.
    idata : arviz.InferenceData or xarray.DataTree
        Its ``idata_``: the training data (``observed_data``, NaN kept) and the
        posterior's sizes.

    Returns
    -------
    list of (str, object)
        (setting, fitted value), in the order above; empty when none changed. A
        changed ``priors``' fitted value is the least ``Priors`` (None: the defaults)
        that gives the fit's with the ``sparse`` it is reported with.
    """
    X = np.asarray(idata["observed_data"]["obs"].values)
    sizes = arviz.group_sizes(idata, "posterior")
    changed = [] if priors is None else (changed_options(settings, priors, X)
                                         + _changed_priors(settings, priors, X,
                                                           sizes["component"]))
    method = fitted_method(idata)
    if settings["method"] != method:
        changed.append(("method", method))
    counts = {"nuts": {"n_chains": sizes["chain"], "n_draws": sizes["draw"]},
              "svi": {"n_draws": sizes["draw"]}}.get(method, {})
    for name, n in counts.items():
        value = settings[name]
        if not (isinstance(value, int | np.integer) and not isinstance(value, bool)
                and value == n):
            changed.append((name, n))
    return changed


def changed_options(settings: dict, priors: Priors, X) -> list[tuple[str, object]]:
    """The options of :class:`bayesgmm.BayesianGaussianMixture` that define the model
    and no longer give the one a fit's posterior was sampled under (``set_params``
    after fit), each with the value that does.

    ``noise``, ``component`` and ``df`` are compared with the fit's resolved
    ``priors``; ``noise_volume`` (with noise) and ``missing`` with its training data
    ``X`` (N, D): the noise region recomputed, and NaN there needs
    ``missing="marginalize"``. ``n_components`` and ``covariance_type`` are
    :func:`bayesgmm.io.save`'s own check; the priors and the inference settings are
    :func:`changed_settings`'.

    Parameters
    ----------
    settings : dict
        The estimator's ``get_params()``.
    priors : Priors
        Its ``priors_``.
    X : array of shape (N, D)
        Its training data (``idata_``'s ``observed_data``, NaN kept).

    Returns
    -------
    list of (str, object)
        (option, fitted value), in the order above; empty when none changed. A noise
        region's fitted value is the ``noise_volume`` rule that gives it, else its
        volume V.
    """
    from bayesgmm.robust import NOISE_VOLUMES

    X = np.asarray(X)
    changed = []
    noise, extent = priors.noise_log_extent is not None, priors.noise_log_extent
    if not (isinstance(settings["noise"], (bool, np.bool_))
            and bool(settings["noise"]) == noise):
        changed.append(("noise", noise))
    elif noise and not _same_region(X, settings["noise_volume"], extent):
        fitted = next((v for v in NOISE_VOLUMES if _same_region(X, v, extent)),
                      float(np.exp(np.sum(extent))))
        changed.append(("noise_volume", fitted))
    if not (isinstance(settings["component"], str)
            and settings["component"] == priors.component):
        changed.append(("component", priors.component))
    df = settings["df"]
    number = isinstance(df, (int, float, np.number)) and not isinstance(df, bool)
    if not (df is None and priors.df is None
            or number and priors.df is not None and float(df) == priors.df):
        changed.append(("df", priors.df))
    if np.isnan(X).any() and settings["missing"] != "marginalize":
        changed.append(("missing", "marginalize"))
    return changed


def _same_region(X, volume, log_extent) -> bool:
    """Whether ``noise_volume=volume`` gives X the noise region of log side lengths
    ``log_extent`` (D,) (False for an invalid volume, or one X cannot give)."""
    try:
        check_options(noise_volume=volume)
        region = noise_log_extent(X, volume)
    except ValueError:
        return False
    # a volume given as the fitted V: log(exp(log V)) within rounding
    return bool(np.allclose(region, log_extent, rtol=1e-12, atol=1e-12))


def _changed_priors(settings: dict, fitted: Priors, X, n_components: int) -> list:
    """:func:`changed_settings`' prior settings: ``[]`` when ``settings``' ``priors`` and
    ``sparse`` give X the ``fitted`` priors; else what to set back, with their values,
    the first that gives them of: ``sparse`` alone; ``priors=None`` (with ``sparse`` as
    it is, else with both); the least ``Priors`` that gives them (likewise); else
    ``priors=fitted``. The messy-data fields are ``fitted``'s here
    (:func:`changed_options` compares them)."""
    def gives(priors, sparse) -> bool:
        try:
            now = model_priors(priors, X, n_components=n_components, sparse=sparse,
                               noise_log_extent=fitted.noise_log_extent,
                               component=fitted.component, df=fitted.df)
        except (AttributeError, TypeError, ValueError):  # not a valid Priors
            return False
        return _same_priors(now, fitted, X)

    priors, sparse = settings["priors"], settings["sparse"]
    now = [bool(sparse)] if isinstance(sparse, bool | np.bool_) else []  # [] if invalid
    if now and gives(priors, sparse):
        return []
    others = [s for s in (False, True) if s not in now]
    least = {s: _least_priors(fitted, X, s, n_components) for s in now + others}
    for s, p in ([(s, priors) for s in others] + [(s, None) for s in now + others]
                 + [(s, least[s]) for s in now + others]):
        if gives(p, s):
            return [("sparse", s)] * (s not in now) + [("priors", p)] * (p is not priors)
    return [("priors", fitted)]


def _least_priors(fitted: Priors, X, sparse: bool, n_components: int) -> Priors:
    """The ``priors`` setting that may give X the ``fitted`` priors with ``sparse``: the
    hyper-parameters whose default differs, at ``fitted``'s values."""
    default = model_priors(None, X, n_components=n_components, sparse=sparse,
                           noise_log_extent=fitted.noise_log_extent,
                           component=fitted.component, df=fitted.df)
    kept = ("noise_log_extent", "component", "df")  # model_priors sets them
    return Priors(**{f.name: getattr(fitted, f.name) for f in dataclasses.fields(Priors)
                     if f.name not in kept and not _same_value(
                         getattr(default, f.name), getattr(fitted, f.name), X)})


def _same_priors(a: Priors, b: Priors, X) -> bool:
    """Whether two resolved priors are the same numbers, field by field."""
    return all(_same_value(getattr(a, f.name), getattr(b, f.name), X)
               for f in dataclasses.fields(Priors))


def _same_value(a, b, X) -> bool:
    """Two resolved priors' values of one field: arrays (the data-scaled fields, in X's
    units) equal within X's rounding (the same data summed in another order), the rest
    exactly."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if a is None or b is None or np.shape(a) != np.shape(b):
            return False
        scale = float(np.nanmax(np.abs(X))) if np.size(X) else 1.0
        return bool(np.allclose(a, b, rtol=1e-12, atol=1e-12 * scale))
    return bool(a == b)


def em_start(gaussian, X, *, component: str = "gaussian", df=None, noise: bool = False,
             noise_volume="box"):
    """Fit the EM model inference starts from: ``gaussian`` (an unfitted
    :class:`bayesgmm.GaussianMixture`, ``missing="marginalize"`` where X has NaN) for
    data with holes or a Gaussian model without noise; else a
    :class:`bayesgmm.RobustMixture` with ``gaussian``'s settings and the robust options
    (its noise weight and ν start the sampler). Returns (the fitted estimator,
    :class:`Start`)."""
    from bayesgmm.estimators import RobustMixture
    from bayesgmm.validation import data_warnings_off

    robust = noise or component == "t"
    estimate_df = component == "t" and df is None
    if not robust or np.isnan(X).any():  # RobustMixture has no missing-data EM
        with data_warnings_off():  # (the Bayesian fit checked X's columns)
            fitted = gaussian.fit(X)
        return fitted, Start(fitted.params_, NOISE_START if noise else None,
                             np.full(fitted.n_components, 20.0) if estimate_df else None)
    kw = {k: v for k, v in gaussian.get_params().items()
          if k in ("n_components", "covariance_type", "tol", "reg_covar", "max_iter",
                   "n_init", "init_params", "random_state")}
    with data_warnings_off():
        fitted = RobustMixture(**kw, component=component, df=df, noise=noise,
                               noise_volume=noise_volume).fit(X)
    p = fitted.params_.mixture
    params = GMMParams(p.weights / np.sum(p.weights), p.means, p.cov_factor,
                       p.covariance_type)
    return fitted, Start(params, float(fitted.noise_weight_) if noise else None,
                         np.asarray(fitted.df_) if estimate_df else None)


def start_sites(start: Start, priors: Priors, covariance_type: str, dtype) -> dict:
    """The model's sample sites at ``start`` (a resolved ``priors``' model), in ``dtype``."""
    sites = to_sites(start.params, covariance_type, weight_prior=priors.weight_prior)
    if priors.noise_log_extent is not None:
        sites["noise_weight"] = np.clip(start.noise_weight, 1e-3, 0.5)
    if priors.component == "t" and priors.df is None:
        sites["df"] = np.clip(start.df, *DF_START_BOUNDS)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), sites)


def run(key, X, start: Start, method: str, *, n_components: int, covariance_type: str,
        priors: Priors, n_chains: int = 4, n_warmup: int = 500, n_draws: int = 500,
        jitter: float = 0.05, target_accept_prob: float = 0.8, n_svi_steps: int = 3000,
        progress_bar: bool = False, max_tree_depth: int = 10
        ) -> tuple[InferenceResult, GMMParams]:
    """MAP from ``start``, then ``method`` from the MAP, on NumPyro's potential: as
    :func:`bayesgmm.bayes.inference.run` (same arguments and returns) for the models it
    does not cover (``priors.robust``); unpadded (no ``n_padded``)."""
    model = bound_model(n_components, covariance_type, priors)
    sites = start_sites(start, priors, covariance_type, X.dtype)
    map_result = _fit_map(model, X, sites)
    map_params = jax.tree_util.tree_map(lambda a: a[0, 0], map_result.params)
    if method == "map":
        return map_result, map_params
    map_sites = {k: jnp.asarray(map_result.sites[k][0, 0]) for k in sites}  # sample sites
    if method == "nuts":
        result = _sample_nuts(model, key, X, map_sites, n_chains=n_chains, n_warmup=n_warmup,
                              n_draws=n_draws, jitter=jitter,
                              target_accept_prob=target_accept_prob, progress_bar=progress_bar,
                              max_tree_depth=max_tree_depth)
    else:
        result = _fit_svi(model, key, X, map_sites, n_steps=n_svi_steps, n_draws=n_draws,
                          progress_bar=progress_bar)
    return result, map_params


def draw_sites(sites: dict, priors: Priors, batch_shape: tuple) -> dict:
    """The robust sites of each draw, with leading ``batch_shape``: ``noise_weight``
    ``(*B,)`` or None, ``df`` ``(*B, K)`` (a fixed ν broadcast) or None."""
    out = {"noise_weight": None, "df": None}
    if priors.noise_log_extent is not None:
        out["noise_weight"] = np.asarray(sites["noise_weight"]).reshape(batch_shape)
    if priors.component == "t":
        K = np.asarray(sites["means"]).shape[-2]
        out["df"] = (np.asarray(sites["df"]).reshape(batch_shape + (K,)) if priors.df is None
                     else np.full(batch_shape + (K,), float(priors.df)))
    return out


def fitted_attributes(draws: GMMParams, sites, priors: Priors, weights) -> dict:
    """A fitted :class:`bayesgmm.BayesianGaussianMixture`'s messy-data attributes from its
    relabeled ``draws`` (C, S), their model ``sites`` (``idata_.posterior``) and resolved
    ``priors``: ``priors_``, ``df_`` (K,) (posterior mean; inf: Gaussian),
    ``noise_weight_`` (posterior mean π_0; 0 without noise), ``noise_volume_`` (V; inf
    without noise) and ``weights_`` (K,): ``weights`` (the posterior mean relative
    weights), or with noise the posterior mean of (1 - π_0) w_k, which sums to
    1 - ``noise_weight_`` (as :class:`bayesgmm.RobustMixture`'s)."""
    K = draws.n_components
    extra = draw_sites(sites, priors, draws.batch_shape)
    out = {"priors_": priors, "weights_": np.asarray(weights),
           "df_": (np.full(K, np.inf) if extra["df"] is None
                   else extra["df"].reshape(-1, K).mean(axis=0)),
           "noise_weight_": 0.0, "noise_volume_": float("inf")}
    if extra["noise_weight"] is not None:
        nw = extra["noise_weight"].reshape(-1, 1)
        w = np.asarray(draws.weights).reshape(-1, K)
        out["weights_"] = ((1 - nw) * w).mean(axis=0).astype(out["weights_"].dtype)
        out["noise_weight_"] = float(nw.mean())
        out["noise_volume_"] = float(np.exp(np.sum(priors.noise_log_extent)))
    return out


def log_joint(draws: GMMParams, extra: dict, X, priors: Priors,
              chunk_size: int = 256) -> np.ndarray:
    """log π_k f_k(x_n) (and the noise column) under every draw: (M, N, K[+1]), in X's
    dtype; ``draws`` of batch shape (C, S) or (M,), ``extra`` from :func:`draw_sites`.
    Draws named by mclust (``"VVV"``) run as their canonical type (``"full"``,
    :func:`bayesgmm.bayes.model.model_type`: the same table entry), so both names
    share one compiled program."""
    X = np.asarray(X)
    flat = draws.flatten_batch()
    flat = GMMParams(flat.weights, flat.means, flat.cov_factor,
                     model_type(flat.covariance_type))
    M = flat.weights.shape[0]
    nw = None if extra["noise_weight"] is None else np.reshape(extra["noise_weight"], (M,))
    df = None if extra["df"] is None else np.reshape(extra["df"], (M, -1))
    extent = (None if priors.noise_log_extent is None
              else np.asarray(priors.noise_log_extent, X.dtype))
    marginalize = bool(np.isnan(X).any())
    fn = _joint_fn(marginalize, nw is not None, df is not None, flat.covariance_type)
    out = []
    for start in range(0, M, chunk_size):
        part = jax.tree_util.tree_map(lambda a: np.asarray(a[start:start + chunk_size],
                                                            X.dtype), flat)
        sl = slice(start, start + chunk_size)
        out.append(np.asarray(fn(part, X, None if df is None else df[sl].astype(X.dtype),
                                 None if nw is None else nw[sl].astype(X.dtype), extent)))
    return np.concatenate(out)


def membership(draws: GMMParams, extra: dict, X, priors: Priors, prob: float = 0.94):
    """Posterior mean and equal-tailed ``prob`` interval of p(z_n = k | x_n, θ) over the
    draws, noise column last: three arrays (N, K[+1])."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    lj = log_joint(draws, extra, X, priors).astype(np.float64)
    resp = np.exp(lj - logsumexp(lj, axis=-1, keepdims=True))  # (M, N, K[+1])
    lower, upper = np.quantile(resp, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    dtype = np.asarray(X).dtype
    return resp.mean(axis=0).astype(dtype), lower.astype(dtype), upper.astype(dtype)


def pointwise_log_likelihood(draws: GMMParams, extra: dict, X, priors: Priors) -> np.ndarray:
    """log p(x_n | θ_cs), shape (C, S, N): ``idata_``'s ``log_likelihood`` group."""
    C, S = draws.batch_shape
    lj = log_joint(draws, extra, X, priors)
    return np.asarray(logsumexp(lj, axis=-1)).reshape(C, S, -1).astype(np.asarray(X).dtype)


def log_predictive_density(draws: GMMParams, extra: dict, X, priors: Priors) -> np.ndarray:
    """log E_θ[p(x_n | θ)] over the draws (batch shape (C, S)), shape (N,), in X's dtype:
    :func:`bayesgmm.bayes.posterior.log_predictive_density` for the messy-data model."""
    ll = pointwise_log_likelihood(draws, extra, X, priors).astype(np.float64)
    flat = ll.reshape(-1, ll.shape[-1])
    out = np.asarray(logsumexp(flat, axis=0)) - np.log(flat.shape[0])
    return out.astype(np.asarray(X).dtype)


def finish(result: InferenceResult, map_params: GMMParams, X, priors: Priors, *,
           sparse: bool = False) -> posterior.Posterior:
    """:func:`bayesgmm.bayes.posterior.from_inference` for messy data: relabeling and the
    Gaussian read-outs run on X with its holes filled by the MAP's conditional means
    (:func:`bayesgmm.missing.impute`); then the ``log_likelihood`` group is replaced by
    the model's own (:func:`pointwise_log_likelihood`), ``observed_data`` keeps the NaN,
    and the health checks rerun on them."""
    from bayesgmm.missing import impute

    X = np.asarray(X)
    holes = bool(np.isnan(X).any())
    filled = impute(map_params.to_numpy(), X).astype(X.dtype) if holes else X
    post = posterior.from_inference(result, map_params, filled, sparse=sparse)
    if not (holes or priors.robust):
        return post
    sites = posterior.permute_sites(result.sites, post.relabeling.permutations)
    extra = draw_sites(sites, priors, post.params.batch_shape)
    ll = pointwise_log_likelihood(post.params, extra, X, priors)
    for group, values in (("log_likelihood", ll), ("observed_data", X)):
        node = post.idata[group]  # a Dataset (ArviZ 0.23) or a DataTree node (1.x), in place
        node["obs"] = node["obs"].copy(data=values)
    lp = result.sample_stats.get("lp") if result.method == "nuts" else None
    health = posterior.health(post.params, filled, lp=lp, idata=post.idata,
                              diagnostics=post.diagnostics, sparse=sparse)
    return post._replace(health=health)


# ---- private ---------------------------------------------------------------------------


def _joint_fn(marginalize: bool, noise: bool, t: bool, covariance_type: str):
    """A jitted (draws (m,), X, df (m, K), noise_weight (m,), extent) -> (m, N, K[+1]),
    cached by configuration; ``covariance_type``: the draws' canonical type
    (:func:`bayesgmm.bayes.model.model_type`), as the draws it is called with."""
    key = ("joint", marginalize, noise, t, covariance_type)
    if key not in _MAP_RUNNERS:
        def one(p, X, df, nw, extent):
            return robust_log_joint(p, X, df=df if t else None, noise_weight=nw if noise else None,
                                    noise_log_extent=extent if noise else None,
                                    marginalize=marginalize)

        axes = (0, None, 0 if t else None, 0 if noise else None, None)
        _MAP_RUNNERS[key] = jit(jax.vmap(one, in_axes=axes))
    return _MAP_RUNNERS[key]


def _fit_map(model, X, sites: dict, n_steps: int = 800, learning_rate: float = 0.05,
             final_learning_rate: float = 1e-3, rtol: float = 1e-6) -> InferenceResult:
    """:func:`bayesgmm.bayes.inference.fit_map` on NumPyro's potential."""
    kw = model.keywords
    cache_key = ("map", kw["n_components"], kw["covariance_type"], program_key(kw["priors"]),
                 n_steps)
    if cache_key not in _MAP_RUNNERS:
        _MAP_RUNNERS[cache_key] = jit(_map_program(model, n_steps))
    out, trace = jax.device_get(_MAP_RUNNERS[cache_key](
        X, sites, np.asarray(learning_rate, X.dtype), np.asarray(final_learning_rate, X.dtype),
        prior_arrays(kw["priors"], X.dtype)))
    batched = {k: np.asarray(v)[None, None] for k, v in out.items() if k != "obs"}
    info = map_info(trace, n_steps, rtol)
    return InferenceResult("map", from_sites(batched, kw["covariance_type"]), batched, info)


def _map_program(model, n_steps: int):
    """(X, sites, lr0, lr1, prior arrays) -> (MAP sites, trace); the model's data-scaled
    priors are the argument's (:func:`bayesgmm.bayes.inference.target.prior_arrays`)."""
    bound = model

    def program(X, sites, lr0, lr1, arrays):
        model = rebound(bound, arrays)
        z0 = unconstrain_fn(model, (X,), {}, sites)
        flat0, unravel = ravel_pytree(z0)
        loss = lambda f: potential_energy(model, (X,), {}, unravel(f))
        f, trace = minimise(loss, flat0, lr0, lr1, n_steps,
                            coordinate_units(unravel, flat0.shape[0], X))
        return constrain_fn(model, (X,), {}, unravel(f), return_deterministic=True), trace

    return program


def _sample_nuts(model, key, X, sites: dict, *, n_chains, n_warmup, n_draws, jitter,
                 target_accept_prob, progress_bar, max_tree_depth: int = 10) -> InferenceResult:
    """NUTS on NumPyro's potential of the model, each chain from its own jittered copy of
    ``sites`` (the MAP): chains one after another (``lax.map``) in one compiled program,
    initialisation included, as :mod:`bayesgmm.bayes.inference.nuts` does for the
    hand-written potential (NumPyro's ``MCMC.run`` initialises op by op: 3x the CPU
    time of a small fit). ``progress_bar`` is not shown on this path."""
    kw = model.keywords
    config = ("nuts", kw["n_components"], kw["covariance_type"], program_key(kw["priors"]),
              int(n_warmup), int(n_draws), float(target_accept_prob), max_tree_depth,
              X.shape, str(X.dtype), bool(jax.config.jax_enable_x64))
    if config not in _MAP_RUNNERS:
        _MAP_RUNNERS[config] = jit(_nuts_program(model, int(n_warmup), int(n_draws),
                                                 float(target_accept_prob), max_tree_depth))
    keys = jax.random.split(key, int(n_chains))
    samples, fields = jax.device_get(_MAP_RUNNERS[config](
        keys, X, sites, np.asarray(jitter, X.dtype), prior_arrays(kw["priors"], X.dtype)))
    samples = {k: np.asarray(v) for k, v in samples.items() if k != "obs"}
    extra = dict(zip(EXTRA_FIELDS, fields))
    n_steps = np.asarray(extra["num_steps"])
    info = NUTSInfo(
        diverging=np.asarray(extra["diverging"]), n_steps=n_steps,
        tree_depth=np.floor(np.log2(n_steps.astype(np.float32) + 1)).astype(np.int32),
        step_size=np.asarray(extra["adapt_state.step_size"]),
        energy=np.asarray(extra["energy"]), lp=-np.asarray(extra["potential_energy"]),
        acceptance_rate=np.asarray(extra["accept_prob"]), chain_method="sequential",
        max_tree_depth=max_tree_depth)
    return InferenceResult("nuts", from_sites(samples, kw["covariance_type"]), samples, info)


def _nuts_program(model, n_warmup: int, n_draws: int, target: float, depth: int):
    """(keys (C, 2), X, MAP sites, jitter, prior arrays) -> (constrained draws (C, S, ...),
    the ``EXTRA_FIELDS`` (C, S)); the model's data-scaled priors are the argument's."""
    bound = model

    def program(keys, X, sites, jitter, arrays):
        model = rebound(bound, arrays)
        flat, unravel = ravel_pytree(unconstrain_fn(model, (X,), {}, sites))
        potential = lambda f: potential_energy(model, (X,), {}, unravel(f))
        constrain = lambda f: constrain_fn(model, (X,), {}, unravel(f),
                                           return_deterministic=True)

        units = coordinate_units(unravel, flat.shape[0], X)  # the means in sd units

        def chain(key):
            k_init, k_run = jax.random.split(key)
            z = flat / units + jitter * jax.random.normal(k_init, flat.shape, flat.dtype)
            kernel = NUTS(potential_fn=lambda u: potential(u * units),
                          target_accept_prob=target, max_tree_depth=depth)
            state = kernel.init(k_run, n_warmup, init_params=z)

            def step(s, _):
                s = kernel.sample(s, (), {})
                return s, (s.z, s.diverging, s.num_steps, s.adapt_state.step_size,
                           s.energy, s.potential_energy, s.accept_prob)

            _, outs = jax.lax.scan(step, state, None, length=n_warmup + n_draws)
            z, *fields = jax.tree_util.tree_map(lambda a: a[n_warmup:], outs)
            return jax.vmap(constrain)(z * units), tuple(fields)

        return jax.lax.map(chain, keys)

    return program


def _fit_svi(model, key, X, sites: dict, *, n_steps, n_draws, progress_bar,
             learning_rate: float = 0.01) -> InferenceResult:
    """:func:`bayesgmm.bayes.inference.fit_svi`'s guide, started at ``sites``."""
    svi, draw = guided(model, X, sites, learning_rate)
    k_fit, k_draw = jax.random.split(key)
    result = svi.run(k_fit, int(n_steps), X, progress_bar=bool(progress_bar))
    draws = {k: np.asarray(v)[None] for k, v in draw(k_draw, result.params,
                                                      int(n_draws)).items()}
    elbo = -np.asarray(result.losses)
    info = SVIInfo(elbo=elbo, n_steps=int(n_steps),
                   final_elbo=float(elbo[-max(10, int(n_steps) // 10):].mean()))
    ct = model.keywords["covariance_type"]
    return InferenceResult("svi", from_sites(draws, ct), draws, info)
