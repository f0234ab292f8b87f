"""Model-based hierarchical agglomeration (bayesgmm.initialize.hc_tree): the merge
criterion and mclust's tie-breaking against a brute-force agglomeration of the
classification likelihood, recovery of well-separated clusters, nesting, determinism,
the subsample path, duplicates and weights."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score as ari

from bayesgmm import GaussianMixture
from bayesgmm.initialize import (cached_hc_tree, hc_params, hc_partition, hc_tree,
                                 min_component_rows)


def _criterion(X, labels, alpha, univariate=False):
    """Σ_k n_k log(|W_k / n_k| + (tr W_k + α) / n_k) (VVV; V in one dimension),
    each group's scatter computed directly from its rows (:func:`_weighted_criterion`
    with unit weights)."""
    groups = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    return _weighted_criterion(X, np.ones(len(X)), groups, alpha, univariate)


def _weighted_criterion(X, w, groups, alpha, univariate=False):
    """:func:`_criterion` with weights as multiplicities: a group of rows ``groups``
    has size Σ w and scatter Σ w (x - x̄)(x - x̄)ᵀ, computed from scratch."""
    total = 0.0
    for rows in groups:
        Y, v = X[rows], w[rows]
        n = v.sum()
        Yc = Y - v @ Y / n
        W = (v[:, None] * Yc).T @ Yc
        if univariate:
            total += n * np.log((W[0, 0] + alpha) / n)
        else:
            det = np.linalg.det(W / n) if n > X.shape[1] else 0.0
            total += n * np.log(det + (np.trace(W) + alpha) / n)
    return total


def _brute_force_tree(X, w, alpha, univariate=False):
    """mclust's agglomeration (Fraley 1998) spelled out: groups sit in slots, first
    the rows in their order; every pair's merge cost is evaluated from scratch; of
    the pairs of least cost (equal within 1e-12, round-off of the from-scratch sums)
    mclust's Fortran keeps the last in its scan of the packed triangle (higher slot
    outer, lower slot inner): the highest higher slot, then the highest lower slot.
    The union takes the lower slot and the group in the last slot moves into the
    higher one. Returns the merges as (lowest row, lowest row) pairs and the costs."""
    slots = [[r] for r in range(len(X))]
    crit = lambda groups: _weighted_criterion(X, w, groups, alpha, univariate)  # noqa: E731
    merges, costs = [], []
    while len(slots) > 1:
        base = crit(slots)
        delta = {(i, j): crit([g for s, g in enumerate(slots) if s not in (i, j)]
                              + [slots[i] + slots[j]]) - base
                 for j in range(1, len(slots)) for i in range(j)}
        least = min(delta.values())
        tied = [p for p, v in delta.items() if v <= least + 1e-12 * max(1.0, abs(least))]
        i, j = max(tied, key=lambda p: (p[1], p[0]))
        merges.append((min(slots[i]), min(slots[j])))
        costs.append(delta[i, j])
        slots[i] = slots[i] + slots[j]
        last = slots.pop()
        if j < len(slots):
            slots[j] = last
    return merges, np.array(costs)


def _tree_pairs(tree):
    """A tree's merges as (lowest row, lowest row) of the two groups (its row numbers
    in the data: what mclust's ``hc`` reports, 0-based)."""
    return [tuple(sorted(tree.rows[[a, b]])) for a, b in tree.merges]


def _separated(n_per=60, d=3, seed=0):
    """Four clusters at the vertices of a simplex (a square's corners in 2-D), 10 units
    apart, with random covariances of scale ~0.3: ~30 standard deviations apart."""
    rng = np.random.default_rng(seed)
    centers = (np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]) if d == 2
               else 10.0 * np.eye(4)[:, :d])
    y = np.repeat(np.arange(4), n_per)
    A = rng.normal(size=(4, d, d)) * 0.1 + 0.2 * np.eye(d)
    X = centers[y] + np.einsum("nij,nj->ni", A[y], rng.normal(size=(len(y), d)))
    return X, y


