"""Initial parameters for EM: seeding on the host (NumPy), and the compiled methods.

Glossary: N samples, D features, K components, R restarts (``n_init``).

Methods (scikit-learn's ``init_params`` names, and two of mclust's):

``auto`` (the default of :class:`bayesgmm.GaussianMixture`)
    The ``hc`` start and the ``n_init`` ``kmeans`` starts; EM runs from each and the
    best lower bound wins (:func:`bayesgmm.fitting.fit`). mclust starts from ``hc``
    alone; k-means beside it rescues the fits where the tree's partition is poor.
``hc``
    Model-based hierarchical agglomeration (Fraley 1998; mclust's ``hc``,
    :func:`hc_tree`): one merge tree of the rows, cut at K groups
    (:func:`hc_partition`), whose M-step starts EM (:func:`hc_params`). One tree for
    every K, so a sweep's starts are nested and deterministic.
``kmeans``
    Greedy k-means++ seeds, then ``n_lloyd`` weighted Lloyd iterations; hard labels.
``k-means++``
    Greedy k-means++ seeds; each sample assigned to its nearest seed.
``random_from_data``
    K distinct samples drawn (by weight) as seeds; each sample assigned to the nearest.
``random``
    Responsibilities drawn uniformly and normalised (scikit-learn's ``random``).

Seeding on a subsample: for ``kmeans`` and ``k-means++``, ``seed_rows`` (a uniform
subsample, see :func:`seed_sample_size`) is where the centres are chosen; every row is
then assigned to its nearest centre. Lloyd's iterations over 10^5 rows cost about as
much as EM's, and a few thousand rows per cluster place the centres as well as all of
them (EM refines them on every row anyway).

Two halves. The host half (the first functions below: random streams, subsamples,
k-means++ seeds in NumPy, starting parameters from centres or from scikit-learn-form
``*_init`` values, and the hierarchical agglomeration) imports no JAX, so a small fit
on the host never loads it. The compiled half (:func:`kmeans_plusplus`, :func:`kmeans`, :func:`lloyd`,
:func:`init_resp`, :func:`init_params`, :func:`init_params_batch`,
:func:`lloyd_batch`; jit-able, so restarts vmap over keys) imports JAX inside each
function, when it runs.

Design note: scikit-learn gives ``k-means++`` and ``random_from_data`` a responsibility of
1 on the seed point only, which starts every covariance at ``reg_covar`` and makes the
first E-step erratic; assigning each sample to its nearest seed costs one distance pass
and starts EM from sensible covariances. The responsibilities then go through the same
M-step as EM (weighted, centred statistics).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bayesgmm._xp import NUMPY
from bayesgmm.covariance import ops
from bayesgmm.engines import (COLLAPSE_FLOOR, COLLAPSE_SPREAD, collapsed_members,
                              min_component_rows)
from bayesgmm.params import GMMParams, take_components

if TYPE_CHECKING:
    from bayesgmm._typing import Array, PRNGKey

__all__ = ["INIT_METHODS", "COMPILED_INIT_METHODS", "HC_ALL_ROWS", "HC_MAX_ROWS", "HCTree", "hc_tree",
           "hc_partition", "hc_params", "hc_params_many", "hc_starts_batched", "cached_hc_tree", "min_component_rows",
           "collapsed", "COLLAPSE_FLOOR", "COLLAPSE_SPREAD",
           "seed_sample_size", "n_seed_trials", "host_rng", "subsample_rows",
           "host_seeding_uniforms", "kmeans_plusplus_host", "params_from_centers",
           "params_from_inits", "kmeans_plusplus", "kmeans", "lloyd", "init_resp",
           "init_params", "init_params_batch", "seeding_uniforms", "lloyd_batch"]

INIT_METHODS = ("auto", "hc", "kmeans", "k-means++", "random", "random_from_data")
# The methods with a compiled (jit-able, vmapped over keys) initialisation, init_resp's.
COMPILED_INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

# Seeding (k-means++ and Lloyd) runs on at most this many rows, or SEED_ROWS_PER_COMPONENT
# per component if that is more; see seed_sample_size.
SEED_MIN_ROWS = 2**14
SEED_ROWS_PER_COMPONENT = 256
# Hierarchical agglomeration (hc) grows its tree on every row up to HC_ALL_ROWS rows, as
# mclust does (``mclust.options("subset")``: 2000), so that there the tree is mclust's
# (chevron, 1,104 rows: on 1,000 of them EII,3 stopped 0.28% short of mclust's optimum,
# on all of them it reaches it); on more rows it grows on HC_MAX_ROWS drawn at random
# (mclust draws 2000: either side's draw is random, and the tree costs O(M^2) memory
# and about M^2 D^3 work: in 5-D 0.26 s of CPU on 1,000 rows, 1.0 s on 2,000). See
# hc_tree.
HC_ALL_ROWS = 2000
HC_MAX_ROWS = 1000


# ---- the host half: NumPy only --------------------------------------------------------


def seed_sample_size(n_samples: int, n_components: int, method: str) -> int | None:
    """How many rows ``method`` chooses its centres from, or ``None`` for all of them.

    ``kmeans`` and ``k-means++`` seed on ``max(SEED_MIN_ROWS, SEED_ROWS_PER_COMPONENT·K)``
    rows when there are more; a cluster holding 1% of the data still has ~160 rows
    there. The other methods cost one pass over the data and use every row."""
    if method not in ("kmeans", "k-means++"):
        return None
    m = max(SEED_MIN_ROWS, SEED_ROWS_PER_COMPONENT * int(n_components))
    return m if n_samples > m else None


def n_seed_trials(n_clusters: int) -> int:
    """Candidates per k-means++ seed, ``2 + ⌊log K⌋`` (scikit-learn's greedy variant)."""
    return 2 + int(math.log(n_clusters))


def host_rng(key, stream: int) -> np.random.Generator:
    """A NumPy generator for one purpose (``stream``) of a fit seeded by ``key`` (the
    raw JAX key of :func:`bayesgmm.validation.check_random_state_key`). The streams a fit
    uses: 0 restart keys, 1 the ``init_subsample`` rows, 2 the seeding subsample, 3
    k-means++'s uniforms. Draws on the host need no compiled random-number program
    (each costs ~0.05 s of XLA)."""
    return np.random.default_rng([int(k) for k in np.asarray(key).ravel()] + [stream])


def subsample_rows(rng: np.random.Generator, X, sample_weight, n_rows: int):
    """``n_rows`` rows of ``X (N, D)`` drawn uniformly without replacement by ``rng``,
    with their weights, as NumPy arrays (a device array is read on the host: free on a
    CPU). NumPy's sampler takes 0.4 ms for 10⁴ of 10⁵ rows, where
    ``jax.random.choice`` sorts a full permutation (46 ms on a CPU); the rows are taken
    on the host too (a compiled gather cost 0.03 s of XLA per shape)."""
    idx = np.sort(rng.choice(X.shape[0], n_rows, replace=False))  # sorted: reads X in order
    return np.asarray(X)[idx], np.asarray(sample_weight)[idx]


def host_seeding_uniforms(rng, n_restarts: int, n_components: int,
                          n_padded: int | None = None):
    """:func:`seeding_uniforms` drawn on the host with NumPy's ``rng``, for
    ``n_restarts`` restarts: ``(R, n_padded, 2 + ⌊log n_padded⌋)``, zero beyond the
    ``n_components`` rows and trials that k-means++ reads, so the draws do not depend
    on the padding. :mod:`bayesgmm.fitting` passes them to :func:`init_params_batch`: a compiled
    initialisation then holds no random-number generator (each JAX draw site costs
    ~0.05-0.1 s of XLA compilation on a CPU)."""
    n_padded = n_padded or n_components
    u = np.zeros((n_restarts, n_padded, n_seed_trials(n_padded)))
    u[:, :n_components, :n_seed_trials(n_components)] = rng.random(
        (n_restarts, n_components, n_seed_trials(n_components)))
    return u


def kmeans_plusplus_host(X, sample_weight, n_clusters: int, uniforms):
    """:func:`kmeans_plusplus` in NumPy on the host, for :mod:`bayesgmm.fitting`: the same
    ``uniforms (K, ≥ 2 + ⌊log K⌋)`` give the same seeds (up to round-off at near ties).

    Seeding is K sequential steps over the seed rows; a compiled JAX version costs
    ~0.35 s of XLA compilation per process on a CPU, while NumPy runs a step in
    0.3-0.6 ms at 16384 x 8 rows (as fast as the compiled one). Computed in float64.

    Every product is an ``einsum`` (NumPy's own loops), not ``@``: OpenBLAS's threads
    spin for a while after each call and took the cores from the JAX programs that
    follow (measured, BIC sweep 1..20 on 1e5 x 8, 2-core CPU, warm: 3.11 s with
    ``@``, 2.70 s with ``einsum``, the same as ``@`` with ``OPENBLAS_NUM_THREADS=1``).

    Returns
    -------
    centers : ndarray of shape (n_clusters, D)
    """
    X = np.asarray(X, np.float64)
    w = np.asarray(sample_weight, np.float64)
    u = np.asarray(uniforms, np.float64)
    mean = np.einsum("n,nd->d", w, X) / np.sum(w)
    Xc = X - mean  # distances are translation-invariant; centred, they stay accurate
    XcT = np.ascontiguousarray(Xc.T)  # (D, N): einsum's "dn" loops run 3x faster than "nd"
    sq = np.einsum("dn,dn->n", XcT, XcT)

    def sq_dist(rows):  # (len(rows), N)
        cross = np.einsum("dn,td->tn", XcT, Xc[rows])
        return np.maximum(sq[None, :] - 2 * cross + sq[rows][:, None], 0.0)

    def draw(u_row, mass):  # _draw_with
        cdf = np.cumsum(mass)
        idx = np.searchsorted(cdf, u_row * cdf[-1], side="right")
        return np.minimum(idx, mass.shape[0] - 1)

    first = draw(u[0, :1], w)[0]
    centers = np.broadcast_to(Xc[first], (n_clusters, X.shape[1])).copy()
    closest = sq_dist(first[None])[0]
    n_trials = n_seed_trials(n_clusters)
    for i in range(1, n_clusters):
        pot = np.maximum(closest * w, 0.0)
        cand = draw(u[i, :n_trials], pot if np.sum(pot) > 0 else w)
        new_closest = np.minimum(closest[None, :], sq_dist(cand))  # (trials, N)
        best = np.argmin(np.einsum("tn,n->t", new_closest, w))
        centers[i] = Xc[cand[best]]
        closest = new_closest[best]
    return centers + mean


def params_from_centers(centers: Array, n_active, covariance_type: str) -> GMMParams:
    """Parameters whose hard assignment is the nearest centre: ``centers (..., K, D)``
    as means, equal weights on the first ``n_active`` components (0 on the padding) and
    identity covariances. EM started from them with ``hard_start=True``
    (:func:`bayesgmm.engines.jax.fit`) takes k-means' labels, then their M-step. The weights and
    covariances are NumPy arrays (eager JAX ops would each compile a program); the
    means are ``centers`` as given."""
    *batch, K, D = centers.shape
    dtype = np.dtype(centers.dtype)
    weights = np.broadcast_to((np.arange(K) < n_active).astype(dtype) / n_active, (*batch, K))
    ident = ops(covariance_type).identity(K, D, dtype)
    factor = np.broadcast_to(ident, (*batch, *ident.shape))
    return GMMParams(weights, centers, factor, covariance_type)


def params_from_inits(n_restarts: int, covariance_type: str, *, weights=None, means=None,
                      precisions=None, base: GMMParams | None = None) -> GMMParams:
    """``(R,)``-batched starting parameters at K components from scikit-learn-form
    ``weights_init (K,)``, ``means_init (K, D)`` and ``precisions_init`` (checked by
    :mod:`bayesgmm.validation`); the parts not given come from ``base`` (NumPy,
    ``(R,)``-batched, K components: an initialisation method's). With all three given
    nothing else is needed, as in scikit-learn, which then estimates nothing. Every
    restart starts from the same given values."""
    R = n_restarts
    w = base.weights if weights is None else np.broadcast_to(weights, (R, *np.shape(weights)))
    m = base.means if means is None else np.broadcast_to(means, (R, *np.shape(means)))
    if precisions is None:
        return GMMParams(w, m, base.cov_factor, covariance_type)
    factor = GMMParams.from_sklearn(w[0], m[0], covariance_type=covariance_type,
                                    precisions=precisions).cov_factor
    return GMMParams(w, m, np.broadcast_to(factor, (R, *np.shape(factor))), covariance_type)


# ---- model-based hierarchical agglomeration (hc): NumPy on the host ------------------


class HCTree(NamedTuple):
    """One merge tree for every K (:func:`hc_tree`); :func:`hc_partition` cuts it.

    G groups start the tree, one per row hc ran on (duplicates too, as in mclust's
    ``mclustBIC``); merge s joins two of them, numbered 0..G-1, into the lower
    number."""

    rows: np.ndarray  # (M,) int64: the rows of X the tree was grown on (all, or a subsample)
    groups: np.ndarray  # (M,) int64: each of those rows' starting group, 0..G-1
    merges: np.ndarray  # (G - 1, 2) int64: (kept, absorbed) group numbers, kept < absorbed
    costs: np.ndarray  # (G - 1,) float64: the criterion's increase at each merge


def collapsed(params: GMMParams, nk, reg_covar: float) -> bool:
    """Whether a fit has collapsed: a component's covariance is ``reg_covar``'s in some
    direction (its variance there is at most :data:`COLLAPSE_FLOOR` times
    ``reg_covar``: EM took the component onto points with no spread in that direction,
    and only ``reg_covar`` keeps its likelihood finite; mclust reports such a fit as
    singular), where either

    * the component holds fewer rows than :func:`min_component_rows` (by effective
      count ``nk (K,)``, within half a row), or
    * the mixture as a whole spreads along that direction (its variance there is more
      than :data:`COLLAPSE_SPREAD` times the floor): rows enough, but on a lower-
      dimensional set. Two cases the count misses: identical values (``acidity``,
      155 rows of 138 distinct values, a V component on 2-3 equal values), and a
      shared orientation that EM turns onto a component's flat directions (VVE on
      ``swiss``, 47 x 6, K = 4: a component of 3 rows with three variances at
      ``reg_covar``, its log-likelihood growing as ``reg_covar`` shrinks). Collinear
      data (the whole mixture flat in a direction) is not a collapse.

    The floor alone is not enough: where the volume is shared (mclust's E·· models)
    a component's determinant cannot shrink on its own, its likelihood stays
    bounded, and a component of one or two rows is a genuine optimum (``diabetes``,
    EVE with K = 8: a component of 1.37 rows whose smallest variance is 14, at
    log-likelihood -2273.48, above both mclust's -2277.65, which stops earlier, and
    the k-means start's -2285.56); it is above the floor, so not flagged. Components
    that did collapse sit at ``reg_covar`` (1e-6 on 300 blobs at K = 18, against 4e-3
    and more for the others).

    Parameters
    ----------
    params : GMMParams
        Batch shape ``()``, K components or more (padding beyond ``len(nk)``).
    nk : array of shape (K,)
    reg_covar : float
    """
    nk = np.asarray(nk, np.float64)
    p = take_components(params.to_numpy(), nk.shape[0]).to_numpy(np.float64)
    return bool(collapsed_members(p, nk, float(reg_covar), NUMPY))


def hc_tree(X, sample_weight=None, *, max_rows: int | None = None, rng=None,
            transform: str | None = "svd", alpha: float = 1.0,
            beta: float = 1.0) -> HCTree:
    """Model-based hierarchical agglomeration (Fraley 1998; mclust's ``hc``, model VVV
    for D > 1 and V for D = 1, ``use = "SVD"``).

    Starting from one group per row, each step merges the two groups whose union
    least increases the criterion

        Σ_k n_k log( |W_k / n_k| + β (tr W_k + α) / n_k )        (D > 1, VVV)
        Σ_k n_k log( (W_k + α) / n_k )                           (D = 1, V)

    where n_k is group k's (weighted) size and W_k its scatter matrix Σ w (x - x̄_k)(x -
    x̄_k)ᵀ: minus twice the classification log-likelihood of the unconstrained model
    up to constants, regularised as mclust does so that groups of at most D rows (whose
    W_k is singular; then |W_k| is exactly 0) compare by their trace. ``α`` is
    ``alpha`` times the mean per-feature variance of the (transformed) rows for VVV, and
    ``eps`` times it for V (mclust's). One tree serves every K, so the partitions of a
    sweep are nested, and the tree is deterministic: the same rows give the same tree.

    Ties are broken as mclust breaks them, so that the tree is mclust's merge for merge
    (checked against ``hc(X, "VVV", use = "SVD")``: all 271 merges on Old Faithful, all
    144 on ``diabetes``): the groups sit in slots, first the rows in their order; of
    the pairs of least cost the one whose higher slot is highest wins, then the one
    whose lower slot is highest (mclust scans its packed triangle of costs and keeps
    the last minimum); the union takes the lower slot, and the group in the last slot
    moves into the freed one. Exact ties are common where data are rounded (Old
    Faithful's waiting times are whole minutes: its duplicate rows, and pairs the same
    distance apart), and each choice leads to another tree: the first of the tied
    pairs, and duplicates merged before the agglomeration (mclust's ``dupPartition``,
    which ``mclustBIC`` does not pass on), cut Old Faithful at K = 4..9 into partitions
    of adjusted Rand index 0.48-0.65 to mclust's, from which EM stopped short of
    mclust's optimum in five (model, K) of 126.

    Cost: O(M²) memory and about M² D³ work for M rows. Above ``max_rows`` rows (with
    positive weight) it grows on ``max_rows`` of them drawn by ``rng`` (mclust draws
    2000); the other rows take their component from EM's first E-step, as in mclust.
    By default every row up to :data:`HC_ALL_ROWS` (mclust's 2000: there the tree is
    mclust's), and :data:`HC_MAX_ROWS` drawn above. Measured on one core (CPU time, 5-D):
    1,000 rows 0.26 s, 2,000 rows 1.0 s.

    Parameters
    ----------
    X : array-like of shape (N, D)
    sample_weight : array-like of shape (N,), optional
        Rows of weight 0 take no part; weights count as multiplicities.
    max_rows : int, optional
        Default: every row up to :data:`HC_ALL_ROWS`, else :data:`HC_MAX_ROWS`
        (:func:`tree_rows`).
    rng : numpy.random.Generator, optional
        Draws the subsample (default: ``default_rng(0)``).
    transform : {"svd", None}
        ``"svd"`` (mclust's default ``hcUse``): standardise each feature, rotate onto the
        principal axes and scale axis i by ``1/√s_i`` (``s`` the singular values), so
        the tree does not depend on the features' units. ``None``: the rows as given.
    alpha, beta : float
        mclust's regularisation (both 1 by default).

    Returns
    -------
    HCTree
    """
    X = np.asarray(X, np.float64)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    rows = np.flatnonzero(w > 0)
    max_rows = tree_rows(len(rows)) if max_rows is None else int(max_rows)
    if len(rows) > max_rows:
        rng = np.random.default_rng(0) if rng is None else rng
        rows = np.sort(rng.choice(rows, max_rows, replace=False))
    Z, wz = X[rows], w[rows]
    if transform == "svd":
        Z = _svd_transform(Z, wz)
    elif transform is not None:
        raise ValueError(f"transform should be 'svd' or None, got {transform!r}")
    # every row starts its own group, duplicates too (mclustBIC's tree: see above)
    merges, costs = _agglomerate(Z, wz, alpha, beta, _hc_scale(Z, wz))
    return HCTree(rows.astype(np.int64), np.arange(len(rows), dtype=np.int64), merges,
                  costs)


def hc_partition(tree: HCTree, n_clusters: int) -> np.ndarray:
    """The tree cut at ``n_clusters`` groups: each of ``tree.rows``' label in
    0..n_clusters-1 (numbered in order of their lowest starting group), shape (M,).
    With fewer starting groups than ``n_clusters`` (fewer rows), every group is its
    own cluster and the labels stop short of ``n_clusters``."""
    G = len(tree.merges) + 1
    merges = tree.merges[:max(G - int(n_clusters), 0)]
    # each group is absorbed at most once, into a lower number: the merges are a forest
    # whose roots (each cluster's lowest group) label the cut; pointer jumping finds
    # them in O(G log G) array operations (the loop over merges cost O(G²): 4 ms a cut
    # on Old Faithful, 8 cuts per model of a search)
    root = np.arange(G)
    root[merges[:, 1]] = merges[:, 0]
    while True:
        up = root[root]
        if np.array_equal(up, root):
            break
        root = up
    return np.unique(root, return_inverse=True)[1].reshape(-1)[tree.groups]


def quantile_classes(x, n_classes: int) -> np.ndarray:
    """mclust's ``qclass``: ``x (M,)`` cut into ``n_classes`` intervals between its
    quantiles (R's type 7, NumPy's default), labels 0..n_classes-1. Where repeated
    values make quantiles coincide, more are taken until ``n_classes + 1`` distinct
    ones remain, then the left ends of the narrowest gaps are dropped. mclust starts
    EM on one feature from these classes, not from its tree (``mclustBIC`` with
    ``d == 1``); :func:`hc_params` does the same."""
    x = np.asarray(x, np.float64).reshape(-1)
    k = int(n_classes)
    eps = np.std(x, ddof=1) * np.sqrt(np.finfo(np.float64).eps) if x.size > 1 else 0.0
    n, q = k, np.array([])
    while q.size < k + 1 and n <= x.size + k + 1:
        n += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n)))
    if q.size < k + 1:  # fewer distinct values than classes
        return np.unique(x, return_inverse=True)[1].reshape(-1)
    if q.size > k + 1:
        drop = np.argsort(np.diff(q), kind="stable")[:q.size - k - 1]
        q = np.delete(q, drop)
    q[0], q[-1] = x.min() - eps, x.max() + eps
    return np.clip(np.searchsorted(q, x, side="right") - 1, 0, k - 1)


