"""Posterior summaries that survive label switching.

Glossary: C chains, S draws per chain, N samples, D features, K components.

A mixture's likelihood is invariant to permuting its components, so draws (and chains)
may use different labelings, and per-component summaries and R-hat are then
meaningless. :func:`relabel` matches every draw to a common labeling: Hungarian
assignment (``scipy.optimize.linear_sum_assignment``) of each draw's components to a
reference's, with cost the squared Mahalanobis distance between means under the
reference covariance, plus the squared difference of log weights. The reference starts
at the EM/MAP solution and is replaced by the relabeled posterior mean until no
assignment changes (an iterated, ECR-style fixed point). Label-invariant quantities
(the log density, ``predict_proba`` after relabeling, co-clustering) need no relabeling
and are reported alongside.

:func:`from_inference` turns an :class:`~bayesgmm.bayes.inference.InferenceResult` into
a :class:`Posterior`: relabeled draws, their mean, the ArviZ views (built by
:mod:`bayesgmm.bayes.arviz`) and the run's health (:func:`diagnose`: divergences, tree
depth, step sizes, and :func:`rhat`, the rank-normalised split R-hat in NumPy). The
predictive density, predictive draws and BIC/AIC at a point are here too, so the
estimator only calls them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp, ndtri
from scipy.stats import rankdata

from bayesgmm.bayes.arviz import pointwise_log_likelihood, to_inference_data
from bayesgmm.bayes.inference import InferenceResult, NUTSInfo
from bayesgmm.bayes.relabel import Relabeling, posterior_mean, relabel  # moved there
from bayesgmm.compilation import jit
from bayesgmm.density import log_resp, sample
from bayesgmm.params import GMMParams
from bayesgmm.fitting import criteria
from bayesgmm.validation import compute_scope

__all__ = ["Posterior", "Relabeling", "Diagnostics", "from_inference", "relabel",
           "permute_sites", "posterior_mean", "membership", "coclustering",
           "log_predictive_density", "sample_predictive", "information_criteria", "rhat",
           "diagnose"]

# Responsibilities p(z | x, θ) for a batch of draws: (M, N, K). Jitted once, at module level,
# so repeated predict_proba / membership calls reuse the compiled program.
_resp_jit = jit(lambda p, x: jnp.exp(log_resp(p, x)[0]))


class Diagnostics(NamedTuple):
    """An inference run's health (:func:`diagnose`); per-chain fields are NaN or zero
    where the method has no such quantity (MAP, SVI)."""

    n_divergent: np.ndarray  # shape=(C,), int64: divergent transitions per chain
    at_max_depth: np.ndarray  # shape=(C,), float64: fraction of draws whose tree hit the depth cap
    step_size: np.ndarray  # shape=(C,): each chain's adapted step size (NaN: not NUTS)
    lp_rhat: float  # rank-normalised split R-hat of the log density (NaN: one chain, or not NUTS)
    finite: bool  # the objective (MAP, SVI) or every draw's log density (NUTS) is finite
    warnings: tuple[str, ...]  # what is wrong and what to try; empty when healthy


class Posterior(NamedTuple):
    """An inference run made ready to read (:func:`from_inference`): draws relabeled to
    the reference, their mean, both ArviZ views and the run's health."""

    params: GMMParams  # relabeled draws, batch shape (C, S)
    reference: GMMParams  # the labeling they were matched to (the MAP), batch shape ()
    relabeling: Relabeling
    mean: GMMParams  # posterior mean of weights, means and covariances, batch shape ()
    idata: object  # InferenceData / DataTree of the relabeled draws, log_likelihood included
    idata_raw: object  # the same of the draws as sampled (label switching shows)
    diagnostics: Diagnostics


def permute_sites(sites: dict, permutations: np.ndarray) -> dict:
    """Apply :func:`relabel`'s permutations to raw model sites (component axis after B)."""
    nb = permutations.ndim - 1
    out = {}
    for name, value in sites.items():
        v = np.asarray(value)
        if v.ndim > nb and v.shape[nb] == permutations.shape[-1] and name != "stick_fractions":
            idx = permutations.reshape(permutations.shape + (1,) * (v.ndim - nb - 1))
            out[name] = np.take_along_axis(v, idx, axis=nb)
        else:
            out[name] = v
    return out


