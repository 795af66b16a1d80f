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

    def transform_codes(self, params, shift, S):
        """The mean head changed so every code becomes ``(z - shift) @ S``: shift (R, K), S (R, K, K).

        Exact, since the codes are an affine map of the last hidden layer.
        """
        head = params["mean"]
        return {**params, "mean": {"W": np.einsum("rdk,rkj->rdj", head["W"], S),
                                   "b": np.einsum("rk,rkj->rj", head["b"] - shift, S)}}

    def whiten(self, params, X):
        """The mean head changed so the codes of X have mean 0 and covariance I, per restart.

        The symmetric inverse square root of the codes' covariance: of all
        whitening maps the one that moves the codes least. Unlike
        :meth:`standardize` it also decorrelates them, so the decoder sees
        every code direction from the first step.

        Examples
        --------
        >>> enc = Encoder(2, 2)
        >>> phi = enc.init([np.random.default_rng(0), np.random.default_rng(1)])
        >>> X = np.random.default_rng(2).standard_normal((200, 2)) @ [[1.0, 0.9], [0.0, 0.3]]
        >>> Z = np.asarray(enc.mean(enc.whiten(phi, X), X))
        >>> bool(np.allclose(np.einsum("rnk,rnj->rkj", Z, Z) / 200, np.eye(2)))
        True
        """
        Z = np.asarray(self.mean(params, X))
        m = Z.mean(axis=1)
        Zc = Z - m[:, None]
        w, V = np.linalg.eigh(np.einsum("rnk,rnj->rkj", Zc, Zc) / Z.shape[1])
        tiny = 1e-12 * np.maximum(w[:, -1:], 1e-300)      # a collapsed code direction stays finite
        S = np.einsum("rkj,rj,rlj->rkl", V, 1.0 / np.sqrt(np.maximum(w, tiny)), V)
        return self.transform_codes(params, m, S)

    @staticmethod
    def deterministic_part(params):
        """The mean network's parameters (LiBI Step 3 re-initializes varphi from these)."""
        return {"hidden": params["hidden"], "mean": params["mean"]}
