"""``stop_collapsed``: EM stops a fit that has collapsed, as mclust stops a singular one.

The collapse test (:func:`bayesgmm.engines.collapsed_members`) is one function over an
array namespace, so both engines and the host's lockstep model search take the same
decision at the same iterations (every ``COLLAPSE_CHECK_EVERY``). Stopping is only a
truncation: the stopped fit is the one that runs ``n_iter`` iterations without the
option, and a model search changes nothing but the rows it flags ``collapsed``."""

import pathlib
import warnings

import numpy as np
import pytest

from bayesgmm import GaussianMixture, SingularFitWarning
from bayesgmm.engines import COLLAPSE_CHECK_EVERY, collapsed_members
from bayesgmm.engines import numpy as host
from bayesgmm.initialize import collapsed
from bayesgmm.params import GMMParams
from bayesgmm.selection import sweep


def _swiss():
    """R's ``swiss`` (47 provinces, 6 measures), as R's ``write.csv`` wrote it."""
    path = pathlib.Path(__file__).parent / "data" / "swiss.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1)


def _stopped_and_truncated(X, k, **kw):
    """The fit with stop_collapsed (checked: a SingularFitWarning, unconverged, stopped
    at a check short of max_iter, collapsed) and the fit of exactly its n_iter
    iterations without it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stopped = GaussianMixture(k, max_iter=1000, stop_collapsed=True, **kw).fit(X)
    assert any(issubclass(w.category, SingularFitWarning) for w in caught)
    n = stopped.n_iter_
    assert not stopped.converged_ and n < 1000 and n % COLLAPSE_CHECK_EVERY == 0
    assert collapsed(stopped.params_, stopped.weights_ * len(X), stopped.reg_covar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truncated = GaussianMixture(k, max_iter=n, **kw).fit(X)
    return stopped, truncated


def _three_members():
    """Three full-covariance mixtures (K = 3, D = 2, and a fourth, padding component of
    weight 0 whose covariance is tiny), built so that:

    0. component 2 holds one row (fewer than the D + 1 = 3 a full covariance needs)
       with variance 1e-7 (under the floor 10 * reg_covar = 1e-5): collapsed;
    1. component 2 holds 5 rows, enough, but its variance along y is 1e-7 while the
       mixture spreads along y (means 0, 4, 8 apart): collapsed (flat);
    2. component 2 has variance 1e-3 along y, above the floor: not collapsed.
    """
    means = np.array([[0.0, 0.0], [5.0, 4.0], [10.0, 8.0], [0.0, 0.0]])
    weights = np.array([0.45, 0.45, 0.1, 0.0])
    small = [np.diag([1e-7, 1e-7]), np.diag([1.0, 1e-7]), np.diag([1.0, 1e-3])]
    nks = [[50.0, 49.0, 1.0, 0.0], [48.0, 47.0, 5.0, 0.0], [48.0, 47.0, 5.0, 0.0]]
    members = []
    for cov2, nk in zip(small, nks):
        cov = np.stack([np.eye(2), np.eye(2), cov2, 1e-9 * np.eye(2)])
        p = GMMParams.from_sklearn(weights, means, covariance_type="full", covariances=cov)
        members.append((p, np.array(nk)))
    return members


def test_collapsed_members_flags_by_the_rule_and_ignores_padding():
    members = _three_members()
    expected = [True, True, False]
    assert [collapsed(p, nk[:3], 1e-6) for p, nk in members] == expected
    # as one batch, the padding component (weight 0, variance 1e-9, no rows) included
    batch = GMMParams(np.stack([p.weights for p, _ in members]),
                      np.stack([p.means for p, _ in members]),
                      np.stack([p.cov_factor for p, _ in members]), "full")
    nk = np.stack([n for _, n in members])
    assert collapsed_members(batch, nk, 1e-6).tolist() == expected
    # reg_covar 1e-4 raises the floor (1e-3) to the third member's variance, and the
    # mixture's spread along y (about 7.7) is more than 1000 floors
    assert collapsed_members(batch, nk, 1e-4).tolist() == [True, True, True]
    # reg_covar 1e-3: a floor of 1e-2, and 7.7 is less than 1000 of them: the flat
    # test no longer holds; the first member is short of rows whatever the spread
    assert collapsed_members(batch, nk, 1e-3).tolist() == [True, False, False]


def test_collapsed_members_is_the_same_under_jit():
    import jax
    import jax.numpy as jnp

    members = _three_members()
    batch = GMMParams(*(jnp.asarray(np.stack(a)) for a in (
        [p.weights for p, _ in members], [p.means for p, _ in members],
        [p.cov_factor for p, _ in members])), "full")
    nk = jnp.asarray(np.stack([n for _, n in members]))
    got = jax.jit(lambda p, n: collapsed_members(p, n, 1e-6))(batch, nk)
    assert np.asarray(got).tolist() == [True, True, False]


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("model,k", [("VVE", 6), ("VII", 9)])
def test_a_stopped_fit_is_the_fit_truncated_there(engine, model, k):
    """swiss from the hierarchical start: VVE with 6 components and VII with 9 have
    collapsed at their first check. Stopped, each is the fit of exactly n_iter
    iterations, collapsed, unconverged, with a SingularFitWarning; both engines stop
    at the same check."""
    X = _swiss()
    kw = dict(covariance_type=model, init_params="hc", tol=1e-5, random_state=0,
              engine=engine)
    stopped, truncated = _stopped_and_truncated(X, k, **kw)
    n = stopped.n_iter_
    np.testing.assert_allclose(stopped.means_, truncated.means_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stopped.covariances_, truncated.covariances_, rtol=1e-9,
                               atol=1e-12)
    assert stopped.lower_bound_ == pytest.approx(truncated.lower_bound_, rel=1e-12)
    if engine == "jax":  # the engines stop at the same iteration, with the same fit
        other = GaussianMixture(k, max_iter=1000, stop_collapsed=True,
                                **{**kw, "engine": "numpy"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.fit(X)
        assert other.n_iter_ == n
        assert other.lower_bound_ == pytest.approx(stopped.lower_bound_, rel=1e-9)


def test_lockstep_members_stop_as_their_own_fits():
    """The host's lockstep loop (a model search's) stops each member where its own
    fit stops: hierarchical starts of VVE, VII and VVV at K = 2..9 on swiss."""
    from bayesgmm.initialize import hc_params, hc_tree

    X = _swiss()
    tree = hc_tree(X)
    starts = {m: [hc_params(X, None, tree, k, m, 1e-6) for k in range(2, 10)]
              for m in ("VVE", "VII", "VVV")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        together = host.fit_many_models(X, starts, tol=1e-5, max_iter=1000,
                                        stop_collapsed=True)
    stopped_early = 0
    for model, fits in together.items():
        for start, (p, info) in zip(starts[model], fits):
            alone, alone_info = host.fit(X, start, tol=1e-5, max_iter=1000,
                                         stop_collapsed=True)
            assert int(info.n_iter) == int(alone_info.n_iter), model
            assert float(info.lower_bound) == pytest.approx(float(alone_info.lower_bound),
                                                            rel=1e-10)
            np.testing.assert_allclose(p.means, alone.means, rtol=1e-8, atol=1e-8)
            stopped_early += (not bool(info.converged)) and int(info.n_iter) < 1000
    assert stopped_early >= 2  # VVE 6 and VII 9 at least (see above)


def test_a_search_changes_only_its_collapsed_rows():
    """swiss, all 14 models, K = 1..9: the search's default (stop_collapsed=True)
    against running every fit on to max_iter. The same rows are flagged collapsed,
    every other row has the same log-likelihood, the same model is chosen, and the
    collapsed rows stop early (VVE at K = 8 and 9 ran 1000 iterations). A stopped
    row's model, refitted from its settings, stops at the same iteration."""
    X = _swiss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = sweep(X, range(1, 10), "all", random_state=0)
        slow = sweep(X, range(1, 10), "all", random_state=0, stop_collapsed=False)
    flagged = np.asarray(fast["collapsed"], bool)
    assert flagged.tolist() == np.asarray(slow["collapsed"], bool).tolist()
    assert flagged.sum() >= 10
    ll_fast = np.asarray(fast["log_likelihood"])
    ll_slow = np.asarray(slow["log_likelihood"])
    np.testing.assert_allclose(ll_fast[~flagged], ll_slow[~flagged], rtol=1e-9)
    assert (fast.best["covariance_type"], fast.best["n_components"]) == (
        slow.best["covariance_type"], slow.best["n_components"])
    n_fast = np.asarray(fast["n_iter"])
    n_slow = np.asarray(slow["n_iter"])
    assert (n_fast <= n_slow).all()
    assert n_slow[flagged].max() == 1000 and n_fast[flagged].max() < 1000
    row = int(np.flatnonzero(flagged & (n_fast < n_slow))[0])
    model = fast.models[row]
    assert model.stop_collapsed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = GaussianMixture(**model.get_params()).fit(X)
    assert refit.n_iter_ == model.n_iter_
    assert refit.lower_bound_ == pytest.approx(model.lower_bound_, rel=1e-9)


