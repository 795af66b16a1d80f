"""Hand a primitive's forward intermediates to its vjp maker.

Autograd builds a node, and so calls the vjp maker, right after the forward
call, with the very output object the forward returned. A forward that
would be costly to repeat (tanh activations, the exact ELBO's residuals)
stores what its gradient needs with :func:`put`; the vjp maker takes it with
:func:`take`, which gives it only if it belongs to that same output (else
None: recompute). Thread-local, and holds one entry at a time.

:func:`first_order_only` is the guard of the hand-written gradients that
cannot be differentiated again.
"""
import threading

from autograd.tracer import isbox

_last = threading.local()


def put(ans, saved):
    """Keep ``saved`` for the vjp maker of the call that returned ``ans``."""
    _last.entry = (ans, saved)


def take(ans):
    """What the forward call that returned ``ans`` kept, or None; clears the entry."""
    entry = getattr(_last, "entry", None)
    _last.entry = None
    return entry[1] if entry is not None and entry[0] is ans else None


def first_order_only(what, g, args, instead="second derivatives through it are not implemented"):
    """Raise NotImplementedError if an outer trace differentiates this gradient (``g`` or ``args`` boxed)."""
    if isbox(g) or any(isbox(a) for a in args):
        raise NotImplementedError(f"{what}'s hand-written gradient is first order only: {instead}")
