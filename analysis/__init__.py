"""Exact theory of linear-Gaussian VAEs: closed forms derived with sympy, evaluated with numpy.

Beyond the paper's JTEx family, ``linear_vae_optimum`` gives the exact VAE
optimum of any linear VAE (free D x K W; fixed, isotropic or diagonal
noise) and ``analysis.testing`` asserts a user's trained model against it.

The ground truth of the paper's LinearJTEx example (docs/theory.md (T.19)) is exported as
``JTEX_A``, ``JTEX_B`` (the diagonal of B) and ``JTEX_SIGMA2``.
"""
import numpy as np

from .gaussian import LinearGaussian
from .landscape import VAEOptimum, jtex_b_landscape, jtex_vae_optimum
from .linear_vae import (fixed_noise_mle, linear_vae_objective, linear_vae_optimum, mean_field_rotation,
                         ppca_mle)
from . import joint_map, testing


def __getattr__(name):
    # sympy is slow to import: load the symbolic module on first use.
    if name == "symbolic":
        import importlib
        return importlib.import_module(".symbolic", __name__)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")

JTEX_A = np.array([[0.75, 0.25], [1.5, -1.0]])
JTEX_B = np.array([0.006, 0.006])
JTEX_SIGMA2 = 0.01

__all__ = ["LinearGaussian", "VAEOptimum", "jtex_b_landscape", "jtex_vae_optimum", "symbolic", "joint_map",
           "linear_vae_optimum", "linear_vae_objective", "mean_field_rotation", "ppca_mle", "fixed_noise_mle",
           "testing", "JTEX_A", "JTEX_B", "JTEX_SIGMA2"]
