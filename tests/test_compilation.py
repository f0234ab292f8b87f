"""bayesgmm.compilation: XLA options for the library's programs, their fallback, and
the persistent cache's settings.

Truth: plain ``jax.jit`` of the same function; JAX's own configuration."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest


def test_jit_compile_bound_falls_back_when_xla_lacks_the_options(monkeypatch):
    """The fast-compile options are XLA flags that may be renamed: a compiler that does
    not know them must still get the program compiled, with the same results."""
    import bayesgmm.compilation as comp

    f = lambda x: jnp.sum(jnp.exp(x) * 2.0)  # noqa: E731
    x = jnp.linspace(0.0, 1.0, 7)
    expected = float(jax.jit(f)(x))
    assert float(comp.jit_compile_bound(f)(x)) == pytest.approx(expected, rel=1e-6)
    monkeypatch.setattr(comp, "CPU_FAST_COMPILE", {"xla_no_such_option_in_any_xla": True})
    g = comp.jit_compile_bound(f)
    assert float(g(x)) == pytest.approx(expected, rel=1e-6)
    assert float(g(x + 1.0)) == pytest.approx(float(jax.jit(f)(x + 1.0)), rel=1e-6)
    assert g._cache_size() == 1  # the fallback program, compiled once
    # ahead of time (NUTS's thread groups), through the same fallback
    h = comp.jit_compile_bound(f).compiled(x)
    assert float(h(x)) == pytest.approx(expected, rel=1e-6)


def test_cache_supported_reads_the_jaxlib_release():
    """jaxlib 0.9 writes an error line to stderr per cached program it loads: the cache
    needs 0.10 on. Development and unparsable versions count as new."""
    from bayesgmm.compilation import cache_supported

    assert not cache_supported("0.9.2") and not cache_supported("0.4.30")
    assert cache_supported("0.10.0") and cache_supported("0.12.1")
    assert cache_supported("1.0") and cache_supported("0.11.0.dev20261101")
    assert cache_supported("nightly")


_CACHED_PROGRAM = textwrap.dedent("""
    import sys, warnings
    from bayesgmm import compilation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = compilation.enable_compilation_cache(sys.argv[1])
    print(path, "|", " ".join(str(w.message) for w in caught))
    import jax.numpy as jnp
    print(float(compilation.jit(lambda x: jnp.sum(jnp.exp(x) * 3.0))(jnp.arange(5.0))))
""")


def test_a_second_process_reuses_the_cache_quietly(tmp_path):
    """Two fresh processes run the same jitted program with the cache on: the first
    fills it, the second loads from it, adds nothing, and writes nothing to stderr (the
    cache is off, with a warning that says why, under jaxlib 0.9, whose loads print an
    error line per program). Truth: the same value both times; the cache's files."""
    from bayesgmm.compilation import cache_supported

    # JAX_PLATFORMS=cpu: a CPU-only jaxlib on a host with a GPU would note it on stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT")
           and k != "JAX_COMPILATION_CACHE_DIR"} | {"JAX_PLATFORMS": "cpu"}
    cache = tmp_path / "jax"
    run = lambda: subprocess.run([sys.executable, "-c", _CACHED_PROGRAM, str(cache)],
                                 capture_output=True, text=True, env=env)
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    if not cache_supported():
        assert first.stdout.startswith("None |") and "jaxlib >= 0.10" in first.stdout
        assert not cache.exists()
        return
    filled = sorted(p.name for p in cache.iterdir())
    assert filled and first.stdout.startswith(f"{cache} | \n")
    second = run()
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout == first.stdout
    assert sorted(p.name for p in cache.iterdir()) == filled  # loaded, not compiled again
    assert second.stderr == "", second.stderr[-2000:]


@pytest.mark.skipif(not __import__("bayesgmm.compilation").compilation.cache_supported(),
                    reason="jaxlib < 0.10: the cache stays off")
def test_cache_settings_reach_jax_whether_or_not_it_is_loaded(tmp_path):
    """enable_compilation_cache before JAX is imported (the command line's order: a
    host-sized run never loads JAX) sets the same JAX options as after it."""
    code = textwrap.dedent(f"""
        import sys
        from bayesgmm.compilation import enable_compilation_cache
        enable_compilation_cache({str(tmp_path / "a")!r})
        assert "jax" not in sys.modules
        import jax
        print(jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_entry_size_bytes,
              jax.config.jax_persistent_cache_min_compile_time_secs)
        enable_compilation_cache({str(tmp_path / "b")!r})
        print(jax.config.jax_compilation_cache_dir)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT")
           and k != "JAX_COMPILATION_CACHE_DIR"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    first, second = r.stdout.splitlines()
    assert first.split() == [str(tmp_path / "a"), "-1", "0.0"]
    assert second == str(tmp_path / "b")
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()
