"""BIC sweep over n_components 1..20: bayesgmm's sweep against scikit-learn's loop,
compile time included. On the seed blobs ``engine="auto"`` runs on the host (NumPy,
nothing to compile); the row below it forces the compiled path (``engine="jax"``: one
padded program for every K; a fresh process pays its compilation once, and two more
fresh processes show the persistent compilation cache filling and then reused). The last
row runs 4 restarts per K on a 10,000-row subsample (``init_subsample``, ``n_init=4``)
and refines the best on all rows: more robust than one start, and cheaper. ``loop s`` is
the tutorial's own loop ``[GaussianMixture(k).fit(X).bic(X) for k in 1..20]`` with
bayesgmm's estimator (its padded sizes differ from the sweep's, so it compiles afresh).

    python benchmarks/sweep.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings

import _common  # noqa: F401
import numpy as np
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_blobs
from bayesgmm.selection import sweep


def _s(seconds: float) -> str:
    return f"{seconds:>9.3f}" if seconds < 1 else f"{seconds:>9.2f}"


def compare(name, X, ks, tutorial_loop=False, **kw):
    t = time.perf_counter()
    table = sweep(X, ks, random_state=0, **kw)
    ours_cold = time.perf_counter() - t
    t = time.perf_counter()
    sweep(X, ks, random_state=0, **kw)
    ours_warm = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        bics = [SkGM(k, random_state=0).fit(X).bic(X) for k in ks]
        sk = time.perf_counter() - t
        loop = ""
        if tutorial_loop:  # the tutorial's own loop, with bayesgmm's estimator
            t = time.perf_counter()
            [GaussianMixture(k, random_state=0, **kw).fit(X).bic(X) for k in ks]
            loop = _s(time.perf_counter() - t)
    print(f"{name:28} {_s(ours_cold)} {_s(ours_warm)} {_s(sk)} "
          f"{sk / ours_cold:>7.1f}x {table.best['n_components']:>5} "
          f"{ks[int(np.argmin(bics))]:>5} {loop}", flush=True)


def child(cache_dir):
    """The seed-data sweep in this fresh process with the disk compilation cache on."""
    from bayesgmm.compilation import enable_compilation_cache

    enable_compilation_cache(cache_dir)
    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    t = time.perf_counter()
    sweep(X, list(range(1, 21)), random_state=0, engine="jax")
    print(time.perf_counter() - t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    print(f"machine: {_common.machine()}\n")
    print(f"{'data':28} {'ours s':>9} {'(warm)':>9} {'sklearn s':>9} {'speedup':>8} "
          f"{'K ours':>5} {'K sk':>5} {'loop s':>9}")
    ks = list(range(1, 21))
    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    compare("seed blobs (300 x 2)", X, ks, tutorial_loop=True)
    compare("  same, engine='jax'", X, ks, tutorial_loop=True, engine="jax")
    from bayesgmm.compilation import cache_supported

    with tempfile.TemporaryDirectory() as cache:  # fill the disk cache, then reuse it
        for label in ("fills the disk cache", "disk cache warm") if cache_supported() else ():
            out = subprocess.run([sys.executable, __file__, "--child", cache],
                                 capture_output=True, text=True, check=True).stdout.split()
            print(f"  engine='jax', fresh process, {label}: {float(out[-1]):.2f} s")
    if not args.quick:
        rng = np.random.default_rng(0)
        centers = rng.normal(0, 3, (6, 8))
        Xb = centers[rng.integers(0, 6, 100_000)] + rng.normal(size=(100_000, 8))
        compare("100,000 x 8, 6 clusters", Xb, ks, tutorial_loop=True)
        compare("  same, n_init=4 on 10k rows", Xb, ks, init_subsample=10_000, n_init=4)


if __name__ == "__main__":
    main()
