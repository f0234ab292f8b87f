"""NUTS with chains vectorised on one device (or spread over several), each chain
started at its own jittered copy of the EM/MAP point.

Why per-chain jitter (issue 3 measurements): one shared initial point keeps the chains
from checking each other, and random initialisation cost 664 s on a harder data set with
a chain stuck in a wrong mode; EM + small jitter took 92.5 s with every chain healthy.
Each chain's health (divergences, step size, tree depth, log-density R-hat) is checked a
layer up, by :func:`bayesgmm.bayes.posterior.chain_health`.

Padded (``n_padded``): the sampler of the model with K_max components, the fit's K a
traced argument (:mod:`bayesgmm.bayes.potential`), so every K of a comparison runs one
compiled program. The price: each leapfrog step evaluates K_max components, and the
masked coordinates (standard normal) join the step-size and mass-matrix adaptation.

Glossary: N samples, D features, K components, C chains, S draws per chain.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC, NUTS

from bayesgmm.compilation import jit, jit_compile_bound
from bayesgmm.bayes import potential
from bayesgmm.bayes.inference.result import InferenceResult, NUTSInfo
from bayesgmm.bayes.inference.target import (bound_model, constrained, coordinate_units,
                                        flat_potential, handwritten, init_sites, padded_draws, padded_start, prior_arrays,
                                        priors_key, program_key, rebound,
                                        unconstrained)
from bayesgmm.bayes.model import Priors, from_sites
from bayesgmm.params import GMMParams

__all__ = ["sample_nuts", "EXTRA_FIELDS", "PROGRESS_STEPS"]

EXTRA_FIELDS = ("diverging", "num_steps", "adapt_state.step_size", "energy",
                "potential_energy", "accept_prob")

# A progress bar moves about this many times per chain (fast path, _report).
PROGRESS_STEPS = 50
# The bar the running sampler's callbacks move (None: no bar shown).
_BAR: dict = {"bar": None}

# Compiled samplers are reused across calls with the same configuration and shapes
# (a fresh MCMC object recompiles: 4-10 s a call in the issue-3 measurements).
_MCMC_CACHE: dict = {}


def sample_nuts(key, X, init: GMMParams, *, n_components: int, covariance_type: str = "full",
                priors: Priors, n_warmup: int = 500, n_draws: int = 500,
                n_chains: int = 4, jitter: float = 0.05, target_accept_prob: float = 0.8,
                max_tree_depth: int = 10, chain_method: str | None = None,
                progress_bar: bool = False, n_padded: int | None = None) -> InferenceResult:
    """Draw from the posterior with NUTS; ``params`` has batch shape (n_chains, n_draws).

    Parameters
    ----------
    init : GMMParams
        Batch shape (); every chain starts at its own copy, perturbed by ``jitter``
        (standard normal noise times ``jitter``, in the unconstrained space).
    chain_method : {"vectorized", "parallel", "sequential"}, optional
        Default: "parallel" when there are at least ``n_chains`` (> 1) devices, else
        "vectorized": all chains in one compiled program on one device, ``vmap``ped on
        an accelerator and one after another on a CPU (see ``_vectorized_program``).
        One chain always runs "vectorized" (there is nothing to spread; NumPyro's
        ``MCMC.run`` of one chain drops the chain axis the draws are grouped by).
    max_tree_depth : int, default=10
        At most 2**max_tree_depth - 1 leapfrog steps per iteration
        (:func:`bayesgmm.bayes.compare_n_components` passes 7).
    n_padded : int, optional
        (>= n_components) Sample the model padded to this many components, whose
        program every n_components shares (:mod:`bayesgmm.bayes.potential`; where
        :func:`~bayesgmm.bayes.potential.supports_padding`, on the "vectorized" path;
        else ignored). The masked components' draws are dropped; ``lp`` and ``energy``
        leave out their standard normal potential (``energy`` keeps their momenta's
        kinetic energy), and their coordinates change the step size and trees a little,
        not the distribution of the active components' draws.
    """
    max_tree_depth = int(max_tree_depth)
    if chain_method is None or n_chains == 1:
        chain_method = ("parallel" if 1 < n_chains <= jax.local_device_count()
                        else "vectorized")
    padded = (n_padded is not None and chain_method == "vectorized"
              and potential.supports_padding(covariance_type, priors, X))
    n_model = int(n_padded) if padded else n_components  # the program's K
    model = bound_model(n_model, covariance_type, priors)
    # the vectorized program takes the data-scaled priors as an argument (prior_arrays):
    # one program for every data set of a shape; NumPyro's MCMC (parallel, sequential)
    # binds them as constants, so its cache keys on their values
    config = (n_model, covariance_type,
              program_key(priors) if chain_method == "vectorized" else priors_key(priors),
              n_warmup, n_draws, n_chains, float(target_accept_prob), max_tree_depth, padded)
    # Host arrays in, host arrays out: every operation outside the compiled sampler runs
    # in NumPy, because each jax.numpy call on its own compiles a small program (0.5 s
    # of a cold run on the seed blobs).
    init = jax.tree_util.tree_map(np.asarray, init)
    jitter = np.asarray(jitter, X.dtype)
    if chain_method == "vectorized":
        samples, extra = _run_vectorized(model, config, key, X, init, jitter,
                                         progress_bar=progress_bar, n_active=n_components)
    else:
        k_init, k_run = jax.random.split(key)
        start_key = ("start", config, X.shape, str(X.dtype))
        if start_key not in _MCMC_CACHE:  # jitted: run op by op it compiled ~100 programs
            _MCMC_CACHE[start_key] = jit(functools.partial(
                _start_points, model, covariance_type=covariance_type,
                chain_ids=np.arange(n_chains)))
        z = _MCMC_CACHE[start_key](k_init, X, init, jitter)
        mcmc = _mcmc(model, config, chain_method, progress_bar)
        mcmc.run(k_run, X, init_params=z, extra_fields=EXTRA_FIELDS)
        samples = mcmc.get_samples(group_by_chain=True)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        samples, extra = jax.device_get((samples, extra))
    n_steps = extra["num_steps"]
    info = NUTSInfo(
        diverging=extra["diverging"], n_steps=n_steps,
        tree_depth=np.floor(np.log2(n_steps.astype(np.float32) + 1)).astype(np.int32),
        step_size=extra["adapt_state.step_size"], energy=extra["energy"],
        lp=-extra["potential_energy"], acceptance_rate=extra["accept_prob"],
        chain_method=chain_method, max_tree_depth=max_tree_depth)
    sites_out = {k: v for k, v in samples.items() if k != "obs"}
    return InferenceResult("nuts", from_sites(sites_out, covariance_type), sites_out, info)


def _start_flat(model, key, X, init: GMMParams, jitter, *, covariance_type, chain_ids):
    """Each chain's start, flat (C, S): ``init`` in the unconstrained space plus
    ``jitter`` times standard normal noise in :func:`coordinate_units`
    (:func:`_jittered`); and the function unflattening one point."""
    z = unconstrained(model, X, init_sites(init, model, X.dtype))
    flat, unravel = ravel_pytree(z)
    units = coordinate_units(unravel, flat.shape[0], X)
    return _jittered(key, flat, jitter, chain_ids, units), unravel


def _jittered(key, flat, jitter, chain_ids, units=1.0):
    """(S,) -> (C, S): ``flat`` plus ``jitter`` times standard normal noise from
    ``fold_in(key, chain)`` times ``units`` (each coordinate's, :func:`coordinate_units`),
    drawn by one vmapped call (each ``jax.random.normal`` call site compiles its own copy
    of the generator: 0.1 s apiece on a CPU)."""
    noise = jax.vmap(lambda c: jax.random.normal(jax.random.fold_in(key, c), flat.shape,
                                                 flat.dtype))(chain_ids)
    return flat + jitter * units * noise


def _start_points(model, key, X, init: GMMParams, jitter, *, covariance_type, chain_ids):
    """:func:`_start_flat`'s points as site dicts with leading axis C."""
    flat, unravel = _start_flat(model, key, X, init, jitter, covariance_type=covariance_type,
                                chain_ids=chain_ids)
    return jax.vmap(unravel)(flat)


def _mcmc(model, config, chain_method, progress_bar):
    K, ct, pk, n_warmup, n_draws, n_chains, target, depth, _ = config
    key = (config, chain_method, progress_bar)
    if key not in _MCMC_CACHE:
        kernel = NUTS(model, target_accept_prob=target, max_tree_depth=depth)
        _MCMC_CACHE[key] = MCMC(kernel, num_warmup=n_warmup, num_samples=n_draws,
                                num_chains=n_chains, chain_method=chain_method,
                                progress_bar=progress_bar, jit_model_args=True)
    return _MCMC_CACHE[key]


def _cpu_threads(n_calls: int) -> int:
    """Host threads for ``n_calls`` sampler calls: the CPU cores this process may use,
    at most one a call."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, min(int(n_calls), cores))


def _run_vectorized(model, config, key, X, init, jitter, batched=None, groups=None,
                    progress_bar: bool = False, n_active: int | None = None):
    """All chains in one compiled program (``vmap``ped, or in sequence on a CPU:
    ``batched``), each one ``lax.scan`` over warm-up and draws, with its start point and
    NumPyro's chain initialisation; compiled once per configuration and shapes and kept
    in :data:`_MCMC_CACHE`.

    On a CPU the chains are split into ``groups`` of equal size (default: one a chain)
    whose calls run on host threads, as many as the cores this process may use
    (:func:`_cpu_threads`): a program runs on one core, and two calls from two threads
    run side by side (0.87 -> 0.52 s of sampling on the seed blobs, 2 cores). Chain
    ``c``'s start and PRNG stream come from ``fold_in(key, c)``, and by default every
    chain runs in the one-chain program, so the draws do not depend on the machine's
    cores: programs for groups of other sizes round differently, and a chain amplifies
    round-off (4 chains in 1 group of 4 or 2 of 2, as 1- and 2-core machines ran them
    before, drew float32 weights up to 0.15 apart from the same seed).

    Why not ``MCMC.run``: NumPyro's ``fori_collect`` builds a new loop body on every
    call, so even with ``jit_model_args=True`` each run recompiled its ~3 s sampler
    (measured on the seed blobs: 6.2 s a rerun, 1.6 s of it sampling). NumPyro's chain
    initialisation (model trace, step-size search, adaptation state) runs op by op,
    compiling ~500 small programs (15 s of a 20 s cold run). Start points,
    initialisation and sampler as three jitted programs compiled the model's density and
    gradient three times (1.8 s of XLA time beyond the sampler's 3.6 s); as one, once.

    ``progress_bar``: the same program with a host callback every
    :data:`PROGRESS_STEPS`-th of the iterations (:func:`_progress`), which moves one
    tqdm bar over all chains; the draws are the same as without it (the callback
    returns nothing to the sampler). NumPyro's own progress bar would need its
    ``MCMC.run``, the slow path above (79.5 s against 17.2 s, issue 21).

    Padded (``config``'s last field): the program is the model's of K_max components
    and takes the start as a flat padded point (built on the host) and ``n_active``
    (the fit's K) as a traced argument, so every K reuses it.

    The model's data-scaled priors
    (:func:`bayesgmm.bayes.inference.target.prior_arrays`) are an argument of the
    program, so every data set of a shape reuses it.

    Returns (samples, extra) as NumPy arrays grouped by chain, like
    ``MCMC.get_samples`` and ``MCMC.get_extra_fields``.
    """
    n_model, ct, padded = config[0], config[1], config[-1]
    n_active = n_model if n_active is None else int(n_active)
    start = padded_start(init, ct, n_model, X.dtype) if padded else init
    if batched is None:
        batched = jax.default_backend() != "cpu"
    n_chains = config[5]
    if groups is None:
        groups = 1 if batched else n_chains
    per = n_chains // groups
    arrays = prior_arrays(model.keywords["priors"], X.dtype)
    calls = [(key, np.arange(g * per, (g + 1) * per, dtype=np.int32), X, start, jitter,
              np.asarray(n_active, np.int32), arrays) for g in range(groups)]
    # A compiled program takes arguments of these shapes and dtypes only, in the x64 mode
    # it was compiled in (estimators switch it on for float64 data).
    leaves, tree = jax.tree_util.tree_flatten(calls[0])
    signature = (tree, tuple((np.shape(a), str(a.dtype)) for a in leaves),
                 bool(jax.config.jax_enable_x64))
    progress_bar = bool(progress_bar)
    cache_key = ("vectorized", config, signature, batched, per, progress_bar)
    if cache_key not in _MCMC_CACHE:
        program = jit_compile_bound(_vectorized_program(model, config, batched, progress_bar))
        _MCMC_CACHE[cache_key] = program.compiled(*calls[0])
    run = _MCMC_CACHE[cache_key]
    with _progress(progress_bar, n_chains * (config[3] + config[4]), n_chains):
        if groups == 1:
            samples, extra = jax.device_get(run(*calls[0]))
        else:
            x64 = signature[-1]

            def run_group(args):  # JAX's x64 mode is per thread: carry the caller's over
                with jax.enable_x64(x64):
                    return jax.device_get(run(*args))

            with concurrent.futures.ThreadPoolExecutor(_cpu_threads(groups)) as pool:
                outs = list(pool.map(run_group, calls))
            samples, extra = jax.tree_util.tree_map(lambda *parts: np.concatenate(parts),
                                                    *outs)
    D = init.means.shape[-1]
    if padded:  # the model's sites and potential at its K (NumPy, (chain, draw, ...))
        samples, masked = padded_draws(samples, n_active, n_model, D, ct)
        for name in ("potential_energy", "energy"):
            extra[name] = (extra[name] + masked).astype(extra[name].dtype)
    elif handwritten(model):
        # NumPy on (chain, draw, ...) arrays: in the program this compiled for 0.15 s
        sites = potential.unflatten(samples, potential.unconstrained_shapes(n_model, D, ct))
        samples = potential.constrain(sites, ct, xp=np)
    return samples, extra


def _vectorized_program(model, config, batched: bool, progress_bar: bool = False):
    """(key, chain_ids (C,), X, init, jitter, n_active, prior arrays) -> (samples, extra)
    for chains ``chain_ids``, leading axes (chain, draw); the model's data-scaled priors
    are the argument's (:func:`bayesgmm.bayes.inference.target.rebound`).

    ``batched``: the chains are ``vmap``ped (the default on an accelerator), else they
    run one after another (``lax.map``) inside the program (the default on a CPU).
    Batching NUTS's nested ``while_loop``s over chains made tracing the largest part of
    a cold run on a CPU (2.5 s of ``vmap`` batching rules on the seed blobs), and
    vmapped chains advance in lockstep, every chain waiting for the deepest tree; a CPU
    gains nothing from the batch.

    Where :func:`bayesgmm.bayes.potential.supports` the model, the kernel gets that
    module's hand-written potential (NumPyro's numbers with fewer operations to trace and
    compile) and the program returns unconstrained draws, which ``_run_vectorized``
    constrains in NumPy; otherwise NumPyro's ``potential_energy`` and ``constrain_fn``
    of the model, in the program.

    ``progress_bar``: every ``every``-th iteration of each chain (and its last) calls
    :func:`_report` on the host with the iterations done since the last call."""
    K, ct, pk, n_warmup, n_draws, n_chains, target, depth, padded = config
    total = n_warmup + n_draws
    every = max(1, total // PROGRESS_STEPS)
    on_host = handwritten(model)  # draws are constrained on the host, by _run_vectorized

    def run_chains(model, keys, z, X, unravel, n_active):
        """Draws and ``EXTRA_FIELDS`` with leading axes (draw, chain) for keys (C, 2)
        and flat start points (C, S) when ``batched``, else (draw,) for one key (2,)
        and one start point (S,) (NumPyro vmaps by the key's rank).

        Points are flat vectors: NUTS carries a dozen copies of the point through its
        loops, and a dict of four sites made each copy four buffers (XLA inserted 592
        copies into the seed blobs' program; flat, 417).

        The kernel gets the model's potential, not the model: given a model, NumPyro's
        ``init`` also traces a search for valid initial values (the model, its gradient
        and a ``while_loop``) whose result it drops when ``init_params`` is given."""
        # NUTS moves through the coordinates in their units (the means in standard
        # units; :func:`coordinate_units`): its mass-matrix adaptation regularises
        # towards 1e-3 in absolute terms (Stan's), which on data in ten-thousandths
        # swamped the means' posterior variance (~1e-11) and ran every tree to the cap
        units = coordinate_units(unravel, z.shape[-1], X)
        energy = flat_potential(model, X, unravel, n_active)
        kernel = NUTS(potential_fn=lambda u: energy(u * units), target_accept_prob=target,
                      max_tree_depth=depth)
        state = kernel.init(keys, n_warmup, init_params=z / units)
        sample_fn = kernel._sample_fn  # set by init (vmapped over chains when batched)

        def step(s, i):  # collects z, then EXTRA_FIELDS in order
            s = sample_fn(s, (), {})
            if progress_bar:  # a host call; the sampler's values do not depend on it
                done = i + 1
                size = jnp.where(done == total, (total - 1) % every + 1, every)
                size = size * (keys.shape[0] if batched else 1)  # vmapped: all its chains
                jax.lax.cond((done % every == 0) | (done == total),
                             lambda: jax.debug.callback(_report, size), lambda: None)
            return s, (s.z, s.diverging, s.num_steps, s.adapt_state.step_size, s.energy,
                       s.potential_energy, s.accept_prob)

        # One loop over warm-up and draws: a second scan would compile the NUTS step
        # twice. Warm-up states are collected too (parameter-sized) and dropped.
        _, outs = jax.lax.scan(step, state, jnp.arange(total))
        z, *fields = jax.tree_util.tree_map(lambda a: a[n_warmup:], outs)
        z = z * units  # back in the model's unconstrained coordinates
        if on_host:
            return z, dict(zip(EXTRA_FIELDS, fields))  # unconstrained
        postprocess = lambda f: constrained(model, X, unravel(f))
        for _ in range(1 + batched):  # over draws, and over chains when batched
            postprocess = jax.vmap(postprocess)
        return postprocess(z), dict(zip(EXTRA_FIELDS, fields))  # constrained

    def program(key, chain_ids, X, start, jitter, n_active, arrays):
        model_ = rebound(model, arrays)
        k_init, k_run = jax.random.split(key)
        if padded:  # start: the flat padded point; n_active: the fit's K, traced
            shapes = potential.unconstrained_shapes(K, X.shape[1], ct)
            unravel, n_active = (lambda f: potential.unflatten(f, shapes)), n_active
            z = _jittered(k_init, start, jitter, chain_ids,
                          coordinate_units(unravel, start.shape[0], X))
        else:  # start: the GMMParams; n_active unused
            z, unravel = _start_flat(model_, k_init, X, start, jitter, covariance_type=ct,
                                     chain_ids=chain_ids)
            n_active = None
        keys = jax.vmap(lambda c: jax.random.fold_in(k_run, c))(chain_ids)
        if batched:  # (draw, chain) -> (chain, draw)
            return jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1),
                                          run_chains(model_, keys, z, X, unravel, n_active))
        return jax.lax.map(lambda kz: run_chains(model_, *kz, X, unravel, n_active),
                           (keys, z))  # (chain, draw)

    return program


@contextlib.contextmanager
def _progress(show: bool, total: int, n_chains: int):
    """While sampling: a tqdm bar over all chains' iterations, moved by :func:`_report`."""
    if not show:
        yield
        return
    from tqdm.auto import tqdm

    _BAR["bar"] = tqdm(total=total, desc=f"NUTS, {n_chains} chains", unit="it")
    try:
        yield
    finally:
        _BAR["bar"].close()
        _BAR["bar"] = None


def _report(size) -> None:
    """Host callback of a sampler compiled with progress: ``size`` (a scalar, or one per
    chain when the chains are vmapped) iterations done since the last call."""
    bar = _BAR["bar"]
    if bar is not None:
        bar.update(int(np.sum(np.asarray(size))))
