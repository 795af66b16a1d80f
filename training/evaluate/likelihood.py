"""Log-likelihood of a fitted model: importance-sampled (with q_phi as proposal), exact, by quadrature.

All functions take a likelihood / encoder and parameters with a leading
restart axis (length 1 for a selected model) and return one value per
restart.
"""
import warnings
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from analysis import checks

from ..core.trees import n_restarts
from ..models.likelihoods import LOG_2PI, gaussian_log_density
from .quadrature import log_likelihood_quadrature, log_likelihood_quadrature_with_error

#: Latent dimensions up to which the quadrature log-likelihood is computed.
QUADRATURE_MAX_LATENT = 2

__all__ = ["log_likelihood_is", "log_likelihood_is_with_ess", "ISLogLikelihood", "posterior_mean_is",
           "posterior_mean_is_with_ess", "ISPosteriorMean", "exact_log_likelihood", "log_likelihood_quadrature",
           "reference_log_likelihood", "held_out_log_likelihood"]


class ISLogLikelihood(NamedTuple):
    """The importance-sampled log-likelihood with its effective sample sizes (:func:`log_likelihood_is_with_ess`).

    Attributes
    ----------
    log_likelihood : ndarray (R, N)
        log p_theta(x_n) estimated as in :func:`log_likelihood_is` (paper Eq. 48).
    ess : ndarray (R, N)
        Each point's effective sample size (sum w)^2 / sum w^2, between 1 and
        the number of samples (0 where every weight is 0). Near 1, one draw
        decides the estimate: q misses the posterior there.
    """
    log_likelihood: np.ndarray
    ess: np.ndarray


class ISPosteriorMean(NamedTuple):
    """The self-normalized posterior mean with its effective sample sizes (:func:`posterior_mean_is_with_ess`).

    Attributes
    ----------
    mean : ndarray (R, N, K)
        E_{p_theta}[z | x_n] estimated as in :func:`posterior_mean_is`.
    ess : ndarray (R, N)
        Each point's effective sample size (sum w)^2 / sum w^2.
    """
    mean: np.ndarray
    ess: np.ndarray


def _deprecated_flag(flag, replacement):
    """Warn that ``flag=True`` is deprecated (at the caller's line): the NamedTuple twin replaces it."""
    warnings.warn(f"{flag}=True is deprecated; call training.evaluate.{replacement}(...) instead "
                  "(a NamedTuple that unpacks as before)", DeprecationWarning, stacklevel=3)


