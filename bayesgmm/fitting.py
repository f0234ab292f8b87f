"""One EM fit as one function, and the scoring of fitted parameters: where work runs.

Glossary: N samples, D features, K components, R restarts (``n_init``), K_pad the
padded number of components the compiled programs run at (see
:func:`bayesgmm.engines.choose.choose`).

:func:`fit` is the whole of an EM fit, in order::

    validate -> choose the engine -> pad -> seed / subsample -> restarts -> refine -> report

and returns ``(GMMParams, FitInfo)``. :class:`bayesgmm.GaussianMixture`,
:func:`bayesgmm.selection.sweep` and the command line all call it with one
:class:`FitOptions` (the estimator's settings as a frozen value), so there is one fit.

Scoring a fit (:func:`log_resp`, :func:`criteria`) makes the same choice for the rows
it scores (:func:`score_plan`): NumPy on the host for small work, else the compiled
kernels at the padded size the fit ran at, whose programs then already exist.

Design notes.

* Host first. Nothing here imports JAX at import time, and a fit that
  :func:`bayesgmm.engines.choose.choose` sends to the host engine
  (:mod:`bayesgmm.engines.numpy`) never loads it: random streams, subsamples,
  k-means++ seeds, Lloyd's iterations and EM all run in NumPy. The compiled path
  imports :mod:`bayesgmm.engines.jax` and the kernels where it runs.
* Random streams. One PRNG key per fit (``random_state``) seeds NumPy generators, one
  per purpose (:func:`bayesgmm.initialize.host_rng`): restart keys, the
  ``init_subsample`` rows, the seeding subsample and k-means++'s uniforms. Draws on
  the host compile nothing, and a padded fit draws what the unpadded one draws.
* Warm starts follow scikit-learn: one initialisation (the previous parameters), and
  the first iteration's change is measured from the previous fit's lower bound, so a
  sequence of ``max_iter=1`` fits converges (:func:`fit`, ``start_lower_bound``).
* ``max_iter=0`` returns the initial parameters unchanged (scikit-learn's way to read
  an initialisation): ``n_iter_ == 0``, ``lower_bound_ == -inf``, no warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from bayesgmm.covariance import PRIOR_FORMS, Prior, default_prior
from bayesgmm.engines import numpy as host
from bayesgmm.engines.choose import Choice, check_engine, choose
from bayesgmm.engines import FitInfo
from bayesgmm.initialize import (
    INIT_METHODS,
    cached_hc_tree,
    collapsed as collapsed_fit,
    hc_params,
    host_rng,
    host_seeding_uniforms,
    init_params_batch,
    kmeans_plusplus_host,
    lloyd_batch,
    params_from_centers,
    params_from_inits,
    seed_sample_size,
    subsample_rows,
)
from bayesgmm.params import GMMParams, pad_components, take_components
from bayesgmm.progress import em_report
from bayesgmm import validation
from bayesgmm.validation import (
    DegenerateComponentWarning,
    check_array_2d,
    check_covariance_type,
    check_means_init,
    check_n_features,
    check_n_samples,
    check_nonneg_float,
    check_positive_int,
    check_precisions_init,
    check_random_state_key,
    check_sample_weight,
    check_weights_init,
    compute_scope,
)

__all__ = ["FitOptions", "OnlineState", "fit", "fit_host_sweep", "fit_host_sweeps",
           "partial_fit", "plan", "resolve_prior", "unfitted_info", "shared_features",
           "score_plan", "log_resp", "criteria", "criteria_terms", "criteria_from_terms",
           "log_likelihood", "sample", "to_device"]

# Candidate fits whose lower bounds are this close (relative) are equal (_best_run).
_TIE_RTOL = 1e-10
_KERNELS = ("auto", "centred", "moments", "guarded")  # bayesgmm.suffstats.KERNELS (not imported: JAX)


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """The settings of one EM fit: :class:`bayesgmm.GaussianMixture`'s constructor
    arguments that shape a fit, as one frozen value (see the estimator for each).

    :meth:`from_mapping` builds one from ``estimator.get_params()`` or keyword
    arguments; :meth:`check` validates it (:func:`fit` calls it)."""

    n_components: int = 1
    covariance_type: str = "full"
    tol: float = 1e-3
    reg_covar: float = 1e-6
    max_iter: int = 100
    n_init: int = 1
    init_params: str = "auto"
    weights_init: Any = None  # (K,), scikit-learn's form
    means_init: Any = None  # (K, D)
    precisions_init: Any = None  # by covariance type, scikit-learn's layout
    random_state: Any = None  # None, int, RandomState or Generator
    verbose: int = 0  # bayesgmm.progress.EMReport: 1 starts/ends, 2 iterations with times
    verbose_interval: int = 10
    chunk_size: int | None = None
    restart_screen_iter: int | None = None
    init_subsample: int | None = None
    kernel: str = "auto"
    engine: str = "auto"
    # None, "default" (covariance.default_prior of the fitted X, K and type: mclust's
    # priorControl()) or a covariance.Prior: MAP-EM (see resolve_prior)
    prior: Any = None
    equal_weights: bool = False  # keep the weights at 1/K (mclust's equalPro)
    # stop EM where the fit has collapsed (engines.collapsed_members), as mclust stops a
    # singular fit; a model search's default (selection.SWEEP_DEFAULTS)
    stop_collapsed: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FitOptions:
        """The fields of ``values`` this class knows (others, such as ``warm_start``,
        are the caller's business)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def replace(self, **changes) -> FitOptions:
        return dataclasses.replace(self, **changes)

    def check(self) -> FitOptions:
        """``self`` if every setting is valid, else a ``ValueError`` naming it."""
        check_positive_int(self.n_components, "n_components")
        check_covariance_type(self.covariance_type)
        check_nonneg_float(self.tol, "tol")
        check_nonneg_float(self.reg_covar, "reg_covar")
        check_positive_int(self.max_iter, "max_iter", minimum=0)  # 0: the initialisation
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.verbose_interval, "verbose_interval")
        if not isinstance(self.verbose, bool | np.bool_):  # True/False: scikit-learn's too
            check_positive_int(self.verbose, "verbose", minimum=0)
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}; 'init_params' "
                f"should be one of {INIT_METHODS}")
        for name in ("chunk_size", "restart_screen_iter", "init_subsample"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if self.kernel not in _KERNELS:
            raise ValueError(f"Invalid value for 'kernel': {self.kernel!r}; 'kernel' should "
                             f"be in {_KERNELS}")
        check_engine(self.engine)
        _check_prior_option(self.prior)
        if not isinstance(self.equal_weights, bool | np.bool_):
            raise ValueError(f"Invalid value for 'equal_weights': {self.equal_weights!r}; "
                             "it should be True or False")
        if not isinstance(self.stop_collapsed, bool | np.bool_):
            raise ValueError(f"Invalid value for 'stop_collapsed': {self.stop_collapsed!r}; "
                             "it should be True or False")
        if self.init_subsample is not None and self.init_subsample < self.n_components:
            raise ValueError(
                f"init_subsample={self.init_subsample} rows cannot initialise "
                f"n_components={self.n_components} components; use at least "
                f"n_components rows (typically thousands).")
        return self


class OnlineState(NamedTuple):
    """Carried between :func:`partial_fit` calls (stepwise EM)."""

    stats: Any  # bayesgmm.suffstats.SuffStats: running normalised statistics, K components
    n_batches: int  # batches seen so far


# ---- the prior (MAP-EM) -------------------------------------------------------------------


def resolve_prior(options: FitOptions, X) -> Prior | None:
    """The :class:`bayesgmm.covariance.Prior` a fit of ``options`` on ``X (N, D)`` uses:
    ``None``; for ``"default"`` mclust's ``defaultPrior`` of X, K and the covariance
    type (:func:`bayesgmm.covariance.default_prior`: it depends on K, so each K of a
    sweep gets its own, with mclust's M-step for each model: ``form="mclust"``); a
    given ``Prior`` checked against X's D. Its arrays are
    float64 NumPy, its numbers Python floats.

    Raises
    ------
    ValueError
        For a prior that does not fit X: a mean not of shape (D,), a scale not
        symmetric positive definite of shape (D, D), ``dof <= D - 1`` or a negative
        ``shrinkage``.
    """
    prior = options.prior
    if prior is None:
        return None
    X = np.asarray(X)
    D = X.shape[1]
    if isinstance(prior, str):
        return default_prior(X, int(options.n_components), options.covariance_type)
    mean = np.asarray(prior.mean, np.float64)
    scale = np.asarray(prior.scale, np.float64)
    shrinkage, dof = float(prior.shrinkage), float(prior.dof)
    problems = []
    if mean.shape != (D,):
        problems.append(f"its mean has shape {mean.shape}, expected ({D},)")
    if scale.shape != (D, D):
        problems.append(f"its scale has shape {scale.shape}, expected ({D}, {D})")
    elif not (np.allclose(scale, scale.T) and np.all(np.linalg.eigvalsh(scale) > 0)):
        problems.append("its scale is not symmetric positive definite")
    if not dof > D - 1:
        problems.append(f"its dof is {dof:g}, expected more than D - 1 = {D - 1}")
    if not shrinkage >= 0:
        problems.append(f"its shrinkage is {shrinkage:g}, expected >= 0")
    form = getattr(prior, "form", "conjugate")
    if form not in PRIOR_FORMS:
        problems.append(f"its form is {form!r}, expected one of {PRIOR_FORMS}")
    if problems:
        raise ValueError(f"The prior does not fit data with {D} features: "
                         f"{'; '.join(problems)}. Build it for this data, or use "
                         "prior='default' (mclust's defaultPrior).")
    return Prior(shrinkage, mean, dof, scale, form)


def _check_prior_option(prior) -> None:
    if prior is None or (isinstance(prior, str) and prior == "default") or isinstance(
            prior, Prior):
        return
    raise ValueError(f"Invalid value for 'prior': {prior!r}; 'prior' should be None, "
                     "'default' (mclust's defaultPrior) or a bayesgmm.covariance.Prior")


# ---- the fit ----------------------------------------------------------------------------


def plan(options: FitOptions, n_samples: int, n_features: int,
         n_padded: int | None = None) -> Choice:
    """Where a fit of ``options`` on ``(n_samples, n_features)`` rows runs, and at what
    padded K: :func:`bayesgmm.engines.choose.choose`, with ``n_padded`` (a sweep's
    common size) replacing the automatic bucket on the compiled path."""
    K = int(options.n_components)
    choice = choose("fit", options.engine, n_samples, K, n_features, options.covariance_type)
    if choice.engine == "numpy":
        return choice
    return Choice("jax", int(n_padded or choice.n_padded))


def fit(X, options: FitOptions, *, sample_weight=None, start: GMMParams | None = None,
        start_lower_bound: float = -math.inf, n_padded: int | None = None,
        shared=None) -> tuple[GMMParams, FitInfo]:
    """Fit a Gaussian mixture by EM.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    options : FitOptions
    sample_weight : array-like of shape (n_samples,), optional
    start : GMMParams, optional
        Batch shape ``()``, K components: a warm start (one initialisation, no
        ``init_subsample``), as scikit-learn's ``warm_start=True``.
    start_lower_bound : float
        The lower bound ``start`` was fitted to (scikit-learn measures the first
        iteration's change from it; ``-inf``: none).
    n_padded : int, optional
        Pad the compiled path to this K_pad instead of the automatic bucket (a sweep
        pads every K to its largest, so one program serves them all).
    shared : tuple, optional
        :func:`shared_features` of X, reused by a sweep's fits.

    Returns
    -------
    params : GMMParams
        Batch shape ``()``, padded to K_pad components (zero weight beyond
        ``n_components``; :func:`bayesgmm.params.take_components` gives the fit), NumPy.
    info : FitInfo
        Of the best initialisation; ``nk`` has K entries.

    Raises
    ------
    ValueError
        For invalid options or data, and when the fit went non-finite (a collapsed
        component): the message names the component and the ``reg_covar`` to try.
    """
    options = options.check()
    X = check_array_2d(X, min_samples=2)
    validation.check_reg_covar_scale(X, options.reg_covar)
    K = int(options.n_components)
    check_n_samples(X.shape[0], K)
    if start is not None:
        _check_start(start, X, options)
    w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    choice = plan(options, *X.shape, n_padded)
    shared = shared if sample_weight is None else None
    with _scope(choice, X.dtype):
        best, info, all_info = _run(X, w, options, choice, start, start_lower_bound, shared)
        if (choice.engine != "numpy" and options.kernel == "auto" and X.dtype == np.float64
                and host.inexact_moments(take_components(best, K), X, w)):
            # float64's compiled default, the moments form, cancels terms of about
            # (|μ_k - c| / σ_k)²: a compact cluster far from the data's mean (1e5 away at
            # sd 1e-2) lost 2e-4 of the score; the centred kernel is exact at any offset,
            # and slower (rare: such a fit is run again with it, from the same starts)
            best, info, all_info = _run(X, w, options.replace(kernel="centred"), choice,
                                        start, start_lower_bound, shared)
    info = info._replace(nk=np.asarray(info.nk)[:K])
    _report(info, all_info, X, options)
    return best, info


def fit_host_sweep(X, options: FitOptions, ks, centers_cache: dict | None = None
                   ) -> list[tuple[GMMParams, FitInfo]] | None:
    """:func:`fit` for every K of ``ks`` at once on the host, or ``None`` where that
    path does not apply (the largest K fits compiled, ``init_subsample`` subsamples,
    ``restart_screen_iter``, ``max_iter=0``, a ``prior`` or ``equal_weights``: the
    batch runs the likelihood M-step).

    Every K's starts (:func:`_starts`: the tree's and the k-means ones) are one batch
    of :func:`bayesgmm.engines.numpy.fit_many` (the starts of one K share each
    E-step); each K's best fit is then picked as :func:`fit` picks it
    (:func:`_best_run`), and reported the same way. Returns, per K, the fit (K
    components, NumPy) and its info, equal to :func:`fit`'s (tested).
    ``centers_cache``: a dict the caller keeps across the covariance types of one X,
    so that each K's k-means centres are computed once (:func:`_starts`).
    :func:`fit_host_sweeps` runs several covariance types' searches in one loop.
    """
    return fit_host_sweeps(X, [options], ks, centers_cache)[0]


def fit_host_sweeps(X, options_list: Sequence[FitOptions], ks,
                    centers_cache: dict | None = None
                    ) -> list[list[tuple[GMMParams, FitInfo]] | None]:
    """:func:`fit_host_sweep` for several options at once (a model search: the same
    settings, one covariance type each), in one lockstep EM loop
    (:func:`bayesgmm.engines.numpy.fit_many_models`: the types' batches share each
    iteration's E-steps). Returns, per options, what :func:`fit_host_sweep` returns for
    it alone (``None`` where the host batch does not apply; tested equal). Two options
    of one covariance type are run apart."""
    X = check_array_2d(X, min_samples=2)
    N, D = X.shape
    ks = [int(k) for k in ks]
    w = check_sample_weight(None, N, X.dtype)
    out: list = [None] * len(options_list)
    todo: list[tuple[int, FitOptions, list]] = []  # (position, options, groups per K)
    starts: dict[str, list] = {}
    hard: dict[str, list] = {}
    settings = None  # tol, reg_covar, max_iter: one loop runs one of each
    for pos, options in enumerate(options_list):
        options = options.check()
        kind = options.covariance_type
        big = options.replace(n_components=max(ks))
        if (plan(big, N, D).engine != "numpy" or options.restart_screen_iter
                or options.prior is not None or options.equal_weights  # fit's own M-steps
                or int(options.max_iter) == 0
                or (options.init_subsample is not None and N > options.init_subsample)):
            continue
        own = (float(options.tol), float(options.reg_covar), int(options.max_iter),
               bool(options.stop_collapsed))
        if kind in starts or (settings is not None and own != settings):
            out[pos] = fit_host_sweeps(X, [options], ks, centers_cache)[0]
            continue
        settings = own
        members, is_hard, groups = [], [], []  # groups: per K, per start group, members
        key = check_random_state_key(options.random_state)
        with _hc_starts_of(key, X, w, options, ks):
            for k in ks:
                check_n_samples(N, k)
                opts = options.replace(n_components=k)
                per_k = []
                for init, h in _starts(key, X, w, opts, plan(opts, N, D),
                                       seed_subsample=True, host_rows=(X, w),
                                       centers_cache=centers_cache):
                    init = init.to_numpy()
                    R = init.batch_shape[0]
                    per_k.append(list(range(len(members), len(members) + R)))
                    members += [init[r] for r in range(R)]
                    is_hard += [bool(h)] * R
                groups.append(per_k)
        starts[kind], hard[kind] = members, is_hard
        todo.append((pos, options, groups))
    if not todo:
        return out
    tol, reg_covar, max_iter, stop_collapsed = settings
    fitted = host.fit_many_models(X, starts, tol=tol, reg_covar=reg_covar,
                                  max_iter=max_iter, hard_start=hard,
                                  stop_collapsed=stop_collapsed)
    for pos, options, groups in todo:
        out[pos] = _sweep_results(fitted[options.covariance_type], options, ks, groups, X)
    return out


def _hc_starts_of(key, X, w, options: FitOptions, ks: list[int]):
    """A block within which the hierarchical starts that :func:`_starts` makes for
    ``options`` at each K of ``ks`` (:func:`_hc_start`: the tree's cut, no prior) come
    from one batched M-step over the K (:func:`bayesgmm.initialize.hc_starts_batched`;
    equal to the per-K ones to round-off) instead of one M-step per K; a block that
    does nothing where the starts take no tree."""
    from bayesgmm.initialize import hc_starts_batched

    method = options.init_params
    given = (options.weights_init, options.means_init, options.precisions_init)
    hc_ks = [k for k in ks if method == "hc" or k > 1]  # auto at K = 1: k-means alone
    if method not in ("hc", "auto") or any(g is not None for g in given) or len(hc_ks) < 2:
        return contextlib.nullcontext()
    tree = cached_hc_tree(X, w, rng=host_rng(key, 5))  # _hc_start's tree
    return hc_starts_batched(X, w, tree, hc_ks, options.covariance_type, options.reg_covar)


def _sweep_results(results: list, options: FitOptions, ks: list[int], groups: list, X
                   ) -> list[tuple[GMMParams, FitInfo]]:
    """Each K's best fit among its starts' results (``groups``: per K, per start group,
    the indices into ``results``), picked and reported as :func:`fit` does."""
    out = []
    for k, per_k in zip(ks, groups):
        opts = options.replace(n_components=k)
        runs = []
        for idx in per_k:  # as engines.numpy.fit_restarts: the first best, NaN loses
            scores = [-np.inf if results[i][1].nonfinite else float(results[i][1].lower_bound)
                      for i in idx]
            p, info = results[idx[int(np.argmax(scores))]]
            all_info = FitInfo(*(np.stack(v) for v in zip(*(results[i][1] for i in idx))))
            runs.append((p, info, all_info))
        best, info, all_info = _best_run(runs, opts)
        info = _info_as_numpy(info)._replace(nk=np.asarray(info.nk)[:k])
        _report(info, _info_as_numpy(all_info), X, opts)
        out.append((best.to_numpy(), info))
    return out


def unfitted_info(n_components: int, dtype=np.float64) -> FitInfo:
    """The report of no EM iteration (``max_iter=0``, or parameters given as they are):
    lower bound ``-inf``, ``n_iter`` 0, not converged, as scikit-learn reports them."""
    return FitInfo(np.asarray(-np.inf, dtype), np.int32(0), np.bool_(False), np.bool_(False),
                   np.int32(-1), np.zeros(0, dtype), np.zeros(n_components, dtype))


def shared_features(X, options: FitOptions):
    """The compiled engine's feature table of ``X`` (unit weights) for
    ``fit(shared=...)``, made once for many fits of the same X (a sweep's); ``None``
    where ``options`` fit on the host, or EM keeps no table
    (:func:`bayesgmm.engines.jax.data_features`). ``options.n_components``: the largest
    K that will share it."""
    X = check_array_2d(X, min_samples=2)
    if plan(options, *X.shape).engine != "jax":
        return None
    from bayesgmm.engines import jax as em

    with compute_scope(X.dtype):
        return em.data_features(*to_device(X), np.ones(X.shape[0], X.dtype),
                                options.covariance_type, options.kernel)


def partial_fit(X, options: FitOptions, state: OnlineState | None = None, *,
                sample_weight=None, start: GMMParams | None = None
                ) -> tuple[GMMParams, FitInfo, OnlineState]:
    """One step of online (stepwise) EM on the batch ``X``; see
    :meth:`bayesgmm.GaussianMixture.partial_fit`. Runs compiled.

    ``state`` is ``None`` on the first batch, which starts from ``start`` (K
    components) or else from ``options``' initialisation of this batch. Returns the new
    parameters (K components, NumPy), a :class:`FitInfo` (``lower_bound``: the running
    mean log-likelihood; ``n_iter``: batches seen) and the state for the next batch.
    ``equal_weights`` holds; a ``prior`` is refused (online EM's statistics are per unit
    weight, with no sample size to weigh a prior against)."""
    X = check_array_2d(X, min_samples=1)
    K = int(options.n_components)
    if options.prior is not None:
        raise ValueError(f"partial_fit (online EM) does not take a prior (got "
                         f"prior={options.prior!r}); use fit for MAP-EM, or prior=None.")
    if state is None:
        options.check()
        if X.shape[0] < K:
            raise ValueError(f"The first partial_fit batch needs n_samples >= n_components "
                             f"({K}), got {X.shape[0]}")
        # the units on the first batch (fit's check): later batches share its units
        validation.check_reg_covar_scale(X, options.reg_covar)
    if start is not None:
        _check_start(start, X, options)
    w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    from bayesgmm.engines import jax as em

    stats, t = state if state is not None else (None, 0)
    with compute_scope(X.dtype):
        Xj, wj = to_device(X, w)
        params = (start.to_numpy(X.dtype) if start is not None else
                  _method_start(check_random_state_key(options.random_state), Xj, wj,
                                options, K)[0])
        stats, params = em.online_update(stats, params, Xj, wj, step_size=(t + 2.0) ** -0.6,
                                         reg_covar=options.reg_covar,
                                         equal_weights=bool(options.equal_weights))
        stats = type(stats)(*(np.asarray(a) for a in stats))
    info = FitInfo(stats.sum_wll / stats.sum_w, np.asarray(t + 1), np.asarray(False),
                   np.asarray(False), np.asarray(-1), np.zeros(0), stats.nk)
    return params.to_numpy(), info, OnlineState(stats, t + 1)


def _check_start(start: GMMParams, X, options: FitOptions) -> None:
    """A warm start must fit the data and the options it continues under."""
    check_n_features(X, start.n_features, "GaussianMixture")
    if (start.n_components, start.covariance_type) != (options.n_components,
                                                       options.covariance_type):
        raise ValueError(
            f"warm_start continues the previous fit, which has {start.n_components} "
            f"{start.covariance_type!r} components, but n_components="
            f"{options.n_components!r}, covariance_type={options.covariance_type!r} now; "
            "fit once with warm_start=False after changing them.")


def _scope(choice: Choice, dtype):
    """JAX's dtype scope for a compiled fit; nothing (no JAX) for a host one."""
    return contextlib.nullcontext() if choice.engine == "numpy" else compute_scope(dtype)


def _engine(choice: Choice):
    """The engine module: :mod:`bayesgmm.engines.numpy` or :mod:`bayesgmm.engines.jax`
    (imported only when a fit runs compiled)."""
    if choice.engine == "numpy":
        return host
    from bayesgmm.engines import jax as em

    return em


def _run(X, w, options: FitOptions, choice: Choice, start, start_lower_bound, shared):
    """Seed, run the restarts and refine: ``(best, info, all_info)`` as NumPy,
    ``best`` padded to ``choice.n_padded``; ``all_info`` is None without restarts."""
    on_host = choice.engine == "numpy"
    engine = _engine(choice)
    kw = dict(tol=options.tol, reg_covar=options.reg_covar, max_iter=int(options.max_iter),
              report=em_report(options.verbose, options.verbose_interval))
    if options.prior is not None or options.equal_weights:  # else the engines' defaults
        kw.update(prior=resolve_prior(options, X), equal_weights=bool(options.equal_weights))
    if options.stop_collapsed:  # else the engines' default (run on)
        kw.update(stop_collapsed=True)
    if not on_host:
        kw.update(chunk_size=options.chunk_size, kernel=options.kernel)
    Xj, wj = (X, w) if on_host else to_device(X, w)  # one device copy, shared
    if start is not None:
        return _warm(engine, Xj, wj, start.to_numpy(X.dtype), start_lower_bound,
                     choice.n_padded, kw, {} if on_host else {"shared": shared})
    key = check_random_state_key(options.random_state)
    m = options.init_subsample
    subsample = m is not None and X.shape[0] > m
    Xr, wr = subsample_rows(host_rng(key, 1), Xj, wj, m) if subsample else (Xj, wj)
    # init_subsample, when it applies, is the initialisation's whole sample
    host_rows = (Xr, wr) if subsample else (X, w)  # NumPy: the tree never reads a device
    # the prior the starts' M-steps take: the fit's, resolved above, or with a
    # subsample that initialisation's whole sample's (as its tree's)
    prior = resolve_prior(options, host_rows[0]) if subsample else kw.get("prior")
    starts = _starts(key, Xr, wr, options, choice, seed_subsample=not subsample,
                     host_rows=host_rows, prior=prior)
    if options.max_iter == 0:  # scikit-learn keeps the last initialisation
        return starts[0][0].to_numpy()[-1], unfitted_info(options.n_components,
                                                          X.dtype), None
    extra = {} if on_host else {"shared": None if subsample else shared}
    # Every candidate runs to tol: screening them at scikit-learn's 1e-3 and refining
    # only the best lost mclust's optimum on diabetes (full, K=3: -2338.5 against
    # -2303.5; benchmarks/mclust.py), where the better start is slower to climb.
    runs = [engine.fit_restarts(Xr, init, sample_weight=wr,
                                screen_iter=int(options.restart_screen_iter or 0),
                                hard_start=hard, **kw, **extra) for init, hard in starts]
    best, info, all_info = _best_run(runs, options)
    if subsample:  # refine the best restart on all rows
        best, info = engine.fit(Xj, best, sample_weight=wj, **kw)
    return best.to_numpy(), _info_as_numpy(info), _info_as_numpy(all_info)


def _warm(engine, X, w, start: GMMParams, start_lower_bound, n_padded, kw, extra):
    """A warm fit from ``start`` with scikit-learn's stopping rule: the first
    iteration's change is measured from ``start_lower_bound``, the previous fit's."""
    if kw["max_iter"] == 0:
        return pad_components(start, n_padded).to_numpy(), unfitted_info(
            start.n_components, start.dtype), None
    init = _batch_of_one(pad_components(start, n_padded))
    best, info, all_info = engine.fit_restarts(
        X, init, sample_weight=w, initial_lower_bound=float(start_lower_bound), **kw, **extra)
    return best.to_numpy(), _info_as_numpy(info), _info_as_numpy(all_info)


def _starts(key, X, w, options: FitOptions, choice: Choice, seed_subsample: bool,
            host_rows=None, centers_cache: dict | None = None, prior: Prior | None = None
            ) -> list[tuple[GMMParams, bool]]:
    """The groups of starts EM runs from, each ``(params (R,)-batched, hard_start)``
    (see :func:`_start`); the best fit of all of them wins (:func:`_best_run`).

    ``hc``: the hierarchical start alone (:func:`_hc_start`). ``auto`` (the default):
    the hierarchical start and then ``n_init`` k-means starts, two EM runs (one compiled
    program when ``n_init=1``: both run one restart, and ``hard_start`` is traced); with
    any ``*_init`` given, ``auto`` is ``kmeans`` and ``hc`` the tree's start with the
    given values in place (:func:`_method_start`). Otherwise the method's own starts.
    ``host_rows``: ``(X, w)`` as NumPy arrays, for the tree (default: ``X``, ``w``).
    ``centers_cache``: a dict a caller keeps across covariance types of one X (a
    sweep's): the k-means centres depend on X, K and the key alone, so they are made
    once (see :func:`_kmeans_start`). ``prior``: the fit's prior as
    :func:`resolve_prior` gave it (``None``: none), for the hierarchical start's
    M-step."""
    method = options.init_params
    given = (options.weights_init, options.means_init, options.precisions_init)
    if method == "auto" and int(options.n_components) == 1:  # every start is the same
        method = "kmeans"
    if method in ("hc", "auto") and all(g is None for g in given):
        Xh, wh = (X, w) if host_rows is None else host_rows  # the same rows, on the host
        hc = (_hc_start(key, np.asarray(Xh), np.asarray(wh), options, choice, prior=prior),
              False)
        if method == "hc" or options.max_iter == 0:
            return [hc]
        return [hc, _start(key, X, w, options.replace(init_params="kmeans"), choice,
                           seed_subsample, centers_cache, prior)]
    if method != options.init_params or method == "auto":
        options = options.replace(init_params="kmeans")
    return [_start(key, X, w, options, choice, seed_subsample, centers_cache, prior)]


def _hc_start(key, X, w, options: FitOptions, choice: Choice, *,
              prior: Prior | None) -> GMMParams:
    """The hierarchical start, batch shape ``(1,)`` with ``choice.n_padded`` components:
    :func:`bayesgmm.initialize.hc_params` of the tree of X (grown once per data set,
    on every row up to :data:`~bayesgmm.initialize.HC_ALL_ROWS`, else on
    :data:`~bayesgmm.initialize.HC_MAX_ROWS` rows drawn by ``key``'s stream 5), as
    NumPy in X's dtype; with a ``prior`` (or ``equal_weights``) the partition's M-step
    is EM's, MAP, as mclust's ``me`` starts (diabetes, VVI, K = 5 with
    mclust's default prior: -2377.93 from the likelihood M-step, -2364.25 as mclust).
    ``prior``: ``options.prior`` as :func:`resolve_prior` gave it for these rows, which
    the caller has (``None``: the likelihood M-step)."""
    tree = cached_hc_tree(X, w, rng=host_rng(key, 5))
    p = hc_params(X, w, tree, int(options.n_components), options.covariance_type,
                  options.reg_covar, prior=prior,
                  equal_weights=options.equal_weights)
    return _batch_of_one(pad_components(p, choice.n_padded).to_numpy(X.dtype))


def _best_run(runs: list[tuple], options: FitOptions) -> tuple:
    """The best of several ``fit_restarts`` results ``(best, info, all_info)`` by lower
    bound, with every restart's report concatenated in order. Non-finite fits lose,
    and so do collapsed ones (:func:`bayesgmm.initialize.collapsed`: a component with
    fewer rows than :func:`bayesgmm.initialize.min_component_rows` whose covariance
    is ``reg_covar``'s, so only ``reg_covar`` bounds its likelihood: the hierarchical
    start's singleton groups at large K) while another candidate did not collapse;
    the first of equals (within :data:`_TIE_RTOL`, relative) wins."""
    if len(runs) == 1:
        return runs[0]
    K = int(options.n_components)
    collapsed = [not bool(i.nonfinite) and (collapsed_fit(b, np.asarray(i.nk)[:K],
                                                           options.reg_covar)
                                            or stopped_collapsed(i.converged, i.n_iter,
                                                                 options))
                 for b, i, _ in runs]
    scores = [-math.inf if bool(i.nonfinite) else float(i.lower_bound) for _, i, _ in runs]
    if not all(collapsed):
        scores = [-math.inf if c else v for c, v in zip(collapsed, scores)]
    top = max(scores)
    # the first of equals wins: within round-off (1e-10 relative) of the best, as two
    # starts that reach one optimum with their components in another order differ in
    # the last bits, and differently on the two engines
    tied = [v >= top - _TIE_RTOL * abs(top) for v in scores] if math.isfinite(top) else [
        v == top for v in scores]
    best, info, _ = runs[tied.index(True)]
    all_info = type(info)(*(_stack_reports(parts) for parts in zip(*(r[2] for r in runs))))
    return best, info, all_info


def _stack_reports(parts) -> np.ndarray:
    """One field of several ``all_info`` reports, joined along the restart axis; a
    shorter trailing axis (small-EM's screening history) is padded with NaN."""
    arrays = [np.asarray(a) for a in parts]
    if arrays[0].ndim > 1:
        n = max(a.shape[-1] for a in arrays)
        arrays = [np.concatenate([a, np.full((*a.shape[:-1], n - a.shape[-1]), np.nan,
                                             a.dtype)], axis=-1) for a in arrays]
    return np.concatenate(arrays)


def _start(key, X, w, options: FitOptions, choice: Choice, seed_subsample: bool,
           centers_cache: dict | None = None, prior: Prior | None = None
           ) -> tuple[GMMParams, bool]:
    """``(R,)``-batched parameters to start EM from (``choice.n_padded`` components),
    and whether EM's first pass is a hard assignment (``fit_restarts(hard_start=...)``).

    For ``kmeans`` and ``k-means++`` (no ``*_init``, seeding work within
    :data:`~bayesgmm.engines.choose.HOST_SEEDING_WORK`, at least one iteration):
    :func:`_kmeans_start`, whose centres EM's hard first pass turns into the start.
    Otherwise :func:`_method_start`, and no hard pass."""
    K, (N, D) = int(options.n_components), X.shape
    method = options.init_params
    given = (options.weights_init, options.means_init, options.precisions_init)
    m = seed_sample_size(N, K, method) if seed_subsample else None
    if (method not in ("kmeans", "k-means++") or any(g is not None for g in given)
            or options.max_iter == 0
            or choose("seed", "auto", m or N, K, D, options.covariance_type).engine != "numpy"):
        p = _method_start(key, X, w, options, choice.n_padded, seed_subsample, prior=prior)
        return (p.to_numpy() if choice.engine == "numpy" else p), False
    return _kmeans_start(key, X, w, options, choice, m, centers_cache), True


def _kmeans_start(key, X, w, options: FitOptions, choice: Choice, m: int | None,
                  centers_cache: dict | None = None) -> GMMParams:
    """k-means++ seeds drawn on the host (:func:`bayesgmm.initialize.kmeans_plusplus_host`,
    the draws :func:`_method_start` makes), on ``m`` subsampled rows if given; for
    ``kmeans`` Lloyd's iterations on the engine's side; then
    :func:`bayesgmm.initialize.params_from_centers`. EM's hard first pass gives every
    row to its nearest centre and takes the M-step: the start :func:`_method_start`
    gives, with Lloyd's loop as the only compiled initialisation (measured, BIC sweep
    1..20, N=1e5, D=8, cold process: compilation of the initialisation 0.92 -> 0.24 s,
    its run time 0.88 -> 0.55 s plus the hard passes, ~12 ms a K)."""
    K, R, n_padded = int(options.n_components), int(options.n_init), choice.n_padded
    # everything the centres depend on but X (the cache's owner keeps to one X)
    cache_key = (K, R, n_padded, m, options.init_params, choice.engine,
                 np.asarray(key).tobytes())
    if centers_cache is not None and cache_key in centers_cache:
        return params_from_centers(centers_cache[cache_key], K, options.covariance_type)
    Xs, ws = (X, w) if m is None else subsample_rows(host_rng(key, 2), X, w, m)
    u = host_seeding_uniforms(host_rng(key, 3), R, K)
    Xh, wh = np.asarray(Xs), np.asarray(ws)
    seeds = np.stack([kmeans_plusplus_host(Xh, wh, K, u[r]) for r in range(R)])
    # padding components are copies of the first seed (weight 0 below)
    seeds = np.concatenate([seeds, np.repeat(seeds[:, :1], n_padded - K, axis=1)], axis=1)
    centers = seeds.astype(X.dtype)
    if options.init_params == "kmeans" and choice.engine == "numpy":
        centers = host.lloyd_batch(Xs, ws, centers, n_active=K)
    elif options.init_params == "kmeans":
        centers = lloyd_batch(*to_device(Xs, ws), centers, n_active=K)
    if centers_cache is not None:
        centers_cache[cache_key] = centers
    return params_from_centers(centers, K, options.covariance_type)


def _method_start(key, X, w, options: FitOptions, n_padded: int,
                  seed_subsample: bool = True, *, prior: Prior | None = None) -> GMMParams:
    """``(R,)``-batched initial parameters with ``n_padded`` components: the
    ``*_init`` values where given (all three: nothing is estimated, as in
    scikit-learn), the rest from ``init_params``' compiled initialisation
    (:func:`bayesgmm.initialize.init_params_batch`). ``seed_subsample``: k-means seeds
    on a subsample of large data (:func:`bayesgmm.initialize.seed_sample_size`).
    ``prior``: the fit's resolved prior, for the hierarchical start (:func:`_hc_start`;
    ``None``: none, as for :func:`partial_fit`, which refuses one)."""
    K, D, ct, dtype = int(options.n_components), X.shape[1], options.covariance_type, X.dtype
    R = int(options.n_init)
    if options.init_params == "auto":  # as in _starts: hc, or kmeans beside *_init
        no_init = all(g is None for g in (options.weights_init, options.means_init,
                                          options.precisions_init))
        options = options.replace(init_params="hc" if no_init else "kmeans")
    given = dict(
        weights=None if options.weights_init is None else
        check_weights_init(options.weights_init, K, dtype),
        means=None if options.means_init is None else
        check_means_init(options.means_init, K, D, dtype),
        precisions=None if options.precisions_init is None else
        check_precisions_init(options.precisions_init, ct, K, D, dtype))
    if all(v is not None for v in given.values()):
        return pad_components(params_from_inits(R, ct, **given), n_padded)
    if options.init_params == "hc":  # the same start for every restart
        hc = _hc_start(key, np.asarray(X), np.asarray(w), options, Choice("numpy", K),
                       prior=prior)
        base = GMMParams(*(np.repeat(a, R, axis=0) for a in (
            hc.weights, hc.means, hc.cov_factor)), ct)
        return pad_components(params_from_inits(R, ct, base=base, **given), n_padded)
    keys = host_rng(key, 0).integers(0, 2**32, (R, 2), dtype=np.uint32)
    m = seed_sample_size(X.shape[0], K, options.init_params) if seed_subsample else None
    seed_rows = None if m is None else subsample_rows(host_rng(key, 2), X, w, m)
    uniforms = (host_seeding_uniforms(host_rng(key, 3), R, K, n_padded)
                if options.init_params in ("kmeans", "k-means++") else None)
    with compute_scope(dtype):  # a host fit's X is NumPy, outside JAX's x64 scope
        p = init_params_batch(keys, X, n_padded, ct, options.init_params, sample_weight=w,
                              reg_covar=options.reg_covar, n_active=K, seed_rows=seed_rows,
                              uniforms=uniforms)
    if all(v is None for v in given.values()):
        return p
    # Given values replace the method's on the host, at the real K (eager JAX ops
    # would compile per K).
    base = take_components(p.to_numpy(), K)
    return pad_components(params_from_inits(R, ct, base=base, **given), n_padded)


def stopped_collapsed(converged, n_iter, options: FitOptions) -> bool:
    """Whether EM stopped a finite fit (``converged``, after ``n_iter`` iterations)
    because it collapsed (``stop_collapsed``): the only stop of a finite fit short of
    ``max_iter`` that is not convergence (a non-finite one is the caller's: raised, or
    lost). Read from the engine's stop, not tested again: the engine tests in the fit's
    dtype, a later test in float64 could differ at the floor."""
    return (bool(options.stop_collapsed) and not bool(converged)
            and int(n_iter) < int(options.max_iter))


def warn_singular(info: FitInfo, options: FitOptions, stacklevel: int) -> None:
    """The :class:`~bayesgmm.validation.SingularFitWarning` of a fit EM stopped because
    it collapsed (:func:`stopped_collapsed`), naming the iteration and the fixes."""
    warnings.warn(
        f"EM stopped at iteration {int(info.n_iter)} because the fit collapsed "
        f"(stop_collapsed=True): a component's variance fell to reg_covar="
        f"{options.reg_covar:g}'s on too few rows, or on a flat set of rows, so only "
        f"reg_covar bounds its likelihood (mclust reports such a fit as singular). "
        f"Use fewer components (now {options.n_components}), a prior "
        f"(prior='default'), or a larger reg_covar.",
        validation.SingularFitWarning, stacklevel=stacklevel)


def _report(info: FitInfo, all_info: FitInfo | None, X, options: FitOptions) -> None:
    """Raise for a non-finite fit; warn when the best initialisation did not converge
    (with ``stop_collapsed``, because it collapsed: :func:`stopped_collapsed`), or a
    component holds about one sample. (``verbose`` lines are printed live by the
    engines: :mod:`bayesgmm.progress`.)"""
    if bool(info.nonfinite):
        raise ValueError(_nonfinite_message(info, X, options))
    if options.max_iter == 0:  # the initialisation was asked for; scikit-learn is silent
        return
    if stopped_collapsed(info.converged, info.n_iter, options):
        warn_singular(info, options, stacklevel=5)
    elif not bool(info.converged):
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            "parameters, or increase max_iter, tol, or check for degenerate data. "
            f"(It stopped at max_iter={options.max_iter} iterations, n_iter="
            f"{int(info.n_iter)}, with tol={options.tol:g}.)",
            validation.ConvergenceWarning, stacklevel=4)
    empty = np.flatnonzero(info.nk < 1.5)
    if empty.size and options.n_components > 1:
        warnings.warn(
            f"Component(s) {empty.tolist()} hold about one sample or fewer (effective "
            f"counts nk={np.round(info.nk[empty], 3).tolist()}): their covariance is not "
            f"estimated from their own rows (it is reg_covar={options.reg_covar:g}'s, or "
            f"the part the model shares across components). Consider fewer components "
            f"(now {options.n_components}).",
            DegenerateComponentWarning, stacklevel=4)


