"""compare_n_components on standardised iris, K = 1..6 (defaults: NUTS, 4 chains), in
fresh processes: cold (nothing compiled), then with the persistent compilation cache
(:func:`bayesgmm.compilation.enable_compilation_cache`) filled by a first process and
found warm by a second. Prints wall and CPU seconds (CPU: all threads of the process;
the steadier number on a shared machine), the health table and the K each criterion
picks. Every K runs on MAP and NUTS programs padded to K = 6 (compiled once);
``--per-k`` passes ``n_padded=None`` (one program per K, as before padding).

    python benchmarks/compare_k.py            # cold, then cache fill and warm
    python benchmarks/compare_k.py --cold     # cold only
    python benchmarks/compare_k.py --cold --per-k   # cold, a program per K
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import _common


def child(cache_dir: str, per_k: bool = False) -> None:
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
        out = compare_n_components(X, range(1, 7), **({"n_padded": None} if per_k else {}))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    table = out["health"][["elpd_loo", "p_loo", "n_pareto_k_high", "rhat_max",
                           "ess_bulk_min", "healthy", "ranked"]]
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"best_loo K={out['best_loo']}, best_em (BIC) K={out['best_em']}")
    print(f"RESULT {wall:.1f} {cpu:.1f}")


def main():
    if {"-h", "--help"} & set(sys.argv[1:]):  # the module's docstring is its usage
        print(__doc__)
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        return child(sys.argv[2], "--per-k" in sys.argv)
    print(f"machine: {_common.machine()}\n")
    runs = [("cold, no disk cache", "-")]
    with tempfile.TemporaryDirectory() as cache:
        from bayesgmm.compilation import cache_supported

        if "--cold" not in sys.argv and cache_supported():  # jaxlib < 0.10: no cache
            runs += [("fills the disk cache", cache), ("disk cache warm", cache)]
        for label, where in runs:
            extra = ["--per-k"] if "--per-k" in sys.argv else []
            run = subprocess.run([sys.executable, __file__, "--child", where, *extra],
                                 capture_output=True, text=True, check=False)
            if run.returncode:
                sys.exit(run.stderr)
            out = run.stdout
            body, result = out.rsplit("RESULT", 1)
            wall, cpu = map(float, result.split())
            load = os.getloadavg()[0]
            print(f"== {label}: {wall:.1f} s wall, {cpu:.1f} s CPU (load average after: "
                  f"{load:.1f})\n{body}", flush=True)


if __name__ == "__main__":
    main()
