"""``python -m training``: fit one unit (``fit``), run the Table 1 sweep (``table1``), count failed fits on
fresh seeds (``robustness``), draw Figures 2-5 (``figures``)."""
import argparse
import os
import sys
import tempfile
import time

from analysis import checks

from ..datasets import DATASETS
from ..trainers import AllRestartsDiverged
from . import robustness, table
from .config import expand_units, load_profile, parse_assignment, set_option
from .store import load_records, write_json_atomic
from .sweep import run_sweep
from .unit import FAIL_NATS, METHODS, fit_and_evaluate, make_trainer


# ---- argument checks, run before any training: each error names its flag ----

def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _creatable(flag, path, folder):
    """The missing folders of ``folder`` can be made, and files written in it (``path``: as given)."""
    base = _nearest_existing(folder)
    if not os.path.isdir(base):
        raise ValueError(f"{flag} {path!r}: {base!r} is a file, not a directory")
    try:    # a real write: permissions, read-only mounts and /proc alike (os.access trusts root)
        tempfile.TemporaryFile(dir=base).close()
    except OSError as err:
        raise ValueError(f"{flag} {path!r}: cannot write in {base!r} ({err.strerror or err})") from None


def output_file(flag, path):
    """``path`` can be written as a file (checked before a long fit, not after)."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a directory; give a file path, e.g. {os.path.join(path, 'result.json')}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path!r}: the file is not writable")
    _creatable(flag, path, os.path.dirname(os.path.abspath(path)))
    return path


def output_dir(flag, path):
    """``path`` is, or can be created as, a writable directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} exists and is not a directory")
    _creatable(flag, path, path)
    return path


def check_fit(args):
    """Every ``fit`` argument that training itself does not check first."""
    checks.integer("--is-samples", args.is_samples, 1)
    checks.integer("--knn-repeats", args.knn_repeats, 0)
    output_file("--out", args.out)


def check_table1(args):
    if args.workers is not None:
        checks.integer("--workers", args.workers, 1)
    output_dir("--out", args.out)


def check_figures(args):
    output_dir("--out", args.out)
    if args.results is not None and not os.path.isdir(args.results):
        raise ValueError(f"--results {args.results!r} is not a directory (give a table1 --out folder)")


def diverged_message(args, settings, err):
    """One line for a ``fit`` whose restarts all diverged: what diverged and what to try."""
    trainer = make_trainer(args.method, **settings)
    return (f"{args.method} on {args.dataset} (seed {args.seed}): all {trainer.restarts} restarts diverged "
            f"(the loss, a gradient or the parameters stopped being finite: {err}); try a smaller --lr "
            f"(now {trainer.lr:g}), more --restarts or another --seed")


# ---- the commands ------------------------------------------------------------

# Method-specific options: flag -> (setting, methods that take it).
METHOD_OPTIONS = {
    "beta": ("beta", ("beta_vae", "annealed_beta_vae")),
    "lambda_hz": ("lambda_hz", ("libi",)),
    "eps_sigma": ("eps_sigma", ("libi",)),
    "eps_mu": ("eps_mu", ("libi",)),
    "repeats": ("repeats", ("libi",)),
    "inference_epochs": ("inference_epochs", ("libi",)),
    "segments": ("segments", ("lagging",)),
    "aggressive": ("aggressive", ("lagging",)),
}


