"""bayesgmm's default model search against R's mclust, side by side on the same rows.

For each data set (Old Faithful 272 x 2, mclust's diabetes 145 x 3, iris 150 x 4, and
a simulated 20,000 x 5 mixture) both fit every model in ``--models`` for K = 1..9:
mclust by ``mclustBIC`` (``benchmarks/mclust.R``, run by ``Rscript``), bayesgmm by
:func:`bayesgmm.selection.sweep` with its defaults (``init_params="auto"``). Printed
per data set:

* ``reached``: the fits whose log-likelihood reaches mclust's within 1e-3 relative (or
  beats it), of the (model, K) that mclust fits (it leaves singular fits out); a fit
  the table flags ``collapsed`` there counts as a miss (its likelihood is
  ``reg_covar``'s, not an optimum mclust's can be weighed against);
* ``worst``: the largest relative shortfall, and where;
* ``best``: each side's best (model, K) by BIC, and whether they agree. mclust's BIC is
  ``2 log L - p log n`` (higher is better), bayesgmm's ``-2 log L + p log n``;
* the seconds of the fits alone (imports, interpreter start and reading the data
  excluded; bayesgmm's compilation included, its first sweep in this process) and
  mclust's time over bayesgmm's.

``--data r`` adds ten data sets shipped with R and mclust (:data:`R_DATA`: banknote,
thyroid, wreath, chevron, acidity, EuroUnemployment, USArrests, trees, swiss, quakes),
which R exports; on one feature (acidity) both sides fit mclust's E and V.

Model names are mclust's on both sides (``covariance_type`` takes mclust's 14, and the
sweep's table lists them by those names).

    python benchmarks/mclust.py [--models all | EII,VII,...] [--data faithful,...] [--init auto]

``--models all``: mclust's 14. ``--prior``: both sides with mclust's default prior
(``priorControl()``; bayesgmm's ``prior="default"``, mclust's M-step for each model);
mclust has no prior for VEE, EVE, VVE and EVV, whose cells it leaves empty.
``--clock cpu``: each side's own CPU seconds (user + system) instead of the wall clock, for a shared machine whose load would otherwise
time the other processes' work. ``--repeat n``: each side runs n times, alternating,
and the fastest time of each is kept (the fits and the agreement are the first
run's; bayesgmm's later runs grow the hc tree again, and on the host nothing is
compiled, so a later run is not a warm one; on the compiled path it would be). The machine's load average (1 minute) is printed before
each data set: the machine may be shared, and both sides run in turn, so a ratio is
only as steady as the load beside it.

Needs R and mclust (Debian: ``apt-get install r-base-core r-cran-mclust``).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import warnings

import _common  # noqa: F401
import numpy as np

from bayesgmm.datasets import load_diabetes, load_faithful, make_mixture
from bayesgmm.initialize import _HC_CACHE
from bayesgmm.params import GMMParams
from bayesgmm.selection import all_covariance_types, sweep

#: mclust's 14 models in its own order (``--models all``).
MCLUST_MODELS = all_covariance_types()
HERE = os.path.dirname(os.path.abspath(__file__))


def simulated(n: int = 20_000, d: int = 5, k: int = 4) -> np.ndarray:
    """A mixture of ``k`` full-covariance components in ``d`` dimensions, seed 0."""
    rng = np.random.default_rng(0)
    means = rng.normal(0, 4, (k, d))
    A = rng.normal(size=(k, d, d)) / np.sqrt(d)
    cov = A @ np.swapaxes(A, 1, 2) + 0.3 * np.eye(d)
    truth = GMMParams(np.full(k, 1 / k), means, np.linalg.cholesky(cov), "full")
    return make_mixture(truth, n, random_state=0).X


#: Data sets shipped with R and mclust, beyond the four above, by R expression: the
#: rows each side fits (``--data r`` runs them all; R exports them, see :func:`from_r`).
R_DATA = {
    "banknote": "mclust::banknote[, -1]",  # without Status
    "thyroid": "mclust::thyroid[, -1]",  # without Diagnosis
    "wreath": "mclust::wreath",
    "chevron": "mclust::chevron[, -1]",  # without class
    "acidity": "data.frame(acidity = mclust::acidity)",  # one feature: E and V
    "EuroUnemployment": "mclust::EuroUnemployment",
    "USArrests": "datasets::USArrests",
    "trees": "datasets::trees",
    "swiss": "datasets::swiss",
    "quakes": "datasets::quakes[, c('lat', 'long', 'depth', 'mag')]",
}


def from_r(expression: str) -> np.ndarray:
    """The rows of an R data frame, written by R at full precision."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.csv")
        code = (f"x <- as.data.frame({expression}); "
                f"write.table(format(x, digits = 17), '{path}', sep = ',', "
                "row.names = FALSE, col.names = FALSE, quote = FALSE)")
        subprocess.run(["Rscript", "-e", code], check=True, capture_output=True, text=True)
        return np.loadtxt(path, delimiter=",", ndmin=2)


