"""A linear VAE written by hand in autograd, checked against the exact optimum.

Model:   z ~ N(0, I_K),  x | z ~ N(W z, s2 I)          (decoder W, learned noise s2)
Encoder: q(z | x) = N(M x, diag(v))                     (linear mean, shared variances)

For data with second moment S = X^T X / N the ELBO is a closed form (no
sampling), per point:

  -ELBO = 1/2 [D log(2 pi s2) + tr((I - W M) S (I - W M)^T + W diag(v) W^T) / s2]
          + 1/2 [sum(v) + tr(M S M^T) - K - sum(log v)]

Minus the data's entropy 1/2 [D log(2 pi e) + log det S] this is the exact
VAE objective L = KL[N(0, S) || p(x)] + KL[q || p(z | x)]. We fit it with
L-BFGS on autograd's gradient, then ask `analysis.testing` whether the fit is
the global optimum: probabilistic PCA, rotated so the posterior is diagonal.

Run: python examples/autograd_linear_vae.py
"""
import autograd.numpy as anp
import numpy as np
import scipy.optimize
from autograd import value_and_grad

from analysis import linear_vae_optimum
from analysis.testing import assert_mle, assert_posterior_exact, assert_vae_optimum

D, K, N = 5, 2, 1000


def negative_elbo(params, S):
    W = params[:D * K].reshape(D, K)
    M = params[D * K:2 * D * K].reshape(K, D)
    log_v, log_s2 = params[2 * D * K:2 * D * K + K], params[-1]
    v, s2 = anp.exp(log_v), anp.exp(log_s2)
    R = anp.eye(D) - anp.dot(W, M)
    recon = 0.5 * (D * (anp.log(2 * anp.pi) + log_s2)
                   + (anp.trace(anp.dot(anp.dot(R, S), R.T)) + anp.sum(W**2 * v)) / s2)
    kl = 0.5 * (anp.sum(v) + anp.trace(anp.dot(anp.dot(M, S), M.T)) - K - anp.sum(log_v))
    return recon + kl


def main():
    rng = np.random.default_rng(0)
    W_true = rng.standard_normal((D, K))
    X = rng.standard_normal((N, K)) @ W_true.T + np.sqrt(0.3) * rng.standard_normal((N, D))
    S = X.T @ X / N

    p0 = np.concatenate([0.1 * rng.standard_normal(2 * D * K), np.zeros(K + 1)])
    fit = scipy.optimize.minimize(value_and_grad(negative_elbo), p0, args=(S,), jac=True, method="L-BFGS-B",
                                  options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000})
    W = fit.x[:D * K].reshape(D, K)
    M = fit.x[D * K:2 * D * K].reshape(K, D)
    v, s2 = np.exp(fit.x[2 * D * K:2 * D * K + K]), np.exp(fit.x[-1])
    entropy = 0.5 * (D * np.log(2 * np.pi * np.e) + np.linalg.slogdet(S)[1])
    print(f"trained by L-BFGS in {fit.nit} iterations: exact VAE objective {fit.fun - entropy:.10f}")

    opt = linear_vae_optimum(S, K, noise="isotropic", seed=0)
    print(f"exact optimum (pPCA, rotated):               {opt.objective:.10f} "
          f"({opt.n_agree} of {opt.minima.size} starts agree)")
    print(f"learned s2 = {s2:.6f}, optimum's {opt.noise_cov[0, 0]:.6f}")

    Psi = s2 * np.eye(D)
    assert_vae_optimum(W, Psi, S, noise="isotropic")     # the decoder is at the global optimum
    assert_mle(W, Psi, S, noise="isotropic")             # ... which is the maximum-likelihood fit
    assert_posterior_exact(W, Psi, M, v, exact=True)     # q is the exact posterior
    print("analysis.testing: decoder at the VAE optimum = MLE; encoder = exact posterior")


if __name__ == "__main__":
    main()
