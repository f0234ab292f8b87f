"""Missing values (issue 19): recovery against dropping rows and mean imputation, and the
cost of an EM iteration with holes against a complete-data one.

    python benchmarks/missing.py [--quick] [--n-speed N] [--part recovery|speed]

Recovery: data from a known 3-component, 4-feature mixture with correlated, unequal
covariances (N = 3000), with 10%, 30% and 50% of the values deleted completely at
random (every row keeps one value); 3 data seeds. Five fits, each ``n_init=3``:
``full`` (the data before deletion), ``em`` (``missing="marginalize"``), ``drop``
(complete rows only), ``impute`` (NaN -> the column's observed mean, then a plain fit),
and ``full@eff`` (the full data cut to N·(1 - fraction) rows: the same number of
values as the data with holes). Parameter error: mean distance of the means plus mean
Frobenius distance of the covariances, best component matching. ARI of every row's
label: ``em`` and ``drop`` predict from the observed coordinates (``drop``'s
parameters in a ``missing="marginalize"`` estimator), ``impute`` on its filled data.

Speed: N rows (default 10^6), D = 8, K = 16, full covariance, 20% MCAR. Per-iteration
time = (t(10 iterations) - t(2)) / 8 from the same start, each the best of ``--repeat``
(wall), of ``bayesgmm.missing.em`` on the data with holes, with its E-step compiled
(``compiled=True``, the default at this size) and on the host (``compiled=False``),
against a complete-data iteration on the same rows before deletion by the compiled
engine (``engines.jax.fit``, float64, after compilation; timed before and after the
others, since the load moves) and by the host engine (``engines.numpy.fit``), in one
process.

Results (the project's 2-core x86_64 CPU, JAX 0.10.2, OPENBLAS_NUM_THREADS=1,
2026-12-01, while other work ran on the machine: load average 9-14).

Recovery, parameter error / ARI, mean of 3 seeds::

    missing complete  full          full@eff      em            drop          impute
        10%      65%  0.251 / 0.931 0.302 / 0.931 0.254 / 0.885 0.303 / 0.887 1.340 / 0.739
        30%      24%  0.251 / 0.931 0.386 / 0.931 0.360 / 0.759 0.558 / 0.752 3.074 / 0.547
        50%       6%  0.251 / 0.931 0.464 / 0.931 0.638 / 0.584 1.286 / 0.581 4.447 / 0.148

EM with holes recovers the parameters as well as the full data cut to the same number
of values at 10% and 30% (0.254 vs 0.302, 0.360 vs 0.386), 1.4x worse at 50%; dropping
rows is 1.2x, 1.5x and 2.0x worse than it, mean imputation 5-9x (it shrinks the
covariances and pulls the means to the centre). The ARI of rows with holes is lower for
every method (they carry less information); EM's is the best, by a little over ``drop``
(the same marginal predictor with worse parameters), by far over ``impute``.

Speed, N = 10^6, D = 8, K = 16, full, 20% MCAR (255 patterns), ms per iteration
(2026-12-01 21:00 UTC, load average 12-14 on the 2 cores)::

    compiled engine, complete data        443 (329 when timed again at the end)
    host engine, complete data            310
    missing.em compiled, with holes       376   1.14x the compiled complete iteration
    missing.em on the host, with holes    587   1.78x; 1.89x the host's complete one
    once per fit: grouping, padded blocks 1216 ms (the host layout with features: 2997)

The compiled E-step (:func:`bayesgmm.missing.padded_layout`: blocks of one pattern,
8192 rows then 256, one ``lax.scan`` per block size, θ_p by a dynamic index, the
(P, K, F) sums updated in place) costs about what the compiled complete-data E-step
costs: the padding is at most 255 rows a pattern, and the pattern tables and the
completion stay on the host (P·K D×D matrices). Before it, an iteration with holes cost
3.2x the compiled complete one (558 vs 175 ms on a quieter day), the rows' work being
NumPy's, single-threaded. An earlier compiled attempt batched all blocks in one
(B, K, F) @ (B, F, C) einsum and was slower (712 vs 272 ms an E-step at N = 4·10^5);
within the scan, ``sums.at[p].add`` (a scatter) took 90-240 ms an E-step at N = 2·10^5
where a dynamic update of row p takes 77. On this loaded machine the compiled engine's
two threads buy little, so the host engine's complete iteration read faster than the
compiled one in this run; timings vary by ~2x from run to run, so rerun before quoting.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import _common
import jax
import numpy as np

from bayesgmm import GaussianMixture, GMMParams, missing
from bayesgmm.datasets import make_mixture
from bayesgmm.engines import jax as em_jax, numpy as host
from bayesgmm.initialize import params_from_centers
from bayesgmm.metrics import adjusted_rand_score
from bayesgmm.validation import compute_scope


def truth(D=4, K=3, seed=0) -> GMMParams:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (K, D))
    A = rng.normal(size=(K, D, D)) * 0.5 + np.eye(D)
    return GMMParams(np.full(K, 1 / K), means, np.linalg.cholesky(A @ A.transpose(0, 2, 1)))


def holes(X, fraction, seed):
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < fraction] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


def param_error(p: GMMParams, t: GMMParams) -> float:
    return min(np.linalg.norm(p.means[perm] - t.means, axis=1).mean()
               + np.linalg.norm(p.covariances[perm] - t.covariances, axis=(1, 2)).mean()
               for perm in map(list, itertools.permutations(range(t.n_components))))


def recovery(fractions, seeds, N=3000):
    t = truth()
    print(f"recovery: N={N}, D=4, K=3 (full), n_init=3; parameter error (means + "
          "covariances) / ARI, mean over seeds", flush=True)
    names = ("full", "full@eff", "em", "drop", "impute")
    print(f"{'missing':>8} {'complete rows':>13} " + " ".join(f"{n:>15}" for n in names))
    for fraction in fractions:
        err = {n: [] for n in names}
        ari = {n: [] for n in names}
        kept = []
        for seed in seeds:
            X, y, _ = make_mixture(t, N, random_state=seed)
            Xm = holes(X, fraction, seed + 100)
            complete = ~np.isnan(Xm).any(axis=1)
            filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
            kw = dict(n_components=3, random_state=0, n_init=3)
            n_eff = int(N * (1 - fraction))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits = {"full": (GaussianMixture(**kw).fit(X), X, y),
                        "full@eff": (GaussianMixture(**kw).fit(X[:n_eff]), X, y),
                        "em": (GaussianMixture(missing="marginalize", **kw).fit(Xm), Xm, y),
                        "drop": (GaussianMixture(**kw).fit(Xm[complete]), Xm, y),
                        "impute": (GaussianMixture(**kw).fit(filled), filled, y)}
            for name, (g, Xp, yp) in fits.items():
                predictor = GaussianMixture.from_params(g.params_, missing="marginalize")
                err[name].append(param_error(g.params_, t))
                ari[name].append(adjusted_rand_score(yp, predictor.predict(Xp)))
            kept.append(complete.mean())
        print(f"{fraction:>8.0%} {np.mean(kept):>13.0%} " + " ".join(
            f"{np.mean(err[n]):>8.3f} / {np.mean(ari[n]):.3f}" for n in names), flush=True)


def per_iteration(fn, X, start, repeat=3, lo=2, hi=10):
    """(t(hi iterations) - t(lo)) / (hi - lo), each the best of ``repeat``: set-up
    (features, grouping) cancels."""
    times = {}
    for n in (lo, hi):
        times[n] = _common.best_of(lambda: jax.block_until_ready(
            fn(X, start, tol=-1.0, max_iter=n)), repeat)
    return (times[hi] - times[lo]) / (hi - lo)


def speed(N, D=8, K=16, fraction=0.2, repeat=3):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 3, (K, D))[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    start = params_from_centers(X[:K], K, "full")
    start, _ = host.fit(X, start, tol=-1.0, max_iter=1, hard_start=True)
    Xm = holes(X, fraction, 1)
    n_patterns = len(missing.patterns(Xm).rows)
    compiled = lambda X, start, **kw: missing.em(X, start, compiled=True, **kw)  # noqa: E731
    on_host = lambda X, start, **kw: missing.em(X, start, compiled=False, **kw)  # noqa: E731
    with compute_scope(np.float64):
        Xj = jax.device_put(X)
        jax.block_until_ready(em_jax.fit(Xj, start, tol=-1.0, max_iter=2))  # compile
        compiled(Xm, start, tol=-1.0, max_iter=1)  # compile
        t_jax = per_iteration(em_jax.fit, Xj, start, repeat)
    t_host = per_iteration(host.fit, X, start, repeat)
    t_miss = per_iteration(compiled, Xm, start, repeat)
    t_miss_host = per_iteration(on_host, Xm, start, repeat)
    with compute_scope(np.float64):  # the complete-data engine again: the load moves
        t_jax_2 = per_iteration(em_jax.fit, Xj, start, repeat)
    t0 = time.perf_counter()
    missing.padded_layout(Xm)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    missing.layout(Xm)
    t_setup_host = time.perf_counter() - t0
    t_ref = min(t_jax, t_jax_2)
    print(f"\nspeed: N={N}, D={D}, K={K}, full, {fraction:.0%} MCAR ({n_patterns} patterns), "
          f"float64, ms per EM iteration (wall, best of {repeat})")
    print(f"  compiled engine, complete data     {t_jax * 1e3:9.1f}  (again at the end: "
          f"{t_jax_2 * 1e3:.1f})")
    print(f"  host engine, complete data         {t_host * 1e3:9.1f}")
    print(f"  missing.em compiled, with holes    {t_miss * 1e3:9.1f}   ratio {t_miss / t_ref:.2f}x "
          "the compiled complete iteration")
    print(f"  missing.em on the host, with holes {t_miss_host * 1e3:9.1f}   ratio "
          f"{t_miss_host / t_ref:.2f}x; {t_miss_host / t_host:.2f}x the host's complete one")
    print(f"  once per fit: grouping (compiled layout) {t_setup * 1e3:.0f} ms, "
          f"(host layout with features) {t_setup_host * 1e3:.0f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-speed", type=int, default=10**6)
    parser.add_argument("--part", choices=("all", "recovery", "speed"), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="speed: best of this many")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}\n")
    if args.part != "all":
        recovery([0.1, 0.3, 0.5], [0, 1, 2]) if args.part == "recovery" else speed(
            args.n_speed, repeat=args.repeat)
    elif args.quick:
        recovery([0.3], [0])
        speed(20000)
    else:
        recovery([0.1, 0.3, 0.5], [0, 1, 2])
        speed(args.n_speed, repeat=args.repeat)


if __name__ == "__main__":
    main()
