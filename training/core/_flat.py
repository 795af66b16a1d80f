"""Parameter trees as one (R, P) matrix per part: restarts on rows, parameters on columns.

Autograd pays for every container access (a dict of arrays boxes each
lookup and builds zero-filled siblings in the backward pass); a flat matrix
is one box, and the optimizer, the divergence check and the per-restart
freeze become single array operations.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import isbox

from .trees import n_restarts


@primitive
def slice_last(x, a, b, shape=None):
    """``x[..., a:b]``, reshaped to ``shape`` if given, as one primitive.

    Its gradient writes into a zero array by slice assignment; autograd's
    generic slice gradient scatters with the much slower ``np.add.at``.
    """
    out = x[..., a:b]
    return out if shape is None else np.reshape(out, shape)


def _slice_last_vjp(ans, x, a, b, shape=None):
    sliced = np.shape(x)[:-1] + (b - a,)

    def vjp(g):
        if isbox(g):   # second derivatives: stay differentiable
            pad = [(0, 0)] * (np.ndim(x) - 1) + [(a, np.shape(x)[-1] - b)]
            return anp.pad(anp.reshape(g, sliced), pad, mode="constant")
        out = np.zeros(np.shape(x))
        out[..., a:b] = np.reshape(g, sliced)
        return out
    return vjp


defvjp(slice_last, _slice_last_vjp)


def split_last(x, k):
    """``x[..., :k], x[..., k:]`` (see :func:`slice_last`)."""
    return slice_last(x, 0, k), slice_last(x, k, x.shape[-1])


def columns(flat, a, b, shape):
    """``flat[:, a:b]`` reshaped to ``shape``: one primitive (:func:`slice_last`)."""
    return slice_last(flat, a, b, shape)


def _paths(tree, prefix=()):
    if isinstance(tree, dict):
        return [p for k in tree for p in _paths(tree[k], prefix + (k,))]
    if isinstance(tree, (list, tuple)):
        return [p for i, t in enumerate(tree) for p in _paths(t, prefix + (i,))]
    return [(prefix, np.shape(tree)[1:])]


def _skeleton(tree):
    if isinstance(tree, dict):
        return {k: _skeleton(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_skeleton(t) for t in tree]
    return None


class TreeDef:
    """The layout of a parameter tree with a leading restart axis.

    Examples
    --------
    >>> tree = {"W": np.ones((3, 2, 2)), "b": [np.zeros((3, 2))]}
    >>> td = TreeDef(tree)
    >>> flat = td.flatten(tree)
    >>> flat.shape, td.unflatten(flat)["W"].shape
    ((3, 6), (3, 2, 2))
    """

    def __init__(self, tree):
        self.paths = _paths(tree)
        self.skeleton = _skeleton(tree)
        sizes = [int(np.prod(shape)) for _, shape in self.paths]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.size = int(self.offsets[-1])

    def flatten(self, tree):
        R = n_restarts(tree)
        leaves = []
        for path, _ in self.paths:
            leaf = tree
            for key in path:
                leaf = leaf[key]
            leaves.append(np.reshape(np.asarray(leaf, dtype=np.float64), (R, -1)))
        return np.concatenate(leaves, axis=1)

    def unflatten(self, flat):
        """Rebuild the tree from (R, P) ``flat``; works on autograd boxes (one primitive per leaf)."""
        R = flat.shape[0]
        out = _copy(self.skeleton)
        for (path, shape), a, b in zip(self.paths, self.offsets[:-1], self.offsets[1:]):
            leaf = columns(flat, int(a), int(b), (R,) + tuple(shape))
            node = out
            for key in path[:-1]:
                node = node[key]
            if path:
                node[path[-1]] = leaf
            else:
                out = leaf
        return out


def _copy(skeleton):
    if isinstance(skeleton, dict):
        return {k: _copy(v) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_copy(v) for v in skeleton]
    return None
