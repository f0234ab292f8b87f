"""Input checks at the edge of the library, and the dtype scope computations run in.

Every message names the argument, what was expected, what was given, and the fix.
Where scikit-learn refuses the same input, the message also carries scikit-learn's own
words (``"The parameter 'weights' should ..."``), so code and tests written against
scikit-learn's messages keep matching. Jitted code never raises on values; it reports
flags that the facade turns into the errors and warnings defined here.

Nothing here imports JAX at import time: :func:`compute_scope` imports it when a float64
computation is about to run compiled.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import warnings

import numpy as np

__all__ = [
    "ConvergenceWarning",  # noqa: F822 (made on first access: module __getattr__)
    "DegenerateComponentWarning",
    "SingularFitWarning",
    "NotFittedError",  # noqa: F822
    "check_is_fitted",
    "check_array_2d",
    "max_magnitude",
    "feature_names",
    "check_feature_names",
    "MISSING_OPTIONS",
    "check_missing_option",
    "check_sample_weight",
    "check_n_features",
    "check_positive_int",
    "check_nonneg_float",
    "check_n_samples_drawn",
    "check_n_components_list",
    "check_covariance_type",
    "check_covariance_types",
    "repeated_models",
    "check_weights_init",
    "check_means_init",
    "check_precisions_init",
    "check_params",
    "check_random_state_key",
    "compute_scope",
    "DataScaleWarning",
    "check_reg_covar_scale",
    "check_spread",
    "ConstantFeatureWarning",
    "constant_feature",
    "constant_phrase",
    "check_no_constant_feature",
    "warn_constant_feature",
    "constant_combination",
    "warn_constant_combination",
    "DiscreteFeatureWarning",
    "FEW_VALUES",
    "few_values_feature",
    "warn_few_values",
    "data_warnings_off",
    "REG_COVAR_SHARE",
]


class DegenerateComponentWarning(UserWarning):
    """A component holds (almost) no samples; its covariance is only ``reg_covar``."""


class SingularFitWarning(UserWarning):
    """EM stopped a fit that collapsed (``stop_collapsed=True``): a component's variance
    is ``reg_covar``'s, so only ``reg_covar`` bounds its likelihood; mclust reports such
    a fit as singular."""


class ConstantFeatureWarning(UserWarning):
    """A feature of X, or a combination of its features, is constant: it tells the
    components nothing, and a component's variance along it is ``reg_covar``'s (see
    :func:`warn_constant_feature` and :func:`warn_constant_combination`)."""


class DiscreteFeatureWarning(UserWarning):
    """A feature of X takes only a few distinct values (:data:`FEW_VALUES`): a
    component can sit on one of them (see :func:`warn_few_values`)."""


class DataScaleWarning(UserWarning):
    """``reg_covar`` is not small next to the data's spread (data in small units): it
    is added to every component's covariance and blurs clusters together."""


#: ``reg_covar`` above this share of a feature's variance draws a
#: :class:`DataScaleWarning` (:func:`check_reg_covar_scale`). Measured with the default
#: reg_covar = 1e-6: make_blobs(300, 4, random_state=0) scaled by c, EM's adjusted Rand
#: index at c = 1e-2 (reg_covar 0.1-0.3% of a feature's variance) is that of c = 1
#: (0.83), at c = 1e-3 (10-30%) 0.34, at c = 1e-4 0 (scikit-learn's the same); but Old
#: Faithful with its features scaled by (1e-2, 1e2), reg_covar 0.8% of the eruptions'
#: variance and about 10% of a cluster's, lost up to 18 nats in a sweep's fits (VVV,
#: K = 6). Clusters narrow next to their feature's spread feel it first.
REG_COVAR_SHARE = 1e-3


def check_reg_covar_scale(X, reg_covar) -> None:
    """Check the data's units against what a fit adds and computes in them.

    Refuse (``ValueError``) a feature whose values differ by less than
    :func:`min_spread` (their squares underflow ``X``'s dtype: the fit would see a
    constant column and return identical components, silently). Warn
    (:class:`DataScaleWarning`, at the user's line) where ``reg_covar`` exceeds
    :data:`REG_COVAR_SHARE` of some feature's variance (over its observed values),
    naming the feature, the share and both fixes. ``reg_covar`` is absolute, as
    scikit-learn's: a variance of 1e-6 is a whole cluster's in data measured in
    thousandths. Features constant on all rows or on half of them or more (an
    interquartile range of 0: a few rows off a constant, whose variance says nothing of
    units) are left out; so is a ``reg_covar`` that is not a positive number (the
    options' own check names it)."""
    X = np.asarray(X)
    check_spread(X)
    blur = blurring_feature(X, reg_covar)
    if blur is None:
        return
    j, var = blur
    share = reg_covar / var
    share = f"{share:.0%} of" if share < 10 else f"{share:.3g} times"
    warnings.warn(
        f"reg_covar={reg_covar:g} is {share} feature {j}'s variance ({var:.3g}): in "
        "these units it is added to every component's covariance and can blur clusters "
        "together (reg_covar is in the data's units, as scikit-learn's). Rescale the data "
        f"(for example X / X.std(axis=0)) or lower reg_covar to about {unit_reg_covar(var):.2g}.",
        DataScaleWarning, stacklevel=_caller_level())


def unit_reg_covar(variance: float) -> float:
    """The ``reg_covar`` that is to a feature of ``variance`` what the default 1e-6 is
    to one of variance 1 (what :class:`DataScaleWarning` suggests)."""
    return 1e-6 * float(variance)


def blurring_feature(X, reg_covar) -> tuple[int, float] | None:
    """``(j, variance)``: the feature of least variance (among those with an
    interquartile range above 0) whose variance ``reg_covar`` exceeds
    :data:`REG_COVAR_SHARE` of; None where there is none, or ``reg_covar`` is not a
    positive number. NaN (missing values) is skipped."""
    if not _positive(reg_covar):
        return None
    X = np.asarray(X)
    var = np.var(X, axis=0, dtype=np.float64)  # float64 sums, no copy of X
    holes = np.flatnonzero(np.isnan(var))
    if holes.size:  # missing values: those columns over their observed rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            var[holes] = np.nanvar(X[:, holes].astype(np.float64), axis=0)
    for j in np.argsort(np.where(var > 0, var, np.inf)):
        if not (var[j] > 0) or reg_covar <= REG_COVAR_SHARE * var[j]:
            return None
        column = X[:, j].astype(np.float64)
        q1, q3 = np.nanpercentile(column, [25, 75])
        if q3 > q1:
            return int(j), float(var[j])
    return None


def _positive(reg_covar) -> float:
    """``reg_covar`` where it is a positive number, else 0.0 (not a number, a bool, NaN,
    or not above 0: the options' own check names it; the data checks then leave it)."""
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, numbers.Real) or not (
            reg_covar > 0):
        return 0.0
    return float(reg_covar)


