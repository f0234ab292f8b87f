"""BayesianGaussianMixture end to end: NUTS on the seed blobs (4 chains x 500+500),
relabeled diagnostics, membership intervals, ArviZ objects, MAP, SVI, LOO, errors."""


import os

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesgmm import BayesianGaussianMixture, GaussianMixture, Priors  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402
from bayesgmm.metrics import adjusted_rand_score  # noqa: E402
from bayesgmm.params import GMMParams  # noqa: E402

pytestmark = pytest.mark.usefixtures("standard_promotion")


@pytest.fixture(scope="module")
def nuts_fit(blobs):
    import jax

    with jax.numpy_dtype_promotion("standard"):
        X = blobs[0].astype(np.float32)
        fit = BayesianGaussianMixture(4, method="nuts", n_chains=4, n_warmup=500,
                                      n_draws=500, random_state=0).fit(X)
    return fit, X


def test_nuts_diagnostics_on_seed_blobs(nuts_fit):
    fit, X = nuts_fit
    assert int(fit.idata_.sample_stats.diverging.sum()) == 0
    summ = fit.summary()
    assert summ["r_hat"].max() <= 1.01, summ
    assert summ["ess_bulk"].min() >= 400, summ
    assert fit.warnings_ == []
    # Posterior means within 3 posterior sd of the EM estimates.
    post = fit.idata_.posterior
    for name, em_value in (("means", fit.em_.means_), ("weights", fit.em_.weights_)):
        mean = post[name].mean(("chain", "draw")).values
        sd = post[name].std(("chain", "draw")).values
        assert np.all(np.abs(mean - em_value) <= 3 * sd), name


def test_label_switching_reported_honestly(nuts_fit):
    fit, _ = nuts_fit
    raw = az.rhat(fit.idata_raw_, var_names=["means"])["means"].values
    rel = az.rhat(fit.idata_, var_names=["means"])["means"].values
    if fit.relabeling_.n_switched == 0:
        np.testing.assert_allclose(raw, rel)  # nothing switched, nothing changed
    else:
        assert raw.max() > rel.max()
    # The label-invariant log density agrees across chains.
    lp = fit.idata_.sample_stats.lp.values
    assert az.rhat(lp) < 1.01


def test_predictions_and_membership_intervals(nuts_fit, blobs):
    fit, X = nuts_fit
    proba = fit.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert adjusted_rand_score(blobs[1], fit.predict(X)) >= 0.99
    # Deep inside a component: narrow interval; halfway between the two closest: wide.
    mu = fit.means_
    d = np.linalg.norm(mu[:, None] - mu[None], axis=-1) + np.eye(4) * 1e9
    a, b = np.unravel_index(np.argmin(d), d.shape)
    probe = np.stack([mu[a], (mu[a] + mu[b]) / 2]).astype(np.float32)
    _, lo, hi = fit.membership_interval(probe, prob=0.94)
    width = (hi - lo).max(1)
    assert width[0] < 0.01 and width[1] > 0.2, width
    assert fit.score(X) == pytest.approx(fit.em_.score(X), abs=0.05)
    assert fit.bic(X) == pytest.approx(fit.em_.bic(X), rel=1e-3)
    cc = fit.coclustering(X[:50], max_draws=200)
    labels = fit.predict(X[:50])
    same = labels[:, None] == labels[None, :]
    assert cc[same].min() > 0.5 and cc[~same].max() < 0.5


def test_inference_data_groups_and_arviz_functions(nuts_fit, tmp_path):
    fit, X = nuts_fit
    idata = fit.idata_
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.groups()
    assert idata.posterior.means.dims == ("chain", "draw", "component", "feature")
    assert idata.posterior.covariances.dims[-1] == "feature_bis"
    assert idata.posterior.corr_chol.dims[-2:] == ("feature", "feature_bis")
    for stat in ("diverging", "tree_depth", "step_size", "energy", "lp"):
        assert stat in idata.sample_stats
    assert idata.log_likelihood.obs.shape == (4, 500, 300)
    assert idata.observed_data.obs.shape == (300, 2)
    loo = fit.loo()
    assert np.isfinite(loo.elpd_loo) and (loo.pareto_k.values < 0.7).all()
    assert np.isfinite(fit.waic().elpd_waic)
    axes = az.plot_trace(idata, var_names=["weights"])
    axes.ravel()[0].figure.savefig(tmp_path / "trace.png")
    plt.close("all")
    assert (tmp_path / "trace.png").stat().st_size > 10_000
    Xs, ys = fit.sample(50)
    assert Xs.shape == (50, 2) and ys.shape == (50,)


