"""Figures (bayesgmm/plotting.py) render to real PNG files of the expected pixel size, and
their Axes hold what they should: ellipses of the closed-form geometry, legends naming
the components, the feature names as axis labels, the best (model, K) marked where the
sweep put it, 1-D mixture densities equal to scipy's, a real NUTS fit's draws."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import COVARIANCE_TYPES  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from scipy.stats import norm  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402

from bayesgmm import BayesianGaussianMixture, GaussianMixture, RobustMixture  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402
from bayesgmm.metrics import membership_uncertainty  # noqa: E402
from bayesgmm.params import GMMParams  # noqa: E402
from bayesgmm.plotting import (  # noqa: E402
    MAX_PAIRS_FEATURES,
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

FIGSIZE, DPI = (4.0, 3.0), 50  # -> 200 x 150 pixels


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(fig, path, figsize=FIGSIZE, dpi=DPI):
    """Save ``fig`` at a fixed size; check a valid image of exactly that many pixels with
    visible content."""
    fig.set_size_inches(*figsize)
    fig.savefig(path, dpi=dpi)
    img = mpimg.imread(path)
    assert img.shape[:2] == (round(figsize[1] * dpi), round(figsize[0] * dpi)), img.shape
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


def _ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_plot_ellipses_png(tmp_path, datasets, ct):
    X = datasets["iris"]
    gm = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    fig, ax = plt.subplots()
    out = plot_ellipses(gm.params_, X, gm.predict(X), ax=ax, dims=(2, 3))
    assert out is ax and len(ax.patches) == 3 * 2
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 2", "feature 3")
    assert _legend_texts(ax) == [f"component {k} (w = {w:.2f})"
                                 for k, w in enumerate(gm.weights_)]
    _render(fig, tmp_path / "ellipses.png")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ellipse_geometry_is_the_closed_form(tmp_path, dtype):
    """A covariance with eigenvalues 4 and 1 rotated by 30 degrees: the n-sd ellipse has
    axes 2·n·2 and 2·n·1 and angle 30 (mod 180)."""
    theta = np.radians(30.0)
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = R @ np.diag([4.0, 1.0]) @ R.T
    params = GMMParams.from_sklearn(np.array([0.6, 0.4]), np.array([[1.0, -2.0], [5.0, 5.0]]),
                                    covariance_type="full",
                                    covariances=np.stack([cov, np.eye(2)])).to_numpy(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    fig, ax = plt.subplots()
    plot_ellipses(params, ax=ax, n_std=(1.0, 2.0, 3.0), feature_names=["x", "y"], title="T")
    ells = _ellipses(ax)
    assert len(ells) == 2 * 3
    for e, n in zip(ells[:3], (1.0, 2.0, 3.0)):
        np.testing.assert_allclose(e.center, [1.0, -2.0])
        np.testing.assert_allclose([e.width, e.height], [4 * n, 2 * n], rtol=rtol)
        assert np.isclose(e.angle % 180, 30.0, atol=1e-3)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "T")
    _render(fig, tmp_path / "geometry.png")


def test_plot_ellipses_takes_an_estimator_and_its_feature_names(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    gm.feature_names_in_ = np.array(["width", "height"], dtype=object)
    ax = plot_ellipses(gm, X, gm.predict(X))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "height")
    np.testing.assert_allclose(sorted(e.center[0] for e in _ellipses(ax)[::2]),
                               np.sort(gm.means_[:, 0]))
    ax = plot_ellipses(gm, feature_names=["a", "b"])  # explicit names win
    assert ax.get_xlabel() == "a"


def test_feature_names_from_a_dataframe(blobs):
    import pandas as pd

    X = pd.DataFrame(blobs[0], columns=["sepal", "petal"])
    gm = GaussianMixture(4, random_state=0).fit(X.to_numpy())
    proba = gm.predict_proba(X.to_numpy())
    for ax in (plot_ellipses(gm, X), plot_membership(X, proba),
               plot_uncertainty(X, membership_uncertainty(proba))):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("sepal", "petal")
    axes = plot_pairs(X, gm)
    assert (axes[1, 0].get_xlabel(), axes[1, 0].get_ylabel()) == ("sepal", "petal")
    assert plot_ellipses(gm, X, feature_names=["u", "v"]).get_xlabel() == "u"


def test_one_feature_pairs_is_a_density_and_2d_plots_refuse_it():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 1)), rng.normal(5, 1, (100, 1))])
    gm = GaussianMixture(2, random_state=0).fit(X)
    axes = plot_pairs(X, gm)
    assert axes.shape == (1, 1) and axes[0, 0].get_xlabel() == "feature 0"
    with pytest.raises(ValueError, match="needs at least 2 features"):
        plot_ellipses(gm, X)


@pytest.mark.parametrize("bad, match", [
    (dict(dims=(0, 5)), "dims must be two different"),
    (dict(feature_names=["a"]), "feature_names has 1 names"),
    (dict(labels=np.full(300, 7)), r"labels must lie in \[0, 4\)"),
])
def test_plot_ellipses_errors_name_the_fix(blobs, bad, match):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    with pytest.raises(ValueError, match=match):
        plot_ellipses(gm, X, **bad)
    with pytest.raises(ValueError, match="not fitted"):
        plot_ellipses(GaussianMixture(2), X)


def _four_features():
    L = np.array([[[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.2, 1, 0], [0.1, 0, 0, 0.3]]] * 3)
    truth = GMMParams(np.array([0.5, 0.3, 0.2]),
                      np.array([[0.0, 0, 0, 0], [4, 4, 0, 1], [-3, 3, 2, 0]]), L)
    return make_mixture(truth, 400, random_state=0).X


def test_plot_pairs_grid(tmp_path):
    X = _four_features()
    gm = GaussianMixture(3, random_state=0).fit(X)
    names = ["a", "b", "c", "d"]
    axes = plot_pairs(X, gm, labels=gm.predict(X), feature_names=names)
    assert axes.shape == (4, 4)
    for r in range(4):
        for c in range(4):
            ax = axes[r, c]
            if c > r:  # hidden upper triangle
                assert not ax.axison
            elif c < r:  # scatters with K x len(n_std) ellipses
                assert len(_ellipses(ax)) == 3
            else:  # the 1-D mixture density of feature r is scipy's
                x, dens = ax.lines[-1].get_data()
                sd = np.sqrt(gm.covariances_[:, r, r])
                truth = (gm.weights_ * norm.pdf(x[:, None], gm.means_[:, r], sd)).sum(1)
                np.testing.assert_allclose(dens, truth, rtol=1e-10)
    assert [axes[3, c].get_xlabel() for c in range(4)] == names
    assert [axes[r, 0].get_ylabel() for r in range(1, 4)] == names[1:]
    assert _legend_texts(axes[0, 3])[0].startswith("component 0 (w = ")
    _render(axes[0, 0].figure, tmp_path / "pairs.png", figsize=(6, 6))


def test_plot_pairs_density_panels_label_their_own_scale(tmp_path):
    """Each diagonal panel's density has its own y range and visible tick labels (the
    first row's on the left, the others' on the right, where no panel is)."""
    X = _four_features()
    X[:, 2] *= 100.0  # a feature in other units: its density is 100 times lower
    gm = GaussianMixture(3, random_state=0).fit(X)
    axes = plot_pairs(X, gm)
    fig = axes[0, 0].figure
    _render(fig, tmp_path / "pairs.png", figsize=(6, 6))
    tops = []
    for r in range(4):
        ax = axes[r, r]
        lo, hi = ax.get_ylim()
        shown = [tick.get_loc() for tick in ax.yaxis.get_major_ticks()
                 if lo <= tick.get_loc() <= hi
                 and any(t.get_visible() and t.get_text() for t in (tick.label1, tick.label2))]
        assert len(shown) >= 2, f"diagonal panel {r} has no visible density tick labels"
        assert max(shown) >= 0.3 * hi  # labelled over its own range
        tops.append(hi)
    assert tops[2] < tops[0] / 20  # not one shared scale


def test_plot_pairs_selects_features_and_caps_them():
    X = _four_features()
    gm = GaussianMixture(3, random_state=0).fit(X)
    axes = plot_pairs(X, gm, feature_names=list("abcd"), features=["d", 1])
    assert axes.shape == (2, 2)
    assert (axes[1, 0].get_xlabel(), axes[1, 0].get_ylabel()) == ("d", "b")
    wide = np.tile(X, 2)  # 8 features
    gm8 = GaussianMixture(2, covariance_type="diag", random_state=0).fit(wide)
    with pytest.raises(ValueError, match=f"at most {MAX_PAIRS_FEATURES} with features="):
        plot_pairs(wide, gm8)
    assert plot_pairs(wide, gm8, features=range(3)).shape == (3, 3)
    with pytest.raises(ValueError, match="'z' is not one of"):
        plot_pairs(X, gm, features=["z"])


def test_plot_selection_marks_the_best_model_and_k(tmp_path, blobs):
    X = blobs[0]
    table = sweep(X, range(1, 6), ("full", "spherical"), random_state=0)
    fig, ax = plt.subplots()
    assert plot_selection(table, ax=ax) is ax
    # one line per covariance model, then the best marker
    assert len(ax.lines) == 2 + 1
    star = ax.lines[-1]
    i = table.best_index
    assert star.get_xdata()[0] == table["n_components"][i] == 4
    assert star.get_ydata()[0] == table["bic"][i] == np.min(table["bic"])
    texts = _legend_texts(ax)
    assert texts[:2] == ["VVV", "VII"]
    assert texts[2] == f"best BIC: {table['covariance_type'][i]}, K=4"
    assert "lower is better" in ax.get_ylabel() and ax.get_title() == ""
    for line, ct in zip(ax.lines[:2], ("VVV", "VII")):
        rows = table["covariance_type"] == ct
        np.testing.assert_array_equal(line.get_xdata(), table["n_components"][rows])
        np.testing.assert_array_equal(line.get_ydata(), table["bic"][rows])
    _render(fig, tmp_path / "sel.png")


def test_plot_selection_icl_curves_and_another_criterion(blobs):
    X = blobs[0]
    table = sweep(X, range(1, 6), ("full", "diag"), random_state=0)
    ax = plot_selection(table, criteria=("bic", "icl"), title="my sweep")
    assert len(ax.lines) == 2 * 2 + 1
    assert _legend_texts(ax)[:4] == ["VVV BIC", "VVV ICL", "VVI BIC", "VVI ICL"]
    assert ax.get_title() == "my sweep"
    ax = plot_selection(table, criterion="aic")
    i = int(np.nanargmin(table["aic"]))
    assert ax.lines[-1].get_xdata()[0] == table["n_components"][i]
    with pytest.raises(ValueError, match="no column"):
        plot_selection(table, criteria=("loo",))


def test_plot_selection_colours_are_the_components_palette(tmp_path, blobs):
    """plot_selection kept its own palette, tab10 whole: the 8th model's curve was
    tab10's grey, the grey of uncertain points, which the other figures' palette (tab10
    without it) leaves out. Its models now take the components' colours."""
    models = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VVV")
    table = sweep(blobs[0][::3], range(1, 4), models, random_state=0)
    fig, ax = plt.subplots()
    plot_selection(table, ax=ax)
    assert [line.get_label() for line in ax.lines[:8]] == list(models)
    colours = np.array([matplotlib.colors.to_rgba(line.get_color()) for line in ax.lines[:8]])
    tab10 = np.asarray(matplotlib.colormaps["tab10"]([0, 1, 2, 3, 4, 5, 6, 8]))  # no grey 7
    np.testing.assert_array_equal(colours, tab10)
    assert not any(_is_grey(c) for c in colours)
    # the components of an 8-component mixture take the same colours, in order
    params = GaussianMixture(1, random_state=0).fit(blobs[0]).params_.to_numpy()
    eight = GMMParams.from_sklearn(np.full(8, 1 / 8), np.repeat(params.means, 8, 0),
                                   covariance_type="full",
                                   covariances=np.repeat(params.full_covariances, 8, 0))
    edges = [e.get_edgecolor() for e in _ellipses(plot_ellipses(eight, n_std=(1.0,)))]
    np.testing.assert_array_equal(np.array(edges)[:, :3], colours[:, :3])
    _render(fig, tmp_path / "sel8.png")


