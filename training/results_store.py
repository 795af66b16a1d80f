"""The results directory's own files: which they are, whether a record is sound, what --fresh deletes.

A record is named ``<data set>-s<seed>-<method>-<10 hex digits>.json``
(:func:`training.sweep.expand_units`); ``config.json`` holds the
configuration and its fingerprint; ``table1.md`` and ``table1.csv`` are the
table. Nothing else in the directory is touched.
"""
import glob
import json
import os
import re

from .config_check import check_structure, is_number

CONFIG_FILE = "config.json"
TABLE_FILES = ("table1.md", "table1.csv")
RECORD_NAME = re.compile(r"^[a-z_]+-s\d+-[a-z_]+-[0-9a-f]{10}\.json(\.corrupt)?$")
STATUSES = ("ok", "diverged", "failed")


class ResultsConfigError(ValueError):
    """config.json is missing, unreadable or not a configuration."""

    def __init__(self, message, missing=False):
        super().__init__(message)
        self.missing = missing


def record_files(out_dir, corrupt=False):
    """Paths of the record files in ``out_dir`` (with ``corrupt``: the set-aside ones too)."""
    names = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    return [os.path.join(out_dir, n) for n in names
            if RECORD_NAME.match(n) and (corrupt or not n.endswith(".corrupt"))]


#: Metrics that are lists of objects of numbers (diagnostics), not numbers.
LIST_METRICS = frozenset({"test_ll_is_worst"})


def _number_table(value):
    return isinstance(value, list) and all(
        isinstance(row, dict) and all(v is None or is_number(v) for v in row.values()) for row in value)


def record_problem(record):
    """Why ``record`` (parsed JSON) is not a sound record, or None."""
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    if not isinstance(record.get("grid_point", {}), dict):
        return "grid_point is not an object"
    if record["status"] == "ok":
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return "metrics is not an object"
        if "test_ll_is" not in metrics:
            return "metrics lack test_ll_is"
        for key, value in metrics.items():
            if key in LIST_METRICS:
                if value is not None and not _number_table(value):
                    return f"metric {key} is not a list of objects of numbers ({type(value).__name__})"
            elif value is not None and not is_number(value):
                return f"metric {key} is not a number ({type(value).__name__} {value!r})"
    return None


def read_results_config(out_dir):
    """(fingerprint, configuration) from ``out_dir``'s config.json, or :class:`ResultsConfigError`."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if not os.path.isdir(out_dir):
        raise ResultsConfigError(f"{out_dir} is not a directory", missing=True)
    if not os.path.exists(path):
        raise ResultsConfigError(f"{out_dir} holds no {CONFIG_FILE}: not a table1 results directory",
                                 missing=True)
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsConfigError(f"{path} is unreadable ({type(err).__name__}: {err}; truncated?)") from None
    if (not isinstance(saved, dict) or not isinstance(saved.get("fingerprint"), str)
            or "config" not in saved):
        raise ResultsConfigError(f"{path} is not a results configuration (expected an object with "
                                 "'fingerprint' and 'config')")
    try:
        check_structure(saved["config"])
    except ValueError as err:
        raise ResultsConfigError(f"{path}: its config is invalid: {err}") from None
    return saved["fingerprint"], saved["config"]


def record_fingerprints(out_dir):
    """{path: config_fingerprint} of the readable records in ``out_dir``."""
    out = {}
    for path in record_files(out_dir):
        try:
            with open(path) as f:
                record = json.load(f)
            out[path] = record["config_fingerprint"]
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return out


def clear_results(out_dir):
    """--fresh: delete the project's own files in ``out_dir`` (records, config.json, the table).

    Returns the deleted paths. Other files are kept; so is a config.json
    that is not one of ours.
    """
    doomed = record_files(out_dir, corrupt=True)
    doomed += [p for p in (os.path.join(out_dir, n) for n in TABLE_FILES) if os.path.isfile(p)]
    try:
        read_results_config(out_dir)
        doomed.append(os.path.join(out_dir, CONFIG_FILE))
    except ResultsConfigError:
        pass
    doomed += glob.glob(os.path.join(out_dir, ".tmp-*.json"))
    for path in doomed:
        os.remove(path)
    return doomed