def importance_chunks(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries):
    """Draws from q_phi(z | x) with variances x ``inflate``, and their log importance weights.

    Yields ``(log_w, z)`` chunks of shapes (R, s, N) and (R, s, N, K),
    log_w = log p_theta(x | z) + log p(z) - log q(z | x) (normalized densities),
    until ``samples`` draws per point; R * s * N <= ``max_entries``. Draws are
    sample-major, so the stream does not depend on the chunk size.
    """
    mu, logvar = (np.asarray(a) for a in encoder(phi, x))
    R, N, K = mu.shape
    sd = np.sqrt(inflate * np.exp(logvar))
    log_sd = np.log(sd)
    noise = np.asarray(likelihood.noise(theta))[:, None, None, :]
    chunk = int(max(1, min(samples, max_entries // (R * N))))
    done = 0
    while done < samples:
        s = min(chunk, samples - done)
        eps = np.moveaxis(rng.standard_normal((s, R, N, K)), 0, 1)
        z = mu[:, None] + sd[:, None] * eps
        mean = np.asarray(likelihood.mean(theta, z.reshape(R, s * N, K))).reshape(R, s, N, -1)
        log_prior = -0.5 * np.sum(LOG_2PI + z * z, axis=-1)
        log_q = -0.5 * np.sum(LOG_2PI + 2 * log_sd[:, None] + eps * eps, axis=-1)
        yield gaussian_log_density(x, mean, noise) + log_prior - log_q, z
        done += s


def log_likelihood_is(likelihood, theta, encoder, phi, x, rng, samples=5000, inflate=2.0,
                      max_entries=2_000_000, return_ess=False):
    """Importance-sampled log p_theta(x) per point (paper Eq. 48).

    The proposal is q_phi(z | x) with its variance multiplied by ``inflate``
    (the paper's 2, for coverage); ``samples`` draws per point, processed in
    chunks and combined by log-sum-exp. :func:`log_likelihood_is_with_ess`
    also returns each point's effective sample size.

    Parameters
    ----------
    likelihood : training.models.Likelihood
    theta, phi : pytrees with R restarts
    encoder : training.models.Encoder
    x : array (N, D)
    rng : numpy.random.Generator
    samples : int
        S (>= 1); the paper's 5000.
    inflate : float
        > 0.
    max_entries : int
        Bound on R * chunk * N per chunk (memory).
    return_ess : bool
        Deprecated: use :func:`log_likelihood_is_with_ess` (True returns its
        :class:`ISLogLikelihood`, with a DeprecationWarning).

    Returns
    -------
    ndarray (R, N)

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> d = load_dataset("univariate", n_train=10, n_val=10, n_test=5)
    >>> phi = d.encoder.init([np.random.default_rng(0)])
    >>> log_likelihood_is(d.likelihood, d.truth, d.encoder, phi, d.test, np.random.default_rng(1),
    ...                   samples=100).shape
    (1, 5)
    """
    if return_ess:
        _deprecated_flag("return_ess", "log_likelihood_is_with_ess")
        return log_likelihood_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries)
    total, _ = _is_sums(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries, squares=False)
    return total - np.log(samples)


def log_likelihood_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples=5000, inflate=2.0,
                               max_entries=2_000_000):
    """:func:`log_likelihood_is` and each point's effective sample size, as an :class:`ISLogLikelihood`.

    Same arguments and the same draws: its ``log_likelihood`` equals
    :func:`log_likelihood_is` with the same ``rng``.

    Returns
    -------
    ISLogLikelihood
        ``log_likelihood`` (R, N) and ``ess`` (R, N), the effective sample
        size (sum w)^2 / sum w^2 (between 1 and ``samples``; near 1 means one
        draw decides the estimate, a sign that q misses the posterior).

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> d = load_dataset("univariate", n_train=10, n_val=10, n_test=5)
    >>> phi = d.encoder.init([np.random.default_rng(0)])
    >>> res = log_likelihood_is_with_ess(d.likelihood, d.truth, d.encoder, phi, d.test,
    ...                                  np.random.default_rng(1), samples=100)
    >>> res.log_likelihood.shape, bool(((1 <= res.ess) & (res.ess <= 100)).all())
    ((1, 5), True)
    """
    total, total2 = _is_sums(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries, squares=True)
    with np.errstate(invalid="ignore"):    # every weight 0: no effective sample at all
        ess = np.where(np.isfinite(total), np.exp(2.0 * total - total2), 0.0)
    return ISLogLikelihood(total - np.log(samples), ess)


def _is_sums(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries, squares):
    """log sum_s w_s per point (R, N), and log sum_s w_s^2 if ``squares`` (else None)."""
    x, samples, inflate = _check_is(x, rng, samples, inflate)
    total = total2 = -np.inf
    for log_w, _ in importance_chunks(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries):
        total = np.logaddexp(total, logsumexp(log_w, axis=1))
        if squares:
            total2 = np.logaddexp(total2, logsumexp(2.0 * log_w, axis=1))
    return total, (total2 if squares else None)


def _check_is(x, rng, samples, inflate):
    """The arguments every importance-sampling estimate shares: (x, samples, inflate)."""
    x = checks.real_array("x", x, 2)
    samples = checks.integer("samples", samples, 1)
    inflate = float(checks.positive("inflate", inflate))
    checks.generator("rng", rng)
    return x, samples, inflate


def posterior_mean_is(likelihood, theta, encoder, phi, x, rng, samples=2000, inflate=2.0,
                      max_entries=2_000_000, return_ess=False):
    """Self-normalized importance-sampling estimate of E_{p_theta}[z | x] per point.

    The proposal is q_phi(z | x) with its variances multiplied by ``inflate``
    (as in :func:`training.evaluate.log_likelihood_is`); with ``samples``
    draws z_s per point, log weights log w_s = log p_theta(x | z_s) +
    log p(z_s) - log q(z_s) are normalized by log-sum-exp (a running maximum
    over chunks), and the estimate is sum_s w_s z_s / sum_s w_s. All points
    and restarts are handled as one array program, in chunks of samples.
    :func:`posterior_mean_is_with_ess` also returns the effective sample sizes.

    The weights have finite variance only when the inflated proposal is wide
    enough: for a Gaussian posterior N(m, Sigma) and a proposal N(m, Lambda)
    that needs 2 Sigma^-1 - Lambda^-1 positive definite. The best mean-field
    q of LinearJTEx's truth (posterior correlation -0.81) needs
    ``inflate`` > 2.63; at the default 2 the estimate is still consistent but
    heavy-tailed (check the effective sample sizes).

    Parameters
    ----------
    likelihood : training.models.Likelihood
    theta, phi : pytrees with the same number R of restarts
    encoder : training.models.Encoder
    x : array (N, D)
    rng : numpy.random.Generator
    samples : int
        S >= 1 draws per point.
    inflate : float
        > 0.
    max_entries : int
        Bound on R * chunk * N per chunk (memory).
    return_ess : bool
        Deprecated: use :func:`posterior_mean_is_with_ess` (True returns its
        :class:`ISPosteriorMean`, with a DeprecationWarning).

    Returns
    -------
    ndarray (R, N, K)

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> d = load_dataset("univariate", n_train=10, n_val=10, n_test=10)
    >>> phi = d.encoder.init([np.random.default_rng(0)])
    >>> m = posterior_mean_is(d.likelihood, d.truth, d.encoder, phi, d.test,
    ...                       np.random.default_rng(1), samples=20000, inflate=9.0)
    >>> exact = d.likelihood.exact(d.truth).posterior(d.test)[0]
    >>> bool(np.max(np.abs(m - exact)) < 0.05)
    True
    """
    if return_ess:
        _deprecated_flag("return_ess", "posterior_mean_is_with_ess")
        return posterior_mean_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries)
    return posterior_mean_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries).mean


