"""Figures for mixtures: clusters with covariance ellipses, a pairs grid, the model
selection curves, membership uncertainty, posterior ellipses, trace and rank plots.

Glossary: N samples, D features, K components, C chains, S draws per chain.

Every function takes an optional ``ax`` (or ``fig``) and returns what it drew on, so
figures compose in notebooks and the CLI. Two features are drawn at a time (``dims``
chooses them; :func:`plot_pairs` draws every pair). Axis labels come from
``feature_names``, else a fitted estimator's ``feature_names_in_`` (where one stands in
for its parameters), else a pandas DataFrame X's columns, else ``"feature i"``.

A legend sits beside its axes (right of them), never over the data: inside, at K = 9 it
covered points wherever ``loc="best"`` put it. A figure made here has a constrained layout
that keeps it on the canvas; an ``ax`` of your own needs a layout engine or
``savefig(..., bbox_inches="tight")`` to do the same.

Colours are chosen to survive print and colour-blindness: ``tab10`` without its grey (9
colours; ``tab20`` without its two greys, 18, above 9 components) for components (and
:func:`plot_selection`'s covariance models), so no component looks like the grey of
uncertain or unlabelled points; black for noise points;
``viridis_r`` for uncertainty on the fixed scale 0 to 1 (uncertain points dark, certain
ones light, so the few that matter stand out on white; one colour means one value in every
figure). ArviZ is never imported here: trace and rank plots go through
:mod:`bayesgmm.bayes.arviz`.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.metrics import membership_uncertainty
from bayesgmm.params import GMMParams

__all__ = ["plot_ellipses", "plot_pairs", "plot_selection", "plot_membership",
           "plot_uncertainty", "plot_posterior_ellipses", "plot_trace", "plot_rank",
           "MAX_PAIRS_FEATURES"]

# A pairs grid of more features has panels too small to read in print; select some.
MAX_PAIRS_FEATURES = 6
# RGBA a fully uncertain point fades to in plot_membership (uncertainty 1 = uniform).
_GREY = np.array([0.78, 0.78, 0.78, 1.0])
# RGBA of noise points (a robust fit's label -1, plot_membership's noise column).
_NOISE = np.array([0.0, 0.0, 0.0, 1.0])
# The grey entries of the default component palettes, left out (they read as _GREY or as
# the unlabelled points' 0.45 grey): tab10's index 7, tab20's 14 and 15.
_PALETTE_GREYS = {"tab10": (7,), "tab20": (14, 15)}
# Opacity floor of an ellipse's outline: its fill fades with the component's weight
# (0.25 w / max w + 0.05), which left a w = 0.03 component beside a w = 0.5 one at alpha
# 0.065, outline included, lost on white; the outline stays at least this opaque.
_OUTLINE_ALPHA = 0.7
# One marker per covariance model in plot_selection (mclust's 14 each get their own), so
# the curves stay apart in greyscale print.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "8", "d")


def plot_ellipses(params, X=None, labels=None, *, ax=None, dims=(0, 1), feature_names=None,
                  n_std=(1.0, 2.0), cmap=None, alpha=0.25, title=None, legend=True,
                  point_size=10):
    """Scatter ``X`` coloured by ``labels`` and draw each component's covariance ellipses.

    Parameters
    ----------
    params : GMMParams, RobustParams or fitted estimator
        One mixture (batch shape ``()``), or a fitted ``GaussianMixture`` /
        ``BayesianGaussianMixture`` (its ``params_`` or posterior means, and its
        ``feature_names_in_`` when present), or a ``RobustMixture`` /
        :class:`bayesgmm.robust.RobustParams`: its K components' ellipses (of the scale
        matrix Σ_k for a Student-t component, not its covariance ν/(ν-2) Σ_k, which is
        wider), with the components' weights in the whole mixture (they sum to
        1 - noise weight). The noise component has no ellipse.
    X : array-like of shape (N, D), optional
    labels : array-like of shape (N,) of int in [0, K) or -1, optional
        Points take their component's colour; -1 marks noise (``RobustMixture.predict``),
        drawn in black as :func:`plot_membership` draws noise. Without labels points are
        grey.
    ax : matplotlib Axes, optional
    dims : (int, int), default=(0, 1)
        The two features drawn.
    feature_names : sequence of D str, optional
        Axis labels (default: the estimator's ``feature_names_in_``, else a DataFrame X's
        columns, else "feature i").
    n_std : sequence of float, default=(1.0, 2.0)
        Ellipse half-axes in standard deviations of the 2-D marginal covariance (scale
        units for a t component); K x ``len(n_std)`` ellipse patches are drawn, their
        fill opacity scaled by weight, their outline at least 0.7 opaque (a light
        component stays visible).
    cmap : str, optional
        Component colours; default ``tab10`` without grey (``tab20`` without greys for
        K > 9).
    alpha : float, default=0.25
        Fill opacity of the heaviest component.
    title : str, optional
    legend : bool, default=True
        One entry per component, ``"component k (w = 0.31)"`` (and ``"noise"`` when
        noise points are drawn), beside the axes on the right.
    point_size : float, default=10

    Returns
    -------
    matplotlib Axes
    """
    params, names, robust = _params_and_names(params, feature_names, X=X)
    ax = _axes(ax)
    p = params.to_numpy(np.float64)
    if p.batch_shape:
        raise ValueError(f"plot_ellipses draws one mixture; got batch shape {p.batch_shape}. "
                         "For posterior draws use plot_posterior_ellipses")
    i, j = _check_dims(dims, p.n_features)
    colors = _component_colors(p.n_components, cmap)
    noise = None
    if X is not None:
        X = _check_X(X, p.n_features)
        c = _label_colors(labels, X.shape[0], colors)
        noise = _noise_entry(labels, robust)
        ax.scatter(X[:, i], X[:, j], c=c, s=point_size, linewidths=0, zorder=2)
    cov = np.asarray(p.full_covariances)
    wmax = p.weights.max()
    for k in range(p.n_components):
        fill = alpha * p.weights[k] / wmax + 0.05
        for s in n_std:
            ax.add_patch(_ellipse(p.means[k], cov[k], (i, j), s,
                                  facecolor=_with_alpha(colors[k], fill),
                                  edgecolor=_with_alpha(colors[k], max(fill, _OUTLINE_ALPHA)),
                                  linewidth=1.0, zorder=1))
        ax.plot(*p.means[k, [i, j]], marker="x", color="k", ms=6, zorder=3)
    _label_axes(ax, names, i, j)
    if legend:
        _component_legend(ax, colors, p.weights, noise=noise)
    if title is not None:
        ax.set_title(title)
    ax.autoscale_view()
    return ax


def plot_pairs(X, params, *, labels=None, feature_names=None, features=None, fig=None,
               n_std=(2.0,), cmap=None, bins=30, point_size=6):
    """A pairs grid: scatters with covariance ellipses below the diagonal, each feature's
    histogram with the 1-D mixture density (total and per component) on the diagonal.

    Each diagonal panel has its own density scale (features in different units have
    densities orders apart), labelled on its right (on the left in the first row).

    Parameters
    ----------
    X : array-like of shape (N, D)
    params : GMMParams, RobustParams or fitted estimator
        As in :func:`plot_ellipses`. A robust fit's diagonal draws its components'
        marginals (Student-t with the component's ν and scale √Σ_k,ii for a t component)
        and their sum; the noise density π_0 / V has no 1-D marginal (it is uniform over
        all of the space), so the total drawn integrates to 1 - π_0.
    labels : array-like of shape (N,), optional
        As in :func:`plot_ellipses` (-1: noise, black).
    feature_names : sequence of D str, optional
    features : sequence of int or str, optional
        The features to show (indices, or names from ``feature_names``); default all.
        At most :data:`MAX_PAIRS_FEATURES`.
    fig : matplotlib Figure, optional
        Drawn on (it must be empty); default a new figure of 2.2 inches per feature (at
        least 4, and 2 more in width for one feature's legend), with constrained layout.
    n_std : sequence of float, default=(2.0,)
    cmap : str, optional
    bins : int, default=30
    point_size : float, default=6

    Returns
    -------
    ndarray of shape (F, F) of matplotlib Axes
        F = number of features shown; the panels above the diagonal are hidden (the top
        right one holds the legend; with one feature the legend is right of the panel).
    """
    import matplotlib.pyplot as plt

    params, names, robust = _params_and_names(params, feature_names, X=X)
    p = params.to_numpy(np.float64)
    if p.batch_shape:
        raise ValueError(f"plot_pairs draws one mixture; got batch shape {p.batch_shape}")
    df = np.full(p.n_components, np.inf) if robust is None else np.asarray(robust.df, float)
    X = _check_X(X, p.n_features)
    chosen = _select_features(features, names, p.n_features)
    F = len(chosen)
    if fig is None:  # one feature: 2 inches more width for the legend beside the panel
        side = max(2.2 * F, 4.0)
        fig = plt.figure(figsize=(side + 2.0 * (F == 1), side), layout="constrained")
    axes = np.empty((F, F), dtype=object)
    # a column shares its feature's x range; a row's scatters share its feature's y range
    grid = fig.subplots(F, F, squeeze=False, sharex="col")
    for r in range(2, F):
        for c in range(1, r):
            grid[r, c].sharey(grid[r, 0])
    colors = _component_colors(p.n_components, cmap)
    cov = np.asarray(p.full_covariances)
    for r in range(F):
        for c in range(F):
            ax = axes[r, c] = grid[r, c]
            i, j = chosen[c], chosen[r]  # column feature on x, row feature on y
            if c > r:
                ax.set_axis_off()
            elif c == r:
                _density_panel(ax, X[:, i], p, cov, i, colors, bins, df)
            else:
                plot_ellipses(p, X, labels, ax=ax, dims=(i, j), feature_names=names,
                              n_std=n_std, cmap=cmap, legend=False, point_size=point_size)
            # labels only on the outer edge, as in a scatter matrix
            ax.set_xlabel(names[i] if r == F - 1 else "")
            ax.set_ylabel(names[j] if c == 0 and r > 0 else ("density" if r == c == 0 else ""))
            if r != F - 1 and c <= r:
                ax.tick_params(labelbottom=False)
            if c != 0 and c < r:  # a scatter's y range is its row's, labelled at c = 0
                ax.tick_params(labelleft=False)
            elif c == r > 0:  # a density of its own scale, labelled where no panel is
                ax.yaxis.tick_right()
    noise = _noise_entry(labels, robust)
    if F > 1:  # the empty top right panel, from its left edge (a wide one grows right)
        _component_legend(axes[0, F - 1], colors, p.weights, loc="upper left", noise=noise)
    else:
        _component_legend(axes[0, 0], colors, p.weights, noise=noise)
    fig.align_labels()
    return axes


def plot_selection(table, *, ax=None, criterion=None, criteria=None, title=None,
                   cmap=None):
    """Information criteria against K, one line per covariance model (as mclust draws
    them), the best (model, K) marked with a star.

    bayesgmm's criteria have scikit-learn's sign: lower is better (mclust reports
    ``-BIC``, where higher is better); the y label says so.

    Parameters
    ----------
    table : SweepResult or dict of equal-length arrays
        From :func:`bayesgmm.selection.sweep`: ``n_components``, ``covariance_type``, and
        a column per criterion.
    ax : matplotlib Axes, optional
    criterion : {"bic", "aic", "icl"}, optional
        Whose minimum is marked; default the table's own (``table.criterion``, else "bic").
    criteria : sequence of str, optional
        The curves drawn, e.g. ``("bic", "icl")``: the first solid, the others dashed and
        dotted in the same model colour. Default ``(criterion,)``; ``criterion`` is added
        when missing.
    title : str, optional
    cmap : str, optional
        Model colours; default the components' palette of the other figures (``tab10``
        without its grey; ``tab20`` without its greys above 9 models).

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.ticker import MaxNLocator

    ax = _axes(ax, figsize=(6.5, 4.5))
    criterion = criterion or getattr(table, "criterion", "bic")
    criteria = tuple(criteria) if criteria is not None else (criterion,)
    if criterion not in criteria:
        criteria = (criterion,) + criteria
    missing = [c for c in criteria if c not in table]
    if missing:
        raise ValueError(f"the table has no column {missing}; it has {sorted(table)}. Pass "
                         "criteria= from 'bic', 'aic', 'icl' (a sweep's columns)")
    ks = np.asarray(table["n_components"])
    types = np.asarray(table["covariance_type"]).astype(str)
    models = list(dict.fromkeys(types.tolist()))
    colors = _component_colors(len(models), cmap)
    styles = ("-", "--", ":", "-.")
    several = len(criteria) > 1
    for m, name in enumerate(models):
        rows = np.flatnonzero(types == name)
        rows = rows[np.argsort(ks[rows], kind="stable")]
        for c, crit in enumerate(criteria):
            label = f"{name} {crit.upper()}" if several else name
            ax.plot(ks[rows], np.asarray(table[crit], dtype=float)[rows],
                    ls=styles[c % len(styles)], marker=_MARKERS[m % len(_MARKERS)], ms=4,
                    color=colors[m], label=label)
    values = np.asarray(table[criterion], dtype=float)
    if criterion == getattr(table, "criterion", "bic") and "best" in table:
        best = int(np.flatnonzero(table["best"])[0])
    else:
        best = int(np.nanargmin(values))
    ax.plot([ks[best]], [values[best]], ls="none", marker="*", ms=16, mfc="none",
            mec="k", mew=1.5, zorder=5,
            label=f"best {criterion.upper()}: {types[best]}, K={ks[best]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    what = criterion.upper() if not several else " / ".join(c.upper() for c in criteria)
    ax.set_ylabel(f"{what} (scikit-learn's sign: lower is better)")
    n_entries = len(models) * len(criteria) + 1
    if n_entries > 6:  # mclust's 14 models: the legend goes beside the axes
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
                  frameon=False)
    else:
        ax.legend(loc="best", fontsize="small")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_membership(X, proba, *, ax=None, dims=(0, 1), feature_names=None,
                    uncertainty=None, cmap=None, title=None, point_size=14, noise=False):
    """Points in their most probable component's colour, faded towards grey (and drawn
    larger) as their membership grows uncertain; the legend sits right of the axes.

    Parameters
    ----------
    X : array-like of shape (N, D)
    proba : array-like of shape (N, K)
        Membership probabilities (``predict_proba``).
    ax : matplotlib Axes, optional
    dims : (int, int), default=(0, 1)
    feature_names : sequence of D str, optional
    uncertainty : array-like of shape (N,) in [0, 1], optional
        Default :func:`bayesgmm.metrics.membership_uncertainty` of ``proba`` (normalised
        entropy: 0 certain, 1 uniform); pass interval widths for a Bayesian fit.
    cmap : str, optional
    title : str, optional
    point_size : float, default=14
        Size of a certain point; a fully uncertain one is three times larger.
    noise : bool, default=False
        ``proba``'s last column is a noise component (``predict_proba`` of a model with
        ``noise=True``): drawn in black and named "noise" in the legend.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.lines import Line2D

    ax = _axes(ax)
    proba = np.asarray(proba, dtype=np.float64)
    names = _names(feature_names, np.shape(X)[-1], X)
    X = _check_X(X, None)
    if proba.ndim != 2 or proba.shape[0] != X.shape[0]:
        raise ValueError(f"proba must have shape (N, K) with N = {X.shape[0]} (X's rows); got "
                         f"{proba.shape}. Pass model.predict_proba(X)")
    u = membership_uncertainty(proba) if uncertainty is None else np.asarray(uncertainty)
    if u.shape != (X.shape[0],):
        raise ValueError(f"uncertainty must have shape ({X.shape[0]},), got {u.shape}")
    u = np.clip(u.astype(np.float64), 0.0, 1.0)
    i, j = _check_dims(dims, X.shape[1])
    K = proba.shape[1]
    colors = _component_colors(K, cmap)
    labels = [f"component {k}" for k in range(K)]
    if noise:
        if K < 2:
            raise ValueError("noise=True needs proba with the Gaussian components' columns "
                             f"and the noise column last; got {K} column")
        colors[-1] = _NOISE
        labels[-1] = "noise"
    rgba = (1 - u[:, None]) * colors[proba.argmax(1)] + u[:, None] * _GREY
    order = np.argsort(-u, kind="stable")  # certain points on top of the faded ones
    ax.scatter(X[order, i], X[order, j], c=rgba[order], s=point_size * (1 + 2 * u[order]),
               edgecolors="k", linewidths=0.3 * u[order], zorder=2)
    handles = [Line2D([], [], ls="none", marker="o", color=colors[k], label=labels[k])
               for k in range(K)]
    handles.append(Line2D([], [], ls="none", marker="o", ms=8, color=_GREY, mec="k", mew=0.3,
                          label="faded, larger: uncertain"))
    _legend_beside(ax, handles)
    _label_axes(ax, names, i, j)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_uncertainty(X, uncertainty, *, ax=None, dims=(0, 1), feature_names=None,
                     cmap="viridis_r", label="membership uncertainty", vmin=0.0, vmax=1.0,
                     title=None, point_size=15):
    """Points coloured by their membership uncertainty, with a colourbar.

    Parameters
    ----------
    X : array-like of shape (N, D)
    uncertainty : array-like of shape (N,)
        From :func:`bayesgmm.metrics.membership_uncertainty` (normalised entropy, or the
        credible interval's width for a Bayesian fit).
    ax : matplotlib Axes, optional
    dims : (int, int), default=(0, 1)
    feature_names : sequence of D str, optional
    cmap : str, default="viridis_r"
        Uncertain points dark, certain ones light; the most uncertain are drawn on top.
    label : str, default="membership uncertainty"
        The colourbar's label.
    vmin, vmax : float, default=(0.0, 1.0)
        Colour range. Fixed rather than the data's range, so one colour means one
        uncertainty in every figure: scaled to the data's maximum, a fit whose largest
        uncertainty was 0.0006 (iris) drew that point fully dark, and K = 1 (all 0) ran
        -0.1 to 0.1. 1 is the largest value of every measure here: normalised entropy
        (1 = uniform), ``1 - max p`` (at most 1 - 1/K) and an interval's width.
    title : str, optional
    point_size : float, default=15

    Returns
    -------
    matplotlib Axes
        The colourbar is ``ax.figure.axes[-1]``.
    """
    ax = _axes(ax)
    names = _names(feature_names, np.shape(X)[-1], X)
    X = _check_X(X, None)
    u = np.asarray(uncertainty, dtype=np.float64)
    if u.shape != (X.shape[0],):
        raise ValueError(f"uncertainty must have shape ({X.shape[0]},) (one value per row of "
                         f"X), got {u.shape}; use bayesgmm.metrics.membership_uncertainty")
    i, j = _check_dims(dims, X.shape[1])
    order = np.argsort(u, kind="stable")  # the most uncertain drawn last, on top
    # a thin grey edge keeps the light (certain) points visible in print
    sc = ax.scatter(X[order, i], X[order, j], c=u[order], cmap=cmap, s=point_size,
                    vmin=vmin, vmax=vmax, edgecolors="0.45", linewidths=0.3, zorder=2)
    ax.figure.colorbar(sc, ax=ax, label=label)
    _label_axes(ax, names, i, j)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_posterior_ellipses(draws, X=None, *, ax=None, n_draws=50, dims=(0, 1),
                            feature_names=None, labels=None, n_std=2.0, cmap=None,
                            alpha=0.2, seed=0, title=None, point_size=8):
    """Thin ellipses of a sample of posterior draws over the data, the posterior-mean
    ellipses bold: how well the data pin down each component's location and shape.

    Parameters
    ----------
    draws : GMMParams or fitted BayesianGaussianMixture
        Relabeled draws with batch shape (C, S) (``model.params_``), so that component k
        is the same cluster in every draw.
    X : array-like of shape (N, D), optional
        Drawn as light points (coloured by ``labels`` when given).
    ax : matplotlib Axes, optional
    n_draws : int, default=50
        Draws drawn (a uniform sample without replacement; all when fewer): ``n_draws`` x K
        thin ellipses plus K bold ones.
    dims : (int, int), default=(0, 1)
    feature_names : sequence of D str, optional
    labels : array-like of shape (N,), optional
    n_std : float, default=2.0
    cmap : str, optional
    alpha : float, default=0.2
        Opacity of each thin ellipse.
    seed : int, default=0
        Which draws are shown.
    title : str, optional
    point_size : float, default=8

    Returns
    -------
    matplotlib Axes
    """
    from bayesgmm.bayes.posterior import posterior_mean

    draws, names, _ = _params_and_names(draws, feature_names, draws=True, X=X)
    p = draws.to_numpy(np.float64)
    if len(p.batch_shape) != 2:
        raise ValueError(f"draws must have batch shape (chain, draw), got {p.batch_shape}; "
                         "pass a BayesianGaussianMixture's params_")
    if not (isinstance(n_draws, (int, np.integer)) and n_draws >= 1):
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    ax = _axes(ax)
    i, j = _check_dims(dims, p.n_features)
    colors = _component_colors(p.n_components, cmap)
    flat = p.flatten_batch()
    M = flat.weights.shape[0]
    idx = np.sort(np.random.default_rng(seed).choice(M, size=min(n_draws, M), replace=False))
    cov = np.asarray(flat.full_covariances)[idx]  # (n_draws, K, D, D)
    means = flat.means[idx]
    if X is not None:
        X = _check_X(X, p.n_features)
        c = _label_colors(labels, X.shape[0], colors)
        ax.scatter(X[:, i], X[:, j], c=c, s=point_size, linewidths=0, alpha=0.6, zorder=1)
    for m in range(len(idx)):
        for k in range(p.n_components):
            ax.add_patch(_ellipse(means[m, k], cov[m, k], (i, j), n_std, fill=False,
                                  edgecolor=colors[k], linewidth=0.6, alpha=alpha, zorder=2))
    mean = posterior_mean(p)
    mean_cov = np.asarray(mean.full_covariances)
    for k in range(p.n_components):
        ax.add_patch(_ellipse(mean.means[k], mean_cov[k], (i, j), n_std, fill=False,
                              edgecolor=colors[k], linewidth=2.2, zorder=3))
        ax.plot(*mean.means[k, [i, j]], marker="x", color="k", ms=6, zorder=4)
    _component_legend(ax, colors, mean.weights, extra=f"{len(idx)} posterior draws "
                      f"(thin), mean (bold); {n_std:g} sd")
    _label_axes(ax, names, i, j)
    if title is not None:
        ax.set_title(title)
    ax.autoscale_view()
    return ax


def plot_trace(model, var_names=("weights", "means"), *, figsize=None):
    """Trace and marginal density per chain of a fitted ``BayesianGaussianMixture``'s
    relabeled draws (``model.idata_``; ArviZ's plot through :mod:`bayesgmm.bayes.arviz`).

    Parameters
    ----------
    model : fitted BayesianGaussianMixture, or its ArviZ data
    var_names : sequence of str or None, default=("weights", "means")
        Posterior variables; None for all of them.
    figsize : (float, float), optional
        Resize ArviZ's figure.

    Returns
    -------
    ndarray of matplotlib Axes
        Every Axes of the figure, in its order (``axes[0].figure`` is the figure).
    """
    from bayesgmm.bayes import arviz

    return _figure_axes(arviz.plot_trace(_idata(model), var_names), figsize)


def plot_rank(model, var_names=("weights",), *, figsize=None):
    """Rank plot per chain of a fitted ``BayesianGaussianMixture``'s relabeled draws:
    chains sampling the same distribution have uniform ranks.

    Parameters
    ----------
    model : fitted BayesianGaussianMixture, or its ArviZ data
    var_names : sequence of str or None, default=("weights",)
    figsize : (float, float), optional

    Returns
    -------
    ndarray of matplotlib Axes
    """
    from bayesgmm.bayes import arviz

    return _figure_axes(arviz.plot_rank(_idata(model), var_names), figsize)


# ---- helpers ---------------------------------------------------------------------------

def _axes(ax, figsize=(6.0, 5.0)):
    """``ax``, else the Axes of a new figure whose constrained layout keeps a legend
    beside the axes on the canvas."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _params_and_names(obj, feature_names, draws: bool = False, X=None):
    """(GMMParams, D names, RobustParams or None) from params or a fitted estimator (its
    ``params_``, or its posterior means unless ``draws``); names as :func:`_names` finds
    them, the estimator's ``feature_names_in_`` before X's columns. A robust fit's
    GMMParams are its components' (``mixture``: scale matrices, weights summing to
    1 - noise weight); the RobustParams come third for its degrees of freedom and noise."""
    from bayesgmm.robust import RobustParams

    robust = None
    if isinstance(obj, GMMParams):
        params = obj
    elif isinstance(obj, RobustParams):
        params, robust = obj.mixture, obj
    elif hasattr(obj, "params_"):
        params = obj.params_
        if isinstance(params, RobustParams):  # RobustMixture
            params, robust = params.mixture, params
        elif not draws and params.batch_shape:  # a Bayesian fit: its posterior means
            params = GMMParams.from_sklearn(obj.weights_, obj.means_,
                                            covariance_type=params.covariance_type,
                                            covariances=obj.covariances_)
        if feature_names is None:
            feature_names = getattr(obj, "feature_names_in_", None)
    elif hasattr(obj, "fit") and hasattr(obj, "get_params"):
        raise ValueError(f"{type(obj).__name__} is not fitted yet; call fit(X) before plotting")
    else:
        raise TypeError(f"expected GMMParams, RobustParams or a fitted estimator, got "
                        f"{type(obj).__name__}")
    return params, _names(feature_names, params.n_features, X), robust


def _names(feature_names, D: int, X=None) -> list[str]:
    """D axis labels: ``feature_names``, else a DataFrame X's columns, else "feature i"."""
    if feature_names is None:
        feature_names = getattr(X, "columns", None)
    if feature_names is None:
        return [f"feature {i}" for i in range(D)]
    names = [str(n) for n in feature_names]
    if len(names) != D:
        raise ValueError(f"feature_names has {len(names)} names but the data have {D} "
                         "features; pass one name per column")
    return names


def _check_X(X, D) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or (D is not None and X.shape[1] != D):
        want = "(N, D)" if D is None else f"(N, {D})"
        raise ValueError(f"X must have shape {want}, got {X.shape}")
    return X


def _check_dims(dims, D: int) -> tuple[int, int]:
    if D < 2:
        raise ValueError("a 2-D plot needs at least 2 features; the data have 1 (plot_pairs "
                         "draws a 1-D density)")
    i, j = (int(d) for d in dims)
    if not (0 <= i < D and 0 <= j < D) or i == j:
        raise ValueError(f"dims must be two different feature indices in [0, {D}), got "
                         f"{tuple(dims)}")
    return i, j


def _select_features(features, names: list[str], D: int) -> list[int]:
    if features is None:
        chosen = list(range(D))
    else:
        chosen = []
        for f in features:
            if isinstance(f, str):
                if f not in names:
                    raise ValueError(f"feature {f!r} is not one of {names}")
                chosen.append(names.index(f))
            elif 0 <= int(f) < D:
                chosen.append(int(f))
            else:
                raise ValueError(f"feature index {f} is out of range [0, {D})")
    if not chosen:
        raise ValueError("features= selects no feature")
    if len(chosen) > MAX_PAIRS_FEATURES:
        raise ValueError(f"a pairs grid of {len(chosen)} features is unreadable; choose at most "
                         f"{MAX_PAIRS_FEATURES} with features=[...] (indices or names)")
    return chosen


def _component_colors(K: int, cmap=None) -> np.ndarray:
    """(K, 4) RGBA: a qualitative map's own colours in order, or a continuous one spread.
    The default (no ``cmap``) is tab10, tab20 above 9 colours, without their greys
    (:data:`_PALETTE_GREYS`); a named ``cmap`` is used whole."""
    import matplotlib

    if cmap is None:
        name = "tab10" if K <= 10 - len(_PALETTE_GREYS["tab10"]) else "tab20"
        cm = matplotlib.colormaps[name]
        keep = np.setdiff1d(np.arange(cm.N), _PALETTE_GREYS[name])
        return np.asarray(cm(keep[np.arange(K) % len(keep)]))
    cm = matplotlib.colormaps[cmap]
    n = getattr(cm, "N", 256)
    if n <= 20:  # qualitative (tab10, tab20, Set2...): its colours in order, cycled
        return np.asarray(cm(np.arange(K) % n))
    return np.asarray(cm(np.linspace(0, 1, max(K, 2))[:K]))


def _with_alpha(color, alpha: float) -> np.ndarray:
    rgba = np.array(color, dtype=np.float64)
    rgba[3] = alpha
    return rgba


def _label_colors(labels, N: int, colors: np.ndarray):
    """(N, 4) RGBA of the points: their component's colour, :data:`_NOISE` for -1."""
    if labels is None:
        return [(0.45, 0.45, 0.45, 0.6)]
    labels = np.asarray(labels)
    if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {N} integer component indices (model.predict(X)), "
                         f"got shape {labels.shape} of {labels.dtype}")
    if labels.size and (labels.min() < -1 or labels.max() >= len(colors)):
        raise ValueError(f"labels must lie in [0, {len(colors)}) (the components), or be -1 "
                         f"(noise), got [{labels.min()}, {labels.max()}]")
    return np.where((labels == -1)[:, None], _NOISE, colors[np.maximum(labels, 0)])


def _noise_entry(labels, robust) -> str | None:
    """The legend's name of the noise points (label -1), with the noise weight where it
    is known; None when no point is noise."""
    if labels is None or not np.any(np.asarray(labels) == -1):
        return None
    if robust is not None and robust.has_noise:
        return f"noise (w = {float(robust.noise_weight):.2f})"
    return "noise"


def _ellipse(mean, cov, dims, n_std: float, **kwargs):
    """The ``n_std`` ellipse of the 2-D marginal (``dims``) of N(mean, cov)."""
    from matplotlib.patches import Ellipse

    S = cov[np.ix_(dims, dims)]  # the 2-D marginal covariance
    vals, vecs = np.linalg.eigh(S)  # ascending: the last is the major axis
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.maximum(vals[::-1], 0))
    return Ellipse(mean[list(dims)], width, height, angle=angle, **kwargs)


def _component_legend(ax, colors, weights, loc=None, extra=None, noise=None):
    """One entry per component (and ``noise``'s black points, and an ``extra`` line);
    beside the axes on the right unless ``loc`` is given (e.g. in an empty panel)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colors[k], edgecolor=colors[k], alpha=0.7,
                     label=f"component {k} (w = {float(weights[k]):.2f})")
               for k in range(len(weights))]
    if noise:
        handles.append(Line2D([], [], ls="none", marker="o", ms=4, color=_NOISE, label=noise))
    if extra:
        handles.append(Line2D([], [], color="0.3", lw=0.8, label=extra))
    if loc is None:
        _legend_beside(ax, handles)
    else:
        ax.legend(handles=handles, loc=loc, fontsize="small", framealpha=0.85)


def _legend_beside(ax, handles):
    """A legend right of the axes, outside them: at K = 9 one inside covered data points
    whatever ``loc="best"`` chose."""
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, fontsize="small", frameon=False)


def _label_axes(ax, names, i, j):
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])


def _density_panel(ax, x, p: GMMParams, cov, i: int, colors, bins: int, df):
    """Histogram of feature i and the 1-D mixture density, total and weighted components
    (a component with finite ``df (K,)`` is a Student-t: its marginal is the 1-D t of the
    same ν and scale)."""
    from scipy.stats import t as student_t

    ax.hist(x, bins=bins, density=True, color="0.8", edgecolor="white", linewidth=0.4)
    lo, hi = x.min(), x.max()
    pad = 0.1 * (hi - lo if hi > lo else 1.0)
    grid = np.linspace(lo - pad, hi + pad, 200)
    sd = np.sqrt(cov[:, i, i])  # (K,): each component's marginal sd (t: scale) of feature i
    z = (grid[:, None] - p.means[None, :, i]) / sd  # (200, K)
    finite = np.isfinite(df)
    shape = np.where(finite, student_t.pdf(z, np.where(finite, df, 1.0)),
                     np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi))
    comp = p.weights * shape / sd  # (200, K)
    for k in range(p.n_components):
        ax.plot(grid, comp[:, k], color=colors[k], lw=1.0)
    ax.plot(grid, comp.sum(1), color="k", lw=1.4)


def _idata(model):
    idata = getattr(model, "idata_", model)
    if idata is None or not hasattr(idata, "__contains__") or "posterior" not in idata:
        raise ValueError(f"expected a fitted BayesianGaussianMixture or its idata_, got "
                         f"{type(model).__name__}")
    return idata


def _figure_axes(fig, figsize) -> np.ndarray:
    if figsize is not None:
        fig.set_size_inches(*figsize)
    # ArviZ 0.23 leaves titles over the tick labels of the row above; constrained
    # layout separates them (at draw time, so after any resize)
    fig.set_layout_engine("constrained")
    return np.asarray(fig.axes, dtype=object)
