"""The inference a fit runs: MAP from the EM solution, then the chosen method from the
MAP.

Glossary: N samples, D features, K components.
"""

from __future__ import annotations

import jax

from bayesgmm.bayes.inference.map import fit_map
from bayesgmm.bayes.inference.nuts import sample_nuts
from bayesgmm.bayes.inference.result import InferenceResult
from bayesgmm.bayes.inference.svi import fit_svi
from bayesgmm.params import GMMParams

__all__ = ["METHODS", "run"]

METHODS = ("nuts", "map", "svi")


def run(key, X, init: GMMParams, method: str, *, n_components: int, covariance_type: str,
        priors, n_chains: int = 4, n_warmup: int = 500, n_draws: int = 500,
        jitter: float = 0.05, target_accept_prob: float = 0.8, n_svi_steps: int = 3000,
        progress_bar: bool = False) -> tuple[InferenceResult, GMMParams]:
    """MAP from ``init`` (an EM fit), then ``method`` from the MAP, drawing with ``key``
    (MAP itself is deterministic).

    Returns the method's result and the MAP parameters (batch shape ()), which callers use
    as the reference labeling and for BIC/AIC.
    """
    kw = dict(n_components=n_components, covariance_type=covariance_type, priors=priors)
    map_result = fit_map(key, X, init, **kw)
    map_params = jax.tree_util.tree_map(lambda a: a[0, 0], map_result.params)
    if method == "map":
        return map_result, map_params
    if method == "nuts":
        result = sample_nuts(key, X, map_params, n_warmup=n_warmup, n_draws=n_draws,
                             n_chains=n_chains, jitter=jitter,
                             target_accept_prob=target_accept_prob, progress_bar=progress_bar,
                             **kw)
    elif method == "svi":
        result = fit_svi(key, X, map_params, n_steps=n_svi_steps, n_draws=n_draws,
                         progress_bar=progress_bar, **kw)
    else:
        raise ValueError(f"method must be 'nuts', 'map' or 'svi', got {method!r}")
    return result, map_params
