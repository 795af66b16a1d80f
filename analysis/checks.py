"""Argument checks: bad input fails early with a message naming the argument."""
import numbers

import numpy as np


def real_array(name, value, ndim_min=0):
    """``value`` as a finite float64 array with at least ``ndim_min`` axes."""
    if value is None or np.iscomplexobj(value) or _has_text(value):
        raise TypeError(f"{name} must be a real array-like of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real array-like of numbers, got {type(value).__name__}") from err
    if arr.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _has_text(value):
    """True for strings (or arrays holding them): numpy would parse "0.5" as a number."""
    if isinstance(value, (str, bytes)):
        return True
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return False
    if arr.dtype.kind in "USV":
        return True
    return arr.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in arr.flat)


def bounded(name, arr, limit):
    """Entries with magnitude <= ``limit``: beyond it the closed forms overflow."""
    if np.any(np.abs(arr) > limit):
        raise ValueError(f"{name} must have entries of magnitude <= {limit:g}, got max "
                         f"{np.max(np.abs(arr)):g}")
    return arr


def positive(name, value):
    arr = real_array(name, value)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return arr


def scalar(name, value):
    """A finite float from a 0-d array-like."""
    arr = real_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return float(arr)


def generator(name, value):
    """A numpy.random.Generator, or a TypeError naming the argument."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, got {type(value).__name__}")
    return value


def integer(name, value, low, high=None):
    """An int in [low, high] (high None: unbounded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def square(name, arr, size=None):
    if arr.shape[-1] != arr.shape[-2] or (size is not None and arr.shape[-1] != size):
        want = f"(..., {size}, {size})" if size is not None else "(..., n, n)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


def symmetric(name, arr):
    scale = np.max(np.abs(arr), initial=1.0)
    if np.max(np.abs(arr - np.swapaxes(arr, -1, -2)), initial=0.0) > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric")
    return arr


def positive_definite(name, arr):
    """Symmetric, with every Cholesky factorization succeeding."""
    symmetric(name, arr)
    try:
        np.linalg.cholesky(arr)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite (every eigenvalue > 0)") from None
    return arr


def batch_shape(names_shapes):
    """The common broadcast batch shape, or a ValueError naming the arguments."""
    try:
        return np.broadcast_shapes(*[s for _, s in names_shapes])
    except ValueError:
        desc = ", ".join(f"{n} {s}" for n, s in names_shapes)
        raise ValueError(f"batch shapes do not broadcast: {desc}") from None
