"""The codes of an inference network: the aggregated posterior q_phi(z) against the prior, and I_q(X;Z).

Functions take an encoder and parameters with a leading restart axis and
return one value per restart.
"""
import numpy as np
from scipy.special import logsumexp

from analysis import checks

from ..models.likelihoods import LOG_2PI

__all__ = ["aggregated_posterior", "mutual_information_estimate"]


def aggregated_posterior(encoder, phi, x):
    """Moments of q_phi(z) = (1/N) sum_n q_phi(z | x_n) against the prior N(0, I) (App. A, Eq. 8).

    Returns
    -------
    dict
        ``mean`` (R, K); ``cov`` (R, K, K) = Cov_n(mu_n) + mean_n diag(v_n);
        ``kl_to_prior`` (R,) KL[N(mean, cov) || N(0, I)] of the moment-matched
        Gaussian; ``max_abs_corr`` (R,) the largest |correlation| between
        latent coordinates (0 for the prior).
    """
    x = checks.real_array("x", x, 2)
    mu, logvar = (np.asarray(a) for a in encoder(phi, x))
    K = mu.shape[-1]
    mean = mu.mean(axis=1)
    centred = mu - mean[:, None]
    cov = (np.einsum("rnk,rnl->rkl", centred, centred) / mu.shape[1]
           + np.exp(logvar).mean(axis=1)[:, :, None] * np.eye(K))
    kl = 0.5 * (np.trace(cov, axis1=1, axis2=2) + np.sum(mean**2, axis=1) - K
                - np.linalg.slogdet(cov)[1])
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    corr = cov / (sd[:, :, None] * sd[:, None, :]) - np.eye(K)
    return {"mean": mean, "cov": cov, "kl_to_prior": kl, "max_abs_corr": np.abs(corr).max(axis=(1, 2))}

def mutual_information_estimate(encoder, phi, x, rng, max_entries=4_000_000):
    """He et al.'s (2019) estimate of I_q(X;Z) = E_x E_q(z|x)[log q(z|x) - log q(z)]: (R,).

    q(z) is the aggregate (1/N) sum_j q(z | x_j) over the batch ``x``; one
    draw of z per point. O(N^2 K) per restart, in chunks of restarts.
    """
    x = checks.real_array("x", x, 2)
    mu, logvar = (np.asarray(a) for a in encoder(phi, x))
    R, N, K = mu.shape
    var = np.exp(logvar)
    z = mu + np.sqrt(var) * rng.standard_normal(mu.shape)
    neg_entropy = np.mean(-0.5 * np.sum(LOG_2PI + 1.0 + logvar, axis=-1), axis=1)
    out = np.empty(R)
    step = max(1, max_entries // (N * N * K))
    for a in range(0, R, step):
        b = min(R, a + step)
        d = z[a:b, :, None, :] - mu[a:b, None, :, :]                    # (r, i, j, K)
        log_q = -0.5 * np.sum(LOG_2PI + logvar[a:b, None] + d * d / var[a:b, None], axis=-1)
        log_agg = logsumexp(log_q, axis=2) - np.log(N)
        out[a:b] = neg_entropy[a:b] - log_agg.mean(axis=1)
    return out
