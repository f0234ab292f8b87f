"""bayesgmm.bayes.arviz against independent truth, so the same tests hold on ArviZ 0.23
(Python 3.11) and ArviZ 1.x (Python >= 3.12): the pointwise log-likelihood against scipy,
LOO against the exact leave-one-out predictive of a conjugate model, WAIC against its
closed form, the summary's interval against numpy.quantile, compare's sign convention,
R-hat and ESS on draws with known mixing."""

import sys
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from bayesgmm import GaussianMixture
from bayesgmm.bayes import arviz as bz
from bayesgmm.params import GMMParams

SUMMARY_COLUMNS = ["mean", "sd", "eti94_lb", "eti94_ub", "mcse_mean", "mcse_sd", "ess_bulk",
                   "ess_tail", "r_hat"]


def _mixture_draws(C=2, S=60, seed=0):
    """(C, S) draws around a 3-component, 2-feature mixture, with model sites."""
    rng = np.random.default_rng(seed)
    K, D = 3, 2
    weights = rng.dirichlet([40.0, 30.0, 20.0], (C, S))
    means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]) + 0.1 * rng.normal(size=(C, S, K, D))
    scales = np.exp(0.05 * rng.normal(size=(C, S, K, D)))
    corr_chol = np.broadcast_to(np.eye(D), (C, S, K, D, D)).copy()
    corr_chol[..., 1, 0] = 0.3
    corr_chol[..., 1, 1] = np.sqrt(1 - 0.3**2)
    factor = scales[..., :, None] * corr_chol  # Cholesky of diag(s) R diag(s)
    params = GMMParams(weights, means, factor, "full")
    sites = {"scales": scales, "corr_chol": corr_chol}
    return params, sites


