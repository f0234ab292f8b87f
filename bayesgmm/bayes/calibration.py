"""Is the posterior calibrated? Simulation-based calibration, coverage, membership
calibration and label-invariant convergence checks, as library functions that the
tests (tests/test_calibration.py) and the full study (benchmarks/sbc.py) share.

Glossary: R replications (simulated data sets), N samples, D features, K components,
L thinned posterior draws per replication, P scalar parameters checked, C chains,
S draws per chain.

Simulation-based calibration (Talts et al. 2018). Draw θ from the prior, simulate X
from θ, draw L posterior draws given X; if the sampler is right, the rank of each true
scalar f(θ) among its L draws is uniform on {0, ..., L}. Any measurable f works, so
label switching is handled by choosing f label-invariant: :func:`order_components`
sorts components by their first mean coordinate, truth and draws alike, and the
scalars are those of the sorted mixture (:func:`sbc_scalars`). This is exact, with no
relabeling step that could use the truth (Hungarian matching of draws to the true
labels pulls draws towards the truth and biases ranks to the middle). Where components
overlap in that coordinate, the sorted posterior may be multimodal; a sampler that
misses a mode then fails SBC, which is what SBC is for. The priors must be fixed (not
scaled to the data: a data-scaled prior is not the distribution θ is drawn from).

The over-fitted (sparse) mixture (Rousseau & Mengersen 2011; Malsiner-Walli et al.
2016) has its own scalars (:func:`sparse_scalars`, ``run_sbc(quantities="sparse")``):
with a sparse Dirichlet prior most components are empty, their means and scales are
draws from the prior that the data never see, and sorting components by a mean
coordinate would interleave empty and occupied ones. So the scalars are the weights
sorted in decreasing order, the number of occupied components K+ (the quantity an
over-fitted mixture estimates; from the allocations z, the simulated ones for the truth
and one draw of z ~ p(z | x, θ) per posterior draw, which makes (θ, z) a joint posterior
draw), the mean and log standard deviations of the heaviest component, and the data's
log-likelihood log p(X | θ) (a data-dependent test quantity, sensitive to errors the
parameters alone hide: Modrák et al. 2023). All are label-invariant, so SBC stays exact.

Uniformity is judged twice: a chi-square test on binned ranks (:func:`chi2_uniformity`)
and the simultaneous ECDF band of Säilynoja, Bürkner & Vehtari (2022), computed by
simulation (:func:`ecdf_band`, :func:`ecdf_uniformity`).

Coverage and membership calibration work on repeated simulations from fixed known
parameters, with draws relabeled to the truth: :func:`interval_coverage`,
:func:`expected_calibration_error` and :func:`reliability_curve`. Fixing θ asks more
of the posterior than its construction promises: its membership probabilities are
calibrated on average over θ drawn from the prior, not for each θ, and on a data set
whose likelihood favours a configuration unlike the truth the posterior follows the
data. So :func:`run_sbc` also scores, on its prior draws, the co-clustering forecasts
P(z_i = z_j | X) of the posterior against EM's plug-in ones (:func:`pair_forecasts`,
label-invariant, so no relabeling step uses the truth): there the posterior's must be
calibrated, up to noise, and a plug-in's need not be.

Label-invariant convergence (:func:`invariant_diagnostics`): R-hat and bulk ESS of the
log density, the sorted weights and each sample's maximum membership probability, which
relabeling cannot fake.
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import NamedTuple

import jax
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from bayesgmm import fitting
from bayesgmm.bayes.inference import fit_map, fit_svi, sample_nuts
from bayesgmm.bayes.inference.svi import guided
from bayesgmm.bayes.inference.target import bound_model, init_sites, priors_key
from bayesgmm.bayes.model import Priors, from_sites, gmm_model
from bayesgmm.bayes.posterior import membership, rhat
from bayesgmm.bayes.relabel import apply_permutations, log_responsibilities, relabel
from bayesgmm.density import log_resp, sample
from bayesgmm.params import GMMParams, take_components

__all__ = ["SBCResult", "CoverageResult", "run_sbc", "run_coverage", "parameter_errors",
           "InvariantDiagnostics", "ECDFBand", "check_fixed_priors", "sample_prior",
           "simulate", "em_and_map", "svi_draws", "order_components", "sbc_scalars",
           "sparse_scalars", "QUANTITIES", "thin", "thin_params", "sbc_ranks",
           "chi2_uniformity", "ecdf_band", "ecdf_uniformity", "interval_coverage",
           "expected_calibration_error", "pooled_calibration_error", "brier_score",
           "confidence_gap",
           "reliability_curve", "pair_forecasts",
           "binary_calibration_error",
           "invariant_diagnostics", "ess_bulk", "log_log_slope"]


# Compiled SVI programs by configuration (X is an argument: data sets of one shape share one).
_SVI_PROGRAMS: dict = {}
# Compiled prior and data simulators by configuration.
_PROGRAMS: dict = {}
# The scalar sets :func:`run_sbc` ranks ("sorted": :func:`sbc_scalars` of the components
# sorted by their first mean coordinate; "sparse": :func:`sparse_scalars`).
QUANTITIES = ("sorted", "sparse")


class InvariantDiagnostics(NamedTuple):
    """R-hat and bulk ESS of label-invariant quantities (:func:`invariant_diagnostics`);
    NaN where not computable (one chain, or no log density or data given)."""

    lp_rhat: float  # the log density
    lp_ess: float
    weights_rhat: np.ndarray  # shape=(K,): each of the weights sorted in increasing order
    weights_ess: np.ndarray  # shape=(K,)
    max_membership_rhat: float  # max over samples of R-hat of max_k p(z_n = k | x_n, θ)
    max_membership_ess: float  # min over samples of the bulk ESS of the same


class SBCResult(NamedTuple):
    """One SBC study (:func:`run_sbc`)."""

    ranks: np.ndarray  # shape=(R, P), int: rank of each true scalar among n_draws draws
    names: list  # (P,) scalar names (:func:`sbc_scalars`)
    n_draws: int  # L: thinned draws per replication (ranks lie in 0..L)
    chi2_p: np.ndarray  # shape=(P,): chi-square p-value of each scalar's ranks
    ecdf_p: np.ndarray  # shape=(P,): simultaneous-ECDF p-value of each scalar's ranks
    seconds: float  # wall time of the fits
    pair_ece_posterior: float  # co-clustering ECE of the posterior, pooled over data sets
    pair_ece_em: float  # the same of EM's plug-in memberships (:func:`pair_forecasts`)


class CoverageResult(NamedTuple):
    """Repeated fits to data from one known mixture (:func:`run_coverage`)."""

    covered: np.ndarray  # shape=(R, P), bool: the central interval covers the truth
    names: list  # (P,) scalar names
    ece_posterior: np.ndarray  # shape=(R,): ECE of posterior-mean memberships
    ece_em: np.ndarray  # shape=(R,): ECE of EM's plug-in memberships
    ece_truth: np.ndarray  # shape=(R,): ECE of the true parameters' memberships
    brier_posterior: np.ndarray  # shape=(R,): Brier score of posterior-mean memberships
    brier_em: np.ndarray  # shape=(R,): Brier score of EM's plug-in memberships
    brier_truth: np.ndarray  # shape=(R,): Brier score of the true parameters' memberships
    proba: np.ndarray  # shape=(R, N, K): posterior-mean memberships, truth's labels
    proba_em: np.ndarray  # shape=(R, N, K)
    proba_truth: np.ndarray  # shape=(R, N, K): the true parameters' memberships
    labels: np.ndarray  # shape=(R, N): the true components
    lp_rhat: np.ndarray  # shape=(R,): log-density R-hat of each fit (NaN: SVI)
    seconds: float


class ECDFBand(NamedTuple):
    """Simultaneous band for the ECDF of R ranks, each uniform on {0, ..., L}."""

    z: np.ndarray  # shape=(L + 1,): evaluation points (rank + 1) / (L + 1) in (0, 1]
    lower: np.ndarray  # shape=(L + 1,): lower band of the ECDF at z
    upper: np.ndarray  # shape=(L + 1,)
    gamma: float  # the pointwise level giving the simultaneous ``prob``
    null_min_tail: np.ndarray  # shape=(n_sim,): the statistic under uniformity (for p-values)


def run_sbc(seed: int, priors: Priors, *, method: str = "nuts", n_replications: int = 40,
            n_samples: int = 50, n_components: int = 2, n_features: int = 2,
            n_draws: int = 19, fit_priors: Priors | None = None, n_chains: int = 2,
            n_warmup: int = 200, n_draws_per_chain: int = 200, n_svi_steps: int = 2000,
            n_bins: int = 5, dtype=np.float32, quantities: str = "sorted",
            replications=None) -> SBCResult:
    """Simulation-based calibration of ``method`` ("nuts" or "svi"): ``n_replications``
    times draw θ from ``priors`` (fixed), simulate ``n_samples`` points, fit from the
    EM-then-MAP start under ``fit_priors`` (default ``priors``; a different value is a
    mutant), and rank the truth's scalars among ``n_draws`` thinned draws:
    ``quantities="sorted"`` those of :func:`sbc_scalars` of the components sorted by
    their first mean coordinate, ``"sparse"`` those of :func:`sparse_scalars` (an
    over-fitted mixture: sorted weights, occupied components, the heaviest component,
    the log-likelihood).

    ``replications`` (indices into the ``n_replications`` draws, default all) fits a
    subset: replication r is the same truth, data and key in any subset, and the
    compiled prior and data programs are those of the whole study.

    Everything follows from ``seed``; the programs compile once per configuration."""
    if quantities not in QUANTITIES:
        raise ValueError(f"run_sbc: quantities must be one of {QUANTITIES}, got "
                         f"{quantities!r}")
    priors = check_fixed_priors(priors)
    fit_priors = priors if fit_priors is None else check_fixed_priors(fit_priors)
    if np.size(priors.mean_loc) != n_features:
        raise ValueError(f"priors.mean_loc has {np.size(priors.mean_loc)} features, "
                         f"n_features={n_features}")
    key = jax.random.PRNGKey(seed)
    k_prior, k_data, k_fit = jax.random.split(key, 3)
    truths = sample_prior(k_prior, priors, n_components, n_replications).astype(dtype)
    Xs, zs = simulate(k_data, truths, n_samples)
    fit_keys = jax.random.split(k_fit, n_replications)
    if replications is not None:
        chosen = np.asarray(replications, int)
        truths = jax.tree_util.tree_map(lambda a: np.asarray(a)[chosen], truths)
        Xs, zs, fit_keys = Xs[chosen], zs[chosen], fit_keys[chosen]
        seeds = [seed + int(r) for r in chosen]
    else:
        seeds = [seed + r for r in range(n_replications)]
    if quantities == "sorted":
        truth_scalars, names = sbc_scalars(order_components(truths))
    else:
        truth_scalars, names = sparse_scalars(truths, Xs, zs)
    draws, pairs_post, pairs_em = [], [], []
    t0 = time.perf_counter()
    for r in range(len(seeds)):
        em, start = em_and_map(Xs[r], fit_priors, n_components, seed=seeds[r])
        if method == "nuts":
            with jax.numpy_dtype_promotion("standard"):
                params = sample_nuts(fit_keys[r], Xs[r], start, n_components=n_components,
                                     priors=fit_priors, n_warmup=n_warmup,
                                     n_draws=n_draws_per_chain, n_chains=n_chains).params
        elif method == "svi":
            params = svi_draws(fit_keys[r], Xs[r], start, fit_priors,
                               n_components=n_components, n_steps=n_svi_steps,
                               n_draws=n_draws)
        else:
            raise ValueError(f"run_sbc: method must be 'nuts' or 'svi', got {method!r}")
        if quantities == "sorted":
            values, _ = sbc_scalars(order_components(params))
            draws.append(thin(values, n_draws))
        else:  # thin first: the scalars need the data and a draw of z per parameter set
            kept = thin_params(params, n_draws)
            values, _ = sparse_scalars(kept, np.broadcast_to(Xs[r], (n_draws, *Xs[r].shape)),
                                       seed=seeds[r])
            draws.append(values)
        some = thin_params(params, 4 * (n_draws + 1)).to_numpy(np.float64)  # (L,)
        X64 = np.asarray(Xs[r], np.float64)
        pairs_post.append(pair_forecasts(np.exp(log_responsibilities(some, X64)), zs[r]))
        pairs_em.append(pair_forecasts(
            np.exp(log_responsibilities(em.to_numpy(np.float64), X64))[None], zs[r]))
    seconds = time.perf_counter() - t0
    ranks = sbc_ranks(truth_scalars, np.stack(draws), seed=seed)
    pooled = [binary_calibration_error(*(np.concatenate(c) for c in zip(*pairs)))
              for pairs in (pairs_post, pairs_em)]
    return SBCResult(ranks, names, n_draws, chi2_uniformity(ranks, n_draws, n_bins),
                     ecdf_uniformity(ranks, n_draws), seconds, *pooled)


def run_coverage(seed: int, truth: GMMParams, *, priors: Priors | None = None,
                 method: str = "nuts", n_replications: int = 12, n_samples: int = 400,
                 prob: float = 0.9, n_chains: int = 2, n_warmup: int = 300,
                 n_draws_per_chain: int = 300, n_keep: int = 200,
                 dtype=np.float32, replications=None) -> CoverageResult:
    """Fit data simulated from one known ``truth`` (batch shape ()) ``n_replications``
    times through the estimator's path (EM, MAP, then ``method``; ``priors`` default the
    estimator's, :class:`Priors` resolved on each data set), relabel the draws to the
    truth (Hungarian) and record interval coverage and membership calibration beside
    EM's plug-in memberships and the truth's own.

    ``replications`` (indices into the ``n_replications`` data sets, default all) fits
    a subset: data set r is the same data and key whichever subset it is fitted in, so a
    study split over processes, or rerun on its worst data sets, agrees with the whole.
    The result's rows follow ``replications``."""
    K = truth.n_components
    truth = truth.to_numpy().astype(dtype)
    key = jax.random.PRNGKey(seed)
    k_data, k_fit = jax.random.split(key)
    batch = GMMParams(*(np.broadcast_to(a, (n_replications, *a.shape)) for a in
                        (truth.weights, truth.means, truth.cov_factor)), truth.covariance_type)
    Xs, zs = simulate(k_data, batch, n_samples)
    truth_scalars, names = sbc_scalars(truth)
    fit_keys = jax.random.split(k_fit, n_replications)
    covered, ece_p, ece_em, ece_t, probas, probas_em, lp_r = [], [], [], [], [], [], []
    probas_t = []
    brier_p, brier_em, brier_t = [], [], []
    chosen = range(n_replications) if replications is None else [int(r) for r in replications]
    t0 = time.perf_counter()
    for r in chosen:
        X, z = Xs[r], zs[r]
        pri = (priors or Priors()).resolve(X)
        em, start = em_and_map(X, pri, K, seed + r)
        with jax.numpy_dtype_promotion("standard"):
            if method == "nuts":
                res = sample_nuts(fit_keys[r], X, start, n_components=K, priors=pri,
                                  n_warmup=n_warmup, n_draws=n_draws_per_chain,
                                  n_chains=n_chains)
                lp_r.append(rhat(res.info.lp))
            else:
                res = fit_svi(fit_keys[r], X, start, n_components=K, priors=pri,
                              n_draws=n_keep)
                lp_r.append(float("nan"))
        draws = relabel(res.params, truth).params
        values, _ = sbc_scalars(draws)
        covered.append(interval_coverage(truth_scalars[None], thin(values, n_keep)[None],
                                         prob)[0])
        with jax.numpy_dtype_promotion("standard"):
            proba = membership(draws, X)[0]
        em_aligned = relabel(jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], em),
                             truth).params
        proba_em = np.exp(log_responsibilities(em_aligned, X))[0, 0]
        proba_t = np.exp(log_responsibilities(truth, X))
        probas.append(proba)
        probas_em.append(proba_em)
        probas_t.append(proba_t)
        ece_p.append(expected_calibration_error(proba, z))
        ece_em.append(expected_calibration_error(proba_em, z))
        ece_t.append(expected_calibration_error(proba_t, z))
        brier_p.append(brier_score(proba, z))
        brier_em.append(brier_score(proba_em, z))
        brier_t.append(brier_score(proba_t, z))
    return CoverageResult(np.stack(covered), names, np.array(ece_p), np.array(ece_em),
                          np.array(ece_t), np.array(brier_p), np.array(brier_em),
                          np.array(brier_t), np.stack(probas), np.stack(probas_em),
                          np.stack(probas_t),
                          zs[list(chosen)], np.array(lp_r), time.perf_counter() - t0)


