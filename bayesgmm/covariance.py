"""Per-covariance-type mathematics, as one table of small functions.

Glossary: N samples, D features, K components.

Every covariance type stores a *factor* in :class:`bayesgmm.params.GMMParams`:

=========== ============== ==============================================
type        factor shape   meaning
=========== ============== ==============================================
full        (K, D, D)      lower Cholesky L_k of each covariance, S_k = L_k L_kᵀ
tied        (D, D)         lower Cholesky of the one shared covariance
diag        (K, D)         per-feature standard deviations
spherical   (K,)           one standard deviation per component
=========== ============== ==============================================

Design note: code elsewhere never writes ``if covariance_type == ...``; it looks the
type up once in :data:`TABLE` (at trace time), the way gmmx does. Each entry works on
one parameter set (no batch dims); callers ``vmap`` over batches.

scikit-learn's ``precisions_cholesky_`` is the upper-triangular U with precision
P = U Uᵀ, i.e. U = L⁻ᵀ; for diag/spherical it is 1/std.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from bayesgmm._typing import Array

__all__ = ["CovarianceOps", "TABLE", "ops", "HIGHEST", "n_moment_features"]

HIGHEST = jax.lax.Precision.HIGHEST


class CovarianceOps(NamedTuple):
    """Functions for one covariance type; all act on a single parameter set."""

    factor_shape: Callable[[int, int], tuple[int, ...]]
    # axis of the factor that indexes components (counted from the end); None for tied
    component_axis: int | None
    # (K, D, dtype) -> factor of Σ = I, a host (NumPy) constant: padding on the host
    # then compiles nothing, and under jit it is a literal
    identity: Callable[[int, int, object], Array]
    n_parameters: Callable[[int, int], int]
    to_covariance: Callable[[Array], Array]  # factor -> sklearn covariances_
    from_covariance: Callable[[Array], Array]  # sklearn covariances_ -> factor
    to_precision_cholesky: Callable[[Array], Array]  # factor -> sklearn precisions_cholesky_
    from_precision_cholesky: Callable[[Array], Array]
    to_precision: Callable[[Array], Array]  # factor -> sklearn precisions_
    to_full_covariance: Callable[[Array, int, int], Array]  # (factor, K, D) -> (K, D, D)
    from_precision: Callable[[Array], Array]
    # (Xc (K,N,D) = X - means per component, prec_chol) -> (N,K) squared Mahalanobis
    mahalanobis: Callable[[Array, Array], Array]
    log_det_precision_cholesky: Callable[[Array, int, int], Array]
    # sample z (..., K?, D) standard normal -> (x - mean) for component k: (factor, k, z)
    scale_noise: Callable[[Array, Array, Array], Array]
    # second-moment accumulation (resp*w (N,K), centred X (K,N,D)) -> per-type stats
    second_moment: Callable[[Array, Array], Array]
    # (factor, K) -> (K,) bool: finite, with a positive diagonal (else the M-step failed)
    factor_ok: Callable[[Array, int], Array]
    # (sxx, nk (K,), delta (K,D), total weight, reg_covar) -> factor
    factor_from_moments: Callable[[Array, Array, Array, Array, Array], Array]
    # (factor, K, D) -> precision per component for the moments kernel: (K, D, D) for
    # full/tied, its diagonal (K, D) for diag/spherical
    moment_precision: Callable[[Array, int, int], Array]
    # the moments kernel's second-order features: all products x_a x_b (True) or squares
    full_moments: bool
    # The Bayesian model (bayesgmm.bayes.model) samples per-component scales, times an LKJ
    # correlation Cholesky factor where ``correlated``; a tied or spherical fit starts it
    # as its per-component relaxation ``bayes_type`` ("full" or "diag").
    correlated: bool
    bayes_type: str


def _eye_like(D: int, dtype) -> Array:
    return jnp.eye(D, dtype=dtype)


def _tril_inv(L: Array) -> Array:
    """Inverse of a lower-triangular matrix (last two axes)."""
    eye = jnp.broadcast_to(_eye_like(L.shape[-1], L.dtype), L.shape)
    return solve_triangular(L, eye, lower=True)


def _precision_to_factor(P: Array) -> Array:
    # S = P⁻¹, symmetrised, then its lower Cholesky. Explicit inversion is fine at the
    # D (<~100) of mixtures, and it only runs once, on user-supplied precisions_init.
    S = jnp.linalg.inv(P)
    S = 0.5 * (S + jnp.swapaxes(S, -1, -2))
    return jnp.linalg.cholesky(S)


def _matmul(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=HIGHEST)


# --- full ---------------------------------------------------------------------------


def _full_mahalanobis(Xc: Array, prec_chol: Array) -> Array:
    # Xc is centred per component (K, N, D), float32-safe for offset data; project by U_k.
    y = _matmul(Xc, prec_chol)  # (K, N, D): batched over K
    return jnp.sum(y * y, axis=-1).T  # (N, K)


def _full_second_moment(rw: Array, Xc: Array) -> Array:
    # Σ_n r_nk (x_n - m_k)(x_n - m_k)ᵀ as a batched matmul over K: (K,D,N) @ (K,N,D).
    weighted = Xc * rw.T[:, :, None]
    return _matmul(jnp.swapaxes(weighted, -1, -2), Xc)  # (K, D, D)


def _tril_ok(L: Array) -> Array:
    d = jnp.diagonal(L, axis1=-2, axis2=-1)
    return jnp.all(jnp.isfinite(L), axis=(-2, -1)) & jnp.all(d > 0, axis=-1)


def _full_factor(sxx, nk, delta, total, reg):
    D = delta.shape[-1]
    cov = sxx / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2)) + reg * _eye_like(D, cov.dtype)
    return jnp.linalg.cholesky(cov)


FULL = CovarianceOps(
    factor_shape=lambda K, D: (K, D, D),
    component_axis=-3,
    identity=lambda K, D, dt: np.broadcast_to(np.eye(D, dtype=dt), (K, D, D)),
    n_parameters=lambda K, D: K * D * (D + 1) // 2,
    to_covariance=lambda L: _matmul(L, jnp.swapaxes(L, -1, -2)),
    from_covariance=lambda S: jnp.linalg.cholesky(S),
    to_precision_cholesky=lambda L: jnp.swapaxes(_tril_inv(L), -1, -2),
    # U upper, P = U Uᵀ  =>  S = U⁻ᵀ U⁻¹, so L = U⁻ᵀ = (Uᵀ)⁻¹, lower.
    from_precision_cholesky=lambda U: _tril_inv(jnp.swapaxes(U, -1, -2)),
    to_precision=lambda L: (lambda Li: _matmul(jnp.swapaxes(Li, -1, -2), Li))(_tril_inv(L)),
    from_precision=_precision_to_factor,
    to_full_covariance=lambda L, K, D: _matmul(L, jnp.swapaxes(L, -1, -2)),
    mahalanobis=_full_mahalanobis,
    log_det_precision_cholesky=lambda U, K, D: jnp.sum(
        jnp.log(jnp.diagonal(U, axis1=-2, axis2=-1)), axis=-1
    ),
    scale_noise=lambda L, k, z: _matmul(L[k], z[..., None])[..., 0],
    second_moment=_full_second_moment,
    factor_ok=lambda L, K: _tril_ok(L),
    factor_from_moments=_full_factor,
    moment_precision=lambda L, K, D: (lambda Li: _matmul(jnp.swapaxes(Li, -1, -2), Li))(
        _tril_inv(L)),
    full_moments=True,
    correlated=True,
    bayes_type="full",
)

# --- tied ---------------------------------------------------------------------------


def _tied_mahalanobis(Xc: Array, U: Array) -> Array:
    y = _matmul(Xc, U)  # shared U, broadcast over K
    return jnp.sum(y * y, axis=-1).T


def _tied_factor(sxx, nk, delta, total, reg):
    D = delta.shape[-1]
    # Σ_k [Σ_n r (x-m_k)(x-m_k)ᵀ - nk δ_k δ_kᵀ] / Σ_k nk, sklearn's tied estimate, centred.
    cov = (jnp.sum(sxx, axis=0) - jnp.einsum("k,ki,kj->ij", nk, delta, delta, precision=HIGHEST)) / total
    cov = 0.5 * (cov + cov.T) + reg * _eye_like(D, cov.dtype)
    return jnp.linalg.cholesky(cov)


TIED = FULL._replace(
    factor_shape=lambda K, D: (D, D),
    component_axis=None,
    identity=lambda K, D, dt: np.eye(D, dtype=dt),
    n_parameters=lambda K, D: D * (D + 1) // 2,
    to_full_covariance=lambda L, K, D: jnp.broadcast_to(_matmul(L, L.T), (K, D, D)),
    mahalanobis=_tied_mahalanobis,
    log_det_precision_cholesky=lambda U, K, D: jnp.broadcast_to(
        jnp.sum(jnp.log(jnp.diagonal(U))), (K,)
    ),
    scale_noise=lambda L, k, z: _matmul(L, z[..., None])[..., 0],
    factor_ok=lambda L, K: jnp.broadcast_to(_tril_ok(L), (K,)),
    factor_from_moments=_tied_factor,
    moment_precision=lambda L, K, D: jnp.broadcast_to(
        (lambda Li: _matmul(Li.T, Li))(_tril_inv(L)), (K, D, D)),
)

# --- diag ---------------------------------------------------------------------------


def _diag_mahalanobis(Xc: Array, prec_std: Array) -> Array:
    y = Xc * prec_std[:, None, :]
    return jnp.sum(y * y, axis=-1).T


def _diag_second_moment(rw: Array, Xc: Array) -> Array:
    # Σ_n r_nk (x_nd - m_kd)²  -> (K, D)
    return jnp.einsum("nk,knd->kd", rw, Xc * Xc, precision=HIGHEST)


def _diag_factor(sxx, nk, delta, total, reg):
    var = sxx / nk[:, None] - delta * delta + reg
    return jnp.sqrt(var)


DIAG = CovarianceOps(
    factor_shape=lambda K, D: (K, D),
    component_axis=-2,
    identity=lambda K, D, dt: np.ones((K, D), dt),
    n_parameters=lambda K, D: K * D,
    to_covariance=lambda s: s * s,
    from_covariance=jnp.sqrt,
    to_precision_cholesky=lambda s: 1.0 / s,
    from_precision_cholesky=lambda u: 1.0 / u,
    to_precision=lambda s: 1.0 / (s * s),
    from_precision=lambda p: 1.0 / jnp.sqrt(p),
    to_full_covariance=lambda s, K, D: jax.vmap(jnp.diag)(s * s),
    mahalanobis=_diag_mahalanobis,
    log_det_precision_cholesky=lambda u, K, D: jnp.sum(jnp.log(u), axis=-1),
    scale_noise=lambda s, k, z: s[k] * z,
    second_moment=_diag_second_moment,
    factor_ok=lambda s, K: jnp.all(jnp.isfinite(s) & (s > 0), axis=-1),
    factor_from_moments=_diag_factor,
    moment_precision=lambda s, K, D: 1.0 / (s * s),
    full_moments=False,
    correlated=False,
    bayes_type="diag",
)

# --- spherical ----------------------------------------------------------------------


def _spherical_mahalanobis(Xc: Array, prec_std: Array) -> Array:
    return (jnp.sum(Xc * Xc, axis=-1) * (prec_std * prec_std)[:, None]).T


def _spherical_factor(sxx, nk, delta, total, reg):
    var = jnp.mean(sxx / nk[:, None] - delta * delta, axis=-1) + reg
    return jnp.sqrt(var)


SPHERICAL = DIAG._replace(
    factor_shape=lambda K, D: (K,),
    component_axis=-1,
    identity=lambda K, D, dt: np.ones((K,), dt),
    n_parameters=lambda K, D: K,
    to_full_covariance=lambda s, K, D: (s * s)[:, None, None] * _eye_like(D, s.dtype),
    mahalanobis=_spherical_mahalanobis,
    log_det_precision_cholesky=lambda u, K, D: D * jnp.log(u),
    scale_noise=lambda s, k, z: s[k] * z,
    factor_ok=lambda s, K: jnp.isfinite(s) & (s > 0),
    factor_from_moments=_spherical_factor,
    moment_precision=lambda s, K, D: jnp.broadcast_to((1.0 / (s * s))[:, None], (K, D)),
)

TABLE: dict[str, CovarianceOps] = {
    "full": FULL,
    "tied": TIED,
    "diag": DIAG,
    "spherical": SPHERICAL,
}


def n_moment_features(n_features: int, full_moments: bool) -> int:
    """F: the moments kernel's features per row, ``[1, x, x⊗x]`` (the upper triangle of
    x⊗x when ``full_moments``, else its diagonal)."""
    D = int(n_features)
    return 1 + D + (D * (D + 1) // 2 if full_moments else D)


def ops(covariance_type: str) -> CovarianceOps:
    """Look up the per-type functions; raises ``ValueError`` naming the valid types."""
    try:
        return TABLE[covariance_type]
    except KeyError:
        raise ValueError(
            f"Invalid value for 'covariance_type': {covariance_type!r}; "
            f"'covariance_type' should be in {tuple(TABLE)}"
        ) from None
