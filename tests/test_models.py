"""mclust's 14 covariance models (bayesgmm.covariance): Σ_k = λ_k D_k A_k D_kᵀ.

Truth, all computed here independently of the library:
* the closed-form M-steps of Celeux & Govaert (1995), in plain NumPy from the
  responsibilities (mclust's formulas on the scatter matrices W_k);
* for every model (the iterative ones above all), the expected complete-data
  log-likelihood Q of the M-step's covariances is at least that of scipy.optimize's best
  over an explicit parameterisation of the family (volumes, shapes, orientations as
  matrix exponentials of skew matrices) from several random starts, and the covariances
  lie in the family (equal volumes, shapes, orientations where the name says so);
* nesting: a constrained model's Q never exceeds its relaxation's (letter-wise order of
  the names), and EM started from a constrained fit only climbs in its relaxation;
* invariances: rotating the data rotates the covariances (rotation-equivariant
  models); permuting or rescaling the features does the same to the diagonal models;
  scaling the data by c scales every covariance by c²;
* mclust's parameter counts (nVarParams / nMclustParams, R/mclust.R, written out here);
* EM's log-likelihood never decreases; float32 agrees with float64; integer sample
  weights equal repeated rows; padded (inactive) components change nothing; the
  scikit-learn names give exactly their mclust models' fits; NumPy and JAX agree.
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from conftest import in_scope

import bayesgmm
from bayesgmm.covariance import MCLUST_MODELS, SKLEARN_NAMES, TABLE, moment_theta, ops
from bayesgmm.engines import mixture_m_step
from bayesgmm.engines import numpy as host
from bayesgmm.params import GMMParams, pad_components
from bayesgmm.validation import check_covariance_type

K, D = 3, 3
ITERATIVE = ("VEI", "VEE", "EVE", "VVE", "VEV")
ORDER = {"I": 0, "E": 1, "V": 2}


def _data(seed=0, n=90, d=D):
    """Three anisotropic, differently oriented clusters, and soft responsibilities."""
    rng = np.random.default_rng(seed)
    X, labels = [], []
    for k in range(K):
        A = rng.normal(size=(d, d)) * (0.5 + k)
        X.append(rng.normal(size=(n // K, d)) @ A + 4.0 * rng.normal(size=d))
        labels += [k] * (n // K)
    X = np.concatenate(X)
    resp = 0.7 * np.eye(K)[labels] + 0.3 * rng.dirichlet(np.ones(K), len(X))
    return X, resp


def _scatter(X, resp, reg):
    """n_k, μ_k and W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ + n_k·reg·I."""
    nk = resp.sum(0)
    mu = resp.T @ X / nk[:, None]
    W = np.stack([(resp[:, k, None] * (X - mu[k])).T @ (X - mu[k]) for k in range(len(nk))])
    return nk, mu, W + nk[:, None, None] * reg * np.eye(X.shape[1])


def _m_step(model, X, resp, reg=1e-6, xp=np, dtype=np.float64):
    """The library's M-step covariances (K, D, D) from statistics about a shift."""
    t = ops(model, np)
    shift = X.mean(0) + 0.5
    nk = resp.sum(0)
    sx = resp.T @ (X - shift)
    sxx = t.unpack_second(resp.T @ t.second_features(X - shift))
    args = [np.asarray(a, dtype) for a in (sxx, nk, sx / nk[:, None], nk.sum(), reg)]
    if xp is jnp:
        with in_scope(dtype):
            f = ops(model, jnp).factor_from_moments(*map(jnp.asarray, args))
            return np.asarray(ops(model, jnp).to_full_covariance(f, len(nk), X.shape[1]))
    f = ops(model, np).factor_from_moments(*args)
    return ops(model, np).to_full_covariance(f, len(nk), X.shape[1])


def _Q(Sigma, nk, W):
    """Expected complete-data log-likelihood's covariance part:
    -½ Σ_k [n_k log|Σ_k| + tr(W_k Σ_k⁻¹)]."""
    return -0.5 * sum(nk[k] * np.linalg.slogdet(Sigma[k])[1]
                      + np.trace(np.linalg.solve(Sigma[k], W[k])) for k in range(len(nk)))


