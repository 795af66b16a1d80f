"""Batched dense networks, the readable reference: the equations every fast path must reproduce.

A network is a dict ``{"hidden": [layer, ...], "out": layer}`` with
``layer = {"W": (R, d_in, d_out), "b": (R, d_out)}``; inputs are ``(N, d)``
(shared by all restarts) or ``(R, N, d)``. Each layer is
``h_l = act_l(h_{l-1} W_l + b_l)`` and the output layer is linear.

This module is a leaf: the fused fast path (``training.models._fused_mlp``)
and the dispatcher the models call (``training.models.nets``) both import it.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive


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

def hidden_layers(layers, x, activations, affine_map=affine_reference):
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


def check_activations(n_hidden, activations):
    """One activation name per hidden layer, or a ValueError."""
    if len(activations) != n_hidden:
        raise ValueError(f"activations must name one activation per hidden layer "
                         f"({n_hidden}), got {len(activations)}")