def parameter_errors(seed: int, truth: GMMParams, n_samples_list, *, n_replications: int = 4,
                     priors: Priors | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Root-mean-square error of the EM and MAP estimates of the scalars of
    :func:`sbc_scalars` (relabeled to ``truth``) at each data size: two arrays of shape
    (len(n_samples_list),), averaged over ``n_replications`` data sets (float64)."""
    em_err, map_err = [], []
    truth = truth.to_numpy(np.float64)
    t_scalars, _ = sbc_scalars(truth)
    for i, n in enumerate(n_samples_list):
        batch = GMMParams(*(np.broadcast_to(a, (n_replications, *a.shape)) for a in
                            (truth.weights, truth.means, truth.cov_factor)),
                          truth.covariance_type)
        Xs, _ = simulate(jax.random.PRNGKey(seed + i), batch.astype(np.float32), n)
        e1, e2 = [], []
        for r in range(n_replications):
            X = Xs[r]
            pri = (priors or Priors()).resolve(X)
            # EM to convergence (tol 1e-3 on the mean log-likelihood, the default, stops
            # overlapping components ~0.1 short of the optimum, hiding the 1/sqrt(N) law)
            em, mp = em_and_map(X, pri, truth.n_components, seed + r, tol=1e-7)
            for p, out in ((em, e1), (mp, e2)):
                aligned = relabel(jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], p),
                                  truth).params
                v, _ = sbc_scalars(aligned)
                out.append(np.mean((v[0, 0] - t_scalars) ** 2))
        em_err.append(np.sqrt(np.mean(e1)))
        map_err.append(np.sqrt(np.mean(e2)))
    return np.array(em_err), np.array(map_err)


def check_fixed_priors(priors: Priors) -> Priors:
    """``priors`` with every field set (no data scaling), as NumPy arrays; a ValueError
    naming the field otherwise."""
    for name in ("mean_loc", "mean_scale", "scale_loc"):
        if getattr(priors, name) is None:
            raise ValueError(f"Simulation needs fixed priors: set Priors.{name} (it is "
                             f"None, which means 'scale to the data')")
    D = np.size(priors.mean_loc)
    return priors.resolve(np.zeros((2, D)))  # every field set: resolve only checks


def sample_prior(key, priors: Priors, n_components: int, n_draws: int,
                 covariance_type: str = "full") -> GMMParams:
    """``n_draws`` parameter sets from the model's own prior (NumPyro's ``Predictive`` on
    :func:`bayesgmm.bayes.model.gmm_model`); batch shape (n_draws,), NumPy."""
    priors = check_fixed_priors(priors)
    D = np.size(priors.mean_loc)
    model = functools.partial(gmm_model, n_components=n_components,
                              covariance_type=covariance_type, priors=priors,
                              n_features=D, n_obs=1)
    # One compiled program per configuration (XLA compiles it in ~20 s on a CPU: the
    # Dirichlet's and LKJ's rejection samplers); run op by op it took as long every call.
    config = ("prior", n_components, covariance_type, priors_key(priors), n_draws)
    if config not in _PROGRAMS:
        _PROGRAMS[config] = jax.jit(Predictive(model, num_samples=n_draws))
    with jax.numpy_dtype_promotion("standard"):
        sites = _PROGRAMS[config](key)
    sites = {k: np.asarray(v) for k, v in sites.items() if k != "obs"}
    return from_sites(sites, covariance_type)


def simulate(key, truths: GMMParams, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """One data set per parameter set of ``truths`` (batch shape (R,)): X (R, N, D) in
    the truths' dtype and the true components z (R, N)."""
    R = truths.batch_shape[0]
    keys = jax.random.split(key, R)
    config = ("simulate", n_samples)
    if config not in _PROGRAMS:  # op by op, the vmapped sampler took ~20 s a call
        _PROGRAMS[config] = jax.jit(jax.vmap(lambda k, p: sample(k, p, n_samples)))
    X, z = _PROGRAMS[config](keys, jax.tree_util.tree_map(np.asarray, truths))
    return np.asarray(X), np.asarray(z)


