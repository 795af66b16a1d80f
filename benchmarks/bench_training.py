"""Benchmark: batched VAE training, importance-sampled test log-likelihood, smooth k-NN.

Measures, single-threaded:

1. VAE training cost in microseconds per (restart x epoch) on ``linear_jtex``
   (exact ELBO) and ``mobius`` (reparameterized Monte Carlo ELBO, one draw per
   point) with R = 1, 10 and 100 restarts batched along the leading axis
   (500 training points, validation every 10 epochs included), after a
   warm-up fit; CPU time (``time.process_time``) and wall time, best of
   ``--repeats``; and the batching gain, the per-restart-epoch cost at R = 1
   over that at R = 100.
   For Mobius, the time of its tanh evaluations alone (the decoder's hidden
   units on the training draws and, amortized, the validation draws) and of
   its encoder alone at R = 100: work that batching cannot remove, and the
   largest gain each leaves (if all the rest of R = 1's cost were overhead
   that batching divides by R).
   1b. LiBI Step 1 at R = 1 and 10 on the same data sets, beside the VAE's.
   1c. Several hyper-parameter settings as one batched computation
   (``training.trainers.fit_batched``, 3 beta-VAE settings) against the same
   settings fitted one after another, at R = 2 and 10 restarts per setting.
2. The importance-sampled test log-likelihood of 500 test points with 5000
   samples each (``training.evaluate.log_likelihood_is``, one restart) on
   ``linear_jtex`` and ``mobius``.
3. 20 000 repetitions of the smooth k-NN statistic, 100 vs 100 points
   (``training.evaluate.smooth_knn`` on ``linear_jtex``, the truth as theta).

Targets: batching 100 restarts >= 10x cheaper per restart-epoch
than R = 1; the IS test log-likelihood under 2 s; 20 000 k-NN repetitions
under 20 s. Run single-threaded::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_training.py

Options: ``--epochs N`` (timed epochs per fit, default 300), ``--restarts``
(default ``1 10 100``), ``--repeats N`` (best of, default 2), ``--knn-repeats``
(default 20000), ``--profile`` (cProfile the parts that miss their target).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.datasets import load_dataset  # noqa: E402
from training.trainers.engine import restart_streams
from training.evaluate import log_likelihood_is, smooth_knn  # noqa: E402
from training.trainers import VAE, BetaVAE, fit_batched  # noqa: E402

TARGET_GAIN, TARGET_IS_S, TARGET_KNN_S = 10.0, 2.0, 20.0


def timed(fn, repeats=1):
    """(best CPU seconds, best wall seconds, last result) over ``repeats`` calls."""
    cpu, wall, out = np.inf, np.inf, None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu, wall, out


def load():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def bench_training(data, restarts, epochs, repeats):
    """Per restart-epoch microseconds (CPU, wall) for each R in ``restarts``."""
    rows = {}
    for R in restarts:
        VAE(epochs=20, restarts=R, seed=0).fit(data)                       # warm-up
        cpu, wall, _ = timed(lambda: VAE(epochs=epochs, restarts=R, seed=0).fit(data), repeats)
        rows[R] = (1e6 * cpu / (R * epochs), 1e6 * wall / (R * epochs))
    return rows


def tanh_floor(data, repeats, restarts=100):
    """CPU microseconds per restart-epoch of the Mobius decoder's tanh units alone.

    Per epoch a VAE fit evaluates them on mc_samples x N training draws and,
    every ``eval_every`` epochs, on val_mc_samples x N validation draws.
    """
    vae = VAE()
    widths = sum(data.likelihood.sizes[1:-1])
    per_epoch = widths * (vae.mc_samples * len(data.train)
                          + vae.val_mc_samples * len(data.val) / vae.eval_every)
    a = np.random.default_rng(0).standard_normal(int(restarts * per_epoch))
    out = np.empty_like(a)
    cpu, _, _ = timed(lambda: np.tanh(a, out=out), repeats + 2)
    return 1e6 * cpu / restarts


def encoder_cost(data, repeats, restarts=100):
    """CPU microseconds per restart-epoch of the encoder alone at R = ``restarts``.

    Forward and backward on the training points, plus the validation
    forward every ``eval_every`` epochs.
    """
    import autograd.numpy as anp
    from autograd import grad
    enc, vae = data.encoder, VAE()
    phi = enc.init([s[0] for s in restart_streams(0, restarts)])
    step = grad(lambda p: sum(anp.sum(o) for o in enc(p, data.train)))
    step(phi)
    cpu, _, _ = timed(lambda: step(phi), repeats + 2)
    val, _, _ = timed(lambda: enc(phi, data.val), repeats + 2)
    return 1e6 * (cpu + val / vae.eval_every) / restarts


def bench_settings(data, betas, restarts, epochs, repeats):
    """Per restart-epoch CPU microseconds: ``betas`` fitted batched vs one after another."""
    def grid():
        return [BetaVAE(beta=b, epochs=epochs, restarts=restarts, seed=0) for b in betas]
    fit_batched(grid(), data)                                                 # warm-up
    batched, _, _ = timed(lambda: fit_batched(grid(), data), repeats)
    separate, _, _ = timed(lambda: [t.fit(data) for t in grid()], repeats)
    n = len(betas) * restarts * epochs
    return 1e6 * batched / n, 1e6 * separate / n


def bench_libi_step1(data, restarts, epochs, repeats):
    """LiBI Step 1 (penalized joint fit of theta and varphi, Eq. 44): per restart-epoch us."""
    from training.trainers.engine import BatchedRun
    from training.trainers.libi import LiBI
    from training.models import Encoder
    from training.core.optim import adam
    rows = {}
    for R in restarts:
        libi = LiBI(epochs=epochs, restarts=R, seed=0)
        params, _ = libi._setup(data)
        loss = libi._step1_loss(data, data.train)

        def fit():
            run = BatchedRun({"theta": params["theta"], "varphi": Encoder.deterministic_part(params["phi"])},
                             adam(0.01))
            for _ in range(epochs):
                run.step(loss, ("theta", "varphi"))
        fit()
        cpu, wall, _ = timed(fit, repeats)
        rows[R] = (1e6 * cpu / (R * epochs), 1e6 * wall / (R * epochs))
    return rows


def is_inputs(name):
    d = load_dataset(name, seed=0)
    phi = d.encoder.init([s[0] for s in restart_streams(0, 1)])
    phi["logvar"]["b"] = phi["logvar"]["b"] - 3.0
    return d, phi


def bench_is(name, samples, repeats):
    d, phi = is_inputs(name)
    run = lambda: log_likelihood_is(d.likelihood, d.truth, d.encoder, phi, d.test,  # noqa: E731
                                    np.random.default_rng(0), samples=samples)
    run()                                                                         # warm-up
    cpu, wall, out = timed(run, repeats)
    assert out.shape == (1, 500) and np.all(np.isfinite(out))
    return cpu, wall


def bench_knn(repeats):
    d = load_dataset("linear_jtex", seed=0)
    smooth_knn(d, d.truth, np.random.default_rng(1), repeats=100)                 # warm-up
    cpu, wall, res = timed(lambda: smooth_knn(d, d.truth, np.random.default_rng(0), repeats=repeats))
    return cpu, wall, res


def profile(fn, label, top=15):
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    print(f"\n--- cProfile: {label} (cumulative, top {top}) ---")
    print(buf.getvalue())
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    print(f"--- cProfile: {label} (own time, top {top}) ---")
    print(buf.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--restarts", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--is-samples", type=int, default=5000)
    parser.add_argument("--knn-repeats", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="cProfile the parts that miss their target")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or min(args.restarts) < 1 or args.knn_repeats < 2:
        parser.error("--epochs, --repeats and --restarts must be >= 1, --knn-repeats >= 2")

    print(f"load average at start: {load()[0]:.2f} {load()[1]:.2f} {load()[2]:.2f} "
          f"(cores: {os.cpu_count()}); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"\n1. VAE training, 500 points, {args.epochs} epochs (validation every 10), best of {args.repeats}")
    print(f"{'data set':<12} {'ELBO':<6} {'R':>5} {'CPU us/(R*epoch)':>17} {'wall us/(R*epoch)':>18} "
          f"{'CPU s/fit':>10}")
    gains, missed = {}, []
    for name, elbo in (("linear_jtex", "exact"), ("mobius", "MC")):
        data = load_dataset(name, seed=0)
        rows = bench_training(data, args.restarts, args.epochs, args.repeats)
        for R, (cpu, wall) in rows.items():
            print(f"{name:<12} {elbo:<6} {R:>5} {cpu:>17.1f} {wall:>18.1f} {cpu * R * args.epochs / 1e6:>10.2f}")
        lo, hi = min(rows), max(rows)
        if lo != hi:
            gains[name] = (rows[lo][0] / rows[hi][0], rows[lo][1] / rows[hi][1])
            ok = gains[name][0] >= TARGET_GAIN
            print(f"{'':<12} batching gain R={lo} / R={hi} per restart-epoch: CPU {gains[name][0]:.1f}x, "
                  f"wall {gains[name][1]:.1f}x (target >= {TARGET_GAIN:g}x: {'met' if ok else 'MISSED'})")
            if name == "mobius":
                # Work that batching cannot remove: it costs the same per restart at any R.
                # If all the rest of R=1's cost were overhead divided by R, the gain is at most:
                one = rows[lo][0]
                floor = tanh_floor(data, args.repeats)
                encoder = encoder_cost(data, args.repeats, hi)
                print(f"{'':<12} tanh units alone: {floor:.0f} us per restart-epoch -> gain at most "
                      f"{one / (floor + (one - floor) / hi):.1f}x; with the encoder at R={hi} "
                      f"(+{encoder:.0f} us): at most {one / (floor + encoder + (one - floor - encoder) / hi):.1f}x")
            if not ok:   # profile both ends: R=lo is overhead, R=hi is array work
                missed.append((f"training {name} R={lo}, {args.epochs} epochs",
                               lambda d=data: VAE(epochs=args.epochs, restarts=lo, seed=0).fit(d)))
                short = max(1, args.epochs // 10)
                missed.append((f"training {name} R={hi}, {short} epochs",
                               lambda d=data: VAE(epochs=short, restarts=hi, seed=0).fit(d)))

    print(f"\n1b. LiBI Step 1 (Eq. 44 with the Henze-Zirkler term, O(N^2) per restart), "
          f"{args.epochs} epochs, best of {args.repeats}")
    for name in ("linear_jtex", "mobius"):
        data = load_dataset(name, seed=0)
        rows = bench_libi_step1(data, [r for r in args.restarts if r <= 10], args.epochs, args.repeats)
        for R, (cpu, wall) in rows.items():
            print(f"{name:<12} {'LiBI-1':<6} {R:>5} {cpu:>17.1f} {wall:>18.1f} {cpu * R * args.epochs / 1e6:>10.2f}")
    print("   (LinearJTEx's encoder is affine and invertible: HZ(Z) = HZ(X) is constant and computed once.)")

    betas = (0.5, 2.0, 5.0)
    print(f"\n1c. {len(betas)} beta-VAE settings (beta = {betas}), {args.epochs} epochs: fit_batched vs "
          f"one fit after another, CPU us per (setting x restart x epoch), best of {args.repeats}")
    for name in ("linear_jtex", "mobius"):
        data = load_dataset(name, seed=0)
        for R in (2, 10):
            batched, separate = bench_settings(data, betas, R, args.epochs, args.repeats)
            print(f"{name:<12} R={R:<3} batched {batched:8.1f}  separate {separate:8.1f}  "
                  f"gain {separate / batched:.2f}x")

    print(f"\n2. Importance-sampled test log-likelihood: 500 points x {args.is_samples} samples, one restart")
    for name in ("linear_jtex", "mobius"):
        cpu, wall = bench_is(name, args.is_samples, 3)
        ok = cpu < TARGET_IS_S
        print(f"{name:<12} CPU {cpu:6.2f} s  wall {wall:6.2f} s  (target < {TARGET_IS_S:g} s: "
              f"{'met' if ok else 'MISSED'})")
        if not ok:
            d, phi = is_inputs(name)
            missed.append((f"IS {name}", lambda d=d, phi=phi: log_likelihood_is(
                d.likelihood, d.truth, d.encoder, phi, d.test, np.random.default_rng(0), samples=args.is_samples)))

    print(f"\n3. Smooth k-NN, {args.knn_repeats} repetitions of 100 vs 100 (linear_jtex, theta = truth)")
    cpu, wall, res = bench_knn(args.knn_repeats)
    scaled = cpu * 20000 / args.knn_repeats
    ok = scaled < TARGET_KNN_S
    print(f"{'linear_jtex':<12} CPU {cpu:6.2f} s  wall {wall:6.2f} s  mean {res.mean:+.3f} (std {res.std:.3f})  "
          f"(target 20 000 in < {TARGET_KNN_S:g} s: {'met' if ok else 'MISSED'})")
    if not ok:
        d = load_dataset("linear_jtex", seed=0)
        missed.append(("smooth kNN (2000 repetitions)",
                       lambda: smooth_knn(d, d.truth, np.random.default_rng(0), repeats=2000)))

    print(f"\nload average at end: {load()[0]:.2f} {load()[1]:.2f} {load()[2]:.2f}")
    if args.profile:
        for label, fn in missed:
            profile(fn, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
