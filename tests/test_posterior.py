"""Relabeling recovers known permutations; membership and co-clustering summaries; R-hat
and the health checks; and the ArviZ views the posterior is read through
(bayes/arviz.py has no test module of its own yet)."""

import jax
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

from bayesgmm import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.bayes.posterior import coclustering, membership, permute_sites, relabel, rhat


def _draws(ct, C=3, S=40, seed=0):
    """Noisy copies of a 3-component mixture, with each draw's labels shuffled."""
    rng = np.random.RandomState(seed)
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    w = np.array([0.5, 0.3, 0.2])
    factor = {"full": np.tile(np.eye(2), (3, 1, 1)), "tied": np.eye(2),
              "diag": np.ones((3, 2)), "spherical": np.ones(3)}[ct]
    M = C * S
    W = w + rng.normal(0, 0.01, (M, 3))
    Mu = means + rng.normal(0, 0.1, (M, 3, 2))
    F = np.broadcast_to(factor, (M, *factor.shape)).copy()
    # NUTS's failure mode: each chain settles in its own labeling (plus a few switches).
    chain_perm = np.stack([rng.permutation(3) for _ in range(C)])
    perms = np.repeat(chain_perm, S, axis=0)
    flip = rng.rand(M) < 0.1
    for i in np.flatnonzero(flip):
        perms[i] = rng.permutation(3)
    take = lambda a: np.take_along_axis(a, perms.reshape(M, 3, *([1] * (a.ndim - 2))), axis=1)
    shuffled = GMMParams(take(W), take(Mu), F if ct == "tied" else take(F), ct)
    shuffled = jax.tree_util.tree_map(lambda a: a.reshape(C, S, *a.shape[1:]), shuffled)
    truth = GMMParams(w, means, factor, ct)
    return shuffled, truth, W.reshape(C, S, 3), Mu.reshape(C, S, 3, 2)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_relabel_undoes_label_switching(ct):
    draws, truth, W, Mu = _draws(ct)
    rel = relabel(draws, truth)
    np.testing.assert_allclose(rel.params.weights, W, atol=1e-12)
    np.testing.assert_allclose(rel.params.means, Mu, atol=1e-12)
    assert rel.n_switched > 0
    # Label switching shows in R-hat of the raw draws and is gone after relabeling.
    assert rhat(np.asarray(draws.means)[..., 0, 0]) > 1.1
    assert rhat(rel.params.means[..., 0, 0]) < 1.05


def test_permute_sites_matches_params():
    draws, truth, _, _ = _draws("diag")
    rel = relabel(draws, truth)
    sites = permute_sites({"means": np.asarray(draws.means), "scales": np.asarray(draws.cov_factor)},
                          rel.permutations)
    np.testing.assert_allclose(sites["means"], rel.params.means)
    np.testing.assert_allclose(sites["scales"], rel.params.cov_factor)


def test_membership_and_coclustering():
    draws, truth, _, _ = _draws("full", C=2, S=30)
    rel = relabel(draws, truth)
    X = np.array([[0.0, 0.0], [5.0, 0.0], [2.5, 0.0], [0.1, -0.1]])
    mean, lo, hi = membership(rel.params, X, prob=0.9)
    np.testing.assert_allclose(mean.sum(1), 1.0, atol=1e-6)
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
    width = (hi - lo).max(1)
    assert width[2] > 0.1 and width[0] < 1e-3  # halfway point vs deep inside
    cc = coclustering(rel.params, X)
    np.testing.assert_allclose(cc, cc.T, atol=1e-6)
    # P(z_i = z_i) = 1 exactly; the E_θ[Σ_k r_ik²] of the i != j formula is below 1 for
    # the halfway point (index 2), whose membership is uncertain.
    np.testing.assert_array_equal(np.diag(cc), 1.0)
    assert np.mean(np.sum(np.square(_resp(rel.params, X)), axis=-1), axis=0)[2] < 0.9
    assert cc[0, 3] > 0.99 and cc[0, 1] < 0.01
    # Co-clustering is label-invariant: the shuffled draws give the same matrix.
    np.testing.assert_allclose(coclustering(draws, X), cc, atol=1e-6)
    with pytest.raises(ValueError, match="prob"):
        membership(rel.params, X, prob=1.5)


