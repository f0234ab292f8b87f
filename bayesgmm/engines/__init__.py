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
hard_start=False, initial_lower_bound=-inf, report=None, prior=None,
equal_weights=False, stop_collapsed=False) -> (GMMParams, FitInfo)``
    EM from ``params`` (batch shape ``()``) until the lower bound changes by less than
    ``tol`` or ``max_iter`` iterations; scikit-learn's iterations. ``X (N, D)``;
    ``sample_weight (N,)``; ``hard_start``: a first pass gives each row wholly to its
    most probable component (k-means labels), not counted as an iteration;
    ``initial_lower_bound``: what the first iteration's change is measured from (a warm
    start's previous lower bound, as scikit-learn's ``warm_start``); ``report``: a
    :class:`bayesgmm.progress.EMReport` told of every iteration as it ends
    (``verbose``; on the compiled engine through a host callback in the loop, present
    only when a report is given); ``prior``: a :class:`bayesgmm.covariance.Prior`,
    MAP-EM (every M-step is :func:`mixture_m_step`'s with it; the lower bound, the
    stopping rule and the choice between restarts stay on the mean log-likelihood, as
    mclust's ``me`` reports and stops on the log-likelihood); ``equal_weights``: the
    weights stay 1/K (mclust's ``equalPro``); ``stop_collapsed``: after every
    :data:`COLLAPSE_CHECK_EVERY` iterations, stop (unconverged) where the fit has
    collapsed (:func:`collapsed_members`), as mclust stops a singular fit.
``fit_restarts(X, params, *, sample_weight=None, tol=1e-3, reg_covar=1e-6, max_iter=100,
screen_iter=0, hard_start=False, initial_lower_bound=-inf, report=None, prior=None,
equal_weights=False, stop_collapsed=False) -> (GMMParams, FitInfo, FitInfo)``
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

from bayesgmm._xp import NUMPY, get_namespace
from bayesgmm.covariance import Prior, ops, prior_moments
from bayesgmm.params import GMMParams, select_components

__all__ = ["FitInfo", "INTERFACE", "mixture_m_step", "step_health"]

Array = Any  # a NumPy or JAX array

#: The functions both engines implement: name -> parameters every implementation has,
#: in order (see the module docstring). ``sample``'s first parameter is the engine's
#: random source, whatever its name.
INTERFACE: dict[str, tuple[str, ...]] = {
    "fit": ("X", "params", "sample_weight", "tol", "reg_covar", "max_iter", "hard_start",
            "initial_lower_bound", "report", "prior", "equal_weights", "stop_collapsed"),
    "fit_restarts": ("X", "params", "sample_weight", "tol", "reg_covar", "max_iter",
                     "screen_iter", "hard_start", "initial_lower_bound", "report", "prior",
                     "equal_weights", "stop_collapsed"),
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
                   reg_covar, previous: GMMParams | None = None, xp=None,
                   prior: Prior | None = None, equal_weights: bool = False) -> GMMParams:
    """Maximum-likelihood (or, with ``prior``, maximum a posteriori) parameters from
    statistics centred on ``shift``: the M-step of both engines.

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
    prior : bayesgmm.covariance.Prior, optional
        A conjugate prior on each component's mean and covariance (Fraley & Raftery
        2007, mclust's ``priorControl``): the means and factors are then the MAP
        M-step's, the likelihood M-step on the prior-augmented counts and scatters of
        :func:`bayesgmm.covariance.prior_moments` (about the MAP means). ``shrinkage``
        and ``dof`` must be Python numbers (static under ``jit``); ``mean`` and
        ``scale`` may be traced. The weights stay n_k / n: the prior has no term for
        them (as mclust's).
    equal_weights : bool, default False
        Keep every active component's weight at 1/K (mclust's ``equalPro``), K
        counting the active components.

    Returns
    -------
    GMMParams
        ``nk`` gets scikit-learn's ``10·eps`` so an empty component stays finite. A
        collapsed component's factor is NaN (:mod:`bayesgmm.covariance`).
    """
    xp = get_namespace(nk, sx, sxx, shift) if xp is None else xp
    eps = _ten_eps(sx.dtype)
    active = None if previous is None else previous.weights > 0
    live = (lambda a: a) if active is None else (lambda a: xp.where(active, a, 0.0))
    reg = xp.asarray(reg_covar, dtype=sx.dtype)
    table = ops(covariance_type, xp)
    previous_factor = None if previous is None else previous.cov_factor
    if prior is None:
        counts = nk + eps
        delta = sx / counts[:, None]  # (K, D) mean minus shift
        factor = table.factor_from_moments(sxx, counts, delta, live(counts).sum(), reg,
                                           previous_factor)
        means = shift + delta
    else:  # counts before the 10·eps: a padded component (n_k = 0) takes no prior mass
        nk_map, sxx_map, means = prior_moments(prior, nk, sx, sxx, shift, covariance_type,
                                               xp, active)
        factor = table.factor_from_moments(sxx_map, nk_map + eps, xp.zeros_like(sx),
                                           live(nk_map).sum(), reg, previous_factor)
    mass = live(xp.ones_like(nk)) if equal_weights else live(nk + eps)
    new = GMMParams(mass / mass.sum(), means, factor, covariance_type)
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


# ---- a collapsed fit: the stop both engines take with ``stop_collapsed`` ---------------------

#: A component with fewer rows than :func:`min_component_rows` has collapsed when its
#: smallest covariance eigenvalue is at most this many times reg_covar (see
#: :func:`collapsed_members`).
COLLAPSE_FLOOR = 10.0
#: ... or, whatever its rows, when the mixture spreads more than this many times that
#: floor along the component's flat direction.
COLLAPSE_SPREAD = 1000.0
#: With ``stop_collapsed``, EM tests for a collapse after every this many iterations
#: (its 10th, 20th, ...): an eigen-decomposition of every component, about a tenth of a
#: small host iteration's cost when taken every time; a collapse is absorbing (the
#: component's likelihood grows as its variance falls), so a few more iterations do not
#: change the verdict. Both engines test at the same iterations, so they stop together.
COLLAPSE_CHECK_EVERY = 10


def min_component_rows(covariance_type: str, n_features: int) -> int:
    """The fewest rows a component needs for its covariance to be estimable without
    ``reg_covar``: 1 when it has no covariance parameters of its own (tied), 2 when it
    has at most D (spherical, diagonal: one variance needs two points), D + 1 when it
    has more (full: a D x D scatter of rank D). Read from the table's parameter count,
    so it holds for any model."""
    D = int(n_features)
    table = ops(covariance_type)
    own = table.n_parameters(2, D) - table.n_parameters(1, D)  # per-component parameters
    return 1 if own <= 0 else (2 if own <= D else D + 1)


def collapsed_members(params: GMMParams, nk: Array, reg_covar, xp=None,
                      min_rows: Array | None = None) -> Array:
    """Whether each parameter set has collapsed (:func:`bayesgmm.initialize.collapsed`,
    which is this test of one set): for ``params`` of batch shape ``(*B)`` and counts
    ``nk (*B, K)``, a bool array ``(*B)``; the components of weight 0 (padding) take no
    part, and a set of fewer than two active components has not collapsed.

    A component has collapsed when its smallest covariance eigenvalue is at most
    :data:`COLLAPSE_FLOOR` times ``reg_covar`` and either it holds fewer rows than
    :func:`min_component_rows` (by count, within half a row) or the mixture spreads
    more than :data:`COLLAPSE_SPREAD` times that floor along its flattest direction.
    A set with a non-finite covariance has not (it is reported as non-finite). In
    ``xp``, by default that of ``params``: the engines' EM loops test it with
    ``stop_collapsed`` (:data:`COLLAPSE_CHECK_EVERY`). ``min_rows (*B)``: each set's
    :func:`min_component_rows`, where the sets are of several covariance types that
    store their factor alike (a host search's batch; ``params.covariance_type`` is any
    of them); default: that of ``params.covariance_type``."""
    if xp is None:
        xp = get_namespace(params.weights, params.means, params.cov_factor)
    w = params.weights
    dtype = params.means.dtype
    active = w > 0
    floor = COLLAPSE_FLOOR * xp.asarray(reg_covar, dtype=dtype)
    L = _cholesky_factors(xp, params)  # (*B, K, D, D), or None for diagonal factors
    if isinstance(w, np.ndarray) and L is not None and _host_clear(L, active, float(floor)):
        return np.zeros(w.shape[:-1], bool)
    cov = params.full_covariances  # (*B, K, D, D)
    finite = (xp.isfinite(cov).all(axis=(-2, -1)) | ~active).all(axis=-1)
    eye = xp.eye(cov.shape[-1], dtype=dtype)
    safe = xp.where(active[..., None, None] & xp.isfinite(cov), cov, eye)
    smallest, v = _flattest(xp, L, safe, active, eye)  # (*B, K), (*B, K, D)
    at_floor = active & (smallest <= floor)  # (*B, K)
    if isinstance(at_floor, np.ndarray) and not at_floor.any():  # the host's usual case
        return np.zeros(at_floor.shape[:-1], bool)
    need = (min_component_rows(params.covariance_type, params.n_features) if min_rows is None
            else xp.asarray(min_rows, dtype=dtype)[..., None]) - 0.5
    few = (at_floor & (nk < need)).any(axis=-1)
    means = xp.where(active[..., None], params.means, 0.0)
    mean = (w[..., None] * means).sum(axis=-2)  # (*B, D)
    centred = means - mean[..., None, :]
    spread = ((w[..., None, None] * safe).sum(axis=-3)
              + xp.einsum("...k,...ki,...kj->...ij", w, centred, centred))  # (*B, D, D)
    along = xp.einsum("...ki,...ij,...kj->...k", v, spread, v)
    flat = (at_floor & (along > COLLAPSE_SPREAD * floor)).any(axis=-1)
    return (active.sum(axis=-1) >= 2) & finite & (few | flat)


def host_collapsed_at(params: GMMParams, nk: Array, reg_covar, n_iter: int) -> bool:
    """The host's ``stop_collapsed`` test of one parameter set after its ``n_iter``-th
    iteration: at a multiple of :data:`COLLAPSE_CHECK_EVERY`, whether it has collapsed
    (:func:`collapsed_members`)."""
    return (n_iter % COLLAPSE_CHECK_EVERY == 0
            and bool(collapsed_members(params, nk, reg_covar, NUMPY)))


def _cholesky_factors(xp, params: GMMParams) -> Array | None:
    """Each component's Cholesky factor L (Σ = L Lᵀ), (*B, K, D, D), where the model
    stores one (the full-storage models; tied's one for every component); None where
    its factor is diagonal."""
    shape = ops(params.covariance_type).factor_shape(2, 3)  # (2, 3, 3), (3, 3) or diagonal
    if shape[-2:] != (3, 3):
        return None
    L = params.cov_factor
    if len(shape) == 2:  # tied
        K, D = params.n_components, params.n_features
        L = xp.broadcast_to(L[..., None, :, :], L.shape[:-2] + (K, D, D))
    return L


def _host_clear(L: np.ndarray, active: np.ndarray, floor: float) -> bool:
    """On the host, whether every active component's smallest variance is surely above
    ``floor``, from its Cholesky factor L (*B, K, D, D) without a decomposition:
    σ_min(L) is at least |det L| / ‖L‖_F^(D-1) (the product of the singular values is
    |det L|, each of the others at most ‖L‖_F), and det L is the product of L's
    diagonal. A search's sound components clear it by orders of magnitude; a collapsed
    one never does."""
    L = np.asarray(L, np.float64)
    D = L.shape[-1]
    with np.errstate(all="ignore"):
        det = np.abs(L.diagonal(axis1=-2, axis2=-1)).prod(axis=-1)
        norm2 = (L * L).sum(axis=(-2, -1))
        bound = det * det / norm2 ** (D - 1)  # <= σ_min(L)², (*B, K)
    return bool(((bound > floor) | ~active).all())


def _flattest(xp, L: Array | None, safe: Array, active: Array, eye: Array
              ) -> tuple[Array, Array]:
    """Each component's smallest covariance eigenvalue (*B, K) and its eigenvector
    (*B, K, D). Given its Cholesky factor L (:func:`_cholesky_factors`), from L's
    singular values: σ_min² is accurate to eps·σ_max·σ_min, where the eigenvalues of Σ
    formed in float32 are only accurate to eps·‖Σ‖ (1e-4 on data of variance 1e3: ten
    times a reg_covar of 1e-6's floor, so a sound component read as collapsed).
    Otherwise (diagonal factors) from ``safe``, Σ with the identity where a component
    is inactive or not finite, whose eigen-decomposition is exact."""
    if L is None:  # diagonal models: exact
        values, vectors = xp.eigh(safe)  # ascending
        return values[..., 0], vectors[..., :, 0]
    usable = active & xp.isfinite(L).all(axis=(-2, -1))
    U, s, _ = xp.svd(xp.where(usable[..., None, None], L, eye))  # s descending
    return s[..., -1] ** 2, U[..., :, -1]