def data_sets(names):
    from sklearn.datasets import load_iris

    table = {"faithful": lambda: load_faithful().X, "diabetes": lambda: load_diabetes().X,
             "iris": lambda: load_iris().data, "sim20000x5": simulated,
             **{name: (lambda e=e: from_r(e)) for name, e in R_DATA.items()}}
    if "r" in names:
        names = [n for n in names if n != "r"] + list(R_DATA)
    return {name: table[name]() for name in names}


def run_mclust(X: np.ndarray, models, g_max: int, workdir: str,
               clock: str = "wall", prior: bool = False) -> tuple[dict, float]:
    """``{(model, K): (loglik, bic)}`` from mclust, and the seconds of its fits."""
    src, out = os.path.join(workdir, "x.csv"), os.path.join(workdir, "out.csv")
    np.savetxt(src, X, delimiter=",", header=",".join(f"x{i}" for i in range(X.shape[1])),
               comments="", fmt="%.17g")
    subprocess.run(["Rscript", os.path.join(HERE, "mclust.R"), src, out, str(g_max),
                    ",".join(models), clock, "prior" if prior else "none"], check=True,
                   capture_output=True, text=True)
    cells, seconds = {}, 0.0
    with open(out) as f:
        for row in csv.DictReader(f):
            seconds = float(row["seconds"])
            if row["loglik"] not in ("NA", ""):
                cells[row["model"], int(row["G"])] = (float(row["loglik"]), float(row["bic"]))
    return cells, seconds


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run_ours(X: np.ndarray, models, g_max: int, clock: str = "wall",
             **kw) -> tuple[dict, set, tuple, float]:
    """``{(model, K): loglik}``, the cells the table flags ``collapsed``, the best
    (model, K) by BIC, and the seconds (one feature: mclust's names E and V)."""
    types = list(models)
    now = CLOCKS[clock]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = now()
        table = sweep(X, range(1, g_max + 1), types, random_state=0, **kw)
        seconds = now() - t
    cells, collapsed = {}, set()
    names = dict(zip(("EII", "VII"), ("E", "V"))) if X.shape[1] == 1 else {}
    for i, gm in enumerate(table.models):
        # log L from the BIC (the fitted parameters' own log-likelihood)
        loglik = (gm.params_.n_parameters * np.log(len(X)) - table["bic"][i]) / 2
        ct = str(table["covariance_type"][i])
        cell = names.get(ct, ct), int(table["n_components"][i])
        cells[cell] = loglik
        if table["collapsed"][i]:
            collapsed.add(cell)
    best = table.best
    best = names.get(best["covariance_type"], best["covariance_type"]), best["n_components"]
    return cells, collapsed, best, seconds


