"""bayesgmm: Gaussian mixture models on JAX, with EM, MAP and full posterior inference
sharing one parameter representation (:class:`GMMParams`)."""

from bayesgmm.estimators import GaussianMixture, RobustMixture
from bayesgmm.params import GMMParams
from bayesgmm.validation import (
    ConstantFeatureWarning,
    DataScaleWarning,
    DegenerateComponentWarning,
    DiscreteFeatureWarning,
    SingularFitWarning,
)

__version__ = "0.1.0"


def __getattr__(name):
    # The Bayesian estimator imports NumPyro and ArviZ: load it only when asked for.
    if name in ("BayesianGaussianMixture", "Priors"):
        from bayesgmm import bayes

        return getattr(bayes, name)
    # saving and loading fitted models (bayesgmm.io; a Bayesian model loads NumPyro)
    if name in ("save", "load"):
        from bayesgmm import io

        return getattr(io, name)
    # scikit-learn's subclasses, built on first use (see bayesgmm.validation)
    if name in ("ConvergenceWarning", "NotFittedError"):
        from bayesgmm import validation

        return getattr(validation, name)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


__all__ = [
    "GaussianMixture",
    "RobustMixture",
    "BayesianGaussianMixture",
    "Priors",
    "GMMParams",
    "save",
    "load",
    "ConvergenceWarning",
    "DegenerateComponentWarning",
    "DataScaleWarning",
    "ConstantFeatureWarning",
    "DiscreteFeatureWarning",
    "SingularFitWarning",
    "NotFittedError",
    "__version__",
]
