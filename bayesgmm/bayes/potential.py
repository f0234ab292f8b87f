"""The model's log density on the unconstrained space, written out by hand.

:func:`bayesgmm.bayes.model.gmm_model` is the definition; NumPyro derives its potential
(``numpyro.infer.util.potential_energy``) by running the model under effect handlers,
through generic transforms and distributions. This module computes the same number, to
rounding, from the same unconstrained sites, with the same transforms (NumPyro's
``biject_to`` of each site's support) and EM's likelihood kernel (the centred form of
:func:`bayesgmm.density.centred_log_prob`), but with the algebra simplified:

- ``weights`` and ``corr_chol``: NumPyro's stick-breaking transforms, in log space
  (sums of log-sigmoids and log-sech², no ``cumprod``);
- ``scales``: the LogNormal density and the exp transform's Jacobian cancel to a Normal
  density on log(scales);
- ``corr_chol``: NumPyro builds the (D, D) factor with a scatter; here the vector is
  placed by a constant 0/1 matrix product;
- the likelihood's gradient in closed form (Fisher's identity: the E-step's
  responsibility-weighted statistics), as a ``jax.custom_vjp``;
- no argument checks, no plate bookkeeping, no trace.

Why: inside NUTS the potential and its gradient are compiled twice (the chain's first
state and the leapfrog step) and run ~28,000 times. On the 300-point seed blobs
NumPyro's version is 726 operations with its gradient; this one took the cold NUTS
call from 3.0 to 2.3 s, sampling included (``benchmarks/README.md``).

The test suite checks :func:`potential` against NumPyro's ``potential_energy`` and
:func:`constrain` against ``constrain_fn`` at random points, for every model
configuration handled here (:func:`supports`); the others go through NumPyro.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm.covariance import HIGHEST, ops
from bayesgmm.bayes.missing import marginal_log_prob, marginalizes
from bayesgmm.bayes.model import MODEL_COVARIANCE_TYPES, Priors, from_sites

__all__ = ["supports", "potential", "constrain", "unconstrained_shapes", "unflatten"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def supports(covariance_type: str, priors: Priors) -> bool:
    """Whether this module covers the configuration (else use NumPyro's potential)."""
    return (covariance_type in MODEL_COVARIANCE_TYPES and priors.weight_prior == "dirichlet"
            and not priors.robust)  # noise or t components: NumPyro's (bayes.robust)


def unconstrained_shapes(n_components: int, n_features: int, covariance_type: str) -> dict:
    """Each site's shape in the unconstrained space."""
    K, D = n_components, n_features
    shapes = {"weights": (K - 1,), "means": (K, D), "scales": (K, D)}
    if ops(covariance_type).correlated:
        shapes["corr_chol"] = (K, D * (D - 1) // 2)
    return shapes


def unflatten(flat, shapes: dict) -> dict:
    """(..., S) flat points -> sites, in ``jax.flatten_util.ravel_pytree``'s order (the
    dict's keys sorted); NumPy or JAX arrays."""
    out, start = {}, 0
    for name in sorted(shapes):
        size = math.prod(shapes[name])
        out[name] = flat[..., start:start + size].reshape(flat.shape[:-1] + shapes[name])
        start += size
    return out


def _normal_lp(x, loc, scale):
    return jnp.sum(-0.5 * jnp.square((x - loc) / scale) - jnp.log(scale) - _HALF_LOG_2PI)


def _softplus(x, xp=jnp):
    # log(1 + e^x), stable; jax.nn.softplus is a logaddexp with a custom JVP that
    # guards infinities, ~4x the operations once differentiated
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _log_sigmoid(x, xp=jnp):
    return -_softplus(-x, xp)


def _shifted(x):
    # NumPyro's stick-breaking shift, so that x = 0 maps to equal weights
    K1 = x.shape[-1]
    return x - np.log(K1 - np.arange(K1)).astype(x.dtype)


def _log_weights(x, xp=jnp):
    """NumPyro's ``StickBreakingTransform`` of (..., K-1) in log space: log weights
    (..., K), log w_j = log σ(x_j) + Σ_{i<j} log σ(-x_i), the last weight the whole
    remaining stick. (NumPyro clips σ(x) to [tiny, 1 - eps] and multiplies; the two agree
    to rounding wherever the clip is inactive, and cumprod's gradient traces to ~3x the
    operations of cumsum's.)"""
    x = _shifted(x)
    log_rest = xp.cumsum(_log_sigmoid(-x, xp), axis=-1)  # the stick left after each break
    zero = xp.zeros(x.shape[:-1] + (1,), x.dtype)
    return (xp.concatenate([_log_sigmoid(x, xp), zero], axis=-1)
            + xp.concatenate([zero, log_rest], axis=-1))


def _placement(D: int, dtype) -> np.ndarray:
    """(M, D·D) 0/1 matrix putting a row-major strict-lower-triangle vector in place."""
    rows, cols = np.tril_indices(D, -1)
    E = np.zeros((rows.size, D * D), dtype)
    E[np.arange(rows.size), rows * D + cols] = 1
    return E


def _corr_factor(x, D: int, xp=jnp):
    """NumPyro's ``CorrCholeskyTransform`` of (..., M) vectors, in log space: the
    factors (..., D, D), and s and its cumulative sums along rows (for the log |J|).

    With r = tanh(x) placed in the strict lower triangle and s = log(1 - r²), row i of
    the factor is L_ij = r_ij · exp(½ Σ_{k<j} s_ik), L_ii = exp(½ Σ_{k<i} s_ik), and
    1 - Σ_{k≤j} L_ik² = exp(Σ_{k≤j} s_ik), the terms of the stick-breaking log |J|.
    s = log sech²(x) = -2(x + softplus(-2x) - log 2), finite where NumPyro clips tanh(x)
    to 1 - eps, is also the tanh's log |J|."""
    E = _placement(D, x.dtype)
    shape = x.shape[:-1] + (D, D)
    place = lambda v: (v @ E).reshape(shape)
    s = place(-2 * (x + _softplus(-2 * x, xp) - math.log(2.0)))
    r = place(xp.tanh(x))
    c = xp.cumsum(s, axis=-1)
    return (r + np.eye(D, dtype=x.dtype)) * xp.exp(0.5 * (c - s)), s, c


def _multigammaln(a: float, d: int) -> float:
    # constants are computed on the host: under jit a jax.scipy call would be traced
    return d * (d - 1) / 4 * math.log(math.pi) + sum(math.lgamma(a - 0.5 * j)
                                                      for j in range(d))


def _lkj_lp(log_diag, eta: float):
    """LKJCholesky(D, η) log density of factors with log diagonals (K, D), summed over K."""
    K, D = log_diag.shape
    i = np.arange(1, D)
    order = (2 * eta - (3 - D + i)).astype(log_diag.dtype)
    unnormalized = jnp.sum(order * log_diag[:, 1:])
    alpha = eta + 0.5 * (D - 1)
    normalizer = (0.5 * (D - 1) * math.log(math.pi)
                  + _multigammaln(alpha - 0.5, D - 1) - math.lgamma(alpha) * (D - 1))
    return unnormalized - K * normalizer


def _constrained(z: dict, covariance_type: str, xp):
    """The model's sites, with the log weights and the correlation factors' s and c
    (:func:`_corr_factor`; None for diag) that the log |J| terms use."""
    log_w = _log_weights(z["weights"], xp)
    sites = {"weights": xp.exp(log_w), "means": z["means"], "scales": xp.exp(z["scales"])}
    s = c = None
    if ops(covariance_type).correlated:
        sites["corr_chol"], s, c = _corr_factor(z["corr_chol"], z["means"].shape[-1], xp)
    return sites, log_w, s, c


def constrain(z: dict, covariance_type: str, xp=jnp) -> dict:
    """Unconstrained sites (any leading batch dims) -> the model's sites, as NumPyro's
    ``constrain_fn``; ``xp=numpy`` computes them on the host."""
    return _constrained(z, covariance_type, xp)[0]


def potential(z: dict, X, covariance_type: str, priors: Priors):
    """Minus the log joint density (prior, transforms' log |J| and likelihood) at the
    unconstrained point ``z`` (no batch dims), as NumPyro's ``potential_energy`` of the
    model."""
    as_ = lambda v: np.asarray(v, X.dtype)
    K, D = z["means"].shape
    alpha = priors.weight_concentration
    sites, log_w, s, c = _constrained(z, covariance_type, jnp)
    x = _shifted(z["weights"])
    # Dirichlet(α) and the stick-breaking log |J| = Σ_j log w_j + log σ(x_j) - x_j
    lp = (alpha - 1) * jnp.sum(log_w) - (K * math.lgamma(alpha) - math.lgamma(K * alpha))
    lp = lp + jnp.sum(log_w[:-1] + _log_sigmoid(x) - x)
    lp = lp + _normal_lp(z["means"], as_(priors.mean_loc), as_(priors.mean_scale))
    lp = lp + _log_scale_lp(z["scales"], priors, X.dtype)
    if ops(covariance_type).correlated:
        # log |J|: tanh's Σ s, and stick-breaking's ½ Σ_{j ≤ i-2} c_ij
        lp = lp + jnp.sum(s) + 0.5 * jnp.sum(c * np.tril(np.ones((D, D), X.dtype), -2))
        lp = lp + _lkj_lp(0.5 * jnp.sum(s, axis=-1), priors.lkj_concentration)
    params = from_sites(sites, covariance_type)
    if marginalizes(X, priors.marginalize_missing):  # NaN: missing (bayesgmm.bayes.missing)
        return -(lp + jnp.sum(marginal_log_prob(params, X)))
    return -(lp + _log_likelihood(covariance_type, params.weights, params.means,
                                  params.cov_factor, X))


def _log_scale_lp(u, priors: Priors, dtype):
    """The scale prior's log density on u = log(scales) (K, D), the exp transform's
    Jacobian e^u included. LogNormal(log σ0, τ): Normal(log σ0, τ) on u. InverseGamma(a,
    b): a log b - lgamma(a) - a u - b e^{-u}."""
    as_ = lambda v: np.asarray(v, dtype)
    if priors.scale_prior == "inverse_gamma":
        a = float(priors.scale_shape)
        b = as_(np.asarray(priors.scale_loc) * (a + 1))
        K = u.shape[0]
        const = K * float(np.sum(a * np.log(np.asarray(priors.scale_loc) * (a + 1))
                                 - math.lgamma(a) * np.ones(u.shape[-1])))
        return const - jnp.sum(a * u + b * jnp.exp(-u))
    return _normal_lp(u, np.log(as_(priors.scale_loc)), as_(priors.scale_log_sd))


def _bmm(a, b):
    """Batched a @ b over the last two axes, at full float32 precision."""
    return jnp.matmul(a, b, precision=HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _log_likelihood(covariance_type, weights, means, factor, X):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k), by EM's centred kernel, with its gradient in
    closed form (below) rather than traced through the kernel."""
    return _log_likelihood_fwd(covariance_type, weights, means, factor, X)[0]


def _log_likelihood_fwd(covariance_type, weights, means, factor, X):
    # density.centred_log_prob's steps, keeping the projected data V for the gradient.
    # Layout (K, D, N), N last: every elementwise pass and reduction runs along the
    # contiguous, vectorisable N axis. (K, N, D) with a batched (N, D) x (D, D) product
    # made XLA's CPU dot call tiny D x D kernels N times; at N = 100,000, D = 5, K = 4
    # this value and gradient took 15.0 ms of CPU, in this layout 9.0 ms (2,000: 0.30 ->
    # 0.17 ms).
    table = ops(covariance_type)
    K, D = means.shape
    U = table.to_precision_cholesky(factor)  # full: L⁻ᵀ (K, D, D); diag: 1/σ (K, D)
    Xc = X.T[None, :, :] - means[:, :, None]  # (K, D, N)
    if table.correlated:
        V = _project(U, Xc)  # V[k, :, n] = U_kᵀ (x_n - μ_k) = L_k⁻¹ (x_n - μ_k)
    else:
        V = Xc * U[:, :, None]
    log_det = table.log_det_precision_cholesky(U, K, D)
    joint = (-0.5 * (D * math.log(2 * math.pi) + jnp.sum(V * V, axis=1))
             + (log_det + jnp.log(weights))[:, None])  # (K, N): D is reduced
    log_norm = logsumexp(joint, axis=0)  # (N,): K is reduced
    resp = jnp.exp(joint - log_norm)  # (K, N)
    return jnp.sum(log_norm), (weights, U, V, resp)


# Up to this many features the projection U_kᵀ (x - μ_k) is written as D
# multiply-adds over (K, D, N) arrays (one fused loop along N); above it, a matmul.
_UNROLL_MAX_D = 8


def _project(U, Xc):
    """(K, D, D) upper U and (K, D, N) centred data -> (K, D, N), V[k, e, n] = Σ_d
    U[k, d, e] Xc[k, d, n]."""
    D = U.shape[-1]
    if D <= _UNROLL_MAX_D:
        return sum(U[:, d, :, None] * Xc[:, d:d + 1, :] for d in range(D))
    return _bmm(jnp.swapaxes(U, -1, -2), Xc)


def _log_likelihood_bwd(covariance_type, residuals, g):
    """Fisher's identity: the gradient is the E-step's responsibility-weighted
    statistics. With r_nk the responsibilities, N_k = Σ_n r_nk and v_nk = L_k⁻¹(x_n - μ_k):
    ∂/∂w_k = N_k / w_k; ∂/∂μ_k = L_k⁻ᵀ Σ_n r_nk v_nk; ∂/∂L_k = tril(L_k⁻ᵀ Σ_n r_nk v_nk
    v_nkᵀ - N_k diag(L_k)⁻¹) (diag: ∂/∂σ_kd = (Σ_n r_nk v_nkd² - N_k) / σ_kd)."""
    weights, U, V, resp = residuals  # V (K, D, N), resp (K, N)
    nk = jnp.sum(resp, axis=1)
    rV = V * resp[:, None, :]
    s1 = jnp.sum(rV, axis=-1)  # (K, D): N is reduced
    if ops(covariance_type).correlated:
        s2 = _bmm(rV, jnp.swapaxes(V, -1, -2))  # (K, D, D): Σ_n r_nk v_nk v_nkᵀ
        d_means = _bmm(U, s1[:, :, None])[:, :, 0]
        diag_U = jnp.diagonal(U, axis1=-2, axis2=-1)
        D = U.shape[-1]
        d_factor = jnp.tril(_bmm(U, s2)
                            - (nk[:, None] * diag_U)[:, :, None] * np.eye(D, dtype=U.dtype))
    else:
        d_means = s1 * U
        d_factor = (jnp.sum(rV * V, axis=-1) - nk[:, None]) * U
    return g * nk / weights, g * d_means, g * d_factor, None


_log_likelihood.defvjp(_log_likelihood_fwd, _log_likelihood_bwd)
