"""Negative ELBOs per restart: reparameterized Monte Carlo, and exact for linear-Gaussian likelihoods.

All functions return one value per restart, shape (R,): the average over
data points of  -E_q log p_theta(x | z) + beta * KL[q(z | x) || N(0, I)].
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from . import forward_cache
from .models import LOG_2PI, gaussian_log_density


def kl_to_prior(mu, logvar):
    """KL[N(mu, diag(exp(logvar))) || N(0, I)] per point: (R, N, K) -> (R, N)."""
    return 0.5 * np.sum(np.exp(logvar) + mu * mu - 1.0 - logvar, axis=-1)


@primitive
def _exact_terms(W, psi, mu, logvar, x):
    """Per point: -E_q log p(x | z) for x = W z + eps, q = N(mu, diag(exp(logvar))).

    -E = 1/2 [sum_d log(2 pi psi_d) + sum_d (x - W mu)_d^2 / psi_d + sum_dk W_dk^2 v_k / psi_d].
    W (R, D, K), psi (R, D), mu and logvar (R, N, K), x (N, D) -> (R, N).
    """
    resid = x - mu @ onp.swapaxes(W, -1, -2)
    inv_psi = 1.0 / psi
    quad = (resid * resid) @ inv_psi[:, :, None]                               # (R, N, 1)
    spread = onp.exp(logvar) @ onp.sum(W * W * inv_psi[:, :, None], axis=1)[:, :, None]
    const = onp.sum(LOG_2PI + onp.log(psi), axis=-1)[:, None]
    return 0.5 * (const + quad[..., 0] + spread[..., 0])


def _exact_vjp(argnums, ans, args, kwargs):
    """All gradients of ``_exact_terms`` from one shared pass."""
    W, psi, mu, logvar, x = args
    inv_psi = 1.0 / psi
    rp = (x - mu @ onp.swapaxes(W, -1, -2)) * inv_psi[:, None, :]              # (R, N, D)
    v = onp.exp(logvar)
    w2 = onp.sum(W * W * inv_psi[:, :, None], axis=1)                           # (R, K)

    def vjp(g):
        _first_order_only(g, args)
        gg = g[:, :, None]
        grads = {}
        if 0 in argnums:
            grads[0] = (-onp.swapaxes(rp * gg, -1, -2) @ mu
                        + W * inv_psi[:, :, None] * onp.sum(v * gg, axis=1)[:, None, :])
        if 1 in argnums:
            spread = v @ onp.swapaxes(W * W, -1, -2)
            grads[1] = 0.5 * onp.sum(gg * (inv_psi[:, None, :] - rp * rp
                                           - spread * (inv_psi * inv_psi)[:, None, :]), axis=1)
        if 2 in argnums:
            grads[2] = -gg * (rp @ W)
        if 3 in argnums:
            grads[3] = 0.5 * gg * v * w2[:, None, :]
        return tuple(grads[i] for i in argnums)
    return vjp


defvjp_argnums(_exact_terms, _exact_vjp)


def _sum_points(a):
    """Sum (R, N, k) over the points: a BLAS product with ones, much faster than
    ``a.sum(axis=1)``, whose inner loop runs over the k = 2 components (benchmarks/README.md)."""
    return (onp.ones((1, a.shape[1])) @ a)[:, 0, :]


def _exact_intermediates(W, mu, logvar, x):
    """Residuals x - W mu, variances exp(logvar), and their sums over points."""
    resid = x - mu @ onp.swapaxes(W, -1, -2)
    v = onp.exp(logvar)
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
    w2 = onp.sum(W * W * inv_psi[:, :, None], axis=1)                                # (R, K)
    quad = onp.einsum("rd,rd->r", sq, inv_psi)
    spread = onp.einsum("rk,rk->r", vsum, w2)
    kl = onp.sum(onp.reshape(v + mu * mu - 1.0 - logvar, (R, N * K)), axis=1)
    const = onp.sum(LOG_2PI + onp.log(psi), axis=-1)
    ans = 0.5 * const + 0.5 * (quad + spread + beta * kl) / N
    if keep:
        forward_cache.put(ans, saved)
    return ans


_exact_neg_elbo = primitive(_exact_neg_elbo_forward)


def _first_order_only(g, args):
    if isbox(g) or any(isbox(a) for a in args):
        raise NotImplementedError("the exact ELBO's hand-written gradient is first order only: "
                                  "second derivatives through it are not implemented")


def _exact_neg_elbo_vjp(argnums, ans, args, kwargs):
    W, psi, mu, logvar, x, beta = args
    N = mu.shape[1]
    inv_psi = 1.0 / psi
    resid, v, sq, vsum = forward_cache.take(ans) or _exact_intermediates(W, mu, logvar, x)
    rp = resid * inv_psi[:, None, :]
    b = onp.reshape(beta, (-1, 1, 1)) if onp.ndim(beta) else beta

    def vjp(g):
        _first_order_only(g, args)
        g = onp.asarray(g)[:, None, None] / N
        grads = {}
        if 0 in argnums:
            grads[0] = g * (W * inv_psi[:, :, None] * vsum[:, None, :] - onp.swapaxes(rp, -1, -2) @ mu)
        if 1 in argnums:
            sqv = sq + onp.einsum("rk,rdk->rd", vsum, W * W)                          # (R, D)
            grads[1] = 0.5 * g[:, :, 0] * (N * inv_psi - sqv * inv_psi * inv_psi)
        if 2 in argnums:
            grads[2] = g * (b * mu - rp @ W)
        if 3 in argnums:
            w2 = onp.sum(W * W * inv_psi[:, :, None], axis=1)
            grads[3] = 0.5 * g * (v * w2[:, None, :] + b * (v - 1.0))
        return tuple(grads[i] for i in argnums)
    return vjp


defvjp_argnums(_exact_neg_elbo, _exact_neg_elbo_vjp)


def expected_reconstruction_exact(likelihood, theta, mu, logvar, x):
    """-E_q log p_theta(x | z) in closed form for a linear-Gaussian likelihood: (R, N).

    One autograd primitive with a hand-written gradient (see ``_exact_terms``).
    """
    return _exact_terms(likelihood.loading(theta), likelihood.noise(theta), mu, logvar, x)


def expected_reconstruction_mc(likelihood, theta, mu, logvar, x, eps):
    """-E_q log p_theta(x | z) by reparameterization: eps (R, S, N, K) -> (R, N)."""
    R, S, N, K = eps.shape
    # reshape, not [:, None]: autograd's indexing gradient scatters with np.add.at
    z = np.reshape(mu, (R, 1, N, K)) + np.reshape(np.exp(0.5 * logvar), (R, 1, N, K)) * eps
    mean = likelihood.mean(theta, np.reshape(z, (R, S * N, K)))
    mean = np.reshape(mean, (R, S, N, -1))
    var = np.reshape(likelihood.noise(theta), (R, 1, 1, -1))
    return -np.mean(gaussian_log_density(x, mean, var), axis=1)


def neg_elbo(likelihood, theta, mu, logvar, x, beta=1.0, eps=None):
    """Mean over points of -E_q log p(x | z) + beta KL[q || p(z)], per restart (R,).

    Parameters
    ----------
    likelihood : training.models.Likelihood
    theta : pytree
    mu, logvar : arrays (R, N, K)
        The encoder's output for ``x``.
    x : array (N, D)
    beta : float or array (R,)
        beta = 1 is the VAE; other values the beta-VAE (SPEC 5).
    eps : array (R, S, N, K) or None
        Standard normal draws for the Monte Carlo estimate; None: the exact
        expectation (linear-Gaussian likelihoods only).
    """
    if eps is None:
        beta = onp.asarray(beta, dtype=float) if onp.ndim(beta) else float(beta)
        args = (likelihood.loading(theta), likelihood.noise(theta), mu, logvar, x, beta)
        if not any(isbox(a) for a in args):     # not differentiated: keep nothing for a vjp
            return _exact_neg_elbo_forward(*args, keep=False)
        return _exact_neg_elbo(*args)
    rec = expected_reconstruction_mc(likelihood, theta, mu, logvar, x, eps)
    beta = np.reshape(beta, (-1, 1)) if np.ndim(beta) else beta
    return np.mean(rec + beta * kl_to_prior(mu, logvar), axis=-1)