def test_plot_selection_and_membership_png(tmp_path, blobs):
    X = blobs[0]
    table = sweep(X, range(1, 6), random_state=0)
    ax = plot_selection(table, criteria=("bic", "aic"))
    assert len(ax.lines) == 3  # BIC, AIC, the chosen-K marker
    _render(ax.figure, tmp_path / "sel.png")
    gm = table.best["model"]
    ax2 = plot_membership(X, gm.predict_proba(X))
    _render(ax2.figure, tmp_path / "mem.png")


def test_plot_membership_fades_uncertain_points(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    proba = gm.predict_proba(X)
    ax = plot_membership(X, proba, feature_names=["u", "v"])
    assert _legend_texts(ax)[:4] == [f"component {k}" for k in range(4)]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("u", "v")
    u = np.zeros(len(X))
    u[:5] = 1.0  # the first five fully uncertain: grey and three times the size
    ax = plot_membership(X, proba, uncertainty=u)
    sc = ax.collections[0]
    faces, sizes = sc.get_facecolors(), sc.get_sizes()
    # drawn most uncertain first
    np.testing.assert_allclose(faces[:5, :3], 0.78)
    np.testing.assert_allclose(sizes[:5], 3 * sizes[-1])
    tab10 = np.asarray(matplotlib.colormaps["tab10"](np.arange(4)))
    np.testing.assert_allclose(faces[5:], tab10[proba.argmax(1)[5:]])
    # a noise model's last column: black, named "noise" (it was "component 4")
    with_noise = np.c_[proba * 0.9, np.full(len(X), 0.1)]
    with_noise[:3] = [0.05, 0.05, 0.05, 0.05, 0.8]  # three points in the noise
    ax = plot_membership(X, with_noise, uncertainty=np.zeros(len(X)), noise=True)
    assert _legend_texts(ax)[:5] == [f"component {k}" for k in range(4)] + ["noise"]
    faces = ax.collections[0].get_facecolors()
    assert sum(np.allclose(f, [0, 0, 0, 1]) for f in faces) == 3


def test_plot_uncertainty_colourbar_and_order(tmp_path, blobs):
    X = blobs[0]
    proba = GaussianMixture(4, random_state=0).fit(X).predict_proba(X)
    u = membership_uncertainty(proba)
    fig, ax = plt.subplots()
    assert plot_uncertainty(X, u, ax=ax, feature_names=["u", "v"], label="entropy") is ax
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "entropy"
    values = ax.collections[0].get_array()
    np.testing.assert_array_equal(values, np.sort(u))  # most uncertain on top
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("u", "v")
    _render(fig, tmp_path / "unc.png")
    with pytest.raises(ValueError, match="one value per row"):
        plot_uncertainty(X, u[:-1])


def _nine_components():
    """A K = 9 fit of 400 points in 2-D (more components than clusters: light ones too)."""
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=400, centers=6, n_features=2, random_state=1)
    return X, GaussianMixture(9, random_state=0).fit(X)


