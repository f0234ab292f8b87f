"""The hand-written potential NUTS runs on (bayesgmm.bayes.potential) against the
independent truth: NumPyro's own potential_energy / constrain_fn of the model, and
jax.grad through NumPyro, at random unconstrained points."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import constrain_fn, potential_energy

from bayesgmm.bayes import potential as P
from bayesgmm.bayes.inference.target import bound_model
from bayesgmm.bayes.model import Priors, from_sites

def _standard(fn):
    """NumPyro's code mixes Python floats with int64 and fails under the suite's strict
    promotion (see conftest); ours runs strict."""
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)
    return wrapped


# (covariance type, D, scale prior)
CASES = [("full", 2, "lognormal"), ("full", 3, "lognormal"), ("full", 5, "lognormal"),
         ("diag", 1, "lognormal"), ("diag", 3, "lognormal"), ("full", 3, "inverse_gamma"),
         ("diag", 2, "inverse_gamma")]


def _point(rng, K, D, ct, dtype, spread=1.0):
    z = {"weights": rng.normal(size=K - 1) * spread,
         "means": rng.normal(size=(K, D)) * 3 + 10,
         "scales": rng.normal(size=(K, D)) * spread}
    if ct == "full":
        z["corr_chol"] = rng.normal(size=(K, D * (D - 1) // 2)) * spread
    return {k: jnp.asarray(v, dtype) for k, v in z.items()}


def _problem(ct, D, dtype, seed=0, scale_prior="lognormal"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, D)) * 3 + 10  # offset data: float32 must still hold
    priors = Priors(weight_concentration=0.8, lkj_concentration=1.7, scale_log_sd=0.7,
                    scale_prior=scale_prior, scale_shape=2.5).resolve(X)
    return rng, jnp.asarray(X, dtype), priors, bound_model(3, ct, priors)


@pytest.mark.parametrize("ct,D,scale_prior", CASES)
def test_potential_and_gradient_equal_numpyros_float64(ct, D, scale_prior):
    with jax.enable_x64(True):
        rng, X, priors, model = _problem(ct, D, np.float64, scale_prior=scale_prior)
        ours = jax.jit(jax.value_and_grad(lambda z: P.potential(z, X, ct, priors)))
        ref = _standard(jax.jit(jax.value_and_grad(
            lambda z: potential_energy(model, (X,), {}, z))))
        constrain = jax.jit(functools.partial(P.constrain, covariance_type=ct))
        expect_fn = _standard(jax.jit(lambda z: constrain_fn(model, (X,), {}, z)))
        for spread in (0.3, 1.0, 3.0):  # near the centre and far into the tails
            z = _point(rng, 3, D, ct, np.float64, spread)
            (a, ga), (b, gb) = ours(z), ref(z)
            np.testing.assert_allclose(a, b, rtol=1e-10)
            # In the far tails (spread 3) NumPyro's autodiff through sqrt(1 - tanh²)
            # cancels digits: its gradient moved by 4e-9 from JAX 0.10 to 0.12 while ours
            # stayed the same; near the centre both agree to 1e-9 on every JAX.
            tol = 1e-8 if spread > 1 else 1e-9
            for name in z:
                np.testing.assert_allclose(ga[name], gb[name], rtol=tol, atol=tol)
            if spread > 1:  # NumPyro's sqrt(1 - tanh²) cancels in the tails; logs do not
                continue
            sites, expect = constrain(z), expect_fn(z)
            for name in sites:
                np.testing.assert_allclose(sites[name], expect[name], rtol=1e-9, atol=1e-12)


# NumPyro's own CorrCholeskyTransform mixes dtypes under x64 (a float64 scatter of
# float32 values), so the float32 comparison runs in a process without x64.
FLOAT32 = r"""
import sys, json, numpy as np, jax, jax.numpy as jnp
sys.path.insert(0, "tests")
from test_potential import _problem, _point, CASES
from bayesgmm.bayes import potential as P
from numpyro.infer.util import potential_energy
worst = 0.0
# full and diag, both scale priors, D = 1 (the float64 test covers every case)
for ct, D, scale_prior in [CASES[1], CASES[3], CASES[6]]:
    rng, X, priors, model = _problem(ct, D, np.float32, scale_prior=scale_prior)
    z = _point(rng, 3, D, ct, np.float32)
    a, ga = jax.jit(jax.value_and_grad(lambda z: P.potential(z, X, ct, priors)))(z)
    b, gb = jax.jit(jax.value_and_grad(lambda z: potential_energy(model, (X,), {}, z)))(z)
    assert a.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in ga.values())
    worst = max(worst, abs(float(a - b)) / abs(float(b)))
    for k in z:
        scale = 1 + np.max(np.abs(np.asarray(gb[k], np.float64)))
        worst = max(worst, float(np.max(np.abs(np.asarray(ga[k], np.float64) - gb[k]))) / scale)
