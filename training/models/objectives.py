"""Negative ELBOs per restart: reparameterized Monte Carlo, and exact for linear-Gaussian likelihoods.

:func:`neg_elbo` returns one value per restart, shape (R,): the average
over data points of  -E_q log p_theta(x | z) + beta * KL[q(z | x) || N(0, I)].
Its terms per point, (R, N): :func:`expected_reconstruction_exact` (closed
form, linear-Gaussian likelihoods), :func:`expected_reconstruction_mc`
(reparameterized Monte Carlo) and :func:`kl_to_prior`.
"""
import autograd.numpy as anp
import numpy as np

from ._fused_elbo import exact_neg_elbo
from .likelihoods import LOG_2PI, gaussian_log_density


def kl_to_prior(mu, logvar):
    """KL[N(mu, diag(exp(logvar))) || N(0, I)] per point: (R, N, K) -> (R, N)."""
    return 0.5 * anp.sum(anp.exp(logvar) + mu * mu - 1.0 - logvar, axis=-1)


def expected_reconstruction_exact(likelihood, theta, mu, logvar, x):
    """-E_q log p_theta(x | z) in closed form for a linear-Gaussian likelihood: (R, N).

    For x = W z + eps, eps ~ N(0, diag(psi)) and q = N(mu, diag(v)):
    -E_q log p(x | z) = 1/2 [sum_d log(2 pi psi_d) + sum_d (x - W mu)_d^2 / psi_d
    + sum_dk W_dk^2 v_k / psi_d]. Plain autograd: the readable version of the
    fused primitive that :func:`neg_elbo` runs.
    """
    W, psi = likelihood.loading(theta), likelihood.noise(theta)      # (R, D, K), (R, D)
    resid = x - mu @ anp.swapaxes(W, -1, -2)                            # (R, N, D)
    quad = anp.sum(resid * resid / psi[:, None, :], axis=-1)
    w2 = anp.sum(W * W / psi[:, :, None], axis=1)                       # (R, K): sum_d W_dk^2 / psi_d
    spread = anp.sum(anp.exp(logvar) * w2[:, None, :], axis=-1)
    const = anp.sum(LOG_2PI + anp.log(psi), axis=-1)[:, None]
    return 0.5 * (const + quad + spread)


def expected_reconstruction_mc(likelihood, theta, mu, logvar, x, eps):
    """-E_q log p_theta(x | z) by reparameterization: eps (R, S, N, K) -> (R, N)."""
    R, S, N, K = eps.shape
    # reshape, not [:, None]: autograd's indexing gradient scatters with np.add.at
    z = anp.reshape(mu, (R, 1, N, K)) + anp.reshape(anp.exp(0.5 * logvar), (R, 1, N, K)) * eps
    mean = likelihood.mean(theta, anp.reshape(z, (R, S * N, K)))
    mean = anp.reshape(mean, (R, S, N, -1))
    var = anp.reshape(likelihood.noise(theta), (R, 1, 1, -1))
    return -anp.mean(gaussian_log_density(x, mean, var), axis=1)


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
        beta = 1 is the VAE; other values the beta-VAE (docs/theory.md (T.4), (T.37)).
    eps : array (R, S, N, K) or None
        Standard normal draws for the Monte Carlo estimate; None: the exact
        expectation (linear-Gaussian likelihoods only).
    """
    if eps is None:     # the exact expectation, one fused primitive
        beta = np.asarray(beta, dtype=float) if np.ndim(beta) else float(beta)
        return exact_neg_elbo(likelihood.loading(theta), likelihood.noise(theta), mu, logvar, x, beta)
    rec = expected_reconstruction_mc(likelihood, theta, mu, logvar, x, eps)
    beta = anp.reshape(beta, (-1, 1)) if anp.ndim(beta) else beta
    return anp.mean(rec + beta * kl_to_prior(mu, logvar), axis=-1)
