"""NUTS at scale: N = 100,000 rows, D = 5, K = 4 elongated clusters, float32, 2 chains
x (200 warm-up + 200 draws), bayesgmm's sampler against the textbook NumPyro model
(``MixtureSameFamily`` of ``MultivariateNormal``, same priors, same EM start), each in
its own fresh process (cold: compilation included). Reports wall and CPU seconds from
the sampler call, mean leapfrog steps per iteration, the minimum bulk ESS over the
relabeled weights and means, and ESS per second.

    python benchmarks/nuts_scale.py                  # both, N = 100,000
    python benchmarks/nuts_scale.py --n 2000         # the issue-21 size
    python benchmarks/nuts_scale.py --textbook-iters 100   # textbook with 100 + 100
    python benchmarks/nuts_scale.py --per-eval       # one value-and-gradient, by kernel
    python benchmarks/nuts_scale.py --x64 --only ours  # float64: the moment kernel

``--per-eval`` times one jitted evaluation of the potential's value and gradient (CPU
ms, the variants alternating in one process, best of 3 rounds) at N = 2,000, 20,000
and 100,000 at the per-block moments of the data: the textbook model's
(``potential_energy``), bayesgmm's centred kernel, and the moment kernel (float64,
where :func:`bayesgmm.bayes.potential.potential` uses it; and forced in float32,
which it never is, to show why); then each kernel's error against a float64
reference on the benchmark data, the data offset by 1,000, and with one compact
component (scales x 0.01) moved 100 away.

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
from bayesgmm.bayes import potential as P
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


def child(which: str, n: int, warmup: int, draws: int, seed: int, dtype: str) -> None:
    if dtype == "float64":  # x64 on: bayesgmm's potential runs the moment kernel
        jax.config.update("jax_enable_x64", True)
    X = elongated(n).astype(dtype)
    gm = GaussianMixture(K, random_state=0).fit(X)
    priors = Priors().resolve(X)
    settings = {"n_warmup": warmup, "n_draws": draws, "n_chains": 2}
    c0, t0 = time.process_time(), time.perf_counter()
    if which == "textbook":
        sites = jax.tree_util.tree_map(lambda a: jnp.asarray(a, X.dtype),
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


def _block_point(X: np.ndarray) -> dict:
    """Unconstrained sites (float64 NumPy) at each generating block's mean and
    covariance, equal weights: a point near the posterior, without an EM fit."""
    blocks = X.astype(np.float64).reshape(K, -1, D)
    L = np.linalg.cholesky(np.stack([np.cov(b.T) for b in blocks]))
    scales = np.sqrt(np.sum(L * L, axis=-1))
    return P.unconstrain({"weights": np.full(K, 1.0 / K), "means": blocks.mean(1),
                          "scales": scales, "corr_chol": L / scales[:, :, None]}, "full")


def _evaluations(X: np.ndarray, z: dict, dtype) -> dict:
    """Jitted value-and-gradient functions of z, by kernel, and their argument."""
    from numpyro.infer.util import potential_energy
    from nuts import textbook

    Xj = jnp.asarray(X, dtype)
    zj = {k: jnp.asarray(v, dtype) for k, v in z.items()}
    pr = Priors().resolve(np.asarray(X, dtype))
    feats = jax.jit(lambda X: P.Moments(*_features(X)))(Xj)
    blocks = jax.jit(P.row_blocks)(Xj)  # made once, as the sampler does
    vg = lambda f: jax.jit(jax.value_and_grad(f))
    fns = {"textbook": vg(lambda z: potential_energy(textbook, (Xj, K, pr), {}, z)),
           "centred": vg(lambda z: P.potential(z, Xj, "full", pr, blocks=blocks)),
           "moment": vg(lambda z: _forced_moment(z, Xj, pr, feats))}
    return fns, zj


def _features(X):
    # P.moments, also in float32 (which P.moments declines)
    c = jnp.mean(X, axis=0)
    Y = X - c
    i, j = np.triu_indices(D)
    return (jnp.concatenate([jnp.ones_like(Y[:, :1]), Y, Y[:, i] * Y[:, j]], axis=1), c,
            jnp.sqrt(jnp.max(jnp.sum(Y * Y, axis=1))))


def _forced_moment(z, X, priors, feats):
    """The potential with the moment kernel whatever the guard says."""
    saved = P._moment_exact
    P._moment_exact = lambda *a: jnp.bool_(True)
    try:
        return P.potential(z, X, "full", priors, moments=feats)
    finally:
        P._moment_exact = saved


def _cpu_ms(fn, arg, reps: int) -> float:
    c = time.process_time()
    for _ in range(reps):
        jax.block_until_ready(fn(arg))
    return (time.process_time() - c) / reps * 1e3


def per_eval() -> None:
    import os

    print(f"machine: {_common.machine()}; D={D}, K={K}; one jitted value-and-gradient, "
          f"CPU ms (best of 3 alternating rounds)\n")
    print(f"{'N':>8} {'dtype':>8} {'textbook':>9} {'centred':>8} {'moment':>8} "
          f"{'textbook/centred':>16} {'textbook/moment':>15}  load", flush=True)
    for n in (2_000, 20_000, 100_000):
        X = elongated(n)
        z = _block_point(X)
        for dtype in (np.float32, np.float64):
            with jax.enable_x64(dtype == np.float64):
                fns, zj = _evaluations(X, z, dtype)
                for f in fns.values():
                    jax.block_until_ready(f(zj))
                reps = max(3, 200_000 // n)
                best = {name: min(_cpu_ms(f, zj, reps) for _ in range(1))
                        for name, f in fns.items()}
                for _ in range(2):
                    for name, f in fns.items():
                        best[name] = min(best[name], _cpu_ms(f, zj, reps))
            t, c, m = best["textbook"], best["centred"], best["moment"]
            load = " ".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"{n:>8} {np.dtype(dtype).name:>8} {t:>9.2f} {c:>8.2f} {m:>8.2f} "
                  f"{t / c:>15.1f}x {t / m:>14.1f}x  {load}", flush=True)
    print("\nerror of the potential's value against float64 (centred kernel), N = 100,000:")
    X0 = elongated(100_000)
    z0 = _block_point(X0)
    far = X0.astype(np.float64).reshape(K, -1, D)
    far[0] = far[0].mean(0) + 0.01 * (far[0] - far[0].mean(0)) + 100.0
    cases = {"benchmark data": (X0, z0), "offset by 1,000": (X0 + np.float32(1000), None),
             "compact component 100 away": (far.reshape(-1, D).astype(np.float32), None)}
    print(f"{'':28} {'float32 centred':>16} {'float32 moment':>15} {'float64 moment':>15} "
          f"{'float64 guard':>13}")
    for name, (X, z) in cases.items():
        z = _block_point(X) if z is None else z
        vals = {}
        for dtype in (np.float32, np.float64):
            with jax.enable_x64(dtype == np.float64):
                fns, zj = _evaluations(X, z, dtype)
                vals[dtype] = {k: float(fns[k](zj)[0]) for k in ("centred", "moment")}
                if dtype == np.float64:
                    Xj = jnp.asarray(X, dtype)
                    sites = P.constrain(zj, "full")
                    chosen = P._moment_exact(P.moments(Xj, "full"), None, sites["means"],
                                             sites["scales"][:, :, None] * sites["corr_chol"],
                                             "full")
                    guard = "moment" if bool(chosen) else "centred"
        ref = vals[np.float64]["centred"]
        print(f"{name:28} {vals[np.float32]['centred'] - ref:>16.3g} "
              f"{vals[np.float32]['moment'] - ref:>15.3g} "
              f"{vals[np.float64]['moment'] - ref:>15.3g} {guard:>13}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--iters", type=int, default=200, help="warm-up = draws, bayesgmm")
    ap.add_argument("--textbook-iters", type=int, default=None,
                    help="warm-up = draws for the textbook model (default: --iters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("ours", "textbook"), default=None)
    ap.add_argument("--per-eval", action="store_true",
                    help="time one value-and-gradient by kernel, and its error")
    ap.add_argument("--x64", action="store_true",
                    help="float64 data, x64 on (bayesgmm then runs the moment kernel)")
    ap.add_argument("--child", nargs=6, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.per_eval:
        return per_eval()
    if a.child:
        which, n, w, d, s, dtype = a.child
        return child(which, int(n), int(w), int(d), int(s), dtype)
    t_iters = a.textbook_iters or a.iters
    dtype = "float64" if a.x64 else "float32"
    print(f"machine: {_common.machine()}; N={a.n}, D={D}, K={K}, {dtype}, 2 chains\n")
    print(f"{'':28} {'warm+draws':>10} {'wall s':>8} {'cpu s':>8} {'leapfrog/it':>11} "
          f"{'min ESS':>8} {'ESS/wall s':>10} {'ESS/cpu s':>10}", flush=True)
    rows = {}
    for which, iters in (("textbook", t_iters), ("ours", a.iters)):
        if a.only and which != a.only:
            continue
        out = subprocess.run([sys.executable, __file__, "--child", which, str(a.n),
                              str(iters), str(iters), str(a.seed), dtype],
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
