"""scikit-learn-style estimators over the functional core.

Glossary: N samples (``n_samples``), D features (``n_features``), K components
(``n_components``).

:class:`GaussianMixture` only validates, calls :func:`bayesgmm.fitting.fit` (the whole
EM fit: engine choice, padding, seeding, restarts, reports) or the scoring functions
beside it, and stores scikit-learn's ``*_`` attributes. :class:`RobustMixture` (a noise
component, Student-t components) does the same over :mod:`bayesgmm.robust`. Nothing here imports JAX: a
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

from bayesgmm import fitting, robust, missing as missing_data
from bayesgmm.engines import numpy as host
from bayesgmm.params import GMMParams, take_components
from bayesgmm.validation import (
    check_array_2d,
    check_feature_names,
    check_is_fitted,
    check_missing_option,
    check_n_features,
    check_n_samples_drawn,
    check_params,
    check_positive_int,
    check_random_state_key,
    feature_names,
    warn_constant_feature,
    warn_few_values,
)

__all__ = ["GaussianMixture", "RobustMixture", "BaseEstimator", "membership_columns"]


def _warn_columns(X: np.ndarray, data, n_components: int) -> None:
    """A fit's warnings about X's columns (a constant one, one of few values), by the
    names of ``data``'s columns where it has them: after the fit, so an invalid setting
    or too few rows is reported alone, and the library's own fits
    (:func:`bayesgmm.validation.data_warnings_off`) stay quiet."""
    names = feature_names(data)
    warn_constant_feature(X, names)
    warn_few_values(X, n_components, names)


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

    def _feature_names(self, X, reset: bool) -> None:
        """scikit-learn's ``_check_feature_names``. ``reset`` (a fit): set
        ``feature_names_in_`` from X's column names (a DataFrame's), or remove it when
        X has none. Else refuse X whose column names differ from it (names or order);
        an array passes."""
        if not reset:
            check_feature_names(X, getattr(self, "feature_names_in_", None),
                                type(self).__name__)
        elif (names := feature_names(X)) is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = names



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
    init_params : {"auto", "hc", "kmeans", "k-means++", "random", "random_from_data"}, \
default="auto"
        ``auto``: EM from the ``hc`` start and from the ``n_init`` ``kmeans`` starts,
        keeping the best lower bound (a fit with a component collapsed onto fewer rows
        than its covariance needs loses to one without); about twice the EM work of
        one start. In ``bayesgmm.selection.sweep`` (tol=1e-5) it reached R's mclust's
        log-likelihood in 142 of 144 fits where one k-means start reached 119
        (``benchmarks/README.md``), and it follows notebook 01's elongated clusters
        (ARI 1.0, one k-means start 0.48). With any ``*_init`` given it is ``kmeans``. ``hc``: model-based hierarchical
        agglomeration (mclust's default start, :func:`bayesgmm.initialize.hc_tree`),
        one tree for every K (so a loop over K grows it once), grown on at most 1000
        rows of large data. ``kmeans`` is scikit-learn's default (its iterates, from
        identical starts). ``kmeans`` and ``k-means++`` choose their centres on a
        uniform subsample of ``max(16384, 256 * n_components)`` rows when the data has more (then every row
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
        scikit-learn's: 1 prints when each initialisation starts and ends and every
        ``verbose_interval``-th iteration; 2 adds the time since the previous line, the
        lower-bound change and the final lower bound. Printed live as EM runs, on the
        compiled engine too (a host callback compiled only when verbose > 0;
        :mod:`bayesgmm.progress`). Vmapped restarts are each reported, their lines
        naming the initialisation.
    verbose_interval : int, default=10
        Iterations between reports.
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
    kernel : {"auto", "guarded", "centred", "moments"}, default="auto"
        How the E-step computes (:mod:`bayesgmm.suffstats`). ``"moments"``: the
        exponential-family form, one matmul per pass; ``"centred"``: per-component
        centred data, exact for any offset, slower; ``"guarded"``: each pass checks from
        the parameters whether the moments form's float32 round-off stays below 2^-10
        for every component and takes it, else the centred form. ``"auto"``: moments in
        float64, guarded in float32 (2.6x faster than the centred form at N=10^6, D=8,
        K=32, and exact on data offset by 1e4 or with a compact far component:
        ``benchmarks/em.py``). Vmapped restarts in float32 use the centred form.
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
    prior : {None, "default"} or bayesgmm.covariance.Prior, default=None
        MAP-EM with a conjugate normal-inverse-Wishart prior on each component's mean
        and covariance (Fraley & Raftery 2007; mclust's ``priorControl``): a component
        that would collapse onto a few points is held by the prior, not only by
        ``reg_covar``. ``"default"``: mclust's ``defaultPrior`` of the data, K and
        covariance type (:func:`bayesgmm.covariance.default_prior`: shrinkage 0.01
        towards the data mean, dof D + 2, scale var(X) / K^(2/D)), with mclust's own MAP
        M-step for each model (:data:`bayesgmm.covariance.MCLUST_PRIOR`); a ``Prior`` you
        build is the conjugate prior restricted to the model's family unless its
        ``form`` is ``"mclust"``. The weights have no
        prior. ``lower_bound_`` and the stopping rule stay on the log-likelihood, and
        ``bic`` is the log-likelihood at the MAP estimate with the usual parameter
        count, as mclust reports them. ``None``: maximum likelihood, scikit-learn's.
    equal_weights : bool, default=False
        Keep every weight at 1/K (mclust's ``equalPro``); ``bic`` and ``aic`` then
        count K - 1 fewer free parameters.
    stop_collapsed : bool, default=False
        Stop EM where the fit has collapsed, as mclust stops a singular fit: tested
        every 10 iterations (:data:`bayesgmm.engines.COLLAPSE_CHECK_EVERY`), a
        component whose smallest variance is at most 10·``reg_covar`` on fewer rows
        than its covariance needs, or on rows flat in a direction the mixture spreads
        along (:func:`bayesgmm.initialize.collapsed`). Its likelihood would only grow
        as the variance falls to ``reg_covar``, so iterating on changes no choice; the
        fit stops unconverged, with a :class:`~bayesgmm.SingularFitWarning`.
        :func:`bayesgmm.selection.sweep` turns it on (its ``collapsed`` column then
        marks such fits, as mclust leaves them out). Missing-data EM
        (``missing="marginalize"``), small-EM's screening and the bootstrap's refits
        (:mod:`bayesgmm.bootstrap`) stop alike. ``False``: scikit-learn's iterations.

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
    feature_names_in_ : ndarray of shape (n_features_in_,), dtype object
        X's column names, set only when ``fit`` got a table with str column names (a
        pandas DataFrame), as in scikit-learn. A table passed later must have these
        columns in this order (else a ``ValueError``); arrays are taken as they are. A
        table passed to a fit on an array is taken by position, with scikit-learn's
        ``UserWarning`` ("X has feature names, but ... was fitted without").
    params_ : GMMParams
        The same parameters as one pytree (NumPy leaves), for the functional core.
    n_padded_ : int
        The number of components the compiled programs ran at (``n_components`` plus
        zero-weight padding, :func:`bayesgmm.engines.choose.choose`); scoring pads as
        far, so it reuses those programs and a saved model predicts bit for bit alike.
    engine_ : {"jax", "numpy"}
        Where the last fit ran (see ``engine``); kept by :func:`bayesgmm.save`. Absent
        from a model built by ``from_params`` (no fit ran) and from one loaded from a
        folder saved before meta.json kept it.

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
        init_params="auto",
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
        prior=None,
        equal_weights=False,
        stop_collapsed=False,
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
        self.prior = prior
        self.equal_weights = equal_weights
        self.stop_collapsed = stop_collapsed

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

        Raises
        ------
        TypeError
            ``params`` is not a GMMParams.
        ValueError
            ``params`` is not usable (:func:`bayesgmm.validation.check_params`, the
            check :func:`bayesgmm.load` makes of a saved model): shapes other than the
            covariance type's layout, non-finite values, weights not a probability
            vector, a covariance that is not positive definite or over/underflows.
            Unchecked, these gave NaN predictions or an error from deep inside.
        """
        params = check_params(params)
        K, ct = params.n_components, params.covariance_type
        model = cls(**{"n_components": K, "covariance_type": ct, **estimator_params})
        if (model.n_components, model.covariance_type) != (K, ct):
            raise ValueError(
                f"params hold {K} {ct!r} components, but from_params got n_components="
                f"{model.n_components!r}, covariance_type={model.covariance_type!r}; "
                "leave both out to take them from params.")
        info = fitting.unfitted_info(K, params.dtype) if info is None else info
        model._store(params, info, n_padded or K)
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
        data, X = X, check_array_2d(X, min_samples=2, missing=self.missing,  # cheap
                                    marginalize_in="GaussianMixture")
        options, holes = self._options(), missing_data.has_missing(X)
        warm = _check_warm_start(self.warm_start) and self.__sklearn_is_fitted__()
        start, bound = (self.params_, self.lower_bound_) if warm else (None, -math.inf)
        params, info = (missing_data.fit if holes else fitting.fit)(
            X, options, sample_weight=sample_weight, start=start, start_lower_bound=bound)
        _warn_columns(X, data, self.n_components)  # after the fit: not before its errors
        self.engine_ = "numpy" if holes else fitting.plan(options, *X.shape).engine
        self._store(take_components(params, int(self.n_components)), info, params.n_components)
        self._feature_names(data, reset=True)
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
        data, X = X, check_array_2d(X, missing=self.missing, marginalize_in="GaussianMixture")
        if missing_data.has_missing(X):
            raise ValueError("partial_fit does not marginalise missing values (NaN in X); "
                             "fit does (missing='marginalize'), or drop those rows")
        warm = _check_warm_start(self.warm_start) and self.__sklearn_is_fitted__()
        start = self.params_ if state is not None or warm else None
        self._feature_names(data, reset=start is None)  # later batches: the first's columns
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

    def membership_table(self, X, prob=0.94):
        """Per sample its component and that component's membership probability, as
        columns for a table (:func:`bayesgmm.io.write_table` writes it as CSV).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        prob : float in (0, 1), default=0.94
            Accepted for the same call as :meth:`BayesianGaussianMixture.membership_table`;
            an EM fit is one parameter set, so it has no credible interval.

        Returns
        -------
        dict of str to ndarray
            ``label`` (n_samples,) int64, :meth:`predict`; ``probability`` (n_samples,)
            p(z = label | x), the largest entry of the row of :meth:`predict_proba`.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            ``prob`` outside (0, 1), or ``X`` with another number of features than the
            fit's, or NaN in ``X`` unless ``missing="marginalize"``.
        """
        _check_prob(prob)
        return membership_columns(self.predict_proba(X))

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

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            A row with no observed value, another number of features than the fit's,
            or ``n_imputations`` not a positive integer.
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
        return fitting.sample(check_random_state_key(self.random_state), self.params_,
                              check_n_samples_drawn(n_samples))

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

    def _check_settings(self) -> None:
        """Every constructor setting valid, else the ``ValueError`` fit raises naming it;
        without data, so :func:`bayesgmm.load` can refuse an edited meta.json's
        settings (engine "gpu9", tol "abc") at load instead of at the next fit."""
        self._options().check()
        _check_warm_start(self.warm_start)
        check_missing_option(self.missing)

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
        self._feature_names(X, reset=False)
        X = check_array_2d(X, missing=missing or self.missing, marginalize_in="GaussianMixture")
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
                                fitted_padded=[self.n_padded_],
                                equal_weights=self.equal_weights)[0]


