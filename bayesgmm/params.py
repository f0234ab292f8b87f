"""GMMParams: the one parameter representation shared by EM, MAP and posterior draws.

Glossary: N samples, D features, K components, B = ``params.batch_shape``.

``GMMParams`` is a frozen dataclass registered as a JAX pytree. Its leaves are
``weights (*B, K)``, ``means (*B, K, D)`` and ``cov_factor`` (shape by covariance type,
see :mod:`bayesgmm.covariance`); ``covariance_type`` is static metadata, so ``jit``,
``vmap`` and ``grad`` see only arrays. Leading batch dims are ``()`` for one EM fit,
``(n_init,)`` for vmapped restarts and ``(chain, draw)`` for posterior samples.

Leaves may be NumPy or JAX arrays: fitted estimators keep NumPy leaves (so a float64
fit stays float64 outside JAX's x64 mode and pickles cheaply); core functions accept
either. The conversions (``covariances``, ``precisions``, ``from_sklearn``...) run in
the leaves' namespace: NumPy leaves never import JAX. The pytree registration waits
for JAX (:func:`register_pytree`): the host path imports this module without it.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.util
import sys
from typing import Any, Callable

import numpy as np

from bayesgmm._xp import get_namespace, is_jax_array
from bayesgmm.covariance import ops

__all__ = ["GMMParams", "vmap_batch", "pad_components", "take_components", "slice_components",
           "select_components", "register_pytree"]

Array = Any  # a NumPy or JAX array

@dataclasses.dataclass(frozen=True)
class GMMParams:
    """Parameters of a Gaussian mixture, possibly batched.

    A JAX pytree (leaves ``weights``, ``means``, ``cov_factor``; ``covariance_type``
    static) as soon as JAX is imported: see :func:`register_pytree`.

    Attributes
    ----------
    weights : array of shape (*B, K)
        Mixture weights on the simplex.
    means : array of shape (*B, K, D)
        Component means.
    cov_factor : array
        ``full`` (and mclust's VVV, VEE, EVE, VVE, EEV, VEV, EVV): (*B, K, D, D) lower
        Cholesky factor of each covariance; ``tied`` (EEE): (*B, D, D); ``diag`` (VVI,
        EEI, VEI, EVI): (*B, K, D) standard deviations; ``spherical`` (VII, EII): (*B, K)
        standard deviations (:mod:`bayesgmm.covariance`).
    covariance_type : str
        scikit-learn's ``{"full", "tied", "diag", "spherical"}`` or one of mclust's 14
        models (``"VEV"``...; :data:`bayesgmm.covariance.MCLUST_MODELS`). Static (not a
        leaf).
    """

    weights: Any
    means: Any
    cov_factor: Any
    covariance_type: str = "full"

    # ---- shapes -------------------------------------------------------------------

    @property
    def n_components(self) -> int:
        return int(np.shape(self.weights)[-1])

    @property
    def n_features(self) -> int:
        return int(np.shape(self.means)[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.weights)[:-1])

    @property
    def dtype(self) -> np.dtype:
        return _dtype_of(self.means)

    @property
    def n_parameters(self) -> int:
        """Free parameters of one mixture (what BIC/AIC count): (K-1) + K·D + covariance."""
        K, D = self.n_components, self.n_features
        return (K - 1) + K * D + ops(self.covariance_type).n_parameters(K, D)

    # ---- batch helpers ------------------------------------------------------------

    def __getitem__(self, index) -> "GMMParams":
        """Index the batch dims: ``params[i]`` picks restart ``i``, ``params[c, d]`` a draw."""
        if not self.batch_shape:
            raise IndexError("GMMParams has no batch dims to index")
        return self._map(lambda a: a[index])

    def flatten_batch(self) -> "GMMParams":
        """All batch dims merged into one: batch shape ``B`` -> ``(prod(B),)``, as NumPy
        (e.g. (chain, draw) draws -> one axis of draws)."""
        nb = len(self.batch_shape)
        return self._map(lambda a: np.asarray(a).reshape(-1, *np.shape(a)[nb:]))

    def astype(self, dtype) -> "GMMParams":
        """Leaves as JAX arrays of ``dtype`` (for the compiled engine)."""
        import jax.numpy as jnp

        return self._map(lambda a: jnp.asarray(a, dtype=dtype))

    def to_numpy(self, dtype=None) -> "GMMParams":
        """Leaves as NumPy arrays (a device array is read on the host), in ``dtype`` if
        given; needs no JAX."""
        return self._map(lambda a: np.asarray(a, dtype=dtype))

    def _map(self, fn: Callable) -> "GMMParams":
        """``fn`` on each leaf (``jax.tree_util.tree_map`` without JAX)."""
        return GMMParams(fn(self.weights), fn(self.means), fn(self.cov_factor),
                         self.covariance_type)

    # ---- scikit-learn conversions ---------------------------------------------------

    @property
    def covariances(self) -> Array:
        """scikit-learn's ``covariances_`` layout, with batch dims in front."""
        return self._factor_map("to_covariance")

    @property
    def precisions(self) -> Array:
        """scikit-learn's ``precisions_`` layout."""
        return self._factor_map("to_precision")

    @property
    def precisions_cholesky(self) -> Array:
        """scikit-learn's ``precisions_cholesky_`` layout (upper U with P = U Uᵀ)."""
        return self._factor_map("to_precision_cholesky")

    @property
    def full_covariances(self) -> Array:
        """Every type as (*B, K, D, D) covariance matrices (for plotting, sampling, priors)."""
        return self._factor_map("to_full_covariance", self.n_components, self.n_features)

    def to_sklearn(self) -> dict[str, Array]:
        """The fitted attributes scikit-learn's ``GaussianMixture`` would have."""
        return {
            "weights_": self.weights,
            "means_": self.means,
            "covariances_": self.covariances,
            "precisions_": self.precisions,
            "precisions_cholesky_": self.precisions_cholesky,
        }

    @classmethod
    def from_sklearn(
        cls,
        weights,
        means,
        *,
        covariance_type: str = "full",
        covariances=None,
        precisions=None,
        precisions_cholesky=None,
    ) -> "GMMParams":
        """Build from scikit-learn attributes; exactly one covariance form must be given.

        Works on a fitted ``sklearn.mixture.GaussianMixture`` too, via
        :meth:`from_estimator`.
        """
        given = [x is not None for x in (covariances, precisions, precisions_cholesky)]
        if sum(given) != 1:
            raise ValueError(
                "from_sklearn needs exactly one of covariances, precisions, "
                f"precisions_cholesky; got {sum(given)}"
            )
        if covariances is not None:
            name, value = "from_covariance", covariances
        elif precisions is not None:
            name, value = "from_precision", precisions
        else:
            name, value = "from_precision_cholesky", precisions_cholesky
            _check_upper_triangular(covariance_type, value)
        # the factor's own ("event") dims are those of one parameter set; the rest batch
        n_batch = np.ndim(value) - len(ops(covariance_type).factor_shape(1, 1))
        factor = _convert(covariance_type, name, value, n_batch)
        return cls(weights, means, factor, covariance_type)

    @classmethod
    def from_estimator(cls, estimator) -> "GMMParams":
        """From any fitted object with sklearn's ``weights_, means_, precisions_cholesky_``."""
        return cls.from_sklearn(
            estimator.weights_,
            estimator.means_,
            covariance_type=estimator.covariance_type,
            precisions_cholesky=estimator.precisions_cholesky_,
        )

    def _factor_map(self, name: str, *args) -> Array:
        return _convert(self.covariance_type, name, self.cov_factor, len(self.batch_shape),
                        *args)


def _check_upper_triangular(covariance_type: str, value) -> None:
    """scikit-learn's ``precisions_cholesky_`` of a matrix-storing type is upper-triangular
    (U with U Uᵀ = Σ⁻¹); a lower factor passed by mistake would lose its correlations to
    the triangular inverse, so it is refused. JAX arrays (perhaps traced) are not checked."""
    shape = ops(covariance_type).factor_shape(1, 3)
    if shape[-2:] != (3, 3) or is_jax_array(value):
        return
    U = np.asarray(value)
    if U.ndim >= 2 and U.shape[-1] == U.shape[-2] and np.any(np.tril(U, -1) != 0):
        raise ValueError(
            "precisions_cholesky must be upper-triangular (scikit-learn's "
            "precisions_cholesky_: U with U @ U.T = inverse covariance), but has nonzero "
            "entries below the diagonal; pass the transpose of a lower factor, or pass "
            "precisions= or covariances= instead")


def _dtype_of(value) -> np.dtype:
    return np.dtype(value.dtype) if hasattr(value, "dtype") else np.asarray(value).dtype


def _convert(covariance_type: str, name: str, value, n_batch: int, *args) -> Array:
    """The table's conversion ``name`` of a factor-shaped ``value`` with ``n_batch``
    leading batch dims, in ``value``'s dtype. NumPy input: in NumPy, returned as NumPy
    (the conversions broadcast over batch dims; JAX is not imported). JAX input: in
    JAX, lifted over the batch with ``vmap``; a concrete float64 array runs under a
    scoped x64 mode and comes back as NumPy (a float64 JAX array would silently become
    float32 outside that scope); traced input (inside jit/vmap) is left to the caller."""
    if not is_jax_array(value):
        return getattr(ops(covariance_type, np), name)(np.asarray(value), *args)
    import jax

    from bayesgmm.validation import compute_scope

    fn = getattr(ops(covariance_type, "jax"), name)
    lifted = vmap_batch(lambda f: fn(f, *args), n_batch)
    if isinstance(value, jax.core.Tracer):
        return lifted(value)
    with compute_scope(_dtype_of(value)):
        return np.asarray(lifted(value))


def pad_components(params: GMMParams, n_padded: int) -> GMMParams:
    """Append inactive components (weight exactly 0, mean 0, identity covariance) up to
    ``n_padded``. Every function here treats a zero-weight component as absent: its
    responsibilities are exactly 0, and EM keeps it inactive. Padding lets one compiled
    program serve every K up to ``n_padded``."""
    K, D = params.n_components, params.n_features
    extra = n_padded - K
    if extra < 0:
        raise ValueError(f"cannot pad {K} components down to {n_padded}")
    if extra == 0:
        return params
    table = ops(params.covariance_type)
    B = params.batch_shape
    xp = get_namespace(params.weights)
    dtype = params.dtype
    weights = xp.concatenate([params.weights, xp.zeros((*B, extra), dtype)], axis=-1)
    means = xp.concatenate([params.means, xp.zeros((*B, extra, D), dtype)], axis=-2)
    factor = params.cov_factor
    if table.component_axis is not None:
        ident = table.identity(extra, D, dtype)  # NumPy
        ident = xp.broadcast_to(ident, (*B, *ident.shape))
        factor = xp.concatenate([factor, ident], axis=table.component_axis)
    return GMMParams(weights, means, factor, params.covariance_type)


def take_components(params: GMMParams, n_components: int) -> GMMParams:
    """The first ``n_components`` components (inverse of :func:`pad_components`)."""
    factor = slice_components(params.cov_factor, params.covariance_type, n_components)
    return GMMParams(params.weights[..., :n_components], params.means[..., :n_components, :],
                     factor, params.covariance_type)


def slice_components(array, covariance_type: str, n_components: int):
    """The first components of a factor-shaped array (``cov_factor``, ``covariances_``,
    ``precisions_``...); tied arrays have no component axis and pass through."""
    axis = ops(covariance_type).component_axis
    if axis is None:
        return array
    return array[(Ellipsis, slice(0, n_components)) + (slice(None),) * (-axis - 1)]


def select_components(mask, new: GMMParams, old: GMMParams) -> GMMParams:
    """Per component (batch shape ``()``): ``new`` where ``mask (K,)`` else ``old``, in
    the namespace of the arrays (a concrete all-True mask returns ``new`` itself)."""
    if not is_jax_array(mask) and mask.all():  # concrete (NumPy): nothing to select
        return new
    xp = get_namespace(mask, new.weights, new.means, new.cov_factor)
    axis = ops(new.covariance_type).component_axis
    pick = lambda a, b, nd: xp.where(mask.reshape(mask.shape + (1,) * nd), a, b)
    factor = new.cov_factor if axis is None else pick(new.cov_factor, old.cov_factor,
                                                      -axis - 1)
    return GMMParams(pick(new.weights, old.weights, 0), pick(new.means, old.means, 1), factor,
                     new.covariance_type)


def vmap_batch(fn: Callable, n_batch: int, in_axes=0) -> Callable:
    """Lift ``fn`` (written for one parameter set) over ``n_batch`` leading dims with
    ``jax.vmap``."""
    if n_batch:
        import jax

        for _ in range(n_batch):
            fn = jax.vmap(fn, in_axes=in_axes)
    return fn


# ---- the JAX pytree, registered when JAX is there ----------------------------------------


_REGISTERED = False


def register_pytree() -> None:
    """Register :class:`GMMParams` as a JAX pytree (leaves ``weights``, ``means``,
    ``cov_factor``; ``covariance_type`` static), once; imports JAX.

    Nothing needs to call it: it runs when this module is imported after JAX, or else
    right after JAX's own import completes (an import hook, below), so a ``GMMParams``
    works under ``jax.jit``/``vmap``/``tree_map`` whichever is imported first, while the
    host path never imports JAX."""
    global _REGISTERED
    if _REGISTERED:
        return
    import jax

    jax.tree_util.register_dataclass(GMMParams, data_fields=["weights", "means", "cov_factor"],
                                     meta_fields=["covariance_type"])
    _REGISTERED = True


class _RegisterAfterJax(importlib.abc.MetaPathFinder):
    """Import hook (first on ``sys.meta_path`` until JAX is imported): finds ``jax``
    with the other finders and wraps its loader in :class:`_ThenRegister`."""

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "jax" or self._finding:
            return None
        self._finding = True  # importlib.util.find_spec below asks every finder again
        try:
            spec = importlib.util.find_spec("jax")
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    """JAX's own loader, then :func:`register_pytree`; the module keeps JAX's loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterJax)]
        register_pytree()


def _install_hook() -> None:
    if "jax" in sys.modules:
        register_pytree()
    elif not any(isinstance(f, _RegisterAfterJax) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterJax())


_install_hook()
