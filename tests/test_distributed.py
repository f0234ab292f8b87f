"""Multi-process EM as users run it: two processes on this machine's loopback, JAX's
distributed runtime with Gloo CPU collectives, each process reading only its own slice of
a memmap on disk. The fit equals single-process EM on all rows to 1e-10 in float64."""

import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bayesgmm.datasets import make_blobs

N0, N1, D, K = 2100, 1900, 3, 3  # unequal slices: the padding path runs too

WORKER = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import numpy as np
    from bayesgmm import distributed

    process_id, port, data, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    distributed.initialize(f"127.0.0.1:{{port}}", num_processes=2, process_id=process_id)
    import jax
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    X = np.memmap(data, dtype=np.float64, mode="r").reshape(-1, {D})
    rows = slice(0, {N0}) if process_id == 0 else slice({N0}, None)
    X_local = np.asarray(X[rows])               # this process's rows only

    start = np.load(out + ".start.npz")
    from bayesgmm.params import GMMParams
    given = GMMParams(start["weights"], start["means"], start["cov_factor"], "full")
    a = distributed.fit_distributed(X_local, {K}, start=given, tol=1e-10, max_iter=40)
    b = distributed.fit_distributed(X_local, {K}, tol=1e-10, max_iter=40, random_state=0)
    np.savez(f"{{out}}.{{process_id}}.npz",
             a_means=a.means_, a_weights=a.weights_, a_cov=a.covariances_,
             a_lb=a.lower_bound_, a_iter=a.n_iter_,
             b_means=b.means_, b_lb=b.lower_bound_, b_iter=b.n_iter_)
""").format(D=D, N0=N0, K=K)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    X, _ = make_blobs(n_samples=N0 + N1, n_features=D, centers=K, cluster_std=1.5,
                      random_state=3)
    X = np.asarray(X, np.float64)
    data = tmp / "X.f64"
    X.tofile(data)
    rng = np.random.default_rng(0)
    start = dict(weights=np.full(K, 1 / K), means=X[rng.choice(len(X), K, replace=False)],
                 cov_factor=np.stack([np.eye(D)] * K))
    np.savez(tmp / "out.start.npz", **start)
    (tmp / "worker.py").write_text(WORKER)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(tmp / "worker.py"), str(i), str(port),
                               str(data), str(tmp / "out")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return X, start, [np.load(tmp / f"out.{i}.npz") for i in range(2)]


def _reference(X, params, max_iter=40):
    """Single-process EM on all rows from the same start."""
    import jax

    from bayesgmm.engines import jax as em

    with jax.enable_x64(True):
        p, info = em.fit(jax.numpy.asarray(X), params, tol=1e-10, max_iter=max_iter)
        return p.to_numpy(), float(info.lower_bound), int(info.n_iter)


def test_two_processes_equal_one_process(run):
    from bayesgmm.params import GMMParams

    X, start, outs = run
    ref, lb, n_iter = _reference(X, GMMParams(start["weights"], start["means"],
                                              start["cov_factor"], "full"))
    for out in outs:  # both processes hold the same model
        np.testing.assert_allclose(out["a_means"], ref.means, rtol=0, atol=1e-10)
        np.testing.assert_allclose(out["a_weights"], ref.weights, rtol=0, atol=1e-10)
        np.testing.assert_allclose(out["a_cov"], ref.full_covariances, rtol=0, atol=1e-10)
        assert abs(float(out["a_lb"]) - lb) < 1e-10
        assert int(out["a_iter"]) == n_iter


def test_default_start_is_process_zeros_fit_refined_on_all_rows(run):
    from bayesgmm import GaussianMixture

    X, _, outs = run
    seed = GaussianMixture(K, random_state=0, reg_covar=1e-6).fit(X[:N0]).params_
    ref, lb, _ = _reference(X, seed)
    for out in outs:
        np.testing.assert_allclose(out["b_means"], ref.means, rtol=0, atol=1e-9)
        assert abs(float(out["b_lb"]) - lb) < 1e-9
    np.testing.assert_array_equal(outs[0]["b_means"], outs[1]["b_means"])


def test_bad_weights_named():
    from bayesgmm.distributed import fit_distributed

    with pytest.raises(ValueError, match="sample_weight must hold 5 finite"):
        fit_distributed(np.zeros((5, 2)), 1, sample_weight=np.ones(4))
