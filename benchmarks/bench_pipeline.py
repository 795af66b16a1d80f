"""Wall time of the Table 1 sweep and an extrapolation to the paper's budget.

    python benchmarks/bench_pipeline.py                 # measure per-epoch costs, extrapolate
    python benchmarks/bench_pipeline.py --run-quick     # also time the quick profile, 1 and 2 workers
    python benchmarks/bench_pipeline.py --results DIR   # summarize a finished quick run's records

Extrapolation: for every (data set, method) one unit is trained for a few
hundred epochs at the paper's 10 restarts and the quick profile's 2, giving
seconds per epoch; the paper profile's cost is then sum over its units of
30 000 x (seconds per epoch at R = 10) + evaluation (measured at the paper's
5000 IS samples and 20 000 smooth-kNN repetitions). On W cores the wall time is
at least max(total / W, longest unit).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.datasets import load_dataset                      # noqa: E402
from training.experiments.unit import evaluate_model, make_trainer
from training.experiments.config import expand_units, load_profile


def seconds_per_epoch(dataset, method, settings, restarts, epochs):
    data = load_dataset(dataset, 0)
    settings = {**settings, "restarts": restarts, "epochs": epochs}
    if method == "libi":
        settings["inference_epochs"] = epochs
        settings["repeats"] = 1
    if method == "lagging":
        settings["segments"] = min(settings.get("segments", 10), epochs)
    trainer = make_trainer(method, **settings)
    t0 = time.process_time()
    trainer.fit(data)
    per = (time.process_time() - t0) / (2 * epochs if method == "libi" else epochs)
    return per, trainer, data


def extrapolate(epochs):
    paper = load_profile("paper")
    units = expand_units(paper)
    cost, evals = {}, {}
    print(f"{'data set':12s} {'method':18s} {'s/epoch R=2':>12s} {'s/epoch R=10':>13s} {'eval s':>8s}")
    for dataset in paper["datasets"]:
        for method in paper["methods"]:
            first = next(u for u in units if u["dataset"] == dataset and u["method"] == method)
            per2, _, _ = seconds_per_epoch(dataset, method, first["settings"], 2, epochs)
            per10, trainer, data = seconds_per_epoch(dataset, method, first["settings"], 10, epochs)
            if dataset not in evals:   # the evaluation costs the same for every method
                t0 = time.process_time()
                evaluate_model(data, trainer, 0, is_samples=5000, knn_repeats=20000)
                evals[dataset] = time.process_time() - t0
            ev = evals[dataset]
            cost[(dataset, method)] = (per10, ev)
            print(f"{dataset:12s} {method:18s} {per2:12.4f} {per10:13.4f} {ev:8.1f}", flush=True)
    per_unit = []
    for u in units:
        per10, ev = cost[(u["dataset"], u["method"])]
        s = u["settings"]   # LiBI: Step 1 and Step 2 epochs per repetition
        steps = 2 * s["epochs"] * s.get("repeats", 1) if u["method"] == "libi" else s["epochs"]
        per_unit.append(steps * per10 + ev)
    total = float(np.sum(per_unit))
    longest = float(np.max(per_unit))
    print(f"\npaper profile: {len(units)} units, {total / 3600:.1f} CPU hours on 1 core "
          f"(longest unit {longest / 3600:.2f} h)")
    for cores in (1, 2, 64):
        wall = max(total / cores, longest)
        print(f"  on {cores:3d} cores: >= {wall / 3600:.1f} h")


def summarize(results):
    total, n = 0.0, 0
    for path in glob.glob(os.path.join(results, "*-s*-*.json")):
        with open(path) as f:
            r = json.load(f)
        # a batched group's records each carry the group's fit time: count it once
        total += (r.get("fit_seconds", 0) / r.get("fit_seconds_shared_by", 1)
                  + r.get("metrics", {}).get("eval_seconds", 0))
        n += 1
    print(f"{results}: {n} records, sum of unit times {total:.0f} s "
          f"(~ the 1-worker wall time, given one core per running unit)")


def run_quick(workers):
    out = tempfile.mkdtemp(prefix=f"quick{workers}-")
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "training", "table1", "--profile", "quick", "--out", out,
                    "--workers", str(workers), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    print(f"quick profile, {workers} worker(s): {wall:.0f} s wall")
    summarize(out)
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200, help="epochs per timing fit (default 200)")
    parser.add_argument("--run-quick", action="store_true", help="time the quick profile with 1 and 2 workers")
    parser.add_argument("--results", help="summarize a finished results directory")
    parser.add_argument("--skip-extrapolation", action="store_true")
    args = parser.parse_args()
    if args.results:
        summarize(args.results)
    if args.run_quick:
        w1 = run_quick(1)
        w2 = run_quick(2)
        print(f"speed-up with 2 workers: {w1 / w2:.2f}x")
    if not args.skip_extrapolation:
        extrapolate(args.epochs)


if __name__ == "__main__":
    main()
