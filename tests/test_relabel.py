"""Relabeling (bayes/relabel.py): the three methods recover known permutations, and on
NUTS chains that really sit in different labelings (two chains started from the true
labels, two from the swapped ones) the raw R-hat of the means is large, every method
brings it under 1.05, and the relabeled draws recover the generating parameters."""

import jax
import numpy as np
import pytest

from bayesgmm.bayes.calibration import ess_bulk, invariant_diagnostics
from bayesgmm.bayes.inference import sample_nuts
from bayesgmm.bayes.model import Priors
from bayesgmm.bayes.posterior import rhat
from bayesgmm.bayes.relabel import METHODS, log_responsibilities, relabel
from bayesgmm.density import sample
from bayesgmm.params import GMMParams

pytestmark = pytest.mark.usefixtures("standard_promotion")


def _shuffled(C=3, S=40, seed=0):
    """Noisy copies of a well-separated 3-component mixture, labels shuffled per chain
    and, in 10% of draws, per draw; returns (draws, truth, true weights, true means)."""
    rng = np.random.RandomState(seed)
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    w = np.array([0.5, 0.3, 0.2])
    M = C * S
    W = w + rng.normal(0, 0.01, (M, 3))
    Mu = means + rng.normal(0, 0.1, (M, 3, 2))
    F = np.tile(np.eye(2), (M, 3, 1, 1))
    perms = np.repeat(np.stack([rng.permutation(3) for _ in range(C)]), S, axis=0)
    for i in np.flatnonzero(rng.rand(M) < 0.1):
        perms[i] = rng.permutation(3)
    take = lambda a: np.take_along_axis(a, perms.reshape(M, 3, *([1] * (a.ndim - 2))), axis=1)
    draws = GMMParams(take(W), take(Mu), take(F), "full")
    draws = jax.tree_util.tree_map(lambda a: a.reshape(C, S, *a.shape[1:]), draws)
    truth = GMMParams(w, means, np.tile(np.eye(2), (3, 1, 1)), "full")
    X, _ = sample(jax.random.PRNGKey(0), truth, 200)
    return draws, truth, np.asarray(X), W.reshape(C, S, 3), Mu.reshape(C, S, 3, 2)


@pytest.mark.parametrize("method", METHODS)
def test_methods_undo_known_permutations(method):
    draws, truth, X, W, Mu = _shuffled()
    rel = relabel(draws, truth, method=method, X=X)
    np.testing.assert_allclose(rel.params.weights, W, atol=1e-12)
    np.testing.assert_allclose(rel.params.means, Mu, atol=1e-12)
    assert rel.n_switched > 0


def test_bad_method_and_missing_data_are_named():
    draws, truth, _, _, _ = _shuffled(C=2, S=4)
    with pytest.raises(ValueError, match="'method' should be one of"):
        relabel(draws, truth, method="kl")
    with pytest.raises(ValueError, match="pass X="):
        relabel(draws, truth, method="stephens")


def test_log_responsibilities_match_scipy():
    from scipy.stats import multivariate_normal

    _, truth, X, _, _ = _shuffled()
    cov = np.asarray(truth.full_covariances)
    joint = np.stack([truth.weights[k] * multivariate_normal(truth.means[k], cov[k]).pdf(X)
                      for k in range(3)], axis=1)
    np.testing.assert_allclose(np.exp(log_responsibilities(truth, X)),
                               joint / joint.sum(1, keepdims=True), atol=1e-10)


def test_ess_bulk_equals_arviz():
    import arviz

    rng = np.random.default_rng(1)
    ar = np.zeros((3, 300))
    for t in range(1, 300):  # AR(1) chains, phi = 0.8
        ar[:, t] = 0.8 * ar[:, t - 1] + rng.normal(size=3)
    for x in (ar, rng.normal(size=(2, 100)), ar + np.arange(3)[:, None]):
        np.testing.assert_allclose(ess_bulk(x), float(arviz.ess(x)), rtol=1e-8)


