"""The command line and configuration files, on real files (saved models: test_io.py)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.cli import main, run_workflow
from bayesgmm.config import from_dict, load_config
from bayesgmm.io import save_model

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_is_the_default():
    from bayesgmm.config import RunConfig

    assert load_config(ROOT / "configs" / "blobs.toml") == RunConfig()


def test_run_workflow_writes_everything(tmp_path):
    cfg = from_dict({"name": "t", "sweep": {"n_components": [2, 6]}})
    lines = []
    summary = run_workflow(cfg, tmp_path, log=lines.append)
    assert summary["n_components"] == 4 and summary["adjusted_rand_index"] >= 0.99
    for name in ("selection.png", "clusters.png", "membership.png", "sweep.csv",
                 "proba.csv", "params.npz", "meta.json", "config.toml"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert any("wrote:" in line for line in lines)
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 5
    assert load_config(tmp_path / "config.toml") == cfg
    proba = np.loadtxt(tmp_path / "proba.csv", delimiter=",")
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_predict_command(tmp_path, datasets, capsys):
    X = datasets["iris"]
    gm = GaussianMixture(3, random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    np.save(tmp_path / "x.npy", X[:5])
    argv = ["--no-compilation-cache",  # in-process: leave JAX's global config alone
            "predict", str(tmp_path / "m"), str(tmp_path / "x.npy"), "--proba"]
    assert main(argv) == 0
    printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",")
    np.testing.assert_allclose(printed, gm.predict_proba(X[:5]), atol=1e-5)


@pytest.mark.parametrize("raw,match", [
    ({"fit": {"n_component": 3}}, "Unknown key"),
    ({"sweep": {"n_components": [5, 2]}}, "low <= high"),
    ({"sweep": {"criterion": "mdl"}}, "criterion"),
    ({"fit": {"n_components": "many"}}, "best"),
])
def test_config_errors(raw, match):
    with pytest.raises(ValueError, match=match):
        from_dict(raw)


def test_run_command_from_file(tmp_path):
    """A run on 60,000 rows compiles (K=3: N·K·F over the host threshold), and the command
    line keeps its compiled programs on disk for the next process."""
    cfg = tmp_path / "c.toml"
    np.savetxt(tmp_path / "d.csv", np.random.RandomState(0).normal(size=(60_000, 2)),
               delimiter=",", fmt="%.6f")
    cfg.write_text(f'name = "x"\n[data]\nsource = "{tmp_path / "d.csv"}"\n'
                   '[sweep]\nn_components = [1, 3]\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "bayesgmm", "run", str(cfg), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "best BIC: K=1" in r.stdout
    assert (tmp_path / "out" / "clusters.png").exists()
    # the command line keeps compiled programs for the next process
    cached = list((tmp_path / "cache" / "bayesgmm" / "jax").iterdir())
    assert len(cached) >= 2  # the fit's programs; JAX >= 0.10.1 adds a jnp.asarray one
