"""Command line: ``python -m analysis {figure1,numbers} ...``.

Examples
--------
``python -m analysis figure1 --out figures --grid 300 --seed 0`` writes
figures/figure1A.png ... figure1F.png and figures/figure1.png, then prints
the summary numbers and the paths. ``python -m analysis numbers`` prints the
paper's LinearJTEx numbers (SPEC 2.2); ``--json`` prints them as JSON.
"""
import argparse
import json
import sys


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


#: Largest --grid: 2000^2 cells keep figure1's arrays to a few hundred MB.
MAX_GRID = 2000


def _int_between(low, high):
    def parse(text):
        value = _int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value
    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def build_parser():
    """The argparse parser of ``python -m analysis``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Exact theory of linear-Gaussian VAEs (Yacoby, Pan & Doshi-Velez): "
                    "the paper's Figure 1 and numbers.")
    sub = parser.add_subparsers(dest="command", metavar="{figure1,numbers}")
    sub.required = True
    fig = sub.add_parser("figure1", help="draw Figure 1 A-F as PNGs",
                         description="Write figure1A.png ... figure1F.png and figure1.png to --out.")
    fig.add_argument("--out", required=True, help="output directory (created if missing)")
    fig.add_argument("--grid", type=_int_between(2, MAX_GRID), default=300,
                     help=f"points per axis of the (B11, B22) grid, 2-{MAX_GRID} (default 300)")
    fig.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the samples (default 0)")
    fig.add_argument("--n-points", type=_int_at_least(1), default=2000,
                     help="samples drawn for panels C-F (default 2000)")
    fig.add_argument("--json", action="store_true", help="print the summary as JSON")
    num = sub.add_parser("numbers", help="print the paper's LinearJTEx numbers (SPEC 2.2)")
    num.add_argument("--json", action="store_true", help="print as JSON")
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
    from pathlib import Path
    if args.command == "figure1":
        target = Path(args.out)
        if target.exists() and not target.is_dir():
            parser.error(f"--out {args.out!r} exists and is not a directory")
        blocker = next((p for p in target.absolute().parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:    # before the figures' work, not after
            parser.error(f"--out {args.out!r}: {str(blocker)!r} is a file, not a directory")
        from .figures import figure1
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
        from .figures import paper_numbers
        _print_numbers(paper_numbers(), args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