@pytest.fixture(scope="module")
def switched_chains():
    """NUTS on two equal components 4 sd apart (N=150, D=2): two chains started at the
    true labels, two at the swapped ones."""
    truth = GMMParams(np.array([0.5, 0.5]), np.array([[-2.0, 0.0], [2.0, 0.0]]),
                      np.tile(np.eye(2), (2, 1, 1)), "full")
    X, _ = sample(jax.random.PRNGKey(1), truth, 150)
    X = np.asarray(X, np.float32)
    priors = Priors(mean_loc=np.zeros(2), mean_scale=2.0, scale_loc=1.0).resolve(X)
    swapped = GMMParams(truth.weights[::-1], truth.means[::-1], truth.cov_factor[::-1], "full")
    with jax.numpy_dtype_promotion("standard"):
        runs = [sample_nuts(jax.random.PRNGKey(seed), X, start.astype(np.float32),
                            n_components=2, priors=priors, n_warmup=200, n_draws=300,
                            n_chains=2) for seed, start in [(2, truth), (3, swapped)]]
    draws = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), runs[0].params,
                                   runs[1].params)
    lp = np.concatenate([runs[0].info.lp, runs[1].info.lp])
    return draws, truth, X, lp


@pytest.mark.parametrize("method", METHODS)
def test_relabel_real_switching(switched_chains, method):
    draws, truth, X, _ = switched_chains
    raw = [rhat(np.asarray(draws.means)[..., k, 0]) for k in range(2)]
    assert min(raw) > 1.5  # the chains disagree on the labels
    # Relabel to a start that is not the truth: the first chain's first draw.
    reference = jax.tree_util.tree_map(lambda a: np.asarray(a)[0, 0], draws)
    rel = relabel(draws, reference, method=method, X=X)
    assert rel.n_switched >= 600  # the two swapped chains, at least
    m = rel.params.means
    assert max(rhat(m[..., k, d]) for k in range(2) for d in range(2)) < 1.05
    assert max(rhat(rel.params.weights[..., k]) for k in range(2)) < 1.05
    # The relabeled posterior recovers the truth (matched by its first coordinate).
    order = np.argsort(m.mean((0, 1))[:, 0])
    post_mean, post_sd = m.mean((0, 1))[order], m.std((0, 1))[order]
    assert np.all(np.abs(post_mean - truth.means) < 4 * post_sd + 0.05)


def test_invariant_diagnostics_see_no_switching(switched_chains):
    """Label-invariant quantities agree across chains although the labels do not."""
    draws, _, X, lp = switched_chains
    d = invariant_diagnostics(draws, X=X, lp=lp)
    assert d.lp_rhat < 1.05 and d.lp_ess > 100
    assert np.all(d.weights_rhat < 1.05) and np.all(d.weights_ess > 100)
    assert d.max_membership_rhat < 1.05 and d.max_membership_ess > 100


# ---- label-invariant diagnostics of the posterior (posterior.label_invariant) ---------

def _posterior(runs, reference, X):
    """Two sample_nuts runs (2 chains each) as one 4-chain posterior.from_inference."""
    from bayesgmm.bayes.inference import InferenceResult
    from bayesgmm.bayes.posterior import from_inference

    cat = lambda *parts: np.concatenate(parts)
    info = runs[0].info._replace(**{f: cat(getattr(runs[0].info, f), getattr(runs[1].info, f))
                                    for f in runs[0].info._fields[:7]})
    result = InferenceResult("nuts", jax.tree_util.tree_map(cat, runs[0].params, runs[1].params),
                             jax.tree_util.tree_map(cat, runs[0].sites, runs[1].sites), info)
    with jax.numpy_dtype_promotion("standard"):
        return from_inference(result, reference, X)


