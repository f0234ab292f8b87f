"""EM per-iteration time of this checkout against another commit's, side by side.

    git worktree add /tmp/base beca28d --detach       # the commit to compare against
    python benchmarks/em_vs_commit.py /tmp/base       # diag and spherical, both dtypes
    python benchmarks/em_vs_commit.py /tmp/base --types diag --dtypes float64 --rounds 5

Each measurement is a fresh Python process with ``PYTHONPATH`` set to one of the two
source trees, pinned to one core (``taskset -c CORE``, so that the comparison does not
depend on how the load lets threads run) and timed by the process's CPU clock. The two
trees alternate (the order swaps every round), and each process reports the iteration
time of ``em.fit`` at N = 10⁶, D = 8, K = 32 (default) from the same data and the same
initial parameters, built here with NumPy (not by either tree's initialiser):
(t(n + 4) − t(n)) / 4 with n = 2, each t the minimum of ``--repeat`` runs after
compilation. The summary is the median over ``--rounds`` processes per tree and the
ratio of the medians; the load average is printed beside every number. The final lower
bounds of the two trees are printed too (equal to round-off where the algorithm is the
same).

Glossary: N samples, D features, K components.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ["child", "main"]

HERE = os.path.dirname(os.path.abspath(__file__))


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def child(N: int, D: int, K: int, covariance_type: str, dtype: str, n: int,
          repeat: int) -> dict:
    """One tree's measurement in this process (the tree is whatever ``bayesgmm`` imports):
    per-iteration CPU time in ms, the lower bound after n + 4 iterations and the tree."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import jax
    import jax.numpy as jnp
    import numpy as np

    import bayesgmm
    from bayesgmm.params import GMMParams
    try:
        from bayesgmm.engines import jax as em
    except ImportError:  # trees before the engine seam
        from bayesgmm import em

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (K, D))
    X = (centers[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(dtype)
    # the start: uniform weights, K distinct random rows as means, each feature's spread
    rows = rng.choice(N, K, replace=False)
    spread = X.astype(np.float64).std(axis=0)
    scale = (np.tile(spread, (K, 1)) if covariance_type == "diag"
             else np.full(K, np.sqrt(np.mean(spread ** 2))))
    with jax.enable_x64(dtype == "float64"):
        Xj = jnp.asarray(X)
        p0 = GMMParams(np.full(K, 1.0 / K, dtype), X[rows].astype(dtype),
                       scale.astype(dtype), covariance_type)

        def run(n_iter):
            return jax.block_until_ready(em.fit(Xj, p0, tol=0.0, max_iter=n_iter))

        t = time.perf_counter()
        run(n), run(n + 4)
        compile_s = time.perf_counter() - t

        def cpu(n_iter):
            times = []
            for _ in range(repeat):
                t = time.process_time()
                run(n_iter)
                times.append(time.process_time() - t)
            return min(times)

        t1, t2 = cpu(n), cpu(n + 4)
        lower_bound = float(run(n + 4)[1].lower_bound)
    return {"ms": (t2 - t1) / 4 * 1e3, "lower_bound": lower_bound, "compile_s": compile_s,
            "tree": os.path.dirname(os.path.dirname(os.path.abspath(bayesgmm.__file__))),
            "load": _load()}


def _measure(tree: str, core: int, args, covariance_type: str, dtype: str) -> dict:
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    cmd = ["taskset", "-c", str(core), sys.executable, os.path.abspath(__file__), "--child",
           "--N", str(args.N), "--D", str(args.D), "--K", str(args.K), "--type",
           covariance_type, "--dtype", dtype, "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if os.path.realpath(result["tree"]) != os.path.realpath(tree):
        raise RuntimeError(f"the child imported bayesgmm from {result['tree']}, not {tree}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", help="the other source tree (a worktree)")
    parser.add_argument("--new", default=os.path.dirname(HERE),
                        help="this tree (default: the checkout holding this script)")
    parser.add_argument("--types", default="diag,spherical")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree and row")
    parser.add_argument("--repeat", type=int, default=3, help="each t: min of this many")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--N", type=int, default=1_000_000)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--type", default="diag", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.N, args.D, args.K, args.type, args.dtype, 2,
                               args.repeat)))
        return
    if not args.base:
        parser.error("give the other source tree, e.g. a worktree of the base commit")
    trees = {"base": os.path.abspath(args.base), "new": os.path.abspath(args.new)}
    for name, tree in trees.items():
        head = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h %cs"],
                              capture_output=True, text=True, check=False).stdout.strip()
        print(f"{name}: {tree} ({head})")
    print(f"N={args.N}, D={args.D}, K={args.K}; one core (taskset -c {args.core}), "
          f"CPU clock, (t(6) - t(2)) / 4, each t the min of {args.repeat}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {_load()}",
          flush=True)
    summary = []
    for ct in args.types.split(","):
        for dtype in args.dtypes.split(","):
            times = {"base": [], "new": []}
            bounds = {}
            for r in range(args.rounds):
                order = ("base", "new") if r % 2 == 0 else ("new", "base")
                for name in order:
                    res = _measure(trees[name], args.core, args, ct, dtype)
                    times[name].append(res["ms"])
                    bounds[name] = res["lower_bound"]
                    print(f"  {ct:>9} {dtype:>7} {name:>4}: {res['ms']:7.1f} ms/it "
                          f"(load {res['load']}, compile {res['compile_s']:.1f} s)",
                          flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            rel = abs(bounds["new"] - bounds["base"]) / abs(bounds["base"])
            summary.append((ct, dtype, med["base"], med["new"], med["base"] / med["new"],
                            bounds["base"], rel))
    print(f"\nmedians (load at the end {_load()}):")
    print(f"{'type':>9} {'dtype':>7} | {'base ms/it':>10} {'new ms/it':>10} {'speedup':>8} | "
          f"{'lower bound (base)':>19} {'rel. diff':>9}")
    for ct, dtype, b, n, s, lb, rel in summary:
        print(f"{ct:>9} {dtype:>7} | {b:>10.1f} {n:>10.1f} {s:>7.2f}x | {lb:>19.10f} "
              f"{rel:>9.1e}")


if __name__ == "__main__":
    main()
