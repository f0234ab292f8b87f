"""Model selection: criteria against scikit-learn and closed forms; the seed workflow."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, in_scope
from sklearn.metrics import adjusted_rand_score as sk_ari
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.selection import SWEEP_DEFAULTS, aic, bic, icl, sweep


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_criteria_match_sklearn(datasets, ct):
    X = datasets["iris"]
    sk = SkGM(3, covariance_type=ct, random_state=0).fit(X)
    p = GMMParams.from_estimator(sk)
    with in_scope(np.float64):
        Xj = jnp.asarray(X)
        assert float(bic(p, Xj)) == pytest.approx(sk.bic(X), rel=1e-10)
        assert float(aic(p, Xj)) == pytest.approx(sk.aic(X), rel=1e-10)
        r = sk.predict_proba(X)
        entropy = -np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0))
        assert float(icl(p, Xj)) == pytest.approx(sk.bic(X) + 2 * entropy, rel=1e-9)


@pytest.mark.parametrize("chunk_size", [None, 37])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_membership_entropy_of_overlapping_clusters(dtype, chunk_size):
    """The entropy term of ICL, Σ_n H(r_n), against NumPy on scikit-learn's
    responsibilities, on overlapping clusters (entropy ~0.4 nats a row) and with the
    parameters padded by zero-weight components, which must add nothing; in one block
    and over 37-row chunks (the last one clamped)."""
    from bayesgmm.params import pad_components
    from bayesgmm.selection import criteria_terms

    rng = np.random.RandomState(7)
    X = np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(1.5, 1, (400, 2))]) + 50
    sk = SkGM(2, random_state=0).fit(X)
    r = sk.predict_proba(X)
    entropy = -np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0))
    assert entropy > 0.2 * len(X)
    with in_scope(dtype):
        p = pad_components(GMMParams.from_estimator(sk).astype(dtype), 5)
        ll, ent = criteria_terms(p, jnp.asarray(X, dtype), chunk_size=chunk_size)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    assert float(ent) == pytest.approx(entropy, rel=rtol)
    assert float(ll) == pytest.approx(sk.score(X) * len(X), rel=rtol)


def test_weighted_criteria_equal_repeated_rows(datasets):
    """Integer sample weights (zeros included) give the terms of the data with each row
    repeated that many times, over chunks and in one block."""
    from bayesgmm.selection import criteria_terms, log_likelihood

    X = datasets["iris"]
    p = GMMParams.from_estimator(SkGM(3, random_state=0).fit(X))
    w = np.random.RandomState(3).randint(0, 4, len(X))
    with in_scope(np.float64):
        ref = criteria_terms(p, jnp.asarray(np.repeat(X, w, axis=0)))
        for cs in (None, 16):
            got = criteria_terms(p, jnp.asarray(X), jnp.asarray(w, float), chunk_size=cs)
            np.testing.assert_allclose(got, ref, rtol=1e-12)
            ll = log_likelihood(p, jnp.asarray(X), jnp.asarray(w, float), chunk_size=cs)
            np.testing.assert_allclose(ll, ref[0], rtol=1e-12)


def test_seed_workflow_sweep_picks_four(blobs):
    """The tutorial: BIC/AIC over 1..20 full-covariance fits picks 4, and the fit at 4
    recovers the generating partition."""
    X, y, _ = blobs
    # the tutorial's fits stop at scikit-learn's tol=1e-3 (the sweep's own default,
    # 1e-5, runs them near convergence, where AIC prefers K=6 on these 300 points)
    table = sweep(X, range(1, 21), random_state=0, tol=1e-3, max_iter=100)
    assert list(table["n_components"]) == list(range(1, 21))
    assert table.best["n_components"] == 4
    assert int(table["n_components"][np.argmin(table["aic"])]) == 4
    gm = table.best["model"]
    labels = gm.predict(X)
    assert sk_ari(y, labels) >= 0.99
    np.testing.assert_allclose(gm.predict_proba(X).sum(1), 1.0, atol=1e-12)
    assert "<- best" in repr(table)


def test_sweep_over_covariance_types_and_icl(datasets):
    X = datasets["aniso"]
    # n_init=4: with one k-means start, K=3 lands in a local optimum for some seeds
    # (mean log-likelihood -2.93 instead of -2.50), which would test the seed, not ICL.
    table = sweep(X, range(2, 5), ("full", "spherical"), criterion="icl", random_state=0,
                  n_init=4)
    assert len(table["bic"]) == 6 and table["best"].sum() == 1
    assert table.best["covariance_type"] == "VVV"  # elongated clusters (full)
    assert table.best["n_components"] == 3
    assert np.all(table["icl"] >= table["bic"] - 1e-9)


def test_sweep_rejects_bad_criterion(blobs):
    with pytest.raises(ValueError, match="criterion"):
        sweep(blobs[0], [2], criterion="mdl")


def test_bic_equals_estimator_method(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    with in_scope(np.float64):
        assert float(bic(gm.params_, jnp.asarray(X))) == pytest.approx(gm.bic(X), rel=1e-12)


def test_sweep_equals_unpadded_fits(blobs, monkeypatch):
    """The sweep pads every K to the largest; each row must equal a plain fit at that K
    (K = 1 padded to 4; padding under several real components:
    test_tutorial_loop_shares_compiled_programs, K = 12 padded to 32)."""
    import bayesgmm.engines.choose as choose_mod

    X = blobs[0]
    table = sweep(X, [1, 4], ("full", "tied"), random_state=2, engine="jax")
    monkeypatch.setattr(choose_mod, "PAD_BELOW_WORK", 0)  # no padding at all
    for i, (k, ct) in enumerate(zip(table["n_components"], table["covariance_type"])):
        gm = GaussianMixture(int(k), covariance_type=str(ct), random_state=2,
                             engine="jax", **SWEEP_DEFAULTS).fit(X)
        assert gm.n_padded_ == k
        assert table["bic"][i] == pytest.approx(gm.bic(X), rel=1e-12)
        assert table["icl"][i] == pytest.approx(gm.icl(X), rel=1e-10)
        assert table["n_iter"][i] == gm.n_iter_


def test_tutorial_loop_shares_compiled_programs(monkeypatch):
    """The tutorial's loop ``[GaussianMixture(k).fit(X) for k in ...]`` on 20,000 rows in
    8-D: K = 3..32 are padded to 32 (the padding's work stays within budget there) and
    reuse one EM program (each K compiled its own, about 2 s apiece, when padding
    stopped at small N·K·D; each power of two its own, when padding stopped at the next
    one), and each padded fit equals the unpadded one. On 10^6 rows K=5 is not padded."""
    import bayesgmm.engines.choose as choose_mod
    from bayesgmm.engines import jax as em

    rng = np.random.default_rng(0)
    X = rng.normal(0, 3, (6, 8))[rng.integers(0, 6, 20_000)] + rng.normal(size=(20_000, 8))
    fits = {k: GaussianMixture(k, random_state=0, max_iter=5).fit(X) for k in (3, 12)}
    assert {gm.n_padded_ for gm in fits.values()} == {32}
    before = em._fit_restarts_jit._cache_size()
    GaussianMixture(20, random_state=0, max_iter=5).fit(X)
    assert em._fit_restarts_jit._cache_size() == before
    fit_padded = lambda k, n, d: choose_mod.choose("fit", "jax", n, k, d, "full").n_padded  # noqa: E731
    assert fit_padded(5, 10**6, 8) == 5 and fit_padded(3, 10**6, 8) == 4
    assert fit_padded(40, 300, 2) == 64
    monkeypatch.setattr(choose_mod, "PAD_BELOW_WORK", 0)  # no padding at all
    plain = GaussianMixture(12, random_state=0, max_iter=5).fit(X)
    assert plain.n_padded_ == 12
    assert fits[12].lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(fits[12].means_, plain.means_, rtol=1e-8, atol=1e-8)


def test_old_faithful_search_picks_mclusts_model():
    """mclust 6.0.0 on Old Faithful (R: ``summary(mclustBIC(faithful, G=1:9,
    modelNames=c("EEE","VVV","VVI","VII")))``, external values): best EEE (tied) K=3
    at BIC -2314.32, then VVV (full) K=2 (7.88 worse) and EEE K=2 (10.90 worse);
    mclust's BIC is minus ours."""
    from bayesgmm.datasets import load_faithful

    table = sweep(load_faithful().X, range(1, 10), ("full", "tied", "diag", "spherical"),
                  random_state=0)
    top = table.top(3)
    assert [(m.covariance_type, m.n_components) for m in top] == [
        ("EEE", 3), ("VVV", 2), ("EEE", 2)]
    assert top[0].value == pytest.approx(2314.32, abs=0.05)
    assert top[0].delta == 0.0
    assert [m.delta for m in top[1:]] == pytest.approx([7.88, 10.90], abs=0.05)
    assert table.bic_choice == top[0]
    assert (table.best["covariance_type"], table.best["n_components"]) == ("EEE", 3)
    assert table.best["model"].covariance_type == "tied"  # the estimator keeps the input
    text = repr(table)
    assert "EEE, K=3  <- best" in text and "ICL choice" in text and f"Δ {top[1].delta:.2f}" in text


def test_top_and_choices_follow_the_table(datasets):
    """top(n) is the table sorted by the criterion (checked against NumPy), deltas
    from its minimum; the ICL choice is ICL's minimum; the log-likelihood column is
    the BIC's log-likelihood."""
    X = datasets["aniso"]
    table = sweep(X, range(1, 5), ("full", "spherical"), random_state=0)
    order = np.argsort(table["icl"])
    top = table.top(4, "icl")
    assert [(m.covariance_type, m.n_components) for m in top] == [
        (str(table["covariance_type"][i]), int(table["n_components"][i])) for i in order[:4]]
    np.testing.assert_allclose([m.delta for m in top],
                               table["icl"][order[:4]] - table["icl"].min(), rtol=1e-12)
    assert table.icl_choice == top[0]
    np.testing.assert_allclose(
        -2 * table["log_likelihood"] + table["n_parameters"] * np.log(len(X)),
        table["bic"], rtol=1e-12)
    for i, gm in enumerate(table.models):
        assert table["log_likelihood"][i] == pytest.approx(gm.score(X) * len(X), rel=1e-9)
    with pytest.raises(ValueError, match="criterion"):
        table.top(2, "mdl")


def test_all_covariance_types_is_the_table():
    """mclust's 14 names, in mclust's order (``mclust.emControl``'s ``modelNames``,
    external), one per table entry: no scikit-learn alias among them."""
    from bayesgmm.covariance import SKLEARN_NAMES, TABLE
    from bayesgmm.selection import all_covariance_types

    names = all_covariance_types()
    assert names == ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
                     "EEV", "VEV", "EVV", "VVV")
    assert set(names) <= set(TABLE) and len(names) == len({id(TABLE[n]) for n in TABLE})
    assert not set(names) & set(SKLEARN_NAMES)
    X = np.random.default_rng(0).normal(size=(60, 2))
    table = sweep(X, [1, 2], "all", random_state=0)
    assert list(dict.fromkeys(table["covariance_type"])) == list(names)
    # scikit-learn's names stay accepted: the same fits, listed under mclust's names
    aliases = sweep(X, [2], ("full", "tied", "diag", "spherical"), random_state=0)
    assert list(aliases["covariance_type"]) == ["VVV", "EEE", "VVI", "VII"]
    for i, name in enumerate(("VVV", "EEE", "VVI", "VII")):
        j = names.index(name) * 2 + 1  # K=2 of that model in the "all" table
        assert aliases["bic"][i] == pytest.approx(table["bic"][j], rel=1e-12)


