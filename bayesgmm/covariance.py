"""Per-covariance-type mathematics: one table of small functions, written once over an
array namespace.

Glossary: N samples, D features, K components, F moment features per row
(:func:`n_moment_features`), F2 = F - 1 - D of them second-order.

Every covariance type stores a *factor* in :class:`bayesgmm.params.GMMParams`:

=========== ============== ==============================================
type        factor shape   meaning
=========== ============== ==============================================
full        (K, D, D)      lower Cholesky L_k of each covariance, S_k = L_k L_kᵀ
tied        (D, D)         lower Cholesky of the one shared covariance
diag        (K, D)         per-feature standard deviations
spherical   (K,)           one standard deviation per component
=========== ============== ==============================================

Design notes
------------
* Code elsewhere never writes ``if covariance_type == ...``; it looks the type up once in
  :data:`TABLE` (at trace time under ``jit``), the way gmmx does. Each entry works on one
  parameter set (no batch dims); callers ``vmap`` (JAX) or loop (NumPy) over batches.
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

from bayesgmm._xp import Namespace, get_namespace, namespace

# HIGHEST (JAX's matmul precision) is importable from here too, resolved on first use so
# that this module does not import JAX; it is left out of __all__ for the same reason.
__all__ = ["CovarianceOps", "TABLE", "RAW_TABLE", "ARRAY_FUNCTIONS", "ops", "ROUNDOFF",
           "n_moment_features", "moment_features", "moment_theta", "moment_sums"]

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
    batch dims of the factor, so NumPy callers need no loop over draws.
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
    # (sxx, nk (K,), delta (K,D), total weight, reg_covar) -> factor; NaN for a collapsed
    # component (see the module note)
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
    round-off (module note)."""
    return _roundoff_rtol(m2.dtype) * m2


def _gram_of_inverse(xp, L: Array) -> Array:
    """(L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹."""
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
    # L⁻ᵀL⁻¹ is symmetric by construction), off-diagonals counted twice; P as a (K, D²)
    # table, one gather
    K, D = P.shape[0], P.shape[-1]
    return (P.reshape(K, D * D)[:, _triu(D).flat] * _half_twice(D, P.dtype)).T


def _products_unpack(xp, S2: Array) -> Array:
    K, F2 = S2.shape
    D = (math.isqrt(8 * F2 + 1) - 1) // 2  # F2 = D(D+1)/2
    return S2[:, _triu(D).pos].reshape(K, D, D)


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
                 precision_times=lambda xp, P, m: xp.matmul(P, m[:, :, None])[:, :, 0],
                 shift_second=_outer_shift)
_SQUARES = dict(full_moments=False, second_features=_squares,
                quadratic_theta=lambda xp, P: -0.5 * P.T,
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


def _full_factor(xp, sxx, nk, delta, total, reg):
    D = delta.shape[-1]
    m2 = sxx / nk[:, None, None]  # E_k[(x - s)(x - s)ᵀ]
    cov = m2 - delta[:, :, None] * delta[:, None, :]
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


def _tied_factor(xp, sxx, nk, delta, total, reg):
    D = delta.shape[-1]
    # Σ_k [Σ_n r (x-s)(x-s)ᵀ - nk δ_k δ_kᵀ] / Σ_k nk, sklearn's tied estimate, centred.
    m2 = sxx.sum(axis=0) / total
    cov = m2 - xp.matmul((nk[:, None] * delta).T, delta) / total
    cov = 0.5 * (cov + cov.T) + reg * xp.eye(D, dtype=cov.dtype)
    return _tril_factor(xp, cov, m2.diagonal())


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
        xp.log(U.diagonal()).sum(), (K,)),
    log_det_precision=lambda xp, L, K, D: xp.broadcast_to(-xp.log(L.diagonal()).sum(), (K,)),
    scale_noise=lambda xp, L, k, z: xp.matmul(L, z[..., None])[..., 0],
    factor_ok=lambda xp, L, K: xp.broadcast_to(_tril_ok(xp, L), (K,)),
    factor_from_moments=_tied_factor,
    moment_precision=lambda xp, L, K, D: xp.broadcast_to(_gram_of_inverse(xp, L),
                                                         (K, D, D)),
)

# ---- diag ----------------------------------------------------------------------------


def _diag_mahalanobis(xp, Xc: Array, prec_std: Array) -> Array:
    y = Xc * prec_std[:, None, :]
    return (y * y).sum(axis=-1).T


def _diag_second_moment(xp, rw: Array, Xc: Array) -> Array:
    # Σ_n r_nk (x_nd - m_kd)²  -> (K, D)
    return xp.einsum("nk,knd->kd", rw, Xc * Xc)


def _diag_factor(xp, sxx, nk, delta, total, reg):
    m2 = sxx / nk[:, None]
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


def _spherical_factor(xp, sxx, nk, delta, total, reg):
    D = delta.shape[-1]
    m2 = sxx / nk[:, None]  # means over D as sums / D: NumPy's mean is a Python wrapper
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
    moment_precision=lambda xp, s, K, D: xp.broadcast_to((1.0 / (s * s))[:, None], (K, D)),
)

#: The entries as written: array functions take the namespace first.
RAW_TABLE: dict[str, CovarianceOps] = {
    "full": FULL_RAW,
    "tied": TIED_RAW,
    "diag": DIAG_RAW,
    "spherical": SPHERICAL_RAW,
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


#: Entries whose array functions run in their arguments' namespace.
TABLE: dict[str, CovarianceOps] = {name: _bind(raw, None) for name, raw in RAW_TABLE.items()}
_BOUND: dict[tuple[str, Any], CovarianceOps] = {}  # (type, namespace or alias) -> entry


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
        except KeyError:
            raise _invalid(covariance_type) from None
    try:
        return _BOUND[covariance_type, xp]  # the host engine's path: one dict lookup
    except (KeyError, TypeError):
        pass
    if covariance_type not in TABLE:
        raise _invalid(covariance_type)
    ns = namespace(xp)
    entry = _BOUND.setdefault((covariance_type, ns), _bind(RAW_TABLE[covariance_type], ns))
    try:
        _BOUND[covariance_type, xp] = entry  # also under the module or name given
    except TypeError:
        pass
    return entry


def _invalid(covariance_type) -> ValueError:
    return ValueError(
        f"Invalid value for 'covariance_type': {covariance_type!r}; "
        f"'covariance_type' should be in {tuple(TABLE)}"
    )


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


def moment_theta(weights: Array, means: Array, factor: Array, center: Array,
                 covariance_type: str, xp=None) -> Array:
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

    Returns
    -------
    array of shape (F, K)
        Row 0: each component's constant term; rows 1..D: P_k (μ_k - c); then the
        second-order rows.
    """
    xp = get_namespace(weights, means, factor, center) if xp is None else namespace(xp)
    table = ops(covariance_type, xp)
    K, D = means.shape
    m = means - center  # (K, D)
    P = table.moment_precision(factor, K, D)
    Pm = table.precision_times(P, m)
    const = (-0.5 * (D * math.log(2 * math.pi) + (m * Pm).sum(axis=-1))
             + table.log_det_precision(factor, K, D) + xp.log(weights))
    return xp.concatenate([xp.asarray(const[None, :], dtype=Pm.dtype), Pm.T,
                           table.quadratic_theta(P)], axis=0)


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
    return S[:, 0], S[:, 1:1 + D], ops(covariance_type, xp).unpack_second(S[:, 1 + D:])
