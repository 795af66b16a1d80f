"""Batched dense networks: every parameter leaf carries a leading restart axis.

A network is a dict ``{"hidden": [layer, ...], "out": layer}`` with
``layer = {"W": (R, d_in, d_out), "b": (R, d_out)}``; inputs are ``(N, d)``
(shared by all restarts) or ``(R, N, d)``. One einsum serves all R restarts,
so R restarts cost one array program, not R Python calls.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval


@primitive
def relu(a):
    return onp.maximum(a, 0.0)


# autograd's generic rule for maximum handles ties with extra passes; here
# the derivative at 0 is taken as 0.
defvjp(relu, lambda ans, a: lambda g: g * (ans > 0))


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


@primitive
def _affine(x, W, b):
    if x.ndim == 2:   # one GEMM for all restarts; far faster than a broadcast matmul
        return onp.transpose(onp.tensordot(x, W, axes=([1], [1])), (1, 0, 2)) + b[:, None, :]
    return x @ W + b[:, None, :]


def _affine_grad_x(ans, x, W, b):
    def vjp(g):
        gx = g @ onp.swapaxes(W, -1, -2)
        return gx.sum(axis=0) if x.ndim == 2 else gx
    return vjp


def _affine_grad_W(ans, x, W, b):
    return lambda g: (onp.swapaxes(x, -1, -2) @ g)


defvjp(_affine, _affine_grad_x, _affine_grad_W, lambda ans, x, W, b: lambda g: g.sum(axis=1))


def dense(layer, x):
    """``x @ W + b`` per restart: x (N, d) or (R, N, d) -> (R, N, d_out).

    One autograd primitive with a hand-written gradient: autograd pays per
    primitive call, and this is the innermost operation of every model.
    """
    return _affine(x, layer["W"], layer["b"])


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