def _n_var_params(model, d, G):
    """mclust's nVarParams (R/mclust.R), transcribed."""
    return {"E": 1, "V": G, "EII": 1, "VII": G, "EEI": d, "VEI": G + (d - 1),
            "EVI": 1 + G * (d - 1), "VVI": G * d, "EEE": d * (d + 1) // 2,
            "EVE": 1 + G * (d - 1) + d * (d - 1) // 2,
            "VEE": G + (d - 1) + d * (d - 1) // 2,
            "VVE": G + G * (d - 1) + d * (d - 1) // 2,
            "EEV": 1 + (d - 1) + G * d * (d - 1) // 2,
            "VEV": G + (d - 1) + G * d * (d - 1) // 2,
            "EVV": 1 - G + G * d * (d + 1) // 2, "VVV": G * d * (d + 1) // 2}[model]


# ---- names ------------------------------------------------------------------------------


def test_names_aliases_and_the_error_that_lists_them():
    assert MCLUST_MODELS == ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE",
                             "VVE", "EEV", "VEV", "EVV", "VVV")
    assert SKLEARN_NAMES == {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
    for name, model in {**SKLEARN_NAMES, "E": "EII", "V": "VII"}.items():
        assert TABLE[name] is TABLE[model]
        assert ops(name, np) is ops(model, np) and ops(name, jnp) is ops(model, jnp)
    for name in (*MCLUST_MODELS, *SKLEARN_NAMES, "E", "V"):
        assert check_covariance_type(name) == name
    for bad in ("VVX", "vvv", "", None, 3, ["full"]):
        with pytest.raises(ValueError, match="'covariance_type' should be in") as err:
            check_covariance_type(bad)
        for name in (*MCLUST_MODELS, *SKLEARN_NAMES, "'E'", "'V'"):
            assert name in str(err.value)
    with pytest.raises(ValueError, match="mclust's models"):
        bayesgmm.GaussianMixture(2, covariance_type="XYZ").fit(np.eye(4))


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_parameter_counts_are_mclusts(model):
    for d, G in itertools.product(range(1, 7), range(1, 10)):
        assert ops(model).n_parameters(G, d) == _n_var_params(model, d, G)
        p = GMMParams(np.full(G, 1 / G), np.zeros((G, d)),
                      ops(model).identity(G, d, np.float64), model)
        # nMclustParams: covariance + means + (G - 1) proportions
        assert p.n_parameters == _n_var_params(model, d, G) + G * d + (G - 1)
    for d, G in itertools.product((1,), range(1, 10)):  # univariate: E or V
        assert ops(model).n_parameters(G, d) == _n_var_params(model[0], d, G)


# ---- the M-steps ----------------------------------------------------------------------


def _closed_form(model, nk, W):
    """mclust's closed forms (Celeux & Govaert 1995, Table 1) from the scatters W_k."""
    n, d = nk.sum(), W.shape[-1]
    Wp = W.sum(0)
    if model == "EII":
        return np.broadcast_to(np.trace(Wp) / (n * d) * np.eye(d), W.shape)
    if model == "VII":
        return np.stack([np.trace(W[k]) / (d * nk[k]) * np.eye(d) for k in range(K)])
    if model == "EEI":
        B = np.diag(np.diag(Wp))
        lam = np.linalg.det(B) ** (1 / d) / n
        return np.broadcast_to(lam * B / np.linalg.det(B) ** (1 / d), W.shape)
    if model == "EVI":
        dets = [np.prod(np.diag(W[k])) ** (1 / d) for k in range(K)]
        lam = sum(dets) / n
        return np.stack([lam * np.diag(np.diag(W[k])) / dets[k] for k in range(K)])
    if model == "VVI":
        return np.stack([np.diag(np.diag(W[k])) / nk[k] for k in range(K)])
    if model == "EEE":
        return np.broadcast_to(Wp / n, W.shape)
    if model == "EEV":  # W_k = L_k Ω_k L_kᵀ; A ∝ Σ Ω_k (eigenvalues in one order)
        eig = [np.linalg.eigh(W[k]) for k in range(K)]
        omega = sum(w for w, _ in eig)
        lam = np.prod(omega) ** (1 / d) / n
        A = omega / np.prod(omega) ** (1 / d)
        return np.stack([lam * L @ np.diag(A) @ L.T for _, L in eig])
    if model == "EVV":
        dets = [np.linalg.det(W[k]) ** (1 / d) for k in range(K)]
        lam = sum(dets) / n
        return np.stack([lam * W[k] / dets[k] for k in range(K)])
    if model == "VVV":
        return W / nk[:, None, None]
    raise KeyError(model)


@pytest.mark.parametrize("reg", [0.0, 1e-2])
@pytest.mark.parametrize("model", ["EII", "VII", "EEI", "EVI", "VVI", "EEE", "EEV", "EVV",
                                   "VVV"])
def test_closed_form_m_steps(model, reg):
    X, resp = _data(1)
    nk, _, W = _scatter(X, resp, reg)
    np.testing.assert_allclose(_m_step(model, X, resp, reg), _closed_form(model, nk, W),
                               rtol=1e-9, atol=1e-12)


def _family(model, d, G):
    """(n_free, Σ(θ)): the model's covariances from free parameters θ: log-volumes,
    log-shapes (the last entry makes the product 1) and orientations exp(skew)."""
    vol, shape, orient = model
    nv = {"E": 1, "V": G}[vol]
    ns = {"I": 0, "E": 1, "V": G}[shape] * (d - 1)
    no = ({"I": 0, "E": 1, "V": G}[orient] if shape != "I" else 0) * (d * (d - 1) // 2)
    tril = np.tril_indices(d, -1)

    def sigma(theta):
        lv, ls, lo = np.split(theta, [nv, nv + ns])
        lam = np.exp(np.broadcast_to(lv, (G,)))
        logs = np.zeros((G, d - 1)) if ns == 0 else np.broadcast_to(ls.reshape(-1, d - 1),
                                                                       (G, d - 1))
        A = np.exp(np.concatenate([logs, -logs.sum(1, keepdims=True)], axis=1))
        Os = [np.eye(d)] * G
        if no:
            skews = lo.reshape(-1, d * (d - 1) // 2)
            mats = []
            for s in skews:
                S = np.zeros((d, d))
                S[tril] = s
                mats.append(scipy.linalg.expm(S - S.T))
            Os = mats * G if len(mats) == 1 else mats
        return np.stack([lam[k] * Os[k] @ np.diag(A[k]) @ Os[k].T for k in range(G)])

    return nv + ns + no, sigma


def _in_family(model, Sigma):
    """The structure the name promises, checked on the covariances themselves."""
    vol, shape, orient = model
    dets = np.linalg.det(Sigma) ** (1 / Sigma.shape[-1])
    if vol == "E":
        np.testing.assert_allclose(dets, dets[0], rtol=1e-8)
    shapes = np.linalg.eigvalsh(Sigma / dets[:, None, None])
    if shape == "I":
        np.testing.assert_allclose(shapes, 1.0, rtol=1e-8)
    if shape == "E":
        np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-7)
    if orient == "I":
        np.testing.assert_allclose(Sigma - [np.diag(np.diag(s)) for s in Sigma], 0, atol=1e-12)
    if orient == "E":  # one orientation: the matrices commute
        scale = np.abs(Sigma).max() ** 2
        for a, b in itertools.combinations(Sigma, 2):
            np.testing.assert_allclose(a @ b - b @ a, 0, atol=1e-8 * scale)


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_every_m_step_maximises_q_over_its_family(model):
    """No point scipy.optimize finds in the family (BFGS from four random starts) has a
    higher Q than the M-step's covariances; the family's free-parameter count is
    mclust's; the covariances have the structure the name says."""
    X, resp = _data(2)
    reg = 1e-3
    nk, _, W = _scatter(X, resp, reg)
    ours = _m_step(model, X, resp, reg)
    _in_family(model, ours)
    q_ours = _Q(ours, nk, W)
    n_free, sigma = _family(model, D, K)
    assert n_free == _n_var_params(model, D, K)
    rng = np.random.default_rng(3)
    best = -np.inf
    for _ in range(4):
        res = scipy.optimize.minimize(lambda th: -_Q(sigma(th), nk, W) / nk.sum(),
                                      rng.normal(0, 0.5, n_free), method="BFGS",
                                      options={"gtol": 1e-9, "maxiter": 5000})
        best = max(best, -res.fun * nk.sum())
    assert q_ours >= best - 1e-7 * abs(q_ours), (q_ours, best)
    # and it is the optimum, not merely better than a poor search
    assert best >= q_ours - 1e-4 * abs(q_ours), (q_ours, best)


@pytest.mark.parametrize("model", ITERATIVE)
def test_iterative_m_steps_are_stationary(model):
    """Near the M-step's covariances Q has a maximum: small moves along the family (each
    free parameter of a re-fit parameterisation around the answer) never raise Q beyond
    second order."""
    X, resp = _data(4)
    nk, _, W = _scatter(X, resp, 1e-6)
    ours = _m_step(model, X, resp, 1e-6)
    q0 = _Q(ours, nk, W)
    rng = np.random.default_rng(5)
    # moves that stay in the family: common/per-component volume, shape and rotation
    for _ in range(20):
        eps = 1e-4
        vol = np.exp(eps * rng.normal(size=K if model[0] == "V" else 1))
        moved = ours * np.broadcast_to(vol, (K,))[:, None, None]
        S = np.zeros((D, D))
        S[np.tril_indices(D, -1)] = eps * rng.normal(size=D * (D - 1) // 2)
        R = scipy.linalg.expm(S - S.T)
        if model[2] in "EV" and model[2] != "I":  # a rotation of every orientation
            moved = R @ moved @ R.T
        assert _Q(moved, nk, W) <= q0 + 1e-9 * abs(q0)


def _le(a, b):
    """Model a is nested in model b (each letter at most as free)."""
    return all(ORDER[x] <= ORDER[y] for x, y in zip(a, b))


def test_nesting_of_the_m_steps():
    """For the same responsibilities, a constrained model's Q never exceeds its
    relaxation's, for every nested pair of the 14 (letter-wise order)."""
    X, resp = _data(6)
    nk, _, W = _scatter(X, resp, 1e-6)
    q = {m: _Q(_m_step(m, X, resp, 1e-6), nk, W) for m in MCLUST_MODELS}
    pairs = [(a, b) for a in MCLUST_MODELS for b in MCLUST_MODELS if a != b and _le(a, b)]
    assert len(pairs) > 30
    for a, b in pairs:
        assert q[a] <= q[b] + 1e-9 * abs(q[b]), (a, b, q[a], q[b])
    assert q["EII"] < q["VII"] < q["VVI"] < q["VVV"]
    assert q["EEE"] < q["EEV"] < q["VVV"]


# ---- invariances -----------------------------------------------------------------------

EQUIVARIANT = ("EII", "VII", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_m_steps_are_equivariant(model):
    X, resp = _data(7)
    base = _m_step(model, X, resp, 0.0)
    # scaling the data by c scales every covariance by c² (reg_covar 0)
    np.testing.assert_allclose(_m_step(model, 3.0 * X, resp, 0.0), 9.0 * base, rtol=1e-7,
                               atol=1e-9)
    if model in EQUIVARIANT:  # a rotation of the data rotates the covariances
        Q, _ = np.linalg.qr(np.random.default_rng(8).normal(size=(D, D)))
        rotated = _m_step(model, X @ Q.T, resp, 0.0)
        np.testing.assert_allclose(rotated, Q @ base @ Q.T, rtol=1e-7, atol=1e-9)
    else:  # axis-aligned: permuting and rescaling the features does the same to Σ
        P = np.eye(D)[[2, 0, 1]] * np.array([0.5, 2.0, 3.0])[:, None]
        np.testing.assert_allclose(_m_step(model, X @ P.T, resp, 0.0), P @ base @ P.T,
                                   rtol=1e-7, atol=1e-9)


def test_univariate_models_are_e_and_v():
    """At D = 1 each model is mclust's E (equal variances) or V (variable), by its volume
    letter; E and V are EII and VII."""
    X, resp = _data(9, d=1)
    nk, _, W = _scatter(X, resp, 1e-6)
    equal = np.full(K, W.sum() / nk.sum())
    variable = W[:, 0, 0] / nk
    for model in (*MCLUST_MODELS, "E", "V"):
        expected = equal if model[0] == "E" else variable
        np.testing.assert_allclose(_m_step(model, X, resp)[:, 0, 0], expected, rtol=1e-9)


# ---- precision and namespaces ------------------------------------------------------------


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_numpy_and_jax_agree_in_float64_and_float32(model):
    X, resp = _data(10)
    ref = _m_step(model, X, resp)
    np.testing.assert_allclose(_m_step(model, X, resp, xp=jnp), ref, rtol=1e-9, atol=1e-10)
    scale = np.abs(ref).max()
    for xp in (np, jnp):
        got = _m_step(model, X, resp, xp=xp, dtype=np.float32)
        assert got.dtype == np.float32
        assert np.abs(got - ref).max() / scale < 2e-4, xp


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_padding_components_changes_nothing(model):
    """Inactive (zero-weight) components added by padding take no part in the pooled
    volumes, shapes and orientations: the active components' M-step is unchanged, with
    or without reg_covar."""
    X, resp = _data(11)
    t = ops(model, np)
    shift = X.mean(0)
    nk = resp.sum(0)
    sx = resp.T @ (X - shift)
    sxx = t.unpack_second(resp.T @ t.second_features(X - shift))
    prev = GMMParams(np.full(K, 1 / K), np.zeros((K, D)), t.identity(K, D, np.float64), model)
    padded = pad_components(prev, K + 2)
    zeros = lambda a: np.concatenate([a, np.zeros((2, *a.shape[1:]))])  # noqa: E731
    for reg in (0.0, 1e-6):
        with np.errstate(all="ignore"):
            a = mixture_m_step(nk, sx, sxx, shift, covariance_type=model, reg_covar=reg,
                               previous=prev)
            b = mixture_m_step(zeros(nk), zeros(sx), zeros(sxx), shift, covariance_type=model,
                               reg_covar=reg, previous=padded)
        assert np.isfinite(b.cov_factor).all()
        np.testing.assert_allclose(b.weights[:K], a.weights, rtol=1e-12)
        np.testing.assert_allclose(b.full_covariances[:K], a.full_covariances, rtol=1e-8,
                                   atol=1e-12)


@pytest.mark.parametrize("model", ITERATIVE)
@pytest.mark.parametrize("k", [1, K])
def test_padded_em_runs_the_unpadded_iterations(model, k):
    """EM from a padded start (two inactive identity components) takes the unpadded fit's
    iterations: the warm-started inner loops (VEI, VEE, VEV: the previous shape; EVE,
    VVE: the previous orientation, summed weighted by the counts) see no padding. Before
    the weighting EVE/VVE differed by 2.6e-8 at K = 1."""
    X, _ = _data(14)
    rng = np.random.default_rng(3)
    start = GMMParams(np.full(k, 1 / k), X[rng.choice(len(X), k, replace=False)],
                      ops(model).identity(k, D, np.float64), model)
    a, ia = host.fit(X, start, tol=1e-10, max_iter=60)
    b, ib = host.fit(X, pad_components(start, k + 2), tol=1e-10, max_iter=60)
    assert int(ia.n_iter) == int(ib.n_iter) >= 2
    np.testing.assert_allclose(b.weights[:k], a.weights, rtol=1e-12)
    np.testing.assert_allclose(b.means[:k], a.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.full_covariances[:k], a.full_covariances, rtol=1e-12,
                               atol=1e-12)
    assert np.all(b.weights[k:] == 0)


def _member_stats(model, seed, k=K, dtype=np.float64):
    """One member's M-step arguments (sxx, nk, delta, total, reg, previous factor): its
    own data and responsibilities; the previous factor from a cold M-step on perturbed
    responsibilities (so the iterative M-steps warm-start from somewhere else)."""
    X, resp = _data(seed)
    resp = resp[:, :k] / resp[:, :k].sum(1, keepdims=True)
    t = ops(model, np)
    shift = X.mean(0)
    def stats(r):
        nk = r.sum(0)
        sx = r.T @ (X - shift)
        sxx = t.unpack_second(r.T @ t.second_features(X - shift))
        return [np.asarray(a, dtype) for a in (sxx, nk, sx / nk[:, None], nk.sum(), 1e-6)]
    rng = np.random.default_rng(seed)
    previous = t.factor_from_moments(*stats(resp * rng.uniform(0.5, 1.5, resp.shape)))
    return stats(resp) + [previous]


@pytest.mark.parametrize("model", MCLUST_MODELS)
@pytest.mark.parametrize("warm", [False, True])
def test_batched_m_step_equals_member_by_member(model, warm):
    """factor_from_moments over a leading batch axis of L members: each member's pooled
    quantities (tied, shared shape, orientation, volume) pooled over its own components,
    and each iterative M-step iterated as far as it goes alone; equal to one call per
    member to 1e-12 (cold and warm-started)."""
    t = ops(model, np)
    members = [_member_stats(model, seed) for seed in (20, 21, 22, 23)]
    stacked = [np.stack(a) for a in zip(*members)]
    args = stacked if warm else stacked[:5]
    with np.errstate(all="ignore"):
        batch = t.factor_from_moments(*args[:4], 1e-6, *args[5:])
        for i, m in enumerate(members):
            one = t.factor_from_moments(*m[:5], *(m[5:] if warm else []))
            assert np.isfinite(one).all()
            np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-12 * np.abs(one).max())


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_batched_moment_theta_equals_member_by_member(model):
    rng = np.random.default_rng(5)
    L, center = 3, rng.normal(size=D)
    members = [_member_stats(model, seed) for seed in (30, 31, 32)]
    w = rng.dirichlet(np.ones(K), L)
    w[1, 2] = 0.0  # an inactive component: -inf, as alone
    mu = rng.normal(size=(L, K, D))
    f = np.stack([m[5] for m in members])
    with np.errstate(divide="ignore"):
        batch = moment_theta(w, mu, f, center, model, np)
        for i in range(L):
            one = moment_theta(w[i], mu[i], f[i], center, model, np)
            np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_fit_many_equals_fit_per_member(model):
    """engines.numpy.fit_many (one batched E-step and M-step per iteration, members
    padded to one K or grouped by K) gives each member host.fit's result: members of
    K = 1..3, one padded by the caller. To 1e-8: the batched products (one matrix
    product over every member's components) round differently from one member's in the
    last bits (the lower bound: 1.7e-12 relative, hence 1e-10), and the iterative
    M-steps' inner loops (stopping at a relative change of sqrt(eps)) can then take one
    step more or less (measured: 1.8e-9 relative at K = 1 padded)."""
    X, _ = _data(15)
    starts = [GMMParams(np.full(k, 1 / k), _start(model, X, seed).means[:k],
                        ops(model).identity(k, D, np.float64), model)
              for seed, k in [(0, 3), (1, 3), (2, 2), (3, 1), (4, 3)]]
    starts.append(pad_components(starts[2], 3))
    refs = [host.fit(X, p, tol=1e-8, max_iter=80) for p in starts]
    for pad in (True, False):
        many = host.fit_many(X, starts, tol=1e-8, max_iter=80, pad=pad)
        for p, (got, info), (ref, ref_info) in zip(starts, many, refs):
            assert got.n_components == p.n_components and info.nk.shape == ref_info.nk.shape
            assert int(info.n_iter) == int(ref_info.n_iter)
            assert bool(info.converged) == bool(ref_info.converged)
            np.testing.assert_allclose(info.lower_bound, ref_info.lower_bound, rtol=1e-10)
            np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(got.means, ref.means, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(got.full_covariances, ref.full_covariances, rtol=1e-8,
                                       atol=1e-8)


# ---- EM with every model ------------------------------------------------------------------


def _start(model, X, seed=0):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), K, replace=False)]
    return GMMParams(np.full(K, 1 / K), means, ops(model).identity(K, X.shape[1], np.float64),
                     model)


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_em_log_likelihood_never_decreases(model):
    """EM's log-likelihood is non-decreasing (reg_covar = 0: reg_covar makes the M-step
    maximise a penalised Q, whose likelihood need not be monotone), from several starts
    (the iterative M-steps warm-start from the parameters EM holds)."""
    X, _ = _data(12)
    for seed in range(3):
        _, info = host.fit(X, _start(model, X, seed), tol=1e-10, max_iter=200, reg_covar=0.0)
        h = info.history[np.isfinite(info.history)]
        assert len(h) > 3 and not info.nonfinite
        assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:])), np.diff(h).min()


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_sample_weights_equal_repeated_rows(model):
    X, _ = _data(13)
    counts = np.random.default_rng(14).integers(1, 4, len(X))
    a, ia = host.fit(X, _start(model, X), sample_weight=counts.astype(float), max_iter=15,
                     tol=0.0)
    b, ib = host.fit(np.repeat(X, counts, axis=0), _start(model, X), max_iter=15, tol=0.0)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-9)
    np.testing.assert_allclose(a.full_covariances, b.full_covariances, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ia.lower_bound, ib.lower_bound, rtol=1e-10)


