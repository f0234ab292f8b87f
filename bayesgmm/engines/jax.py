"""Expectation–Maximisation as pure, jit-able functions over GMMParams.

Glossary: N samples, D features, K components, R restarts (``n_init``).

The pattern follows BlackJAX: ``init`` builds an :class:`EMState`, ``step`` advances it
(pure), ``fit`` runs ``step`` in a ``lax.while_loop`` until the change of the mean
log-likelihood lower bound is below ``tol`` or ``max_iter`` is reached, and
``fit_restarts`` ``vmap``s ``fit`` over a batch of initial parameters.

Iteration semantics match scikit-learn's ``GaussianMixture`` exactly: each iteration
runs an E-step (whose mean log-likelihood is that iteration's lower bound) then an
M-step; so after ``n_iter`` iterations the weights, means, covariances and
``lower_bound`` agree with scikit-learn started from the same parameters.

Jitted code never raises on values: a non-finite lower bound or covariance factor
(a collapsed component's is NaN: :mod:`bayesgmm.covariance`) stops the loop, keeps the
last finite parameters and is reported in :class:`~bayesgmm.engines.FitInfo`
(``nonfinite``, ``bad_component``) for the facade to turn into an error that names the
component and the ``reg_covar`` that would help.

Progress (``verbose``): given a :class:`bayesgmm.progress.EMReport`, ``fit`` and
``fit_restarts`` compile a second program whose loop body ends in a
``jax.debug.callback``, so each iteration is reported on the host while the loop runs;
without one (the default) the program has no callback. ``fit_stream(progress=True)``
shows a tqdm bar.

The formulas are the host engine's (:mod:`bayesgmm.engines.numpy`): the table and
moments form of :mod:`bayesgmm.covariance` over jax.numpy, and
:func:`bayesgmm.engines.mixture_m_step` / :func:`~bayesgmm.engines.step_health`. This
module adds the compiled control flow (``while_loop``, ``vmap``, chunks, ``shard_map``,
streams) and the engines' shared interface (:mod:`bayesgmm.engines`): ``fit``,
``fit_restarts``, ``log_resp``, ``score_draws``, ``sample``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import density
from bayesgmm._typing import Array
from bayesgmm.compilation import jit
from bayesgmm.covariance import Prior, n_moment_features, ops
from bayesgmm.density import JAX, data_center
from bayesgmm.engines import (COLLAPSE_CHECK_EVERY, FitInfo, collapsed_members, mixture_m_step,
                              step_health)
from bayesgmm.params import GMMParams
from bayesgmm.progress import EMReport, bar, on_iteration, reporting
from bayesgmm.suffstats import (
    SuffStats,
    add,
    auto_chunk_size,
    e_step_stats,
    e_step_stats_chunked,
    feature_cache,
    feature_table,
    keeps_feature_table,
    mixture_center,
    recenter,
    resolve_kernel,
    scale,
)
from bayesgmm.suffstats import psum as psum_stats

__all__ = ["EMState", "FitInfo", "init", "e_step", "m_step", "step", "fit", "fit_restarts",
           "fit_sharded", "fit_stream", "online_update", "data_features", "log_resp",
           "score_draws", "sample", "TRACE_COUNT"]

# Bumped at trace time (Python side effect), so tests can count compilations.
TRACE_COUNT = {"fit": 0}


class EMState(NamedTuple):
    """Carried between iterations."""

    params: GMMParams
    lower_bound: Array  # ()  mean log-likelihood at the last E-step (-inf before the first)
    n_iter: Array  # ()  int32
    converged: Array  # ()  bool
    nonfinite: Array  # ()  bool: the last step produced NaN/inf (params not updated)
    bad_component: Array  # ()  int32: first component with a non-finite factor, else -1
    history: Array  # (max_iter,)  lower bound per iteration, NaN where not run
    # ()  bool: an E-step underflowed under the bound shift; later ones skip it (e_step)
    row_max_shift: Array
    nk: Array  # (K,)  effective counts of the E-step that made ``params`` (0 before)
    # ()  bool: the next E-step gives each row wholly to its most probable component (a
    # start from k-means centres; see ``fit(hard_start=...)``); it is not an iteration
    hard: Array
    # ()  bool: with ``stop_collapsed``, a component collapsed (collapsed_members, tested
    # every COLLAPSE_CHECK_EVERY iterations) and EM stopped there
    collapsed: Array


def init(params: GMMParams, max_iter: int, hard_start: Array | bool = False,
         lower_bound: Array | float = -jnp.inf) -> EMState:
    """The state before the first iteration; ``lower_bound`` is what the first
    iteration's change is measured from (a warm start's previous lower bound)."""
    dtype = params.means.dtype
    return EMState(
        params=params,
        lower_bound=jnp.asarray(lower_bound, dtype),
        n_iter=jnp.array(0, jnp.int32),
        converged=jnp.array(False),
        nonfinite=jnp.array(False),
        bad_component=jnp.array(-1, jnp.int32),
        history=jnp.full((max_iter,), jnp.nan, dtype),
        row_max_shift=jnp.array(False),
        nk=jnp.zeros(params.weights.shape, dtype),
        hard=jnp.asarray(hard_start, bool),
        collapsed=jnp.array(False),
    )


def e_step(params: GMMParams, X: Array, sample_weight: Array, chunk_size: int,
           axis_name: str | None = None, *, kernel: str = "auto",
           center: Array | None = None, bound_shift: bool = False,
           features: Array | None = None, row_max_shift: Array | bool = False,
           hard: Array | bool = False, guard_axis: str | None = None) -> SuffStats:
    """Sufficient statistics of the E-step, over row chunks of ``X (N, D)``; summed
    across devices when ``axis_name`` names a mapped axis (inside ``shard_map``).
    ``kernel``, ``center`` and ``features``: see :mod:`bayesgmm.suffstats`.

    ``bound_shift`` (static; moments and guarded kernels): the fast pass that shifts
    each ``exp`` by a bound on all log-densities instead of each row's maximum (one pass
    over the (C, K) block fewer: measured 243 -> 208 ms per iteration at N=1e6, D=8,
    K=32, float64). If any row underflowed (a point ~350 nats below the bound in
    float64, ~43 in float32), the pass is redone with row maxima (``lax.cond``) and
    ``n_underflow`` reports it; ``row_max_shift`` (traced bool, set by :func:`step` from
    then on) skips the fast try, so a fit whose data sit far below the bound (in
    float32: a compact component, whose peak sets the bound high) pays one pass more,
    once. float32 takes it too since the guarded kernel (measured, same sizes, CPU time
    side by side: diag 68-75 -> 62 ms, spherical 72-76 -> 56-61, full 113-119 -> 89-106
    an iteration); the guard's centred branch ignores the bound. Under ``vmap`` a
    ``cond`` runs both branches, so vmapped callers leave ``bound_shift`` off.

    ``hard`` (traced bool): each row goes wholly to its most probable component
    (:func:`bayesgmm.suffstats.e_step_stats`); that pass takes row maxima."""
    def stats_of(fast) -> SuffStats:
        stats = e_step_stats_chunked(params, X, sample_weight, chunk_size, kernel=kernel,
                                     center=center, bound_shift=fast, features=features,
                                     hard=hard, guard_axis=guard_axis)
        return stats if axis_name is None else psum_stats(stats, axis_name)

    if not bound_shift or resolve_kernel(kernel, X.dtype) == "centred":
        return stats_of(False)
    if center is None:
        center = mixture_center(params)  # the shift every attempt shares

    # One compiled pass, run once with the bound shift (or with row maxima once they are
    # known to be needed), and once more with row maxima if a row underflowed. Call
    # sites under a cond compiled the pass three times (measured, EM program at N=1e5,
    # D=8, K=20: lowering 0.14-0.20 -> 0.10 s, XLA 0.73 -> 0.65 s; same run time).
    def attempt(carry):
        use_bound, _, first_under, n = carry
        stats = stats_of(use_bound)
        return (jnp.asarray(False), stats,
                jnp.where(n == 0, stats.n_underflow, first_under), n + 1)

    def again(carry):
        _, stats, _, n = carry
        return (n == 0) | (stats.n_underflow > 0)

    use_bound = ~jnp.asarray(row_max_shift) & ~jnp.asarray(hard)  # a hard pass: row maxima
    start = (use_bound, _zero_moment_stats(params, X.dtype, center),
             jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    _, stats, first_under, _ = jax.lax.while_loop(again, attempt, start)
    return stats._replace(n_underflow=first_under)


def _zero_moment_stats(params: GMMParams, dtype, center) -> SuffStats:
    """Zero statistics shaped like the moments kernel's (the E-step loop's start)."""
    K, D = params.n_components, params.n_features
    table = ops(params.covariance_type, JAX)
    F2 = n_moment_features(D, table.full_moments) - 1 - D  # second-order features
    zero = jnp.zeros((), dtype)
    return SuffStats(jnp.zeros((K,), dtype), jnp.zeros((K, D), dtype),
                     table.unpack_second(jnp.zeros((K, F2), dtype)),
                     jnp.broadcast_to(jnp.asarray(center, dtype), (K, D)), zero, zero,
                     jnp.zeros((), jnp.int32))


def m_step(
    stats: SuffStats, *, covariance_type: str, reg_covar, previous: GMMParams | None = None,
    prior: Prior | None = None, equal_weights: bool = False,
) -> GMMParams:
    """Maximum-likelihood parameters from (centred) sufficient statistics:
    :func:`bayesgmm.engines.mixture_m_step` over jax.numpy; with ``prior`` the MAP
    M-step, with ``equal_weights`` weights 1/K (both as there).

    ``nk`` gets scikit-learn's ``10·eps`` so an empty component stays finite.
    With ``previous``, components whose previous weight is exactly 0 are inactive
    (padding; see :func:`bayesgmm.params.pad_components`): they keep weight 0 and their
    previous mean and factor, and take no part in the normalisation. A collapsed
    component's factor is NaN (:mod:`bayesgmm.covariance`).
    """
    return mixture_m_step(stats.nk, stats.sx, stats.sxx, stats.shift,
                          covariance_type=covariance_type, reg_covar=reg_covar,
                          previous=previous, xp=JAX, prior=prior,
                          equal_weights=equal_weights)


def step(X: Array, sample_weight: Array, state: EMState, *, reg_covar, tol,
         chunk_size: int, axis_name: str | None = None, kernel: str = "auto",
         center: Array | None = None, bound_shift: bool = False,
         features: Array | None = None, prior: Prior | None = None,
         equal_weights: bool = False, guard_axis: str | None = None) -> EMState:
    """One E-step + M-step; a non-finite result is flagged, not applied. ``prior``
    (MAP-EM) and ``equal_weights`` go to the M-step (:func:`m_step`); ``guard_axis``
    to the E-step (:func:`bayesgmm.suffstats.e_step_stats_chunked`).

    With ``state.hard`` the E-step assigns each row wholly (a hard start): its M-step
    gives the initial parameters, and it counts as no iteration (no lower bound, no
    history entry, no convergence test)."""
    params, hard = state.params, state.hard
    stats = e_step(params, X, sample_weight, chunk_size, axis_name, kernel=kernel,
                   center=center, bound_shift=bound_shift, features=features,
                   row_max_shift=state.row_max_shift, hard=hard, guard_axis=guard_axis)
    lower_bound = stats.sum_wll / stats.sum_w
    new = m_step(stats, covariance_type=params.covariance_type, reg_covar=reg_covar,
                 previous=params, prior=prior, equal_weights=equal_weights)
    ok, bad = _health(new, lower_bound)
    change = lower_bound - state.lower_bound
    counted = ~hard
    return EMState(
        params=jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params),
        lower_bound=jnp.where(ok & counted, lower_bound, state.lower_bound),
        n_iter=state.n_iter + counted.astype(jnp.int32),
        converged=ok & counted & (jnp.abs(change) < tol),
        nonfinite=~ok,
        bad_component=bad,
        history=state.history.at[state.n_iter].set(
            jnp.where(counted, lower_bound, state.history[state.n_iter])),
        row_max_shift=state.row_max_shift | (stats.n_underflow > 0),
        nk=jnp.where(ok, stats.nk, state.nk),
        hard=jnp.zeros_like(hard),
        collapsed=jnp.array(False),
    )


def _health(new: GMMParams, lower_bound) -> tuple[Array, Array]:
    """(whether the M-step result may be applied, the first bad component or -1):
    :func:`bayesgmm.engines.step_health`."""
    ok, component_ok = step_health(new, lower_bound, JAX)
    bad = jnp.where(jnp.all(component_ok), -1, jnp.argmin(component_ok)).astype(jnp.int32)
    return ok, bad


def _fit(X, params, sample_weight, tol, reg_covar, max_iter, chunk_size, axis_name=None,
         kernel="auto", center=None, vmapped=False, features=None, cache_features=None,
         hard_start=False, initial_lower_bound=-jnp.inf, report=False, restart=0,
         iter_offset=0, prior_arrays=None, prior_hyper=None, equal_weights=False,
         stop_collapsed=False):
    TRACE_COUNT["fit"] += 1
    prior = _join_prior(prior_hyper, prior_arrays)
    dtype = X.dtype
    params = params.astype(dtype)
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], dtype)
    sample_weight = sample_weight.astype(dtype)
    kernel = resolve_kernel(kernel, dtype)
    # Under vmap the guarded kernel's cond would run both branches, unless its predicate
    # is one for the whole batch: with the vmap's axis name (``vmapped`` a str) the guard
    # is taken over every member (the moments form only when it is exact for all of
    # them); without one, take the exact form.
    guard_axis = vmapped if isinstance(vmapped, str) else None
    if vmapped and kernel == "guarded" and guard_axis is None:
        kernel, features = "centred", None
    if kernel in ("moments", "guarded") and center is None:
        center = mixture_center(params)  # fixed for the whole fit
    cs = chunk_size or auto_chunk_size(X.shape[0], params.n_components, X.shape[1],
                                       dtype.itemsize, kernel)

    def cond(s: EMState):
        return (s.n_iter < max_iter) & ~s.converged & ~s.nonfinite & ~s.collapsed

    if features is None:  # fit_restarts passes the table its restarts share
        features = feature_cache(X, center, params.covariance_type, kernel, cache_features)
    fast = not vmapped  # see e_step
    body = lambda s: step(X, sample_weight, s, reg_covar=reg_covar, tol=tol, chunk_size=cs,
                          axis_name=axis_name, kernel=kernel, center=center, bound_shift=fast,
                          features=features, prior=prior, equal_weights=equal_weights,
                          guard_axis=guard_axis)
    if stop_collapsed:  # static: the default program has no test
        body = _collapse_checking_body(body, reg_covar, iter_offset)
    if report:  # static: the default program has no callback (bayesgmm.progress)
        body = _reporting_body(body, cond, restart, iter_offset)
    state = jax.lax.while_loop(cond, body,
                               init(params, max_iter, hard_start, initial_lower_bound))
    # No E-step after the loop: the counts come from the last applied one (one pass over
    # the data fewer, ~10% of a short fit, and two fewer copies of the E-step to compile).
    info = FitInfo(state.lower_bound, state.n_iter, state.converged, state.nonfinite,
                   state.bad_component, state.history, state.nk)
    return state.params, info


def _collapse_checking_body(body, reg_covar, iter_offset):
    """``body`` followed by the collapse test (``stop_collapsed``): after an applied,
    counted iteration whose number (counted from the fit's first, ``iter_offset`` for a
    small-EM continuation) is a multiple of
    :data:`~bayesgmm.engines.COLLAPSE_CHECK_EVERY`, whether the parameters have
    collapsed (:func:`bayesgmm.engines.collapsed_members`); the loop then stops. A
    ``cond``: the decompositions run only at a check (under ``vmap`` at every
    iteration, selected)."""
    def checking_body(s: EMState) -> EMState:
        new = body(s)
        check = ((new.n_iter > s.n_iter) & ~new.nonfinite
                 & ((new.n_iter + iter_offset) % COLLAPSE_CHECK_EVERY == 0))
        collapsed = jax.lax.cond(check,
                                 lambda: collapsed_members(new.params, new.nk, reg_covar, JAX),
                                 lambda: jnp.array(False))
        return new._replace(collapsed=collapsed)

    return checking_body


def _reporting_body(body, cond, restart, iter_offset):
    """``body`` followed by a host callback (:func:`bayesgmm.progress.on_iteration`)
    with this pass's iteration, change and stop. Under ``vmap`` the body also runs for
    restarts that have stopped; ``running`` (the loop condition before the pass) tells
    the host to ignore those."""
    def reporting_body(s: EMState) -> EMState:
        new = body(s)
        change = new.history[s.n_iter] - s.lower_bound  # the iteration's, as step's
        jax.debug.callback(on_iteration, restart, new.n_iter + iter_offset, change,
                           new.lower_bound, cond(s), ~s.hard, ~cond(new), new.converged)
        return new

    return reporting_body


_fit_jit = jit(_fit, static_argnames=("max_iter", "chunk_size", "kernel", "cache_features",
                                      "report", "prior_hyper", "equal_weights",
                                      "stop_collapsed"))


def _split_prior(prior: Prior | None, dtype) -> tuple[Array | None, tuple | None]:
    """``prior`` as its arrays ``(mean, scale)`` in ``dtype`` (traced: a sweep's
    priors, one per K, share one program) and its numbers and form ``(shrinkage, dof,
    form)`` (static: :func:`bayesgmm.covariance.prior_moments` branches on them)."""
    if prior is None:
        return None, None
    arrays = (np.asarray(prior.mean, dtype), np.asarray(prior.scale, dtype))
    return arrays, (float(prior.shrinkage), float(prior.dof), str(prior.form))


def _join_prior(hyper: tuple | None, arrays) -> Prior | None:
    """The inverse of :func:`_split_prior`, inside the compiled function."""
    if hyper is None:
        return None
    return Prior(hyper[0], arrays[0], hyper[1], arrays[1], hyper[2])


def fit(
    X: Array,
    params: GMMParams,
    *,
    sample_weight: Array | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
    kernel: str = "auto",
    cache_features: bool | None = None,
    hard_start: bool = False,
    initial_lower_bound: float = -float("inf"),
    report: EMReport | None = None,
    prior: Prior | None = None,
    equal_weights: bool = False,
    stop_collapsed: bool = False,
) -> tuple[GMMParams, FitInfo]:
    """Run EM from ``params`` until ``|Δ lower bound| < tol`` or ``max_iter`` iterations.

    Parameters
    ----------
    X : array of shape (N, D)
        Computation happens in X's dtype; ``params`` is cast to it.
    params : GMMParams
        Batch shape ``()``: the initial parameters.
    sample_weight : array of shape (N,), optional
        Non-negative weights; integer weights equal repeating rows.
    tol, reg_covar : float
        Traced: changing them does not recompile.
    max_iter, chunk_size : int
        Static. ``chunk_size=None`` picks one from the shapes (see
        :func:`bayesgmm.suffstats.auto_chunk_size`).
    kernel : {"auto", "centred", "moments", "guarded"}
        Static. ``"auto"``: moments in float64, guarded in float32 (the moments form
        where its round-off is within :data:`bayesgmm.suffstats.GUARD`, else the
        centred form; :mod:`bayesgmm.suffstats` explains them).
    cache_features : bool, optional
        Static; moments kernel. Keep the features of all rows for the whole fit
        (N x (1 + D + D(D+1)/2) values) instead of recomputing them every iteration.
        ``None``: when they fit in :data:`bayesgmm.suffstats.FEATURE_CACHE_BYTES`.
        ``False`` keeps memory O(chunk_size) whatever N.
    hard_start : bool
        Traced. Start from a hard assignment: a first pass gives each row wholly to its
        most probable component under ``params``, and EM starts from the M-step of
        those labels; that pass is not counted in ``n_iter``. With ``params`` from
        :func:`bayesgmm.initialize.params_from_centers` (equal weights, identity
        covariances), the labels are the nearest centre's, so k-means centres start EM
        as scikit-learn's ``init_params="kmeans"`` does.
    initial_lower_bound : float
        Traced. What the first iteration's change is measured from: ``-inf`` (a fresh
        fit), or a warm start's previous lower bound, so that a fit whose first
        iteration changes the bound by less than ``tol`` stops there (scikit-learn's
        ``warm_start``).
    report : bayesgmm.progress.EMReport, optional
        Report each iteration live (``verbose``): the loop body then ends in a
        ``jax.debug.callback`` to the host (:mod:`bayesgmm.progress`; a second program,
        compiled once). ``None`` (default): the program has no callback.
    prior : bayesgmm.covariance.Prior, optional
        MAP-EM: every M-step is the MAP one (:func:`bayesgmm.engines.mixture_m_step`).
        ``mean`` and ``scale`` are traced, ``shrinkage`` and ``dof`` static. The lower
        bound stays the mean log-likelihood (what the stopping rule uses, as mclust's).
    equal_weights : bool
        Static. The weights stay 1/K (mclust's ``equalPro``).
    stop_collapsed : bool
        Static. Stop where the fit has collapsed, tested every
        :data:`~bayesgmm.engines.COLLAPSE_CHECK_EVERY` iterations
        (:func:`bayesgmm.engines.collapsed_members`), as mclust stops a singular fit;
        it is then not converged.

    In float64 each E-step first tries a cheaper softmax shift and redoes the pass if a
    row underflows (a ``lax.cond``; see :func:`e_step`). Under your own ``jax.vmap`` of
    this function that ``cond`` evaluates both branches: for restarts, use
    :func:`fit_restarts`, which leaves the fast try off.

    Returns
    -------
    params : GMMParams
        After the last M-step (the last finite one if a step went non-finite).
    info : FitInfo
    """
    arrays, hyper = _split_prior(prior, X.dtype)
    sample_weight, kernel, cache_features = _program_options(
        X, params, sample_weight, kernel, cache_features)
    run = lambda: _fit_jit(X, params, sample_weight, tol, reg_covar,  # noqa: E731
                           max_iter=max_iter, chunk_size=chunk_size, kernel=kernel,
                           cache_features=cache_features, hard_start=hard_start,
                           initial_lower_bound=initial_lower_bound,
                           report=report is not None, prior_arrays=arrays,
                           prior_hyper=hyper, equal_weights=bool(equal_weights),
                           stop_collapsed=bool(stop_collapsed))
    return _reported(run, report, 1)


def _program_options(X, params: GMMParams, sample_weight, kernel: str,
                     cache_features: bool | None) -> tuple[Array, str, bool]:
    """The arguments of the EM program in the one form each takes, so that calls which
    build the same program share one compiled program (JAX keys its cache on static
    arguments by value and on the pytree structure of the traced ones): the weights
    always an array (ones for ``None``: the program for unweighted data is the weighted
    one), the kernel resolved (``"auto"`` is ``"moments"`` or ``"guarded"`` by dtype)
    and ``cache_features`` the bool it resolves to (``None`` keeps the table when it fits
    the budget; the centred kernel keeps none). Raises ``ValueError`` for an unknown
    kernel, as :func:`bayesgmm.suffstats.resolve_kernel` does.

    Returns
    -------
    sample_weight : array of shape (N,)
    kernel : str
    cache_features : bool
    """
    # the dtype the program computes in (float64 input is float32 without x64)
    dtype = jax.dtypes.canonicalize_dtype(X.dtype)
    kernel = resolve_kernel(kernel, dtype)
    cache = keeps_feature_table(jax.ShapeDtypeStruct(X.shape, dtype), params.covariance_type,
                                kernel, cache_features)
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], dtype)
    return sample_weight, kernel, cache


def _reported(run, report: EMReport | None, n_restarts: int):
    """``run()`` with ``report``'s starts printed first and the loop's callbacks sent
    to it until the results are ready (JAX dispatches asynchronously)."""
    if report is None:
        return run()
    for r in range(n_restarts):
        report.start(r, labelled=n_restarts > 1)
    with reporting(report):
        return jax.block_until_ready(run())


#: The vmap axis of restarts: the guarded kernel's guard is taken over all of them
#: (``_fit``), so its cond stays one branch per pass under vmap.
_RESTARTS = "restarts"


def _fit_restarts(X, params, sample_weight, tol, reg_covar, max_iter, chunk_size,
                  screen_iter=0, kernel="auto", cache_features=None, shared=None,
                  hard_start=False, initial_lower_bound=-jnp.inf, report=False,
                  prior_arrays=None, prior_hyper=None, equal_weights=False,
                  stop_collapsed=False):
    kernel = resolve_kernel(kernel, X.dtype)
    if shared is not None:  # data_features: a table made once for many fits
        center, features = shared
    else:
        # One shift for every restart, so the moments kernel's features T(x) are computed
        # once (per fit, or per chunk without the cache) and shared by the restarts.
        center = (jnp.mean(jax.vmap(mixture_center)(params.astype(X.dtype)), axis=0)
                  if kernel in ("moments", "guarded") else None)
        features = feature_cache(X, center, params.covariance_type, kernel, cache_features)

    def fit(q, tol, n, vmapped=_RESTARTS, hard=hard_start, lower_bound=initial_lower_bound,
            restart=0, iter_offset=0):
        return _fit(X, q, sample_weight, tol, reg_covar, n, chunk_size, kernel=kernel,
                    center=center, vmapped=vmapped, features=features,
                    cache_features=cache_features, hard_start=hard,
                    initial_lower_bound=lower_bound, report=report, restart=restart,
                    iter_offset=iter_offset, prior_arrays=prior_arrays,
                    prior_hyper=prior_hyper, equal_weights=equal_weights,
                    stop_collapsed=stop_collapsed)

    R = params.weights.shape[0]
    restarts = jnp.arange(R, dtype=jnp.int32)  # each restart's index, for its report

    def run_all(p, n):
        return jax.vmap(lambda q, r: fit(q, tol, n, restart=r), axis_name=_RESTARTS)(p, restarts)

    def best_index(infos, screened=False):
        score = jnp.where(infos.nonfinite, -jnp.inf, infos.lower_bound)
        if screened and stop_collapsed:  # a start that collapsed in screening stopped
            # short: it loses to those that did not (as a fit's collapsed candidates do)
            short = ~infos.nonfinite & (infos.n_iter < screen_iter)
            score = jnp.where(short & ~short.all(), -jnp.inf, score)
        return jnp.argmax(score)  # first maximum, like scikit-learn's strict '>'

    def best_of(all_params, infos, screened=False):
        pick = lambda a: a[best_index(infos, screened)]
        return jax.tree_util.tree_map(pick, all_params), jax.tree_util.tree_map(pick, infos)

    if R == 1:  # one start (n_init=1): no vmap, so EM takes the bound-shift fast path
        p, info = fit(jax.tree_util.tree_map(lambda a: a[0], params), tol, max_iter,
                      vmapped=False)
        return p, info, jax.tree_util.tree_map(lambda a: a[None], info)
    if not screen_iter or screen_iter >= max_iter:
        all_params, infos = run_all(params, max_iter)
        best_params, best_info = best_of(all_params, infos)
        return best_params, best_info, infos
    # Small-EM (Biernacki, Celeux & Govaert 2003): every restart runs `screen_iter`
    # iterations (tol=-1: none stops early), then only the best continues.
    short_params, short_infos = jax.vmap(lambda q, r: fit(q, -1.0, screen_iter, restart=r),
                                         axis_name=_RESTARTS)(params, restarts)
    start, start_info = best_of(short_params, short_infos, screened=True)
    p, info = fit(start, tol, max_iter - screen_iter, vmapped=False, hard=False,
                  lower_bound=-jnp.inf, restart=best_index(short_infos, screened=True),
                  iter_offset=start_info.n_iter)
    info = info._replace(n_iter=info.n_iter + start_info.n_iter,
                         history=jnp.concatenate([start_info.history, info.history]))
    return p, info, short_infos


_fit_restarts_jit = jit(_fit_restarts,
                        static_argnames=("max_iter", "chunk_size", "screen_iter", "kernel",
                                         "cache_features", "report", "prior_hyper",
                                         "equal_weights", "stop_collapsed"))


def fit_restarts(
    X: Array,
    params: GMMParams,
    *,
    sample_weight: Array | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
    screen_iter: int = 0,
    kernel: str = "auto",
    cache_features: bool | None = None,
    shared: tuple[Array, Array] | None = None,
    hard_start: bool = False,
    initial_lower_bound: float = -float("inf"),
    report: EMReport | None = None,
    prior: Prior | None = None,
    equal_weights: bool = False,
    stop_collapsed: bool = False,
) -> tuple[GMMParams, FitInfo, FitInfo]:
    """``fit`` vmapped over restarts; returns the best by lower bound.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``(R,)``: one initialisation per restart.
    screen_iter : int, default 0
        0: every restart runs to convergence (scikit-learn's semantics; a vmapped loop
        runs until the slowest restart stops). > 0: small-EM, every restart runs
        ``screen_iter`` iterations, then only the best continues; on a CPU this costs
        about ``R·screen_iter + n_iter`` iterations instead of ``R·max(n_iter)``.
    cache_features : bool, optional
        As in :func:`fit`; one table serves every restart.
    shared : (center, features), optional
        From :func:`data_features` of the same ``X`` and weights: the moments kernel's
        shift and feature table, made once and reused by every fit that passes them
        (a BIC sweep's; 11 ms a fit at N=1e5, D=8, mostly page faults on the fresh
        36 MB table).
    hard_start : bool
        Traced. Every restart starts from a hard assignment, as in :func:`fit`.
    initial_lower_bound : float
        Traced. As in :func:`fit`, for every restart.
    report : bayesgmm.progress.EMReport, optional
        As in :func:`fit`: every restart is reported live, each line naming its
        initialisation when R > 1 (they run together); small-EM reports the screening
        of every restart, then the winner's continuation.
    prior, equal_weights, stop_collapsed
        As in :func:`fit`, for every restart.

    Returns
    -------
    best_params : GMMParams
        Batch shape ``()``.
    best_info : FitInfo
        Of the winning restart.
    all_info : FitInfo
        Every restart's, with leading axis R.
    """
    arrays, hyper = _split_prior(prior, X.dtype)
    sample_weight, kernel, cache_features = _program_options(
        X, params, sample_weight, kernel, cache_features)
    run = lambda: _fit_restarts_jit(  # noqa: E731
        X, params, sample_weight, tol, reg_covar, max_iter=max_iter, chunk_size=chunk_size,
        screen_iter=screen_iter, kernel=kernel, cache_features=cache_features, shared=shared,
        hard_start=hard_start, initial_lower_bound=initial_lower_bound,
        report=report is not None, prior_arrays=arrays, prior_hyper=hyper,
        equal_weights=bool(equal_weights), stop_collapsed=bool(stop_collapsed))
    return _reported(run, report, params.weights.shape[0])


def _fit_resamples(X, params, sample_weights, tol, reg_covar, max_iter, x_batched,
                   chunk_size=None, kernel="auto", prior_arrays=None, prior_hyper=None,
                   equal_weights=False, stop_collapsed=False):
    one = lambda x, w: _fit(x, params, w, tol, reg_covar, max_iter, chunk_size,
                            kernel=kernel, vmapped=True, prior_arrays=prior_arrays,
                            prior_hyper=prior_hyper, equal_weights=equal_weights,
                            stop_collapsed=stop_collapsed)
    return jax.vmap(one, in_axes=(0 if x_batched else None, 0))(X, sample_weights)


_fit_resamples_jit = jit(_fit_resamples, static_argnames=(
    "max_iter", "x_batched", "chunk_size", "kernel", "prior_hyper", "equal_weights",
    "stop_collapsed"))


def fit_resamples(X: Array, params: GMMParams, sample_weights: Array, *, tol: float = 1e-3,
                  reg_covar: float = 1e-6, max_iter: int = 100, chunk_size: int | None = None,
                  kernel: str = "auto", prior: Prior | None = None,
                  equal_weights: bool = False, stop_collapsed: bool = False
                  ) -> tuple[GMMParams, FitInfo]:
    """EM from one start on B resamples of the data, as one vmapped program (the
    bootstrap: :mod:`bayesgmm.bootstrap`).

    Parameters
    ----------
    X : array of shape (N, D), or (B, N, D) for B different data sets
    params : GMMParams
        Batch shape ``()``: the start of every refit.
    sample_weights : array of shape (B, N)
        Each resample's row weights (multinomial counts for the bootstrap).
    chunk_size, kernel, prior, equal_weights, stop_collapsed
        As in :func:`fit`: the settings of the fit being resampled, so that every
        refit runs its M-step (MAP with ``prior``; weights 1/K with ``equal_weights``)
        and stops where the fit would (``stop_collapsed``).

    Returns
    -------
    params : GMMParams with batch shape (B,)
    info : FitInfo with leading dim B
    """
    X = jnp.asarray(X)
    arrays, hyper = _split_prior(prior, X.dtype)
    return _fit_resamples_jit(X, params.astype(X.dtype), jnp.asarray(sample_weights, X.dtype),
                              tol, reg_covar, max_iter=max_iter, x_batched=X.ndim == 3,
                              chunk_size=chunk_size, kernel=kernel, prior_arrays=arrays,
                              prior_hyper=hyper, equal_weights=bool(equal_weights),
                              stop_collapsed=bool(stop_collapsed))


def _data_features_impl(X, sample_weight, covariance_type):
    center = data_center(X, sample_weight)
    return center, feature_table(X, center, covariance_type)


_data_features = jit(_data_features_impl, static_argnames=("covariance_type",))


def data_features(X: Array, sample_weight: Array, covariance_type: str,
                  kernel: str = "auto") -> tuple[Array, Array] | None:
    """The moments kernel's shift (the weighted data mean) and feature table of ``X``,
    for ``fit_restarts(..., shared=...)``; ``None`` where EM would not keep a table
    (centred kernel, or a table over :data:`~bayesgmm.suffstats.FEATURE_CACHE_BYTES`).
    Any shift is exact algebra; the data mean is what the initial parameters' mixture
    centre equals up to round-off."""
    if not keeps_feature_table(X, covariance_type, resolve_kernel(kernel, X.dtype)):
        return None
    return _data_features(X, sample_weight, covariance_type)


# ---- scale: sharded, streamed and online EM (same statistics, different sums) -----------


def fit_sharded(
    X,
    params: GMMParams,
    *,
    sample_weight=None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
    mesh=None,
) -> tuple[GMMParams, FitInfo]:
    """Data-parallel EM: rows sharded over the devices of ``mesh`` (axis ``"data"``),
    statistics summed with ``psum`` each iteration, parameters replicated.

    Every device runs the same ``while_loop`` on identical (psum'd) statistics, so the
    result equals single-device EM to float tolerance. ``mesh`` defaults to all local
    devices. For several hosts, call ``jax.distributed.initialize()`` on each first and
    pass a mesh over ``jax.devices()`` (global); X must then be a global array sharded
    by rows (``jax.make_array_from_process_local_data``) with ``sample_weight`` sharded
    the same way: :func:`bayesgmm.distributed.fit_distributed` does all of it.
    """
    from jax.sharding import NamedSharding, PartitionSpec as P

    if mesh is None:
        mesh = jax.make_mesh((jax.device_count(),), ("data",))
    if isinstance(X, jax.Array) and not X.is_fully_addressable:
        # A global array over several processes (bayesgmm.distributed builds it, with
        # its weights): already sharded by rows; the parameters are host constants.
        run = _sharded_runner(mesh, max_iter, chunk_size)
        return run(X, params.to_numpy(X.dtype), sample_weight, np.asarray(tol, X.dtype),
                   np.asarray(reg_covar, X.dtype))
    n_dev = mesh.shape["data"]
    X = jnp.asarray(X)
    dtype = X.dtype
    w = jnp.ones(X.shape[0], dtype) if sample_weight is None else jnp.asarray(sample_weight,
                                                                               dtype)
    pad = (-X.shape[0]) % n_dev  # zero-weight rows so every device gets the same count
    if pad:
        X = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad, X.shape[1]))])
        w = jnp.concatenate([w, jnp.zeros(pad, dtype)])
    X = jax.device_put(X, NamedSharding(mesh, P("data", None)))
    w = jax.device_put(w, NamedSharding(mesh, P("data")))
    run = _sharded_runner(mesh, max_iter, chunk_size)
    return run(X, params.astype(dtype), w, jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype))


_SHARDED: dict = {}


def _sharded_runner(mesh, max_iter, chunk_size):
    from jax.sharding import PartitionSpec as P

    key = (mesh, max_iter, chunk_size)
    if key not in _SHARDED:
        def local(X, params, w, tol, reg):
            return _fit(X, params, w, tol, reg, max_iter, chunk_size, axis_name="data")

        mapped = jax.shard_map(local, mesh=mesh, in_specs=(P("data", None), P(), P("data"), P(),
                                                           P()),
                               out_specs=P(), check_vma=False)
        _SHARDED[key] = jit(mapped)
    return _SHARDED[key]


def fit_stream(
    source,
    params: GMMParams,
    *,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int = 65536,
    dtype=None,
    callback=None,
    progress: bool = False,
) -> tuple[GMMParams, FitInfo]:
    """Exact batch EM over data larger than memory: every iteration streams the data once,
    summing the same sufficient statistics chunk by chunk, then takes one M-step.

    Parameters
    ----------
    source : array-like (N, D) (e.g. ``np.memmap``), or a callable returning a fresh
        iterable of ``X_chunk`` or ``(X_chunk, weight_chunk)`` blocks on every call.
    chunk_size : int
        Rows per device transfer for array sources; blocks from an iterable are padded
        to a multiple of it, so one compiled program serves every block.
    callback : callable(n_iter, lower_bound), optional
        Progress report after every iteration.
    progress : bool, default False
        A tqdm bar on stderr (:func:`bayesgmm.progress.bar`): one tick per iteration
        (one pass over the data), out of ``max_iter``, with the lower bound and the
        blocks read so far.
    """
    dtype = np.dtype(dtype or params.dtype)
    table_params = params.astype(dtype)
    state_lb, history = -np.inf, []
    converged = nonfinite = False
    n_iter = 0
    nk = None
    bad = -1
    with bar(max_iter, "streamed EM", progress, unit="pass") as shown:
        for n_iter in range(1, max_iter + 1):
            total, n_blocks = None, 0
            for Xc, wc in _blocks(source, chunk_size, dtype):
                s = _e_step_stats_jit(table_params, Xc, wc)
                total = s if total is None else _add_jit(total, s)
                n_blocks += 1
            lb = float(total.sum_wll / total.sum_w)
            shown.set_postfix_str(f"lower bound {lb:.5f}, {n_blocks} blocks", refresh=False)
            shown.update()
            new, ok, bad = _m_step_stream_jit(total, table_params, reg_covar)
            history.append(lb)
            if not bool(ok):
                nonfinite = True
                break
            nk = np.asarray(total.nk)
            table_params = new
            converged = abs(lb - state_lb) < tol
            state_lb = lb
            if callback is not None:
                callback(n_iter, lb)
            if converged:
                break
    hist = np.full(max_iter, np.nan)
    hist[: len(history)] = history
    K = params.n_components
    info = FitInfo(np.asarray(state_lb), np.asarray(n_iter), np.asarray(converged),
                   np.asarray(nonfinite), np.asarray(int(bad) if nonfinite else -1), hist,
                   nk if nk is not None else np.zeros(K))
    return table_params, info


def online_update(stats: SuffStats | None, params: GMMParams, X, sample_weight, *,
                  step_size, reg_covar, equal_weights: bool = False
                  ) -> tuple[SuffStats, GMMParams]:
    """Stepwise (online) EM (Cappé & Moulines 2009): blend this batch's normalised
    statistics into the running ones with weight ``step_size``, then one M-step
    (weights 1/K with ``equal_weights``, static).

    ``stats`` is None on the first batch. Returns the new running statistics and params.
    No prior here: the running statistics are per unit weight, so a prior's counts
    would have no sample size to be weighed against.
    """
    return _online_jit(stats, params, X, sample_weight, step_size, reg_covar,
                       equal_weights=bool(equal_weights))


def _online(stats, params, X, w, rho, reg, equal_weights=False):
    batch = e_step_stats(params, X, w)
    batch = scale(batch, 1.0 / batch.sum_w)
    if stats is not None:
        old = recenter(stats, batch.shift, params.covariance_type)
        batch = add(scale(old, 1.0 - rho), scale(batch, rho))
    new = m_step(batch, covariance_type=params.covariance_type, reg_covar=reg, previous=params,
                 equal_weights=equal_weights)
    return batch, new


def _blocks(source, chunk_size, dtype):
    """(X_block, w_block) of exactly ``chunk_size`` rows (zero-weight padding)."""
    def padded(Xc, wc):
        n = Xc.shape[0]
        if n == chunk_size:
            return Xc, wc
        pad = chunk_size - n
        return (np.concatenate([Xc, np.zeros((pad, Xc.shape[1]), dtype)]),
                np.concatenate([wc, np.zeros(pad, dtype)]))

    def split(Xc, wc):
        for start in range(0, Xc.shape[0], chunk_size):
            yield padded(Xc[start:start + chunk_size], wc[start:start + chunk_size])

    if callable(source):
        for block in source():
            Xc, wc = block if isinstance(block, tuple) else (block, None)
            Xc = np.asarray(Xc, dtype)
            wc = np.ones(Xc.shape[0], dtype) if wc is None else np.asarray(wc, dtype)
            yield from split(Xc, wc)
    else:
        for start in range(0, source.shape[0], chunk_size):
            Xc = np.asarray(source[start:start + chunk_size], dtype)
            yield padded(Xc, np.ones(Xc.shape[0], dtype))


def _m_step_stream(stats, previous, reg):
    """M-step of streamed EM with the same health check as :func:`step`."""
    new = m_step(stats, covariance_type=previous.covariance_type, reg_covar=reg,
                 previous=previous)
    ok, bad = _health(new, stats.sum_wll / stats.sum_w)
    return new, ok, bad


_e_step_stats_jit = jit(e_step_stats)
_add_jit = jit(add)
_m_step_stream_jit = jit(_m_step_stream)
_online_jit = jit(_online, static_argnames=("equal_weights",))


# ---- scoring and sampling: the engines' shared interface (bayesgmm.engines) ----------


def log_resp(params: GMMParams, X: Array) -> tuple[Array, Array]:
    """:func:`bayesgmm.density.log_resp`, compiled: log p(z = k | x) (*B, N, K) and
    log p(x) (*B, N), in X's dtype."""
    return _log_resp_jit(params, X)


def score_draws(params: GMMParams, X: Array) -> Array:
    """log p(x_n | θ_m) (M, N) for M parameter sets (batch shape ``(M,)``), compiled
    (:func:`bayesgmm.density.score_samples`)."""
    return _score_samples_jit(params, X)


def sample(key: Array, params: GMMParams, n_samples: int) -> tuple[Array, Array]:
    """:func:`bayesgmm.density.sample`, compiled (``n_samples`` is static: each new
    value compiles; :func:`bayesgmm.engines.numpy.sample` compiles nothing)."""
    return _sample_jit(key, params, n_samples=int(n_samples))


_log_resp_jit = jit(density.log_resp)
_score_samples_jit = jit(density.score_samples)
_sample_jit = jit(density.sample, static_argnames=("n_samples",))