def min_spread(dtype) -> float:
    """The least difference between a feature's values a fit accepts in ``dtype``:
    sqrt(tiny / eps) (1.0e-146 in float64, 3.2e-16 in float32), below which the
    squares of the deviations a variance sums are no longer normal numbers with the
    dtype's precision. Measured: at 1e-170 the float64 variance was exactly 0, and
    EM returned identical components and uniform ``predict_proba`` without a word."""
    info = np.finfo(dtype)
    return float(np.sqrt(info.tiny / info.eps))


def check_spread(X: np.ndarray, name: str = "X") -> None:
    """A ``ValueError`` naming the first feature whose values (NaN skipped) differ, but
    by less than :func:`min_spread`, and the fix (rescale)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
        spread = np.fmax.reduce(X, axis=0) - np.fmin.reduce(X, axis=0)
    floor = min_spread(X.dtype)
    small = np.flatnonzero((spread > 0) & (spread < floor))
    if small.size:
        j = int(small[0])
        raise ValueError(
            f"{name}'s feature {j} spans only {spread[j]:.3g} (its largest value minus its "
            f"smallest), below {floor:.3g}, where the squares a Gaussian mixture sums "
            f"underflow {X.dtype} and the feature looks constant; rescale it without "
            f"squaring (its standard deviation underflows too), e.g. to [0, 1]: "
            f"(c - c.min()) / (c.max() - c.min()) for c = {name}[:, {j}]")


def constant_feature(X: np.ndarray) -> tuple[int, float, str, int] | None:
    """``(j, value, where, count)``: the first feature of ``X`` (a float array, as
    :func:`check_array_2d` returns) whose observed values
    (NaN skipped) are all equal, its value, where it was seen ("in every row", "in every
    row where it is observed", "in the one row where it is observed") and how many such
    features X has; None where there is none (an all-NaN column is not constant: the
    missing-data checks name it)."""
    X = np.asarray(X)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
        constant = np.flatnonzero(np.nanmax(X, axis=0) == np.nanmin(X, axis=0))
    if not constant.size:
        return None
    j = int(constant[0])
    seen = X[~np.isnan(X[:, j]), j]
    where = ("in every row" if len(seen) == len(X) else
             "in the one row where it is observed" if len(seen) == 1 else
             "in every row where it is observed")
    return j, float(seen[0]) + 0.0, where, int(constant.size)  # (+ 0.0: -0.0 as 0)


def constant_phrase(found: tuple[int, float, str, int], names=None) -> str:
    """``"X's column 2 ('site') is constant (3 in every row; 2 such columns)"``, from
    :func:`constant_feature`'s answer (and X's feature names, where given)."""
    j, value, where, count = found
    more = f"; {count} such columns" if count > 1 else ""
    called = f" ({names[j]!r})" if names is not None else ""
    return f"X's column {j}{called} is constant ({value:g} {where}{more})"


def _constant_message(found: tuple[int, float, str, int], names=None) -> str:
    return (f"{constant_phrase(found, names)}: it tells the "
            "components nothing, yet every component's variance there is reg_covar's, "
            "which adds a likelihood of its own and parameters that differ between "
            "covariance models, so a model search's choice moves with it (Old Faithful "
            "with a constant third column: EEI,3 instead of EEE,3)")


def _drop(found: tuple[int, float, str, int], names=None, n_features: int = 2) -> str:
    j, _, _, count = found
    if count >= n_features:
        return "no feature is left to cluster: check what was read"
    if names is not None:  # a data frame
        return (f"drop the column: X.drop(columns={names[j]!r})" if count == 1 else
                "drop those columns: X.loc[:, X.max() > X.min()]")
    return (f"drop the column: np.delete(X, {j}, axis=1)" if count == 1 else
            "drop those columns: X[:, np.nanmax(X, axis=0) > np.nanmin(X, axis=0)]")


def check_no_constant_feature(X: np.ndarray, owner: str, names=None) -> None:
    """A ``ValueError`` naming the first constant feature of ``X`` (by its name too where
    ``names``, X's feature names, are given) and the fix (drop it): a model search's
    choice would depend on the column."""
    found = constant_feature(X)
    if found is not None:
        raise ValueError(f"{owner}: {_constant_message(found, names)}; "
                         f"{_drop(found, names, np.shape(X)[1])}")


def warn_constant_feature(X: np.ndarray, names=None) -> None:
    """A :class:`ConstantFeatureWarning` (at the user's line) naming the first constant
    feature of ``X`` and the fix; a fit goes on, as scikit-learn's does (its
    clusters are those of the other features, except for the isotropic models, EII and
    VII, whose one variance the column pulls towards ``reg_covar``)."""
    found = constant_feature(X)
    if found is not None:
        warnings.warn(f"{_constant_message(found, names)}; to compare models or read "
                      f"likelihoods, {_drop(found, names, np.shape(X)[1])}",
                      ConstantFeatureWarning,
                      stacklevel=_caller_level())


def constant_combination(X: np.ndarray, names=None,
                         reg_covar: float = 0.0) -> tuple[str, float] | None:
    """``(combination, variance)``: a combination of X's features that is constant (its
    columns linearly dependent: shares that sum to 1, a column that is the sum of
    others), or that varies less than ``reg_covar`` adds, written in the data's units
    with its largest coefficient 1 and its first positive (``"x0 + x1 - x2"``, or by
    ``names``), and the data's variance along the unit vector of it; None where there
    is none. Over the complete rows (NaN skipped). Constant: the correlation matrix's
    smallest eigenvalue is at most 100·D·eps of float64 (an exact relation, to
    round-off) or (10·eps)² of X's own dtype (one computed in float32). Not for a
    constant feature (:func:`constant_feature` names it), one feature, or no more
    complete rows than features (then every set of columns is dependent)."""
    reg_covar = _positive(reg_covar)
    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if X.dtype.kind == "f" and np.isnan(X).any():
        X = X[~np.isnan(X).any(axis=1)]
    N, D = X.shape
    if D < 2 or N <= D:
        return None
    X = X - X.mean(axis=0, dtype=np.float64)  # float64, one copy
    C = X.T @ X / N  # the covariance
    sd = np.sqrt(np.diag(C))
    if not (sd > 0).all():
        return None
    w, V = np.linalg.eigh(C / np.outer(sd, sd))  # the correlation matrix: trace D
    floor = max(100 * D * float(np.finfo(np.float64).eps),
                (10 * float(np.finfo(dtype).eps)) ** 2)
    if w[0] <= floor * w[-1]:
        c = V[:, 0] / sd  # along Σ_j c_j x_j the data do not move
    else:
        w, V = np.linalg.eigh(C)
        if not w[0] < reg_covar:
            return None
        c = V[:, 0]
    u = c / np.linalg.norm(c)
    variance = max(float(u @ C @ u), 0.0)
    c = c / c[np.argmax(np.abs(c))]
    c = c * np.sign(c[np.flatnonzero(np.abs(c) > 1e-6)[0]])
    terms = []
    for j in np.flatnonzero(np.abs(c) > 1e-6):
        name = str(names[j]) if names is not None else f"x{j}"
        size = abs(float(c[j]))
        term = name if f"{size:.3g}" == "1" else f"{size:.3g}·{name}"
        terms.append(("- " if c[j] < 0 else "+ ") + term)
    return " ".join(terms)[2:], variance


def warn_constant_combination(X: np.ndarray, names=None, reg_covar: float = 0.0) -> None:
    """A :class:`ConstantFeatureWarning` (at the user's line) where a combination of X's
    features is constant, or varies less than ``reg_covar``
    (:func:`constant_combination`): the models whose covariances are not diagonal take
    a likelihood of ``reg_covar``'s along it and the diagonal and spherical ones
    cannot, so a model search compares them on unequal terms."""
    reg_covar = _positive(reg_covar)
    found = constant_combination(X, names, reg_covar)
    if found is not None:
        combination, variance = found
        size = f"below reg_covar={reg_covar:g}" if variance < reg_covar else "round-off"
        warnings.warn(
            f"X's columns are linearly dependent: {combination} is constant (the data's "
            f"variance along it is {variance:.2g}, {size}). Along it "
            "the models with full covariances (VVV, EEE, ...) take a variance of "
            "reg_covar's and a likelihood of its own, the diagonal and spherical ones "
            "cannot, so BIC compares them on unequal terms (Old Faithful with a third "
            "column, the sum of the two: the best diagonal model 4,171 BIC units behind "
            "the best full one, against 9 without it); drop one of the columns in the "
            "combination", ConstantFeatureWarning, stacklevel=_caller_level())


#: A feature with at most this many distinct values (a count, a rating, a 0/1 flag)
#: draws a :class:`DiscreteFeatureWarning` from a fit of two or more components.
FEW_VALUES = 10


def few_values_feature(X: np.ndarray, most: int = FEW_VALUES) -> tuple[int, int] | None:
    """``(j, n_values)``: the first feature of ``X`` with at most ``most`` distinct values
    (NaN skipped) but more than one (:func:`constant_feature` names those); None where
    there is none. A column whose first rows already hold more values is not sorted:
    the test costs a pass over X for most data."""
    X = np.asarray(X)
    head = X[:1000]
    for j in range(X.shape[1]):
        seen = np.unique(head[:, j])
        seen = seen[~np.isnan(seen)] if seen.dtype.kind == "f" else seen
        if len(seen) > most:
            continue
        column = X[:, j]
        if X.dtype.kind == "f":
            column = column[~np.isnan(column)]
        if len(X) > len(head) and not np.isin(column, seen).all():
            seen = np.unique(column)
        if 1 < len(seen) <= most:
            return j, int(len(seen))
    return None


@contextlib.contextmanager
def data_warnings_off():
    """A block in which the library's own fits of data its caller has checked, or of
    a subset of it, stay quiet about the data's columns (:class:`ConstantFeatureWarning`,
    :class:`DiscreteFeatureWarning`): a column constant on one process's rows or on the
    rows outside a noise guess is not the user's data's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantFeatureWarning)
        warnings.simplefilter("ignore", DiscreteFeatureWarning)
        yield


