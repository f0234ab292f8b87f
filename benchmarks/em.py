"""EM per-iteration time: bayesgmm vs scikit-learn, same process, identical initial
parameters, every covariance type in float64 and float32; then float32's exactness.

    python benchmarks/em.py                 # the default grid (many minutes on 2 cores)
    python benchmarks/em.py --quick         # small sizes, seconds
    python benchmarks/em.py --f32 --no-sklearn --repeat 5   # issue 17's table: N=10^6,
                                            # D=8, K=32, every type, both dtypes, kernels
    python benchmarks/em.py --f32 --types diag,spherical --clock cpu   # some types only
    python benchmarks/em.py --floor --clock cpu   # the bare pieces of a diag iteration

Per-iteration time is (t(n2) - t(n1)) / (n2 - n1) for both libraries, which cancels
set-up and initialisation; bayesgmm is timed after compilation (compile time is
reported separately), each t the median of ``--repeat`` runs. GFLOP/s counts 4·N·K·D²
per full/tied iteration (the Mahalanobis projection and the second-moment accumulation,
2·N·K·D² each) and 4·N·K·D for diag/spherical; "% peak" is against a square matmul in
the same dtype on the same device at ``Precision.HIGHEST`` (what EM's matmuls use).

Exactness: the relative difference of the log-likelihood bound after 15 iterations,
float32 against float64 from the same start on the same (float32-valued) data, on data
offset by 1e4 and on data with one compact component (σ = 0.01) far from the others;
for the float32 default and for ``kernel="moments"`` (fast, not exact there).

It runs unchanged on a GPU or TPU (JAX's default backend) and prints the backend and
device it ran on.
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
from bayesgmm.suffstats import resolve_kernel

TYPES = ("full", "tied", "diag", "spherical")


#: The clock of the timings: wall time, or (``--clock cpu``) the process's CPU time over
#: all its threads, steadier on a shared CPU (not on a GPU, whose work it misses).
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = _clock[0]()
        fn()
        times.append(_clock[0]() - t)
    return float(np.median(times))


def run_one(N, D, K, ct, dtype, kernel="auto", n1=2, n2=6, seed=0, repeat=2, sklearn=True):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (K, D))
    X = (centers[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        Xj = jnp.asarray(X)
        p0 = init_params(jax.random.PRNGKey(seed), Xj[: min(N, 20000)], K, ct,
                         "random_from_data")
        p0 = jax.tree_util.tree_map(np.asarray, p0)
        run = lambda n: jax.block_until_ready(em.fit(Xj, p0, tol=0.0, max_iter=n,
                                                      kernel=kernel))
        t = time.perf_counter()
        run(n1), run(n2)
        compile_s = time.perf_counter() - t
        t1 = _median_time(lambda: run(n1), repeat)
        t2 = _median_time(lambda: run(n2), repeat)
        ours_iter = (t2 - t1) / (n2 - n1)
        ours_lb = float(run(n2)[1].lower_bound)
        precisions = np.asarray(jax.tree_util.tree_map(np.asarray, p0).precisions)
    flops = (4 * N * K * D * D) if ct in ("full", "tied") else 4 * N * K * D
    row = {"N": N, "D": D, "K": K, "type": ct, "dtype": np.dtype(dtype).name,
           "kernel": resolve_kernel(kernel, dtype), "ours_ms": ours_iter * 1e3,
           "sklearn_ms": np.nan, "speedup": np.nan, "rel_ll_diff": np.nan,
           "gflops": flops / ours_iter / 1e9, "compile_s": compile_s}
    if not sklearn:
        return row
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
    row.update(sklearn_ms=sk_iter * 1e3, speedup=sk_iter / ours_iter,
               rel_ll_diff=abs(ours_lb - ref.lower_bound_) / abs(ref.lower_bound_))
    return row


def exactness_data(kind, N=30_000, D=8, K=8, seed=0):
    """float32-valued data (as float64): K unit blobs offset by 1e4 ("offset"), or K - 1
    unit blobs and one compact component (σ = 0.01) 30 units from them ("far")."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (K, D))
    scale = np.ones(K)
    if kind == "far":
        centers[-1] = centers[:-1].mean(0) + 30.0
        scale[-1] = 0.01
    z = rng.integers(0, K, N)
    X = centers[z] + scale[z, None] * rng.normal(size=(N, D))
    if kind == "offset":
        X = X + 1e4
    return X.astype(np.float32).astype(np.float64)


def exactness(kind, ct, kernel="auto", K=8, n_iter=15):
    """Relative difference of the lower bound, float32 (``kernel``) vs float64."""
    X = exactness_data(kind, K=K)
    with jax.enable_x64(True):
        p0 = jax.tree_util.tree_map(np.asarray, init_params(
            jax.random.PRNGKey(0), jnp.asarray(X), K, ct))
        ll64 = float(em.fit(jnp.asarray(X), p0, tol=0.0, max_iter=n_iter)[1].lower_bound)
    with jax.enable_x64(False):
        info = em.fit(jnp.asarray(X, jnp.float32), p0.astype(np.float32), tol=0.0,
                      max_iter=n_iter, kernel=kernel)[1]
    ll32 = float(info.lower_bound)
    return abs(ll32 - ll64) / abs(ll64) if np.isfinite(ll32) else np.inf


