"""Missing values in EM (bayesgmm.missing, GaussianMixture(missing="marginalize")).

Independent truths: scikit-learn's GaussianMixture from identical starts (complete data),
scipy's multivariate normal on the observed coordinates' marginal (responsibilities,
densities), the Gaussian conditioning formula solved by hand (imputation), known
generating parameters (recovery), repeated rows (sample weights).
"""

import itertools
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import GaussianMixture, GMMParams
from bayesgmm import missing
from bayesgmm.covariance import TABLE
from bayesgmm.datasets import make_mixture
from bayesgmm.engines import numpy as host
from bayesgmm.metrics import adjusted_rand_score

COVARIANCE_TYPES = tuple(TABLE)  # every model of the table, mclust's too once added
SKLEARN_TYPES = ("full", "tied", "diag", "spherical")


def _truth(D=4, K=3, seed=0) -> GMMParams:
    """A mixture with correlated, unequal covariances (conditioning matters)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (K, D))
    A = rng.normal(size=(K, D, D)) * 0.5 + np.eye(D)
    return GMMParams(np.full(K, 1 / K), means, np.linalg.cholesky(A @ A.transpose(0, 2, 1)))


def _holes(X, fraction, seed):
    """Delete ``fraction`` of the values completely at random; every row keeps one."""
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < fraction] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


@pytest.fixture(scope="module")
def data():
    X, y, truth = make_mixture(_truth(), 600, random_state=0)
    return X, y, truth, _holes(X, 0.25, 1)


def _start(X, ct, K=3):
    """Initial parameters from a short plain fit of the complete rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(K, covariance_type=ct, max_iter=2, random_state=0).fit(
            X[~np.isnan(X).any(axis=1)]).params_


def _marginal_resp(params: GMMParams, x):
    """p(z = k | x_o) and log p(x_o) of one row, by scipy on the marginal N(μ_o, Σ_oo)."""
    o = ~np.isnan(x)
    cov = np.asarray(params.full_covariances, np.float64)
    joint = np.array([np.log(params.weights[k]) + multivariate_normal(
        params.means[k][o], cov[k][np.ix_(o, o)]).logpdf(x[o]) for k in range(len(cov))])
    top = joint.max()
    log_norm = top + np.log(np.exp(joint - top).sum())
    return np.exp(joint - log_norm), log_norm


# ---- complete data: the plain EM ---------------------------------------------------------


