"""Degenerate posteriors caught (bayesgmm/bayes/posterior.py: health), K chosen honestly
(compare_n_components), the over-fitted mixture (sparse=True), the issue-21 bugs
(loo/waic after MAP, NUTS progress on the fast sampler) and bad input on the Bayesian
path."""

import warnings

import jax
import numpy as np
import pytest

from bayesgmm import BayesianGaussianMixture, Priors
from bayesgmm.bayes import SamplingWarning
from bayesgmm.bayes.posterior import health
from bayesgmm.datasets import make_blobs
from bayesgmm.params import GMMParams

pytestmark = pytest.mark.usefixtures("standard_promotion")


# ---- health on draws whose defects are known ----------------------------------------

def _chains(C=4, S=60, seed=0):
    """Draws of a known 3-component mixture in 2-D (means 0, (5, 0), (0, 5); unit
    covariances) with small noise, the data drawn from it: every chain healthy."""
    rng = np.random.RandomState(seed)
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    w = np.array([0.5, 0.3, 0.2])
    X = np.concatenate([rng.normal(m, 1.0, (int(300 * p), 2)) for m, p in zip(means, w)])
    W = np.abs(w + rng.normal(0, 0.01, (C, S, 3)))
    W /= W.sum(-1, keepdims=True)
    Mu = means + rng.normal(0, 0.05, (C, S, 3, 2))
    F = np.tile(np.eye(2), (C, S, 3, 1, 1)) * (1 + rng.normal(0, 0.02, (C, S, 3, 1, 1)))
    lp = rng.normal(-1000, 2.0, (C, S))
    return GMMParams(W, Mu, F, "full"), X, lp


def test_health_of_healthy_chains():
    draws, X, lp = _chains()
    h = health(draws, X, lp=lp)
    assert h.healthy and h.problems == (), h.problems
    assert not h.collapsed.any() and not h.empty.any() and not h.stray.any()
    assert h.chain_ok.all() and h.n_high_pareto_k == -1  # no idata: not computed
    assert np.all(h.coclustering_disagreement < 0.005)
    np.testing.assert_array_equal(h.n_nonempty, 3)


def test_health_names_draws_too_correlated_to_summarise():
    """One mean coordinate as a slow random walk (a sticky chain): its bulk ESS, ArviZ's
    of those draws, falls below ESS_MIN and is named; independent draws pass, and ten
    draws are too few whatever they are."""
    from bayesgmm.bayes.arviz import ess
    from bayesgmm.bayes.posterior import ESS_MIN

    draws, X, lp = _chains(C=2, S=100)
    h = health(draws, X, lp=lp)
    assert h.ess_bulk_min > 5 * ESS_MIN and not any("ESS" in p for p in h.problems)
    rng = np.random.RandomState(1)
    means = np.array(draws.means)
    means[..., 1, 0] = 5.0 + np.cumsum(rng.normal(0, 0.05, (2, 100)), axis=1)
    h = health(GMMParams(draws.weights, means, draws.cov_factor, "full"), X, lp=lp)
    assert h.ess_bulk_min == pytest.approx(ess(means[..., 1, 0], "bulk"), rel=1e-12)
    assert h.ess_bulk_min < ESS_MIN and not h.healthy
    assert any("bulk ESS" in p and "means[1, 0]" in p and "n_draws" in p
               for p in h.problems), h.problems
    few, X, lp = _chains(C=1, S=10)
    h = health(few, X, lp=lp)
    assert h.ess_bulk_min <= 10 and any("bulk ESS" in p for p in h.problems)


