"""Inference for the Bayesian mixture (:mod:`bayesgmm.model`): MAP, NUTS and SVI.

All three start from an EM fit (``init``, a ``GMMParams``) and return the same
:class:`InferenceResult`, whose ``params`` is a ``GMMParams`` with batch shape
``(chain, draw)`` (MAP: ``(1, 1)``), so every core function (``predict_proba``,
``score_samples``, ``sample``, ``bic``) works on the result unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

from bayesgmm.params import GMMParams

__all__ = ["InferenceResult", "fit_map", "sample_nuts", "fit_svi"]


class InferenceResult(NamedTuple):
    method: str  # "map" | "nuts" | "svi"
    params: GMMParams  # batch shape (chain, draw)
    sites: dict  # raw model sites, leading (chain, draw)
    sample_stats: dict  # per (chain, draw): diverging, tree_depth, step_size, energy, lp ...
    info: dict  # method-specific: converged, losses, warnings ...


from bayesgmm.inference.map import fit_map  # noqa: E402
from bayesgmm.inference.nuts import sample_nuts  # noqa: E402
from bayesgmm.inference.svi import fit_svi  # noqa: E402
