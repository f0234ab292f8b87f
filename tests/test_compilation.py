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
