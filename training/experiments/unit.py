"""One experiment unit: draw a data set, fit a method, evaluate it, return a JSON-ready record.

:func:`fit_and_evaluate` does this for one setting; :func:`fit_and_evaluate_batched`
for several settings of one batchable method (:func:`batch_key`) on the same
data set, fitted together by :func:`training.trainers.fit_batched`. Both build
their records with the same code, so a setting's record does not depend on
the path that fitted it (up to the timing fields).
"""
import json
import platform
import time

import numpy as np

from analysis import checks

from ..core.trees import tree_take, tree_to_lists
from ..datasets.synthetic import DATASETS, load_dataset
from ..evaluate.knn import smooth_knn
from ..evaluate.likelihood import held_out_log_likelihood, reference_log_likelihood
from ..evaluate.posterior import aggregated_posterior
from ..trainers.engine import AllRestartsDiverged
from ..trainers.lagging import LaggingVAE
from ..trainers.libi import LiBI
from ..trainers.vae import BATCH_SHARED, BATCHABLE, VAE, AnnealedBetaVAE, BetaVAE, fit_batched

METHODS = {"vae": VAE, "beta_vae": BetaVAE, "annealed_beta_vae": AnnealedBetaVAE,
           "lagging": LaggingVAE, "libi": LiBI}