def test_label_invariant_rhat_near_one_where_chains_only_switch(switched_chains):
    """Chains in swapped labelings: the raw R-hat of the means (ArviZ, on the raw draws)
    is large, while every label-invariant R-hat (log density, sorted weights, mean and
    worst-sample max membership) is < 1.05, on the raw draws as on the relabeled ones."""
    from bayesgmm.bayes import arviz as bz
    from bayesgmm.bayes.posterior import label_invariant, label_invariant_draws

    draws, truth, X, lp = switched_chains
    raw = label_invariant(label_invariant_draws(draws, X, lp))
    assert raw.names == ("lp", "weights_sorted[0]", "weights_sorted[1]", "max_membership_mean",
                         "max_membership_worst")
    assert raw.r_hat_max < 1.05, raw
    assert np.all(raw.ess_bulk > 100) and np.all(raw.ess_tail > 100), raw
    np.testing.assert_allclose(raw.r_hat[0], rhat(lp))
    table = bz.summary(bz.to_inference_data(draws, X, log_likelihood=False), ["means"],
                       kind="diagnostics")
    # the labels disagree across chains on the first feature (the clusters' axis)
    assert table.loc[["means[0, 0]", "means[1, 0]"], "r_hat"].min() > 1.5, table
    rel = relabel(draws, truth).params
    np.testing.assert_allclose(label_invariant(label_invariant_draws(rel, X, lp)).r_hat,
                               raw.r_hat, rtol=1e-12)


@pytest.fixture(scope="module")
def two_modes():
    """Three clusters (weights 0.5, 0.3, 0.2, 8 sd apart) fitted with K = 2: two chains
    started where the 0.3 and 0.2 clusters share a component, two where the 0.5 and 0.3
    do. Both are posterior modes that NUTS does not leave in 150 iterations."""
    centres = np.array([[-8.0, 0.0], [0.0, 0.0], [8.0, 0.0]])
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(c, 1.0, (n, 2)) for c, n in zip(centres, (75, 45, 30))])
    X = X.astype(np.float32)

    def start(groups):
        parts = [X[np.isin(np.argmin(((X[:, None] - centres) ** 2).sum(-1), axis=1), g)]
                 for g in groups]
        return GMMParams(np.array([len(p) / len(X) for p in parts]),
                         np.stack([p.mean(0) for p in parts]),
                         np.stack([np.linalg.cholesky(np.cov(p.T)) for p in parts]),
                         "full").astype(np.float32)

    a, b = start([[0], [1, 2]]), start([[0, 1], [2]])
    priors = Priors(mean_loc=np.zeros(2), mean_scale=8.0, scale_loc=1.0).resolve(X)
    with jax.numpy_dtype_promotion("standard"):
        runs = [sample_nuts(jax.random.PRNGKey(seed), X, s, n_components=2, priors=priors,
                            n_warmup=100, n_draws=100, n_chains=2)
                for seed, s in [(0, a), (1, b)]]
    return runs, a, X


def test_label_invariant_rhat_large_where_chains_sit_in_different_modes(two_modes):
    """The label-invariant R-hats (which relabeling cannot move) see chains in different
    modes, and health_.label_invariant carries them."""
    runs, reference, X = two_modes
    post = _posterior(runs, reference, X)
    inv = post.health.label_invariant
    by_name = dict(zip(inv.names, inv.r_hat))
    assert by_name["lp"] > 1.5 and by_name["weights_sorted[1]"] > 1.5, inv
    weights = np.sort(np.asarray(post.params.weights), axis=-1).mean(axis=1)  # (C, K)
    np.testing.assert_allclose(weights[:2, 1], 0.5, atol=0.1)  # 0.5 | 0.3 + 0.2
    np.testing.assert_allclose(weights[2:, 1], 0.8, atol=0.1)  # 0.5 + 0.3 | 0.2
    assert not post.health.healthy


def test_posterior_mean_of_float32_draws_far_from_zero_is_accumulated_in_float64():
    """150 float32 draws of means near 1e4: their posterior mean is the float64 mean
    rounded once to float32 (summed in float32 it came out 8e-4 off here, 1.7 times
    that rounding; on an SVI fit's 150 draws near 1e4, 7e-3 with the prior's centre
    off too)."""
    from bayesgmm.bayes.relabel import posterior_mean

    rng = np.random.default_rng(0)
    means = (1e4 + 0.01 * rng.standard_normal((1, 150, 3, 2))).astype(np.float32)
    draws = GMMParams(np.full((1, 150, 3), 1 / 3, np.float32), means,
                      np.broadcast_to(np.eye(2, dtype=np.float32), (1, 150, 3, 2, 2)))
    mean = posterior_mean(draws)
    assert mean.means.dtype == np.float32
    exact = means.astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_array_less(np.abs(mean.means - exact), 2.0**-11 + 1e-9)