# padded to K_max = 4, K = 1..3 active (one compiled function): the unpadded model's
# value (less the masked density) and gradient, in float32
for ct, D, scale_prior in CASES[1:2]:
    rng, X, priors, model = _problem(ct, D, np.float32, scale_prior=scale_prior)
    zmax = _point(rng, 4, D, ct, np.float32)
    padded = jax.jit(jax.value_and_grad(lambda z, n: P.potential(z, X, ct, priors, n_active=n)))
    unpadded = jax.value_and_grad(lambda z: P.potential(z, X, ct, priors))
    for K in (1, 3):
        z = P.active_sites(zmax, K)
        a, ga = jax.jit(unpadded)(z)
        c, gc = padded(zmax, K)
        assert c.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in gc.values())
        c = float(c) + P.masked_log_density({k: np.asarray(v, np.float64) for k, v in zmax.items()}, K)
        worst = max(worst, abs(c - float(a)) / abs(float(a)))
        gc = P.active_sites(gc, K)
        for k in z:
            scale = 1 + np.max(np.abs(np.asarray(ga[k], np.float64)), initial=0)
            worst = max(worst, float(np.max(np.abs(np.asarray(gc[k], np.float64) - ga[k]), initial=0)) / scale)
print(worst)
"""


def test_potential_and_gradient_equal_numpyros_float32():
    out = subprocess.run([sys.executable, "-c", FLOAT32], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 1e-5


def test_host_constrain_and_unflatten_match_the_compiled_ones():
    """The sampler returns flat unconstrained draws and constrains them in NumPy:
    unflatten follows ravel_pytree's order, and constrain(xp=numpy) equals the JAX one,
    on (chain, draw) batches."""
    rng = np.random.default_rng(3)
    K, D, ct = 3, 3, "full"
    points = [_point(rng, K, D, ct, np.float32) for _ in range(6)]
    flat = np.stack([np.asarray(ravel_pytree(z)[0]) for z in points]).reshape(2, 3, -1)
    sites = P.unflatten(flat, P.unconstrained_shapes(K, D, ct))
    for name in points[0]:
        np.testing.assert_array_equal(sites[name][1, 2], points[5][name])
    host = P.constrain(sites, ct, xp=np)
    device = jax.vmap(jax.vmap(functools.partial(P.constrain, covariance_type=ct)))(
        jax.tree_util.tree_map(jnp.asarray, sites))
    for name in host:
        np.testing.assert_allclose(host[name], device[name], rtol=2e-6, atol=1e-6)
    L = host["corr_chol"]  # unit rows, positive diagonal: a correlation Cholesky factor
    np.testing.assert_allclose(np.sum(L * L, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(host["weights"].sum(-1), 1.0, rtol=1e-6)


def test_potential_is_finite_where_numpyro_clips():
    """Far in the tails (|x| = 40) NumPyro clips tanh and the stick fractions; the
    log-space forms stay finite, with finite gradients."""
    with jax.enable_x64(True):
        rng, X, priors, _ = _problem("full", 3, np.float64)
        z = _point(rng, 3, 3, "full", np.float64)
        z["corr_chol"] = jnp.full_like(z["corr_chol"], 40.0)
        z["weights"] = jnp.asarray([-40.0, 40.0])
        value, grad = jax.jit(jax.value_and_grad(lambda z: P.potential(z, X, "full", priors)))(z)
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grad.values())


def test_only_the_dirichlet_model_is_handwritten():
    assert P.supports("full", Priors()) and P.supports("diag", Priors())
    assert not P.supports("full", Priors(weight_prior="stick_breaking"))


# ---- padding: one program for every K --------------------------------------------------

# (covariance type, D, scale prior, the active K checked): K = 1 (no stick), a middle
# K and K_max = 4 (nothing masked)
PADDED_CASES = [("full", 3, "lognormal", (1, 2, 4)), ("diag", 2, "inverse_gamma", (1, 3))]


@pytest.mark.parametrize("ct,D,scale_prior,ks", PADDED_CASES)
def test_padded_potential_equals_the_unpadded_and_numpyros_at_every_k(ct, D, scale_prior, ks):
    """At K_max = 4 components of which the first K are active (a traced argument of
    one compiled function): the value is the K-component model's (ours and NumPyro's,
    the oracle) minus the masked coordinates' standard normal log density, the gradient
    at the active coordinates is the K model's, and at the masked ones the standard
    normal's (z). Compiled once for all K (counted at trace time)."""
    traces = []

    def padded(z, n):
        traces.append(1)
        return P.potential(z, X, ct, priors, n_active=n)

    with jax.enable_x64(True):
        rng, X, priors, _ = _problem(ct, D, np.float64, scale_prior=scale_prior)
        zmax = _point(rng, 4, D, ct, np.float64)
        padded_vg = jax.jit(jax.value_and_grad(padded))
        host = {k: np.asarray(v) for k, v in zmax.items()}
        for K in ks:
            z = P.active_sites(zmax, K)
            model = bound_model(K, ct, priors)
            # ours unpadded (value, gradient) and NumPyro's value, in one compiled call
            (a, ga), b = _standard(jax.jit(lambda z: (
                jax.value_and_grad(lambda z: P.potential(z, X, ct, priors))(z),
                potential_energy(model, (X,), {}, z))))(z)
            c, gc = padded_vg(zmax, jnp.asarray(K))
            masked = P.masked_log_density(host, K)
            np.testing.assert_allclose(float(c) + masked, float(b), rtol=1e-10)
            np.testing.assert_allclose(float(c) + masked, float(a), rtol=1e-12)
            active = P.active_sites(gc, K)
            for name in z:
                np.testing.assert_allclose(active[name], ga[name], rtol=1e-9, atol=1e-9)
            # masked: d/dz of 0.5 z² is z; the breaks j >= K - 1, the components k >= K
            np.testing.assert_allclose(gc["weights"][K - 1:], zmax["weights"][K - 1:],
                                       rtol=1e-12)
            for name in ("means", "scales", "corr_chol"):
                if name in zmax:
                    np.testing.assert_allclose(gc[name][K:], zmax[name][K:], rtol=1e-12)
    assert len(traces) == 1