@pytest.mark.parametrize("chain", [("EII", "VII", "VVI", "VVV"), ("EEI", "EEE", "EEV", "VVV"),
                                   ("VEI", "VEE", "VEV", "VVV"), ("EVI", "EVE", "EVV", "VVV"),
                                   ("VVI", "VVE", "VVV")])
def test_em_in_a_relaxation_climbs_from_the_constrained_fit(chain):
    """EM in a more flexible model started from a constrained model's fit (the same
    start for both) ends at least as high: nesting at the level of fits."""
    X, _ = _data(15)
    params, info = host.fit(X, _start(chain[0], X), tol=1e-8, max_iter=300)
    for model in chain[1:]:
        start = GMMParams(params.weights, params.means,
                          ops(model).from_covariance(_layout(model, params.full_covariances)),
                          model)
        params, new = host.fit(X, start, tol=1e-8, max_iter=300)
        assert new.lower_bound >= info.lower_bound - 1e-10, (model, new, info)
        info = new


def _layout(model, full):
    """(K, D, D) covariances in the model's scikit-learn covariances_ layout."""
    t = ops(model)
    if t.component_axis is None:
        return full[0]
    return {-3: full, -2: np.diagonal(full, 0, -2, -1), -1: full[:, 0, 0]}[t.component_axis]