@pytest.mark.parametrize("ct", SKLEARN_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_without_missing_values_em_equals_sklearn_from_the_same_start(data, ct, dtype):
    from sklearn.mixture import GaussianMixture as SkGM

    X = data[0].astype(dtype)
    start = _start(X, ct).to_numpy(np.float64)
    start = GMMParams(start.weights / start.weights.sum(), start.means, start.cov_factor, ct)
    p, info = missing.em(X, start, tol=0.0, max_iter=8)
    sk = SkGM(3, covariance_type=ct, tol=0.0, max_iter=8, weights_init=start.weights,
              means_init=start.means, precisions_init=start.precisions, reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X.astype(np.float64))
    assert p.means.dtype == dtype and int(info.n_iter) == 8
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(p.weights, sk.weights_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(p.means, sk.means_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(p.covariances, sk.covariances_, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_without_missing_values_em_equals_the_host_engine(data, ct):
    """Every model of the table: the same iterates and lower bounds as plain EM."""
    X = data[0]
    start = _start(X, ct)
    p, info = missing.em(X, start, tol=0.0, max_iter=8)
    q, qinfo = host.fit(X, start, tol=0.0, max_iter=8)
    np.testing.assert_allclose(info.history, qinfo.history, rtol=1e-12)
    np.testing.assert_allclose(p.means, q.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.covariances, q.covariances, rtol=1e-10, atol=1e-12)


def test_marginalize_on_complete_data_is_the_plain_fit(data):
    X = data[0]
    a = GaussianMixture(3, random_state=0).fit(X)
    b = GaussianMixture(3, random_state=0, missing="marginalize").fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.bic(X) == b.bic(X)


# ---- the marginal E-step --------------------------------------------------------------


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_responsibilities_are_the_observed_marginals(data, ct):
    Xm = data[3]
    gm = GaussianMixture(3, covariance_type=ct, random_state=0, missing="marginalize").fit(Xm)
    proba, score = gm.predict_proba(Xm), gm.score_samples(Xm)
    rows = [i for i in range(len(Xm)) if np.isnan(Xm[i]).any()][:12] + [
        int(np.flatnonzero(~np.isnan(Xm).any(axis=1))[0])]
    assert sum(np.isnan(Xm[i]).sum() >= 2 for i in rows) >= 1  # rows with 1 and 2+ holes
    for i in rows:
        r, ln = _marginal_resp(gm.params_, Xm[i])
        np.testing.assert_allclose(proba[i], r, atol=1e-10)
        np.testing.assert_allclose(score[i], ln, rtol=1e-10)
    np.testing.assert_array_equal(gm.predict(Xm), proba.argmax(axis=1))
    assert gm.score(Xm) == pytest.approx(score.mean())
    # BIC counts the same parameters on the observed coordinates' likelihood
    assert gm.bic(Xm) == pytest.approx(-2 * score.sum() + gm.params_.n_parameters
                                       * np.log(len(Xm)))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_log_likelihood_is_monotone(data, ct):
    Xm = _holes(data[0], 0.4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, covariance_type=ct, random_state=1, tol=0.0, max_iter=40,
                             reg_covar=0.0, missing="marginalize").fit(Xm)
    lb = np.asarray(gm.lower_bounds_)
    assert len(lb) == 40 and lb[-1] > lb[0]
    assert np.diff(lb).min() >= -1e-10 * np.abs(lb).max()


def test_float32_holds(data):
    Xm = data[3]
    a = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm)
    b = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm.astype(np.float32))
    assert b.means_.dtype == np.float32 and b.predict_proba(Xm.astype(np.float32)).dtype == \
        np.float32
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-3, atol=1e-4)


def test_integer_sample_weight_is_repeating_rows(data):
    Xm = data[3]
    w = np.random.default_rng(3).integers(0, 4, len(Xm))
    start = _start(Xm, "full")
    a, ia = missing.em(Xm, start, sample_weight=w, tol=0.0, max_iter=10)
    b, ib = missing.em(np.repeat(Xm, w, axis=0), start, tol=0.0, max_iter=10)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-10)
    np.testing.assert_allclose(a.cov_factor, b.cov_factor, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ia.history, ib.history, rtol=1e-12)
    gm = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm, sample_weight=w)
    assert np.isfinite(gm.lower_bound_)


# ---- recovery --------------------------------------------------------------------------


def _param_error(p: GMMParams, truth: GMMParams) -> float:
    """Mean distance of means plus mean Frobenius distance of covariances, under the
    best matching of components."""
    best = np.inf
    for perm in map(list, itertools.permutations(range(truth.n_components))):
        best = min(best, np.linalg.norm(p.means[perm] - truth.means, axis=1).mean()
                   + np.linalg.norm(p.covariances[perm] - truth.covariances, axis=(1, 2)).mean())
    return best


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_recovery_beats_dropping_rows_and_mean_imputation(fraction):
    X, y, truth = make_mixture(_truth(), 3000, random_state=0)
    Xm = _holes(X, fraction, 100)
    kw = dict(n_components=3, random_state=0, n_init=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = GaussianMixture(**kw).fit(X)
        em = GaussianMixture(missing="marginalize", **kw).fit(Xm)
        complete = ~np.isnan(Xm).any(axis=1)
        drop = GaussianMixture(**kw).fit(Xm[complete])
        filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
        mean_imputed = GaussianMixture(**kw).fit(filled)
    err = {name: _param_error(g.params_, truth) for name, g in
           dict(full=full, em=em, drop=drop, impute=mean_imputed).items()}
    assert err["em"] <= 3 * err["full"], err
    assert err["em"] < err["drop"] and err["em"] < 0.5 * err["impute"], err
    drop_predictor = GaussianMixture.from_params(drop.params_, missing="marginalize")
    ari_em = adjusted_rand_score(y, em.predict(Xm))
    assert ari_em >= adjusted_rand_score(y, mean_imputed.predict(filled)), err
    assert ari_em >= adjusted_rand_score(y, drop_predictor.predict(Xm)) - 0.01


# ---- imputation ------------------------------------------------------------------------


def test_impute_conditional_means_by_hand(data):
    Xm = data[3]
    gm = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm)
    filled = gm.impute(Xm)
    o = ~np.isnan(Xm)
    np.testing.assert_array_equal(filled[o], Xm[o])
    assert not np.isnan(filled).any()
    cov = gm.covariances_
    for i in np.flatnonzero((~o).any(axis=1))[:10]:
        oi, mi = o[i], ~o[i]
        r, _ = _marginal_resp(gm.params_, Xm[i])
        cond = [gm.means_[k][mi] + cov[k][np.ix_(mi, oi)] @ np.linalg.solve(
            cov[k][np.ix_(oi, oi)], Xm[i][oi] - gm.means_[k][oi]) for k in range(3)]
        np.testing.assert_allclose(filled[i][mi], r @ np.array(cond), rtol=1e-9, atol=1e-12)