def test_unconstrain_inverts_constrain_and_pads_with_zeros():
    """NumPy unconstrain (the padded start) against NumPyro's unconstrain_fn of the
    model (the oracle), padded to K_max = 5 with zeros; constrain undoes it."""
    from numpyro.infer.util import unconstrain_fn

    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        for ct, D in (("full", 3), ("diag", 2)):
            _, X, priors, model = _problem(ct, D, np.float64)
            z = _point(rng, 3, D, ct, np.float64)
            sites = {k: np.asarray(v) for k, v in P.constrain(z, ct).items()}
            expect = _standard(unconstrain_fn)(model, (X,), {}, sites)
            got = P.unconstrain(sites, ct, n_padded=5)
            for name in z:
                np.testing.assert_allclose(got[name][:z[name].shape[0]], expect[name],
                                           rtol=1e-7, atol=1e-9)
                np.testing.assert_array_equal(got[name][z[name].shape[0]:], 0.0)
            back = P.constrain(P.active_sites(got, 3), ct, xp=np)
            for name in sites:
                np.testing.assert_allclose(back[name], sites[name], rtol=1e-9, atol=1e-12)


# ---- the moment kernel (float64): phi(x - c) . theta_k, one matmul each way -----------

def _moment_data(kind, ct, D, seed=0):
    """(X (60, D), z with K = 4): the standard offset data and a random point; the same
    moved by 1,000; or 20 rows replaced by a compact cluster (scale 0.01) 100 away,
    with component 0 on it."""
    rng, X, _, _ = _problem(ct, D, np.float64, seed)
    z = {k: np.array(v) for k, v in _point(rng, 4, D, ct, np.float64, 0.5).items()}
    X = np.array(X)
    if kind == "offset":
        X, z["means"] = X + 1000.0, z["means"] + 1000.0
    elif kind == "far_compact":
        X[:20] = 100.0 + 0.01 * rng.normal(size=(20, D))
        z["means"][0], z["scales"][0] = 100.0, np.log(0.01)
    return X, z


