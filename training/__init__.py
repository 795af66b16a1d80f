"""Training: the paper's data sets, the autograd VAE family and LiBI, evaluation and experiments.

The public names live here. The subpackages are layers, each importing
only those below it: ``core`` (trees, flat parameters, Adam), ``models``
(likelihoods, encoders, networks, the ELBO), ``datasets``, ``evaluate``
(log-likelihoods, the codes, k-NN and HZ tests), ``trainers`` (the batched
loop, the VAE family, lagging, LiBI) and ``experiments`` (one unit, the
configuration, the results store, the sweep, Table 1, figures, the CLI).
Modules whose names start with an underscore are speed internals with a
readable reference beside each (see ``docs/theory.md``).

Examples
--------
>>> import numpy as np
>>> import training
>>> data = training.load_dataset("linear_jtex", seed=0, n_train=200, n_val=100, n_test=100)
>>> vae = training.VAE(epochs=300, restarts=2, seed=0).fit(data)
>>> ll = training.exact_log_likelihood(data.likelihood, vae.theta_, data.test)
>>> ll.shape
(1, 100)
>>> rng = np.random.default_rng(0)
>>> is_ll = training.log_likelihood_is(data.likelihood, vae.theta_, data.encoder, vae.phi_, data.test, rng)
>>> bool(abs(is_ll.mean() - ll.mean()) < 0.05)
True
"""
from .datasets import DATASETS, Dataset, load_dataset
from .evaluate import (aggregated_posterior, exact_log_likelihood, held_out_log_likelihood, henze_zirkler,
                       henze_zirkler_pvalue, log_likelihood_is, log_likelihood_quadrature,
                       mutual_information_estimate, posterior_mean_is, reference_log_likelihood, smooth_knn,
                       smooth_knn_test)
from .experiments import METHODS, fit_and_evaluate, load_profile, load_records, run_sweep
from .models import Encoder, kl_to_prior, neg_elbo
from .trainers import (VAE, AllRestartsDiverged, AnnealedBetaVAE, BaseTrainer, BetaVAE, InferenceOnly, LaggingVAE,
                       LiBI, MutualInformationConstraint, fit_batched)

__all__ = [
    # data
    "DATASETS", "Dataset", "load_dataset",
    # trainers
    "BaseTrainer", "VAE", "BetaVAE", "AnnealedBetaVAE", "LaggingVAE", "InferenceOnly", "LiBI",
    "MutualInformationConstraint", "fit_batched", "AllRestartsDiverged",
    # objectives
    "neg_elbo", "kl_to_prior",
    # evaluation
    "log_likelihood_is", "posterior_mean_is", "log_likelihood_quadrature", "exact_log_likelihood",
    "reference_log_likelihood", "held_out_log_likelihood", "aggregated_posterior",
    "mutual_information_estimate", "smooth_knn", "smooth_knn_test", "henze_zirkler", "henze_zirkler_pvalue",
    # networks
    "Encoder",
    # experiments
    "METHODS", "fit_and_evaluate", "run_sweep", "load_profile", "load_records",
]