def _conjugate(N=40, C=4, S=1000, sigma=1.0, prior_sd=10.0, seed=1):
    """y_n ~ N(mu, sigma^2), mu ~ N(0, prior_sd^2): exact posterior draws of mu as a
    one-component mixture, and the exact leave-one-out log predictive density per point."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0.7, sigma, N)
    prec = 1 / prior_sd**2 + N / sigma**2
    mu = rng.normal(y.sum() / sigma**2 / prec, prec**-0.5, (C, S))
    params = GMMParams(np.ones((C, S, 1)), mu[..., None, None],
                       np.full((C, S, 1, 1, 1), sigma), "full")
    prec_loo = 1 / prior_sd**2 + (N - 1) / sigma**2  # the posterior without point n
    mean_loo = (y.sum() - y) / sigma**2 / prec_loo
    exact_i = norm.logpdf(y, mean_loo, np.sqrt(sigma**2 + 1 / prec_loo))
    return params, y[:, None], exact_i


def _ll(idata):
    return np.asarray(idata.log_likelihood["obs"].values, dtype=np.float64)


# ---- the data object ------------------------------------------------------------------

def test_groups_dims_and_log_likelihood():
    params, sites = _mixture_draws()
    X = np.random.default_rng(2).normal(size=(25, 2)) * 2
    lp = np.random.default_rng(3).normal(size=(2, 60))
    idata = bz.to_inference_data(params, X, sites=sites, sample_stats={"lp": lp})
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata
    assert "prior" not in idata
    post = idata.posterior
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["scales"].dims == ("chain", "draw", "component", "feature")
    for name in ("corr_chol", "covariances"):
        assert post[name].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 60
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    assert idata.observed_data["obs"].dims == ("obs_id", "feature")
    np.testing.assert_array_equal(idata.observed_data["obs"].values, X)
    np.testing.assert_array_equal(idata.sample_stats["lp"].values, lp)
    # covariances are L Lᵀ of the factor; the log-likelihood is scipy's mixture density
    L = np.asarray(params.cov_factor)
    np.testing.assert_allclose(post["covariances"].values, L @ np.swapaxes(L, -1, -2),
                               rtol=1e-12)
    c, s = 1, 17
    truth = logsumexp([np.log(params.weights[c, s, k]) + multivariate_normal.logpdf(
        X, params.means[c, s, k], L[c, s, k] @ L[c, s, k].T) for k in range(3)], axis=0)
    np.testing.assert_allclose(_ll(idata)[c, s], truth, rtol=1e-10)


def test_em_fit_exports_as_one_draw(blobs):
    X = blobs[0]
    gm = GaussianMixture(4, random_state=0).fit(X)
    idata = bz.from_params(gm.params_, X)
    assert idata.posterior.sizes["chain"] == 1 and idata.posterior.sizes["draw"] == 1
    truth = logsumexp([np.log(w) + multivariate_normal.logpdf(X, m, c) for w, m, c in
                       zip(gm.weights_, gm.means_, gm.covariances_)], axis=0)
    np.testing.assert_allclose(_ll(idata)[0, 0], truth, rtol=1e-10)


def test_float32_data_keeps_its_dtype_and_its_numbers():
    params, _ = _mixture_draws()
    X = np.random.default_rng(2).normal(size=(25, 2)).astype(np.float32)
    idata32 = bz.to_inference_data(params.astype(np.float32), X)
    idata64 = bz.to_inference_data(params, X.astype(np.float64))
    assert idata32.log_likelihood["obs"].dtype == np.float32
    np.testing.assert_allclose(_ll(idata32), _ll(idata64), rtol=1e-5, atol=1e-5)
    assert bz.loo(idata32).elpd == pytest.approx(bz.loo(idata64).elpd, rel=1e-4)
    assert bz.summary(idata32, ["weights"]).dtypes.unique().tolist() == [np.float64]


def test_arviz_line_follows_the_python_version():
    """The environment markers: ArviZ 0.23 below Python 3.12, ArviZ >= 1.3 from 3.12."""
    if sys.version_info >= (3, 12):
        assert (1, 3) <= bz.arviz_version() < (2, 0)
    else:
        assert (0, 23) <= bz.arviz_version() < (1, 0)


# ---- LOO and WAIC ---------------------------------------------------------------------

def test_loo_is_the_exact_leave_one_out_of_a_conjugate_model():
    params, y, exact_i = _conjugate()
    idata = bz.to_inference_data(params, y)
    res = bz.loo(idata)
    assert res.kind == "loo" and res.n_samples == 4000 and res.n_data_points == 40
    assert res.elpd_i.shape == res.pareto_k.shape == (40,)
    assert res.pareto_k.max() < 0.5 and not res.warning  # importance sampling works here
    assert res.good_k == pytest.approx(min(1 - 1 / np.log10(4000), 0.7))
    np.testing.assert_allclose(res.elpd_i, exact_i, atol=0.01)
    assert res.elpd == pytest.approx(exact_i.sum(), abs=0.05)
    # where Pareto k is small, PSIS is close to plain importance sampling, weights 1/p(y_n|θ)
    ll = _ll(idata).reshape(4000, 40)
    is_i = -(logsumexp(-ll, axis=0) - np.log(4000))
    np.testing.assert_allclose(res.elpd_i, is_i, atol=0.005)
    lppd = (logsumexp(ll, axis=0) - np.log(4000)).sum()
    assert res.p == pytest.approx(lppd - res.elpd, rel=1e-6)
    assert res.p == pytest.approx(1.0, abs=0.15)  # one free parameter, mu
    assert res.se == pytest.approx(np.sqrt(40 * np.var(res.elpd_i, ddof=1)), rel=1e-12)
    # print(fit.loo()): the figures, not the (N,) arrays
    assert str(res) == (f"PSIS-LOO of 40 points, 4000 draws\n  elpd_loo {res.elpd:.2f} "
                        f"(se {res.se:.2f}), p_loo {res.p:.2f}\n  Pareto k > "
                        f"{res.good_k:.2f}: 0 of 40 points")


def test_waic_is_its_closed_form():
    params, y, exact_i = _conjugate()
    idata = bz.to_inference_data(params, y)
    res = bz.waic(idata)
    ll = _ll(idata).reshape(4000, 40)
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = logsumexp(ll, axis=0) - np.log(4000) - p_i
    assert res.kind == "waic" and res.pareto_k is None and not res.warning
    np.testing.assert_allclose(res.elpd_i, elpd_i, rtol=1e-12)
    assert res.p == pytest.approx(p_i.sum(), rel=1e-12)
    assert res.se == pytest.approx(np.sqrt(40 * np.var(elpd_i, ddof=1)), rel=1e-12)
    # WAIC is asymptotically LOO: close to the exact leave-one-out here
    assert res.elpd == pytest.approx(exact_i.sum(), abs=0.1)


def test_waic_matches_arviz_023_up_to_its_variance_divisor():
    az = bz._az()
    if not hasattr(az, "waic"):
        pytest.skip("ArviZ 1.x has no waic")
    params, y, _ = _conjugate()
    idata = bz.to_inference_data(params, y)
    theirs, ours = az.waic(idata, pointwise=True), bz.waic(idata)
    S = ours.n_samples
    assert ours.p == pytest.approx(theirs.p_waic * S / (S - 1), rel=1e-10)  # ddof 0 vs 1


def test_waic_warns_when_the_log_likelihood_varies_a_lot():
    params, y, _ = _conjugate()
    wide = GMMParams(params.weights, params.means * 30, params.cov_factor, "full")
    with pytest.warns(UserWarning, match="WAIC"):
        res = bz.waic(bz.to_inference_data(wide, y))
    assert res.warning
    assert str(res).startswith("WAIC of 40 points, 4000 draws\n  elpd_waic ") and \
        str(res).endswith("WAIC may fail there; prefer loo()")


def test_loo_waic_compare_need_the_log_likelihood():
    params, y, _ = _conjugate()
    bare = bz.to_inference_data(params, y, log_likelihood=False)
    full = bz.to_inference_data(params, y)
    for call in (lambda: bz.loo(bare), lambda: bz.waic(bare),
                 lambda: bz.compare({"a": full, "b": bare})):
        with pytest.raises(ValueError, match="log_likelihood"):
            call()


def test_options_that_differ_between_arviz_lines_are_refused():
    params, y, _ = _conjugate()
    idata = bz.to_inference_data(params, y)
    with pytest.raises(TypeError, match="scale"):
        bz.loo(idata, scale="deviance")
    with pytest.raises(TypeError, match="ci_prob"):
        bz.summary(idata, ["means"], hdi_prob=0.9)
    with pytest.raises(TypeError, match="method"):
        bz.compare({"a": idata, "b": idata}, ic="waic")


# ---- summary ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ci_prob", [0.94, 0.5])
def test_summary_interval_is_the_equal_tailed_quantile(ci_prob, dtype):
    """In float64 whatever the draws' dtype, so both ArviZ lines round alike."""
    params, sites = _mixture_draws()
    params = GMMParams(*(np.asarray(a, dtype) for a in (params.weights, params.means,
                                                          params.cov_factor)), "full")
    sites = {name: value.astype(dtype) for name, value in sites.items()}
    idata = bz.to_inference_data(params, np.zeros((5, 2)), sites=sites)
    table = bz.summary(idata, ci_prob=ci_prob)
    lb, ub = f"eti{100 * ci_prob:g}_lb", f"eti{100 * ci_prob:g}_ub"
    assert list(table.columns) == ["mean", "sd", lb, ub] + SUMMARY_COLUMNS[4:]
    rows = [f"weights[{k}]" for k in range(3)] + [f"{name}[{k}, {d}]" for name in
                                                 ("means", "scales")
                                                 for k in range(3) for d in range(2)]
    assert list(table.index) == rows
    for name, values in (("weights", params.weights), ("means", params.means),
                         ("scales", sites["scales"])):
        flat = np.asarray(values, dtype=np.float64).reshape(120, -1)  # (chain·draw, scalars)
        sub = table.loc[[r for r in rows if r.startswith(name + "[")]]
        np.testing.assert_allclose(sub["mean"], flat.mean(0), rtol=1e-12)
        np.testing.assert_allclose(sub["sd"], flat.std(0, ddof=1), rtol=1e-12)
        q = np.quantile(flat, [(1 - ci_prob) / 2, (1 + ci_prob) / 2], axis=0)
        np.testing.assert_allclose(sub[lb], q[0], rtol=1e-12)
        np.testing.assert_allclose(sub[ub], q[1], rtol=1e-12)