def _cut(Xs: np.ndarray, tree: HCTree, n_components: int) -> np.ndarray:
    """The starting partition of ``tree.rows`` (``Xs``) into ``n_components`` groups:
    the tree's cut, or on one feature mclust's quantile classes
    (:func:`quantile_classes`)."""
    if Xs.shape[1] == 1:
        return quantile_classes(Xs[:, 0], n_components)
    return hc_partition(tree, n_components)


def hc_params(X, sample_weight, tree: HCTree, n_components: int, covariance_type: str,
              reg_covar: float, *, prior=None, equal_weights: bool = False) -> GMMParams:
    """Starting parameters from the tree cut at ``n_components`` groups: the M-step of
    that partition of ``tree.rows`` (the same weighted M-step as EM's,
    :func:`bayesgmm.engines.mixture_m_step`, with its ``prior`` and ``equal_weights``
    where the fit has them), in X's dtype, batch shape ``()``. EM's first E-step then
    gives every row of X its responsibilities (mclust's ``me`` from
    ``unmap(hclass(...))``, whose first M-step is the MAP one with a prior, and its
    ``mstep`` on a subset then ``estep`` on all rows)."""
    from bayesgmm._xp import NUMPY
    from bayesgmm.covariance import moment_features, moment_sums
    from bayesgmm.engines import mixture_m_step

    if prior is None and not equal_weights:  # computed with the other K (hc_starts_batched)
        for (X0, w0, tree0, kind, reg), table in _HC_STARTS:
            if (X0 is X and w0 is sample_weight and tree0 is tree and kind == covariance_type
                    and reg == float(reg_covar) and int(n_components) in table):
                return table[int(n_components)]
    Xs = np.asarray(X, np.float64)[tree.rows]
    ws = (np.ones(len(Xs)) if sample_weight is None
          else np.asarray(sample_weight, np.float64)[tree.rows])
    labels = _cut(Xs, tree, n_components)
    center = ws @ Xs / ws.sum()
    T = moment_features(Xs, center, covariance_type, NUMPY)  # (M, F)
    S = np.zeros((n_components, T.shape[1]))
    np.add.at(S, labels, ws[:, None] * T)  # (K, F): Σ over each group's rows
    nk, sx, sxx = moment_sums(S, center, covariance_type, NUMPY)
    p = mixture_m_step(nk, sx, sxx, center, covariance_type=covariance_type,
                       reg_covar=reg_covar, xp=NUMPY, prior=prior,
                       equal_weights=bool(equal_weights))
    return p.to_numpy(np.result_type(np.asarray(X).dtype, np.float32))