def _fit_settings(args):
    settings = {k: v for k, v in (("epochs", args.epochs), ("restarts", args.restarts),
                                  ("lr", args.lr), ("patience", args.patience), ("tol", args.tol))
                if v is not None}
    for flag, (name, methods) in METHOD_OPTIONS.items():
        value = getattr(args, flag)
        if value is None or value is False:
            continue
        if args.method not in methods:
            raise ValueError(f"--{flag.replace('_', '-')} applies to {', '.join(methods)}, "
                             f"not {args.method}")
        settings[name] = value
    return settings


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit one method on one data set and evaluate it")
    fit.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    fit.add_argument("--method", required=True, choices=sorted(METHODS))
    fit.add_argument("--seed", type=int, default=0, help="data set and restart seed (default 0)")
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--restarts", type=int)
    fit.add_argument("--lr", type=float)
    fit.add_argument("--patience", type=int,
                     help="stopping rule: a restart stops when its validation objective has not improved "
                          "by more than --tol for this many epochs (default: off, train all epochs)")
    fit.add_argument("--tol", type=float, help="stopping rule tolerance, nats per point (default 0)")
    fit.add_argument("--beta", type=float, help="beta_vae, annealed_beta_vae: the (final) beta")
    fit.add_argument("--lambda-hz", type=float, help="libi: weight of exp(HZ)")
    fit.add_argument("--eps-sigma", type=float, help="libi: covariance penalty scale")
    fit.add_argument("--eps-mu", type=float, help="libi: mean penalty scale")
    fit.add_argument("--repeats", type=int, help="libi: repetitions of Steps 1-3")
    fit.add_argument("--inference-epochs", type=int, help="libi: Step-2 epochs (default --epochs)")
    fit.add_argument("--segments", type=int, help="lagging: number of segments")
    fit.add_argument("--aggressive", action="store_true", help="lagging: He et al.'s aggressive schedule")
    fit.add_argument("--is-samples", type=int, default=5000, help="importance samples (default 5000)")
    fit.add_argument("--knn-repeats", type=int, default=20000,
                     help="smooth k-NN repetitions (default 20000; 0 skips)")
    fit.add_argument("--out", required=True, help="result JSON path")
    fit.add_argument("--no-progress", action="store_true")

    t1 = sub.add_parser("table1", help="run (or resume) the Table 1 sweep and write table1.md/.csv")
    _sweep_arguments(t1, "results directory (records, config.json, table1.*)")
    rb = sub.add_parser("robustness", help="run (or resume) a sweep on fresh seeds and count the failed fits "
                                           "(robustness.md/.csv/.png)")
    _sweep_arguments(rb, "results directory (records, config.json, robustness.*)")

    fig = sub.add_parser("figures", help="Figures 2-5: posterior means of VAE and LiBI")
    fig.add_argument("--out", required=True, help="folder for figure2.png ... figure5.png")
    fig.add_argument("--results", help="a table1 results directory: plot its selected models")
    fig.add_argument("--profile", default="quick", help="settings for models fitted here (default quick)")
    fig.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    fig.add_argument("--no-progress", action="store_true")
    return parser


def _sweep_arguments(cmd, out_help):
    """The arguments of the commands that run a sweep (table1, robustness)."""
    cmd.add_argument("--profile", default="quick", help="bundled profile name or JSON path (default quick)")
    cmd.add_argument("--out", required=True, help=out_help)
    cmd.add_argument("--workers", type=int, help="local worker processes (default: CPU count)")
    cmd.add_argument("--scheduler", help="a Dask scheduler address: run units on that cluster")
    cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a profile entry, e.g. train.epochs=500 or grids.beta_vae.beta=[2.0]")
    cmd.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=E")
    cmd.add_argument("--restarts", type=int, help="shorthand for --set train.restarts=R")
    cmd.add_argument("--seeds", help="data set seeds: a comma-separated list and ranges, e.g. 0,1,2 or 100-119")
    cmd.add_argument("--datasets", help="comma-separated data set names")
    cmd.add_argument("--methods", help="comma-separated method names")
    cmd.add_argument("--fresh", action="store_true", help="delete the directory's records first")
    cmd.add_argument("--no-batch-settings", action="store_true",
                     help="fit every unit alone (default: the grid points of vae, beta_vae and "
                          "annealed_beta_vae on one data set and seed are fitted as one batch)")
    cmd.add_argument("--no-progress", action="store_true")


def parse_seeds(text):
    """Seeds from ``"0,1,2"``, ``"100-119"`` or a mix (ranges inclusive), in order.

    Examples
    --------
    >>> parse_seeds("100-103,7")
    [100, 101, 102, 103, 7]
    """
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise ValueError(f"--seeds expects comma-separated seeds or ranges (e.g. 0,1,2 or 100-119), "
                             f"got {text!r}") from None
        if dash and int(high) < int(low):
            raise ValueError(f"--seeds: the range {part!r} is empty (write low-high)")
    return seeds


def _table1_config(args):
    config = load_profile(args.profile)
    assignments = [parse_assignment(text) for text in args.set]
    if args.epochs is not None:
        assignments.append(("train.epochs", args.epochs))
    if args.restarts is not None:
        assignments.append(("train.restarts", args.restarts))
    if args.seeds:
        assignments.append(("seeds", parse_seeds(args.seeds)))
    for flag in ("datasets", "methods"):
        text = getattr(args, flag)
        if text:
            assignments.append((flag, [v for v in text.split(",") if v]))
    for key, value in assignments:
        config = set_option(config, key, value)
    return config


def _run_sweep(args, config):
    """Run (or resume) the sweep of ``config`` into ``args.out``; returns (counts, records, seconds)."""
    check_table1(args)
    executor = None
    if args.scheduler:
        from dask.distributed import Client
        executor = Client(args.scheduler).get_executor()
    started = time.time()
    counts = run_sweep(config, args.out, executor=executor, workers=args.workers, fresh=args.fresh,
                       progress=not args.no_progress, batch_settings=not args.no_batch_settings)
    _, records = load_records(args.out, config)
    return counts, records, time.time() - started


