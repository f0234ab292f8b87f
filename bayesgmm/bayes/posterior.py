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

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp, ndtri
from scipy.stats import rankdata

from bayesgmm.bayes.arviz import ess, loo, pointwise_log_likelihood, to_inference_data
from bayesgmm.bayes.inference import InferenceResult, NUTSInfo
from bayesgmm.bayes.relabel import (Relabeling, log_responsibilities, posterior_mean,  # moved there
                                    relabel)
from bayesgmm.compilation import jit
from bayesgmm.density import log_resp, sample
from bayesgmm.params import GMMParams, pad_components
from bayesgmm.fitting import criteria
from bayesgmm.validation import compute_scope

__all__ = ["Posterior", "Relabeling", "Diagnostics", "Health", "LabelInvariant",
           "from_inference", "relabel", "label_invariant_draws", "label_invariant",
           "permute_sites", "posterior_mean", "membership", "coclustering",
           "log_predictive_density", "sample_predictive", "information_criteria", "rhat",
           "diagnose", "health", "below_em", "COLLAPSED_SCALE", "LP_RHAT_MAX",
           "COCLUSTERING_MAX",
           "MODE_Z", "COCLUSTERING_NOISE",
           "PARETO_K_MAX", "PARETO_K_FRACTION", "ESS_MIN"]

# Health thresholds (:func:`health`). A component whose smallest standard deviation, in
# units of the data's per-feature sd (the square root of the smallest eigenvalue of its
# covariance in standardised coordinates), falls below COLLAPSED_SCALE has collapsed onto
# a few points or a lower-dimensional set (a likelihood spike, not a cluster).
COLLAPSED_SCALE = 1e-3
LP_RHAT_MAX = 1.05  # split R-hat of the log density across chains (Vehtari et al. 2021)
COCLUSTERING_MAX = 0.02  # mean |P_chain(z_i = z_j) - median over chains| over pairs i < j
# Chains that disagree (log-density R-hat above LP_RHAT_MAX, or co-clustering
# disagreement above COCLUSTERING_MAX) sit in another mode only when they disagree by
# more than the chains vary within themselves; otherwise they mix slowly, and more
# draws, not another start, is the fix. A chain's mean log density is in another mode
# when it lies more than MODE_Z Monte Carlo standard errors (the chains' median, from
# each chain's own ESS of the log density) from the chains' median; its co-clustering
# when its disagreement exceeds COCLUSTERING_NOISE times the chains' median
# disagreement between their own halves. Measured: make_blobs(300, centers=4,
# random_state=0) at spread 1.0, K = 4, the defaults (4 x 500 draws), when NUTS still
# moved in the data's units: R-hat 1.068, chain means within 0.7 of those errors,
# co-clustering 0.022 against halves 0.021: slow mixing (2,000 warm-up steps and 2,000
# draws a chain: R-hat 1.027, healthy; in standard units the defaults give R-hat
# 1.013-1.021 for seeds 0-2, healthy); a chain on a collapsed component (lp 200 above,
# draws independent) lies ~10^3 errors away.
MODE_Z = 4.0
COCLUSTERING_NOISE = 2.0
PARETO_K_MAX = 0.7  # PSIS-LOO's reliability bound (Vehtari et al. 2024)
# More than this fraction of the N samples with Pareto k > PARETO_K_MAX is a problem: a
# few are common in a healthy mixture fit (3 of 150 on standardised iris, K = 3, 4 x 200
# draws; 1 of 300 on the seed blobs, 2 x 100 draws), a collapsed component gives dozens
# (21 of 150 on standardised iris, K = 4, 4 x 500 draws; 38 in issue 21).
PARETO_K_FRACTION = 0.05
# A relabeled weight, mean or scale (of a component that is not empty) whose bulk
# ESS over all chains is below this is a problem: its posterior mean and interval are
# noise. Measured: 57 (the seed blobs, K = 4, 2 x 100 draws), 478 (standardised iris,
# K = 3, the defaults), 36-43 (6 points, K = 2, one chain of 100); 10 draws: below.
ESS_MIN = 20

