"""Choosing the number of components: BIC, AIC, ICL and a sweep that tabulates them.

Glossary: N samples, D features, K components, B = ``params.batch_shape``.

All criteria are "lower is better", in scikit-learn's convention:
``bic = -2 log L + p log N``, ``aic = -2 log L + 2 p``, and ICL (Biernacki, Celeux &
Govaert 2000) ``icl = bic + 2 · Σ_n H(r_n)`` where ``H(r_n) = -Σ_k r_nk log r_nk`` is the
entropy of sample n's soft assignment: ICL penalises overlapping components that BIC
accepts, so it favours well-separated clusters. ``p = params.n_parameters``.

Two levels. :func:`bic`, :func:`aic`, :func:`icl` (and :func:`criteria_terms`,
:func:`log_likelihood`) are the functional core: JAX, jit-able, over batched
parameters. :func:`criteria` scores fitted parameter sets on NumPy data where the work
is cheapest (host or compiled, :func:`bayesgmm.fitting.score_plan`), and :func:`sweep`
fits every (covariance type, K) with :func:`bayesgmm.fitting.fit` and tabulates.

The kernels and :func:`criteria` live in :mod:`bayesgmm.fitting`, below the estimator,
so that :class:`bayesgmm.GaussianMixture` scores through them and :func:`sweep` can
return estimators without an import circle; they are re-exported here. Nothing here
imports JAX at import time.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np

from bayesgmm.covariance import CANONICAL
from bayesgmm.engines.choose import sweep_engine
from bayesgmm.estimators import GaussianMixture
from bayesgmm.fitting import (
    FitOptions,
    criteria,
    criteria_from_terms,
    criteria_terms,
    fit,
    fit_host_sweeps,
    log_likelihood,
    plan,
    shared_features,
    stopped_collapsed,
)
from bayesgmm.initialize import collapsed as collapsed_fit
from bayesgmm.params import take_components
from bayesgmm.progress import bar
from bayesgmm.validation import (
    DataScaleWarning,
    DegenerateComponentWarning,
    SingularFitWarning,
    check_array_2d,
    check_covariance_types,
    check_n_components_list,
    check_no_constant_feature,
    check_positive_int,
    check_random_state_key,
    check_reg_covar_scale,
    check_sample_weight,
    feature_names,
    warn_constant_combination,
    warn_few_values,
)

__all__ = ["univariate_types", "log_likelihood", "bic", "aic", "icl", "criteria_terms", "criteria_from_terms",
           "criteria", "sweep", "SweepResult", "RankedModel", "all_covariance_types"]

CRITERIA = ("bic", "aic", "icl")
# The sweep's own defaults where the caller gives none: a model search compares
# log-likelihoods across models by their criteria, so EM runs to about mclust's
# precision (a relative change of 1e-5 in log L) instead of scikit-learn's tol=1e-3 per
# sample, which stopped fits on plateaus: Old Faithful, tied K=3, stopped at log L
# -1140.5 with tol=1e-3 and reaches mclust's -1126.3 with 1e-5. A fit that collapses
# stops there (stop_collapsed), as mclust stops a singular one: its table row is flagged
# ``collapsed`` whenever it stops, and running it on to max_iter cost swiss (47 x 6)
# 2.3 s of a 2.4 s search, for VVE fits that collapsed by their 30th iteration.
SWEEP_DEFAULTS = {"tol": 1e-5, "max_iter": 1000, "stop_collapsed": True}


def _checked(params, X, sample_weight, owner: str):
    """``(X, sample_weight)`` checked as a fit's are (where concrete: under ``jit`` the
    arrays are traced and pass as they are), and ``params`` a :class:`GMMParams` of X's
    features; a clear error otherwise (a NaN row made NaN, a wrong width a broadcasting
    error deep inside JAX, a list an AttributeError)."""
    from bayesgmm.params import GMMParams

    if not isinstance(params, GMMParams):
        hint = (" (a fitted estimator: pass its params_)" if hasattr(params, "params_")
                else "")
        raise TypeError(f"{owner} takes a GMMParams, got {type(params).__name__}{hint}")
    import jax

    if isinstance(X, jax.core.Tracer):
        return X, sample_weight
    X = check_array_2d(X)
    if X.shape[1] != params.n_features:
        raise ValueError(f"X has {X.shape[1]} features, but the params hold "
                         f"{params.n_features}: score the data they were fitted to")
    if sample_weight is not None and not isinstance(sample_weight, jax.core.Tracer):
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return X, sample_weight


def bic(params, X, sample_weight=None):
    """Bayesian information criterion ``-2 log L + p log N``, shape (*B,). JAX."""
    import jax.numpy as jnp

    X, sample_weight = _checked(params, X, sample_weight, "bic")
    n = _n_obs(X, sample_weight)
    return -2 * log_likelihood(params, X, sample_weight) + params.n_parameters * jnp.log(n)


def aic(params, X, sample_weight=None):
    """Akaike information criterion ``-2 log L + 2 p``, shape (*B,). JAX."""
    X, sample_weight = _checked(params, X, sample_weight, "aic")
    return -2 * log_likelihood(params, X, sample_weight) + 2 * params.n_parameters


def icl(params, X, sample_weight=None):
    """Integrated completed likelihood ``bic + 2 Σ_n H(r_n)`` (entropy form), shape
    (*B,). JAX."""
    import jax.numpy as jnp

    X, sample_weight = _checked(params, X, sample_weight, "icl")
    log_lik, entropy = criteria_terms(params, X, sample_weight)
    n = _n_obs(X, sample_weight)
    return -2 * log_lik + params.n_parameters * jnp.log(n) + 2 * entropy


def _n_obs(X, sample_weight):
    import jax.numpy as jnp

    return X.shape[0] if sample_weight is None else jnp.sum(sample_weight)


class RankedModel(NamedTuple):
    """One (covariance type, K) of a sweep, ranked by a criterion (:meth:`SweepResult.top`)."""

    covariance_type: str
    n_components: int
    value: float  # the criterion (lower is better)
    delta: float  # value minus the best row's value (>= 0; 0 for the best)


class SweepResult(dict):
    """A small table (dict of equal-length NumPy arrays) from :func:`sweep`.

    Keys: ``n_components, covariance_type`` (mclust's model name, :data:`bayesgmm.covariance.CANONICAL`:
    a sweep over ``"tied"`` lists ``EEE``), ``bic, aic, icl, log_likelihood,
    n_parameters, lower_bound, n_iter, converged, collapsed, best``; ``best`` marks the
    row minimising ``criterion`` among the fits that did not collapse (``collapsed``: a
    component holds fewer rows than its covariance needs,
    :func:`bayesgmm.initialize.min_component_rows`, and its covariance is ``reg_covar``'s,
    so only ``reg_covar`` bounds its likelihood (:func:`bayesgmm.initialize.collapsed`);
    mclust reports such fits as singular and leaves them out). ``models``
    (attribute) holds the fitted estimators, row by row. All criteria are scikit-learn's, lower is better (mclust's BIC is minus
    this one).

    :meth:`top` ranks the (covariance type, K) by a criterion with their differences
    from the best (Kass & Raftery's scale for BIC differences: 2-6 positive, 6-10
    strong, above 10 very strong evidence); :attr:`bic_choice` and :attr:`icl_choice`
    give each criterion's pick, which differ where BIC accepts overlapping components
    that ICL's entropy term rejects. The ``repr`` shows the criterion as a K x
    covariance type table (mclust's ``summary(mclustBIC)`` layout), the choices and
    the top three.
    """

    criterion: str = "bic"
    models: list

    @property
    def best_index(self) -> int:
        return int(np.flatnonzero(self["best"])[0])

    @property
    def best(self) -> dict:
        """The chosen row as a record, with its fitted ``model``."""
        i = self.best_index
        row = {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in self.items()}
        row["model"] = self.models[i]
        return row

    def top(self, n: int = 3, criterion: str | None = None) -> list[RankedModel]:
        """The ``n`` best (covariance type, K) by ``criterion`` (default: the sweep's),
        best first, each with its difference from the best. Rows whose criterion is
        NaN are left out, and so are collapsed fits unless every fit collapsed. ``n``:
        an int >= 1."""
        n = check_positive_int(n, "n")
        criterion = _check_criterion(criterion or self.criterion)
        values = np.asarray(self[criterion], np.float64)
        collapsed = np.asarray(self.get("collapsed", np.zeros(len(values), bool)), bool)
        if not collapsed.all():
            values = np.where(collapsed, np.nan, values)
        order = [i for i in np.argsort(values, kind="stable") if np.isfinite(values[i])]
        if not order:
            return []
        best = values[order[0]]
        return [RankedModel(str(self["covariance_type"][i]), int(self["n_components"][i]),
                            float(values[i]), float(values[i] - best)) for i in order[:n]]

    @property
    def bic_choice(self) -> RankedModel:
        """The (covariance type, K) with the lowest BIC."""
        return self.top(1, "bic")[0]

    @property
    def icl_choice(self) -> RankedModel:
        """The (covariance type, K) with the lowest ICL."""
        return self.top(1, "icl")[0]

    def __repr__(self) -> str:
        crit = self.criterion
        types = list(dict.fromkeys(str(t) for t in self["covariance_type"]))
        ks = sorted({int(k) for k in self["n_components"]})
        cell = {(str(t), int(k)): v for t, k, v in zip(self["covariance_type"],
                                                       self["n_components"], self[crit])}
        b = self.best_index
        best = (str(self["covariance_type"][b]), int(self["n_components"][b]))
        width = max(12, *(len(t) + 2 for t in types))
        title = (f"SweepResult: {len(self[crit])} fits, {len(types)} covariance type(s) x "
                 f"K = {_ranges(ks)}; {crit.upper()} (lower is better), * = best")
        lines = [title, f"{'K':>3}" + "".join(f"{t:>{width}}" for t in types)]
        for k in ks:
            row = f"{k:>3}"
            for t in types:
                v = cell.get((t, k))
                text = "" if v is None else ("nan" if not np.isfinite(v) else f"{v:.2f}")
                row += f"{text + ('*' if (t, k) == best else ' '):>{width}}"
            lines.append(row)
        bic, icl = self.bic_choice, self.icl_choice
        lines.append(f"{crit.upper()} choice: {best[0]}, K={best[1]}  <- best")
        if crit != "bic":
            lines.append(f"BIC choice: {bic.covariance_type}, K={bic.n_components}")
        if crit != "icl":
            lines.append(f"ICL choice: {icl.covariance_type}, K={icl.n_components}")
        lines.append(f"top three by {crit.upper()}: " + "; ".join(
            f"{m.covariance_type}, K={m.n_components} (Δ {m.delta:.2f})"
            for m in self.top(3)))
        return "\n".join(lines)


def all_covariance_types() -> tuple[str, ...]:
    """Every covariance model of :data:`bayesgmm.covariance.TABLE`, once each, by
    mclust's name and in mclust's order (:data:`bayesgmm.covariance.MCLUST_MODELS`:
    EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV).
    scikit-learn's names (full = VVV, tied = EEE, diag = VVI, spherical = VII) are
    aliases of four of them: accepted as input everywhere, not listed here."""
    from bayesgmm.covariance import MCLUST_MODELS

    return MCLUST_MODELS


def univariate_types(covariance_types: Sequence[str]) -> tuple[str, ...]:
    """``covariance_types`` on one feature, each model once: the first name given of
    each of mclust's two univariate models (equal variance, E: the E·· models and
    ``tied``; variable, V: the V·· models, ``full``, ``diag`` and ``spherical``;
    :func:`bayesgmm.covariance.univariate_model`). mclust fits only these two on
    univariate data; a search over the 14 would list each of its two fits seven times
    under other names."""
    from bayesgmm.covariance import univariate_model

    seen: dict[str, str] = {}
    for ct in covariance_types:
        seen.setdefault(univariate_model(ct), ct)
    return tuple(seen.values())


def _ranges(ks: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1..3, 5"``."""
    parts, start = [], ks[0]
    for a, b in zip(ks, ks[1:] + [None]):
        if b != a + 1:
            parts.append(str(start) if start == a else f"{start}..{a}")
            start = b
    return ", ".join(parts)


def _check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'bic', 'aic' or 'icl', got {criterion!r}")
    return criterion


def sweep(
    X,
    n_components: Sequence[int] = range(1, 21),
    covariance_types: Sequence[str] | str = ("full",),
    *,
    criterion: str = "bic",
    progress: bool | None = None,
    **gaussian_mixture_kwargs,
) -> SweepResult:
    """Fit a Gaussian mixture for each (covariance type, K) and tabulate the criteria.

    Where a search is small enough for the host
    (:func:`bayesgmm.engines.choose.sweep_engine`: N·K·F up to
    :data:`~bayesgmm.engines.choose.HOST_SWEEP_WORK`, K the largest) and
    ``engine="auto"``, every fit of a covariance type, every K and start, runs in one
    host EM batch, and every covariance type's batches in one lockstep loop
    (:func:`bayesgmm.fitting.fit_host_sweeps`, equal to one fit at a time). Otherwise
    every fit is :func:`bayesgmm.fitting.fit`; on the compiled path each K is padded to
    the largest (zero-weight components are exactly inactive, so results equal
    unpadded fits), so one program serves every K of a covariance type, and the
    moments kernel's feature table of X is made once for all of them. The criteria of
    every K come from one batched pass (:func:`criteria`). With the default
    ``init_params="auto"`` every fit also starts from the hierarchical tree
    (:func:`bayesgmm.initialize.hc_tree`), grown once for the whole sweep, so the
    starts of successive K are nested, as mclust's are.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : sequence of int
        Default 1..20, as in the scikit-learn tutorial this library reproduces. Each
        K >= 1, once (one K is ``[3]``).
    covariance_types : sequence of str, or "all"
        Any names :class:`bayesgmm.GaussianMixture` accepts, each model once (``"full"``
        and ``"VVV"`` are one model); ``"all"``: every model in
        :data:`bayesgmm.covariance.TABLE` (:func:`all_covariance_types`).
    criterion : {"bic", "aic", "icl"}
        The column whose minimum is marked ``best``.
    progress : bool, optional
        A tqdm bar on stderr with one tick per fitted (covariance type, K)
        (:func:`bayesgmm.progress.bar`). ``None`` (default): on when ``verbose > 0`` is
        among the keyword arguments, else off.
    **gaussian_mixture_kwargs
        :class:`bayesgmm.GaussianMixture`'s arguments for every fit (``random_state``,
        ``n_init``, ``init_params`` ...); the models in the result carry them. Where not
        given, ``tol=1e-5``, ``max_iter=1000`` and ``stop_collapsed=True``
        (:data:`SWEEP_DEFAULTS`): criteria compare log-likelihoods, so EM runs near
        convergence, but not on fits that collapsed (mclust's singular ones, which the
        ``collapsed`` column marks). With
        ``missing="marginalize"`` and NaN in X, each (covariance type, K) is one
        missing-data fit (:mod:`bayesgmm.missing`), scored on the observed coordinates.
        ``covariance_type`` is refused: the search's types are ``covariance_types``.
        On one feature (D = 1) each of mclust's two univariate models (equal and
        variable variance) is fitted once, under the first name given for it
        (:func:`univariate_types`): ``"all"`` is EII and VII.

    Returns
    -------
    SweepResult
        Its ``repr`` is the table, the BIC and ICL choices and the top three;
        :meth:`SweepResult.top` ranks the models.
    """
    _check_criterion(criterion)
    if "covariance_type" in gaussian_mixture_kwargs:  # else silently the default, full
        raise TypeError(f"sweep takes covariance_types (a sequence of names, or 'all'), not "
                        f"covariance_type: pass covariance_types="
                        f"[{gaussian_mixture_kwargs['covariance_type']!r}]")
    settings = GaussianMixture(**{**SWEEP_DEFAULTS, **gaussian_mixture_kwargs}).get_params()
    if isinstance(covariance_types, str):
        covariance_types = (all_covariance_types() if covariance_types == "all"
                            else (covariance_types,))
    if covariance_types is None:
        check_covariance_types(None, "sweep")  # its TypeError names the fix
    covariance_types = tuple(covariance_types)
    if not covariance_types or (hasattr(n_components, "__len__") and not len(n_components)):
        raise ValueError(
            f"sweep needs at least one number of components and one covariance type; "
            f"got n_components={n_components!r} and covariance_types="
            f"{list(covariance_types)} (e.g. n_components=range(1, 10), covariance_types='all')")
    ks = check_n_components_list(n_components, "sweep")
    covariance_types = check_covariance_types(covariance_types, "sweep")
    names = feature_names(X)
    X = check_array_2d(X, min_samples=2, missing=settings["missing"], marginalize_in="sweep")
    check_no_constant_feature(X, "sweep", names)  # its choice would move with the column
    warn_constant_combination(X, names, settings["reg_covar"])
    warn_few_values(X, max(ks), names)
    check_reg_covar_scale(X, settings["reg_covar"])  # once here; the fits are silenced
    if X.shape[1] == 1:  # one feature: the 14 models are mclust's two, E and V
        covariance_types = univariate_types(covariance_types)
    if np.isnan(X).any():  # missing="marginalize" (else refused above)
        return _sweep_missing(X, ks, covariance_types, criterion, settings,
                              _bar_on(progress, settings), names)
    rows, models = [], []
    shown = bar(len(ks) * len(covariance_types), "sweep", _bar_on(progress, settings),
                unit="fit")
    centers_cache = {}  # k-means centres per K, shared by every covariance type
    # one draw of the random state for the whole search (None, a RandomState or a
    # Generator would give each covariance type other k-means starts, and the cache
    # above would never hit); the models keep the random_state they were given
    seed = int(check_random_state_key(settings["random_state"])[1])
    all_options = []
    for ct in covariance_types:
        options = FitOptions.from_mapping(settings).replace(
            covariance_type=ct, random_state=seed)  # (ct checked above)
        # a search is many fits: its own host threshold (engines.choose.sweep_engine)
        all_options.append(options.replace(engine=sweep_engine(
            options.engine, X.shape[0], max(ks), X.shape[1], ct)))
    # small data: every model, K and start in one host EM loop (the same fits)
    batched = _fit_host(X, all_options, ks, centers_cache)
    for ct, options, done in zip(covariance_types, all_options, batched):
        if done is not None:
            fitted = [(params, info, k) for k, (params, info) in zip(ks, done)]
            shown.update(len(ks))
        else:
            fitted = _fit_each(X, options, ks, centers_cache, shown)
        scores = criteria([p for p, _, _ in fitted], X, engine=options.engine,
                          fitted_padded=[n for _, _, n in fitted],
                          equal_weights=options.equal_weights)
        for k, (params, info, n_padded), crit in zip(ks, fitted, scores):
            gm = GaussianMixture.from_params(params, info=info, n_padded=n_padded,
                                             **{**settings, "n_components": k,
                                                "covariance_type": ct})
            gm.engine_ = plan(options.replace(n_components=k), *X.shape).engine
            if names is not None:  # as a fit of the table would set it
                gm.feature_names_in_ = names
            rows.append(_row(gm, crit, X.shape[0],
                             collapsed_fit(params, info.nk[:k], options.reg_covar)
                             or stopped_collapsed(info.converged, info.n_iter, options)))
            models.append(gm)
    shown.close()
    return _table(rows, models, criterion)


def _sweep_missing(X, ks: list[int], covariance_types, criterion: str, settings: dict,
                   progress: bool, names=None) -> SweepResult:
    """:func:`sweep` of data with missing values: each (covariance type, K) one
    ``GaussianMixture(missing="marginalize")`` fit, its criteria on the observed
    coordinates; ``names``: the models' ``feature_names_in_`` (X's columns)."""
    N = np.shape(X)[0]
    rows, models = [], []
    with bar(len(ks) * len(covariance_types), "sweep", progress, unit="fit") as shown, \
            warnings.catch_warnings():
        _silence()
        for ct in covariance_types:
            for k in ks:
                gm = GaussianMixture(**{**settings, "n_components": k,
                                        "covariance_type": ct}).fit(X)
                crit = {c: float(getattr(gm, c)(X)) for c in ("bic", "aic", "icl")}
                if names is not None:
                    gm.feature_names_in_ = names
                stopped = stopped_collapsed(gm.converged_, gm.n_iter_,
                                            FitOptions.from_mapping(gm.get_params()))
                rows.append(_row(gm, crit, N, stopped or collapsed_fit(
                    gm.params_, gm.weights_ * N, gm.reg_covar)))
                models.append(gm)
                shown.update()
    return _table(rows, models, criterion)


def _row(gm: GaussianMixture, crit: dict, n_samples: int, collapsed: bool) -> tuple:
    """One fit's row of the table (:func:`_table`'s columns); the log-likelihood from
    the BIC."""
    n_par = gm.params_.n_parameters
    return (gm.n_components, CANONICAL[gm.covariance_type], crit["bic"], crit["aic"],
            crit["icl"], (n_par * np.log(n_samples) - crit["bic"]) / 2, n_par,
            gm.lower_bound_, gm.n_iter_, gm.converged_, collapsed)


def _bar_on(progress: bool | None, settings: dict) -> bool:
    """``progress``, or where it is ``None`` whether the fits are ``verbose``."""
    return bool(progress) if progress is not None else (settings.get("verbose") or 0) > 0


def _silence() -> None:
    """The warnings a search silences in its fits (inside ``warnings.catch_warnings``)."""
    # Large K routinely leaves components nearly empty; the table reports it.
    warnings.simplefilter("ignore", DegenerateComponentWarning)
    # a collapsed fit (stop_collapsed): the table's ``collapsed`` column reports it
    warnings.simplefilter("ignore", SingularFitWarning)
    warnings.simplefilter("ignore", DataScaleWarning)  # the search warned once itself
    # (by its message: naming the class would import scikit-learn for it)
    warnings.filterwarnings("ignore", "Best performing initialization did not")


def _fit_host(X, options_list: list[FitOptions], ks: list[int], centers_cache: dict
              ) -> list:
    """Per options, every K's fit in one host EM loop over all of them
    (:func:`bayesgmm.fitting.fit_host_sweeps`), or None where that does not apply."""
    with warnings.catch_warnings():
        _silence()
        return fit_host_sweeps(X, options_list, ks, centers_cache)


def _fit_each(X, options: FitOptions, ks: list[int], centers_cache: dict,
              shown=None) -> list[tuple]:
    """``(params (K components), info, K_pad)`` of one fit per K, each padded to the
    largest K and sharing one feature table of X. ``shown`` (a
    :func:`bayesgmm.progress.bar`) ticks once per fit."""
    with warnings.catch_warnings():
        _silence()
        n_padded = max(ks)
        shared = shared_features(X, options.replace(n_components=n_padded))
        out = []
        for k in ks:
            params, info = fit(X, options.replace(n_components=k), n_padded=n_padded,
                               shared=shared)
            out.append((take_components(params, k), info, params.n_components))
            if shown is not None:
                shown.update()
    return out


def _table(rows: list[tuple], models: list, criterion: str) -> SweepResult:
    names = ["n_components", "covariance_type", "bic", "aic", "icl", "log_likelihood",
             "n_parameters", "lower_bound", "n_iter", "converged", "collapsed"]
    result = SweepResult({n: np.array([r[i] for r in rows]) for i, n in enumerate(names)})
    best = np.zeros(len(rows), bool)
    values = np.where(result["collapsed"], np.nan, result[criterion])
    if np.all(np.isnan(values)):  # every fit collapsed: rank them anyway
        values = result[criterion]
    best[int(np.nanargmin(values))] = True
    result["best"] = best
    result.criterion = criterion
    result.models = models
    return result