def hc_params_many(X, sample_weight, tree: HCTree, ks, covariance_type: str,
                   reg_covar: float) -> list[GMMParams]:
    """:func:`hc_params` (no prior, free weights) for every K of ``ks`` from one
    batched M-step: the cuts' statistics stacked as members of shape (len(ks), max K,
    F), the missing components of each member empty (count ``10·eps``, no rows), and
    one ``factor_from_moments`` call over the batch (each member's pooled quantities
    pooled over its own components; the iterative M-steps of VEI, VEE, EVE, VVE and VEV
    iterate each member as far as it would go alone, and EVE's and VVE's cold starts of
    an empty component are EEE's, which it repeats). Equal to :func:`hc_params` per K
    to round-off (tested): an empty component adds ``10·eps`` times ``reg_covar`` to
    the pooled sums. Returns the parameters per K, in X's dtype, batch shape ``()``.
    Falls back to one :func:`hc_params` per K where a cut has fewer groups than its K
    (a tree of fewer rows)."""
    from bayesgmm._xp import NUMPY
    from bayesgmm.covariance import moment_features, moment_sums

    ks = [int(k) for k in ks]
    Xs = np.asarray(X, np.float64)[tree.rows]
    ws = (np.ones(len(Xs)) if sample_weight is None
          else np.asarray(sample_weight, np.float64)[tree.rows])
    labels = [_cut(Xs, tree, k) for k in ks]
    if not ks or any(len(np.unique(lab)) < k for lab, k in zip(labels, ks)):
        return [hc_params(X, sample_weight, tree, k, covariance_type, reg_covar)
                for k in ks]
    L, K = len(ks), max(ks)
    center = ws @ Xs / ws.sum()
    T = moment_features(Xs, center, covariance_type, NUMPY)  # (M, F)
    S = np.zeros((L, K, T.shape[1]))
    for i, lab in enumerate(labels):
        np.add.at(S[i], lab, ws[:, None] * T)  # (K, F): Σ over each group's rows
    nk, sx, sxx = moment_sums(S, center, covariance_type, NUMPY)
    active = np.arange(K) < np.asarray(ks)[:, None]  # (L, K) each member's own K
    eps = float(10 * np.finfo(np.float64).eps)  # mixture_m_step's
    counts = nk + eps
    mass = np.where(active, counts, 0.0)
    total = mass.sum(axis=-1)  # (L,) over each member's own components
    delta = sx / counts[..., None]  # (L, K, D) mean minus centre
    factor = ops(covariance_type, NUMPY).factor_from_moments(
        sxx, counts, delta, total, np.asarray(reg_covar, np.float64), None)
    batch = GMMParams(mass / total[:, None], center + delta, factor, covariance_type)
    dtype = np.result_type(np.asarray(X).dtype, np.float32)
    return [take_components(GMMParams(batch.weights[i], batch.means[i],
                                      batch.cov_factor[i], covariance_type), k).to_numpy(dtype)
            for i, k in enumerate(ks)]


