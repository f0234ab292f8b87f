"""Bayesian fits of several data sets of one shape in one process, this checkout against
another commit's source tree, side by side.

    git worktree add /tmp/base 1be8260 --detach    # a tree before the data-scaled priors
    python benchmarks/refit.py /tmp/base            # became the programs' arguments
    python benchmarks/refit.py                      # this checkout alone

A researcher who bootstraps, cross-validates or runs a simulation study fits many data
sets of the same shape. The default priors are resolved from each data set
(:meth:`bayesgmm.Priors.resolve`), so a program that holds them as constants compiles
again for every data set; one that takes them as an argument compiles once.

For each tree, each method (``map``, ``nuts``, ``svi``) runs in a fresh Python process
(``PYTHONPATH`` set to the tree) that fits ``--data-sets`` data sets (three well-separated
2-D clusters, N = ``--n`` rows, a new draw each) with ``BayesianGaussianMixture(3,
method=...)`` at its defaults and ``random_state=0``; it reports each fit's wall and CPU
seconds and the XLA programs it compiled (JAX's backend-compile events). Printed: the
first fit (cold), the median of the later ones, and the later fits' speed-up of this
tree over the base. The machine's load average is printed beside each process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, os, sys, time, warnings
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np, jax
from bayesgmm import BayesianGaussianMixture
method, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
events = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, dur, **kw: events.append(name) if "backend_compile" in name else None)
rows = []
for r in range(m):
    rng = np.random.default_rng(r)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))
    events.clear()
    w, c = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BayesianGaussianMixture(3, method=method, random_state=0).fit(X)
    rows.append([time.perf_counter() - w, time.process_time() - c, len(events)])
print(json.dumps(rows))
"""


def run(tree: str, method: str, n: int, m: int) -> list:
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, method, str(n), str(m)], env=env,
                         capture_output=True, text=True, check=True, cwd="/tmp")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", nargs="?", help="another commit's source tree (a worktree)")
    ap.add_argument("--methods", default="map,nuts,svi")
    ap.add_argument("--n", type=int, default=500, help="rows per data set")
    ap.add_argument("--data-sets", type=int, default=4)
    args = ap.parse_args()
    import _common  # noqa: F401  (machine line, BLAS threads)

    trees = [("new", ROOT)] + ([("base", os.path.abspath(args.base))] if args.base else [])
    print(f"machine: {_common.machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for label, tree in trees:
        sha = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h %cs"],
                             capture_output=True, text=True).stdout.strip()
        print(f"{label}: {tree} ({sha})")
    print(f"{args.data_sets} data sets of {args.n} x 2, K = 3, defaults; wall s / CPU s "
          f"(programs compiled)")
    print(f"{'method':>6} {'tree':>5} | {'first fit':>20} | {'later fits, median':>20} | load")
    for method in args.methods.split(","):
        later = {}
        for label, tree in trees:
            rows = run(tree, method, args.n, args.data_sets)
            first, rest = rows[0], rows[1:]
            med = [statistics.median(r[i] for r in rest) for i in range(3)]
            later[label] = med[0]
            print(f"{method:>6} {label:>5} | {first[0]:6.2f} / {first[1]:6.2f} ({first[2]:3d}) | "
                  f"{med[0]:6.2f} / {med[1]:6.2f} ({med[2]:3.0f}) | "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        if "base" in later:
            print(f"{method:>6} later fits: {later['base'] / later['new']:.1f}x faster than base")


if __name__ == "__main__":
    main()
