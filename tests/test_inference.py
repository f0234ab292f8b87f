"""Inference (bayesgmm/bayes/inference/): MAP, NUTS and SVI against independent truth
(NumPyro's potential of the model, Adam's closed-form first steps), their typed reports,
the compiled sampler's reuse, chain grouping and devices."""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm import GaussianMixture, Priors

pytestmark = pytest.mark.usefixtures("standard_promotion")


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


@pytest.mark.parametrize("method, robust", [("map", {}), ("nuts", {}), ("svi", {}),
                                            ("map", {"component": "t"}),
                                            ("nuts", {"noise": True})])
def test_new_data_reuses_the_program_with_its_own_priors(blobs, method, robust):
    """The default priors are resolved from each data set (mean_loc, mean_scale,
    scale_loc): a new data set of the same shape reuses the compiled MAP, NUTS and SVI
    programs (they compiled again for every data set: MAP 1.9 s, NUTS 3.8 s on 510 x 2),
    and its fit is the one a program compiled for it alone gives. Data set A is B
    moved and scaled ten times, so a program that kept A's priors would give B
    another fit. The robust models' programs (t components, a noise component, whose
    box is the data's) too."""
    from bayesgmm import BayesianGaussianMixture
    from bayesgmm.bayes import robust as robust_
    from bayesgmm.bayes.inference import map as map_, nuts, svi

    XB = np.asarray(blobs[0][:150], np.float64)
    XA = 10.0 * XB + 5.0
    kw = dict(method=method, n_chains=2, n_warmup=40, n_draws=30, n_svi_steps=200,
              random_state=0, **robust)

    def fit(X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short chains may be flagged; not the point
            return BayesianGaussianMixture(2, **kw).fit(X)

    def forget():
        for cache in (map_._RUNNERS, nuts._MCMC_CACHE, svi._RUNNERS, robust_._MAP_RUNNERS):
            cache.clear()

    forget()
    alone = fit(XB)
    forget()
    fit(XA)
    again, n_compiled = _count_compiles(lambda: fit(XB))
    assert n_compiled == 0
    assert again.params_.means.shape == alone.params_.means.shape
    for name in ("weights", "means", "cov_factor"):
        np.testing.assert_allclose(getattr(again.params_, name), getattr(alone.params_, name),
                                   rtol=1e-12, atol=1e-12)
    # and B's priors are not A's: the fits are B's clusters, not A's scale
    assert np.abs(again.params_.means).max() < np.abs(XA).max() / 2


def test_one_chain_runs_and_keeps_the_chain_axis(blobs):
    """n_chains=1 (one device) ran NumPyro's MCMC.run, whose draws came back (1, S, 1)
    and which BayesianGaussianMixture refused; one chain now runs the compiled
    program, draws grouped (chain, draw), and the estimator reads them."""
    import warnings

    from bayesgmm import BayesianGaussianMixture

    X = np.asarray(blobs[0][:120], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 20-draw chain may be flagged; not the point
        fit = BayesianGaussianMixture(2, method="nuts", n_warmup=30, n_draws=20,
                                      n_chains=1, random_state=0).fit(X)
    assert fit.params_.batch_shape == (1, 20)
    assert fit.idata_.posterior.sizes["chain"] == 1
    proba = fit.predict_proba(X)
    assert proba.shape == (120, 2) and np.allclose(proba.sum(axis=1), 1.0)


def _sampler_args(blobs, n_chains, dtype):
    import jax

    from bayesgmm.bayes.inference import nuts
    from bayesgmm.bayes.inference.target import bound_model
    from bayesgmm.bayes.model import Priors as P

    X = np.asarray(blobs[0][:120], dtype)
    gm = GaussianMixture(2, random_state=0).fit(X)
    priors = P().resolve(X)
    model = bound_model(2, "full", priors)
    config = (2, "full", nuts.priors_key(priors), 30, 20, n_chains, 0.8, 10, False)
    init = jax.tree_util.tree_map(np.asarray, gm.params_.astype(dtype))
    return model, config, (jax.random.PRNGKey(1), X, init, np.asarray(0.05, dtype))


def test_chains_in_sequence_equal_vmapped_chains(blobs):
    """On a CPU the chains of one program run in sequence (lax.map); on an accelerator
    they are vmapped. Same keys and starts give the same draws. In float64: in float32
    the two programs' round-off differs, and NUTS's trajectories amplify it. In float64
    the potential runs the moment kernel (one matmul), whose vmapped form (a wider
    matmul) rounds differently in the last bits: 50 iterations of NUTS amplify that to
    ~1e-8 (1.5e-7 since the sampler's coordinates are rescaled, the means in standard
    units, which rounds once more each way), so 1e-6 here (a wrong draw differs at
    O(1))."""
    import jax

    from bayesgmm.bayes.inference import nuts

    with jax.enable_x64(True):
        model, config, args = _sampler_args(blobs, 3, np.float64)
        (sa, ea), (sb, eb) = (nuts._run_vectorized(model, config, *args, batched=b)
                              for b in (True, False))
    assert sa["means"].shape == sb["means"].shape == (3, 20, 2, 2)
    for name in ("weights", "means", "scales", "corr_chol"):
        np.testing.assert_allclose(sa[name], sb[name], rtol=1e-6, atol=1e-6)
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


def test_draws_do_not_depend_on_the_cores(blobs, monkeypatch):
    """The default CPU path runs every chain in the one-chain program, on as many
    threads as the process has cores: the same seed gives the same float32 draws, bit
    for bit, on a 1-core and a 2-core machine (groups of 4 and of 2 chains, as they ran
    before, are programs that round differently, and NUTS amplifies round-off)."""
    from bayesgmm.bayes.inference import nuts

    model, config, args = _sampler_args(blobs, 4, np.float32)
    runs = []
    for cores in ({0}, {0, 1}):
        monkeypatch.setattr(nuts.os, "sched_getaffinity", lambda pid, c=cores: c,
                            raising=False)
        assert nuts._cpu_threads(4) == len(cores)
        runs.append(nuts._run_vectorized(model, config, *args, batched=False))
    (s1, e1), (s2, e2) = runs
    for name in s1:
        np.testing.assert_array_equal(s1[name], s2[name])
    np.testing.assert_array_equal(e1["num_steps"], e2["num_steps"])
    assert not np.allclose(s1["means"][0], s1["means"][1])  # chains differ from each other


# ---- MAP ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_decaying_moves_by_its_closed_form(dtype):
    """Under a constant gradient g Adam's bias-corrected moments are exactly g and g², so
    step t moves every coordinate by -lr_t · g / (|g| + eps) with the decaying step size
    lr_t = lr0 · (lr1 / lr0)^((t + 1) / n_steps): optax's update checked against that
    closed form, step by step."""
    import optax

    from bayesgmm.bayes.inference.map import adam_decaying

    with jax.enable_x64(dtype == np.float64):
        lr0, lr1, n = np.asarray(0.05, dtype), np.asarray(1e-3, dtype), 10
        g = jnp.asarray([3.0, -0.2, 1e-3, -40.0], dtype)
        opt = adam_decaying(lr0, lr1, n)
        f = jnp.zeros_like(g)
        state = opt.init(f)
        for t in range(n):
            updates, state = opt.update(g, state, f)
            assert updates.dtype == dtype
            lr_t = 0.05 * (1e-3 / 0.05) ** ((t + 1) / n)
            expect = -lr_t * np.asarray(g, np.float64) / (np.abs(np.asarray(g, np.float64))
                                                          + 1e-8)
            np.testing.assert_allclose(np.asarray(updates), expect,
                                       rtol=2e-5 if dtype == np.float32 else 1e-10)
            f = optax.apply_updates(f, updates)


def _map_problem(blobs, dtype, K=4):
    X = np.asarray(blobs[0], dtype)
    gm = GaussianMixture(K, random_state=0).fit(X)
    return X, gm.params_.astype(dtype), Priors().resolve(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_map_is_a_maximum_of_numpyros_log_density(blobs, dtype):
    """The MAP point, handed to NumPyro's own potential of the model (the independent
    oracle): its log density is the one MAPInfo reports, higher than at the EM start,
    with a gradient near zero, and no nearby point is higher."""
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy, unconstrain_fn

    from bayesgmm.bayes.inference import MAPInfo, fit_map
    from bayesgmm.bayes.inference.target import bound_model

    with jax.enable_x64(dtype == np.float64):
        X, init, priors = _map_problem(blobs, dtype)
        result = fit_map(jax.random.PRNGKey(0), X, init, n_components=4, priors=priors)
        info = result.info
        assert isinstance(info, MAPInfo) and result.method == "map"
        assert info.log_density.shape == (info.n_steps + 1,) and info.n_steps == 800
        assert info.converged and info.log_density.dtype == dtype
        assert result.params.batch_shape == (1, 1)
        model = bound_model(4, "full", priors)
        sites = {k: jnp.asarray(v[0, 0]) for k, v in result.sites.items()}
        z = unconstrain_fn(model, (jnp.asarray(X),), {}, sites)
        flat, unravel = ravel_pytree(z)
        # compiled once: NumPyro's potential op by op took ~25 s for these six calls
        lp = jax.jit(lambda f: -potential_energy(model, (jnp.asarray(X),), {}, unravel(f)))
        value, grad = jax.jit(jax.value_and_grad(lp))(flat)
        rtol = 1e-5 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(float(value), info.log_density[-1], rtol=rtol)
        assert info.log_density[-1] > info.log_density[0]  # better than the EM start
        assert float(jnp.max(jnp.abs(grad))) < (0.5 if dtype == np.float32 else 0.05)
        rng = np.random.default_rng(0)
        for _ in range(5):
            step = jnp.asarray(rng.normal(size=flat.shape) * 1e-2, dtype)
            assert float(lp(flat + step)) <= float(value) + 1e-3 * abs(float(value)) * (
                dtype == np.float32)


# ---- NUTS reports ---------------------------------------------------------------------

def test_nuts_info_lines_up_with_the_draws(blobs):
    """Each draw's lp in NUTSInfo is NumPyro's log density of the model at that draw (a
    misaligned warm-up slice or field would break this); every per-draw field has shape
    (chain, draw), under ArviZ's sample_stats names."""
    from numpyro.infer.util import potential_energy, unconstrain_fn

    from bayesgmm.bayes.inference import NUTSInfo, sample_nuts
    from bayesgmm.bayes.inference.target import bound_model

    X = jnp.asarray(blobs[0][:120], jnp.float32)
    gm = GaussianMixture(2, random_state=0).fit(np.asarray(X))
    priors = Priors().resolve(np.asarray(X))
    r = sample_nuts(jax.random.PRNGKey(3), X, gm.params_, n_components=2, priors=priors,
                    n_warmup=30, n_draws=20, n_chains=2)
    info = r.info
    assert isinstance(info, NUTSInfo) and r.params.batch_shape == (2, 20)
    assert set(r.sample_stats) == {"diverging", "n_steps", "tree_depth", "step_size",
                                   "energy", "lp", "acceptance_rate"}
    for name, value in r.sample_stats.items():
        assert isinstance(value, np.ndarray) and value.shape == (2, 20), name
    assert info.max_tree_depth == 10 and info.chain_method == "vectorized"
    np.testing.assert_array_equal(2 ** info.tree_depth.astype(np.int64) <= info.n_steps + 1, True)
    model = bound_model(2, "full", priors)
    for c, s in ((0, 0), (1, 7), (1, 19)):
        sites = {k: jnp.asarray(v[c, s]) for k, v in r.sites.items()}
        z = unconstrain_fn(model, (X,), {}, sites)
        np.testing.assert_allclose(-float(potential_energy(model, (X,), {}, z)),
                                   info.lp[c, s], rtol=2e-5)


# ---- SVI and the workflow -------------------------------------------------------------

def test_svi_reports_a_rising_elbo(blobs):
    from bayesgmm.bayes.inference import SVIInfo, fit_svi

    X, init, priors = _map_problem(blobs, np.float32)
    r = fit_svi(jax.random.PRNGKey(0), X, init, n_components=4, priors=priors, n_steps=400,
                n_draws=50)
    info = r.info
    assert isinstance(info, SVIInfo) and info.elbo.shape == (400,) and info.n_steps == 400
    np.testing.assert_allclose(info.final_elbo, info.elbo[-40:].mean(), rtol=1e-6)
    assert info.elbo[-40:].mean() > info.elbo[:40].mean()
    assert r.params.batch_shape == (1, 50) and r.sample_stats == {}
    assert all(isinstance(v, np.ndarray) and v.shape[:2] == (1, 50) for v in r.sites.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_svi_elbo_and_draws_are_equivariant_to_the_data_units(blobs, scale, dtype):
    """SVI of c·X from the EM start of c·X (reg_covar scaled by c², so the start is c
    times X's): every step's ELBO is X's minus N·D·log c, the data density's Jacobian
    alone (the guide's means in standard units add none: its Jacobian enters the model
    and the guide alike), and the draws are c times X's, draw for draw. In the data's
    units the guide's steps and initial spread of 0.01 were not: in thousands its
    posterior sd of the means came out four times too narrow."""
    from bayesgmm.bayes.inference import fit_svi

    X = np.asarray(blobs[0][:200], dtype)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    runs = []
    with jax.enable_x64(dtype == np.float64):
        for c in (1.0, scale):
            Xc = (X * c).astype(dtype)
            init = GaussianMixture(3, random_state=0, reg_covar=1e-6 * c**2).fit(Xc).params_
            runs.append(fit_svi(jax.random.PRNGKey(0), Xc, init.astype(dtype),
                                n_components=3, priors=Priors().resolve(Xc), n_steps=300,
                                n_draws=50))
    ref, fit = runs
    N, D = X.shape
    np.testing.assert_allclose(fit.info.elbo, ref.info.elbo - N * D * np.log(scale),
                               rtol=tol)
    np.testing.assert_allclose(fit.params.means / scale, ref.params.means, rtol=100 * tol,
                               atol=100 * tol)
    np.testing.assert_allclose(fit.params.weights, ref.params.weights, atol=100 * tol)


def test_run_map_gives_the_map_point_on_the_host(blobs):
    from bayesgmm.bayes.inference import run

    with jax.enable_x64(True):
        X, init, priors = _map_problem(blobs, np.float64)
        result, map_params = run(jax.random.PRNGKey(0), X, init, "map", n_components=4,
                                 covariance_type="full", priors=priors)
    assert result.method == "map" and map_params.batch_shape == ()
    for leaf, batched in zip(jax.tree_util.tree_leaves(map_params),
                             jax.tree_util.tree_leaves(result.params)):
        assert isinstance(leaf, np.ndarray) and leaf.dtype == np.float64
        np.testing.assert_array_equal(leaf, batched[0, 0])


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "hmc"}, "method"),
    ({"n_chains": 0}, "n_chains"),
    ({"n_warmup": -1}, "n_warmup"),
    ({"n_draws": 2.5}, "n_draws"),
    ({"n_svi_steps": 0}, "n_svi_steps"),
    ({"target_accept_prob": 1.0}, "target_accept_prob"),
    ({"jitter": float("nan")}, "jitter"),
    ({"max_tree_depth": 0}, "max_tree_depth"),
    ({"n_padded": 2.5}, "n_padded"),
])
def test_check_settings_names_the_bad_one(kwargs, match):
    from bayesgmm.bayes.inference import check_settings

    check_settings()  # the defaults pass
    with pytest.raises(ValueError, match=match):
        check_settings(**kwargs)