def test_sklearn_names_fit_exactly_as_their_mclust_models():
    X, _ = _data(16)
    for name, model in SKLEARN_NAMES.items():
        a = bayesgmm.GaussianMixture(K, covariance_type=name, random_state=0,
                                     engine="numpy").fit(X)
        b = bayesgmm.GaussianMixture(K, covariance_type=model, random_state=0,
                                     engine="numpy").fit(X)
        for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
        assert a.lower_bound_ == b.lower_bound_ and a.covariance_type == name


@pytest.mark.parametrize("model", ["VEV", "EVE", "EEV", "VEI"])
def test_both_engines_fit_the_models(model):
    """The estimator runs each model on the host and compiled engines to the same fit;
    covariances_ is (K, D, D) for full-storage models."""
    X, _ = _data(17)
    fits = [bayesgmm.GaussianMixture(K, covariance_type=model, random_state=0, tol=1e-8,
                                     engine=engine).fit(X) for engine in ("numpy", "jax")]
    np.testing.assert_allclose(fits[0].lower_bound_, fits[1].lower_bound_, rtol=1e-9)
    np.testing.assert_allclose(fits[0].covariances_, fits[1].covariances_, rtol=1e-6,
                               atol=1e-8)
    assert fits[0].covariances_.shape == ops(model).factor_shape(K, D)
    assert fits[0].bic(X) == pytest.approx(
        -2 * fits[0].score(X) * len(X)
        + np.log(len(X)) * (_n_var_params(model, D, K) + K * D + K - 1), rel=1e-10)


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_collapse_is_flagged_alike_in_numpy_and_jax(model):
    """A component on five identical rows with reg_covar = 0: a model whose own volume
    or shape of that component is free flags it (NaN factor); VEE/EVE, whose shared shape
    or orientation it spoils, flag every component; the pooled ones (EII, EEI, EEE,
    EEV) flag none, as tied does. reg_covar = 1e-6 heals all. NumPy (whose linalg
    raises on NaN) and JAX agree."""
    rng = np.random.default_rng(18)
    d = 4
    X = np.concatenate([rng.normal(0, 1, (40, d)), np.repeat([[6.0, -3.0, 2.0, 1.0]], 5, 0)])
    resp = np.zeros((len(X), K))
    resp[:40, :K - 1] = rng.dirichlet(np.ones(K - 1), 40)
    resp[40:, K - 1] = 1.0
    t = ops(model, np)
    shift = X.mean(0)
    nk, sx = resp.sum(0), resp.T @ (X - shift)
    sxx = t.unpack_second(resp.T @ t.second_features(X - shift))
    flags = {}
    for xp in (np, jnp):
        with in_scope(np.float64), np.errstate(all="ignore"):
            for reg in (0.0, 1e-6):
                args = [xp.asarray(a) for a in (sxx, nk, sx / nk[:, None], nk.sum(), reg)]
                tx = ops(model, xp)
                flags[xp, reg] = np.asarray(tx.factor_ok(tx.factor_from_moments(*args), K))
    assert (flags[np, 0.0] == flags[jnp, 0.0]).all() and flags[np, 1e-6].all()
    expected = ([True] * K if model in ("EII", "EEI", "EEE", "EEV") else
                [False] * K if model in ("VEE", "EVE") else [True] * (K - 1) + [False])
    assert flags[np, 0.0].tolist() == expected


