"""GMMParams: pytree structure, shapes, parameter counts, scikit-learn conversions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, WITHOUT_PACKAGE_INIT, in_scope
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm.params import GMMParams


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted_sk(request, datasets):
    X = datasets["iris"]
    return SkGM(3, covariance_type=request.param, random_state=0).fit(X), X


def test_roundtrip_through_every_sklearn_form(fitted_sk):
    sk, _ = fitted_sk
    ct = sk.covariance_type
    with in_scope(np.float64):
        for form in ("covariances", "precisions", "precisions_cholesky"):
            p = GMMParams.from_sklearn(sk.weights_, sk.means_, covariance_type=ct,
                                       **{form: getattr(sk, form + "_")})
            np.testing.assert_allclose(p.covariances, sk.covariances_, rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(p.precisions, sk.precisions_, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(p.precisions_cholesky, sk.precisions_cholesky_,
                                       rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ct", ["full", "tied", "VEV"])
def test_a_lower_precision_factor_is_refused(ct):
    """scikit-learn's precisions_cholesky_ is upper-triangular; its transpose (a lower
    factor, the mistake a user makes) would lose its correlations to the triangular
    inverse, so from_sklearn refuses it and names the fix. The upper factor of the same
    precision gives the covariance back (numpy.linalg.inv as the truth)."""
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, -0.3], [0.2, -0.3, 0.5]])
    U = np.linalg.cholesky(np.linalg.inv(cov)[::-1, ::-1])[::-1, ::-1]  # U Uᵀ = Σ⁻¹, upper
    assert np.allclose(np.tril(U, -1), 0.0) and np.allclose(U @ U.T, np.linalg.inv(cov))
    batch = (lambda a: a) if ct == "tied" else (lambda a: np.stack([a, a]))
    with in_scope(np.float64):
        p = GMMParams.from_sklearn(np.full(2, 0.5), np.zeros((2, 3)), covariance_type=ct,
                                   precisions_cholesky=batch(U))
        np.testing.assert_allclose(p.covariances, batch(cov), rtol=1e-10, atol=1e-12)
        with pytest.raises(ValueError, match="upper-triangular.*transpose"):
            GMMParams.from_sklearn(np.full(2, 0.5), np.zeros((2, 3)), covariance_type=ct,
                                   precisions_cholesky=batch(U.T))


def test_host_triangular_inverse_is_exactly_triangular(monkeypatch):
    """LAPACK's general inverse may leave round-off above the diagonal of a triangular
    factor's inverse (-1.2e-16 on an AVX-512 machine's OpenBLAS): the host namespace's
    tril_inv zeroes it and keeps a singular matrix's NaN. The round-off is put there by
    hand, so the test does not depend on this machine's BLAS."""
    from bayesgmm import _xp

    L = np.linalg.cholesky(np.array([[[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 3.0]],
                                     [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]))
    real = _xp._np_inv
    noisy = lambda a: real(a) + np.triu(np.full(a.shape[-2:], 1e-16, a.dtype), 1)  # noqa: E731
    monkeypatch.setattr(_xp, "_np_inv", noisy)
    for dtype in (np.float64, np.float32):
        Li = _xp.NUMPY.tril_inv(L.astype(dtype))
        assert Li.dtype == dtype
        np.testing.assert_array_equal(np.triu(Li, 1), 0.0)
        np.testing.assert_allclose(Li @ L.astype(dtype), np.broadcast_to(np.eye(3), L.shape),
                                   atol=1e-6 if dtype == np.float32 else 1e-14)
    bad = L.copy()
    bad[1, 1, 1] = 0.0  # singular: LAPACK's inverse fails, NaN for that matrix alone
    assert np.isnan(_xp.NUMPY.tril_inv(bad)[1]).all() and np.isfinite(
        _xp.NUMPY.tril_inv(bad)[0]).all()


def test_n_parameters_matches_sklearn(fitted_sk):
    sk, _ = fitted_sk
    p = GMMParams.from_estimator(sk)
    assert p.n_parameters == sk._n_parameters()


def test_pytree_has_three_leaves_and_static_type(fitted_sk):
    sk, _ = fitted_sk
    p = GMMParams.from_estimator(sk)
    leaves, treedef = jax.tree_util.tree_flatten(p)
    assert len(leaves) == 3
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.covariance_type == sk.covariance_type
    # jit sees only arrays; the type is static.
    out = jax.jit(lambda q: q.weights.sum())(p)
    assert float(out) == pytest.approx(1.0, abs=1e-6)


def test_batch_shape_and_full_covariances(fitted_sk):
    sk, _ = fitted_sk
    p = GMMParams.from_estimator(sk)
    batched = jax.tree_util.tree_map(lambda a: jnp.stack([a, a, a]), p)
    assert p.batch_shape == () and batched.batch_shape == (3,)
    assert batched.covariances.shape == (3, *np.shape(sk.covariances_))
    full = np.asarray(p.full_covariances)
    assert full.shape == (3, 4, 4)
    expected = {"full": lambda c: c, "tied": lambda c: np.broadcast_to(c, (3, 4, 4)),
                "diag": lambda c: np.stack([np.diag(r) for r in c]),
                "spherical": lambda c: c[:, None, None] * np.eye(4)}[sk.covariance_type]
    np.testing.assert_allclose(full, expected(sk.covariances_), rtol=1e-5, atol=1e-7)
    assert batched[1].batch_shape == ()
    with pytest.raises(IndexError):
        p[0]


def test_from_sklearn_needs_exactly_one_form(fitted_sk):
    sk, _ = fitted_sk
    with pytest.raises(ValueError, match="exactly one"):
        GMMParams.from_sklearn(sk.weights_, sk.means_, covariance_type=sk.covariance_type)
    with pytest.raises(ValueError, match="covariance_type"):
        GMMParams.from_sklearn(sk.weights_, sk.means_, covariance_type="nope",
                               covariances=sk.covariances_)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_padding_is_inactive_and_stays_on_the_host(ct, datasets):
    """pad_components appends zero-weight, identity-covariance components; NumPy input
    stays NumPy (padding on the host compiles no XLA program per K), jax input stays
    jax (under jit); take_components undoes it; densities of the real components are
    unchanged."""
    from bayesgmm.density import log_resp
    from bayesgmm.params import pad_components, take_components

    X = datasets["iris"]
    sk = SkGM(3, covariance_type=ct, random_state=0).fit(X)
    with in_scope(np.float64):
        p = GMMParams.from_sklearn(sk.weights_, sk.means_, covariance_type=ct,
                                   covariances=sk.covariances_)
        host = jax.tree_util.tree_map(np.asarray, p)
        with jax.transfer_guard("disallow"):  # no device array made and copied back
            padded = pad_components(host, 7)
        assert all(isinstance(a, np.ndarray) for a in jax.tree_util.tree_leaves(padded))
        assert padded.n_components == 7 and np.all(padded.weights[3:] == 0)
        cov = np.asarray(GMMParams(*map(jnp.asarray, (padded.weights, padded.means,
                                                     padded.cov_factor)), ct).covariances)
        identity = {"full": np.broadcast_to(np.eye(4), (4, 4, 4)), "diag": np.ones((4, 4)),
                    "spherical": np.ones(4)}
        if ct in identity:  # tied has one shared covariance: nothing appended
            np.testing.assert_allclose(cov[3:], identity[ct], rtol=1e-12)
        back = take_components(padded, 3)
        for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(host)):
            np.testing.assert_array_equal(a, b)
        jitted = jax.jit(lambda q: pad_components(q, 7))(p)
        assert isinstance(jitted.weights, jax.Array)
        lr3, ln3 = log_resp(p, jnp.asarray(X))
        lr7, ln7 = log_resp(jitted, jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(lr7)[:, :3], np.asarray(lr3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(ln7), np.asarray(ln3), rtol=1e-12)
    assert np.all(np.exp(np.asarray(lr7)[:, 3:]) == 0)


# ---- the pytree registration and NumPy leaves ------------------------------------------

_PYTREE_CHECKS = """
p = GMMParams(np.full(3, 1 / 3), np.zeros((3, 2)), np.ones((3, 2)), "diag")
leaves, treedef = jax.tree_util.tree_flatten(p)
assert len(leaves) == 3 and jax.tree_util.tree_unflatten(treedef, leaves).covariance_type == "diag"
total = jax.jit(lambda q: q.weights.sum() + q.cov_factor.sum())(p)
assert abs(float(total) - 7.0) < 1e-6
batched = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), p)
sums = jax.vmap(lambda q: q.means.sum() + q.cov_factor.sum())(batched)
assert np.allclose(np.asarray(sums), [6.0, 12.0])
assert jax.jit(lambda q: q, static_argnums=())(p).covariance_type == "diag"
assert type(jax.__spec__.loader).__name__ != "_ThenRegister"  # JAX keeps its own loader
print("ok")
"""



@pytest.mark.parametrize("order", ["jax first", "bayesgmm first", "jax.numpy after",
                                   "find_spec probe first"])
def test_pytree_works_whichever_is_imported_first(order):
    """GMMParams is a registered pytree under jit/vmap/tree_map in a fresh process,
    whether JAX was imported before bayesgmm.params or only after it (the host path
    does not import JAX; the registration waits for JAX's import), also when something
    probed for JAX with importlib.util.find_spec before importing it."""
    import subprocess
    import sys
    import textwrap

    imports = {
        "jax first": "import jax, jax.numpy as jnp\nimport numpy as np\n"
                     "from bayesgmm.params import GMMParams\n",
        "bayesgmm first": WITHOUT_PACKAGE_INIT + "import numpy as np\n"
                          "from bayesgmm.params import GMMParams\n"
                          "assert 'jax' not in sys.modules\n"
                          "import jax, jax.numpy as jnp\n",
        "jax.numpy after": WITHOUT_PACKAGE_INIT + "import numpy as np\n"
                           "from bayesgmm.params import GMMParams\n"
                           "import jax.numpy as jnp\nimport jax\n",
        "find_spec probe first": WITHOUT_PACKAGE_INIT + "import numpy as np\n"
                                 "from bayesgmm.params import GMMParams\n"
                                 "assert importlib.util.find_spec('jax') is not None\n"
                                 "assert 'jax' not in sys.modules\n"
                                 "import jax, jax.numpy as jnp\n",
    }[order]
    code = "import importlib.util, sys\n" + imports + _PYTREE_CHECKS
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_numpy_leaves_convert_in_numpy_as_jax_leaves_do(ct):
    """NumPy leaves convert in NumPy (NumPy results, the leaves' dtype, batch dims
    broadcast), and agree with JAX leaves' conversions (vmapped, in a dtype scope)."""
    X = np.random.default_rng(0).normal(size=(60, 3)) * [1, 2, 0.5]
    sk = SkGM(2, covariance_type=ct, random_state=0).fit(X)
    p = GMMParams.from_estimator(sk)  # NumPy in, NumPy factor out
    assert isinstance(p.cov_factor, np.ndarray) and p.cov_factor.dtype == np.float64
    batched = GMMParams(*(np.stack([a, a, a]).reshape(3, 1, *np.shape(a))
                          for a in (p.weights, p.means, p.cov_factor)), ct)  # B = (3, 1)
    with in_scope(np.float64):
        jaxed = jax.tree_util.tree_map(jnp.asarray, batched)
        for name in ("covariances", "precisions", "precisions_cholesky",
                     "full_covariances"):
            a, b = getattr(batched, name), getattr(jaxed, name)
            assert isinstance(a, np.ndarray) and a.dtype == np.float64
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(a[2, 0], getattr(p, name), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p.covariances, sk.covariances_, rtol=1e-10)
    p32 = GMMParams(*(np.asarray(a, np.float32) for a in (p.weights, p.means, p.cov_factor)),
                    ct)
    assert p32.covariances.dtype == np.float32
    back = GMMParams.from_sklearn(p32.weights, p32.means, covariance_type=ct,
                                  precisions=p32.precisions)
    assert back.cov_factor.dtype == np.float32
    np.testing.assert_allclose(back.cov_factor, p.cov_factor, rtol=1e-4)
    flat = batched.flatten_batch()
    assert flat.batch_shape == (3,) and flat[1].batch_shape == ()
