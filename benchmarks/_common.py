"""Shared helpers for the benchmark scripts (not tests): timing and machine peak."""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def machine() -> str:
    dev = jax.devices()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"JAX {jax.__version__} on {dev.platform} ({dev.device_kind})")


def best_of(fn, repeat: int = 3) -> float:
    """Minimum wall time of ``fn()`` (which must block until done) over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(dtype, n: int = 2048) -> float:
    """Measured GFLOP/s of an n×n matmul in ``dtype`` (the machine's practical peak)."""
    with jax.enable_x64(dtype == np.float64):
        a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        t = best_of(lambda: f(a).block_until_ready(), 5)
    return 2 * n**3 / t / 1e9