# ---- the conjugate prior (MAP M-step statistics) -------------------------------------------


def _map_m_step(model, X, resp, prior):
    from bayesgmm.covariance import prior_moments

    t = ops(model, np)
    shift = X.mean(0) - 0.3
    nk = resp.sum(0)
    sx = resp.T @ (X - shift)
    sxx = t.unpack_second(resp.T @ t.second_features(X - shift))
    nk_map, sxx_map, means = prior_moments(prior, nk, sx, sxx, shift, model)
    f = t.factor_from_moments(sxx_map, nk_map, np.zeros_like(sx), nk_map.sum(), 0.0)
    return means, t.to_full_covariance(f, len(nk), X.shape[1])


def test_vvv_map_m_step_is_the_normal_inverse_wishart_mode():
    """VVV with the prior: the means and covariances are the joint mode of each
    component's NIW posterior (textbook closed form), and no perturbation raises
    Σ_n r log N(x | μ, Σ) + log N(μ | m0, Σ/κ) + log IW(Σ | ν, Λ) (scipy's densities)."""
    from scipy.stats import invwishart, multivariate_normal

    from bayesgmm.covariance import Prior

    X, resp = _data(19)
    rng = np.random.default_rng(20)
    prior = Prior(0.5, rng.normal(size=D), D + 3.0, np.diag(rng.uniform(0.5, 2, D)))
    means, covs = _map_m_step("VVV", X, resp, prior)
    nk, xbar, W = _scatter(X, resp, 0.0)
    for k in range(K):
        kn = prior.shrinkage + nk[k]
        d = xbar[k] - prior.mean
        Lam = prior.scale + W[k] + prior.shrinkage * nk[k] / kn * np.outer(d, d)
        np.testing.assert_allclose(means[k], (nk[k] * xbar[k] + prior.shrinkage * prior.mean)
                                   / kn, rtol=1e-12)
        np.testing.assert_allclose(covs[k], Lam / (prior.dof + nk[k] + D + 2), rtol=1e-10)

        def log_post(mu, S):
            return (resp[:, k] @ multivariate_normal(mu, S).logpdf(X)
                    + multivariate_normal(prior.mean, S / prior.shrinkage).logpdf(mu)
                    + invwishart(prior.dof, prior.scale).logpdf(S))

        best = log_post(means[k], covs[k])
        for _ in range(10):
            A = 1e-3 * rng.normal(size=(D, D))
            assert log_post(means[k] + 1e-3 * rng.normal(size=D),
                            covs[k] + A @ A.T + 1e-4 * (A + A.T)) < best


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_map_m_step_maximises_the_penalised_q(model):
    """Every model with the prior: Q on the prior-augmented counts and scatters (the
    log posterior's covariance part) is at least scipy's best over the family, the
    covariances keep the family's structure, and an inactive (zero-count) component
    takes no prior mass."""
    from bayesgmm.covariance import default_prior, prior_moments

    X, resp = _data(21)
    prior = default_prior(X, K, model)._replace(form="conjugate")
    _, covs = _map_m_step(model, X, resp, prior)
    _in_family(model, covs)
    nk, xbar, W = _scatter(X, resp, 0.0)
    shrink = prior.shrinkage * nk / (nk + prior.shrinkage)
    dev = xbar - prior.mean
    Wt = W + prior.scale + shrink[:, None, None] * dev[:, :, None] * dev[:, None, :]
    if ops(model).component_axis in (-2, -1):  # diagonal models see the diagonals only
        Wt = np.stack([np.diag(np.diag(w)) for w in Wt])
    nt = nk + prior.dof + D + 2
    q = _Q(covs, nt, Wt)
    n_free, sigma = _family(model, D, K)
    res = scipy.optimize.minimize(lambda th: -_Q(sigma(th), nt, Wt) / nt.sum(),
                                  np.zeros(n_free), method="BFGS", options={"gtol": 1e-9})
    assert q >= -res.fun * nt.sum() - 1e-7 * abs(q)
    t = ops(model, np)
    zero = t.unpack_second(np.zeros((1, t.second_features(X[:1]).shape[1])))  # one component
    nk_map, sxx_map, _ = prior_moments(prior, np.zeros(1), np.zeros((1, D)), zero,
                                       X.mean(0), model)
    assert nk_map[0] == 0 and np.all(sxx_map == 0)