def warn_few_values(X: np.ndarray, n_components: int, names=None) -> None:
    """A :class:`DiscreteFeatureWarning` (at the user's line) where a fit of
    ``n_components`` >= 2 meets a feature of few distinct values
    (:func:`few_values_feature`): a component can sit on one value with no spread
    there, which a Gaussian likelihood rewards without bound (or, where the volume is
    shared, with a degenerate shape: one variance near ``reg_covar``, another far
    beyond the data's); mclust reports such fits as singular."""
    if int(n_components) < 2:
        return
    found = few_values_feature(X)
    if found is not None:
        j, count = found
        called = f" ({names[j]!r})" if names is not None else ""
        warnings.warn(
            f"X's column {j}{called} takes only {count} distinct values in {len(X)} rows: "
            "a component can sit on one value, with no spread there, and a Gaussian "
            "likelihood rewards that (mclust reports such fits as singular), so the "
            "fits and a model search's choice follow the values, not clusters. Leave the "
            "column out, or spread its values by their rounding (add uniform noise of "
            "their spacing's width) if they are a continuous quantity measured coarsely",
            DiscreteFeatureWarning, stacklevel=_caller_level())


def _sklearn_classes() -> dict:
    """:class:`ConvergenceWarning` and :class:`NotFittedError`, made on first use.

    Each subclasses scikit-learn's own class when scikit-learn is installed, so
    ``warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)`` and
    ``except sklearn.exceptions.NotFittedError`` catch ours too. Importing
    ``sklearn.exceptions`` loads scikit-learn's package (~0.5 s), which a host fit
    otherwise never needs; so the classes are built when first asked for (a warning or
    error about to be raised, or a user's reference), not when bayesgmm is imported."""
    try:  # scikit-learn is optional
        from sklearn.exceptions import ConvergenceWarning as sk_convergence
        from sklearn.exceptions import NotFittedError as sk_not_fitted
    except ImportError:  # exercised in a subprocess by tests/test_validation.py
        sk_convergence = UserWarning

        class sk_not_fitted(ValueError, AttributeError):  # noqa: N801
            """Stands in for scikit-learn's class (a plain Exception base here made
            NotFittedError's method resolution order inconsistent: importing failed)."""

    class ConvergenceWarning(sk_convergence):
        """EM stopped at ``max_iter`` before the lower bound changed by less than
        ``tol``. A ``UserWarning``, and a subclass of scikit-learn's own class when it
        is installed."""

    class NotFittedError(sk_not_fitted, ValueError, AttributeError):
        """The estimator is used before ``fit``. A ``ValueError`` and ``AttributeError``
        as in scikit-learn, and a subclass of scikit-learn's own class when it is
        installed."""

    for cls in (ConvergenceWarning, NotFittedError):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return {"ConvergenceWarning": ConvergenceWarning, "NotFittedError": NotFittedError}


_LAZY: dict = {}


def __getattr__(name: str):
    """``ConvergenceWarning`` and ``NotFittedError`` (PEP 562), built once on first
    access by :func:`_sklearn_classes`."""
    if name in ("ConvergenceWarning", "NotFittedError"):
        if not _LAZY:
            _LAZY.update(_sklearn_classes())
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compute_scope(dtype) -> contextlib.AbstractContextManager:
    """Context in which JAX computes in ``dtype``, scoped to the call, without touching
    the user's global JAX setting: float64 input runs under x64 mode, and float32 input
    without it where the user has switched x64 on (``jax_enable_x64``, or
    ``JAX_ENABLE_X64`` in the environment), so that a float32 fit runs the programs it
    runs by default (under x64, NumPyro's transforms made float64 sites beside the
    float32 data, and the Bayesian fits failed with a dtype error). JAX is imported
    here when a float64 computation is about to run compiled, or when x64 may be on."""
    if np.dtype(dtype) == np.float64:
        import jax

        return jax.enable_x64(True)
    return default_x64_scope()