@contextlib.contextmanager
def hc_starts_batched(X, sample_weight, tree: HCTree, ks, covariance_type: str,
                      reg_covar: float):
    """Within the block, :func:`hc_params` of these very ``X``, ``sample_weight`` and
    ``tree`` objects, ``covariance_type`` and ``reg_covar`` (no prior, free weights) at
    a K of ``ks`` returns :func:`hc_params_many`'s result, computed on entry: a model
    search's hierarchical starts of one model as one batched M-step instead of one per
    K (:func:`bayesgmm.fitting.fit_host_sweeps`)."""
    table = dict(zip((int(k) for k in ks),
                     hc_params_many(X, sample_weight, tree, ks, covariance_type, reg_covar)))
    _HC_STARTS.append(((X, sample_weight, tree, covariance_type, float(reg_covar)), table))
    try:
        yield
    finally:
        _HC_STARTS.pop()


#: (X, sample_weight, tree, covariance_type, reg_covar) -> {K: params} while a
#: :func:`hc_starts_batched` block runs.
_HC_STARTS: list = []


def tree_rows(n_rows: int) -> int:
    """How many of ``n_rows`` rows (of positive weight) the default tree grows on: all
    of them up to :data:`HC_ALL_ROWS` (mclust's ``subset``), else :data:`HC_MAX_ROWS`."""
    return int(n_rows) if n_rows <= HC_ALL_ROWS else HC_MAX_ROWS