def posterior_mean_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples=2000, inflate=2.0,
                               max_entries=2_000_000):
    """:func:`posterior_mean_is` and each point's effective sample size, as an :class:`ISPosteriorMean`.

    Same arguments and the same draws: its ``mean`` equals
    :func:`posterior_mean_is` with the same ``rng``.

    Returns
    -------
    ISPosteriorMean
        ``mean`` (R, N, K) and ``ess`` (R, N), the effective sample sizes
        (sum w)^2 / sum w^2.

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> d = load_dataset("univariate", n_train=10, n_val=10, n_test=10)
    >>> phi = d.encoder.init([np.random.default_rng(0)])
    >>> res = posterior_mean_is_with_ess(d.likelihood, d.truth, d.encoder, phi, d.test,
    ...                                  np.random.default_rng(1), samples=200, inflate=9.0)
    >>> res.mean.shape, res.ess.shape
    ((1, 10, 1), (1, 10))
    """
    x, samples, inflate = _check_is(x, rng, samples, inflate)
    max_entries = checks.integer("max_entries", max_entries, 1)
    if x.shape[1] != likelihood.data_dim:
        raise ValueError(f"x must have shape (N, {likelihood.data_dim}); got {x.shape}")
    if n_restarts(theta) != n_restarts(phi):
        raise ValueError(f"theta and phi must have the same number of restarts; "
                         f"got {n_restarts(theta)} and {n_restarts(phi)}")
    top = -np.inf                             # running maximum log weight
    sum_w = sum_w2 = sum_wz = 0.0             # sums scaled by exp(-top)
    for log_w, z in importance_chunks(likelihood, theta, encoder, phi, x, rng, samples, inflate, max_entries):
        new_top = np.maximum(top, log_w.max(axis=1))
        shrink = np.exp(top - new_top)
        w = np.exp(log_w - new_top[:, None])
        sum_w = sum_w * shrink + w.sum(axis=1)
        sum_w2 = sum_w2 * shrink * shrink + np.sum(w * w, axis=1)
        sum_wz = sum_wz * shrink[..., None] + np.einsum("rsn,rsnk->rnk", w, z)
        top = new_top
    means = sum_wz / sum_w[..., None]
    if not np.all(np.isfinite(means)):
        raise FloatingPointError("non-finite importance weights: the likelihood or proposal "
                                 "is degenerate at some test points")
    return ISPosteriorMean(means, sum_w * sum_w / sum_w2)


