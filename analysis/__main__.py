"""Command line: ``python -m analysis {figure1,numbers,landscape,univariate} ...``.

Examples
--------
``python -m analysis figure1 --out figures --grid 300 --seed 0`` writes
figures/figure1A.png ... figure1F.png and figures/figure1.png, then prints
the summary numbers and the paths. ``python -m analysis numbers`` prints the
paper's LinearJTEx numbers (docs/theory.md (T.26)); ``--json`` prints them as JSON.
``python -m analysis landscape --A "1,0.3;-0.5,0.8" --sigma2 0.05 --out figs``
draws Figure 1 A-B for that JTEx model (figs/landscape.png; a negative first
entry needs ``--A=-1,0;0,1``); ``python -m analysis univariate --sigma2 2
--out figs`` plots the univariate model over theta (figs/univariate.png).
"""
import argparse
import json
import sys
from pathlib import Path

from .figures import MAX_GRID, MAX_THETA_GRID, figure1, landscape_figure, paper_numbers, univariate_figure


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _int_in(low, high):
    def parse(text):
        value = _int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def _floats(text, name):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected comma-separated numbers, got {text!r}") from None


def _matrix_2x2(text):
    rows = [_floats(row, "--A") for row in text.split(";")]
    if len(rows) != 2 or any(len(r) != 2 for r in rows):
        raise argparse.ArgumentTypeError(f"expected a 2 x 2 matrix 'a11,a12;a21,a22', got {text!r}")
    return rows


