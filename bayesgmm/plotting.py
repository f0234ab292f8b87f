"""Figures for mixtures: covariance ellipses, the BIC/AIC curve, membership.

Every function takes an optional matplotlib ``ax`` and returns it, so figures compose
in notebooks. Only the first two features are drawn (pass ``dims`` to choose others).
"""

from __future__ import annotations

import numpy as np

from bayesgmm.params import GMMParams

__all__ = ["plot_ellipses", "plot_selection", "plot_membership"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 5))
    return ax


def plot_ellipses(params: GMMParams, X=None, labels=None, *, ax=None, dims=(0, 1),
                  n_std=(1.0, 2.0), cmap="viridis", alpha=0.25):
    """Scatter ``X`` (coloured by ``labels``) and draw each component's ellipses.

    Ellipse widths are ``n_std`` standard deviations of the 2-D marginal covariance;
    their opacity scales with the component weight.
    """
    from matplotlib.patches import Ellipse
    import matplotlib

    ax = _axes(ax)
    p = params.to_numpy()
    if p.batch_shape:
        raise ValueError(f"plot_ellipses draws one mixture; got batch shape {p.batch_shape}")
    i, j = dims
    colors = matplotlib.colormaps[cmap](np.linspace(0, 1, max(p.n_components, 2)))
    if X is not None:
        X = np.asarray(X)
        c = None if labels is None else np.asarray(labels)
        ax.scatter(X[:, i], X[:, j], c=c, s=12, cmap=cmap, zorder=2,
                   vmin=0, vmax=max(p.n_components - 1, 1))
    cov = np.asarray(p.full_covariances)
    wmax = p.weights.max()
    for k in range(p.n_components):
        S = cov[k][np.ix_([i, j], [i, j])]  # the 2-D marginal of component k
        vals, vecs = np.linalg.eigh(S)
        angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
        for s in n_std:
            w, h = 2 * s * np.sqrt(np.maximum(vals[::-1], 0))
            ax.add_patch(Ellipse(p.means[k, [i, j]], w, h, angle=angle,
                                 facecolor=colors[k], edgecolor=colors[k],
                                 alpha=alpha * p.weights[k] / wmax + 0.05, zorder=1))
        ax.plot(*p.means[k, [i, j]], marker="x", color="k", zorder=3)
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {j}")
    ax.autoscale_view()
    return ax


def plot_selection(table, *, ax=None, criteria=("bic", "aic")):
    """Information criteria against ``n_components`` from :func:`bayesgmm.selection.sweep`;
    the chosen K is marked."""
    ax = _axes(ax)
    ks = np.asarray(table["n_components"])
    types = np.asarray(table["covariance_type"])
    for ct in dict.fromkeys(types.tolist()):
        m = types == ct
        for crit in criteria:
            label = crit.upper() if len(set(types)) == 1 else f"{crit.upper()} ({ct})"
            ax.plot(ks[m], np.asarray(table[crit])[m], marker="o", ms=3, label=label)
    best = int(np.flatnonzero(table["best"])[0])
    ax.axvline(ks[best], color="grey", ls="--", lw=1,
               label=f"best {getattr(table, 'criterion', 'bic').upper()}: K={ks[best]}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("n_components")
    ax.set_ylabel("criterion (lower is better)")
    ax.legend(loc="best")
    return ax


def plot_membership(X, proba, *, ax=None, dims=(0, 1), cmap="viridis"):
    """Scatter coloured by the most probable component; marker size shrinks and edges
    darken where membership is uncertain (max probability < 1)."""
    ax = _axes(ax)
    X, proba = np.asarray(X), np.asarray(proba)
    conf = proba.max(axis=1)
    i, j = dims
    ax.scatter(X[:, i], X[:, j], c=proba.argmax(1), cmap=cmap, s=6 + 30 * conf,
               edgecolors=np.where(conf[:, None] < 0.9, [[0, 0, 0, 1]], [[0, 0, 0, 0]]))
    ax.set_title("membership (black edge: max p < 0.9)")
    return ax
