"""The Bayesian path, layered bottom to top (imports NumPyro and ArviZ, so ``bayesgmm``
loads it only when asked for):

``model``      the NumPyro model and :class:`Priors` (the definition)
``potential``  its hand-written log density and gradient (NumPyro is the test oracle)
``inference``  MAP, NUTS and SVI
``posterior``  relabeling, membership intervals, co-clustering, diagnostics, health
``arviz``      every ArviZ call
``estimator``  :class:`BayesianGaussianMixture`, the scikit-learn-style facade
"""

from bayesgmm.bayes.estimator import (BayesianGaussianMixture, SamplingWarning,
                                      compare_n_components)
from bayesgmm.bayes.model import Priors
from bayesgmm.bayes.posterior import Health

__all__ = ["BayesianGaussianMixture", "Health", "Priors", "SamplingWarning",
           "compare_n_components"]
