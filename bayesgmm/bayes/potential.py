"""The model's log density on the unconstrained space, written out by hand.

:func:`bayesgmm.bayes.model.gmm_model` is the definition; NumPyro derives its potential
(``numpyro.infer.util.potential_energy``) by running the model under effect handlers,
through generic transforms and distributions. This module computes the same number, to
rounding, from the same unconstrained sites, with the same transforms (NumPyro's
``biject_to`` of each site's support) and EM's likelihood kernel (the centred form of
:func:`bayesgmm.density.centred_log_prob`), but with the algebra simplified:

- ``weights`` and ``corr_chol``: NumPyro's stick-breaking transforms, in log space
  (sums of log-sigmoids and log-sech², no ``cumprod``);
- ``scales``: on u = log(scales), the InverseGamma density with the exp transform's
  Jacobian is a log b - lgamma(a) - a u - b e^{-u}, and the LogNormal's (with
  ``scale_prior="lognormal"``) cancels to a Normal density on u;
- ``corr_chol``: NumPyro builds the (D, D) factor with a scatter; here the vector is
  placed by a constant 0/1 matrix product;
- the likelihood's gradient in closed form (Fisher's identity: the E-step's
  responsibility-weighted statistics), as a ``jax.custom_vjp``;
- no argument checks, no plate bookkeeping, no trace.

Why: inside NUTS the potential and its gradient are compiled twice (the chain's first
state and the leapfrog step) and run ~28,000 times. On the 300-point seed blobs
NumPyro's version is 726 operations with its gradient; this one took the cold NUTS
call from 3.0 to 2.3 s, sampling included (``benchmarks/README.md``).

Padding (one compiled program for every K of a comparison): :func:`potential` with
``n_active`` takes a point of K_max components of which the first ``n_active`` (a
traced integer, not a static one) are the model's; the other components have weight
exactly 0 (the stick is broken over the active components only) and their
unconstrained coordinates a fixed standard normal density, so NUTS's mass-matrix
adaptation stays proper and their draws are simply dropped. At the active components
the value is the K = ``n_active`` model's plus that standard normal term, and the
gradient the same; so MAP, NUTS and the pointwise log-likelihood compile once for K_max
(``bayesgmm.bayes.compare_n_components``). :func:`unconstrain` (NumPy) puts a K-component
start into the padded space, :func:`active_sites` takes the active components back out.

Two likelihood kernels. The centred one (:func:`_log_likelihood`) projects x_n - μ_k
for every component and computes the value and its gradient's statistics in one pass
over the data, block by block of rows (:func:`row_blocks`, made once per data set,
like the moment kernel's features). The moment one
(:func:`_moment_log_likelihood`, float64 only) writes each component's log density
plus log weight as a linear function of the features φ(y) = [1, y, the D(D+1)/2
products y_i y_j] of y = x - c (c the data mean; made once per data set,
:func:`moments`): the value is one (N, F) @ (F, K) matmul and a log-sum-exp over K,
the gradient (autodiff) one (K, N) @ (N, F) matmul of responsibilities and a chain
rule on K x F numbers. Its rounding error per sample is about eps · F · (|y| + |μ_k -
c|)² · ‖Σ_k⁻¹‖ (the terms cancel down to the quadratic form): in float32 it moved
the potential of the N = 100,000, D = 5 benchmark data by 2.05 against a float64
reference (the centred kernel: 0.016; 9e5 near a compact component far from the data
mean; ``benchmarks/README.md``), so float32 always runs the centred kernel; in float64 a parameter-and-radius guard (:func:`_moment_exact`)
picks the moment kernel where that bound is below :data:`_MOMENT_MAX_ERR` and the
centred one elsewhere (``lax.cond``: only one runs).

The test suite checks :func:`potential` against NumPyro's ``potential_energy`` and
:func:`constrain` against ``constrain_fn`` at random points, for every model
configuration handled here (:func:`supports`); the others go through NumPyro. The padded
potential is checked against the unpadded one and NumPyro's at every active K.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bayesgmm.covariance import HIGHEST, moment_features, moment_theta, ops
from bayesgmm.bayes.missing import marginal_log_prob, marginalizes
from bayesgmm.bayes.model import MODEL_COVARIANCE_TYPES, Priors, from_sites

__all__ = ["supports", "supports_padding", "potential", "constrain", "unconstrain",
           "unconstrained_shapes", "unflatten", "active_sites", "masked_log_density",
           "Moments", "moments", "RowBlocks", "row_blocks"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# The moment kernel runs where its bound on the rounding error of one sample's log
# density (:func:`_moment_exact`) is below this; float64's eps 2.2e-16 leaves room for
# (|y| + |μ - c|)² ‖Σ⁻¹‖ up to ~10⁶, float32's never (it always runs the centred kernel).
_MOMENT_MAX_ERR = 1e-8

# Most rows per block of the centred kernel (:func:`row_blocks`; N = 100,000: 25 blocks
# of 4,000): 1,024 to 16,384 ran at the same speed, whole arrays at half of it
_BLOCK_ROWS = 4096


class Moments(NamedTuple):
    """A data set's features for the moment kernel (:func:`moments`), made once."""
    phi: jax.Array  # shape=(N, F), F = 1 + D + D(D+1)/2 (correlated) or 1 + 2D (diag)
    centre: jax.Array  # shape=(D,), c: the data mean
    radius: jax.Array  # shape=(), max_n |x_n - c|