def test_collapsed_fits_are_never_best():
    """A fit whose component holds one row is flagged ``collapsed`` and not chosen,
    even where its criterion is the lowest (its likelihood only reg_covar bounds)."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(40, 2)), [[30.0, 30.0]]])  # one far outlier
    table = sweep(X, [1, 2], ("full",), random_state=0, init_params="kmeans")
    assert bool(table["collapsed"][1])  # K=2 puts the outlier alone
    assert table["bic"][1] < table["bic"][0]
    assert table.best["n_components"] == 1
    assert table.top(1)[0].n_components == 1


def test_a_small_component_of_its_own_covariance_is_not_collapsed():
    """diabetes, EVE, K = 8 (shared volume): the fit keeps a component of ~1.4 rows whose
    covariance is far above reg_covar, a bounded likelihood and a genuine optimum
    (mclust 6.0.0 reaches log-likelihood -2273.48 there at a tight tolerance); the
    table must not flag it ``collapsed`` (the row count alone did) nor drop it from the
    ranking, while the one-row component of ``test_collapsed_fits_are_never_best``
    (its covariance is reg_covar's) stays flagged."""
    from bayesgmm.datasets import load_diabetes

    table = sweep(load_diabetes().X, [8], ("EVE",), random_state=0)
    model = table.models[0]
    assert float(np.min(model.weights_)) * 145 < 1.5  # fewer rows than EVE needs
    assert table["log_likelihood"][0] == pytest.approx(-2273.48, abs=0.01)
    assert not bool(table["collapsed"][0])
    assert table.best["n_components"] == 8


def _swiss():
    """R's ``swiss`` (datasets package: 47 Swiss provinces of 1888, 6 socio-economic
    measures), as written by R's ``write.csv``."""
    import pathlib

    path = pathlib.Path(__file__).parent / "data" / "swiss.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1)


def test_a_start_that_flattened_a_component_loses_to_one_that_did_not():
    """swiss, VVE, K = 4: the k-means++ start ends with a component of 3 rows that the
    shared orientation lies flat along (three of its variances at reg_covar); its
    log-likelihood is reg_covar's, growing without bound as reg_covar shrinks, so it
    is flagged collapsed though 3 rows exceed VVE's two a component needs by count.
    The default start (hc and k-means++) then keeps the hierarchical fit, whose
    likelihood does not move with reg_covar and which beats mclust's (6.0.0:
    log-likelihood -908.188 at VVE, K = 4)."""
    X = _swiss()
    # run on to max_iter (not stopped at the collapse, the search's default), so that
    # the likelihood shows where reg_covar takes it
    kmeans = [sweep(X, [4], ["VVE"], random_state=0, init_params="k-means++", reg_covar=r,
                    stop_collapsed=False) for r in (1e-6, 1e-8)]
    assert all(bool(t["collapsed"][0]) for t in kmeans)
    assert kmeans[1]["log_likelihood"][0] > kmeans[0]["log_likelihood"][0] + 10
    auto = [sweep(X, [4], ["VVE"], random_state=0, reg_covar=r) for r in (1e-4, 1e-8)]
    assert not any(bool(t["collapsed"][0]) for t in auto)
    assert auto[0]["log_likelihood"][0] == pytest.approx(auto[1]["log_likelihood"][0],
                                                         abs=1e-3)
    assert auto[1]["log_likelihood"][0] >= -908.188 - 1e-3 * 908.188


def test_eve_reaches_mclusts_optimum_from_mclusts_start():
    """R's ``USArrests`` (50 states, 4 measures), EVE with 4 components from the
    hierarchical start alone: the same partition mclust cuts from ``hc(X, "VVV",
    use = "SVD")``. mclust 6.0.0's EM from it (``me("EVE", X, unmap(hclass(h, 4)))``)
    reaches log-likelihood -737.0541; with one orientation step per M-step our EM crept
    to -743.17 (0.83% short). Both engines must reach mclust's optimum."""
    import pathlib

    path = pathlib.Path(__file__).parent / "data" / "usarrests.csv"
    X = np.loadtxt(path, delimiter=",", skiprows=1)
    for engine in ("numpy", "jax"):
        gm = GaussianMixture(4, covariance_type="EVE", init_params="hc", tol=1e-5,
                             max_iter=1000, random_state=0, engine=engine).fit(X)
        assert gm.score(X) * len(X) >= -737.0541 - 1e-4 * 737.0541, engine


def test_eve_at_the_large_data_threshold_is_one_fit_on_both_engines():
    """EVE's warm M-step takes more orientation steps on more than WARM_LARGE_ROWS rows,
    decided from the counts' sum, which at exactly 2,000 rows lands within round-off of
    the threshold on either side: the engines took 3 or 20 steps and their fits parted
    (log-likelihood 1e-8 relative; a search's member differed from its own fit the same
    way). Both engines and the search now give one fit."""
    from bayesgmm.covariance import WARM_LARGE_ROWS

    rng = np.random.default_rng(1)
    n = WARM_LARGE_ROWS // 3
    X = np.concatenate([rng.normal(size=(n, 3)) @ rng.normal(size=(3, 3)) + 3 * i
                        for i in range(3)] + [rng.normal(size=(WARM_LARGE_ROWS - 3 * n, 3))])
    assert len(X) == WARM_LARGE_ROWS
    fits = [GaussianMixture(2, covariance_type="EVE", init_params="hc", tol=1e-5,
                            max_iter=200, random_state=0, engine=engine).fit(X)
            for engine in ("numpy", "jax")]
    scores = [gm.score(X) for gm in fits]
    assert scores[0] == pytest.approx(scores[1], rel=1e-11, abs=0)
    assert fits[0].n_iter_ == fits[1].n_iter_
    table = sweep(X, [2], ["EVE", "VVE"], random_state=0, init_params="hc")
    assert table["covariance_type"][0] == "EVE"
    assert table["log_likelihood"][0] / len(X) == pytest.approx(scores[0], rel=1e-11, abs=0)


def test_univariate_search_is_mclusts_e_and_v():
    """One feature: every model is equal (E) or variable (V) variance, as mclust fits
    univariate data; "all" searches those two, each once (EII and VII), and each equals
    the plain fit of that model."""
    from bayesgmm.selection import univariate_types

    assert univariate_types(["EII", "VVV", "EEE", "tied", "diag", "VEV", "EVV"]) == ("EII",
                                                                                       "VVV")
    assert univariate_types(["spherical", "EVI", "full"]) == ("spherical", "EVI")
    assert univariate_types(["full"]) == ("full",)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, 60), rng.normal(6, 0.5, 40)])[:, None]
    table = sweep(X, [1, 2, 3], "all", random_state=0)
    assert len(table["bic"]) == 6
    assert sorted(set(table["covariance_type"])) == ["EII", "VII"]
    for ct, k, value in zip(table["covariance_type"], table["n_components"], table["bic"]):
        gm = GaussianMixture(int(k), covariance_type=str(ct), random_state=0, tol=1e-5,
                             max_iter=1000).fit(X)
        assert gm.bic(X) == pytest.approx(value, rel=1e-6)
    ranked = table.top(3)
    assert len({(r.covariance_type, r.n_components) for r in ranked}) == 3


