"""EM per-iteration time: bayesgmm vs scikit-learn, same process, identical initial
parameters. Prints one row per (N, D, K, covariance type, dtype).

    python benchmarks/em.py            # the default grid (a few minutes on 2 cores)
    python benchmarks/em.py --quick    # small sizes, seconds

Per-iteration time is (t(n2) - t(n1)) / (n2 - n1) for both libraries, which cancels
set-up and initialisation; bayesgmm is timed after compilation (compile time is
reported separately). GFLOP/s counts 4·N·K·D² per full-covariance iteration (the
Mahalanobis projection and the second-moment accumulation, 2·N·K·D² each) and 4·N·K·D for
diag; "peak" is a measured square matmul in the same dtype on the same machine.
"""

from __future__ import annotations

import argparse
import time
import warnings

import _common  # noqa: F401  (sets OPENBLAS_NUM_THREADS first)
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm.engines import jax as em
from bayesgmm.initialize import init_params


def run_one(N, D, K, ct, dtype, kernel="auto", n1=2, n2=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (K, D))
    X = (centers[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        Xj = jnp.asarray(X)
        p0 = init_params(jax.random.PRNGKey(seed), Xj[: min(N, 20000)], K, ct,
                         "random_from_data")
        p0 = jax.tree_util.tree_map(np.asarray, p0)
        t = time.perf_counter()
        jax.block_until_ready(em.fit(Xj, p0, tol=0.0, max_iter=n1, kernel=kernel))
        jax.block_until_ready(em.fit(Xj, p0, tol=0.0, max_iter=n2, kernel=kernel))
        compile_s = time.perf_counter() - t
        run = lambda n: jax.block_until_ready(em.fit(Xj, p0, tol=0.0, max_iter=n,
                                                      kernel=kernel))
        t1 = _common.best_of(lambda: run(n1), 2)
        t2 = _common.best_of(lambda: run(n2), 2)
        ours_iter = (t2 - t1) / (n2 - n1)
        ours_lb = float(run(n2)[1].lower_bound)
        precisions = np.asarray(jax.tree_util.tree_map(np.asarray, p0).precisions)
    sk = lambda n: SkGM(K, covariance_type=ct, tol=0.0, max_iter=n, init_params="random",
                        weights_init=np.asarray(p0.weights, np.float64)
                        / np.asarray(p0.weights, np.float64).sum(),
                        means_init=np.asarray(p0.means, np.float64),
                        precisions_init=precisions.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = _common.best_of(lambda: sk(n1).fit(X), 1)
        t = time.perf_counter()
        ref = sk(n2).fit(X)
        s2 = time.perf_counter() - t
    sk_iter = (s2 - s1) / (n2 - n1)
    flops = (4 * N * K * D * D) if ct in ("full", "tied") else 4 * N * K * D
    gflops = flops / ours_iter / 1e9
    return {"N": N, "D": D, "K": K, "type": ct, "dtype": np.dtype(dtype).name,
            "ours_ms": ours_iter * 1e3, "sklearn_ms": sk_iter * 1e3,
            "speedup": sk_iter / ours_iter, "rel_ll_diff": abs(ours_lb - ref.lower_bound_)
            / abs(ref.lower_bound_), "gflops": gflops, "compile_s": compile_s}


GRID = [
    (100_000, 8, 32, "full", np.float64),
    (1_000_000, 8, 32, "full", np.float64),
    (1_000_000, 8, 32, "full", np.float32),
    (1_000_000, 8, 32, "full", np.float32, "moments"),
    (1_000_000, 8, 32, "diag", np.float64),
    (200_000, 32, 16, "full", np.float64),
]
QUICK = [(20_000, 4, 8, "full", np.float64), (20_000, 4, 8, "diag", np.float32)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}")
    peak = {np.float64: _common.matmul_peak(np.float64), np.float32: _common.matmul_peak(np.float32)}
    print(f"measured matmul peak: float64 {peak[np.float64]:.1f} GFLOP/s, "
          f"float32 {peak[np.float32]:.1f} GFLOP/s")
    head = (f"{'N':>9} {'D':>3} {'K':>3} {'type':>5} {'dtype':>8} | {'ours ms/it':>10} "
            f"{'sklearn ms/it':>13} {'speedup':>8} | {'rel LL diff':>11} {'GFLOP/s':>8} "
            f"{'% peak':>6} {'compile s':>9}")
    print(head)
    print("-" * len(head))
    for N, D, K, ct, dtype, *kernel in (QUICK if args.quick else GRID):
        r = run_one(N, D, K, ct, dtype, *kernel)
        pct = 100 * r["gflops"] / peak[dtype]
        name = r["dtype"] + ("*" if kernel else "")
        print(f"{N:>9} {D:>3} {K:>3} {ct:>5} {name:>8} | {r['ours_ms']:>10.1f} "
              f"{r['sklearn_ms']:>13.1f} {r['speedup']:>7.1f}x | {r['rel_ll_diff']:>11.1e} "
              f"{r['gflops']:>8.1f} {pct:>5.0f}% {r['compile_s']:>9.1f}", flush=True)
    print('* kernel="moments" chosen explicitly (the float32 default is "centred")')


if __name__ == "__main__":
    main()