def _extent(artist, fig):
    return artist.get_window_extent(fig.canvas.get_renderer())


def _assert_legend_beside(legend, data_axes, fig):
    """The drawn legend overlaps no Axes holding data and lies on the canvas."""
    box = _extent(legend, fig)
    for ax in data_axes:
        assert not box.overlaps(_extent(ax, fig)), (box, _extent(ax, fig))
    canvas = fig.bbox
    assert canvas.x0 - 1 <= box.x0 and box.x1 <= canvas.x1 + 1, (box, canvas)
    assert canvas.y0 - 1 <= box.y0 and box.y1 <= canvas.y1 + 1, (box, canvas)


def _is_grey(rgba, tol=0.1):
    return np.ptp(np.asarray(rgba)[:3]) < tol


@pytest.fixture(scope="module")
def noisy_blobs():
    """Three blobs and 20 uniform points around them (noise)."""
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=300, centers=3, cluster_std=0.6, random_state=0)
    rng = np.random.default_rng(0)
    return np.r_[X, rng.uniform(X.min(0) - 2, X.max(0) + 2, (20, 2))]


@pytest.mark.parametrize("component", ["gaussian", "t"])
def test_robust_fits_plot_like_gaussian_ones(tmp_path, noisy_blobs, component):
    """A RobustMixture (noise, Gaussian or t components) draws its components' ellipses
    (a t's of its scale matrix), noise points (label -1) in black as plot_membership
    draws noise, and a pairs grid whose diagonal is the components' 1-D marginals (t of
    the component's ν for a t)."""
    X = noisy_blobs
    r = RobustMixture(3, component=component, noise=True, random_state=0).fit(X)
    labels = r.predict(X)
    n_noise = int(np.sum(labels == -1))
    assert n_noise > 0
    fig = plt.figure(layout="constrained")
    ax = plot_ellipses(r, X, labels, ax=fig.subplots(), n_std=(1.0,))
    ells = _ellipses(ax)
    np.testing.assert_allclose([e.center for e in ells], r.means_)
    for e, S in zip(ells, r.covariances_):  # full: 1-sd axes are 2 sqrt(eigenvalues)
        np.testing.assert_allclose(sorted([e.width, e.height]),
                                   2 * np.sqrt(np.linalg.eigvalsh(S)), rtol=1e-10)
    faces = ax.collections[0].get_facecolors()
    # plot_membership(noise=True)'s colour of a noise point (before fading): the same
    sure = plot_membership(X, r.predict_proba(X), noise=True, uncertainty=np.zeros(len(X)))
    black = sure.collections[0].get_facecolors()[np.flatnonzero(labels == -1)[0]]
    np.testing.assert_array_equal(black, [0.0, 0.0, 0.0, 1.0])
    assert sum(np.allclose(f, black) for f in faces) == n_noise
    np.testing.assert_allclose(faces[labels == -1], np.tile(black, (n_noise, 1)))
    texts = _legend_texts(ax)
    assert texts[:3] == [f"component {k} (w = {w:.2f})" for k, w in enumerate(r.weights_)]
    assert texts[3] == f"noise (w = {r.noise_weight_:.2f})"
    _render(fig, tmp_path / "robust.png", figsize=(6, 4))
    axes = plot_pairs(X, r, labels=labels)
    assert len(_ellipses(axes[1, 0])) == 3
    assert sum(np.allclose(f, black) for f in axes[1, 0].collections[0].get_facecolors()) \
        == n_noise
    df = r.params_.df
    for d in range(2):
        x, dens = axes[d, d].lines[-1].get_data()
        scale = np.sqrt(r.covariances_[:, d, d])
        if component == "t":
            truth = student_t.pdf(x[:, None], df, r.means_[:, d], scale)
        else:
            assert np.isinf(df).all()
            truth = norm.pdf(x[:, None], r.means_[:, d], scale)
        np.testing.assert_allclose(dens, (r.weights_ * truth).sum(1), rtol=1e-10)
    _render(axes[0, 0].figure, tmp_path / "robust_pairs.png", figsize=(5, 5))
    with pytest.raises(ValueError, match=r"or be -1 \(noise\)"):
        plot_ellipses(r, X, np.full(len(X), -2))