def cached_hc_tree(X, sample_weight=None, *, max_rows: int | None = None,
                   rng=None) -> HCTree:
    """:func:`hc_tree` with the default settings, remembered for the last few data sets
    (keyed by a digest of the rows it grows on), so a sweep over K and covariance types,
    or a loop of fits on the same X, grows one tree.

    On one feature the starts are mclust's quantile classes, not the tree's cuts
    (:func:`hc_params`), so the tree is its rows alone, without merges: growing one
    cost 0.25 s of CPU on 1,000 rows (a third of acidity's 14-model search) for
    nothing."""
    X = np.asarray(X)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    live = np.flatnonzero(w > 0)
    rows = live
    max_rows = tree_rows(len(live)) if max_rows is None else int(max_rows)
    if len(live) > max_rows:
        rng = np.random.default_rng(0) if rng is None else rng
        rows = np.sort(rng.choice(live, max_rows, replace=False))
    digest = hashlib.blake2b(digest_size=16)
    for a in (np.ascontiguousarray(X[rows], np.float64), w[rows], rows):
        digest.update(np.ascontiguousarray(a).tobytes())
    key = (X.shape, digest.hexdigest())
    if key not in _HC_CACHE:
        if len(_HC_CACHE) >= 8:
            _HC_CACHE.pop(next(iter(_HC_CACHE)))
        sub = np.zeros(len(X))
        sub[rows] = w[rows]
        if X.shape[1] == 1:  # starts cut quantile classes (_cut): no merges needed
            # (one starting group: a cut of it is that one group, whatever the K)
            _HC_CACHE[key] = HCTree(rows, np.zeros(len(rows), np.int64),
                                    np.empty((0, 2), np.int64), np.empty(0))
        else:  # rows already drawn: grow on exactly them
            _HC_CACHE[key] = hc_tree(X, sub, max_rows=len(rows))
    return _HC_CACHE[key]


_HC_CACHE: dict = {}


