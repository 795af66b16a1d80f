"""``python -m training``: fit one method on one data set, write a JSON record."""
import argparse
import json
import os
import sys
import tempfile

from .datasets import DATASETS
from .experiment import METHODS, fit_and_evaluate


def write_json_atomic(path, record):
    """Write ``record`` to ``path`` via a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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
                                  ("lr", args.lr)) if v is not None}
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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        try:
            record = fit_and_evaluate(args.dataset, args.seed, args.method, _fit_settings(args),
                                      is_samples=args.is_samples, knn_repeats=args.knn_repeats,
                                      progress=not args.no_progress)
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        write_json_atomic(args.out, record)
        m = record["metrics"]
        print(f"{args.method} on {args.dataset} (seed {args.seed}): "
              f"validation objective {record['selected_val_objective']:.4f}, "
              f"test LL {m['test_ll_is']:.4f} (IS)"
              + (f", {m['test_ll_exact']:.4f} (exact)" if m["test_ll_exact"] is not None else "")
              + (f", smooth kNN {m['smooth_knn']:.3f}" if "smooth_knn" in m else "")
              + f" -> {args.out}")
    return 0