def _report_counts(counts, seconds, out, files):
    print(f"units: {counts['total']} ({counts['skipped']} already finished, {counts['ran']} run, "
          f"{counts['failed']} failed, {counts['diverged']} diverged, {counts['corrupt']} corrupt "
          f"recomputed); wall time {seconds:.0f} s -> {', '.join(os.path.join(out, f) for f in files)}")
    if counts["failed"]:    # the table lacks them: not a success
        print(f"error: {counts['failed']} units failed (their records hold the errors); rerun the same "
              "command to retry them", file=sys.stderr)
        return 1
    return 0


def run_table1(args):
    config = _table1_config(args)
    counts, records, seconds = _run_sweep(args, config)
    rows = table.aggregate(records, config["datasets"], config["methods"])
    text = table.markdown(rows, config["datasets"], config["methods"],
                          title=f"Table 1, profile {config.get('name', '?')}",
                          truth=table.truth_rows(records, config["datasets"]))
    with open(os.path.join(args.out, "table1.md"), "w") as f:
        f.write(text)
    table.write_csv(rows, os.path.join(args.out, "table1.csv"))
    print(text)
    return _report_counts(counts, seconds, args.out, ("table1.md", "table1.csv"))


def run_robustness(args):
    config = _table1_config(args)
    counts, records, seconds = _run_sweep(args, config)
    seeds = config["seeds"]
    span = f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"seeds {seeds}"
    paths = robustness.write_report(records, args.out, title=f"Robustness, profile {config.get('name', '?')}, {span}")
    with open(paths["robustness.md"]) as f:
        print(f.read())
    return _report_counts(counts, seconds, args.out, list(paths))


FIGURE_MODELS = [(d, m) for d in ("linear_jtex", "cubic_jtex") for m in ("vae", "libi")]


def run_figures(args):
    from .figures import make_figures  # matplotlib loads only when figures are drawn
    check_figures(args)
    models = {}
    if args.results:
        config, records = load_records(args.results)
        rows = {(r["dataset"], r["method"]): r for r in
                table.aggregate(records, config["datasets"], config["methods"])}
        for r in records:
            key = (r["dataset"], r["method"])
            if key not in FIGURE_MODELS:
                continue
            if (r["status"] == "ok" and r["seed"] == args.seed and key in rows
                    and r["grid_point"] == rows[key]["setting"] and key not in models):
                models[key] = r["selected"]      # lists: make_figures conforms them
        fit_config = config
    else:
        fit_config = load_profile(args.profile)
    fit_settings = {}
    for unit in expand_units(fit_config):
        if unit["method"] in ("vae", "libi"):
            fit_settings.setdefault(unit["method"], unit["settings"])
    paths = make_figures(args.out, models=models, fit_settings=fit_settings, seed=args.seed,
                         progress=not args.no_progress)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command in ("table1", "robustness", "figures"):
        try:
            return {"table1": run_table1, "robustness": run_robustness, "figures": run_figures}[args.command](args)
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:     # e.g. the disk filled up while writing
            print(f"error: {err}", file=sys.stderr)
            return 1
    if args.command == "fit":
        try:
            settings = _fit_settings(args)
            check_fit(args)
            record = fit_and_evaluate(args.dataset, args.seed, args.method, settings,
                                      is_samples=args.is_samples, knn_repeats=args.knn_repeats,
                                      progress=not args.no_progress)
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except AllRestartsDiverged as err:
            print(f"error: {diverged_message(args, settings, err)}", file=sys.stderr)
            return 1
        try:
            write_json_atomic(args.out, record)
        except OSError as err:
            print(f"error: cannot write --out {args.out!r}: {err}", file=sys.stderr)
            return 1
        m = record["metrics"]
        diverged = sum(record["diverged"])
        print(f"{args.method} on {args.dataset} (seed {args.seed}): "
              f"validation objective {record['selected_val_objective']:.4f}, "
              f"test LL {m['test_ll_is']:.4f} (IS, min ESS {m['test_ll_is_ess_min']:.1f})"
              + (f", {m['test_ll_quadrature']:.4f} (quadrature)" if m["test_ll_quadrature"] is not None else "")
              + (f", {m['test_ll_exact']:.4f} (exact)" if m["test_ll_exact"] is not None else "")
              + (f", true model {m['test_ll_truth']:.4f}" if m["test_ll_truth"] is not None else "")
              + (f" ({m['test_ll_gap_to_truth']:.4f} below it"
                 + (f": FAILED, more than {FAIL_NATS:g} nat" if m["below_truth"] else "") + ")"
                 if m.get("test_ll_gap_to_truth") is not None else "")
              + (f", smooth kNN {m['smooth_knn']:.3f}" if "smooth_knn" in m else "")
              + f"; selected restart {record['best_restart']}: {record['selected_epochs_run']} epochs, "
              + ("converged" if record["selected_converged"] else "not converged (hit the budget)")
              + (f"; {diverged} of {len(record['diverged'])} restarts diverged" if diverged else "")
              + f" -> {args.out}")
    return 0
