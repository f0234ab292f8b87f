"""Regenerate the figures under docs/ (shown in the README) from the built-in example data.

    python docs/make_figures.py            # writes docs/*.png
    python docs/make_figures.py --out DIR  # somewhere else

Every seed is fixed, so a rerun with the same library version and dependencies writes
byte-identical PNGs (checked: two runs on one 2-core machine, JAX 0.10.2), whatever the
number of CPU cores (each NUTS chain runs in the one-chain program, on as many host
threads as there are cores). A change to the library's fitting (initialisation, priors,
the NUTS program) can change any figure; the committed ones are this script's output
with the library of the commit that last wrote them. The Bayesian figures come from one NUTS fit, 2
chains x (100 warm-up + 100 draws), on 200 points of the anisotropic blobs: about half a
minute on a laptop CPU. Each PNG is kept under 150 KB (checked at the end).

Data: ``make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)`` (the
seed tutorial's), the anisotropic blobs of scikit-learn's clustering gallery
(``make_blobs(random_state=170)`` through a shear, with ``cluster_std=1.5`` so that they
touch), and a 4-feature mixture drawn with
``make_mixture`` from known parameters for the pairs grid.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bayesgmm import BayesianGaussianMixture, GaussianMixture  # noqa: E402
from bayesgmm.datasets import make_blobs, make_mixture  # noqa: E402
from bayesgmm.metrics import membership_uncertainty  # noqa: E402
from bayesgmm.params import GMMParams  # noqa: E402
from bayesgmm.plotting import (  # noqa: E402
    plot_ellipses,
    plot_membership,
    plot_pairs,
    plot_posterior_ellipses,
    plot_rank,
    plot_selection,
    plot_trace,
    plot_uncertainty,
)
from bayesgmm.selection import sweep  # noqa: E402

MAX_BYTES = 150_000
DPI = 90
SHEAR = np.array([[0.6, -0.6], [-0.4, 0.8]])  # scikit-learn's anisotropic-blobs transform


def anisotropic_blobs(n_samples: int):
    """Elongated, touching clusters: full covariances recover them (ARI 0.96 on 200
    points), spherical ones (k-means-like) do not (0.36), and a few points are uncertain."""
    X, y = make_blobs(n_samples=n_samples, centers=3, cluster_std=1.5, random_state=170)
    return X @ SHEAR, y


def four_features():
    """400 points of a 3-component, 4-feature mixture with correlated features."""
    L = np.array([[[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.2, 1, 0], [0.1, 0, 0, 0.3]]] * 3)
    truth = GMMParams(np.array([0.5, 0.3, 0.2]),
                      np.array([[0.0, 0, 0, 0], [4, 4, 0, 1], [-3, 3, 2, 0]]), L)
    return make_mixture(truth, 400, random_state=0).X


def save(fig, out: Path, name: str, written: list):
    path = out / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)
    written.append(path)
    print(f"  {path}  {path.stat().st_size / 1000:.0f} KB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    t0 = time.perf_counter()

    # EM on the seed blobs: model choice, clusters, membership
    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    table = sweep(X, range(1, 9), ("full", "tied", "diag", "spherical"), random_state=0)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_selection(table, ax=ax, criteria=("bic", "icl"),
                   title="Choosing the model and K on the seed blobs")
    save(fig, out, "selection.png", written)

    gm = table.best["model"]
    fig, ax = plt.subplots(figsize=(6, 5))
    plot_ellipses(gm, X, gm.predict(X), ax=ax, feature_names=["x1", "x2"],
                  title=f"GaussianMixture(n_components={gm.n_components}, "
                        f"covariance_type={gm.covariance_type!r})")
    save(fig, out, "clusters.png", written)

    Xa, _ = anisotropic_blobs(200)
    ga = GaussianMixture(3, random_state=0).fit(Xa)
    fig, ax = plt.subplots(figsize=(6, 5))
    plot_membership(Xa, ga.predict_proba(Xa), ax=ax, feature_names=["x1", "x2"],
                    title="Membership on the anisotropic blobs (EM)")
    save(fig, out, "membership.png", written)

    X4 = four_features()
    g4 = GaussianMixture(3, random_state=0).fit(X4)
    axes = plot_pairs(X4, g4, labels=g4.predict(X4), feature_names=["a", "b", "c", "d"],
                      fig=plt.figure(figsize=(7, 7), layout="constrained"))
    axes[0, 0].figure.suptitle("Pairs grid of a 4-feature mixture")
    save(axes[0, 0].figure, out, "pairs.png", written)

    # One small NUTS fit for the Bayesian figures
    Xb, _ = anisotropic_blobs(200)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short chains; reported below
        fit = BayesianGaussianMixture(3, method="nuts", n_chains=2, n_warmup=100,
                                      n_draws=100, random_state=0).fit(Xb)
    print(f"  NUTS 2 x (100 + 100) on {len(Xb)} points: {time.perf_counter() - t1:.1f} s; "
          f"warnings: {fit.warnings_ or 'none'}")
    mean, lower, upper = fit.membership_interval(Xb, prob=0.94)
    width = membership_uncertainty(mean, lower=lower, upper=upper, kind="interval")
    fig, ax = plt.subplots(figsize=(6, 5))
    plot_uncertainty(Xb, width, ax=ax, feature_names=["x1", "x2"],
                     label="width of the 94% interval of p(own cluster)",
                     title="Where cluster membership is uncertain (NUTS)")
    save(fig, out, "uncertainty.png", written)

    fig, ax = plt.subplots(figsize=(6, 5))
    plot_posterior_ellipses(fit, Xb, ax=ax, n_draws=40, feature_names=["x1", "x2"],
                            title="Posterior draws of the components (NUTS)")
    save(fig, out, "posterior_ellipses.png", written)

    axes = plot_trace(fit, var_names=["weights"], figsize=(8, 2.4))
    save(axes[0].figure, out, "trace.png", written)
    axes = plot_rank(fit, var_names=["weights"], figsize=(8, 2.6))
    save(axes[0].figure, out, "rank.png", written)

    too_big = [p for p in written if p.stat().st_size > MAX_BYTES]
    print(f"{len(written)} figures in {time.perf_counter() - t0:.0f} s")
    if too_big:
        print(f"over {MAX_BYTES // 1000} KB: {[str(p) for p in too_big]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
