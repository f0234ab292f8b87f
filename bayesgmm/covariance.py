"""Per-covariance-type mathematics: one table of small functions, written once over an
array namespace.

Glossary: N samples, D features, K components, F moment features per row
(:func:`n_moment_features`), F2 = F - 1 - D of them second-order.

The models are mclust's 14 (Celeux & Govaert 1995): Σ_k = λ_k D_k A_k D_kᵀ with volume
λ_k, orientation D_k and shape A_k (|A_k| = 1) each Equal across components, Variable,
or the Identity, named in that order (VEV: variable volume, equal shape, variable
orientation). scikit-learn's four names are the same entries (:data:`SKLEARN_NAMES`:
full = VVV, tied = EEE, diag = VVI, spherical = VII), as are mclust's univariate E = EII
and V = VII. Every model stores a *factor* in :class:`bayesgmm.params.GMMParams`, in one
of four layouts; what differs within a layout is the M-step (``factor_from_moments``)
and ``n_parameters`` (mclust's ``nVarParams``):

================================ ========= =============================================
models                           factor    meaning
================================ ========= =============================================
full = VVV, VEE, EVE, VVE, EEV,  (K, D, D) lower Cholesky L_k of each covariance,
VEV, EVV                                   S_k = L_k L_kᵀ
tied = EEE                       (D, D)    lower Cholesky of the one shared covariance
diag = VVI, EEI, VEI, EVI        (K, D)    per-feature standard deviations
spherical = VII, EII             (K,)      one standard deviation per component
================================ ========= =============================================

M-steps: closed forms for EII, VII, EEI, EVI, VVI, EEE, EEV, EVV, VVV; VEI, VEE and VEV
alternate volumes and the shared shape; EVE and VVE add the shared orientation's
majorise-minimise steps (Browne & McNicholas 2014). Each maximises, over its family, the
expected complete-data log-likelihood with every component's covariance estimate
(about its new mean) plus ``reg_covar``·I, so the four scikit-learn types keep
scikit-learn's estimates exactly.

Design notes
------------
* Code elsewhere never writes ``if covariance_type == ...``; it looks the type up once in
  :data:`TABLE` (at trace time under ``jit``), the way gmmx does. Each entry works on one
  parameter set; the compiled engine applies ``vmap`` over batches. The conversions, the
  M-steps (``factor_from_moments``, ``factor_ok``) and the moments form
  (:func:`moment_theta`, :func:`moment_sums`) also take leading batch dims of members
  (arrays (..., K, ...), ``total`` (...)), each member pooled over its own components
  and each iterative M-step iterated per member as far as it goes alone: the host
  engine's :func:`bayesgmm.engines.numpy.fit_many` makes one call per iteration for a
  batch of fits.
* Each function is written once over a namespace ``xp`` (:mod:`bayesgmm._xp`): NumPy for
  the host engine, jax.numpy for the compiled one. ``ops(ct)`` gives the entry whose
  functions take the namespace of their arguments (a JAX array or tracer: JAX; else
  NumPy), so ``ops(ct).to_covariance(L)`` works on either; ``ops(ct, numpy)`` and
  ``ops(ct, jax.numpy)`` bind one namespace (no dispatch per call: the host engine's
  inner loop, and tests that hold the two equal).
* The moments form (:func:`moment_features`, :func:`moment_theta`, :func:`moment_sums`):
  with features ``T(x) = [1, x - c, (x - c)^{⊗2}]`` the joint log-density is
  ``log p(x, z = k) = T(x) θ_k``, and the statistics are sums of T. Both engines build
  their E-step from these, so its formulas exist once.
* Collapse: an estimated variance (``reg_covar`` included) at most
  :data:`ROUNDOFF` · eps times the mean square it was computed from is round-off, not an
  estimate. ``factor_from_moments`` computes ``Σ = E[(x - s)(x - s)ᵀ] - δδᵀ`` from
  statistics about a shift ``s`` (the data mean for the moments kernel, the component's
  previous mean for the centred one), so its error is about eps · E[(x - s)²]; a
  component that collapsed on one point (or on identical points, or for full/tied on a
  line: a Cholesky pivot) leaves just that residue. Such a factor comes back NaN, as a
  non-positive-definite one does, so ``factor_ok`` flags it in both engines and EM
  reports the component (``FitInfo.nonfinite``, ``bad_component``). Legitimate fits are
  far from it: a cluster of standard deviation σ at distance r from the shift is flagged
  only when σ/r < sqrt(ROUNDOFF · eps), 1.2e-7 in float64 (where its variance has fewer
  than two correct digits left anyway).

scikit-learn's ``precisions_cholesky_`` is the upper-triangular U with precision
P = U Uᵀ, i.e. U = L⁻ᵀ; for diag/spherical it is 1/std.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from bayesgmm._xp import NUMPY as _NUMPY_NS
from bayesgmm._xp import Namespace, finite_or_nan, get_namespace, namespace

# HIGHEST (JAX's matmul precision) is importable from here too, resolved on first use so
# that this module does not import JAX; it is left out of __all__ for the same reason.
__all__ = ["CovarianceOps", "TABLE", "RAW_TABLE", "ARRAY_FUNCTIONS", "ops", "ROUNDOFF",
           "MCLUST_MODELS", "SKLEARN_NAMES", "UNIVARIATE_NAMES", "CANONICAL",
           "INNER_MAX_ITER", "WARM_ALTERNATIONS", "WARM_MAX_ITER", "WARM_EQUAL_MAX_ITER",
           "WARM_LARGE_ROWS",
           "WARM_LARGE_MAX_ITER", "COLD_MAX_ITER", "layout_factor_from_moments", "Prior",
           "MCLUST_PRIOR", "PRIOR_FORMS", "prior_rule", "default_prior", "prior_moments", "n_moment_features", "moment_features",
           "moment_theta", "moment_sums"]

Array = Any  # a NumPy or JAX array (typing only; importing jax here is what we avoid)

#: See the module note on collapse: a variance at most ROUNDOFF · eps · (the mean square
#: it was computed from) is round-off. Measured residues of collapsed components: at most
#: 12 eps (2000 random collapses on 1-7 identical rows, 1-5 features, float32 and
#: float64, both kernels; scikit-learn's 10·eps on the counts makes most of it), so 2^6
#: leaves a 5x margin. A flagged pivot has fewer than two correct digits. In float32
#: that is a wider band: the moments kernel (float64's default) flags σ/r < 2.8e-3, and
#: a nearly degenerate component (two points in 2-D, a line) with reg_covar = 1e-6 on
#: unit-scale data is at it; float64 is the host engine's, and the estimators' default.
ROUNDOFF = 2.0**6


def __getattr__(name):
    # HIGHEST is JAX's matmul precision for the compiled code's own products; resolved
    # on first use so that importing this module does not import JAX.
    if name == "HIGHEST":
        import jax

        return jax.lax.Precision.HIGHEST
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CovarianceOps(NamedTuple):
    """Functions for one covariance type; all act on a single parameter set.

    The fields from ``to_covariance`` on (listed in :data:`ARRAY_FUNCTIONS`) are array
    functions: in the table they are written ``fn(xp, ...)``; an entry from :func:`ops`
    has them bound (``fn(...)``), to one namespace or to their arguments' namespace.
    The other fields are plain values or functions of sizes, readable without JAX.

    The conversions (``to_*``, ``from_*``, ``precision_ok``) also broadcast over leading
    batch dims of the factor, so NumPy callers need no loop over draws; so do
    ``factor_from_moments`` and ``factor_ok`` (one M-step per member of a batch) and the
    moments form's ``moment_precision``, ``precision_times``, ``log_det_precision``,
    ``quadratic_theta`` and ``unpack_second``.
    """

    # ---- sizes and layout (no arrays) ----
    factor_shape: Callable[[int, int], tuple[int, ...]]  # (K, D) -> shape of the factor
    # axis of the factor that indexes components (counted from the end); None for tied
    component_axis: int | None
    # (K, D, dtype) -> factor of Σ = I, a host (NumPy) constant: padding on the host
    # then compiles nothing, and under jit it is a literal
    identity: Callable[[int, int, object], np.ndarray]
    n_parameters: Callable[[int, int], int]  # free covariance parameters (BIC)
    # the moments kernel's second-order features: all products x_a x_b (True) or squares
    full_moments: bool
    # The Bayesian model (bayesgmm.bayes.model) samples per-component scales, times an LKJ
    # correlation Cholesky factor where ``correlated``; a tied or spherical fit starts it
    # as its per-component relaxation ``bayes_type`` ("full" or "diag").
    correlated: bool
    bayes_type: str
    # what a valid scikit-learn precision of this type is (error messages)
    precision_requirement: str
    # ---- array functions: conversions ----
    to_covariance: Callable[..., Array]  # factor -> sklearn covariances_
    from_covariance: Callable[..., Array]  # sklearn covariances_ -> factor
    to_precision_cholesky: Callable[..., Array]  # factor -> sklearn precisions_cholesky_
    from_precision_cholesky: Callable[..., Array]
    to_precision: Callable[..., Array]  # factor -> sklearn precisions_
    from_precision: Callable[..., Array]
    to_full_covariance: Callable[..., Array]  # (factor, K, D) -> (K, D, D)
    # sklearn precisions_ -> bool per component ((K,); tied (1,)): symmetric positive
    # definite (full/tied) or positive (diag/spherical)
    precision_ok: Callable[..., Array]
    # ---- array functions: densities (centred kernel) ----
    # (Xc (K,N,D) = X - means per component, prec_chol) -> (N,K) squared Mahalanobis
    mahalanobis: Callable[..., Array]
    # (prec_chol, K, D) -> (K,) log|U_k|
    log_det_precision_cholesky: Callable[..., Array]
    # (factor, K, D) -> (K,) log|U_k|, from the factor itself (no inverse)
    log_det_precision: Callable[..., Array]
    # sample z (..., D) standard normal -> (x - mean) for component k: (factor, k, z)
    scale_noise: Callable[..., Array]
    # second-moment accumulation (resp*w (N,K), centred X (K,N,D)) -> per-type stats
    second_moment: Callable[..., Array]
    # ---- array functions: the M-step and its health ----
    # (sxx, nk (K,), delta (K,D), total weight, reg_covar[, previous factor]) -> factor;
    # NaN for a collapsed component (see the module note). The previous factor (that of
    # the parameters EM holds) warm-starts the iterative M-steps that need it (EVE, VVE)
    factor_from_moments: Callable[..., Array]
    # (factor, K) -> (K,) bool: finite, with a positive diagonal (else the M-step failed)
    factor_ok: Callable[..., Array]
    # ---- array functions: the moments form ----
    # (factor, K, D) -> precision per component for the moments kernel: (K, D, D) for
    # full/tied, its diagonal (K, D) for diag/spherical
    moment_precision: Callable[..., Array]
    # (moment precision, m (K, D)) -> P_k m_k (K, D)
    precision_times: Callable[..., Array]
    # moment precision -> (F2, K): θ's second-order rows, -½ xᵀ P x on the features
    quadratic_theta: Callable[..., Array]
    # xc (N, D) -> (N, F2): the second-order features
    second_features: Callable[..., Array]
    # (K, F2) sums of the second-order features -> sxx ((K, D, D) or (K, D))
    unpack_second: Callable[..., Array]
    # (sxx, sx (K,D), d (K,D), nk (K,)) -> sxx about shift - d (exact re-centring)
    shift_second: Callable[..., Array]


#: The fields of :class:`CovarianceOps` that are array functions (take ``xp`` first in
#: the table).
ARRAY_FUNCTIONS: tuple[str, ...] = CovarianceOps._fields[
    CovarianceOps._fields.index("to_covariance"):]


# ---- helpers shared by the entries -----------------------------------------------------


class _Triu(NamedTuple):
    """Index tables of the upper triangle of a D x D matrix, ``np.triu_indices``' order."""

    iu: np.ndarray  # (F2,) row a of each product x_a x_b, a <= b
    ju: np.ndarray  # (F2,) column b
    twice: np.ndarray  # (F2,) float64: its weight in a quadratic form (1 on the diagonal, else 2)
    flat: np.ndarray  # (F2,) row-major position a·D + b
    pos: np.ndarray  # (D²,) for each entry (row-major), its position among the F2


