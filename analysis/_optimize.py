"""The multi-start optimizer core shared by ``jtex_vae_optimum`` and ``linear_vae_optimum``."""
import numpy as np
import scipy.optimize

# Tight enough that the minima agree to ~1e-12 on the paper's problems.
OPTIONS = {"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000}

# Two starts "agree" when their minima are this close (nats).
AGREE_TOL = 1e-8


def multistart(fun, jac, starts, bounds=None):
    """L-BFGS-B from every start; the runs whose minimum is finite, in start order.

    Parameters
    ----------
    fun : callable
        Objective of a 1-D parameter vector.
    jac : callable or True
        Its gradient (``True``: ``fun`` returns (value, gradient)).
    starts : list of ndarray
        Initial parameter vectors.
    bounds : sequence of (low, high), optional

    Returns
    -------
    list of scipy.optimize.OptimizeResult
    """
    results = []
    for x0 in starts:
        r = scipy.optimize.minimize(fun, np.asarray(x0, dtype=float), jac=jac, method="L-BFGS-B",
                                    bounds=bounds, options=OPTIONS)
        if np.isfinite(r.fun):
            results.append(r)
    if not results:
        raise RuntimeError("no start reached a finite minimum")
    return results


def agreement(values, best):
    """(sorted minima, how many lie within AGREE_TOL of ``best``)."""
    minima = np.sort(np.asarray(values, dtype=float))
    return minima, int(np.sum(minima <= best + AGREE_TOL))
