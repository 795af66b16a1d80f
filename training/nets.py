"""Batched dense networks: every parameter leaf carries a leading restart axis.

A network is a dict ``{"hidden": [layer, ...], "out": layer}`` with
``layer = {"W": (R, d_in, d_out), "b": (R, d_out)}``; inputs are ``(N, d)``
(shared by all restarts) or ``(R, N, d)``. One einsum serves all R restarts,
so R restarts cost one array program, not R Python calls.
"""
import autograd.numpy as np


def relu(a):
    return np.maximum(a, 0.0)


def cube_root(a):
    # sign(a)|a|^(1/3): np.cbrt has no autograd gradient rule everywhere.
    return np.sign(a) * np.abs(a) ** (1.0 / 3.0)


def sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def sigmoid_cube_root(a):
    """Half the units sigmoid, half cube-root (the CubicJTEx encoder, SPEC 4)."""
    half = a.shape[-1] // 2
    return np.concatenate([sigmoid(a[..., :half]), cube_root(a[..., half:])], axis=-1)


ACTIVATIONS = {"relu": relu, "tanh": np.tanh, "sigmoid": sigmoid,
               "sigmoid_cube_root": sigmoid_cube_root, "identity": lambda a: a}


def dense(layer, x):
    """``x @ W + b`` per restart: x (N, d) or (R, N, d) -> (R, N, d_out)."""
    W, b = layer["W"], layer["b"]
    if x.ndim == 2:
        return np.einsum("nd,rde->rne", x, W) + b[:, None, :]
    return np.einsum("rnd,rde->rne", x, W) + b[:, None, :]


def mlp(params, x, activations):
    """Apply ``params`` with one activation name per hidden layer; linear output."""
    h = x
    for layer, act in zip(params["hidden"], activations):
        h = ACTIVATIONS[act](dense(layer, h))
    return dense(params["out"], h)


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