def test_plot_uncertainty_colour_scale_is_fixed(tmp_path, blobs):
    """The colourbar runs 0 to 1 whatever the data's range: K = 1 (all 0) no longer runs
    -0.1..0.1, and a fit whose largest uncertainty is small is not drawn fully dark."""
    X = blobs[0]
    for K in (1, 4):
        u = membership_uncertainty(GaussianMixture(K, random_state=0).fit(X).predict_proba(X))
        ax = plot_uncertainty(X, u)
        assert ax.collections[0].get_clim() == (0.0, 1.0)
        colorbar = ax.figure.axes[-1]
        assert colorbar.get_ylim() == (0.0, 1.0)
        _render(ax.figure, tmp_path / f"unc{K}.png", figsize=(5, 4))
    small = np.linspace(0, 6e-4, len(X))  # iris's range: light, not dark
    ax = plot_uncertainty(X, small)
    _render(ax.figure, tmp_path / "small.png", figsize=(5, 4))  # colours are set at draw
    top = ax.collections[0].get_facecolors()[-1]  # the largest, drawn last
    light = np.asarray(matplotlib.colormaps["viridis_r"](0.0))
    np.testing.assert_allclose(top, light, atol=0.01)


def test_legends_sit_beside_the_data(tmp_path):
    """At K = 9, no legend covers a panel holding data (drawn figures, measured extents)."""
    X, gm = _nine_components()
    ax = plot_ellipses(gm, X, gm.predict(X))
    ax2 = plot_membership(X, gm.predict_proba(X))
    for a, name in ((ax, "ell"), (ax2, "mem")):
        fig = a.figure
        _render(fig, tmp_path / f"{name}.png", figsize=tuple(fig.get_size_inches()))
        assert len(a.get_legend().get_texts()) >= 9
        _assert_legend_beside(a.get_legend(), [a], fig)
    one = GaussianMixture(9, random_state=0).fit(X[:, :1])
    axes = plot_pairs(X[:, :1], one)  # one feature: the density panel alone
    fig = axes[0, 0].figure
    _render(fig, tmp_path / "pairs1.png", figsize=tuple(fig.get_size_inches()))
    _assert_legend_beside(axes[0, 0].get_legend(), [axes[0, 0]], fig)
    axes = plot_pairs(X, gm)  # two: the legend in the empty top right panel
    fig = axes[0, 0].figure
    _render(fig, tmp_path / "pairs2.png", figsize=tuple(fig.get_size_inches()))
    _assert_legend_beside(axes[0, 1].get_legend(), [axes[0, 0], axes[1, 0], axes[1, 1]], fig)


