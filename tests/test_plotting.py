"""Figures render to real PNG files with visible content."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import pytest  # noqa: E402
from conftest import COVARIANCE_TYPES  # noqa: E402

from bayesgmm import GaussianMixture  # noqa: E402
from bayesgmm.plotting import plot_ellipses, plot_membership, plot_selection  # noqa: E402
from bayesgmm.selection import sweep  # noqa: E402


def _nonblank(path):
    img = plt.imread(path)
    return img.shape[0] > 100 and img[..., :3].std() > 0.05


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_plot_ellipses_png(tmp_path, datasets, ct):
    X = datasets["iris"]
    gm = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    fig, ax = plt.subplots()
    out = plot_ellipses(gm.params_, X, gm.predict(X), ax=ax, dims=(2, 3))
    assert out is ax and len(ax.patches) == 3 * 2
    path = tmp_path / "ellipses.png"
    fig.savefig(path)
    plt.close(fig)
    assert _nonblank(path)


def test_plot_selection_and_membership_png(tmp_path, blobs):
    X = blobs[0]
    table = sweep(X, range(1, 6), random_state=0)
    ax = plot_selection(table)
    assert len(ax.lines) == 3  # BIC, AIC, the chosen-K marker
    ax.figure.savefig(tmp_path / "sel.png")
    gm = table.best["model"]
    ax2 = plot_membership(X, gm.predict_proba(X))
    ax2.figure.savefig(tmp_path / "mem.png")
    plt.close("all")
    assert _nonblank(tmp_path / "sel.png") and _nonblank(tmp_path / "mem.png")