@pytest.mark.parametrize("ct,D", [("full", 3), ("diag", 2)])
def test_moment_kernel_equals_numpyros_and_the_centred_kernel_float64(ct, D):
    """With ``moments``, the potential (unpadded, and padded to K_max = 4 with K = 2
    active) equals NumPyro's model density (the oracle), value and gradient; the moment
    kernel alone equals the centred kernel. The guard picks the moment kernel on the
    standard and the offset data (features centred on the data mean) and the centred
    one near the far compact component, where the moment kernel's error bound is above
    _MOMENT_MAX_ERR. X is an argument: one program of each kind serves the three data."""
    with jax.enable_x64(True):
        priors = Priors(weight_concentration=0.8, lkj_concentration=1.7,
                        scale_log_sd=0.7).resolve(_moment_data("standard", ct, D)[0])
        models = {K: bound_model(K, ct, priors) for K in (2, 4)}

        def params_of(z):
            sites = P.constrain(z, ct)
            return (jnp.log(sites["weights"]), sites["means"], from_sites(sites, ct).cov_factor)

        @jax.jit
        def kernels(X, z):  # the guard, and each kernel's value and gradient
            mo, blocks, p = P.moments(X, ct), P.row_blocks(X), params_of(z)
            return (P._moment_exact(mo, *p, ct),
                    jax.value_and_grad(lambda p: P._moment_log_likelihood(ct, mo, *p))(p),
                    jax.value_and_grad(lambda p: P._log_likelihood(ct, *p, blocks))(p))

        @_standard
        @functools.partial(jax.jit, static_argnums=2)
        def potentials(X, z, K):  # ours with moments (padded when K < 4), NumPyro's
            vg = jax.value_and_grad
            ours = vg(lambda z: P.potential(z, X, ct, priors, n_active=None if K == 4 else K,
                                            moments=P.moments(X, ct)))(z)
            zk = P.active_sites(z, K)
            return ours, vg(lambda z: potential_energy(models[K], (X,), {}, z))(zk)

        for kind, moment_used in (("standard", True), ("offset", True),
                                  ("far_compact", False)):
            X, zmax = _moment_data(kind, ct, D)
            # float32: no features, the centred kernel only (nuts_scale.py --per-eval
            # shows the moment form's float32 error)
            assert P.moments(jnp.asarray(X, np.float32), ct) is None
            zmax = {k: jnp.asarray(v) for k, v in zmax.items()}
            guard, (a, ga), (b, gb) = kernels(jnp.asarray(X), zmax)
            assert bool(guard) is moment_used, kind
            if moment_used:
                np.testing.assert_allclose(a, b, rtol=1e-12)
                for g1, g2 in zip(ga, gb):
                    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9)
            for K in (2, 4):
                (c, gc), (e, ge) = potentials(jnp.asarray(X), zmax, K)
                masked = P.masked_log_density({k: np.asarray(v) for k, v in zmax.items()}, K)
                np.testing.assert_allclose(float(c) + masked, float(e), rtol=1e-10)
                gc = P.active_sites(gc, K)
                # near the compact component (precision 10⁴, 100 from the rest) NumPyro's
                # triangular solves and our centred kernel part at 2e-8 in the gradient
                tol = 1e-8 if moment_used else 1e-7
                for name in ge:
                    np.testing.assert_allclose(gc[name], ge[name], rtol=tol, atol=tol,
                                               err_msg=f"{kind} K={K} {name}")


