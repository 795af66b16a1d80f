"""The "Mobius" synthetic data set: a Mobius map and the shipped network fitting it.

Yacoby, Pan & Doshi-Velez ("Characterizing and Avoiding Problematic Global
Optima of VAEs") define the map

    m(z) = (a z + b) / (c z + d),   z = z1 + i z2,
    a = 1, b = 1 + 4i, c = 1, d = 7 + 4i,

read as ``(Re m, Im m)``, fit a neural network ``f`` to it on
``z ~ N(0, I_2)`` and use ``f`` (not ``m``) as the true likelihood mean:
``x = f(z) + eps``, ``eps ~ N(0, 1e-5 I)``. The paper gives neither the
architecture nor the weights of ``f``; this module fixes the architecture
(:data:`MOBIUS_SIZES`, :data:`MOBIUS_ACTIVATIONS`) and ships weights fitted
once, deterministically, by :mod:`training.datasets.fit_mobius`
(``python -m training.datasets.fit_mobius`` rewrites :data:`WEIGHTS_PATH`).

Parameters follow :mod:`training.models.nets`: ``{"hidden": [{"W", "b"}, ...],
"out": {"W", "b"}}`` with a leading restart axis (here ``R = 1``).
"""
import functools
from pathlib import Path

import numpy as np

from ..models.likelihoods import MOBIUS_ACTIVATIONS, MOBIUS_SIZES
from ..models.nets import mlp

#: Coefficients of m(z) = (a z + b) / (c z + d).
MOBIUS_A, MOBIUS_B, MOBIUS_C, MOBIUS_D = 1.0 + 0j, 1.0 + 4j, 1.0 + 0j, 7.0 + 4j

#: Shipped weights of f, written by :func:`training.datasets.fit_mobius.main`.
WEIGHTS_PATH = Path(__file__).resolve().parent / "data" / "mobius_net.npz"


def mobius_map(z):
    """The Mobius map m(z) = (a z + b) / (c z + d) on real pairs.

    Parameters
    ----------
    z : array_like, shape (..., 2)
        Real and imaginary parts ``(z1, z2)`` of ``z = z1 + i z2``.

    Returns
    -------
    numpy.ndarray, shape (..., 2)
        ``(Re m(z), Im m(z))`` as float64.

    Examples
    --------
    >>> mobius_map([0.0, 0.0])  # (1 + 4i) / (7 + 4i) = (23 + 24i) / 65
    array([0.35384615, 0.36923077])
    >>> mobius_map(np.zeros((5, 3, 2))).shape
    (5, 3, 2)
    """
    z = np.asarray(z, dtype=float)
    if z.shape[-1:] != (2,):
        raise ValueError(f"z must have shape (..., 2), got {z.shape}")
    w = z[..., 0] + 1j * z[..., 1]
    m = (MOBIUS_A * w + MOBIUS_B) / (MOBIUS_C * w + MOBIUS_D)
    return np.stack([m.real, m.imag], axis=-1)


def load_mobius_params(path=None):
    """Load the weights of the true Mobius network f.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        An ``.npz`` written by :func:`training.datasets.fit_mobius.save_params`;
        default :data:`WEIGHTS_PATH` (the shipped weights).

    Returns
    -------
    dict
        ``{"hidden": [{"W": (1, d_in, d_out), "b": (1, d_out)}, ...],
        "out": {...}}`` in the :mod:`training.models.nets` convention, with widths
        :data:`MOBIUS_SIZES`; fresh float64 arrays on every call.

    Raises
    ------
    ValueError
        If the file's architecture is not :data:`MOBIUS_SIZES` /
        :data:`MOBIUS_ACTIVATIONS`.

    Examples
    --------
    >>> params = load_mobius_params()
    >>> [layer["W"].shape for layer in params["hidden"]], params["out"]["W"].shape
    ([(1, 2, 8), (1, 8, 8)], (1, 8, 2))
    """
    path = WEIGHTS_PATH if path is None else Path(path)
    with np.load(path, allow_pickle=False) as f:
        sizes = [int(s) for s in f["sizes"]]
        activations = tuple(str(a) for a in f["activations"])
        if sizes != list(MOBIUS_SIZES) or activations != tuple(MOBIUS_ACTIVATIONS):
            raise ValueError(
                f"{path} holds a {sizes} {activations} network; expected "
                f"{MOBIUS_SIZES} {MOBIUS_ACTIVATIONS}")

        def layer(name):
            return {"W": np.array(f[name + "_W"], dtype=np.float64)[None],
                    "b": np.array(f[name + "_b"], dtype=np.float64)[None]}

        return {"hidden": [layer(f"hidden{i}") for i in range(len(sizes) - 2)],
                "out": layer("out")}


@functools.lru_cache(maxsize=1)
def _shipped_params():
    params = load_mobius_params()
    for leaf in [*params["hidden"], params["out"]]:
        for a in leaf.values():
            a.flags.writeable = False
    return params


def mobius_net(z):
    """The shipped network f (the true likelihood mean of the Mobius data set).

    Parameters
    ----------
    z : array_like, shape (N, 2)
        Latent points.

    Returns
    -------
    numpy.ndarray, shape (N, 2)
        ``f(z)``, which approximates :func:`mobius_map` on ``z ~ N(0, I)``.

    Examples
    --------
    >>> mobius_net(np.zeros((3, 2))).shape
    (3, 2)
    >>> print(np.round(mobius_net([[0.0, 0.0]]), 3))  # m(0) = (0.354, 0.369)
    [[0.354 0.369]]
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2), got {z.shape}")
    return np.asarray(mlp(_shipped_params(), z, MOBIUS_ACTIVATIONS)[0])