def exact_log_likelihood(likelihood, theta, x):
    """log p_theta(x) in closed form for a linear-Gaussian likelihood: (R, N)."""
    x = checks.real_array("x", x, 2)
    return likelihood.exact(theta).log_likelihood(x)


def reference_log_likelihood(likelihood, theta, x):
    """log p_theta(x) per point (R, N) by the most accurate route: exact, else quadrature; None if neither.

    Exact for linear-Gaussian likelihoods, quadrature for latent dimension
    <= 2; other models have only the importance-sampled estimate.
    """
    if likelihood.linear:
        return exact_log_likelihood(likelihood, theta, x)
    if likelihood.latent_dim <= QUADRATURE_MAX_LATENT:
        return log_likelihood_quadrature(likelihood, theta, x)
    return None


def held_out_log_likelihood(likelihood, theta, encoder, phi, x, rng, samples=5000, inflate=2.0, worst=3):
    """The average test log-likelihood per restart (R,) by every estimator available, with diagnostics.

    Returns
    -------
    dict
        ``is`` (R,) the importance-sampled estimate (the paper's estimator)
        and ``is_se`` (R,) its standard error over points; ``is_ess_mean``,
        ``is_ess_min`` (R,) the effective sample sizes over points;
        ``exact`` (R,) for linear-Gaussian likelihoods, else None;
        ``quadrature`` (R,) for latent dimension <= 2, else None, with
        ``quadrature_error`` (R,) the largest per-point error estimate and
        ``quadrature_unconverged`` (R,) the points short of the tolerance;
        ``worst`` per restart, the ``worst`` points where IS falls furthest
        below the reference (quadrature, or exact): dicts of ``index``,
        ``is``, ``reference`` and ``ess``.
    """
    per_point, ess = log_likelihood_is_with_ess(likelihood, theta, encoder, phi, x, rng, samples, inflate)
    out = {"is": per_point.mean(axis=-1),
           "is_se": per_point.std(axis=-1, ddof=1) / np.sqrt(per_point.shape[-1]),
           "is_ess_mean": ess.mean(axis=-1), "is_ess_min": ess.min(axis=-1),
           "exact": None, "quadrature": None, "quadrature_error": None, "quadrature_unconverged": None}
    reference = None
    if likelihood.linear:
        reference = exact_log_likelihood(likelihood, theta, x)
        out["exact"] = reference.mean(axis=-1)
    if likelihood.latent_dim <= QUADRATURE_MAX_LATENT:
        quad = log_likelihood_quadrature_with_error(likelihood, theta, x)
        out.update(quadrature=quad.log_likelihood.mean(axis=-1), quadrature_error=quad.error.max(axis=-1),
                   quadrature_unconverged=np.sum(~quad.converged, axis=-1))
        reference = quad.log_likelihood if reference is None else reference
    out["worst"] = None
    if reference is not None:
        gap = reference - per_point
        order = np.argsort(-gap, axis=-1)[:, :worst]
        out["worst"] = [[{"index": int(i), "is": float(per_point[r, i]), "reference": float(reference[r, i]),
                          "ess": float(ess[r, i])} for i in order[r]] for r in range(per_point.shape[0])]
    return out


