"""Batched dense networks: every parameter leaf carries a leading restart axis.

A network is a dict ``{"hidden": [layer, ...], "out": layer}`` with
``layer = {"W": (R, d_in, d_out), "b": (R, d_out)}``; inputs are ``(N, d)``
(shared by all restarts) or ``(R, N, d)``. One primitive serves all R
restarts, so R restarts cost one array program, not R Python calls; a whole
MLP is one primitive (:func:`fused_mlp`) run feature-major in cache-sized
blocks of restarts.
"""
import autograd.numpy as np
import numpy as onp
from autograd import make_vjp
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval, isbox

from . import forward_cache


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
        # C-ordered output: the transposed GEMM result would make every later pass strided
        out = onp.empty((W.shape[0], x.shape[0], W.shape[2]))
        return onp.add(onp.transpose(onp.tensordot(x, W, axes=([1], [1])), (1, 0, 2)), b[:, None, :], out=out)
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
    """Apply ``params`` with one activation name per hidden layer; linear output.

    Networks whose activations all have a derivative in terms of their output
    (relu, tanh, sigmoid, identity) run as one fused primitive
    (:func:`fused_mlp`); others layer by layer.
    """
    layers = list(params["hidden"]) + [params["out"]]
    if all(act in FUSED_DERIVATIVES for act in activations):
        return fused_mlp(x, layers, activations)
    return _layerwise(x, *[a for layer in layers for a in (layer["W"], layer["b"])], acts=activations)


# ---- the fused MLP ---------------------------------------------------------
# The derivative of each activation as a function of its output, applied to
# the incoming gradient in place.
def _relu_backward(h, g):
    g *= h > 0


def _tanh_backward(h, g):
    g *= 1.0 - h * h


def _sigmoid_backward(h, g):
    g *= h * (1.0 - h)


def _relu_inplace(a):
    return onp.maximum(a, 0.0, out=a)


def _tanh_inplace(a):
    return onp.tanh(a, out=a)


def _sigmoid_inplace(a):
    # 0.5 (tanh(a/2) + 1): no overflow for large |a|
    a *= 0.5
    onp.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a


# name: (forward in place, backward in place from the output, cheap to recompute)
FUSED_DERIVATIVES = {"relu": (_relu_inplace, _relu_backward, True),
                     "tanh": (_tanh_inplace, _tanh_backward, False),
                     "sigmoid": (_sigmoid_inplace, _sigmoid_backward, False),
                     "identity": (lambda a: a, None, True)}

# Bytes of activations per block of restarts: small enough to stay in cache
# between the passes of one layer, which is much faster than one pass over
# all restarts (figures: benchmarks/README.md).
_BLOCK_BYTES = 2 ** 21


