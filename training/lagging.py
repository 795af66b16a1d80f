"""Lagging inference networks (He et al., ICLR 2019; SPEC 5), restarts batched.

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
import numpy as onp

from analysis import checks

from .engine import BatchedRun, progress_bar
from .evaluate import mutual_information_estimate
from .optim import adam
from .trainers import VAE

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
    **kw
        As :class:`training.trainers.VAE`.

    Model selection as the VAE (validation ELBO). Extra attributes:
    ``aggressive_until_`` (R,) the epoch at which each restart left the
    aggressive phase (-1 if it never did), ``inner_steps_`` total encoder-only
    steps per restart.
    """

    def __init__(self, segments=50, inference_fraction=0.5, aggressive=False, max_inner=100,
                 window=10, **kw):
        super().__init__(**kw)
        self.segments, self.inference_fraction = segments, inference_fraction
        self.aggressive, self.max_inner, self.window = aggressive, max_inner, window

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
        inference_only = onp.zeros(self.epochs, dtype=bool)
        for seg in onp.array_split(onp.arange(self.epochs), self.segments):
            inference_only[seg[:int(round(self.inference_fraction * seg.size))]] = True
        return inference_only

    def fit(self, data):
        """Train on ``data.train`` with the lagging schedule; returns self."""
        params, streams = self._setup(data)
        loss, val_loss, draw = self._elbo_losses(data, streams, self._beta, self._final_beta())
        run = BatchedRun(params, adam(self.lr), self.patience, self.tol)
        R = self.restarts
        self.aggressive_until_ = onp.full(R, -1)
        self.inner_steps_ = onp.zeros(R, dtype=int)
        aggressive = onp.full(R, bool(self.aggressive))
        best_mi = onp.full(R, -onp.inf)
        mi_rng = onp.random.default_rng(onp.random.SeedSequence([self.seed, 13]))
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
                        best_mi = onp.maximum(best_mi, onp.where(onp.isfinite(mi), mi, -onp.inf))
                    bar.update(epoch + 1 - bar.n)
                    if run.finished:
                        break
        return self._finish(run)

    def _inner_loop(self, run, loss, epoch, draw, active):
        """Encoder-only steps until the windowed loss stops falling (per restart)."""
        previous = onp.full(active.size, onp.inf)
        total = onp.zeros(active.size)
        for i in range(1, self.max_inner + 1):
            if not active.any():
                break
            total += onp.where(active, run.step(loss, ("phi",), epoch, draw(), active=active, record=False), 0.0)
            self.inner_steps_ += active
            if i % self.window == 0:
                current = total / self.window
                active = active & (current < previous) & run.active
                previous, total = current, onp.zeros(active.size)
