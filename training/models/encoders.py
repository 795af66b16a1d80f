"""Inference networks q_phi(z | x): mean-field Gaussian encoders (docs/theory.md (T.23)).

Parameters are plain pytrees whose leaves carry a leading restart axis R.
"""
import autograd.numpy as anp
import numpy as np

from analysis import checks

from ..core._flat import split_last
from . import nets
from .layers import init_dense, init_mlp

ENCODER_KINDS = {
    "linear": ([], []),
    "mlp": ([50], ["relu"]),                                  # Mobius
    "cubic": ([4, 20], ["sigmoid_cube_root", "relu"]),        # CubicJTEx
}

class Encoder:
    """A mean-field Gaussian inference network q_phi(z | x) (docs/theory.md (T.23)).

    Parameters ``{"hidden": [...], "mean": layer, "logvar": layer}``: a
    shared trunk and two linear heads. LiBI's deterministic encoder h(x; varphi)
    is the same network without the ``logvar`` head (docs/theory.md (T.23)), so
    :meth:`mean` serves both.

    Parameters
    ----------
    data_dim, latent_dim : int
    kind : {"linear", "mlp", "cubic"}
        linear (LinearJTEx, Gaussian, univariate); one hidden layer of 50
        ReLU units (Mobius); 4 units half sigmoid, half cube-root, then 20
        ReLU (CubicJTEx).
    """

    def __init__(self, data_dim, latent_dim, kind="linear"):
        if kind not in ENCODER_KINDS:
            raise ValueError(f"kind must be one of {sorted(ENCODER_KINDS)}, got {kind!r}")
        self.data_dim = checks.integer("data_dim", data_dim, 1)
        self.latent_dim = checks.integer("latent_dim", latent_dim, 1)
        self.kind = kind
        self.hidden_sizes, self.activations = ENCODER_KINDS[kind]
        # Networks with hidden layers run as one fused primitive where their
        # activations allow (nets.mlp); a linear one is a single affine map.
        self._fused = nets.fusable(self.activations)

    def init(self, rngs):
        sizes = [self.data_dim] + self.hidden_sizes
        trunk = init_mlp(rngs, sizes + [self.latent_dim])
        # The log-variance head starts at zero weights (an x-independent
        # variance; trainers set its bias): random weights add an
        # x-dependence that the ELBO must then slowly unlearn.
        return {"hidden": trunk["hidden"], "mean": trunk["out"],
                "logvar": init_dense(rngs, sizes[-1], self.latent_dim, scale=0.0)}

    def __call__(self, params, x):
        """Mean and log-variance of q(z | x), each (R, N, K)."""
        if self._fused:
            # Both heads as one output layer of one fused network.
            heads = {k: anp.concatenate([params["mean"][k], params["logvar"][k]], axis=-1) for k in ("W", "b")}
            out = nets.mlp({"hidden": params["hidden"], "out": heads}, x, self.activations)
            return split_last(out, self.latent_dim)
        h = nets.hidden_layers(params["hidden"], x, self.activations)
        return nets.dense(params["mean"], h), nets.dense(params["logvar"], h)

    def mean(self, params, x):
        """The mean network alone: E_q[z | x] (also LiBI's encoder h(x; varphi))."""
        return nets.mlp({"hidden": params["hidden"], "out": params["mean"]}, x, self.activations)

    def standardize(self, params, X):
        """Rescale the mean head so the codes of X have mean 0 and unit variances.

        A data-dependent initialization (as in Mishkin & Matas, 2016) that
        starts LiBI's encoder where its moment penalties are smallest.
        """
        Z = np.asarray(self.mean(params, X))
        m, s = Z.mean(axis=1), Z.std(axis=1) + 1e-12
        head = params["mean"]
        return {**params, "mean": {"W": head["W"] / s[:, None, :], "b": (head["b"] - m) / s}}

    @staticmethod
    def deterministic_part(params):
        """The mean network's parameters (LiBI Step 3 re-initializes varphi from these)."""
        return {"hidden": params["hidden"], "mean": params["mean"]}
