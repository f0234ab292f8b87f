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

__all__ = ["enable_compilation_cache", "default_cache_dir"]


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
