"""Evaluation of fitted models: log-likelihoods, the codes, and two-sample tests.

* :mod:`.likelihood`: importance-sampled, exact and reference log-likelihoods.
* :mod:`.quadrature`: log p_theta(x) by deterministic quadrature (K <= 2 latents).
* :mod:`.posterior`: the aggregated posterior against the prior; I_q(X;Z).
* :mod:`.knn`: the smooth k-NN two-sample test; :mod:`.hz`: Henze-Zirkler.

All functions take parameters with a leading restart axis and return one
value per restart.
"""
from .hz import henze_zirkler, henze_zirkler_pvalue
from .knn import smooth_knn, smooth_knn_test
from .likelihood import (exact_log_likelihood, held_out_log_likelihood, log_likelihood_is, posterior_mean_is,
                         reference_log_likelihood)
from .posterior import aggregated_posterior, mutual_information_estimate
from .quadrature import log_likelihood_quadrature

__all__ = ["log_likelihood_is", "posterior_mean_is", "exact_log_likelihood", "log_likelihood_quadrature",
           "reference_log_likelihood", "held_out_log_likelihood", "aggregated_posterior",
           "mutual_information_estimate", "smooth_knn", "smooth_knn_test", "henze_zirkler", "henze_zirkler_pvalue"]