def matmul_peak(dtype, n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of an n×n matmul in ``dtype`` at Precision.HIGHEST on the default device
    (on GPUs, float32's default precision is TF32; EM asks for HIGHEST)."""
    with jax.enable_x64(dtype == np.float64):
        a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
        f = jax.jit(lambda x: jnp.matmul(x, x, precision=jax.lax.Precision.HIGHEST))
        f(a).block_until_ready()
        t = _median_time(lambda: f(a).block_until_ready(), repeat)
    return 2 * n**3 / t / 1e9


def floor(N: int, D: int, K: int, dtype, chunk: int = 18_944, repeat: int = 5) -> dict:
    """The bare pieces of a diag/spherical EM iteration, each alone (ms), in row chunks of
    ``chunk`` as EM reads them (a ``lax.scan`` that keeps only a (K, F) sum): the E-step's
    ``(C, F) @ (F, K)`` dot (F = 2D + 1 features ``[1, x, x²]``); ``exp`` and row sums
    of the (C, K) block; the statistics' dot in the rows' layout, ``(C, K)ᵀ @ (C, F)``
    (the contracted axis outermost in both operands), and in the transposed layout,
    ``(F, C) @ (C, K)``; the whole chunk (dot, exp, row sums, scaling, dot); and the whole
    chunk from the centred data in both layouts (``suffstats.DataTable``, float32's
    table: ``U = x - c`` (C, D) and ``Uᵀ``, squared in cache, two dots each way). Their
    sum against an iteration shows how far the kernel is from its pieces."""
    F = 2 * D + 1
    P = jax.lax.Precision.HIGHEST
    n_chunks = -(-N // chunk)

    def scan(body, init):
        step = lambda acc, i: (body(acc, jnp.minimum(i * chunk, N - chunk)), None)
        return jax.lax.scan(step, init, jnp.arange(n_chunks))[0]

    def rows(a, s):
        return jax.lax.dynamic_slice_in_dim(a, s, chunk)

    def cols(a, s):
        return jax.lax.dynamic_slice_in_dim(a, s, chunk, axis=1)

    pieces = {
        "E-step dot (C, F) @ (F, K)": lambda T, Tt, th, L, U, Ut: scan(
            lambda a, s: a + jnp.sum(jnp.matmul(rows(T, s), th, precision=P)), jnp.zeros((), T.dtype)),
        "exp, row sums (and their log), (C, K)": lambda T, Tt, th, L, U, Ut: scan(
            lambda a, s: a + jnp.sum(jnp.log(jnp.sum(jnp.exp(rows(L, s)), axis=1))), jnp.zeros((), T.dtype)),
        "statistics dot (C, K)ᵀ @ (C, F)": lambda T, Tt, th, L, U, Ut: scan(
            lambda a, s: a + jnp.matmul(rows(L, s).T, rows(T, s), precision=P),
            jnp.zeros((K, F), T.dtype)),
        "statistics dot (F, C) @ (C, K)": lambda T, Tt, th, L, U, Ut: scan(
            lambda a, s: a + jnp.matmul(cols(Tt, s), rows(L, s), precision=P),
            jnp.zeros((F, K), T.dtype)),
    }

    def whole(T, Tt, th, L, U, Ut):
        def body(a, s):
            e = jnp.exp(jnp.matmul(rows(T, s), th, precision=P))
            r = e / jnp.sum(e, axis=1, keepdims=True)
            return a + jnp.matmul(cols(Tt, s), r, precision=P)
        return scan(body, jnp.zeros((F, K), T.dtype))

    def from_data(T, Tt, th, L, U, Ut):  # U: x - c (N, D), Ut: its transpose (D, N)
        def body(a, s):
            u, ut = rows(U, s), cols(Ut, s)
            e = jnp.exp(jnp.matmul(u * u, th[1 + D:], precision=P)
                        + jnp.matmul(u, th[1:1 + D], precision=P) + th[0])
            r = e / jnp.sum(e, axis=1, keepdims=True)
            lin = jax.lax.optimization_barrier(jnp.matmul(ut, r, precision=P))
            sq = jax.lax.optimization_barrier(jnp.matmul(ut * ut, r, precision=P))
            return a + jnp.concatenate([jnp.sum(r, axis=0)[None], lin, sq], axis=0)
        return scan(body, jnp.zeros((F, K), T.dtype))

    pieces["all of it, one chunk at a time"] = whole
    pieces["all of it from x - c (D, both layouts)"] = from_data
    with jax.enable_x64(dtype == np.float64):
        rng = np.random.default_rng(0)
        T = rng.normal(size=(N, F))
        T[:, 1 + D:] = T[:, 1:1 + D] ** 2
        args = (jnp.asarray(T, dtype), jnp.asarray(np.ascontiguousarray(T.T), dtype),
                jnp.asarray(rng.normal(size=(F, K)) * 0.1, dtype),
                jnp.asarray(rng.normal(size=(N, K)), dtype),
                jnp.asarray(T[:, 1:1 + D], dtype),
                jnp.asarray(np.ascontiguousarray(T[:, 1:1 + D].T), dtype))
        out = {}
        for name, fn in pieces.items():
            f = jax.jit(fn)
            jax.block_until_ready(f(*args))
            out[name] = 1e3 * _median_time(lambda f=f: jax.block_until_ready(f(*args)), repeat)
    return out


GRID = [
    (100_000, 8, 32, "full", np.float64),
    *[(1_000_000, 8, 32, ct, dt) for ct in TYPES for dt in (np.float64, np.float32)],
    (1_000_000, 8, 32, "full", np.float32, "centred"),
    (1_000_000, 8, 32, "full", np.float32, "moments"),
    (200_000, 32, 16, "full", np.float64),
]
F32 = [*[(1_000_000, 8, 32, ct, dt) for ct in TYPES for dt in (np.float64, np.float32)],
       *[(1_000_000, 8, 32, ct, np.float32, "centred") for ct in TYPES]]
QUICK = [(20_000, 4, 8, "full", np.float64), (20_000, 4, 8, "full", np.float32),
         (20_000, 4, 8, "diag", np.float32)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--f32", action="store_true", help="issue 17's table only")
    parser.add_argument("--no-sklearn", dest="sklearn", action="store_false")
    parser.add_argument("--repeat", type=int, default=2, help="median of this many")
    parser.add_argument("--no-exactness", dest="exact", action="store_false")
    parser.add_argument("--clock", choices=tuple(CLOCK), default="wall")
    parser.add_argument("--floor", action="store_true",
                        help="time the bare pieces of a diag iteration (N=10^6, D=8, K=32)")
    parser.add_argument("--types", default=",".join(TYPES),
                        help="comma-separated covariance types to keep from the grid")
    args = parser.parse_args()
    _clock[0] = CLOCK[args.clock]
    dev = jax.devices()[0]
    print(f"machine: {_common.machine()}")
    print(f"backend: {jax.default_backend()}, device: {dev.device_kind} ({dev}), "
          f"clock: {args.clock}")
    if args.floor:
        for dt in (np.float64, np.float32):
            print(f"\nfloor, {np.dtype(dt).name}, N=10^6, D=8, K=32, 18,944-row chunks "
                  f"(median of {args.repeat}, ms)")
            for name, ms in floor(1_000_000, 8, 32, dt, repeat=args.repeat).items():
                print(f"  {name:<40} {ms:8.1f}", flush=True)
        return
    peak = {dt: matmul_peak(dt) for dt in (np.float64, np.float32)}
    print(f"measured matmul peak (HIGHEST): float64 {peak[np.float64]:.1f} GFLOP/s, "
          f"float32 {peak[np.float32]:.1f} GFLOP/s")
    head = (f"{'N':>9} {'D':>3} {'K':>3} {'type':>9} {'dtype':>8} {'kernel':>8} | "
            f"{'ours ms/it':>10} {'sklearn ms/it':>13} {'speedup':>8} | {'rel LL diff':>11} "
            f"{'GFLOP/s':>8} {'% peak':>6} {'compile s':>9}")
    print(head)
    print("-" * len(head))
    grid = QUICK if args.quick else F32 if args.f32 else GRID
    keep = set(args.types.split(","))
    grid = [row for row in grid if row[3] in keep]
    for N, D, K, ct, dtype, *kernel in grid:
        r = run_one(N, D, K, ct, dtype, *kernel, repeat=args.repeat, sklearn=args.sklearn)
        pct = 100 * r["gflops"] / peak[dtype]
        print(f"{N:>9} {D:>3} {K:>3} {ct:>9} {r['dtype']:>8} {r['kernel']:>8} | "
              f"{r['ours_ms']:>10.1f} {r['sklearn_ms']:>13.1f} {r['speedup']:>7.1f}x | "
              f"{r['rel_ll_diff']:>11.1e} {r['gflops']:>8.1f} {pct:>5.0f}% "
              f"{r['compile_s']:>9.1f}", flush=True)
    if not args.exact:
        return
    print("\nfloat32 exactness: relative log-likelihood difference to a float64 fit "
          "(N=30,000, D=8, K=8, 15 iterations, same start)")
    print(f"{'type':>9} | {'offset 1e4':>10} {'far':>9} | {'moments: offset':>15} {'far':>9}")
    for ct in [ct for ct in TYPES if ct in keep]:
        e = [exactness(kind, ct, kernel) for kernel in ("auto", "moments")
             for kind in ("offset", "far")]
        print(f"{ct:>9} | {e[0]:>10.1e} {e[1]:>9.1e} | {e[2]:>15.1e} {e[3]:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