def em_and_map(X, priors: Priors, n_components: int, seed: int = 0,
               covariance_type: str = "full", n_init: int = 3,
               tol: float = 1e-3) -> tuple[GMMParams, GMMParams]:
    """The estimator's route to a start: EM (k-means seeded, ``n_init`` restarts, ``tol``
    on the mean log-likelihood), then MAP under ``priors`` from it. Returns (EM fit, MAP),
    batch shape () each, NumPy in X's dtype."""
    options = fitting.FitOptions(n_components=n_components, covariance_type=covariance_type,
                                 random_state=seed, n_init=n_init, reg_covar=1e-4,
                                 tol=tol, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a start: MAP refines it
        em, _ = fitting.fit(X, options)
    em = take_components(em, n_components).astype(X.dtype)
    with jax.numpy_dtype_promotion("standard"):
        result = fit_map(jax.random.PRNGKey(seed), jax.numpy.asarray(X), em,
                         n_components=n_components, covariance_type=covariance_type,
                         priors=priors)
    return em, jax.tree_util.tree_map(lambda a: np.asarray(a)[0, 0], result.params)


def svi_draws(key, X, start: GMMParams, priors: Priors, *, n_components: int,
              covariance_type: str = "full", n_steps: int = 2000, n_draws: int = 100,
              learning_rate: float = 0.01) -> GMMParams:
    """SVI as :func:`bayesgmm.bayes.inference.fit_svi` runs it (its guide,
    :func:`bayesgmm.bayes.inference.svi.guided`, initialised at ``start``), compiled
    once per configuration and reused for every data set of the same shape (``fit_svi``
    goes through ``SVI.run``, which compiles anew on each call); batch shape (1, n_draws)."""
    config = (n_components, covariance_type, priors_key(priors), n_steps, n_draws,
              float(learning_rate))
    if config not in _SVI_PROGRAMS:
        _SVI_PROGRAMS[config] = _svi_program(config, priors)
    program = _SVI_PROGRAMS[config]
    model = bound_model(n_components, covariance_type, priors)
    with jax.numpy_dtype_promotion("standard"):
        sites = init_sites(start, model, X.dtype)
        draws = jax.device_get(program(key, jax.numpy.asarray(X), sites))
    return from_sites({k: np.asarray(v)[None] for k, v in draws.items()}, covariance_type)


def order_components(params: GMMParams) -> GMMParams:
    """Components sorted by their first mean coordinate (any batch shape): a
    label-invariant function of θ, so SBC on it is exact."""
    p = params.to_numpy()
    B = p.batch_shape
    flat = p.flatten_batch()
    perms = np.argsort(flat.means[..., 0], axis=-1)  # (M, K): K is the last axis
    out = apply_permutations(flat, perms)
    return GMMParams(*(a.reshape(*B, *a.shape[1:]) for a in (out.weights, out.means,
                                                            out.cov_factor)),
                     out.covariance_type)


def sbc_scalars(params: GMMParams) -> tuple[np.ndarray, list[str]]:
    """The scalars SBC ranks, for any batch shape B: the first K-1 weights, every mean
    coordinate, every log standard deviation and (D ≥ 2) the correlation of features 0
    and 1 in each component. Returns (values (*B, P), names (P,)). Sort first
    (:func:`order_components`) where labels are not fixed."""
    p = params.to_numpy()
    K, D = p.n_components, p.n_features
    cov = np.asarray(p.full_covariances)  # (*B, K, D, D)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))  # (*B, K, D)
    cols = [p.weights[..., :K - 1], p.means.reshape(*p.batch_shape, K * D),
            np.log(sd).reshape(*p.batch_shape, K * D)]
    names = ([f"weights[{k}]" for k in range(K - 1)]
             + [f"means[{k},{d}]" for k in range(K) for d in range(D)]
             + [f"log_sd[{k},{d}]" for k in range(K) for d in range(D)])
    if D >= 2:
        cols.append(cov[..., 0, 1] / (sd[..., 0] * sd[..., 1]))
        names += [f"corr[{k}]" for k in range(K)]
    return np.concatenate(cols, axis=-1), names


def sparse_scalars(params: GMMParams, X: np.ndarray, z: np.ndarray | None = None,
                   seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Label-invariant scalars of an over-fitted mixture, one set per data set.

    Parameters
    ----------
    params : GMMParams
        Batch shape (M,): M parameter sets (the truths of M data sets, or M thinned
        draws given one data set).
    X : array of shape (M, N, D)
        The data each parameter set is scored on.
    z : int array of shape (M, N), optional
        The allocations (the truth's simulated components); when not given, one draw of
        z_n ~ p(z_n | x_n, θ) per parameter set (numpy, from ``seed``).

    Returns
    -------
    values : array of shape (M, P)
        ``w(1) ≥ ... ≥ w(K-1)`` (the weights sorted in decreasing order; the last one is
        1 minus the others), ``n_occupied`` (components that hold at least one sample in
        z), the heaviest component's D mean coordinates and D log standard deviations,
        and ``log_lik`` = Σ_n log p(x_n | θ).
    names : list of P str
    """
    p = params.to_numpy()
    M, K, D = p.batch_shape[0], p.n_components, p.n_features
    X = np.asarray(X)
    config = ("loglik", X.dtype.str)
    if config not in _PROGRAMS:  # (M, N, K) responsibilities and (M,) log-likelihoods
        _PROGRAMS[config] = jax.jit(jax.vmap(lambda q, x: _resp_and_loglik(q, x)))
    resp, loglik = jax.device_get(_PROGRAMS[config](
        jax.tree_util.tree_map(lambda a: np.asarray(a, X.dtype), p), X))
    if z is None:
        rng = np.random.default_rng(seed)
        cum = np.cumsum(np.asarray(resp, np.float64), axis=-1)  # (M, N, K): K is the last axis
        u = rng.random(cum.shape[:-1])[..., None] * cum[..., -1:]
        z = np.minimum((u > cum).sum(axis=-1), K - 1)  # inverse-CDF draw of z_n
    z = np.asarray(z)
    n_occupied = np.stack([(z == k).any(axis=-1) for k in range(K)], axis=-1).sum(axis=-1)
    order = np.argsort(-p.weights, axis=-1, kind="stable")  # (M, K): heaviest first
    w = np.take_along_axis(p.weights, order, axis=-1)
    top = order[:, 0]
    sd = np.sqrt(np.diagonal(np.asarray(p.full_covariances), axis1=-2, axis2=-1))  # (M, K, D)
    rows = np.arange(M)
    values = np.concatenate([w[:, :K - 1], n_occupied[:, None], p.means[rows, top],
                             np.log(sd[rows, top]), np.asarray(loglik)[:, None]], axis=-1)
    names = ([f"w({k + 1})" for k in range(K - 1)] + ["n_occupied"]
             + [f"top_mean[{d}]" for d in range(D)] + [f"top_log_sd[{d}]" for d in range(D)]
             + ["log_lik"])
    return values.astype(np.float64), names


def thin_params(params: GMMParams, n_keep: int) -> GMMParams:
    """``n_keep`` evenly spaced parameter sets of draws of batch shape (C, S), chains
    concatenated (as :func:`thin`): batch shape (n_keep,), NumPy."""
    flat = params.flatten_batch()
    idx = np.linspace(0, flat.weights.shape[0] - 1, n_keep).round().astype(int)
    return GMMParams(flat.weights[idx], flat.means[idx], flat.cov_factor[idx],
                     flat.covariance_type)


def thin(values: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` evenly spaced draws of (C, S, ...) values, chains concatenated:
    shape (n_keep, ...)."""
    flat = values.reshape(-1, *values.shape[2:])
    idx = np.linspace(0, flat.shape[0] - 1, n_keep).round().astype(int)
    return flat[idx]


def sbc_ranks(truth: np.ndarray, draws: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rank of each true scalar among its draws: truth (R, P), draws (R, L, P) -> ranks
    (R, P) in {0, ..., L}; ties (a sampler that did not move) broken at random."""
    rng = np.random.default_rng(seed)
    below = (draws < truth[:, None, :]).sum(axis=1)
    ties = (draws == truth[:, None, :]).sum(axis=1)
    return below + rng.integers(0, ties + 1)


def chi2_uniformity(ranks: np.ndarray, n_draws: int, n_bins: int = 5) -> np.ndarray:
    """p-value of Pearson's chi-square test that each column of ranks (R, P), on
    {0, ..., n_draws}, is uniform, over ``n_bins`` bins of equal width (n_draws + 1 must
    be a multiple of n_bins, so bins hold equally many rank values): shape (P,)."""
    L1 = n_draws + 1
    if L1 % n_bins:
        raise ValueError(f"n_draws + 1 = {L1} ranks cannot be split into n_bins={n_bins} "
                         f"equal bins; choose n_draws so that n_draws + 1 is a multiple")
    binned = np.asarray(ranks) * n_bins // L1  # (R, P)
    counts = np.stack([(binned == b).sum(axis=0) for b in range(n_bins)])  # (n_bins, P)
    return stats.chisquare(counts, axis=0).pvalue


@functools.lru_cache(maxsize=16)
def ecdf_band(n_ranks: int, n_draws: int, prob: float = 0.95, n_sim: int = 2000,
              seed: int = 0) -> ECDFBand:
    """Simultaneous ``prob`` band for the ECDF of ``n_ranks`` ranks uniform on
    {0, ..., n_draws} (Säilynoja et al. 2022, the simulation method): the pointwise
    binomial level gamma is chosen so that ``prob`` of uniform rank sets stay inside the
    band at every point at once."""
    z = np.arange(1, n_draws + 2) / (n_draws + 1)
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, n_draws + 1, size=(n_sim, n_ranks))
    null = np.array([_min_tail(s, z, n_ranks, n_draws) for s in sims])
    gamma = float(np.quantile(null, 1 - prob))
    lower = stats.binom.ppf(gamma / 2, n_ranks, z) / n_ranks
    upper = stats.binom.ppf(1 - gamma / 2, n_ranks, z) / n_ranks
    return ECDFBand(z, lower, upper, gamma, null)


def ecdf_uniformity(ranks: np.ndarray, n_draws: int, n_sim: int = 2000) -> np.ndarray:
    """p-value of the simultaneous ECDF test per column of ranks (R, P): the fraction of
    uniform rank sets whose smallest pointwise binomial tail probability is at most the
    observed one; shape (P,)."""
    ranks = np.asarray(ranks)
    R = ranks.shape[0]
    band = ecdf_band(R, n_draws, n_sim=n_sim)
    z = band.z
    obs = np.array([_min_tail(ranks[:, j], z, R, n_draws) for j in range(ranks.shape[1])])
    return (np.sum(band.null_min_tail[None, :] <= obs[:, None], axis=1) + 1) / (n_sim + 1)


def interval_coverage(truth: np.ndarray, draws: np.ndarray, prob: float = 0.9) -> np.ndarray:
    """Whether the central ``prob`` interval of draws (R, L, P) covers truth (R, P):
    bool (R, P)."""
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
    return (lo <= truth) & (truth <= hi)


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray,
                               n_bins: int = 10) -> float:
    """Class-wise expected calibration error of membership probabilities proba (N, K)
    against true components labels (N,): every (n, k) pair is one forecast
    p(z_n = k) with outcome [z_n = k]; over ``n_bins`` equal-width bins,
    Σ_b (n_b / NK) |mean forecast_b - frequency_b|. 0 for calibrated probabilities (up
    to sampling noise)."""
    conf, freq, count = reliability_curve(proba, labels, n_bins)
    keep = count > 0
    return float(np.sum(count[keep] * np.abs(conf[keep] - freq[keep])) / count.sum())


def pooled_calibration_error(proba: np.ndarray, labels: np.ndarray,
                             n_bins: int = 10) -> float:
    """Class-wise ECE of the forecasts of several data sets together: proba (R, N, K)
    against labels (R, N). With R·N forecasts the bins' sampling noise is ~√R smaller
    than one data set's (the true parameters' memberships: ~0.003 pooled over 30 data
    sets of 400 points, ~0.018 per data set), so it measures the forecasts' bias rather
    than one data set's luck."""
    proba = np.asarray(proba)
    return expected_calibration_error(proba.reshape(-1, proba.shape[-1]),
                                      np.asarray(labels).ravel(), n_bins)


def brier_score(proba: np.ndarray, labels: np.ndarray) -> float:
    """Brier score of membership probabilities proba (N, K) against true components
    labels (N,): the mean over points of Σ_k (p_k - [z = k])². A proper scoring rule
    (Brier 1950): unlike the binned ECE it is lowest in expectation for the true
    probabilities, so it also rewards sharpness, and it is not fooled by forecasts that
    are calibrated only on average. Murphy's decomposition: reliability (the
    miscalibration ECE measures) - resolution + uncertainty."""
    proba = np.asarray(proba, dtype=np.float64)
    outcome = np.asarray(labels)[:, None] == np.arange(proba.shape[1])
    return float(np.mean(np.sum((proba - outcome) ** 2, axis=1)))


def confidence_gap(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean confidence minus accuracy of membership probabilities proba (N, K): the
    mean of max_k p_k less the fraction of points whose most probable component is
    their true one. Positive: over-confident; negative: under-confident."""
    proba = np.asarray(proba, dtype=np.float64)
    return float(np.mean(proba.max(1)) - np.mean(proba.argmax(1) == np.asarray(labels)))


def pair_forecasts(resp: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Co-clustering forecasts P(z_i = z_j | X) of every pair i < j and their outcomes.

    A label-invariant membership forecast: no relabeling (which would use the truth) is
    needed. Given θ the allocations are independent, so P(z_i = z_j | X, θ) =
    Σ_k r_ik r_jk; the posterior's is its mean over draws. Where θ and z are drawn from
    the prior the fitted model assumes (SBC), the posterior's forecasts are calibrated
    by construction, whatever the sampler is asked: a correct sampler's ECE is then
    sampling noise, and a plug-in estimate's (EM's) is what ignoring the parameters'
    uncertainty costs.

    Parameters
    ----------
    resp : array of shape (L, N, K)
        Responsibilities p(z_n = k | x_n, θ) of L parameter sets (draws; L = 1: a
        plug-in estimate).
    labels : int array of shape (N,)
        The true allocations.

    Returns
    -------
    forecast, outcome : arrays of shape (N(N-1)/2,)
        float64 forecasts in [0, 1] and 0/1 outcomes [z_i = z_j].
    """
    resp = np.asarray(resp, np.float64)
    co = np.einsum("lik,ljk->ij", resp, resp) / resp.shape[0]  # (N, N): mean over draws
    i, j = np.triu_indices(resp.shape[1], 1)
    labels = np.asarray(labels)
    return co[i, j], (labels[i] == labels[j]).astype(np.float64)


def binary_calibration_error(forecast: np.ndarray, outcome: np.ndarray,
                             n_bins: int = 10) -> float:
    """Expected calibration error of binary forecasts (P,) against 0/1 outcomes (P,):
    Σ_b (n_b / P) |mean forecast_b - frequency_b| over ``n_bins`` equal-width bins."""
    f = np.asarray(forecast, np.float64)
    b = np.minimum((f * n_bins).astype(int), n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(float)
    gap = np.abs(np.bincount(b, f, minlength=n_bins)
                 - np.bincount(b, np.asarray(outcome, np.float64), minlength=n_bins))
    return float(gap.sum() / count.sum())


def reliability_curve(proba: np.ndarray, labels: np.ndarray, n_bins: int = 10):
    """Reliability diagram data of class-wise forecasts (see
    :func:`expected_calibration_error`): mean forecast, observed frequency and count per
    bin, each of shape (n_bins,) (NaN in empty bins)."""
    proba = np.asarray(proba, dtype=np.float64)
    K = proba.shape[1]
    outcome = (np.asarray(labels)[:, None] == np.arange(K)).ravel().astype(float)
    p = proba.ravel()
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(b, p, minlength=n_bins) / count
        freq = np.bincount(b, outcome, minlength=n_bins) / count
    return conf, freq, count


def invariant_diagnostics(draws: GMMParams, X=None, lp=None) -> InvariantDiagnostics:
    """R-hat and bulk ESS of label-invariant quantities of draws of batch shape (C, S).

    Parameters
    ----------
    draws : GMMParams
        Batch shape (C, S); raw or relabeled (the answer is the same).
    X : array of shape (N, D), optional
        For each sample's maximum membership probability max_k p(z_n = k | x_n, θ).
    lp : array of shape (C, S), optional
        Each draw's log density (``NUTSInfo.lp``).
    """
    p = draws.to_numpy(np.float64)
    if len(p.batch_shape) != 2:
        raise ValueError(f"invariant_diagnostics expects draws of batch shape (chain, draw), "
                         f"got {p.batch_shape}")
    nan = float("nan")
    lp_r, lp_e = (rhat(lp), ess_bulk(lp)) if lp is not None else (nan, nan)
    w = np.sort(p.weights, axis=-1)  # (C, S, K): sorting forgets the labels
    K = w.shape[-1]
    w_r = np.array([rhat(w[..., k]) for k in range(K)])
    w_e = np.array([ess_bulk(w[..., k]) for k in range(K)])
    m_r = m_e = nan
    if X is not None:
        top = np.exp(log_responsibilities(p, np.asarray(X, np.float64)).max(axis=-1))  # (C,S,N)
        r = np.array([rhat(top[..., n]) for n in range(top.shape[-1])])
        e = np.array([ess_bulk(top[..., n]) for n in range(top.shape[-1])])
        if np.isfinite(r).any():
            m_r, m_e = float(np.nanmax(r)), float(np.nanmin(e))
    return InvariantDiagnostics(lp_r, lp_e, w_r, w_e, m_r, m_e)


def ess_bulk(x) -> float:
    """Bulk effective sample size of a (chain, draw) array (Vehtari et al. 2021: chains
    split in halves, ranks normalised, Geyer's initial monotone sequence), as
    ``arviz.ess``'s default (the tests hold them equal). NaN with fewer than 4 draws
    or a NaN; C·S for a constant array."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 4 or np.isnan(x).any():
        return float("nan")
    if np.ptp(x) < np.finfo(float).resolution:
        return float(x.size)
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, -half:]])  # (2C, S // 2): halves as chains
    rank = stats.rankdata(split, method="average").reshape(split.shape)
    z = stats.norm.ppf((rank - 0.375) / (split.size + 0.25))
    return _ess(z)


def log_log_slope(n: np.ndarray, error: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log(error) against log(n) and its standard error
    (1/sqrt(N) convergence: slope -0.5)."""
    res = stats.linregress(np.log(n), np.log(error))
    return float(res.slope), float(res.stderr)


# ---- private ---------------------------------------------------------------------------


def _min_tail(ranks: np.ndarray, z: np.ndarray, R: int, L: int) -> float:
    """Smallest two-sided pointwise binomial tail probability of the ECDF of ranks on
    {0..L} at the points z (the ECDF at z_i counts ranks ≤ i)."""
    counts = np.searchsorted(np.sort(ranks), np.arange(L + 1), side="right")  # (L + 1,)
    cdf = stats.binom.cdf(counts, R, z)
    sf = stats.binom.sf(counts - 1, R, z)
    return float(np.min(2 * np.minimum(cdf, sf)[:-1]))  # the last point is always R


def _ess(z: np.ndarray) -> float:
    """ESS of (C, S) values: ArviZ's ``_ess`` (Geyer's initial positive, then monotone
    sequence of autocorrelations from FFT autocovariances)."""
    C, S = z.shape
    centred = z - z.mean(axis=1, keepdims=True)
    n_fft = 2 ** int(np.ceil(np.log2(2 * S)))
    f = np.fft.rfft(centred, n_fft, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n_fft, axis=1)[:, :S] / S  # (C, S): biased acov
    mean_var = np.mean(acov[:, 0]) * S / (S - 1.0)
    var_plus = mean_var * (S - 1.0) / S
    if C > 1:
        var_plus += np.var(z.mean(axis=1), ddof=1)
    rho = np.zeros(S)
    even, odd = 1.0, 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[0], rho[1] = even, odd
    t = 1
    while t < S - 3 and even + odd > 0:
        even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if even + odd >= 0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # monotone
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    tau = -rho[0] + 2.0 * np.sum(rho[:max_t + 1]) + np.sum(rho[max_t + 1:max_t + 2])
    tau = max(tau, 1 / np.log10(C * S))
    return float(C * S / tau)


def _resp_and_loglik(params: GMMParams, X):
    """Responsibilities (N, K) and the log-likelihood Σ_n log p(x_n | θ) of one parameter
    set (batch shape ()), by the library's density (:func:`bayesgmm.density.log_resp`)."""
    lr, log_norm = log_resp(params, X)
    return jax.numpy.exp(lr), jax.numpy.sum(log_norm)


def _svi_program(config: tuple, priors: Priors):
    """Jitted (key, X, init sites) -> guide draws for one configuration."""
    n_components, covariance_type, _, n_steps, n_draws, learning_rate = config
    model = bound_model(n_components, covariance_type, priors)

    def run(key, X, sites):
        svi, draw = guided(model, X, sites, learning_rate)
        k_init, k_draw = jax.random.split(key)
        state = svi.init(k_init, X)

        def step(s, _):
            s, loss = svi.update(s, X)
            return s, loss

        state, _ = jax.lax.scan(step, state, None, length=n_steps)
        return draw(k_draw, svi.get_params(state), n_draws)

    return jax.jit(run)