def _mclust_map(model, X, resp, prior):
    """mclust 6's MAP M-step with a prior, written out from its Fortran EM routines
    (``src/mclust.f``: meeiip, meviip, meeeip, meveip, meevip, mevvip, meeeep, meeevp,
    mevevp, mevvvp), independently of the library's statistics: the means and the
    covariances (K, D, D). VEI and VEV alternate their two conditional maximisers
    until they stop moving, as mclust's inner loop does."""
    kappa, m0, nu, S = prior.shrinkage, prior.mean, prior.dof, prior.scale
    kp = 1.0 if kappa > 0 else 0.0
    nk, xbar, W = _scatter(X, resp, 0.0)
    n, Dd, G = nk.sum(), X.shape[1], len(nk)
    c = kappa * nk / (nk + kappa)
    dev = xbar - m0
    Wc = W + c[:, None, None] * dev[:, :, None] * dev[:, None, :]  # W + c d dᵀ
    s = np.trace(S) / Dd  # the diagonal models' scalar scale
    shrunk = (nk[:, None] * xbar + kappa * m0) / (nk + kappa)[:, None]
    diag = np.stack([np.diag(w) for w in Wc])  # (K, D)
    I = np.eye(Dd)
    if model == "EII":  # no scale term (meeiip)
        lam = np.trace(Wc, axis1=1, axis2=2).sum() / (nu + (n + G) * Dd + 2)
        return shrunk, np.stack([lam * I] * G)
    if model == "VII":
        lam = (s + np.trace(Wc, axis1=1, axis2=2)) / (nu + nk * Dd + 2 + Dd * kp)
        return shrunk, lam[:, None, None] * I
    if model == "EEI":  # the means stay x̄_k (meeeip)
        B = s + diag.sum(0)
        return xbar, np.stack([np.diag(B / (n + nu + 1 + kp))] * G)
    if model == "EVI":
        B = s + diag
        g = np.exp(np.log(B).mean(1))
        lam = g.sum() / (n + nu + 1 + kp)
        return shrunk, np.stack([np.diag(lam * b / gk) for b, gk in zip(B, g)])
    if model == "VVI":
        B = s + diag
        return shrunk, np.stack([np.diag(b / (nk_ + nu + 2 + kp)) for b, nk_ in zip(B, nk)])
    if model == "EEE":
        return shrunk, np.stack([(S + Wc.sum(0)) / (n + nu + Dd + 1 + G * kp)] * G)
    if model == "VVV":
        return shrunk, (S + Wc) / (nk + nu + Dd + 1 + kp)[:, None, None]
    if model in ("EEV", "VEV"):
        w, V = np.linalg.eigh(S + Wc)  # ascending eigenvalues, paired in order
    else:  # VEI
        w, V = s + diag, np.broadcast_to(I, (G, Dd, Dd))
    if model == "EEV":
        pooled = w.sum(0) / (n + nu + Dd + 1 + kp)
        return shrunk, np.stack([v * pooled @ v.T for v in V])
    count = nk * Dd + (nu + 2 + kp if model == "VEI" else 0.0)
    a = np.ones(Dd)
    for _ in range(5000):  # mclust's inner alternation, to convergence
        lam = (w / a).sum(1) / count
        new = (w / lam[:, None]).sum(0)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - a)) < 1e-14:
            break
        a = new
    lam = (w / a).sum(1) / count
    return shrunk, np.stack([v * (l * a) @ v.T for v, l in zip(V, lam)])


