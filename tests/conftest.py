"""Shared fixtures: a PRNG key, the seed blobs with their generating parameters, dtypes.

OPENBLAS_NUM_THREADS=1 is set before NumPy/JAX load: on a busy 2-core machine
OpenBLAS's threading slows JAX's CPU triangular solves ~100x (measured in issue 2).
"""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# JAX's persistent compilation cache, in the test environment's own prefix (the virtual
# environment `make test` made; one per JAX version; none outside a virtual
# environment): compiling is ~70% of the suite's time, and tests (and the notebooks,
# README blocks and scripts they run in fresh processes, which inherit these variables)
# compile the same programs again after jax.clear_caches() or through a fresh jitted
# function. Measured on the whole suite (2 cores, 2026-12-02): 1,678 -> 1,520 s from an
# empty cache; test_model.py again with the cache filled 84 -> 37 s. A cached program
# is XLA's serialised executable of the same program; every assertion still compares
# against its independent reference. A run adds ~60 MB; the session's
# first process (pytest itself, before its workers start) empties a cache over 1 GB
# (JAX's own bound, jax_compilation_cache_max_size, needs the filelock package). Not
# below jaxlib 0.10: jaxlib 0.9 writes a warning to stderr ("Assume version
# compatibility. PjRt-IFRT does not track XLA executable versions.") at every cached
# program it loads, and test_progress holds the compiled programs to silence.
from bayesgmm.compilation import cache_supported  # noqa: E402 (no JAX import; BLAS env set above)

_CACHE = os.path.join(sys.prefix, "jax-cache")
if ("JAX_COMPILATION_CACHE_DIR" not in os.environ and sys.prefix != sys.base_prefix
        and os.access(sys.prefix, os.W_OK) and cache_supported()):
    if "PYTEST_XDIST_WORKER" not in os.environ and os.path.isdir(_CACHE):
        _entries = [e for e in os.scandir(_CACHE) if e.is_file()]
        if sum(e.stat().st_size for e in _entries) > 2**30:
            for _entry in _entries:
                os.remove(_entry.path)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# equinox's habit: any implicit dtype promotion (a silent float32 -> float64 upcast, say)
# raises instead of passing unnoticed.
jax.config.update("jax_numpy_dtype_promotion", "strict")

from bayesgmm.datasets import make_blobs  # noqa: E402
from bayesgmm.validation import compute_scope  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# The tests `make test-lowest` (CI's run at the dependency floors) leaves out: the
# exhaustive parametrisations of engine numerics (every type x data set x kernel x
# chunking), the statistical studies (SBC, coverage) and the EM-only notebooks. Each
# costs 10-60 s of the floors run's ~15 minutes; they run in every `make test` and in
# CI's run at the newest versions. What they exercise of our dependencies (JAX's
# compiled loops, NumPyro's NUTS/SVI, ArviZ's tables and plots, saving) is covered at
# the floors by the faster tests beside them (one type, one data set, fewer draws).
# Measured with per-test durations of the whole suite, 2026-12-02.
SLOW = {
    "test_engines_jax.py": ("test_parity_with_sklearn_float64", "test_padding_is_exact",
                            "test_feature_cache_changes_nothing",
                            "test_float32_offset_data_matches_float64",
                            "test_bound_shift_falls_back_when_a_row_underflows",
                            "test_hard_start_ignores_padding_and_vmaps_over_restarts",
                            "test_moments_kernel_equals_centred_kernel",
                            "test_collapsed_component_is_reported",
                            "test_chunked_equals_unchunked",
                            "test_a_shared_feature_table_gives_the_same_fit",
                            "test_lower_bound_never_decreases_and_weights_on_simplex"),
    "test_float32.py": ("test_float32_default_matches_float64",
                        "test_float32_restarts_and_stream_match_float64"),
    "test_prior.py": ("test_host_and_compiled_engines_agree",),
    "test_initialize.py": ("test_every_method_gives_valid_params",
                           "test_kmeans_on_offset_float32_data_matches_float64",
                           "test_seeding_on_a_subsample_then_every_row_to_its_nearest_centre"),
    "test_selection.py": ("test_sweep_equals_unpadded_fits", "test_criteria_match_sklearn",
                          "test_membership_entropy_of_overlapping_clusters"),
    "test_engines_numpy.py": ("test_estimator_engines_agree",),
    "test_models.py": ("test_numpy_and_jax_agree_in_float64_and_float32",
                       "test_both_engines_fit_the_models"),
    "test_estimator_bayes.py": ("test_svi_draws",),
    "test_health.py": ("test_compare_n_components_never_ranks_the_collapsed_iris_k4",
                       "test_sparse_prior_empties_the_extra_components",
                       "test_nuts_progress_bar_stays_on_the_fast_sampler"),
    "test_model.py": ("test_stick_breaking_prior_fits_with_every_method",
                      "test_default_scale_prior_keeps_a_component_off_duplicated_rows"),
    "test_inference.py": ("test_chain_groups_on_threads_give_the_same_draws",
                          "test_map_is_a_maximum_of_numpyros_log_density",
                          "test_chains_in_sequence_equal_vmapped_chains"),
    "test_potential.py": ("test_potential_and_gradient_equal_numpyros_float32",
                          "test_moment_kernel_equals_numpyros_and_the_centred_kernel_float64"
                          "[full-3]"),
    "test_bayes_robust.py": ("test_nuts_with_noise_and_holes_gives_membership_intervals",),
    "test_scale.py": ("test_streamed_equals_in_memory",),
    "test_cli.py": ("test_run_command_from_file",),
    "test_estimators.py": ("test_max_iter_zero_returns_where_em_starts",
                           "test_matches_sklearn_fit_from_same_init",
                           "test_warm_fits_follow_sklearn_step_by_step"),
    "test_covariance.py": ("test_numpy_keeps_float32_and_jax_float32_is_close",
                           "test_every_function_is_the_same_over_numpy_and_jax"),
    "test_density.py": ("test_batched_equals_loop_and_keeps_dtype",),
    "test_progress.py": ("test_every_restart_reported_as_its_history",),
    "test_calibration.py": ("test_sbc_nuts_passes_and_the_mutant_fails",
                            "test_sbc_sparse_overfitted_mixture_passes",
                            "test_sbc_svi_passes",
                            "test_coverage_and_membership_calibration_reduced",
                            "test_em_and_map_errors_shrink_like_one_over_root_n"),
    "test_notebooks.py": ("test_notebook_runs[01_seed_workflow.ipynb]",
                          "test_notebook_runs[03_choosing_k.ipynb]",
                          "test_notebook_runs[04_scaling.ipynb]"),
}