# The health checks' responsibilities are computed with K padded up to a multiple of this.
RESP_K_MULTIPLE = 8

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


class Health(NamedTuple):
    """Is the posterior one sensible mode? Per-chain checks of what the sampler's own
    diagnostics (:class:`Diagnostics`) cannot see (:func:`health`); ``healthy`` is False
    when any of ``problems`` applies, each a sentence naming the problem and the fix."""

    collapsed: np.ndarray  # shape=(C, K), bool: component k's median smallest scale < COLLAPSED_SCALE · data sd in chain c
    empty: np.ndarray  # shape=(C, K), bool: component k's median weight < 1/N in chain c
    stray: np.ndarray  # shape=(C,), bool: chain c's log density or co-clustering disagrees with the other chains beyond their own variation (another mode)
    chain_ok: np.ndarray  # shape=(C,), bool: none of the above in chain c (empty counts only when not sparse)
    chain_lp: np.ndarray  # shape=(C,), float64: mean log density per chain (NaN: not NUTS)
    lp_rhat: float  # split R-hat of the log density across chains (NaN: one chain, or not NUTS)
    coclustering_disagreement: np.ndarray  # shape=(C,), float64: mean |P_c - median over chains| over pairs (NaN: one chain)
    n_high_pareto_k: int  # PSIS-LOO Pareto k > PARETO_K_MAX (-1: not computed, one draw)
    n_nonempty: np.ndarray  # shape=(C, S), int64: components with weight >= 1/N in each draw
    healthy: bool  # no problem below, and no sampler warning (Diagnostics.warnings)
    problems: tuple[str, ...]  # what is wrong and what to try; empty when healthy
    label_invariant: LabelInvariant | None = None  # label switching cannot move these (None: one draw)
    ess_bulk_min: float = float("nan")  # the smallest bulk ESS of a relabeled weight, mean or scale of a non-empty component (NaN: under 4 draws a chain)
    slow: np.ndarray | None = None  # shape=(C,), bool: chain c disagrees with the others, but no more than the chains vary within themselves (slow mixing, not another mode)
    loo_bound: float = float("nan")  # loo()'s own reliability bound for C·S draws, min(1 - 1/log10(C·S), 0.7) (NaN: not computed)
    n_above_loo_bound: int = -1  # PSIS-LOO Pareto k > loo_bound: what loo() counts (-1: not computed)

    def __str__(self) -> str:
        """What ``print(fit.health_)`` shows: the verdict, the figures behind it, one
        line each, and the problems (the fields keep the arrays)."""
        C, S = self.n_nonempty.shape
        K = self.collapsed.shape[1]
        lines = [f"Health: {'healthy' if self.healthy else 'NOT healthy'} ({C} chain"
                 f"{'s' if C > 1 else ''} x {S} draw{'s' if S > 1 else ''}, K = {K})"]
        if np.isfinite(self.lp_rhat):
            lines.append(f"  log-density R-hat {self.lp_rhat:.3f} (limit {LP_RHAT_MAX}); "
                         f"mean per chain {_numbers(self.chain_lp, 1)}")
        if np.isfinite(self.coclustering_disagreement).all():
            lines.append(f"  co-clustering disagreement per chain "
                         f"{_numbers(self.coclustering_disagreement, 3)} (limit "
                         f"{COCLUSTERING_MAX})")
        if np.isfinite(self.ess_bulk_min):
            lines.append(f"  smallest bulk ESS {self.ess_bulk_min:.0f} (limit {ESS_MIN})")
        if self.n_high_pareto_k >= 0:
            line = f"  PSIS-LOO Pareto k > {PARETO_K_MAX}: {self.n_high_pareto_k} points"
            if self.n_above_loo_bound >= 0 and self.loo_bound < PARETO_K_MAX:
                # loo() prints its own, smaller bound for few draws: both, so that
                # the two summaries of one fit do not seem to disagree
                line += (f"; > {self.loo_bound:.2f} (loo()'s bound for these draws): "
                         f"{self.n_above_loo_bound}")
            lines.append(line)
        slow = self.slow if self.slow is not None else np.zeros(C, bool)
        for name, mask in (("chains in another mode", self.stray),
                           ("chains mixing slowly", slow)):
            if np.any(mask):
                lines.append(f"  {name}: {np.flatnonzero(mask).tolist()}")
        for name, mask in (("collapsed", self.collapsed), ("empty", self.empty)):
            for k in np.flatnonzero(np.any(mask, axis=0)):
                lines.append(f"  component {k} {name} in chains "
                             f"{np.flatnonzero(mask[:, k]).tolist()}")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _numbers(a, digits: int) -> str:
    """``[1.2, 3.4]``: an array's values rounded, for :meth:`Health.__str__`."""
    return str([round(float(x), digits) for x in np.asarray(a).ravel()])