@functools.cache
def _triu(D: int) -> _Triu:
    # int32 indices: JAX caches the conversion of a NumPy constant, and an int64 index
    # met first under x64 stays int64 (a strict-promotion error) once x64 is off
    iu, ju = (i.astype(np.int32) for i in np.triu_indices(D))
    pos = np.empty((D, D), np.int32)
    pos[iu, ju] = pos[ju, iu] = np.arange(len(iu))
    return _Triu(iu, ju, np.where(iu == ju, 1.0, 2.0), iu * D + ju, pos.ravel())


def _t(xp, a: Array) -> Array:
    """Transpose of the last two axes."""
    return xp.swapaxes(a, -1, -2)


@functools.cache
def _roundoff_rtol(dtype) -> float:
    return float(ROUNDOFF * np.finfo(dtype).eps)


def _roundoff(xp, m2: Array) -> Array:
    """The variance below which an estimate computed from mean squares ``m2`` is
    round-off (module note), and at least tiny / eps: no variance (the floor an
    iterative M-step clamps to; :func:`bayesgmm.validation.min_spread` squared). Where
    the mean square itself is 0 (a feature constant on a component's rows), VEV's
    clamp left variances of 2e-308 that passed as positive: a fit with reg_covar = 0
    scored +350 nats on a constant feature where every other model reports the
    collapse."""
    floor = _roundoff_floor(m2.dtype)
    return xp.maximum(_roundoff_rtol(m2.dtype) * m2, floor)


@functools.cache
def _roundoff_floor(dtype) -> float:
    info = np.finfo(dtype)
    return float(info.tiny / info.eps)


def _gram_of_inverse(xp, L: Array) -> Array:
    """(L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹."""
    if _closed_2x2(xp, L):  # L⁻¹ = [[1/l00, 0], [-l10/(l00 l11), 1/l11]]
        i00, i11 = 1.0 / L[..., 0, 0], 1.0 / L[..., 1, 1]
        i10 = -L[..., 1, 0] * i00 * i11
        P = np.empty(L.shape, L.dtype)
        P[..., 0, 0] = i00 * i00 + i10 * i10
        P[..., 0, 1] = P[..., 1, 0] = i10 * i11
        P[..., 1, 1] = i11 * i11
        return P
    Li = xp.tril_inv(L)
    return xp.matmul(_t(xp, Li), Li)


def _precision_to_factor(xp, P: Array) -> Array:
    # S = P⁻¹, symmetrised, then its lower Cholesky. Explicit inversion is fine at the
    # D (<~100) of mixtures, and it only runs once, on user-supplied precisions_init.
    S = xp.inv(P)
    return xp.cholesky(0.5 * (S + _t(xp, S)))


def _tril_ok(xp, L: Array) -> Array:
    d = L.diagonal(axis1=-2, axis2=-1)
    return xp.isfinite(L).all(axis=(-2, -1)) & (d > 0).all(axis=-1)


def _spd(xp, P: Array) -> Array:
    """Per matrix (..., D, D): symmetric (NumPy's allclose, atol relative to its largest
    entry) and positive definite (smallest eigenvalue, float64 on the host)."""
    atol = 1e-8 * xp.abs(P).max(axis=(-2, -1), keepdims=True)
    sym = (xp.abs(P - _t(xp, P)) <= atol + 1e-5 * xp.abs(_t(xp, P))).all(axis=(-2, -1))
    return sym & (xp.linalg.eigvalsh(P).min(axis=-1) > 0)


def _tril_factor(xp, cov: Array, m2_diag: Array) -> Array:
    """Lower Cholesky of ``cov (..., D, D)``: NaN where ``cov`` is not positive definite,
    and NaN in row d where the pivot L_dd² is round-off of the mean square
    ``m2_diag[..., d]`` (a collapsed component; ``factor_ok`` then fails)."""
    L = xp.cholesky(cov)
    d = L.diagonal(axis1=-2, axis2=-1)
    return xp.nan_where((d * d <= _roundoff(xp, m2_diag))[..., None], L)


def _root_variance(xp, var: Array, m2: Array) -> Array:
    """sqrt(var); NaN where ``var`` is round-off of the mean squares ``m2``."""
    return xp.sqrt(xp.nan_where(var <= _roundoff(xp, m2), var))


# Second-order features: all products x_a x_b, a <= b (full, tied) ...


def _products(xp, xc: Array) -> Array:
    t = _triu(xc.shape[-1])
    return xc[:, t.iu] * xc[:, t.ju]


@functools.cache
def _half_twice(D: int, dtype) -> np.ndarray:
    """-½ × each product's weight in a quadratic form, in ``dtype``."""
    return (-0.5 * _triu(D).twice).astype(dtype)


def _products_theta(xp, P: Array) -> Array:
    # -½ xᵀPx = Σ_a -½ P_aa x_a² + Σ_{a<b} -P_ab x_a x_b: the upper triangle (P =
    # L⁻ᵀL⁻¹ is symmetric by construction), off-diagonals counted twice; P as a
    # (..., K, D²) table, one gather
    D = P.shape[-1]
    flat = P.reshape(P.shape[:-2] + (D * D,))[..., _triu(D).flat]
    return _t(xp, flat * _half_twice(D, P.dtype))


def _products_unpack(xp, S2: Array) -> Array:
    F2 = S2.shape[-1]
    D = (math.isqrt(8 * F2 + 1) - 1) // 2  # F2 = D(D+1)/2
    return S2[..., _triu(D).pos].reshape(S2.shape[:-1] + (D, D))


def _outer_shift(xp, sxx, sx, d, nk):
    outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
    return sxx + outer(sx, d) + outer(d, sx) + nk[:, None, None] * outer(d, d)


# ... or squares (diag, spherical).


def _squares(xp, xc: Array) -> Array:
    return xc * xc


def _squares_shift(xp, sxx, sx, d, nk):
    return sxx + 2 * sx * d + nk[:, None] * d * d


_PRODUCTS = dict(full_moments=True, second_features=_products,
                 quadratic_theta=_products_theta, unpack_second=_products_unpack,
                 precision_times=lambda xp, P, m: xp.matmul(P, m[..., None])[..., 0],
                 shift_second=_outer_shift)
_SQUARES = dict(full_moments=False, second_features=_squares,
                quadratic_theta=lambda xp, P: -0.5 * _t(xp, P),
                unpack_second=lambda xp, S2: S2, precision_times=lambda xp, P, m: P * m,
                shift_second=_squares_shift)

# ---- full ----------------------------------------------------------------------------


def _full_mahalanobis(xp, Xc: Array, prec_chol: Array) -> Array:
    # Xc is centred per component (K, N, D), float32-safe for offset data; project by U_k.
    y = xp.matmul(Xc, prec_chol)  # (K, N, D): batched over K
    return (y * y).sum(axis=-1).T  # (N, K)


def _full_second_moment(xp, rw: Array, Xc: Array) -> Array:
    # Σ_n r_nk (x_n - m_k)(x_n - m_k)ᵀ as a batched matmul over K: (K,D,N) @ (K,N,D).
    weighted = Xc * rw.T[:, :, None]
    return xp.matmul(_t(xp, weighted), Xc)  # (K, D, D)


def _full_factor(xp, sxx, nk, delta, total, reg, previous=None):
    D = delta.shape[-1]
    m2 = sxx / nk[..., None, None]  # E_k[(x - s)(x - s)ᵀ]
    cov = m2 - delta[..., :, None] * delta[..., None, :]
    cov = 0.5 * (cov + _t(xp, cov)) + reg * xp.eye(D, dtype=cov.dtype)
    return _tril_factor(xp, cov, m2.diagonal(axis1=-2, axis2=-1))


FULL_RAW = CovarianceOps(
    factor_shape=lambda K, D: (K, D, D),
    component_axis=-3,
    identity=lambda K, D, dt: np.broadcast_to(np.eye(D, dtype=dt), (K, D, D)),
    n_parameters=lambda K, D: K * D * (D + 1) // 2,
    correlated=True,
    bayes_type="full",
    precision_requirement="symmetric, positive-definite",
    to_covariance=lambda xp, L: xp.matmul(L, _t(xp, L)),
    from_covariance=lambda xp, S: xp.cholesky(S),
    to_precision_cholesky=lambda xp, L: _t(xp, xp.tril_inv(L)),
    # U upper, P = U Uᵀ  =>  S = U⁻ᵀ U⁻¹, so L = U⁻ᵀ = (Uᵀ)⁻¹, lower.
    from_precision_cholesky=lambda xp, U: xp.tril_inv(_t(xp, U)),
    to_precision=_gram_of_inverse,
    from_precision=_precision_to_factor,
    precision_ok=_spd,
    mahalanobis=_full_mahalanobis,
    log_det_precision_cholesky=lambda xp, U, K, D: xp.log(
        U.diagonal(axis1=-2, axis2=-1)).sum(axis=-1),
    second_moment=_full_second_moment,
    to_full_covariance=lambda xp, L, K, D: xp.matmul(L, _t(xp, L)),
    log_det_precision=lambda xp, L, K, D: -xp.log(L.diagonal(axis1=-2, axis2=-1)).sum(
        axis=-1),
    scale_noise=lambda xp, L, k, z: xp.matmul(L[k], z[..., None])[..., 0],
    factor_from_moments=_full_factor,
    factor_ok=lambda xp, L, K: _tril_ok(xp, L),
    moment_precision=lambda xp, L, K, D: _gram_of_inverse(xp, L),
    **_PRODUCTS,
)

# ---- tied ----------------------------------------------------------------------------


def _tied_mahalanobis(xp, Xc: Array, U: Array) -> Array:
    y = xp.matmul(Xc, U)  # shared U, broadcast over K
    return (y * y).sum(axis=-1).T


def _tied_factor(xp, sxx, nk, delta, total, reg, previous=None):
    D = delta.shape[-1]
    # Σ_k [Σ_n r (x-s)(x-s)ᵀ - nk δ_k δ_kᵀ] / Σ_k nk, sklearn's tied estimate, centred.
    tot = _lift(xp, total, 2)
    m2 = sxx.sum(axis=-3) / tot
    cov = m2 - xp.matmul(_t(xp, nk[..., None] * delta), delta) / tot
    cov = 0.5 * (cov + _t(xp, cov)) + reg * xp.eye(D, dtype=cov.dtype)
    return _tril_factor(xp, cov, m2.diagonal(axis1=-2, axis2=-1))