def test_classic_data_sets_are_rs():
    """The included Old Faithful and diabetes data against R's own summaries of its
    copies (R 4.2.2, mclust 6.0.0: colMeans(faithful); table(diabetes$class),
    sapply(diabetes[, 2:4], sd))."""
    from bayesgmm.datasets import load_diabetes, load_faithful

    f = load_faithful()
    assert f.X.shape == (272, 2) and f.y is None
    np.testing.assert_allclose(f.X.mean(0), [3.487783088, 70.897058824], rtol=1e-9)
    d = load_diabetes()
    assert d.X.shape == (145, 3)
    assert dict(zip(d.target_names, np.bincount(d.y))) == {"Chemical": 36, "Normal": 76,
                                                           "Overt": 33}
    np.testing.assert_allclose(d.X.std(0, ddof=1), [63.93040772, 319.56496440, 120.93515844],
                               rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", ["full", "tied", "spherical", "VEI", "EVE", "EEV"])
def test_batched_host_sweep_equals_one_fit_at_a_time(datasets, ct, dtype):
    """The sweep runs every K and start of a covariance type as one host EM batch
    (fitting.fit_host_sweep); each of its fits equals GaussianMixture's own fit (one
    fit at a time, the same starts): parameters, iterations and lower bound."""
    from bayesgmm.fitting import FitOptions, fit_host_sweep

    X = datasets["iris"].astype(dtype)
    ks = [1, 2, 3, 5, 6]
    table = sweep(X, ks, ct, random_state=0)
    options = FitOptions.from_mapping(GaussianMixture(random_state=0, **SWEEP_DEFAULTS)
                                      .get_params()).replace(covariance_type=ct)
    assert fit_host_sweep(X, options, ks) is not None  # the batched path applies here
    rtol = 1e-8 if dtype == np.float64 else 1e-5
    for k, gm in zip(ks, table.models):
        one = GaussianMixture(k, covariance_type=ct, random_state=0, **SWEEP_DEFAULTS).fit(X)
        assert gm.engine_ == one.engine_ == "numpy"
        assert gm.n_iter_ == one.n_iter_
        assert gm.converged_ == one.converged_
        np.testing.assert_allclose(gm.lower_bound_, one.lower_bound_, rtol=rtol)
        for a, b in ((gm.weights_, one.weights_), (gm.means_, one.means_),
                     (gm.covariances_, one.covariances_)):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


def test_fit_many_equals_fit_per_start(datasets):
    """engines.numpy.fit_many: members of different K, hard and soft first passes,
    some stopped by max_iter, each equal to engines.numpy.fit from its start."""
    from bayesgmm.engines import numpy as host
    from bayesgmm.params import GMMParams

    X = datasets["aniso"]
    rng = np.random.default_rng(3)
    starts, hard = [], []
    for k, h in [(1, False), (2, True), (3, False), (4, True), (4, False)]:
        means = X[rng.choice(len(X), k, replace=False)]
        starts.append(GMMParams(np.full(k, 1 / k), means,
                                np.repeat(np.eye(2)[None], k, axis=0), "full"))
        hard.append(h)
    for max_iter in (3, 500):
        batch = host.fit_many(X, starts, tol=1e-6, max_iter=max_iter, hard_start=hard)
        for p0, h, (p, info) in zip(starts, hard, batch):
            q, ref = host.fit(X, p0, tol=1e-6, max_iter=max_iter, hard_start=h)
            assert int(info.n_iter) == int(ref.n_iter)
            assert bool(info.converged) == bool(ref.converged)
            np.testing.assert_allclose(info.lower_bound, ref.lower_bound, rtol=1e-12)
            np.testing.assert_allclose(info.nk, ref.nk, rtol=1e-10)
            np.testing.assert_allclose(p.means, q.means, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(p.cov_factor, q.cov_factor, rtol=1e-10, atol=1e-12)
        assert any(not bool(i.converged) for _, i in batch) == (max_iter == 3)


def test_fit_many_models_equals_fit_per_start_of_each_type(datasets):
    """engines.numpy.fit_many_models runs several covariance types' starts in one
    lockstep loop (the types of one layout share a batch, VEI with VVI and EVE with
    VVV; batches of one feature table share an E-step, on small data whatever their K): each member's result
    equals engines.numpy.fit from its start, alone. Members of K = 1..4, hard and soft
    first passes, padded and grouped by K, all stopped by max_iter, then stopping at
    different iterations by tol; then sample weights with float32 input, and
    univariate data (E, V)."""
    from bayesgmm.covariance import ops
    from bayesgmm.engines import numpy as host

    X = datasets["aniso"]
    rng = np.random.default_rng(5)
    kinds = ["VII", "VEI", "VVI", "EEE", "EVE", "VVV"]
    starts, hard = {}, {}
    for kind in kinds:
        starts[kind] = [GMMParams(np.full(k, 1 / k), X[rng.choice(len(X), k, replace=False)],
                                  ops(kind).identity(k, 2, np.float64), kind)
                        for k in (1, 2, 3, 4)]
        hard[kind] = [False, True, False, True]
    for max_iter, pad in ((4, True), (300, True), (300, False)):
        many = host.fit_many_models(X, starts, tol=1e-6, max_iter=max_iter,
                                    hard_start=hard, pad=pad)
        assert list(many) == kinds
        iterations, stopped = set(), 0
        for kind in kinds:
            for p0, h, (p, info) in zip(starts[kind], hard[kind], many[kind]):
                q, ref = host.fit(X, p0, tol=1e-6, max_iter=max_iter, hard_start=h)
                assert p.covariance_type == kind and p.n_components == p0.n_components
                assert int(info.n_iter) == int(ref.n_iter)
                assert bool(info.converged) == bool(ref.converged)
                np.testing.assert_allclose(info.lower_bound, ref.lower_bound, rtol=1e-10)
                np.testing.assert_allclose(info.nk, ref.nk, rtol=1e-8, atol=1e-10)
                np.testing.assert_allclose(p.weights, q.weights, rtol=1e-8, atol=1e-12)
                np.testing.assert_allclose(p.means, q.means, rtol=1e-8, atol=1e-8)
                np.testing.assert_allclose(p.cov_factor, q.cov_factor, rtol=1e-8, atol=1e-8)
                iterations.add(int(info.n_iter))
                stopped += int(info.n_iter) == max_iter and not bool(info.converged)
        if max_iter == 4:  # most stopped by max_iter
            assert stopped > 12
        else:  # members leave the loop at many different iterations
            assert len(iterations) > 5
    # sample weights with float32 input; and univariate data (mclust's E and V)
    w = rng.integers(1, 4, len(X)).astype(np.float64)
    X1 = X[:, :1].copy()
    uni = {kind: [GMMParams(np.full(k, 1 / k), X1[rng.choice(len(X), k, replace=False)],
                            ops(kind).identity(k, 1, np.float64), kind) for k in (1, 2, 3)]
           for kind in ("E", "V")}
    for data, group, weight in ((X.astype(np.float32), starts, w), (X1, uni, None)):
        many = host.fit_many_models(data, group, sample_weight=weight, tol=1e-6,
                                    max_iter=300)
        for kind, members in group.items():
            for p0, (p, info) in zip(members, many[kind]):
                q, ref = host.fit(data, p0, sample_weight=weight, tol=1e-6, max_iter=300)
                assert p.means.dtype == data.dtype
                assert int(info.n_iter) == int(ref.n_iter), kind
                np.testing.assert_allclose(info.lower_bound, ref.lower_bound, rtol=1e-10)
                np.testing.assert_allclose(p.means, q.means, rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(p.cov_factor, q.cov_factor, rtol=1e-6, atol=1e-6)


def test_host_sweeps_of_several_types_equal_each_type_alone(datasets):
    """fitting.fit_host_sweeps (every type's search in one lockstep loop) returns for
    each options what fit_host_sweep returns for it alone, and None where the host
    batch does not apply (a prior: fit's own MAP M-steps)."""
    from bayesgmm.fitting import FitOptions, fit_host_sweep, fit_host_sweeps

    X = datasets["iris"]
    ks = [1, 2, 4]
    base = FitOptions.from_mapping(GaussianMixture(random_state=0, **SWEEP_DEFAULTS)
                                   .get_params())
    options = [base.replace(covariance_type=ct) for ct in ("VEV", "EII", "VVV")]
    options.append(base.replace(covariance_type="VVI", prior="default"))
    together = fit_host_sweeps(X, options, ks)
    assert together[-1] is None and fit_host_sweep(X, options[-1], ks) is None
    for opts, got in zip(options[:-1], together):
        for (p, info), (q, ref) in zip(got, fit_host_sweep(X, opts, ks)):
            assert p.covariance_type == opts.covariance_type
            assert int(info.n_iter) == int(ref.n_iter)
            np.testing.assert_allclose(info.lower_bound, ref.lower_bound, rtol=1e-10)
            np.testing.assert_allclose(p.means, q.means, rtol=1e-8, atol=1e-8)


def test_fit_many_members_that_fail_leave_the_batch_as_fit_reports_them():
    """engines.numpy.fit_many with members whose component collapses on three identical
    rows (reg_covar=0) at different iterations, beside members that converge: each
    reports what engines.numpy.fit reports from its start (non-finite at the same
    iteration, the same component, its last sound parameters), and the members that
    run on are not disturbed when the others leave the batch."""
    from bayesgmm.engines import numpy as host
    from bayesgmm.params import GMMParams

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 2)), np.full((3, 2), 8.0)])

    def start(k, far):
        means = np.concatenate([rng.normal(size=(k - far, 2)), np.full((far, 2), 8.0)])
        return GMMParams(np.full(k, 1 / k), means,
                         np.repeat(0.05 * np.eye(2)[None], k, axis=0), "full")

    starts = [start(2, 0), start(3, 1), start(1, 0), start(2, 1), start(3, 0), start(2, 0)]
    batch = host.fit_many(X, starts, tol=1e-6, max_iter=200, reg_covar=0.0)
    failed = []
    for p0, (p, info) in zip(starts, batch):
        q, ref = host.fit(X, p0, tol=1e-6, max_iter=200, reg_covar=0.0)
        assert bool(info.nonfinite) == bool(ref.nonfinite)
        assert int(info.bad_component) == int(ref.bad_component)
        assert int(info.n_iter) == int(ref.n_iter)
        assert bool(info.converged) == bool(ref.converged)
        # to 1e-10: the batch's products round differently in the last bits, and a
        # collapsing component's last variance (~2e-9, from mean squares ~64) keeps
        # about 1e-16 x 64 / 2e-9 of that relative (absolute 2e-10 in its factor)
        np.testing.assert_allclose(info.lower_bound, ref.lower_bound, rtol=1e-10)
        np.testing.assert_allclose(p.means, q.means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(p.cov_factor, q.cov_factor, rtol=1e-8, atol=1e-8)
        failed.append((bool(ref.nonfinite), int(ref.n_iter)))
    # the case this test is for: failures at several iterations, and fits that converge
    assert len({n for f, n in failed if f}) >= 2 and not all(f for f, _ in failed)


def test_sweep_of_several_types_equals_each_alone(datasets):
    """A sweep over several covariance types shares each K's k-means centres between
    them (computed once); its fits equal each type's own sweep."""
    X = datasets["aniso"]
    both = sweep(X, [1, 2, 4], ("VVV", "EEI"), random_state=1)
    alone = [sweep(X, [1, 2, 4], ct, random_state=1) for ct in ("VVV", "EEI")]
    for gm, ref in zip(both.models, alone[0].models + alone[1].models):
        assert gm.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(gm.means_, ref.means_)
        np.testing.assert_array_equal(gm.covariances_, ref.covariances_)


def test_sweep_runs_on_the_host_up_to_its_threshold():
    """A search of one covariance type runs on the host while N·K·F at the largest K
    is within HOST_SWEEP_WORK (F = 1 + D + D(D+1)/2 for full, 1 + 2D for diag);
    a user's engine wins."""
    from bayesgmm.engines.choose import HOST_SWEEP_WORK, sweep_engine

    for ct, F in (("full", 1 + 3 + 6), ("diag", 1 + 2 * 3)):
        n_max = HOST_SWEEP_WORK // (9 * F)
        assert sweep_engine("auto", n_max, 9, 3, ct) == "numpy"
        assert sweep_engine("auto", n_max + 1, 9, 3, ct) == "auto"
    assert sweep_engine("jax", 10, 9, 3, "full") == "jax"
    assert sweep_engine("numpy", 10**7, 9, 3, "full") == "numpy"
    with pytest.raises(ValueError, match="engine"):
        sweep_engine("gpu", 10, 2, 3, "full")


def test_sweep_of_data_with_missing_values_is_missing_data_em():
    """With missing="marginalize" and NaN in X, each row of the table is that
    (covariance type, K)'s missing-data fit (GaussianMixture(missing=...), an
    independent call), its BIC on the observed coordinates; the best is the lowest BIC
    (three generated clusters, 10% of the cells missing: K = 3)."""
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=2)
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0  # every row keeps an observed value
    table = sweep(X, range(1, 5), ("full", "EII"), missing="marginalize", random_state=0)
    assert table.best["n_components"] == 3
    for row in (0, 5):
        k, ct = int(table["n_components"][row]), table["covariance_type"][row]
        gm = GaussianMixture(k, covariance_type=ct, missing="marginalize", random_state=0,
                             tol=1e-5, max_iter=1000).fit(X)
        np.testing.assert_allclose(table["bic"][row], gm.bic(X), rtol=1e-10)
    with pytest.raises(ValueError, match="NaN"):
        sweep(X, range(1, 3))