def test_a_bad_stop_collapsed_is_named():
    X = _swiss()
    with pytest.raises(ValueError, match="'stop_collapsed'"):
        GaussianMixture(2, stop_collapsed="yes").fit(X)


def test_bootstrap_refits_stop_as_the_fit_does():
    """A bootstrap replicate is EM from the fitted parameters with the fit's settings:
    with stop_collapsed it stops where it collapses, as the host fit from the same start
    on the same resampled rows does (the refits ran on to max_iter before)."""
    from bayesgmm.bootstrap import _em_settings, _refit, _resample

    X = _swiss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(6, covariance_type="VVE", init_params="hc", tol=1e-5,
                                max_iter=1000, random_state=0, stop_collapsed=True).fit(X)
    assert not model.converged_ and model.n_iter_ < 1000
    W = _resample("nonparametric", np.random.default_rng(0), X, model.params_, 4)[1]
    settings = _em_settings(model, X)
    assert settings["stop_collapsed"] is True
    _, lower, converged = _refit(model.params_, X, W, settings)
    stopped = 0
    for b in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, info = host.fit(X, model.params_, sample_weight=W[b], tol=1e-5,
                               max_iter=1000, stop_collapsed=True)
        assert bool(converged[b]) == bool(info.converged)
        assert float(lower[b]) == pytest.approx(float(info.lower_bound), rel=1e-8)
        stopped += int(info.n_iter) < 1000 and not bool(info.converged)
    assert stopped >= 1


