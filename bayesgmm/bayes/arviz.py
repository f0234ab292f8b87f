"""Every ArviZ call of the package, for ArviZ 0.23 (Python 3.11) and ArviZ 1.x (from
Python 3.12, built on ``xarray.DataTree``): the one module that knows which is installed.

Glossary: C chains, S draws per chain, N samples (observations), D features, K components.

What a caller gets is the same on both lines:

- :func:`to_inference_data`, :func:`from_params`: an ``arviz.InferenceData`` (0.23) or an
  ``xarray.DataTree`` (1.x) with the groups and dims below. Read both the same way:
  ``idata.posterior["means"]``, ``idata.posterior.sizes["draw"]``, ``"log_likelihood" in
  idata`` (not ``idata.groups()``, which a DataTree does not have).
- :func:`loo`, :func:`waic`: an :class:`ELPD` (arviz-stats 1.x's field names).
- :func:`summary`: one DataFrame layout, unrounded, its interval an explicit ``ci_prob``
  equal-tailed (``ci_kind="eti"``, the default) or highest-density interval. ArviZ 0.23
  defaults to a 94% HDI and ArviZ 1.x to an 89% ETI, so neither default is used.
- :func:`compare`: columns ``rank, elpd, p, elpd_diff, weight, se, dse, warning``, best
  model first, ``elpd_diff = elpd_best - elpd >= 0`` (ArviZ 0.23's sign; arviz-stats 1.1
  flipped it to ``elpd - elpd_best``).
- :func:`ess`: a float from a (chain, draw) array.
- :func:`plot_trace`, :func:`plot_rank`: a matplotlib ``Figure`` (ArviZ 0.23's plots;
  arviz-plots' ``plot_trace_dist`` and ``plot_rank`` on 1.x).
- :func:`to_netcdf`, :func:`from_netcdf`: the ArviZ data as one netCDF-4 file, every group
  a netCDF group, through h5netcdf on both lines (ArviZ 0.23's ``InferenceData.to_netcdf``
  and ``from_netcdf``; ``xarray.DataTree.to_netcdf`` and ``xarray.open_datatree`` on 1.x),
  read back fully into memory so the file can be moved or deleted afterwards.

WAIC left ArviZ in 1.0; :func:`waic` computes it here from the pointwise log-likelihood on
both lines, with ArviZ 0.23's formulas (the posterior variance of the log-likelihood over
all draws, ``ddof=0``, and its 0.4 warning), so 0.23's numbers are unchanged.

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

import functools
import importlib.metadata
import importlib.util
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.compilation import jit
from bayesgmm.density import score_samples
from bayesgmm.params import GMMParams
from bayesgmm.validation import compute_scope

__all__ = ["ELPD", "to_inference_data", "from_params", "pointwise_log_likelihood", "loo",
           "waic", "summary", "summary_of_draws", "compare", "compare_with_loo", "ess",
           "plot_trace", "plot_rank", "arviz_version", "to_netcdf", "from_netcdf",
           "group_sizes"]

_score_samples_jit = jit(score_samples)

DIMS = {
    "weights": ["component"],
    "means": ["component", "feature"],
    "scales": ["component", "feature"],
    "corr_chol": ["component", "feature", "feature_bis"],
    "covariances": ["component", "feature", "feature_bis"],
    "stick_fractions": ["stick"],
    "df": ["component"],  # Student-t components' degrees of freedom (component="t")
    # observed_data keeps both; ArviZ drops the trailing "feature" from the pointwise
    # log-likelihood (C, S, N) of the same name, as it does for every log_likelihood group.
    "obs": ["obs_id", "feature"],
}

SUMMARY_KINDS = ("all", "stats", "diagnostics")
CI_KINDS = ("eti", "hdi")
# The tail ESS is the smaller ESS of the indicators x <= q_0.05 and x <= q_0.95.
TAIL_ESS_PROB = 0.95
COMPARE_COLUMNS = ["rank", "elpd", "p", "elpd_diff", "weight", "se", "dse", "warning"]
# Above this posterior variance of log p(x_n | θ), WAIC's estimate is unreliable
# (Vehtari, Gelman & Gabry 2017; ArviZ 0.23's threshold).
WAIC_VAR_WARN = 0.4


class ELPD(NamedTuple):
    """Expected log pointwise predictive density of a fit, from :func:`loo` or :func:`waic`.

    The same fields with ArviZ 0.23 and 1.x (arviz-stats 1.x's names: ArviZ 0.23 called
    them ``elpd_loo``/``elpd_waic``, ``p_loo``/``p_waic`` and ``loo_i``/``waic_i``).
    """

    kind: str  # "loo" (PSIS-LOO) or "waic"
    elpd: float  # Σ_n elpd_i, log scale: higher is better
    se: float  # standard error of elpd, sqrt(N · var(elpd_i, ddof=1))
    p: float  # effective number of parameters
    elpd_i: np.ndarray  # shape=(N,), float64: pointwise elpd
    pareto_k: np.ndarray | None  # shape=(N,), float64: PSIS shape per sample; None for waic
    good_k: float | None  # pareto_k above it is unreliable, min(1 - 1/log10(C·S), 0.7)
    warning: bool  # loo: some pareto_k > good_k; waic: some posterior var > 0.4
    n_samples: int  # C · S draws
    n_data_points: int  # N

    def __str__(self) -> str:
        """What ``print(fit.loo())`` shows: the estimate, its standard error, the
        effective number of parameters and the reliability check (as ArviZ prints its
        own; the fields keep the pointwise arrays)."""
        name = "PSIS-LOO" if self.kind == "loo" else "WAIC"
        lines = [f"{name} of {self.n_data_points} points, {self.n_samples} draws",
                 f"  elpd_{self.kind} {self.elpd:.2f} (se {self.se:.2f}), "
                 f"p_{self.kind} {self.p:.2f}"]
        if self.pareto_k is not None:
            k = np.asarray(self.pareto_k)
            bad = int(np.sum(k > self.good_k))
            lines.append(f"  Pareto k > {self.good_k:.2f}: {bad} of {k.size} points"
                         + (" (those estimates are unreliable)" if bad else ""))
        elif self.warning:
            lines.append("  some points' posterior variance of the log density exceeds "
                         "0.4: WAIC may fail there; prefer loo()")
        return "\n".join(lines)


@functools.cache
def arviz_version() -> tuple[int, int]:
    """(major, minor) of the installed ArviZ, read without importing it."""
    major, minor = importlib.metadata.version("arviz").split(".")[:2]
    return int(major), int(minor)


def _v1() -> bool:
    return arviz_version() >= (1, 0)


def _az():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ 0.23 warns about its 1.0 migration on import
        import arviz as az
    return az


def to_inference_data(params: GMMParams, X, *, sites: dict | None = None,
                      sample_stats: dict | None = None, log_likelihood: bool = True):
    """Build ArviZ's data object from (chain, draw)-batched ``params``.

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
    log_likelihood : bool, default=True
        Add the ``log_likelihood`` group (pointwise, (C, S, N)), which LOO and WAIC need.

    Returns
    -------
    arviz.InferenceData (ArviZ 0.23) or xarray.DataTree (ArviZ 1.x)
        Groups ``posterior``, ``observed_data`` and, when given, ``sample_stats`` and
        ``log_likelihood``, with the dims in the module docstring.
    """
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
    K, D = p.n_components, p.n_features
    coords = {"component": np.arange(K), "feature": np.arange(D),
              "feature_bis": np.arange(D), "obs_id": np.arange(X.shape[0])}
    if "stick_fractions" in posterior:
        coords["stick"] = np.arange(K - 1)
    az = _az()
    if _v1():  # one nested dict -> xarray.DataTree
        return az.from_dict(groups, coords=coords, dims=DIMS)
    return az.from_dict(**groups, coords=coords, dims=DIMS)  # one keyword per group


def from_params(params: GMMParams, X):
    """An EM or MAP fit (batch shape ()) as a one-draw ArviZ object (see
    :func:`to_inference_data`)."""
    one = jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], params)
    return to_inference_data(one, X)


def pointwise_log_likelihood(params: GMMParams, X, chunk: int = 64,
                             engine: str = "auto") -> np.ndarray:
    """log p(x_n | θ_cs), shape (C, S, N), in the data's dtype.

    ``engine="auto"``: in NumPy (float64, then cast) up to
    :data:`bayesgmm.engines.choose.HOST_DRAW_WORK`, else compiled in the data's dtype,
    chunked over draws; ``"numpy"`` / ``"jax"`` force one."""
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


def loo(idata, **kwargs) -> ELPD:
    """PSIS-LOO (``arviz.loo``) from the ``log_likelihood`` group.

    ``elpd_i``, ``pareto_k`` and ``p`` are ArviZ's; ``se`` is recomputed from ``elpd_i`` as
    ``sqrt(N · var(elpd_i, ddof=1))`` (arviz-stats 1.x and R's loo; ArviZ 0.23 used
    ``ddof=0``). The two ArviZ lines smooth the importance weights slightly differently: on
    a NUTS fit of 300 samples (4 x 500 draws) ``elpd`` and ``p`` agreed within 2e-4 and
    ``pareto_k`` within 0.06.

    Parameters
    ----------
    idata : ArviZ data object
        From :func:`to_inference_data`, with its ``log_likelihood`` group.
    **kwargs
        ``var_name`` (the log-likelihood variable; default its only one) and ``reff``
        (relative efficiency; default ArviZ's, from the posterior's ESS), passed on.

    Returns
    -------
    ELPD
        ``kind="loo"``, with ``pareto_k`` of shape (N,).
    """
    _check_kwargs("loo", kwargs, ("var_name", "reff"))
    return _elpd_of(_arviz_loo(idata, **kwargs))


def waic(idata, **kwargs) -> ELPD:
    """WAIC from the ``log_likelihood`` group, computed here (ArviZ 1.x has no WAIC).

    With ``ll[s, n] = log p(x_n | θ_s)`` over all S' = C·S draws (Vehtari, Gelman & Gabry
    2017, eqs. 3, 11-13): ``lppd_n = log(Σ_s exp(ll[s, n]) / S')``, ``p_n = var_s ll[s, n]``
    (the sample variance, ``ddof=1``, as R's loo; ArviZ 0.23's ``waic`` used ``ddof=0``, a
    factor (S' - 1)/S' on ``p``), ``elpd_i = lppd_n - p_n``, ``elpd = Σ elpd_i``,
    ``p = Σ p_n``, ``se = sqrt(N · var(elpd_i, ddof=1))``. Warns (``UserWarning``) when
    some ``p_n > 0.4``, where WAIC starts to fail.

    Parameters
    ----------
    idata : ArviZ data object
        From :func:`to_inference_data`, with its ``log_likelihood`` group.
    **kwargs
        ``var_name``: the log-likelihood variable (default its only one).

    Returns
    -------
    ELPD
        ``kind="waic"``; ``pareto_k`` and ``good_k`` are None.
    """
    from scipy.special import logsumexp

    _check_kwargs("waic", kwargs, ("var_name",))
    ll = _log_likelihood(idata, kwargs.get("var_name"))  # (C·S, N), float64
    n_samples, n_data_points = ll.shape
    # the draws are the first axis; reduce it
    lppd_i = logsumexp(ll, axis=0) - np.log(n_samples)
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    warn = bool(np.any(p_i > WAIC_VAR_WARN))
    if warn:
        warnings.warn("For one or more samples the posterior variance of the log predictive "
                      f"densities exceeds {WAIC_VAR_WARN}: WAIC may be starting to fail; "
                      "prefer loo(). See http://arxiv.org/abs/1507.04544", UserWarning,
                      stacklevel=2)
    return ELPD(kind="waic", elpd=float(elpd_i.sum()), se=_se(elpd_i), p=float(p_i.sum()),
                elpd_i=elpd_i, pareto_k=None, good_k=None, warning=warn,
                n_samples=int(n_samples), n_data_points=int(n_data_points))


def summary(idata, var_names=("weights", "means", "scales"), *, ci_prob: float = 0.94,
            ci_kind: str = "eti", kind: str = "all", **kwargs):
    """``arviz.summary`` of the (relabeled) posterior, the same table on ArviZ 0.23 and 1.x.

    Parameters
    ----------
    idata : ArviZ data object
    var_names : sequence of str
        Posterior variables to summarise; those the posterior lacks are skipped (MAP and
        SVI have no ``scales`` for ``diag``...).
    ci_prob : float in (0, 1), default=0.94
        Probability of the credible interval (ArviZ 0.23's default probability; ArviZ 1.x
        defaults to 0.89).
    ci_kind : {"eti", "hdi"}, default="eti"
        Equal-tailed interval (``numpy.quantile``, linear interpolation) or the highest
        density interval (the narrowest one holding ``ci_prob`` of the draws).
    kind : {"all", "stats", "diagnostics"}, default="all"

    Returns
    -------
    pandas.DataFrame
        One row per scalar (``"means[0, 1]"``), unrounded. Columns, by ``kind``: ``mean,
        sd, {ci_kind}{100·ci_prob}_lb, {ci_kind}{100·ci_prob}_ub`` (e.g. ``eti94_lb``),
        then ``mcse_mean, mcse_sd, ess_bulk, ess_tail, r_hat``.
    """
    _check_kwargs("summary", kwargs, ("var_names", "ci_prob", "ci_kind", "kind"))
    if not (isinstance(ci_prob, (int, float)) and 0 < ci_prob < 1):
        raise ValueError(f"ci_prob must be a probability in (0, 1), got {ci_prob!r}")
    if ci_kind not in CI_KINDS:
        raise ValueError(f"ci_kind must be one of {CI_KINDS}, got {ci_kind!r}")
    if kind not in SUMMARY_KINDS:
        raise ValueError(f"kind must be one of {SUMMARY_KINDS}, got {kind!r}")
    posterior = _group(idata, "posterior")
    names = [v for v in var_names if v in posterior.data_vars]
    if not names:
        raise ValueError(f"none of var_names={list(var_names)} is in the posterior; it has "
                         f"{sorted(posterior.data_vars)}")
    # In float64: float32 draws gave ess_tail 0.9% apart on the two lines (their quantile
    # code rounds differently in float32, moving draws across the 5%/95% quantiles).
    draws = posterior[names].astype(np.float64)
    lb, ub = (f"{ci_kind}{100 * ci_prob:g}_{end}" for end in ("lb", "ub"))
    diagnostics = ["mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]
    az = _az()
    one_draw = draws.sizes["chain"] * draws.sizes["draw"] == 1
    if kind != "stats" and (one_draw or draws.sizes["chain"] == 1 and not _v1()):
        # one draw (MAP) or, on ArviZ 0.23, one chain (SVI): R-hat needs two chains, and
        # 0.23 logs "Shape validation failed" on stderr for each summary. The stats, then
        # the diagnostics from the calls that need no second chain (ArviZ's own ESS and
        # MCSE, as its summary computes them; of one draw all NaN, as ArviZ gives them),
        # R-hat NaN (arviz-stats 1.x: NaN, silently). The sd of one draw is NaN, without
        # NumPy's "Degrees of freedom <= 0" warnings.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = summary(idata, var_names, ci_prob=ci_prob, ci_kind=ci_kind,
                            kind="stats")
        found = {} if one_draw else {"mcse_mean": az.mcse(draws, method="mean"),
                                     "mcse_sd": az.mcse(draws, method="sd"),
                                     "ess_bulk": az.ess(draws, method="bulk"),
                                     "ess_tail": az.ess(draws, method="tail")}
        table = table.assign(**{c: _by_row(table.index, names, found[c]) if c in found
                                else np.nan for c in diagnostics})
        return table[diagnostics if kind == "diagnostics" else list(table.columns)]
    if _v1():
        # arviz-stats takes the tail ESS's quantiles (1 - q, q) from rcParams
        # "stats.ci_prob" (0.89 by default); q = 0.95 gives ArviZ 0.23's (and Vehtari et al.
        # 2021's) 5% and 95% quantiles. The interval uses the explicit ci_prob.
        with az.rc_context({"stats.ci_prob": TAIL_ESS_PROB}):
            table = az.summary(draws, kind=kind, ci_prob=ci_prob, ci_kind=ci_kind,
                               round_to="none")
        table = table.rename(columns=_ends_with(table.columns, {"_lb": lb, "_ub": ub}))
    else:
        extra = {}
        if kind != "diagnostics" and ci_kind == "eti":  # 0.23 pairs the mean with an HDI
            q = ((1 - ci_prob) / 2, (1 + ci_prob) / 2)
            extra = {lb: functools.partial(np.quantile, q=q[0]),
                     ub: functools.partial(np.quantile, q=q[1])}
        table = az.summary(draws, kind=kind, hdi_prob=ci_prob, stat_funcs=extra or None,
                           round_to="none")
        hdi = [c for c in table.columns if c.startswith("hdi_")]  # "hdi_3%", "hdi_97%"
        if extra:
            table = table.drop(columns=hdi)
        else:
            table = table.rename(columns=dict(zip(hdi, (lb, ub))))
    stats = ["mean", "sd", lb, ub]
    columns = {"all": stats + diagnostics, "stats": stats, "diagnostics": diagnostics}[kind]
    return table[columns].astype(np.float64)


def _by_row(index, names, found) -> np.ndarray:
    """A per-scalar result (a Dataset of ``names``, e.g. ``az.ess(draws)``) as a column
    in the order of ``index`` (ArviZ's row labels: ``"means[0, 1]"``)."""
    values = {}
    for name in names:
        arr = np.asarray(found[name].values, np.float64)
        for idx in np.ndindex(arr.shape):
            values[name if not idx else f"{name}[{', '.join(map(str, idx))}]"] = arr[idx]
    return np.array([values[label] for label in index])


def compare(models: dict, **kwargs):
    """Rank named fits by PSIS-LOO, with ``arviz.compare``'s stacking weights.

    Each model's LOO is computed once (:func:`loo`); ``elpd``, ``p``, ``se``,
    ``elpd_diff`` and ``dse`` come from it, ``weight`` from ``arviz.compare`` on the same
    LOO results.

    Parameters
    ----------
    models : dict of {str: ArviZ data object}
        Two or more fits of the same N samples, each with its ``log_likelihood`` group.
    **kwargs
        ``method`` for the weights (``"stacking"``, ``"BB-pseudo-BMA"`` or
        ``"pseudo-BMA"``) and ``var_name``, passed on.

    Returns
    -------
    pandas.DataFrame
        Indexed by name, best (highest ``elpd``) first. Columns: ``rank`` (0 is best),
        ``elpd``, ``p``, ``elpd_diff = elpd_best - elpd`` (0 first, positive after: ArviZ
        0.23's sign; arviz-stats >= 1.1 reports ``elpd - elpd_best``), ``weight`` (sums
        to 1), ``se``, ``dse = sqrt(N · var(elpd_i_best - elpd_i, ddof=1))`` and
        ``warning`` (some Pareto k above ``good_k``).
    """
    return compare_with_loo(models, **kwargs)[0]


def compare_with_loo(models: dict, **kwargs):
    """:func:`compare`'s table and the :func:`loo` of each model it computed on the way
    (the same numbers ``loo(idata)`` gives, for a caller that needs both: each model's
    PSIS-LOO then runs once).

    Returns
    -------
    table : pandas.DataFrame
        :func:`compare`'s.
    loos : dict of {str: ELPD}
        By model name, ``kind="loo"``.
    """
    import pandas as pd

    _check_kwargs("compare", kwargs, ("method", "var_name"))
    if not isinstance(models, dict) or len(models) < 2:
        raise ValueError("compare needs a dict of at least two named fits, e.g. "
                         "{'K=2': fit2.idata_, 'K=3': fit3.idata_}")
    loo_kwargs = {k: v for k, v in kwargs.items() if k == "var_name"}
    raw = {name: _arviz_loo(idata, name=name, **loo_kwargs) for name, idata in models.items()}
    elpds = {name: _elpd_of(r) for name, r in raw.items()}
    sizes = {name: e.n_data_points for name, e in elpds.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"compare needs fits of the same samples; their numbers differ: {sizes}")
    order = sorted(elpds, key=lambda name: -elpds[name].elpd)
    best = elpds[order[0]]
    method = {k: v for k, v in kwargs.items() if k == "method"}
    az = _az()
    if _v1():
        weights = az.compare(raw, round_to="none", **method)["weight"]
    else:
        weights = az.compare(raw, ic="loo", **method)["weight"]
    table = pd.DataFrame({
        "rank": np.arange(len(order)),
        "elpd": [elpds[n].elpd for n in order],
        "p": [elpds[n].p for n in order],
        "elpd_diff": [best.elpd - elpds[n].elpd for n in order],
        "weight": [float(weights[n]) for n in order],
        "se": [elpds[n].se for n in order],
        "dse": [0.0 if n == order[0] else _se(best.elpd_i - elpds[n].elpd_i) for n in order],
        "warning": [elpds[n].warning for n in order]}, index=pd.Index(order))
    return table[COMPARE_COLUMNS], elpds


def summary_of_draws(values: dict, **kwargs):
    """:func:`summary` of arrays that are not model parameters (e.g. the label-invariant
    quantities of :func:`bayesgmm.bayes.posterior.label_invariant_draws`).

    Parameters
    ----------
    values : dict of str to array of shape (C, S, ...)
        One posterior variable each; a trailing axis becomes rows ``name[j]``.
    **kwargs
        ``ci_prob``, ``ci_kind`` and ``kind``, as :func:`summary`.

    Returns
    -------
    pandas.DataFrame
        :func:`summary`'s layout, one row per scalar, in the order of ``values``.
    """
    posterior = {name: np.asarray(v, np.float64) for name, v in values.items()}
    dims = {name: [f"{name}_dim"] for name, v in posterior.items() if v.ndim == 3}
    az = _az()
    data = (az.from_dict({"posterior": posterior}, dims=dims) if _v1()
            else az.from_dict(posterior=posterior, dims=dims))
    return summary(data, tuple(posterior), **kwargs)


def ess(x, method: str = "bulk") -> float:
    """Effective sample size (ArviZ; ``method`` "bulk", "tail", "mean"...) of one
    quantity's (chain, draw) array. (R-hat is :func:`bayesgmm.bayes.posterior.rhat`.)"""
    if method == "tail" and _v1():  # arviz-stats asks for the quantile (0.23: 5% / 95%)
        return float(_az().ess(_chain_draw(x, "ess"), method=method, prob=TAIL_ESS_PROB))
    return float(_az().ess(_chain_draw(x, "ess"), method=method))


def plot_trace(idata, var_names=None):
    """Trace and marginal density per chain (ArviZ 0.23's ``plot_trace``, arviz-plots'
    ``plot_trace_dist``) of ``var_names`` (default: all posterior variables).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _plot("plot_trace_dist", "plot_trace", idata, var_names)


def plot_rank(idata, var_names=None):
    """Rank plot per chain (ArviZ 0.23's histograms, arviz-plots' ECDF differences) of
    ``var_names``: chains that sample the same distribution have uniform ranks.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _plot("plot_rank", "plot_rank", idata, var_names)


def _plot(v1_name: str, v0_name: str, idata, var_names):
    """ArviZ's plot ``v1_name`` (arviz-plots, on 1.x) or ``v0_name`` (0.23) of
    ``var_names``, as the matplotlib Figure it drew on."""
    az = _az()
    names = None if var_names is None else list(var_names)
    if _v1():
        return _figure(getattr(az, v1_name)(idata, var_names=names, backend="matplotlib"))
    return np.ravel(getattr(az, v0_name)(idata, var_names=names))[0].figure


def to_netcdf(idata, path) -> None:
    """Write ArviZ data (from :func:`to_inference_data`) to ``path`` as netCDF-4 with
    h5netcdf, one netCDF group per ArviZ group; values, dtypes and coords round-trip
    exactly (:func:`from_netcdf`).

    Raises
    ------
    ImportError
        When h5netcdf is not installed (ArviZ 1.x does not require it), naming the fix.
    """
    _require_h5netcdf("write")
    # InferenceData.to_netcdf (0.23) and DataTree.to_netcdf (1.x) take the same call
    idata.to_netcdf(str(path), engine="h5netcdf")


def from_netcdf(path):
    """Read a file written by :func:`to_netcdf`, loaded into memory (the file is closed
    on return): an ``arviz.InferenceData`` (0.23) or ``xarray.DataTree`` (1.x)."""
    _require_h5netcdf("read")
    if _v1():
        import xarray as xr

        tree = xr.open_datatree(str(path), engine="h5netcdf")
        try:
            return tree.load()
        finally:
            tree.close()
    az = _az()
    with az.rc_context({"data.load": "eager"}):  # 0.23 reads lazily by default
        return az.from_netcdf(str(path), engine="h5netcdf")


def group_sizes(idata, name: str) -> dict[str, int]:
    """The dim sizes of one group, e.g. ``{"chain": 4, "draw": 500, "component": 3, ...}``;
    ``{}`` when ``idata`` has no such group."""
    if name not in idata:
        return {}
    return {str(k): int(v) for k, v in _group(idata, name).sizes.items()}


# ---- helpers ---------------------------------------------------------------------------

def _check_kwargs(func: str, kwargs: dict, allowed: tuple[str, ...]):
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        names = ", ".join(allowed) if allowed else "none"
        raise TypeError(f"{func}() got unsupported keyword argument(s) {unknown}; it accepts "
                        f"{names} (the same on ArviZ 0.23 and 1.x). For other ArviZ options "
                        f"call arviz.{func} on the fit's idata_ directly.")


def _arviz_loo(idata, name=None, **kwargs):
    """``arviz.loo`` with pointwise results (0.23: a pandas Series; 1.x: ``ELPDDataLOO``)."""
    _log_likelihood(idata, kwargs.get("var_name"), name=name)  # a clear error if missing
    return _az().loo(idata, pointwise=True, **kwargs)


def _elpd_of(result) -> ELPD:
    if _v1():
        p, elpd_i = result.p, result.elpd_i
    else:  # 0.23's names
        p, elpd_i = result.p_loo, result.loo_i
    elpd_i = _pointwise(elpd_i)
    return ELPD(kind="loo", elpd=float(elpd_i.sum()), se=_se(elpd_i), p=float(p),
                elpd_i=elpd_i, pareto_k=_pointwise(result.pareto_k),
                good_k=float(result.good_k), warning=bool(result.warning),
                n_samples=int(result.n_samples), n_data_points=int(result.n_data_points))


def _se(elpd_i: np.ndarray) -> float:
    """Standard error of Σ elpd_i: sqrt(N · var(elpd_i, ddof=1))."""
    return float(np.sqrt(elpd_i.size * np.var(elpd_i, ddof=1))) if elpd_i.size > 1 else 0.0


def _group(idata, name: str):
    """One group as an ``xarray.Dataset`` (0.23: an attribute; 1.x: a DataTree node)."""
    if name not in idata:
        raise ValueError(f"the ArviZ data has no {name!r} group")
    group = idata[name]
    return group.to_dataset() if hasattr(group, "to_dataset") else group


def _log_likelihood(idata, var_name=None, name=None) -> np.ndarray:
    """The pointwise log-likelihood as a float64 (C·S, N) array."""
    where = "" if name is None else f" of {name!r}"
    if "log_likelihood" not in idata:
        raise ValueError(f"the ArviZ data{where} has no log_likelihood group, which LOO, WAIC "
                         "and compare need; use the fit's idata_ (idata_raw_ has none) or "
                         "to_inference_data(..., log_likelihood=True)")
    group = _group(idata, "log_likelihood")
    if var_name is None:
        if len(group.data_vars) != 1:
            raise ValueError(f"the log_likelihood group{where} has variables "
                             f"{sorted(group.data_vars)}; pass var_name=")
        var_name = next(iter(group.data_vars))
    da = group[var_name].transpose("chain", "draw", ...)
    if da.sizes["chain"] * da.sizes["draw"] < 2:
        raise ValueError(f"LOO, WAIC and compare need posterior draws, but the ArviZ "
                         f"data{where} holds a single draw (a MAP or EM point estimate): "
                         "fit with method='nuts' or method='svi', or compare point "
                         "estimates with bic()/aic()")
    return np.asarray(da.values, dtype=np.float64).reshape(da.sizes["chain"] * da.sizes["draw"],
                                                           -1)


def _pointwise(values) -> np.ndarray:
    return np.asarray(getattr(values, "values", values), dtype=np.float64).ravel()


def _chain_draw(x, func: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{func} takes one quantity's (chain, draw) array, got shape {x.shape}")
    return x


def _ends_with(columns, renames: dict) -> dict:
    return {c: new for c in columns for end, new in renames.items() if c.endswith(end)}


def _require_h5netcdf(action: str) -> None:
    if importlib.util.find_spec("h5netcdf") is None:
        raise ImportError(f"bayesgmm needs h5netcdf to {action} the ArviZ data as netCDF "
                          "(idata.nc); install it: pip install h5netcdf")


def _figure(plot_collection):
    """The matplotlib Figure of an arviz-plots ``PlotCollection``."""
    figure = plot_collection.viz["figure"]
    return figure.item() if hasattr(figure, "item") else figure