@pytest.mark.parametrize("model", ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV",
                                   "VEV", "VVV"])
def test_mclust_prior_m_step_is_mclusts(model):
    """prior="default" (form "mclust"): every model's MAP M-step is mclust's, each
    written out from mclust's Fortran in the test (the shared scale once for EII, EEI and
    EEE, inverse-gamma variances for the diagonal models, EEI's unshrunk means, VEV's
    counts without the dof), on soft responsibilities of three oriented clusters; one
    active component of a padded set takes mclust's single-component rule (VII, VVI or
    VVV by layout)."""
    from bayesgmm.covariance import default_prior

    X, resp = _data(23)
    prior = default_prior(X, K, model)
    assert prior.form == "mclust"
    means, covs = _map_m_step(model, X, resp, prior)
    want_means, want_covs = _mclust_map(model, X, resp, prior)
    np.testing.assert_allclose(means, want_means, rtol=1e-10)
    np.testing.assert_allclose(covs, want_covs, rtol=1e-9, atol=1e-12)
    # one component active (two padded, inactive): mclust's XII / XXI / XXX
    single = {-1: "VII", -2: "VVI"}.get(ops(model).component_axis, "VVV")
    one = np.zeros((len(X), K))
    one[:, 0] = 1.0
    t = ops(model, np)
    shift = X.mean(0) - 0.3
    sxx = t.unpack_second(one.T @ t.second_features(X - shift))
    Dd = X.shape[1]
    previous = GMMParams(np.array([1.0, 0.0, 0.0]), np.zeros((K, Dd)),
                         t.identity(K, Dd, np.float64), model)  # two padded components
    with np.errstate(all="ignore"):  # the padded components' 0/0 (kept as they were)
        new = mixture_m_step(one.sum(0), one.T @ (X - shift), sxx, shift,
                             covariance_type=model, reg_covar=0.0, previous=previous, xp=np,
                             prior=default_prior(X, 1, model))
    want_m1, want_c1 = _mclust_map(single, X, one[:, :1], default_prior(X, 1, single))
    np.testing.assert_allclose(new.means[:1], want_m1, rtol=1e-10)
    np.testing.assert_allclose(t.to_full_covariance(new.cov_factor, K, Dd)[:1], want_c1,
                               rtol=1e-9)


