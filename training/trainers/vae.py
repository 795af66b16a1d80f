"""The VAE family with a scikit-learn face: settings in the constructor, ``fit(data)`` returns self.

Learned values end in ``_``. Per-restart arrays have a leading axis of
length ``restarts``; the selected restart's parameters keep an axis of
length 1, so they plug straight into the likelihood and encoder functions.

Examples
--------
>>> from training.datasets import load_dataset
>>> data = load_dataset("univariate", seed=0, n_train=100, n_val=100, n_test=100)
>>> vae = VAE(epochs=50, restarts=2, seed=0).fit(data)
>>> vae.best_restart_ in (0, 1), vae.theta_["u"].shape
(True, (1,))
"""
import inspect
import numbers

import numpy as np

from analysis import checks

from ..core.optim import adam
from ..core.trees import tree_map, tree_stack, tree_take
from ..datasets.synthetic import Dataset
from ..models.objectives import neg_elbo
from .engine import (AllRestartsDiverged, BatchedRun, NoiseStream, check_stopping, fixed_noise, progress_bar,
                     restart_streams, train_epochs)

__all__ = ["BATCHABLE", "BATCH_SHARED", "BaseTrainer", "VAE", "AnnealedBetaVAE", "BetaVAE", "InferenceOnly", "fit_batched"]


def check_dataset(data):
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a training.datasets.Dataset, got {type(data).__name__}")
    return data


def initial_log_variance(likelihood, theta, X):
    """log(noise variance / data variance) per restart, shape (R, 1).

    q starts with the posterior spread of a model that explains the data at
    its noise level. A unit variance instead makes the expected
    reconstruction term sum W^2 v / psi dominate the first epochs and
    collapses W towards zero, which costs thousands of epochs to undo.
    """
    ratio = np.mean(np.asarray(likelihood.noise(theta)), axis=1) / np.mean(np.var(X, axis=0))
    return np.clip(np.log(ratio), -20.0, 0.0)[:, None]


def store_settings(trainer, settings):
    """Keep every constructor argument as an attribute of the same name (scikit-learn's rule)."""
    for name, value in settings.items():
        if name != "self":
            setattr(trainer, name, value)


