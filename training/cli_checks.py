"""Checks of ``python -m training`` arguments, run before any training: each error names its flag."""
import os
import tempfile

from analysis import checks


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
    from .experiment import make_trainer
    trainer = make_trainer(args.method, **settings)
    return (f"{args.method} on {args.dataset} (seed {args.seed}): all {trainer.restarts} restarts diverged "
            f"(the loss, a gradient or the parameters stopped being finite: {err}); try a smaller --lr "
            f"(now {trainer.lr:g}), more --restarts or another --seed")