def test_summary_hdi_is_the_narrowest_interval():
    params, _ = _mixture_draws()
    idata = bz.to_inference_data(params, np.zeros((5, 2)))
    table = bz.summary(idata, ["means"], ci_prob=0.8, ci_kind="hdi", kind="stats")
    assert list(table.columns) == ["mean", "sd", "hdi80_lb", "hdi80_ub"]
    flat = np.sort(np.asarray(params.means).reshape(120, -1), axis=0)
    m = int(np.floor(0.8 * 120))  # the interval spans m + 1 sorted draws
    for j, row in enumerate(table.index):
        widths = [flat[i + m, j] - flat[i, j] for i in range(120 - m)]
        i = int(np.argmin(widths))
        assert (table.loc[row, "hdi80_lb"], table.loc[row, "hdi80_ub"]) == pytest.approx(
            (flat[i, j], flat[i + m, j]), rel=1e-12)


def test_summary_diagnostics_see_mixing():
    rng = np.random.default_rng(4)
    C, S = 4, 500
    mixed = rng.normal(size=(C, S, 1))  # iid: R-hat 1, ESS about C·S
    stuck = mixed + np.arange(C)[:, None, None] * 3.0  # each chain in its own place
    params = GMMParams(np.ones((C, S, 1)), np.concatenate([mixed, stuck], -1)[..., None, :],
                       np.ones((C, S, 1, 2, 2)) * np.eye(2), "full")
    table = bz.summary(bz.to_inference_data(params, np.zeros((3, 2))), ["means"],
                       kind="diagnostics")
    assert list(table.columns) == SUMMARY_COLUMNS[4:]
    good, bad = table.loc["means[0, 0]"], table.loc["means[0, 1]"]
    assert good["r_hat"] < 1.01 and bad["r_hat"] > 1.5
    assert 0.8 * C * S < good["ess_bulk"] < 1.25 * C * S and bad["ess_bulk"] < 50
    # the tail ESS is that of the indicators of the 5% and 95% quantiles (Vehtari et al. 2021)
    x = mixed[..., 0]
    q05, q95 = np.quantile(x, [0.05, 0.95])
    tail = min(bz.ess(x <= q05, method="mean"), bz.ess(x <= q95, method="mean"))
    assert good["ess_tail"] == pytest.approx(tail, rel=1e-6)
    assert good["mcse_mean"] == pytest.approx(x.std(ddof=1) / np.sqrt(good["ess_bulk"]),
                                              rel=0.1)