def _blocks(R, N, widths):
    per_restart = 8 * max(1, N) * max(1, sum(widths))
    size = int(max(1, min(R, _BLOCK_BYTES // per_restart)))
    return [slice(r, min(R, r + size)) for r in range(0, R, size)]


def _forward_block(x, Ws, bs, acts, rs):
    """Activations of restarts ``rs``, feature-major: a list of (r, d, N) arrays (input first)."""
    if x.ndim == 2:                         # shared input: (d, N), one GEMM for all restarts
        h = x.T
    else:
        h = onp.swapaxes(x[rs], 1, 2)
    hs = [h]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        Wt = onp.swapaxes(W[rs], 1, 2)                                  # (r, d_out, d_in)
        if h.ndim == 2:
            r, d_out, d_in = Wt.shape
            a = (Wt.reshape(r * d_out, d_in) @ h).reshape(r, d_out, -1)
        else:
            a = Wt @ h
        a += b[rs][:, :, None]
        if i < len(acts):
            a = FUSED_DERIVATIVES[acts[i]][0](a)
        hs.append(a)
        h = a
    return hs


def _fused_forward(x, *wb, acts, keep=True):
    Ws, bs = wb[0::2], wb[1::2]
    R, N = Ws[0].shape[0], x.shape[-2]
    out = onp.empty((R, N, Ws[-1].shape[-1]))
    # Networks of cheap activations (ReLU) recompute each block in the
    # backward pass, where it is still in cache: faster than writing all
    # activations out and reading them back. Transcendental ones (tanh) keep them.
    keep = keep and not all(FUSED_DERIVATIVES[a][2] for a in acts)
    saved = []
    for rs in _blocks(R, N, [W.shape[-1] for W in Ws]):
        hs = _forward_block(x, Ws, bs, acts, rs)
        out[rs] = onp.swapaxes(hs[-1], 1, 2)
        if keep:
            saved.append(hs[:-1])           # the backward pass never reads the output
    if keep:
        forward_cache.put(out, saved)
    return out


def _fused_vjp(argnums, ans, args, kwargs):
    x, wb, acts = args[0], args[1:], kwargs["acts"]
    Ws, bs = wb[0::2], wb[1::2]
    saved = forward_cache.take(ans)
    blocks = _blocks(Ws[0].shape[0], x.shape[-2], [W.shape[-1] for W in Ws])
    L = len(Ws)

    def vjp(g):
        if isbox(g) or any(isbox(a) for a in args):
            return _layerwise_vjp(argnums, args, acts, g)
        grads = {i: onp.zeros_like(args[i]) for i in argnums if i > 0}
        gx = onp.zeros(x.shape) if 0 in argnums else None
        for j, rs in enumerate(blocks):
            hs = saved[j] if saved is not None else _forward_block(x, Ws, bs, acts, rs)
            gpre = onp.ascontiguousarray(onp.swapaxes(g[rs], 1, 2))    # (r, d_out, N)
            for i in range(L - 1, -1, -1):
                h_in = hs[i]
                if 1 + 2 * i in argnums:
                    if h_in.ndim == 2:
                        r, d_out, n = gpre.shape
                        gW = (gpre.reshape(r * d_out, n) @ h_in.T).reshape(r, d_out, -1)
                        grads[1 + 2 * i][rs] = onp.swapaxes(gW, 1, 2)
                    else:
                        grads[1 + 2 * i][rs] = h_in @ onp.swapaxes(gpre, 1, 2)
                if 2 + 2 * i in argnums:
                    grads[2 + 2 * i][rs] = gpre.sum(axis=2)
                if i == 0 and gx is None:
                    break
                gh = Ws[i][rs] @ gpre                                      # (r, d_in, N)
                if i == 0:
                    if x.ndim == 2:
                        gx += gh.sum(axis=0).T
                    else:
                        gx[rs] = onp.swapaxes(gh, 1, 2)
                    break
                backward = FUSED_DERIVATIVES[acts[i - 1]][1]
                if backward is not None:
                    backward(hs[i], gh)
                gpre = gh
        return tuple(gx if i == 0 else grads[i] for i in argnums)
    return vjp


def _layerwise(x, *wb, acts):
    h = x
    for i in range(len(wb) // 2):
        h = _affine(h, wb[2 * i], wb[2 * i + 1])
        if i < len(acts):
            h = ACTIVATIONS[acts[i]](h)
    return h


def _layerwise_vjp(argnums, args, acts, g):
    """The gradient by the layer-by-layer network, differentiable again.

    Used when an outer trace differentiates the backward pass (second
    derivatives): the fused gradient is plain numpy and would drop it.
    """
    def f(diff):
        full = list(args)
        for i, d in zip(argnums, diff):
            full[i] = d
        return _layerwise(*full, acts=acts)
    return make_vjp(f)(tuple(args[i] for i in argnums))[0](g)


_fused = primitive(_fused_forward)
defvjp_argnums(_fused, _fused_vjp)


def fused_mlp(x, layers, activations):
    """An MLP as one autograd primitive: ``layers`` [{"W", "b"}, ...], one activation per hidden layer.

    x (N, d) shared by all restarts or (R, N, d) -> (R, N, d_out). Forward
    and backward run feature-major, (r, width, N) per block of restarts, with
    a hand-written gradient: per epoch it is a few GEMMs per layer instead of
    a dozen autograd nodes, and the blocks stay in cache. Tanh and sigmoid
    activations are kept from the forward pass; ReLU blocks are recomputed
    in the backward pass (cheaper than a round trip through memory).

    Examples
    --------
    >>> import numpy as onp
    >>> from training.engine import restart_streams
    >>> params = init_mlp([s[0] for s in restart_streams(0, 3)], [2, 8, 2])
    >>> x = onp.ones((5, 2))
    >>> out = fused_mlp(x, params["hidden"] + [params["out"]], ["tanh"])
    >>> out.shape
    (3, 5, 2)
    >>> bool(onp.allclose(out, dense(params["out"], onp.tanh(dense(params["hidden"][0], x)))))
    True
    """
    if len(activations) != len(layers) - 1:
        raise ValueError(f"activations must name one activation per hidden layer "
                         f"({len(layers) - 1}), got {len(activations)}")
    wb = [a for layer in layers for a in (layer["W"], layer["b"])]
    R = onp.shape(wb[0])[0]
    if onp.ndim(x) not in (2, 3) or (onp.ndim(x) == 3 and onp.shape(x)[0] != R):
        raise ValueError(f"x must have shape (N, d) or (R, N, d) with R = {R} restarts, got {onp.shape(x)}")
    if onp.shape(x)[-1] != onp.shape(wb[0])[1]:
        raise ValueError(f"x has {onp.shape(x)[-1]} features; the first layer takes {onp.shape(wb[0])[1]}")
    if not any(isbox(a) for a in [x] + wb):     # not differentiated: keep no activations
        return _fused_forward(x, *wb, acts=tuple(activations), keep=False)
    return _fused(x, *wb, acts=tuple(activations))


@primitive
def slice_last(x, a, b, shape=None):
    """``x[..., a:b]``, reshaped to ``shape`` if given, as one primitive.

    Its gradient writes into a zero array by slice assignment; autograd's
    generic slice gradient scatters with the much slower ``np.add.at``.
    """
    out = x[..., a:b]
    return out if shape is None else onp.reshape(out, shape)


def _slice_last_vjp(ans, x, a, b, shape=None):
    sliced = onp.shape(x)[:-1] + (b - a,)

    def vjp(g):
        if isbox(g):   # second derivatives: stay differentiable
            pad = [(0, 0)] * (onp.ndim(x) - 1) + [(a, onp.shape(x)[-1] - b)]
            return np.pad(np.reshape(g, sliced), pad, mode="constant")
        out = onp.zeros(onp.shape(x))
        out[..., a:b] = onp.reshape(g, sliced)
        return out
    return vjp


defvjp(slice_last, _slice_last_vjp)


def split_last(x, k):
    """``x[..., :k], x[..., k:]`` (see :func:`slice_last`)."""
    return slice_last(x, 0, k), slice_last(x, k, x.shape[-1])


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