def test_missing_data_fits_stop_as_complete_data_fits():
    """With NaN marginalised, EM takes the same stop: swiss with one value missing,
    VVE K = 6 from the hierarchical start stops at a check, collapsed, with a
    SingularFitWarning, and is the missing-data fit truncated there (it ran on to 72
    iterations before)."""
    X = _swiss().copy()
    X[0, 0] = np.nan
    kw = dict(covariance_type="VVE", init_params="hc", tol=1e-5, random_state=0,
              missing="marginalize")
    stopped, truncated = _stopped_and_truncated(X, 6, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_on = GaussianMixture(6, max_iter=1000, **kw).fit(X)
    assert run_on.n_iter_ > stopped.n_iter_
    assert stopped.lower_bound_ == pytest.approx(truncated.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(stopped.means_, truncated.means_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("init", ["hc", "kmeans"])
def test_small_em_stops_alike_on_both_engines(init):
    """Small-EM (restart_screen_iter) with stop_collapsed: a start that collapses in
    screening stops there and loses to one that did not; the continuation tests at
    the fit's own iteration count. Both engines take the same stops: swiss, VII with
    9 components, three starts screened for 13 iterations."""
    X = _swiss()
    fits = {}
    for engine in ("numpy", "jax"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[engine] = GaussianMixture(
                9, covariance_type="VII", init_params=init, n_init=3,
                restart_screen_iter=13, tol=1e-5, max_iter=1000, random_state=0,
                engine=engine, stop_collapsed=True).fit(X)
    a, b = fits["numpy"], fits["jax"]
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-9)
    if not a.converged_:  # stopped at a check of the whole fit's count
        assert a.n_iter_ % COLLAPSE_CHECK_EVERY == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_reads_a_sound_component_as_sound(dtype):
    """A component of one row whose covariance has eigenvalues 1e4 and 5e-5 (five times
    the floor 10 * reg_covar) along a 45-degree rotation has not collapsed. Formed as
    L Lᵀ in float32, its eigenvalues are only accurate to eps * 1e4 = 1e-3 (LAPACK and
    JAX gave -3e-8 and 0: "collapsed"); from L's singular values the test reads 5e-5 in
    float32 too, on the host and under jit alike."""
    import jax
    import jax.numpy as jnp

    c = s = np.sqrt(0.5)
    R = np.array([[c, -s], [s, c]])
    sigma = R @ np.diag([1e4, 5e-5]) @ R.T
    covs = np.stack([np.eye(2), np.eye(2), sigma])
    p = GMMParams.from_sklearn(np.array([0.5, 0.49, 0.01]),
                               np.array([[0.0, 0.0], [50.0, 50.0], [100.0, 0.0]]),
                               covariance_type="full", covariances=covs).to_numpy(dtype)
    nk = np.array([50.0, 49.0, 1.0], dtype)
    assert not collapsed(p, nk, 1e-6)
    assert not bool(collapsed_members(p, nk, 1e-6))
    jp = GMMParams(jnp.asarray(p.weights), jnp.asarray(p.means), jnp.asarray(p.cov_factor),
                   "full")
    assert not bool(jax.jit(lambda q, n: collapsed_members(q, n, 1e-6))(jp, jnp.asarray(nk)))
    # and the same component at 5e-6 (under the floor) on one row has
    small = R @ np.diag([1e4, 5e-6]) @ R.T
    q = GMMParams.from_sklearn(p.weights, p.means, covariance_type="full",
                               covariances=np.stack([np.eye(2), np.eye(2), small])
                               ).to_numpy(dtype)
    assert bool(collapsed_members(q, nk, 1e-6))


def test_the_hosts_skip_never_clears_a_component_at_the_floor():
    """The host skips the decompositions when |det L|² / ‖L‖_F^(2(D-1)), a lower bound
    of the smallest variance, clears the floor for every component. The bound holds
    (checked against the SVD on random factors, well and badly conditioned), so a
    component at the floor is never skipped."""
    from bayesgmm.engines import _host_clear

    rng = np.random.default_rng(0)
    for D in (2, 3, 6):
        for scale in (1e-4, 1e-2, 1.0, 1e3):
            A = rng.normal(size=(50, D, D)) * rng.uniform(1e-4, 1, size=(50, 1, D)) * scale
            L = np.linalg.cholesky(A @ np.swapaxes(A, 1, 2) + 1e-12 * np.eye(D))
            smallest = np.linalg.svd(L, compute_uv=False)[:, -1] ** 2
            for i in range(50):
                p = GMMParams(np.array([0.5, 0.5]), np.zeros((2, D)),
                              np.stack([np.eye(D), L[i]]), "full")
                active = np.array([True, True])
                floor = smallest[i] * 1.0001
                assert not _host_clear(p.cov_factor, active, floor)  # at the floor: never skipped
    # and a sound component (variances 0.5-3 in 3-D, floor 1e-5) is skipped
    L = np.linalg.cholesky(np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]]))
    p = GMMParams(np.array([0.5, 0.5]), np.zeros((2, 3)), np.stack([np.eye(3), L]), "full")
    assert _host_clear(p.cov_factor, np.array([True, True]), 1e-5)
