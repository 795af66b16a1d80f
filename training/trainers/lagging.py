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
"""
import numpy as np

from analysis import checks

from ..core.optim import adam
from ..evaluate.posterior import mutual_information_estimate
from .engine import BatchedRun, progress_bar
from .vae import VAE, store_settings

__all__ = ["LaggingVAE"]


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

    def fit(self, data):
        """Train on ``data.train`` with the lagging schedule; returns self."""
        params, streams = self._setup(data)
        loss, val_loss, draw = self._elbo_losses(data, streams, self._beta, self._final_beta())
        run = BatchedRun(params, adam(self.lr), self.patience, self.tol)
        R = self.restarts
        self.aggressive_until_ = np.full(R, -1)
        self.inner_steps_ = np.zeros(R, dtype=int)
        aggressive = np.full(R, bool(self.aggressive))
        best_mi = np.full(R, -np.inf)
        mi_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 13]))
        schedule = None if self.aggressive else self._segment_schedule()
        with progress_bar(self.epochs, self.progress, type(self).__name__) as bar:
            for epoch in range(self.epochs):
                if schedule is not None:
                    run.step(loss, ("phi",) if schedule[epoch] else ("theta", "phi"), epoch, draw())
                elif aggressive.any():
                    self._inner_loop(run, loss, epoch, draw, aggressive & run.active)
                    run.step(loss, ("theta",), epoch, draw(), active=aggressive, record=False)
                    run.step(loss, ("theta", "phi"), epoch, draw(), active=~aggressive)
                else:
                    run.step(loss, ("theta", "phi"), epoch, draw())
                if self._should_validate(epoch):
                    run.validate(val_loss)
                    if aggressive.any():
                        mi = mutual_information_estimate(data.encoder, run.params["phi"], data.val, mi_rng)
                        leaving = aggressive & ~(mi > best_mi)
                        self.aggressive_until_[leaving] = epoch + 1
                        aggressive &= ~leaving
                        best_mi = np.maximum(best_mi, np.where(np.isfinite(mi), mi, -np.inf))
                    bar.update(epoch + 1 - bar.n)
                    if run.finished:
                        break
        return self._finish(run)

    def _inner_loop(self, run, loss, epoch, draw, active):
        """Encoder-only steps until the windowed loss stops falling (per restart)."""
        previous = np.full(active.size, np.inf)
        total = np.zeros(active.size)
        for i in range(1, self.max_inner + 1):
            if not active.any():
                break
            total += np.where(active, run.step(loss, ("phi",), epoch, draw(), active=active, record=False), 0.0)
            self.inner_steps_ += active
            if i % self.window == 0:
                current = total / self.window
                active = active & (current < previous) & run.active
                previous, total = current, np.zeros(active.size)