def _tied_precision_ok(xp, P: Array) -> Array:
    return _spd(xp, P)[..., None]  # one matrix, reported as (1,)


TIED_RAW = FULL_RAW._replace(
    factor_shape=lambda K, D: (D, D),
    component_axis=None,
    identity=lambda K, D, dt: np.eye(D, dtype=dt),
    n_parameters=lambda K, D: D * (D + 1) // 2,
    to_full_covariance=lambda xp, L, K, D: xp.broadcast_to(
        xp.matmul(L, _t(xp, L))[..., None, :, :], (*L.shape[:-2], K, D, D)),
    precision_ok=_tied_precision_ok,
    mahalanobis=_tied_mahalanobis,
    log_det_precision_cholesky=lambda xp, U, K, D: xp.broadcast_to(
        xp.log(U.diagonal(axis1=-2, axis2=-1)).sum(axis=-1)[..., None], U.shape[:-2] + (K,)),
    log_det_precision=lambda xp, L, K, D: xp.broadcast_to(
        -xp.log(L.diagonal(axis1=-2, axis2=-1)).sum(axis=-1)[..., None], L.shape[:-2] + (K,)),
    scale_noise=lambda xp, L, k, z: xp.matmul(L, z[..., None])[..., 0],
    factor_ok=lambda xp, L, K: xp.broadcast_to(_tril_ok(xp, L)[..., None], L.shape[:-2] + (K,)),
    factor_from_moments=_tied_factor,
    moment_precision=lambda xp, L, K, D: xp.broadcast_to(
        _gram_of_inverse(xp, L)[..., None, :, :], L.shape[:-2] + (K, D, D)),
)

# ---- diag ----------------------------------------------------------------------------


def _diag_mahalanobis(xp, Xc: Array, prec_std: Array) -> Array:
    y = Xc * prec_std[:, None, :]
    return (y * y).sum(axis=-1).T


def _diag_second_moment(xp, rw: Array, Xc: Array) -> Array:
    # Σ_n r_nk (x_nd - m_kd)²  -> (K, D)
    return xp.einsum("nk,knd->kd", rw, Xc * Xc)


def _diag_factor(xp, sxx, nk, delta, total, reg, previous=None):
    m2 = sxx / nk[..., None]
    return _root_variance(xp, m2 - delta * delta + reg, m2)


def _positive(xp, p: Array) -> Array:
    return p > 0


DIAG_RAW = CovarianceOps(
    factor_shape=lambda K, D: (K, D),
    component_axis=-2,
    identity=lambda K, D, dt: np.ones((K, D), dt),
    n_parameters=lambda K, D: K * D,
    correlated=False,
    bayes_type="diag",
    precision_requirement="positive",
    to_covariance=lambda xp, s: s * s,
    from_covariance=lambda xp, c: xp.sqrt(c),
    to_precision_cholesky=lambda xp, s: 1.0 / s,
    from_precision_cholesky=lambda xp, u: 1.0 / u,
    to_precision=lambda xp, s: 1.0 / (s * s),
    from_precision=lambda xp, p: 1.0 / xp.sqrt(p),
    to_full_covariance=lambda xp, s, K, D: (s * s)[..., :, None] * xp.eye(D, dtype=s.dtype),
    precision_ok=lambda xp, p: (p > 0).all(axis=-1),
    mahalanobis=_diag_mahalanobis,
    log_det_precision_cholesky=lambda xp, u, K, D: xp.log(u).sum(axis=-1),
    log_det_precision=lambda xp, s, K, D: -xp.log(s).sum(axis=-1),
    scale_noise=lambda xp, s, k, z: s[k] * z,
    second_moment=_diag_second_moment,
    factor_from_moments=_diag_factor,
    factor_ok=lambda xp, s, K: (xp.isfinite(s) & (s > 0)).all(axis=-1),
    moment_precision=lambda xp, s, K, D: 1.0 / (s * s),
    **_SQUARES,
)

# ---- spherical -----------------------------------------------------------------------


def _spherical_mahalanobis(xp, Xc: Array, prec_std: Array) -> Array:
    return ((Xc * Xc).sum(axis=-1) * (prec_std * prec_std)[:, None]).T


def _spherical_factor(xp, sxx, nk, delta, total, reg, previous=None):
    D = delta.shape[-1]
    m2 = sxx / nk[..., None]  # means over D as sums / D: NumPy's mean is a Python wrapper
    var = (m2 - delta * delta).sum(axis=-1) / D + reg
    return _root_variance(xp, var, m2.sum(axis=-1) / D)


SPHERICAL_RAW = DIAG_RAW._replace(
    factor_shape=lambda K, D: (K,),
    component_axis=-1,
    identity=lambda K, D, dt: np.ones((K,), dt),
    n_parameters=lambda K, D: K,
    to_full_covariance=lambda xp, s, K, D: (s * s)[..., None, None] * xp.eye(D, dtype=s.dtype),
    precision_ok=_positive,
    mahalanobis=_spherical_mahalanobis,
    log_det_precision_cholesky=lambda xp, u, K, D: D * xp.log(u),
    log_det_precision=lambda xp, s, K, D: -D * xp.log(s),
    factor_ok=lambda xp, s, K: xp.isfinite(s) & (s > 0),
    factor_from_moments=_spherical_factor,
    moment_precision=lambda xp, s, K, D: xp.broadcast_to((1.0 / (s * s))[..., None],
                                                         s.shape + (D,)),
)

# ---- mclust's eigen-decomposed models ------------------------------------------------
#
# Σ_k = λ_k D_k A_k D_kᵀ (Celeux & Govaert 1995): volume λ_k, orientation D_k (orthogonal),
# shape A_k (diagonal, |A_k| = 1), each Equal across components, Variable, or the
# Identity. Every M-step below maximises, over its family, the expected complete-data
# log-likelihood  -½ Σ_k n_k [log|Σ_k| + tr(S_k Σ_k⁻¹)]  where S_k is component k's
# covariance estimate about its new mean plus reg_covar·I (W_k = n_k S_k is mclust's
# scatter matrix). That is exactly what the four scikit-learn types do (VVV = full,
# EEE = tied, VVI = diag, VII = spherical), and a constrained fit stays in its family.
# Components with n_k ~ 0 (padding) contribute ~0 to every pooled quantity: divisions
# are floored at the dtype's smallest normal so that 0/0 never reaches a pooled sum.


def _inner_tol(dtype) -> float:
    """Relative change of the inner iterations' parameters at which they stop."""
    return float(np.finfo(dtype).eps) ** (2.0 / 3.0)


#: Most inner iterations of an iterative M-step (VEI, VEE, VEV: alternations; EVE, VVE:
#: the orientation's MM iterations, two majorisations each). They stop earlier when the
#: parameters change by less than ``eps**(2/3)`` relative (3.7e-11 in float64).
INNER_MAX_ITER = 500
#: Most alternations of VEI's, VEE's and VEV's warm-started M-steps (volumes and the
#: shared shape or correlation, from the previous parameters' shape): each raises Q, so
#: a capped M-step is a generalised EM step. They took about 5 an M-step in the
#: 14-model searches of Old Faithful, diabetes and iris (up to INNER_MAX_ITER); with 3
#: every fit reached mclust where it did before (with 1, iris VEE,6 fell 0.26% short).
WARM_ALTERNATIONS = 3
#: Iterations of EVE's and VVE's warm-started orientation (from the previous orientation
#: and from EEE's, the better kept): one MM step, a generalised EM step. Each step raises
#: Q from EM's parameters, and the next M-step goes on from there, so EM still climbs;
#: iterating on inside one M-step only polishes an orientation the next E-step moves.
#: Measured against mclust on Old Faithful, diabetes and iris (EVE and VVE, K = 1..9):
#: 20 steps (sqrt(eps) tolerance) reached mclust in 51 of 54 fits (iris VVE,5 at -5.6%),
#: one step in 53 of 54, and the 14-model searches ran 1.3-2x faster.
WARM_MAX_ITER = 1
#: ... but EVE (one volume shared by all components) takes three: with one step its EM
#: crept to poorer optima from mclust's own start (USArrests EVE,4: -743.17 against
#: mclust's -737.05 from the same hierarchical partition). Against mclust on 12 data
#: sets (Old Faithful, diabetes, iris and nine of R's; EVE at K = 1..9) one step fell
#: short in 5 fits (banknote, thyroid, USArrests; by 0.13-0.83%), two in 1, three in
#: none. VVE with three fell short in 6 fits of banknote, thyroid, USArrests, iris and
#: diabetes against 5 with one (it lost iris VVE,5 and diabetes VVE,8): VVE keeps one.
WARM_EQUAL_MAX_ITER = 3
#: ... and on data of more than WARM_LARGE_ROWS rows (total weight) at most
#: WARM_LARGE_MAX_ITER steps to a relative change of sqrt(eps): there an E-step costs
#: more than many inner steps, and one step per M-step multiplied the EM iterations
#: (20,000 x 5, EVE K = 3: 4 -> 55; 14-model search 1.75x mclust's speed instead of
#: 2.3x)
WARM_LARGE_ROWS = 2000
WARM_LARGE_MAX_ITER = 20
#: Most iterations of EVE's and VVE's cold orientation (no previous parameters: the
#: hierarchical start's M-step), from each of its K + 1 starts. The start only seeds EM,
#: whose warm M-steps go on; 500 cost iris's search 0.1-0.15 s a model, 10 lost iris
#: VVE,5 (-0.26% against mclust), 50 lost nothing.
COLD_MAX_ITER = 50


def _iterate(xp, step: Callable, x: Array, max_iter: int = INNER_MAX_ITER,
             tol: float | None = None, batch_ndim: int = 0) -> Array:
    """``x <- step(x)`` until its largest relative change is below ``tol`` (default
    :func:`_inner_tol`) or NaN, at most ``max_iter`` times; a ``while_loop`` (JAX) or a
    Python loop (NumPy).

    With ``batch_ndim`` leading batch axes (members of a batch, each its own problem),
    the change is measured per member and a member that has stopped is held where it
    stopped while the others go on: each member takes exactly the steps it would take
    alone. ``max_iter`` may then be one per member (an array of the batch shape)."""
    tol = _inner_tol(x.dtype) if tol is None else tol
    axes = tuple(range(batch_ndim, x.ndim))

    def cond(state):
        i, _, change = state
        return ((change > tol) & (i < max_iter)).any()

    def body(state):
        i, old, change = state
        new = step(old)
        measured = xp.abs(new - old).max(axis=axes) / xp.abs(old).max(axis=axes)
        if not batch_ndim:
            return i + 1, new, measured
        live = (change > tol) & (i < max_iter)
        new = xp.where(live.reshape(live.shape + (1,) * len(axes)), new, old)
        return i + 1, new, xp.where(live, measured, change)

    start = (xp.asarray(0, dtype=xp.int32), x,
             xp.full(x.shape[:batch_ndim], np.inf, dtype=x.dtype))
    return xp.while_loop(cond, body, start)[1]


def _tiny(dtype) -> float:
    return _TINY[dtype] if dtype in _TINY else float(np.finfo(dtype).tiny)


#: The smallest normal number of the host's float dtypes (np.finfo costs a few µs a call,
#: and the iterative M-steps ask for it several times a call)
_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float32, np.float64)}