# ---- padding: one program for every K (compare_n_components) ---------------------------

def _count_compiles(fn):
    """fn() and the number of XLA programs it compiled (JAX's backend-compile events)."""
    compiles = []
    listener = lambda event, *a, **k: compiles.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        out = fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return out, len(compiles)


def test_padded_map_is_the_unpadded_map(blobs):
    """MAP of K = 3 on the program padded to K_max = 4 reaches the K = 3 program's point
    and log density (float64; the active gradient is the same, the masked coordinates
    never move); K = 2 then reuses the padded program and compiles nothing."""
    from bayesgmm.bayes.inference import fit_map

    with jax.enable_x64(True):
        X, init, priors = _map_problem(blobs, np.float64, K=3)
        key = jax.random.PRNGKey(0)
        plain = fit_map(key, X, init, n_components=3, priors=priors, n_steps=300)
        padded = fit_map(key, X, init, n_components=3, priors=priors, n_steps=300, n_padded=4)
        for name in plain.sites:
            np.testing.assert_allclose(padded.sites[name], plain.sites[name], rtol=1e-7,
                                       atol=1e-9)
        np.testing.assert_allclose(padded.info.log_density, plain.info.log_density, rtol=1e-9)
        assert padded.info.converged == plain.info.converged
        init2 = GaussianMixture(2, random_state=0).fit(X).params_
        two, n_compiled = _count_compiles(lambda: fit_map(
            key, X, init2, n_components=2, priors=priors, n_steps=300, n_padded=4))
    assert n_compiled == 0
    assert two.params.means.shape == (1, 1, 2, 2) and np.isclose(two.sites["weights"].sum(), 1)


