"""Hand a primitive's forward intermediates to its vjp maker.

Autograd builds a node, and so calls the vjp maker, right after the forward
call, with the very output object the forward returned. A forward that
would be costly to repeat (tanh activations, the exact ELBO's residuals)
stores what its gradient needs with :func:`put`; the vjp maker takes it with
:func:`take`, which gives it only if it belongs to that same output (else
None: recompute). Thread-local, and holds one entry at a time.
"""
import threading

_last = threading.local()


def put(ans, saved):
    """Keep ``saved`` for the vjp maker of the call that returned ``ans``."""
    _last.entry = (ans, saved)


def take(ans):
    """What the forward call that returned ``ans`` kept, or None; clears the entry."""
    entry = getattr(_last, "entry", None)
    _last.entry = None
    return entry[1] if entry is not None and entry[0] is ans else None
