"""``BayesianGaussianMixture``: MAP, NUTS or SVI on the NumPyro model, behind a
scikit-learn-style facade. Imports NumPyro and ArviZ, so ``bayesgmm`` loads it lazily.

The fit: validate X; fit EM (:class:`bayesgmm.GaussianMixture`) as the starting point;
MAP from there (used for ``bic``/``aic`` and as the reference labeling); then the chosen
method (:func:`bayesgmm.bayes.inference.run`); then relabel the draws to the MAP
labeling, build the ArviZ objects and check the run's health
(:func:`bayesgmm.bayes.posterior.from_inference`). The class only validates, calls those
and stores ``*_`` attributes.

Messy data (issue 19): ``missing="marginalize"`` (NaN marks a value missing at random),
``noise=True`` (a uniform noise component) and ``component="t"`` (Student-t components)
change the model's likelihood (:func:`bayesgmm.bayes.model.robust_log_joint`); the EM
start, the inference path and the posterior read-outs of those models are in
:mod:`bayesgmm.bayes.robust`.

Counts follow scikit-learn's ``n_*`` names, not NumPyro's ``num_*``: ``n_chains``,
``n_warmup``, ``n_draws`` (posterior draws per chain; ``n_samples`` stays the data's rows,
as in scikit-learn) and ``n_svi_steps``. The old names (``num_chains``, ``num_warmup``,
``num_samples``, ``svi_steps``) raise a ``TypeError`` that names the new one.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np

from bayesgmm.bayes import arviz, inference, posterior, robust
from bayesgmm.bayes.model import Priors, check_model_features, check_model_type, model_type
from bayesgmm.estimators import BaseEstimator, GaussianMixture, membership_columns
from bayesgmm.missing import check_missing, has_missing
from bayesgmm.validation import (
    DataScaleWarning,
    blurring_feature,
    check_array_2d,
    check_n_components_list,
    check_n_features,
    check_n_samples,
    check_n_samples_drawn,
    check_positive_int,
    check_random_state_key,
    compute_scope,
    constant_feature,
    constant_phrase,
    default_x64_scope,
    unit_reg_covar,
    warn_few_values,
)

__all__ = ["BayesianGaussianMixture", "SamplingWarning", "compare_n_components"]

# Parameters renamed to scikit-learn's n_* counts (they were NumPyro's num_*).
RENAMED = {"num_chains": "n_chains", "num_warmup": "n_warmup", "num_samples": "n_draws",
           "svi_steps": "n_svi_steps"}


# compare_n_components caps NUTS's trees at this depth (127 leapfrog steps; the default
# 10 allows 1,023): a chain stuck on a collapsed component runs every iteration to the
# cap, and on standardised iris, K = 1..6, such chains took most of the time. The
# healthy iris fits (K = 1..3) are not flagged at this cap; a chain at the cap in > 5%
# of its draws is (benchmarks/README.md, K comparison).
COMPARE_MAX_TREE_DEPTH = 7
# compare_n_components' NUTS draws unless given: 4 chains x (300 + 300) (the estimator's
# 500 + 500): 1,200 draws per K for PSIS-LOO and the health checks.
COMPARE_DRAWS = {"n_warmup": 300, "n_draws": 300}


# sparse=True: Dirichlet concentration SPARSE_CONCENTRATION / K on the weights (an
# over-fitted mixture, Rousseau & Mengersen 2011; Malsiner-Walli et al. 2016); set by
# robust.model_priors, which resolves the priors of a fit.
SPARSE_CONCENTRATION = robust.SPARSE_CONCENTRATION


class SamplingWarning(UserWarning):
    """A chain is unhealthy (divergences, collapsed step size, disagreeing modes,
    collapsed or empty components, unreliable LOO); the message starts with ``K=k:``."""


class BayesianGaussianMixture(BaseEstimator):
    """Gaussian mixture with a posterior over its parameters (NumPyro) and ArviZ output.

    Shapes below: C chains (``n_chains``; 1 for MAP and SVI), S draws per chain
    (``n_draws``; 1 for MAP), K components, D features, N training samples.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "diag", "VVV", "VVI"}, default="full"
        full: LKJ-correlation × InverseGamma scales per component; diag: scales only.
        mclust's names of the same models are accepted (``"VVV"`` = full, ``"VVI"`` =
        diag) and kept, as :class:`bayesgmm.GaussianMixture` keeps them:
        ``get_params``, the repr, ``params_`` and ``map_params_`` carry the name given;
        the sampler runs on the canonical one, so the draws are the same numbers.
        Other mclust models (tied ``EEE``, spherical ``VII``, ``EEV``...) have no
        Bayesian model: the error names their per-component relaxation.
    method : {"nuts", "map", "svi"}, default="nuts"
    priors : bayesgmm.bayes.model.Priors, optional
        Weakly informative, data-scaled defaults (see ``Priors``).
    n_chains : int, default=4
        NUTS chains (in sequence on a CPU, vectorised on an accelerator; parallel over
        several devices).
    n_warmup : int, default=500
        NUTS warm-up (adaptation) iterations per chain, discarded.
    n_draws : int, default=500
        Posterior draws per NUTS chain, or from the SVI guide.
    target_accept_prob : float, default=0.8
    jitter : float, default=0.05
        Per-chain perturbation of the EM/MAP start, in the unconstrained space, the
        means in units of their feature's standard deviation (NUTS also moves them in
        those units, so a fit does not depend on the data's units).
    n_svi_steps : int, default=3000
        Optimiser steps of SVI's ELBO.
    max_tree_depth : int, default=10
        NUTS's cap on a trajectory's tree depth: at most 2**max_tree_depth - 1 leapfrog
        steps per iteration. A chain stuck on a collapsed component runs every iteration
        to the cap; a lower cap bounds that cost and the chain is still flagged
        (``diagnostics_.at_max_depth``). :func:`compare_n_components` passes 7.
    n_padded : int, optional
        Run MAP and NUTS on the model padded to ``n_padded`` >= ``n_components``
        components, the extra ones masked (weight exactly 0, a standard normal on their
        unconstrained coordinates, their draws dropped): fits with different
        ``n_components`` then share one compiled program (:func:`compare_n_components`
        sets it to the largest K). The posterior is the same; the draws are not the
        same numbers, and each leapfrog step costs as much as a K = ``n_padded`` fit's.
        Ignored for SVI's sampling, noise or t components and data with missing values.
    n_init, reg_covar, max_iter, tol, init_params
        For the EM fit that initialises inference.
    random_state : int, RandomState or None
    progress_bar : bool, default=False
        A tqdm bar over NUTS's iterations (on the same compiled sampler; the draws do
        not change) or SVI's steps.
    sparse : bool, default=False
        An over-fitted mixture: a sparse Dirichlet prior on the weights (concentration
        ``0.5 / n_components`` where ``priors.weight_concentration`` is left at its
        default 1; Malsiner-Walli, Frühwirth-Schnatter & Grün 2016), so components the
        data do not need empty (weight → 0) instead of splitting clusters or collapsing
        onto a few points. Choose K generously and count the non-empty components
        (``health_.n_nonempty``). Empty components are then not reported as a problem.
        Reliable with ``method="nuts"``: MAP and SVI start from EM's K components and
        can stop with a real cluster split in two (K = 8 on 3 blobs: MAP kept 5
        components, SVI 4, NUTS 3).
    missing : {"error", "marginalize"}, default="error"
        What NaN in X means. ``"error"``: refused (scikit-learn's behaviour), with an
        error naming this option. ``"marginalize"``: a value missing at random; the
        likelihood of a row is its observed coordinates' marginal (the EM start runs
        :class:`bayesgmm.GaussianMixture`'s missing-data EM), so MAP, NUTS and SVI fit
        data with holes and the membership intervals reflect them. Every row needs an
        observed value and every feature must be observed somewhere.
    noise : bool, default=False
        Add a uniform noise component over the data's region (Banfield & Raftery 1993;
        mclust's ``noise``), with weight ``noise_weight ~ Beta(α, K·α)`` (a Dirichlet
        over K + 1). ``predict_proba`` then has K + 1 columns, the noise last, and
        ``predict`` labels noise -1, as :class:`bayesgmm.RobustMixture`.
    noise_volume : {"box", "hypvol", "hull"} or float, default="box"
        The noise region's volume V (:class:`bayesgmm.RobustMixture`'s option): the
        bounding box, or a cube of the given (or computed) volume.
    component : {"gaussian", "t"}, default="gaussian"
        The components' family; ``"t"``: multivariate Student-t components (closed-form
        likelihood) with degrees of freedom ``df``.
    df : float, optional
        ``component="t"``: fixed degrees of freedom of every component; ``None``: each
        component's is sampled, prior Gamma(2, 0.1) (Juárez & Steel 2010; set
        ``Priors.df_shape`` / ``df_rate`` to change it).

    Which path runs: missing values alone, the common one (hand-written potential);
    a noise component or t components, NumPyro's potential and NumPyro's NUTS
    (:mod:`bayesgmm.bayes.robust`). ``score_samples`` and ``score`` give the model's
    own density (with the noise component, t components, or the observed coordinates'
    marginal). ``bic``, ``aic`` and ``coclustering`` use the Gaussian, complete-data
    density: with ``noise`` or ``component="t"``, or on data with NaN, they raise (the
    ``log_likelihood`` group, hence :meth:`loo` and :meth:`waic`, is the model's own).
    ``sample`` draws from the Gaussian components only.

    Attributes
    ----------
    params_ : GMMParams
        Relabeled draws, batch shape (C, S); MAP: (1, 1). ``params_.weights`` (C, S, K),
        ``params_.means`` (C, S, K, D), ``params_.cov_factor`` (C, S, K, D, D) lower
        Cholesky factors (full) or (C, S, K, D) standard deviations (diag).
    map_params_ : GMMParams
        The MAP estimate, batch shape (): weights (K,), means (K, D), cov_factor as above
        without (C, S). ``bic``/``aic`` use it; the draws are relabeled to its labeling.
    em_ : GaussianMixture
        The EM fit inference started from (not kept by :func:`bayesgmm.load`).
    idata_ : arviz.InferenceData (ArviZ 0.23) or xarray.DataTree (ArviZ 1.x)
        The relabeled draws; read both the same way, ``idata_.posterior["means"]``.
        Groups, variables and dims (:mod:`bayesgmm.bayes.arviz`):

        - ``posterior``: ``weights (chain, draw, component)``, ``means (chain, draw,
          component, feature)``, ``covariances (chain, draw, component, feature,
          feature_bis)``, ``scales (chain, draw, component, feature)`` (per-feature
          standard deviations) and, for ``covariance_type="full"``, ``corr_chol (chain,
          draw, component, feature, feature_bis)`` (the Cholesky factor of each
          component's correlation matrix: Σ_k = diag(scales) · corr_chol · corr_cholᵀ ·
          diag(scales)); with ``priors.weight_prior="stick_breaking"`` also ``stick_fractions (chain,
          draw, stick)``.
        - ``sample_stats``: NUTS ``diverging, tree_depth, n_steps, step_size, energy, lp,
          acceptance_rate (chain, draw)``; MAP ``lp``; SVI none.
        - ``log_likelihood``: ``obs (chain, draw, obs_id)``, log p(x_n | θ) of each
          training sample under each draw (:meth:`loo`, :meth:`waic`).
        - ``observed_data``: ``obs (obs_id, feature)``, the N training samples.
    idata_raw_ : arviz.InferenceData or xarray.DataTree
        The same before relabeling, without ``log_likelihood`` (to see label switching).
    relabeling_ : bayesgmm.bayes.relabel.Relabeling
        ``permutations`` (C, S, K) int64 (relabeled component k was component
        ``permutations[c, s, k]`` as sampled), ``n_switched`` (draws whose labeling
        changed), ``n_iter`` (rounds of matching), ``params`` (= ``params_``).
    diagnostics_ : bayesgmm.bayes.posterior.Diagnostics
        The sampler's health: ``n_divergent`` (C,) int64, ``at_max_depth`` (C,) fraction
        of draws at the tree-depth cap, ``step_size`` (C,) (NaN: not NUTS), ``lp_rhat``
        float (split R-hat of the log density; NaN: one chain, or not NUTS), ``finite``
        bool, ``warnings`` tuple of str.
    health_ : bayesgmm.bayes.posterior.Health
        Whether the posterior is one sensible mode, per chain: ``collapsed`` and
        ``empty`` (C, K) bool, ``stray`` (another mode), ``slow`` (disagrees with
        the others by no more than the chains vary within themselves: slow mixing,
        fixed by more draws) and ``chain_ok`` (C,) bool, ``chain_lp`` (C,),
        ``lp_rhat`` float, ``coclustering_disagreement`` (C,), ``n_high_pareto_k`` int
        (PSIS-LOO Pareto k > 0.7; -1 when not computed), ``n_nonempty`` (C, S) int64
        components with weight >= 1/N, ``healthy`` bool and ``problems`` tuple of str
        (the sampler's ``diagnostics_.warnings`` included), ``label_invariant``
        (:class:`~bayesgmm.bayes.posterior.LabelInvariant`: R-hat and ESS of the log
        density, sorted weights and max membership, which label switching cannot move).
    warnings_ : list of str
        ``health_.problems``, each prefixed with ``K=n_components:``, as emitted as
        ``SamplingWarning``.
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_ : ndarray of shape (K, D, D) (full) or (K, D) (diag)
        Posterior means over the relabeled draws.
    n_features_in_ : int
        D.
    feature_names_in_ : ndarray of shape (D,), dtype object
        X's column names when ``fit`` got a table with str column names (a pandas
        DataFrame), as :class:`bayesgmm.GaussianMixture`'s; a table passed later must
        have these columns in this order.
    priors_ : Priors
        The resolved priors the model ran with (data-scaled defaults filled in; the
        messy-data fields set from the options).
    noise_weight_ : float
        Posterior mean of π_0 (0 without a noise component); with ``noise``,
        ``weights_`` are the components' weights in the whole mixture, summing to
        ``1 - noise_weight_`` (as :class:`bayesgmm.RobustMixture`'s).
    noise_volume_ : float
        V (``inf`` without a noise component).
    df_ : ndarray of shape (K,)
        Posterior mean degrees of freedom (``inf`` for Gaussian components).
    """

    def __init__(self, n_components=1, *, covariance_type="full", method="nuts", priors=None,
                 n_chains=4, n_warmup=500, n_draws=500, target_accept_prob=0.8,
                 jitter=0.05, n_svi_steps=3000, n_init=1, reg_covar=1e-6, max_iter=100,
                 tol=1e-3, init_params="auto", random_state=None, progress_bar=False,
                 sparse=False, missing="error", noise=False, noise_volume="box",
                 component="gaussian", df=None, max_tree_depth=10, n_padded=None,
                 **renamed):
        _refuse_renamed(renamed)
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.method = method
        self.priors = priors
        self.n_chains = n_chains
        self.n_warmup = n_warmup
        self.n_draws = n_draws
        self.target_accept_prob = target_accept_prob
        self.jitter = jitter
        self.n_svi_steps = n_svi_steps
        self.n_init = n_init
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.init_params = init_params
        self.random_state = random_state
        self.progress_bar = progress_bar
        self.sparse = sparse
        self.missing = missing
        self.noise = noise
        self.noise_volume = noise_volume
        self.component = component
        self.df = df
        self.max_tree_depth = max_tree_depth
        self.n_padded = n_padded

    def fit(self, X, y=None):
        """Fit EM, then MAP, then ``method``; relabel; build ``idata_``. Returns self.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        """
        data, X = X, self._check_fit_X(X)
        priors = self._priors(X)
        k_run, start = self._fit_em_start(X)
        post = self._infer(k_run, X, start, priors)
        if not priors.robust:  # (a noise or t model's EM start is not this likelihood's)
            post = posterior.below_em(post, self.em_.params_, X, self.method)
        self._set_fitted(post, X.shape[1])
        self._set_messy(priors)
        self._feature_names(data, reset=True)
        return self

    def set_params(self, **params):
        """scikit-learn's ``set_params``; an old ``num_*`` name raises, naming the new one."""
        _refuse_renamed({name: v for name, v in params.items() if name in RENAMED})
        return super().set_params(**params)

    # ---- prediction ---------------------------------------------------------------

    def predict_proba(self, X):
        """Posterior-mean membership E_θ[p(z = k | x, θ)], shape (n_samples, n_components),
        or (n_samples, n_components + 1) with a noise component (its column last)."""
        return self.membership_interval(X)[0]

    def predict(self, X):
        """Component with the highest posterior-mean membership, shape (n_samples,);
        -1 where the noise component's is the highest."""
        labels = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return np.where(labels == int(self.n_components), -1, labels)

    def membership_interval(self, X, prob=0.94):
        """Posterior mean and equal-tailed ``prob`` credible interval of p(z = k | x, θ).

        Returns
        -------
        mean, lower, upper : ndarrays of shape (n_samples, n_components)
            (n_samples, n_components + 1) with a noise component, its column last.
        """
        X = self._check_X(X, messy=True)
        with compute_scope(X.dtype):
            if self._messy(X):
                extra = robust.draw_sites(arviz_posterior(self.idata_), self.priors_,
                                          self.params_.batch_shape)
                return robust.membership(self.params_.astype(X.dtype), extra, X,
                                         self.priors_, prob=prob)
            return posterior.membership(self.params_.astype(X.dtype), X, prob=prob)

    def membership_table(self, X, prob=0.94):
        """Per sample its component, that component's posterior-mean membership
        probability and, with posterior draws, its equal-tailed ``prob`` credible interval
        (:meth:`membership_interval`, default 0.94 as there and as the command line's
        ``[bayes] interval``), as columns for :func:`bayesgmm.io.write_table`.

        Returns
        -------
        dict of str to ndarray
            ``label`` (n_samples,) int64, :meth:`predict` (-1: noise); ``probability``
            (n_samples,); and, unless the fit is a single draw (MAP), ``lower`` and
            ``upper`` (n_samples,).
        """
        mean, lower, upper = self.membership_interval(X, prob=prob)
        if int(np.prod(self.params_.batch_shape)) == 1:  # MAP: one draw, no interval
            table = membership_columns(mean)
        else:
            table = membership_columns(mean, lower, upper)
        table["label"] = np.where(table["label"] == int(self.n_components), -1, table["label"])
        return table

    def coclustering(self, X, max_draws=500):
        """Posterior probability that samples i and j share a component, (n, n), over
        at most ``max_draws`` draws (an int >= 1; a random subset if there are more)."""
        check_positive_int(max_draws, "max_draws")
        X = self._check_X(X)
        with compute_scope(X.dtype):
            return posterior.coclustering(self.params_.astype(X.dtype), X, max_draws=max_draws)

    def score_samples(self, X):
        """Log posterior predictive density log E_θ[p(x | θ)] per sample, shape (n,); with
        noise, t components or NaN (marginalised), the model's own density."""
        X = self._check_X(X, messy=True)
        if self._messy(X):
            with compute_scope(X.dtype):
                extra = robust.draw_sites(arviz_posterior(self.idata_), self.priors_,
                                          self.params_.batch_shape)
                return robust.log_predictive_density(self.params_.astype(X.dtype), extra,
                                                     X, self.priors_)
        return posterior.log_predictive_density(self.params_, X)

    def score(self, X, y=None):
        """Mean log posterior predictive density per sample."""
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """BIC at the MAP estimate (lower is better)."""
        return posterior.information_criteria(self.map_params_, self._check_X(X))["bic"]

    def aic(self, X):
        """AIC at the MAP estimate (lower is better)."""
        return posterior.information_criteria(self.map_params_, self._check_X(X))["aic"]

    def loo(self, **kwargs):
        """PSIS-LOO of the fit: Pareto-smoothed importance-sampling leave-one-out
        cross-validation (``arviz.loo``, :func:`bayesgmm.bayes.arviz.loo`) from
        ``idata_``'s ``log_likelihood`` group.

        Parameters
        ----------
        **kwargs
            ``var_name`` and ``reff``, passed to ArviZ; nothing else.

        Returns
        -------
        bayesgmm.bayes.arviz.ELPD
            ``kind="loo"``; ``elpd`` (float, Σ_n elpd_i: higher is better), ``se``,
            ``p`` (effective number of parameters), ``elpd_i`` (N,), ``pareto_k`` (N,)
            and ``good_k`` (k above it: that sample's estimate is unreliable),
            ``warning`` (some ``pareto_k > good_k``), ``n_samples`` (C·S),
            ``n_data_points`` (N). On a MAP fit (one draw) it is not meaningful.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        TypeError
            A keyword other than ``var_name`` or ``reff``.
        ValueError
            ``idata_`` has no ``log_likelihood`` group.
        """
        self._check_is_fitted()
        return arviz.loo(self.idata_, **kwargs)

    def waic(self, **kwargs):
        """WAIC (widely applicable information criterion) of the fit, on the elpd scale,
        from ``idata_``'s ``log_likelihood`` group (:func:`bayesgmm.bayes.arviz.waic`:
        ``elpd_i = lppd_i - var_s log p(x_i | θ_s)``).

        Parameters
        ----------
        **kwargs
            ``var_name`` only (the log-likelihood variable; default its only one).

        Returns
        -------
        bayesgmm.bayes.arviz.ELPD
            ``kind="waic"``; ``elpd`` (float, higher is better; -2·elpd is WAIC on the
            deviance scale), ``se``, ``p`` (effective number of parameters), ``elpd_i``
            (N,), ``pareto_k`` and ``good_k`` None, ``warning`` (some posterior variance
            of log p(x_n | θ) above 0.4: prefer :meth:`loo`), ``n_samples`` (C·S),
            ``n_data_points`` (N).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        TypeError
            A keyword other than ``var_name``.
        ValueError
            ``idata_`` has no ``log_likelihood`` group.

        Warns
        -----
        UserWarning
            When ``warning`` is True.
        """
        self._check_is_fitted()
        return arviz.waic(self.idata_, **kwargs)

    def summary(self, relabeled=True, label_invariant=False, **kwargs):
        """``arviz.summary`` of weights, means and scales, with a 94% equal-tailed interval
        (``ci_prob``, ``ci_kind``, ``kind``, ``var_names``: see
        :func:`bayesgmm.bayes.arviz.summary`); ``relabeled=False`` for the raw draws (where
        label switching shows as R-hat >> 1).

        ``label_invariant=True`` appends rows for quantities that do not depend on the
        components' labels (:class:`bayesgmm.bayes.posterior.LabelInvariant`): ``lp``
        (the log density, NUTS), ``weights_sorted[j]`` (the j-th smallest weight) and
        ``max_membership_mean`` (the mean over samples of max_k p(z_n = k | x_n, θ), at
        most 300 evenly spaced samples). Their rows are the same with ``relabeled``
        True or False: a large R-hat there means chains in different modes, which no
        relabeling fixes.

        ``table.attrs`` holds ``healthy`` and ``problems`` (``health_.healthy`` and
        ``warnings_``) and, with posterior draws, ``label_invariant``: those
        quantities' ``{"r_hat", "ess_bulk", "ess_tail"}`` by row name, plus
        ``max_membership_worst`` (the sample whose max membership has the largest
        R-hat), and ``label_invariant_rhat_max``, the largest of their R-hats."""
        self._check_is_fitted()
        table = arviz.summary(self.idata_ if relabeled else self.idata_raw_, **kwargs)
        # the fit's health beside the per-scalar rows (plain values: pandas compares attrs)
        # healthy: no problem found (health_.healthy; warnings_ lists the problems, also
        # on a fit loaded from disk, also one saved before health_ was)
        attrs = {"healthy": not self.warnings_, "problems": list(self.warnings_)}
        if int(np.prod(self.params_.batch_shape)) > 1:  # posterior draws, not one MAP point
            inv, rows = _label_invariant(self, kwargs)
            if label_invariant:
                import pandas as pd

                table = pd.concat([table, rows])
            attrs["label_invariant"] = {
                name: {"r_hat": float(r), "ess_bulk": float(b), "ess_tail": float(t)}
                for name, r, b, t in zip(inv.names, inv.r_hat, inv.ess_bulk, inv.ess_tail)}
            attrs["label_invariant_rhat_max"] = inv.r_hat_max
        table.attrs.update(attrs)
        return table

    def sample(self, n_samples=1):
        """Draws from the posterior predictive: ``(X, y)``, each from a random posterior draw
        (Gaussian components; a noise or t model raises a ``ValueError``). ``n_samples``
        an int >= 1, as :meth:`bayesgmm.GaussianMixture.sample` takes it."""
        self._check_is_fitted()
        n_samples = check_n_samples_drawn(n_samples)
        if getattr(self, "priors_", None) is not None and self.priors_.robust:
            raise ValueError("sample draws from Gaussian components only; this model has "
                             "noise=True or component='t' — refit without them to sample")
        key = check_random_state_key(self.random_state)
        return posterior.sample_predictive(key, self.params_, n_samples)

    # ---- internals ----------------------------------------------------------------

    def _settings(self) -> dict:
        """This estimator's inference settings, by :data:`inference.SETTINGS` name."""
        return {name: getattr(self, name) for name in inference.SETTINGS}

    def _run_settings(self, priors: Priors) -> dict:
        """:meth:`_settings` for the run ``priors`` take: NumPyro's path
        (:func:`bayesgmm.bayes.robust.run`, noise or t components) has no padding."""
        settings = self._settings()
        if priors.robust:
            settings.pop("n_padded")
        return settings

    def _priors(self, X) -> Priors:
        """The resolved priors of a fit on X (:func:`bayesgmm.bayes.robust.model_priors`):
        ``sparse`` sets the default weight concentration to ``SPARSE_CONCENTRATION /
        n_components``; the messy-data fields are set from ``missing``, ``noise`` (the
        noise region of X) and ``component``/``df``."""
        extent = robust.noise_log_extent(X, self.noise_volume) if self.noise else None
        return robust.model_priors(self.priors, X, n_components=int(self.n_components),
                                   sparse=bool(self.sparse), noise_log_extent=extent,
                                   component=self.component, df=self.df)

    def _check_fit_X(self, X):
        self._check_settings()
        return _fit_data(X, int(self.n_components), self.covariance_type, self.missing)

    def _check_settings(self) -> None:
        """Every constructor setting valid, else the ``ValueError`` fit raises naming it;
        without data, so :func:`bayesgmm.load` can refuse an edited meta.json's
        settings at load instead of at the next fit."""
        check_positive_int(self.n_components, "n_components")
        check_model_type(self.covariance_type)
        inference.check_settings(**self._settings())
        if self.priors is not None and not isinstance(self.priors, Priors):
            raise ValueError(f"priors must be a bayesgmm.Priors, got {type(self.priors)}")
        if not isinstance(self.sparse, (bool, np.bool_)):
            raise ValueError(f"sparse must be True or False, got {self.sparse!r}")
        robust.check_options(missing=self.missing, noise=self.noise,
                             noise_volume=self.noise_volume, component=self.component,
                             df=self.df)

    def _fit_em_start(self, X) -> tuple:
        """Fit ``em_``, the start of inference; returns (the inference's key, the
        :class:`bayesgmm.bayes.robust.Start`). The same keys and EM start whatever the
        user's x64 mode. The model does not depend on the data's units (its priors
        scale with the data); so that the start does not either, a ``reg_covar`` that
        would blur clusters in these units (:class:`DataScaleWarning`'s test) is lowered
        for the start to the one it suggests (1e-6 of that feature's variance): at
        1e-6 units the default start had merged make_blobs(150, 3)'s clusters and MAP
        stayed there (three equal means, reported healthy). Its warning is then not
        the user's."""
        blur = blurring_feature(X, self.reg_covar)
        reg_covar = self.reg_covar if blur is None else unit_reg_covar(blur[1])
        with default_x64_scope(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DataScaleWarning)
            k_em, _, k_run = jax.random.split(check_random_state_key(self.random_state), 3)
            self.em_, start = robust.em_start(self._em_start(k_em, reg_covar), X,
                                              component=self.component, df=self.df,
                                              noise=bool(self.noise),
                                              noise_volume=self.noise_volume)
        return k_run, start

    def _em_start(self, key, reg_covar=None) -> GaussianMixture:
        """The unfitted EM model inference starts from, seeded from ``key``
        (``reg_covar``: the start's, default the estimator's)."""
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        return GaussianMixture(int(self.n_components), covariance_type=self.covariance_type,
                               n_init=self.n_init,
                               reg_covar=self.reg_covar if reg_covar is None else reg_covar,
                               max_iter=self.max_iter, tol=self.tol,
                               init_params=self.init_params, random_state=seed,
                               missing=self.missing)

    def _set_fitted(self, post: posterior.Posterior, n_features: int) -> None:
        post = _named(post, self.covariance_type)
        self.map_params_, self.relabeling_ = post.reference, post.relabeling
        self.params_ = post.params
        self.idata_, self.idata_raw_ = post.idata, post.idata_raw
        self.diagnostics_, self.health_ = post.diagnostics, post.health
        self.warnings_ = [f"K={self.n_components}: {m}" for m in post.health.problems]
        for message in self.warnings_:
            warnings.warn(message, SamplingWarning, stacklevel=3)
        self.weights_ = np.asarray(post.mean.weights)
        self.means_ = np.asarray(post.mean.means)
        self.covariances_ = np.asarray(post.mean.covariances)
        self.n_features_in_ = n_features

    def _infer(self, key, X, start: robust.Start, priors: Priors) -> posterior.Posterior:
        """MAP, then ``method``, from the EM ``start``: the common path
        (:func:`bayesgmm.bayes.inference.run`), or :func:`bayesgmm.bayes.robust.run` for a
        noise or t model; then the posterior (:func:`bayesgmm.bayes.robust.finish`)."""
        run = robust.run if priors.robust else inference.run
        settings = self._run_settings(priors)
        with compute_scope(X.dtype):
            # on X - c, the draws' means shifted back (inference.run_centred): in float32
            # the sampler's means near a far-off data centre had a resolution as coarse as
            # their posterior spread, and NUTS's step size collapsed
            init = start if priors.robust else start.params
            result, map_params = inference.run_centred(
                run, key, X, init, n_components=int(self.n_components),
                covariance_type=model_type(self.covariance_type), priors=priors, **settings)
            # in X's precision too: outside it, float64 draws met JAX's float32 default
            # (a "truncated to float32" warning per read-out on every float64 fit)
            return robust.finish(result, map_params, X, priors, sparse=bool(self.sparse))

    def _set_messy(self, priors: Priors) -> None:
        """The messy-data attributes (:func:`bayesgmm.bayes.robust.fitted_attributes`):
        ``priors_``, ``noise_weight_``, ``noise_volume_``, ``df_`` and, with noise,
        ``weights_`` in the whole mixture (Σ = 1 - noise_weight_)."""
        for name, value in robust.fitted_attributes(
                self.params_, arviz_posterior(self.idata_), priors, self.weights_).items():
            setattr(self, name, value)

    def _messy(self, X) -> bool:
        """Whether X's read-outs need the messy-data likelihood (noise, t or NaN)."""
        priors = getattr(self, "priors_", None)
        return bool(priors is not None and priors.robust) or has_missing(X)

    def _check_X(self, X, messy: bool = False):
        """X to read out (n_features_in_ columns); NaN only with ``missing="marginalize"``
        and, unless ``messy`` (the membership methods), a ``ValueError`` for NaN or a
        noise / t model, whose densities the other read-outs do not compute."""
        self._check_is_fitted()
        self._feature_names(X, reset=False)
        X = check_array_2d(X, missing=self.missing, marginalize_in="BayesianGaussianMixture")
        check_n_features(X, self.n_features_in_, type(self).__name__)
        if has_missing(X):
            check_missing(X)
        if not messy and self._messy(X):
            raise ValueError("This read-out uses the Gaussian, complete-data density; with "
                             "noise=True, component='t' or NaN in X use predict, "
                             "predict_proba, membership_interval and score_samples (or "
                             "pass complete rows to a Gaussian model)")
        return X


def _fit_data(X, n_components: int, covariance_type: str, missing: str) -> np.ndarray:
    """X to fit (:func:`check_array_2d`; NaN only with ``missing="marginalize"``, then
    observed in every row and feature), with at least ``n_components`` rows and the
    features the model needs (:func:`bayesgmm.bayes.model.check_model_features`)."""
    X = check_array_2d(X, min_samples=2, missing=missing,
                       marginalize_in="BayesianGaussianMixture")
    if has_missing(X):
        check_missing(X, fitting_data=True)
    check_n_samples(X.shape[0], n_components)
    check_model_features(covariance_type, X.shape[1])
    found = constant_feature(X)  # (an all-NaN column: check_missing refused it)
    if found is not None:
        raise ValueError(
            f"{constant_phrase(found)}: the data give that feature no scale, so the scale "
            "prior alone sets it, and the posterior crowds every point into one ever "
            "tighter component (a MAP fit of two blobs kept one, weight 0.97); drop the "
            "column (GaussianMixture bounds it with reg_covar)")
    warn_few_values(X, n_components)
    return X


def arviz_posterior(idata):
    """The ``posterior`` group of ``idata`` (ArviZ 0.23 and 1.x alike)."""
    return idata["posterior"]


def _named(post: posterior.Posterior, covariance_type: str) -> posterior.Posterior:
    """``post`` with its parameters (draws, MAP reference, relabeled draws) under the
    user's name of the type (``"VVV"`` for the ``"full"`` the sampler ran): the same
    table entry, so only the name changes."""
    name = lambda p: dataclasses.replace(p, covariance_type=covariance_type)
    return post._replace(params=name(post.params), reference=name(post.reference),
                         relabeling=post.relabeling._replace(
                             params=name(post.relabeling.params)))


def _refuse_renamed(kwargs: dict) -> None:
    """A ``TypeError`` for any keyword ``BayesianGaussianMixture`` does not take, naming
    the new name of a renamed one."""
    for name in kwargs:
        if name in RENAMED:
            raise TypeError(f"BayesianGaussianMixture's {name!r} is now {RENAMED[name]!r} "
                            f"(counts follow scikit-learn's n_* names): pass "
                            f"{RENAMED[name]}={kwargs[name]!r}")
        raise TypeError(f"BayesianGaussianMixture got an unexpected keyword argument "
                        f"{name!r}")


def compare_n_components(X, n_components=range(1, 6), *, method: str = "nuts",
                         covariance_type: str = "full", random_state=0,
                         refit_unhealthy: bool = False, **kwargs) -> dict:
    """Choose K the Bayesian way: fit a :class:`BayesianGaussianMixture` per K, check
    each fit's health, and rank the healthy ones by PSIS-LOO (``arviz.compare``), next
    to EM's BIC/AIC/ICL for the same K.

    An unhealthy fit (``health_.healthy`` False: collapsed or empty components, chains
    in other modes, Pareto k > 0.7, sampler warnings) is never ranked: it is left out of
    ``compare`` and its weights, flagged in ``health``, and a ``SamplingWarning`` names
    its K. With ``refit_unhealthy=True`` it is first refitted once with another seed
    (``random_state + 1000``) and kept if that fit is healthy. If fewer than two fits
    are healthy, the healthy one is the answer; if none is, all are ranked, and a
    warning says that the ranking cannot be trusted.

    ``**kwargs`` go to each :class:`BayesianGaussianMixture`; ``n_warmup`` and
    ``n_draws`` default to 300 here (:data:`COMPARE_DRAWS`), NUTS's trees are capped
    at depth :data:`COMPARE_MAX_TREE_DEPTH` (``max_tree_depth``; a chain stuck at the
    cap is still flagged), and every K runs on the model padded to the largest K
    (``n_padded``), so MAP and NUTS compile once for all K (each K's posterior is
    unchanged; ``n_padded=None`` compiles per K).
    (``benchmarks/compare_k.py`` times K = 1..6 on standardised iris.)

    Returns
    -------
    dict with
        ``compare``: :func:`bayesgmm.bayes.arviz.compare`'s DataFrame of the ranked fits
        (best first, index ``"K=k"``; ``elpd``, ``p``, ``elpd_diff`` >= 0, ``weight``...;
        None when only one fit is ranked);
        ``health``: one row per K (index ``"K=k"``): ``K, elpd_loo, se, p_loo,
        n_pareto_k_high, rhat_max, ess_bulk_min, healthy, ranked``;
        ``em``: the :func:`bayesgmm.selection.sweep` table;
        ``fits``: the fitted estimators by name;
        ``best_loo`` / ``best_em``: the K each criterion picks.
    """
    from bayesgmm.selection import sweep

    ks = check_n_components_list(n_components, "compare_n_components")
    if method == "map":  # before fitting every K: LOO needs posterior draws
        raise ValueError("compare_n_components ranks K by PSIS-LOO, which needs posterior "
                         "draws; method='map' gives one point: use method='nuts' (or "
                         "'svi'), or compare MAP fits by selection.sweep's BIC")
    kwargs = {**COMPARE_DRAWS, "max_tree_depth": COMPARE_MAX_TREE_DEPTH,
              "n_padded": max(ks), **kwargs}
    # One K after another: fitting K's on host threads side by side fails, because
    # NumPyro's effect-handler stack (the model traces of MAP and NUTS) is one global.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # each fit's are re-raised below
        fits = {f"K={k}": _fit_k(X, k, method, covariance_type, random_state,
                                 refit_unhealthy, kwargs) for k in ks}
    healthy = [name for name, fit in fits.items() if fit.health_.healthy]
    ranked = healthy if healthy else list(fits)
    for name, fit in fits.items():
        for message in fit.warnings_:
            warnings.warn(message + " (left out of the LOO ranking)" * (name not in ranked),
                          SamplingWarning, stacklevel=2)
    if not healthy:
        warnings.warn(f"no K in {ks} gave a healthy fit: all are ranked, but LOO cannot be "
                      "trusted here; see the 'health' table", SamplingWarning, stacklevel=2)
    table, loos = (arviz.compare_with_loo({name: fits[name].idata_ for name in ranked})
                   if len(ranked) > 1 else (None, {}))
    best = table.index[0] if table is not None else ranked[0]
    em = sweep(X, ks, (covariance_type,), random_state=random_state)
    return {"compare": table, "health": _health_table(fits, ranked, loos), "em": em, "fits": fits,
            "best_loo": int(best.split("=")[1]), "best_em": int(em.best["n_components"])}


def _fit_k(X, k, method, covariance_type, random_state, refit_unhealthy, kwargs):
    """One K's fit, refitted once with another seed if unhealthy and asked to."""
    make = lambda seed: BayesianGaussianMixture(k, method=method, covariance_type=covariance_type,
                                                random_state=seed, **kwargs).fit(X)
    fit = make(random_state)
    if refit_unhealthy and not fit.health_.healthy:
        seed = None if random_state is None else int(random_state) + 1000
        again = make(seed)
        fit = again if again.health_.healthy else fit
    return fit


def _health_table(fits: dict, ranked: list, loos: dict):
    """compare_n_components' ``health`` table: LOO beside each fit's health. ``loos``:
    the LOO :func:`arviz.compare_with_loo` computed for the ranked fits (the others'
    is computed here); R-hat and ESS are ``arviz.summary``'s rows of the parameters
    (:meth:`BayesianGaussianMixture.summary` without its label-invariant attributes)."""
    import pandas as pd

    rows = {}
    for name, fit in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            draws = fit.params_.batch_shape != (1, 1)  # not one MAP point
            elpd = (loos[name] if name in loos else fit.loo()) if draws else None
            diag = (arviz.summary(fit.idata_, kind="diagnostics") if fit.method != "map"
                    else None)
        rows[name] = {
            "K": int(fit.n_components),
            "elpd_loo": np.nan if elpd is None else elpd.elpd,
            "se": np.nan if elpd is None else elpd.se,
            "p_loo": np.nan if elpd is None else elpd.p,
            "n_pareto_k_high": fit.health_.n_high_pareto_k,
            "rhat_max": np.nan if diag is None else float(diag["r_hat"].max()),
            "ess_bulk_min": np.nan if diag is None else float(diag["ess_bulk"].min()),
            "healthy": bool(fit.health_.healthy),
            "ranked": name in ranked}
    return pd.DataFrame.from_dict(rows, orient="index")


def _label_invariant(fit: BayesianGaussianMixture, kwargs: dict):
    """:func:`posterior.label_invariant` of a fit's draws, from ``idata_`` (so a loaded
    fit gives the same), and their :meth:`~BayesianGaussianMixture.summary` rows
    (``kwargs``: its keywords; ``var_names`` does not apply)."""
    X = np.asarray(fit.idata_.observed_data["obs"].values)
    stats = fit.idata_.sample_stats if "sample_stats" in fit.idata_ else None
    lp = (np.asarray(stats["lp"].values) if stats is not None and "lp" in stats.data_vars
          else None)
    values = posterior.label_invariant_draws(fit.params_, X, lp)
    rows = arviz.summary_of_draws(
        {k: values[k] for k in ("lp", "weights_sorted", "max_membership_mean") if k in values},
        **{k: v for k, v in kwargs.items() if k != "var_names"})
    return posterior.label_invariant(values), rows