@pytest.mark.parametrize("state", ["global", "RandomState"])
def test_a_sweep_draws_its_random_state_once(datasets, monkeypatch, state):
    """With ``random_state`` None (NumPy's global state) or a RandomState, a search
    draws once: every covariance type starts from the same k-means centres (one
    k-means++ seeding per K, as with an int; before, one per type and K), and its fits
    equal each type's own sweep at that draw. The models keep the random_state given."""
    import bayesgmm.fitting as fitting

    X = datasets["aniso"]
    seedings = []
    real = fitting.kmeans_plusplus_host
    monkeypatch.setattr(fitting, "kmeans_plusplus_host",
                        lambda *a: seedings.append(a[2]) or real(*a))
    np.random.seed(5)
    given = None if state == "global" else np.random.RandomState(5)
    types = ("VVV", "EEI", "VII")
    both = sweep(X, [2, 4], types, random_state=given)
    assert sorted(seedings) == [2, 4]
    np.random.seed(5)
    seed = (np.random.randint(np.iinfo(np.int32).max) if state == "global"
            else np.random.RandomState(5).randint(np.iinfo(np.int32).max))
    alone = [gm for ct in types for gm in sweep(X, [2, 4], ct, random_state=seed).models]
    for gm, ref in zip(both.models, alone, strict=True):
        assert gm.random_state is given
        assert gm.n_iter_ == ref.n_iter_
        # (lockstep batches of several types round differently: 1e-15)
        np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ks, types", [([], "full"), ([1, 2], [])])