def make_trainer(method, **settings):
    """The trainer of ``method`` with ``settings`` (constructor keywords).

    Examples
    --------
    >>> make_trainer("beta_vae", beta=2.0, epochs=10)
    BetaVAE(beta=2.0, epochs=10, restarts=10, lr=0.01, elbo='auto', mc_samples=1, val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    try:
        return METHODS[method](**settings)
    except TypeError as err:
        raise TypeError(f"bad settings for method {method!r}: {err}") from None


#: A selected model this many nats per test point below the true model's test log-likelihood failed.
FAIL_NATS = 1.0

def gap_to_truth(metrics):
    """The true model's test log-likelihood minus the model's, per point; None where either is unknown.

    The model's by the exact log-likelihood, else by quadrature (importance
    sampling can be hundreds of nats off, so it is not used here).

    Examples
    --------
    >>> gap_to_truth({"test_ll_truth": -2.96, "test_ll_exact": -3.15, "test_ll_quadrature": -3.15})
    0.18999999999999995
    >>> gap_to_truth({"test_ll_truth": -4.0, "test_ll_quadrature": None, "test_ll_is": -4.1}) is None
    True
    """
    truth = metrics.get("test_ll_truth")
    model = metrics.get("test_ll_exact")
    if model is None:
        model = metrics.get("test_ll_quadrature")
    return None if truth is None or model is None else float(truth - model)


def evaluate_model(data, trainer, seed=0, is_samples=5000, knn_repeats=20000):
    """Test metrics of a fitted trainer's selected model (docs/theory.md §7).

    Returns
    -------
    dict
        ``test_ll_is`` (the paper's importance-sampled estimator) with its
        standard error and diagnostics (``test_ll_is_ess_mean``,
        ``test_ll_is_ess_min``, ``test_ll_is_worst``: the points where IS
        falls furthest below the reference); ``test_ll_quadrature`` (latent
        dimension <= 2) with ``test_ll_quadrature_error`` (largest per-point
        error estimate) and ``test_ll_quadrature_unconverged``;
        ``test_ll_exact`` (linear models); ``test_ll_truth``, the true
        model's own test log-likelihood (exact or quadrature; the ceiling);
        ``smooth_knn`` mean and std; the aggregated posterior's
        ``agg_kl_to_prior`` and ``agg_max_abs_corr``; evaluation time;
        ``test_ll_gap_to_truth`` (:func:`gap_to_truth`) and
        ``below_truth`` (that gap above :data:`FAIL_NATS`; None where
        unknown).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    t0 = time.perf_counter()
    lik, enc = data.likelihood, data.encoder
    ll = held_out_log_likelihood(lik, trainer.theta_, enc, trainer.phi_, data.test, rng, samples=is_samples)

    def first(key, cast=float):
        return None if ll[key] is None else cast(ll[key][0])

    out = {"test_ll_is": first("is"), "test_ll_is_se": first("is_se"),
           "test_ll_is_ess_mean": first("is_ess_mean"), "test_ll_is_ess_min": first("is_ess_min"),
           "test_ll_is_worst": None if ll["worst"] is None else ll["worst"][0],
           "test_ll_exact": first("exact"), "test_ll_quadrature": first("quadrature"),
           "test_ll_quadrature_error": first("quadrature_error"),
           "test_ll_quadrature_unconverged": first("quadrature_unconverged", int),
           "test_ll_truth": truth_log_likelihood(data)}
    if knn_repeats:
        knn = smooth_knn(data, trainer.theta_, rng, repeats=knn_repeats)
        out.update(smooth_knn=float(knn.mean), smooth_knn_std=float(knn.std))
    agg = aggregated_posterior(enc, trainer.phi_, data.test)
    gap = gap_to_truth(out)
    out.update(agg_kl_to_prior=float(agg["kl_to_prior"][0]),
               agg_max_abs_corr=float(agg["max_abs_corr"][0]),
               test_ll_gap_to_truth=gap, below_truth=None if gap is None else gap > FAIL_NATS,
               eval_seconds=time.perf_counter() - t0)
    return out


def restart_metrics(data, trainer, truth_ll=None):
    """Per restart of a fitted ``trainer``: its own test log-likelihood, its gap to the truth, how it ended.

    ``truth_ll``: the true model's test log-likelihood per point, if already
    computed (:func:`truth_log_likelihood`, by quadrature on the nonlinear
    data sets); computed here otherwise.

    Each restart's kept parameters (``best_params_``: its validation-best,
    for LiBI its best repetition) are scored like the selected model, so a
    restart that ended on a plateau shows even where another restart was
    selected (docs/design.md, "Robustness").

    Returns
    -------
    dict of lists, one entry per restart
        ``val_objective``, ``epochs_run``, ``diverged``, ``converged``;
        ``test_ll`` (exact or quadrature, mean per test point; None where
        neither applies or the restart diverged) and ``gap_to_truth`` (the
        true model's test log-likelihood minus it); ``code_cov_eigenvalues``
        (the covariance of the codes of the validation points, ascending:
        near 0, the codes collapsed onto fewer dimensions);
        ``A_singular_values`` (JTEx only, descending: near 0, a
        rank-deficient A); LiBI's ``step1_val_objective`` (the best Step-1
        validation objective of its last repetition).
    """
    params, lik, enc = trainer.best_params_, data.likelihood, data.encoder
    ok = ~np.asarray(trainer.diverged_, dtype=bool)
    R = ok.size
    out = {"val_objective": trainer.val_objective_, "epochs_run": trainer.epochs_run_,
           "diverged": trainer.diverged_, "converged": trainer.converged_}
    test_ll = np.full(R, np.nan)
    if ok.any():
        theta = tree_take(params["theta"], np.flatnonzero(ok))
        ll = reference_log_likelihood(lik, theta, data.test)
        if ll is not None:
            test_ll[ok] = np.mean(ll, axis=1)
    truth = truth_log_likelihood(data) if truth_ll is None else truth_ll
    out["test_ll"] = test_ll
    out["gap_to_truth"] = (truth - test_ll) if truth is not None else np.full(R, np.nan)
    codes = np.asarray(enc.mean(params["varphi"] if "varphi" in params else params["phi"], data.val))
    with np.errstate(all="ignore"):
        centred = codes - codes.mean(axis=1, keepdims=True)
        cov = np.einsum("rnk,rnj->rkj", centred, centred) / max(codes.shape[1] - 1, 1)
        finite = np.all(np.isfinite(cov), axis=(1, 2))
        out["code_cov_eigenvalues"] = np.where(finite[:, None], np.linalg.eigvalsh(np.where(
            finite[:, None, None], cov, np.eye(cov.shape[-1]))), np.nan)
        if "A" in params["theta"]:
            out["A_singular_values"] = np.array([np.linalg.svd(a, compute_uv=False) if np.all(np.isfinite(a))
                                                 else np.full(2, np.nan) for a in params["theta"]["A"]])
    if hasattr(trainer, "best_repeat_") and trainer.history_:
        val = np.asarray(trainer.history_[-1]["step1"]["val"], dtype=float).reshape(R, -1)
        best = np.min(np.where(np.isfinite(val), val, np.inf), axis=1, initial=np.inf)
        out["step1_val_objective"] = np.where(np.isfinite(best), best, np.nan)
    return out


def truth_log_likelihood(data):
    """The true model's test log-likelihood per point (exact, or by quadrature); None if unknown."""
    ll = None if data.truth is None else reference_log_likelihood(data.likelihood, data.truth, data.test)
    return None if ll is None else float(ll.mean())


def versions():
    import autograd
    import scipy
    import sympy
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__,
            "autograd": getattr(autograd, "__version__", "unknown")}