def default_x64_scope() -> contextlib.AbstractContextManager:
    """Context in which JAX's x64 mode is off, its default, scoped to the call: a
    no-op unless the user switched it on (``jax_enable_x64``, or ``JAX_ENABLE_X64`` in
    the environment). Work whose numbers should not depend on that setting runs in it
    (the Bayesian estimator's EM start: its seeding draws differ under x64)."""
    if "jax" not in sys.modules and not os.environ.get("JAX_ENABLE_X64"):
        return contextlib.nullcontext()  # not loaded, and x64 is off by default
    import jax

    return jax.enable_x64(False) if jax.config.jax_enable_x64 else contextlib.nullcontext()


def check_is_fitted(estimator) -> None:
    """Raise :class:`NotFittedError` (scikit-learn's message) unless ``estimator`` is
    fitted, by its ``__sklearn_is_fitted__``."""
    if not estimator.__sklearn_is_fitted__():
        raise __getattr__("NotFittedError")(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


MISSING_OPTIONS = ("error", "marginalize")


def check_missing_option(missing) -> None:
    """A ``ValueError`` naming the valid values for a ``missing`` setting outside
    :data:`MISSING_OPTIONS` (every estimator's, with data or without)."""
    if missing not in MISSING_OPTIONS:
        raise ValueError(f"Invalid value for 'missing': {missing!r}; 'missing' should be "
                         f"in {MISSING_OPTIONS}")


def check_array_2d(X, *, name: str = "X", min_samples: int = 1, context: str = "",
                   missing: str = "error", marginalize_in: str | None = None) -> np.ndarray:
    """Return ``X`` as a 2-D float32/float64 NumPy array, or raise a clear ``ValueError``.

    float32 and float64 are kept; other numeric types become float64. A table whose
    values NumPy reads as objects (pandas' nullable ``Float64``, ``Int64``...) is read
    as float with NaN for NA, through its ``to_numpy`` (pandas is not imported). NaN
    (unless ``missing="marginalize"``: NaN marks a missing value), inf, values whose
    squares overflow (:func:`max_magnitude`), complex values, 1-D/3-D input and too few
    samples are refused. ``marginalize_in``: the estimator or function that takes
    ``missing="marginalize"``, which the NaN message then names; ``None``: the message
    says to drop or impute the rows (the caller has no missing-value model).
    """
    check_missing_option(missing)
    if X is None:
        raise ValueError(f"{name} is None; expected an array-like of shape (n_samples, n_features)")
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"Sparse {name} is not supported (Gaussian mixtures need dense data); "
            f"pass {name}.toarray() if it fits in memory"
        )
    times = _time_columns(X)
    if times:  # pandas reads them as nanoseconds: numbers of another scale, not features
        raise ValueError(
            f"{name} has date or time columns {_few(times)}; a Gaussian mixture takes "
            f"numeric features: drop them, e.g. {name}.drop(columns={_few(times)}), or turn "
            "each into a number in units that suit the data (e.g. days since a start)")
    try:
        arr = np.asarray(X)  # a JAX array too: read on the host
    except ValueError as exc:  # rows of different lengths (NumPy: "inhomogeneous shape")
        raise ValueError(f"{name} must be a table of n_samples rows of n_features numbers "
                         f"each; its rows differ in length ({exc})") from None
    if arr.dtype.kind == "O" and hasattr(X, "to_numpy"):
        arr = _table_values(X, arr)
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported in {name}; pass the real part or split it")
    if arr.dtype.kind == "O" or arr.dtype.kind in "USV":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            msg = f"{name} must be numeric; could not convert its {arr.dtype} values to float: {exc}"
            columns = _non_numeric_columns(X)
            if columns:  # a table: name its columns to drop (or encode)
                msg += (f"; its non-numeric columns are {_few(columns)}: drop them, e.g. "
                        f"{name}.drop(columns={_few(columns)}), or encode them as numbers")
            raise type(exc)(msg) from None
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} has dtype {arr.dtype}; expected a numeric array")
    if arr.ndim != 2:
        if arr.ndim < 2:
            raise ValueError(
                f"Expected 2D array, got {arr.ndim}D array instead: {name}.shape={arr.shape}. "
                "Reshape your data either using array.reshape(-1, 1) if your data has a single "
                "feature or array.reshape(1, -1) if it contains a single sample."
            )
        raise ValueError(
            f"Found array with dim {arr.ndim}: {name}.shape={arr.shape}; expected 2D "
            "(n_samples, n_features)"
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    n, d = arr.shape
    if n < min_samples:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={arr.shape}) while a minimum of "
            f"{min_samples} is required{context}."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if not np.isfinite(arr).all():
        nan_ok = missing == "marginalize"
        bad = np.argwhere(np.isinf(arr) if nan_ok else ~np.isfinite(arr))
        if bad.size:
            bad = bad[0]
            kind = "infinity" if nan_ok or not np.isnan(arr).any() else "NaN"
            fix = "drop or impute those rows: a Gaussian mixture has no likelihood for them"
            if kind == "NaN" and marginalize_in is not None:
                fix = (f"to treat NaN as missing at random, pass missing='marginalize' to "
                       f"{marginalize_in}; else {fix}")
            raise ValueError(f"Input {name} contains {kind} (first at row {bad[0]}, column "
                             f"{bad[1]}); {fix}")
    _check_magnitude(arr, name)
    return np.ascontiguousarray(arr)


def max_magnitude(dtype) -> float:
    """The largest ``|x|`` :func:`check_array_2d` accepts in ``dtype``: sqrt of the
    dtype's largest number over 2^16 (2.0e149 in float64, 2.8e14 in float32), so that
    the squares EM and k-means sum (N·x², with N up to 2^32 rows) stay finite. Above
    it, fits failed deep inside (an IndexError after ~100 overflow warnings; float32
    on the compiled engine from 1e18) and predictions were NaN."""
    return float(np.sqrt(np.finfo(dtype).max)) / 2**16


