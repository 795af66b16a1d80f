"""Henze--Zirkler statistic for multivariate normality.

:func:`henze_zirkler` can sit inside a training loss: it is differentiable
with respect to the sample and batched over any leading axes (e.g. restarts
of shape ``(R, n, p)``). It is one autograd primitive with a hand-written
gradient; :func:`henze_zirkler_reference` writes the same formula in plain
autograd, and the tests compare the two (values and gradients).

References
----------
Henze, N. and Zirkler, B. (1990). A class of invariant consistent tests for
multivariate normality. Communications in Statistics - Theory and Methods,
19(10), 3595-3617.  The normalisation (covariance with divisor ``n``) and the
log-normal approximation of the null distribution follow R's ``MVN`` package
and ``pingouin.multivariate_normality``.
"""

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval, isbox

from analysis import checks

from ..core import _forward_cache

__all__ = ["henze_zirkler", "henze_zirkler_beta", "henze_zirkler_pvalue", "henze_zirkler_reference"]


def _check_sample(Z):
    """Validate a sample of shape ``(..., n, p)`` without touching its graph."""
    raw = getval(Z)
    if not isinstance(raw, np.ndarray) or raw.dtype != np.float64:
        raise TypeError(f"Z must be a float64 numpy array, got "
                        f"{type(raw).__name__} of {getattr(raw, 'dtype', None)}")
    checks.real_array("Z", raw, ndim_min=2)
    n = checks.integer("n (the rows of Z, axis -2)", raw.shape[-2], 2)
    p = checks.integer("p (the columns of Z, axis -1)", raw.shape[-1], 1)
    return n, p


def henze_zirkler_beta(n, p):
    """Smoothing parameter of the Henze--Zirkler statistic.

    Parameters
    ----------
    n : int
        Sample size, ``n >= 2``.
    p : int
        Dimension, ``p >= 1``.

    Returns
    -------
    float
        ``beta = 2**-0.5 * ((2 p + 1) n / 4) ** (1 / (p + 4))``.

    Examples
    --------
    >>> round(henze_zirkler_beta(4, 1), 12)
    0.880864794936
    """
    checks.integer("n", n, 2)
    checks.integer("p", p, 1)
    return 2.0**-0.5 * ((2.0 * p + 1.0) * n / 4.0) ** (1.0 / (p + 4.0))


def henze_zirkler(Z, check=True):
    """Henze--Zirkler statistic of each sample in a batch (differentiable).

    With ``S`` the covariance of the sample with divisor ``n``, ``y_j`` the
    centred points, ``D_j = y_j' S^-1 y_j`` and
    ``D_jk = (y_j - y_k)' S^-1 (y_j - y_k)``, the statistic is::

        HZ = 1/n sum_jk exp(-b^2 D_jk / 2)
             - 2 (1 + b^2)^(-p/2) sum_j exp(-b^2 D_j / (2 (1 + b^2)))
             + n (1 + 2 b^2)^(-p/2)

    with ``b = henze_zirkler_beta(n, p)``.  It is one autograd
    primitive with a hand-written gradient (derived below, checked by
    ``check_grads`` in the tests): with ``E_jk = exp(-b^2 D_jk / 2)``,
    ``X = Y S^-1`` and ``Gamma = dHZ/dG`` for ``G = X Y'``,
    ``dHZ/dY = 2 Gamma X - (2/n) Y X' Gamma X``, then centred. The n x n
    kernel matrix is computed once and shared with the backward pass (the
    O(n^2) exponentials dominate the cost of LiBI's Step 1). Memory is
    ``O(n^2)`` per batch item.

    Parameters
    ----------
    Z : ndarray of float64, shape (..., n, p)
        Samples of ``n >= 2`` points in ``p >= 1`` dimensions, batched over
        the leading axes.

    Returns
    -------
    ndarray of float64, shape (...)
        The statistic for each sample (a float64 scalar for a single sample);
        NaN for a sample whose covariance is singular (collapsed codes), the
        others unaffected.
        It is invariant to affine maps ``z -> z M + c`` with invertible ``M``.

    Examples
    --------
    >>> import numpy
    >>> Z = numpy.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    >>> round(float(henze_zirkler(Z)), 10)
    0.1050709735
    >>> M = numpy.array([[2.0, 1.0], [0.0, 1.0]])
    >>> henze_zirkler(numpy.stack([Z, Z @ M + 3.0]))
    array([0.10507097, 0.10507097])
    """
    if check:
        _check_sample(Z)
    if not isbox(Z):                    # not differentiated: keep nothing for a vjp
        return _hz_parts(Z)[0]
    return _henze_zirkler(Z)