def batch_varying_settings(method):
    """The settings that may differ between units of ``method`` fitted as one batch.

    Those of :func:`training.trainers.fit_batched` (every constructor
    setting but the shared ones and ``progress``); empty when the method's
    trainer cannot be batched.

    Examples
    --------
    >>> sorted(batch_varying_settings("annealed_beta_vae"))
    ['anneal_fraction', 'beta', 'lr', 'restarts', 'seed']
    >>> batch_varying_settings("libi")
    frozenset()
    """
    cls = METHODS.get(method)
    if cls not in BATCHABLE:
        return frozenset()
    return frozenset(cls().get_params()) - set(BATCH_SHARED) - {"progress"}


def batch_key(method, settings):
    """A key equal for settings of ``method`` that can be fitted as one batch; None if never.

    Settings may be batched when ``method``'s trainer is batchable and they
    differ only in :func:`batch_varying_settings`.

    Examples
    --------
    >>> batch_key("beta_vae", {"epochs": 10, "beta": 0.5}) == batch_key("beta_vae", {"epochs": 10, "beta": 2.0})
    True
    >>> batch_key("beta_vae", {"epochs": 10}) == batch_key("beta_vae", {"epochs": 20})
    False
    >>> batch_key("lagging", {"segments": 5}) is None
    True
    """
    varying = batch_varying_settings(method)
    if not varying:
        return None
    fixed = {k: v for k, v in (settings or {}).items() if k not in varying}
    return method + ":" + json.dumps(fixed, sort_keys=True, default=repr)


def _check_unit(dataset, seed):
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    return checks.integer("seed", seed, 0)


def _record(dataset, seed, method, settings, data, trainer, fit_seconds, is_samples, knn_repeats,
            shared_by=None):
    """The record of a fitted ``trainer`` (see :func:`fit_and_evaluate`)."""
    metrics = evaluate_model(data, trainer, seed, is_samples, knn_repeats)
    record = {"dataset": dataset, "seed": seed, "method": method, "settings": settings, "metrics": metrics,
              "selected": tree_to_lists({"theta": trainer.theta_, "phi": trainer.phi_,
                                         **({"varphi": trainer.varphi_} if hasattr(trainer, "varphi_") else {})}),
              "best_restart": trainer.best_restart_,
              "val_objective": trainer.val_objective_,
              "selected_val_objective": float(trainer.val_objective_[trainer.best_restart_]),
              "diverged": trainer.diverged_,
              "epochs_run": trainer.epochs_run_, "converged": trainer.converged_,
              "selected_epochs_run": int(trainer.epochs_run_[trainer.best_restart_]),
              "selected_converged": bool(trainer.converged_[trainer.best_restart_]),
              "restarts": restart_metrics(data, trainer, metrics["test_ll_truth"]),
              "fit_seconds": fit_seconds, "versions": versions()}
    if shared_by is not None:
        record["fit_seconds_shared_by"] = shared_by
    return record