def feature_names(X) -> np.ndarray | None:
    """``X``'s column names as a (D,) object array when it has a ``columns`` of str (a
    pandas DataFrame's): what ``fit`` stores as ``feature_names_in_``, as scikit-learn
    does; ``None`` for an array, or columns that are not all str."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    if names.ndim != 1 or not names.size:
        return None
    text = [isinstance(n, str) for n in names]
    if any(text) and not all(text):  # scikit-learn's TypeError: neither names nor positions
        kinds = sorted({type(n).__name__ for n in names})
        raise TypeError(
            f"Feature names are only supported if all input features have string names, "
            f"but X's columns have {kinds} as name types; give every column a str name "
            f"(X.columns = X.columns.astype(str)) or pass X.to_numpy()")
    return names if all(text) else None


def check_feature_names(X, fitted: np.ndarray | None, estimator_name: str) -> None:
    """Refuse a table whose column names are not the ``fitted`` ones in their order
    (scikit-learn's check). Without it a DataFrame with its columns swapped was
    silently scored as the fit's features. An array is taken by position (the names
    are the table's; the library's own calls pass arrays). A table against a fit on an
    array is taken by position too, with scikit-learn's ``UserWarning``: nothing can
    check that its columns are the fit's; so is a table whose column names are not str
    (0, 1, ...) against a fit on named columns, with scikit-learn's other warning."""
    names = feature_names(X)
    if fitted is not None and names is None and getattr(X, "columns", None) is not None \
            and not isinstance(X, np.ndarray):  # a table without str names
        warnings.warn(f"X does not have valid feature names, but {estimator_name} was "
                      f"fitted with feature names: its columns are taken by position; "
                      f"pass X[model.feature_names_in_] or name its columns",
                      UserWarning, stacklevel=_caller_level())
        return
    if fitted is None and names is not None:
        warnings.warn(f"X has feature names, but {estimator_name} was fitted without "
                      "feature names: its columns are taken by position", UserWarning,
                      stacklevel=_caller_level())
        return
    if fitted is None or names is None or list(names) == list(fitted):
        return
    fitted = [str(n) for n in fitted]
    unseen = sorted(set(names) - set(fitted))
    absent = sorted(set(fitted) - set(names))
    if unseen or absent:
        diff = "; ".join(part for part in (
            f"unseen at fit: {_few(unseen)}" if unseen else "",
            f"seen at fit, yet now missing: {_few(absent)}" if absent else "") if part)
        fix = "rename or select X's columns to match: X[model.feature_names_in_]"
    else:
        diff, fix = "the same names in another order", "pass X[model.feature_names_in_]"
    raise ValueError(
        f"The feature names should match those that were passed during fit: X's columns "
        f"{_few(list(names))} against {estimator_name}'s feature_names_in_ "
        f"{_few(fitted)} ({diff}); {fix}")


def _caller_level() -> int:
    """``warnings.warn``'s stacklevel (called from the caller of this function) that
    names the first frame outside this package: the user's line, however deep the
    library's own calls are."""
    import inspect

    package = os.path.dirname(os.path.abspath(__file__))
    # the frame that calls warnings.warn (this function's caller) is level 1
    frame, level = inspect.currentframe().f_back.f_back, 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _non_numeric_columns(X) -> list:
    """The names of a table's columns that hold no numbers (strings, categories,
    objects), as str; [] for an array or where it cannot tell."""
    def kind(t) -> str:
        try:
            return np.dtype(getattr(t, "numpy_dtype", t)).kind
        except TypeError:  # a pandas extension type (categories): numeric or not
            return "f" if getattr(t, "_is_numeric", False) else "O"

    try:
        return [str(c) for c, t in zip(X.columns, X.dtypes) if kind(t) not in "fiub"]
    except (AttributeError, TypeError):  # no per-column dtypes
        return []


def _time_columns(X) -> list:
    """The names of a table's date, time and duration columns (datetime64, timedelta64,
    time-zone-aware dates), as str; [] for an array. Measured: a DataFrame with a
    date column beside two features was fitted with it as a third feature (means of
    1.6e15: nanoseconds since 1970)."""
    if isinstance(X, np.ndarray) or not hasattr(X, "dtypes"):
        return []
    try:
        return [str(c) for c, t in zip(X.columns, X.dtypes)
                if str(t).startswith(("datetime64", "timedelta64"))
                or getattr(t, "kind", "") in ("m", "M")]
    except (AttributeError, TypeError):  # no per-column dtypes
        return []


def _table_values(X, arr: np.ndarray) -> np.ndarray:
    """A table's values as float, NA as NaN (``X.to_numpy(dtype, na_value=nan)``):
    float32 where every column is float32 (pandas' ``Float32``), else float64. ``arr``
    (NumPy's object array of X) where X is not numeric: the caller's error names it."""
    try:
        kinds = [np.dtype(getattr(t, "numpy_dtype", t)) for t in X.dtypes]
    except (AttributeError, TypeError):  # no per-column dtypes (a Series: not 2-D)
        kinds = []
    dtype = np.float32 if kinds and all(k == np.float32 for k in kinds) else np.float64
    try:
        return np.asarray(X.to_numpy(dtype=dtype, na_value=np.nan))
    except (TypeError, ValueError):
        return arr


def _check_magnitude(arr: np.ndarray, name: str) -> None:
    """A ``ValueError`` naming the largest ``|x|`` of ``arr`` (finite values; NaN
    skipped) when it is above :func:`max_magnitude`."""
    bound = max_magnitude(arr.dtype)
    peak = max(np.fmax.reduce(arr, axis=None), -np.fmin.reduce(arr, axis=None))
    if not peak > bound:  # NaN (every value missing) passes: check_missing refuses it
        return
    row, col = np.argwhere(np.abs(arr) == peak)[0]
    other = (f", or pass {name}.astype(np.float64) (its limit is "
             f"{max_magnitude(np.float64):.3g})" if arr.dtype == np.float32 else "")
    raise ValueError(
        f"{name} holds a value of magnitude {peak:.3g} (row {row}, column {col}), above "
        f"{bound:.3g}, where the squares a Gaussian mixture sums overflow {arr.dtype}; "
        f"rescale {name}, e.g. standardise each column: ({name} - {name}.mean(axis=0)) / "
        f"{name}.std(axis=0){other}")


def _few(names: list, limit: int = 5) -> str:
    """``names`` as a list, the first ``limit`` and a count of the rest."""
    shown = repr(list(names[:limit]))
    return shown if len(names) <= limit else f"{shown[:-1]}, ... {len(names) - limit} more]"


