"""Fast numeric versions of the symbolic results (``sympy.lambdify`` to numpy).

Each function is compiled once, on first use, from :mod:`analysis.symbolic`;
they evaluate elementwise and broadcast, so a 10^6-cell grid is one call.
"""
from functools import lru_cache

import sympy as sp

from . import symbolic

__all__ = ["univariate_functions", "jtex_functions"]


def _compile(args, expr):
    return sp.lambdify(args, expr, modules="numpy", cse=True)


@lru_cache(maxsize=None)
def univariate_functions():
    """``f(theta, sigma2)`` for each expression of :func:`analysis.symbolic.univariate`.

    Examples
    --------
    >>> f = univariate_functions()
    >>> round(float(f["mutual_information"](0.6, 1.0)), 6)
    0.223144
    """
    u = symbolic.univariate()
    args = [u["theta"], u["sigma2"]]
    return {k: _compile(args, v) for k, v in u.items() if k not in ("theta", "sigma2")}


@lru_cache(maxsize=None)
def jtex_functions():
    """Compiled JTEx expressions of :func:`analysis.symbolic.jtex`.

    Returns
    -------
    dict
        ``mean_field_kl``, ``mutual_information``:
        ``f(a11, a12, a21, a22, b1, b2, sigma2)``;
        ``vae_objective``, ``mle_term``:
        ``f(a11, a12, a21, a22, b1, b2, sigma2, S11, S12, S22)``;
        ``vae_objective_grad``: the same arguments, returning the list of the
        four derivatives d/da11, d/da12, d/da21, d/da22 (symbolic ``diff``).

    Examples
    --------
    >>> f = jtex_functions()
    >>> round(float(f["mean_field_kl"](0.75, 0.25, 1.5, -1.0, 0.006, 0.006, 0.01)), 5)
    0.53235
    """
    j = symbolic.jtex()
    a = list(j["A"])
    S = [j["S"][0, 0], j["S"][0, 1], j["S"][1, 1]]
    model = a + list(j["b"]) + [j["sigma2"]]
    out = {k: _compile(model, j[k]) for k in ("mean_field_kl", "mutual_information")}
    out.update({k: _compile(model + S, j[k]) for k in ("vae_objective", "mle_term")})
    out["vae_objective_grad"] = _compile(model + S, [j["vae_objective"].diff(ai) for ai in a])
    return out