def fit_and_evaluate(dataset, seed, method, settings=None, is_samples=5000, knn_repeats=20000,
                     progress=False):
    """Draw ``dataset`` with ``seed``, fit ``method`` with ``settings``, evaluate.

    Returns
    -------
    dict
        A self-describing record: ``dataset``, ``seed``, ``method``,
        ``settings``, ``metrics``, ``selected`` (theta and phi of the selected
        restart), ``val_objective``, ``diverged`` (per restart), ``restarts``
        (:func:`restart_metrics`), ``fit_seconds``, ``versions``.
    """
    seed = _check_unit(dataset, seed)
    settings = dict(settings or {})
    trainer = make_trainer(method, **{"seed": seed, **settings, "progress": progress})
    data = load_dataset(dataset, seed)
    t0 = time.perf_counter()
    trainer.fit(data)
    fit_seconds = time.perf_counter() - t0
    return _record(dataset, seed, method, settings, data, trainer, fit_seconds, is_samples, knn_repeats)


def fit_and_evaluate_batched(dataset, seed, method, settings_list, is_samples=5000, knn_repeats=20000,
                             progress=False):
    """:func:`fit_and_evaluate` for several settings of ``method``, fitted as one batch.

    The data set is drawn once; the trainers of the valid settings are fitted
    together by :func:`training.trainers.fit_batched` and each is evaluated
    with the same seeds as by :func:`fit_and_evaluate`, so each record equals
    that of a separate ``fit_and_evaluate`` (up to floating-point rounding
    when learning rates differ), except ``fit_seconds``: the batch's fit
    time, shared by ``fit_seconds_shared_by`` settings.

    Parameters
    ----------
    dataset : str
    seed : int
    method : str
        A batchable method (:func:`batch_varying_settings` not empty).
    settings_list : list of dict
        Settings that differ only in :func:`batch_varying_settings`.
    is_samples, knn_repeats, progress
        As :func:`fit_and_evaluate`.

    Returns
    -------
    list
        One entry per setting, in order: its record, or the exception that
        ended it: a ``TypeError`` or ``ValueError`` for an invalid setting
        (the others are fitted without it),
        :class:`training.trainers.engine.AllRestartsDiverged` when all its restarts
        diverged, or an exception of its evaluation.

    Raises
    ------
    ValueError
        Unknown data set, a method that cannot be batched, or settings that
        differ in more than the varying ones.
    Exception
        Whatever else the batched fit raised (it concerns every setting).
    """
    seed = _check_unit(dataset, seed)
    if not batch_varying_settings(method):
        raise ValueError(f"method {method!r} cannot be fitted batched; batchable: "
                         f"{sorted(m for m in METHODS if batch_varying_settings(m))}")
    settings_list = [dict(s or {}) for s in settings_list]
    if len({batch_key(method, s) for s in settings_list}) > 1:
        raise ValueError(f"settings of one batch may differ only in {sorted(batch_varying_settings(method))}")
    data = load_dataset(dataset, seed)
    outcomes = [None] * len(settings_list)
    trainers = {}
    for i, settings in enumerate(settings_list):
        try:   # an invalid setting fails alone, as it would unbatched
            trainer = make_trainer(method, **{"seed": seed, **settings, "progress": progress})
            trainer._check_settings(data)
            trainers[i] = trainer
        except (TypeError, ValueError) as err:
            outcomes[i] = err
    order = list(trainers)
    t0 = time.perf_counter()
    if order:
        try:
            fit_batched([trainers[i] for i in order], data)
        except AllRestartsDiverged as err:
            for j in err.failed:
                outcomes[order[j]] = err
    fit_seconds = time.perf_counter() - t0
    for i in order:
        if outcomes[i] is None:
            try:
                outcomes[i] = _record(dataset, seed, method, settings_list[i], data, trainers[i], fit_seconds,
                                      is_samples, knn_repeats, shared_by=len(order))
            except Exception as err:   # this setting's evaluation: the others are fine
                outcomes[i] = err
    return outcomes