class RowBlocks(NamedTuple):
    """A data set laid out for the centred kernel (:func:`row_blocks`), made once: the
    rows transposed (features first, rows along the contiguous axis), in q blocks of
    equal size B; where q·B > N the last block ends in copies of the last row, which
    ``mask`` weighs 0."""
    blocks: jax.Array  # shape=(q, D, B)
    mask: jax.Array | None  # shape=(q, B): 1 for a row, 0 for padding; None: no padding


def supports(covariance_type: str, priors: Priors) -> bool:
    """Whether this module covers the configuration (else use NumPyro's potential)."""
    return (covariance_type in MODEL_COVARIANCE_TYPES and priors.weight_prior == "dirichlet"
            and not priors.robust)  # noise or t components: NumPyro's (bayes.robust)


def supports_padding(covariance_type: str, priors: Priors, X) -> bool:
    """Whether :func:`potential` can run padded (``n_active``): the hand-written
    configurations on complete data (the missing-data likelihood is not padded)."""
    return (supports(covariance_type, priors)
            and not marginalizes(X, priors.marginalize_missing))


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
    return _stick(x, None, xp)[0]


def _stick(x, n_active, xp=jnp):
    """:func:`_log_weights` (K,) and the shifted stick coordinates (K-1,), over the first
    ``n_active`` components only when it is given (traced): then the breaks j >=
    n_active - 1 are masked (log σ terms 0), the shift is K = n_active's, and the log
    weights of the masked components are finite placeholders (the caller masks them)."""
    if n_active is None:
        x = _shifted(x)
        log_s, log_rest = _log_sigmoid(x, xp), _log_sigmoid(-x, xp)
    else:
        j = xp.arange(x.shape[-1])
        stick = j < n_active - 1  # (K-1,): the breaks of the active stick
        x = x - xp.log(xp.where(stick, n_active - 1 - j, 1).astype(x.dtype))
        log_s = xp.where(stick, _log_sigmoid(x, xp), 0)
        log_rest = xp.where(stick, _log_sigmoid(-x, xp), 0)
    log_rest = xp.cumsum(log_rest, axis=-1)  # the stick left after each break
    zero = xp.zeros(x.shape[:-1] + (1,), x.dtype)
    return (xp.concatenate([log_s, zero], axis=-1)
            + xp.concatenate([zero, log_rest], axis=-1)), x


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
    """LKJCholesky(D, η) log density of factors with log diagonals (K, D): (K,)."""
    K, D = log_diag.shape
    i = np.arange(1, D)
    order = (2 * eta - (3 - D + i)).astype(log_diag.dtype)
    alpha = eta + 0.5 * (D - 1)
    normalizer = (0.5 * (D - 1) * math.log(math.pi)
                  + _multigammaln(alpha - 0.5, D - 1) - math.lgamma(alpha) * (D - 1))
    return jnp.sum(order * log_diag[:, 1:], axis=-1) - np.asarray(normalizer, log_diag.dtype)