def test_padded_nuts_samples_the_same_posterior(blobs):
    """K = 2 (two of the seed blobs' clusters) sampled on the program padded to K_max = 3
    against the K = 2 program: the posterior means of weights, means and scales agree
    within 4 Monte Carlo standard errors (bulk ESS of each run, combined); each draw's lp
    is NumPyro's log density of the K = 2 model (the masked density removed), and K = 3
    reuses the padded program (nothing compiled)."""
    from numpyro.infer.util import potential_energy, unconstrain_fn

    from bayesgmm.bayes.inference import sample_nuts
    from bayesgmm.bayes.inference.target import bound_model
    from bayesgmm.bayes.posterior import _ess

    X, y = blobs[0].astype(np.float32), blobs[1]
    X2 = jnp.asarray(X[y < 2])
    priors = Priors().resolve(np.asarray(X2))
    start = GaussianMixture(2, random_state=0).fit(np.asarray(X2)).params_
    kw = dict(priors=priors, n_warmup=150, n_draws=300, n_chains=2)
    key = jax.random.PRNGKey(4)
    plain = sample_nuts(key, X2, start, n_components=2, **kw)
    padded = sample_nuts(key, X2, start, n_components=2, n_padded=3, **kw)
    assert padded.params.means.shape == plain.params.means.shape == (2, 300, 2, 2)
    for name in ("weights", "means", "scales"):
        a, b = (np.asarray(r.sites[name], np.float64) for r in (plain, padded))
        a, b = a.reshape(2, 300, -1), b.reshape(2, 300, -1)
        for j in range(a.shape[-1]):
            se = np.hypot(a[..., j].std() / np.sqrt(_ess(a[..., j], "bulk")),
                          b[..., j].std() / np.sqrt(_ess(b[..., j], "bulk")))
            assert abs(a[..., j].mean() - b[..., j].mean()) < 4 * se, (name, j)
    model = bound_model(2, "full", priors)
    lp = jax.jit(lambda z: -potential_energy(model, (X2,), {}, z))
    for c, s in ((0, 0), (1, 150), (1, 299)):
        sites = {k: jnp.asarray(v[c, s]) for k, v in padded.sites.items()}
        z = unconstrain_fn(model, (X2,), {}, sites)
        np.testing.assert_allclose(float(lp(z)), padded.info.lp[c, s], rtol=2e-5)
    start3 = GaussianMixture(3, random_state=0).fit(np.asarray(X2)).params_
    three, n_compiled = _count_compiles(
        lambda: sample_nuts(key, X2, start3, n_components=3, n_padded=3, **kw))
    assert n_compiled == 0 and three.params.means.shape == (2, 300, 3, 2)