class BaseTrainer:
    """Settings, checks, the batched epoch loop and the bookkeeping shared by every trainer.

    A subclass lists its settings in its constructor's signature and stores
    them unchanged (:func:`store_settings`); ``fit`` does the work. So
    ``get_params``, ``set_params`` and ``repr`` follow the signature, as in
    scikit-learn (whose ``clone`` works on these trainers).
    """

    @classmethod
    def _setting_names(cls):
        params = inspect.signature(cls).parameters
        if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values()):
            raise TypeError(f"{cls.__name__}'s constructor must name every setting (no *args or **kwargs)")
        return list(params)

    def get_params(self, deep=True):
        """The constructor's settings, by name (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._setting_names()}

    def set_params(self, **params):
        """Change settings by name; returns self."""
        valid = self._setting_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{name!r} is not a setting of {type(self).__name__}; "
                                 f"valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_settings(self, data):
        checks.integer("epochs", self.epochs, 1)
        checks.integer("restarts", self.restarts, 1)
        checks.positive("lr", self.lr)
        checks.integer("mc_samples", self.mc_samples, 1)
        checks.integer("val_mc_samples", self.val_mc_samples, 1)
        checks.integer("eval_every", self.eval_every, 1)
        checks.integer("seed", self.seed, 0)
        check_stopping(self.patience, self.tol)
        if self.elbo not in ("auto", "exact", "mc"):
            raise ValueError(f"elbo must be 'auto', 'exact' or 'mc', got {self.elbo!r}")
        if self.elbo == "exact" and not data.likelihood.linear:
            raise ValueError(f"elbo='exact' needs a linear-Gaussian likelihood; {data.name} is not")

    def _exact(self, data):
        return self.elbo == "exact" or (self.elbo == "auto" and data.likelihood.linear)

    def _setup(self, data):
        """Initial parameters and the per-restart random streams."""
        check_dataset(data)
        self._check_settings(data)
        streams = restart_streams(self.seed, self.restarts)
        init = [s[0] for s in streams]
        theta = data.likelihood.init(init)
        phi = data.encoder.init(init)
        phi["logvar"]["b"] = phi["logvar"]["b"] + initial_log_variance(data.likelihood, theta, data.train)
        return {"theta": theta, "phi": phi}, streams

    def _elbo_losses(self, data, streams, beta, val_beta):
        """Training loss(params, epoch, eps) and validation loss(params) for the ELBO.

        ``beta(epoch)`` and ``val_beta`` are floats or per-restart arrays (R,).
        """
        lik, enc = data.likelihood, data.encoder
        X, Xv = data.train, data.val
        K = lik.latent_dim
        exact = self._exact(data)
        noise = None if exact else NoiseStream([s[1] for s in streams], (self.mc_samples, len(X), K))
        val_eps = None if exact else fixed_noise([s[2] for s in streams], (self.val_mc_samples, len(Xv), K))

        def rows_of(a, rows):   # a per-restart input restricted to the restarts computed
            return a if rows is None or a is None or np.ndim(a) == 0 else a[rows]

        def loss(p, epoch, eps, rows=None):
            mu, logvar = enc(p["phi"], X)
            return neg_elbo(lik, p["theta"], mu, logvar, X, rows_of(beta(epoch), rows), rows_of(eps, rows))

        def val_loss(p, rows=None):
            mu, logvar = enc(p["phi"], Xv)
            return neg_elbo(lik, p["theta"], mu, logvar, Xv, rows_of(val_beta, rows), rows_of(val_eps, rows))

        return loss, val_loss, (lambda: None) if noise is None else noise.next

    def _train(self, params, schedule, loss, val_loss, draw, bar, epochs=None, diverged=None, optimizer=None,
               near_best=None, hold_until=0):
        """Adam on ``params`` for ``epochs`` as ``schedule`` says, validating as set; returns the run.

        ``schedule``: the parts stepped every epoch (a tuple), ``parts(epoch)``,
        or a :class:`training.trainers.engine.Schedule` (see
        :func:`training.trainers.engine.train_epochs`, the loop itself).
        ``loss(params, epoch, eps)`` with ``eps = draw()``; ``diverged`` (R,)
        carries divergence flags in from an earlier phase; ``optimizer``
        replaces ``adam(self.lr)`` (:func:`fit_batched`: one rate per restart);
        ``near_best`` keeps the latest near-best parameters too (``run.kept``);
        the stopping rule waits until epoch ``hold_until`` (scalar or (R,)).
        """
        run = BatchedRun(params, optimizer or adam(self.lr), self.patience, self.tol, near_best, hold_until,
                         diverged)
        return train_epochs(run, schedule, loss, val_loss, draw, epochs or self.epochs, self.eval_every, bar)

    def _finish(self, run):
        """Learned attributes from a finished run (docs/theory.md (T.48) model selection)."""
        self.params_ = run.params
        self.best_params_ = run.best
        self.val_objective_ = run.best_value
        self.best_epoch_ = run.best_epoch
        self.diverged_ = run.diverged.copy()
        self.epochs_run_ = run.epochs_run.copy()
        self.converged_ = run.stopped & ~run.diverged
        self.history_ = run.history()
        return self._keep_selected(run.best, run.selected_restart())

    def _keep_selected(self, per_restart, restart):
        """``restart`` as ``best_restart_``, its parameters (leading axis 1) as ``theta_``, ``phi_``, ...; returns self."""
        self.best_restart_ = restart
        for name, value in tree_take(per_restart, np.array([self.best_restart_])).items():
            setattr(self, name + "_", value)
        return self


class VAE(BaseTrainer):
    """The VAE (Kingma & Welling, 2014): minimize -ELBO jointly over theta and phi (docs/theory.md (T.36)).

    Full-batch Adam; R restarts batched along a leading axis, each with its
    own random stream. The ELBO is exact for linear-Gaussian likelihoods
    (``elbo="auto"``) and a reparameterized Monte Carlo estimate with
    ``mc_samples`` draws per point otherwise; validation uses
    ``val_mc_samples`` fixed draws (common random numbers).

    Parameters
    ----------
    epochs : int
    restarts : int
    lr : float
        Adam learning rate (the paper's 0.01).
    elbo : {"auto", "exact", "mc"}
    mc_samples, val_mc_samples : int
    eval_every : int
        Epochs between validation checks (model selection, docs/theory.md (T.48)).
    seed : int
    progress : bool
        A progress bar on the terminal.
    patience : int or None
        The stopping rule (opt-in; None trains every restart for ``epochs``):
        a restart stops once its validation objective has not fallen by more
        than ``tol`` for ``patience`` epochs (checked at each validation).
        Stopped restarts cost nothing more; the fit ends when all have
        stopped or the budget is spent.
    tol : float
        >= 0, in the units of the validation objective (nats per point).

    Attributes
    ----------
    params_ : dict
        Final parameters of every restart ``{"theta", "phi"}``.
    best_params_ : dict
        Per restart, the parameters its own validation objective preferred.
    val_objective_ : ndarray (R,)
        That objective (the negative validation ELBO, per point).
    best_epoch_ : ndarray (R,)
    diverged_ : ndarray (R,) of bool
    epochs_run_ : ndarray (R,) of int
        Epochs each restart was trained (fewer than ``epochs`` where it
        stopped by the rule or diverged).
    converged_ : ndarray (R,) of bool
        Stopped by the rule (False where it hit the budget or diverged).
    best_restart_ : int
        The non-diverged restart with the lowest validation objective.
    theta_, phi_ : dict
        Its parameters (leading axis of length 1).
    history_ : dict
        ``train`` (R, epochs) and ``val`` (R, checks) objectives, ``val_epochs``.
    """

    def __init__(self, epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1,
                 val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def _beta(self, epoch):
        return 1.0

    def _final_beta(self):
        return 1.0

    def fit(self, data):
        """Train on ``data.train``, select on ``data.val``; returns self."""
        params, streams = self._setup(data)
        loss, val_loss, draw = self._elbo_losses(data, streams, self._beta, self._final_beta())
        with progress_bar(self.epochs, self.progress, type(self).__name__) as bar:
            run = self._train(params, ("theta", "phi"), loss, val_loss, draw, bar, hold_until=self._hold_until())
        return self._finish(run)

    def _hold_until(self):
        """The stopping rule waits until this epoch (the end of a beta ramp)."""
        return 0


class BetaVAE(VAE):
    """The beta-VAE (Higgins et al., 2017): -E_q log p(x | z) + beta KL[q || p(z)] (docs/theory.md (T.37)).

    Model selection uses the same beta-weighted objective on validation.

    Parameters
    ----------
    beta : float
        >= 0 (the paper's grid: 0.5, 2, 5). Other parameters as :class:`VAE`.
    """

    def __init__(self, beta=1.0, *, epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1,
                 val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def _check_settings(self, data):
        super()._check_settings(data)
        if not isinstance(self.beta, numbers.Real) or not np.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")

    def _beta(self, epoch):
        return float(self.beta)

    def _final_beta(self):
        return float(self.beta)


class AnnealedBetaVAE(BetaVAE):
    """beta-VAE with KL annealing: beta ramps linearly from 0 to ``beta`` (docs/theory.md (T.38)).

    The ramp covers the first ``anneal_fraction`` of the epochs (default
    half); model selection uses the final beta throughout, and the stopping
    rule's patience counts from the end of the ramp.

    Parameters
    ----------
    beta : float
        Final beta >= 0 (the paper's grid: 0.5, 1, 2, 5).
    anneal_fraction : float
        In (0, 1].
    """

    def __init__(self, beta=1.0, anneal_fraction=0.5, *, epochs=2000, restarts=10, lr=0.01, elbo="auto",
                 mc_samples=1, val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def _check_settings(self, data):
        super()._check_settings(data)
        if not 0 < checks.scalar("anneal_fraction", self.anneal_fraction) <= 1:
            raise ValueError(f"anneal_fraction must be in (0, 1], got {self.anneal_fraction!r}")

    def _beta(self, epoch):
        ramp = max(1.0, self.anneal_fraction * self.epochs)
        return float(self.beta) * min(1.0, (epoch + 1) / ramp)

    def _hold_until(self):
        # Selection uses the final beta: during the ramp the objective being
        # trained is not the one validated, so a plateau there means nothing.
        return int(np.ceil(self.anneal_fraction * self.epochs))


class InferenceOnly(VAE):
    """Fit q_phi by the ELBO with the likelihood frozen at ``theta`` (LiBI's Step 2 alone).

    With ``theta`` the truth this gives the paper's q_{phi_GT} =
    argmin_phi E_p(x) KL[q_phi(z|x) || p_theta_GT(z|x)] (Figs. 2-5).

    Parameters
    ----------
    theta : dict
        Likelihood parameters with a leading axis of length 1 (broadcast to
        every restart).
    epochs, restarts, lr, elbo, mc_samples, val_mc_samples, eval_every, seed, progress, patience, tol
        As :class:`VAE`.

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> data = load_dataset("univariate", n_train=50, n_val=50, n_test=50)
    >>> inf = InferenceOnly(data.truth, epochs=20, restarts=2).fit(data)
    >>> inf.theta_["u"].tolist() == data.truth["u"].tolist()
    True
    """

    def __init__(self, theta=None, *, epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1,
                 val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def fit(self, data):
        """Train ``phi`` on ``data.train`` with ``theta`` fixed; returns self."""
        if self.theta is None:
            raise ValueError("theta must be given (the frozen likelihood parameters)")
        params, streams = self._setup(data)
        R = self.restarts
        params["theta"] = tree_map(lambda a: np.repeat(np.asarray(a, dtype=float), R, axis=0), self.theta)
        params["phi"]["logvar"]["b"] = (np.zeros_like(params["phi"]["logvar"]["b"])
                                        + initial_log_variance(data.likelihood, params["theta"], data.train))
        loss, val_loss, draw = self._elbo_losses(data, streams, self._beta, self._final_beta())
        with progress_bar(self.epochs, self.progress, type(self).__name__) as bar:
            run = self._train(params, ("phi",), loss, val_loss, draw, bar)
        return self._finish(run)


#: The trainer classes :func:`fit_batched` takes, and the settings that fix
#: the shape of the batched loop and must be equal across its trainers.
BATCHABLE = (VAE, BetaVAE, AnnealedBetaVAE)
BATCH_SHARED = ("epochs", "elbo", "mc_samples", "val_mc_samples", "eval_every", "patience", "tol")


def _check_batch(trainers, data):
    if isinstance(trainers, BaseTrainer):
        raise TypeError(f"trainers must be a sequence of trainers, got a single {type(trainers).__name__} "
                        "(use its fit method)")
    try:
        trainers = list(trainers)
    except TypeError:
        raise TypeError(f"trainers must be a sequence of trainers, got {type(trainers).__name__}") from None
    if not trainers:
        raise ValueError("trainers must not be empty")
    for i, t in enumerate(trainers):
        if type(t) not in BATCHABLE:
            raise TypeError(f"trainers[{i}] is a {type(t).__name__}; fit_batched takes "
                            f"{', '.join(c.__name__ for c in BATCHABLE)} instances only")
    classes = sorted({type(t).__name__ for t in trainers})
    if len(classes) > 1:
        raise TypeError(f"trainers must all be of one class, got {', '.join(classes)}")
    if len({id(t) for t in trainers}) < len(trainers):
        raise ValueError("trainers must be distinct objects (the same trainer appears twice)")
    check_dataset(data)
    for t in trainers:
        t._check_settings(data)
    for name in BATCH_SHARED:
        values = [getattr(t, name) for t in trainers]
        if any(v != values[0] for v in values):
            raise ValueError(f"{name} must be the same for all trainers to fit them batched, "
                             f"got {name}={values}")
    return trainers


def fit_batched(trainers, data):
    """Fit several trainers of one kind on ``data`` as one batched computation; returns them, fitted.

    The restarts of all settings run side by side in one batched loop (one
    gradient evaluation and one Adam step per epoch for all of them). Restart
    r of ``trainers[g]`` draws what it draws in ``trainers[g].fit(data)`` and
    sees only its own beta schedule and learning rate, so every trainer ends
    with the learned attributes of its own ``fit(data)``, up to
    floating-point rounding; model selection (``best_restart_``) is per
    trainer, among its own restarts.

    Parameters
    ----------
    trainers : sequence of VAE, BetaVAE or AnnealedBetaVAE
        Non-empty, distinct objects, all of the same class (subclasses with
        their own loops, e.g. ``InferenceOnly`` or ``LaggingVAE``, are
        refused). ``epochs``, ``elbo``, ``mc_samples``, ``val_mc_samples`` and
        ``eval_every`` must be equal; ``beta``, ``anneal_fraction``, ``lr``,
        ``seed`` and ``restarts`` may differ. A progress bar is shown if any
        trainer asks for one.
    data : training.datasets.Dataset

    Returns
    -------
    list
        The same trainer objects, in order, each fitted in place.

    Raises
    ------
    TypeError
        ``trainers`` is not a sequence of one batchable class; ``data`` is
        not a Dataset.
    ValueError
        No trainers, a trainer given twice, a shared setting that differs,
        or a trainer's own invalid setting (the error of its ``fit``).
    training.trainers.engine.AllRestartsDiverged
        Every restart of some setting diverged. Raised after all the other
        trainers were fitted in place; the message names the failed ones and
        ``err.failed`` lists their indices in ``trainers``.

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> data = load_dataset("univariate", seed=0, n_train=100, n_val=100, n_test=100)
    >>> grid = [BetaVAE(beta=b, epochs=30, restarts=2, seed=0) for b in (0.5, 2.0)]
    >>> fitted = fit_batched(grid, data)
    >>> fitted[1] is grid[1], [t.beta for t in fitted]
    (True, [0.5, 2.0])
    >>> [t.val_objective_.shape for t in fitted], fitted[0].theta_["u"].shape
    ([(2,), (2,)], (1,))
    >>> alone = BetaVAE(beta=2.0, epochs=30, restarts=2, seed=0).fit(data)
    >>> bool(np.allclose(alone.val_objective_, fitted[1].val_objective_, rtol=1e-9, atol=0))
    True
    """
    trainers = _check_batch(trainers, data)
    setups = [t._setup(data) for t in trainers]
    params = tree_stack([p for p, _ in setups])
    streams = [s for _, ss in setups for s in ss]

    def per_restart(value):
        return np.concatenate([np.full(t.restarts, float(value(t))) for t in trainers])

    optimizer = adam(per_restart(lambda t: t.lr)[:, None])     # one rate per restart (row)
    lead = trainers[0]
    loss, val_loss, draw = lead._elbo_losses(data, streams, lambda epoch: per_restart(lambda t: t._beta(epoch)),
                                             per_restart(lambda t: t._final_beta()))
    with progress_bar(lead.epochs, any(t.progress for t in trainers), "fit_batched") as bar:
        run = lead._train(params, ("theta", "phi"), loss, val_loss, draw, bar, optimizer=optimizer,
                          hold_until=per_restart(lambda t: t._hold_until()))
    failed = []
    stop = 0
    for i, t in enumerate(trainers):
        start, stop = stop, stop + t.restarts
        try:
            t._finish(run.subset(slice(start, stop)))
        except AllRestartsDiverged as err:
            failed.append((i, t, err))
    if failed:
        names = "; ".join(f"trainers[{i}] = {t!r}" for i, t, _ in failed)
        err = AllRestartsDiverged(f"all restarts diverged for {len(failed)} of {len(trainers)} settings "
                                  f"(the others are fitted): {names}")
        err.failed = [i for i, _, _ in failed]
        raise err from failed[0][2]
    return trainers