def _nonfinite_message(info: FitInfo, X, options: FitOptions) -> str:
    """scikit-learn's words for a failed fit, then which component, when, and the
    ``reg_covar`` to try."""
    k = int(info.bad_component)
    suggestion = max(10 * options.reg_covar, 1e-3 * float(np.mean(np.var(X, axis=0))))
    where = f"component {k}" if k >= 0 else "a component"
    return (
        "Fitting the mixture model failed because some components have ill-defined "
        "empirical covariance (for instance caused by singleton or collapsed samples). "
        "Try to decrease the number of components, increase reg_covar, or scale the input "
        f"data. Here {where} got a singular covariance (NaN or non-positive-definite) at "
        f"iteration {int(info.n_iter)}, typically because it collapsed on one or a few "
        f"identical samples. Increase reg_covar (now {options.reg_covar:g}; try "
        f"{suggestion:.3g}), or decrease n_components (now {options.n_components}).")


# ---- scoring ----------------------------------------------------------------------------


def score_plan(params: GMMParams, n_rows: int, engine: str = "auto",
               fitted_padded: int | None = None) -> Choice:
    """Where scoring ``n_rows`` rows with ``params`` (K components) runs, and at what
    padded size: as the fit did (``fitted_padded``, whose programs exist), unless that
    padding's work on these rows is over budget (a model fitted on 300 rows runs at 32
    components; predicting 10⁷ rows at 32 would cost 32x its own K's work)."""
    return choose("score", engine, n_rows, params.n_components, params.n_features,
                  params.covariance_type, fitted_padded=fitted_padded)


