"""The bootstrap of a fitted mixture: standard errors and intervals of its parameters,
and the sequential likelihood-ratio test for the number of components.

Glossary: N samples, D features, K components, B bootstrap replicates.

Three resampling schemes, as mclust's ``MclustBootstrap`` (Fraley & Raftery; O'Hagan et
al. 2019) offers them:

``"nonparametric"``
    Rows drawn with replacement: multinomial counts used as sample weights.
``"weighted"``
    The weighted likelihood bootstrap (Newton & Raftery 1994): weights N · Dirichlet(1),
    a smooth version of the same.
``"parametric"``
    N new rows drawn from the fitted mixture.

Every replicate refits EM *starting from the fitted parameters* (as mclust does), so the
components keep their labels and no relabeling is needed; all B refits are one
``jax.vmap`` of the compiled EM, run in batches of ``batch_size`` replicates. A refit
runs the model's own EM (:func:`_em_settings`): its ``tol``, ``reg_covar``,
``max_iter``, ``kernel``, ``chunk_size``, ``equal_weights`` and ``prior`` (MAP-EM; a
``"default"`` prior is the one the fit used, mclust's ``defaultPrior`` of X).

:func:`bootstrap_lrt` is mclust's ``mclustBootstrapLRT`` (McLachlan 1987): for K = 1, 2,
... it compares the fits with K and K + 1 components by the likelihood-ratio statistic
and its parametric-bootstrap null distribution, and stops at the first K that is not
rejected.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bayesgmm.params import GMMParams
from bayesgmm.progress import bar
from bayesgmm.validation import (
    check_array_2d,
    check_feature_names,
    check_is_fitted,
    check_positive_int,
    compute_scope,
)

__all__ = ["KINDS", "BootstrapResult", "LRTResult", "bootstrap", "bootstrap_lrt"]

KINDS = ("nonparametric", "weighted", "parametric")


class BootstrapResult(NamedTuple):
    """The refitted parameters of B bootstrap replicates."""

    kind: str
    weights: np.ndarray  # (B, K)
    means: np.ndarray  # (B, K, D)
    covariances: np.ndarray  # (B, K, D, D): every covariance type as full matrices
    lower_bound: np.ndarray  # (B,) mean log-likelihood per (weighted) row
    converged: np.ndarray  # (B,) bool

    def standard_errors(self) -> dict[str, np.ndarray]:
        """Bootstrap standard errors: ``{"weights": (K,), "means": (K, D),
        "covariances": (K, D, D)}``."""
        return {name: np.std(getattr(self, name), axis=0, ddof=1)
                for name in ("weights", "means", "covariances")}

    def intervals(self, level: float = 0.95) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Percentile intervals: ``{name: (lower, upper)}`` with the shapes of
        :meth:`standard_errors`."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        q = [(1 - level) / 2, (1 + level) / 2]
        return {name: tuple(np.quantile(getattr(self, name), q, axis=0))
                for name in ("weights", "means", "covariances")}


class LRTResult(NamedTuple):
    """The sequential bootstrap likelihood-ratio test, one row per K tested (K vs K+1)."""

    n_components: np.ndarray  # (G,) K of the null model
    statistic: np.ndarray  # (G,) 2 (log L_{K+1} - log L_K), total log-likelihoods
    p_value: np.ndarray  # (G,) (1 + #{boot >= statistic}) / (1 + B)
    boot: np.ndarray  # (G, B) the statistic under the K-component null
    chosen: int  # the first K not rejected at ``level`` (or the last K tested + 1)

    def __repr__(self) -> str:
        lines = ["   K vs K+1   LRTS   p-value"]
        lines += [f"{k:4d} vs {k + 1:<4d} {s:8.2f} {p:8.4f}" for k, s, p in
                  zip(self.n_components, self.statistic, self.p_value)]
        return "\n".join(lines + [f"chosen: K = {self.chosen}"])


def _rng(random_state) -> np.random.Generator:
    """``np.random.default_rng(random_state)``, with a one-line error naming what it
    takes (NumPy's own: a SeedSequence TypeError)."""
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise TypeError(f"random_state must be None, an int >= 0 or a numpy Generator; got "
                        f"{random_state!r}") from None


def bootstrap(model, X, n_boot: int = 999, *, kind: str = "nonparametric",
              random_state=None, batch_size: int = 128, progress: bool = False
              ) -> BootstrapResult:
    """Bootstrap a fitted :class:`bayesgmm.GaussianMixture`.

    Parameters
    ----------
    model : GaussianMixture
        Fitted on ``X``; every replicate is refitted with its settings (module
        docstring). A :class:`bayesgmm.BayesianGaussianMixture` or
        :class:`bayesgmm.RobustMixture` is refused (``TypeError``).
    X : array-like of shape (N, D)
        The data the model was fitted on, without NaN: the refits are complete-data
        EM, also for a model fitted with ``missing="marginalize"``.
    n_boot : int
        Replicates B.
    kind : {"nonparametric", "weighted", "parametric"}
        See the module docstring.
    random_state : None, int or numpy Generator
    batch_size : int
        Replicates refitted at once (memory: about batch_size x N x K values).
    progress : bool
        A tqdm bar on stderr, one tick per refitted replicate.

    Returns
    -------
    BootstrapResult
    """
    _check_model(model)
    check_is_fitted(model)
    kind = _check_kind(kind)
    check_positive_int(n_boot, "n_boot")
    check_positive_int(batch_size, "batch_size")
    check_feature_names(X, getattr(model, "feature_names_in_", None), "the model")
    X = _check_complete(check_array_2d(X, min_samples=2, missing="marginalize"))
    if X.shape[1] != model.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but the model was fitted on "
                         f"{model.n_features_in_}; pass the data it was fitted on.")
    rng = _rng(random_state)
    start = model.params_.to_numpy(X.dtype)
    settings = _em_settings(model, X)
    fits = []
    with bar(n_boot, f"bootstrap ({kind})", progress, unit="refit") as shown:
        for b in range(0, n_boot, batch_size):
            size = min(batch_size, n_boot - b)
            fits.append(_refit(start, *_resample(kind, rng, X, start, size), settings))
            shown.update(size)
    params = GMMParams(*(np.concatenate([f[0][i] for f in fits]) for i in range(3)),
                       covariance_type=start.covariance_type)
    return BootstrapResult(kind, params.weights, params.means,
                           np.asarray(params.full_covariances),
                           np.concatenate([f[1] for f in fits]),
                           np.concatenate([f[2] for f in fits]))