def _covariances(xp, sxx: Array, nk: Array, delta: Array, reg: Array) -> tuple[Array, Array]:
    """S_k (K, D, D): each component's covariance about its new mean plus reg·I, and the
    diagonals (K, D) of the mean squares about the shift it came from (collapse check)."""
    D = delta.shape[-1]
    m2 = sxx / nk[..., None, None]
    S = m2 - delta[..., :, None] * delta[..., None, :]
    S = 0.5 * (S + _t(xp, S)) + reg * xp.eye(D, dtype=S.dtype)
    return S, m2.diagonal(axis1=-2, axis2=-1)


def _variances(xp, sxx: Array, nk: Array, delta: Array, reg: Array) -> tuple[Array, Array]:
    """The diagonals (K, D) of S_k, and the mean squares (K, D) they came from."""
    m2 = sxx / nk[..., None]
    return m2 - delta * delta + reg, m2


def _lift(xp, x, nd: int):
    """``x`` (a Python number, kept as it is, or an array of batch shape (...)) with
    ``nd`` trailing axes of length 1."""
    if isinstance(x, (int, float)):
        return x
    x = xp.asarray(x)
    return x.reshape(x.shape + (1,) * nd)


def _pool(xp, a: Array, nk: Array, total) -> Array:
    """Σ_k n_k a_k / total over the axis K of ``a (..., K, *rest)``, for counts
    ``nk (..., K)`` and ``total`` (...) (one per member of a batch)."""
    rest = a.ndim - nk.ndim
    return (nk.reshape(nk.shape + (1,) * rest) * a).sum(axis=nk.ndim - 1) / _lift(
        xp, total, rest)


def _geomean(xp, v: Array) -> Array:
    """(..., D) positive -> (...,): (Π_d v_d)^{1/D}, the volume of a diagonal."""
    # means as sums / D: NumPy's mean is a Python wrapper (the same sum, then divided)
    return xp.exp(xp.log(v).sum(axis=-1) / v.shape[-1])


def _eig(xp, S: Array, nk: Array | None = None) -> tuple[Array, Array]:
    """Eigenvalues (K, D), ascending and clipped at 0, and eigenvectors (K, D, D);
    ``nk`` (counts of S's components): see :func:`_scalar_or_eigh`."""
    w, V = _scalar_or_eigh(xp, S, nk)
    return xp.maximum(w, 0.0), V


def _empty_scalars(xp, S: Array, nk: Array | None):
    """On the host, the components (a boolean mask over S's batch, or None for none)
    that are empty (count at most 20·eps: padding) and whose matrix is exactly a
    finite multiple of the identity (reg_covar·I: padding has no rows)."""
    if nk is None or xp is not _NUMPY_NS or S.dtype != np.float64 or _closed_2x2(xp, S):
        return None
    empty = nk <= 20 * _EPS64
    if not empty.any():
        return None
    D = S.shape[-1]
    cand = S[empty]
    scalar = ((cand == cand[:, :1, :1] * _NUMPY_NS.eye(D)).all(axis=(-2, -1))
              & _NUMPY_NS.isfinite(cand[:, 0, 0]))  # LAPACK's answer for inf is NaN
    if not scalar.any():
        return None
    empty[empty] = scalar
    return empty


def _scalar_or_eigh(xp, S: Array, nk: Array | None = None) -> tuple[Array, Array]:
    """:func:`_eigh` of S (..., K, D, D), whose components have counts ``nk (..., K)``;
    on the host the empty components whose matrix is c·I, c finite (padding), take
    (c, ..., c) and I without the call (a third to a half of a padded model search's
    matrices); LAPACK's answer for reg_covar-sized c (tested equal; LAPACK rescales
    matrices of norm below ~1e-146 or above ~1e153, which can move its eigenvalues of
    c·I by an ulp)."""
    skip = _empty_scalars(xp, S, nk)
    if skip is None:
        return _eigh(xp, S)
    keep = ~skip
    w = np.empty(S.shape[:-1], S.dtype)
    V = np.empty(S.shape, S.dtype)
    w[keep], V[keep] = _eigh(xp, S[keep])
    w[skip] = S[skip].diagonal(axis1=-2, axis2=-1)
    V[skip] = np.eye(S.shape[-1])
    return w, V


def _scalar_or_eigvalsh(xp, S: Array, nk: Array | None = None) -> Array:
    """:func:`_eigvalsh` as :func:`_scalar_or_eigh` does :func:`_eigh`."""
    skip = _empty_scalars(xp, S, nk)
    if skip is None:
        return _eigvalsh(xp, S)
    w = np.empty(S.shape[:-1], S.dtype)
    w[~skip] = _eigvalsh(xp, S[~skip])
    w[skip] = S[skip].diagonal(axis1=-2, axis2=-1)
    return w


_EPS64 = float(np.finfo(np.float64).eps)


def _polar(xp, F: Array) -> Array:
    """The orthogonal matrix nearest to F (D, D): U Vᵀ from F = U s Vᵀ."""
    if _closed_2x2(xp, F):
        return _polar_2x2(F)
    U, _, Vt = _host_lapack("svd", F) if _host64(xp, F) else xp.svd(F)
    return xp.matmul(U, Vt)


# ---- NumPy's LAPACK gufuncs on the host, float64 ----------------------------------------
#
# numpy.linalg.eigh, eigvalsh and svd check their input, wrap the gufunc in an errstate
# that raises for the whole batch, and wrap the results; the host namespace then catches
# the error and redoes the batch matrix by matrix (NaN for a failed one, as JAX gives).
# The iterative M-steps at D >= 3 call them thousands of times a search on small stacks
# (EVE's and VVE's polar factors: 20 inner steps an M-step on large data), where that
# is a good part of each call. Called directly with floating-point errors ignored, the
# gufuncs give the very same numbers, and NaN for a matrix LAPACK cannot decompose.

try:
    from numpy.linalg import _umath_linalg as _UMATH_LINALG

    _GUFUNCS64 = {"eigh": (_UMATH_LINALG.eigh_lo, "d->dd"),
                  "eigvalsh": (_UMATH_LINALG.eigvalsh_lo, "d->d"),
                  "svd": (_UMATH_LINALG.svd_f, "d->ddd")}
except (ImportError, AttributeError):  # pragma: no cover - another NumPy layout
    _GUFUNCS64 = {}


def _host64(xp, a: Array) -> bool:
    """Whether ``a`` takes :func:`_host_lapack`: the host namespace, float64."""
    return xp is _NUMPY_NS and a.dtype == np.float64 and bool(_GUFUNCS64)


def _host_lapack(name: str, a: np.ndarray):
    """``numpy.linalg.<name>(a)`` (eigh and eigvalsh of the lower triangle, svd with full
    matrices) by its gufunc, for float64 ``a`` (..., D, D); NaN for a matrix with a
    non-finite entry (:func:`bayesgmm._xp.finite_or_nan`)."""
    gufunc, signature = _GUFUNCS64[name]
    with np.errstate(all="ignore"):
        return finite_or_nan(lambda m: gufunc(m, signature=signature), a)


# ---- 2 x 2 closed forms on the host ---------------------------------------------------
#
# NumPy's LAPACK gufuncs cost about 1.5 µs per 2 x 2 matrix (eigh of 162 of them: 240 µs,
# svd: 650 µs, against about 1 µs for an elementwise operation over all of them), and a
# 14-model search of 2-feature data calls them thousands of times. For D = 2 the host
# namespace takes these closed forms instead (the compiled engine keeps LAPACK's: under
# jit the call costs nothing extra); tests hold them equal to LAPACK's.


def _closed_2x2(xp, a: Array) -> bool:
    return a.shape[-1] == 2 and xp is _NUMPY_NS


def _eigh(xp, S: Array) -> tuple[Array, Array]:
    """Eigenvalues (..., D), ascending, and eigenvectors (..., D, D) of symmetric S."""
    if not _closed_2x2(xp, S):
        return _host_lapack("eigh", S) if _host64(xp, S) else xp.eigh(S)
    a, c = S[..., 0, 0], S[..., 1, 1]
    b = 0.5 * (S[..., 0, 1] + S[..., 1, 0])
    half, r = 0.5 * (a + c), np.hypot(0.5 * (a - c), b)
    theta = 0.5 * np.arctan2(2.0 * b, a - c)  # the larger eigenvalue's direction
    cos, sin = np.cos(theta), np.sin(theta)
    w = np.empty(S.shape[:-1], S.dtype)
    w[..., 0], w[..., 1] = half - r, half + r
    V = np.empty(S.shape, S.dtype)  # columns: the smaller eigenvalue's vector, then the larger's
    V[..., 0, 0], V[..., 1, 0] = -sin, cos
    V[..., 0, 1], V[..., 1, 1] = cos, sin
    return w, V


def _eigvalsh(xp, S: Array) -> Array:
    """Eigenvalues (..., D), ascending, of symmetric S."""
    if not _closed_2x2(xp, S):
        return _host_lapack("eigvalsh", S) if _host64(xp, S) else xp.eigvalsh(S)
    a, c = S[..., 0, 0], S[..., 1, 1]
    half = 0.5 * (a + c)
    r = np.hypot(0.5 * (a - c), 0.5 * (S[..., 0, 1] + S[..., 1, 0]))
    w = np.empty(S.shape[:-1], S.dtype)
    w[..., 0], w[..., 1] = half - r, half + r
    return w


def _polar_2x2(F: Array) -> Array:
    """The orthogonal Q maximising tr(Qᵀ F) (orthogonal Procrustes, = U Vᵀ of F's SVD):
    the rotation by atan2(c - b, a + d) when |F| >= 0, else the reflection by
    atan2(b + c, a - d), for F = [[a, b], [c, d]]."""
    a, b, c, d = F[..., 0, 0], F[..., 0, 1], F[..., 1, 0], F[..., 1, 1]
    flip = a * d - b * c < 0
    p = np.where(flip, a - d, a + d)
    q = np.where(flip, b + c, c - b)
    norm = np.hypot(p, q)
    cos, sin = p / norm, q / norm
    sign = np.where(flip, -1.0, 1.0)
    Q = np.empty(F.shape, F.dtype)
    Q[..., 0, 0], Q[..., 1, 0] = cos, sin
    Q[..., 0, 1], Q[..., 1, 1] = -sign * sin, sign * cos
    return Q


def _rotate(xp, V: Array, d: Array) -> Array:
    """V diag(d) Vᵀ for V (..., D, D) and d (..., D)."""
    return xp.matmul(V * d[..., None, :], _t(xp, V))


def _common_shape(xp, v: Array, nk: Array, start: Array | None = None) -> tuple[Array, Array]:
    """Volumes λ (K,) and one shape a (D,), Π a = 1, maximising
    -½ Σ_k n_k [D log λ_k + Σ_d v_kd / (λ_k a_d)] for positive v (K, D): the VEI M-step of
    Celeux & Govaert (1995) on diagonals (VEV's on sorted eigenvalues). Alternates the
    two exact conditional maximisers, from a = 1 (VII's volumes); each step raises the
    objective."""
    tiny = _tiny(v.dtype)
    batch = nk.ndim - 1  # v (..., K, D), nk (..., K): one problem per member

    def volumes(a):
        return xp.maximum((v / a[..., None, :]).sum(axis=-1) / v.shape[-1], tiny)

    def shape(a):
        s = _pool(xp, v / volumes(a)[..., None], nk, 1.0)
        return s / _geomean(xp, s)[..., None]

    if start is None:
        a = _iterate(xp, shape, xp.ones(v.shape[:-2] + v.shape[-1:], dtype=v.dtype),
                     batch_ndim=batch)
    else:
        a = _iterate(xp, shape, start / _geomean(xp, start)[..., None],
                     tol=float(np.sqrt(np.finfo(v.dtype).eps)), batch_ndim=batch,
                     max_iter=WARM_ALTERNATIONS)
    return volumes(a), a


