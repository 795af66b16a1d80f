"""Batched dense networks as the models call them: the fast path where it applies.

The network's layout and equations are those of :mod:`training.models.layers`
(``mlp_reference`` there writes them in plain autograd). :func:`mlp` computes
the same thing with the primitives of ``training.models._fused_mlp`` (one
primitive for the whole network where the activations allow); the tests
compare the two.
"""

from ._fused_mlp import FUSED_DERIVATIVES, affine, fused_mlp
from .layers import hidden_layers as reference_hidden_layers


def dense(layer, x):
    """``x @ W + b`` per restart: x (N, d) or (R, N, d) -> (R, N, d_out).

    One autograd primitive with a hand-written gradient: autograd pays per
    primitive call, and this is the innermost operation of every model.

    Examples
    --------
    >>> import numpy as np
    >>> from training.models.layers import affine_reference
    >>> layer = {"W": np.ones((2, 3, 1)), "b": np.zeros((2, 1))}
    >>> dense(layer, np.ones((4, 3))).shape
    (2, 4, 1)
    >>> bool(np.all(dense(layer, np.ones((4, 3))) == affine_reference(layer, np.ones((4, 3)))))
    True
    """
    return affine(x, layer["W"], layer["b"])


def mlp(params, x, activations):
    """Apply ``params`` with one activation name per hidden layer; linear output.

    Networks whose activations all have a derivative in terms of their output
    (relu, tanh, sigmoid, identity) run as one fused primitive
    (``training.models._fused_mlp.fused_mlp``); others layer by layer, and a network
    without hidden layers is one :func:`dense` map.
    """
    if fusable(activations):
        return fused_mlp(x, list(params["hidden"]) + [params["out"]], activations)
    return dense(params["out"], hidden_layers(params["hidden"], x, activations))


def hidden_layers(layers, x, activations):
    """The hidden layers one by one, each affine map a :func:`dense` primitive (the encoder's trunk)."""
    return reference_hidden_layers(layers, x, activations, dense)


def fusable(activations):
    """Whether a network with these hidden activations (at least one) runs as one fused primitive."""
    return bool(activations) and all(act in FUSED_DERIVATIVES for act in activations)


