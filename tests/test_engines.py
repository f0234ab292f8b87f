"""bayesgmm.engines: the interface both engines implement, and the host path's imports.

Truth: the interface table (engines.INTERFACE) against each engine's signatures; the two
engines' scores against each other; and, in fresh processes, ``sys.modules`` (the host
path never imports JAX)."""

import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, WITHOUT_PACKAGE_INIT, in_scope

from bayesgmm import engines
from bayesgmm.engines import INTERFACE, FitInfo
from bayesgmm.engines import jax as compiled
from bayesgmm.engines import numpy as host
from bayesgmm.params import GMMParams


@pytest.mark.parametrize("name", sorted(INTERFACE))
def test_both_engines_implement_the_interface(name):
    """Each interface function exists in both engines with the interface's parameters,
    in order and of the same kind with the same defaults; extra parameters are
    keyword-only options with defaults. sample's random source may be named for the
    engine (rng / key)."""
    shared = INTERFACE[name]
    sigs = {m.__name__: inspect.signature(getattr(m, name)) for m in (host, compiled)}
    for module, sig in sigs.items():
        params = list(sig.parameters.values())
        names = [p.name for p in params]
        ours = [n for n in names if n in shared]
        if name == "sample":
            assert names[:3] in (["rng", "params", "n_samples"], ["key", "params", "n_samples"])
            continue
        assert ours == list(shared), (module, names)
        for p in params:
            if p.name not in shared:
                assert p.kind is p.KEYWORD_ONLY and p.default is not p.empty, (module, p)
    if name != "sample":
        a, b = (sigs[m.__name__].parameters for m in (host, compiled))
        for n in shared:
            assert a[n].kind == b[n].kind and a[n].default == b[n].default, (name, n)


def test_fit_info_is_one_type_for_both_engines():
    assert host.FitInfo is compiled.FitInfo is engines.FitInfo is FitInfo


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_engines_score_alike(ct, blobs):
    """log_resp and score_draws: host (float64 NumPy) = compiled (float64) to 1e-9."""
    X = blobs[0]
    rng = np.random.default_rng(0)
    p, _ = host.fit(X, _start(X, 4, ct), max_iter=5)
    ln_h = host.log_resp(p, X)
    draws = GMMParams(*(np.stack([a, a * (1 + 0.01 * rng.uniform(size=a.shape))])
                        for a in (p.weights, p.means, p.cov_factor)), ct)
    draws = GMMParams(draws.weights / draws.weights.sum(-1, keepdims=True), draws.means,
                      draws.cov_factor, ct)
    with in_scope(np.float64):
        ln_c = compiled.log_resp(p, X)
        sd_c = np.asarray(compiled.score_draws(draws, X))
    for a, b in zip(ln_h, ln_c):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(host.score_draws(draws, X), sd_c, rtol=1e-9)


def _start(X, K, ct):
    D = X.shape[1]
    from bayesgmm.covariance import ops

    return GMMParams(np.full(K, 1.0 / K), X[:: len(X) // K][:K].copy(),
                     np.array(ops(ct).identity(K, D, np.float64)), ct)


# ---- no JAX on the host path ---------------------------------------------------------


_HOST_PATH = """
import sys
import numpy as np
import bayesgmm.covariance as cov
import bayesgmm.params as params
import bayesgmm.engines.numpy as host
import bayesgmm.engines.choose as choose
from bayesgmm.covariance import ops, TABLE, n_moment_features, CovarianceOps
for ct in TABLE:
    t = ops(ct)
    t.full_moments, t.component_axis, t.n_parameters(3, 2), t.correlated, t.bayes_type
    t.factor_shape(3, 2)
assert choose.choose("fit", "auto", 300, 4, 2, "full").engine == "numpy"
rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(c, 0.5, (100, 2)) for c in (0.0, 4.0, 8.0)])
for ct in TABLE:
    t = ops(ct)
    p = params.GMMParams(np.full(3, 1 / 3), X[[0, 150, 299]],
                         np.array(t.identity(3, 2, np.float64)), ct)
    fitted, info = host.fit(X, p, max_iter=20, hard_start=True)
    R = params.GMMParams(*(np.stack([a, a]) for a in (p.weights, p.means, p.cov_factor)), ct)
    host.fit_restarts(X, R, max_iter=10)
    host.log_resp(fitted, X)
    host.sample(rng, fitted, 50)
    host.sklearn_covariances(fitted)
    fitted.covariances, fitted.precisions, fitted.precisions_cholesky
    params.GMMParams.from_sklearn(fitted.weights, fitted.means, covariance_type=ct,
                                  precisions=fitted.precisions)
    params.pad_components(fitted, 8)
    assert info.converged or info.n_iter == 20
assert "jax" not in sys.modules, sorted(m for m in sys.modules if m.startswith("jax"))
print("ok")
"""


def _run(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_host_path_imports_no_jax():
    """covariance, params, engines.numpy and engines.choose, imported and run (fit,
    restarts, scoring, sampling, conversions), import no JAX."""
    _run(WITHOUT_PACKAGE_INIT + _HOST_PATH)


def test_host_path_imports_no_jax_through_the_package():
    _run(_HOST_PATH)


@pytest.mark.parametrize("engine", [host, compiled], ids=["numpy", "jax"])
@pytest.mark.parametrize("restarts", [False, True])
def test_initial_lower_bound_is_where_the_first_change_is_measured_from(blobs, engine,
                                                                        restarts):
    """scikit-learn's warm start: from a converged fit's parameters and lower bound, one
    iteration changes the bound by less than tol, so EM stops there, converged; from
    -inf the first iteration cannot converge and a second one runs. Both engines, fit
    and fit_restarts alike."""
    X = blobs[0]
    start = GMMParams(np.full(4, 0.25), blobs[2] + 0.3, np.ones((4, 2)), "diag")
    with in_scope(np.float64):
        done, info = host.fit(X, start, tol=1e-10, max_iter=500)
        assert bool(info.converged)

        def run(bound):
            if restarts:
                batch = GMMParams(*(np.asarray(a)[None] for a in (done.weights, done.means,
                                                                   done.cov_factor)), "diag")
                return engine.fit_restarts(X, batch, tol=1e-3, max_iter=10,
                                           initial_lower_bound=bound)[1]
            return engine.fit(X, done, tol=1e-3, max_iter=10, initial_lower_bound=bound)[1]

        warm, cold = run(float(info.lower_bound)), run(-np.inf)
    assert int(warm.n_iter) == 1 and bool(warm.converged)
    assert float(warm.lower_bound) == pytest.approx(float(info.lower_bound), abs=1e-9)
    assert int(cold.n_iter) == 2 and bool(cold.converged)