def _resp(draws, X):
    """(M, N, K) responsibilities of each draw, by the core's predict_proba."""
    from bayesgmm.density import predict_proba

    flat = draws.flatten_batch()
    return np.stack([np.asarray(predict_proba(jax.tree_util.tree_map(lambda a: a[m], flat), X))
                     for m in range(flat.weights.shape[0])])


def test_coclustering_n2000_in_chunks():
    from bayesgmm.density import predict_proba

    draws, truth, _, _ = _draws("spherical", C=1, S=8)
    X = np.random.RandomState(0).normal(0, 3, (2000, 2))
    cc = coclustering(draws, X, chunk_size=300)
    assert cc.shape == (2000, 2000) and np.all((cc >= -1e-6) & (cc <= 1 + 1e-6))
    # Direct computation on a few rows: mean over draws of R_s R_sᵀ.
    R = np.asarray(predict_proba(jax.tree_util.tree_map(lambda a: a[0], draws), X))
    direct = np.einsum("mik,mjk->ij", R[:, :5], R) / R.shape[0]
    direct[np.arange(5), np.arange(5)] = 1.0  # P(z_i = z_i)
    np.testing.assert_allclose(cc[:5], direct, atol=1e-5)


@pytest.mark.parametrize("shape,shift", [((4, 100), 0.0), ((4, 100), 0.5), ((2, 7), 0.3),
                                         ((3, 501), 0.1)])
def test_rhat_equals_arvizs(shape, shift):
    """Our NumPy R-hat is ArviZ's rank-normalised split R-hat (the oracle), also with
    ties (a discrete quantity) and a constant chain."""
    import arviz as az

    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    x[0] += shift
    np.testing.assert_allclose(rhat(x), float(az.rhat(x)), rtol=1e-12)
    ties = rng.integers(0, 3, size=shape).astype(float)
    np.testing.assert_allclose(rhat(ties), float(az.rhat(ties)), rtol=1e-12)
    x[1] = 2.0
    np.testing.assert_allclose(rhat(x), float(az.rhat(x)), rtol=1e-12)
    assert np.isnan(rhat(x[:1])) and np.isnan(rhat(x[:, :3]))


def _nuts_info(C=4, S=200, seed=0, **changes):
    from bayesgmm.bayes.inference import NUTSInfo

    rng = np.random.default_rng(seed)
    n_steps = np.full((C, S), 7)
    info = NUTSInfo(diverging=np.zeros((C, S), bool), n_steps=n_steps,
                    tree_depth=np.full((C, S), 3, np.int32), step_size=np.full((C, S), 0.4),
                    energy=rng.normal(size=(C, S)), lp=rng.normal(size=(C, S)) - 300,
                    acceptance_rate=np.full((C, S), 0.8), chain_method="vectorized",
                    max_tree_depth=10)
    return info._replace(**changes)


def _result(info, method="nuts"):
    from bayesgmm.bayes.inference import InferenceResult

    C = info.lp.shape[0] if method == "nuts" else 1
    params = GMMParams(np.full((C, 1, 2), 0.5), np.zeros((C, 1, 2, 2)), np.ones((C, 1, 2, 2)),
                       "diag")
    return InferenceResult(method, params, {}, info)


def test_diagnose_names_each_problem_of_unhealthy_chains():
    from bayesgmm.bayes.posterior import diagnose

    healthy = diagnose(_result(_nuts_info()))
    assert healthy.warnings == () and healthy.finite
    np.testing.assert_array_equal(healthy.n_divergent, 0)
    assert healthy.lp_rhat < 1.05
    base = _nuts_info()
    diverging = base.diverging.copy()
    diverging[1, :5] = True
    depth = base.tree_depth.copy()
    depth[2, :50] = 10
    step = base.step_size.copy()
    step[3] = 0.01
    lp = base.lp.copy()
    lp[0] += 50  # one chain in another mode
    sick = diagnose(_result(base._replace(diverging=diverging, tree_depth=depth,
                                          step_size=step, lp=lp)))
    np.testing.assert_array_equal(sick.n_divergent, [0, 5, 0, 0])
    np.testing.assert_allclose(sick.at_max_depth, [0, 0, 0.25, 0])
    assert sick.step_size[3] == 0.01 and sick.lp_rhat > 1.05
    text = " | ".join(sick.warnings)
    for phrase in ("5 divergent transitions", "chains [2] hit max_tree_depth=10",
                   "chain 3 adapted a step size", "log-density R-hat"):
        assert phrase in text, text
    assert len(sick.warnings) == 4


