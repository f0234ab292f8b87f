"""scikit-learn-style estimators over the functional core.

Classes here only validate input, pick a PRNG key, call the core and store ``*_``
attributes; the mathematics lives in :mod:`bayesgmm.engines.jax`, :mod:`bayesgmm.density` and
:mod:`bayesgmm.selection`.

scikit-learn is not a run-time dependency: :class:`_BaseEstimator` implements the
parts of its estimator protocol that ``clone``, ``Pipeline``, ``GridSearchCV`` and
``check_estimator`` use (``get_params``, ``set_params``, ``__sklearn_tags__``,
``__sklearn_is_fitted__``), importing scikit-learn lazily only when scikit-learn itself
asks for tags.
"""

from __future__ import annotations

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import density, selection
from bayesgmm.engines import jax as em, numpy as host
from bayesgmm.compilation import jit
from bayesgmm.engines.choose import check_engine, choose
from bayesgmm.initialize import (INIT_METHODS, host_seeding_uniforms,
                                 init_params_batch, kmeans_plusplus_host, lloyd_batch,
                                 params_from_centers, seed_sample_size)
from bayesgmm.params import GMMParams, pad_components, take_components
from bayesgmm.suffstats import resolve_kernel
from bayesgmm.validation import (
    ConvergenceWarning,
    DegenerateComponentWarning,
    NotFittedError,
    check_array_2d,
    check_covariance_type,
    check_means_init,
    check_n_features,
    check_nonneg_float,
    check_positive_int,
    check_precisions_init,
    check_random_state_key,
    check_sample_weight,
    check_weights_init,
    compute_scope,
)

__all__ = ["GaussianMixture"]

_log_resp = jit(density.log_resp)
_sample = jit(density.sample, static_argnums=2)
_criteria_terms = jit(selection.criteria_terms)

def _host_rng(key, stream: int) -> np.random.Generator:
    """A NumPy generator for one purpose (``stream``) of a fit seeded by ``key``. Draws on
    the host need no compiled random-number program (each costs ~0.05 s of XLA)."""
    return np.random.default_rng([int(k) for k in np.asarray(key).ravel()] + [stream])


def _subsample(rng: np.random.Generator, X, w, n_rows: int):
    """``n_rows`` rows drawn uniformly without replacement by ``rng``, with their
    weights, as NumPy arrays (a device array is read on the host: free on a CPU). The
    indices are drawn on the host: NumPy's sampler takes 0.4 ms for 10⁴ of 10⁵ rows,
    where ``jax.random.choice`` sorts a full permutation (46 ms on a CPU); the rows are
    taken on the host too (a compiled gather cost 0.03 s of XLA per shape)."""
    idx = np.sort(rng.choice(X.shape[0], n_rows, replace=False))  # sorted: reads X in order
    return np.asarray(X)[idx], np.asarray(w)[idx]


def _to_device(*arrays):
    """NumPy arrays onto the default device. ``jnp.asarray`` of a NumPy array compiles a
    small program per shape (``lax.stage``, ~0.01-0.03 s each); ``device_put`` does not."""
    return tuple(a if isinstance(a, jax.Array) else jax.device_put(np.asarray(a))
                 for a in arrays)


def _criteria_of(models: list, X) -> list[dict]:
    """``bic``, ``aic`` and ``icl`` of fitted models (same covariance type, padded to one
    size) on X, in one batched pass over the rows (:func:`bayesgmm.selection.criteria_terms`
    over stacked parameters): the features of each chunk are computed once for all."""
    first = models[0]
    X = first._check_X(X)
    if all(m._scores_on_host(X.shape[0]) for m in models):
        ll, ent = zip(*(host.criteria_terms(m.params_, X) for m in models))
    else:
        dtype = np.result_type(X.dtype, first.params_.dtype)
        with compute_scope(dtype):
            size = max(m._scoring_size(X.shape[0]) for m in models)  # one size to stack
            stacked = jax.tree_util.tree_map(lambda *a: np.stack(a),
                                             *[m._padded_params(dtype, size) for m in models])
            ll, ent = jax.tree_util.tree_map(
                np.asarray, _criteria_terms(stacked.astype(dtype),
                                           *_to_device(X.astype(dtype, copy=False))))
    return [{k: float(v) for k, v in selection.criteria_from_terms(
        ll[i], ent[i], m.params_.n_parameters, X.shape[0]).items()}
        for i, m in enumerate(models)]


