"""Where a computation runs, and at what padded size: every work threshold in one place.

Glossary: N samples, D features, K components, F moment features per row
(``1 + D + D(D+1)/2`` when a type keeps full second moments, else ``1 + 2D``), M
parameter sets (posterior draws).

Two engines run the same EM (:mod:`bayesgmm.engines`): ``"numpy"`` on the host, nothing
to compile, and ``"jax"``, compiled (jit, vmap, any device). Compiling costs ~0.6 s per
shape and process on a 2-core CPU, more than NumPy spends on a whole small fit; so small
problems run on the host. :func:`choose` is the one function that decides, for every
kind of work; the thresholds below are its only inputs, each measured
(``benchmarks/host.py``, ``benchmarks/sweep.py``; the machine is named there).

Nothing here imports JAX.
"""

from __future__ import annotations

from typing import NamedTuple

from bayesgmm.covariance import n_moment_features, ops

__all__ = ["ENGINES", "TASKS", "Choice", "choose", "sweep_engine", "check_engine",
           "HOST_WORK", "HOST_SWEEP_WORK", "HOST_SEEDING_WORK", "HOST_DRAW_WORK", "PAD_BELOW_WORK", "PAD_UP_TO"]

ENGINES = ("auto", "jax", "numpy")
TASKS = ("fit", "score", "seed", "draws")

# One E-step's matmul, N·K·F multiply-adds, up to which "auto" fits and scores on the
# host. Measured (benchmarks/host.py, 2-core CPU, full covariance): below it a host
# iteration costs 1.0-2.9x a compiled one, while the compiled path's first call costs
# 0.6-0.7 s more: compilation pays only after ~3,000-15,000 iterations of one shape.
HOST_WORK = 2**20
# A model search (selection.sweep: every K up to the largest, two starts each, to
# tol=1e-5) runs on the host while one E-step at the largest K, N·K·F, stays within
# this: a sweep pays compilation once per covariance type (programs for EM, the
# starts and the criteria) and runs every K padded to the largest, while the host runs
# each K at its own size. Measured (K = 1..9, same fits and iterations either way,
# 2-core CPU at load ~15): 20,000 x 5 (N·K·F = 3.8e6 full, 2.0e6 spherical): host
# 0.9-4.0 s a covariance type, compiled 4.6-8.9 s; 100,000 x 5: full (1.9e7) host
# 22.8 s, compiled 25.8 s; spherical (9.9e6) host 19.6 s, compiled 13.4 s.
HOST_SWEEP_WORK = 2**22
# k-means++ seeding (N·K·D multiply-adds over the seeding rows) up to which the seeds are
# drawn on the host (a compiled seeding program cost ~0.7 s of XLA per K).
HOST_SEEDING_WORK = 2**25
# Scoring M parameter sets (posterior draws), M·N·K·F multiply-adds, up to which it runs
# on the host: on the seed blobs' 2000 draws ~0.05 s, where compiling took 0.4 s.
HOST_DRAW_WORK = 2**25
# Compiled fits pad K to the next power of two (zero-weight components are exactly
# inactive), so a loop over K compiles ~log2(K) programs instead of K. Every iteration
# also works on the padding, about N·(K_pad - K)·F multiply-adds; K is padded while that
# waste stays under PAD_BELOW_WORK (about one compilation over 100 iterations), and on to
# larger powers of two up to PAD_UP_TO within the same budget, so small data compile one
# program for every K up to 32.
PAD_BELOW_WORK = 2**27
PAD_UP_TO = 32


class Choice(NamedTuple):
    """Where one piece of work runs."""

    engine: str  # "numpy" (host) or "jax" (compiled)
    n_padded: int  # components the compiled programs run at (K itself on the host)


def check_engine(engine) -> str:
    if engine not in ENGINES:
        raise ValueError(f"Invalid value for 'engine': {engine!r}; 'engine' should be one "
                         f"of {ENGINES}")
    return engine


def choose(task: str, engine: str, n_samples: int, n_components: int, n_features: int,
           covariance_type: str, *, n_draws: int = 1,
           fitted_padded: int | None = None) -> Choice:
    """Where ``task`` runs and at what padded K.

    Parameters
    ----------
    task : {"fit", "score", "seed", "draws"}
        ``"fit"``: EM (and k-means' Lloyd iterations); ``"score"``: log-probabilities,
        responsibilities and criteria of one fitted model on ``n_samples`` rows;
        ``"seed"``: k-means++ seeding on ``n_samples`` rows; ``"draws"``: the pointwise
        log-likelihood of ``n_draws`` parameter sets.
    engine : {"auto", "jax", "numpy"}
        The user's choice; ``"auto"`` applies the thresholds above. ``"seed"`` ignores
        it (seeding on the host gives the same draws as the compiled seeding).
    n_samples, n_components, n_features : int
    covariance_type : str
    n_draws : int
        M, for ``"draws"``.
    fitted_padded : int, optional
        For ``"score"``: the padded size the model was fitted at (its programs exist).

    Returns
    -------
    Choice
        ``engine`` in {"numpy", "jax"} and ``n_padded`` (``n_components`` on the host).
    """
    check_engine(engine)
    N, K, D = int(n_samples), int(n_components), int(n_features)
    F = n_moment_features(D, ops(covariance_type).full_moments)
    if task == "seed":
        return Choice("numpy" if N * K * D <= HOST_SEEDING_WORK else "jax", K)
    if task == "draws":
        small = int(n_draws) * N * K * F <= HOST_DRAW_WORK
    elif task in ("fit", "score"):
        small = N * K * F <= HOST_WORK
    else:
        raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}")
    on_host = engine == "numpy" or (engine == "auto" and small)
    if on_host:
        return Choice("numpy", K)
    padded = _bucket(N, K, F)
    if task == "score" and fitted_padded is not None:
        padded = min(int(fitted_padded), padded)
    return Choice("jax", padded if task in ("fit", "score") else K)


def sweep_engine(engine: str, n_samples: int, max_components: int, n_features: int,
                 covariance_type: str) -> str:
    """Where a model search's fits of one covariance type run (every K up to
    ``max_components``, the starts of each): ``"numpy"`` while N·K·F at the largest K
    is within :data:`HOST_SWEEP_WORK` (or the user asks for it), else the user's
    ``engine`` (``"auto"``: each fit by :func:`choose`)."""
    check_engine(engine)
    F = n_moment_features(int(n_features), ops(covariance_type).full_moments)
    small = int(n_samples) * int(max_components) * F <= HOST_SWEEP_WORK
    return "numpy" if engine == "numpy" or (engine == "auto" and small) else engine


def _bucket(N: int, K: int, F: int) -> int:
    """The padded K (see ``PAD_BELOW_WORK``): the next power of two, or a larger one up
    to ``PAD_UP_TO`` while the waste stays in budget; K itself when even the next power
    of two would waste too much."""
    fits = lambda padded: N * (padded - K) * F <= PAD_BELOW_WORK
    padded = 1 << (K - 1).bit_length()
    if not fits(padded):
        return K
    while padded < PAD_UP_TO and fits(2 * padded):
        padded *= 2
    return padded