def check_sample_weight(sample_weight, n_samples: int, dtype) -> np.ndarray:
    """Non-negative, finite weights of shape (n_samples,), not all zero; ones if None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiub":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    w = w.astype(dtype)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == {w.shape}, expected ({n_samples},): one weight per sample"
        )
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity; weights must be finite")
    if (w < 0).any():
        raise ValueError(
            f"Negative values in sample_weight (min {w.min():.3g}); weights must be >= 0"
        )
    total = w.sum(dtype=np.float64)
    if total <= 0:
        raise ValueError(
            "sample_weight is all zero: at least one sample needs a positive weight"
        )
    low, high = weight_total_bounds(w.dtype)
    if not low <= total <= high:
        why = (f"below {low:.3g}: EM adds 10·eps to every component's weight (scikit-learn's "
               "guard against empty components), which weights this small no longer "
               "outweigh, and the fit collapses" if total < low else
               f"above {high:.3g}, where the weighted sums of squares EM computes overflow "
               f"{w.dtype}")
        raise ValueError(
            f"sample_weight sums to {total:.3g}, {why}. Weights count rows (a weight of 2 "
            "is a row seen twice; the criteria's sample size is their sum): rescale them, "
            "e.g. sample_weight / sample_weight.mean()")
    return w


def weight_total_bounds(dtype) -> tuple[float, float]:
    """The range :func:`check_sample_weight` accepts for the weights' sum in ``dtype``:
    at least 1e5·eps (2.2e-11 in float64, 0.012 in float32), so that the 10·eps EM adds
    to each component's count moves a count by at most 1e-4 of the total; at most
    :func:`max_magnitude` (2.0e149, 2.8e14), the data's own bound. Measured (make_blobs,
    float64): weights of 1e-20 each collapsed every mean onto the data's mean, of 1e200
    each made the tree's merges overflow (an IndexError deep inside)."""
    return 1e5 * float(np.finfo(dtype).eps), max_magnitude(dtype)


def check_n_samples(n_samples: int, n_components: int) -> None:
    """scikit-learn's ``ValueError`` when there are fewer samples than components."""
    if n_samples < n_components:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                         f"{n_components}, n_samples = {n_samples}")


def check_n_features(X: np.ndarray, n_features_in: int, estimator_name: str) -> None:
    if X.shape[1] != n_features_in:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator_name} is expecting "
            f"{n_features_in} features as input."
        )


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Invalid value for '{name}': {value!r}; '{name}' should be an integer >= {minimum}"
        )
    return int(value)


def check_n_samples_drawn(n_samples) -> int:
    """``n_samples`` of an estimator's ``sample``: an int >= 1, else scikit-learn's
    ``ValueError`` ("The sampling requires at least one sample")."""
    if (isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1):
        raise ValueError(
            f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
            "least one sample.")
    return int(n_samples)


def check_n_components_list(values, owner: str, name: str = "n_components") -> list[int]:
    """A model search's numbers of components as a list of distinct ints >= 1; else a
    ``TypeError`` (one int, not a sequence) or ``ValueError`` (empty, a non-integer
    such as 1.5, K <= 0, a K twice) naming the fix. Without it 1.5 was truncated to 1,
    0 failed deep inside, and a K twice was fitted twice."""
    if values is None or isinstance(values, numbers.Number) or isinstance(values, str):
        hint = f"[{values!r}]" if isinstance(values, numbers.Integral) else "[1, 2, 3]"
        raise TypeError(f"{owner}'s {name} must be a sequence of ints, e.g. {hint} or "
                        f"range(1, 10); got {values!r}")
    ks = list(values)
    if not ks:
        raise ValueError(f"{owner} needs at least one number of components; got "
                         f"{name}={ks} (e.g. {name}=range(1, 10))")
    # whole numbers of any type (np.linspace's 1.0, 2.0 ...) are taken as ints
    wrong = [k for k in ks if isinstance(k, bool) or not isinstance(k, numbers.Real)
             or not (isinstance(k, numbers.Integral) or float(k).is_integer())]
    if wrong:
        raise ValueError(f"{owner}'s {name} must hold whole numbers of components; got "
                         f"{wrong[0]!r} in {ks} (pass ints, e.g. range(1, 10))")
    small = [int(k) for k in ks if k < 1]
    if small:
        raise ValueError(f"{owner}'s {name} must be >= 1; got {small[0]} in "
                         f"{[int(k) for k in ks]} (a mixture has at least one component)")
    twice = sorted({int(k) for k in ks if ks.count(k) > 1})
    if twice:
        raise ValueError(f"{owner}'s {name} lists K = {twice} more than once; list each K "
                         f"once, e.g. {sorted(set(int(k) for k in ks))}")
    return [int(k) for k in ks]


