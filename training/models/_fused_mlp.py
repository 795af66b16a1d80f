"""The dense network's fast path: the affine map and a whole MLP as autograd primitives.

Private. The readable versions of the same equations are
:func:`training.models.layers.affine_reference` and :func:`training.models.layers.mlp_reference`;
the tests compare the two (values and gradients). Every parameter leaf
carries a leading restart axis, so one call serves all R restarts; the fused
MLP runs feature-major in cache-sized blocks of restarts.
"""
import numpy as np
from autograd import make_vjp
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import isbox

from ..core import _forward_cache
from .layers import check_activations, mlp_reference


@primitive
def affine(x, W, b):
    """``x @ W + b`` per restart, x (N, d) or (R, N, d) -> (R, N, d_out), with a hand-written gradient."""
    if x.ndim == 2:   # one GEMM for all restarts; far faster than a broadcast matmul
        # C-ordered output: the transposed GEMM result would make every later pass strided
        out = np.empty((W.shape[0], x.shape[0], W.shape[2]))
        return np.add(np.transpose(np.tensordot(x, W, axes=([1], [1])), (1, 0, 2)), b[:, None, :], out=out)
    return x @ W + b[:, None, :]


def _affine_grad_x(ans, x, W, b):
    def vjp(g):
        gx = g @ np.swapaxes(W, -1, -2)
        return gx.sum(axis=0) if x.ndim == 2 else gx
    return vjp


def _affine_grad_W(ans, x, W, b):
    return lambda g: (np.swapaxes(x, -1, -2) @ g)


defvjp(affine, _affine_grad_x, _affine_grad_W, lambda ans, x, W, b: lambda g: g.sum(axis=1))


# The derivative of each activation as a function of its output, applied to
# the incoming gradient in place.
def _relu_backward(h, g):
    g *= h > 0


def _tanh_backward(h, g):
    g *= 1.0 - h * h


def _sigmoid_backward(h, g):
    g *= h * (1.0 - h)


def _relu_inplace(a):
    return np.maximum(a, 0.0, out=a)


def _tanh_inplace(a):
    return np.tanh(a, out=a)


def _sigmoid_inplace(a):
    # 0.5 (tanh(a/2) + 1): no overflow for large |a|
    a *= 0.5
    np.tanh(a, out=a)
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
        h = np.swapaxes(x[rs], 1, 2)
    hs = [h]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        Wt = np.swapaxes(W[rs], 1, 2)                                  # (r, d_out, d_in)
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
    out = np.empty((R, N, Ws[-1].shape[-1]))
    # Networks of cheap activations (ReLU) recompute each block in the
    # backward pass, where it is still in cache: faster than writing all
    # activations out and reading them back. Transcendental ones (tanh) keep them.
    keep = keep and not all(FUSED_DERIVATIVES[a][2] for a in acts)
    saved = []
    for rs in _blocks(R, N, [W.shape[-1] for W in Ws]):
        hs = _forward_block(x, Ws, bs, acts, rs)
        out[rs] = np.swapaxes(hs[-1], 1, 2)
        if keep:
            saved.append(hs[:-1])           # the backward pass never reads the output
    if keep:
        _forward_cache.put(out, saved)
    return out


def _fused_vjp(argnums, ans, args, kwargs):
    x, wb, acts = args[0], args[1:], kwargs["acts"]
    Ws, bs = wb[0::2], wb[1::2]
    saved = _forward_cache.take(ans)
    blocks = _blocks(Ws[0].shape[0], x.shape[-2], [W.shape[-1] for W in Ws])
    L = len(Ws)

    def vjp(g):
        if isbox(g) or any(isbox(a) for a in args):
            return _layerwise_vjp(argnums, args, acts, g)
        grads = {i: np.zeros_like(args[i]) for i in argnums if i > 0}
        gx = np.zeros(x.shape) if 0 in argnums else None
        for j, rs in enumerate(blocks):
            hs = saved[j] if saved is not None else _forward_block(x, Ws, bs, acts, rs)
            gpre = np.ascontiguousarray(np.swapaxes(g[rs], 1, 2))    # (r, d_out, N)
            for i in range(L - 1, -1, -1):
                h_in = hs[i]
                if 1 + 2 * i in argnums:
                    if h_in.ndim == 2:
                        r, d_out, n = gpre.shape
                        gW = (gpre.reshape(r * d_out, n) @ h_in.T).reshape(r, d_out, -1)
                        grads[1 + 2 * i][rs] = np.swapaxes(gW, 1, 2)
                    else:
                        grads[1 + 2 * i][rs] = h_in @ np.swapaxes(gpre, 1, 2)
                if 2 + 2 * i in argnums:
                    grads[2 + 2 * i][rs] = gpre.sum(axis=2)
                if i == 0 and gx is None:
                    break
                gh = Ws[i][rs] @ gpre                                      # (r, d_in, N)
                if i == 0:
                    if x.ndim == 2:
                        gx += gh.sum(axis=0).T
                    else:
                        gx[rs] = np.swapaxes(gh, 1, 2)
                    break
                backward = FUSED_DERIVATIVES[acts[i - 1]][1]
                if backward is not None:
                    backward(hs[i], gh)
                gpre = gh
        return tuple(gx if i == 0 else grads[i] for i in argnums)
    return vjp


def _layerwise_vjp(argnums, args, acts, g):
    """The gradient by the readable network (:func:`training.models.layers.mlp_reference`), differentiable again.

    Used when an outer trace differentiates the backward pass (second
    derivatives): the fused gradient is plain numpy and would drop it.
    """
    def f(diff):
        full = list(args)
        for i, d in zip(argnums, diff):
            full[i] = d
        layers = [{"W": W, "b": b} for W, b in zip(full[1::2], full[2::2])]
        return mlp_reference({"hidden": layers[:-1], "out": layers[-1]}, full[0], acts)
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
    >>> from training.trainers.engine import restart_streams
    >>> from training.models.layers import init_mlp, mlp_reference
    >>> params = init_mlp([s[0] for s in restart_streams(0, 3)], [2, 8, 2])
    >>> x = np.ones((5, 2))
    >>> out = fused_mlp(x, params["hidden"] + [params["out"]], ["tanh"])
    >>> out.shape
    (3, 5, 2)
    >>> bool(np.allclose(out, mlp_reference(params, x, ["tanh"])))
    True
    """
    check_activations(len(layers) - 1, activations)
    wb = [a for layer in layers for a in (layer["W"], layer["b"])]
    R = np.shape(wb[0])[0]
    if np.ndim(x) not in (2, 3) or (np.ndim(x) == 3 and np.shape(x)[0] != R):
        raise ValueError(f"x must have shape (N, d) or (R, N, d) with R = {R} restarts, got {np.shape(x)}")
    if np.shape(x)[-1] != np.shape(wb[0])[1]:
        raise ValueError(f"x has {np.shape(x)[-1]} features; the first layer takes {np.shape(wb[0])[1]}")
    if not any(isbox(a) for a in [x] + wb):     # not differentiated: keep no activations
        return _fused_forward(x, *wb, acts=tuple(activations), keep=False)
    return _fused(x, *wb, acts=tuple(activations))