def test_default_component_colours_have_no_grey(blobs):
    """Tab10's grey (index 7) read as the grey of uncertain or unlabelled points at K >= 8:
    the default palette has none, and its K colours stay distinct up to 18."""
    X = blobs[0]
    params = GaussianMixture(1, random_state=0).fit(X).params_
    for K in (8, 9, 10, 18):
        many = GMMParams.from_sklearn(np.full(K, 1.0 / K), np.repeat(params.means, K, 0),
                                      covariance_type="full",
                                      covariances=np.repeat(params.to_numpy().full_covariances,
                                                            K, 0))
        ax = plot_ellipses(many, X, np.arange(len(X)) % K, n_std=(1.0,))
        edges = np.array([e.get_edgecolor() for e in _ellipses(ax)])
        assert not any(_is_grey(c) for c in edges), K
        assert len({tuple(np.round(c[:3], 6)) for c in edges}) == K
        faces = ax.collections[0].get_facecolors()
        assert not any(_is_grey(c) for c in faces)
        proba = np.eye(K)[np.arange(len(X)) % K]
        faces = plot_membership(X, proba).collections[0].get_facecolors()
        assert not any(_is_grey(c) for c in faces), K
        plt.close("all")


def test_light_component_outline_stays_visible(tmp_path):
    """A w = 0.03 component beside a w = 0.5 one: its fill fades with the weight
    (0.25 · 0.03/0.5 + 0.05), its outline keeps the floor of 0.7."""
    params = GMMParams.from_sklearn(np.array([0.5, 0.47, 0.03]),
                                    np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]),
                                    covariance_type="spherical",
                                    covariances=np.array([1.0, 1.0, 0.5]))
    fig = plt.figure(layout="constrained")
    ax = plot_ellipses(params, ax=fig.subplots())
    ells = _ellipses(ax)
    assert len(ells) == 3 * 2
    for e, w in zip(ells, np.repeat([0.5, 0.47, 0.03], 2)):
        assert e.get_edgecolor()[3] >= 0.7
        assert np.isclose(e.get_facecolor()[3], 0.25 * w / 0.5 + 0.05)
    _render(fig, tmp_path / "light.png")


