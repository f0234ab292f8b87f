"""Where the host (NumPy) engine pays: per-iteration time of EM on the host against the
compiled path, and the compiled path's first call (trace + compile + run), around
``bayesgmm.engines.choose.HOST_WORK`` (N·K·F multiply-adds per E-step). ``engine="auto"`` runs on
the host at or below that work.

    python benchmarks/host.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import _common
import jax
import numpy as np

from bayesgmm.engines import jax as em, numpy as host
from bayesgmm.covariance import n_moment_features
from bayesgmm.engines.choose import HOST_WORK
from bayesgmm.initialize import params_from_centers
from bayesgmm.validation import compute_scope

N_ITER = 20


def run(N, D, K, dtype=np.float64):
    rng = np.random.default_rng(0)
    X = (rng.normal(0, 3, (K, D))[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(dtype)
    start = params_from_centers(X[:K], K, "full")
    kw = dict(tol=-1.0, max_iter=N_ITER, hard_start=True)  # tol < 0: every iteration runs
    host.fit(X, start, **kw)
    t_host = _common.best_of(lambda: host.fit(X, start, **kw)) / N_ITER
    with compute_scope(dtype):
        Xj = jax.device_put(X)
        t = time.perf_counter()
        jax.block_until_ready(em.fit(Xj, start, **kw))
        first = time.perf_counter() - t
        t_jax = _common.best_of(lambda: jax.block_until_ready(em.fit(Xj, start, **kw))) / N_ITER
    work = N * K * n_moment_features(D, True)
    side = "host" if work <= HOST_WORK else "jax"
    print(f"{N:>7} {D:>3} {K:>3} {work:>10} {side:>6} {t_host * 1e3:>10.3f} "
          f"{t_jax * 1e3:>10.3f} {t_host / t_jax:>7.2f} {first:>9.2f} "
          f"{first / max(t_host - t_jax, 1e-9):>10.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}; HOST_WORK = {HOST_WORK}\n")
    print(f"{'N':>7} {'D':>3} {'K':>3} {'N*K*F':>10} {'auto':>6} {'host ms':>10} "
          f"{'jax ms':>10} {'ratio':>7} {'jax 1st s':>9} {'break-even':>10}")
    grid = [(300, 2, 4), (300, 2, 20), (1000, 4, 8), (2000, 8, 4), (5000, 2, 4),
            (3000, 4, 10), (10000, 2, 8), (12000, 4, 6), (20000, 4, 8), (20000, 8, 8),
            (100000, 8, 8)]
    for N, D, K in grid[:3] if args.quick else grid:
        run(N, D, K)
    print("\nratio: host / compiled time per iteration; break-even: iterations after which "
          "the compiled path's first call (compilation) has paid for itself")


if __name__ == "__main__":
    main()
