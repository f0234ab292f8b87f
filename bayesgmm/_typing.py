"""Type aliases shared by the package.

Glossary used in every docstring: N samples, D features, K components,
B = ``params.batch_shape`` (``()`` for one fit, ``(n_init,)`` for restarts,
``(chain, draw)`` for posterior draws).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np

__all__ = ["Array", "ArrayLike", "PRNGKey", "CovarianceType", "COVARIANCE_TYPES"]

# JAX is imported only where a compiled path runs; for annotations these are jax.Array.
if TYPE_CHECKING:
    import jax

    Array = jax.Array
    PRNGKey = jax.Array
else:
    Array = Any
    PRNGKey = Any
ArrayLike = Union[Array, np.ndarray, float]
CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[str, ...] = ("full", "tied", "diag", "spherical")