class LabelInvariant(NamedTuple):
    """Convergence of quantities that do not change when components are renamed
    (:func:`label_invariant`): label switching cannot move their R-hat, so R-hat > 1.05
    here means chains in different modes, which relabeling cannot fix; R-hat ≈ 1 here
    with a large raw R-hat of the means means chains that only switched labels.

    Quantities (``names``, P of them): ``lp`` (the log density; NUTS only),
    ``weights_sorted[j]`` (the j-th smallest weight, j < K), ``max_membership_mean``
    (the mean over samples of max_k p(z_n = k | x_n, θ)) and ``max_membership_worst``
    (max_k p(z_n = k | x_n, θ) of the sample ``worst_point`` whose R-hat is the
    largest)."""

    names: tuple[str, ...]  # (P,)
    r_hat: np.ndarray  # shape=(P,), float64: rank-normalised split R-hat (:func:`rhat`)
    ess_bulk: np.ndarray  # shape=(P,), float64
    ess_tail: np.ndarray  # shape=(P,), float64
    worst_point: int  # the sample (row of X) of ``max_membership_worst``

    @property
    def r_hat_max(self) -> float:
        """The largest R-hat over the quantities (NaN only if all are NaN)."""
        r = self.r_hat[np.isfinite(self.r_hat)]
        return float(r.max()) if r.size else float("nan")


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
    health: Health | None = None  # per-chain collapse, empty components, stray chains, Pareto k


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

    ``E_θ[Σ_k r_ik r_jk]`` for i ≠ j (z_i and z_j are independent given θ), and exactly 1
    on the diagonal, over up to ``max_draws`` draws (a random subset if more),
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
    np.fill_diagonal(out, 1.0)  # z_i = z_i always (Σ_k r_ik² < 1 is not P(z_i = z_i))
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


