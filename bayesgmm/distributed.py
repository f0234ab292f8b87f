"""EM over several processes (hosts): JAX's distributed runtime, each process holding
only its own rows.

Glossary: N rows in all, N_p of them in this process, D features, K components,
P processes.

A run on several hosts starts one Python process per host (per GPU node, per TPU host),
each calling :func:`initialize` (``jax.distributed.initialize``) and then
:func:`fit_distributed` with *its own* rows — e.g. a slice of a memmap or its shard of
the files. The rows never move: every EM iteration computes the sufficient statistics
on each device and sums them across devices and processes (one ``psum``), then every
process takes the same M-step. The result equals single-process EM on all rows, to
round-off (the test holds it to 1e-10 in float64 with two processes on one machine).

On CPUs the cross-process collectives are Gloo's (``jax_cpu_collectives_implementation
= "gloo"``, set by :func:`initialize`); on GPUs NCCL and on TPUs ICI/DCN, chosen by JAX.

Design notes
------------
* The start must be identical in every process. Unless one is given, process 0 fits a
  :class:`bayesgmm.GaussianMixture` on its own rows (its ``n_init`` restarts and
  ``init_params``) and broadcasts the parameters; EM then refines them on all rows, as
  ``init_subsample`` does on one machine.
* Processes may hold different numbers of rows: each pads its rows with zero-weight
  copies to the largest count (zero weight rows add nothing to any statistic).
"""

from __future__ import annotations

import numpy as np

from bayesgmm.covariance import ops
from bayesgmm.params import GMMParams
from bayesgmm.validation import check_covariance_type, compute_scope

__all__ = ["initialize", "fit_distributed"]


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> None:
    """Join the distributed run: ``jax.distributed.initialize`` with CPU collectives.

    Call it once per process, before any other JAX call. On a cluster JAX detects the
    three arguments (SLURM, Open MPI, Cloud TPU, Kubernetes); on your own machines pass
    them: ``coordinator_address="host0:1234"`` (the same in every process),
    ``num_processes`` and this process's ``process_id`` (0 .. P-1).
    ``**kwargs`` go to ``jax.distributed.initialize`` (e.g. ``local_device_ids``).
    """
    import jax

    # CPU devices in different processes talk through Gloo; GPU/TPU ignore this option.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **kwargs)


def fit_distributed(X_local, n_components: int = 1, *, covariance_type: str = "full",
                    sample_weight=None, start: GMMParams | None = None, tol: float = 1e-3,
                    reg_covar: float = 1e-6, max_iter: int = 100,
                    chunk_size: int | None = None, **seed_kwargs):
    """EM on the rows of every process; call it in every process with its own rows.

    Parameters
    ----------
    X_local : array-like of shape (N_p, D)
        This process's rows (a NumPy array or memmap slice). float64 rows are fitted in
        float64 (JAX's x64 mode, scoped to the call), float32 in float32.
    n_components, covariance_type, tol, reg_covar, max_iter
        As for :class:`bayesgmm.GaussianMixture`.
    sample_weight : array-like of shape (N_p,), optional
        Weights of this process's rows.
    start : GMMParams, optional
        The starting parameters, identical in every process. Default: process 0's
        :class:`bayesgmm.GaussianMixture` fit of its own rows (with ``seed_kwargs``:
        ``n_init``, ``init_params``, ``random_state`` ...), broadcast to all.
    chunk_size : int, optional
        Rows per E-step chunk on each device (bounded memory).

    Returns
    -------
    GaussianMixture
        The same fitted estimator in every process (``n_iter_``, ``lower_bound_``,
        ``converged_`` of the distributed EM).
    """
    import jax
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P

    from bayesgmm.engines import jax as em
    from bayesgmm.estimators import GaussianMixture
    from bayesgmm.validation import check_array_2d

    X_local = check_array_2d(X_local, min_samples=1)
    covariance_type = check_covariance_type(covariance_type)
    dtype = X_local.dtype
    w_local = (np.ones(len(X_local), dtype) if sample_weight is None
               else np.asarray(sample_weight, dtype).reshape(-1))
    if w_local.shape != (len(X_local),) or not np.all(np.isfinite(w_local)) or np.any(w_local < 0):
        raise ValueError(f"sample_weight must hold {len(X_local)} finite, non-negative "
                         "weights, one per local row.")
    with compute_scope(dtype):
        mesh = jax.make_mesh((jax.device_count(),), ("data",))
        X_local, w_local = _pad_to_common_length(X_local, w_local, multihost_utils)
        sharding = NamedSharding(mesh, P("data"))
        X = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data", None)),
                                                   X_local)
        w = jax.make_array_from_process_local_data(sharding, w_local)
        if start is None:
            start = _seed(X_local[w_local > 0], n_components, covariance_type, reg_covar,
                          seed_kwargs, multihost_utils)
        params, info = em.fit_sharded(X, start.to_numpy(dtype), sample_weight=w, tol=tol,
                                      reg_covar=reg_covar, max_iter=max_iter,
                                      chunk_size=chunk_size, mesh=mesh)
        params, info = jax.tree.map(np.asarray, (params, info))
    return GaussianMixture.from_params(
        params, info=info, tol=tol, reg_covar=reg_covar, max_iter=max_iter,
        **{k: v for k, v in seed_kwargs.items() if k in GaussianMixture().get_params()})


def _pad_to_common_length(X_local: np.ndarray, w_local: np.ndarray, multihost_utils):
    """Pad every process's rows (zero weight) to one length, a multiple of its devices."""
    import jax

    counts = np.asarray(multihost_utils.process_allgather(np.asarray([len(X_local)])))
    n_local_devices = jax.local_device_count()
    target = -(-int(counts.max()) // n_local_devices) * n_local_devices
    pad = target - len(X_local)
    if pad:
        X_local = np.concatenate([X_local, np.broadcast_to(X_local[:1], (pad, X_local.shape[1]))])
        w_local = np.concatenate([w_local, np.zeros(pad, w_local.dtype)])
    return X_local, w_local


def _seed(X0: np.ndarray, n_components: int, covariance_type: str, reg_covar: float,
          seed_kwargs: dict, multihost_utils) -> GMMParams:
    """Process 0 fits its own rows; every process receives the parameters."""
    import jax

    from bayesgmm.estimators import GaussianMixture
    from bayesgmm.validation import data_warnings_off

    K, D = n_components, X0.shape[1]
    shapes = ((K,), (K, D), ops(covariance_type).factor_shape(K, D))
    if jax.process_index() == 0:
        with data_warnings_off():  # process 0's rows alone: not the data's columns
            gm = GaussianMixture(n_components, covariance_type=covariance_type,
                                 reg_covar=reg_covar, **seed_kwargs).fit(X0)
        p = gm.params_.to_numpy(X0.dtype)
        leaves = (p.weights, p.means, p.cov_factor)
    else:
        leaves = tuple(np.zeros(s, X0.dtype) for s in shapes)
    leaves = multihost_utils.broadcast_one_to_all(leaves)
    return GMMParams(*(np.asarray(a) for a in leaves), covariance_type=covariance_type)
