"""Exact theory of linear-Gaussian VAEs: closed forms derived with sympy, evaluated with numpy.

Beyond the paper's JTEx family, ``linear_vae_optimum`` gives the exact VAE
optimum of any linear VAE (free D x K W; fixed, isotropic or diagonal
noise) and ``analysis.testing`` asserts a user's trained model against it.

The ground truth of the paper's LinearJTEx example (docs/theory.md (T.19)) is exported as
``JTEX_A``, ``JTEX_B`` (the diagonal of B) and ``JTEX_SIGMA2``.
"""

from . import joint_map, testing
from .gaussian import LinearGaussian
from .landscape import JTEX_A, JTEX_B, JTEX_SIGMA2, jtex_b_landscape, jtex_vae_optimum
from .linear_vae import (VAEOptimum, fixed_noise_mle, linear_vae_objective, linear_vae_optimum,
                         mean_field_rotation, ppca_mle)


def __getattr__(name):
    # sympy is slow to import: load the symbolic module on first use.
    if name == "symbolic":
        import importlib
        return importlib.import_module(".symbolic", __name__)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


__all__ = ["LinearGaussian", "VAEOptimum", "jtex_b_landscape", "jtex_vae_optimum", "symbolic", "joint_map",
           "linear_vae_optimum", "linear_vae_objective", "mean_field_rotation", "ppca_mle", "fixed_noise_mle",
           "testing", "JTEX_A", "JTEX_B", "JTEX_SIGMA2"]