def label_invariant_draws(draws: GMMParams, X, lp=None, *, max_points: int = 300) -> dict:
    """Per-draw values of the label-invariant quantities of :class:`LabelInvariant`.

    Parameters
    ----------
    draws : GMMParams
        Batch shape (C, S), raw or relabeled (the values are the same).
    X : array of shape (N, D)
        The data; memberships use at most ``max_points`` evenly spaced rows of it.
    lp : array of shape (C, S), optional
        Each draw's log density (NUTS).

    Returns
    -------
    dict of str to ndarray
        ``lp`` (C, S) when given, ``weights_sorted`` (C, S, K) in increasing order,
        ``max_membership_mean`` (C, S) and ``max_membership`` (C, S, n) for the n rows
        ``max_membership_rows`` (n,) int64 of X used.
    """
    p = draws.to_numpy(np.float64)
    C, S = p.batch_shape
    X = np.asarray(X, dtype=np.float64)
    rows = np.unique(np.linspace(0, X.shape[0] - 1, min(max_points, X.shape[0])).astype(int))
    out = {} if lp is None else {"lp": np.asarray(lp, np.float64).reshape(C, S)}
    out["weights_sorted"] = np.sort(p.weights, axis=-1)  # sorting forgets the labels
    # max over K of p(z_n = k | x_n, θ): (C·S, n), in chunks of draws (the solve holds
    # (draws, K, n, D) arrays); K is the last axis of the memberships
    flat = p.flatten_batch()
    M, (K, D) = C * S, p.means.shape[-2:]
    step = max(1, int(2e7 // (K * len(rows) * D)))
    chunks = [GMMParams(flat.weights[i:i + step], flat.means[i:i + step],
                        flat.cov_factor[i:i + step], flat.covariance_type)
              for i in range(0, M, step)]
    top = np.concatenate([np.exp(log_responsibilities(c, X[rows]).max(axis=-1))
                          for c in chunks])
    top = top.reshape(C, S, len(rows))
    out["max_membership_mean"] = top.mean(axis=-1)
    out["max_membership"] = top
    out["max_membership_rows"] = rows.astype(np.int64)
    return out


def label_invariant(values: dict) -> LabelInvariant:
    """R-hat, bulk and tail ESS of the label-invariant quantities
    (:class:`LabelInvariant`) from their per-draw values (:func:`label_invariant_draws`)."""
    values = dict(values)
    top, rows = values.pop("max_membership"), values.pop("max_membership_rows")
    point_rhat = np.array([rhat(top[..., i]) for i in range(top.shape[-1])])
    worst = int(np.nanargmax(point_rhat)) if np.isfinite(point_rhat).any() else 0
    series = {}
    for name, v in values.items():
        if v.ndim == 3:  # (C, S, K): one quantity per position j
            series.update({f"{name}[{j}]": v[..., j] for j in range(v.shape[-1])})
        else:
            series[name] = v
    series["max_membership_worst"] = top[..., worst]
    enough = top.shape[1] >= 4  # R-hat and ESS need a few draws per chain
    stat = lambda f: np.array([f(v) if enough else np.nan for v in series.values()])
    return LabelInvariant(tuple(series), stat(rhat), stat(lambda v: _ess(v, "bulk")),
                          stat(lambda v: _ess(v, "tail")), int(rows[worst]))


def from_inference(result: InferenceResult, reference: GMMParams, X, *,
                   sparse: bool = False) -> Posterior:
    """Relabel ``result``'s draws to ``reference`` (batch shape ()), average them, build
    the ArviZ views (X (N, D) as observed data) and check the run's health
    (:func:`diagnose` and :func:`health`; ``sparse``: empty components are expected)."""
    rel = relabel(result.params, reference)
    sites = permute_sites(result.sites, rel.permutations)
    stats = result.sample_stats
    idata = to_inference_data(rel.params, X, sites=sites, sample_stats=stats)
    raw = to_inference_data(result.params, X, sites=result.sites, sample_stats=stats,
                            log_likelihood=False)
    diagnostics = diagnose(result)
    lp = stats.get("lp") if result.method == "nuts" else None
    return Posterior(rel.params, reference, rel, posterior_mean(rel.params), idata, raw,
                     diagnostics, health(rel.params, X, lp=lp, idata=idata,
                                         diagnostics=diagnostics, sparse=sparse))


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


def health(draws: GMMParams, X, *, lp=None, idata=None, diagnostics: Diagnostics | None = None,
           sparse: bool = False, max_points: int = 300, max_draws: int = 100) -> Health:
    """Check that the posterior is one sensible mode, chain by chain.

    Parameters
    ----------
    draws : GMMParams
        Relabeled draws, batch shape (C, S).
    X : array of shape (N, D)
        The data; its per-feature sd is the unit of :data:`COLLAPSED_SCALE`.
    lp : array of shape (C, S), optional
        Log density per draw (NUTS); its split R-hat finds chains in other modes.
    idata : ArviZ data object, optional
        With a ``log_likelihood`` group: PSIS-LOO's Pareto k are counted.
    diagnostics : Diagnostics, optional
        The sampler's own findings, added to ``problems``.
    sparse : bool
        Empty components are the point (a sparse Dirichlet prior): not a problem.
    max_points, max_draws
        Co-clustering per chain uses at most ``max_points`` samples and ``max_draws``
        draws of each chain (fixed subsets); the label-invariant diagnostics
        (:func:`label_invariant`, ``Health.label_invariant``) use the same samples and
        every draw.

    Returns
    -------
    Health
    """
    p = draws.to_numpy()
    C, S = p.batch_shape
    X = np.asarray(X, dtype=np.float64)
    N = X.shape[0]
    sd, cov, smallest = _standardised(p, X)  # smallest: (C, S, K)
    weights = np.asarray(p.weights, dtype=np.float64)
    collapsed = np.median(smallest, axis=1) < COLLAPSED_SCALE  # (C, K)
    # one row's weight, 1/N, less round-off: a component holding exactly one of N rows
    # (weight 1/N - 1e-13) is not empty
    one_row = (1.0 - 1e-6) / N
    empty = np.median(weights, axis=1) < one_row
    n_nonempty = (weights >= one_row).sum(axis=-1).astype(np.int64)
    chain_lp = np.full(C, np.nan) if lp is None else np.asarray(lp, np.float64).mean(axis=1)
    lp_rhat = rhat(lp) if lp is not None and C > 1 else float("nan")
    disagreement, varies = _coclustering_disagreement(p, X, max_points, max_draws)
    differs = disagreement > COCLUSTERING_MAX
    # beyond the chains' own variation between halves: another mode (NaN: too few draws
    # to tell, so another mode, as before)
    stray_cc = differs & ~(disagreement <= COCLUSTERING_NOISE * np.median(varies))
    slow = differs & ~stray_cc
    stray_lp = np.zeros(C, bool)
    if lp_rhat > LP_RHAT_MAX:
        within = np.median(np.asarray(lp, np.float64).std(axis=1))
        lp_differs = np.abs(chain_lp - np.median(chain_lp)) > 0.5 * within
        away = ~(_lp_errors(lp) <= MODE_Z)
        stray_lp = lp_differs & away
        slow |= lp_differs & ~away
    stray = stray_cc | stray_lp
    slow &= ~stray
    n_high, bound, n_bound = -1, float("nan"), -1
    if idata is not None and C * S > 1:
        with warnings.catch_warnings():  # ArviZ's own Pareto-k warning: counted here
            warnings.simplefilter("ignore")
            try:
                elpd = loo(idata)
                n_high = int(np.sum(elpd.pareto_k > PARETO_K_MAX))
                if elpd.good_k is not None:
                    bound = float(elpd.good_k)
                    n_bound = int(np.sum(elpd.pareto_k > bound))
            except ValueError:  # ArviZ 1.x: no Pareto tail to fit when the draws do not
                n_high = -1     # move (e.g. an unadapted sampler); the sampler checks say so
    ess_min, where = _smallest_ess(
        weights, {"means": np.asarray(p.means, np.float64),
                  "scales": np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1)) * sd},
        ~empty.any(axis=0))
    problems = list(diagnostics.warnings if diagnostics is not None else ())
    problems += _health_problems(collapsed, empty, (stray_cc, stray_lp), chain_lp, lp_rhat,
                                 disagreement, n_high, sparse, N, slow, varies)
    if ess_min < ESS_MIN:
        problems.append(f"the draws are too few or too correlated to summarise: bulk ESS "
                        f"{ess_min:.1f} of {C * S} draws for {where} (below {ESS_MIN}); "
                        "run more draws (n_draws) or chains, or use fewer components.")
    chain_ok = ~(collapsed.any(axis=1) | stray | (empty.any(axis=1) & (not sparse)))
    invariant = (label_invariant(label_invariant_draws(p, X, lp, max_points=max_points))
                 if C * S > 1 else None)
    return Health(collapsed, empty, stray, chain_ok, chain_lp, lp_rhat, disagreement, n_high,
                  n_nonempty, not problems, tuple(problems), invariant, ess_min, slow,
                  bound, n_bound)


