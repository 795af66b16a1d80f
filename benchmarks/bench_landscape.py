"""Benchmark: the exact JTEx landscape over B (paper Fig. 1A-B) on a 1000 x 1000 grid.

Compares three ways to evaluate the mean-field KL, I(X;Z) and the VAE
objective at every (B11, B22) cell:

1. ``analysis.jtex_b_landscape``: the sympy-derived closed forms, lambdified
   to numpy and broadcast over the grid (one array program);
2. ``analysis.LinearGaussian.jtex`` batched over the same grid (a second
   vectorized path: batched Cholesky / solves on (10^6, 2, 2) stacks);
3. a per-cell Python loop with plain ``np.linalg`` on 2 x 2 matrices (the
   baseline), on a random sample of cells, whose values must equal the
   vectorized ones.

Targets: the full 10^6-cell grid in < 1 s on one core and a
per-cell cost >= 100x below the loop's. Run single-threaded::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_landscape.py

Options: ``--grid N`` (default 1000), ``--cells N`` (loop sample, default
2000), ``--repeats N`` (best of, default 5), ``--seed S``.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import JTEX_A, JTEX_SIGMA2, LinearGaussian, jtex_b_landscape  # noqa: E402
from analysis.compiled import jtex_functions  # noqa: E402


def best_of(fn, repeats):
    """(best wall time in s, last result) over ``repeats`` calls."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def loop_cells(A, sigma2, S, b1, b2, cells):
    """Per-cell numpy (2 x 2 linear algebra): mean-field KL, I(X;Z), VAE objective."""
    AAt = A @ A.T
    I2 = np.eye(2)
    logdet_S = np.log(np.linalg.det(S))
    out = np.empty((len(cells), 3))
    for k, (i, j) in enumerate(cells):
        B = np.diag([b1[i], b2[j]])
        W = np.linalg.cholesky(AAt + B)
        Psi = sigma2 * I2 - B
        P = I2 + W.T @ np.linalg.solve(Psi, W)
        logdet_P = np.log(np.linalg.det(P))
        kl = 0.5 * (np.sum(np.log(np.diag(P))) - logdet_P)
        mi = 0.5 * logdet_P
        C = W @ W.T + Psi
        mle = 0.5 * (np.trace(np.linalg.solve(C, S)) - 2 + np.log(np.linalg.det(C)) - logdet_S)
        out[k] = kl, mi, kl + mle
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.grid < 2 or args.cells < 1 or args.repeats < 1:
        parser.error("--grid must be >= 2, --cells and --repeats >= 1")

    A, sigma2 = JTEX_A, JTEX_SIGMA2
    S = A @ A.T + sigma2 * np.eye(2)
    b = np.linspace(0.0, sigma2, args.grid + 1)[:-1]
    n_cells = b.size**2
    print(f"threads: OMP={os.environ.get('OMP_NUM_THREADS')} OPENBLAS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"grid {args.grid} x {args.grid} = {n_cells:,} cells; best of {args.repeats}")

    t0 = time.perf_counter()
    jtex_functions()                                   # sympy derivation + lambdify (cached afterwards)
    compile_s = time.perf_counter() - t0
    jtex_b_landscape(A, sigma2, b[:10], b[:10])        # warm-up
    vec_s, land = best_of(lambda: jtex_b_landscape(A, sigma2, b, b), args.repeats)

    B1, B2 = np.meshgrid(b, b, indexing="ij")
    bb = np.stack([B1, B2], axis=-1)

    def batched():
        m = LinearGaussian.jtex(A, bb, sigma2)
        return m.mean_field_kl(), m.mutual_information(), m.vae_objective(S)

    lg_s, (lg_kl, lg_mi, lg_obj) = best_of(batched, max(1, min(args.repeats, 3)))

    rng = np.random.default_rng(args.seed)
    cells = rng.integers(0, b.size, size=(min(args.cells, n_cells), 2))
    loop_cells(A, sigma2, S, b, b, cells[:10])         # warm-up
    loop_s, ref = best_of(lambda: loop_cells(A, sigma2, S, b, b, cells), max(1, min(args.repeats, 3)))

    i, j = cells[:, 0], cells[:, 1]
    for name, got in (("mean_field_kl", (land["mean_field_kl"][i, j], lg_kl[i, j])),
                      ("mutual_information", (land["mutual_information"][i, j], lg_mi[i, j])),
                      ("vae_objective", (land["vae_objective"][i, j], lg_obj[i, j]))):
        col = ("mean_field_kl", "mutual_information", "vae_objective").index(name)
        for label, values in zip(("jtex_b_landscape", "LinearGaussian.jtex"), got):
            err = np.max(np.abs(values - ref[:, col]) / np.abs(ref[:, col]))
            status = "OK" if err < 1e-9 else "MISMATCH"
            print(f"check {name:<19} {label:<20} vs loop on {len(cells)} cells: max rel err {err:.1e} {status}")
            if err >= 1e-9:
                return 1

    per_vec = vec_s / n_cells
    per_lg = lg_s / n_cells
    per_loop = loop_s / len(cells)
    print()
    print(f"compile (sympy derivation + lambdify, once): {compile_s:8.3f} s")
    print(f"jtex_b_landscape, full grid:               {vec_s:8.3f} s   {per_vec * 1e9:9.1f} ns/cell")
    print(f"LinearGaussian.jtex batched, full grid:    {lg_s:8.3f} s   {per_lg * 1e9:9.1f} ns/cell")
    print(f"per-cell numpy loop, {len(cells)} cells:          {loop_s:8.3f} s   {per_loop * 1e9:9.1f} ns/cell"
          f"   (full grid extrapolated: {per_loop * n_cells:.0f} s)")
    print(f"speed-up per cell: jtex_b_landscape {per_loop / per_vec:,.0f}x, "
          f"LinearGaussian.jtex {per_loop / per_lg:,.0f}x over the loop")
    full = n_cells == 10**6
    print(f"target full 10^6 grid < 1 s: {'met' if vec_s < 1 and full else 'NOT met' if full else 'n/a'} "
          f"({vec_s:.3f} s); target >= 100x per cell: {'met' if per_loop / per_vec >= 100 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