def _swap(a):
    return np.swapaxes(a, -1, -2)


def _hz_parts(Z):
    n, p = Z.shape[-2:]
    b2 = henze_zirkler_beta(n, p) ** 2
    c = 0.5 * b2 / (1.0 + b2)
    Y = Z - Z.mean(axis=-2, keepdims=True)
    S = _swap(Y) @ Y / n
    # A collapsed sample (singular covariance) has no statistic: NaN for that
    # batch item, so a trainer marks that restart diverged and the others go on.
    # Scale-free test: a variance that vanishes, or a correlation matrix whose
    # smallest eigenvalue is at rounding level (collinear codes).
    d = np.diagonal(S, axis1=-2, axis2=-1)
    flat = ~(d > np.finfo(float).tiny)
    scale = 1.0 / np.sqrt(np.where(flat, 1.0, d))
    with np.errstate(invalid="ignore", over="ignore"):
        corr = S * scale[..., :, None] * scale[..., None, :]
        smallest = np.linalg.eigvalsh(np.where(np.isfinite(corr), corr, 0.0))[..., 0]
    singular = flat.any(axis=-1) | ~(smallest > p * np.finfo(float).eps) | ~np.all(np.isfinite(S), axis=(-2, -1))
    if np.any(singular):
        S = np.where(singular[..., None, None], np.eye(p), S)
    X = _swap(np.linalg.solve(S, _swap(Y)))           # rows S^-1 y_j
    D = np.sum(Y * X, axis=-1)                         # D_j
    E = X @ _swap(Y)                                    # G_jk, then the kernel in place
    E *= b2
    E -= (0.5 * b2) * D[..., :, None]
    E -= (0.5 * b2) * D[..., None, :]
    np.exp(E, out=E)                                   # exp(-b^2 D_jk / 2) <= 1
    e = np.exp(-c * D)
    value = (E.sum(axis=(-2, -1)) / n - 2.0 * (1.0 + b2) ** (-p / 2.0) * e.sum(axis=-1)
             + n * (1.0 + 2.0 * b2) ** (-p / 2.0))
    value = np.where(singular, np.nan, value)
    return value, (Y, X, E, e, b2, c, n, p)


@primitive
def _henze_zirkler(Z):
    value, parts = _hz_parts(Z)
    _forward_cache.put(value, parts)    # the n x n kernel, reused by the vjp
    return value


def _henze_zirkler_vjp(ans, Z):
    saved = _forward_cache.take(ans)

    def vjp(g):
        _forward_cache.first_order_only("the Henze-Zirkler statistic", g, (Z,),
                                        "differentiate henze_zirkler_reference for second derivatives")
        Y, X, E, e, b2, c, n, p = saved or _hz_parts(Z)[1]
        w = -(b2 / n) * E.sum(axis=-1) + 2.0 * (1.0 + b2) ** (-p / 2.0) * c * e     # diagonal of Gamma
        GX = (b2 / n) * (E @ X) + w[..., None] * X                                   # Gamma X
        gY = 2.0 * GX - (2.0 / n) * Y @ (_swap(X) @ GX)
        gZ = gY - gY.mean(axis=-2, keepdims=True)
        return np.asarray(g)[..., None, None] * gZ
    return vjp


defvjp(_henze_zirkler, _henze_zirkler_vjp)


