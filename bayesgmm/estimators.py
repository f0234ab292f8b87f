"""scikit-learn-style estimators over the functional core.

Glossary: N samples (``n_samples``), D features (``n_features``), K components
(``n_components``).

:class:`GaussianMixture` only validates, calls :func:`bayesgmm.fitting.fit` (the whole
EM fit: engine choice, padding, seeding, restarts, reports) or the scoring functions
beside it, and stores scikit-learn's ``*_`` attributes. Nothing here imports JAX: a
small fit on the host never loads it.

scikit-learn is not a run-time dependency: :class:`BaseEstimator` implements the
parts of its estimator protocol that ``clone``, ``Pipeline``, ``GridSearchCV`` and
``check_estimator`` use (``get_params``, ``set_params``, ``__sklearn_tags__``,
``__sklearn_is_fitted__``), importing scikit-learn lazily only when scikit-learn itself
asks for tags.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from bayesgmm import fitting, missing as missing_data
from bayesgmm.engines import numpy as host
from bayesgmm.params import GMMParams, take_components
from bayesgmm.validation import (
    check_array_2d,
    check_is_fitted,
    check_n_features,
    check_positive_int,
    check_random_state_key,
)

__all__ = ["GaussianMixture", "BaseEstimator"]


class BaseEstimator:
    """The scikit-learn estimator protocol, without importing scikit-learn; the base
    of both estimators."""

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
                not hasattr(value, "__array__") and value == default)  # arrays: changed
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False))

    def _check_is_fitted(self) -> None:
        check_is_fitted(self)




class GaussianMixture(BaseEstimator):
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
        EM iterations at most. ``0`` returns the initialisation itself (``means_`` is
        ``means_init`` when given), as scikit-learn does.
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
        Start the next ``fit`` from this fit's parameters (one initialisation), with
        scikit-learn's stopping rule: its first iteration's change is measured from
        this fit's ``lower_bound_``, so repeated ``max_iter=1`` fits converge.
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
    missing : {"error", "marginalize"}, default="error"
        What a NaN in ``X`` means. ``"error"``: refused, as scikit-learn does.
        ``"marginalize"``: a value missing at random. ``fit``, ``predict``,
        ``predict_proba``, ``score_samples``, ``score``, ``bic``, ``aic`` and ``icl``
        then use each row's observed coordinates (every component's marginal on them),
        and EM's M-step completes the statistics with the conditional means and
        covariances of the missing ones (Ghahramani & Jordan 1994;
        :mod:`bayesgmm.missing`, on the host, grouped by missingness pattern). Every
        row needs an observed value, and every feature an observed row. Data without
        NaN fits exactly as with ``"error"``. See also :meth:`impute`.
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
    n_padded_ : int
        The number of components the compiled programs ran at (``n_components`` plus
        zero-weight padding, :func:`bayesgmm.engines.choose.choose`); scoring pads as
        far, so it reuses those programs and a saved model predicts bit for bit alike.
    engine_ : {"jax", "numpy"}
        Where the last fit ran (see ``engine``).

    See Also
    --------
    bayesgmm.fitting.fit : the fit itself, which this class calls.
    GaussianMixture.from_params : a fitted estimator from given parameters.
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
        missing="error",
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
        self.missing = missing

    @classmethod
    def from_params(cls, params: GMMParams, *, info=None, n_padded: int | None = None,
                    **estimator_params) -> GaussianMixture:
        """A fitted estimator holding ``params``, as if ``fit`` had found them.

        Parameters
        ----------
        params : GMMParams
            Batch shape ``()``, K components (NumPy or JAX leaves; kept as NumPy).
        info : FitInfo, optional
            The fit's report (``lower_bound``, ``n_iter``, ``converged``, ``history``).
            ``None``: as after ``max_iter=0`` (``n_iter_ == 0``, ``lower_bound_ ==
            -inf``, ``converged_`` False).
        n_padded : int, optional
            The padded size the fit's programs ran at (``n_padded_``); scoring pads as
            far. Default K.
        **estimator_params
            Constructor arguments; ``n_components`` and ``covariance_type`` default to
            ``params``' and must agree with them.
        """
        K, ct = params.n_components, params.covariance_type
        model = cls(**{"n_components": K, "covariance_type": ct, **estimator_params})
        if (model.n_components, model.covariance_type) != (K, ct):
            raise ValueError(
                f"params hold {K} {ct!r} components, but from_params got n_components="
                f"{model.n_components!r}, covariance_type={model.covariance_type!r}; "
                "leave both out to take them from params.")
        info = fitting.unfitted_info(K, params.dtype) if info is None else info
        model._store(params.to_numpy(), info, n_padded or K)
        return model

    # ---- fitting ------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Estimate parameters with EM (:func:`bayesgmm.fitting.fit`).

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
        X = check_array_2d(X, min_samples=2, missing=self.missing)  # the fits' check is cheap
        options, holes = self._options(), missing_data.has_missing(X)
        warm = self.warm_start and self.__sklearn_is_fitted__()
        start, bound = (self.params_, self.lower_bound_) if warm else (None, -math.inf)
        params, info = (missing_data.fit if holes else fitting.fit)(
            X, options, sample_weight=sample_weight, start=start, start_lower_bound=bound)
        self.engine_ = "numpy" if holes else fitting.plan(options, *X.shape).engine
        self._store(take_components(params, int(self.n_components)), info, params.n_components)
        self.__dict__.pop("_online_state", None)  # a full fit restarts online learning
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """Online (stepwise) EM on one batch, for data that arrives over time.

        The first call initialises from its batch (``init_params``; or from this fit's
        parameters with ``warm_start``); each call then blends the batch's sufficient
        statistics into running ones with step size ``(t + 2)^-0.6`` (Cappé & Moulines
        2009) and takes one M-step (:func:`bayesgmm.fitting.partial_fit`, compiled). For
        data that is all available but too large for memory, prefer exact streamed EM:
        :func:`bayesgmm.engines.jax.fit_stream`.
        """
        state = self.__dict__.get("_online_state")
        if missing_data.has_missing(check_array_2d(X, missing=self.missing)):
            raise ValueError("partial_fit does not marginalise missing values (NaN in X); "
                             "fit does (missing='marginalize'), or drop those rows")
        warm = self.warm_start and self.__sklearn_is_fitted__()
        start = self.params_ if state is not None or warm else None
        params, info, state = fitting.partial_fit(X, self._options(), state,
                                                  sample_weight=sample_weight, start=start)
        self._store(params, info, params.n_components)
        self._online_state = state
        self.engine_ = "jax"  # online EM runs compiled, whatever engine fitted before
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

    def impute(self, X, n_imputations=None, random_state=None):
        """Fill the NaN of X from the fitted mixture (:func:`bayesgmm.missing.impute`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing value (whatever ``missing`` is); every row needs an
            observed value.
        n_imputations : int, optional
            ``None``: the conditional means E[x_missing | x_observed] (each
            component's conditional mean, weighted by the responsibilities of the
            observed coordinates). Else that many draws from p(x_missing |
            x_observed), for multiple imputation.
        random_state : int, RandomState, Generator or None
            Seeds the draws.

        Returns
        -------
        ndarray of shape (n_samples, n_features), or (n_imputations, n_samples, n_features)
            Observed values unchanged.
        """
        X = self._check_X(X, missing="marginalize")
        if n_imputations is not None:
            n_imputations = check_positive_int(n_imputations, "n_imputations")
        rng = np.random.default_rng(check_random_state_key(random_state))
        return missing_data.impute(self.params_, X, n_imputations, rng)

    def sample(self, n_samples=1):
        """Draw samples; returns ``(X, y)`` with y the component of each, sorted by y
        as scikit-learn does."""
        self._check_is_fitted()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                "least one sample.")
        return fitting.sample(check_random_state_key(self.random_state), self.params_,
                              int(n_samples))

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

    def _options(self) -> fitting.FitOptions:
        return fitting.FitOptions.from_mapping(self.get_params())

    def _store(self, params: GMMParams, info, n_padded: int) -> None:
        """Store ``params`` (K components, NumPy) and ``info``'s report; the covariance
        attributes follow on first read (:meth:`_covariance_attr`)."""
        self.params_ = params
        self.n_padded_ = int(n_padded)
        self.weights_ = np.ascontiguousarray(params.weights)
        self.means_ = np.ascontiguousarray(params.means)
        self.converged_ = bool(info.converged)
        self.n_iter_ = int(info.n_iter)
        self.lower_bound_ = float(info.lower_bound)
        self.lower_bounds_ = [float(v) for v in np.asarray(info.history)[: self.n_iter_]]
        self.n_features_in_ = params.n_features

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

    def _check_X(self, X, missing=None) -> np.ndarray:
        self._check_is_fitted()
        X = check_array_2d(X, missing=missing or self.missing)
        check_n_features(X, self.n_features_in_, type(self).__name__)
        if missing_data.has_missing(X):
            missing_data.check_missing(X)
        return X

    def _log_resp(self, X):
        X = self._check_X(X)
        if missing_data.has_missing(X):
            return missing_data.log_resp(self.params_, X)
        return fitting.log_resp(self.params_, X, engine=self.engine,
                                fitted_padded=self.n_padded_)

    def _criteria(self, X) -> dict:
        X = self._check_X(X)
        if missing_data.has_missing(X):
            return missing_data.criteria(self.params_, X)
        return fitting.criteria([self.params_], X, engine=self.engine,
                                fitted_padded=[self.n_padded_])[0]