def test_map_is_close_to_em(blobs):
    X = blobs[0]
    fit = BayesianGaussianMixture(4, method="map", random_state=0).fit(X)
    assert fit.params_.batch_shape == (1, 1)
    np.testing.assert_allclose(fit.means_, fit.em_.means_, atol=0.02)
    np.testing.assert_allclose(fit.weights_, fit.em_.weights_, atol=0.01)
    assert fit.means_.dtype == np.float64
    idata = fit.idata_
    assert idata.posterior.sizes["draw"] == 1


@pytest.fixture(scope="module")
def simulated():
    L = np.array([[[0.8, 0.0], [0.3, 0.5]], [[0.5, 0.0], [-0.2, 0.6]], [[0.6, 0.0], [0.0, 0.4]]])
    truth = GMMParams(np.array([0.45, 0.35, 0.2]), np.array([[0.0, 0.0], [3.0, 2.5], [-2.5, 3.0]]),
                      L)
    return make_mixture(truth, 450, random_state=3)


def test_credible_intervals_cover_the_truth(simulated):
    data = simulated
    fit = BayesianGaussianMixture(3, n_chains=2, n_warmup=300, n_draws=400,
                                  random_state=1).fit(data.X.astype(np.float32))
    assert fit.warnings_ == []
    post = fit.idata_.posterior
    truth = data.params
    order = [int(np.argmin(np.linalg.norm(fit.means_ - m, axis=1))) for m in truth.means]
    assert sorted(order) == [0, 1, 2]
    hits = []
    quant = lambda name: post[name].quantile([0.05, 0.95], ("chain", "draw")).values
    for name, value in (("weights", truth.weights), ("means", truth.means),
                        ("covariances", np.asarray(truth.full_covariances))):
        lo, hi = quant(name)
        lo, hi = lo[order], hi[order]
        hits.append(((lo <= value) & (value <= hi)).ravel())
    coverage = np.concatenate(hits).mean()
    assert coverage >= 0.7, coverage  # nominal 90%; loose so the test is not flaky


def test_loo_prefers_true_k_over_k_minus_one(simulated):
    X = simulated.X.astype(np.float32)
    kw = dict(n_chains=2, n_warmup=300, n_draws=300, random_state=2)
    fits = {f"K={k}": BayesianGaussianMixture(k, **kw).fit(X) for k in (2, 3)}
    table = az.compare({name: f.idata_ for name, f in fits.items()})
    assert table.index[0] == "K=3", table


def test_svi_draws(blobs):
    X = blobs[0].astype(np.float32)
    fit = BayesianGaussianMixture(4, method="svi", n_svi_steps=1500, n_draws=300,
                                  random_state=0).fit(X)
    assert fit.params_.batch_shape == (1, 300)
    np.testing.assert_allclose(fit.means_, fit.map_params_.means, atol=0.1)
    sd = fit.idata_.posterior.means.std(("chain", "draw")).values
    assert np.all((sd > 0.01) & (sd < 0.3))  # a real spread, on the scale of NUTS's 0.07


