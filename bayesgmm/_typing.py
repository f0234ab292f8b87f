"""Type aliases shared by the package.

Glossary used in every docstring: N samples, D features, K components,
B = ``params.batch_shape`` (``()`` for one fit, ``(n_init,)`` for restarts,
``(chain, draw)`` for posterior draws).
"""

from __future__ import annotations

from typing import Literal, Union

import jax
import numpy as np

__all__ = ["Array", "ArrayLike", "PRNGKey", "CovarianceType", "COVARIANCE_TYPES"]

Array = jax.Array
ArrayLike = Union[jax.Array, np.ndarray, float]
PRNGKey = jax.Array
CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[str, ...] = ("full", "tied", "diag", "spherical")