def _constrained(z: dict, covariance_type: str, xp, log_w=None):
    """The model's sites, with the log weights (given, or computed) and the correlation
    factors' s and c (:func:`_corr_factor`; None for diag) that the log |J| terms use."""
    if log_w is None:
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


def moments(X, covariance_type: str):
    """The moment kernel's features of ``X`` (N, D), or None where :func:`potential`
    would not use them (float32 data: see the module docstring). Pass the result to
    :func:`potential` (``moments=``) outside any loop over evaluations: it is a pass
    over the data."""
    if X.dtype != jnp.float64:
        return None
    centre = jnp.mean(X, axis=0)
    phi = moment_features(X, centre, covariance_type, jnp)
    Y = phi[:, 1:1 + X.shape[1]]  # x - c, the features' linear columns
    return Moments(phi, centre, jnp.sqrt(jnp.max(jnp.sum(Y * Y, axis=1))))


def potential(z: dict, X, covariance_type: str, priors: Priors, n_active=None,
              moments: Moments | None = None, blocks: RowBlocks | None = None):
    """Minus the log joint density (prior, transforms' log |J| and likelihood) at the
    unconstrained point ``z`` (no batch dims), as NumPyro's ``potential_energy`` of the
    model.

    ``n_active`` (an integer, may be traced; :func:`supports_padding` configurations):
    ``z`` holds K_max components of which the first ``n_active`` are the model's (a
    K = n_active mixture); the others have weight 0 and contribute only a standard
    normal density on their unconstrained coordinates (:func:`masked_log_density`).
    The value is then the K = n_active potential minus that density, and the gradient
    at the active coordinates the K = n_active gradient.

    ``moments``: :func:`moments` of ``X`` (None: the centred kernel only); where given,
    the likelihood runs on the moment kernel wherever :func:`_moment_exact` holds.
    ``blocks``: :func:`row_blocks` of ``X``, the centred kernel's layout of the data
    (None: made here, a pass over the data at every evaluation)."""
    as_ = lambda v: _as(v, X.dtype)
    K, D = z["means"].shape
    alpha = priors.weight_concentration
    masked = 0.0
    if n_active is not None:
        n_active = jnp.asarray(n_active).astype(jnp.arange(1).dtype)  # the index dtype
        masked = masked_log_density(z, n_active, jnp)
        z = _zero_masked(z, n_active)  # masked components: benign values, no gradient
    log_w, x = _stick(z["weights"], n_active)
    sites, _, s, c = _constrained(z, covariance_type, jnp, log_w)
    # Dirichlet(α) and the stick-breaking log |J| = Σ_j log w_j + log σ(x_j) - x_j
    # (x_j = 0, log w_j = 0 at masked breaks: the where drops them)
    dirichlet = np.array([0.0] + [k * math.lgamma(alpha) - math.lgamma(k * alpha)
                                  for k in range(1, K + 1)], X.dtype)  # by active K
    jacobian = log_w[:-1] + _log_sigmoid(x) - x
    if n_active is None:
        lp = (alpha - 1) * jnp.sum(log_w) - dirichlet[K] + jnp.sum(jacobian)
    else:
        active = jnp.arange(K) < n_active
        lp = ((alpha - 1) * jnp.sum(jnp.where(active, log_w, 0)) - jnp.asarray(dirichlet)[n_active]
              + jnp.sum(jnp.where(jnp.arange(K - 1) < n_active - 1, jacobian, 0)))
    # each component's prior and log |J| terms, (K,): D is reduced
    comp = jnp.sum(_normal_elem(z["means"], as_(priors.mean_loc), as_(priors.mean_scale))
                   + _log_scale_elem(z["scales"], priors, X.dtype), axis=-1)
    if ops(covariance_type).correlated:
        # log |J|: tanh's Σ s, and stick-breaking's ½ Σ_{j ≤ i-2} c_ij
        comp = (comp + jnp.sum(s, axis=(-2, -1))
                + 0.5 * jnp.sum(c * np.tril(np.ones((D, D), X.dtype), -2), axis=(-2, -1)))
        comp = comp + _lkj_lp(0.5 * jnp.sum(s, axis=-1), priors.lkj_concentration)
    params = from_sites(sites, covariance_type)
    if n_active is None:
        lp = lp + jnp.sum(comp)
    else:
        lp = lp + jnp.sum(jnp.where(active, comp, 0)) + masked
        log_w = jnp.where(active, log_w, -jnp.inf)  # weight exactly 0
    if marginalizes(X, priors.marginalize_missing):  # NaN: missing (bayesgmm.bayes.missing)
        return -(lp + jnp.sum(marginal_log_prob(params, X)))
    args = (log_w, params.means, params.cov_factor)
    blocks = row_blocks(X) if blocks is None else blocks
    if moments is None:
        return -(lp + _log_likelihood(covariance_type, *args, blocks))
    return -(lp + _guarded_log_likelihood(covariance_type, *args, moments, blocks))


