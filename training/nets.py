"""Batched dense networks: every parameter leaf carries a leading restart axis.

A network is a dict ``{"hidden": [layer, ...], "out": layer}`` with
``layer = {"W": (R, d_in, d_out), "b": (R, d_out)}``; inputs are ``(N, d)``
(shared by all restarts) or ``(R, N, d)``. Each layer is
``h_l = act_l(h_{l-1} W_l + b_l)`` and the output layer is linear.

:func:`mlp_reference` writes that formula in plain autograd. :func:`mlp`,
which the models call, computes the same thing with the fast primitives of
``training._fused_mlp`` (one primitive for the whole network where the
activations allow); the tests compare the two.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from ._fused_mlp import FUSED_DERIVATIVES, affine, check_activations, fused_mlp


@primitive
def relu(a):
    return np.maximum(a, 0.0)


# autograd's generic rule for maximum handles ties with extra passes; here
# the derivative at 0 is taken as 0.
defvjp(relu, lambda ans, a: lambda g: g * (ans > 0))


def cube_root(a):
    # sign(a)|a|^(1/3): np.cbrt has no autograd gradient rule everywhere.
    return anp.sign(a) * anp.abs(a) ** (1.0 / 3.0)


def sigmoid(a):
    return 0.5 * (anp.tanh(0.5 * a) + 1.0)


def sigmoid_cube_root(a):
    """Half the units sigmoid, half cube-root (the CubicJTEx encoder, docs/theory.md (T.23))."""
    half = a.shape[-1] // 2
    return anp.concatenate([sigmoid(a[..., :half]), cube_root(a[..., half:])], axis=-1)


ACTIVATIONS = {"relu": relu, "tanh": anp.tanh, "sigmoid": sigmoid,
               "sigmoid_cube_root": sigmoid_cube_root, "identity": lambda a: a}


def affine_reference(layer, x):
    """``x @ W + b`` per restart, in plain autograd: x (N, d) or (R, N, d) -> (R, N, d_out)."""
    return x @ layer["W"] + layer["b"][:, None, :]


def dense(layer, x):
    """``x @ W + b`` per restart: x (N, d) or (R, N, d) -> (R, N, d_out).

    One autograd primitive with a hand-written gradient: autograd pays per
    primitive call, and this is the innermost operation of every model.

    Examples
    --------
    >>> layer = {"W": np.ones((2, 3, 1)), "b": np.zeros((2, 1))}
    >>> dense(layer, np.ones((4, 3))).shape
    (2, 4, 1)
    >>> bool(np.all(dense(layer, np.ones((4, 3))) == affine_reference(layer, np.ones((4, 3)))))
    True
    """
    return affine(x, layer["W"], layer["b"])


def hidden_layers(layers, x, activations, affine_map=dense):
    """The hidden layers one by one: ``h_l = act_l(affine_map(layer_l, h_{l-1}))``, ``h_0 = x``."""
    check_activations(len(layers), activations)
    h = x
    for layer, act in zip(layers, activations):
        h = ACTIVATIONS[act](affine_map(layer, h))
    return h


def mlp_reference(params, x, activations):
    """The network in plain autograd: hidden layers ``act(h W + b)``, then a linear output.

    The readable version of :func:`mlp` (same values, same gradients). Only
    the ReLU is a primitive of its own (:func:`relu`: derivative 0 at 0).
    """
    h = hidden_layers(params["hidden"], x, activations, affine_reference)
    return affine_reference(params["out"], h)


def mlp(params, x, activations):
    """Apply ``params`` with one activation name per hidden layer; linear output.

    Networks whose activations all have a derivative in terms of their output
    (relu, tanh, sigmoid, identity) run as one fused primitive
    (``training._fused_mlp.fused_mlp``); others layer by layer, and a network
    without hidden layers is one :func:`dense` map.
    """
    if fusable(activations):
        return fused_mlp(x, list(params["hidden"]) + [params["out"]], activations)
    return dense(params["out"], hidden_layers(params["hidden"], x, activations))


def fusable(activations):
    """Whether a network with these hidden activations (at least one) runs as one fused primitive."""
    return bool(activations) and all(act in FUSED_DERIVATIVES for act in activations)


def init_dense(rngs, d_in, d_out, scale=None):
    """Glorot-normal weights, zero biases, shape (R, d_in, d_out).

    ``rngs`` holds one ``numpy.random.Generator`` per restart, so restart r
    starts the same whatever the number of restarts beside it.
    """
    scale = np.sqrt(2.0 / (d_in + d_out)) if scale is None else scale
    W = np.stack([scale * g.standard_normal((d_in, d_out)) for g in rngs])
    return {"W": W, "b": np.zeros((len(rngs), d_out))}


def init_mlp(rngs, sizes):
    """An MLP with layer widths ``sizes = [d_in, h1, ..., d_out]``."""
    layers = [init_dense(rngs, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return {"hidden": layers[:-1], "out": layers[-1]}


def n_restarts(params):
    """The length of the leading restart axis of a parameter tree."""
    params = getval(params)
    if isinstance(params, dict):
        params = list(params.values())
    if isinstance(params, (list, tuple)):
        for child in params:
            try:
                return n_restarts(child)
            except ValueError:
                continue
        raise ValueError("the parameter tree has no arrays")
    return params.shape[0]
