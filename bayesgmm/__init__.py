"""bayesgmm: Gaussian mixture models on JAX, with EM, MAP and full posterior inference
sharing one parameter representation (:class:`GMMParams`)."""

from bayesgmm.estimators import GaussianMixture
from bayesgmm.params import GMMParams
from bayesgmm.validation import ConvergenceWarning, DegenerateComponentWarning, NotFittedError

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "GMMParams",
    "ConvergenceWarning",
    "DegenerateComponentWarning",
    "NotFittedError",
    "__version__",
]