def masked_log_density(z: dict, n_active, xp=np):
    """The standard normal log density of the masked (padded) components' unconstrained
    coordinates: components k >= ``n_active`` (means, scales, correlations) and stick
    breaks j >= ``n_active`` - 1. ``z``: unconstrained sites of K_max components with
    any leading batch dims B -> shape B. NumPy (``xp=numpy``) or JAX."""
    K = z["means"].shape[-2]
    std = lambda v: -0.5 * v * v - _HALF_LOG_2PI
    rows = sum(xp.sum(std(z[name]), axis=-1) for name in ("means", "scales", "corr_chol")
               if name in z)  # (*B, K): the per-component coordinates are reduced
    breaks = xp.where(xp.arange(K - 1) < n_active - 1, 0, std(z["weights"]))
    return (xp.sum(xp.where(xp.arange(K) < n_active, 0, rows), axis=-1)
            + xp.sum(breaks, axis=-1))


def active_sites(z: dict, n_active: int) -> dict:
    """Padded unconstrained sites (any leading batch dims) -> the first ``n_active``
    components' (a Python int): the K = n_active model's unconstrained sites."""
    K = int(n_active)
    return {name: v[..., :K - 1] if name == "weights" else v[..., :K, :]
            for name, v in z.items()}


def unconstrain(sites: dict, covariance_type: str, n_padded: int | None = None) -> dict:
    """The model's sites of K components (no batch dims) -> unconstrained sites, in
    NumPy (NumPyro's ``biject_to`` inverses), padded with zeros to ``n_padded``
    components (the masked ones' standard normal mode). Inverse of :func:`constrain`."""
    w = np.asarray(sites["weights"])
    dtype = w.dtype
    K = w.shape[-1]
    # stick-breaking: x_j = logit(w_j / (1 - Σ_{i<j} w_i)) + log(K - 1 - j)
    rest = np.maximum(1 - np.cumsum(w[:-1]), np.finfo(dtype).tiny)
    x = np.log(w[:-1] / rest) + np.log(K - 1 - np.arange(K - 1))
    z = {"weights": x, "means": np.asarray(sites["means"]),
         "scales": np.log(np.asarray(sites["scales"]))}
    if ops(covariance_type).correlated:
        L = np.asarray(sites["corr_chol"])
        D = L.shape[-1]
        left = 1 - np.cumsum(L * L, axis=-1)  # 1 - Σ_{k<=j} L_ik²
        left = np.concatenate([np.ones_like(left[..., :1]), left[..., :-1]], axis=-1)
        rows, cols = np.tril_indices(D, -1)
        t = L[..., rows, cols] / np.sqrt(left[..., rows, cols])
        z["corr_chol"] = np.arctanh(np.clip(t, -1 + np.finfo(dtype).eps,
                                            1 - np.finfo(dtype).eps))
    if n_padded is not None:
        pad = int(n_padded) - K
        z = {name: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
             for name, v in z.items()}
    return {name: v.astype(dtype) for name, v in z.items()}