def bootstrap_lrt(X, max_components: int = 5, *, covariance_type: str = "full",
                  n_boot: int = 99, level: float = 0.05, random_state=None,
                  progress: bool = False, **gaussian_mixture_kwargs) -> LRTResult:
    """Sequential bootstrap likelihood-ratio test for the number of components.

    For K = 1, 2, ... up to ``max_components - 1``: fit K and K + 1 components, compute
    LRTS = 2 (log L_{K+1} - log L_K); simulate ``n_boot`` data sets from the K fit,
    refit both models on each (the K model from the K fit; the K + 1 model from the
    K + 1 fit and from the K fit with its largest component split in two along its
    major axis, keeping the better) and take the p-value of LRTS among the replicates.
    Stops at the first K whose p-value exceeds ``level``. ``progress``: a tqdm bar on
    stderr, one tick per K tested. The smallest p-value B replicates give is
    1 / (B + 1), so ``n_boot`` below ``1 / level - 1`` (19 at ``level=0.05``) could
    never reject and is refused; mclust's default is 999.

    ``gaussian_mixture_kwargs`` go to every :class:`bayesgmm.GaussianMixture` fit of the
    data (``n_init``, ``random_state`` ...).
    """
    from bayesgmm.estimators import GaussianMixture

    X = check_array_2d(X, min_samples=2)
    check_positive_int(max_components, "max_components")
    if max_components < 2:
        raise ValueError(f"max_components must be at least 2 (K = 1 against K = 2), got "
                         f"{max_components}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    _check_reachable(check_positive_int(n_boot, "n_boot", minimum=0), level)
    rng = _rng(random_state)
    N = X.shape[0]
    fit = lambda k: GaussianMixture(k, covariance_type=covariance_type,
                                    **gaussian_mixture_kwargs).fit(X)
    rows, small = [], fit(1)
    with bar(max_components - 1, "bootstrap LRT", progress, unit="K") as shown:
        for k in range(1, max_components):
            big = fit(k + 1)
            stat = 2 * N * (big.lower_bound_ - small.lower_bound_)
            boot = _lrt_null(small, big, X, n_boot, rng)
            rows.append((k, stat, (1 + np.sum(boot >= stat)) / (1 + n_boot), boot))
            shown.update()
            if rows[-1][2] > level:
                break
            small = big
    chosen = rows[-1][0] if rows[-1][2] > level else rows[-1][0] + 1
    return LRTResult(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                     np.array([r[2] for r in rows]), np.stack([r[3] for r in rows]),
                     int(chosen))


# ---- helpers ----------------------------------------------------------------------------


def _check_model(model) -> None:
    """A ``TypeError`` unless ``model`` is a :class:`bayesgmm.GaussianMixture`, naming
    what to use for the other estimators."""
    from bayesgmm.estimators import GaussianMixture

    if isinstance(model, GaussianMixture):
        return
    name = type(model).__name__
    instead = {
        "BayesianGaussianMixture": "its posterior draws already give the parameters' "
        "uncertainty: use fit.summary() or fit.idata_.posterior",
        "RobustMixture": "the bootstrap refits Gaussian EM, which has no noise or t "
        "components: bootstrap a GaussianMixture of the same data",
    }.get(name, "fit one first: GaussianMixture(n_components).fit(X)")
    raise TypeError(f"bootstrap takes a fitted GaussianMixture, got a {name}; {instead}")


def _check_complete(X: np.ndarray) -> np.ndarray:
    """``X`` if it has no NaN, else a ``ValueError``: the refits are complete-data EM."""
    bad = np.argwhere(np.isnan(X))
    if bad.size:
        raise ValueError(
            f"X contains NaN (first at row {bad[0][0]}, column {bad[0][1]}), and the "
            "bootstrap's refits do not marginalise missing values (whatever the model's "
            "missing); bootstrap the complete rows, X[~np.isnan(X).any(axis=1)], or "
            "model.impute(X)")
    return X


def _check_reachable(n_boot: int, level: float) -> None:
    """A ``ValueError`` when ``n_boot`` replicates cannot give a p-value <= ``level``:
    the smallest is 1 / (n_boot + 1). The message names the smallest n_boot that can."""
    if 1 / (n_boot + 1) <= level:
        return
    least = max(math.ceil(1 / level) - 1, 0)
    while 1 / (least + 1) > level:  # round-off of 1 / level
        least += 1
    raise ValueError(
        f"n_boot={n_boot} cannot reach level={level}: the smallest p-value of n_boot "
        f"replicates is 1 / (n_boot + 1) = {1 / (n_boot + 1):.3g}, so no K would be "
        f"rejected; pass n_boot >= {least} (99 or more for a stable p-value)")


def _em_settings(model, X: np.ndarray) -> dict:
    """The EM settings of ``model``'s fit that every refit keeps (for
    :func:`bayesgmm.engines.jax.fit_resamples`): ``prior="default"`` resolved on ``X``,
    as the fit resolved it; ``stop_collapsed``: a refit stops where it collapses, as
    the fit would."""
    from bayesgmm.fitting import FitOptions, resolve_prior

    options = FitOptions.from_mapping(model.get_params())
    return dict(tol=options.tol, reg_covar=options.reg_covar, max_iter=int(options.max_iter),
                chunk_size=options.chunk_size, kernel=options.kernel,
                prior=resolve_prior(options, X), equal_weights=bool(options.equal_weights),
                stop_collapsed=bool(options.stop_collapsed))


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind


def _resample(kind: str, rng: np.random.Generator, X: np.ndarray, params: GMMParams, B: int):
    """``(X (N, D) or (B, N, D), weights (B, N))`` of B replicates."""
    N = X.shape[0]
    if kind == "nonparametric":
        return X, rng.multinomial(N, np.full(N, 1 / N), size=B).astype(X.dtype)
    if kind == "weighted":
        return X, (N * rng.dirichlet(np.ones(N), size=B)).astype(X.dtype)
    return _simulate(rng, params, N, B, X.dtype), np.ones((B, N), X.dtype)


def _simulate(rng: np.random.Generator, params: GMMParams, N: int, B: int, dtype):
    """(B, N, D) rows drawn from ``params`` with NumPy."""
    p = params.to_numpy(np.float64)
    chol = np.linalg.cholesky(np.asarray(p.full_covariances))
    z = rng.choice(p.n_components, size=(B, N), p=p.weights / p.weights.sum())
    noise = np.einsum("bnij,bnj->bni", chol[z], rng.standard_normal((B, N, p.n_features)))
    return (p.means[z] + noise).astype(dtype)


def _refit(start: GMMParams, X, W, settings: dict):
    """EM from ``start`` on every replicate, with a fit's ``settings``
    (:func:`_em_settings`): ((weights, means, factor), lower bound, converged) as
    NumPy, leading dim B."""
    from bayesgmm.engines import jax as em

    with compute_scope(X.dtype):
        params, info = em.fit_resamples(X, start, W, **settings)
        return ((np.asarray(params.weights), np.asarray(params.means),
                 np.asarray(params.cov_factor)),
                np.asarray(info.lower_bound), np.asarray(info.converged))


def _lrt_null(small, big, X: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(B,) LRTS on data simulated from ``small`` (K components), each model refitted
    with its own settings (:func:`_em_settings` of X)."""
    (N, _), dtype = X.shape, X.dtype
    p0 = small.params_.to_numpy(dtype)
    Xb = _simulate(rng, p0, N, n_boot, dtype)
    W = np.ones((n_boot, N), dtype)
    lb_small = _refit(p0, Xb, W, _em_settings(small, X))[1]
    starts = (big.params_.to_numpy(dtype), _split_largest(p0))
    lb_big = np.max([_refit(s, Xb, W, _em_settings(big, X))[1] for s in starts], axis=0)
    return 2 * N * (lb_big - lb_small)


def _split_largest(params: GMMParams) -> GMMParams:
    """K + 1 components: the heaviest of ``params`` split in two along its major axis,
    both halves keeping its covariance (a tied model's shared one is unchanged)."""
    from bayesgmm.covariance import ops

    p = params.to_numpy()
    table = ops(p.covariance_type, np)
    k = int(np.argmax(p.weights))
    vals, vecs = np.linalg.eigh(np.asarray(p.full_covariances)[k])
    step = np.sqrt(vals[-1]) * vecs[:, -1]
    weights = np.append(p.weights, p.weights[k] / 2)
    weights[k] /= 2
    means = np.vstack([p.means, p.means[k] + step])
    means[k] = p.means[k] - step
    factor, axis = p.cov_factor, table.component_axis
    if axis is not None:
        factor = np.concatenate([factor, np.take(factor, [k], axis=axis)], axis=axis)
    return GMMParams(weights, means, factor, covariance_type=p.covariance_type)
