"""Robust mixtures: a uniform noise component and multivariate Student-t components, by
EM on the host.

Glossary: N samples, D features, K components (the noise component, when there is
one, is the extra column K of the responsibilities), ν_k a component's degrees of
freedom, V the volume of the noise region.

The model
---------
::

    p(x) = Σ_k π_k f_k(x) + π_0 / V,        Σ_k π_k + π_0 = 1

* ``f_k`` is Gaussian, N(μ_k, Σ_k), or a multivariate Student-t, t_ν_k(μ_k, Σ_k)
  (Peel & McLachlan 2000), with Σ_k from the covariance table
  (:mod:`bayesgmm.covariance`): every covariance model the table offers, and ν → ∞
  is the Gaussian.
* ``π_0 / V`` is a uniform density over the data's region (Banfield & Raftery 1993;
  mclust's ``noise``): V is the bounding box's volume (``"box"``, default), the convex
  hull's (``"hull"``, SciPy's Qhull; cheap for D up to about 6) or a value the user
  gives (``"hypvol"``: mclust's default, the smaller of the box and the box in the
  data's principal axes). V is fixed before EM; π_0 is estimated. Points anywhere, also outside the
  region, get the density π_0 / V (as in mclust).

EM
--
The E-step gives responsibilities r_nk over the K + 1 columns and, for a t component,
the expected latent scale ``u_nk = (ν_k + D) / (ν_k + δ_nk)`` (δ the squared
Mahalanobis distance; u = 1 for a Gaussian). The M-step:

* weights π from Σ_n w r (the noise column included);
* means from the weights r·u: μ_k = Σ r u x / Σ r u;
* scatter from the same weights r·u about the new means, with the counts Σ r: the
  table's ``second_moment`` and ``factor_from_moments`` (so a constrained model, e.g.
  tied, solves its own M-step for the scatter Σ_n r u (x - μ)(x - μ)ᵀ with counts
  Σ r, which is Peel & McLachlan's CM-step for every model);
* ν_k (when estimated) by the 1-D root of Peel & McLachlan's ECM equation::

      -ψ(ν/2) + log(ν/2) + 1 + Σ_n r_nk (log u_nk - u_nk) / Σ_n r_nk
          + ψ((ν_old + D)/2) - log((ν_old + D)/2) = 0

  solved by Brent's method on log ν in :data:`DF_BOUNDS` (a root beyond the bounds is
  clipped to them; the equation's left side falls from +∞ at ν → 0 to a negative
  limit, so it has exactly one root).

Each CM-step maximises the complete-data expectation over its parameters with the
others fixed, so the log-likelihood never decreases (ECM; tested). A Gaussian
mixture without noise runs the same iterations as :func:`bayesgmm.engines.numpy.fit`
(tested against it from identical starts).

Initialisation: the Gaussian fit (:func:`bayesgmm.fitting.fit`, with the estimator's
``init_params``, ``n_init``, ``random_state``) of the rows not flagged as noise, then
π_0 from the flagged fraction (at least :data:`MIN_NOISE_START`: a zero weight would
stay zero under EM). Rows are flagged by a user mask (``noise_init``) or by
nearest-neighbour cleaning (:func:`nn_clean`, Byers & Raftery 1998).

Everything runs in float64 NumPy on the host (like :mod:`bayesgmm.engines.numpy`);
results come back in the input's dtype. There is no compiled (JAX) twin yet.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Mapping, NamedTuple

import numpy as np

from bayesgmm._xp import NUMPY
from bayesgmm.covariance import ops
from bayesgmm.engines import FitInfo, step_health
from bayesgmm.fitting import FitOptions
from bayesgmm.fitting import fit as gaussian_fit
from bayesgmm.params import GMMParams, take_components
from bayesgmm import validation
from bayesgmm.validation import check_n_samples, check_sample_weight

__all__ = ["COMPONENTS", "DF_BOUNDS", "MIN_NOISE_START", "NOISE_VOLUMES", "RobustParams",
           "RobustOptions", "EStep", "noise_log_volume", "nn_clean", "component_log_prob",
           "log_resp", "e_step", "m_step", "update_df", "init", "fit", "fit_options",
           "n_parameters", "criteria"]

COMPONENTS = ("gaussian", "t")
NOISE_VOLUMES = ("box", "hypvol", "hull")
#: Estimated degrees of freedom are kept within these bounds (a root of the ECM equation
#: beyond them is clipped): below 0.1 the tails are beyond any data's; at 1000 a
#: bivariate t's log-density is the Gaussian's to within 0.011 at 3 scale units
#: (scipy's multivariate_t against multivariate_normal), so further is not estimable.
DF_BOUNDS = (0.1, 1000.0)
#: The smallest starting noise weight (EM cannot move a weight away from 0).
MIN_NOISE_START = 0.01
#: Starting degrees of freedom of an estimated t component: between the heavy-tailed
#: (ν < 5) and the nearly Gaussian (ν > 50) regimes, so either is a few steps away.
DF_START = 20.0


class RobustParams(NamedTuple):
    """Parameters of a robust mixture (batch shape ``()``).

    ``mixture.weights`` are the components' weights in the whole mixture: they sum to
    ``1 - noise_weight``. ``mixture.cov_factor`` is the factor of the scale matrices Σ_k
    (a t component's covariance is ν/(ν - 2) Σ_k for ν > 2).
    """

    mixture: GMMParams  # weights (K,), means (K, D), cov_factor (by covariance type)
    df: np.ndarray  # (K,) float64 degrees of freedom; inf for a Gaussian component
    noise_weight: np.ndarray  # () π_0; 0 without a noise component
    # () log V of the noise region; +inf without a noise component (its density is 0)
    log_volume: np.ndarray

    @property
    def n_components(self) -> int:
        return self.mixture.n_components

    @property
    def has_noise(self) -> bool:
        return bool(np.isfinite(self.log_volume))


@dataclasses.dataclass(frozen=True)
class RobustOptions:
    """The settings of a robust fit: the Gaussian fit's (:class:`FitOptions`, for the
    initialisation and EM's ``tol``, ``reg_covar``, ``max_iter``) and the robust ones.
    See :class:`bayesgmm.estimators.RobustMixture` for each."""

    base: FitOptions = FitOptions()
    component: str = "gaussian"
    df: Any = None  # None: estimated (t); a number > 0: fixed
    noise: bool = False
    noise_volume: Any = "box"  # one of NOISE_VOLUMES or a volume > 0
    noise_init: Any = "nn"  # "nn" or a bool array (N,), True for noise

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RobustOptions:
        names = {f.name for f in dataclasses.fields(cls)} - {"base"}
        return cls(base=FitOptions.from_mapping(values),
                   **{k: v for k, v in values.items() if k in names})

    def check(self) -> RobustOptions:
        """``self`` if every robust setting is valid, else a ``ValueError`` naming it."""
        self.base.check()
        if self.component not in COMPONENTS:
            raise ValueError(f"Invalid value for 'component': {self.component!r}; "
                             f"'component' should be in {COMPONENTS}")
        if self.df is not None:
            if self.component != "t":
                raise ValueError(f"df={self.df!r} applies to component='t' only; set "
                                 "component='t' or leave df=None")
            ok = isinstance(self.df, int | float | np.number) and not isinstance(self.df, bool)
            if not ok or not self.df > 0:
                raise ValueError(f"Invalid value for 'df': {self.df!r}; the degrees of "
                                 "freedom must be a number > 0 (np.inf gives Gaussian "
                                 "components), or None to estimate them")
        if not isinstance(self.noise, bool | np.bool_):
            raise ValueError(f"Invalid value for 'noise': {self.noise!r}; expected True or "
                             "False")
        v = self.noise_volume
        if not (isinstance(v, str) and v in NOISE_VOLUMES) and not (
                isinstance(v, int | float | np.number) and not isinstance(v, bool)
                and np.isfinite(v) and v > 0):
            raise ValueError(f"Invalid value for 'noise_volume': {v!r}; expected one of "
                             f"{NOISE_VOLUMES} or a finite volume > 0")
        if isinstance(self.noise_init, str) and self.noise_init != "nn":
            raise ValueError(f"Invalid value for 'noise_init': {self.noise_init!r}; expected "
                             "'nn' (nearest-neighbour cleaning) or a boolean array of shape "
                             "(n_samples,), True for the rows that start as noise")
        if not self.noise and not isinstance(self.noise_init, str):  # else silently unused
            raise ValueError("noise_init (a mask of the rows that start as noise) is used "
                             "only with noise=True; pass noise=True, or leave noise_init out")
        return self

    @property
    def estimate_df(self) -> bool:
        return self.component == "t" and self.df is None


# ---- the noise region and its initial members ----------------------------------------------


def noise_log_volume(X, method="box") -> float:
    """log V of the noise region.

    Parameters
    ----------
    X : array of shape (N, D)
    method : {"box", "hull"} or float
        ``"box"``: the bounding box's volume Π_d (max_d - min_d). ``"hypvol"``: mclust's
        ``hypvol``, the smaller of the bounding box and the box of the data in its
        principal axes (tighter for correlated features). ``"hull"``: the convex
        hull's (SciPy's Qhull; the box for D = 1). A number: that volume.
    """
    if not isinstance(method, str):
        return float(math.log(method))
    X = np.asarray(X, np.float64)
    span = X.max(axis=0) - X.min(axis=0)
    if not (span > 0).all():
        d = int(np.argmin(span))
        raise ValueError(f"Feature {d} of X is constant, so the noise region has volume 0; "
                         "drop that feature or give noise_volume= a positive volume")
    if method == "box" or X.shape[1] == 1:
        return float(np.log(span).sum())
    if method == "hypvol":
        Xc = X - X.mean(axis=0)
        axes = np.linalg.svd(Xc, full_matrices=False)[2]  # (D, D) principal directions
        rotated = Xc @ axes.T
        pca_span = rotated.max(axis=0) - rotated.min(axis=0)
        return float(min(np.log(span).sum(), np.log(pca_span).sum()))
    from scipy.spatial import ConvexHull

    try:
        return float(np.log(ConvexHull(X).volume))
    except Exception as exc:  # Qhull: flat or too few points
        raise ValueError(f"The convex hull of X has no volume ({type(exc).__name__}); use "
                         "noise_volume='box' or a positive volume") from None


def nn_clean(X, n_neighbors: int = 10, *, max_iter: int = 500, tol: float = 1e-10):
    """Flag noise rows by nearest-neighbour cleaning (Byers & Raftery 1998).

    Under a Poisson process of intensity λ in D dimensions, the volume of the ball
    reaching a point's k-th nearest neighbour, y = c_D d_k^D, is Gamma(k, rate λ). The
    data are taken as two processes, a dense one (the clusters) and a sparse one (the
    noise): a two-component mixture of Gamma(k, λ_j) on y, fitted by EM (closed-form
    M-step: λ_j = k Σ r_j / Σ r_j y). Rows whose sparse-process responsibility exceeds
    ½ are noise.

    Simplified from the paper: k is fixed (not chosen from the data), there is no edge
    correction, and distances are Euclidean in the given units (scale X first if its
    features have different units). Duplicate rows (d_k = 0) are dense. When the EM
    gives the sparse process more than half of the rows (no separate background, or
    too few rows), no row is flagged.

    Parameters
    ----------
    X : array of shape (N, D)
    n_neighbors : int
        k; at most N - 1.

    Returns
    -------
    array of shape (N,), bool
        True for the rows flagged as noise.
    """
    from scipy.spatial import cKDTree

    X = np.asarray(X, np.float64)
    N, D = X.shape
    k = int(n_neighbors)
    if not 1 <= k < N:
        raise ValueError(f"n_neighbors={n_neighbors!r} must be between 1 and n_samples - 1 "
                         f"= {N - 1}")
    dist = cKDTree(X).query(X, k=k + 1)[0][:, -1]  # the first neighbour is the row itself
    scale = np.median(dist[dist > 0]) if (dist > 0).any() else 1.0
    # c_D and the scale multiply every y alike: they rescale λ, not the classification
    y = (dist / scale) ** D
    top = np.zeros(N, bool)  # start: the sparsest 10% as noise (by rank: ties split)
    top[np.argsort(y, kind="stable")[int(0.9 * N):]] = True
    lam = np.array([k / max(y[~top].mean(), 1e-300), k / max(y[top].mean(), 1e-300)])
    mix = np.array([0.9, 0.1])
    previous = -np.inf
    for _ in range(max_iter):
        # log Gamma(y | k, λ_j) up to the terms shared by both (the (k-1) log y)
        lp = np.log(mix) + k * np.log(lam) - y[:, None] * lam  # (N, 2)
        top = lp.max(axis=1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(lp - top).sum(axis=1))
        r = np.exp(lp - norm[:, None])
        mix = np.clip(r.mean(axis=0), 1e-12, None)
        lam = k * r.sum(axis=0) / np.maximum(r.T @ y, 1e-300)
        ll = norm.mean()
        if abs(ll - previous) < tol:
            break
        previous = ll
    sparse = int(np.argmin(lam))
    if mix[sparse] > 0.5:  # no minority of sparse points: the two processes are not there
        return np.zeros(N, bool)
    return r[:, sparse] > 0.5


# ---- densities -------------------------------------------------------------------------------


def component_log_prob(mixture: GMMParams, df, X) -> tuple[np.ndarray, np.ndarray]:
    """log f_k(x) per component, Gaussian where ``df`` is infinite, else Student-t.

    Parameters
    ----------
    mixture : GMMParams
        Batch shape ``()``; its weights are not used.
    df : array of shape (K,)
    X : array of shape (N, D)

    Returns
    -------
    log_prob : array of shape (N, K), float64
        ``log Γ((ν+D)/2) - log Γ(ν/2) - (D/2) log(νπ) - ½ log|Σ| - ((ν+D)/2) log(1 + δ/ν)``
        for a t component, ``-(D/2) log 2π - ½ log|Σ| - δ/2`` for a Gaussian.
    maha : array of shape (N, K)
        δ_nk, the squared Mahalanobis distance in the scale matrix Σ_k.
    """
    from scipy.special import gammaln

    p = mixture.to_numpy(np.float64)
    X = np.asarray(X, np.float64)
    K, D = p.n_components, p.n_features
    table = ops(p.covariance_type, NUMPY)
    Xc = X[None, :, :] - p.means[:, None, :]  # (K, N, D): centred per component
    maha = table.mahalanobis(Xc, table.to_precision_cholesky(p.cov_factor))  # (N, K)
    log_det = table.log_det_precision(p.cov_factor, K, D)  # (K,) -½ log|Σ_k|
    df = np.broadcast_to(np.asarray(df, np.float64), (K,))
    t = np.isfinite(df)
    nu = np.where(t, df, 1.0)  # a placeholder where Gaussian (the where below drops it)
    gauss = -0.5 * (D * math.log(2 * math.pi) + maha) + log_det
    student = (gammaln(0.5 * (nu + D)) - gammaln(0.5 * nu) - 0.5 * D * np.log(nu * math.pi)
               + log_det - 0.5 * (nu + D) * np.log1p(maha / nu))
    return np.where(t, student, gauss), maha


def _joint(params: RobustParams, X) -> tuple[np.ndarray, np.ndarray]:
    """log p(x, z = j) (N, K + 1), the noise last, and δ (N, K)."""
    log_f, maha = component_log_prob(params.mixture, params.df, X)
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(params.mixture.weights, np.float64))
        log_noise = np.log(float(params.noise_weight)) - float(params.log_volume)  # -inf: none
    noise = np.full((log_f.shape[0], 1), log_noise)
    return np.concatenate([log_f + log_w, noise], axis=1), maha


def log_resp(params: RobustParams, X) -> tuple[np.ndarray, np.ndarray]:
    """log p(z = j | x) and log p(x).

    Returns
    -------
    log_resp : array of shape (N, K + 1), float64
        The last column is the noise component (``-inf`` without one).
    log_norm : array of shape (N,)
        log p(x).
    """
    lp, _ = _joint(params, X)
    norm = _logsumexp(lp)
    return lp - norm[:, None], norm


# ---- EM ------------------------------------------------------------------------------------


class EStep(NamedTuple):
    """What the M-step needs from one E-step."""

    resp: np.ndarray  # (N, K + 1) float64 responsibilities times the sample weights
    u: np.ndarray  # (N, K) expected latent scales; 1 for a Gaussian component
    lower_bound: float  # Σ w log p(x) / Σ w


def e_step(params: RobustParams, X, sample_weight) -> EStep:
    """Responsibilities (weighted by ``sample_weight (N,)``), E[u] and the mean
    log-likelihood, under ``params``."""
    lp, maha = _joint(params, X)
    norm = _logsumexp(lp)
    w = np.asarray(sample_weight, np.float64)
    resp = np.exp(lp - norm[:, None]) * w[:, None]
    df = np.asarray(params.df, np.float64)
    D = params.mixture.n_features
    with np.errstate(invalid="ignore"):
        u = np.where(np.isfinite(df), (df + D) / (df + maha), 1.0)
    return EStep(resp, u, float(w @ norm / w.sum()))


def m_step(X, stats: EStep, params: RobustParams, *, reg_covar: float,
           estimate_df: bool) -> RobustParams:
    """The CM-steps (module note): weights, means and scale factors through the table,
    then ν where estimated. ``params`` gives the covariance type, the previous ν and
    the noise region."""
    X = np.asarray(X, np.float64)
    ct = params.mixture.covariance_type
    table = ops(ct, NUMPY)
    K, D = params.n_components, X.shape[1]
    n = stats.resp.sum(axis=0) + 10 * np.finfo(np.float64).eps  # (K + 1,)
    total = n.sum() if params.has_noise else n[:K].sum()
    ru = stats.resp[:, :K] * stats.u  # (N, K) the weights of means and scatter
    means = (ru.T @ X) / ru.sum(axis=0)[:, None]
    Xc = X[None, :, :] - means[:, None, :]  # (K, N, D)
    sxx = table.second_moment(ru, Xc)
    nk = n[:K]
    # the previous factor warm-starts the iterative M-steps (EVE, VVE)
    factor = table.factor_from_moments(sxx, nk, np.zeros((K, D)), nk.sum(),
                                       np.float64(reg_covar), params.mixture.cov_factor)
    df = update_df(stats, params.df, D) if estimate_df else params.df
    noise = n[K] / total if params.has_noise else np.float64(0.0)
    return RobustParams(GMMParams(nk / total, means, factor, ct), df, np.float64(noise),
                        params.log_volume)


def update_df(stats: EStep, df_old, n_features: int) -> np.ndarray:
    """ν_k: the root of Peel & McLachlan's ECM equation (module note), per component,
    clipped to :data:`DF_BOUNDS`. Gaussian components (ν = ∞) stay Gaussian."""
    from scipy.optimize import brentq
    from scipy.special import digamma

    df_old = np.asarray(df_old, np.float64)
    K = df_old.shape[0]
    r = stats.resp[:, :K]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_term = (r * (np.log(stats.u) - stats.u)).sum(axis=0) / r.sum(axis=0)
    half = 0.5 * (df_old + n_features)
    const = 1.0 + mean_term + digamma(half) - np.log(half)
    lo, hi = np.log(DF_BOUNDS[0]), np.log(DF_BOUNDS[1])
    out = df_old.copy()
    for k in np.flatnonzero(np.isfinite(df_old) & np.isfinite(const)):
        g = lambda s, c=const[k]: -digamma(0.5 * np.exp(s)) + s - math.log(2) + c  # noqa: E731
        if g(hi) > 0:
            out[k] = DF_BOUNDS[1]
        elif g(lo) < 0:
            out[k] = DF_BOUNDS[0]
        else:
            out[k] = math.exp(brentq(g, lo, hi, xtol=1e-10))
    return out


def init(X, options: RobustOptions, sample_weight=None) -> RobustParams:
    """Starting parameters (module note): the Gaussian fit of the rows not flagged as
    noise, π_0 from the flagged weight, ν from ``df`` or :data:`DF_START`."""
    X = np.asarray(X)
    N = X.shape[0]
    w = np.asarray(check_sample_weight(sample_weight, N, np.float64))
    K = int(options.base.n_components)
    check_n_samples(N, K)  # before the noise start's message, which would blame it
    noisy = _noise_start(X, options) if options.noise else np.zeros(N, bool)
    if (~noisy).sum() < max(K, 2):
        raise ValueError(f"noise_init flags {int(noisy.sum())} of {N} rows as noise, leaving "
                         f"fewer than n_components={K} (and 2) rows for the components; "
                         "flag fewer rows")
    with warnings.catch_warnings():  # the robust EM continues from this start
        warnings.filterwarnings("ignore", message="Best performing initialization did not")
        start, _ = gaussian_fit(X[~noisy], options.base, sample_weight=w[~noisy])
    start = take_components(start, K).to_numpy(np.float64)
    noise, log_volume = 0.0, np.inf
    if options.noise:
        noise = float(np.clip(w[noisy].sum() / w.sum(), MIN_NOISE_START, 0.5))
        log_volume = noise_log_volume(X, options.noise_volume)
    df = {"gaussian": np.inf, "t": DF_START if options.df is None else options.df}
    mixture = GMMParams(start.weights * (1 - noise), start.means, start.cov_factor,
                        start.covariance_type)
    return RobustParams(mixture, np.full(K, float(df[options.component])),
                        np.float64(noise), np.float64(log_volume))


def fit(X, params: RobustParams, *, sample_weight=None, tol: float = 1e-3,
        reg_covar: float = 1e-6, max_iter: int = 100,
        estimate_df: bool = False) -> tuple[RobustParams, FitInfo]:
    """ECM from ``params`` until the mean log-likelihood changes by less than ``tol``, or
    ``max_iter`` iterations; the engines' stopping rule and :class:`FitInfo` (a step
    that goes non-finite or collapses a component is not applied, but reported).

    Parameters
    ----------
    X : array of shape (N, D)
    params : RobustParams
    sample_weight : array of shape (N,), optional
    estimate_df : bool
        Update ν (t components) by the ECM root; else keep ``params.df``.

    Returns
    -------
    params : RobustParams
        float64 NumPy.
    info : FitInfo
        ``history`` holds the mean log-likelihood at every iteration's E-step;
        ``lower_bound`` the last applied one; ``nk`` the components' counts.
    """
    X = np.asarray(X, np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    history = np.full(max_iter, np.nan)
    lower_bound, n_iter, converged, nonfinite, bad = -np.inf, 0, False, False, -1
    nk = np.zeros(params.n_components)
    with np.errstate(all="ignore"):  # a failing step is caught by its result
        while n_iter < max_iter and not converged and not nonfinite:
            stats = e_step(params, X, w)
            new = m_step(X, stats, params, reg_covar=reg_covar, estimate_df=estimate_df)
            ok, component_ok = step_health(new.mixture, stats.lower_bound, NUMPY)
            ok = bool(ok) and bool(np.isfinite(new.noise_weight))
            bad = -1 if ok or component_ok.all() else int(component_ok.argmin())
            history[n_iter] = stats.lower_bound
            n_iter += 1
            converged = ok and abs(stats.lower_bound - lower_bound) < tol
            if ok:
                params, lower_bound = new, stats.lower_bound
                nk = stats.resp[:, :params.n_components].sum(axis=0)
            nonfinite = not ok
    info = FitInfo(np.float64(lower_bound), np.int32(n_iter), np.bool_(converged),
                   np.bool_(nonfinite), np.int32(bad), history, nk)
    return params, info


def fit_options(X, options: RobustOptions, sample_weight=None) -> tuple[RobustParams, FitInfo]:
    """The whole robust fit of :class:`bayesgmm.estimators.RobustMixture`: check the
    options, :func:`init`, :func:`fit`, then report as :func:`bayesgmm.fitting.fit`
    does (a ``ValueError`` naming the component for a collapsed fit, a
    ``ConvergenceWarning`` when EM stopped at ``max_iter``).

    Parameters
    ----------
    X : array of shape (N, D)
        Checked by the caller (:func:`bayesgmm.validation.check_array_2d`).
    options : RobustOptions
    sample_weight : array of shape (N,), optional

    Returns
    -------
    params : RobustParams
        float64.
    info : FitInfo
    """
    options = options.check()
    base = options.base
    w = check_sample_weight(sample_weight, X.shape[0], np.float64)
    start = init(X, options, w)
    params, info = fit(X, start, sample_weight=w, tol=base.tol, reg_covar=base.reg_covar,
                       max_iter=base.max_iter, estimate_df=options.estimate_df)
    if bool(info.nonfinite):
        raise ValueError(
            f"The robust fit failed at iteration {int(info.n_iter)}: component "
            f"{int(info.bad_component)} got a singular scale matrix (it collapsed on one or "
            f"a few samples). Increase reg_covar (now {base.reg_covar:g}) or decrease "
            f"n_components (now {base.n_components}).")
    if not bool(info.converged) and base.max_iter > 0:
        warnings.warn(
            f"The robust EM did not converge in max_iter={base.max_iter} iterations (tol="
            f"{base.tol:g}); increase max_iter or tol.", validation.ConvergenceWarning,
            stacklevel=3)
    return params, info


# ---- criteria ------------------------------------------------------------------------------


def n_parameters(params: RobustParams, estimate_df: bool) -> int:
    """Free parameters: (K - 1) weights, K·D means, the covariance model's, one more
    weight for the noise component (V is fixed, as in mclust), K degrees of freedom
    when estimated."""
    K, D = params.n_components, params.mixture.n_features
    p = params.mixture
    count = (K - 1) + K * D + ops(p.covariance_type).n_parameters(K, D)
    return count + int(params.has_noise) + (K if estimate_df else 0)


def criteria(params: RobustParams, X, estimate_df: bool, sample_weight=None) -> dict:
    """``bic = -2 log L + p log n`` and ``aic = -2 log L + 2 p`` (lower is better), with
    n the total sample weight and p :func:`n_parameters`."""
    _, norm = log_resp(params, X)
    w = np.ones(len(norm)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    log_lik, p = float(w @ norm), n_parameters(params, estimate_df)
    return {"bic": -2 * log_lik + p * math.log(w.sum()), "aic": -2 * log_lik + 2 * p,
            "log_likelihood": log_lik, "n_parameters": p}


# ---- helpers -------------------------------------------------------------------------------


def _noise_start(X, options: RobustOptions) -> np.ndarray:
    if isinstance(options.noise_init, str):  # "nn", checked
        return nn_clean(X, n_neighbors=min(10, X.shape[0] - 1))
    mask = np.asarray(options.noise_init)
    if mask.shape != (X.shape[0],) or mask.dtype != bool:
        raise ValueError(f"noise_init has shape {mask.shape} and dtype {mask.dtype}; expected "
                         f"a boolean array of shape ({X.shape[0]},): one flag per row of X, "
                         "True for the rows that start as noise")
    return mask


def _logsumexp(lp: np.ndarray) -> np.ndarray:
    """log Σ_j exp(lp) over the last axis; rows with a finite maximum shift by it."""
    top = lp.max(axis=-1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top + np.log(np.exp(lp - top[..., None]).sum(axis=-1))