def compare(name, X, models, g_max, workdir, repeat=1, clock="wall", **kw):
    load = os.getloadavg()[0]
    prior = kw.get("prior") is not None
    if X.shape[1] == 1:  # mclust's univariate models (bayesgmm's sweep maps the 14 to them)
        models = ["E", "V"]
    theirs, t_mclust = run_mclust(X, models, g_max, workdir, clock, prior)
    ours, flat, our_best, t_ours = run_ours(X, models, g_max, clock, **kw)
    for _ in range(repeat - 1):  # alternate the two sides; keep each one's fastest
        t_mclust = min(t_mclust, run_mclust(X, models, g_max, workdir, clock, prior)[1])
        _HC_CACHE.clear()  # grow the tree again, as a fresh process would
        t_ours = min(t_ours, run_ours(X, models, g_max, clock, **kw)[3])
    rel = {c: (ours[c] - ll) / abs(ll) for c, (ll, _) in theirs.items()}
    # a fit flagged collapsed where mclust fits has not found mclust's optimum (its
    # likelihood is reg_covar's): a miss, whatever its number
    reached = sum(r >= -1e-3 and c not in flat for c, r in rel.items())
    worst = min(rel, key=rel.get)
    their_best = max(theirs, key=lambda c: theirs[c][1])
    same = "yes" if their_best == our_best else "no"
    fmt = lambda c: f"{c[0]},{c[1]}"  # noqa: E731
    print(f"{name:11} {X.shape[0]:>6}x{X.shape[1]:<2} {reached:>4}/{len(rel):<4} "
          f"{100 * rel[worst]:>+8.3f}% {fmt(worst):>7} {fmt(their_best):>7} "
          f"{fmt(our_best):>7} {same:>4} {t_mclust:>8.2f} {t_ours:>8.2f} "
          f"{t_mclust / t_ours:>6.2f}x {load:>5.1f}", flush=True)
    short = sorted((r, c) for c, r in rel.items() if r < -1e-3)
    if short:
        print("    short of mclust: " + ", ".join(
            f"{fmt(c)} {ours[c]:.2f} vs {theirs[c][0]:.2f}" for r, c in short))
    missed = sorted(c for c in flat if c in theirs)
    if missed:
        print("    collapsed where mclust fits: " + ", ".join(map(fmt, missed)))
    beyond = sorted(c for c in ours if c not in theirs and c not in flat)
    if beyond:
        print(f"    fitted where mclust reports a singular fit: {len(beyond)} cells")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="VII,VVI,EEE,VVV",
                        help="comma-separated mclust names, or 'all' (the 14)")
    parser.add_argument("--data", default="faithful,diabetes,iris,sim20000x5",
                        help="comma-separated names; 'r' adds R's data sets (R_DATA: "
                        "banknote, thyroid, wreath, chevron, acidity, EuroUnemployment, "
                        "USArrests, trees, swiss, quakes)")
    parser.add_argument("--max-k", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each side this many times, alternating, and keep "
                        "each one's fastest (a loaded machine's times swing 3x)")
    parser.add_argument("--clock", default="wall", choices=sorted(CLOCKS),
                        help="wall: elapsed seconds; cpu: each process's own CPU seconds "
                        "(user + system: on a shared machine other processes' work does "
                        "not count)")
    parser.add_argument("--init", default=None, help="init_params (default: bayesgmm's)")
    parser.add_argument("--n-init", type=int, default=None)
    parser.add_argument("--tol", type=float, default=None, help="default: the sweep's")
    parser.add_argument("--max-iter", type=int, default=None, help="default: the sweep's")
    parser.add_argument("--prior", action="store_true",
                        help="both sides with mclust's default prior: priorControl() and "
                        "prior='default' (mclust has none for VEE, EVE, VVE, EVV: its "
                        "cells are empty there and not counted)")
    args = parser.parse_args()
    models = list(MCLUST_MODELS) if args.models == "all" else args.models.split(",")
    kw = {}
    if args.init:
        kw["init_params"] = args.init
    if args.n_init:
        kw["n_init"] = args.n_init
    if args.tol:
        kw["tol"] = args.tol
    if args.max_iter:
        kw["max_iter"] = args.max_iter
    if args.prior:
        kw["prior"] = "default"
    version = 'cat(as.character(packageVersion("mclust")), R.version$version.string)'
    r = subprocess.run(["Rscript", "-e", version], capture_output=True, text=True,
                       check=True)
    print(f"machine: {_common.machine()}; mclust {r.stdout.strip()}")
    print(f"models {','.join(models)}, K = 1..{args.max_k}, bayesgmm {kw or 'defaults'}, "
          f"{args.clock} clock\n")
    print(f"{'data':11} {'N x D':>9} {'reached':>9} {'worst':>9} {'at':>7} "
          f"{'mclust':>7} {'ours':>7} {'same':>4} {'mclust s':>8} {'ours s':>8} {'ratio':>7} "
          f"{'load':>5}")
    with tempfile.TemporaryDirectory() as workdir:
        for name, X in data_sets(args.data.split(",")).items():
            compare(name, X, models, args.max_k, workdir, args.repeat, args.clock, **kw)


if __name__ == "__main__":
    sys.exit(main())
