"""How bayesgmm compiles: XLA options for its programs, and an opt-in persistent cache.

Every jitted entry point goes through :func:`jit`, which on a CPU compiles with
:data:`CPU_COMPILE` (faster compilation, same run time); :func:`jit_compile_bound` takes
:data:`CPU_FAST_COMPILE` for programs that compile longer than they run.

JAX compiles each program the first time a process meets a new shape; on a small data
set that compilation is most of the wall time (a BIC sweep of 1..20 on the 300-point
seed blobs: 3.2 s cold, 0.06 s once compiled). With the disk cache on, a fresh process
loads the programs instead (the same sweep: 0.8 s; ``benchmarks/sweep.py``).

The cache is a JAX-wide setting, so the library never turns it on by itself: call
:func:`enable_compilation_cache` once, before the first fit. The ``bayesgmm`` command
line turns it on (``--no-compilation-cache`` turns it off). Only point it at a directory
that you alone can write to: JAX treats cached programs as trusted code. It needs jaxlib
0.10 or newer: jaxlib 0.9 writes an error line to stderr for every program it loads from
the cache (a machine-feature check that misreads its own tuning flags), so there the
cache stays off (:func:`cache_supported`).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from importlib import metadata
from pathlib import Path

__all__ = ["enable_compilation_cache", "cache_supported", "default_cache_dir", "jit",
           "jit_compile_bound", "CPU_COMPILE", "CPU_FAST_COMPILE"]

#: The oldest jaxlib whose cache loads programs without writing to stderr.
CACHE_MIN_JAXLIB = (0, 10)


def cache_supported(jaxlib_version: str | None = None) -> bool:
    """Whether the installed jaxlib (or ``jaxlib_version``) reuses cached programs
    quietly: 0.10 and newer. jaxlib 0.9 loads them but writes an error line per program
    to stderr ("Loading XLA:CPU AOT result. Target machine feature +prefer-no-gather is
    not supported on the host machine ... could lead to execution errors such as
    SIGILL", on the machine that compiled them; another day's jaxlib 0.9 run printed
    "Assume version compatibility. PjRt-IFRT does not track XLA executable versions."
    instead). An unparsable version counts as new."""
    if jaxlib_version is None:
        try:
            jaxlib_version = metadata.version("jaxlib")
        except metadata.PackageNotFoundError:
            return True
    try:
        release = tuple(int(part) for part in jaxlib_version.split(".")[:2])
    except ValueError:
        return True
    return release >= CACHE_MIN_JAXLIB


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bayesgmm/jax`` (``~/.cache/bayesgmm/jax`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesgmm" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Store every compiled program under ``path`` and reuse it in later processes.

    Unlike setting ``JAX_COMPILATION_CACHE_DIR`` alone, this also caches programs that
    compile in under a second (JAX's default threshold), which is most of ours. Under
    jaxlib older than 0.10 (see :func:`cache_supported`) it warns and leaves the cache
    off.

    Parameters
    ----------
    path : str or PathLike, optional
        Default :func:`default_cache_dir`. Created if missing.

    Returns
    -------
    Path or None
        The directory in use; None where the cache stays off (jaxlib older than 0.10).
    """
    if not cache_supported():
        warnings.warn(
            f"bayesgmm's compilation cache needs jaxlib >= 0.10 (installed: "
            f"{metadata.version('jaxlib')}, which writes an error line to stderr for every "
            "cached program it loads); the cache stays off. Upgrade jax and jaxlib "
            "(pip install -U jax jaxlib) to reuse compiled programs across processes.",
            UserWarning, stacklevel=2)
        return None
    path = Path(path) if path is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    settings = {"jax_compilation_cache_dir": str(path),
                "jax_persistent_cache_min_entry_size_bytes": -1,
                "jax_persistent_cache_min_compile_time_secs": 0.0}
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:  # JAX reads its settings from the environment when it is imported: a run
        # that never compiles (small data, on the host) never pays JAX's import
        for name, value in settings.items():
            os.environ[name.upper()] = str(value)
    return path