@pytest.mark.parametrize("C, S", [(1, 1), (1, 200)])
def test_summary_of_one_draw_or_one_chain_is_silent(capfd, C, S):
    """MAP (one draw) and SVI (one chain) fits: R-hat needs two chains, and ArviZ 0.23
    logged "Shape validation failed" on stderr for every summary (printed by `bayesgmm
    fit --quiet`, and on saving). The table is computed without that call: R-hat NaN,
    as ArviZ gives it; the one chain's ESS and MCSE are ArviZ's own (one draw: NaN)."""
    params, sites = _mixture_draws(C=1, S=S)
    idata = bz.to_inference_data(params, np.zeros((3, 2)), sites=sites)
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor NumPy's warnings on the sd of one draw
        table = bz.summary(idata)
    assert "Shape validation" not in capfd.readouterr().err
    assert list(table.columns) == SUMMARY_COLUMNS and table["r_hat"].isna().all()
    x = np.asarray(params.means)[..., 1, 0]  # (1, S): means[1, 0]
    row = table.loc["means[1, 0]"]
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
    if S == 1:
        assert table[SUMMARY_COLUMNS[4:]].isna().all().all()
    else:
        assert row["ess_bulk"] == pytest.approx(bz.ess(x, method="bulk"), rel=1e-12)
        assert row["ess_tail"] == pytest.approx(bz.ess(x, method="tail"), rel=1e-12)
        assert row["mcse_mean"] == pytest.approx(x.std(ddof=1) / np.sqrt(
            bz.ess(x, method="mean")), rel=1e-6)
    assert list(bz.summary(idata, kind="diagnostics").columns) == SUMMARY_COLUMNS[4:]