def _svd_transform(Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"``: centre and scale each feature (sample standard
    deviation; constant features dropped), then ``Z V diag(1/√s)`` from the SVD ``Z = U
    diag(s) Vᵀ`` (directions with s ≈ 0 dropped). Weights count as repeated rows."""
    total = w.sum()
    Z = Z - w @ Z / total
    var = w @ (Z * Z) / (total - 1) if total > 1 else np.zeros(Z.shape[1])
    keep = var > 0
    if not keep.any():
        return Z[:, :1] * 0.0
    Z = Z[:, keep] / np.sqrt(var[keep])
    _, s, vt = np.linalg.svd(np.sqrt(w)[:, None] * Z, full_matrices=False)
    ok = s > s[0] * 1e-10
    return Z @ vt[ok].T / np.sqrt(s[ok])


def _hc_scale(Z: np.ndarray, w: np.ndarray) -> float:
    """The mean per-feature variance of the rows (1/(N D) · tr W, mclust's ``traceW(x /
    sqrt(n p))``; weights count as repeated rows), floored at machine epsilon."""
    Zc = Z - w @ Z / w.sum()
    return max(float(w @ np.sum(Zc * Zc, axis=1)) / (w.sum() * Z.shape[1]),
               np.finfo(np.float64).eps)


def _agglomerate(U: np.ndarray, n: np.ndarray, alpha: float, beta: float, scale: float):
    """The greedy merges of the G groups with means ``U (G, D)``, sizes ``n (G,)`` and
    zero scatter (single rows): ``(merges (G-1, 2), costs (G-1,))``, ties broken as
    mclust breaks them (:func:`hc_tree`).

    Keeps the (G, G) matrix of merge costs and, per group, its least cost and a partner
    at that cost; a merge recomputes one row of costs (the union's) and the partners
    of the rows that pointed at the two merged groups, so each step is O(G D³) rather
    than O(G²). Each group's slot (mclust's position of it) decides among exact ties;
    the union keeps the lower group number (its lowest row) and the lower slot."""
    G, D = U.shape
    univariate = D == 1
    a_reg = (np.finfo(np.float64).eps if univariate else alpha) * scale
    mean = U.astype(np.float64, copy=True)
    W = np.zeros((G, D, D))
    size = n.astype(np.float64)
    trace = np.zeros(G)
    term = _hc_term(size, trace, np.zeros(0, np.int64), None, a_reg, beta, univariate)
    alive = np.ones(G, bool)
    slot = np.arange(G)  # group -> slot
    owner = np.arange(G)  # slot -> group
    C = np.full((G, G), np.inf)
    for g in range(G - 1):  # row by row, O(G) memory for the temporaries
        C[g, g + 1:] = _merge_cost(g, np.arange(g + 1, G), size, mean, W, trace, term,
                                   a_reg, beta, univariate)[0]
    C = np.minimum(C, C.T)
    best = np.argmin(C, axis=1)
    best_cost = C[np.arange(G), best]
    merges = np.zeros((max(G - 1, 0), 2), np.int64)
    costs = np.zeros(max(G - 1, 0))
    for s in range(G - 1):
        a, b = _last_least_pair(C, best_cost, slot)
        merges[s], costs[s] = (a, b), C[a, b]
        # group a (the lower number) becomes the union, in the lower of the two slots;
        # the group in the last slot moves into the higher one
        low, high, last = min(slot[a], slot[b]), max(slot[a], slot[b]), G - 1 - s
        slot[a], owner[low] = low, a
        if high != last:
            moved = owner[last]
            slot[moved], owner[high] = high, moved
        _, n_ab, m_ab, tr_ab, t_ab, W_ab = _merge_cost(
            a, np.array([b]), size, mean, W, trace, term, a_reg, beta, univariate,
            with_scatter=True)
        size[a], mean[a], trace[a], term[a], W[a] = n_ab[0], m_ab[0], tr_ab[0], t_ab[0], W_ab[0]
        alive[b] = False
        C[b, :] = np.inf
        C[:, b] = np.inf
        best_cost[b] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != a]
        if others.size == 0:
            break
        new = _merge_cost(a, others, size, mean, W, trace, term, a_reg, beta, univariate)[0]
        C[a, others] = new
        C[others, a] = new
        best[a] = others[np.argmin(new)]
        best_cost[a] = C[a, best[a]]
        stale = (best[others] == a) | (best[others] == b)
        r = others[stale]
        if r.size:  # their cheapest partner changed or left: look again
            best[r] = np.argmin(C[r], axis=1)
            best_cost[r] = C[r, best[r]]
        r = others[~stale]
        cheaper = new[~stale] < best_cost[r]
        best[r[cheaper]] = a
        best_cost[r[cheaper]] = new[~stale][cheaper]
    return merges, costs


def _last_least_pair(C: np.ndarray, best_cost: np.ndarray, slot: np.ndarray):
    """The pair ``(a, b)``, ``a < b`` group numbers, of least merge cost in ``C (G,
    G)``; among exact ties the pair mclust's ``hc`` takes: the highest higher slot,
    then the highest lower slot (``slot (G,)``: each group's). ``best_cost (G,)``: each
    row's least cost."""
    least = best_cost[np.argmin(best_cost)]
    rows = np.flatnonzero(best_cost == least)
    if rows.size == 2 and C[rows[0], rows[1]] == least:  # the usual case: one pair
        return int(rows[0]), int(rows[1])
    pairs = np.array([(r, c) for r in rows for c in np.flatnonzero(C[r] == least) if r < c])
    hi = np.maximum(slot[pairs[:, 0]], slot[pairs[:, 1]])
    lo = np.minimum(slot[pairs[:, 0]], slot[pairs[:, 1]])
    a, b = pairs[np.lexsort((lo, hi))[-1]]
    return int(a), int(b)


def _merge_cost(a: int, others: np.ndarray, size, mean, W, trace, term, a_reg, beta,
                univariate, with_scatter: bool = False):
    """The criterion's increase from merging group ``a`` with each of ``others`` (R,),
    and the merged groups' size, mean, scatter trace and term; their scatter matrices
    too when ``with_scatter``. A scatter matrix is formed only where the merged group
    has more than D rows (below that only its trace enters the criterion)."""
    n_a, n_o = size[a], size[others]
    n_ab = n_a + n_o
    d = mean[others] - mean[a]  # (R, D)
    f = n_a * n_o / n_ab
    tr_ab = trace[a] + trace[others] + f * np.einsum("rd,rd->r", d, d)
    m_ab = mean[a] + (n_o / n_ab)[:, None] * d
    D = mean.shape[1]
    big = np.flatnonzero(n_ab > D) if not univariate else np.zeros(0, np.int64)
    if with_scatter or big.size:
        rows = np.arange(len(others)) if with_scatter else big
        W_ab = W[a] + W[others[rows]] + (f[rows, None, None] * d[rows, :, None]
                                         * d[rows, None, :])
        W_big = W_ab if not with_scatter else W_ab[big]
    else:
        W_ab = W_big = None
    t_ab = _hc_term(n_ab, tr_ab, big, W_big, a_reg, beta, univariate)
    return t_ab - term[a] - term[others], n_ab, m_ab, tr_ab, t_ab, W_ab


def _hc_term(n: np.ndarray, trace: np.ndarray, big: np.ndarray, W_big, a_reg: float,
             beta: float, univariate: bool) -> np.ndarray:
    """Each group's term of the criterion (:func:`hc_tree`) from its size ``n (R,)``
    and scatter trace, shape (R,); ``W_big`` holds the scatter matrices of the groups
    ``big`` with more than D rows (with at most D rows W is singular: |W| = 0
    exactly)."""
    if univariate:
        return n * np.log((trace + a_reg) / n)
    log_reg = np.log(beta * (trace + a_reg) / n)
    out = n * log_reg
    if big.size:
        nb = n[big]
        sign, logdet = np.linalg.slogdet(W_big / nb[:, None, None])
        logdet = np.where(sign > 0, logdet, -np.inf)
        out[big] = nb * np.logaddexp(logdet, log_reg[big])
    return out

# ---- the compiled half: JAX, imported where it runs ---------------------------------


def _sq_dist(X: Array, C: Array) -> Array:
    """(N, M) squared distances."""
    import jax.numpy as jnp

    return jnp.sum((X[:, None, :] - C[None, :, :]) ** 2, axis=-1)


def _nearest(X: Array, C: Array, active: Array) -> Array:
    """Index of the nearest active centre, (N,) int32, in matmul form:
    argmin_k |c_k|² - 2 x·c_k (|x|² is the same for every k). Callers centre X first, so
    the float32 products stay small."""
    import jax.numpy as jnp
    from bayesgmm.covariance import HIGHEST

    score = jnp.sum(C * C, axis=-1)[None, :] - 2 * jnp.matmul(X, C.T, precision=HIGHEST)
    return jnp.argmin(jnp.where(active[None, :], score, jnp.inf), axis=1).astype(jnp.int32)


def _nearest_one_hot(X: Array, seeds: Array, active: Array) -> Array:
    """(N, K) hard responsibilities: each sample to its nearest active seed (both
    shifted by the first seed, a data point, so float32 products stay small)."""
    import jax

    labels = _nearest(X - seeds[0], seeds - seeds[0], active)
    return jax.nn.one_hot(labels, seeds.shape[0], dtype=X.dtype)


def _draw_with(u: Array, mass: Array) -> Array:
    """Indices drawn with probability ∝ ``mass (N,)`` (non-negative, not all 0), one per
    uniform ``u (n,)`` in [0, 1), by inverse CDF: one cumulative sum and ``n`` binary
    searches, where ``jax.random.categorical`` would draw N Gumbel variates per index."""
    import jax.numpy as jnp

    cdf = jnp.cumsum(mass)
    idx = jnp.searchsorted(cdf, u.astype(mass.dtype) * cdf[-1], side="right")
    return jnp.minimum(idx, mass.shape[0] - 1).astype(jnp.int32)


def seeding_uniforms(key: PRNGKey, n_clusters: int) -> Array:
    """The uniforms k-means++ consumes, ``(K, 2 + ⌊log K⌋)``: row 0's first entry draws
    the first seed, row i the candidates for seed i. Row i is ``uniform(fold_in(key,
    i))``, so a row's leading entries do not depend on K (so not on padding)."""
    import jax
    import jax.numpy as jnp

    T = n_seed_trials(n_clusters)
    return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (T,)))(
        jnp.arange(n_clusters))


