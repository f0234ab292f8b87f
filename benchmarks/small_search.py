"""Where the 14-model search's time goes below 300 rows, and what would shorten it.

The model search (``selection.sweep`` over mclust's 14 models, K = 1..9, its defaults)
is slower than mclust's Fortran on data sets below ~300 rows (``mclust.py``). This
script measures why, per data set, in this process's CPU seconds:

* ``search``: the whole search (the fastest of ``--repeat`` runs; the tree grown again
  each time); ``mclust``: ``mclustBIC``'s own CPU seconds when R and mclust are there
  (``mclust.R``, the fastest of ``--repeat``);
* the split of the search: the hierarchical tree and its starts
  (``initialize.hc_params_many``), the lockstep EM loop
  (``engines.numpy.fit_many_models``: every model, K and start iterating together),
  and the rest (k-means starts, each cell's pick, the criteria, the 126 estimators);
* ``members`` and ``member its``: the EMs of the loop and their iterations summed;
  ``loop its``: its iterations (its slowest member's: a member alone costs an
  iteration's calls as a full batch does);
* a candidate that would shorten the loop, simulated on the histories of this very
  search: stop a start once a rival start of its cell has converged above an optimistic
  estimate of where it is going (its log-likelihood plus 10x Aitken's estimate of the
  gain left, from its last two steps). ``saved``: the member iterations that would
  save; ``loop its`` after it; ``winner changes``: cells whose kept fit would change,
  because the stopped start would have ended above its rival by more than 10x the
  search's ``tol`` a row (a better optimum, found after a plateau);
* ``--compiled``: the same search on the compiled engine (``engine="jax"``) in a fresh
  process without the disk compilation cache: its first call (compiling) and its
  second (compiled), CPU seconds.

    python benchmarks/small_search.py [--data diabetes,faithful,iris,r] [--repeat 3] [--compiled]

``r`` adds the R data sets below 300 rows (EuroUnemployment, trees, USArrests, swiss,
banknote, thyroid; R exports them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import _common  # noqa: F401 (sets OPENBLAS_NUM_THREADS)
import numpy as np

import bayesgmm.engines.numpy as host
import bayesgmm.fitting as fitting
import bayesgmm.initialize as initialize
from bayesgmm.selection import sweep

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mclust import MCLUST_MODELS, R_DATA, data_sets, run_mclust  # noqa: E402

SMALL_R = ("EuroUnemployment", "trees", "USArrests", "swiss", "banknote", "thyroid")
K = range(1, 10)
TOL = 1e-5  # the search's (selection.SWEEP_DEFAULTS)


class Recorder:
    """CPU seconds inside two of our functions, and the loop's results, by wrapping them
    (our own code: nothing of NumPy's is replaced)."""

    def __init__(self):
        self.seconds = {"tree": 0.0, "loop": 0.0}
        self.results, self.groups = None, {}
        self._orig = (initialize.hc_params_many, host.fit_many_models, fitting._sweep_results)

    def __enter__(self):
        hc, loop, results = self._orig

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                t = time.process_time()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds[name] += time.process_time() - t
            return wrapper

        def keep_results(*args, **kwargs):
            self.results = loop(*args, **kwargs)
            return self.results

        def keep_groups(res, options, ks, groups, X):
            self.groups[options.covariance_type] = groups
            return results(res, options, ks, groups, X)

        initialize.hc_params_many = timed("tree", hc)
        host.fit_many_models = timed("loop", keep_results)
        fitting._sweep_results = keep_groups
        return self

    def __exit__(self, *exc):
        initialize.hc_params_many, host.fit_many_models, fitting._sweep_results = self._orig


def search_seconds(X, repeat: int) -> tuple[float, Recorder]:
    best, rec = np.inf, None
    for _ in range(repeat):
        initialize._HC_CACHE.clear()  # grow the tree again, as a fresh process would
        with Recorder() as r:
            t = time.process_time()
            sweep(X, K, "all", random_state=0)
            seconds = time.process_time() - t
        if seconds < best:
            best, rec = seconds, r
    return best, rec


def loser_stop(rec: Recorder, factor: float = 10.0) -> tuple[int, int, list]:
    """Member iterations saved, the loop's iterations after, and the cells whose kept
    fit would change, if a start stopped once a converged rival of its cell is above its
    log-likelihood plus ``factor`` x Aitken's estimate of the gain left."""
    saved, changes, ends = 0, [], []
    for kind, groups in rec.groups.items():
        results = rec.results[kind]
        for k, per_k in zip(K, groups):
            members = [m for group in per_k for m in group]
            final = {m: float(results[m][1].lower_bound) for m in members}
            for m in members:
                info = results[m][1]
                h, n = np.asarray(info.history), int(info.n_iter)
                stop = n
                for t in range(3, n):
                    d1, d2 = h[t] - h[t - 1], h[t - 1] - h[t - 2]
                    if not (np.isfinite(d1) and np.isfinite(d2) and d2 > 0 and 0 <= d1 < d2):
                        continue
                    rate = d1 / d2
                    reach = h[t] + factor * d1 * rate / (1 - rate)
                    beaten = [o for o in members if o != m and bool(results[o][1].converged)
                              and int(results[o][1].n_iter) <= t and final[o] > reach + 1e-3]
                    if beaten:
                        stop = t
                        # a different optimum, not the same one reached to tol (1e-5
                        # per row) from another side
                        if final[m] > max(final[o] for o in beaten) + 10 * TOL:
                            changes.append(f"{kind},{k}")
                        break
                saved += n - stop
                ends.append(stop)
    return saved, max(ends), sorted(set(changes))


def compiled_seconds(name: str, X: np.ndarray) -> tuple[float, float]:
    """First and second call of the compiled search, CPU seconds, in a fresh process
    without the disk compilation cache."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, X)
        code = (
            "import time, warnings, numpy as np\n"
            "warnings.simplefilter('ignore')\n"
            "from bayesgmm.selection import sweep\n"
            "from bayesgmm.initialize import _HC_CACHE\n"
            f"X = np.load({path!r})\n"
            "for _ in range(2):\n"
            "    _HC_CACHE.clear(); t = time.process_time()\n"
            "    sweep(X, range(1, 10), 'all', random_state=0, engine='jax')\n"
            "    print(time.process_time() - t)\n")
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["OPENBLAS_NUM_THREADS"] = "1"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="diabetes,faithful,iris,r")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compiled", default="",
                        help="comma-separated data sets to time on the compiled engine too")
    args = parser.parse_args()
    names = args.data.split(",")
    have_r = shutil.which("Rscript") is not None
    if "r" in names:
        names = [n for n in names if n != "r"] + (list(SMALL_R) if have_r else [])
    sets = data_sets(names)
    warnings.simplefilter("ignore")
    print(f"machine: {_common.machine()}; CPU seconds; 14 models, K = 1..9; "
          f"load {os.getloadavg()[0]:.1f}\n")
    print(f"{'data':17} {'N x D':>7} {'mclust':>7} {'search':>7} {'ratio':>6} {'tree':>6} "
          f"{'loop':>6} {'rest':>6} {'members':>7} {'member its':>10} {'loop its':>8} | "
          f"{'saved':>6} {'loop its':>8} winner changes")
    with tempfile.TemporaryDirectory() as workdir:
        for name, X in sets.items():
            theirs = np.nan
            if have_r:
                theirs = min(run_mclust(X, MCLUST_MODELS, 9, workdir, "cpu")[1]
                             for _ in range(args.repeat))
            seconds, rec = search_seconds(X, args.repeat)
            infos = [info for results in rec.results.values() for _, info in results]
            its = [int(i.n_iter) for i in infos]
            saved, after, changes = loser_stop(rec)
            tree, loop = rec.seconds["tree"], rec.seconds["loop"]
            print(f"{name:17} {X.shape[0]:>4}x{X.shape[1]:<2} {theirs:>7.2f} {seconds:>7.2f} "
                  f"{theirs / seconds:>5.2f}x {tree:>6.2f} {loop:>6.2f} "
                  f"{seconds - tree - loop:>6.2f} {len(its):>7} {sum(its):>10} {max(its):>8} | "
                  f"{saved:>6} {after:>8} {len(changes)}: {' '.join(changes)}", flush=True)
    for name in filter(None, args.compiled.split(",")):
        first, second = compiled_seconds(name, data_sets([name])[name])
        print(f"compiled engine, {name}: first call {first:.1f} s, second {second:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
