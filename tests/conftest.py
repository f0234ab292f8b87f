"""Shared fixtures: a PRNG key, the seed blobs with their generating parameters, dtypes.

OPENBLAS_NUM_THREADS=1 is set before NumPy/JAX load: on a busy 2-core machine
OpenBLAS's threading slows JAX's CPU triangular solves ~100x (measured in issue 2).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# equinox's habit: any implicit dtype promotion (a silent float32 -> float64 upcast, say)
# raises instead of passing unnoticed.
jax.config.update("jax_numpy_dtype_promotion", "strict")

from bayesgmm.datasets import make_blobs  # noqa: E402
from bayesgmm.validation import compute_scope  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after every test module. On a CPU each compiled
    program holds about 6 memory maps (XLA's JIT-compiled code); one process running
    test_em, test_estimators, test_initialize and test_selection reached 57,524 maps,
    near Linux's default limit of 65,530 (vm.max_map_count), and a pytest-xdist worker
    that ran more then crashed inside XLA's compiler (a segfault when compiling its next
    program, in test_properties). Tests within a module still share their programs."""
    yield
    import gc

    jax.clear_caches()
    gc.collect()


@pytest.fixture
def standard_promotion():
    """NumPyro's own code (e.g. ``LKJCholesky.__init__``) mixes Python floats with int64
    and fails under strict promotion; modules that drive NumPyro use this fixture."""
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(scope="session")
def blobs():
    """The seed tutorial's data: (X, y, centers)."""
    return make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0,
                      return_centers=True)


@pytest.fixture(scope="session")
def datasets():
    """Three data sets for parity checks: seed blobs, anisotropic blobs, iris."""
    from sklearn.datasets import load_iris

    X1, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    X2, _ = make_blobs(n_samples=400, centers=3, random_state=170)
    X2 = X2 @ np.array([[0.6, -0.6], [-0.4, 0.8]])
    X3 = load_iris().data
    return {"blobs": X1, "aniso": X2, "iris": X3}


def in_scope(dtype):
    """Helper for tests that call the core directly: JAX in ``dtype``."""
    return compute_scope(dtype)


# Source for a fresh interpreter: makes ``bayesgmm`` importable without running
# bayesgmm/__init__.py, so a test can hold single modules (the host path's) to what they
# import on their own, whatever the package's __init__ imports.
WITHOUT_PACKAGE_INIT = """
import importlib.util, sys, types
spec = importlib.util.find_spec("bayesgmm")
pkg = types.ModuleType("bayesgmm")
pkg.__path__ = list(spec.submodule_search_locations)
pkg.__spec__ = spec
sys.modules["bayesgmm"] = pkg
"""
