"""Relabeling mixture draws, and diagnostics that need none.

Glossary: C chains, S draws per chain, M = C·S draws, N samples, D features,
K components.

A mixture's likelihood is invariant to permuting its components, so draws (and chains)
may use different labelings, and per-component summaries and R-hat are then
meaningless. :func:`relabel` finds, for every draw, the permutation of its components
that matches a common labeling, by one of three methods:

``"hungarian"`` (the default)
    Assignment (``scipy.optimize.linear_sum_assignment``) of each draw's components to a
    reference's, with cost the squared Mahalanobis distance between means under the
    reference covariance plus the squared difference of log weights. The reference starts
    at the EM/MAP solution and is replaced by the relabeled posterior mean until no
    assignment changes (an iterated fixed point). Needs only the parameters.
``"ecr"``
    Equivalence classes representatives (Papastamoulis & Iliopoulos 2010, the pivot
    version): each draw's hard allocations ``argmax_k p(z_n = k | x_n, θ)`` are permuted
    to agree with the reference's allocations on as many samples as possible (an
    assignment problem on the K×K contingency table). Needs X.
``"stephens"``
    Stephens' (2000) KL algorithm: each draw's membership matrix ``P_t (N, K)`` is
    permuted to minimise ``KL(P_t ‖ Q)``, where ``Q`` is the mean of the permuted ``P_t``,
    alternating the two steps until no permutation changes; ``Q`` starts at the
    reference's memberships. Needs X. It works on what the user reads (memberships),
    so it is the most robust when components overlap; it costs M·N·K per iteration.

All three are exact on draws that are permutations of well-separated configurations
(tests/test_relabel.py); on chains that really switch between two overlapping
components they agree with each other to a few draws.

Label-invariant quantities need no relabeling and say whether chains agree in a way
relabeling cannot fake: :func:`bayesgmm.bayes.posterior.label_invariant` (every fit's
``health_.label_invariant`` and ``summary(label_invariant=True)``) gives the R-hat, bulk
and tail ESS of the log density, the sorted weights and the samples' maximum membership
probabilities; :func:`bayesgmm.bayes.calibration.invariant_diagnostics` the same R-hat
and bulk ESS for the calibration studies.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams

__all__ = ["METHODS", "Relabeling", "relabel", "posterior_mean", "apply_permutations",
           "log_responsibilities"]

METHODS = ("hungarian", "ecr", "stephens")


class Relabeling(NamedTuple):
    params: GMMParams  # (C, S) draws, relabeled
    permutations: np.ndarray  # (C, S, K): new component k was old permutations[..., k]
    n_switched: int  # draws whose labeling was changed
    n_iter: int  # rounds of matching to the (updated) reference


def relabel(draws: GMMParams, reference: GMMParams, max_iter: int = 10, *,
            method: str = "hungarian", X=None) -> Relabeling:
    """Permute each draw's components to match ``reference`` (batch shape ()).

    Parameters
    ----------
    draws : GMMParams
        Batch shape ``B``, e.g. ``(C, S)``.
    reference : GMMParams
        Batch shape (); the labeling to match (the MAP, or the truth in a simulation).
    max_iter : int
        Rounds of matching and updating the reference (``"ecr"`` needs one).
    method : {"hungarian", "ecr", "stephens"}
        See the module docstring.
    X : array of shape (N, D), optional
        The data; required by ``"ecr"`` and ``"stephens"``.

    Returns
    -------
    Relabeling
        ``params`` of batch shape ``B``, ``permutations (*B, K)``.
    """
    if method not in METHODS:
        raise ValueError(f"Invalid value for 'method': {method!r}; 'method' should be one of "
                         f"{METHODS}")
    if method != "hungarian" and X is None:
        raise ValueError(f"relabel(method={method!r}) matches memberships and needs the "
                         f"data: pass X=<array of shape (N, D)>, or use method='hungarian'")
    B = draws.batch_shape
    K = draws.n_components
    flat = draws.to_numpy().flatten_batch()
    ref = reference.to_numpy()
    if method == "hungarian":
        perms, it = _hungarian(flat, ref, max_iter)
    else:
        X = np.asarray(X, dtype=np.float64)
        log_p = log_responsibilities(flat, X)  # (M, N, K)
        log_q = log_responsibilities(ref, X)  # (N, K)
        perms, it = (_ecr(log_p, log_q) if method == "ecr"
                     else _stephens(log_p, log_q, max_iter))
    out = apply_permutations(flat, perms)
    out = GMMParams(*(a.reshape(*B, *a.shape[1:]) for a in (out.weights, out.means,
                                                            out.cov_factor)),
                    out.covariance_type)
    n_switched = int(np.any(perms != np.arange(K), axis=1).sum())
    return Relabeling(out, perms.reshape(*B, K), n_switched, it)


def posterior_mean(draws: GMMParams) -> GMMParams:
    """Mean over all batch dims of weights, means and covariances (as a full/diag/... fit),
    accumulated in float64 and returned in the draws' dtype: summed in float32, 150
    draws of means near 1e4 came out 8e-4 off (1.7 times float32's rounding there)."""
    p = draws.to_numpy()
    nb = len(p.batch_shape)
    axes = tuple(range(nb))
    mean = lambda a: np.asarray(a).mean(axis=axes, dtype=np.float64).astype(  # noqa: E731
        np.asarray(a).dtype)
    cov = mean(p.covariances)
    w = mean(p.weights)
    return GMMParams.from_sklearn(w / w.sum(), mean(p.means),
                                  covariance_type=p.covariance_type, covariances=cov)


def apply_permutations(flat: GMMParams, perms: np.ndarray) -> GMMParams:
    """Draws (M,) permuted: new component k of draw m is old ``perms[m, k]``."""
    M, K = perms.shape
    take = lambda a, extra: np.take_along_axis(a, perms.reshape(M, K, *([1] * extra)), axis=1)
    axis = ops(flat.covariance_type).component_axis
    factor = flat.cov_factor if axis is None else take(flat.cov_factor, -axis - 1)
    return GMMParams(take(flat.weights, 0), take(flat.means, 1), factor, flat.covariance_type)


def log_responsibilities(params: GMMParams, X: np.ndarray) -> np.ndarray:
    """log p(z_n = k | x_n, θ) in NumPy float64 for every parameter set: shape (*B, N, K).

    Through each component's full covariance (any covariance type), by Cholesky solves."""
    p = params.to_numpy(np.float64)
    cov = np.asarray(p.full_covariances)  # (*B, K, D, D)
    L = np.linalg.cholesky(cov)
    diff = X[..., None, :, :] - p.means[..., :, None, :]  # (*B, K, N, D)
    # solve L y = diffᵀ over the K axis: (*B, K, D, N)
    y = np.linalg.solve(L, np.swapaxes(diff, -1, -2))
    maha = np.sum(y * y, axis=-2)  # (*B, K, N): D is reduced
    log_det = 2 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)  # (*B, K)
    D = X.shape[-1]
    log_joint = (np.log(np.maximum(p.weights, 1e-300))[..., :, None]
                 - 0.5 * (maha + log_det[..., None] + D * np.log(2 * np.pi)))  # (*B, K, N)
    log_joint = np.swapaxes(log_joint, -1, -2)  # (*B, N, K)
    return log_joint - logsumexp(log_joint, axis=-1, keepdims=True)