def check_nonneg_float(value, name: str, strict: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (strict and value == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"Invalid value for '{name}': {value!r}; '{name}' should be {bound}")
    return float(value)


def check_covariance_type(value) -> str:
    """``value`` if it names a covariance model: scikit-learn's four types or mclust's 14
    models (``full`` = VVV, ``tied`` = EEE, ``diag`` = VVI, ``spherical`` = VII are the
    same models), or mclust's univariate ``E``/``V``; else a ``ValueError`` listing the
    valid names of both vocabularies. The name is returned as given (an estimator's
    ``covariance_type`` stays what the user wrote)."""
    from bayesgmm.covariance import ops

    ops(value)  # raises the error that lists the valid names
    return value


def check_covariance_types(values, owner: str) -> tuple:
    """A model search's covariance types, each a valid name (:func:`check_covariance_type`)
    of a distinct model, as given; a ``ValueError`` names two names of one model
    (``"full"`` and ``"VVV"``: :data:`bayesgmm.covariance.CANONICAL`), which would be
    fitted twice."""
    if values is None:
        raise TypeError(f"{owner}'s covariance_types must be a model name or a sequence of "
                        "them, e.g. ['full', 'diag'] (selection.all_covariance_types(): "
                        "mclust's 14); got None")
    types = tuple(check_covariance_type(ct) for ct in values)
    twice = repeated_models(types)
    if twice:
        model, names = twice
        raise ValueError(f"{owner}'s covariance_types name the model {model} more than once "
                         f"({', '.join(map(repr, names))}); list each model once")
    return types


def repeated_models(types) -> tuple[str, list] | None:
    """The first model (:data:`bayesgmm.covariance.CANONICAL`'s name) that ``types``
    name more than once, and those names in order (``"full"`` and ``"VVV"`` are one
    model); None when each is named once. Unknown names count as themselves."""
    from bayesgmm.covariance import CANONICAL

    seen: dict[str, list] = {}
    for ct in types:
        seen.setdefault(CANONICAL.get(ct, ct), []).append(ct)
    return next(((m, names) for m, names in seen.items() if len(names) > 1), None)


def _numeric_init(value, name: str, dtype) -> np.ndarray:
    """An initial parameter as an array of ``dtype``, or a ``ValueError`` naming it (a
    bare "could not convert string to float" named no parameter)."""
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid {name}: it must be numeric ({exc})") from None


def check_weights_init(weights, n_components: int, dtype) -> np.ndarray:
    """``weights_init`` as ``(K,)`` in ``dtype``: on the simplex, or a ``ValueError`` in
    scikit-learn's words ("The parameter 'weights' ...") with the fix."""
    w = _numeric_init(weights, "weights_init", dtype)
    if w.shape != (n_components,):
        raise ValueError(
            f"Invalid weights_init. The parameter 'weights' should have the shape of "
            f"({n_components},), but got {w.shape}: pass one weight per component "
            f"(n_components={n_components})."
        )
    if not np.isfinite(w).all():
        raise ValueError("Invalid weights_init. The parameter 'weights' contains NaN or "
                         "infinity; pass finite weights that sum to 1.")
    if w.min() < 0 or w.max() > 1:
        raise ValueError(
            "Invalid weights_init. The parameter 'weights' should be in the range [0, 1], "
            f"but got max value {np.nanmax(w):.5f}, min value {np.nanmin(w):.5f}."
        )
    atol = 1e-6 if w.dtype == np.float32 else 1e-8
    if not np.allclose(w.sum(), 1.0, rtol=0, atol=atol):
        raise ValueError(
            f"Invalid weights_init. The parameter 'weights' should be normalized, but got "
            f"sum(weights) = {w.sum():.5f}; divide weights_init by its sum."
        )
    return w


def check_means_init(means, n_components: int, n_features: int, dtype) -> np.ndarray:
    """``means_init`` as ``(K, D)`` in ``dtype``, or a ``ValueError`` in scikit-learn's
    words ("The parameter 'means' ...") with the fix."""
    m = _numeric_init(means, "means_init", dtype)
    if m.shape != (n_components, n_features):
        raise ValueError(
            f"Invalid means_init. The parameter 'means' should have the shape of "
            f"({n_components}, {n_features}), but got {m.shape}: pass one row of "
            f"n_features={n_features} values per component (n_components={n_components})."
        )
    if not np.isfinite(m).all():
        raise ValueError("Invalid means_init. The parameter 'means' contains NaN or infinity.")
    return m


def check_precisions_init(precisions, covariance_type: str, n_components: int,
                          n_features: int, dtype) -> np.ndarray:
    from bayesgmm.covariance import ops

    table = ops(covariance_type)
    shape = table.factor_shape(n_components, n_features)
    p = _numeric_init(precisions, "precisions_init", dtype)
    if p.shape != shape:
        raise ValueError(
            f"The parameter '{covariance_type} precision' should have the shape of "
            f"{shape}, but got {p.shape} (precisions_init, in scikit-learn's layout for "
            f"covariance_type={covariance_type!r})"
        )
    if not np.isfinite(p).all():
        raise ValueError("Invalid precisions_init. The parameter 'precisions' contains NaN "
                         "or infinity.")
    bad = np.flatnonzero(~np.asarray(table.precision_ok(p.astype(np.float64))))
    if bad.size:
        which = "" if table.component_axis is None else f" of component {bad[0]}"
        raise ValueError(
            f"'{covariance_type} precision' should be {table.precision_requirement} "
            f"(precisions_init{which} is not)"
        )
    return p


#: Members (posterior draws) whose covariances :func:`check_params` converts at once: a
#: bound on its temporary arrays (members x K x D x D) for a saved model of many draws.
_CHECK_CHUNK = 256


def check_params(params, *, batch_ndim: int = 0, name: str = "params."):
    """``params`` (a :class:`bayesgmm.GMMParams`) with NumPy leaves, checked usable: the
    one check of parameters that come from outside a fit, shared by
    :meth:`bayesgmm.GaussianMixture.from_params` and :func:`bayesgmm.load` (and
    :func:`bayesgmm.io.load_params`), so what one accepts the other does.

    Usable means: floating-point leaves of the shapes the covariance type's layout
    gives (:mod:`bayesgmm.covariance`; ``batch_ndim`` leading batch dims); every value
    finite; weights a probability vector (non-negative, summing to 1 within round-off);
    means no larger than data may be (:func:`max_magnitude`); and per component a
    positive-definite factor (finite, positive diagonal; for the (K, D, D) and (D, D)
    layouts lower-triangular, the Cholesky factor every such model stores) whose diagonal (its standard
    deviations: conditional ones for a Cholesky factor) lies within ``[1/M, M]`` for
    ``M = max_magnitude(dtype)``, and whose covariance and precision are finite.
    Outside that band the variance or the precision (M² = max / 2^32) leaves no room
    for the sums a prediction forms, which came out NaN (a factor of 1e-300: a variance
    that underflows to 0; means of 1e300: squares that overflow), not an error. A
    fitted model, near-empty components included, is far inside it: a component's
    variance is at least ``reg_covar``, or round-off of the data's squares (which
    :func:`check_array_2d` bounds by the same M) that EM reports as a collapse.

    Parameters
    ----------
    params : GMMParams
    batch_ndim : int, default=0
        Leading batch dims the leaves must have (0: one mixture; 2: (chain, draw)).
    name : str, default="params."
        Prefix of the field names in messages (``"params.npz's "`` for a file).

    Raises
    ------
    TypeError
        ``params`` is not a GMMParams.
    ValueError
        Naming the field, what it holds and what it must hold (shapes: the expected
        ones).
    """
    from bayesgmm.covariance import ops

    # GMMParams by its class's name: bayesgmm.params imports this module, and an import
    # back (even a deferred one) would be the circle tests/test_architecture.py forbids.
    if not any(c.__name__ == "GMMParams" and c.__module__ == "bayesgmm.params"
               for c in type(params).__mro__):
        shown = repr(params)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(
            "params must be a bayesgmm.GMMParams (weights, means, cov_factor, "
            f"covariance_type), got {type(params).__name__} {shown}; "
            "build one with GMMParams(weights, means, cov_factor, covariance_type) or "
            "GMMParams.from_sklearn(...)")
    ct = params.covariance_type
    entry = ops(ct, np)  # a ValueError naming the valid types
    arrays = {}
    for field in ("weights", "means", "cov_factor"):
        try:
            a = np.asarray(getattr(params, field))
        except (TypeError, ValueError) as err:  # a ragged list
            raise ValueError(f"{name}{field} is not an array ({err})") from None
        if a.dtype.kind != "f":
            raise ValueError(f"{name}{field} must be floating point, got {a.dtype}; pass "
                             f"it as floats (e.g. {field}.astype(np.float64))")
        arrays[field] = a
    w, m, f = arrays["weights"], arrays["means"], arrays["cov_factor"]
    if w.ndim != batch_ndim + 1 or m.ndim != batch_ndim + 2:
        lead = f"{batch_ndim} batch dims before " if batch_ndim else ""
        raise ValueError(f"{name}weights {w.shape} and {name}means {m.shape} must have "
                         f"shapes {lead}(K,) and (K, D): K components, D features")
    batch, K, D = w.shape[:-1], w.shape[-1], m.shape[-1]
    if K < 1 or D < 1:
        raise ValueError(f"{name}means has shape {m.shape}: a mixture needs at least one "
                         "component (K) and one feature (D)")
    expected = {"weights": (*batch, K), "means": (*batch, K, D),
                "cov_factor": (*batch, *entry.factor_shape(K, D))}
    for field, shape in expected.items():
        if arrays[field].shape != shape:
            raise ValueError(f"{name}{field} has shape {arrays[field].shape}; with K={K} "
                             f"components, D={D} features ({ct!r}) it must be {shape}")
    for field, a in arrays.items():
        if not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0].tolist()
            raise ValueError(f"{name}{field} has a non-finite value at {bad}")
    tol = np.sqrt(np.finfo(w.dtype).eps)
    if np.any(w < 0) or np.any(np.abs(w.sum(axis=-1) - 1) > tol * K):
        raise ValueError(f"{name}weights are not on the simplex (a probability vector: "
                         f"non-negative, summing to 1): min {w.min():.3g}, sums in "
                         f"[{w.sum(axis=-1).min():.6g}, {w.sum(axis=-1).max():.6g}]")
    bound = max_magnitude(m.dtype)
    if np.abs(m).max() > bound:
        bad = np.argwhere(np.abs(m) == np.abs(m).max())[0].tolist()
        raise ValueError(f"{name}means has a value of magnitude {np.abs(m).max():.3g} at "
                         f"{bad}, above {bound:.3g}, where the squares a Gaussian mixture "
                         f"sums overflow {m.dtype} (data that large is refused too)")
    _check_factor(entry, f, batch, K, D, ct, name)
    return type(params)(w, m, f, ct)