def _sticky(C, S, phi, seed):
    """C chains of one stationary AR(1) process (mean -300, sd 5, lag-one correlation
    ``phi``), each started from its stationary distribution: the same distribution in
    every chain, sampled with strong autocorrelation."""
    rng = np.random.default_rng(seed)
    x = np.empty((C, S))
    x[:, 0] = rng.normal(size=C)
    e = rng.normal(size=(C, S)) * np.sqrt(1 - phi ** 2)
    for t in range(1, S):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x * 5.0 - 300


def test_diagnose_tells_slow_mixing_from_another_mode():
    """Chains of one slowly mixing process disagree (log-density R-hat > 1.05) only by
    their Monte Carlo error: the warning says they mix slowly and names more draws, not
    another mode. A chain shifted by 20 sd of its draws (independent ones) is in another
    mode and named."""
    from bayesgmm.bayes.posterior import LP_RHAT_MAX, _lp_errors, diagnose

    lp = _sticky(4, 400, 0.99, seed=1)
    slow = diagnose(_result(_nuts_info(S=400, lp=lp)))
    assert slow.lp_rhat > LP_RHAT_MAX
    assert np.all(_lp_errors(lp) <= 4.0), _lp_errors(lp)
    (text,) = slow.warnings
    assert "mix too slowly" in text and "n_draws" in text and "another mode" not in text
    assert "ESS of the log density per chain" in text
    lp = np.random.default_rng(2).normal(-300, 5.0, (4, 400))
    lp[2] += 100
    mode = diagnose(_result(_nuts_info(S=400, lp=lp)))
    (text,) = mode.warnings
    assert "chains [2] lie > 100 Monte Carlo errors" in text and "another mode" in text
    assert "n_draws" not in text
    assert _lp_errors(lp)[2] > 100  # 100 / (5 / sqrt(400)) = 400 errors away


def test_diagnose_names_warm_up_when_most_transitions_diverge():
    """n_warmup=0 leaves NUTS's step size unadapted and nearly every transition diverges:
    the warning names the warm-up, not target_accept_prob or the priors."""
    from bayesgmm.bayes.posterior import diagnose

    base = _nuts_info()
    diverging = np.ones_like(base.diverging)
    diverging[:, :10] = False
    (text,) = diagnose(_result(base._replace(diverging=diverging))).warnings
    assert text.startswith("760 divergent transitions of 800") and "raise n_warmup" in text
    assert "target_accept_prob" not in text


def test_diagnose_map_and_svi_objectives():
    from bayesgmm.bayes.inference import MAPInfo, SVIInfo
    from bayesgmm.bayes.posterior import diagnose

    good = MAPInfo(np.linspace(-10.0, -5.0, 11), 10, True, 0.0)
    assert diagnose(_result(good, "map")).warnings == ()
    bad = diagnose(_result(good._replace(log_density=np.r_[good.log_density[:-1], np.nan]),
                           "map"))
    assert not bad.finite and "non-finite" in bad.warnings[0]
    elbo = np.linspace(-10.0, -5.0, 100)
    assert diagnose(_result(SVIInfo(elbo, 100, -5.0), "svi")).warnings == ()
    elbo[-1] = -np.inf
    assert "learning_rate" in diagnose(_result(SVIInfo(elbo, 100, -np.inf), "svi")).warnings[0]


# ---- ArviZ views: the one-draw export and LOO's pointwise log-likelihood ------------


