"""Training: the paper's data sets, the autograd VAE family and LiBI, evaluation and experiments.

The public names live here; modules whose names start with an underscore
are speed internals (fused primitives, flat parameter matrices) with a
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
from .engine import AllRestartsDiverged
from .evaluate import (
    aggregated_posterior,
    exact_log_likelihood,
    held_out_log_likelihood,
    log_likelihood_is,
    log_likelihood_quadrature,
    mutual_information_estimate,
    posterior_mean_is,
    reference_log_likelihood,
    smooth_knn,
)
from .experiment import METHODS, fit_and_evaluate
from .hz import henze_zirkler, henze_zirkler_pvalue
from .knn import smooth_knn_test
from .lagging import LaggingVAE
from .libi import LiBI, MutualInformationConstraint
from .models import Encoder
from .objectives import kl_to_prior, neg_elbo
from .sweep import load_profile, load_records, run_sweep
from .trainers import VAE, AnnealedBetaVAE, BaseTrainer, BetaVAE, InferenceOnly, fit_batched

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