def _pair(text):
    values = _floats(text, "--b")
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two values 'b1,b2', got {text!r}")
    return values


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def build_parser():
    """The argparse parser of ``python -m analysis``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Exact theory of linear-Gaussian VAEs (Yacoby, Pan & Doshi-Velez): "
                    "the paper's Figure 1 and numbers, landscapes of your own model.")
    sub = parser.add_subparsers(dest="command", metavar="{figure1,numbers,landscape,univariate}")
    sub.required = True
    fig = sub.add_parser("figure1", help="draw Figure 1 A-F as PNGs",
                         description="Write figure1A.png ... figure1F.png and figure1.png to --out.")
    fig.add_argument("--out", required=True, help="output directory (created if missing)")
    fig.add_argument("--grid", type=_int_in(2, MAX_GRID), default=300,
                     help="points per axis of the (B11, B22) grid (default 300)")
    fig.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the samples (default 0)")
    fig.add_argument("--n-points", type=_int_at_least(1), default=2000,
                     help="samples drawn for panels C-F (default 2000)")
    fig.add_argument("--json", action="store_true", help="print the summary as JSON")
    num = sub.add_parser("numbers", help="print the paper's LinearJTEx numbers (docs/theory.md (T.26))")
    num.add_argument("--json", action="store_true", help="print as JSON")
    land = sub.add_parser("landscape", help="Figure 1 A-B for any JTEx A and sigma2",
                          description="Write landscape.png to --out: the exact VAE objective and I(X;Z) "
                                      "over B = diag(B11, B22) with A fixed, the optimum and the truth marked.")
    land.add_argument("--A", required=True, type=_matrix_2x2,
                      help="the 2 x 2 matrix A as 'a11,a12;a21,a22' (write --A=-1,0;0,1 if it starts with -)")
    land.add_argument("--sigma2", required=True, type=_positive_float, help="sigma2 > 0")
    land.add_argument("--b", type=_pair, default=None,
                      help="the truth's B as 'b1,b2' in [0, sigma2) (default 0.6 sigma2 each, as in the paper)")
    land.add_argument("--grid", type=_int_in(2, MAX_GRID), default=200,
                      help=f"points per axis of the (B11, B22) grid, at most {MAX_GRID} (default 200)")
    land.add_argument("--out", required=True, help="output directory (created if missing)")
    land.add_argument("--dpi", type=_int_in(30, 600), default=120, help="resolution of the PNG (default 120)")
    land.add_argument("--json", action="store_true", help="print the summary as JSON")
    uni = sub.add_parser("univariate", help="the univariate model over theta",
                         description="Write univariate.png to --out: the objective (flat), I(X;Z) and the "
                                     "posterior variance over |theta| < sigma.")
    uni.add_argument("--sigma2", required=True, type=_positive_float, help="the data variance sigma2 > 0")
    uni.add_argument("--grid", type=_int_in(2, MAX_THETA_GRID), default=401,
                     help=f"points in (-sigma, sigma), at most {MAX_THETA_GRID} (default 401)")
    uni.add_argument("--out", required=True, help="output directory (created if missing)")
    uni.add_argument("--dpi", type=_int_in(30, 600), default=120, help="resolution of the PNG (default 120)")
    uni.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)


def _print_numbers(numbers, as_json, out):
    if as_json:
        json.dump(numbers, out, indent=2)
        out.write("\n")
        return
    width = max(len(k) for k in numbers)
    for key, value in numbers.items():
        if key == "paths":
            continue
        out.write(f"{key:<{width}}  {_format(value)}\n")


def main(argv=None, out=None):
    """Run the command line; returns the exit status."""
    out = sys.stdout if out is None else out
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("figure1", "landscape", "univariate"):
        target = Path(args.out)
        if target.exists() and not target.is_dir():
            parser.error(f"--out {args.out!r} exists and is not a directory")
        blocker = next((p for p in target.absolute().parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:    # before the figures' work, not after
            parser.error(f"--out {args.out!r}: {str(blocker)!r} is a file, not a directory")
    if args.command in ("landscape", "univariate"):
        return _own_model(parser, args, target, out)
    if args.command == "figure1":
        try:
            summary = figure1(target, grid=args.grid, n_points=args.n_points, seed=args.seed)
        except OSError as err:
            parser.error(f"cannot write to --out {args.out!r}: {err}")
        _print_numbers(summary, args.json, out)
        if not args.json:
            out.write("files:\n")
            for path in summary["paths"].values():
                out.write(f"  {path}\n")
    else:
        _print_numbers(paper_numbers(), args.json, out)
    return 0


def _own_model(parser, args, target, out):
    try:
        if args.command == "landscape":
            res = landscape_figure(args.A, args.sigma2, b=args.b, grid=args.grid)
            i, j = res["argmin"]
            mi = res["mutual_information"]
            summary = {"optimum_B": list(res["optimum"]),
                       "min_objective": float(res["vae_objective"][i, j]),
                       "mi_at_optimum": float(mi[i, j]), "mi_range": [float(mi.min()), float(mi.max())],
                       "truth_B": list(res["truth_b"]), "truth_objective": res["truth_objective"],
                       "grid": args.grid}
        else:
            res = univariate_figure(args.sigma2, grid=args.grid)
            summary = {"max_abs_objective": float(abs(res["vae_objective"]).max()),
                       "theta_range": [float(res["theta"][0]), float(res["theta"][-1])],
                       "mi_range": [float(res["mutual_information"].min()),
                                    float(res["mutual_information"].max())],
                       "posterior_var_range": [float(res["posterior_var"].min()),
                                               float(res["posterior_var"].max())],
                       "grid": args.grid}
    except ValueError as err:
        flag = {"A": "--A", "b": "--b", "sigma2": "--sigma2", "grid": "--grid"}
        name = next((f for k, f in flag.items() if str(err).startswith(k + " ")), None)
        parser.error(f"{name}: {err}" if name else str(err))
    path = target / f"{args.command}.png"
    try:
        target.mkdir(parents=True, exist_ok=True)
        res["figure"].savefig(path, dpi=args.dpi)
    except OSError as err:
        parser.error(f"cannot write to --out {args.out!r}: {err}")
    summary["paths"] = {args.command: str(path)}
    _print_numbers(summary, args.json, out)
    if not args.json:
        out.write(f"files:\n  {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
