"""Evaluation of fitted models: log-likelihoods, the codes, and two-sample tests.

* :mod:`.likelihood`: importance-sampled, exact and reference log-likelihoods.
* :mod:`.quadrature`: log p_theta(x) by deterministic quadrature (K <= 2 latents).
* :mod:`.posterior`: the aggregated posterior against the prior; I_q(X;Z).
* :mod:`.knn`: the smooth k-NN two-sample test; :mod:`.hz`: Henze-Zirkler.

All functions take parameters with a leading restart axis and return one
value per restart. Each estimator returns its values as an array; its
``..._with_ess`` or ``..._with_error`` twin returns a NamedTuple of the
values and their diagnostics (:class:`ISLogLikelihood`,
:class:`ISPosteriorMean`, :class:`QuadratureResult`).
"""
from .hz import henze_zirkler, henze_zirkler_pvalue
from .knn import smooth_knn, smooth_knn_test
from .likelihood import (ISLogLikelihood, ISPosteriorMean, exact_log_likelihood, held_out_log_likelihood,
                         log_likelihood_is, log_likelihood_is_with_ess, posterior_mean_is, posterior_mean_is_with_ess,
                         reference_log_likelihood)
from .posterior import aggregated_posterior, mutual_information_estimate
from .quadrature import QuadratureResult, log_likelihood_quadrature, log_likelihood_quadrature_with_error

__all__ = ["log_likelihood_is", "log_likelihood_is_with_ess", "ISLogLikelihood", "posterior_mean_is",
           "posterior_mean_is_with_ess", "ISPosteriorMean", "exact_log_likelihood", "log_likelihood_quadrature",
           "log_likelihood_quadrature_with_error", "QuadratureResult", "reference_log_likelihood",
           "held_out_log_likelihood", "aggregated_posterior", "mutual_information_estimate", "smooth_knn",
           "smooth_knn_test", "henze_zirkler", "henze_zirkler_pvalue"]