def kmeans_plusplus(
    key: PRNGKey, X: Array, sample_weight: Array, n_clusters: int, n_active=None,
    uniforms: Array | None = None,
) -> Array:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii; scikit-learn's greedy variant).

    Each new seed is the best of ``2 + ⌊log K⌋`` candidates drawn with probability
    ∝ w · D², the one that most reduces the weighted potential.

    Parameters
    ----------
    n_clusters : int
        Static number of rows of the result.
    n_active : int or traced int, optional
        Seeds beyond this many are left as copies of the first (padding).
    uniforms : array of shape (K, 2 + ⌊log K⌋), optional
        The draws to use (:func:`host_seeding_uniforms`); by default
        :func:`seeding_uniforms` of ``key``.

    Returns
    -------
    centers : array of shape (K, D)
    """
    import jax
    import jax.numpy as jnp

    N, D = X.shape
    u = seeding_uniforms(key, n_clusters) if uniforms is None else uniforms
    max_trials = u.shape[1]
    upper = jnp.asarray(n_clusters if n_active is None else n_active, jnp.int32)
    # Trials beyond 2 + ⌊log n_active⌋ are masked, and each seed has its own row of
    # uniforms, so the seeds do not depend on how far the components are padded.
    n_trials = 2 + jnp.floor(jnp.log(upper.astype(jnp.float32) + 1e-3)).astype(jnp.int32)
    first = _draw_with(u[0, :1], sample_weight)[0]
    centers = jnp.broadcast_to(X[first], (n_clusters, D))
    closest = jnp.sum((X - X[first]) ** 2, axis=-1)  # (N,)

    def body(i, carry):
        centers, closest = carry
        pot = jnp.maximum(closest * sample_weight, 0.0)
        # All-zero potential (duplicates): fall back to weights.
        mass = jnp.where(jnp.sum(pot) > 0, pot, sample_weight)
        cand = _draw_with(u[i], mass)
        d = _sq_dist(X, X[cand])  # (N, max_trials)
        new_closest = jnp.minimum(closest[:, None], d)
        potential = jnp.sum(new_closest * sample_weight[:, None], axis=0)
        potential = jnp.where(jnp.arange(max_trials, dtype=jnp.int32) < n_trials, potential,
                              jnp.inf)
        best = jnp.argmin(potential)
        return centers.at[i].set(X[cand[best]]), new_closest[:, best]

    centers, _ = jax.lax.fori_loop(1, upper, body, (centers, closest))
    return centers


def kmeans(
    key: PRNGKey, X: Array, sample_weight: Array, n_clusters: int, n_lloyd: int = 30,
    active: Array | None = None, tol: float = 1e-4, uniforms: Array | None = None,
) -> tuple[Array, Array]:
    """Weighted Lloyd's algorithm from k-means++ seeds, at most ``n_lloyd`` iterations.

    Stops early, like scikit-learn's ``KMeans``, once the centres move less than
    ``tol`` times the mean feature variance (squared, summed over centres).
    ``active (K,)`` masks padding clusters out (they get no samples). ``uniforms``:
    the seeding's draws, as in :func:`kmeans_plusplus`.

    Returns
    -------
    centers : array of shape (K, D)
    labels : array of shape (N,), int32
    """
    import jax.numpy as jnp
    from bayesgmm.density import data_center

    if active is None:
        active = jnp.ones(n_clusters, bool)
    mean = data_center(X, sample_weight)
    centers = kmeans_plusplus(key, X - mean, sample_weight, n_clusters,
                              jnp.sum(active, dtype=jnp.int32), uniforms)
    return lloyd(X, sample_weight, centers + mean, active, n_lloyd, tol)


def lloyd(X: Array, sample_weight: Array, centers: Array, active: Array | None = None,
          n_lloyd: int = 30, tol: float = 1e-4) -> tuple[Array, Array]:
    """Weighted Lloyd iterations from ``centers (K, D)``, at most ``n_lloyd``; see
    :func:`kmeans`. Returns the centres and each row's nearest one, ``(K, D), (N,)``."""
    import jax
    import jax.numpy as jnp
    from bayesgmm.covariance import HIGHEST

    n_clusters = centers.shape[0]
    if active is None:
        active = jnp.ones(n_clusters, bool)
    # Distances are translation-invariant: centre once so matmul-form distances are
    # accurate in float32 for data far from the origin.
    total = jnp.sum(sample_weight)
    mean = jnp.matmul(sample_weight, X, precision=HIGHEST) / total
    Xc = X - mean
    var = jnp.matmul(sample_weight, Xc * Xc, precision=HIGHEST) / total
    threshold = tol * jnp.mean(var)
    centers = centers - mean

    def update(centers):
        labels = _nearest(Xc, centers, active)
        # scatter-adds: 2x faster than a one-hot (N, K) matmul on CPU
        counts = jax.ops.segment_sum(sample_weight, labels, n_clusters)
        sums = jax.ops.segment_sum(Xc * sample_weight[:, None], labels, n_clusters)
        # An emptied cluster keeps its previous centre.
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    def cond(carry):
        i, _, shift = carry
        return (i < n_lloyd) & (shift > threshold)

    def body(carry):
        i, centers, _ = carry
        new = update(centers)
        return i + 1, new, jnp.sum((new - centers) ** 2)

    start = (jnp.asarray(0, jnp.int32), centers, jnp.asarray(jnp.inf, X.dtype))
    _, centers, _ = jax.lax.while_loop(cond, body, start)
    return centers + mean, _nearest(Xc, centers, active)