def _det_root(xp, S: Array) -> Array:
    """|S|^{1/D} of positive definite S (..., D, D), from its Cholesky factor."""
    L = xp.cholesky(S)
    return xp.exp(2.0 * (xp.log(L.diagonal(axis1=-2, axis2=-1)).sum(axis=-1) / S.shape[-1]))


def _common_correlation(xp, S: Array, nk: Array, start: Array | None = None) -> tuple[Array, Array]:
    """VEE: volumes λ (K,) and one C (D, D), |C| = 1, maximising
    -½ Σ_k n_k [D log λ_k + tr(S_k C⁻¹) / λ_k]. Alternates λ_k = tr(S_k C⁻¹)/D and
    C ∝ Σ_k n_k S_k / λ_k (Celeux & Govaert 1995), from C = I."""
    D = S.shape[-1]
    tiny = _tiny(S.dtype)
    batch = nk.ndim - 1  # S (..., K, D, D), nk (..., K): one problem per member

    def volumes(C):
        Ci = _gram_of_inverse(xp, xp.cholesky(C))
        return xp.maximum((S * Ci[..., None, :, :]).sum(axis=(-2, -1)) / D, tiny)

    def shape(C):
        T = _pool(xp, S / volumes(C)[..., None, None], nk, 1.0)
        T = 0.5 * (T + _t(xp, T))
        return T / _det_root(xp, T)[..., None, None]

    if start is None:
        C = _iterate(xp, shape, xp.broadcast_to(xp.eye(D, dtype=S.dtype),
                                                S.shape[:-3] + (D, D)), batch_ndim=batch)
    else:
        C0 = 0.5 * (start + _t(xp, start))
        C = _iterate(xp, shape, C0 / _det_root(xp, C0)[..., None, None],
                     tol=float(np.sqrt(np.finfo(S.dtype).eps)), batch_ndim=batch,
                     max_iter=WARM_ALTERNATIONS)
    return volumes(C), C


def _common_orientation(xp, S: Array, nk: Array, total, equal_volume: bool,
                        previous: Array | None = None):
    """EVE / VVE: one orientation O (D, D) and diagonals Δ (K, D), Σ_k = O diag(Δ_k) Oᵀ,
    maximising -½ Σ_k n_k [log|Σ_k| + tr(S_k Σ_k⁻¹)]; Δ_k = λ A_k (EVE) or free (VVE).

    Given O the diagonals have closed forms (of b_k = diag(Oᵀ S_k O)); given Δ, O
    minimises f(O) = Σ_k tr(W_k O M_k Oᵀ) (W_k = n_k S_k, M_k = diag(Δ_k)⁻¹) over the
    orthogonal matrices, by the two majorise-minimise steps of Browne & McNicholas
    (2014): with ω_k the largest eigenvalue of W_k and m_k the largest entry of M_k,
    O <- polar(Σ_k (ω_k I - W_k) O M_k), then O <- polar(Σ_k W_k O (m_k I - M_k)); each
    step lowers f. The objective has local optima over the orthogonal matrices, so the
    iterations start from the previous orientation when there is one (``previous``,
    the full-storage factor (K, D, D) of the parameters EM holds: its covariances share
    their eigenvectors), so that each M-step raises Q from the previous parameters and
    EM's log-likelihood never falls (with reg_covar = 0; reg_covar makes it the
    penalised one's). A warm M-step takes :data:`WARM_MAX_ITER` steps (EVE
    :data:`WARM_EQUAL_MAX_ITER`; on more than
    :data:`WARM_LARGE_ROWS` rows up to :data:`WARM_LARGE_MAX_ITER`) from it and from
    EEE's orientation (the eigenvectors of Σ_k W_k; for one component the optimum,
    where the majorisers are singular and one step from elsewhere is ill-posed) and
    keeps the better. A cold M-step
    (no ``previous``) runs from K + 1 starts at once and keeps the best: the
    eigenvectors of Σ_k W_k (EEE's orientation) and of each W_k (EEV's).
    """
    batch = nk.ndim - 1  # S (..., K, D, D), nk (..., K): one problem per member
    W = nk[..., None, None] * S  # (..., K, D, D)
    omega = _scalar_or_eigvalsh(xp, W, nk)[..., -1]  # (..., K) the largest eigenvalue of each W_k
    eye = xp.eye(S.shape[-1], dtype=S.dtype)
    upper = omega[..., None, None] * eye - W  # ω_k I - W_k
    tot = xp.broadcast_to(xp.asarray(total, dtype=S.dtype), nk.shape[:-1])  # (...)
    operands = (S, W, upper, nk, tot)
    if isinstance(equal_volume, (bool, np.bool_)):  # one model: its own diagonals alone
        step_of = functools.partial(_orientation_step, xp, bool(equal_volume))
    else:  # (...) bool per member: EVE's and VVE's rows of one batch together
        operands += (xp.asarray(equal_volume),)
        step_of = lambda S, W, upper, nk, tot, equal, source=None: _orientation_step(  # noqa: E731
            xp, equal, S, W, upper, nk, tot, source)
    if previous is None:
        eee = _eigh(xp, W.sum(axis=-3))[1][..., None, :, :]  # (..., 1, D, D)
        # an empty component (a count of at most 20·eps: the missing components of a
        # batch of several K, hc_params_many's) starts from EEE's orientation again,
        # so a member runs the starts it would run alone (a repeat of the first)
        empty = nk <= 20 * float(np.finfo(S.dtype).eps)
        starts = xp.concatenate([eee, xp.where(empty[..., None, None], eee, _eigh(xp, S)[1])],
                                axis=-3)
        if xp is _NUMPY_NS and batch == 1 and empty.any():
            # such a start repeats the first, and so does each of its iterations,
            # bitwise: its polar factors are the first's, not computed again (iris's
            # hierarchical starts, K = 2..9 padded to 9: 28 of 80 starts an M-step)
            operands += (np.where(np.concatenate([np.zeros_like(empty[:, :1]), empty], axis=1),
                                  0, np.arange(empty.shape[1] + 1)),)
    else:  # the loop runs until every start has converged: the warm one alone is cheap
        # the previous covariances share their eigenvectors; summed weighted by the
        # counts, so that padding (n_k = 0 up to 10·eps, identity factors) adds nothing
        # and a padded fit runs the iterations of the unpadded one
        prev = xp.matmul(previous, _t(xp, previous))
        # both starts' eigenvectors from one call: EEE's, then the previous orientation
        starts = _eigh(xp, xp.stack([W.sum(axis=-3), (nk[..., None, None] * prev).sum(axis=-3)],
                                  axis=-3))[1]
    # warm: each step raises Q from EM's parameters whatever the count, and the next
    # M-step goes on from here (WARM_MAX_ITER; on more than WARM_LARGE_ROWS rows
    # WARM_LARGE_MAX_ITER: chosen from the total count, so both engines agree)
    if previous is None:
        O = _iterate_members(xp, step_of, operands, starts, COLD_MAX_ITER, batch_ndim=batch)
    else:
        small = (xp.where(xp.asarray(equal_volume), WARM_EQUAL_MAX_ITER, WARM_MAX_ITER)
                 if not isinstance(equal_volume, (bool, np.bool_))  # per member
                 else WARM_EQUAL_MAX_ITER if equal_volume else WARM_MAX_ITER)
        # more than WARM_LARGE_ROWS rows: half a row above, so that round-off cannot flip
        # it (the counts sum to the rows' weight within ulps in float64, more in float32:
        # at exactly 2,000 rows the engines, and a batch's members, took 20 or 3 steps)
        steps = xp.where(xp.asarray(total).max() > WARM_LARGE_ROWS + 0.5,
                         WARM_LARGE_MAX_ITER, small)
        if xp is _NUMPY_NS and bool((steps == 1).all()):  # _iterate's one step, untested
            O = step_of(*operands)(starts)
        else:
            O = _iterate_members(xp, step_of, operands, starts, steps,
                                 tol=float(np.sqrt(np.finfo(S.dtype).eps)), batch_ndim=batch)
    b, d = _orientation_diagonals(xp, equal_volume, S, nk, tot, O)
    # f per start (..., C), up to constants: Σ_k n_k Σ_d [log Δ + b / Δ]
    best = xp.argmin((nk[..., None, :, None] * (xp.log(d) + b / d)).sum(axis=(-2, -1)),
                     axis=-1)
    if not batch:
        return O[best], d[best]
    if xp is _NUMPY_NS and batch == 1:  # one gather (take_along_axis: ~35 µs a call)
        rows = np.arange(len(best))
        return O[rows, best], d[rows, best]
    pick = lambda a: xp.take_along_axis(a, best[..., None, None, None], axis=-3)[..., 0, :, :]  # noqa: E731
    return pick(O), pick(d)


def _orientation_times(xp, A: Array, O: Array) -> Array:
    """A_k O_c for A (..., K, D, D) and O (..., C, D, D) -> (..., C, K, D, D): the K
    matrices stacked as one (K·D, D) block, one product per start (a broadcast
    (..., C, K) stack of D x D products: 2x slower on the host at D <= 4)."""
    K, D = A.shape[-3], A.shape[-1]
    AO = xp.matmul(A.reshape(A.shape[:-3] + (1, K * D, D)), O)
    return AO.reshape(AO.shape[:-2] + (K, D, D))


def _orientation_diagonals(xp, equal_volume, S: Array, nk: Array, tot: Array,
                           O: Array) -> tuple[Array, Array]:
    """O (..., C, D, D), one per start -> b (..., C, K, D) = diag(Oᵀ S_k O), and the
    model's diagonals Δ (..., C, K, D) given O (EVE: λ A_k; VVE: b). ``equal_volume``:
    a bool, or one per member (...) (both computed, each member's taken)."""
    tiny = _tiny(S.dtype)
    b = (_orientation_times(xp, S, O) * O[..., :, None, :, :]).sum(axis=-2)
    if equal_volume is False:
        return b, xp.maximum(b, tiny)
    g = xp.maximum(_geomean(xp, b), tiny)  # (..., C, K) |diag|^{1/D}
    lam = (nk[..., None, :] * g).sum(axis=-1) / tot[..., None]  # (..., C)
    d = xp.maximum(lam[..., None, None] * b / g[..., None], tiny)
    if equal_volume is True:
        return b, d
    return b, xp.where(equal_volume[..., None, None, None], d, xp.maximum(b, tiny))


