"""One experiment unit: draw a data set, fit a method, evaluate it, return a JSON-ready record."""
import platform
import time

import numpy as np

from analysis import _checks

from .datasets import DATASETS, load_dataset
from .evaluate import aggregated_posterior, smooth_knn, held_out_log_likelihood
from .lagging import LaggingVAE
from .libi import LiBI
from .trainers import VAE, AnnealedBetaVAE, BetaVAE
from .trees import tree_to_lists

METHODS = {"vae": VAE, "beta_vae": BetaVAE, "annealed_beta_vae": AnnealedBetaVAE,
           "lagging": LaggingVAE, "libi": LiBI}


def make_trainer(method, **settings):
    """The trainer of ``method`` with ``settings`` (constructor keywords).

    Examples
    --------
    >>> make_trainer("beta_vae", beta=2.0, epochs=10)
    BetaVAE(epochs=10, restarts=10, lr=0.01, elbo='auto', mc_samples=1, val_mc_samples=16, eval_every=10, seed=0, progress=False, beta=2.0)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    try:
        return METHODS[method](**settings)
    except TypeError as err:
        raise TypeError(f"bad settings for method {method!r}: {err}") from None


def evaluate_model(data, trainer, seed=0, is_samples=5000, knn_repeats=20000):
    """Test metrics of a fitted trainer's selected model (SPEC 6).

    Returns
    -------
    dict
        ``test_ll_is`` (and its standard error), ``test_ll_exact`` (linear
        models), ``smooth_knn`` mean and std, the aggregated posterior's
        ``agg_kl_to_prior`` and ``agg_max_abs_corr``, and evaluation time.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    t0 = time.perf_counter()
    lik, enc = data.likelihood, data.encoder
    ll = held_out_log_likelihood(lik, trainer.theta_, enc, trainer.phi_, data.test, rng, samples=is_samples)
    out = {"test_ll_is": float(ll["is"][0]), "test_ll_is_se": float(ll["is_se"][0]),
           "test_ll_exact": None if ll["exact"] is None else float(ll["exact"][0])}
    if knn_repeats:
        knn = smooth_knn(data, trainer.theta_, rng, repeats=knn_repeats)
        out.update(smooth_knn=float(knn.mean), smooth_knn_std=float(knn.std))
    agg = aggregated_posterior(enc, trainer.phi_, data.test)
    out.update(agg_kl_to_prior=float(agg["kl_to_prior"][0]),
               agg_max_abs_corr=float(agg["max_abs_corr"][0]),
               eval_seconds=time.perf_counter() - t0)
    return out


def versions():
    import autograd
    import scipy
    import sympy
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__,
            "autograd": getattr(autograd, "__version__", "unknown")}


def fit_and_evaluate(dataset, seed, method, settings=None, is_samples=5000, knn_repeats=20000,
                     progress=False):
    """Draw ``dataset`` with ``seed``, fit ``method`` with ``settings``, evaluate.

    Returns
    -------
    dict
        A self-describing record: ``dataset``, ``seed``, ``method``,
        ``settings``, ``metrics``, ``selected`` (theta and phi of the selected
        restart), ``val_objective``, ``diverged`` (per restart),
        ``fit_seconds``, ``versions``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    seed = _checks.integer("seed", seed, 0)
    settings = dict(settings or {})
    trainer = make_trainer(method, **{"seed": seed, **settings, "progress": progress})
    data = load_dataset(dataset, seed)
    t0 = time.perf_counter()
    trainer.fit(data)
    fit_seconds = time.perf_counter() - t0
    return {"dataset": dataset, "seed": seed, "method": method, "settings": settings,
            "metrics": evaluate_model(data, trainer, seed, is_samples, knn_repeats),
            "selected": tree_to_lists({"theta": trainer.theta_, "phi": trainer.phi_,
                                       **({"varphi": trainer.varphi_} if hasattr(trainer, "varphi_") else {})}),
            "best_restart": trainer.best_restart_,
            "val_objective": trainer.val_objective_,
            "selected_val_objective": float(trainer.val_objective_[trainer.best_restart_]),
            "diverged": trainer.diverged_,
            "fit_seconds": fit_seconds, "versions": versions()}