@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_merge_is_the_cheapest_by_brute_force(d):
    """On 11 rows, each merge of the tree is the pair (of all current groups) whose
    union least increases the criterion, evaluated from scratch for every pair, and
    the recorded cost is that increase."""
    rng = np.random.default_rng(d)
    X = rng.normal(size=(11, d)) * [1.0, 3.0, 0.5][:d]
    tree = hc_tree(X, transform=None)
    Xg = X[np.argsort(tree.groups)]  # row of each starting group (all rows distinct here)
    assert sorted(tree.groups) == list(range(11))
    if d == 1:
        alpha = np.finfo(float).eps * np.mean((X - X.mean()) ** 2)
    else:
        alpha = np.sum((X - X.mean(0)) ** 2) / X.size
    crit = lambda lab: _criterion(Xg, lab, alpha, univariate=d == 1)  # noqa: E731
    label = np.arange(11)
    for (a, b), cost in zip(tree.merges, tree.costs):
        current = crit(label)
        deltas = {(i, j): crit(np.where(label == j, i, label)) - current
                  for i, j in itertools.combinations(np.unique(label), 2)}
        assert cost == pytest.approx(min(deltas.values()), rel=1e-9, abs=1e-9)
        assert deltas[a, b] == pytest.approx(cost, rel=1e-9, abs=1e-9)
        label = np.where(label == b, a, label)
    assert len(np.unique(label)) == 1
    merges, costs = _brute_force_tree(X, np.ones(11), alpha, univariate=d == 1)
    assert _tree_pairs(tree) == [tuple(sorted(m)) for m in merges]
    np.testing.assert_allclose(tree.costs, costs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", [1, 2])
def test_ties_are_broken_as_mclust_breaks_them(d):
    """Rows on an integer lattice, with duplicates, tie exactly (equal differences
    give equal costs, duplicates the least cost of all): the tree is the brute-force
    agglomeration with mclust's slots, merge for merge, not the first of the tied
    pairs. (With its own rule for ties, and duplicates merged beforehand, the tree cut
    Old Faithful, whose waiting times are whole minutes, at K = 4..9 into partitions
    of adjusted Rand index 0.48-0.65 to mclust's; with mclust's rule it is mclust's
    tree, all 271 merges, and EM from it reaches mclust's optimum in every model and
    K, benchmarks/mclust.py.)"""
    rng = np.random.default_rng(7 + d)
    X = rng.integers(0, 4, (14, d)).astype(float)
    X[[3, 9]] = X[0]  # a triplicate
    X[12] = X[5]
    tree = hc_tree(X, transform=None)
    assert sorted(tree.groups) == list(range(14))  # duplicates start apart, as in mclust
    alpha = (np.finfo(float).eps * np.mean((X - X.mean()) ** 2) if d == 1
             else np.sum((X - X.mean(0)) ** 2) / X.size)
    merges, costs = _brute_force_tree(X, np.ones(14), alpha, univariate=d == 1)
    costs_tied = np.sum(np.isclose(costs[:, None], costs[None, :], rtol=1e-12, atol=0)) - 13
    assert costs_tied > 0  # the data have ties to break
    assert _tree_pairs(tree) == [tuple(sorted(m)) for m in merges]
    np.testing.assert_allclose(tree.costs, costs, rtol=1e-9, atol=1e-9)
    # the first of the tied pairs would have merged the first duplicates first
    assert _tree_pairs(tree)[0] != (0, 3)


@pytest.mark.parametrize("d", [2, 3])
def test_well_separated_clusters_are_the_four_group_cut(d):
    X, y = _separated(d=d)
    tree = hc_tree(X)
    assert ari(y, hc_partition(tree, 4)) == 1.0


def test_partitions_are_nested_across_k():
    """Every cluster of the cut at K lies inside one cluster of the cut at K - 1."""
    X, _ = _separated(n_per=40)
    tree = hc_tree(X)
    previous = hc_partition(tree, 1)
    assert np.all(previous == 0)
    for k in range(2, 30):
        labels = hc_partition(tree, k)
        assert len(np.unique(labels)) == k
        for c in range(k):
            assert len(np.unique(previous[labels == c])) == 1
        previous = labels


def test_tree_is_deterministic_and_units_free():
    """The same rows give the same tree, and the default SVD transform makes it
    independent of each feature's units and origin."""
    X, _ = _separated(n_per=30)
    a, b = hc_tree(X), hc_tree(X.copy())
    np.testing.assert_array_equal(a.merges, b.merges)
    np.testing.assert_array_equal(a.costs, b.costs)
    c = hc_tree(X * [100.0, 0.01, 3.0] + [5.0, -7.0, 1e3])
    for k in (2, 3, 4, 7):
        np.testing.assert_array_equal(hc_partition(a, k), hc_partition(c, k))


def test_duplicate_rows_start_apart_and_merge_first():
    """Exact duplicates start as groups of their own (mclust's ``mclustBIC`` grows its
    tree from single rows: ``hc`` does not pass its ``dupPartition`` on). Two single
    rows cost 2 log((tr W + α) / 2α) >= -2 log 2 to merge, with equality only for
    copies: the first merge joins two copies (the last such pair in mclust's order),
    and the copies share their original's label at the coarser cuts."""
    X, _ = _separated(n_per=20)
    X = np.concatenate([X, X[:5], X[:3]])  # rows 80-84 copy 0-4, rows 85-87 copy 0-2
    tree = hc_tree(X)
    assert len(tree.merges) == 88 - 1
    assert _tree_pairs(tree)[0] == (82, 87)  # copies of row 2: of the tied pairs of copies
    # the one with the highest higher slot (87), then the highest lower slot (82)
    assert tree.costs[0] == pytest.approx(-2 * np.log(2), rel=1e-12)
    for k in (2, 5, 40):
        labels = hc_partition(tree, k)
        np.testing.assert_array_equal(labels[80:85], labels[:5])
        np.testing.assert_array_equal(labels[85:], labels[:3])


def test_subsample_path_grows_on_max_rows_and_em_places_the_rest():
    """Above max_rows the tree grows on that many rows; init_params='hc' then gives
    every row (in the subsample or not) its generating cluster."""
    X, y = _separated(n_per=400, d=2, seed=3)
    tree = hc_tree(X, max_rows=300, rng=np.random.default_rng(0))
    assert len(tree.rows) == 300 and len(np.unique(tree.rows)) == 300
    assert ari(y[tree.rows], hc_partition(tree, 4)) >= 0.98  # an outlier may stray
    import bayesgmm.initialize as init

    before = init.HC_ALL_ROWS, init.HC_MAX_ROWS
    try:
        init.HC_ALL_ROWS = init.HC_MAX_ROWS = 300
        init._HC_CACHE.clear()
        gm = GaussianMixture(4, init_params="hc", random_state=0).fit(X)
        (grown,) = init._HC_CACHE.values()
        assert len(grown.rows) == 300  # the estimator's tree grew on the subsample
    finally:
        init.HC_ALL_ROWS, init.HC_MAX_ROWS = before
        init._HC_CACHE.clear()
    assert ari(y, gm.predict(X)) == 1.0


def test_cached_tree_equals_a_fresh_one():
    X, _ = _separated(n_per=25)
    fresh = hc_tree(X)
    cached = cached_hc_tree(X)
    assert cached_hc_tree(X) is cached
    np.testing.assert_array_equal(cached.merges, fresh.merges)
    np.testing.assert_array_equal(cached.rows, fresh.rows)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_hc_params_are_the_m_step_of_the_cut(ct):
    """The start is the closed-form M-step of the partition: group fractions, group
    means, and (for full) each group's biased covariance plus reg_covar."""
    X, _ = _separated(n_per=50, d=2)
    tree = hc_tree(X)
    labels = hc_partition(tree, 4)
    p = hc_params(X, None, tree, 4, ct, 1e-6)
    np.testing.assert_allclose(p.weights, np.bincount(labels) / len(X), rtol=1e-12)
    means = np.stack([X[labels == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(p.means, means, rtol=1e-10)
    if ct == "full":
        cov = np.stack([np.cov(X[labels == k].T, bias=True) + 1e-6 * np.eye(2)
                        for k in range(4)])
        np.testing.assert_allclose(p.full_covariances, cov, rtol=1e-9)


def test_with_a_prior_the_start_is_the_map_m_step_of_the_cut():
    """With a prior EM starts, as mclust's ``me(z = unmap(hclass(...)))`` does, from
    the MAP M-step of the tree's partition: group fractions, and the conjugate
    posterior means (n_k x̄_k + κ μ₀) / (n_k + κ), not the group means (max_iter=0
    returns the start)."""
    from bayesgmm.covariance import default_prior

    X, _ = _separated(n_per=3, d=2)
    X = X[:10]  # small groups, where the prior moves the means visibly
    labels = hc_partition(hc_tree(X), 3)
    prior = default_prior(X, 3, "full")
    gm = GaussianMixture(3, init_params="hc", prior="default", max_iter=0,
                         random_state=0).fit(X)
    n = np.bincount(labels)
    xbar = np.stack([X[labels == k].mean(0) for k in range(3)])
    kappa, mu0 = prior.shrinkage, np.asarray(prior.mean)
    np.testing.assert_allclose(gm.weights_, n / len(X), rtol=1e-12)
    np.testing.assert_allclose(gm.means_, (n[:, None] * xbar + kappa * mu0) /
                               (n[:, None] + kappa), rtol=1e-10)
    assert np.max(np.abs(gm.means_ - xbar)) > 1e-6  # the prior moved them


def test_float32_data_gives_the_float64_partition():
    X, _ = _separated(n_per=50, d=2, seed=5)
    a = GaussianMixture(4, init_params="hc", random_state=0).fit(X)
    b = GaussianMixture(4, init_params="hc", random_state=0).fit(X.astype(np.float32))
    assert b.means_.dtype == np.float32
    np.testing.assert_array_equal(a.predict(X), b.predict(X.astype(np.float32)))
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-5)


def test_min_component_rows_follows_the_parameter_count():
    assert min_component_rows("tied", 3) == 1
    assert min_component_rows("spherical", 3) == 2
    assert min_component_rows("diag", 3) == 2
    assert min_component_rows("full", 3) == 4


def test_weights_are_group_sizes_and_zero_weights_take_no_part():
    """A row of weight m starts as a group of size m (m coincident rows, already
    merged): every merge is the brute-force agglomeration's with weighted sizes and
    scatters, and rows of weight 0 take no part."""
    X, _ = _separated(n_per=4, d=2, seed=2)
    w = np.random.default_rng(0).integers(0, 4, len(X)).astype(float)
    tree = hc_tree(X, w, transform=None)
    live = np.flatnonzero(w > 0)
    np.testing.assert_array_equal(tree.rows, live)
    Xl, wl = X[live], w[live]
    alpha = float(wl @ np.sum((Xl - wl @ Xl / wl.sum()) ** 2, axis=1)) / (wl.sum() * 2)
    merges, costs = _brute_force_tree(Xl, wl, alpha)
    assert [tuple(sorted(np.searchsorted(live, p))) for p in _tree_pairs(tree)] == [
        tuple(sorted(m)) for m in merges]
    np.testing.assert_allclose(tree.costs, costs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["hc", "auto"])
def test_host_and_compiled_engines_agree_from_the_tree(method):
    """The hierarchical start (and auto's choice beside k-means) gives the same fit on
    the host engine and compiled, padded or not."""
    rng = np.random.default_rng(4)  # three overlapping clusters in 3-D
    X = np.concatenate([rng.normal(0, 1, (80, 3)), rng.normal(2, 1.5, (80, 3)),
                        rng.normal([4, 0, -2], 0.7, (80, 3))])
    fits = {e: GaussianMixture(3, init_params=method, random_state=0, engine=e).fit(X)
            for e in ("numpy", "jax")}
    a, b = fits["numpy"], fits["jax"]
    assert a.n_iter_ == b.n_iter_
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8, atol=1e-10)
    assert b.n_padded_ > 3  # the compiled fit ran padded


def test_given_means_replace_the_trees():
    """init_params='hc' with means_init: the tree's weights and covariances, the given
    means (max_iter=0 returns the start itself, as scikit-learn does)."""
    X, _ = _separated(n_per=30, d=2)
    means = X[[0, 30, 60, 90]] + 0.5
    gm = GaussianMixture(4, init_params="hc", means_init=means, max_iter=0,
                         random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-12)
    tree = hc_tree(X)
    ref = hc_params(X, None, tree, 4, "full", 1e-6)
    np.testing.assert_allclose(gm.weights_, ref.weights, rtol=1e-12)


def test_hc_params_many_is_hc_params_per_k():
    """A model's hierarchical starts for every K from one batched M-step
    (hc_params_many; the missing components of the smaller K empty) are hc_params's
    for each K alone, for all 14 models (3-D: LAPACK's eigen-decompositions; EVE's and
    VVE's cold orientation starts at the components' own eigenvectors, so a padded
    component's start would be a different one), and fit_host_sweeps' block hands
    them to hc_params unchanged; outside it hc_params computes its own."""
    from bayesgmm.covariance import MCLUST_MODELS
    from bayesgmm.initialize import hc_params_many, hc_starts_batched

    X, _ = _separated(n_per=15, d=3, seed=1)
    tree = hc_tree(X)
    ks = [2, 4, 5, 7]
    for ct in MCLUST_MODELS:
        many = hc_params_many(X, None, tree, ks, ct, 1e-6)
        for k, p in zip(ks, many):
            one = hc_params(X, None, tree, k, ct, 1e-6)
            for a, b in zip((p.weights, p.means, p.cov_factor),
                            (one.weights, one.means, one.cov_factor)):
                assert a.shape == b.shape, ct
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{ct}, K={k}")
    # iris, VVE: its cold orientation runs its 50 steps, and at K = 8 an empty
    # component's own start (the identity) would win
    from sklearn.datasets import load_iris

    iris = load_iris().data
    iris_tree = hc_tree(iris)
    many = hc_params_many(iris, None, iris_tree, [8, 9], "VVE", 1e-6)
    for k, p in zip([8, 9], many):
        one = hc_params(iris, None, iris_tree, k, "VVE", 1e-6)
        np.testing.assert_allclose(p.full_covariances, one.full_covariances, rtol=1e-6,
                                   atol=1e-9, err_msg=f"iris VVE, K={k}")
    with hc_starts_batched(X, None, tree, ks, "VVE", 1e-6):
        inside = hc_params(X, None, tree, 4, "VVE", 1e-6)
        assert hc_params(X, None, tree, 4, "VVE", 1e-6) is inside  # the batch's
        assert hc_params(X, None, tree, 4, "EVE", 1e-6) is not inside
    assert hc_params(X, None, tree, 4, "VVE", 1e-6) is not inside


def test_quantile_classes_are_mclusts_qclass():
    """mclust starts EM on one feature from qclass's quantile intervals, not its tree.
    Expected labels from R 4.2.2, mclust 6.0.0 (``mclust:::qclass(y, k)``, minus 1), on
    data with repeated values (where quantiles coincide and the narrowest gaps go)."""
    from bayesgmm.initialize import quantile_classes

    y = np.array([1, 1, 1, 1, 2, 3, 3, 7, 7, 7, 7, 8.0])
    expected = {1: [0] * 12,
                2: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
                3: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2],
                4: [0, 0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3],
                5: [0, 0, 0, 0, 1, 2, 2, 4, 4, 4, 4, 4]}
    for k, labels in expected.items():
        np.testing.assert_array_equal(quantile_classes(y, k), labels)
    x = np.random.default_rng(0).normal(size=101)  # distinct values: equal-count classes
    np.testing.assert_array_equal(np.bincount(quantile_classes(x, 4)), [25, 25, 25, 26])


def test_one_feature_starts_from_quantile_classes():
    """On one feature the hierarchical start is the M-step of mclust's quantile
    classes: each component's mean is its interval's mean."""
    from bayesgmm.initialize import cached_hc_tree, hc_params, hc_params_many, quantile_classes

    x = np.random.default_rng(1).gamma(2.0, size=(80, 1))
    tree = cached_hc_tree(x)
    assert len(tree.merges) == 0 and len(tree.rows) == 80  # no merges grown for nothing
    for k in (2, 3, 5):
        labels = quantile_classes(x[:, 0], k)
        means = [x[labels == j, 0].mean() for j in range(k)]
        p = hc_params(x, None, tree, k, "V", 1e-6)
        np.testing.assert_allclose(np.sort(p.means[:, 0]), np.sort(means), rtol=1e-12)
        many = hc_params_many(x, None, tree, [k], "V", 1e-6)[0]
        np.testing.assert_allclose(np.sort(many.means[:, 0]), np.sort(means), rtol=1e-12)


def test_default_tree_takes_every_row_up_to_mclusts_subset():
    """mclust grows its tree on every row up to ``mclust.options("subset")`` (2000)
    rows, so there its starts are deterministic and ours must be the same: R's
    ``chevron`` (1,104 rows; mclust 6.0.0's ``mclustBIC``: EII,3 log-likelihood
    -10902.46, EII,9 -10686.13, EM from its tree's cuts). On a 1,000-row subsample the
    tree's cuts led EM to -10932.67 and -10745.74. Above 2000 rows the tree grows on
    HC_MAX_ROWS of them."""
    import pathlib

    import bayesgmm.initialize as init

    assert init.HC_ALL_ROWS == 2000
    rng = np.random.default_rng(0)
    assert len(hc_tree(rng.normal(size=(1500, 2))).rows) == 1500
    assert len(hc_tree(rng.normal(size=(2001, 2))).rows) == init.HC_MAX_ROWS
    X = np.loadtxt(pathlib.Path(__file__).parent / "data" / "chevron.csv", delimiter=",",
                   skiprows=1)
    assert X.shape == (1104, 2)
    for k, mclust in ((3, -10902.46), (9, -10686.13)):
        gm = GaussianMixture(k, covariance_type="EII", init_params="hc", tol=1e-5,
                             max_iter=1000, random_state=0).fit(X)
        assert gm.score(X) * len(X) >= mclust - 1e-5 * abs(mclust), k
