"""Adam as a pair of pure functions (optax style): ``init(params)``, ``update(grads, state)``.

All state is explicit and elementwise, so a caller can step any part of a
model alone (encoder only: lagging, LiBI) or freeze single restarts with
:func:`training.core.trees.tree_where` on both parameters and state.
"""
from typing import Callable, NamedTuple

import numpy as np

from analysis import checks

from .trees import tree_map


class Optimizer(NamedTuple):
    init: Callable
    update: Callable


def adam(lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma & Ba, 2015) with per-entry step counts.

    Parameters
    ----------
    lr : float or array
        Learning rate (> 0); the paper's 0.01 by default. An array
        broadcasts against every leaf: on (R, P) parameter matrices an
        (R, 1) column gives restart r its own rate (several settings batched).
    b1, b2 : float
        Moment decay rates in [0, 1).
    eps : float

    Returns
    -------
    Optimizer
        ``init(params) -> state``; ``update(grads, state, rows=None) -> (updates, state)``;
        new params are ``params + updates`` (see :func:`apply_updates`).
        ``rows`` (an index array) says that ``grads`` and ``state`` hold only
        those restarts (rows) of the (R, P) matrices: a per-restart ``lr``
        column is restricted to them (finished restarts drop out of a
        batched run).

    Examples
    --------
    >>> opt = adam(lr=0.1)
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": np.array([0.5, -0.5])}, state)
    >>> apply_updates(params, updates)["w"]
    array([ 0.9, -1.9])
    """
    lr = checks.positive("lr", lr)
    lr = float(lr) if lr.ndim == 0 else lr
    for name, value in (("b1", b1), ("b2", b2)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")

    def init(params):
        zeros = tree_map(np.zeros_like, params)
        return {"m": zeros, "v": zeros, "t": zeros}

    def update(grads, state, rows=None):
        rate = lr if rows is None or np.ndim(lr) == 0 else lr[rows]
        t = tree_map(lambda t: t + 1.0, state["t"])
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
        updates = tree_map(lambda m, v, t: -rate * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps),
                           m, v, t)
        return updates, {"m": m, "v": v, "t": t}

    return Optimizer(init, update)


def apply_updates(params, updates):
    return tree_map(lambda p, u: p + u, params, updates)
