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
stops the loop, keeps the last finite parameters and is reported in
:class:`FitInfo` (``nonfinite``, ``bad_component``) for the facade to turn into an
error that names the component and the ``reg_covar`` that would help.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesgmm._typing import Array
from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams, select_components
from bayesgmm.suffstats import SuffStats, auto_chunk_size, chunk, e_step_stats_chunked

__all__ = ["EMState", "FitInfo", "init", "e_step", "m_step", "step", "fit", "fit_restarts",
           "TRACE_COUNT"]

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


class FitInfo(NamedTuple):
    """Reported after the loop; never carried."""

    lower_bound: Array  # ()
    n_iter: Array  # () int32
    converged: Array  # () bool
    nonfinite: Array  # () bool
    bad_component: Array  # () int32, -1 if none
    history: Array  # (max_iter,) NaN-padded
    nk: Array  # (K,) effective sample count per component at the last E-step


def init(params: GMMParams, max_iter: int) -> EMState:
    dtype = params.means.dtype
    return EMState(
        params=params,
        lower_bound=jnp.array(-jnp.inf, dtype),
        n_iter=jnp.array(0, jnp.int32),
        converged=jnp.array(False),
        nonfinite=jnp.array(False),
        bad_component=jnp.array(-1, jnp.int32),
        history=jnp.full((max_iter,), jnp.nan, dtype),
    )


def e_step(params: GMMParams, Xb: Array, wb: Array) -> SuffStats:
    """Sufficient statistics of the E-step over chunked data ``Xb (n_chunks, C, D)``."""
    return e_step_stats_chunked(params, Xb, wb)


def m_step(
    stats: SuffStats, *, covariance_type: str, reg_covar, previous: GMMParams | None = None
) -> GMMParams:
    """Maximum-likelihood parameters from (centred) sufficient statistics.

    ``nk`` gets scikit-learn's ``10·eps`` so an empty component stays finite.
    With ``previous``, components whose previous weight is exactly 0 are inactive
    (padding; see :func:`bayesgmm.params.pad_components`): they keep weight 0 and their
    previous mean and factor, and take no part in the normalisation.
    """
    dtype = stats.sx.dtype
    nk = stats.nk + 10 * jnp.finfo(dtype).eps
    mass = nk if previous is None else jnp.where(previous.weights > 0, nk, 0.0)
    delta = stats.sx / nk[:, None]  # (K, D) mean minus shift
    means = stats.shift + delta
    weights = mass / jnp.sum(mass)
    reg = jnp.asarray(reg_covar, dtype)
    factor = ops(covariance_type).factor_from_moments(stats.sxx, nk, delta, jnp.sum(mass), reg)
    new = GMMParams(weights, means, factor, covariance_type)
    if previous is None:
        return new
    return select_components(previous.weights > 0, new, previous)


def step(Xb: Array, wb: Array, state: EMState, *, reg_covar, tol) -> EMState:
    """One E-step + M-step; a non-finite result is flagged, not applied."""
    params = state.params
    stats = e_step(params, Xb, wb)
    lower_bound = stats.sum_wll / stats.sum_w
    new = m_step(stats, covariance_type=params.covariance_type, reg_covar=reg_covar,
                 previous=params)
    comp_ok = ops(new.covariance_type).factor_ok(new.cov_factor, new.n_components)
    ok = jnp.isfinite(lower_bound) & jnp.all(comp_ok) & jnp.all(jnp.isfinite(new.means))
    bad = jnp.where(jnp.all(comp_ok), -1, jnp.argmin(comp_ok)).astype(jnp.int32)
    change = lower_bound - state.lower_bound
    return EMState(
        params=jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params),
        lower_bound=jnp.where(ok, lower_bound, state.lower_bound),
        n_iter=state.n_iter + 1,
        converged=ok & (jnp.abs(change) < tol),
        nonfinite=~ok,
        bad_component=bad,
        history=state.history.at[state.n_iter].set(lower_bound),
    )


def _fit(X, params, sample_weight, tol, reg_covar, max_iter, chunk_size):
    TRACE_COUNT["fit"] += 1
    dtype = X.dtype
    params = params.astype(dtype)
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], dtype)
    cs = chunk_size or auto_chunk_size(X.shape[0], params.n_components, X.shape[1],
                                       dtype.itemsize)
    Xb, wb = chunk(X, sample_weight.astype(dtype), cs)

    def cond(s: EMState):
        return (s.n_iter < max_iter) & ~s.converged & ~s.nonfinite

    body = lambda s: step(Xb, wb, s, reg_covar=reg_covar, tol=tol)
    state = jax.lax.while_loop(cond, body, init(params, max_iter))
    nk = e_step(state.params, Xb, wb).nk
    info = FitInfo(state.lower_bound, state.n_iter, state.converged, state.nonfinite,
                   state.bad_component, state.history, nk)
    return state.params, info


_fit_jit = jax.jit(_fit, static_argnames=("max_iter", "chunk_size"))


def fit(
    X: Array,
    params: GMMParams,
    *,
    sample_weight: Array | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
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
        Static. ``chunk_size=None`` picks one from the shapes (64 MiB of scratch).

    Returns
    -------
    params : GMMParams
        After the last M-step (the last finite one if a step went non-finite).
    info : FitInfo
    """
    return _fit_jit(X, params, sample_weight, tol, reg_covar, max_iter=max_iter,
                    chunk_size=chunk_size)


def _fit_restarts(X, params, sample_weight, tol, reg_covar, max_iter, chunk_size):
    fit_one = lambda p: _fit(X, p, sample_weight, tol, reg_covar, max_iter, chunk_size)
    all_params, infos = jax.vmap(fit_one)(params)
    score = jnp.where(infos.nonfinite, -jnp.inf, infos.lower_bound)
    best = jnp.argmax(score)  # first maximum, like scikit-learn's strict '>'
    pick = lambda a: a[best]
    return jax.tree_util.tree_map(pick, all_params), jax.tree_util.tree_map(pick, infos), infos


_fit_restarts_jit = jax.jit(_fit_restarts, static_argnames=("max_iter", "chunk_size"))


def fit_restarts(
    X: Array,
    params: GMMParams,
    *,
    sample_weight: Array | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    chunk_size: int | None = None,
) -> tuple[GMMParams, FitInfo, FitInfo]:
    """``fit`` vmapped over restarts; returns the best by lower bound.

    Parameters
    ----------
    params : GMMParams
        Batch shape ``(R,)``: one initialisation per restart.

    Returns
    -------
    best_params : GMMParams
        Batch shape ``()``.
    best_info : FitInfo
        Of the winning restart.
    all_info : FitInfo
        Every restart's, with leading axis R.
    """
    return _fit_restarts_jit(X, params, sample_weight, tol, reg_covar, max_iter=max_iter,
                             chunk_size=chunk_size)