# Also left out at the floors for CI's time (CI's run took 2,807 s on 2026-12-02, its
# machine and this one 2.2-2.4x slower than the day before): 8-50 s each on that day,
# what they use of our dependencies run at the floors by a faster test of the same module
# (one NUTS round trip, one README block, one notebook-free path per feature).
_FLOORS_CUT = {
    "test_properties.py": ("test_responsibilities_normalised_and_consistent",),
    "test_readme.py": ("test_block_runs_alone[5]", "test_block_runs_alone[6]"),
    "test_notebooks.py": ("test_notebook_runs[02_bayesian_membership.ipynb]",
                          "test_notebook_runs[05_messy_data.ipynb]"),
    "test_inference.py": ("test_padded_nuts_samples_the_same_posterior",
                          "test_padded_map_is_the_unpadded_map"),
    "test_float32.py": ("test_float32_sharded_matches_float64",),
    "test_potential.py": (
        "test_padded_potential_equals_the_unpadded_and_numpyros_at_every_k[full-3-lognormal-ks0]",
        "test_guard_fallback_in_blocks_equals_the_centred_kernel[full-3]",
        "test_potential_and_gradient_equal_numpyros_float64[full-2-lognormal]",
        "test_potential_and_gradient_equal_numpyros_float64[full-5-lognormal]",
        "test_centred_kernel_in_blocks_equals_the_plain_formula[full-3-False]"),
    "test_model.py": ("test_prior_predictive_shapes", "test_stick_breaking_weights_on_simplex"),
    "test_bayes_robust.py": ("test_t_components_on_heavy_tails_beat_the_gaussian",
                             "test_map_with_holes_is_em_with_missing_under_a_weak_prior",
                             "test_missing_option_without_nan_equals_the_plain_fit"),
    "test_missing.py": ("test_map_fits_data_with_holes",),
    "test_bootstrap.py": ("test_lrt_finds_three_separated_clusters",),
    "test_estimators.py": ("test_sk_monotonic_likelihood",),
    "test_relabel.py": ("test_label_invariant_rhat_large_where_chains_sit_in_different_modes",),
    "test_engines_jax.py": ("test_vmapped_restarts_equal_a_loop",),
    "test_estimator_bayes.py": ("test_credible_intervals_cover_the_truth",),
    "test_scale.py": ("test_float64_feature_cache_respects_its_budget",),
    "test_fitting.py": ("test_padding_changes_nothing",),
    "test_prior.py": ("test_compiled_float32_with_a_prior_matches_float64",),
}
for _file, _names in _FLOORS_CUT.items():
    SLOW[_file] = SLOW.get(_file, ()) + _names


def pytest_collection_modifyitems(config, items):
    """Mark the tests of ``SLOW`` (by function, or by function[parameters]) ``slow``."""
    for item in items:
        names = SLOW.get(item.path.name, ())
        if item.originalname in names or item.name in names:
            item.add_marker(pytest.mark.slow)
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
