"""VAE vs LiBI on LinearJTEx, per data set: learned A A^T and test log-likelihoods against the exact theory.

    python benchmarks/linear_jtex_vae_vs_libi.py [--seeds 0 1 2]

For each seed: the VAE (exact ELBO, 4500 epochs, 4 restarts) and LiBI (3000 +
1500 epochs, 3 restarts); printed are A A^T + sigma^2 I against the training
second moment S = X^T X / N, the exact VAE optimum for that S
(analysis.jtex_vae_optimum), the exact test log-likelihood per point on the
test split and the expected one under the true data distribution (truth:
-2.9708; the VAE's global optimum: -3.1328).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_vae_optimum  # noqa: E402
from training.datasets import load_dataset                                      # noqa: E402
from training.evaluate import exact_log_likelihood                              # noqa: E402
from training.trainers.libi import LiBI
from training.trainers import VAE                                               # noqa: E402

TRUE_S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)


def fmt(M):
    return "[[{:.3f}, {:.3f}], [{:.3f}, {:.3f}]]".format(*np.ravel(M))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"truth: A A^T + s2 I = {fmt(TRUE_S)}, expected test LL "
          f"{float(LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2).expected_log_likelihood(TRUE_S)):.4f}")
    for seed in args.seeds:
        data = load_dataset("linear_jtex", seed)
        S = data.second_moment
        opt = jtex_vae_optimum(S, JTEX_B, JTEX_SIGMA2)
        print(f"\nseed {seed}: S = X^T X/N = {fmt(S)}; exact VAE optimum A A^T + s2 I = "
              f"{fmt(opt.AAt + JTEX_SIGMA2 * np.eye(2))} (objective {opt.objective:.4f})")
        for name, trainer in (("VAE", VAE(epochs=4500, restarts=4, seed=seed)),
                              ("LiBI", LiBI(epochs=3000, inference_epochs=1500, restarts=3, seed=seed))):
            t0 = time.process_time()
            trainer.fit(data)
            A = trainer.theta_["A"][0]
            C = A @ A.T + JTEX_SIGMA2 * np.eye(2)
            model = LinearGaussian.jtex(A, JTEX_B, JTEX_SIGMA2)
            test_ll = float(exact_log_likelihood(data.likelihood, trainer.theta_, data.test).mean())
            print(f"  {name:4s}: A A^T + s2 I = {fmt(C)}, rel. error to S {np.linalg.norm(C - S) / np.linalg.norm(S):.4f}, "
                  f"to the VAE optimum {np.linalg.norm(C - opt.AAt - JTEX_SIGMA2 * np.eye(2)) / np.linalg.norm(S):.4f}; "
                  f"test LL {test_ll:.4f}, expected LL {float(model.expected_log_likelihood(TRUE_S)):.4f}, "
                  f"objective at S {float(model.vae_objective(S)):.4f} ({time.process_time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
