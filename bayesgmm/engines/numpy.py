"""EM on the host, in NumPy, for data too small to be worth compiling.

Glossary: N samples, D features, K components, R restarts, F moment features.

The compiled path (:mod:`bayesgmm.engines.jax`) pays for XLA compilation once per shape and
process: about 1.1 s for a BIC sweep's programs on a 2-core CPU, whatever N. On the
tutorial's 300 x 2 blobs the sweep then runs in 0.04 s, and scikit-learn's whole loop
takes 0.25 s. So for small problems this module runs the same algorithm in NumPy,
where an EM iteration costs tens of microseconds and nothing is compiled. The
estimators choose it (``engine="auto"``) when one pass costs at most
:data:`~bayesgmm.engines.choose.HOST_WORK` (N·K·F multiply-adds);
:func:`bayesgmm.engines.choose.choose` decides.

The algorithm is :func:`bayesgmm.engines.jax.fit`'s, step for step, and so are its
formulas: the per-type table and the moments form of :mod:`bayesgmm.covariance` over
NumPy, and :func:`bayesgmm.engines.mixture_m_step` and
:func:`~bayesgmm.engines.step_health` (the same hard first pass from k-means centres,
scikit-learn's ``10·eps`` on the counts, inactive zero-weight components, ``reg_covar``
on the diagonal, the same stopping rule and :class:`~bayesgmm.engines.FitInfo`: a
non-finite step or a collapsed component is not applied but reported). Nothing here
branches on the covariance type. It uses the moments kernel (:mod:`bayesgmm.suffstats`):
features ``T(x) = [1, x - c, (x - c)^{⊗2}]`` of the rows, centred on the weighted data
mean, made once per fit; then each E-step is one (N, F) @ (F, K) matmul and the
statistics one (K, N) @ (N, F) matmul. Everything is computed in float64, whatever the
input's dtype (results are cast back). The moments form cancels terms of about
``(|μ_k - c| / σ_k)²``: a member whose parameters put its round-off above 1e-6
(:func:`_fit_guard`, a compact cluster far from the data's mean) takes that iteration's
statistics from each component's own centred rows (:func:`_centred_e_step`), and
scores guard the same way (:func:`_joint`), as the compiled float32 kernel does
(``"guarded"``); well-conditioned fits never leave the moments form.

Many fits on the same rows (a model search: every covariance type, K and start) run
in lockstep (:func:`fit_many_models`): the members of one K and factor layout form one
batch with one natural-parameter call, one M-step call (each type's own
``factor_from_moments`` on its rows) and one bookkeeping pass an iteration, and the
batches that share a feature table one E-step.

Nothing here imports JAX.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from bayesgmm._xp import NUMPY
from bayesgmm.covariance import (
    RAW_TABLE,
    Prior,
    layout_factor_from_moments,
    moment_features,
    moment_sums,
    moment_theta,
    ops,
)
from bayesgmm.engines import (COLLAPSE_CHECK_EVERY, FitInfo, collapsed_members,
                              host_collapsed_at, min_component_rows, mixture_m_step,
                              step_health)
from bayesgmm.params import GMMParams, pad_components, take_components
from bayesgmm.progress import EMReport

__all__ = ["FitInfo", "fit", "fit_restarts", "fit_many", "fit_many_models", "lloyd",
           "lloyd_batch", "log_resp", "score_draws", "criteria_terms", "criteria_terms_many",
           "sample", "sklearn_covariances", "inexact_moments"]

#: fit_many pads its members to one K, and fit_many_models's batches of different K
#: share an E-step, when the feature table has at most this many entries (N·F): on
#: small data Python's overhead per batch call dominates, on large data the E-step's
#: padded columns would cost more than the calls they save
PAD_FEATURES = 2**16

#: scikit-learn's 10·eps on the counts (engines.mixture_m_step's), in float64: the host
#: engine computes in float64
_TEN_EPS = float(10 * np.finfo(np.float64).eps)


# ---- the moments form ----------------------------------------------------------------


def _theta(p: GMMParams, center: np.ndarray) -> np.ndarray:
    """:func:`bayesgmm.covariance.moment_theta` of ``p`` (float64, batch shape ``()``):
    (F, K), with ``log p(x, z = k) = T(x) θ_k``; zero-weight components get ``-inf``."""
    return moment_theta(p.weights, p.means, p.cov_factor, center, p.covariance_type, NUMPY)


#: The scores' guard on the moments form's round-off, eps · max_k ρ_k: log-densities
#: within about 1e-9. (The compiled float32 kernel's :data:`bayesgmm.suffstats.GUARD`,
#: 2^-10, suits float32's own precision; at 1e-9 ρ may reach 4.5e6, a compact
#: component about 2,000 of its sds from the data's mean, and real fits rarely leave
#: the moments form: a component 1e7 sds away had log-densities off by 1e-2, a shared
#: covariance's component 5e4 sds away by 6e-7.)
_SCORE_ROUNDOFF = 1e-9


def _moments_exact(p: GMMParams, center: np.ndarray, theta: np.ndarray) -> bool:
    """:func:`bayesgmm.suffstats.moments_exact` on the host (float64 ``p``, its natural
    parameters ``theta`` (F, K) at ``center``), for scores: the moments form's
    round-off is within :data:`_SCORE_ROUNDOFF` for every active component."""
    K, D = p.n_components, p.n_features
    quad = 2 * np.abs(theta[1 + D:]).sum(axis=0)  # Σ_ab |P_ab| per component
    cov = ops(p.covariance_type, NUMPY).to_full_covariance(p.cov_factor, K, D)
    reach = ((p.means - center) ** 2).sum(axis=-1) + np.trace(cov, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore"):
        rho = np.where(p.weights > 0, quad * reach, 0.0)
    return bool(np.finfo(np.float64).eps * rho.max() <= _SCORE_ROUNDOFF)


def _centred_joint(p: GMMParams, X: np.ndarray) -> np.ndarray:
    """Joint log p(x_n, z_n = k) (N, K) from each component's own centred rows
    (:func:`bayesgmm.density.centred_log_prob` on the host): exact for a compact
    component far from the others, where the moments form cancels
    ``(|μ_k - c| / σ_k)²``-sized terms (at 1e7 its log-densities were off by 1e-2)."""
    table = ops(p.covariance_type, NUMPY)
    K, D = p.n_components, p.n_features
    chol = table.to_precision_cholesky(p.cov_factor)
    maha = table.mahalanobis(X[None, :, :] - p.means[:, None, :], chol)  # (N, K)
    log_det = table.log_det_precision_cholesky(chol, K, D)
    with np.errstate(divide="ignore"):  # weight 0: -inf, as the moments form's
        return -0.5 * (D * np.log(2 * np.pi) + maha) + log_det + np.log(p.weights)


def _joint(p: GMMParams, X: np.ndarray, center: np.ndarray,
           T: np.ndarray | None = None) -> np.ndarray:
    """Joint log p(x_n, z_n = k) (N, K) for scoring: the moments form (``T``: X's
    features at ``center``, made when not given) where it is exact
    (:func:`_moments_exact`), else the centred one."""
    theta = _theta(p, center)
    if not _moments_exact(p, center, theta):
        return _centred_joint(p, X)
    if T is None:
        T = moment_features(X, center, p.covariance_type, NUMPY)
    return T @ theta


#: EM's guard on the moments form's round-off (the host fits', as :data:`_SCORE_ROUNDOFF`
#: is the scores'): where eps · ρ of a member's parameters exceeds it
#: (:func:`_fit_guard`), its E-step and statistics are computed from each component's
#: own centred rows (:func:`_centred_e_step`). The M-step's ``sxx / n_k - δδᵀ`` in the
#: moments form loses about eps · ρ of a covariance (relative): a compact cluster 1e5
#: from the data's mean (ρ ~ 1e14) fitted scores 2.4e-4 below scikit-learn's optimum,
#: and float32-rounded copies of such data stopped with a singular covariance. 1e-6
#: of a covariance is far below what moves a fit (EM stops at a relative change of 1e-5
#: in log L); at 1e-9 the guard also took near-collapsed members of the small sets'
#: searches (35-89 centred steps a search, diabetes 0.60 -> 0.74 s) for BIC tables
#: equal to 2e-10.
_FIT_ROUNDOFF = 1e-6


class _Scale(NamedTuple):
    """The data's per-feature spread, for :func:`_fit_guard`, per factor layout
    (``full_moments``, isotropic): the weight of each quadratic natural parameter's
    row (``2 s_a s_b``) and ``inv_var (D,)``, 1 / each feature's weighted variance s_a²
    (1 where it is 0); isotropic layouts (P = p·I) take s = 1."""

    rows: dict
    inv_var: dict


def _data_scale(X: np.ndarray, w: np.ndarray, center: np.ndarray) -> _Scale:
    var = w @ (X - center) ** 2 / w.sum()
    var = np.where(var > 0, var, 1.0)
    s = np.sqrt(var)
    iu, ju = np.triu_indices(len(s))
    ones = np.ones(len(s))
    return _Scale({(True, False): 2 * s[iu] * s[ju], (False, False): 2 * var,
                   (False, True): 2 * ones}, {False: 1.0 / var, True: ones})


def _fit_guard(theta: np.ndarray, means: np.ndarray, factor: np.ndarray, center: np.ndarray,
               kind: str, scale: _Scale, active: np.ndarray | None = None) -> np.ndarray:
    """(L,) bool: the members (natural parameters ``theta (L, F, K)``, ``means (L, K,
    D)`` and factors (L, ...) of one factor layout; ``active (L, K)``: their components
    of weight > 0, None when all are) whose moments form is not exact enough for EM:
    eps · max_k ρ_k > :data:`_FIT_ROUNDOFF`. ρ_k is
    :func:`bayesgmm.suffstats.moments_error`'s, ``Σ_ab |P_k,ab| · (|μ_k - c|² + tr
    Σ_k)``, of the data standardised per feature (the form's round-off does not change
    under a per-feature scaling, its bound does: features of different units would
    otherwise look ill-conditioned); isotropic types' own (their P is p·I). Non-finite
    parameters never count (a NaN step fails either way)."""
    raw = RAW_TABLE[kind]
    D = means.shape[-1]
    iso = raw.component_axis == -1 and not raw.full_moments
    inv_var = scale.inv_var[iso]
    # Σ_ab |P_ab| s_a s_b (L, K): the rows hold -½ P_aa and -P_ab (a < b)
    rho = np.matmul(scale.rows[raw.full_moments, iso], np.abs(theta[:, 1 + D:, :]))
    y = means - center
    y *= y
    reach = y @ inv_var  # (L, K): Σ_a (μ_a - c_a)² / s_a²
    f2 = factor * factor
    if raw.full_moments:  # Cholesky factors: diag Σ = Σ_j L_aj²
        spread = f2.sum(axis=-1) @ inv_var  # (L, K), or (L,) tied
        reach += spread if raw.component_axis is not None else spread[:, None]
    elif iso:  # standard deviations (L, K)
        reach += D * f2
    else:  # standard deviations (L, K, D)
        reach += f2 @ inv_var
    rho *= reach
    if active is not None:
        rho[~active] = 0.0
    return np.finfo(np.float64).eps * rho.max(axis=-1) > _FIT_ROUNDOFF  # NaN: False


def _centred_e_step(p: GMMParams, X: np.ndarray, w: np.ndarray, hard: bool):
    """:func:`_e_step` from each component's own centred rows, for a member whose
    moments form is not exact (:func:`_fit_guard`): ``(nk (K,), sx, sxx, Σ w log
    p(x))`` with ``sx = Σ w r (x - μ_k)`` and ``sxx = Σ w r (x - μ_k)^{⊗2}`` (full
    layouts (K, D, D), else (K, D)) centred on the member's own means, which the
    M-step takes as its shift (:func:`bayesgmm.engines.mixture_m_step`): exact for any
    offset."""
    lp = np.ascontiguousarray(_centred_joint(p, X).T)  # (K, N)
    top = _finite_max(lp, axis=0)
    if hard:
        e = (lp >= top).astype(lp.dtype)
    else:
        e = lp - top
        np.exp(np.maximum(e, _exp_floor(e.shape[-1]), out=e), out=e)
    total = e.sum(axis=0)
    log_norm = top + np.log(total)
    live = w > 0
    share = np.where(live & (total > 0), w / np.where(total > 0, total, 1.0), 0.0)
    wll = np.where(live, w * log_norm, 0.0).sum()  # a row of 0 mass: -inf, the step fails
    e *= share
    Xc = X[None, :, :] - p.means[:, None, :]  # (K, N, D)
    eXc = Xc * e[:, :, None]
    if RAW_TABLE[p.covariance_type].full_moments:
        sxx = np.matmul(eXc.transpose(0, 2, 1), Xc)  # (K, D, D)
    else:
        sxx = (eXc * Xc).sum(axis=1)
    return e.sum(axis=1), eXc.sum(axis=1), sxx, wll


def inexact_moments(params, X, w=None) -> bool:
    """Whether any of the float64 ``params`` (a GMMParams of batch shape ``()``, or a
    list of them) puts the moments form's round-off on ``X`` above 1e-6
    (:func:`bayesgmm.engines.numpy._fit_guard`, the data standardised per feature):
    where the compiled float64 default loses digits, and the host guard would leave it.
    One pass over X (its mean and spread), then O(K·D²) per parameter set."""
    X = np.asarray(X, np.float64)
    w = np.ones(len(X)) if w is None else np.asarray(w, np.float64)
    center = w @ X / w.sum()
    scale = _data_scale(X, w, center)
    for p in params if isinstance(params, (list, tuple)) else [params]:
        p = p.to_numpy(np.float64)
        theta = _theta(p, center)
        if _fit_guard(theta[None], p.means[None], p.cov_factor[None], center,
                           p.covariance_type, scale, (p.weights > 0)[None])[0]:
            return True
    return False


def _finite_max(lp: np.ndarray, axis: int) -> np.ndarray:
    """The maximum of log-probabilities ``lp`` over ``axis`` (K's), 0 where it is not
    finite (a row with no finite component: rare, so the check comes before the
    ``where``, which costs more): the shift that keeps ``exp`` finite."""
    top = lp.max(axis=axis)
    if not np.isfinite(top).all():
        top = np.where(np.isfinite(top), top, 0.0)
    return top


def _log_norm(lp: np.ndarray) -> np.ndarray:
    """log Σ_k exp(lp) of joint log-probabilities (..., N, K) over the last axis, shifted
    by finite row maxima."""
    top = _finite_max(lp, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top + np.log(np.exp(lp - top[..., None]).sum(axis=-1))


# ---- EM ------------------------------------------------------------------------------


_EXP_FLOORS: dict[int, np.ndarray] = {}


def _exp_floor(n: int) -> np.ndarray:
    """-700.0 repeated n times (read-only, cached): the E-step's floor before ``exp``
    (below -708 NumPy's exp takes its slow path for denormals). ``np.maximum`` against
    a row of the rows' length runs 2.5x faster than against the scalar, whose stride-0
    operand takes NumPy's slower inner loop (measured, (2, 9, 20000): 181 -> 72 µs;
    (17, 9, 272): 21 -> 13 µs); the values are the same."""
    try:
        return _EXP_FLOORS[n]
    except KeyError:
        floor = np.full(n, -700.0)
        floor.setflags(write=False)
        return _EXP_FLOORS.setdefault(n, floor)


def _e_step(p: GMMParams, T: np.ndarray, TT: np.ndarray, w: np.ndarray,
            center: np.ndarray, hard: bool, theta: np.ndarray | None = None):
    """(nk (K,), sx (K, D), sxx, Σ w log p(x)) as :func:`bayesgmm.suffstats.e_step_stats`
    with the moments kernel, from the features ``T (N, F)`` and their transpose ``TT``;
    ``hard`` gives each row wholly to its most probable component (split evenly between
    exact ties). Callers silence NumPy's floating-point warnings (-inf for padding; a
    failing step is caught by its result).

    The log-probabilities are laid out (K, N): reductions over K then run along
    contiguous rows (measured, N=300, K=20: 47 -> 27 µs a pass)."""
    lp = (_theta(p, center) if theta is None else theta).T @ TT  # (K, N)
    top = _finite_max(lp, axis=0)
    if hard:
        e = (lp >= top).astype(lp.dtype)
    else:  # clipped: below -708 exp makes denormals (or 0) on NumPy's slow path (24 ->
        # 12 µs at N=300, K=20); 1e-304 for 0 changes no sum at float64 precision
        e = lp
        e -= top
        np.exp(np.maximum(e, _exp_floor(e.shape[-1]), out=e), out=e)
    total = e.sum(axis=0)
    log_norm = top + np.log(total)
    share = w / total
    wll = w @ log_norm
    if not (np.isfinite(wll) and np.isfinite(share).all()):  # rows of weight 0 or 0 mass
        live = w > 0
        share = np.where(live & (total > 0), w / np.where(total > 0, total, 1.0), 0.0)
        wll = np.where(live, w * log_norm, 0.0).sum()
    e *= share
    S = e @ T  # (K, F)
    return (*moment_sums(S, center, p.covariance_type, NUMPY), wll)


def _e_step_batch(theta: np.ndarray, T: np.ndarray, TT: np.ndarray, w: np.ndarray,
                  hard: np.ndarray | None, peak: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_e_step` for L parameter sets of one K at once, from their natural
    parameters ``theta (L, F, K)`` (one :func:`~bayesgmm.covariance.moment_theta` call
    over the batch): the feature sums ``S = Σ w r T(x)`` (L, K, F) and Σ w log p(x)
    (L,), with the same operations (log-probabilities (L, K, N) from one batched
    product); ``hard (L,)`` per set (None: every set soft).

    ``peak (L,)``: an upper bound on each set's log p(x, z = k) over all x and k
    (:func:`_peak`). With it (every set soft), the log-probabilities are shifted by
    that constant per set instead of by each row's maximum: the shift is folded into
    the constant feature's row of ``theta``, which saves two passes over (L, K, N)
    (the maximum over K and the subtraction; measured at N=20,000, D=5, L·K=18: 1.73
    -> 1.5 ms a call). exp cannot overflow (every shifted value is <= 0); a row whose
    shifted values all lie below ``_PEAK_FLOOR`` (far from every component, where the
    -700 clip before exp would cost digits) sends the call to the row-maximum path,
    so the result equals it to round-off (tested)."""
    L, F, K = theta.shape
    if peak is not None and hard is None:
        out = _e_step_peak(theta, T, TT, w, peak)
        if out is not None:
            return out
    # one (L·K, F) @ (F, N) product: NumPy's batched matmul loops over L with tiny
    # inner products (measured, L=17, K=9, N=272, F=6: 31 -> 9 µs)
    lp = _one_thread_matmul(theta.transpose(0, 2, 1).reshape(L * K, F), TT).reshape(
        L, K, -1)  # (L, K, N)
    top = _finite_max(lp, axis=1)
    onehot = (None if hard is None or not hard.any()
              else (lp[hard] >= top[hard][:, None, :]).astype(lp.dtype))
    e = lp  # in place, as _e_step
    e -= top[:, None, :]
    np.exp(np.maximum(e, _exp_floor(e.shape[-1]), out=e), out=e)
    if onehot is not None:
        e[hard] = onehot
    total = e.sum(axis=1)  # (L, N)
    log_norm = top + np.log(total)
    share = w / total
    wll = log_norm @ w
    # a row of 0 mass or a non-finite one makes wll non-finite (0·inf and 0·NaN are NaN),
    # so wll alone flags the members to redo (no pass over share)
    broken = ~np.isfinite(wll)
    if broken.any():  # rows of weight 0 or 0 mass, as _e_step
        live = w > 0
        t = total[broken]
        share[broken] = np.where(live & (t > 0), w / np.where(t > 0, t, 1.0), 0.0)
        wll[broken] = np.where(live, w * log_norm[broken], 0.0).sum(axis=1)
    e *= share[:, None, :]
    S = _one_thread_matmul(e.reshape(L * K, -1), T).reshape(L, K, F)
    return S, wll  # (L, K, F), (L,)