def _orientation_step(xp, equal_volume: bool, S, W, upper, nk, tot,
                      source: np.ndarray | None = None) -> Callable:
    """The two majorise-minimise steps of :func:`_common_orientation` on the orientations
    (..., C, D, D) of the members whose statistics these are. ``source`` (host, (L, C)
    int): each start's first copy among its member's starts (itself, or 0 where it
    repeats the first): the polar factors of the copies alone are computed
    (:func:`_polar_of_sources`)."""
    polar = ((lambda F: _polar(xp, F)) if source is None  # noqa: E731
             else (lambda F: _polar_of_sources(xp, F, source)))

    def step(O):
        # K is axis -3 of each product; reduce it
        M = 1.0 / _orientation_diagonals(xp, equal_volume, S, nk, tot, O)[1]  # (..., C, K, D)
        O = polar((_orientation_times(xp, upper, O) * M[..., None, :]).sum(axis=-3))
        M = 1.0 / _orientation_diagonals(xp, equal_volume, S, nk, tot, O)[1]
        gap = (M.max(axis=-1, keepdims=True) - M)[..., None, :]  # m_k I - M_k
        return polar((_orientation_times(xp, W, O) * gap).sum(axis=-3))

    return step


def _polar_of_sources(xp, F: np.ndarray, source: np.ndarray) -> np.ndarray:
    """:func:`_polar` of F (L, C, D, D) on the host where starts repeat others: the
    starts ``c`` with ``source[l, c] == c`` are computed, each other one is given its
    source's result (the same matrix, so the same factor, bitwise)."""
    L, C = source.shape
    flat = (np.arange(L)[:, None] * C + source).ravel()  # each start's source, flattened
    own = flat == np.arange(L * C)
    F = F.reshape((L * C,) + F.shape[-2:])
    Q = np.empty_like(F)
    Q[own] = _polar(xp, F[own])
    return Q[flat].reshape((L, C) + F.shape[-2:])


def _iterate_members(xp, step_of: Callable, operands: tuple, x: Array, max_iter: int,
                     tol: float | None = None, batch_ndim: int = 0) -> Array:
    """:func:`_iterate` of ``step_of(*operands)``, whose operands are arrays of the
    batch shape of ``x``'s first ``batch_ndim`` axes. On the host with one batch axis
    each iteration steps only the members still running (the operands taken at their
    rows, again whenever a member stops): a member stopped is held where it stopped
    in both, so the result is :func:`_iterate`'s, bitwise, without the work on the
    members that wait (the hierarchical starts of a batch of K: iris EVE, K = 2..9,
    50 steps each; diabetes VVE, 48 at K = 2 and 14-27 at the others)."""
    if xp is not _NUMPY_NS or batch_ndim != 1:
        return _iterate(xp, step_of(*operands), x, max_iter, tol, batch_ndim)
    tol = _inner_tol(x.dtype) if tol is None else tol
    axes = tuple(range(1, x.ndim))
    x = np.array(x)
    change = np.full(x.shape[:1], np.inf, dtype=x.dtype)
    most = np.broadcast_to(np.asarray(max_iter), x.shape[:1])  # per member
    rows, step = None, None
    for i in range(int(most.max())):
        live = np.flatnonzero((change > tol) & (i < most))  # NaN stops, as in _iterate
        if not len(live):
            break
        if rows is None or len(live) != len(rows):
            rows = live
            step = step_of(*(a[rows] for a in operands))
        old = x[rows]
        new = step(old)
        change[rows] = np.abs(new - old).max(axis=axes) / np.abs(old).max(axis=axes)
        x[rows] = new
    return x


def _full_from(xp, Sigma: Array, m2_diag: Array) -> Array:
    """The full-storage factor of model covariances Σ (K, D, D), NaN where collapsed."""
    return _tril_factor(xp, 0.5 * (Sigma + _t(xp, Sigma)), m2_diag)


def _eii_factor(xp, sxx, nk, delta, total, reg, previous=None):
    D = delta.shape[-1]
    v, m2 = _variances(xp, sxx, nk, delta, reg)
    var = _pool(xp, v.sum(axis=-1), nk, total) / D  # λ = tr(W) / (n D)
    return _root_variance(xp, xp.broadcast_to(var[..., None], nk.shape), m2.sum(axis=-1) / D)


def _eei_factor(xp, sxx, nk, delta, total, reg, previous=None):
    v, m2 = _variances(xp, sxx, nk, delta, reg)
    return _root_variance(xp, xp.broadcast_to(_pool(xp, v, nk, total)[..., None, :], v.shape),
                          m2)


def _vei_factor(xp, sxx, nk, delta, total, reg, previous=None):
    v, m2 = _variances(xp, sxx, nk, delta, reg)
    lam, a = _common_shape(xp, v, nk, None if previous is None else previous[..., 0, :] ** 2)
    return _root_variance(xp, lam[..., None] * a[..., None, :], m2)


def _evi_factor(xp, sxx, nk, delta, total, reg, previous=None):
    v, m2 = _variances(xp, sxx, nk, delta, reg)
    g = _geomean(xp, v)  # (K,) |diag W_k|^{1/D} / n_k
    lam = _pool(xp, g, nk, total)
    return _root_variance(xp, lam[..., None, None] * v / g[..., None], m2)


# The full-storage models below are each a covariance model Σ (..., K, D, D) of the
# components' S_k (``_*_sigma(xp, S, nk, total, previous)``), whose factor is then
# _full_from's: written so, the host's model search computes S_k and the factors once
# for all the models of a batch (layout_factor_from_moments).


def _vee_sigma(xp, S, nk, total, previous=None):
    first = None if previous is None else previous[..., 0, :, :]
    lam, C = _common_correlation(xp, S, nk, None if first is None
                                 else xp.matmul(first, _t(xp, first)))
    return lam[..., None, None] * C[..., None, :, :]


def _orientation_sigma(xp, S, nk, total, previous=None, *, equal_volume=True):
    O, d = _common_orientation(xp, S, nk, total, equal_volume, previous)
    return _rotate(xp, O[..., None, :, :], d)


def _eev_sigma(xp, S, nk, total, previous=None):
    # D_k: W_k's eigenvectors; λ A = Σ_k Ω_k / n, the eigenvalues paired in sorted order
    # (the rearrangement inequality makes that pairing optimal)
    w, V = _eig(xp, S, nk)
    return _rotate(xp, V, xp.broadcast_to(_pool(xp, w, nk, total)[..., None, :], w.shape))


def _vev_sigma(xp, S, nk, total, previous=None):
    # D_k: W_k's eigenvectors, then VEI's alternation on the sorted eigenvalues
    w, V = _eig(xp, S, nk)
    first = None if previous is None else previous[..., 0, :, :]
    start = None if first is None else xp.maximum(
        _eigvalsh(xp, xp.matmul(first, _t(xp, first))), _tiny(w.dtype))
    lam, a = _common_shape(xp, xp.maximum(w, _tiny(w.dtype)), nk, start)
    return _rotate(xp, V, lam[..., None] * a[..., None, :])


def _evv_sigma(xp, S, nk, total, previous=None):
    # C_k = W_k / |W_k|^{1/D}, λ = Σ_k |W_k|^{1/D} / n
    # (K,) |S_k|^{1/D} from the Cholesky factor (an eigen-decomposition per matrix cost
    # 8x as much on the host at D = 4); 0 for a singular S_k (no NaN to pool)
    g = _det_root(xp, S)
    g = xp.where(g > 0, g, 0.0)  # NaN (not positive definite) -> 0
    lam = _pool(xp, g, nk, total)
    return (lam[..., None] / g)[..., None, None] * S


#: The covariance model of each full-storage model that has one (VVV's is S itself).
_SIGMA: dict[str, Callable] = {
    "VEE": _vee_sigma,
    "EVE": functools.partial(_orientation_sigma, equal_volume=True),
    "VVE": functools.partial(_orientation_sigma, equal_volume=False),
    "EEV": _eev_sigma,
    "VEV": _vev_sigma,
    "EVV": _evv_sigma,
}
#: The models of one orientation M-step (_common_orientation), and whether their volume
#: is equal: a batch runs their rows in one call.
_ORIENTATION_VOLUME: dict[str, bool] = {"EVE": True, "VVE": False}


def _sigma_factor(sigma: Callable) -> Callable:
    """``factor_from_moments`` of a full-storage model from its covariance model."""

    def factor(xp, sxx, nk, delta, total, reg, previous=None):
        S, m2 = _covariances(xp, sxx, nk, delta, reg)
        return _full_from(xp, sigma(xp, S, nk, total, previous), m2)

    return factor


_vee_factor = _sigma_factor(_SIGMA["VEE"])
_eve_factor = _sigma_factor(_SIGMA["EVE"])
_vve_factor = _sigma_factor(_SIGMA["VVE"])
_eev_factor = _sigma_factor(_SIGMA["EEV"])
_vev_factor = _sigma_factor(_SIGMA["VEV"])
_evv_factor = _sigma_factor(_SIGMA["EVV"])


def layout_factor_from_moments(segments, sxx: np.ndarray, nk: np.ndarray,
                               delta: np.ndarray, total: np.ndarray, reg,
                               previous: np.ndarray | None = None) -> np.ndarray:
    """On the host (NumPy): ``factor_from_moments`` of several covariance types of one
    factor layout, each on its own members' rows, as one stack: the host model
    search's M-step of a batch (:func:`bayesgmm.engines.numpy.fit_many_models`).

    Equal, bitwise, to each type's ``factor_from_moments`` on its rows concatenated
    (tested): the full-storage models with a covariance model (VEE, EVE, VVE, EEV, VEV,
    EVV) share the S_k and the Cholesky factors (one call each over all their rows
    instead of one per type), and EVE's and VVE's rows run one orientation M-step
    (:func:`_common_orientation`, each member with its own volume rule); every
    computation is per member, so a member's numbers do not depend on its neighbours.

    Parameters
    ----------
    segments : sequence of (str, int, int)
        ``(covariance type, start, stop)``: the rows of each type, in order, covering
        the batch.
    sxx, nk, delta, total, reg, previous
        As ``factor_from_moments``'s, with a leading axis of L members: nk (L, K),
        delta (L, K, D), total (L,), previous the factors EM holds (or None).

    Returns
    -------
    factor : array of shape (L, *factor shape)
    """
    xp = _NUMPY_NS
    names = [CANONICAL.get(k, k) for k, _, _ in segments]
    shared = [i for i, n in enumerate(names) if n in _SIGMA]
    prev = (lambda r: None) if previous is None else (lambda r: previous[r])
    if len(shared) < 2:
        return np.concatenate([ops(k, xp).factor_from_moments(
            sxx[a:b], nk[a:b], delta[a:b], total[a:b], reg, prev(slice(a, b)))
            for k, a, b in segments])
    rows_of = lambda idx: np.concatenate(
        [np.arange(segments[i][1], segments[i][2]) for i in idx])
    rows = rows_of(shared)
    S, m2 = _covariances(xp, sxx[rows], nk[rows], delta[rows], reg)
    at = np.empty(len(nk), np.int64)
    at[rows] = np.arange(len(rows))  # each shared member's row in S
    Sigma = np.empty_like(S)
    turn = [i for i in shared if names[i] in _ORIENTATION_VOLUME]
    if turn:
        r = rows_of(turn)
        equal = np.concatenate([np.full(segments[i][2] - segments[i][1],
                                        _ORIENTATION_VOLUME[names[i]]) for i in turn])
        if len(turn) == 1:
            equal = bool(equal[0])
        Sigma[at[r]] = _orientation_sigma(xp, S[at[r]], nk[r], total[r], prev(r),
                                          equal_volume=equal)
    for i in shared:
        if names[i] not in _ORIENTATION_VOLUME:
            r = rows_of([i])
            Sigma[at[r]] = _SIGMA[names[i]](xp, S[at[r]], nk[r], total[r], prev(r))
    factor = None
    out = _full_from(xp, Sigma, m2)
    for i, (k, a, b) in enumerate(segments):
        if factor is None:
            factor = np.empty((len(nk),) + out.shape[1:], out.dtype)
        if i in shared:
            factor[a:b] = out[at[a:b]]
        else:
            factor[a:b] = ops(k, xp).factor_from_moments(
                sxx[a:b], nk[a:b], delta[a:b], total[a:b], reg, prev(slice(a, b)))
    return factor