class _BaseEstimator:
    """The scikit-learn estimator protocol, without importing scikit-learn."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name in self._get_param_names():
            default = sig.parameters[name].default
            value = getattr(self, name)
            same = value is default or (
                not isinstance(value, np.ndarray | jax.Array) and value == default)
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False))

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )


class GaussianMixture(_BaseEstimator):
    """Gaussian mixture fitted by EM in JAX; a drop-in for scikit-learn's.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        Stop when the mean log-likelihood lower bound changes by less than this.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts, run as one ``vmap``; the best lower bound wins.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        ``kmeans`` and ``k-means++`` choose their centres on a uniform subsample of
        ``max(16384, 256 * n_components)`` rows when the data has more (then every row
        goes to its nearest centre, and EM runs on all rows): Lloyd's iterations over
        every row cost as much as EM, for centres EM refines anyway. On 10^6 x 8 rows,
        K=32, a fit takes 0.9 s instead of 2.4 s (``benchmarks/README.md``).
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Shape by covariance type, as in scikit-learn.
    random_state : int, RandomState or None
        Seeds the JAX key (``jax.random.PRNGKey(seed)``); restart keys, subsample rows
        and k-means++'s draws come from NumPy generators seeded by that key.
    warm_start : bool, default=False
        Start the next ``fit`` from this fit's parameters (one initialisation).
    verbose : int, default=0
    verbose_interval : int, default=10
        Kept for scikit-learn compatibility; the loop runs compiled, so progress is
        reported per initialisation, not per iteration.
    chunk_size : int, optional
        Rows per chunk of the E-step; ``None`` picks one from the shapes so scratch
        memory stays near 8-16 MiB whatever N.
    restart_screen_iter : int, optional
        With ``n_init > 1``: run every restart this many iterations, then continue only
        the best (small-EM). ``None`` (default) runs every restart to convergence, as
        scikit-learn does. Screening pays only when EM needs many more iterations than
        ``restart_screen_iter``; after a k-means start EM often converges in 3-5, and
        screening then costs more than full restarts (``benchmarks/restarts.py``:
        13.7x one fit against 8.8x). For large N prefer ``init_subsample``.
    kernel : {"auto", "centred", "moments"}, default="auto"
        How the E-step computes (:mod:`bayesgmm.suffstats`). ``"auto"``: ``"moments"``
        (exponential-family form, one matmul per pass) in float64, ``"centred"``
        (per-component centred data, exact for any offset) in float32. ``"moments"`` in
        float32 is about 4x faster on a CPU (``benchmarks/em.py``), and safe unless a
        component is very compact far from the data's centre (|μ_k - mean| / σ_k above
        ~100).
    init_subsample : int, optional
        With more rows than this: the initialisation and the ``n_init`` restarts (k-means
        and EM, vmapped) run on one random subsample of this many rows, and the best
        restart is then refined by EM on all rows. For large N, ``n_init=8`` then costs
        about 2 plain fits (``benchmarks/restarts.py``). k-means then seeds on all of the
        subsample. Keep it large enough that the smallest cluster still has dozens of
        rows in it. ``None`` (default): one initialisation on all rows, as
        scikit-learn does, with k-means seeded as under ``init_params``.
    engine : {"auto", "jax", "numpy"}, default="auto"
        Where EM runs. ``"jax"``: compiled (:mod:`bayesgmm.engines.jax`; jit, vmap, any device).
        ``"numpy"``: on the host in float64 NumPy (:mod:`bayesgmm.engines.numpy`; the same
        algorithm and results, nothing compiled). ``"auto"``: NumPy when one E-step is
        small (N·K·F ≤ :data:`bayesgmm.engines.choose.HOST_WORK` = 2^20, F = 1 + D + D(D+1)/2
        for full covariance: the tutorial's 300 x 2 rows up to K = 582, 10^4 x 4 rows
        up to K = 6), else JAX. Compiling costs ~0.6 s per shape and process, more
        than NumPy spends on a whole fit of that size. Scoring (``predict``,
        ``bic``...) chooses the same way, by the rows scored. ``kernel`` and
        ``chunk_size`` apply to JAX only.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        scikit-learn's fitted attributes, in the input's dtype. The three covariance
        forms are computed from ``params_`` when first read (a fit that never reads
        them, such as each of a sweep's, compiles no conversion).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood at the last E-step of the best initialisation.
    lower_bounds_ : list of float
        The lower bound at every iteration of the best initialisation.
    n_features_in_ : int
    params_ : GMMParams
        The same parameters as one pytree (NumPy leaves), for the functional core.
    engine_ : {"jax", "numpy"}
        Where the last fit ran (see ``engine``).
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        chunk_size=None,
        restart_screen_iter=None,
        init_subsample=None,
        kernel="auto",
        engine="auto",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size
        self.restart_screen_iter = restart_screen_iter
        self.init_subsample = init_subsample
        self.kernel = kernel
        self.engine = engine

    # ---- fitting ------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Estimate parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self
        """
        return self._fit(X, sample_weight, None)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Online (stepwise) EM on one batch, for data that arrives over time.

        The first call initialises from its batch (``init_params``); each call then
        blends the batch's sufficient statistics into running ones with step size
        ``(t + 2)^-0.6`` (Cappé & Moulines 2009) and takes one M-step. For data that is
        all available but too large for memory, prefer exact streamed EM:
        :func:`bayesgmm.engines.jax.fit_stream`.
        """
        X = check_array_2d(X, min_samples=1)
        first = not hasattr(self, "_online_stats")
        if first:
            self._check_parameters()
            if X.shape[0] < self.n_components:
                raise ValueError(f"The first partial_fit batch needs n_samples >= n_components "
                                 f"({self.n_components}), got {X.shape[0]}")
        else:
            check_n_features(X, self.n_features_in_, type(self).__name__)
        w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        K = int(self.n_components)
        with compute_scope(X.dtype):
            Xj, wj = jnp.asarray(X), jnp.asarray(w)
            if first:
                params, stats, t = self._initial_params(Xj, wj, K)[0], None, 0
            else:
                params = self.params_.astype(X.dtype)
                stats, t = self._online_stats, self._n_batches
            stats, params = em.online_update(stats, params, Xj, wj, step_size=(t + 2.0) ** -0.6,
                                             reg_covar=self.reg_covar)
            stats, params = jax.tree_util.tree_map(np.asarray, (stats, params))
        self._online_stats, self._n_batches = stats, t + 1
        self.engine_ = "jax"  # online EM runs compiled, whatever engine fitted before
        info = em.FitInfo(stats.sum_wll / stats.sum_w, np.asarray(t + 1), np.asarray(False),
                          np.asarray(False), np.asarray(-1), np.zeros(0), stats.nk)
        self._set_fitted(params, info, X.shape[1])
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the component of each sample (shape (n_samples,))."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ---- prediction ---------------------------------------------------------------

    def score_samples(self, X):
        """Log density log p(x) of each sample, shape (n_samples,)."""
        return self._log_resp(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample (higher is better; what GridSearchCV maximises)."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Posterior membership p(z = k | x), shape (n_samples, n_components); rows sum to 1."""
        return np.exp(self._log_resp(X)[0])

    def predict(self, X):
        """Most probable component per sample, shape (n_samples,), int64."""
        return np.argmax(self._log_resp(X)[0], axis=1).astype(np.int64)

    def sample(self, n_samples=1):
        """Draw samples; returns ``(X, y)`` with y the component of each, sorted by y
        as scikit-learn does."""
        self._check_is_fitted()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                "least one sample."
            )
        key = check_random_state_key(self.random_state)
        with compute_scope(self.params_.dtype):
            Xs, ys = _sample(key, self.params_.astype(self.params_.dtype), int(n_samples))
            Xs, ys = np.asarray(Xs), np.asarray(ys)
        order = np.argsort(ys, kind="stable")
        return Xs[order], ys[order].astype(np.int64)

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        return self._criteria(X)["bic"]

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        return self._criteria(X)["aic"]

    def icl(self, X):
        """Integrated completed likelihood (BIC + 2·entropy of memberships; lower is better)."""
        return self._criteria(X)["icl"]

    # ---- internals ----------------------------------------------------------------

    def _fit(self, X, sample_weight, n_padded: int | None, shared=None):
        """``fit`` with the components padded to ``n_padded`` (None: automatic bucket).
        ``shared``: :func:`bayesgmm.engines.jax.data_features` of X (unit weights), reused by
        the fits of a sweep."""
        self._check_parameters()
        X = check_array_2d(X, min_samples=2)
        K = int(self.n_components)
        if X.shape[0] < K:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{K}, n_samples = {X.shape[0]}"
            )
        w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        plan = choose("fit", self.engine, X.shape[0], K, X.shape[1], self.covariance_type)
        on_host = plan.engine == "numpy"
        n_padded = K if on_host else (n_padded or plan.n_padded)
        with compute_scope(X.dtype):
            Xj, wj = (X, w) if on_host else _to_device(X, w)  # one device copy, shared
            m = self.init_subsample
            warm = self.warm_start and hasattr(self, "params_")
            subsample = m is not None and X.shape[0] > m and not warm
            key = check_random_state_key(self.random_state)
            Xr, wr = (_subsample(_host_rng(key, 1), Xj, wj, m) if subsample
                      else (Xj, wj))
            # init_subsample, when it applies, is the initialisation's whole sample
            init, hard = self._initial_start(Xr, wr, n_padded, key,
                                             seed_subsample=not subsample, on_host=on_host)
            fit_kw = dict(tol=self.tol, reg_covar=self.reg_covar, max_iter=self.max_iter)
            screen = int(self.restart_screen_iter or 0)
            if on_host:
                best, info, all_info = host.fit_restarts(
                    Xr, init, sample_weight=wr, screen_iter=screen, hard_start=hard, **fit_kw)
                if subsample:
                    best, info = host.fit(Xj, best, sample_weight=wj, **fit_kw)
            else:
                fit_kw.update(chunk_size=self.chunk_size, kernel=self.kernel)
                best, info, all_info = em.fit_restarts(
                    Xr, init, sample_weight=wr, screen_iter=screen,
                    shared=None if subsample or sample_weight is not None else shared,
                    hard_start=hard, **fit_kw)
                if subsample:  # refine the best restart on all rows
                    best, info = em.fit(Xj, best, sample_weight=wj, **fit_kw)
            best, info, all_info = jax.tree_util.tree_map(np.asarray, (best, info, all_info))
        self.engine_ = "numpy" if on_host else "jax"
        info = info._replace(nk=info.nk[:K])
        self._report(info, all_info, X)
        self._set_fitted(best, info, X.shape[1])
        self.__dict__.pop("_online_stats", None)  # a full fit restarts online learning
        return self

    def _check_parameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_covariance_type(self.covariance_type)
        check_nonneg_float(self.tol, "tol")
        check_nonneg_float(self.reg_covar, "reg_covar")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}; 'init_params' "
                f"should be one of {INIT_METHODS}"
            )
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")
        if self.restart_screen_iter is not None:
            check_positive_int(self.restart_screen_iter, "restart_screen_iter")
        resolve_kernel(self.kernel, np.float64)  # raises on an unknown name
        check_engine(self.engine)
        if self.init_subsample is not None:
            check_positive_int(self.init_subsample, "init_subsample")
            if self.init_subsample < self.n_components:
                raise ValueError(
                    f"init_subsample={self.init_subsample} rows cannot initialise "
                    f"n_components={self.n_components} components; use at least "
                    f"n_components rows (typically thousands).")

    def _initial_start(self, X, w, n_padded: int, key, seed_subsample: bool = True,
                       on_host: bool = False) -> tuple[GMMParams, bool]:
        """(n_init,)-batched parameters to start EM from, and whether EM's first pass
        is a hard assignment (``em.fit_restarts(hard_start=...)``).

        For ``kmeans`` and ``k-means++`` (no ``*_init``, no warm start, seeding work
        within :data:`~bayesgmm.engines.choose.HOST_SEEDING_WORK`), k-means++ seeds on the
        host (:func:`~bayesgmm.initialize.kmeans_plusplus_host`, the same draws as
        :meth:`_initial_params`), Lloyd's iterations run in JAX (``kmeans``), and EM's
        hard first pass gives every row to its nearest centre and takes the M-step:
        the same start as :meth:`_initial_params`, with Lloyd's loop as the only
        compiled initialisation. Measured (BIC sweep 1..20, N=1e5, D=8, cold
        process): tracing, lowering and XLA compilation of the initialisation 0.92 ->
        0.24 s, and its run time 0.88 -> 0.55 s plus the hard passes (~12 ms a K).
        ``on_host``: Lloyd's iterations run in NumPy too (:func:`bayesgmm.engines.numpy.lloyd`).
        Otherwise: :meth:`_initial_params`, and no hard pass."""
        K, (N, D) = int(self.n_components), X.shape
        method = self.init_params
        overrides = (self.weights_init, self.means_init, self.precisions_init)
        m = seed_sample_size(N, K, method) if seed_subsample else None
        if (method not in ("kmeans", "k-means++") or any(o is not None for o in overrides)
                or (self.warm_start and hasattr(self, "params_"))
                or choose("seed", "auto", m or N, K, D, self.covariance_type).engine != "numpy"):
            return self._initial_params(X, w, n_padded, key, seed_subsample), False
        Xs, ws = (X, w) if m is None else _subsample(_host_rng(key, 2), X, w, m)
        u = host_seeding_uniforms(_host_rng(key, 3), self.n_init, K)
        Xh, wh = np.asarray(Xs), np.asarray(ws)
        seeds = np.stack([kmeans_plusplus_host(Xh, wh, K, u[r]) for r in range(self.n_init)])
        # padding components are copies of the first seed (weight 0 below)
        seeds = np.concatenate([seeds, np.repeat(seeds[:, :1], n_padded - K, axis=1)], axis=1)
        centers = seeds.astype(X.dtype)
        if method == "kmeans" and on_host:
            centers = host.lloyd_batch(Xs, ws, centers, n_active=K)
        elif method == "kmeans":
            centers = lloyd_batch(*_to_device(Xs, ws), centers, n_active=K)
        return params_from_centers(centers, K, self.covariance_type), True

    def _initial_params(self, X, w, n_padded: int, key=None,
                        seed_subsample: bool = True) -> GMMParams:
        """(n_init,)-batched initial parameters with ``n_padded`` components; explicit
        ``*_init`` override the method's. ``seed_subsample``: k-means seeds on a
        subsample of large data (:func:`bayesgmm.initialize.seed_sample_size`)."""
        K, D, ct, dtype = int(self.n_components), X.shape[1], self.covariance_type, X.dtype
        if self.warm_start and hasattr(self, "params_"):
            check_n_features(X, self.n_features_in_, type(self).__name__)
            p = pad_components(self.params_.astype(dtype), n_padded)
            return jax.tree_util.tree_map(lambda a: a[None], p)
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = check_weights_init(self.weights_init, K, dtype)
        if self.means_init is not None:
            means = check_means_init(self.means_init, K, D, dtype)
        if self.precisions_init is not None:
            precisions = check_precisions_init(self.precisions_init, ct, K, D, dtype)
        key = check_random_state_key(self.random_state) if key is None else key
        # Keys, subsample and k-means++ draws come from NumPy generators seeded by the key
        keys = _host_rng(key, 0).integers(0, 2**32, (self.n_init, 2), dtype=np.uint32)
        m = seed_sample_size(X.shape[0], K, self.init_params) if seed_subsample else None
        seed_rows = None if m is None else _subsample(_host_rng(key, 2), X, w, m)
        uniforms = (host_seeding_uniforms(_host_rng(key, 3), self.n_init, K, n_padded)
                    if self.init_params in ("kmeans", "k-means++") else None)
        p = init_params_batch(keys, X, n_padded, ct, self.init_params, sample_weight=w,
                              reg_covar=self.reg_covar, n_active=K, seed_rows=seed_rows,
                              uniforms=uniforms)
        if weights is None and means is None and precisions is None:
            return p
        # Overrides happen on the host, at the real K (eager JAX ops would compile per K).
        p = take_components(jax.tree_util.tree_map(np.asarray, p), K)
        R = self.n_init
        if weights is not None:
            p = GMMParams(np.broadcast_to(weights, (R, K)), p.means, p.cov_factor, ct)
        if means is not None:
            p = GMMParams(p.weights, np.broadcast_to(means, (R, K, D)), p.cov_factor, ct)
        if precisions is not None:
            factor = GMMParams.from_sklearn(p.weights[0], p.means[0], covariance_type=ct,
                                            precisions=precisions).cov_factor
            p = GMMParams(p.weights, p.means, np.broadcast_to(factor, (R, *factor.shape)), ct)
        return pad_components(p, n_padded)

    def _report(self, info, all_info, X) -> None:
        if self.verbose:
            for i in range(len(all_info.n_iter)):
                print(f"Initialization {i}: converged={bool(all_info.converged[i])} "
                      f"n_iter={int(all_info.n_iter[i])} "
                      f"lower_bound={float(all_info.lower_bound[i]):.6f}")
        if bool(info.nonfinite):
            k = int(info.bad_component)
            scale = float(np.mean(np.var(X, axis=0)))
            suggestion = max(10 * self.reg_covar, 1e-3 * scale)
            where = f"component {k}" if k >= 0 else "a component"
            raise ValueError(
                f"Fitting the mixture model failed: {where} got a singular covariance (NaN "
                f"or non-positive-definite) at iteration {int(info.n_iter)}, typically "
                f"because it collapsed on one or a few identical samples. Increase reg_covar "
                f"(now {self.reg_covar:g}; try {suggestion:.3g}), or decrease n_components "
                f"(now {self.n_components})."
            )
        if not bool(info.converged):
            warnings.warn(
                f"Best performing initialization did not converge after {int(info.n_iter)} "
                f"iterations (max_iter={self.max_iter}). Try different init parameters, or "
                "increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        empty = np.flatnonzero(info.nk < 1.5)
        if empty.size and self.n_components > 1:
            warnings.warn(
                f"Component(s) {empty.tolist()} hold about one sample or fewer (effective "
                f"counts nk={np.round(info.nk[empty], 3).tolist()}): a covariance cannot be "
                f"estimated there and is dominated by reg_covar={self.reg_covar:g}. Consider "
                f"fewer components (now {self.n_components}).",
                DegenerateComponentWarning,
                stacklevel=3,
            )

    def _set_fitted(self, params: GMMParams, info, n_features: int) -> None:
        """Store ``params`` (possibly padded beyond ``n_components``), its weights and
        means; the covariance attributes follow on first read (:meth:`_covariance_attr`)."""
        K = int(self.n_components)
        self._n_padded = params.n_components
        self.params_ = take_components(params, K)
        self.__dict__.pop("_covariance_attrs", None)
        self.weights_ = np.ascontiguousarray(self.params_.weights)
        self.means_ = np.ascontiguousarray(self.params_.means)
        self.converged_ = bool(info.converged)
        self.n_iter_ = int(info.n_iter)
        self.lower_bound_ = float(info.lower_bound)
        self.lower_bounds_ = [float(v) for v in info.history[: self.n_iter_]]
        self.n_features_in_ = n_features

    def _covariance_attr(self, name: str) -> np.ndarray:
        """scikit-learn's ``covariances_``, ``precisions_`` or ``precisions_cholesky_``
        of ``params_``: all three converted in NumPy (float64) on first read, then kept
        (until the next fit). Measured (BIC sweep 1..20, N=1e5, D=8): converting at
        every fit in one jitted call cost 0.11 s of XLA compilation per process, unused."""
        if "params_" not in self.__dict__:
            raise AttributeError(f"{name} is set by fit")
        cached = self.__dict__.get("_covariance_attrs")
        if cached is None or cached[0] is not self.params_:
            attrs = {k: np.ascontiguousarray(v)
                     for k, v in host.sklearn_covariances(self.params_).items()}
            cached = self._covariance_attrs = (self.params_, attrs)
        return cached[1][name]

    covariances_ = property(lambda self: self._covariance_attr("covariances_"),
                            doc="Component covariances, scikit-learn's layout.")
    precisions_ = property(lambda self: self._covariance_attr("precisions_"),
                           doc="Inverse covariances, scikit-learn's layout.")
    precisions_cholesky_ = property(lambda self: self._covariance_attr("precisions_cholesky_"),
                                    doc="Cholesky factors of the precisions (scikit-learn's).")

    def _check_X(self, X) -> np.ndarray:
        self._check_is_fitted()
        X = check_array_2d(X)
        check_n_features(X, self.n_features_in_, type(self).__name__)
        return X

    def _padded_params(self, dtype, n_padded: int | None = None) -> GMMParams:
        """``params_`` padded to ``n_padded`` (default: as in fit, so prediction reuses
        that bucket's programs)."""
        return pad_components(self.params_, n_padded or self._n_padded).astype(dtype)

    def _scoring_size(self, n_rows: int) -> int:
        """The padded size to score ``n_rows`` rows at: as in fit, unless the padding's
        work on these rows is over budget (a model fitted on 300 rows is padded to 32
        components; predicting 10⁷ rows at 32 would cost 32x its own K's work)."""
        K = int(self.n_components)
        return choose("score", "jax", n_rows, K, self.n_features_in_,
                      self.params_.covariance_type, fitted_padded=self._n_padded).n_padded

    def _scores_on_host(self, n_rows: int) -> bool:
        """Whether scoring ``n_rows`` rows runs in NumPy (see ``engine``)."""
        return choose("score", self.engine, n_rows, int(self.n_components),
                      self.n_features_in_, self.params_.covariance_type).engine == "numpy"

    def _log_resp(self, X):
        X = self._check_X(X)
        dtype = np.result_type(X.dtype, self.params_.dtype)
        if self._scores_on_host(X.shape[0]):
            lr, ln = host.log_resp(self.params_, X)
            return lr.astype(dtype), ln.astype(dtype)
        K = int(self.n_components)
        with compute_scope(dtype):
            lr, ln = _log_resp(self._padded_params(dtype, self._scoring_size(X.shape[0])),
                               *_to_device(X.astype(dtype, copy=False)))
            return np.asarray(lr)[:, :K], np.asarray(ln)

    def _criteria(self, X) -> dict:
        return _criteria_of([self], X)[0]