def init_resp(
    key: PRNGKey, X: Array, sample_weight: Array, n_components: int, method: str,
    active: Array | None = None, seed_rows: tuple[Array, Array] | None = None,
    uniforms: Array | None = None,
) -> Array:
    """Initial responsibilities (N, K) by ``method`` (one of :data:`INIT_METHODS`).

    Columns where ``active`` is False (padding) are exactly 0. The first columns do not
    depend on how far K is padded, so a padded fit equals the unpadded one.
    ``seed_rows = (X_s, w_s)``: for ``kmeans`` and ``k-means++``, the rows (typically
    a subsample of X) the centres are chosen from; each row of X then goes to its
    nearest centre. ``uniforms``: k-means++'s draws (:func:`host_seeding_uniforms`)
    instead of ``key``'s.
    """
    import jax
    import jax.numpy as jnp

    K = n_components
    dtype = X.dtype
    if active is None:
        active = jnp.ones(K, bool)
    Xs, ws = (X, sample_weight) if seed_rows is None else seed_rows
    if method == "kmeans":
        centers, labels = kmeans(key, Xs, ws, K, active=active, uniforms=uniforms)
        if seed_rows is not None:
            return _nearest_one_hot(X, centers, active)
        return jax.nn.one_hot(labels, K, dtype=dtype)
    if method == "k-means++":
        seeds = kmeans_plusplus(key, Xs, ws, K, jnp.sum(active, dtype=jnp.int32), uniforms)
        return _nearest_one_hot(X, seeds, active)
    if method == "random_from_data":
        # Gumbel top-k: K distinct rows with probability ∝ weight, without replacement.
        g = jax.random.gumbel(key, (X.shape[0],), dtype) + jnp.log(sample_weight)
        return _nearest_one_hot(X, X[jax.lax.top_k(g, K)[1]], active)
    if method == "random":
        # One key per column, so column k is the same whatever the padding.
        cols = jax.vmap(lambda k: jax.random.uniform(k, (X.shape[0],), dtype))(
            jax.random.split(key, K))
        r = cols.T * active.astype(dtype)
        return r / jnp.sum(r, axis=1, keepdims=True)
    raise ValueError(
        f"Unimplemented initialization method {method!r}; init_params should be one of "
        f"{COMPILED_INIT_METHODS} here (the compiled initialisations; 'hc' and 'auto' "
        "run on the host through bayesgmm.fitting.fit)"
    )


def init_params(
    key: PRNGKey,
    X: Array,
    n_components: int,
    covariance_type: str = "full",
    method: str = "kmeans",
    *,
    sample_weight: Array | None = None,
    reg_covar: float = 1e-6,
    n_active=None,
    seed_rows: tuple[Array, Array] | None = None,
    uniforms: Array | None = None,
) -> GMMParams:
    """Initial ``GMMParams`` from ``method``'s responsibilities via one M-step.

    vmap over ``key`` for restarts: ``jax.vmap(lambda k: init_params(k, X, K))(keys)``.
    With ``n_active < n_components`` (may be traced), the trailing components are
    padding: weight exactly 0 and identity covariance, inactive throughout EM.
    ``seed_rows``, ``uniforms``: see :func:`init_resp`.
    """
    import jax.numpy as jnp
    from bayesgmm.engines.jax import m_step
    from bayesgmm.suffstats import stats_from_resp

    K, D, dtype = n_components, X.shape[1], X.dtype
    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], dtype)
    active = jnp.arange(K, dtype=jnp.int32) < jnp.asarray(K if n_active is None else n_active,
                                                          jnp.int32)
    resp = init_resp(key, X, sample_weight, K, method, active, seed_rows, uniforms)
    stats = stats_from_resp(X, resp, sample_weight, covariance_type)
    template = GMMParams(active.astype(dtype), jnp.zeros((K, D), dtype),
                         ops(covariance_type).identity(K, D, dtype), covariance_type)
    return m_step(stats, covariance_type=covariance_type, reg_covar=reg_covar,
                  previous=template)


def _lloyd_batch(X, sample_weight, centers, n_active, batched):
    import jax
    import jax.numpy as jnp

    active = jnp.arange(centers.shape[-2], dtype=jnp.int32) < n_active
    one = lambda c: lloyd(X, sample_weight, c, active)[0]
    centers = centers.astype(X.dtype)
    return jax.vmap(one)(centers) if batched else jax.lax.map(one, centers)


@functools.cache
def _compiled_lloyd_batch():
    from bayesgmm.compilation import jit

    return jit(_lloyd_batch, static_argnames=("batched",))


def lloyd_batch(X: Array, sample_weight: Array, centers: Array, n_active=None,
                batched: bool | None = None) -> Array:
    """:func:`lloyd` over ``centers (R, K, D)``, one run per restart, jitted; the
    components beyond ``n_active`` (traced) are padding. Returns ``(R, K, D)``.

    ``batched`` (default: on an accelerator): ``vmap`` the runs; else run them in
    sequence in one program (``lax.map``). On a CPU, vmapped runs all iterate until the
    slowest stops and their ``segment_sum`` becomes a batched scatter (measured, 8
    restarts on 20,000 x 8 rows, K=16, 2-core CPU: 235 ms vmapped, ~90 ms in sequence;
    one run 11 ms)."""
    import jax

    n_active = centers.shape[-2] if n_active is None else n_active
    if batched is None:
        batched = jax.default_backend() != "cpu"
    return _compiled_lloyd_batch()(X, sample_weight, centers, n_active, batched=batched)


def _init_params_batch(keys, X, n_components, covariance_type, method, sample_weight,
                       reg_covar, n_active, seed_rows=None, uniforms=None):
    import jax

    one = lambda k, u: init_params(k, X, n_components, covariance_type, method,
                                   sample_weight=sample_weight, reg_covar=reg_covar,
                                   n_active=n_active, seed_rows=seed_rows, uniforms=u)
    return jax.vmap(one, in_axes=(0, None if uniforms is None else 0))(keys, uniforms)


@functools.cache
def _compiled_init_params_batch():
    from bayesgmm.compilation import jit

    return jit(_init_params_batch,
               static_argnames=("n_components", "covariance_type", "method"))


def init_params_batch(
    keys: Array,
    X: Array,
    n_components: int,
    covariance_type: str = "full",
    method: str = "kmeans",
    *,
    sample_weight: Array | None = None,
    reg_covar: float = 1e-6,
    n_active: int | None = None,
    seed_rows: tuple[Array, Array] | None = None,
    uniforms: Array | None = None,
) -> GMMParams:
    """:func:`init_params` vmapped over ``keys (R, 2)``: batch shape ``(R,)``, jitted.

    ``n_active`` (traced, so any value reuses the program) pads components beyond it.
    ``seed_rows``: see :func:`init_resp`; every restart seeds on the same rows.
    ``uniforms (R, K, T)``: each restart's k-means++ draws
    (:func:`host_seeding_uniforms`), for ``kmeans`` and ``k-means++``."""
    import jax.numpy as jnp

    if sample_weight is None:
        sample_weight = jnp.ones(X.shape[0], X.dtype)
    n_active = n_components if n_active is None else n_active
    if uniforms is not None:
        uniforms = jnp.asarray(uniforms, X.dtype)
    return _compiled_init_params_batch()(keys, X, n_components, covariance_type, method,
                                         sample_weight, reg_covar, n_active, seed_rows,
                                         uniforms)