@pytest.fixture(scope="module")
def nuts_fit():
    """A small real NUTS fit: 2 chains x (30 + 30) draws on 150 points, K = 3."""
    import warnings

    import jax

    from bayesgmm.bayes.estimator import SamplingWarning
    from bayesgmm.datasets import make_blobs

    X, _ = make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=0)
    with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # 30 draws are too few for R-hat
        fit = BayesianGaussianMixture(3, method="nuts", n_chains=2, n_warmup=30, n_draws=30,
                                      random_state=0).fit(X)
    return fit, X


@pytest.mark.usefixtures("standard_promotion")
def test_plot_posterior_ellipses(tmp_path, nuts_fit):
    fit, X = nuts_fit
    fig, ax = plt.subplots()
    assert plot_posterior_ellipses(fit, X, ax=ax, n_draws=20) is ax
    ells = _ellipses(ax)
    assert len(ells) == 20 * 3 + 3  # thin draws, then the bold posterior means
    bold = ells[-3:]
    np.testing.assert_allclose([e.center for e in bold], fit.means_, rtol=1e-6)
    assert all(e.get_linewidth() > 2 * ells[0].get_linewidth() for e in bold)
    # every thin ellipse is centred on a real draw's mean of its component
    draws = fit.params_.flatten_batch().to_numpy().means  # (C·S, K, D)
    for m in range(0, 60, 7):
        k = m % 3
        assert np.min(np.linalg.norm(draws[:, k] - ells[m].center, axis=1)) < 1e-9
    texts = _legend_texts(ax)
    assert texts[:3] == [f"component {k} (w = {w:.2f})" for k, w in enumerate(fit.weights_)]
    _render(fig, tmp_path / "post.png")
    assert not _extent(ax.get_legend(), fig).overlaps(_extent(ax, fig))  # beside the data
    ax = plot_posterior_ellipses(fit.params_, n_draws=1000)  # more than there are: all 60
    assert len(_ellipses(ax)) == 60 * 3 + 3
    with pytest.raises(ValueError, match=r"batch shape \(chain, draw\)"):
        plot_posterior_ellipses(fit.map_params_)