# ---- private ---------------------------------------------------------------------------


def _hungarian(flat: GMMParams, ref: GMMParams, max_iter: int):
    K = flat.n_components
    perms = np.broadcast_to(np.arange(K), (flat.weights.shape[0], K)).copy()
    for it in range(1, max_iter + 1):
        cost = _cost(flat, ref)  # (M, K_ref, K_draw)
        new = np.stack([linear_sum_assignment(c)[1] for c in cost])
        changed = np.any(new != perms)
        perms = new
        ref = posterior_mean(apply_permutations(flat, perms))
        if not changed and it > 1:
            break
    return perms, it


def _ecr(log_p: np.ndarray, log_q: np.ndarray):
    """Pivot ECR: permutations maximising agreement of hard allocations with the pivot's."""
    M, N, K = log_p.shape
    z_ref = np.argmax(log_q, axis=-1)  # (N,)
    z = np.argmax(log_p, axis=-1)  # (M, N)
    # table[m, k, j] = #{n : z_ref[n] = k, z[m, n] = j}
    table = np.zeros((M, K, K))
    np.add.at(table, (np.repeat(np.arange(M), N), np.tile(z_ref, M), z.ravel()), 1.0)
    perms = np.stack([linear_sum_assignment(-t)[1] for t in table])
    return perms, 1


def _stephens(log_p: np.ndarray, log_q: np.ndarray, max_iter: int):
    """Stephens (2000), algorithm 2: alternate Q = mean of permuted P and, per draw, the
    permutation minimising KL(P_t permuted ‖ Q) (a K×K assignment)."""
    M, _, K = log_p.shape
    p = np.exp(log_p)
    plogp = np.einsum("mnj,mnj->mj", p, log_p)  # (M, K): Σ_n p log p of each old component
    perms = np.broadcast_to(np.arange(K), (M, K)).copy()
    log_Q = log_q
    for it in range(1, max_iter + 1):
        # cost[m, k, j] = Σ_n p[m, n, j] (log p[m, n, j] - log Q[n, k])
        cost = plogp[:, None, :] - np.einsum("mnj,nk->mkj", p, log_Q)
        new = np.stack([linear_sum_assignment(c)[1] for c in cost])
        changed = it == 1 or np.any(new != perms)
        perms = new
        permuted = np.take_along_axis(p, perms[:, None, :], axis=2)  # (M, N, K)
        log_Q = np.log(np.maximum(permuted.mean(axis=0), 1e-300))
        if not changed:
            break
    return perms, it


def _cost(flat: GMMParams, ref: GMMParams) -> np.ndarray:
    """(M, K_ref, K_draw): Mahalanobis² of draw means under reference covariances, plus
    the squared log-weight difference."""
    prec = np.asarray(ref.full_covariances)
    prec = np.linalg.inv(prec)  # (K, D, D)
    diff = flat.means[:, None, :, :] - ref.means[None, :, None, :]  # (M, Kr, Kd, D)
    maha = np.einsum("mkjd,kde,mkje->mkj", diff, prec, diff)
    lw = np.log(np.maximum(flat.weights, 1e-300))[:, None, :] - np.log(
        np.maximum(ref.weights, 1e-300))[None, :, None]
    return maha + lw**2