def test_sweep_of_nothing_says_what_it_needs(blobs, ks, types):
    with pytest.raises(ValueError, match="at least one number of components and one"):
        sweep(blobs[0], ks, types)


@pytest.mark.parametrize("call, error, match", [
    # covariance_type= was silently ignored: the table was full covariance
    (lambda X: sweep(X, [1, 2], covariance_type="diag"), TypeError,
     r"takes covariance_types .*not covariance_type: pass covariance_types=\['diag'\]"),
    (lambda X: sweep(X, [1.5, 2]), ValueError, r"whole numbers of components; got 1\.5"),
    (lambda X: sweep(X, [0, 2]), ValueError, r"must be >= 1; got 0 in \[0, 2\]"),
    (lambda X: sweep(X, 3), TypeError, r"must be a sequence of ints, e\.g\. \[3\]"),
    (lambda X: sweep(X, [2, 3, 2]), ValueError, r"lists K = \[2\] more than once"),
    (lambda X: sweep(X, [2], ["full", "diag", "VVV"]), ValueError,
     r"name the model VVV more than once \('full', 'VVV'\)"),
    (lambda X: sweep(X, [2], ["spherical", "VII"]), ValueError, "model VII more than once"),
])
def test_sweep_refuses_what_it_silently_changed(blobs, call, error, match):
    """Each of these ran before: 1.5 was truncated to 1, duplicates fitted twice, the
    covariance_type keyword ignored; K = 0 failed with a deep IndexError."""
    with pytest.raises(error, match=match) as err:
        call(blobs[0][:60])
    assert "\n" not in str(err.value)


def test_top_needs_at_least_one_row(blobs):
    result = sweep(blobs[0][:60], [1, 2])
    assert [m.n_components for m in result.top(1)] == [result.best["n_components"]]
    for n in (0, -1, 1.5):
        with pytest.raises(ValueError, match="'n' should be an integer >= 1"):
            result.top(n)



def test_whole_numbers_of_any_type_are_ks(blobs):
    """np.linspace's 1.0, 2.0 (and NumPy integers) are K as ints were: the table is the
    int list's."""
    X = blobs[0]
    ref = sweep(X, [1, 2], "diag", random_state=0)
    for ks in (np.linspace(1, 2, 2), [np.int64(1), 2.0]):
        got = sweep(X, ks, "diag", random_state=0)
        assert list(got["n_components"]) == [1, 2]
        np.testing.assert_array_equal(got["bic"], ref["bic"])
