"""Lagging inference networks (He et al., ICLR 2019; docs/theory.md (T.39)), restarts batched.

Two schedules:

* ``segments`` (the paper's variant): the epochs are split into equal
  segments; in each, the first ``inference_fraction`` of its epochs train the
  inference network alone, the rest train both networks jointly.
* ``aggressive=True`` (He et al.'s own): before each decoder step, up to
  ``max_inner`` encoder-only steps, stopping when the average loss over a
  window of ``window`` steps no longer falls below the previous window's;
  a restart leaves the aggressive phase for good when its validation mutual
  information (He et al.'s estimator, :func:`training.evaluate.mutual_information_estimate`)
  stops improving; from then on it trains like a VAE.

Both run on the loop every trainer shares
(:func:`training.trainers.engine.train_epochs`): the segments as the parts
stepped per epoch, the aggressive schedule as :class:`AggressiveSchedule`.
"""
import numpy as np

from analysis import checks

from ..evaluate.posterior import mutual_information_estimate
from .engine import Schedule, progress_bar
from .vae import VAE, store_settings

__all__ = ["LaggingVAE", "AggressiveSchedule"]


class LaggingVAE(VAE):
    """Lagging inference networks: the VAE objective with an encoder that trains ahead.

    Parameters
    ----------
    segments : int
        Number of equal segments of the epochs (paper grids: LinearJTEx
        40-70, CubicJTEx 30-60, Gaussian 5-20, Mobius 60-90).
    inference_fraction : float
        Share of each segment spent on the inference network alone, in
        (0, 1); default 0.5 (the paper leaves it open).
    aggressive : bool
        He et al.'s aggressive schedule instead of segments.
    max_inner, window : int
        The aggressive inner loop: at most ``max_inner`` encoder steps,
        stop test every ``window`` steps.
    epochs, restarts, lr, elbo, mc_samples, val_mc_samples, eval_every, seed, progress, patience, tol
        As :class:`training.trainers.VAE`.

    Model selection as the VAE (validation ELBO). Extra attributes:
    ``aggressive_until_`` (R,) the epoch at which each restart left the
    aggressive phase (-1 if it never did), ``inner_steps_`` total encoder-only
    steps per restart.
    """

    def __init__(self, segments=50, inference_fraction=0.5, aggressive=False, max_inner=100, window=10, *,
                 epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1, val_mc_samples=16, eval_every=10,
                 seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def _check_settings(self, data):
        super()._check_settings(data)
        if not self.aggressive:    # the aggressive schedule has no segments
            checks.integer("segments", self.segments, 1, self.epochs)
        if not 0 < checks.scalar("inference_fraction", self.inference_fraction) < 1:
            raise ValueError(f"inference_fraction must be in (0, 1), got {self.inference_fraction!r}")
        checks.integer("max_inner", self.max_inner, 1)
        checks.integer("window", self.window, 1, self.max_inner)

    def _segment_schedule(self):
        """Per epoch, True where only the inference network trains."""
        inference_only = np.zeros(self.epochs, dtype=bool)
        for seg in np.array_split(np.arange(self.epochs), self.segments):
            inference_only[seg[:int(round(self.inference_fraction * seg.size))]] = True
        return inference_only

    def _schedule(self, data):
        """The segments as parts per epoch, or the aggressive schedule."""
        if self.aggressive:
            mi_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 13]))
            return AggressiveSchedule(self.restarts, self.max_inner, self.window, data.encoder, data.val, mi_rng)
        inference_only = self._segment_schedule()
        return Schedule(lambda epoch: ("phi",) if inference_only[epoch] else ("theta", "phi"))

    def fit(self, data):
        """Train on ``data.train`` with the lagging schedule; returns self."""
        params, streams = self._setup(data)
        loss, val_loss, draw = self._elbo_losses(data, streams, self._beta, self._final_beta())
        schedule = self._schedule(data)
        with progress_bar(self.epochs, self.progress, type(self).__name__) as bar:
            run = self._train(params, schedule, loss, val_loss, draw, bar)
        R = self.restarts
        self.aggressive_until_ = schedule.left_at if self.aggressive else np.full(R, -1)
        self.inner_steps_ = schedule.inner_steps if self.aggressive else np.zeros(R, dtype=int)
        return self._finish(run)


class AggressiveSchedule(Schedule):
    """He et al.'s aggressive schedule, per restart, for :func:`training.trainers.engine.train_epochs`.

    While a restart is aggressive, each epoch is an inner loop of
    encoder-only steps (:meth:`inner_loop`) and one decoder step; at each
    validation a restart whose mutual information I_q(X;Z) (on ``x_val``)
    did not rise leaves the aggressive phase for good and from then on steps
    both networks jointly, like a VAE.

    Parameters
    ----------
    restarts : int
    max_inner, window : int
        At most ``max_inner`` encoder steps per epoch, stop test every ``window``.
    encoder : training.models.Encoder
    x_val : array (N, D)
        The points of the mutual-information estimate.
    rng : numpy.random.Generator
        Its draws.

    Attributes
    ----------
    aggressive : ndarray (R,) of bool
        Restarts still in the aggressive phase.
    left_at : ndarray (R,) of int
        The epoch each left it (-1: never).
    inner_steps : ndarray (R,) of int
        Encoder-only steps so far.
    """

    def __init__(self, restarts, max_inner, window, encoder, x_val, rng):
        super().__init__(("theta", "phi"))
        self.max_inner, self.window = max_inner, window
        self.encoder, self.x_val, self.rng = encoder, x_val, rng
        self.aggressive = np.ones(restarts, dtype=bool)
        self.left_at = np.full(restarts, -1)
        self.inner_steps = np.zeros(restarts, dtype=int)
        self.best_mi = np.full(restarts, -np.inf)

    def step(self, run, loss, epoch, draw):
        if not self.aggressive.any():
            return super().step(run, loss, epoch, draw)
        self.inner_loop(run, loss, epoch, draw, self.aggressive & run.active)
        run.step(loss, ("theta",), epoch, draw(), active=self.aggressive, record=False)
        run.step(loss, ("theta", "phi"), epoch, draw(), active=~self.aggressive)

    def inner_loop(self, run, loss, epoch, draw, active):
        """Encoder-only steps until the windowed loss stops falling (per restart)."""
        previous = np.full(active.size, np.inf)
        total = np.zeros(active.size)
        for i in range(1, self.max_inner + 1):
            if not active.any():
                break
            total += np.where(active, run.step(loss, ("phi",), epoch, draw(), active=active, record=False), 0.0)
            self.inner_steps += active
            if i % self.window == 0:
                current = total / self.window
                active = active & (current < previous) & run.active
                previous, total = current, np.zeros(active.size)

    def validated(self, run, epoch):
        """Restarts whose validation mutual information did not rise leave the aggressive phase."""
        if not self.aggressive.any():
            return
        mi = mutual_information_estimate(self.encoder, run.params["phi"], self.x_val, self.rng)
        leaving = self.aggressive & ~(mi > self.best_mi)
        self.left_at[leaving] = epoch + 1
        self.aggressive &= ~leaving
        self.best_mi = np.maximum(self.best_mi, np.where(np.isfinite(mi), mi, -np.inf))