def log_resp(params: GMMParams, X, *, engine: str = "auto",
             fitted_padded: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``log p(z = k | x)`` of shape (N, K) and ``log p(x)`` of shape (N,) for a
    checked NumPy ``X (N, D)``, in ``X``'s and ``params``' common dtype; runs where
    :func:`score_plan` says."""
    dtype = np.result_type(X.dtype, params.dtype)
    choice = score_plan(params, X.shape[0], engine, fitted_padded)
    if choice.engine == "numpy" or (dtype == np.float64 and host.inexact_moments(params, X)):
        lr, ln = host.log_resp(params, X)  # the host guards the moments form
        return lr.astype(dtype), ln.astype(dtype)
    with compute_scope(dtype):
        lr, ln = _compiled().log_resp(pad_components(params, choice.n_padded).astype(dtype),
                                      *to_device(X.astype(dtype, copy=False)))
        return np.asarray(lr)[:, :params.n_components], np.asarray(ln)


def criteria(params_list, X, *, engine: str = "auto", fitted_padded=None,
             equal_weights: bool = False) -> list[dict]:
    """``bic``, ``aic`` and ``icl`` of each fitted parameter set (batch shape ``()``,
    one covariance type) on a checked NumPy ``X (N, D)``, as floats.

    The data term is the log-likelihood at the parameters, whether they are a
    maximum-likelihood or a MAP (``prior``) fit, and the penalty counts the usual free
    parameters, less the K - 1 weights with ``equal_weights`` (mclust's ``bic`` and
    ``nMclustParams(equalPro=)``).

    Where any of them scores compiled, all run in one batched pass over the rows
    (:func:`criteria_terms` over the stacked parameters, padded to one size): the
    features of each chunk are computed once for all (measured, 20 K on 1e5 x 8: 0.30
    -> 0.15 s). ``fitted_padded``: each set's fitted K_pad (see :func:`score_plan`)."""
    fitted_padded = fitted_padded or [None] * len(params_list)
    choices = [score_plan(p, X.shape[0], engine, f) for p, f in zip(params_list, fitted_padded)]
    if all(c.engine == "numpy" for c in choices) or (
            np.result_type(X.dtype, params_list[0].dtype) == np.float64
            and host.inexact_moments(list(params_list), X)):  # the host guards them
        ll, ent = zip(*host.criteria_terms_many(params_list, X))
    else:
        dtype = np.result_type(X.dtype, params_list[0].dtype)
        size = max(c.n_padded for c in choices)  # one size to stack
        padded = [pad_components(p, size).to_numpy() for p in params_list]
        stacked = GMMParams(*(np.stack(a).astype(dtype) for a in zip(
            *((p.weights, p.means, p.cov_factor) for p in padded))), padded[0].covariance_type)
        with compute_scope(dtype):
            ll, ent = (np.asarray(a) for a in _compiled().criteria_terms(
                stacked, *to_device(X.astype(dtype, copy=False))))
    return [{k: float(v) for k, v in criteria_from_terms(
        ll[i], ent[i], p.n_parameters - (p.n_components - 1) * bool(equal_weights),
        X.shape[0]).items()}
        for i, p in enumerate(params_list)]


def criteria_from_terms(log_lik, entropy, n_parameters: int, n_samples) -> dict:
    """BIC, AIC and ICL from :func:`criteria_terms` (host-side floats or arrays)."""
    b = -2 * log_lik + n_parameters * np.log(n_samples)
    return {"bic": b, "aic": -2 * log_lik + 2 * n_parameters, "icl": b + 2 * entropy}


def sample(key, params: GMMParams, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` draws from ``params`` (batch shape ``()``), seeded by the raw JAX
    ``key`` (its stream 4, :func:`bayesgmm.initialize.host_rng`): ``(X (n_samples, D),
    labels (n_samples,))`` as NumPy, rows ordered by component as scikit-learn's. Drawn on
    the host (:func:`bayesgmm.engines.numpy.sample`): nothing compiles, whatever
    ``n_samples`` (a compiled sampler took ~1 s per new ``n``)."""
    return host.sample(host_rng(key, 4), params, int(n_samples))


# ---- the compiled criteria kernel ------------------------------------------------------


def log_likelihood(params: GMMParams, X, sample_weight=None, chunk_size: int | None = None):
    """Total log-likelihood Σ_n w_n log p(x_n | θ), shape (*B,), over row chunks as in
    :func:`criteria_terms`. JAX."""
    return _chunked_terms(params, X, sample_weight, chunk_size, with_entropy=False)[0]


def criteria_terms(params: GMMParams, X, sample_weight=None, chunk_size: int | None = None):
    """The data terms of every criterion: total log-likelihood and total membership
    entropy ``Σ_n w_n H(r_n)``, each shape (*B,). Padding components (weight 0) add
    nothing, so a padded fit gives its unpadded terms; combine with the real parameter
    count in :func:`criteria_from_terms`. JAX, jit-able.

    Summed over row chunks (``chunk_size``, static; ``None`` picks one from the shapes,
    as EM does), so memory stays O(chunk · K) whatever N."""
    return _chunked_terms(params, X, sample_weight, chunk_size, with_entropy=True)


def _chunked_terms(params, X, sample_weight, chunk_size, with_entropy: bool):
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    from bayesgmm.covariance import HIGHEST
    from bayesgmm.density import (component_log_prob, data_center, moments_features,
                                  moments_theta, resolve_kernel)
    from bayesgmm.params import vmap_batch
    from bayesgmm.suffstats import auto_chunk_size, sum_over_chunks

    N, D = X.shape
    w = jnp.ones(N, X.dtype) if sample_weight is None else sample_weight
    B, K = params.batch_shape, params.n_components
    kernel = resolve_kernel("auto", X.dtype)
    chunk_size = chunk_size or auto_chunk_size(N, math.prod(B) * K, D, X.dtype.itemsize,
                                               kernel)
    if kernel == "moments":
        # One shift (the data mean) for every parameter set: each chunk's features are
        # computed once, and all sets' log-densities are one (C, F) @ (F, B·K) matmul.
        center = data_center(X, w)
        theta = vmap_batch(lambda p: moments_theta(p, center), len(B))(params)
        theta = jnp.moveaxis(theta.reshape(-1, *theta.shape[-2:]), 1, 0).reshape(
            theta.shape[-2], -1)  # (F, P·K), P = prod(B)

        def joint(xs):
            T = moments_features(xs, center, params.covariance_type)
            return jnp.matmul(T, theta, precision=HIGHEST).reshape(xs.shape[0], -1, K)
    else:
        def joint(xs):  # (C, P, K)
            lp = component_log_prob(params, xs).reshape(-1, xs.shape[0], K)
            return jnp.moveaxis(lp, 0, 1)

    def block(xs, ws):
        lp = joint(xs)
        log_norm = logsumexp(lp, axis=-1)  # (C, P)
        live = (ws > 0)[:, None]  # re-read and zero-weight rows add nothing (not -inf · 0)
        total = lambda v: jnp.sum(jnp.where(live, ws[:, None] * v, 0.0), axis=0).reshape(B)
        if not with_entropy:
            return (total(log_norm),)
        lr = lp - log_norm[..., None]
        r = jnp.exp(lr)
        return total(log_norm), total(-jnp.sum(jnp.where(r > 0, r * lr, 0.0), axis=-1))

    return sum_over_chunks(block, (X,), w, chunk_size)


@functools.cache
def _compiled():
    """The jitted scoring kernels, made on first use (so importing this module loads
    no JAX)."""
    from types import SimpleNamespace

    from bayesgmm import density
    from bayesgmm.compilation import jit

    return SimpleNamespace(log_resp=jit(density.log_resp),
                           criteria_terms=jit(criteria_terms))


# ---- arrays -----------------------------------------------------------------------------


def to_device(*arrays):
    """NumPy arrays onto JAX's default device (JAX arrays pass through).
    ``jnp.asarray`` of a NumPy array compiles a small program per shape (``lax.stage``,
    ~0.01-0.03 s each); ``device_put`` does not."""
    import jax

    return tuple(a if isinstance(a, jax.Array) else jax.device_put(np.asarray(a))
                 for a in arrays)


def _info_as_numpy(info: FitInfo) -> FitInfo:
    return type(info)(*(np.asarray(a) for a in info))


def _batch_of_one(params: GMMParams) -> GMMParams:
    """Batch shape ``()`` -> ``(1,)``, one restart."""
    return GMMParams(*(np.asarray(a)[None] for a in (params.weights, params.means,
                                                     params.cov_factor)),
                     params.covariance_type)