def henze_zirkler_reference(Z):
    """The Henze--Zirkler statistic in plain autograd: the readable version of :func:`henze_zirkler`.

    The same formula written term by term (no singular-sample handling, no
    shared kernel); slower, and used by the tests to check the primitive's
    values and hand-written gradient.

    Examples
    --------
    >>> Z = np.random.default_rng(0).standard_normal((20, 2))
    >>> bool(np.isclose(henze_zirkler_reference(Z), henze_zirkler(Z), rtol=1e-12))
    True
    """
    n, p = Z.shape[-2:]
    b2 = henze_zirkler_beta(n, p) ** 2
    Y = Z - anp.mean(Z, axis=-2, keepdims=True)
    S = anp.swapaxes(Y, -1, -2) @ Y / n                                 # divisor n
    X = anp.swapaxes(anp.linalg.solve(S, anp.swapaxes(Y, -1, -2)), -1, -2)
    D = anp.sum(Y * X, axis=-1)                                          # D_j = y_j' S^-1 y_j
    G = X @ anp.swapaxes(Y, -1, -2)                                      # G_jk = y_j' S^-1 y_k
    Djk = D[..., :, None] + D[..., None, :] - 2.0 * G                    # (y_j - y_k)' S^-1 (y_j - y_k)
    return (anp.sum(anp.exp(-0.5 * b2 * Djk), axis=(-2, -1)) / n
            - 2.0 * (1.0 + b2) ** (-p / 2.0) * anp.sum(anp.exp(-0.5 * b2 * D / (1.0 + b2)), axis=-1)
            + n * (1.0 + 2.0 * b2) ** (-p / 2.0))


def henze_zirkler_pvalue(hz, n, p):
    """Log-normal approximation of the Henze--Zirkler p-value.

    With ``b = henze_zirkler_beta(n, p)``, ``a = 1 + 2 b^2`` and
    ``wb = (1 + b^2)(1 + 3 b^2)``, the null mean and variance of the statistic
    are approximated by::

        mu  = 1 - a^(-p/2) (1 + p b^2 / a + p (p + 2) b^4 / (2 a^2))
        si2 = 2 (1 + 4 b^2)^(-p/2)
              + 2 a^(-p) (1 + 2 p b^4 / a^2 + 3 p (p + 2) b^8 / (4 a^4))
              - 4 wb^(-p/2) (1 + 3 p b^4 / (2 wb) + p (p + 2) b^8 / (2 wb^2))

    and the p-value is the survival function at ``hz`` of the log-normal
    distribution with these moments (as in R's ``MVN`` and ``pingouin``).
    Not differentiable.

    Parameters
    ----------
    hz : float or array_like of float
        Values of :func:`henze_zirkler` for samples of size ``n`` in
        dimension ``p``; must be finite and ``>= 0``.
    n, p : int
        As in :func:`henze_zirkler_beta`.

    Returns
    -------
    ndarray of float64
        P-values, same shape as ``hz``.

    Examples
    --------
    >>> float(henze_zirkler_pvalue(0.0, 50, 2))
    1.0
    >>> henze_zirkler_pvalue([0.5, 5.0], 50, 2) < 0.05
    array([False,  True])
    """
    b2 = henze_zirkler_beta(n, p) ** 2     # checks n and p
    hz = np.asarray(getval(hz), dtype=np.float64)
    if not np.all(np.isfinite(hz)) or np.any(hz < 0):
        raise ValueError("hz must be finite and >= 0")
    b4, b8 = b2**2, b2**4
    a = 1.0 + 2.0 * b2
    wb = (1.0 + b2) * (1.0 + 3.0 * b2)
    mu = 1.0 - a ** (-p / 2.0) * (1.0 + p * b2 / a + p * (p + 2) * b4 / (2.0 * a**2))
    si2 = (2.0 * (1.0 + 4.0 * b2) ** (-p / 2.0)
           + 2.0 * a ** (-p) * (1.0 + 2.0 * p * b4 / a**2
                                + 3.0 * p * (p + 2) * b8 / (4.0 * a**4))
           - 4.0 * wb ** (-p / 2.0) * (1.0 + 3.0 * p * b4 / (2.0 * wb)
                                       + p * (p + 2) * b8 / (2.0 * wb**2)))
    pmu = np.log(np.sqrt(mu**4 / (si2 + mu**2)))
    psi = np.sqrt(np.log((si2 + mu**2) / mu**2))
    from scipy.stats import lognorm  # scipy.stats is slow to import: only here
    return lognorm.sf(hz, psi, scale=np.exp(pmu))
