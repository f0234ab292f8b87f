"""Inference for the Bayesian mixture (:mod:`bayesgmm.bayes.model`): MAP, NUTS and SVI.

All three start from an EM fit (``init``, a ``GMMParams``) and return the same
:class:`InferenceResult`, whose ``params`` is a ``GMMParams`` with batch shape
``(chain, draw)`` (MAP: ``(1, 1)``), so every core function (``predict_proba``,
``score_samples``, ``sample``, ``bic``) works on the result unchanged.

Modules, imported bottom to top (none reads another's private names):

``result``    :class:`InferenceResult` and each method's report (:class:`MAPInfo`,
              :class:`NUTSInfo`, :class:`SVIInfo`)
``target``    the bound model, its potential, constraining and unconstraining
``map``       :func:`fit_map`
``nuts``      :func:`sample_nuts`
``svi``       :func:`fit_svi`
``workflow``  :func:`run`: MAP from EM, then the chosen method from the MAP; and
              :func:`check_settings`

Counts follow scikit-learn's ``n_*`` names (``n_chains``, ``n_warmup``, ``n_draws``,
``n_steps``), not NumPyro's ``num_*``, which appear only where NumPyro is called.

A subpackage rather than one ``inference.py``: NUTS alone is ~300 lines of sampler
programs, caches and host threads that MAP and SVI do not share; one module per method
(as BlackJAX and NumPyro lay theirs out) lets each be read, and its cache found, alone.
"""

from bayesgmm.bayes.inference.map import fit_map
from bayesgmm.bayes.inference.nuts import sample_nuts
from bayesgmm.bayes.inference.result import InferenceResult, MAPInfo, NUTSInfo, SVIInfo
from bayesgmm.bayes.inference.svi import fit_svi
from bayesgmm.bayes.inference.workflow import (METHODS, SETTINGS, check_settings, data_centre,
                                               run, run_centred)

__all__ = ["InferenceResult", "MAPInfo", "NUTSInfo", "SVIInfo", "fit_map", "sample_nuts",
           "fit_svi", "run", "run_centred", "data_centre", "check_settings", "METHODS",
           "SETTINGS"]