def test_em_fit_exports_as_one_draw(blobs):
    from bayesgmm.bayes.arviz import from_params

    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    idata = from_params(gm.params_, X)
    assert idata.posterior.sizes["chain"] == 1 and idata.posterior.sizes["draw"] == 1
    ll = idata.log_likelihood.obs.values[0, 0]
    np.testing.assert_allclose(ll, gm.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(idata.posterior.covariances.values[0, 0], gm.covariances_,
                               rtol=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical", "tied"])
def test_pointwise_log_likelihood_on_the_host_equals_the_compiled_one(blobs, ct):
    """LOO's pointwise log p(x_n | θ_cs) runs in NumPy for small problems: the same
    numbers as the compiled scorer (float64), over (chain, draw) batches of fits."""
    from bayesgmm.bayes.arviz import pointwise_log_likelihood

    X = blobs[0][:150]
    models = [GaussianMixture(3, covariance_type=ct, random_state=s).fit(X)
              for s in range(6)]
    batch = jax.tree_util.tree_map(lambda *a: np.stack(a).reshape((2, 3) + a[0].shape),
                                   *[m.params_ for m in models])
    host = pointwise_log_likelihood(batch, X, engine="numpy")
    compiled = pointwise_log_likelihood(batch, X, engine="jax")
    assert host.shape == (2, 3, 150) and host.dtype == np.float64
    np.testing.assert_allclose(host, compiled, rtol=1e-10)
    np.testing.assert_allclose(host[1, 2], models[5].score_samples(X), rtol=1e-10)


# ---- predictive density, predictive draws, criteria at a point ------------------------

def _two_draws():
    """Two parameter sets as draws with batch shape (1, 2), far apart."""
    w = np.array([[[0.3, 0.7], [0.5, 0.5]]])
    means = np.array([[[[0.0, 0.0], [3.0, 1.0]], [[40.0, 0.0], [44.0, 2.0]]]])
    L = np.array([[0.8, 0.0], [0.3, 0.5]])
    factor = np.broadcast_to(L, (1, 2, 2, 2, 2)).copy()
    return GMMParams(w, means, factor, "full")


def test_log_predictive_density_is_the_log_mean_density():
    """log E_θ[p(x | θ)] over two draws equals log of the mean of their scipy densities."""
    from scipy.stats import multivariate_normal

    from bayesgmm.bayes.posterior import log_predictive_density

    draws = _two_draws()
    X = np.random.default_rng(0).normal(size=(50, 2)) * 3 + [20.0, 0.0]
    X[:10] -= [20.0, 0.0]
    dens = []
    for s in range(2):
        cov = draws.cov_factor[0, s] @ np.swapaxes(draws.cov_factor[0, s], -1, -2)
        dens.append(sum(draws.weights[0, s, k] * multivariate_normal(draws.means[0, s, k],
                                                                     cov[k]).pdf(X)
                        for k in range(2)))
    expect = np.log((dens[0] + dens[1]) / 2)
    out = log_predictive_density(draws, X)
    assert out.shape == (50,) and out.dtype == np.float64
    np.testing.assert_allclose(out, expect, rtol=1e-10)


def test_sample_predictive_draws_from_each_posterior_draw():
    from bayesgmm.bayes.posterior import sample_predictive

    draws = _two_draws()
    X, y = sample_predictive(jax.random.PRNGKey(0), draws, 2000)
    assert X.shape == (2000, 2) and y.shape == (2000,) and set(np.unique(y)) <= {0, 1}
    far = X[:, 0] > 20  # from the second draw (means near x = 40)
    assert abs(far.mean() - 0.5) < 0.05
    # within the first draw, component 1 (weight 0.7) sits near x = 3
    assert abs((y[~far] == 1).mean() - 0.7) < 0.05


@pytest.mark.parametrize("n_samples", [150, 100_000])  # scored in NumPy, then compiled
def test_information_criteria_equal_sklearns(n_samples):
    from sklearn.mixture import GaussianMixture as SkGM

    from bayesgmm.bayes.posterior import information_criteria
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=n_samples, centers=4, random_state=1)
    sk = SkGM(4, random_state=0).fit(X)
    crit = information_criteria(GMMParams.from_estimator(sk), X)
    np.testing.assert_allclose(crit["bic"], sk.bic(X), rtol=1e-9)
    np.testing.assert_allclose(crit["aic"], sk.aic(X), rtol=1e-9)
