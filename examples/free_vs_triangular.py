"""Same data, same noise: a free W reaches the MLE, JTEx's triangular W does not. Why: rotation.

Data: the paper's LinearJTEx truth, S = A A^T + sigma2 I (sigma2 = 0.01).
Noise: Psi = sigma2 I - B = 0.004 I, fixed in both models.

  free W (D x K):      x = W z + eps                      -> linear_vae_optimum(S, 2, noise=Psi)
  JTEx:                x = chol(A A^T + B) z + eps         -> jtex_vae_optimum(S, b, sigma2)

The exact VAE objective is L = KL[N(0, S) || p(x)] + KL_mf, with
KL_mf = 1/2 [sum_i log P_ii - log det P] and P = I + W^T Psi^-1 W.
W -> W R (R orthogonal) keeps p(x) and turns P into R^T P R; the R of P's
eigenvectors makes it diagonal, so KL_mf = 0. A free W can take that R, so
its VAE optimum is the MLE (L = 0 here). JTEx's W is lower triangular and
W R is not, so JTEx pays: it trades likelihood for a more diagonal posterior.

Run: python examples/free_vs_triangular.py
"""
import numpy as np

from analysis import (JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_vae_optimum, linear_vae_optimum,
                      mean_field_rotation)
from analysis.testing import assert_vae_optimum


def main():
    S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    Psi = JTEX_SIGMA2 * np.eye(2) - np.diag(JTEX_B)

    free = linear_vae_optimum(S, 2, noise=Psi, seed=0)
    jtex = jtex_vae_optimum(S, JTEX_B, JTEX_SIGMA2, restarts=5, seed=0)
    print(f"{'same S, Psi = 0.004 I':<28}{'objective':>11}{'MLE term':>11}{'mean-field KL':>15}{'starts agree':>14}")
    for name, r in [("free W (MLE)", free), ("JTEx, triangular W", jtex)]:
        o, m, q = (round(v, 5) + 0.0 for v in (r.objective, r.mle_term, r.mean_field_kl))  # no "-0.00000"
        print(f"{name:<28}{o:>11.5f}{m:>11.5f}{q:>15.5f}"
              f"{r.n_agree:>8} of {r.minima.size}")

    # Why: the truth's own W has a correlated posterior; the rotation that fixes it breaks the triangle.
    truth = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    W = truth.W
    R = mean_field_rotation(W, Psi)
    rotated = LinearGaussian(W @ R, Psi)
    cov = truth.posterior_cov()
    print(f"\ntruth W = chol(A A^T + B):\n{np.round(W, 4)}\n"
          f"  posterior correlation {cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]):.3f}, "
          f"mean-field KL {float(truth.mean_field_kl()):.5f}")
    print(f"W R, R = mean_field_rotation(W, Psi):\n{np.round(W @ R, 4)}\n"
          f"  same p(x) (max |change| {np.abs(rotated.marginal_cov() - S).max():.1e}), "
          f"mean-field KL {abs(float(rotated.mean_field_kl())):.1e}; not lower triangular")
    print(f"JTEx optimum W and its rotation W R:\n{np.round(jtex.W, 4)}\n{np.round(jtex.W @ jtex.rotation, 4)}")

    assert_vae_optimum(W @ R, Psi, S)              # the rotated truth is a VAE optimum for a free W
    try:
        assert_vae_optimum(W, Psi, S)              # the unrotated one is not
    except AssertionError as err:
        print("\nassert_vae_optimum(truth W, ...) fails as it should:\n" + str(err).split("\n  optimum W")[0])
    else:
        raise SystemExit("expected the unrotated truth to fail")
    assert free.objective < 1e-8 and jtex.objective > 0.19


if __name__ == "__main__":
    main()
