"""NUTS at scale: N = 100,000 rows, D = 5, K = 4 elongated clusters, float32, 2 chains
x (200 warm-up + 200 draws), bayesgmm's sampler against the textbook NumPyro model
(``MixtureSameFamily`` of ``MultivariateNormal``, same priors, same EM start), each in
its own fresh process (cold: compilation included). Reports wall and CPU seconds from
the sampler call, mean leapfrog steps per iteration, the minimum bulk ESS over the
relabeled weights and means, and ESS per second.

    python benchmarks/nuts_scale.py                  # both, N = 100,000
    python benchmarks/nuts_scale.py --n 2000         # the issue-21 size
    python benchmarks/nuts_scale.py --textbook-iters 100   # textbook with 100 + 100

On a shared machine the CPU seconds (``time.process_time``, all threads of the
process) are the steadier measure; both are printed. ``--textbook-iters W`` runs the
textbook model with W warm-up + W draws when its full run would not finish (its ESS/s
is then compared as measured, and the script says so).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import _common
import arviz  # noqa: F401  imported up front: library imports are outside both timers
import jax
import jax.numpy as jnp
import numpy as np
from nuts import min_ess, run_textbook

from bayesgmm import GaussianMixture
from bayesgmm.bayes.inference import nuts as our_nuts
from bayesgmm.bayes.model import Priors, to_sites

D, K = 5, 4


def elongated(n_samples: int, seed: int = 0) -> np.ndarray:
    """K = 4 clusters in D = 5 with axis ratios 10:1 (random orientations), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, (K, D))
    parts = []
    for k in range(K):
        q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        A = q * np.linspace(2.0, 0.2, D)  # scales 2 .. 0.2 along random directions
        parts.append(centres[k] + rng.normal(size=(n_samples // K, D)) @ A.T)
    return np.concatenate(parts).astype(np.float32)


def child(which: str, n: int, warmup: int, draws: int, seed: int) -> None:
    X = elongated(n)
    gm = GaussianMixture(K, random_state=0).fit(X)
    priors = Priors().resolve(X)
    settings = {"n_warmup": warmup, "n_draws": draws, "n_chains": 2}
    c0, t0 = time.process_time(), time.perf_counter()
    if which == "textbook":
        sites = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32),
                                       to_sites(gm.params_))
        samples, _, mcmc = run_textbook(X, K, priors, sites, settings, seed)
        steps = float(np.mean(mcmc.get_extra_fields()["num_steps"]))
    else:
        r = our_nuts.sample_nuts(jax.random.PRNGKey(seed), jnp.asarray(X), gm.params_,
                                 n_components=K, priors=priors, **settings)
        jax.block_until_ready(r.params)
        samples, steps = r.sites, float(np.mean(r.sample_stats["n_steps"]))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(wall, cpu, steps, min_ess(samples, gm.params_))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--iters", type=int, default=200, help="warm-up = draws, bayesgmm")
    ap.add_argument("--textbook-iters", type=int, default=None,
                    help="warm-up = draws for the textbook model (default: --iters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("ours", "textbook"), default=None)
    ap.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        which, n, w, d, s = a.child
        return child(which, int(n), int(w), int(d), int(s))
    t_iters = a.textbook_iters or a.iters
    print(f"machine: {_common.machine()}; N={a.n}, D={D}, K={K}, float32, 2 chains\n")
    print(f"{'':28} {'warm+draws':>10} {'wall s':>8} {'cpu s':>8} {'leapfrog/it':>11} "
          f"{'min ESS':>8} {'ESS/wall s':>10} {'ESS/cpu s':>10}", flush=True)
    rows = {}
    for which, iters in (("textbook", t_iters), ("ours", a.iters)):
        if a.only and which != a.only:
            continue
        out = subprocess.run([sys.executable, __file__, "--child", which, str(a.n),
                              str(iters), str(iters), str(a.seed)],
                             capture_output=True, text=True, check=True).stdout.split()
        wall, cpu, steps, ess = map(float, out[-4:])
        rows[which] = (ess / wall, ess / cpu)
        name = "textbook MixtureSameFamily" if which == "textbook" else "bayesgmm (cold)"
        print(f"{name:28} {f'{iters}+{iters}':>10} {wall:>8.1f} {cpu:>8.1f} {steps:>11.1f} "
              f"{ess:>8.0f} {ess / wall:>10.2f} {ess / cpu:>10.2f}", flush=True)
    if len(rows) == 2:
        print(f"\nESS/s ratio: wall {rows['ours'][0] / rows['textbook'][0]:.2f}x, "
              f"cpu {rows['ours'][1] / rows['textbook'][1]:.2f}x"
              + (f" (textbook with {t_iters}+{t_iters} iterations)" if t_iters != a.iters
                 else ""))


if __name__ == "__main__":
    main()
