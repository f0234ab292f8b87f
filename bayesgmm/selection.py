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
from typing import Sequence

import numpy as np

from bayesgmm.estimators import GaussianMixture
from bayesgmm.fitting import (
    FitOptions,
    criteria,
    criteria_from_terms,
    criteria_terms,
    fit,
    log_likelihood,
    plan,
    shared_features,
)
from bayesgmm.params import take_components
from bayesgmm.progress import bar
from bayesgmm.validation import (
    DegenerateComponentWarning,
    check_array_2d,
    check_covariance_type,
)

__all__ = ["log_likelihood", "bic", "aic", "icl", "criteria_terms", "criteria_from_terms",
           "criteria", "sweep", "SweepResult"]

CRITERIA = ("bic", "aic", "icl")


def bic(params, X, sample_weight=None):
    """Bayesian information criterion ``-2 log L + p log N``, shape (*B,). JAX."""
    import jax.numpy as jnp

    n = _n_obs(X, sample_weight)
    return -2 * log_likelihood(params, X, sample_weight) + params.n_parameters * jnp.log(n)


def aic(params, X, sample_weight=None):
    """Akaike information criterion ``-2 log L + 2 p``, shape (*B,). JAX."""
    return -2 * log_likelihood(params, X, sample_weight) + 2 * params.n_parameters


def icl(params, X, sample_weight=None):
    """Integrated completed likelihood ``bic + 2 Σ_n H(r_n)`` (entropy form), shape
    (*B,). JAX."""
    import jax.numpy as jnp

    log_lik, entropy = criteria_terms(params, X, sample_weight)
    n = _n_obs(X, sample_weight)
    return -2 * log_lik + params.n_parameters * jnp.log(n) + 2 * entropy


def _n_obs(X, sample_weight):
    import jax.numpy as jnp

    return X.shape[0] if sample_weight is None else jnp.sum(sample_weight)


class SweepResult(dict):
    """A small table (dict of equal-length NumPy arrays) from :func:`sweep`.

    Keys: ``n_components, covariance_type, bic, aic, icl, lower_bound, n_iter,
    converged, best``; ``best`` marks the row minimising ``criterion``. ``models``
    (attribute) holds the fitted estimators, row by row.
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

    def __repr__(self) -> str:
        cols = ["n_components", "covariance_type", "bic", "aic", "icl", "converged"]
        lines = ["  ".join(f"{c:>15}" for c in cols)]
        for i in range(len(self["bic"])):
            mark = "  <- best" if self["best"][i] else ""
            vals = [self[c][i] for c in cols]
            lines.append("  ".join(
                f"{v:>15.2f}" if isinstance(v, float | np.floating) else f"{str(v):>15}"
                for v in vals) + mark)
        return "\n".join(lines)


def sweep(
    X,
    n_components: Sequence[int] = range(1, 21),
    covariance_types: Sequence[str] = ("full",),
    *,
    criterion: str = "bic",
    progress: bool | None = None,
    **gaussian_mixture_kwargs,
) -> SweepResult:
    """Fit a Gaussian mixture for each (covariance type, K) and tabulate the criteria.

    Every fit is :func:`bayesgmm.fitting.fit`; on the compiled path each K is padded to
    the largest (zero-weight components are exactly inactive, so results equal
    unpadded fits), so one program serves every K of a covariance type, and the
    moments kernel's feature table of X is made once for all of them. The criteria of
    every K come from one batched pass (:func:`criteria`).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : sequence of int
        Default 1..20, as in the scikit-learn tutorial this library reproduces.
    covariance_types : sequence of str
    criterion : {"bic", "aic", "icl"}
        The column whose minimum is marked ``best``.
    progress : bool, optional
        A tqdm bar on stderr with one tick per fitted (covariance type, K)
        (:func:`bayesgmm.progress.bar`). ``None`` (default): on when ``verbose > 0`` is
        among the keyword arguments, else off.
    **gaussian_mixture_kwargs
        :class:`bayesgmm.GaussianMixture`'s arguments for every fit (``random_state``,
        ``n_init``, ``tol`` ...); the models in the result carry them.

    Returns
    -------
    SweepResult
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'bic', 'aic' or 'icl', got {criterion!r}")
    settings = GaussianMixture(**gaussian_mixture_kwargs).get_params()  # unknown names raise
    ks = [int(k) for k in n_components]
    X = check_array_2d(X, min_samples=2)
    rows, models = [], []
    shown = bar(len(ks) * len(covariance_types), "sweep", _bar_on(progress, settings),
                unit="fit")
    for ct in covariance_types:
        options = FitOptions.from_mapping(settings).replace(
            covariance_type=check_covariance_type(ct))
        fitted = _fit_each(X, options, ks, shown)
        scores = criteria([p for p, _, _ in fitted], X, engine=options.engine,
                          fitted_padded=[n for _, _, n in fitted])
        for k, (params, info, n_padded), crit in zip(ks, fitted, scores):
            gm = GaussianMixture.from_params(params, info=info, n_padded=n_padded,
                                             **{**settings, "n_components": k,
                                                "covariance_type": ct})
            gm.engine_ = plan(options.replace(n_components=k), *X.shape).engine
            rows.append((k, ct, crit["bic"], crit["aic"], crit["icl"], gm.lower_bound_,
                         gm.n_iter_, gm.converged_))
            models.append(gm)
    shown.close()
    return _table(rows, models, criterion)


def _bar_on(progress: bool | None, settings: dict) -> bool:
    """``progress``, or where it is ``None`` whether the fits are ``verbose``."""
    return bool(progress) if progress is not None else (settings.get("verbose") or 0) > 0


def _fit_each(X, options: FitOptions, ks: list[int], shown=None) -> list[tuple]:
    """``(params (K components), info, K_pad)`` of one fit per K, every compiled one
    padded to the largest K and sharing one feature table of X; ``shown`` (a
    :func:`bayesgmm.progress.bar`) ticks once per fit."""
    n_padded = max(ks)
    shared = shared_features(X, options.replace(n_components=n_padded))
    out = []
    for k in ks:
        with warnings.catch_warnings():
            # Large K routinely leaves components nearly empty; the table reports it.
            warnings.simplefilter("ignore", DegenerateComponentWarning)
            # (by its message: naming the class would import scikit-learn for it)
            warnings.filterwarnings("ignore", "Best performing initialization did not")
            params, info = fit(X, options.replace(n_components=k), n_padded=n_padded,
                               shared=shared)
        out.append((take_components(params, k), info, params.n_components))
        if shown is not None:
            shown.update()
    return out


def _table(rows: list[tuple], models: list, criterion: str) -> SweepResult:
    names = ["n_components", "covariance_type", "bic", "aic", "icl", "lower_bound", "n_iter",
             "converged"]
    result = SweepResult({n: np.array([r[i] for r in rows]) for i, n in enumerate(names)})
    best = np.zeros(len(rows), bool)
    best[int(np.nanargmin(result[criterion]))] = True
    result["best"] = best
    result.criterion = criterion
    result.models = models
    return result