def _zero_masked(z: dict, n_active) -> dict:
    """Masked components' (and breaks') coordinates set to 0 (a plain, finite mixture
    component that the likelihood then gives weight 0); active ones as they are."""
    K = z["means"].shape[0]
    out = {"weights": jnp.where(jnp.arange(K - 1) < n_active - 1, z["weights"], 0)}
    active = jnp.arange(K) < n_active
    for name in ("means", "scales", "corr_chol"):
        if name in z:
            out[name] = jnp.where(active[:, None], z[name], 0)
    return out


def _normal_elem(x, loc, scale):
    """Normal(loc, scale) log density of each element."""
    return -0.5 * jnp.square((x - loc) / scale) - jnp.log(scale) - _HALF_LOG_2PI


def _log_scale_elem(u, priors: Priors, dtype):
    """The scale prior's log density on each u = log(scale) (K, D), the exp transform's
    Jacobian e^u included. LogNormal(log σ0, τ): Normal(log σ0, τ) on u. InverseGamma(a,
    b): a log b - lgamma(a) - a u - b e^{-u}."""
    # a program that takes the priors as an argument takes these terms with them
    # (target.prior_arrays), computed on the host as here
    terms = getattr(priors, "_scale_terms", None)
    first, second = scale_terms(priors, dtype) if terms is None else terms
    if priors.scale_prior == "inverse_gamma":
        return second - (float(priors.scale_shape) * u + first * jnp.exp(-u))
    return _normal_elem(u, first, second)


