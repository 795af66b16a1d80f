"""Quadrature cost, and what the stopping rule saves at the standard budget.

    python benchmarks/bench_convergence.py                      # quadrature only (seconds)
    python benchmarks/bench_convergence.py --fits               # + one fit per (data set, method), rule on and off
    python benchmarks/bench_convergence.py --fits --datasets linear_jtex,gaussian --methods vae,libi
    python benchmarks/bench_convergence.py --results DIR        # epochs run vs budget in a finished sweep

Prints the CPU model first: absolute seconds mean little without it, compare
the ratios printed beside them (measured in the same run).

* Quadrature: ``log_likelihood_quadrature`` of the true model on 500 test
  points per data set (R = 1), best of 2, with the largest error estimate and
  the rule size the hardest point needed.
* Fits: each (data set, method) of the standard profile, data-set seed 0,
  trained once with the profile's stopping rule (patience, tol) and once
  without it (the full epoch budget); epochs run per restart and wall times.
* Results: per (data set, method) of a sweep directory, the selected
  restarts' epochs against the budget, how many stopped by the rule, and the
  fit time.
"""
import argparse
import glob
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.datasets import load_dataset                      # noqa: E402
from training.experiments.unit import make_trainer
from training.evaluate.quadrature import log_likelihood_quadrature_with_error
from training.experiments.config import expand_units, load_profile

DATASETS = ["linear_jtex", "cubic_jtex", "gaussian", "mobius"]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_quadrature(datasets):
    print("quadrature, 500 test points, true model, R = 1 (best of 2)")
    print(f"{'data set':12s} {'seconds':>8s} {'max error':>10s} {'unconverged':>11s} {'max order':>9s}")
    for name in datasets:
        d = load_dataset(name, 0)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            res = log_likelihood_quadrature_with_error(d.likelihood, d.truth, d.test)
            times.append(time.perf_counter() - t)
        print(f"{name:12s} {min(times):8.2f} {res.error.max():10.1e} {int((~res.converged).sum()):11d} "
              f"{int(res.order.max()):9d}", flush=True)


def bench_fits(datasets, methods, profile):
    config = load_profile(profile)
    units = {(u["dataset"], u["method"]): u for u in expand_units(config) if u["seed"] == 0}
    print(f"\nfits at the {profile} budget, seed 0: stopping rule on vs off")
    print(f"{'data set':12s} {'method':18s} {'budget':>6s} {'epochs run (rule on)':>22s} "
          f"{'on s':>7s} {'off s':>7s} {'off/on':>6s}")
    for name in datasets:
        data = load_dataset(name, 0)
        for method in methods:
            unit = units.get((name, method))
            if unit is None:
                continue
            settings = dict(unit["settings"])
            seconds = {}
            for rule in ("on", "off"):
                s = dict(settings) if rule == "on" else {**settings, "patience": None}
                trainer = make_trainer(method, **{"seed": 0, **s})
                t = time.perf_counter()
                trainer.fit(data)
                seconds[rule] = time.perf_counter() - t
                if rule == "on":
                    runs = trainer.epochs_run_.tolist()
            budget = settings["epochs"] + (settings.get("inference_epochs") or settings["epochs"]
                                           if method == "libi" else 0)
            print(f"{name:12s} {method:18s} {budget:6d} {str(runs):>22s} {seconds['on']:7.1f} "
                  f"{seconds['off']:7.1f} {seconds['off'] / seconds['on']:6.2f}", flush=True)


def summarize(results):
    records = []
    for path in glob.glob(os.path.join(results, "*.json")):
        with open(path) as f:
            r = json.load(f)
        if isinstance(r, dict) and r.get("status") == "ok" and "selected_epochs_run" in r:
            records.append(r)
    print(f"{'data set':12s} {'method':18s} {'n':>2s} {'budget':>6s} {'selected epochs (mean, max)':>28s} "
          f"{'converged':>9s} {'fit s (sum)':>11s}")
    total = 0.0
    for key in sorted({(r["dataset"], r["method"]) for r in records}):
        group = [r for r in records if (r["dataset"], r["method"]) == key]
        s = group[0]["settings"]
        budget = s["epochs"] + ((s.get("inference_epochs") or s["epochs"]) if key[1] == "libi" else 0)
        runs = [r["selected_epochs_run"] for r in group]
        fit = sum(r["fit_seconds"] / r.get("fit_seconds_shared_by", 1) for r in group)
        total += sum(r.get("wall_seconds", 0.0) / r.get("wall_seconds_shared_by", 1) for r in group)
        print(f"{key[0]:12s} {key[1]:18s} {len(group):2d} {budget:6d} "
              f"{np.mean(runs):12.0f}, {max(runs):6d}{'':9s} {sum(r['selected_converged'] for r in group):9d} "
              f"{fit:11.0f}")
    print(f"sum of unit wall times: {total:.0f} s ({total / 3600:.2f} CPU hours)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fits", action="store_true")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default="vae,beta_vae,annealed_beta_vae,lagging,libi")
    parser.add_argument("--results", help="a finished sweep directory to summarize")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}; numpy {np.__version__}")
    if args.results:
        summarize(args.results)
        return
    datasets = args.datasets.split(",")
    bench_quadrature(datasets)
    if args.fits:
        bench_fits(datasets, args.methods.split(","), args.profile)


if __name__ == "__main__":
    main()