def test_multiple_imputations_draw_from_the_conditional():
    # one component: draws of the missing coordinates ~ N(conditional mean, Schur complement)
    truth = _truth(D=3, K=1, seed=4)
    gm = GaussianMixture.from_params(truth, missing="marginalize")
    x = np.array([[0.5, np.nan, np.nan]])
    draws = gm.impute(x, n_imputations=20000, random_state=0)
    assert draws.shape == (20000, 1, 3) and np.all(draws[:, 0, 0] == 0.5)
    S, mu = truth.covariances[0], truth.means[0]
    mean = mu[1:] + S[1:, :1] @ np.linalg.solve(S[:1, :1], x[0, :1] - mu[:1])
    cond = S[1:, 1:] - S[1:, :1] @ np.linalg.solve(S[:1, :1], S[:1, 1:])
    sample = draws[:, 0, 1:]
    se = np.sqrt(np.diag(cond) / len(sample))
    assert np.all(np.abs(sample.mean(axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(sample.T), cond, rtol=0.05, atol=0.05 * np.abs(cond).max())
    again = gm.impute(x, n_imputations=3, random_state=0)
    np.testing.assert_array_equal(again, gm.impute(x, n_imputations=3, random_state=0))


# ---- errors ----------------------------------------------------------------------------


def test_default_refuses_nan_and_names_the_option(data):
    with pytest.raises(ValueError, match="contains NaN.*missing='marginalize'"):
        GaussianMixture(3).fit(data[3])
    gm = GaussianMixture(3, random_state=0).fit(data[0])
    with pytest.raises(ValueError, match="missing='marginalize'"):
        gm.predict(data[3])


def test_nullable_dataframe_na_is_a_missing_value(data):
    """A DataFrame of pandas' nullable Float64 with pd.NA was refused ("could not convert
    ... NAType"); its NA is now NaN: the fit, predictions and sweep equal those of the
    float array with NaN in the same cells."""
    pd = pytest.importorskip("pandas")
    from bayesgmm.selection import sweep

    Xm = data[3][:200]
    df = pd.DataFrame(Xm, columns=list("abcd")).astype("Float64")
    assert df.isna().to_numpy().sum() == np.isnan(Xm).sum() > 0
    with pytest.raises(ValueError, match="contains NaN.*missing='marginalize'"):
        GaussianMixture(3).fit(df)
    gm = GaussianMixture(3, missing="marginalize", random_state=0).fit(df)
    ref = GaussianMixture(3, missing="marginalize", random_state=0).fit(Xm)
    np.testing.assert_array_equal(gm.means_, ref.means_)
    np.testing.assert_array_equal(gm.predict_proba(df), ref.predict_proba(Xm))
    table = sweep(df, [1, 2], random_state=0, missing="marginalize")
    np.testing.assert_array_equal(table["bic"], sweep(Xm, [1, 2], random_state=0,
                                                      missing="marginalize")["bic"])
    assert table.models[0].feature_names_in_.tolist() == list("abcd")


def test_errors_name_the_problem_and_the_fix(data):
    X = data[3].copy()
    gm = GaussianMixture(3, random_state=0, missing="marginalize")
    bad = X.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match=r"Row\(s\) \[5\].*no observed value.*drop"):
        gm.fit(bad)
    bad = data[0].copy()
    bad[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Feature\(s\) \[2\].*NaN in every row.*drop"):
        gm.fit(bad)
    w = np.ones(len(X))
    w[3] = np.nan
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        gm.fit(X, sample_weight=w)
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        gm.fit(bad)
    with pytest.raises(ValueError, match="'missing' should be in"):
        GaussianMixture(3, missing="drop").fit(X)
    with pytest.raises(ValueError, match="partial_fit does not marginalise.*fit does"):
        GaussianMixture(3, missing="marginalize").partial_fit(X)
    gm.fit(X)
    bad = X[:4].copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match=r"Row\(s\) \[1\]"):
        gm.predict(bad)


@pytest.mark.parametrize("ct", SKLEARN_TYPES)
def test_compiled_e_step_equals_the_host_one_and_scipy(data, ct):
    """The compiled E-step (padded blocks of one pattern) gives the host's iterates; its
    first lower bound is the weighted mean of scipy's marginal log-densities."""
    Xm = data[3]
    w = np.random.default_rng(5).uniform(0.0, 2.0, len(Xm))
    start = _start(Xm, ct).to_numpy(np.float64)
    a, ia = missing.em(Xm, start, sample_weight=w, tol=0.0, max_iter=6, compiled=False)
    b, ib = missing.em(Xm, start, sample_weight=w, tol=0.0, max_iter=6, compiled=True)
    np.testing.assert_allclose(ib.history, ia.history, rtol=1e-12)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ib.nk, ia.nk, rtol=1e-10)
    scores = np.array([_marginal_resp(start, x)[1] for x in Xm])
    assert ib.history[0] == pytest.approx(np.sum(w * scores) / w.sum(), rel=1e-12)


