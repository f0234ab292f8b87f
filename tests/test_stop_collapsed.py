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
