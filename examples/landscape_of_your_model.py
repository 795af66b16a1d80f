"""The exact VAE landscape of a JTEx model you type in (the paper's Figure 1 A-B, your A and sigma2).

JTEx (Yacoby, Pan & Doshi-Velez 2020, Eq. 3): x = W z + eps with
W = chol(A A^T + B), eps ~ N(0, sigma2 I - B), B = diag(b1, b2) in [0, sigma2)^2.
Every B gives p(x) = N(0, A A^T + sigma2 I): the likelihood cannot choose B,
the VAE objective's mean-field KL, 1/2 [sum_i log P_ii - log det P], does.
The landscape shows which B the VAE prefers and how much I(X;Z) that costs.

Run: python examples/landscape_of_your_model.py [OUT_DIR]   (default out/examples)
The same from the shell: python -m analysis landscape --A "1,0.3;-0.5,0.8" --sigma2 0.05 --out OUT_DIR
"""
import sys
from pathlib import Path

import numpy as np

from analysis import LinearGaussian
from analysis.figures import landscape_figure, univariate_figure

A = np.array([[1.0, 0.3],          # your model: any 2 x 2 A ...
              [-0.5, 0.8]])
SIGMA2 = 0.05                      # ... and noise level
B_TRUTH = [0.03, 0.03]             # the B your data came from


def main(out_dir="out/examples"):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    land = landscape_figure(A, SIGMA2, b=B_TRUTH, grid=120)
    i, j = land["argmin"]
    b1, b2 = land["optimum"]
    best = LinearGaussian.jtex(A, [b1, b2], SIGMA2)
    print(f"truth   B = diag({B_TRUTH[0]:g}, {B_TRUTH[1]:g}): objective {land['truth_objective']:.5f}")
    print(f"optimum B = diag({b1:.4f}, {b2:.4f}): objective {land['vae_objective'][i, j]:.5f}, "
          f"I(X;Z) {land['mutual_information'][i, j]:.3f} "
          f"(grid range {land['mutual_information'].min():.3f} to {land['mutual_information'].max():.3f})")
    print(f"same p(x) at both: max |C_opt - C_truth| = "
          f"{np.abs(best.marginal_cov() - (A @ A.T + SIGMA2 * np.eye(2))).max():.1e}")
    land["figure"].savefig(out / "landscape.png", dpi=80)
    # The univariate model: a flat objective over theta, yet the posterior changes.
    uni = univariate_figure(SIGMA2)
    uni["figure"].savefig(out / "univariate.png", dpi=80)
    print(f"univariate: max |L(theta)| = {np.abs(uni['vae_objective']).max():.1e} over |theta| < sigma; "
          f"figures in {out}/")


if __name__ == "__main__":
    main(*sys.argv[1:2])