def membership(draws: GMMParams, X, prob: float = 0.94, chunk_size: int = 512):
    """Posterior mean and equal-tailed ``prob`` interval of p(z_n = k | x_n, θ) over draws.

    Returns
    -------
    mean, lower, upper : arrays of shape (N, K)
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    flat = draws.flatten_batch()
    X = np.asarray(X)
    q = [(1 - prob) / 2, (1 + prob) / 2]
    means, lows, highs = [], [], []
    for start in range(0, X.shape[0], chunk_size):
        r = np.asarray(_resp_jit(flat, jnp.asarray(X[start:start + chunk_size])))  # (M, n, K)
        means.append(r.mean(axis=0))
        lo, hi = np.quantile(r, q, axis=0)
        lows.append(lo)
        highs.append(hi)
    return np.concatenate(means), np.concatenate(lows), np.concatenate(highs)


def coclustering(draws: GMMParams, X, max_draws: int = 500, chunk_size: int = 256,
                 key=None) -> np.ndarray:
    """Posterior co-clustering matrix P(z_i = z_j | X), shape (N, N); label-invariant.

    ``E_θ[Σ_k r_ik r_jk]`` over up to ``max_draws`` draws (a random subset if more),
    accumulated over row chunks so N = 2000 needs only the (N, N) result in memory.
    """
    flat = draws.flatten_batch()
    M = flat.weights.shape[0]
    if M > max_draws:
        key = jax.random.PRNGKey(0) if key is None else key
        idx = np.asarray(jax.random.choice(key, M, (max_draws,), replace=False))
        flat = jax.tree_util.tree_map(lambda a: a[idx], flat)
    X = jnp.asarray(np.asarray(X))
    R = np.asarray(_resp_jit(flat, X))  # (M, N, K)
    N = X.shape[0]
    out = np.empty((N, N), dtype=R.dtype)
    for start in range(0, N, chunk_size):
        block = R[:, start:start + chunk_size]  # (M, n, K)
        out[start:start + chunk_size] = np.einsum("mik,mjk->ij", block, R) / R.shape[0]
    return out


def rhat(x) -> float:
    """Rank-normalised split R-hat of a (chain, draw) array (Vehtari et al. 2021; the
    default of ``arviz.rhat``, which the tests hold it equal to): the larger of the bulk
    R-hat of the rank-normalised draws and the tail R-hat of their folded values, over
    chains split in halves. NaN with fewer than 2 chains or 4 draws, or a NaN draw; inf
    where a chain is constant and the others are not."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"rhat expects a (chain, draw) array, got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 4 or np.isnan(x).any():
        return float("nan")
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, -half:]])  # (2C, S // 2): halves as chains
    folded = np.abs(split - np.median(split))
    return float(max(_split_rhat(_z_scale(split)), _split_rhat(_z_scale(folded))))


def from_inference(result: InferenceResult, reference: GMMParams, X) -> Posterior:
    """Relabel ``result``'s draws to ``reference`` (batch shape ()), average them, build
    the ArviZ views (X (N, D) as observed data) and check the run's health."""
    rel = relabel(result.params, reference)
    sites = permute_sites(result.sites, rel.permutations)
    stats = result.sample_stats
    idata = to_inference_data(rel.params, X, sites=sites, sample_stats=stats)
    raw = to_inference_data(result.params, X, sites=result.sites, sample_stats=stats,
                            log_likelihood=False)
    return Posterior(rel.params, reference, rel, posterior_mean(rel.params), idata, raw,
                     diagnose(result))


def log_predictive_density(draws: GMMParams, X) -> np.ndarray:
    """log E_θ[p(x_n | θ)] over the draws (batch shape (C, S)), shape (N,), in X's dtype:
    the log of the mean density, by log-sum-exp over the C·S draws."""
    X = np.asarray(X)
    ll = pointwise_log_likelihood(draws, X)  # (C, S, N)
    flat = ll.reshape(-1, ll.shape[-1])  # the draws are the first axis; reduce it
    return (logsumexp(flat, axis=0) - np.log(flat.shape[0])).astype(X.dtype)