def _models() -> dict[str, CovarianceOps]:
    """mclust's 14 models: the four scikit-learn types under their mclust names, and ten
    entries in the layouts of full (orientation free or shared but not axis-aligned),
    diag (axis-aligned) and spherical (EII). n_parameters is mclust's ``nVarParams``."""
    return {
        "EII": SPHERICAL_RAW._replace(n_parameters=lambda K, D: 1,
                                      factor_from_moments=_eii_factor),
        "VII": SPHERICAL_RAW,
        "EEI": DIAG_RAW._replace(n_parameters=lambda K, D: D, factor_from_moments=_eei_factor),
        "VEI": DIAG_RAW._replace(n_parameters=lambda K, D: K + D - 1,
                                 factor_from_moments=_vei_factor),
        "EVI": DIAG_RAW._replace(n_parameters=lambda K, D: 1 + K * (D - 1),
                                 factor_from_moments=_evi_factor),
        "VVI": DIAG_RAW,
        "EEE": TIED_RAW,
        "VEE": FULL_RAW._replace(n_parameters=lambda K, D: K + (D - 1) + D * (D - 1) // 2,
                                 factor_from_moments=_vee_factor),
        "EVE": FULL_RAW._replace(n_parameters=lambda K, D: 1 + K * (D - 1) + D * (D - 1) // 2,
                                 factor_from_moments=_eve_factor),
        "VVE": FULL_RAW._replace(n_parameters=lambda K, D: K * D + D * (D - 1) // 2,
                                 factor_from_moments=_vve_factor),
        "EEV": FULL_RAW._replace(n_parameters=lambda K, D: 1 + (D - 1) + K * D * (D - 1) // 2,
                                 factor_from_moments=_eev_factor),
        "VEV": FULL_RAW._replace(n_parameters=lambda K, D: K + (D - 1) + K * D * (D - 1) // 2,
                                 factor_from_moments=_vev_factor),
        "EVV": FULL_RAW._replace(n_parameters=lambda K, D: 1 - K + K * D * (D + 1) // 2,
                                 factor_from_moments=_evv_factor),
        "VVV": FULL_RAW,
    }


#: scikit-learn's names of four of mclust's models (the same table entries).
SKLEARN_NAMES: dict[str, str] = {"full": "VVV", "tied": "EEE", "diag": "VVI",
                                 "spherical": "VII"}
#: mclust's univariate models (D = 1): equal (E) or variable (V) variance.
UNIVARIATE_NAMES: dict[str, str] = {"E": "EII", "V": "VII"}
_MCLUST_RAW = _models()
#: mclust's 14 model names, in mclust's order.
MCLUST_MODELS: tuple[str, ...] = tuple(_MCLUST_RAW)

#: The entries as written: array functions take the namespace first. Aliases
#: (:data:`SKLEARN_NAMES`, :data:`UNIVARIATE_NAMES`) map to the very same entry.
RAW_TABLE: dict[str, CovarianceOps] = {
    **{name: _MCLUST_RAW[model] for name, model in SKLEARN_NAMES.items()},
    **_MCLUST_RAW,
    **{name: _MCLUST_RAW[model] for name, model in UNIVARIATE_NAMES.items()},
}


# ---- binding to a namespace -------------------------------------------------------------


def _dispatching(fn: Callable) -> Callable:
    """``fn(xp, *args)`` as ``fn(*args)``, in the namespace of its arguments."""
    @functools.wraps(fn)
    def call(*args):
        return fn(get_namespace(*args), *args)

    return call


def _bind(raw: CovarianceOps, xp: Namespace | None) -> CovarianceOps:
    wrap = _dispatching if xp is None else (lambda fn: functools.partial(fn, xp))
    return raw._replace(**{name: wrap(getattr(raw, name)) for name in ARRAY_FUNCTIONS})


#: The table's one name per entry: mclust's (an alias's model name).
CANONICAL: dict[str, str] = {**{name: name for name in MCLUST_MODELS}, **SKLEARN_NAMES,
                             **UNIVARIATE_NAMES}
#: Entries whose array functions run in their arguments' namespace (an alias is the
#: same object as its model's entry).
TABLE: dict[str, CovarianceOps] = {name: _bind(raw, None) for name, raw in _MCLUST_RAW.items()}
TABLE = {name: TABLE[CANONICAL[name]] for name in RAW_TABLE}
_BOUND: dict[tuple[str, Any], CovarianceOps] = {}  # (type, namespace or alias) -> entry


def univariate_model(covariance_type: str) -> str:
    """The model a type is on one feature (D = 1), by mclust's univariate name: ``"E"``
    (equal variance: the E·· models and ``tied``) or ``"V"`` (variable: the V·· models,
    ``full``, ``diag`` and ``spherical``); with one feature shape and orientation are
    gone and only the volume's letter is left."""
    ops(covariance_type)  # an unknown name: the error listing the valid ones
    return "E" if CANONICAL[covariance_type][0] == "E" else "V"


def ops(covariance_type: str, xp=None) -> CovarianceOps:
    """Look up the per-type functions; raises ``ValueError`` naming the valid types.

    Parameters
    ----------
    covariance_type : str
    xp : numpy, jax.numpy, a :class:`bayesgmm._xp.Namespace` or None
        None: each function runs in its arguments' namespace. Else bound to ``xp``.
    """
    if xp is None:
        try:
            return TABLE[covariance_type]
        except (KeyError, TypeError):  # TypeError: unhashable
            raise _invalid(covariance_type) from None
    try:
        return _BOUND[covariance_type, xp]  # the host engine's path: one dict lookup
    except (KeyError, TypeError):
        pass
    if not isinstance(covariance_type, str) or covariance_type not in TABLE:
        raise _invalid(covariance_type)
    ns = namespace(xp)
    model = CANONICAL[covariance_type]
    entry = _BOUND.get((model, ns))
    if entry is None:
        entry = _BOUND.setdefault((model, ns), _bind(RAW_TABLE[model], ns))
    _BOUND[covariance_type, ns] = entry
    try:
        _BOUND[covariance_type, xp] = entry  # also under the module or name given
    except TypeError:
        pass
    return entry


def _invalid(covariance_type) -> ValueError:
    return ValueError(
        f"Invalid value for 'covariance_type': {covariance_type!r}; 'covariance_type' "
        f"should be in {tuple(SKLEARN_NAMES)} (scikit-learn's names) or in "
        f"{MCLUST_MODELS} (mclust's models; {_alias_text()}), or {tuple(UNIVARIATE_NAMES)} "
        "(mclust's univariate names)"
    )


def _alias_text() -> str:
    return ", ".join(f"{name} = {model}" for name, model in SKLEARN_NAMES.items())


# ---- a conjugate prior inside EM (MAP M-step) ----------------------------------------------


class Prior(NamedTuple):
    """A normal–inverse-Wishart-type prior on each component's mean and covariance, for a
    MAP M-step (Fraley & Raftery 2007; mclust's ``priorControl``):
    Σ_k ~ IW(dof, scale), μ_k | Σ_k ~ N(mean, Σ_k / shrinkage).

    With it, every model's M-step is the likelihood M-step of :data:`TABLE` on
    prior-augmented statistics (:func:`prior_moments`): counts ñ_k, scatters
    W̃_k = w·scale + W_k + c_k (x̄_k - mean)(...)ᵀ with c_k = κ n_k/(n_k + κ), and
    means (n_k x̄_k + κ mean)/(n_k + κ). ``form`` says how ñ_k and the scale's weight w
    are chosen for each model:

    * ``"conjugate"`` (the default for a prior you build): the one conjugate prior on each
      Σ_k, restricted to the model's family: ñ_k = n_k + dof + D + 1 (+ 1 when
      shrinkage > 0), w = 1, for every model (its MAP M-step maximises the expected
      complete-data log-likelihood plus Σ_k the log prior);
    * ``"mclust"`` (:func:`default_prior`'s, so ``prior="default"``): mclust's own M-step
      with a prior for each model (:data:`MCLUST_PRIOR`, read from mclust 6.1's Fortran
      ``me*p`` routines), which puts the prior on the model's own parameters: one
      shared scale for EII, EEI and EEE, inverse-gamma variances for the diagonal and
      spherical models, and for EEI unshrunk means. VVV is the same in both forms
      (checked against mclust 6.0.0 on iris: 2e-15 relative). mclust has no prior for
      VEE, EVE, VVE and EVV; they keep the conjugate form.

    EM uses it through ``GaussianMixture(prior=...)`` (:func:`bayesgmm.engines.mixture_m_step`
    calls :func:`prior_moments`, then the model's ``factor_from_moments``).
    """

    shrinkage: float  # κ ≥ 0; 0: no prior on the means
    mean: Array  # (D,) prior mean of the component means
    dof: float  # > D - 1
    scale: Array  # (D, D) positive definite (its diagonal for diagonal models)
    form: str = "conjugate"  # "conjugate" or "mclust" (see above); static under jit


class _PriorRule(NamedTuple):
    """How one model's MAP M-step augments the statistics (see :class:`Prior`), as
    functions of D, the active component count Ka, dof and kp = 1 if shrinkage > 0
    else 0."""

    scale_weight: Callable  # (D, Ka) -> w: the scale added to each active W̃_k, times w
    count: Callable  # (D, Ka, dof, kp) -> ñ_k - n_k for each active component
    shrink_means: bool  # the means are the posterior's (else the weighted averages x̄_k)


_CONJUGATE = _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: dof + D + 1 + kp, True)