@pytest.mark.parametrize("ct,D", [("full", 3), ("diag", 2)])
def test_guard_fallback_in_blocks_equals_the_centred_kernel(ct, D):
    """Where the guard refuses the moment kernel (the far compact component), the
    fallback runs the centred kernel in blocks of rows (here at most 16: 60 rows = 4
    blocks of 15); its value and gradient, and the value alone (the custom VJP's
    primal), equal the centred kernel over all rows at once, unpadded and padded. On the standard data
    the guarded potential equals the moment kernel's."""
    with jax.enable_x64(True):
        priors = Priors().resolve(_moment_data("standard", ct, D)[0])
        vg = jax.value_and_grad

        @functools.partial(jax.jit, static_argnums=2)
        def both(X, z, K):  # X an argument: one program per K serves both data
            mo, blocks = P.moments(X, ct), P.row_blocks(X, 16)
            guarded = lambda z: P.potential(z, X, ct, priors, n_active=K, moments=mo,
                                            blocks=blocks)
            whole = P.row_blocks(X, X.shape[0])
            return (vg(guarded)(z),
                    vg(lambda z: P.potential(z, X, ct, priors, n_active=K, blocks=whole))(z),
                    guarded(z))

        for kind in ("far_compact", "standard"):
            X, z = _moment_data(kind, ct, D)
            z = {k: jnp.asarray(v) for k, v in z.items()}
            for K in (None, 2):
                (a, ga), (b, gb), value = both(jnp.asarray(X), z, K)
                tol = 1e-9 if kind == "far_compact" else 1e-7
                np.testing.assert_allclose(a, b, rtol=1e-12)
                np.testing.assert_allclose(value, b, rtol=1e-12)
                for name in gb:
                    np.testing.assert_allclose(ga[name], gb[name], rtol=tol, atol=tol,
                                               err_msg=f"{kind} K={K} {name}")


# ---- the centred kernel: one pass over the data in blocks of rows ----------------------

def _plain_log_likelihood(ct, log_weights, means, factor, X):
    """Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k) from jax.scipy's multivariate normal density,
    Σ_k = L_k L_kᵀ with L_k the lower triangle of the factor (diag: σ_k²): the textbook
    formula, no blocks; its gradient is autodiff's."""
    from jax.scipy.special import logsumexp
    from jax.scipy.stats import multivariate_normal
    if ct == "full":
        L = jnp.tril(factor)
        cov = L @ jnp.swapaxes(L, -1, -2)
    else:
        cov = jax.vmap(jnp.diag)(factor * factor)
    lp = jax.vmap(lambda m, c: multivariate_normal.logpdf(X, m, c))(means, cov)  # (K, N)
    return jnp.sum(logsumexp(lp + log_weights[:, None], axis=0))


def _params(z, ct):
    sites = P.constrain(z, ct)
    return (jnp.log(sites["weights"]), sites["means"], from_sites(sites, ct).cov_factor)


@pytest.mark.parametrize("ct,D,unrolled", [("full", 3, True), ("diag", 2, True),
                                            ("full", 3, False)])