#: OpenBLAS computes a product of at most this many multiply-adds (M·K·N) on one
#: thread (its GEMM_MULTITHREAD_THRESHOLD, 4, times 65,536); a larger one wakes its
#: threads, whose spinning on a small product costs more CPU than the product
_ONE_THREAD_WORK = 2**18


def _one_thread_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A (M, K) @ B (K, N)``, in blocks of rows that OpenBLAS computes on one thread
    when the whole product is small (up to 32 such blocks of at least 8 rows).

    :func:`fit_many_models` stacks many batches' components into one product; on small
    data each batch's product alone stayed on one thread, the stack would not: with
    ``OPENBLAS_NUM_THREADS`` unset, a 14-model search of diabetes (145 x 3) took 1.10
    s of CPU instead of 0.53 (load 4, 2 cores). Other products (long rows: fewer than
    8 a block; above 32 blocks) are one call, threaded as before (blocks of one row at
    N = 20,000 made the 14-model search's EM loop 1.4x slower). The same numbers
    either way: each row's products are the same dot products."""
    M, K = A.shape
    N = B.shape[1]
    step = _ONE_THREAD_WORK // (K * N)  # rows a block
    if M <= step or step < 8 or M > 32 * step:  # one block, large rows or many blocks
        return A @ B
    out = np.empty((M, N), np.result_type(A, B))
    for i in range(0, M, step):
        np.matmul(A[i:i + step], B, out=out[i:i + step])
    return out


#: the shifted E-step's limit (:func:`_e_step_batch` with ``peak``): a row whose
#: Σ_k exp(log p(x, z = k) - peak) falls below exp(-600) is redone with its own maximum
#: (the -700 clip adds at most K·exp(-700) to that sum: under 1e-40 of it)
_PEAK_FLOOR = float(np.exp(-600.0))


def _peak(theta: np.ndarray, means: np.ndarray, center: np.ndarray, kind: str
          ) -> np.ndarray | None:
    """Each set's largest log p(x, z = k) over x and k, (L,): component k's joint
    log-density peaks at its mean, so ``T(μ_k) θ_k`` (of ``theta (L, F, K)``, ``means
    (L, K, D)``) maximised over the active components; None when a set has no finite
    peak (then :func:`_e_step_batch` shifts by the row maxima)."""
    L, F, K = theta.shape
    Tm = moment_features(means.reshape(L * K, -1), center, kind, NUMPY).reshape(L, K, F)
    peak = np.einsum("lkf,lfk->lk", Tm, theta)  # (L, K); -inf for inactive components
    top = peak.max(axis=1)
    return top if np.isfinite(top).all() else None


def _e_step_peak(theta: np.ndarray, T: np.ndarray, TT: np.ndarray, w: np.ndarray,
                 peak: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_e_step_batch`'s soft pass shifted by ``peak (L,)``; None where a row's
    shifted mass falls below :data:`_PEAK_FLOOR` (the caller takes the row-maximum
    path)."""
    L, F, K = theta.shape
    shifted = theta.copy()
    shifted[:, 0, :] -= peak[:, None]  # the constant feature's row: log p - peak
    e = _one_thread_matmul(shifted.transpose(0, 2, 1).reshape(L * K, F), TT).reshape(
        L, K, -1)  # (L, K, N)
    # (L, K): inactive components (padding) have a constant term of -inf; NaN stays
    # live, so that a broken set still meets the guard below, as before
    live = ~np.isneginf(shifted[:, 0, :])
    if live.all():
        np.exp(np.maximum(e, _exp_floor(e.shape[-1]), out=e), out=e)
    else:  # exp (~8 ns a value on the host) on the active rows alone: padding gets 0,
        # not exp(-700) (measured, Old Faithful's search: 30% of the rows are padding)
        rows = live[..., None]
        np.maximum(e, _exp_floor(e.shape[-1]), out=e, where=rows)
        np.exp(e, out=e, where=rows)
        e[~live] = 0.0
    total = e.sum(axis=1)  # (L, N)
    if not (total >= _PEAK_FLOOR).all():  # a row far from every component (or NaN)
        return None
    log_norm = np.log(total)
    log_norm += peak[:, None]
    share = w / total
    wll = log_norm @ w
    e *= share[:, None, :]
    S = _one_thread_matmul(e.reshape(L * K, -1), T).reshape(L, K, F)
    return S, wll  # (L, K, F), (L,)


class _Batch(NamedTuple):
    """L parameter sets of one K and covariance type, stacked (float64)."""

    weights: np.ndarray  # (L, K)
    means: np.ndarray  # (L, K, D)
    cov_factor: np.ndarray  # (L, *factor shape)


def _m_step_batch(S: np.ndarray, center: np.ndarray, kind, reg_covar,
                  previous: _Batch, wll: np.ndarray, total_w: float,
                  active: np.ndarray | None, stats: tuple | None = None):
    """:func:`bayesgmm.engines.mixture_m_step` and :func:`~bayesgmm.engines.step_health`
    for L members of one K at once: one ``factor_from_moments`` call over the batch (its
    pooled quantities pooled per member; the iterative ones iterate each member as far
    as it would go alone), or one per covariance type where the members are of several
    types of one layout (:func:`_layout`): the rest of the step is the layout's.

    Parameters
    ----------
    S : array of shape (L, K, F)
        Each member's feature sums.
    center : array of shape (D,)
    kind : str, or sequence of (str, int, int)
        The members' covariance type, or ``(type, start, stop)`` for consecutive runs
        of members (rows ``start:stop``) of several types of one layout.
    reg_covar : float
    previous : _Batch
        The parameters EM holds; zero-weight components are inactive (kept as they are).
    wll : array of shape (L,)
        Σ w log p(x) of each member.
    total_w : float
    active : array of shape (L, K), bool, or None
        ``previous.weights > 0``, kept by the caller (it changes only when members
        leave); None when every component is active.
    stats : tuple, optional
        ``(nk, sx, sxx, shift (L, K, D))`` in place of ``S``'s: statistics centred on
        ``shift`` (:func:`_advance`'s, where members took centred statistics).

    Returns
    -------
    new : _Batch
    nk : array of shape (L, K)
        The counts (before scikit-learn's 10·eps).
    ok : array of shape (L,), bool
    component_ok : array of shape (L, K), bool
    """
    segments = ((kind, 0, len(S)),) if isinstance(kind, str) else tuple(kind)
    kind = segments[0][0]
    table = ops(kind, NUMPY)
    if stats is None:
        nk_raw, sx, sxx = moment_sums(S, center, kind, NUMPY)
        shift = center
    else:
        nk_raw, sx, sxx, shift = stats
    nk = nk_raw + _TEN_EPS
    mass = nk if active is None else np.where(active, nk, 0.0)
    delta = sx / nk[..., None]
    total = mass.sum(axis=-1)
    reg = np.asarray(reg_covar, sx.dtype)
    if len(segments) == 1:
        factor = table.factor_from_moments(sxx, nk, delta, total, reg, previous.cov_factor)
    else:  # each type's own M-step on its rows, their shared parts in one call
        factor = layout_factor_from_moments(segments, sxx, nk, delta, total, reg,
                                            previous.cov_factor)
    weights, means = mass / total[:, None], shift + delta
    if active is not None:  # padding keeps its previous values, as select_components
        weights = np.where(active, weights, previous.weights)
        means = np.where(active[..., None], means, previous.means)
        axis = table.component_axis
        if axis is not None:
            factor = np.where(active.reshape(active.shape + (1,) * (-axis - 1)), factor,
                              previous.cov_factor)
    K = nk.shape[-1]
    component_ok = table.factor_ok(factor, K)
    ok = (np.isfinite(wll / total_w) & component_ok.all(axis=-1)
          & np.isfinite(means).all(axis=(-2, -1)))
    return _Batch(weights, means, factor), nk_raw, ok, component_ok


def _fit(T, w, center, params: GMMParams, tol, reg_covar, max_iter, hard_start,
         initial_lower_bound=-np.inf, report: EMReport | None = None, restart: int = 0,
         iter_offset: int = 0, prior: Prior | None = None, equal_weights: bool = False,
         X: np.ndarray | None = None, scale: _Scale | None = None,
         stop_collapsed: bool = False):
    """EM from ``params`` (float64, batch shape ``()``) on features ``T``; the first
    iteration's change is measured from ``initial_lower_bound``. ``report`` hears of
    each iteration (numbered from ``iter_offset + 1``) and of the end, as initialisation
    ``restart``. ``prior`` and ``equal_weights`` go to every M-step
    (:func:`bayesgmm.engines.mixture_m_step`). Given the rows ``X`` (float64) and their
    ``scale`` (:func:`_data_scale`), an iteration whose parameters fail
    :func:`_fit_guard` takes its statistics from centred rows
    (:func:`_centred_e_step`). ``stop_collapsed``: every
    :data:`~bayesgmm.engines.COLLAPSE_CHECK_EVERY` iterations, stop where the fit has
    collapsed (:func:`bayesgmm.engines.collapsed_members`)."""
    K, kind = params.n_components, params.covariance_type
    total_w, TT = w.sum(), np.ascontiguousarray(T.T)
    lower_bound, n_iter, converged, nonfinite, bad = (float(initial_lower_bound), 0, False,
                                                      False, -1)
    history = np.full(max_iter, np.nan)
    nk = np.zeros(K)
    hard = bool(hard_start)
    collapsed = False
    with np.errstate(all="ignore"):  # -inf for padding; a failing step is caught below
        while n_iter < max_iter and not converged and not nonfinite and not collapsed:
            theta = _theta(params, center)
            if X is not None and _fit_guard(
                    theta[None], params.means[None], params.cov_factor[None], center, kind,
                    scale, (params.weights > 0)[None])[0]:
                nk_new, sx, sxx, wll = _centred_e_step(params, X, w, hard)
                shift = params.means
            else:
                nk_new, sx, sxx, wll = _e_step(params, T, TT, w, center, hard, theta)
                shift = center
            lb = wll / total_w
            new = mixture_m_step(nk_new, sx, sxx, shift, covariance_type=kind,
                                 reg_covar=reg_covar, previous=params, xp=NUMPY,
                                 prior=prior, equal_weights=equal_weights)
            ok, component_ok = step_health(new, lb, NUMPY)
            ok = bool(ok)
            bad = -1 if ok or component_ok.all() else int(component_ok.argmin())
            if ok:
                params, nk = new, nk_new
            if not hard:
                history[n_iter] = lb
                converged = ok and abs(lb - lower_bound) < tol
                change = lb - lower_bound
                if ok:
                    lower_bound = lb
                n_iter += 1
                if report is not None:
                    report.iteration(restart, iter_offset + n_iter, change)
                collapsed = stop_collapsed and ok and host_collapsed_at(
                    params, nk, reg_covar, iter_offset + n_iter)
            nonfinite, hard = not ok, False
    if report is not None and max_iter > 0:
        report.end(restart, lower_bound, converged)
    info = FitInfo(np.float64(lower_bound), np.int32(n_iter), np.bool_(converged),
                   np.bool_(nonfinite), np.int32(bad), history, nk)
    return params, info


def _prepare(X, sample_weight, covariance_type):
    """(weights, their data mean, the features of the rows), in float64."""
    X = np.asarray(X, np.float64)
    w = (np.ones(X.shape[0]) if sample_weight is None
         else np.asarray(sample_weight, np.float64))
    center = w @ X / np.sum(w)
    return w, center, moment_features(X, center, covariance_type, NUMPY)


def _guard_rows(X, w, center) -> dict:
    """:func:`_fit`'s guard arguments: the rows (float64) and their spread."""
    X = np.asarray(X, np.float64)
    return {"X": X, "scale": _data_scale(X, w, center)}


def _as_float64(prior: Prior | None) -> Prior | None:
    """``prior`` with float64 NumPy arrays and float hyperparameters (EM here runs in
    float64, whatever X's dtype)."""
    if prior is None:
        return None
    return Prior(float(prior.shrinkage), np.asarray(prior.mean, np.float64),
                 float(prior.dof), np.asarray(prior.scale, np.float64), prior.form)


def _out_dtype(X) -> np.dtype:
    """The dtype results are returned in: X's float dtype (float32 stays float32)."""
    return np.result_type(np.asarray(X).dtype, np.float32)


def _info_as(info: FitInfo, dtype) -> FitInfo:
    return info._replace(lower_bound=np.asarray(info.lower_bound, dtype),
                         history=np.asarray(info.history, dtype),
                         nk=np.asarray(info.nk, dtype))


def _cast(params: GMMParams, info: FitInfo, dtype) -> tuple[GMMParams, FitInfo]:
    return params.to_numpy(dtype), _info_as(info, dtype)


def fit(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
        reg_covar: float = 1e-6, max_iter: int = 100, hard_start: bool = False,
        initial_lower_bound: float = -np.inf, report: EMReport | None = None,
        prior: Prior | None = None, equal_weights: bool = False,
        stop_collapsed: bool = False) -> tuple[GMMParams, FitInfo]:
    """:func:`bayesgmm.engines.jax.fit` on the host: the same iterations, stopping rule and
    :class:`~bayesgmm.engines.FitInfo`, in float64 NumPy; results in X's dtype.
    ``report`` (:class:`bayesgmm.progress.EMReport`, ``verbose``): each iteration is
    reported as it ends. ``prior`` (MAP-EM) and ``equal_weights``:
    :func:`bayesgmm.engines.mixture_m_step`. ``stop_collapsed``: as the compiled
    engine's, at the same iterations."""
    w, center, T = _prepare(X, sample_weight, params.covariance_type)
    rows = _guard_rows(X, w, center)
    if report is not None:
        report.start(0)
    p, info = _fit(T, w, center, params.to_numpy(np.float64), tol, reg_covar, max_iter,
                   hard_start, initial_lower_bound, report, prior=_as_float64(prior),
                   equal_weights=equal_weights, stop_collapsed=bool(stop_collapsed), **rows)
    return _cast(p, info, _out_dtype(X))


def fit_restarts(X, params: GMMParams, *, sample_weight=None, tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, screen_iter: int = 0,
                 hard_start: bool = False, initial_lower_bound: float = -np.inf,
                 report: EMReport | None = None, prior: Prior | None = None,
                 equal_weights: bool = False, stop_collapsed: bool = False,
                 ) -> tuple[GMMParams, FitInfo, FitInfo]:
    """:func:`bayesgmm.engines.jax.fit_restarts` on the host: each of the R starts (batch shape
    ``(R,)``) in turn, sharing one feature table; the best by lower bound (the first
    maximum; non-finite fits lose), or small-EM with ``screen_iter``. ``report``
    (``verbose``): each restart in turn, in scikit-learn's words; small-EM's
    continuation numbers its iterations on from the screening."""
    dtype = _out_dtype(X)
    w, center, T = _prepare(X, sample_weight, params.covariance_type)
    rows = _guard_rows(X, w, center)
    batch = params.to_numpy(np.float64)
    starts = [batch[r] for r in range(batch.batch_shape[0])]
    prior = _as_float64(prior)

    def run(r, p, t, n, hard, lb=initial_lower_bound, offset=0, start=True):
        if report is not None and start:
            report.start(r)
        return _fit(T, w, center, p, t, reg_covar, n, hard, lb, report, r, offset,
                    prior=prior, equal_weights=equal_weights,
                    stop_collapsed=bool(stop_collapsed), **rows)

    def best_index(results, screened=False):
        scores = [-np.inf if i.nonfinite else float(i.lower_bound) for _, i in results]
        short = [screened and stop_collapsed and not i.nonfinite and i.n_iter < screen_iter
                 for _, i in results]  # collapsed in screening: as the compiled engine's
        if any(short) and not all(short):
            scores = [-np.inf if s else v for s, v in zip(short, scores)]
        return int(np.argmax(scores))

    if not screen_iter or screen_iter >= max_iter or len(starts) == 1:
        results = [run(r, p, tol, max_iter, hard_start) for r, p in enumerate(starts)]
        p, info = results[best_index(results)]
    else:  # small-EM, as engines.jax.fit_restarts
        results = [run(r, p, -1.0, screen_iter, hard_start) for r, p in enumerate(starts)]
        best = best_index(results, screened=True)
        start, start_info = results[best]
        p, info = run(best, start, tol, max_iter - screen_iter, False, -np.inf,
                      int(start_info.n_iter), start=False)
        info = info._replace(n_iter=np.int32(info.n_iter + start_info.n_iter),
                             history=np.concatenate([start_info.history, info.history]))
    all_info = FitInfo(*(np.stack(v) for v in zip(*(i for _, i in results))))
    return (*_cast(p, info, dtype), _info_as(all_info, dtype))


def fit_many(X, starts: list[GMMParams], *, sample_weight=None, tol: float = 1e-3,
             reg_covar: float = 1e-6, max_iter: int = 100, hard_start=False,
             pad: bool | None = None, stop_collapsed: bool = False
             ) -> list[tuple[GMMParams, FitInfo]]:
    """:func:`fit` from each of B starts in lockstep: one E-step and one M-step for
    all the members of one K.

    A sweep's fits (every K, every start of one covariance type) are many small EMs on
    the same rows, each paying Python's overhead per iteration. Here the members of
    one K (a sweep's starts of that K) share each iteration's calls: their natural
    parameters are one :func:`~bayesgmm.covariance.moment_theta` call, their
    log-probabilities one batched product (L, K, F) @ (F, N), their statistics one
    (L, K, N) @ (N, F), and their M-step one ``factor_from_moments`` call over the
    batch (:func:`_m_step_batch`: pooled quantities pooled per member, the iterative
    M-steps iterated per member). A member stops as :func:`fit` would (converged,
    ``max_iter`` or a non-finite step) and drops out of the batch; each result equals
    :func:`fit` from the same start (to round-off; tested). :func:`fit_many_models`
    runs the starts of several covariance types in one such loop.

    The batch iterates on the running members alone, stacked (:class:`_Running`): an
    iteration indexes nothing while every member runs on; when members stop they are
    written out and the stack is compacted once.

    Parameters
    ----------
    X : array of shape (N, D)
    starts : list of GMMParams
        Each of batch shape ``()``, of one covariance type; K may differ.
    sample_weight : array of shape (N,), optional
    tol, reg_covar, max_iter, stop_collapsed
        As :func:`fit`.
    hard_start : bool or sequence of bool
        Per member (or for all): a first hard pass, as :func:`fit`'s.
    pad : bool, optional
        Pad every member to the largest K (inactive components), so that all of them
        form one batch: Python's overhead is paid once an iteration instead of once per
        K, while the E-step computes padded columns. Default: when the feature table
        (N·F entries) has at most :data:`PAD_FEATURES`.

    Returns
    -------
    list of (GMMParams, FitInfo)
        One per start, each with its own K, in X's dtype.
    """
    kind = starts[0].covariance_type
    return fit_many_models(X, {kind: starts}, sample_weight=sample_weight, tol=tol,
                           reg_covar=reg_covar, max_iter=max_iter,
                           hard_start={kind: hard_start}, pad=pad,
                           stop_collapsed=stop_collapsed)[kind]


def fit_many_models(X, starts: Mapping[str, Sequence[GMMParams]], *, sample_weight=None,
                    tol: float = 1e-3, reg_covar: float = 1e-6, max_iter: int = 100,
                    hard_start=False, pad: bool | None = None,
                    stop_collapsed: bool = False
                    ) -> dict[str, list[tuple[GMMParams, FitInfo]]]:
    """:func:`fit_many` for the starts of several covariance types in one lockstep loop:
    a model search's EMs (every model, K and start) iterate together.

    Each model's members form its batches as in :func:`fit_many` (one per K, or one
    padded to its largest K); each iteration then computes every batch's natural
    parameters and M-step (per covariance type: the table's), while the batches that
    share a feature table (``[1, x, x⊗x]`` for the full-moment models, the squares for
    the others: :func:`bayesgmm.covariance.moment_features`) share one E-step, one
    peak and one product each way (:func:`_e_step_bucket`; on a table larger than
    :data:`PAD_FEATURES` only the batches of one K): two E-steps an iteration for a
    14-model search on small data instead of fourteen. Each result equals :func:`fit_many`'s for its model
    alone, and so :func:`fit`'s from its start (to round-off; tested).

    Parameters
    ----------
    X : array of shape (N, D)
    starts : mapping of str to list of GMMParams
        Per covariance type, its starts (batch shape ``()``, of that type; K may
        differ).
    sample_weight : array of shape (N,), optional
    tol, reg_covar, max_iter, stop_collapsed
        As :func:`fit`.
    hard_start : bool, or mapping of str to (bool or sequence of bool)
        Per covariance type (and per member, or for all of its members): a first hard
        pass, as :func:`fit`'s; a bool applies to every member of every type.
    pad : bool, optional
        As :func:`fit_many`, for every type (default: decided per type by the size of
        its own feature table).

    Returns
    -------
    dict of str to list of (GMMParams, FitInfo)
        Per covariance type (the keys of ``starts``), one per start, each with its own
        K, in X's dtype.
    """
    dtype = _out_dtype(X)
    X = np.asarray(X, np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    center = w @ X / np.sum(w)
    total_w = w.sum()
    tables: dict[bool, tuple[np.ndarray, np.ndarray]] = {}  # full_moments -> (T, TT)
    kinds = [kind for kind in starts if len(starts[kind])]
    offsets, B = {}, 0  # each type's members are rows B0 .. B0 + len of the arrays below
    for kind in kinds:
        full = ops(kind, NUMPY).full_moments
        if full not in tables:
            T = moment_features(X, center, kind, NUMPY)
            tables[full] = (T, np.ascontiguousarray(T.T))
        offsets[kind], B = B, B + len(starts[kind])
    sizes = [p.n_components for kind in kinds for p in starts[kind]]
    params = [p.to_numpy(np.float64) for kind in kinds for p in starts[kind]]
    hard = np.zeros(B, bool)
    for kind in kinds:
        h = hard_start.get(kind, False) if isinstance(hard_start, Mapping) else hard_start
        hard[offsets[kind]:offsets[kind] + len(starts[kind])] = np.broadcast_to(
            np.asarray(h, bool), (len(starts[kind]),))
    lower = np.full(B, -np.inf)
    n_iter = np.zeros(B, np.int32)
    converged = np.zeros(B, bool)
    nonfinite = np.zeros(B, bool)
    bad = np.full(B, -1, np.int32)
    history = np.full((B, max_iter), np.nan)
    own = np.asarray(sizes)  # each member's own K (padding beyond it is inactive)
    # the batches: per type, its members of each K (or all of them, padded to the
    # largest K), stacked; their bookkeeping is array operations, not a loop over members
    groups: list[_Group] = []
    batches: dict[tuple, list[int]] = {}  # (layout, K) -> members, by type
    for kind in kinds:
        b0, b1 = offsets[kind], offsets[kind] + len(starts[kind])
        full = ops(kind, NUMPY).full_moments
        pad_kind = tables[full][0].size <= PAD_FEATURES if pad is None else pad
        if pad_kind:  # every member padded to the largest K: one batch (inactive
            # components take no part in any M-step, tested equal to the unpadded fit)
            top = max(sizes[b0:b1])
            params[b0:b1] = [pad_components(p, top) for p in params[b0:b1]]
        for b in range(b0, b1):
            batches.setdefault((_layout(kind), params[b].n_components), []).append(b)
    for idx in batches.values():  # members of the types of one layout, of one K
        idx = np.array(idx)
        stack = _Batch(*(np.stack(a) for a in zip(
            *((params[b].weights, params[b].means, params[b].cov_factor) for b in idx))))
        member_kinds = [params[b].covariance_type for b in idx]
        group_kinds = tuple(dict.fromkeys(member_kinds))
        kind = group_kinds[0]
        groups.append(_Group(group_kinds, ops(kind, NUMPY).full_moments, idx,
                             np.array([group_kinds.index(k) for k in member_kinds]), stack,
                             np.zeros((len(idx), stack.weights.shape[-1])),
                             ops(kind, NUMPY).component_axis is not None))
    running = {g: _running(np.arange(len(grp.members)), grp.stack, grp.nk,
                           own[grp.members], hard[grp.members], grp)
               for g, grp in enumerate(groups)} if max_iter > 0 else {}
    row_maxima = set()  # the E-step buckets whose peak-shifted pass met a far row
    scale = _data_scale(X, w, center)
    with np.errstate(all="ignore"):  # -inf for padding; a failing step is caught below
        while running:
            # the running batches that share a feature table share one E-step
            # (on a small table whatever their K: padding a batch's columns costs less
            # than a call there; on a large one only batches of one K, as fit_many pads)
            buckets: dict[tuple[bool, int], list[tuple[int, np.ndarray]]] = {}
            centred = {}  # per batch: its members that fail the guard, if any
            for g, run in running.items():
                grp, prev = groups[g], run.params
                theta = moment_theta(prev.weights, prev.means, prev.cov_factor, center,
                                     grp.kinds[0], NUMPY)  # (L, F, c): the layout's
                guard = _fit_guard(theta, prev.means, prev.cov_factor, center, grp.kinds[0],
                                   scale, run.active)
                if guard.any():
                    centred[g] = guard
                c = 0 if tables[grp.full][0].size <= PAD_FEATURES else theta.shape[-1]
                buckets.setdefault((grp.full, c), []).append((g, theta))
            for key, items in buckets.items():
                for g, (S, wll) in zip((g for g, _ in items),
                                       _e_step_bucket(key, items, running, groups, tables,
                                                      center, w, row_maxima)):
                    run = _advance(groups[g], running[g], S, wll, center, reg_covar,
                                   total_w, tol, max_iter, history, bad, converged,
                                   nonfinite, lower, n_iter, own, centred.get(g), X, w,
                                   stop_collapsed)
                    if run is None:
                        del running[g]
                    else:
                        running[g] = run
    for grp in groups:
        stack = grp.stack
        for i, b in enumerate(grp.members):
            params[b] = take_components(GMMParams(stack.weights[i], stack.means[i],
                                                  stack.cov_factor[i],
                                                  grp.kinds[grp.model[i]]), sizes[b])
    nk = {b: grp.nk[i] for grp in groups for i, b in enumerate(grp.members)}
    out = {}
    for kind in kinds:
        out[kind] = []
        for b in range(offsets[kind], offsets[kind] + len(starts[kind])):
            k = sizes[b]
            info = FitInfo(np.float64(lower[b]), np.int32(n_iter[b]), np.bool_(converged[b]),
                           np.bool_(nonfinite[b]), np.int32(bad[b]), history[b], nk[b][:k])
            out[kind].append(_cast(params[b], info, dtype))
    return {kind: out.get(kind, []) for kind in starts}


class _Group(NamedTuple):
    """One batch of :func:`fit_many_models`: members of one K and of covariance types
    of one layout (:func:`_layout`), the members of each type consecutive."""

    kinds: tuple  # the covariance types, in the members' order
    full: bool  # its feature table: ops(kind).full_moments
    members: np.ndarray  # (L,) int: their indices among all members
    model: np.ndarray  # (L,) int: each member's type, an index into kinds
    stack: _Batch  # float64, K components: the results, written as members stop
    nk: np.ndarray  # (L, K): their counts, written as members stop
    per_component: bool  # the factor is (L, K, ...)


def _e_step_bucket(key, items, running, groups, tables, center, w, row_maxima):
    """One E-step for the running batches ``items`` (``(g, theta (L_g, F, c_g))``) that
    share a feature table (``key``: the table and, on large data, one K): their
    natural parameters stacked, each padded to the largest c with inactive components
    (``-inf``: they add exactly 0 to the statistics; the log-likelihood's sum over rows
    may round differently), the peak-shifted pass
    (:func:`_e_step_peak`) where it holds, else the row maxima (:func:`_e_step_batch`,
    with the members' hard first passes). Returns each batch's ``(S (L_g, c_g, F),
    wll (L_g,))``, in the order of ``items``."""
    T, TT = tables[key[0]]
    runs = [running[g] for g, _ in items]
    if len(items) == 1:
        theta, means, hard = items[0][1], runs[0].params.means, runs[0].hard
    else:
        c = max(th.shape[-1] for _, th in items)
        theta = np.concatenate([_pad_theta(th, c) for _, th in items])
        means = np.concatenate([_pad_means(r.params.means, c) for r in runs])
        hard = (None if all(r.hard is None for r in runs) else np.concatenate(
            [np.zeros(len(r.rows), bool) if r.hard is None else r.hard for r in runs]))
    kind = groups[items[0][0]].kinds[0]  # any type of this feature table: the same features
    peak = (None if hard is not None or key in row_maxima
            else _peak(theta, means, center, kind))
    out = None if peak is None else _e_step_peak(theta, T, TT, w, peak)
    if out is None:  # a row far from every component: this bucket keeps the row
        if peak is not None:  # maxima from now on (not both passes every iteration)
            row_maxima.add(key)
        out = _e_step_batch(theta, T, TT, w, hard)
    S, wll = out
    if len(items) == 1:
        return [out]
    ends = np.cumsum([len(r.rows) for r in runs])
    return [(S[e - len(r.rows):e, :th.shape[-1]], wll[e - len(r.rows):e])
            for r, e, (_, th) in zip(runs, ends, items)]


def _pad_theta(theta: np.ndarray, c: int) -> np.ndarray:
    """Natural parameters (L, F, K) with c - K inactive components appended: a constant
    term of ``-inf`` (weight 0), the other rows 0."""
    L, F, K = theta.shape
    if K == c:
        return theta
    out = np.zeros((L, F, c))
    out[:, :, :K] = theta
    out[:, 0, K:] = -np.inf
    return out


def _pad_means(means: np.ndarray, c: int) -> np.ndarray:
    """Means (L, K, D) with c - K components at 0 appended (padding: their peak is the
    ``-inf`` of their constant term)."""
    L, K, D = means.shape
    if K == c:
        return means
    out = np.zeros((L, c, D))
    out[:, :K] = means
    return out


def _advance(grp: _Group, run, S, wll, center, reg_covar, total_w, tol, max_iter, history,
             bad, converged, nonfinite, lower, n_iter, own, centred=None, X=None, w=None,
             stop_collapsed=False):
    """One batch's M-step and bookkeeping after its E-step (``S``, ``wll``): the step
    applied where sound, each member's lower bound, history and stopping rule as
    :func:`fit`'s; the members that stopped written out (into ``grp`` and the
    per-member arrays). ``centred (L,)``: the members that failed
    :func:`_fit_guard`, whose statistics are computed again from the rows ``X``
    (weights ``w``) centred per component (:func:`_centred_e_step`); None when none
    did. ``stop_collapsed``: the members whose count reaches a multiple of
    :data:`~bayesgmm.engines.COLLAPSE_CHECK_EVERY` this iteration stop if collapsed
    (as :func:`_fit`). Returns the batch's running members, or None when none is
    left."""
    rows = run.rows  # positions in this batch's stack of the running members
    group = grp.members[rows]
    prev = run.params
    stats = None
    if centred is not None:
        nk_raw, sx, sxx = (np.array(a) for a in moment_sums(S, center, grp.kinds[0], NUMPY))
        shift = np.broadcast_to(center, sx.shape).copy()
        wll = np.array(wll)
        for i in np.flatnonzero(centred):
            kind = next(k for k, a, b in run.segments if a <= i < b)
            p = GMMParams(prev.weights[i], prev.means[i], prev.cov_factor[i], kind)
            hard = run.hard is not None and bool(run.hard[i])
            nk_raw[i], sx[i], sxx[i], wll[i] = _centred_e_step(p, X, w, hard)
            shift[i] = prev.means[i]
        stats = (nk_raw, sx, sxx, shift)
    new, nk_new, ok, component_ok = _m_step_batch(
        S, center, run.segments, reg_covar, prev, wll, total_w, run.active, stats)
    lb = wll / total_w
    all_ok = ok.all()
    if all_ok:  # the step is sound for every member: applied
        run = run._replace(params=new, nk=nk_new)
    else:  # applied where sound
        run = run._replace(params=_Batch(*(
            np.where(ok.reshape(ok.shape + (1,) * (a.ndim - 1)), a, b)
            for a, b in zip(new, prev))),
            nk=np.where(ok[:, None], nk_new, run.nk))
        bad[group] = np.where(ok | component_ok.all(axis=-1), -1,
                              component_ok.argmin(axis=-1))
    if run.hard is None:  # every member soft (after the first pass)
        counted = True
        history[group, run.n_iter] = lb
        stop = np.abs(lb - run.lower) < tol
        if not all_ok:
            stop &= ok
        run = run._replace(lower=lb if all_ok else np.where(ok, lb, run.lower),
                           n_iter=run.n_iter + 1)
    else:
        soft = counted = ~run.hard
        g = group[soft]
        history[g, run.n_iter[soft]] = lb[soft]
        stop = soft & ok & (np.abs(lb - run.lower) < tol)
        run = run._replace(lower=np.where(soft & ok, lb, run.lower),
                           n_iter=run.n_iter + soft, hard=None)
    done = stop | (run.n_iter >= max_iter) | ~ok
    if stop_collapsed:
        done |= _collapsed_rows(run, counted & ok & ~done
                                & (run.n_iter % COLLAPSE_CHECK_EVERY == 0), reg_covar)
    if not done.any():
        return run
    # members that stopped: their results out, the rest compacted
    out = rows[done]
    gdone = grp.members[out]
    converged[gdone], nonfinite[gdone] = stop[done], ~ok[done]
    lower[gdone], n_iter[gdone] = run.lower[done], run.n_iter[done]
    _write_rows(grp.stack, grp.nk, out, run, done, grp.per_component)
    if done.all():
        return None
    keep = ~done
    return _running(rows[keep], run.params, run.nk, own[group[keep]], None, grp, keep,
                    run.lower[keep], run.n_iter[keep])


def _collapsed_rows(run, check: np.ndarray, reg_covar: float) -> np.ndarray:
    """(L,) bool: which of the members ``check`` (a mask over ``run``'s rows) have
    collapsed (:func:`bayesgmm.engines.collapsed_members`: one call for the batch,
    whose types store their factor alike (:func:`_layout`), each member with its own
    type's :func:`~bayesgmm.engines.min_component_rows`)."""
    out = np.zeros(len(check), bool)
    rows = np.flatnonzero(check)
    if not len(rows):
        return out
    p = run.params
    D = p.means.shape[-1]
    need = np.empty(len(check))
    for kind, a, b in run.segments:
        need[a:b] = min_component_rows(kind, D)
    batch = GMMParams(p.weights[rows], p.means[rows],
                      p.cov_factor[rows], run.segments[0][0])
    out[rows] = collapsed_members(batch, run.nk[rows], reg_covar, NUMPY, need[rows])
    return out


class _Running(NamedTuple):
    """The running members of one K's stack in :func:`fit_many` (L of them), with the
    components past the largest K among them cut off (padding for all of them)."""

    rows: np.ndarray  # (L,) int: their positions in the K's stack
    segments: tuple  # ((type, start, stop), ...): the rows of each covariance type
    params: _Batch  # float64, c <= K components
    nk: np.ndarray  # (L, c): the counts of the last applied step
    active: np.ndarray | None  # (L, c) bool: weight > 0; None when all are
    hard: np.ndarray | None  # (L,) bool: a hard first pass to come; None when none
    lower: np.ndarray  # (L,) the last sound lower bound
    n_iter: np.ndarray  # (L,) int32


def _running(rows, params: _Batch, nk, own, hard, grp: _Group, keep=None,
             lower=None, n_iter=None) -> _Running:
    """A :class:`_Running` of the members ``keep`` (a mask over ``params``' rows; all
    when None), cut to the largest of their own K ``own``; ``rows``: their positions
    in the stack of the batch ``grp``."""
    per_component = grp.per_component
    c = int(own.max())
    cut = slice(None) if c == params.weights.shape[-1] else slice(None, c)
    if keep is None:
        keep = slice(None)
    params = _Batch(params.weights[keep, cut], params.means[keep, cut],
                    params.cov_factor[keep, cut] if per_component else params.cov_factor[keep])
    active = params.weights > 0
    L = params.weights.shape[0]
    return _Running(rows, _segments(grp.kinds, grp.model[rows]), params, nk[keep, cut],
                    None if active.all() else active,
                    hard if hard is not None and hard.any() else None,
                    np.full(L, -np.inf) if lower is None else lower,
                    np.zeros(L, np.int32) if n_iter is None else n_iter)


def _segments(kinds: tuple, model: np.ndarray) -> tuple:
    """``((type, start, stop), ...)``: the runs of equal ``model`` (indices into
    ``kinds``, non-decreasing) as row ranges, one per covariance type."""
    if len(kinds) == 1:
        return ((kinds[0], 0, len(model)),)
    cuts = (np.flatnonzero(np.diff(model)) + 1).tolist()
    return tuple((kinds[int(model[a])], a, b) for a, b in zip([0, *cuts], [*cuts, len(model)]))


def _layout(kind: str) -> tuple:
    """What a batch of members of several covariance types must share (everything
    :func:`fit_many_models` computes per batch but each type's ``factor_from_moments``):
    the factor's layout and the moments form. mclust's 14 models have four: VII's (EII,
    VII), VVI's (EEI, VEI, EVI, VVI), EEE's and VVV's (VEE, EVE, VVE, EEV, VEV, EVV,
    VVV)."""
    raw = RAW_TABLE[kind]
    return tuple(getattr(raw, f) for f in _LAYOUT_FIELDS)


_LAYOUT_FIELDS = ("component_axis", "full_moments", "moment_precision", "precision_times",
                  "log_det_precision", "quadratic_theta", "unpack_second", "factor_ok")


def _write_rows(stack: _Batch, nk: np.ndarray, out: np.ndarray, run: _Running,
                done: np.ndarray, per_component: bool) -> None:
    """Write the members ``done`` (a mask over ``run``'s rows) into rows ``out`` of the
    K's ``stack`` and counts ``nk``; components past ``run``'s are padding, unchanged."""
    c = run.params.weights.shape[-1]
    stack.weights[out, :c] = run.params.weights[done]
    stack.means[out, :c] = run.params.means[done]
    if per_component:
        stack.cov_factor[out, :c] = run.params.cov_factor[done]
    else:
        stack.cov_factor[out] = run.params.cov_factor[done]
    nk[out, :c] = run.nk[done]


# ---- k-means -------------------------------------------------------------------------


def lloyd(X, sample_weight, centers, n_active: int | None = None, n_lloyd: int = 30,
          tol: float = 1e-4) -> np.ndarray:
    """:func:`bayesgmm.initialize.lloyd` on the host (float64): weighted Lloyd
    iterations from ``centers (K, D)``, at most ``n_lloyd``, stopping once the centres
    move less than ``tol`` times the mean feature variance; centres past ``n_active``
    are padding and get no rows. Returns the centres, (K, D)."""
    X = np.asarray(X, np.float64)
    w = np.asarray(sample_weight, np.float64)
    K = centers.shape[0]
    active = np.arange(K) < (K if n_active is None else n_active)
    total = np.sum(w)
    mean = w @ X / total
    Xc = X - mean
    threshold = tol * np.mean(w @ (Xc * Xc) / total)
    c = np.asarray(centers, np.float64) - mean
    shift, i = np.inf, 0
    # (K, N) layout, in-place updates and per-feature bincounts: no (K, N) one-hot
    # (measured, N=300, D=2, K=20: ~45 -> ~20 µs an iteration)
    XcT, wXcT = np.ascontiguousarray(Xc.T), np.ascontiguousarray((Xc * w[:, None]).T)
    while i < n_lloyd and shift > threshold:
        score = c @ XcT  # (K, N): |c|² - 2 x·c, the distance up to |x|²
        score *= -2.0
        score += (c * c).sum(axis=1)[:, None]
        if not active.all():
            score[~active] = np.inf
        labels = score.argmin(axis=0)
        counts = np.bincount(labels, w, K)
        sums = np.stack([np.bincount(labels, row, K) for row in wXcT], axis=1)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-30)[:, None], c)
        shift, c, i = ((new - c) ** 2).sum(), new, i + 1
    return c + mean


def lloyd_batch(X, sample_weight, centers, n_active: int | None = None) -> np.ndarray:
    """:func:`lloyd` for each restart's centres ``(R, K, D)``."""
    return np.stack([lloyd(X, sample_weight, c, n_active) for c in centers]).astype(
        _out_dtype(X))


# ---- scoring -------------------------------------------------------------------------


def log_resp(params: GMMParams, X) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bayesgmm.density.log_resp` on the host: log p(z = k | x) (N, K) and
    log p(x) (N,), in float64."""
    p = params.to_numpy(np.float64)
    X = np.asarray(X, np.float64)
    lp = _joint(p, X, np.mean(X, axis=0))
    ln = _log_norm(lp)
    return lp - ln[:, None], ln


def score_draws(params: GMMParams, X) -> np.ndarray:
    """log p(x_n | θ_m) (M, N) in float64 for M parameter sets (batch shape (M,)), e.g.
    posterior draws: features once, one (F, K) table per set, one batched product."""
    X = np.asarray(X, np.float64)
    center = np.mean(X, axis=0)
    T = moment_features(X, center, params.covariance_type, NUMPY)
    p = params.to_numpy(np.float64)
    thetas = [_theta(p[m], center) for m in range(p.batch_shape[0])]
    if not all(_moments_exact(p[m], center, th) for m, th in enumerate(thetas)):
        return np.stack([_log_norm(_joint(p[m], X, center, T))  # a draw the moments
                         for m in range(p.batch_shape[0])])  # form cannot score
    return _log_norm(T @ np.stack(thetas))  # (M, N, K) -> (M, N)


def criteria_terms(params: GMMParams, X, sample_weight=None) -> tuple[float, float]:
    """:func:`bayesgmm.selection.criteria_terms` on the host for one parameter set:
    (Σ w log p(x), Σ w H(r))."""
    return criteria_terms_many([params], X, sample_weight)[0]


def criteria_terms_many(params_list, X, sample_weight=None) -> list[tuple[float, float]]:
    """:func:`criteria_terms` of several parameter sets (batch shape ``()``, one
    covariance type) on the same rows: the features of X are made once for all (a
    sweep scores every K of a model)."""
    X = np.asarray(X, np.float64)
    center = np.mean(X, axis=0)
    # (K, N) layout, as _e_step: the reductions over K run along contiguous rows
    TT = np.ascontiguousarray(moment_features(X, center, params_list[0].covariance_type,
                                              NUMPY).T)  # (F, N)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    live = w > 0
    out = []
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        for params in params_list:  # log_resp's quantities, on the shared features
            p = params.to_numpy(np.float64)
            theta = _theta(p, center)
            lp = (theta.T @ TT if _moments_exact(p, center, theta)
                  else np.ascontiguousarray(_centred_joint(p, X).T))  # (K, N)
            top = _finite_max(lp, axis=0)
            lr = lp - top  # log r + log Σ_k exp(lp - top): K is axis 0
            e = np.exp(lr)
            total = e.sum(axis=0)
            log_total = np.log(total)
            ln = top + log_total
            lr -= log_total  # log r
            e /= total  # r, without a second exp (measured, 9 K at 20,000 x 5: 33 -> 21 ms)
            e *= lr
            if not np.isfinite(lp).all():  # an inactive component (-inf): r log r is 0
                e = np.where(np.isfinite(lp), e, 0.0)
            h = -e.sum(axis=0)
            out.append((float(np.sum(np.where(live, w * ln, 0.0))),
                        float(np.sum(np.where(live, w * h, 0.0)))))
    return out


def sklearn_covariances(params: GMMParams) -> dict[str, np.ndarray]:
    """scikit-learn's ``covariances_``, ``precisions_`` and ``precisions_cholesky_`` of
    ``params`` (batch shape ``()``), computed in float64, returned in its dtype."""
    dtype = np.asarray(params.means).dtype
    table = ops(params.covariance_type, NUMPY)
    f = np.asarray(params.cov_factor, np.float64)
    out = {"covariances_": table.to_covariance(f), "precisions_": table.to_precision(f),
           "precisions_cholesky_": table.to_precision_cholesky(f)}
    return {k: v.astype(dtype) for k, v in out.items()}


# ---- sampling ------------------------------------------------------------------------


def sample(rng: np.random.Generator, params: GMMParams,
           n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples`` points from one parameter set (batch shape ``()``), with
    scikit-learn's layout: counts per component from a multinomial on the weights, rows
    ordered by component. Noise is scaled by the table's ``scale_noise`` in float64;
    nothing is compiled, whatever ``n_samples``.

    Parameters
    ----------
    rng : numpy.random.Generator
    params : GMMParams
        Batch shape ``()``.
    n_samples : int

    Returns
    -------
    X : array of shape (n_samples, D)
        In the dtype of ``params.means``.
    labels : array of shape (n_samples,), int64
        The component each row was drawn from (non-decreasing).
    """
    p = params.to_numpy(np.float64)
    n_samples, D = int(n_samples), p.n_features
    weights = p.weights / p.weights.sum()  # multinomial wants a sum of 1 to round-off
    counts = rng.multinomial(n_samples, weights)
    scale = ops(p.covariance_type, NUMPY).scale_noise
    X = np.concatenate([p.means[k] + scale(p.cov_factor, k, rng.standard_normal((n, D)))
                        for k, n in enumerate(counts)] or [np.empty((0, D))])
    labels = np.repeat(np.arange(p.n_components), counts)
    return X.astype(np.asarray(params.means).dtype, copy=False), labels