#: mclust's M-step with a prior, model by model (mclust 6.1, ``src/mclust.f``: meeiip,
#: meviip, meeeip, meveip, meevip, mevvip, meeeep, meeevp, mevevp, mevvvp), as the
#: likelihood M-step of :data:`TABLE` on ñ_k and W̃_k (:class:`Prior`); s is the scale
#: (for the diagonal models its diagonal, a multiple of I by default):
#:
#: ===== ======================================================= ==========================
#: model the MAP covariance mclust computes                      as ñ_k - n_k, weight of s
#: ===== ======================================================= ==========================
#: EII   λ = Σ_k tr(W_k + c_k d_k d_kᵀ) / (dof + (n + K) D + 2)  1 + (dof + 2)/(D K), 0
#: VII   λ_k = (tr s + tr W̃'_k) / (dof + n_k D + 2 + D kp)       (dof + 2)/D + kp, 1/D
#: EEI   B = s + Σ_k diag W̃'_k, Σ = B / (n + dof + 1 + kp)       (dof + 1 + kp)/K, 1/K
#: VEI   λ_k = Σ_j w̃_kj / a_j / (n_k D + dof + 2 + kp),          (dof + 2 + kp)/D, 1
#:       a ∝ Σ_k w̃_k / λ_k, w̃_k = s + diag W̃'_k
#: EVI   λ = Σ_k |w̃_k|^{1/D} / (n + dof + 1 + kp)                (dof + 1 + kp)/K, 1
#: VVI   Σ_k = w̃_k / (n_k + dof + 2 + kp)                        dof + 2 + kp, 1
#: EEE   Σ = (s + Σ_k W̃'_k) / (n + dof + D + 1 + K kp)           (dof + D + 1)/K + kp, 1/K
#: EEV   λA = Σ_k eig(s + W̃'_k) / (n + dof + D + 1 + kp)         (dof + D + 1 + kp)/K, 1
#: VEV   λ_k = Σ_j eig_kj / a_j / (n_k D) (no count from dof)     0, 1
#: VVV   Σ_k = (s + W̃'_k) / (n_k + dof + D + 1 + kp)             dof + D + 1 + kp, 1
#: ===== ======================================================= ==========================
#:
#: with W̃'_k = W_k + c_k d_k d_kᵀ (d_k = x̄_k - mean) and K the active components. EEI
#: keeps the means x̄_k (mclust does not shrink them there); EII adds no scale (mclust's
#: meeiip leaves it out). Models not listed (VEE, EVE, VVE, EVV: mclust has no prior
#: for them) take the conjugate form. With one component mclust fits its XII, XXI or
#: XXX model (mnxiip, mnxxip, mnxxxp) whatever the name: the rule of VII, VVI or VVV
#: by the model's layout (:func:`prior_rule`).
MCLUST_PRIOR: dict[str, _PriorRule] = {
    "EII": _PriorRule(lambda D, Ka: 0.0, lambda D, Ka, dof, kp: 1 + (dof + 2) / (D * Ka),
                      True),
    "VII": _PriorRule(lambda D, Ka: 1.0 / D, lambda D, Ka, dof, kp: (dof + 2) / D + kp, True),
    "EEI": _PriorRule(lambda D, Ka: 1.0 / Ka, lambda D, Ka, dof, kp: (dof + 1 + kp) / Ka,
                      False),
    "VEI": _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: (dof + 2 + kp) / D, True),
    "EVI": _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: (dof + 1 + kp) / Ka, True),
    "VVI": _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: dof + 2 + kp, True),
    "EEE": _PriorRule(lambda D, Ka: 1.0 / Ka, lambda D, Ka, dof, kp: (dof + D + 1) / Ka + kp,
                      True),
    "EEV": _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: (dof + D + 1 + kp) / Ka,
                      True),
    "VEV": _PriorRule(lambda D, Ka: 1.0, lambda D, Ka, dof, kp: 0.0, True),
    "VVV": _CONJUGATE,
}

PRIOR_FORMS = ("conjugate", "mclust")


def prior_rule(prior: Prior, covariance_type: str, one: bool = False) -> _PriorRule:
    """The rule of :data:`MCLUST_PRIOR` (form ``"mclust"``) or the conjugate one;
    ``one``: mclust's rule for a single component (VII's, VVI's or VVV's by the
    model's layout)."""
    if prior.form == "conjugate":
        return _CONJUGATE
    if prior.form == "mclust":
        if one:
            axis = TABLE[covariance_type].component_axis
            return MCLUST_PRIOR[{-1: "VII", -2: "VVI"}.get(axis, "VVV")]
        return MCLUST_PRIOR.get(CANONICAL[covariance_type], _CONJUGATE)
    raise ValueError(f"Invalid value for the prior's 'form': {prior.form!r}; it should be "
                     f"in {PRIOR_FORMS}")


def default_prior(X: Array, n_components: int, covariance_type: str) -> Prior:
    """mclust's ``priorControl()``: its ``defaultPrior`` (shrinkage 0.01, the data mean,
    dof D + 2, and scale var(X) / K^{2/D}: the covariance matrix for models with free
    or shared orientation when N > D, else its diagonal; for diagonal and spherical
    models the mean variance times I) with mclust's M-step for each model
    (``form="mclust"``, :data:`MCLUST_PRIOR`).

    Parameters
    ----------
    X : array of shape (N, D)
    n_components : int
    covariance_type : str
    """
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    fac = (1.0 / n_components) ** (2.0 / D)
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    if ops(covariance_type).component_axis in (-2, -1):  # diag, spherical: a scalar scale
        scale = fac * np.trace(cov) / D * np.eye(D)
    else:
        scale = fac * (cov if N > D else np.diag(np.diag(cov)))
    return Prior(0.01, X.mean(axis=0), float(D + 2), scale, "mclust")


def prior_moments(prior: Prior, nk: Array, sx: Array, sxx: Array, shift: Array,
                  covariance_type: str, xp=None, active: Array | None = None,
                  ) -> tuple[Array, Array, Array]:
    """The MAP M-step's statistics: ``factor_from_moments(sxx_map, nk_map, 0,
    Σ nk_map, reg)`` is the MAP covariance factor and ``means`` the MAP means.

    Parameters
    ----------
    prior : Prior
        Its ``form`` picks the model's rule (:func:`prior_rule`).
    nk : array of shape (K,)
        Σ w r.
    sx : array of shape (K, D)
        Σ w r (x - shift_k).
    sxx : array of shape (K, D, D) or (K, D)
        Σ w r (x - shift_k)^{⊗2}, in the model's moments layout.
    shift : array of shape (K, D) or (D,)
    covariance_type : str
    xp : namespace, optional
    active : bool array of shape (K,), optional
        The components that take part (default: n_k > 0); the others (padding) take no
        prior mass: ñ_k = n_k and W̃_k = W_k there, and they are not counted in K.

    Returns
    -------
    nk_map : array of shape (K,)
        ñ_k; n_k where the component is inactive.
    sxx_map : array, shaped as ``sxx``
        W̃_k, about x̄_k (so the M-step's mean offset is 0).
    means : array of shape (K, D)
    """
    xp = get_namespace(nk, sx, sxx, shift) if xp is None else namespace(xp)
    rule = prior_rule(prior, covariance_type)
    D = sx.shape[-1]
    dtype = sx.dtype
    kappa = float(prior.shrinkage)
    kp = 1.0 if kappa > 0 else 0.0
    mu0 = xp.asarray(prior.mean, dtype=dtype)
    scale = xp.asarray(prior.scale, dtype=dtype)
    active = nk > 0 if active is None else active
    n_active = xp.maximum(xp.sum(xp.where(active, 1.0, 0.0)), 1.0)  # K of the rule
    weight = rule.scale_weight(D, n_active)
    count = rule.count(D, n_active, float(prior.dof), kp)
    single = prior_rule(prior, covariance_type, one=True)
    if single is not rule:  # one active component (possibly traced): mclust's XII/XXI/XXX
        one = n_active == 1
        weight = xp.where(one, single.scale_weight(D, 1.0), weight)
        count = xp.where(one, single.count(D, 1.0, float(prior.dof), kp), count)
    safe = xp.where(nk > 0, nk, 1.0)
    delta = sx / safe[:, None]  # x̄_k - shift
    d = mu0 - shift - delta  # (K, D): mean - x̄_k
    shrink = (kappa * nk / (nk + kappa))[:, None]  # κ n_k / (n_k + κ)
    full = sxx.ndim == 3
    if full:
        W = sxx - nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
        W_map = W + weight * scale + shrink[:, :, None] * d[:, :, None] * d[:, None, :]
    else:
        W = sxx - nk[:, None] * delta * delta
        W_map = W + weight * xp.diagonal(scale) + shrink * d * d
    nk_map = xp.where(active, nk + count, nk)
    W_map = xp.where(active.reshape((-1,) + (1,) * (W.ndim - 1)), W_map, W)
    xbar = shift + delta
    shrunk = active if rule.shrink_means else active & (n_active == 1)
    means = (nk[:, None] * xbar + kappa * mu0) / (safe + kappa)[:, None]
    return nk_map, W_map, xp.where(shrunk[:, None], means, xbar)


# ---- the moments form ---------------------------------------------------------------------


def n_moment_features(n_features: int, full_moments: bool) -> int:
    """F: the moments kernel's features per row, ``[1, x, x⊗x]`` (the upper triangle of
    x⊗x when ``full_moments``, else its diagonal)."""
    D = int(n_features)
    return 1 + D + (D * (D + 1) // 2 if full_moments else D)


def moment_features(X: Array, center: Array, covariance_type: str, xp=None) -> Array:
    """The moments kernel's features ``T(x) = [1, x - c, (x - c)^{⊗2}]``.

    Parameters
    ----------
    X : array of shape (N, D)
    center : array of shape (D,)
        The shift ``c``, fixed for a whole fit.
    covariance_type : str
    xp : namespace, optional
        Default: that of ``X`` and ``center``.

    Returns
    -------
    array of shape (N, F)
        The products x_a x_b, a <= b (``np.triu_indices`` order) for full/tied, the
        squares for diag/spherical. The constant column carries each component's
        constant term into the E-step's matmul and returns the counts from the
        statistics' matmul.
    """
    xp = get_namespace(X, center) if xp is None else namespace(xp)
    xc = X - center
    ones = xp.ones((xc.shape[0], 1), xc.dtype)
    return xp.concatenate([ones, xc, ops(covariance_type, xp).second_features(xc)], axis=1)


def moment_theta(weights: Array | None, means: Array, factor: Array, center: Array,
                 covariance_type: str, xp=None, log_weights: Array | None = None) -> Array:
    """Natural parameters θ with ``log p(x, z = k) = T(x) θ_k`` for the features of
    :func:`moment_features`.

    Parameters
    ----------
    weights : array of shape (K,)
        A zero weight (an inactive component) gives that column ``-inf`` (NumPy warns
        of the log of 0; callers silence it).
    means : array of shape (K, D)
    factor : array, the covariance factor (shape by type)
    center : array of shape (D,)
    covariance_type : str
    xp : namespace, optional
        Default: that of the arrays.
    log_weights : array of shape (K,), optional
        In place of ``weights`` (None then): their logs, ``-inf`` for an inactive
        component, whose gradient stays 0 under autodiff (the Bayesian potential's).

    Returns
    -------
    array of shape (F, K)
        Row 0: each component's constant term; rows 1..D: P_k (μ_k - c); then the
        second-order rows.
    """
    xp = get_namespace(means, factor, center) if xp is None else namespace(xp)
    table = ops(covariance_type, xp)
    K, D = means.shape[-2:]
    m = means - center  # (..., K, D)
    P = table.moment_precision(factor, K, D)
    Pm = table.precision_times(P, m)
    const = (-0.5 * (D * math.log(2 * math.pi) + (m * Pm).sum(axis=-1))
             + table.log_det_precision(factor, K, D)
             + (xp.log(weights) if log_weights is None else log_weights))
    return xp.concatenate([xp.asarray(const[..., None, :], dtype=Pm.dtype), _t(xp, Pm),
                           table.quadratic_theta(P)], axis=-2)


def moment_sums(S: Array, center: Array, covariance_type: str,
                xp=None) -> tuple[Array, Array, Array]:
    """Statistics from sums of features ``S = Σ_n w_n r_nk T(x_n)`` (K, F).

    Returns
    -------
    nk : array of shape (K,)
    sx : array of shape (K, D)
        Σ w r (x - c).
    sxx : array of shape (K, D, D) (full/tied) or (K, D) (diag/spherical)
        Σ w r (x - c)^{⊗2}.
    """
    xp = get_namespace(S, center) if xp is None else namespace(xp)
    D = center.shape[-1]
    return S[..., 0], S[..., 1:1 + D], ops(covariance_type, xp).unpack_second(S[..., 1 + D:])