def sample_predictive(key, draws: GMMParams, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` points from the posterior predictive, each from a draw chosen
    uniformly: X (n_samples, D) in the draws' dtype and their components (n_samples,)."""
    k_draw, k_x = jax.random.split(key)
    flat = draws.flatten_batch()
    idx = np.asarray(jax.random.randint(k_draw, (n_samples,), 0, flat.weights.shape[0]))
    with compute_scope(draws.dtype):
        chosen = jax.tree_util.tree_map(lambda a: jnp.asarray(a[idx]), flat)
        X, y = jax.vmap(lambda k, q: sample(k, q, 1))(jax.random.split(k_x, n_samples),
                                                      chosen)
        return np.asarray(X)[:, 0], np.asarray(y)[:, 0].astype(np.int64)


def diagnose(result: InferenceResult) -> Diagnostics:
    """Check an inference run's health; :attr:`Diagnostics.warnings` names each problem
    and what to try (NUTS: divergences, trees at their depth cap, a chain's collapsed
    step size, log-density R-hat across chains; MAP and SVI: a non-finite objective)."""
    C = result.params.batch_shape[0]
    nan = np.full(C, np.nan)
    if result.method == "nuts":
        return _diagnose_nuts(result.info)
    if result.method == "map":
        finite = bool(np.isfinite(result.info.log_density[-1]))
        problem = "MAP log density became non-finite; check the priors and the data scale"
    else:
        tail = result.info.elbo[-max(10, result.info.n_steps // 10):]
        finite = bool(np.all(np.isfinite(tail)))
        problem = "SVI loss became non-finite; lower learning_rate"
    return Diagnostics(np.zeros(C, np.int64), np.zeros(C), nan, float("nan"), finite,
                       () if finite else (problem,))


def information_criteria(params: GMMParams, X) -> dict[str, float]:
    """``bic``, ``aic`` and ``icl`` of one parameter set (batch shape ()) on X (N, D):
    :func:`bayesgmm.fitting.criteria`, which scores in NumPy or compiled as
    :func:`bayesgmm.engines.choose.choose` decides for a fitted model's scoring."""
    return criteria([params.to_numpy()], np.asarray(X))[0]


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Ranks over all draws (ties averaged) -> normal scores, Blom's offset c = 3/8."""
    rank = rankdata(x, method="average").reshape(x.shape)
    return ndtri((rank - 0.375) / (x.size + 0.25))


def _split_rhat(x: np.ndarray) -> float:
    """Gelman-Rubin R-hat of (chain, draw) values."""
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant chain: inf or nan
        return float(np.sqrt((between / within + n - 1) / n))


def _diagnose_nuts(info: NUTSInfo) -> Diagnostics:
    out = []
    div = np.asarray(info.diverging).sum(axis=1)
    if div.sum():
        out.append(f"{int(div.sum())} divergent transitions (per chain {div.tolist()}): the "
                   "posterior has regions NUTS cannot follow; raise target_accept_prob, or "
                   "use stronger priors (weight_concentration, scale_log_sd).")
    at_max = (np.asarray(info.tree_depth) >= info.max_tree_depth).mean(axis=1)
    if np.any(at_max > 0.05):
        out.append(f"chains {np.flatnonzero(at_max > 0.05).tolist()} hit max_tree_depth="
                   f"{info.max_tree_depth} in {np.round(at_max * 100).tolist()}% of draws: "
                   "step size collapsed; sampling is slow and may be incomplete.")
    step = np.asarray(info.step_size)[:, -1]
    if step.size > 1 and step.min() < 0.1 * np.median(step):
        out.append(f"chain {int(step.argmin())} adapted a step size {step.min():.2g} far "
                   f"below the others (median {np.median(step):.2g}): it is probably stuck "
                   "in a different mode.")
    lp = np.asarray(info.lp)
    r = rhat(lp) if lp.shape[0] > 1 else float("nan")
    if r > 1.05:
        means = np.round(lp.mean(axis=1), 1).tolist()
        out.append(f"log-density R-hat {r:.3f} > 1.05 (chain means {means}): chains "
                   "disagree on a label-invariant quantity, so at least one sits in "
                   "another mode; relabeling cannot fix this.")
    return Diagnostics(div.astype(np.int64), at_max, step, r,
                       bool(np.all(np.isfinite(lp))), tuple(out))