@pytest.mark.parametrize("kwargs,match", [
    ({"n_chains": 0}, "n_chains"),
    ({"n_draws": 0}, "n_draws"),
    ({"method": "hmc"}, "method"),
    ({"covariance_type": "tied"}, "covariance_type"),
    ({"target_accept_prob": 1.5}, "target_accept_prob"),
    ({"priors": {"weight_concentration": 1}}, "Priors"),
    ({"priors": Priors(weight_concentration=-1.0)}, "weight_concentration"),
    ({"priors": Priors(mean_loc=[0.0, 0.0, 0.0])}, "shape"),
])
def test_bad_parameters_are_refused(blobs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(2, **kwargs).fit(blobs[0])


@pytest.mark.parametrize("old,new", [("num_chains", "n_chains"), ("num_warmup", "n_warmup"),
                                     ("num_samples", "n_draws"), ("svi_steps", "n_svi_steps")])
def test_old_num_names_are_refused_naming_the_new_one(old, new):
    """Counts are scikit-learn's n_*: NumPyro's num_* names raise, in the constructor
    and in set_params, with the new name in the message (never silently accepted)."""
    with pytest.raises(TypeError, match=f"'{old}' is now '{new}'.*{new}=7"):
        BayesianGaussianMixture(2, **{old: 7})
    with pytest.raises(TypeError, match=f"'{old}' is now '{new}'"):
        BayesianGaussianMixture(2).set_params(**{old: 7})
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_sample'"):
        BayesianGaussianMixture(2, n_sample=7)
    fit = BayesianGaussianMixture(2, **{new: 7})
    assert fit.get_params()[new] == 7 and old not in fit.get_params()
    assert f"{new}=7" in repr(fit)


def test_nan_data_refused():
    X = np.ones((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BayesianGaussianMixture(2).fit(X)


def test_unfitted_and_feature_mismatch(blobs):
    from bayesgmm import NotFittedError

    with pytest.raises(NotFittedError):
        BayesianGaussianMixture(2).predict_proba(blobs[0])
    fit = BayesianGaussianMixture(2, method="map", random_state=0).fit(blobs[0])
    with pytest.raises(ValueError, match="expecting 2 features"):
        fit.predict(np.zeros((3, 5)))


def test_import_bayesgmm_does_not_import_numpyro():
    import subprocess
    import sys

    code = ("import sys, bayesgmm; from bayesgmm import GaussianMixture; "
            "print('numpyro' in sys.modules, 'arviz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_unhealthy_chains_warn_with_a_reason(blobs):
    """One warm-up step leaves the step size unadapted: the fit must say so. (Five steps
    warned for only 4 of random_state 0-4, and stopped warning for 0 when EM's start
    moved by round-off; one step gave two warnings for each of them.)"""
    from bayesgmm.bayes import SamplingWarning

    with pytest.warns(SamplingWarning) as record:
        fit = BayesianGaussianMixture(6, n_chains=2, n_warmup=1, n_draws=60,
                                      jitter=1.0, random_state=0).fit(blobs[0])
    assert fit.warnings_ and all(isinstance(w, str) for w in fit.warnings_)
    assert any(str(r.message) in fit.warnings_ for r in record)


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


PARALLEL_CHAINS = r"""
import jax, numpy as np, jax.numpy as jnp
assert jax.local_device_count() == 4
from bayesgmm import GaussianMixture, Priors
from bayesgmm.bayes.inference import sample_nuts
from bayesgmm.datasets import make_blobs
X, _ = make_blobs(n_samples=200, centers=2, cluster_std=0.5, random_state=0)
X = X.astype(np.float32)
gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
r = sample_nuts(jax.random.PRNGKey(0), jnp.asarray(X), gm.params_, n_components=2,
                covariance_type="diag", priors=Priors().resolve(X), n_warmup=100,
                n_draws=100, n_chains=4)
print(r.info.chain_method, r.params.batch_shape, int(np.asarray(r.sample_stats["diverging"]).sum()))
"""


def test_chains_spread_over_devices():
    """With 4 (simulated) devices, 4 chains run one per device (chain_method="parallel")."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", PARALLEL_CHAINS], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    method, *rest = out.stdout.split()
    assert method == "parallel"
    assert "(4, 100)" in out.stdout


def test_compiled_sampler_is_reused_across_calls(blobs):
    """A second NUTS run with the same shapes compiles nothing (NumPyro's MCMC.run
    recompiled every call), on new data values and a new key: counted by JAX's own
    backend-compile events."""
    import jax
    import jax.numpy as jnp

    from bayesgmm.bayes.inference import nuts
    from bayesgmm.bayes.model import Priors as P

    X = jnp.asarray(blobs[0][:120], jnp.float32)
    gm = GaussianMixture(2, random_state=0).fit(np.asarray(X))
    priors = P().resolve(np.asarray(X))
    kw = dict(n_components=2, priors=priors, n_warmup=30, n_draws=20, n_chains=2)
    key0, key1 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
    X1 = jax.block_until_ready(X + 0.01)
    r1 = nuts.sample_nuts(key0, X, gm.params_, **kw)
    compiles = []
    listener = lambda event, *a, **k: compiles.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        r2 = nuts.sample_nuts(key1, X1, gm.params_, **kw)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []  # no new program
    assert r2.params.means.shape == (2, 20, 2, 2)
    assert not np.allclose(np.asarray(r1.params.means), np.asarray(r2.params.means))
    assert set(r2.sample_stats) >= {"diverging", "n_steps", "step_size", "lp"}


def _sampler_args(blobs, n_chains, dtype):
    import jax

    from bayesgmm.bayes.inference import nuts
    from bayesgmm.bayes.inference.target import bound_model
    from bayesgmm.bayes.model import Priors as P

    X = np.asarray(blobs[0][:120], dtype)
    gm = GaussianMixture(2, random_state=0).fit(X)
    priors = P().resolve(X)
    model = bound_model(2, "full", priors)
    config = (2, "full", nuts.priors_key(priors), 30, 20, n_chains, 0.8, 10)
    init = jax.tree_util.tree_map(np.asarray, gm.params_.astype(dtype))
    return model, config, (jax.random.PRNGKey(1), X, init, np.asarray(0.05, dtype))


def test_chains_in_sequence_equal_vmapped_chains(blobs):
    """On a CPU the chains of one program run in sequence (lax.map); on an accelerator
    they are vmapped. Same keys and starts give the same draws. In float64: in float32
    the two programs' round-off differs, and NUTS's trajectories amplify it."""
    import jax

    from bayesgmm.bayes.inference import nuts

    with jax.enable_x64(True):
        model, config, args = _sampler_args(blobs, 3, np.float64)
        (sa, ea), (sb, eb) = (nuts._run_vectorized(model, config, *args, batched=b)
                              for b in (True, False))
    assert sa["means"].shape == sb["means"].shape == (3, 20, 2, 2)
    for name in ("weights", "means", "scales", "corr_chol"):
        np.testing.assert_allclose(sa[name], sb[name], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ea["num_steps"], eb["num_steps"])
    assert not np.allclose(sa["means"][0], sa["means"][1])  # chains differ from each other


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_groups_on_threads_give_the_same_draws(blobs, dtype):
    """On a CPU the chains are split into groups run on host threads; chain c's start
    and stream come from fold_in(key, c), so 4 chains in 1, 2 or 4 groups are the same
    draws in float64 (to round-off: each group size is its own compiled program; in
    float32 the round-off grows along a chain, as in the test above). float64 also checks that the threads keep the caller's x64 mode
    (JAX's is per thread: a float32 call of the float64 program raised)."""
    import jax

    from bayesgmm.bayes.inference import nuts

    with jax.enable_x64(dtype == np.float64):
        model, config, args = _sampler_args(blobs, 4, dtype)
        runs = [nuts._run_vectorized(model, config, *args, batched=False, groups=g)
                for g in (1, 2, 4)]
    (s1, e1) = runs[0]
    assert s1["means"].dtype == dtype and s1["means"].shape == (4, 20, 2, 2)
    for s, e in runs[1:]:
        if dtype == np.float64:
            for name in s1:
                np.testing.assert_allclose(s[name], s1[name], rtol=1e-7, atol=1e-7)
            np.testing.assert_array_equal(e["num_steps"], e1["num_steps"])
        else:  # round-off has grown by the end of warm-up: same shape, finite, per chain
            assert s["means"].shape == s1["means"].shape and np.all(np.isfinite(s["means"]))
            assert not np.allclose(s["means"][0], s["means"][1])


def test_chain_groups_fit_the_cores():
    from bayesgmm.bayes.inference.nuts import _chain_groups

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for n in (1, 2, 3, 4, 6, 8):
        g = _chain_groups(n)
        assert n % g == 0 and 1 <= g <= max(cores, 1)
        # the largest such divisor
        assert not any(n % h == 0 and g < h <= cores for h in range(1, n + 1))


@pytest.mark.parametrize("ct", ["full", "diag", "spherical", "tied"])
def test_pointwise_log_likelihood_on_the_host_equals_the_compiled_one(blobs, ct):
    """LOO's pointwise log p(x_n | θ_cs) runs in NumPy for small problems: the same
    numbers as the compiled scorer (float64), over (chain, draw) batches of fits."""
    import jax

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