def _check_factor(entry, f: np.ndarray, batch: tuple, K: int, D: int, ct: str,
                  name: str) -> None:
    """:func:`check_params`' per-component checks of the finite covariance factor ``f``
    (batch dims ``batch``), a few hundred members at a time, in order: a positive
    diagonal (else the conversions below could fail on a singular matrix), the
    diagonal within [1/M, M], then the covariance and precision finite."""
    bound = max_magnitude(f.dtype)
    shape = entry.factor_shape(K, D)
    matrix = len(shape) - (entry.component_axis is not None) == 2  # full, tied
    flat = f.reshape(-1, *shape)

    def fail(start, bad, problem):
        i, k = np.argwhere(bad)[0]
        where = (f" (draw {tuple(int(j) for j in np.unravel_index(start + i, batch))})"
                 if batch else "")
        return ValueError(f"{name}cov_factor of component {k}{where} {problem(i, k)}")

    for start in range(0, len(flat), _CHECK_CHUNK):
        chunk = flat[start:start + _CHECK_CHUNK]
        if matrix:
            _check_lower(chunk, start, batch, K, ct, name)
        ok = np.broadcast_to(np.asarray(entry.factor_ok(chunk, K)), (len(chunk), K))
        if not ok.all():
            raise fail(start, ~ok, lambda i, k: f"is not a positive-definite {ct!r} factor "
                                                "(its diagonal must be positive)")
        sd = chunk.diagonal(axis1=-2, axis2=-1) if matrix else chunk  # std deviations
        if entry.component_axis is None:  # tied: one for every component
            sd = np.broadcast_to(sd[:, None, :], (len(chunk), K, D))
        elif sd.ndim == 2:  # spherical: one per component
            sd = sd[:, :, None]
        low, high = (sd < 1 / bound).any(axis=-1), (sd > bound).any(axis=-1)
        if (low | high).any():
            def outside(i, k):
                value = sd[i, k].min() if low[i, k] else sd[i, k].max()
                effect = (f"its variance underflows and its precision overflows {f.dtype}"
                          ": the covariance is numerically singular" if low[i, k] else
                          f"its variance overflows {f.dtype}")
                return (f"has a standard deviation of {value:.3g} on its diagonal, "
                        f"outside [{1 / bound:.3g}, {bound:.3g}], where {effect}")
            raise fail(start, low | high, outside)
        with np.errstate(all="ignore"):  # overflow is what is looked for
            cov = entry.to_full_covariance(chunk, K, D)  # (n, K, D, D)
            prec = entry.moment_precision(chunk, K, D)  # (n, K, D, D) or (n, K, D)
        finite = (np.isfinite(cov).all(axis=(-2, -1))
                  & np.isfinite(prec).reshape(len(chunk), K, -1).all(axis=-1))
        if not finite.all():
            raise fail(start, ~finite, lambda i, k: (
                f"gives a covariance or precision that overflows {f.dtype}: the factor "
                "is numerically singular"))


def _check_lower(chunk: np.ndarray, start: int, batch: tuple, K: int, ct: str,
                 name: str) -> None:
    """Refuse a (K, D, D) or (D, D) factor (members of a chunk) with a nonzero entry
    above its diagonal. Every model of those layouts stores the lower Cholesky factor
    L (:mod:`bayesgmm.covariance`'s table), and the conversions disagree about an upper
    entry: ``to_covariance`` forms L Lᵀ with it, the log-density's triangular solve and
    log-determinant read only the lower triangle, so such a model's ``covariances_``
    and ``score_samples`` describe two different Gaussians (27 nats apart on one)."""
    upper = np.triu(chunk, 1) != 0  # (n, K, D, D) or (n, D, D)
    bad = upper.any(axis=(-2, -1))
    if not bad.any():
        return
    tied = bad.ndim == 1
    if tied:
        bad = bad[:, None]
    i, k = np.argwhere(bad)[0]
    a, b = np.argwhere(upper[i] if tied else upper[i, k])[0]
    value = chunk[i, a, b] if tied else chunk[i, k, a, b]
    where = (f" (draw {tuple(int(j) for j in np.unravel_index(start + i, batch))})"
             if batch else "")
    which = "" if tied else f" of component {k}"
    index = f"[{a}, {b}]" if tied else f"[{k}, {a}, {b}]"
    raise ValueError(
        f"{name}cov_factor{which}{where} has the nonzero entry {value:.6g} above its "
        f"diagonal (at {index}): a {ct!r} factor is the lower-triangular Cholesky factor L of the covariance "
        "(S = L Lᵀ), zero above the diagonal; pass np.linalg.cholesky(S) of the "
        "covariance, not another square root of it")


def check_random_state_key(random_state) -> np.ndarray:
    """scikit-learn's ``random_state`` (None, int, or ``np.random.RandomState``) -> a raw
    JAX key (uint32[2], NumPy): ``jax.random.PRNGKey(seed % 2**32)``."""
    if random_state is None:  # NumPy's global RandomState, as scikit-learn's
        seed = np.random.randint(np.iinfo(np.int32).max)
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        seed = random_state.randint(np.iinfo(np.int32).max)
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(np.iinfo(np.int32).max))
    else:
        raise ValueError(
            f"random_state must be None, an int, or a numpy RandomState/Generator; "
            f"got {random_state!r}"
        )
    # jax.random.PRNGKey(seed) for a 32-bit seed, built without compiling a program
    return np.array([0, seed % (2**32)], dtype=np.uint32)