def test_summary_refuses_bad_arguments():
    params, _ = _mixture_draws()
    idata = bz.to_inference_data(params, np.zeros((5, 2)))
    for kwargs, match in (({"ci_prob": 1.5}, "ci_prob"), ({"ci_kind": "quantile"}, "ci_kind"),
                          ({"kind": "everything"}, "kind"),
                          ({"var_names": ["nope"]}, "none of var_names")):
        with pytest.raises(ValueError, match=match):
            bz.summary(idata, **kwargs)


# ---- compare ---------------------------------------------------------------------------

def test_compare_puts_the_best_model_first_with_positive_differences():
    params, y, _ = _conjugate(N=60)
    shifted = lambda d: GMMParams(params.weights, params.means + d, params.cov_factor, "full")
    models = {"off by 1": shifted(1.0), "truth": params, "off by 0.3": shifted(0.3)}
    idatas = {name: bz.to_inference_data(p, y) for name, p in models.items()}
    table = bz.compare(idatas)
    assert list(table.columns) == ["rank", "elpd", "p", "elpd_diff", "weight", "se", "dse",
                                   "warning"]
    assert list(table.index) == ["truth", "off by 0.3", "off by 1"]
    assert list(table["rank"]) == [0, 1, 2]
    loos = {name: bz.loo(idata) for name, idata in idatas.items()}
    best = loos["truth"]
    for name in table.index:
        row = table.loc[name]
        assert row["elpd"] == pytest.approx(loos[name].elpd, rel=1e-12)
        assert row["elpd_diff"] == pytest.approx(best.elpd - loos[name].elpd, rel=1e-12)
        diff = best.elpd_i - loos[name].elpd_i
        assert row["dse"] == pytest.approx(np.sqrt(60 * np.var(diff, ddof=1)), abs=1e-12)
    assert table["elpd_diff"].iloc[0] == 0.0 and (table["elpd_diff"].iloc[1:] > 0).all()
    assert table["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert (table["weight"] >= -1e-9).all() and table["weight"].iloc[0] > 0.9
    assert not table["warning"].any()


def test_compare_needs_two_fits_of_the_same_data():
    params, y, _ = _conjugate()
    one = bz.to_inference_data(params, y)
    with pytest.raises(ValueError, match="at least two"):
        bz.compare({"a": one})
    other = bz.to_inference_data(params, y[:30])
    with pytest.raises(ValueError, match="same samples"):
        bz.compare({"a": one, "b": other})


# ---- R-hat, ESS, plots -----------------------------------------------------------------

def test_ess_of_one_quantity():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 500))
    assert 0.8 * 2000 < bz.ess(x) < 1.25 * 2000  # iid: about C·S
    ar = np.zeros((4, 500))  # AR(1) with phi = 0.9: ESS about n (1 - phi) / (1 + phi)
    for t in range(1, 500):
        ar[:, t] = 0.9 * ar[:, t - 1] + rng.normal(size=4)
    assert 0.5 * 2000 / 19 < bz.ess(ar) < 2 * 2000 / 19
    with pytest.raises(ValueError, match="chain, draw"):
        bz.ess(x.ravel())


@pytest.mark.parametrize("plot", [bz.plot_trace, bz.plot_rank])
def test_trace_and_rank_plots_are_figures(plot, tmp_path):
    from matplotlib.figure import Figure

    params, sites = _mixture_draws()
    idata = bz.to_inference_data(params, np.zeros((5, 2)), sites=sites)
    fig = plot(idata, var_names=["weights"])
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    fig.savefig(tmp_path / "plot.png")
    plt.close("all")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
