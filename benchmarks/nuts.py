"""NUTS on the seed blobs: bayesgmm's model against the textbook NumPyro model
(``MixtureSameFamily`` of ``MultivariateNormal``), same priors, same EM start, 4
vectorised chains x (500 warm-up + 500 draws), float32; wall time *including
compilation* (a fresh MCMC object each), bulk ESS of the relabeled parameters.

    python benchmarks/nuts.py

The next rows rerun bayesgmm in fresh processes with the persistent compilation cache
on (:func:`bayesgmm.compilation.enable_compilation_cache`): the first fills the cache,
the second is a new process (a restarted notebook) that finds it warm.

The minimum bulk ESS of one run moves by about ±20% with the PRNG seed (or with the
last bits of the start), so the last table repeats the cold comparison for more seeds,
each model in its own fresh process (a second textbook run in one process reuses the
hundreds of small programs its first run compiled op by op: 12.8 -> 7.4 s), timed from
the sampler call, from the same EM start. ``--seeds N`` (default 3; 0 skips it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401
import arviz  # noqa: F401  imported up front: library imports are outside both timers
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, init_to_value

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_blobs
from bayesgmm.bayes.inference import nuts as our_nuts
from bayesgmm.bayes.model import Priors, from_sites, to_sites
from bayesgmm.bayes import arviz as bz
from bayesgmm.bayes.posterior import relabel


def textbook(X, K, priors):
    D = X.shape[1]
    w = numpyro.sample("weights", dist.Dirichlet(jnp.ones(K)))
    with numpyro.plate("component", K):
        mu = numpyro.sample("means", dist.Normal(priors.mean_loc, priors.mean_scale).to_event(1))
        sc = numpyro.sample("scales", dist.LogNormal(jnp.log(priors.scale_loc),
                                                     priors.scale_log_sd).to_event(1))
        L = numpyro.sample("corr_chol", dist.LKJCholesky(D, priors.lkj_concentration))
    mix = dist.MixtureSameFamily(dist.Categorical(w),
                                 dist.MultivariateNormal(mu, scale_tril=sc[..., None] * L))
    with numpyro.plate("obs_id", X.shape[0]):
        numpyro.sample("obs", mix, obs=X)


def min_ess(sites, reference):
    """Smallest bulk ESS over every relabeled weight and mean coordinate."""
    rel = relabel(from_sites(sites), reference).params
    ess = []
    for v in (np.asarray(rel.weights), np.asarray(rel.means)):
        flat = v.reshape(v.shape[0], v.shape[1], -1)
        ess += [bz.ess(flat[..., j]) for j in range(flat.shape[-1])]
    return min(ess)


def setup():
    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    X = X.astype(np.float32)
    gm = GaussianMixture(4, random_state=0).fit(X)
    return X, gm, Priors().resolve(X), dict(n_warmup=500, n_draws=500, n_chains=4)


def child(cache_dir):
    """One bayesgmm NUTS run in this (fresh) process with the disk cache at cache_dir;
    prints 'wall_s min_ess'. Wall time counts from before the EM fit, like a notebook."""
    from bayesgmm.compilation import enable_compilation_cache

    enable_compilation_cache(cache_dir)
    t = time.perf_counter()
    X, gm, priors, settings = setup()
    r = our_nuts.sample_nuts(jax.random.PRNGKey(0), jnp.asarray(X), gm.params_, n_components=4,
                             priors=priors, **settings)
    jax.block_until_ready(r.params)
    print(time.perf_counter() - t, min_ess(r.sites, gm.params_))


def cold_child(which, seed):
    """One cold NUTS run (``which``: "ours" or "textbook") with PRNG seed ``seed`` in
    this fresh process (no disk cache); prints 'wall_s min_ess', timed from the sampler
    call as in the main table."""
    X, gm, priors, settings = setup()
    if which == "textbook":
        sites = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32),
                                       to_sites(gm.params_))
        samples, wall, _ = run_textbook(X, 4, priors, sites, settings, seed)
        print(wall, min_ess(samples, gm.params_))
        return
    t = time.perf_counter()
    r = our_nuts.sample_nuts(jax.random.PRNGKey(seed), jnp.asarray(X), gm.params_,
                             n_components=4, priors=priors, **settings)
    jax.block_until_ready(r.params)
    print(time.perf_counter() - t, min_ess(r.sites, gm.params_))


def run_textbook(X, K, priors, sites, settings, seed):
    t = time.perf_counter()
    mcmc = MCMC(NUTS(textbook, init_strategy=init_to_value(values=sites)),
                chain_method="vectorized", progress_bar=False, num_warmup=settings["n_warmup"],
                num_samples=settings["n_draws"], num_chains=settings["n_chains"])
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(X), K, priors, extra_fields=("num_steps",))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    return samples, time.perf_counter() - t, mcmc


def main():
    if {"-h", "--help"} & set(sys.argv[1:]):  # the module's docstring is its usage
        print(__doc__)
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    if len(sys.argv) == 4 and sys.argv[1] == "--cold-child":
        return cold_child(sys.argv[2], int(sys.argv[3]))
    n_seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 3
    print(f"machine: {_common.machine()}\n")
    X, gm, priors, settings = setup()
    sites = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), to_sites(gm.params_))

    s_text, t_text, mcmc = run_textbook(X, 4, priors, sites, settings, 0)
    steps_text = float(np.mean(mcmc.get_extra_fields()["num_steps"]))

    our_nuts._MCMC_CACHE.clear()
    t = time.perf_counter()
    r = our_nuts.sample_nuts(jax.random.PRNGKey(0), jnp.asarray(X), gm.params_, n_components=4,
                             priors=priors, **settings)
    jax.block_until_ready(r.params)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    r2 = our_nuts.sample_nuts(jax.random.PRNGKey(1), jnp.asarray(X), gm.params_,
                              n_components=4, priors=priors, **settings)
    jax.block_until_ready(r2.params)
    t_ours_warm = time.perf_counter() - t

    ess_text = min_ess(s_text, gm.params_)
    ess_ours = min_ess(r.sites, gm.params_)
    steps_ours = float(np.mean(r.sample_stats["n_steps"]))
    print(f"{'':30} {'wall s':>8} {'leapfrog/it':>11} {'min bulk ESS':>12} {'ESS/s':>8}")
    print(f"{'textbook MixtureSameFamily':30} {t_text:>8.1f} {steps_text:>11.1f} "
          f"{ess_text:>12.0f} {ess_text / t_text:>8.1f}")
    print(f"{'bayesgmm (cold, compile incl.)':30} {t_ours:>8.1f} {steps_ours:>11.1f} "
          f"{ess_ours:>12.0f} {ess_ours / t_ours:>8.1f}")
    print(f"{'bayesgmm (warm, cached sampler)':30} {t_ours_warm:>8.1f} {'':>11} {'':>12} "
          f"{min_ess(r2.sites, gm.params_) / t_ours_warm:>8.1f}")
    base = ess_text / t_text
    print(f"\nESS/s ratio, cold: {ess_ours / t_ours / base:.2f}x; "
          f"warm: {min_ess(r2.sites, gm.params_) / t_ours_warm / base:.2f}x")
    from bayesgmm.compilation import cache_supported

    with tempfile.TemporaryDirectory() as cache:  # jaxlib < 0.10: the cache stays off
        for label in ("fills the disk cache", "disk cache warm") if cache_supported() else ():
            out = subprocess.run([sys.executable, __file__, "--child", cache],
                                 capture_output=True, text=True, check=True).stdout.split()
            wall, ess = float(out[-2]), float(out[-1])
            print(f"bayesgmm, fresh process, {label:22} {wall:>6.1f} s (EM fit incl.), "
                  f"min ESS {ess:.0f}, ESS/s {ess / wall:.0f} = {ess / wall / base:.2f}x "
                  f"textbook")
    if n_seeds:
        print(f"\ncold, compile included, by PRNG seed (each run in a fresh process):\n"
              f"{'seed':>4} {'textbook s':>10} {'ESS':>6} {'ours s':>7} {'ESS':>6} {'ratio':>7}")
        ratios = []
        def fresh(which, seed):
            out = subprocess.run([sys.executable, __file__, "--cold-child", which, str(seed)],
                                 capture_output=True, text=True, check=True).stdout.split()
            return float(out[-2]), float(out[-1])

        for seed in range(n_seeds):
            (t_t, e_t), (t_o, e_o) = fresh("textbook", seed), fresh("ours", seed)
            ratios.append((e_o / t_o) / (e_t / t_t))
            print(f"{seed:>4} {t_t:>10.1f} {e_t:>6.0f} {t_o:>7.1f} {e_o:>6.0f} "
                  f"{ratios[-1]:>6.2f}x", flush=True)
        print(f"median {np.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")


if __name__ == "__main__":
    main()