def membership_columns(proba, lower=None, upper=None) -> dict[str, np.ndarray]:
    """The columns of a membership table from per-component probabilities.

    Parameters
    ----------
    proba : array of shape (N, K)
        Membership probabilities (rows sum to 1).
    lower, upper : arrays of shape (N, K), optional
        A credible interval of each entry of ``proba``.

    Returns
    -------
    dict of str to ndarray
        ``label`` (N,) int64, the argmax of each row (ties: the first); ``probability``
        (N,) that row's entry at ``label``; with ``lower``/``upper``, theirs at ``label``.
    """
    proba = np.asarray(proba)
    label = np.argmax(proba, axis=1).astype(np.int64)
    rows = np.arange(proba.shape[0])
    table = {"label": label, "probability": proba[rows, label]}
    if lower is not None:
        table["lower"] = np.asarray(lower)[rows, label]
        table["upper"] = np.asarray(upper)[rows, label]
    return table


def _check_prob(prob) -> None:
    if not (isinstance(prob, int | float | np.floating) and 0 < prob < 1):
        raise ValueError(f"prob must be a probability in (0, 1), e.g. prob=0.9; got {prob!r}")


class RobustMixture(BaseEstimator):
    """A mixture with a uniform noise component and/or Student-t components, by EM.

    A class of its own rather than options of :class:`GaussianMixture`: with a noise
    component ``predict_proba`` has K + 1 columns and ``predict`` returns -1, and a t
    component's ``covariances_`` are scale matrices; :class:`GaussianMixture` keeps
    scikit-learn's contract (K columns, labels 0..K-1), which its sweep, save/load
    and command line rely on. The core is :mod:`bayesgmm.robust` (host, float64).

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : str, default="full"
        Any model of the covariance table (:mod:`bayesgmm.covariance`).
    component : {"gaussian", "t"}, default="gaussian"
        The components' family. ``"t"``: multivariate Student-t (Peel & McLachlan
        2000), EM with latent scales.
    df : float, optional
        ``component="t"`` only: fixed degrees of freedom for every component (> 0;
        ``np.inf`` is the Gaussian). ``None``: each component's ν is estimated.
    noise : bool, default=False
        Add a uniform noise component over the data's region (Banfield & Raftery 1993),
        with a weight of its own.
    noise_volume : {"box", "hypvol", "hull"} or float, default="box"
        The region's volume V: the bounding box, mclust's ``hypvol`` (the smaller of the
        box and the box in the principal axes), the convex hull, or a number.
    noise_init : "nn" or array-like of shape (n_samples,), default="nn"
        The rows that start as noise: nearest-neighbour cleaning
        (:func:`bayesgmm.robust.nn_clean`, k = 10, unweighted; call it yourself for
        another k) or a boolean mask. The components start from a Gaussian fit of the
        other rows.
    tol, reg_covar, max_iter, n_init, init_params, random_state
        As in :class:`GaussianMixture`; ``n_init``, ``init_params`` and ``random_state``
        shape the starting Gaussian fit, and ``tol``, ``reg_covar``, ``max_iter`` both
        that fit and the robust EM.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The components' weights; with ``noise_weight_`` they sum to 1.
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        The scale matrices Σ_k, scikit-learn's layout for ``covariance_type`` (a t
        component's covariance is ν/(ν - 2) Σ_k).
    df_ : ndarray of shape (n_components,)
        Degrees of freedom; ``inf`` for Gaussian components.
    noise_weight_ : float
        π_0; 0 without a noise component.
    noise_volume_ : float
        V; ``inf`` without a noise component.
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_, feature_names_in_
        As in :class:`GaussianMixture` (``lower_bound_`` is the mean log-likelihood).
    params_ : bayesgmm.robust.RobustParams
    """

    def __init__(self, n_components=1, *, covariance_type="full", component="gaussian",
                 df=None, noise=False, noise_volume="box", noise_init="nn", tol=1e-3,
                 reg_covar=1e-6, max_iter=100, n_init=1, init_params="auto",
                 random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.component = component
        self.df = df
        self.noise = noise
        self.noise_volume = noise_volume
        self.noise_init = noise_init
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters: a Gaussian start, then EM (:func:`bayesgmm.robust.fit`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        data, X = X, check_array_2d(X, min_samples=2)  # NaN: no missing-value model here
        options = robust.RobustOptions.from_mapping(self.get_params())
        params, info = robust.fit_options(X, options, sample_weight)
        _warn_columns(X, data, self.n_components)  # after the fit: not before its errors
        self._store(params, info, X.dtype)
        self._feature_names(data, reset=True)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then :meth:`predict` X."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def predict_proba(self, X):
        """p(z = j | x), shape (n_samples, n_components + 1) with a noise component (the
        last column), else (n_samples, n_components); rows sum to 1."""
        X = self._check_X(X)
        log_resp = robust.log_resp(self.params_, X)[0]
        return np.exp(log_resp[:, :self._n_columns()])

    def predict(self, X):
        """The most probable component of each sample, shape (n_samples,), int64;
        -1 where the noise component is the most probable."""
        labels = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return np.where(labels == self.n_components, -1, labels)

    def score_samples(self, X):
        """log p(x) of each sample, noise included, shape (n_samples,)."""
        X = self._check_X(X)
        return robust.log_resp(self.params_, X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """``-2 log L + p log n``; p counts the noise weight and estimated ν."""
        return self._criteria(X)["bic"]

    def aic(self, X):
        """``-2 log L + 2 p``."""
        return self._criteria(X)["aic"]

    def n_parameters(self):
        """The free parameters BIC and AIC count (:func:`bayesgmm.robust.n_parameters`)."""
        self._check_is_fitted()
        return robust.n_parameters(self.params_, self.component == "t" and self.df is None)

    # ---- internals ----------------------------------------------------------------

    def _store(self, params, info, dtype) -> None:
        p = params.mixture
        self.params_ = params
        self.weights_, self.means_ = np.asarray(p.weights, dtype), np.asarray(p.means, dtype)
        self.covariances_ = np.asarray(p.covariances, dtype)
        self.df_ = np.asarray(params.df, np.float64)
        self.noise_weight_ = float(params.noise_weight)
        self.noise_volume_ = float(np.exp(params.log_volume))
        self.converged_, self.n_iter_ = bool(info.converged), int(info.n_iter)
        self.lower_bound_ = float(info.lower_bound)
        self.lower_bounds_ = [float(v) for v in info.history[: self.n_iter_]]
        self.n_features_in_ = p.n_features

    def _n_columns(self) -> int:
        return self.n_components + int(self.params_.has_noise)

    def _check_X(self, X) -> np.ndarray:
        self._check_is_fitted()
        self._feature_names(X, reset=False)
        X = check_array_2d(X)
        check_n_features(X, self.n_features_in_, type(self).__name__)
        return X

    def _criteria(self, X) -> dict:
        X = self._check_X(X)
        return robust.criteria(self.params_, X, self.component == "t" and self.df is None)


def check_settings(model) -> None:
    """``model``'s constructor settings checked as fit checks them, without data (for
    :func:`bayesgmm.load`); a ``ValueError`` naming the bad setting."""
    model._check_settings()


def online_state(model: GaussianMixture):
    """The online EM state ``partial_fit`` carries (:class:`bayesgmm.fitting.OnlineState`),
    None before the first ``partial_fit`` or after a ``fit``; :func:`bayesgmm.save`
    keeps it."""
    return model.__dict__.get("_online_state")


def set_online_state(model: GaussianMixture, state) -> None:
    """Give a loaded ``model`` the online EM state it was saved with, so its next
    ``partial_fit`` continues (:func:`bayesgmm.load`)."""
    model._online_state = state


def _check_warm_start(value) -> bool:
    """``warm_start`` as a bool, else a ``ValueError``: a string such as "no" is truthy,
    and was taken as True (the next fit continued the previous one)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"Invalid value for 'warm_start': {value!r}; it should be True "
                         "or False")
    return bool(value)
