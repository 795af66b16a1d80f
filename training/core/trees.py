"""Pytrees: nested dicts / lists / tuples (NamedTuples too) of arrays, each with a leading restart axis."""
import numpy as np
from autograd.tracer import getval


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leafwise over trees of the same structure.

    Examples
    --------
    >>> from typing import NamedTuple
    >>> class Pair(NamedTuple):
    ...     a: np.ndarray
    ...     b: list
    >>> tree_map(lambda x, y: x + y, Pair(np.ones(2), [1.0]), Pair(np.ones(2), [2.0]))
    Pair(a=array([2., 2.]), b=[3.0])
    """
    if isinstance(tree, dict):
        return {k: tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if isinstance(tree, (list, tuple)):
        children = (tree_map(fn, t, *r) for t, *r in zip(tree, *rest))
        # A NamedTuple takes its fields as arguments, a list or tuple one iterable.
        return type(tree)(*children) if hasattr(tree, "_fields") else type(tree)(children)
    return fn(tree, *rest)


def tree_leaves(tree):
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in tree_leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in tree_leaves(t)]
    return [tree]


def _per_restart(mask, leaf):
    return np.reshape(mask, mask.shape + (1,) * (np.ndim(leaf) - mask.ndim))


def tree_where(mask, a, b):
    """Per restart: ``a`` where ``mask`` (shape (R,)) is True, else ``b``.

    Examples
    --------
    >>> tree_where(np.array([True, False]), {"w": np.zeros((2, 3))}, {"w": np.ones((2, 3))})["w"]
    array([[0., 0., 0.],
           [1., 1., 1.]])
    """
    return tree_map(lambda x, y: np.where(_per_restart(mask, x), x, y), a, b)


def tree_take(tree, index):
    """Restart ``index`` (int: drops the axis; array: keeps it)."""
    return tree_map(lambda x: np.asarray(x)[index], tree)


def tree_stack(trees):
    """Concatenate trees along the restart axis."""
    return tree_map(lambda *xs: np.concatenate(xs, axis=0), *trees)


def tree_to_lists(tree):
    """JSON-ready copy (nested lists of floats)."""
    return tree_map(lambda x: np.asarray(x).tolist(), tree)


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
