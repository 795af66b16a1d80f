"""Numerics below every model: parameter trees, flat (R, P) parameter matrices, Adam, forward caches.

Nothing here knows a model. Every parameter leaf carries a leading restart
axis R, so one array program serves all restarts.

* :mod:`.trees`: ``tree_map`` and friends over nested dicts and lists.
* :mod:`.optim`: Adam as a pair of pure functions, ``init`` and ``update``.
* ``_flat`` (private): a tree as one (R, P) matrix, and its slices as primitives.
* ``_forward_cache`` (private): forward intermediates handed to a hand-written gradient.
"""
