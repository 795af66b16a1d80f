"""Fit the true Mobius network f to the Mobius map and write its weights.

Reproduces :data:`training.datasets.mobius.WEIGHTS_PATH` deterministically::

    python -m training.datasets.fit_mobius [--out PATH] [--seed 0]
                                  [--n-points 20000] [--maxiter 3000]

Recipe (all float64, no global random state):

1. ``numpy.random.default_rng(seed).spawn(2)`` gives a data generator and an
   initialisation generator, so the initial weights do not depend on
   ``n_points``.
2. A fixed training set ``z ~ N(0, I_2)`` of ``n_points`` rows, targets
   ``x = mobius_map(z)``.
3. ``training.models.layers.init_mlp([init_rng], MOBIUS_SIZES)`` (Glorot-normal,
   zero biases).
4. L-BFGS-B (``scipy.optimize.minimize``, autograd gradient of the flattened
   parameters, ``maxcor=100`` history pairs, about the number of parameters,
   which converges markedly faster than the default 10) minimises the
   mean squared error against the targets *standardised* per output
   coordinate: x varies by only ~0.1 around (0.35, 0.37), and fitting
   ``(x - mean) / sd`` keeps the output layer O(1) during the fit. The mean
   and sd are then folded into the output layer (``W * sd``,
   ``b * sd + mean``), so the saved network maps raw z to raw x.

Bit-for-bit reproducibility needs the same platform and the same BLAS
thread count. The loss and gradient come out identical at any thread count,
but L-BFGS-B's small dense algebra runs in OpenBLAS, whose single- and
multi-threaded results differ in the last bits; 3000 iterations amplify that
into different (equally good) weights. Run as a script, this module
therefore pins the BLAS to one thread (set before NumPy loads); the shipped
weights were made that way. Called as a library function, :func:`fit` is
deterministic for a fixed thread setting.
"""
import os

if __name__ == "__main__":  # before NumPy/SciPy load their BLAS
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import time
from pathlib import Path

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.misc import flatten
from scipy.optimize import minimize

from training.datasets.mobius import MOBIUS_ACTIVATIONS, MOBIUS_SIZES, WEIGHTS_PATH, mobius_map
from training.models.layers import init_mlp
from training.models.nets import mlp

#: Defaults that produced the shipped weights.
SEED, N_POINTS, MAXITER, MAXCOR = 0, 20_000, 3000, 100


def _rngs(seed):
    """``(data_rng, init_rng)``: independent streams spawned from ``default_rng(seed)``."""
    data_rng, init_rng = np.random.default_rng(seed).spawn(2)
    return data_rng, init_rng


def training_set(seed=SEED, n_points=N_POINTS):
    """The fixed training set ``(z, mobius_map(z))`` of :func:`fit`.

    Parameters
    ----------
    seed : int
    n_points : int

    Returns
    -------
    z, x : numpy.ndarray, shape (n_points, 2)

    Examples
    --------
    >>> z, x = training_set(seed=0, n_points=4)
    >>> z.shape, x.shape, bool(np.all(x == mobius_map(z)))
    ((4, 2), (4, 2), True)
    """
    data_rng, _ = _rngs(seed)
    z = data_rng.standard_normal((n_points, 2))
    return z, mobius_map(z)


def fit(seed=SEED, n_points=N_POINTS, maxiter=MAXITER, maxcor=MAXCOR,
        sizes=MOBIUS_SIZES, activations=MOBIUS_ACTIVATIONS):
    """Fit an MLP to the Mobius map by L-BFGS-B on the mean squared error.

    Deterministic: the same arguments give bit-identical parameters (on the
    same platform / BLAS).

    Parameters
    ----------
    seed : int
        Seeds both the training set and the initial weights.
    n_points : int
        Training-set size.
    maxiter : int
        L-BFGS-B iteration cap (``maxfun = 2 * maxiter``).
    maxcor : int
        L-BFGS-B history length.
    sizes, activations
        Architecture, in the :func:`training.models.nets.mlp` convention.

    Returns
    -------
    params : dict
        Fitted network, restart axis ``R = 1``, mapping raw z to raw x.
    info : dict
        ``train_rmse`` (raw units, over both coordinates), ``nit``, ``nfev``,
        ``message``, ``seconds`` and the arguments.

    Examples
    --------
    >>> params, info = fit(seed=0, n_points=200, maxiter=5)
    >>> params["out"]["W"].shape, info["nit"] <= 5
    ((1, 8, 2), True)
    """
    sizes, activations = list(sizes), tuple(activations)
    z, x = training_set(seed, n_points)
    _, init_rng = _rngs(seed)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    y = (x - mean) / sd

    flat0, unflatten = flatten(init_mlp([init_rng], sizes))

    def loss(flat):
        return anp.mean((mlp(unflatten(flat), z, activations)[0] - y) ** 2)

    start = time.perf_counter()
    res = minimize(value_and_grad(loss), flat0, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "maxfun": 2 * maxiter,
                            "maxcor": maxcor, "ftol": 0.0, "gtol": 1e-12})
    seconds = time.perf_counter() - start

    params = unflatten(np.asarray(res.x, dtype=np.float64))
    params["out"] = {"W": params["out"]["W"] * sd, "b": params["out"]["b"] * sd + mean}
    resid = np.asarray(mlp(params, z, activations)[0]) - x
    info = {"train_rmse": float(np.sqrt(np.mean(resid ** 2))),
            "nit": int(res.nit), "nfev": int(res.nfev), "message": str(res.message),
            "seconds": seconds, "seed": int(seed), "n_points": int(n_points),
            "maxiter": int(maxiter), "maxcor": int(maxcor),
            "sizes": sizes, "activations": activations}
    return params, info


def save_params(params, info, path=WEIGHTS_PATH):
    """Write ``params`` (R = 1) and fit metadata to an uncompressed ``.npz``.

    Keys: ``hidden{i}_W`` (d_in, d_out), ``hidden{i}_b`` (d_out,), ``out_W``,
    ``out_b`` (restart axis dropped), plus ``sizes``, ``activations``,
    ``seed``, ``n_points``, ``maxiter``, ``maxcor``, ``nit``, ``train_rmse``.
    Read back with :func:`training.datasets.mobius.load_mobius_params`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, layer in enumerate(params["hidden"]):
        arrays[f"hidden{i}_W"] = np.asarray(layer["W"][0], dtype=np.float64)
        arrays[f"hidden{i}_b"] = np.asarray(layer["b"][0], dtype=np.float64)
    arrays["out_W"] = np.asarray(params["out"]["W"][0], dtype=np.float64)
    arrays["out_b"] = np.asarray(params["out"]["b"][0], dtype=np.float64)
    arrays["sizes"] = np.asarray(info["sizes"], dtype=np.int64)
    arrays["activations"] = np.asarray(info["activations"], dtype=str)
    for key in ("seed", "n_points", "maxiter", "maxcor", "nit"):
        arrays[key] = np.int64(info[key])
    arrays["train_rmse"] = np.float64(info["train_rmse"])
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m training.datasets.fit_mobius", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--n-points", type=int, default=N_POINTS)
    parser.add_argument("--maxiter", type=int, default=MAXITER)
    args = parser.parse_args(argv)
    params, info = fit(args.seed, args.n_points, args.maxiter)
    path = save_params(params, info, args.out)
    print(f"sizes={info['sizes']} activations={info['activations']} seed={info['seed']} "
          f"n_points={info['n_points']} nit={info['nit']} ({info['message']})\n"
          f"train RMSE {info['train_rmse']:.3e}, {info['seconds']:.1f} s -> {path}")
    return info


if __name__ == "__main__":
    main()