def _standardised(p: GMMParams, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X's per-feature sd (D,) (1 for a constant feature), the covariances of ``p`` in
    those units (*B, K, D, D), and each component's smallest standard deviation in them
    (*B, K): below :data:`COLLAPSED_SCALE`, a component collapsed onto a few points."""
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    cov = np.asarray(p.full_covariances, dtype=np.float64) / np.outer(sd, sd)
    return sd, cov, np.sqrt(np.maximum(np.linalg.eigvalsh(cov)[..., 0], 0))


def _smallest_ess(weights: np.ndarray, per_feature: dict, kept: np.ndarray
                  ) -> tuple[float, str]:
    """The smallest bulk ESS over the relabeled weights (C, S, K) and the
    ``per_feature`` draws (name -> (C, S, K, D): the means and scales of the summary) of
    the components ``kept`` (K,), and which one; NaN under 4 draws a chain (ArviZ's
    minimum), or when no component is kept."""
    if weights.shape[1] < 4 or not kept.any():
        return float("nan"), ""
    found = [(_ess(weights[..., k], "bulk"), f"weights[{k}]") for k in np.flatnonzero(kept)]
    found += [(_ess(a[..., k, d], "bulk"), f"{name}[{k}, {d}]")
              for name, a in per_feature.items()
              for k in np.flatnonzero(kept) for d in range(a.shape[-1])]
    found = [(e, name) for e, name in found if np.isfinite(e)]
    return min(found) if found else (float("nan"), "")


def information_criteria(params: GMMParams, X) -> dict[str, float]:
    """``bic``, ``aic`` and ``icl`` of one parameter set (batch shape ()) on X (N, D):
    :func:`bayesgmm.fitting.criteria`, which scores in NumPy or compiled as
    :func:`bayesgmm.engines.choose.choose` decides for a fitted model's scoring."""
    return criteria([params.to_numpy()], np.asarray(X))[0]


def below_em(post: Posterior, em: GMMParams, X, method: str) -> Posterior:
    """``post`` with a health problem added where its posterior mean's log-likelihood on
    X lies further below that of the EM fit it started from (``em``) than the BIC
    penalty p·log N: the run left the likelihood's mode (as SVI did when its Adam steps
    were in the data's units: on make_blobs / 1000, 690 nats below with every cluster
    merged, and ``healthy`` was True; its guide now steps in standard units). Measured on fits that are right: 0.5-26 nats below, against
    penalties of 97-371 (blobs and iris, K = 3-8, MAP, SVI, NUTS, sparse). Not
    compared where EM's fit has a collapsed component (its likelihood is a spike the
    priors rightly refuse) or X has missing values."""
    X = np.asarray(X, np.float64)
    if np.isnan(X).any():
        return post
    em = em.to_numpy(np.float64)
    if _standardised(em, X)[2].min() < COLLAPSED_SCALE:
        return post
    penalty = em.n_parameters * np.log(X.shape[0])  # BIC = -2 log L + penalty, both fits
    ll_em, ll_post = ((penalty - c["bic"]) / 2
                      for c in criteria([em, post.mean.to_numpy(np.float64)], X))
    gap = ll_em - ll_post
    if not gap > penalty:  # (NaN: nothing to compare)
        return post
    message = (f"the posterior mean's log-likelihood {ll_post:.1f} lies {gap:.0f} nats "
               f"below that of the EM fit it started from ({ll_em:.1f}), more than the BIC "
               f"penalty p·log N = {penalty:.0f}: the {method} run left the likelihood's "
               "mode; use method='nuts'.")
    health = post.health._replace(healthy=False, problems=(*post.health.problems, message))
    return post._replace(health=health)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Ranks over all draws (ties averaged) -> normal scores, Blom's offset c = 3/8."""
    rank = rankdata(x, method="average").reshape(x.shape)
    return ndtri((rank - 0.375) / (x.size + 0.25))


def _ess(x: np.ndarray, method: str) -> float:
    """ArviZ's ESS of a (chain, draw) array; the array's size where it is constant (ArviZ
    gives NaN), NaN where a value is."""
    if np.isnan(x).any():
        return float("nan")
    if np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return float(x.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ess(x, method)


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
    if div.sum() and div.sum() >= 0.5 * np.size(info.diverging):
        # most transitions: not a region of the posterior, a step size never adapted
        out.append(f"{int(div.sum())} divergent transitions of {np.size(info.diverging)} "
                   f"(per chain {div.tolist()}): the sampler diverges almost everywhere, "
                   "so its step size was not adapted; raise n_warmup (the warm-up adapts "
                   "it; the default is 500).")
    elif div.sum():
        out.append(f"{int(div.sum())} divergent transitions (per chain {div.tolist()}): the "
                   "posterior has regions NUTS cannot follow; raise target_accept_prob, or "
                   "use stronger priors (weight_concentration, a larger scale_shape).")
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
    if r > LP_RHAT_MAX:
        means = np.round(lp.mean(axis=1), 1).tolist()
        z = _lp_errors(lp)
        away = np.flatnonzero(~(z <= MODE_Z)).tolist()
        if away:
            out.append(f"log-density R-hat {r:.3f} > {LP_RHAT_MAX} (chain means {means}): "
                       f"chains {away} lie {', '.join(_errors_text(v) for v in z[away])} Monte Carlo "
                       "errors from the others, on a label-invariant quantity: they sit "
                       "in another mode; relabeling cannot fix this.")
        else:
            out.append(f"log-density R-hat {r:.3f} > {LP_RHAT_MAX} (chain means {means}, "
                       f"each within {MODE_Z:g} Monte Carlo errors of the others'; ESS of "
                       f"the log density per chain {np.round(_chain_ess(lp), 1).tolist()} "
                       f"of {lp.shape[1]} draws): the chains mix too slowly to agree yet, "
                       "rather than sitting in other modes; run more draws (n_draws).")
    return Diagnostics(div.astype(np.int64), at_max, step, r,
                       bool(np.all(np.isfinite(lp))), tuple(out))


def _chain_ess(lp: np.ndarray) -> np.ndarray:
    """(C,): each chain's own ESS of the mean of ``lp`` (C, S) (ArviZ's, one chain at a
    time; NaN under 4 draws)."""
    if lp.shape[1] < 4:
        return np.full(lp.shape[0], np.nan)
    return np.array([_ess(lp[c:c + 1], "mean") for c in range(lp.shape[0])])


def _errors_text(z: float) -> str:
    """A distance in Monte Carlo errors as the warning shows it: one decimal, or "> 100"
    (chains that do not move have errors near 0 and distances of 1e14)."""
    return "> 100" if not z <= 100 else f"{z:.1f}"


def _lp_errors(lp: np.ndarray) -> np.ndarray:
    """(C,): how far each chain's mean log density lies from the chains' median, in
    Monte Carlo standard errors of a chain's mean (the chains' median of sd / sqrt(ESS),
    each chain's from its own ESS): about 1 for chains that sample one distribution,
    however slowly they mix; large for a chain in another mode. inf where the errors
    cannot be estimated (under 4 draws, constant chains) and a chain's mean differs."""
    lp = np.asarray(lp, np.float64)
    dev = np.abs(lp.mean(axis=1) - np.median(lp.mean(axis=1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.nanmedian(lp.std(axis=1, ddof=1) / np.sqrt(_chain_ess(lp))) \
            if lp.shape[1] >= 4 else np.nan
        z = dev / err
    return np.where(np.isfinite(z), z, np.where(dev > 0, np.inf, 0.0))


def _coclustering_disagreement(p: GMMParams, X: np.ndarray, max_points: int,
                               max_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """(C,): mean over pairs i < j of |P_c(z_i = z_j) - median_c' P_c'(z_i = z_j)|,
    chain c's co-clustering against the chains' elementwise median (with two chains,
    half their difference each); NaN with one chain. Label-invariant, so it sees chains
    in different modes that relabeling would hide.

    And (C,): the same chain's variation within itself, half the mean |P| difference
    between its first and second halves of draws (about the size of the first's
    Monte Carlo error: each half has twice the variance); NaN under 4 draws."""
    C, S = p.batch_shape
    if C < 2:
        return np.full(C, np.nan), np.full(C, np.nan)
    rows = np.linspace(0, X.shape[0] - 1, min(max_points, X.shape[0])).astype(int)
    cols = np.linspace(0, S - 1, min(max_draws, S)).astype(int)
    sub = jax.tree_util.tree_map(lambda a: np.asarray(a)[:, cols], p).flatten_batch()
    # K padded up to a multiple of RESP_K_MULTIPLE with zero-weight components (their
    # responsibilities are exactly 0), so the fits of K = 1..8 share one program
    # (compare_n_components: 0.5-0.8 s of compilation per K saved)
    n_padded = -(-p.n_components // RESP_K_MULTIPLE) * RESP_K_MULTIPLE
    sub = pad_components(sub.astype(p.dtype), n_padded)
    with compute_scope(p.dtype):
        R = np.asarray(_resp_jit(sub, jnp.asarray(X[rows].astype(p.dtype))),
                       np.float64).reshape(C, len(cols), len(rows), -1)  # (C, M, n, K_pad)
    upper = np.triu_indices(len(rows), 1)
    half = len(cols) // 2
    halves = [np.einsum("cmik,cmjk->cij", r, r)[:, upper[0], upper[1]] / r.shape[1]
              for r in (R[:, :half], R[:, half:])]  # per-chain co-clustering of each half
    P = (half * halves[0] + (len(cols) - half) * halves[1]) / len(cols)
    consensus = np.median(P, axis=0)  # one stray chain cannot move it
    within = (np.abs(halves[0] - halves[1]).mean(axis=1) / 2 if half >= 2
              else np.full(C, np.nan))
    return np.abs(P - consensus).mean(axis=1), within


def _health_problems(collapsed, empty, stray, chain_lp, lp_rhat, disagreement, n_high,
                     sparse, N, slow, varies) -> list[str]:
    """The sentences of :class:`Health`'s ``problems``."""
    out = []
    for k in np.flatnonzero(collapsed.any(axis=0)):
        chains = np.flatnonzero(collapsed[:, k]).tolist()
        out.append(f"component {k} collapsed in chains {chains} (its smallest scale < "
                   f"{COLLAPSED_SCALE:g} of the data's sd: a spike on a few points, not a "
                   "cluster); use fewer components, sparse=True, or a larger "
                   "Priors(scale_loc=...) or scale_shape.")
    if not sparse:
        for k in np.flatnonzero(empty.any(axis=0)):
            chains = np.flatnonzero(empty[:, k]).tolist()
            out.append(f"component {k} is empty in chains {chains} (weight < 1/N = "
                       f"{1 / N:.2g}): K is larger than the data support; use fewer "
                       "components, or sparse=True to let extra components empty.")
    stray_cc, stray_lp = stray  # by the co-clustering, by the log density
    fix = "use fewer components, more warm-up, or another random_state."
    if np.any(stray_cc):
        out.append(f"chains {np.flatnonzero(stray_cc).tolist()} sit in another mode "
                   f"(co-clustering disagreement {np.round(disagreement, 3).tolist()} > "
                   f"{COCLUSTERING_MAX}, beyond the chains' variation between their own "
                   f"halves {np.round(varies, 3).tolist()}): the chains do not agree on "
                   f"the clustering; {fix}")
    if np.any(stray_lp & ~stray_cc):
        out.append(f"chains {np.flatnonzero(stray_lp & ~stray_cc).tolist()} sit in another "
                   f"mode (mean log density per chain {np.round(chain_lp, 1).tolist()}, "
                   f"R-hat {lp_rhat:.3f}, beyond {MODE_Z:g} Monte Carlo errors): the "
                   f"chains do not agree on the log density; {fix}")
    mixing = slow & (disagreement > COCLUSTERING_MAX)
    if np.any(mixing):  # slow on the log density alone: the sampler's R-hat line says so
        out.append(f"chains {np.flatnonzero(mixing).tolist()} disagree with the others on "
                   f"the clustering (co-clustering disagreement "
                   f"{np.round(disagreement, 3).tolist()} > {COCLUSTERING_MAX}), but no "
                   "more than the chains vary within themselves (between the halves of "
                   f"each: {np.round(varies, 3).tolist()}): they mix slowly rather than "
                   "sit in other modes; run more draws (n_draws).")
    if n_high > PARETO_K_FRACTION * N:
        out.append(f"{n_high} Pareto k > {PARETO_K_MAX} in PSIS-LOO (more than "
                   f"{PARETO_K_FRACTION:.0%} of the samples): LOO is unreliable for those "
                   "points (often a component fitted to a few of them); do not rank this "
                   "fit by LOO.")
    return out
