"""The exact negative ELBO of a linear-Gaussian likelihood as one autograd primitive.

Private. The readable version of the same equation is
:func:`training.models.objectives.expected_reconstruction_exact` plus
:func:`training.models.objectives.kl_to_prior`; the tests compare the two (values
and gradients). Per restart-epoch the primitive is a handful of passes over
the data instead of dozens of autograd nodes, with a hand-written gradient.
"""
import numpy as np
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from ..core import _forward_cache
from .likelihoods import LOG_2PI


def _sum_points(a):
    """Sum (R, N, k) over the points: a BLAS product with ones, much faster than
    ``a.sum(axis=1)``, whose inner loop runs over the k = 2 components (benchmarks/README.md)."""
    return (np.ones((1, a.shape[1])) @ a)[:, 0, :]


def _exact_intermediates(W, mu, logvar, x):
    """Residuals x - W mu, variances exp(logvar), and their sums over points."""
    resid = x - mu @ np.swapaxes(W, -1, -2)
    v = np.exp(logvar)
    return resid, v, _sum_points(resid * resid), _sum_points(v)


def _exact_neg_elbo_forward(W, psi, mu, logvar, x, beta, keep=True):
    """mean_n [-E_q log p(x_n | z) + beta KL[q(z | x_n) || N(0, I)]] per restart, (R,).

    The whole exact objective of a linear-Gaussian likelihood as one
    primitive: per restart-epoch it is a handful of passes over the data
    instead of dozens of autograd nodes. ``beta`` is a float or (R,).
    """
    R, N, K = mu.shape
    inv_psi = 1.0 / psi
    resid, v, sq, vsum = saved = _exact_intermediates(W, mu, logvar, x)
    w2 = np.sum(W * W * inv_psi[:, :, None], axis=1)                                # (R, K)
    quad = np.einsum("rd,rd->r", sq, inv_psi)
    spread = np.einsum("rk,rk->r", vsum, w2)
    kl = np.sum(np.reshape(v + mu * mu - 1.0 - logvar, (R, N * K)), axis=1)
    const = np.sum(LOG_2PI + np.log(psi), axis=-1)
    ans = 0.5 * const + 0.5 * (quad + spread + beta * kl) / N
    if keep:
        _forward_cache.put(ans, saved)
    return ans


_exact_neg_elbo = primitive(_exact_neg_elbo_forward)


def _exact_neg_elbo_vjp(argnums, ans, args, kwargs):
    W, psi, mu, logvar, x, beta = args
    N = mu.shape[1]
    inv_psi = 1.0 / psi
    resid, v, sq, vsum = _forward_cache.take(ans) or _exact_intermediates(W, mu, logvar, x)
    rp = resid * inv_psi[:, None, :]
    b = np.reshape(beta, (-1, 1, 1)) if np.ndim(beta) else beta

    def vjp(g):
        _forward_cache.first_order_only("the exact ELBO", g, args)
        g = np.asarray(g)[:, None, None] / N
        grads = {}
        if 0 in argnums:
            grads[0] = g * (W * inv_psi[:, :, None] * vsum[:, None, :] - np.swapaxes(rp, -1, -2) @ mu)
        if 1 in argnums:
            sqv = sq + np.einsum("rk,rdk->rd", vsum, W * W)                          # (R, D)
            grads[1] = 0.5 * g[:, :, 0] * (N * inv_psi - sqv * inv_psi * inv_psi)
        if 2 in argnums:
            grads[2] = g * (b * mu - rp @ W)
        if 3 in argnums:
            w2 = np.sum(W * W * inv_psi[:, :, None], axis=1)
            grads[3] = 0.5 * g * (v * w2[:, None, :] + b * (v - 1.0))
        return tuple(grads[i] for i in argnums)
    return vjp


defvjp_argnums(_exact_neg_elbo, _exact_neg_elbo_vjp)


def exact_neg_elbo(W, psi, mu, logvar, x, beta):
    """mean_n [-E_q log p(x_n | z) + beta KL[q(z | x_n) || N(0, I)]] per restart, (R,).

    x = W z + eps with eps ~ N(0, diag(psi)): W (R, D, K), psi (R, D), mu and
    logvar (R, N, K), x (N, D), beta a float or (R,).
    """
    args = (W, psi, mu, logvar, x, beta)
    if not any(isbox(a) for a in args):     # not differentiated: keep nothing for a vjp
        return _exact_neg_elbo_forward(*args, keep=False)
    return _exact_neg_elbo(*args)