# mclust 6.0.0 (R 4.2.2): mclustBIC(iris[, 1:4], G = g, modelNames = m,
#   prior = priorControl(), control = emControl(tol = c(1e-14, 1e-14))), printed with
#   sprintf("%.9f"); mclust's sign (2 log L - p log n)
MCLUST_IRIS_PRIOR_BIC = {
    ("EII", 3): -879.065900003, ("VII", 3): -854.138152432, ("EEI", 3): -814.493393961,
    ("VEI", 3): -791.069886952, ("EVI", 3): -804.763087189, ("VVI", 3): -756.047794688,
    ("EEE", 3): -635.734000276, ("EEV", 3): -624.061459004, ("VEV", 3): -587.377104057,
    ("VVV", 3): -605.858520670, ("EII", 1): -1804.184603677, ("EEI", 1): -1522.709022482,
    ("VEV", 1): -831.494922571}


@pytest.mark.parametrize("cell", list(MCLUST_IRIS_PRIOR_BIC), ids=lambda c: f"{c[0]}{c[1]}")
def test_default_prior_fit_on_iris_is_mclusts(cell):
    """prior="default" fits mclust's MAP model: on iris every model mclust fits with
    priorControl() reaches its BIC (external values above) to 1e-7 relative, K = 3 and
    K = 1 (where mclust fits its single-component model whatever the name)."""
    model, k = cell
    gm = bayesgmm.GaussianMixture(k, covariance_type=model, prior="default", tol=1e-12,
                                  max_iter=5000, reg_covar=0.0, random_state=0,
                                  engine="numpy").fit(_iris())
    assert -gm.bic(_iris()) == pytest.approx(MCLUST_IRIS_PRIOR_BIC[cell], rel=1e-7)


def _iris():
    from sklearn.datasets import load_iris

    return load_iris().data


def test_default_prior_is_mclusts():
    """mclust's defaultPrior: shrinkage 0.01, the column means, dof D + 2, scale
    var(X) / K^(2/D) for orientation models, and (1/K)^(2/D) · mean variance for the
    diagonal and spherical ones."""
    from bayesgmm.covariance import default_prior

    X, _ = _data(22)
    for model in MCLUST_MODELS:
        p = default_prior(X, 4, model)
        assert p.shrinkage == 0.01 and p.dof == D + 2
        np.testing.assert_allclose(p.mean, X.mean(0))
        fac = 4.0 ** (-2.0 / D)
        if model[2] == "I" or model in ("EII", "VII"):
            expected = fac * np.var(X, axis=0, ddof=1).sum() / D * np.eye(D)
        else:
            expected = fac * np.cov(X.T)
        np.testing.assert_allclose(p.scale, expected, rtol=1e-12)
