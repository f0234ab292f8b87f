"""A newcomer's first script, whole process: import, BIC/AIC sweep over K = 1..20, fit,
predict, predict_proba on the tutorial's 300 blobs, with ``from bayesgmm import
GaussianMixture`` against the same script with scikit-learn's import. Each run is a fresh
interpreter (``python -c``), so the time includes starting Python and every import; the
scripts are run alternately, ``--repeat`` times each, and the table shows the median and
range. The data are made in the script with NumPy (no library's data helpers).

    python benchmarks/first_minute.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SCRIPT = """
import numpy as np
from {module} import GaussianMixture
rng = np.random.default_rng(0)
centers = rng.uniform(-10, 10, (4, 2))
X = np.concatenate([c + 0.6 * rng.standard_normal((75, 2)) for c in centers])
n_components = np.arange(1, 21)
models = [GaussianMixture(n, covariance_type="full", random_state=0).fit(X)
          for n in n_components]
bic = [m.bic(X) for m in models]
aic = [m.aic(X) for m in models]
gmm = GaussianMixture(n_components=4, random_state=0).fit(X)
labels = gmm.predict(X)
probs = gmm.predict_proba(X)
import sys
print(int(np.argmin(bic)) + 1, "jax" in sys.modules)
"""

MODULES = {"bayesgmm": "bayesgmm", "scikit-learn": "sklearn.mixture"}


def run(module: str) -> tuple[float, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module)], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import platform

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    times = {name: [] for name in MODULES}
    outputs = {}
    for _ in range(args.repeat):
        for name, module in MODULES.items():
            seconds, outputs[name] = run(module)
            times[name].append(seconds)
    print(f"{'library':14} {'median s':>9} {'range s':>15}  best K, JAX imported")
    for name, ts in times.items():
        print(f"{name:14} {statistics.median(ts):>9.3f} "
              f"{min(ts):>7.3f}-{max(ts):<7.3f}  {outputs[name]}")
    ratio = statistics.median(times["scikit-learn"]) / statistics.median(times["bayesgmm"])
    print(f"bayesgmm / scikit-learn speed (median whole process): {ratio:.2f}x")


if __name__ == "__main__":
    main()
