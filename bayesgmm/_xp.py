"""Array namespaces: the one place where NumPy and jax.numpy differ for bayesgmm's maths.

Glossary: N samples, D features, K components.

The per-type table (:mod:`bayesgmm.covariance`) and the moments form are written once
over a namespace ``xp``, as scikit-learn's array-API code is (``xp, _ =
get_namespace(X)``): the host engine runs them over :data:`NUMPY` (float64, nothing to
compile), the compiled engine over the JAX namespace (traced once under ``jit``). Each
namespace is its array module (``numpy`` or ``jax.numpy``; any function of the module is
an attribute) with a few functions that differ on purpose:

``matmul``, ``einsum``
    JAX: ``precision=HIGHEST``, since TPUs (and some GPUs) otherwise multiply float32 in
    bf16 passes. NumPy: the plain functions.
``cholesky``
    Lower Cholesky factors over the last two axes. JAX returns NaN for a matrix that is
    not positive definite; NumPy raises for the whole batch. The NumPy namespace returns
    NaN for that matrix alone, as JAX does, so both engines flag the same component
    (NumPy's LAPACK gufunc called directly: :func:`_lapack`).
``tril_inv``, ``inv``
    The inverse of lower-triangular matrices. JAX: a triangular solve. NumPy: a batched
    LU inverse (the inverse of a triangular matrix is triangular), faster at mixture
    sizes than a loop of SciPy triangular solves. ``inv``: any square matrices.

``nan_where(mask, a)``
    ``where(mask, nan, a)``; NumPy skips the copy when nothing is masked.
``eigh``, ``eigvalsh``, ``svd``
    ``linalg``'s, over the last two axes. NumPy raises for the whole batch when one
    matrix has NaN entries (a collapsed component); the NumPy namespace gives NaN
    outputs for that matrix alone, as JAX does.
``while_loop(cond, body, init)``
    JAX: ``lax.while_loop`` (traced once; under ``vmap`` every lane runs until all are
    done, the finished ones frozen). NumPy: a Python ``while`` loop. The inner
    iterations of the iterative M-steps (:mod:`bayesgmm.covariance`) use it.

(NumPy's ``eye`` is cached and read-only, as the host engine's M-step adds it every
iteration.) Code over a namespace calls reductions as methods (``a.sum(axis=-1)``,
``a.all()``): both array types have them, and NumPy's methods skip the module
functions' Python wrappers (~1 µs a call, which adds up in a 40 µs host iteration).

Nothing here imports JAX until a JAX array is met (:func:`get_namespace`) or the JAX
namespace is asked for (:func:`namespace`).
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType

import numpy as np

__all__ = ["Namespace", "NUMPY", "get_namespace", "namespace", "is_jax_array"]

# Module functions every namespace exposes as plain attributes (looked up once, so the
# host engine's inner loop pays no ``__getattr__``); anything else falls through to the
# module.
_PASSTHROUGH = (
    "abs", "all", "any", "arange", "argmin", "asarray", "broadcast_to", "concatenate",
    "diagonal", "exp", "eye", "finfo", "float32", "float64", "full", "isfinite", "log",
    "maximum", "mean", "ones", "reshape", "sqrt", "stack", "sum", "swapaxes", "tril",
    "where", "zeros",
)


class Namespace:
    """An array module plus the functions that differ between NumPy and JAX.

    Attributes
    ----------
    name : {"numpy", "jax"}
    module : module
        ``numpy`` or ``jax.numpy``; any attribute not set here is looked up there.
    """

    def __init__(self, name: str, module: ModuleType, **overrides):
        self.name = name
        self.module = module
        for attr in _PASSTHROUGH:
            setattr(self, attr, getattr(module, attr))
        for attr, fn in overrides.items():
            setattr(self, attr, fn)

    def __getattr__(self, attr):  # only for names not set in __init__
        return getattr(self.module, attr)

    def __repr__(self) -> str:
        return f"<array namespace {self.name}>"


try:  # NumPy's own LAPACK gufuncs, without the public functions' checks (see below)
    from numpy.linalg import _umath_linalg

    _GUFUNCS = {"cholesky": _umath_linalg.cholesky_lo, "inv": _umath_linalg.inv}
except (ImportError, AttributeError):  # pragma: no cover - another NumPy layout
    _GUFUNCS = {}


def _lapack(name: str, public):
    """NumPy's ``linalg`` function ``name`` over the last two axes, for float32/float64.

    ``numpy.linalg.cholesky`` and ``inv`` wrap the gufuncs ``cholesky_lo`` and ``inv``
    with checks and a floating-point error handler that raises for the whole batch.
    Called directly (where NumPy has them), a matrix that is not positive definite (or
    is singular) gives NaN for that matrix alone, as JAX does, in about a third of the
    time (measured, (4, 2, 2) float64: cholesky 2.6 -> 0.9 µs, inv 2.9 -> 1.2 µs; the
    host engine calls each once an iteration). Other dtypes, or a NumPy without them,
    take the public function, with NaN per failing matrix."""
    gufunc = _GUFUNCS.get(name)

    def fn(a):
        a = np.asarray(a)
        if gufunc is not None and a.dtype.char in "fd":
            with np.errstate(all="ignore"):
                return gufunc(a, signature=f"{a.dtype.char}->{a.dtype.char}")
        try:
            return public(a)
        except np.linalg.LinAlgError:
            if a.ndim == 2:
                return np.full(a.shape, np.nan, np.result_type(a.dtype, np.float32))
            return np.stack([fn(m) for m in a])

    fn.__name__ = fn.__qualname__ = f"_np_{name}"
    return fn


_np_cholesky = _lapack("cholesky", np.linalg.cholesky)
_np_inv = _lapack("inv", np.linalg.inv)


_TRIL_MASKS: dict = {}


def _np_tril_inv(L: np.ndarray) -> np.ndarray:
    """The inverse of lower-triangular ``L`` (..., D, D), exactly lower-triangular.
    LAPACK's general inverse (LU with pivoting, ~1 µs a small matrix; a triangular solve
    per matrix costs more on stacks) leaves round-off above the diagonal on some BLAS
    (-1.2e-16 on an AVX-512 machine's OpenBLAS): it is zeroed by a cached 0/1 mask, which
    keeps a failing matrix's NaN."""
    inv = _np_inv(L)
    key = (inv.shape[-1], inv.dtype)
    mask = _TRIL_MASKS.get(key)
    if mask is None:
        mask = np.tril(np.ones(inv.shape[-2:], inv.dtype))
        mask.setflags(write=False)
        mask = _TRIL_MASKS.setdefault(key, mask)
    return inv * mask


_EYES: dict = {}


def _np_eye(D: int, dtype=None) -> np.ndarray:
    """``numpy.eye(D, dtype=dtype)``, cached and read-only (the host engine adds it every
    M-step)."""
    try:
        return _EYES[D, dtype]
    except KeyError:
        eye = np.eye(D, dtype=dtype)
        eye.setflags(write=False)
        return _EYES.setdefault((D, dtype), eye)


def _np_nan_where(mask: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``a`` with NaN in the slices where ``mask`` (broadcast against ``a``) is True; ``a``
    itself when nothing is masked (the common case on the host: no copy)."""
    return np.where(mask, np.nan, a) if mask.any() else a


def finite_or_nan(decompose, a: np.ndarray):
    """``decompose(a)`` (a NumPy/LAPACK decomposition over the last two axes) with NaN
    outputs for each matrix holding a non-finite entry, which never reaches LAPACK:
    its SVD does not return on an infinity (a VVE search with ``reg_covar=0`` on
    duplicated rows hung in a polar factor)."""
    finite = np.isfinite(a).all(axis=(-2, -1))
    if finite.all():
        return decompose(a)
    out = decompose(np.where(finite[..., None, None], a, 0.0))
    nan = lambda o: np.where(  # noqa: E731
        finite.reshape(finite.shape + (1,) * (o.ndim - finite.ndim)), o, np.nan)
    return tuple(map(nan, out)) if isinstance(out, tuple) else nan(out)


def _nan_per_matrix(public):
    """NumPy's ``linalg`` decomposition ``public`` over the last two axes, with NaN
    outputs for a matrix it cannot decompose (NaN or infinite entries), as JAX gives,
    instead of an error for the whole batch."""

    def fn(a):
        a = np.asarray(a)
        try:
            return finite_or_nan(public, a)
        except np.linalg.LinAlgError:
            pass
        eye = np.eye(a.shape[-1], dtype=a.dtype)
        nan = lambda out: np.full(out.shape, np.nan, out.dtype)  # noqa: E731
        failed = public(eye)
        failed = tuple(map(nan, failed)) if isinstance(failed, tuple) else nan(failed)
        results = []
        for m in a.reshape(-1, *a.shape[-2:]):
            try:
                results.append(public(m))
            except np.linalg.LinAlgError:
                results.append(failed)
        batch = a.shape[:-2]
        if isinstance(failed, tuple):
            return tuple(np.stack(r).reshape(*batch, *r[0].shape) for r in zip(*results))
        return np.stack(results).reshape(*batch, *failed.shape)

    fn.__name__ = fn.__qualname__ = f"_np_{public.__name__}"
    return fn


def _np_while_loop(cond, body, init):
    """``jax.lax.while_loop``'s contract as a Python loop."""
    value = init
    while cond(value):
        value = body(value)
    return value


NUMPY = Namespace("numpy", np, matmul=np.matmul, einsum=np.einsum, cholesky=_np_cholesky,
                  tril_inv=_np_tril_inv, inv=_np_inv, eye=_np_eye, nan_where=_np_nan_where,
                  eigh=_nan_per_matrix(np.linalg.eigh),
                  eigvalsh=_nan_per_matrix(np.linalg.eigvalsh),
                  svd=_nan_per_matrix(np.linalg.svd),
                  while_loop=_np_while_loop)


@functools.cache
def _jax_namespace() -> Namespace:
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    highest = jax.lax.Precision.HIGHEST

    def tril_inv(L):
        eye = jnp.broadcast_to(jnp.eye(L.shape[-1], dtype=L.dtype), L.shape)
        return solve_triangular(L, eye, lower=True)

    return Namespace("jax", jnp,
                     matmul=functools.partial(jnp.matmul, precision=highest),
                     einsum=functools.partial(jnp.einsum, precision=highest),
                     cholesky=jnp.linalg.cholesky, tril_inv=tril_inv, inv=jnp.linalg.inv,
                     nan_where=lambda mask, a: jnp.where(mask, jnp.nan, a),
                     eigh=jnp.linalg.eigh, eigvalsh=jnp.linalg.eigvalsh, svd=jnp.linalg.svd,
                     while_loop=jax.lax.while_loop)


def is_jax_array(value) -> bool:
    """Whether ``value`` is a JAX array or tracer (False, without importing JAX, when JAX
    was never imported)."""
    jax = sys.modules.get("jax")
    return jax is not None and hasattr(jax, "Array") and isinstance(value, jax.Array)


def get_namespace(*arrays) -> Namespace:
    """The namespace of ``arrays``: JAX's if any is a JAX array (or a tracer, under
    ``jit``/``vmap``), else NumPy's. Python and NumPy scalars count as NumPy."""
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "Array"):
        Array = jax.Array
        for a in arrays:
            if isinstance(a, Array):
                return _jax_namespace()
    return NUMPY


def namespace(xp) -> Namespace:
    """A :class:`Namespace` from a namespace, an array module (``numpy``, ``jax.numpy``)
    or a name (``"numpy"``, ``"jax"``)."""
    if isinstance(xp, Namespace):
        return xp
    name = xp if isinstance(xp, str) else getattr(xp, "__name__", "")
    if name in ("numpy", "np"):
        return NUMPY
    if name in ("jax", "jax.numpy", "jnp"):
        return _jax_namespace()
    raise ValueError(f"Unknown array namespace {xp!r}; expected numpy, jax.numpy, 'numpy' "
                     "or 'jax'")
