"""Trainers: the batched epoch loop, the VAE family, lagging inference networks and LiBI.

Each trainer's constructor stores its settings; ``fit(data)`` does the work
and returns the trainer, whose learned values end in ``_`` (scikit-learn's
convention). Restarts run side by side as one array program.

* :mod:`.engine`: the batched loop (divergence, validation-best, the stopping rule), the
  per-restart state as one tree, and the epoch loop every trainer shares, driven by a schedule.
* :mod:`.vae`: ``VAE``, ``BetaVAE``, ``AnnealedBetaVAE``, ``InferenceOnly``, ``fit_batched``.
* :mod:`.lagging`: ``LaggingVAE`` (its schedules); :mod:`.libi`: ``LiBI``.
"""
from .engine import AllRestartsDiverged
from .lagging import LaggingVAE
from .libi import LiBI, MutualInformationConstraint
from .vae import VAE, AnnealedBetaVAE, BaseTrainer, BetaVAE, InferenceOnly, fit_batched

__all__ = ["BaseTrainer", "VAE", "BetaVAE", "AnnealedBetaVAE", "LaggingVAE", "InferenceOnly", "LiBI",
           "MutualInformationConstraint", "fit_batched", "AllRestartsDiverged"]
