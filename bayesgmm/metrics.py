"""Partition agreement, for checking recovered clusters against known labels."""

from __future__ import annotations

import numpy as np

__all__ = ["contingency", "adjusted_rand_score"]


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
