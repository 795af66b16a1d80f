"""The same check on a PyTorch linear VAE (torch is not a dependency of this package).

Model:   z ~ N(0, I_K),  x | z ~ N(W z, diag(psi))      (decoder W, learned diagonal noise)
Encoder: q(z | x) = N(M x, diag(v))

The exact ELBO for data of second moment S = X^T X / N, per point:

  -ELBO = 1/2 [D log 2 pi + sum(log psi) + tr(Psi^-1 ((I - W M) S (I - W M)^T + W diag(v) W^T))]
          + 1/2 [sum(v) + tr(M S M^T) - K - sum(log v)]

A float64 torch model trained by torch.optim.LBFGS; the check is numpy in:
the learned tensors go to `analysis.testing` as arrays. With diagonal noise
(factor analysis) there is no closed form; the reference optimum is
`analysis.linear_vae_optimum(S, K, noise="diagonal")`.

Run: python examples/pytorch_linear_vae.py   (needs: pip install torch)
"""
import math

import numpy as np
import torch

from analysis import linear_vae_optimum
from analysis.testing import assert_mle, assert_posterior_exact, assert_vae_optimum

D, K, N = 5, 2, 1000


class LinearVAE(torch.nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.W = torch.nn.Parameter(0.1 * torch.randn(D, K, generator=generator, dtype=torch.float64))
        self.M = torch.nn.Parameter(0.1 * torch.randn(K, D, generator=generator, dtype=torch.float64))
        self.log_v = torch.nn.Parameter(torch.zeros(K, dtype=torch.float64))
        self.log_psi = torch.nn.Parameter(torch.zeros(D, dtype=torch.float64))

    def negative_elbo(self, S):
        v, psi = self.log_v.exp(), self.log_psi.exp()
        R = torch.eye(D, dtype=torch.float64) - self.W @ self.M
        resid = R @ S @ R.T + self.W @ torch.diag(v) @ self.W.T
        recon = 0.5 * (D * math.log(2 * math.pi) + self.log_psi.sum() + (torch.diagonal(resid) / psi).sum())
        kl = 0.5 * (v.sum() + torch.trace(self.M @ S @ self.M.T) - K - self.log_v.sum())
        return recon + kl


def main():
    rng = np.random.default_rng(1)
    W_true = rng.standard_normal((D, K))
    psi_true = rng.uniform(0.1, 0.5, D)
    X = rng.standard_normal((N, K)) @ W_true.T + np.sqrt(psi_true) * rng.standard_normal((N, D))
    S = X.T @ X / N

    vae = LinearVAE(torch.Generator().manual_seed(0))
    S_t = torch.from_numpy(S)
    opt = torch.optim.LBFGS(vae.parameters(), lr=1.0, max_iter=5000, tolerance_grad=1e-12,
                            tolerance_change=1e-15, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = vae.negative_elbo(S_t)
        loss.backward()
        return loss

    opt.step(closure)
    W = vae.W.detach().numpy()
    M = vae.M.detach().numpy()
    v, psi = vae.log_v.exp().detach().numpy(), vae.log_psi.exp().detach().numpy()
    entropy = 0.5 * (D * np.log(2 * np.pi * np.e) + np.linalg.slogdet(S)[1])
    print(f"trained by torch LBFGS: exact VAE objective {vae.negative_elbo(S_t).item() - entropy:.10f}")

    ref = linear_vae_optimum(S, K, noise="diagonal", seed=0)
    print(f"exact optimum (factor analysis, rotated): {ref.objective:.10f} "
          f"({ref.n_agree} of {ref.minima.size} starts agree)")

    Psi = np.diag(psi)
    assert_vae_optimum(W, Psi, S, noise="diagonal")
    assert_mle(W, Psi, S, noise="diagonal")
    assert_posterior_exact(W, Psi, M, v, exact=True)
    print("analysis.testing: decoder at the VAE optimum = MLE; encoder = exact posterior")


if __name__ == "__main__":
    main()
