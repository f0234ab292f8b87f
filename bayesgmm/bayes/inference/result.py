"""The one result type every inference method returns, and each method's report.

Glossary: C chains, S draws per chain, K components, D features.

Every array is a NumPy array on the host (the methods copy their device results back
once), in the data's dtype unless a comment says otherwise. An ``*Info`` is a report:
nothing is carried from one call to the next. ``sample_stats()`` gives the arrays ArviZ
puts in its ``sample_stats`` group, under ArviZ's names.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from bayesgmm.params import GMMParams

__all__ = ["InferenceResult", "MAPInfo", "NUTSInfo", "SVIInfo", "Info"]


class MAPInfo(NamedTuple):
    """How the MAP optimisation went."""

    log_density: np.ndarray  # shape=(n_steps + 1,): log joint density before each step, then at the end
    n_steps: int  # optimiser steps taken
    converged: bool  # finite, and relative_change < 100 · rtol
    relative_change: float  # |Δ log_density| / |log_density| over the last tenth of the steps

    def sample_stats(self) -> dict[str, np.ndarray]:
        """``lp``, shape (1, 1): the log density at the MAP."""
        return {"lp": np.reshape(self.log_density[-1], (1, 1))}


class NUTSInfo(NamedTuple):
    """Per-draw statistics of NUTS (ArviZ's ``sample_stats`` names) and its settings."""

    diverging: np.ndarray  # shape=(C, S), bool: the draw's trajectory diverged
    n_steps: np.ndarray  # shape=(C, S), int: leapfrog steps in the draw's trajectory
    tree_depth: np.ndarray  # shape=(C, S), int32: floor(log2(n_steps + 1))
    step_size: np.ndarray  # shape=(C, S): the adapted leapfrog step size
    energy: np.ndarray  # shape=(C, S): the Hamiltonian at the draw
    lp: np.ndarray  # shape=(C, S): log joint density at the draw (minus the potential)
    acceptance_rate: np.ndarray  # shape=(C, S): mean acceptance probability along the tree
    chain_method: str  # "vectorized" | "parallel" | "sequential"
    max_tree_depth: int  # the cap tree_depth is checked against

    def sample_stats(self) -> dict[str, np.ndarray]:
        """The seven per-draw arrays, shape (C, S) each."""
        return {name: getattr(self, name) for name in self._fields[:7]}


class SVIInfo(NamedTuple):
    """How the ELBO optimisation went."""

    elbo: np.ndarray  # shape=(n_steps,): the ELBO estimate at each step (minus NumPyro's loss)
    n_steps: int  # optimiser steps taken
    final_elbo: float  # mean ELBO over the last tenth of the steps (at least 10)

    def sample_stats(self) -> dict[str, np.ndarray]:
        """None: the guide's draws are independent."""
        return {}


Info = Union[MAPInfo, NUTSInfo, SVIInfo]


class InferenceResult(NamedTuple):
    """Draws (or the one MAP point) as ``GMMParams`` and as model sites, with the
    method's report."""

    method: str  # "map" | "nuts" | "svi"
    params: GMMParams  # batch shape (C, S); MAP: (1, 1); SVI: (1, n_draws)
    sites: dict  # model site name -> array of shape (C, S, *site shape)
    info: Info  # the method's report

    @property
    def sample_stats(self) -> dict[str, np.ndarray]:
        """ArviZ's ``sample_stats`` group: name -> (C, S) array (``info.sample_stats()``)."""
        return self.info.sample_stats()
