"""The one result type every inference method returns.

Glossary: C chains, S draws per chain, K components, D features.
"""

from __future__ import annotations

from typing import NamedTuple

from bayesgmm.params import GMMParams

__all__ = ["InferenceResult"]


class InferenceResult(NamedTuple):
    method: str  # "map" | "nuts" | "svi"
    params: GMMParams  # batch shape (C, S); MAP: (1, 1)
    sites: dict  # raw model sites, leading (C, S)
    sample_stats: dict  # per (C, S): diverging, tree_depth, step_size, energy, lp ...
    info: dict  # method-specific: converged, losses, warnings ...