def test_health_names_the_collapsed_component_and_the_stray_chain():
    """Chain 2 puts component 1 on a spike (a degenerate covariance: smallest scale ~1e-6
    of the data's sd, along a correlation) with a much higher log density, and component
    2 near zero weight: as the iris K=4 fit of issue 21."""
    draws, X, lp = _chains()
    F = np.array(draws.cov_factor)
    sd = X.std(axis=0)
    # lower Cholesky of a nearly singular covariance: rows (s0, 0), (s1, 1e-5·s1)
    F[2, :, 1] = [[sd[0], 0.0], [sd[1], 1e-6 * sd[1]]]
    W = np.array(draws.weights)
    W[2, :, 2] = 1e-5
    W[2] /= W[2].sum(-1, keepdims=True)
    lp[2] += 200.0
    h = health(GMMParams(W, draws.means, F, "full"), X, lp=lp)
    assert not h.healthy
    np.testing.assert_array_equal(h.collapsed, [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(h.empty[:, 2], [0, 0, 1, 0])
    np.testing.assert_array_equal(h.stray, [0, 0, 1, 0])
    np.testing.assert_array_equal(h.chain_ok, [1, 1, 0, 1])
    assert h.lp_rhat > 1.05
    text = " ".join(h.problems)
    assert "component 1 collapsed in chains [2]" in text
    assert "component 2 is empty in chains [2]" in text
    assert "chains [2] sit in another mode" in text
    # what print(fit.health_) shows: the verdict, the figures, every problem; no arrays
    shown = str(h)
    assert shown.startswith("Health: NOT healthy (4 chains x 60 draws, K = 3)"), shown
    for line in ("chains in another mode: [2]", "component 1 collapsed in chains [2]",
                 "component 2 empty in chains [2]", f"log-density R-hat {h.lp_rhat:.3f}",
                 *(f"  - {p}" for p in h.problems)):
        assert line in shown, (line, shown)
    assert "array(" not in shown and str(health(*_chains()[:2], lp=_chains()[2])).startswith(
        "Health: healthy (4 chains x 60 draws, K = 3)")
    # With a sparse prior an empty component is the point, not a problem.
    hs = health(GMMParams(W, draws.means, F, "full"), X, lp=lp, sparse=True)
    assert not any("empty" in p for p in hs.problems) and hs.empty[2, 2]


def test_a_chain_apart_on_the_log_density_alone_is_named_by_that_test():
    """Chain 1's log density 50 above the others' (independent draws: ~300 Monte Carlo
    errors), its clustering the same: it is in another mode, and the sentence gives the
    log density's numbers, not a co-clustering disagreement it did not have."""
    draws, X, lp = _chains()
    lp[1] += 50.0
    h = health(draws, X, lp=lp)
    np.testing.assert_array_equal(h.stray, [0, 1, 0, 0])
    (text,) = [p for p in h.problems if "another mode" in p]
    assert text.startswith("chains [1] sit in another mode (mean log density per chain")
    assert "co-clustering" not in text and "do not agree on the log density" in text


def test_a_component_of_one_row_in_n_is_not_empty():
    """Weights of exactly 1/N, less round-off (1e-13), as a MAP of K = N gives: each
    component holds one row, none is empty."""
    draws, X, lp = _chains(C=1, S=1)
    N = 10
    X = X[:N]
    W = np.full((1, 1, 3), 1.0 / N - 1e-13)
    W[..., 0] = 1 - 2 * W[..., 1]  # the rest: weights sum to 1
    h = health(GMMParams(W, draws.means, draws.cov_factor, "full"), X)
    assert not h.empty.any() and h.n_nonempty.ravel().tolist() == [3], h.problems


def test_coclustering_disagreement_sees_a_chain_in_another_labeling_of_the_data():
    """Label-invariant: chain 1 merges components 1 and 2 into one (a different
    clustering); relabeling cannot hide it, and the log density is left equal."""
    draws, X, lp = _chains(C=2)
    Mu = np.array(draws.means)
    Mu[1, :, 2] = Mu[1, :, 1]  # chain 1: components 1 and 2 on the same cluster
    h = health(GMMParams(draws.weights, Mu, draws.cov_factor, "full"), X, lp=lp)
    assert np.all(h.coclustering_disagreement > 0.02), h.coclustering_disagreement  # half the gap each
    assert h.stray.all() and not h.healthy


def test_health_tells_chains_that_mix_slowly_from_chains_in_another_mode():
    """Every chain moves between two clusterings (components 1 and 2 apart, or merged on
    one cluster) in long runs, so that their co-clustering differs (disagreement above
    0.02) but no more than each chain's halves differ: slow mixing, named with more
    draws as the fix, and no chain called stray. The same chains with chain 3 merged
    throughout while the others never merge: chain 3 is in another mode."""
    from bayesgmm.bayes.posterior import COCLUSTERING_MAX

    draws, X, lp = _chains(C=4, S=100)
    Mu = np.array(draws.means)
    merged = np.zeros((4, 100), bool)  # runs of 25 draws merged, a different share each
    merged[0, :75] = True
    merged[1, 25:75] = True
    merged[2, 50:] = True
    merged[3, :25] = True
    Mu[:, :, 2][merged] = Mu[:, :, 1][merged]
    h = health(GMMParams(draws.weights, Mu, draws.cov_factor, "full"), X, lp=lp)
    assert np.any(h.coclustering_disagreement > COCLUSTERING_MAX), h.coclustering_disagreement
    assert not h.stray.any() and h.slow.any() and h.chain_ok.all() and not h.healthy
    text = " ".join(h.problems)
    assert "mix slowly" in text and "n_draws" in text and "another mode" not in text
    Mu = np.array(draws.means)
    Mu[3, :, 2] = Mu[3, :, 1]
    h = health(GMMParams(draws.weights, Mu, draws.cov_factor, "full"), X, lp=lp)
    np.testing.assert_array_equal(h.stray, [0, 0, 0, 1])
    assert not h.slow.any() and "chains [3] sit in another mode" in " ".join(h.problems)


# ---- the bugs of issue 21 --------------------------------------------------------------

@pytest.fixture(scope="module")
def map_fit(blobs):
    with jax.numpy_dtype_promotion("standard"):
        return BayesianGaussianMixture(4, method="map", random_state=0).fit(blobs[0])


@pytest.mark.parametrize("name", ["loo", "waic"])
def test_loo_and_waic_after_map_say_they_need_draws(map_fit, name):
    with pytest.raises(ValueError, match="need posterior draws.*method='nuts' or method='svi'"):
        getattr(map_fit, name)()


def test_map_fit_reports_its_health(map_fit, blobs):
    h = map_fit.health_
    assert h.healthy and h.collapsed.shape == (1, 4) and h.n_high_pareto_k == -1
    assert str(h) == "Health: healthy (1 chain x 1 draw, K = 4)"
    np.testing.assert_array_equal(np.diag(map_fit.coclustering(blobs[0])), 1.0)


QUIET_NUTS = dict(n_chains=2, n_warmup=30, n_draws=30, random_state=0)


@pytest.fixture(scope="module")
def quiet_nuts(blobs):
    """NUTS at K = 2 on the first 120 seed blobs (float32), 2 chains x (30 + 30), no
    progress bar: the progress-bar test's reference and the label-invariant test's fit."""
    with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return BayesianGaussianMixture(2, **QUIET_NUTS).fit(blobs[0][:120].astype(np.float32))


def test_nuts_progress_bar_stays_on_the_fast_sampler(blobs, capsys, quiet_nuts):
    """progress_bar=True runs the compiled vectorized sampler with a host callback (no
    NumPyro MCMC object is made), shows a bar, and gives the same draws."""
    from bayesgmm.bayes.inference import nuts

    X = blobs[0][:120].astype(np.float32)
    kw = QUIET_NUTS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        quiet = quiet_nuts
        capsys.readouterr()
        shown = BayesianGaussianMixture(2, progress_bar=True, **kw).fit(X)
    err = capsys.readouterr().err
    assert "NUTS, 2 chains" in err and "120/120" in err, err  # 2 chains x 60 iterations
    np.testing.assert_array_equal(shown.params_.means, quiet.params_.means)
    np.testing.assert_array_equal(shown.idata_.sample_stats.lp.values,
                                  quiet.idata_.sample_stats.lp.values)
    made = [type(v).__name__ for v in nuts._MCMC_CACHE.values()]
    assert "MCMC" not in made, made


# ---- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"priors": Priors(mean_loc=[0.0, 0.0, 0.0])},
     r"Priors.mean_loc must be a number or 2 numbers .* got shape \(3,\)"),
    ({"priors": Priors(scale_loc=np.ones((2, 2)))}, r"Priors.scale_loc .* shape \(2, 2\)"),
    ({"priors": Priors(weight_concentration="a")}, "Priors.weight_concentration must be a number"),
    ({"priors": Priors(mean_scale=["x", 1.0])}, "Priors.mean_scale must be"),
    ({"priors": Priors(lkj_concentration=0.0)}, "Priors.lkj_concentration must be > 0"),
    ({"priors": Priors(scale_log_sd=np.inf)}, "Priors.scale_log_sd must be finite"),
    ({"priors": Priors(scale_loc=[1.0, -1.0])}, "Priors.scale_loc must be > 0 in every feature"),
    ({"priors": Priors(scale_prior="gamma")}, "Priors.scale_prior must be one of"),
    ({"priors": Priors(scale_shape=-2.0)}, "Priors.scale_shape must be > 0"),
    ({"progress_bar": "yes"}, "progress_bar must be True or False"),
    ({"sparse": 1.5}, "sparse must be True or False"),
    ({"method": "mcmc"}, r"'method' should be one of \('nuts', 'map', 'svi'\)"),
    ({"n_chains": 0}, "'n_chains' should be an integer >= 1"),
    ({"n_draws": 0}, "'n_draws' should be an integer >= 1"),
])
def test_bad_input_gets_one_line_naming_the_field(blobs, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        BayesianGaussianMixture(2, **kwargs).fit(blobs[0])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_data_refused_at_fit_and_prediction(map_fit, blobs, bad):
    X = blobs[0].copy()
    X[5, 1] = bad
    with pytest.raises(ValueError, match="(NaN|infinity).*row 5, column 1"):
        BayesianGaussianMixture(2, method="map").fit(X)
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        map_fit.predict_proba(X)
    with pytest.raises(ValueError, match="X has 3 features, but BayesianGaussianMixture is "
                                         "expecting 2"):
        map_fit.predict(np.zeros((4, 3)))


# ---- K chosen honestly; the over-fitted mixture ---------------------------------------

def test_compare_n_components_never_ranks_the_collapsed_iris_k4():
    """Issue 21: on standardised iris, K=4 was ranked first (stacking weight 0.94) while
    one chain sat on a collapsed component. Its health must be flagged, its warnings must
    name K=4, and it must not be ranked, let alone first."""
    from sklearn.datasets import load_iris

    from bayesgmm.bayes import compare_n_components

    X = load_iris().data
    X = (X - X.mean(0)) / X.std(0)
    with pytest.warns(SamplingWarning) as record:
        out = compare_n_components(X, range(2, 5), n_chains=4, n_warmup=150, n_draws=100)
    table = out["health"]
    assert list(table.columns) == ["K", "elpd_loo", "se", "p_loo", "n_pareto_k_high",
                                   "rhat_max", "ess_bulk_min", "healthy", "ranked"]
    assert list(table["K"]) == [2, 3, 4]
    k4 = out["fits"]["K=4"].health_
    assert not table.loc["K=4", "healthy"] and not table.loc["K=4", "ranked"]
    # a degeneracy issue 21 names: a collapsed or empty component, a stray chain, or
    # chains in different modes (the log density's R-hat); which one depends on the
    # draws (JAX 0.10 on Python 3.11 collapses, JAX 0.12 on 3.13 splits the modes)
    assert not k4.healthy and (k4.collapsed.any() or k4.empty.any() or k4.stray.any()
                               or k4.lp_rhat > 1.05)
    summary = out["fits"]["K=4"].summary(kind="diagnostics")
    assert summary.attrs["healthy"] is False and summary.attrs["problems"][0].startswith("K=4: ")
    assert out["best_loo"] != 4
    assert out["compare"] is None or "K=4" not in out["compare"].index
    messages = [str(r.message) for r in record]
    assert any(m.startswith("K=4: ") and "left out of the LOO ranking" in m for m in messages)
    # the healthy fits are ranked, and their table rows carry LOO's numbers
    assert table.loc[table["healthy"], "ranked"].all() and table["healthy"].any()
    np.testing.assert_allclose(table.loc["K=2", "elpd_loo"], out["fits"]["K=2"].loo().elpd)
    # every K ran on the one program padded to K = 4, trees capped at depth 7
    for fit in out["fits"].values():
        assert fit.n_padded == 4 and fit.max_tree_depth == 7
        assert fit.diagnostics_ is not None and fit.params_.weights.shape[-1] == fit.n_components
        assert int(fit.idata_.sample_stats["tree_depth"].max()) <= 7


def test_sparse_prior_empties_the_extra_components():
    """K=6 on 3 well-separated clusters with sparse=True (Dirichlet 0.5/K): the posterior
    mean weights of 3 components are < 0.02, and most draws have 3 non-empty components
    (weight >= 1/N), where EM's start used all 6. Warm-up at the estimator's default
    (500): with 200, one of the two chains of seed 0 still held a twin component
    (weight 0.058) through all its draws on JAX 0.10.2 / AVX-512, the others emptied it.
    With 500 warm-up (seeds 0-3, 2 chains each, MAP steps scaled to the data's spread)
    the chains spend 86-92% of their draws at 3 but one, seed 0's second chain, 70%
    (a twin kept longer): 80% over both chains of seed 0."""
    X, _ = make_blobs(n_samples=300, centers=[[-6, 0], [0, 6], [6, 0]], cluster_std=0.7,
                      random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = BayesianGaussianMixture(6, sparse=True, n_chains=2, n_warmup=500, n_draws=200,
                                      init_params="kmeans",  # a start that splits them
                                      random_state=0).fit(X)
    w = np.sort(fit.weights_)
    assert np.all(w[:3] < 0.02) and np.all(w[3:] > 0.25), w
    assert np.sort(fit.em_.weights_)[0] > 0.05  # the start split the clusters
    assert np.mean(fit.health_.n_nonempty == 3) >= 0.75, np.bincount(fit.health_.n_nonempty.ravel())
    assert not fit.health_.empty.any() or not any("empty" in p for p in fit.health_.problems)


# ---- label-invariant diagnostics in summary() and health_ -------------------------------

def test_summary_reports_label_invariant_diagnostics(quiet_nuts):
    """summary(label_invariant=True) appends the log density, the sorted weights and the
    mean max membership; their rows are the same on raw and relabeled draws, match the
    draws they summarise, and equal table.attrs and health_.label_invariant."""
    from bayesgmm.bayes.posterior import rhat

    fit = quiet_nuts  # NUTS, 2 chains x 30 draws
    names = ["lp", "weights_sorted[0]", "weights_sorted[1]", "max_membership_mean"]
    table = fit.summary(label_invariant=True)
    assert list(table.index[-4:]) == names and len(fit.summary()) == len(table) - 4
    raw = fit.summary(relabeled=False, label_invariant=True)
    np.testing.assert_allclose(raw.loc[names].values, table.loc[names].values)
    lp = fit.idata_.sample_stats["lp"].values
    # means in float64, as the table's: a float32 mean of these float32 draws is off by
    # ~1e-7 relative (lp's and the weights' failed at rtol=1e-7 on the floors' run)
    np.testing.assert_allclose(table.loc["lp", ["mean", "r_hat"]],
                               [lp.mean(dtype=np.float64), rhat(lp)])
    w = np.asarray(fit.params_.weights)
    np.testing.assert_allclose(table.loc["weights_sorted[1]", "mean"],
                               w.max(-1).mean(dtype=np.float64))
    attrs = table.attrs["label_invariant"]
    inv = fit.health_.label_invariant
    assert set(attrs) == set(names) | {"max_membership_worst"} == set(inv.names)
    for name, r, e in zip(inv.names, inv.r_hat, inv.ess_bulk):
        np.testing.assert_allclose([attrs[name]["r_hat"], attrs[name]["ess_bulk"]], [r, e])
        if name in names:
            np.testing.assert_allclose(table.loc[name, ["r_hat", "ess_bulk"]], [r, e])
    assert table.attrs["label_invariant_rhat_max"] == inv.r_hat_max