@pytest.mark.usefixtures("standard_promotion")
def test_plot_ellipses_of_a_bayesian_fit_uses_posterior_means(nuts_fit):
    fit, X = nuts_fit
    ax = plot_ellipses(fit, X, fit.predict(X), n_std=(2.0,))
    np.testing.assert_allclose([e.center for e in _ellipses(ax)], fit.means_, rtol=1e-6)


@pytest.mark.usefixtures("standard_promotion")
def test_plot_trace_and_rank_of_relabeled_draws(tmp_path, nuts_fit):
    fit, _ = nuts_fit
    axes = plot_trace(fit, var_names=["weights"])
    assert axes.ndim == 1 and len(axes) >= 2
    fig = axes[0].figure
    assert all(ax.figure is fig for ax in axes)
    # the trace panel holds each chain's relabeled weights: 2 chains x 3 components
    w = np.asarray(fit.idata_.posterior["weights"])  # (C, S, K)
    traced = sorted(tuple(np.round(line.get_ydata(), 12)) for ax in axes for line in ax.lines
                    if len(line.get_ydata()) == w.shape[1])
    truth = sorted(tuple(np.round(w[c, :, k], 12)) for c in range(2) for k in range(3))
    # (ArviZ 0.23 draws exactly these; a later ArviZ may add lines of the same length)
    assert set(truth) <= set(traced)
    _render(fig, tmp_path / "trace.png", figsize=(8, 3))
    axes = plot_rank(fit, figsize=(8, 3))
    assert tuple(axes[0].figure.get_size_inches()) == (8, 3)
    _render(axes[0].figure, tmp_path / "rank.png", figsize=(8, 3))
    with pytest.raises(ValueError, match="fitted BayesianGaussianMixture"):
        plot_trace(BayesianGaussianMixture(2))


def test_docs_figures_are_small_valid_pngs():
    """The README's figures (docs/make_figures.py writes them): each a valid image under
    150 KB."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    pngs = sorted(docs.glob("*.png"))
    assert {p.name for p in pngs} >= {"clusters.png", "selection.png", "pairs.png",
                                      "membership.png", "uncertainty.png",
                                      "posterior_ellipses.png", "trace.png", "rank.png"}
    for path in pngs:
        assert path.stat().st_size < 150_000, path
        img = mpimg.imread(path)
        assert min(img.shape[:2]) > 150 and img[..., :3].std() > 0.05, path