def scale_terms(priors: Priors, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The scale prior's per-feature constants (D,) in ``dtype``, computed on the host
    from the resolved priors: InverseGamma(a, b): (b, a log b - lgamma(a)), b in float64
    before the cast; LogNormal(log σ0, τ): (log σ0, τ)."""
    as_ = lambda v: np.asarray(v, dtype)
    if priors.scale_prior == "inverse_gamma":
        a = float(priors.scale_shape)
        b = np.asarray(priors.scale_loc) * (a + 1)
        return as_(b), as_(a * np.log(b) - math.lgamma(a))
    return np.log(as_(priors.scale_loc)), as_(priors.scale_log_sd)


def _as(value, dtype):
    """A prior's value in ``dtype``: a NumPy constant, or, where the program takes it as
    an argument (a traced array: :func:`bayesgmm.bayes.inference.target.prior_arrays`),
    the traced value cast."""
    if isinstance(value, jax.Array):
        return value.astype(dtype)
    return np.asarray(value, dtype)


def _bmm(a, b):
    """Batched a @ b over the last two axes, at full float32 precision."""
    return jnp.matmul(a, b, precision=HIGHEST)


def row_blocks(X, rows: int | None = None) -> RowBlocks:
    """``X`` (N, D) laid out for the centred kernel (:class:`RowBlocks`), in q = ⌈N /
    rows⌉ blocks of B = ⌈N / q⌉ <= ``rows`` rows (default :data:`_BLOCK_ROWS`), the last
    padded by q·B - N < q rows. Pass the result to :func:`potential` (``blocks=``)
    outside any loop over evaluations: it is a pass over the data.

    Equal blocks, not full blocks and a remainder: the kernel compiles one block's
    program, run by ``lax.scan`` (a remainder compiled it twice: K = 4, D = 5, N =
    100,000 compiled in 2.6 s against 0.7 s for the whole-array kernel)."""
    rows = _BLOCK_ROWS if rows is None else int(rows)
    N, D = X.shape
    q = max(1, -(-N // rows))
    B = -(-N // q)
    pad = q * B - N
    mask = None
    if pad:
        X = jnp.concatenate([X, jnp.broadcast_to(X[-1:], (pad, D))])
        mask = (jnp.arange(q * B) < N).astype(X.dtype).reshape(q, B)
    return RowBlocks(jnp.swapaxes(X.reshape(q, B, D), 1, 2), mask)


#: :func:`_block_statistics` writes its reductions out as sums of slices up to this K·D
_UNROLL_MAX = 32


def _sum(terms):
    return functools.reduce(jnp.add, terms)


def _block_statistics(covariance_type, log_weights, means, U, log_det, Xt, mask=None):
    """One block of rows Xt (D, B): Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k), and the
    responsibility-weighted statistics of v_nk = U_kᵀ(x_n - μ_k): N_k = Σ_n r_nk (K,),
    Σ_n r_nk v_nk (K, D) and Σ_n r_nk v_nk v_nkᵀ (K, D, D; diag: its diagonal (K, D)).
    ``mask`` (B,), where given, weighs each row's terms (0: a padding row).

    Where K·D <= :data:`_UNROLL_MAX`, every reduction over D or K is written out as a
    sum of (B,) slices: XLA's CPU reductions along a non-minor axis ran 5x slower than
    the same sums unrolled (the log-sum-exp over K of a (4, 100,000) array: 2.9
    against 0.5 ms). Above it, axis reductions: the unrolled program's compile time
    grows with K·D (K = 6, D = 16: 3.5 s against 1.0; K = 20, D = 64: 23 s)."""
    K, D = means.shape
    Xc = Xt[None, :, :] - means[:, :, None]  # (K, D, B)
    if ops(covariance_type).correlated:
        V = _bmm(jnp.swapaxes(U, -1, -2), Xc)  # V[k, :, n] = U_kᵀ (x_n - μ_k)
    else:
        V = Xc * U[:, :, None]
    const = log_det + log_weights - 0.5 * D * math.log(2 * math.pi)  # (K,)
    if K * D <= _UNROLL_MAX:
        joint = [const[k] - 0.5 * _sum([V[k, d] * V[k, d] for d in range(D)])
                 for k in range(K)]
        top = functools.reduce(jnp.maximum, joint)  # (B,)
        e = [jnp.exp(j - top) for j in joint]  # a component of weight 0 (-inf): 0
        total = _sum(e)
        e = jnp.stack(e)
    else:
        joint = const[:, None] - 0.5 * jnp.sum(V * V, axis=1)  # grows with K·D
        top = jnp.max(joint, axis=0)
        e = jnp.exp(joint - top)
        total = jnp.sum(e, axis=0)
    row_value, scale = top + jnp.log(total), 1 / total
    if mask is not None:
        row_value, scale = row_value * mask, scale * mask
    value = jnp.sum(row_value)
    resp = e * scale  # (K, B)
    rV = V * resp[:, None, :]
    if ops(covariance_type).correlated:
        s2 = _bmm(rV, jnp.swapaxes(V, -1, -2))
    else:
        s2 = jnp.sum(rV * V, axis=-1)
    return value, jnp.sum(resp, axis=-1), jnp.sum(rV, axis=-1), s2


def _centred_value_and_grad(covariance_type, log_weights, means, factor, blocks: RowBlocks):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k) by EM's centred kernel, and its gradient in
    (log_weights, means, factor) in closed form: one pass over the data, block by block
    (``lax.scan`` over :func:`row_blocks`' blocks; one block: no scan), each block's
    statistics (:func:`_block_statistics`) added up.

    Fisher's identity: the gradient is the E-step's responsibility-weighted statistics.
    With r_nk the responsibilities, N_k = Σ_n r_nk and v_nk = L_k⁻¹(x_n - μ_k):
    ∂/∂log w_k = N_k; ∂/∂μ_k = L_k⁻ᵀ Σ_n r_nk v_nk; ∂/∂L_k = tril(L_k⁻ᵀ Σ_n r_nk v_nk
    v_nkᵀ - N_k diag(L_k)⁻¹) (diag: ∂/∂σ_kd = (Σ_n r_nk v_nkd² - N_k) / σ_kd).

    Why blocks: over all N rows at once, each step of the kernel is a pass over (K, D,
    N) arrays in memory; a block's stay in cache. One value and gradient at N =
    100,000, D = 5, K = 4, float32, one core: 5.8-6.5 ms; the kernel before (whole
    arrays, the gradient from saved (K, D, N) residuals) 16.1-16.2 ms, alternating
    (``benchmarks/README.md``, "NUTS at scale"). x - μ_k is formed before the
    projection: U_kᵀx - U_kᵀμ_k was 8% faster and cancels digits on offset data."""
    table = ops(covariance_type)
    K, D = means.shape
    U = table.to_precision_cholesky(factor)  # full: L⁻ᵀ (K, D, D); diag: 1/σ (K, D)
    log_det = table.log_det_precision_cholesky(U, K, D)
    stats = functools.partial(_block_statistics, covariance_type, log_weights, means, U,
                              log_det)
    if blocks.blocks.shape[0] == 1:  # one block is never padded
        value, nk, s1, s2 = stats(blocks.blocks[0])
    else:
        dtype = blocks.blocks.dtype
        zero = (jnp.zeros((), dtype), jnp.zeros((K,), dtype), jnp.zeros((K, D), dtype),
                jnp.zeros(U.shape, dtype))
        add = lambda a, b: jax.tree_util.tree_map(jnp.add, a, b)
        step = lambda acc, block: (add(acc, stats(*block)), None)
        value, nk, s1, s2 = jax.lax.scan(step, zero, (blocks.blocks, blocks.mask))[0]
    if table.correlated:
        d_means = _bmm(U, s1[:, :, None])[:, :, 0]
        diag_U = jnp.diagonal(U, axis1=-2, axis2=-1)
        d_factor = jnp.tril(_bmm(U, s2)
                            - (nk[:, None] * diag_U)[:, :, None] * np.eye(D, dtype=U.dtype))
    else:
        d_means = s1 * U
        d_factor = (s2 - nk[:, None]) * U
    return value, (nk, d_means, d_factor)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _log_likelihood(covariance_type, log_weights, means, factor, blocks: RowBlocks):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k) by :func:`_centred_value_and_grad`: the forward
    pass computes the gradient and keeps it (K + K·D + K·D·D numbers), the backward pass
    scales it. ``log_weights`` (K,) may hold -inf (a padded component of weight 0),
    where the gradient is 0."""
    return _centred_value_and_grad(covariance_type, log_weights, means, factor, blocks)[0]


def _log_likelihood_fwd(covariance_type, log_weights, means, factor, blocks):
    return _centred_value_and_grad(covariance_type, log_weights, means, factor, blocks)


def _log_likelihood_bwd(covariance_type, grads, g):
    return tuple(g * d for d in grads) + (None,)


_log_likelihood.defvjp(_log_likelihood_fwd, _log_likelihood_bwd)


def _moment_exact(moments: Moments, log_weights, means, factor, covariance_type):
    """Whether the moment kernel's rounding error bound, eps · F · max_k (R + |μ_k -
    c|)² ‖Σ_k⁻¹‖_F (R the data's radius about c), is below :data:`_MOMENT_MAX_ERR`:
    a bound on |Σ_f φ_f θ_kf| over the data, from the parameters and R only."""
    K, D = means.shape
    prec = ops(covariance_type, jnp).moment_precision(factor, K, D)  # (K, D, D) or (K, D)
    norm = jnp.sqrt(jnp.sum(prec * prec, axis=tuple(range(1, prec.ndim))))  # (K,)
    dist = jnp.sqrt(jnp.sum(jnp.square(means - moments.centre), axis=-1))  # (K,)
    F = moments.phi.shape[1]
    bound = np.finfo(moments.phi.dtype).eps * F * jnp.max(jnp.square(moments.radius + dist)
                                                          * norm)
    return bound <= _MOMENT_MAX_ERR


def _guard_branches(covariance_type, moments: Moments, blocks: RowBlocks, with_grad: bool):
    """The two branches of :func:`_guarded_log_likelihood`'s ``lax.cond``: the moment
    and the centred kernel, each returning the value and (``with_grad``) its gradient
    in (log_weights, means, factor)."""
    def moment(args):
        if not with_grad:
            return _moment_log_likelihood(covariance_type, moments, *args)
        value, vjp = jax.vjp(
            lambda *a: _moment_log_likelihood(covariance_type, moments, *a), *args)
        return value, vjp(jnp.ones_like(value))

    def centred(args):
        value, grads = _centred_value_and_grad(covariance_type, *args, blocks)
        return (value, grads) if with_grad else value

    return moment, centred


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _guarded_log_likelihood(covariance_type, log_weights, means, factor,
                            moments: Moments, blocks: RowBlocks):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k) by the moment kernel where
    :func:`_moment_exact` holds, by the centred kernel (in blocks of rows) elsewhere.

    Differentiated, the ``lax.cond`` runs inside the forward pass and each branch
    returns its value with its gradient (K + K·D + K·D·D numbers): a ``cond`` left to
    autodiff carries the union of both branches' residuals out of the forward pass,
    the centred kernel's (K, D, N) projections and (K, N) responsibilities filled with
    zeros when the moment kernel ran. NUTS always takes both, so the forward pass loses
    nothing. Measured on one jitted value-and-gradient at N = 100,000, D = 5, K = 4,
    float64, CPU: 28 ms as a plain ``cond`` (the centred kernel's 30), 10 ms with this
    VJP, 6 ms with the centred branch also in blocks (the moment kernel alone: 5.9):
    the whole-array centred kernel's temporaries (~50 MB at that size) set the size of
    the program's scratch buffer even while the moment branch ran, and a buffer above
    glibc's mmap threshold (32 MB at most) is mapped afresh, page by page, at every
    call (5.9 ms unblocked with ``MALLOC_MMAP_THRESHOLD_`` raised). The centred kernel
    now always runs in blocks (:func:`_centred_value_and_grad`). Inside NUTS's compiled
    loop neither mattered measurably (``benchmarks/README.md``)."""
    return _guarded(covariance_type, (log_weights, means, factor), moments, blocks, False)


def _guarded(covariance_type, args, moments: Moments, blocks: RowBlocks, with_grad: bool):
    """The guard's ``lax.cond`` over :func:`_guard_branches`: the value, and with
    ``with_grad`` (value, gradient)."""
    moment, centred = _guard_branches(covariance_type, moments, blocks, with_grad)
    return jax.lax.cond(_moment_exact(moments, *args, covariance_type), moment, centred, args)


def _guarded_fwd(covariance_type, log_weights, means, factor, moments, blocks):
    return _guarded(covariance_type, (log_weights, means, factor), moments, blocks, True)


def _guarded_bwd(covariance_type, grads, g):
    return tuple(g * d for d in grads) + (None, None)


_guarded_log_likelihood.defvjp(_guarded_fwd, _guarded_bwd)


def _moment_log_likelihood(covariance_type, moments: Moments, log_weights, means, factor):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k) as log-sum-exp_k of φ(y_n) · θ_k: with m_k = μ_k
    - c and P_k = Σ_k⁻¹, log N(x | μ_k, Σ_k) + log w_k = θ_k0 + yᵀ P_k m_k - ½ yᵀ P_k y,
    θ_k0 = log w_k + log |U_k| - ½ D log 2π - ½ m_kᵀ P_k m_k. Gradient by autodiff: one
    (K, N) @ (N, F) matmul of responsibilities, then θ's chain rule (K x F numbers).
    ``log_weights`` may hold -inf (a padded component), where the gradient is 0. φ and
    θ are EM's encoding (:func:`bayesgmm.covariance.moment_features`,
    :func:`~bayesgmm.covariance.moment_theta`)."""
    theta = moment_theta(None, means, factor, moments.centre, covariance_type, jnp,
                         log_weights=log_weights)  # (F, K)
    joint = jnp.matmul(moments.phi, theta, precision=HIGHEST)  # (N, K)
    return jnp.sum(logsumexp(joint, axis=1))  # K is reduced, then N
