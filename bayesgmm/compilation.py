"""An opt-in persistent cache of compiled XLA programs.

JAX compiles each program the first time a process meets a new shape; on a small data
set that compilation is most of the wall time (a BIC sweep of 1..20 on the 300-point
seed blobs: 3.2 s cold, 0.06 s once compiled). With the disk cache on, a fresh process
loads the programs instead (the same sweep: 0.8 s; ``benchmarks/sweep.py``).

The cache is a JAX-wide setting, so the library never turns it on by itself: call
:func:`enable_compilation_cache` once, before the first fit. The ``bayesgmm`` command
line turns it on (``--no-compilation-cache`` turns it off). Only point it at a directory
that you alone can write to: JAX treats cached programs as trusted code.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compilation_cache", "default_cache_dir", "jit_compile_bound"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bayesgmm/jax`` (``~/.cache/bayesgmm/jax`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesgmm" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Store every compiled program under ``path`` and reuse it in later processes.

    Unlike setting ``JAX_COMPILATION_CACHE_DIR`` alone, this also caches programs that
    compile in under a second (JAX's default threshold), which is most of ours.

    Parameters
    ----------
    path : str or PathLike, optional
        Default :func:`default_cache_dir`. Created if missing.

    Returns
    -------
    Path
        The directory in use.
    """
    path = Path(path) if path is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


# XLA's CPU backend emits fused loops through its newer MLIR "fusion emitters" by
# default. On a program made of many small while loops (NUTS over the 300 seed points
# has ~20) the older emitters at LLVM optimisation level 1 compile in 60% of the time
# (3.3 -> 1.95 s) and run 30% slower (0.73 -> 0.96 s): a good trade for a program that
# runs about a second. On EM over 10^5 rows the same options made a warm BIC sweep 1.6x
# slower, so only compile-bound programs take them.
CPU_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


def jit_compile_bound(fn, **jit_kwargs):
    """``jax.jit(fn)`` for a program whose compilation costs more than its runs: on a
    CPU it is compiled with :data:`CPU_FAST_COMPILE`; elsewhere, or where this XLA
    no longer knows those options, with the defaults."""
    if jax.default_backend() != "cpu":
        return jax.jit(fn, **jit_kwargs)
    fast = jax.jit(fn, compiler_options=CPU_FAST_COMPILE, **jit_kwargs)
    chosen = []

    def call(*args, **kwargs):
        if not chosen:
            try:
                out = fast(*args, **kwargs)
            except jax.errors.JaxRuntimeError as e:
                if "compile option" not in str(e):
                    raise
                chosen.append(jax.jit(fn, **jit_kwargs))
            else:
                chosen.append(fast)
                return out
        return chosen[0](*args, **kwargs)

    current = lambda: chosen[0] if chosen else fast  # noqa: E731
    call.lower = lambda *a, **k: current().lower(*a, **k)
    call._cache_size = lambda: current()._cache_size()
    return call