# Every program the library compiles is built with LLVM optimisation level 1 on a CPU
# (XLA's default is 2). On our programs it compiles 25-35% faster and runs as fast:
# measured on 2 cores, the k-means initialisation over 10^5 x 8 rows 1.33 -> 0.88 s of
# compilation, the EM program 1.17 -> 0.89 s, and EM per iteration (N=10^6, D=8, K=32)
# 172 -> 164 ms in float64, 83 -> 67 ms in float32 (moments kernel). Compilation is most
# of a small fit's wall time, so this is the default for every jitted entry point.
CPU_COMPILE = {"xla_backend_optimization_level": 1}

# XLA's CPU backend emits fused loops through its newer MLIR "fusion emitters" by
# default. On a program made of many small while loops (NUTS over the 300 seed points
# has ~20) the older emitters at LLVM optimisation level 1 compile in 60% of the time
# (3.3 -> 1.95 s) and run 30% slower (0.73 -> 0.96 s): a good trade for a program that
# runs about a second. On EM over 10^5 rows the same options made a warm BIC sweep 1.6x
# slower, so only compile-bound programs take them.
CPU_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


class _Jitted:
    """``jax.jit(fn)`` compiled with XLA options on a CPU (chosen at the first call, so
    importing bayesgmm does not start a JAX backend; JAX itself is imported then too). Where this XLA no longer knows an
    option name, the program is compiled with the defaults instead."""

    def __init__(self, fn, options_name: str, jit_kwargs: dict):
        functools.update_wrapper(self, fn)
        self._fn, self._options_name, self._jit_kwargs = fn, options_name, jit_kwargs
        self._chosen = None  # the jax.jit object in use, once the first call decided
        self._trial = None   # the optioned jit, until a call has compiled with it

    def _plain(self):
        import jax

        return jax.jit(self._fn, **self._jit_kwargs)

    def _current(self):
        import jax

        if self._chosen is not None:
            return self._chosen
        if self._trial is None:
            if jax.default_backend() != "cpu":
                self._chosen = self._plain()
                return self._chosen
            options = globals()[self._options_name]  # looked up late: tests patch it
            self._trial = jax.jit(self._fn, compiler_options=options, **self._jit_kwargs)
        return self._trial

    def _first_use(self, use):
        """``use(jitted)`` with the program in use; the first use tries the optioned
        program and falls back to the defaults where this XLA no longer knows an option
        name (XLA raises when it compiles), then keeps that choice."""
        import jax

        f = self._current()
        if self._chosen is not None:
            return use(f)
        try:
            out = use(f)
        except jax.errors.JaxRuntimeError as e:
            if "compile option" not in str(e):
                raise
            self._chosen = self._plain()
            return use(self._chosen)
        self._chosen = f
        return out

    def __call__(self, *args, **kwargs):
        return self._first_use(lambda f: f(*args, **kwargs))

    def lower(self, *args, **kwargs):
        return self._current().lower(*args, **kwargs)

    def compiled(self, *args, **kwargs):
        """The program compiled ahead of time for these arguments' shapes (a
        ``jax.stages.Compiled``: callable from several threads at once, and never
        retraced), with the same options and fallback as a call."""
        return self._first_use(lambda f: f.lower(*args, **kwargs).compile())

    def _cache_size(self) -> int:
        return self._current()._cache_size()


def jit(fn=None, **jit_kwargs):
    """``jax.jit`` for the library's programs: on a CPU, compiled with
    :data:`CPU_COMPILE`. Usable as ``jit(fn, static_argnames=...)`` or ``@jit``."""
    if fn is None:
        return functools.partial(jit, **jit_kwargs)
    return _Jitted(fn, "CPU_COMPILE", jit_kwargs)


def jit_compile_bound(fn, **jit_kwargs):
    """``jax.jit(fn)`` for a program whose compilation costs more than its runs: on a
    CPU it is compiled with :data:`CPU_FAST_COMPILE`; elsewhere, or where this XLA
    no longer knows those options, with the defaults."""
    return _Jitted(fn, "CPU_FAST_COMPILE", jit_kwargs)
