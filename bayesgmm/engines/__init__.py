"""Two engines for one EM, the interface they share, and the choice between them.

Glossary: N samples, D features, K components, R restarts, M parameter sets.

``numpy``  on the host, in float64 NumPy: small data, nothing to compile
``jax``    compiled: ``lax.while_loop``, vmapped restarts, chunks, ``shard_map``, streams
``choose`` which engine runs a piece of work, at what padded size: every threshold

Both engines run the same formulas: the per-type table and the moments form of
:mod:`bayesgmm.covariance`, written once over an array namespace, and the M-step and
step health below. They differ in control flow (a Python loop against
``lax.while_loop``) and in what they were built for (float64 on the host; any dtype,
chunks and devices compiled).

The interface
-------------
Each engine module implements these functions with these parameters (:data:`INTERFACE`;
``tests/test_engines.py`` holds both to it). An engine may add keyword-only options with
defaults (the compiled engine's ``chunk_size``, ``kernel``, ``cache_features``,
``shared``).

``fit(X, params, *, sample_weight=None, tol=1e-3, reg_covar=1e-6, max_iter=100,
hard_start=False, initial_lower_bound=-inf, report=None) -> (GMMParams, FitInfo)``
    EM from ``params`` (batch shape ``()``) until the lower bound changes by less than
    ``tol`` or ``max_iter`` iterations; scikit-learn's iterations. ``X (N, D)``;
    ``sample_weight (N,)``; ``hard_start``: a first pass gives each row wholly to its
    most probable component (k-means labels), not counted as an iteration;
    ``initial_lower_bound``: what the first iteration's change is measured from (a warm
    start's previous lower bound, as scikit-learn's ``warm_start``); ``report``: a
    :class:`bayesgmm.progress.EMReport` told of every iteration as it ends
    (``verbose``; on the compiled engine through a host callback in the loop, present
    only when a report is given).
``fit_restarts(X, params, *, sample_weight=None, tol=1e-3, reg_covar=1e-6, max_iter=100,
screen_iter=0, hard_start=False, initial_lower_bound=-inf, report=None) -> (GMMParams,
FitInfo, FitInfo)``
    ``fit`` from each of R starts (batch shape ``(R,)``): the best by lower bound (the
    first maximum; non-finite fits lose), its info, and every restart's info (leading
    axis R). ``screen_iter > 0``: small-EM (every start runs that many iterations, the
    best continues).
``log_resp(params, X) -> (log_resp (N, K), log_norm (N,))``
    log p(z = k | x) and log p(x) of one parameter set.
``score_draws(params, X) -> (M, N)``
    log p(x_n | θ_m) for M parameter sets (batch shape ``(M,)``), e.g. posterior draws.
``sample(rng, params, n_samples) -> (X (n, D), labels (n,))``
    Draws from one parameter set. ``rng``: the engine's random source (a
    ``numpy.random.Generator`` on the host; a JAX key for the compiled engine, which
    names it ``key``).

Results are :class:`FitInfo` (below). The host engine also runs k-means' Lloyd
iterations (``lloyd``, ``lloyd_batch``; compiled: :func:`bayesgmm.initialize.lloyd_batch`)
and the criteria's data terms (``criteria_terms``; compiled:
:func:`bayesgmm.selection.criteria_terms`), and gives scikit-learn's covariance
attributes (``sklearn_covariances``).

Nothing in this package's ``__init__`` imports JAX.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from bayesgmm._xp import get_namespace
from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams, select_components

__all__ = ["FitInfo", "INTERFACE", "mixture_m_step", "step_health"]

Array = Any  # a NumPy or JAX array

#: The functions both engines implement: name -> parameters every implementation has,
#: in order (see the module docstring). ``sample``'s first parameter is the engine's
#: random source, whatever its name.
INTERFACE: dict[str, tuple[str, ...]] = {
    "fit": ("X", "params", "sample_weight", "tol", "reg_covar", "max_iter", "hard_start",
            "initial_lower_bound", "report"),
    "fit_restarts": ("X", "params", "sample_weight", "tol", "reg_covar", "max_iter",
                     "screen_iter", "hard_start", "initial_lower_bound", "report"),
    "log_resp": ("params", "X"),
    "score_draws": ("params", "X"),
    "sample": ("rng", "params", "n_samples"),
}


class FitInfo(NamedTuple):
    """Reported after an EM loop (either engine); never carried."""

    lower_bound: Array  # ()  mean log-likelihood at the last applied E-step
    n_iter: Array  # () int32
    converged: Array  # () bool
    # () bool: a step went non-finite or a component collapsed (covariance.ROUNDOFF); its
    # parameters were not applied
    nonfinite: Array
    bad_component: Array  # () int32: the first such component, -1 if none
    history: Array  # (max_iter,) lower bound per iteration, NaN-padded
    # (K,) effective sample count per component at the E-step whose statistics made the
    # returned parameters (the last applied one): the counts their covariances rest on
    nk: Array


def mixture_m_step(nk: Array, sx: Array, sxx: Array, shift: Array, *, covariance_type: str,
                   reg_covar, previous: GMMParams | None = None, xp=None) -> GMMParams:
    """Maximum-likelihood parameters from statistics centred on ``shift``: the M-step of
    both engines.

    Parameters
    ----------
    nk : array of shape (K,)
        Σ w r.
    sx : array of shape (K, D)
        Σ w r (x - shift_k).
    sxx : array of shape (K, D, D) (full/tied) or (K, D) (diag/spherical)
        Σ w r (x - shift_k)^{⊗2}.
    shift : array of shape (K, D) or (D,)
    covariance_type : str
    reg_covar : float or array
        Added to the covariances' diagonals.
    previous : GMMParams, optional
        Components whose previous weight is exactly 0 are inactive (padding; see
        :func:`bayesgmm.params.pad_components`): they keep weight 0 and their previous
        mean and factor, and take no part in the normalisation.
    xp : namespace, optional
        Default: that of the statistics.

    Returns
    -------
    GMMParams
        ``nk`` gets scikit-learn's ``10·eps`` so an empty component stays finite. A
        collapsed component's factor is NaN (:mod:`bayesgmm.covariance`).
    """
    xp = get_namespace(nk, sx, sxx, shift) if xp is None else xp
    nk = nk + _ten_eps(sx.dtype)
    active = None if previous is None else previous.weights > 0
    mass = nk if active is None else xp.where(active, nk, 0.0)
    delta = sx / nk[:, None]  # (K, D) mean minus shift
    total = mass.sum()
    reg = xp.asarray(reg_covar, dtype=sx.dtype)
    factor = ops(covariance_type, xp).factor_from_moments(
        sxx, nk, delta, total, reg, None if previous is None else previous.cov_factor)
    new = GMMParams(mass / total, shift + delta, factor, covariance_type)
    if active is None:
        return new
    return select_components(active, new, previous)


@functools.cache
def _ten_eps(dtype) -> float:
    return float(10 * np.finfo(dtype).eps)


def step_health(new: GMMParams, lower_bound, xp=None) -> tuple[Array, Array]:
    """Whether an M-step result may be applied, and which components are sound.

    Returns
    -------
    ok : bool array of shape ()
        A finite lower bound, finite means, and every component sound.
    component_ok : bool array of shape (K,)
        Finite factors with a positive diagonal (``factor_ok``; a collapsed component's
        factor is NaN). The engines report the first False as ``bad_component``.

    In ``xp``, by default that of ``new``.
    """
    if xp is None:
        xp = get_namespace(new.weights, new.means, new.cov_factor, lower_bound)
    component_ok = ops(new.covariance_type, xp).factor_ok(new.cov_factor, new.n_components)
    ok = xp.isfinite(lower_bound) & component_ok.all() & xp.isfinite(new.means).all()
    return ok, component_ok