def test_padded_layout_holds_every_row_once_in_blocks_of_one_pattern(data):
    Xm = data[3]
    w = np.arange(1.0, len(Xm) + 1)  # row i has weight i + 1: identifies it
    lay = missing.padded_layout(Xm, w, block_rows=(64, 16))
    assert [np.asarray(bp).size > 0 for _, _, bp in lay.levels] == [True, True]
    seen = []
    for u, ws, bp in lay.levels:
        u, ws, bp = np.asarray(u), np.asarray(ws), np.asarray(bp)
        size = len(ws) // len(bp)
        assert size in (64, 16) and len(ws) == size * len(bp)
        for j, p in enumerate(bp):
            block = slice(j * size, (j + 1) * size)
            rows = ws[block][ws[block] > 0].astype(int) - 1
            assert (~np.isnan(Xm[rows]) == lay.observed[p]).all()  # one pattern per block
            x = np.where(lay.observed[p], Xm[rows], 0.0)
            np.testing.assert_allclose(u[block][ws[block] > 0],
                                       np.where(lay.observed[p], x - lay.center, 0.0))
            assert (u[block][ws[block] == 0] == 0).all()
            seen.extend(rows.tolist())
    assert sorted(seen) == list(range(len(Xm)))


def test_patterns_group_rows():
    X = np.array([[1, np.nan], [2, 3], [np.nan, 4], [5, np.nan], [6, 7.0]])
    pats = missing.patterns(X)
    groups = {tuple(o): r.tolist() for o, r in zip(pats.observed, pats.rows)}
    assert groups == {(True, False): [0, 3], (True, True): [1, 4], (False, True): [2]}


# ---- the Bayesian likelihood -----------------------------------------------------------