def test_centred_kernel_in_blocks_equals_the_plain_formula(ct, D, unrolled, monkeypatch):
    """The centred kernel's value and closed-form gradient (``_centred_value_and_grad``,
    one pass in blocks of rows) equal the textbook mixture density's and autodiff's
    gradient of it, in float64 and (against the float64 truth) float32, whatever the
    blocking (float64): 60 rows in blocks of at most 8 (8 blocks of 8, the last ending
    in 4 padding rows that the mask weighs 0), of at most 16 (4 of 15, no padding), one
    block of 60 (rows = 60 or 64); on the standard offset data, the same moved by 1,000,
    and with a compact component (scale 0.01) 100 from the rest. A padded component (log
    weight -inf) adds nothing and gets a zero gradient. The kernel with the mask
    ignored, the first block or one row dropped fails here. Both forms of a block's
    reductions: written out as sums of slices (K·D up to ``_UNROLL_MAX``) and as axis
    reductions (above it; here forced, blocks of 8 with padding)."""
    rb = P.row_blocks(np.zeros((60, D)), 8)
    assert rb.blocks.shape == (8, D, 8) and float(np.sum(rb.mask)) == 60
    assert P.row_blocks(np.zeros((60, D)), 16).mask is None
    if not unrolled:
        monkeypatch.setattr(P, "_UNROLL_MAX", 0)
    vg = jax.value_and_grad

    # one jitted function per blocking, made once: a fresh lambda per call recompiled
    kernels = {rows: jax.jit(lambda p, X, rows=rows: P._centred_value_and_grad(
        ct, *p, P.row_blocks(X, rows))) for rows in (8, 16, 60, 64)}
    plain = jax.jit(vg(lambda p, X: _plain_log_likelihood(ct, *p, X)))
    # the same without component 1: log weight -inf in the kernel's input
    drop = lambda p: tuple(a[np.arange(4) != 1] for a in p)
    plain_without = jax.jit(lambda p, X: _plain_log_likelihood(ct, *drop(p), X))

    def truth(p, X):  # float64, at the inputs as given (rounded to float32 or not)
        with jax.enable_x64(True):
            p, X = tuple(jnp.asarray(a, np.float64) for a in p), jnp.asarray(X, np.float64)
            value, grads = jax.device_get(plain(p, X))
            return float(value), grads, float(plain_without(p, X))

    for kind in ("standard", "offset", "far_compact"):
        with jax.enable_x64(True):
            X, z = _moment_data(kind, ct, D)
            p64 = jax.device_get(_params({k: jnp.asarray(v) for k, v in z.items()}, ct))
        for dtype, rtol in ((np.float64, 1e-11), (np.float32, 2e-5)):
            p, Xd = tuple(np.asarray(a, dtype) for a in p64), np.asarray(X, dtype)
            value, grads, without = truth(p, Xd)
            with jax.enable_x64(dtype == np.float64):
                p, Xd = tuple(jnp.asarray(a) for a in p), jnp.asarray(Xd)
                # every blocking in float64; float32 and the axis form in blocks of 8
                full = unrolled and dtype == np.float64
                for rows in ((8, 16, 60, 64) if full else (8,)):
                    a, ga = kernels[rows](p, Xd)
                    assert a.dtype == dtype and all(g.dtype == dtype for g in ga)
                    msg = f"{kind} {np.dtype(dtype).name} rows={rows}"
                    np.testing.assert_allclose(float(a), value, rtol=rtol, err_msg=msg)
                    for g, e in zip(ga, grads):
                        np.testing.assert_allclose(np.asarray(g, np.float64), e, rtol=0,
                                                   atol=rtol * (1 + np.max(np.abs(e))),
                                                   err_msg=msg)
                log_w = p[0].at[1].set(-jnp.inf)
                c, gc = kernels[8]((log_w,) + p[1:], Xd)
                np.testing.assert_allclose(float(c), without, rtol=rtol, err_msg=kind)
                for g in gc:
                    assert np.all(np.isfinite(np.asarray(g))), kind
                    np.testing.assert_array_equal(np.asarray(g)[1], 0.0)
