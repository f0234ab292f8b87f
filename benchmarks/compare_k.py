"""compare_n_components on standardised iris, K = 1..6 (defaults: NUTS, 4 chains), in
fresh processes: cold (nothing compiled), then with the persistent compilation cache
(:func:`bayesgmm.compilation.enable_compilation_cache`) filled by a first process and
found warm by a second. Prints wall and CPU seconds (CPU: all threads of the process;
the steadier number on a shared machine), the health table and the K each criterion
picks.

    python benchmarks/compare_k.py            # cold, then cache fill and warm
    python benchmarks/compare_k.py --cold     # cold only
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import _common


def child(cache_dir: str) -> None:
    import warnings

    from sklearn.datasets import load_iris

    from bayesgmm.bayes import compare_n_components

    if cache_dir != "-":
        from bayesgmm.compilation import enable_compilation_cache

        enable_compilation_cache(cache_dir)
    X = load_iris().data
    X = (X - X.mean(0)) / X.std(0)
    c, t = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = compare_n_components(X, range(1, 7))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    table = out["health"][["elpd_loo", "p_loo", "n_pareto_k_high", "rhat_max",
                           "ess_bulk_min", "healthy", "ranked"]]
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"best_loo K={out['best_loo']}, best_em (BIC) K={out['best_em']}")
    print(f"RESULT {wall:.1f} {cpu:.1f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    print(f"machine: {_common.machine()}\n")
    runs = [("cold, no disk cache", "-")]
    with tempfile.TemporaryDirectory() as cache:
        if "--cold" not in sys.argv:
            runs += [("fills the disk cache", cache), ("disk cache warm", cache)]
        for label, where in runs:
            run = subprocess.run([sys.executable, __file__, "--child", where],
                                 capture_output=True, text=True, check=False)
            if run.returncode:
                sys.exit(run.stderr)
            out = run.stdout
            body, result = out.rsplit("RESULT", 1)
            wall, cpu = map(float, result.split())
            print(f"== {label}: {wall:.1f} s wall, {cpu:.1f} s CPU\n{body}", flush=True)


if __name__ == "__main__":
    main()
