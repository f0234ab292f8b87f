"""Partition agreement, for checking recovered clusters against known labels, and the
uncertainty of each point's membership.

Glossary: N samples, K components.

NumPy only: these run on the host, on arrays a fit has already produced.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contingency", "adjusted_rand_score", "membership_uncertainty",
           "UNCERTAINTY_KINDS"]

UNCERTAINTY_KINDS = ("entropy", "interval")
# How far a row of membership probabilities may sum from 1 (float32 rounding allowed for).
_SIMPLEX_ATOL = 1e-3


def contingency(labels_true, labels_pred) -> np.ndarray:
    """Counts of each (true, predicted) label pair, shape (n_true, n_pred)."""
    _, t = np.unique(np.asarray(labels_true), return_inverse=True)
    _, p = np.unique(np.asarray(labels_pred), return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def adjusted_rand_score(labels_true, labels_pred) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions up to
    relabeling, about 0 for independent ones."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(
            f"labels must be 1-D of equal length, got {labels_true.shape} and {labels_pred.shape}"
        )
    n = labels_true.shape[0]
    c = contingency(labels_true, labels_pred).astype(np.float64)
    comb2 = lambda x: x * (x - 1) / 2
    sum_cells = comb2(c).sum()
    sum_rows, sum_cols = comb2(c.sum(1)).sum(), comb2(c.sum(0)).sum()
    expected = sum_rows * sum_cols / comb2(n) if n > 1 else 0.0
    max_index = (sum_rows + sum_cols) / 2
    if max_index == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return float((sum_cells - expected) / (max_index - expected))


def membership_uncertainty(proba=None, *, lower=None, upper=None, kind: str = "entropy"):
    """How uncertain each point's component membership is, in [0, 1].

    Parameters
    ----------
    proba : array-like of shape (N, K), optional
        Membership probabilities p(z_n = k | x_n) (``predict_proba``; for a Bayesian fit
        the posterior mean). Needed for ``kind="entropy"``.
    lower, upper : array-like of shape (N, K), optional
        A credible interval of each membership probability
        (``BayesianGaussianMixture.membership_interval``). Needed for ``kind="interval"``.
    kind : {"entropy", "interval"}, default="entropy"
        ``"entropy"``: the normalised entropy ``-Σ_k p_nk log p_nk / log K`` (0 = certain,
        1 = uniform over the K components; 0 for K = 1).
        ``"interval"``: ``upper - lower`` of the most probable component (the argmax of
        ``proba`` when given, else of the interval's midpoint): how much the posterior
        disagrees about the point's own cluster.

    Returns
    -------
    ndarray of shape (N,)
        In the input's floating dtype (float32 stays float32).
    """
    if kind not in UNCERTAINTY_KINDS:
        raise ValueError(f"kind must be one of {UNCERTAINTY_KINDS}, got {kind!r}")
    if kind == "entropy":
        if proba is None:
            raise ValueError("kind='entropy' needs proba (N, K), e.g. model.predict_proba(X)")
        p = _membership_array(proba, "proba")
        sums = p.sum(axis=1)
        if np.any(p < -_SIMPLEX_ATOL) or np.any(np.abs(sums - 1) > _SIMPLEX_ATOL):
            bad = int(np.flatnonzero((np.abs(sums - 1) > _SIMPLEX_ATOL)
                                     | np.any(p < -_SIMPLEX_ATOL, axis=1))[0])
            raise ValueError(f"proba's rows must be probabilities (non-negative, summing to 1); "
                             f"row {bad} is {p[bad].tolist()}. Pass predict_proba(X), not "
                             "log-probabilities or scores")
        K = p.shape[1]
        if K == 1:
            return np.zeros(p.shape[0], dtype=p.dtype)
        q = np.clip(p, 0, 1)
        # K is the last axis; 0 log 0 = 0
        plogp = np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)
        return np.clip(-plogp.sum(axis=1) / np.log(K), 0, 1).astype(p.dtype)
    if lower is None or upper is None:
        raise ValueError("kind='interval' needs lower and upper (N, K), e.g. "
                         "mean, lower, upper = model.membership_interval(X)")
    lo, hi = _membership_array(lower, "lower"), _membership_array(upper, "upper")
    if lo.shape != hi.shape:
        raise ValueError(f"lower and upper must have the same shape, got {lo.shape} and "
                         f"{hi.shape}")
    if np.any(hi < lo):
        bad = int(np.flatnonzero(np.any(hi < lo, axis=1))[0])
        raise ValueError(f"upper is below lower in row {bad}; pass (lower, upper) in that order")
    if proba is None:
        top = np.argmax(lo + hi, axis=1)  # the interval's midpoint, times 2
    else:
        p = _membership_array(proba, "proba")
        if p.shape != lo.shape:
            raise ValueError(f"proba has shape {p.shape} but the interval {lo.shape}")
        top = np.argmax(p, axis=1)
    rows = np.arange(lo.shape[0])
    dtype = np.result_type(lo.dtype, hi.dtype)
    return (hi[rows, top] - lo[rows, top]).astype(dtype)


def _membership_array(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, K), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has NaN or infinite values")
    return a