@pytest.mark.parametrize("ct", ["full", "diag"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bayesian_marginal_log_prob_equals_scipy(data, ct, dtype):
    import jax
    import jax.numpy as jnp

    from bayesgmm.bayes.missing import marginal_log_prob
    from bayesgmm.validation import compute_scope

    Xm = data[3][:80]
    gm = GaussianMixture(3, covariance_type=ct, random_state=0, missing="marginalize").fit(Xm)
    with compute_scope(dtype):
        lp = np.asarray(jax.jit(marginal_log_prob)(gm.params_.astype(dtype),
                                                   jnp.asarray(Xm, dtype)))
    assert lp.dtype == dtype
    expect = np.array([_marginal_resp(gm.params_, x)[1] for x in Xm])
    np.testing.assert_allclose(lp, expect, rtol=2e-5 if dtype == np.float32 else 1e-10)
    # complete rows: the plain mixture density, as EM's scoring computes it
    complete = ~np.isnan(Xm).any(axis=1)
    np.testing.assert_allclose(lp[complete], gm.score_samples(Xm[complete]),
                               rtol=2e-5 if dtype == np.float32 else 1e-10)


def _z(rng, K, D):
    import jax.numpy as jnp

    z = {"weights": rng.normal(size=K - 1) * 0.5, "means": rng.normal(size=(K, D)) * 2,
         "scales": rng.normal(size=(K, D)) * 0.3,
         "corr_chol": rng.normal(size=(K, D * (D - 1) // 2)) * 0.5}
    return {k: jnp.asarray(v, jnp.float64) for k, v in z.items()}


def test_potential_with_holes_equals_numpyro_and_scipy(data):
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from bayesgmm.bayes import potential as P
    from bayesgmm.bayes.inference.target import bound_model
    from bayesgmm.bayes.model import Priors, from_sites

    Xm = data[3][:60]
    priors = Priors().resolve(Xm)
    assert priors.marginalize_missing and np.isfinite(priors.mean_loc).all()
    model = bound_model(3, "full", priors)
    with jax.enable_x64(True):
        X = jnp.asarray(Xm)
        ours = jax.jit(jax.value_and_grad(lambda z: P.potential(z, X, "full", priors)))
        ref = jax.jit(jax.value_and_grad(lambda z: potential_energy(model, (X,), {}, z)))
        rng = np.random.default_rng(0)
        for _ in range(3):
            z = _z(rng, 3, 4)
            a, ga = ours(z)
            with jax.numpy_dtype_promotion("standard"):  # NumPyro mixes int64 and floats
                b, gb = ref(z)
            assert np.isfinite(float(a)) and all(np.isfinite(g).all() for g in ga.values())
            np.testing.assert_allclose(float(a), float(b), rtol=1e-9)
            for name in ga:
                np.testing.assert_allclose(ga[name], gb[name], rtol=1e-7, atol=1e-9)
            # the likelihood term is scipy's observed-marginal density
            prior_only = float(P.potential(z, X[:0], "full", priors))
            params = from_sites(P.constrain(z, "full"), "full").to_numpy()
            loglik = sum(_marginal_resp(params, x)[1] for x in Xm)
            np.testing.assert_allclose(prior_only - float(a), loglik, rtol=1e-9)


def test_map_fits_data_with_holes(data):
    import jax
    import jax.numpy as jnp

    from bayesgmm.bayes.inference.map import fit_map
    from bayesgmm.bayes.model import Priors

    Xm = data[3]
    em = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm)
    start = GaussianMixture(3, random_state=0).fit(Xm[~np.isnan(Xm).any(axis=1)])
    order = [int(np.argmin(np.linalg.norm(start.means_ - m, axis=1))) for m in em.means_]
    assert sorted(order) == [0, 1, 2]
    priors = Priors().resolve(Xm)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        result = fit_map(None, jnp.asarray(Xm), start.params_, n_components=3,
                         covariance_type="full", priors=priors, n_steps=1500)
    means = np.asarray(result.params.means)[0, 0][order]
    assert np.isfinite(result.info.log_density[-1])
    before = np.abs(start.means_[order] - em.means_).max()
    after = np.abs(means - em.means_).max()
    # weak priors, 600 rows: MAP lands near the missing-data maximum likelihood
    assert after < 0.1 and after < 0.5 * before, (before, after)


def test_nuts_samples_data_with_holes(data):
    import jax

    from bayesgmm.bayes.inference.nuts import sample_nuts
    from bayesgmm.bayes.model import Priors

    Xm = data[3][:200]
    # n_init=8: with one start EM stops at a local optimum on these 200 rows (two
    # clusters merged), which NUTS then leaves
    em = GaussianMixture(3, random_state=0, n_init=8, missing="marginalize").fit(Xm)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        result = sample_nuts(jax.random.PRNGKey(0), Xm, em.params_, n_components=3,
                             covariance_type="full", priors=Priors().resolve(Xm),
                             n_warmup=100, n_draws=100, n_chains=2)
    means = np.asarray(result.params.means)  # (chain, draw, K, D), started at the EM fit
    assert np.isfinite(means).all()
    # 200 rows with a quarter of the values missing: each chain's posterior mean sits at
    # the missing-data EM fit (measured within 0.06), with no label switch from that start
    for chain_mean in means.mean(axis=1):
        assert np.abs(chain_mean - em.means_).max() < 0.3


def test_warm_start_continues_the_fit_with_holes(data):
    Xm = data[3]
    kw = dict(random_state=0, tol=0.0, missing="marginalize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once = GaussianMixture(3, max_iter=10, **kw).fit(Xm)
        warm = GaussianMixture(3, max_iter=5, warm_start=True, **kw).fit(Xm).fit(Xm)
    np.testing.assert_allclose(warm.means_, once.means_, rtol=1e-12)
    np.testing.assert_allclose(warm.covariances_, once.covariances_, rtol=1e-12)


def test_saved_model_predicts_rows_with_holes(data, tmp_path):
    from bayesgmm.io import load_model, save_model

    Xm = data[3]
    gm = GaussianMixture(3, random_state=0, missing="marginalize").fit(Xm)
    loaded = load_model(save_model(gm, tmp_path / "m"))
    assert loaded.missing == "marginalize"
    np.testing.assert_array_equal(loaded.predict_proba(Xm), gm.predict_proba(Xm))
