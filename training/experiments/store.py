"""The results directory: JSON records written atomically, one driver's lock, which files are ours.

A record is named ``<data set>-s<seed>-<method>-<10 hex digits>.json``
(:func:`training.experiments.config.expand_units`); ``config.json`` holds the
configuration and its fingerprint; ``table1.md`` and ``table1.csv`` are the
table. Nothing else in the directory is touched.

* Records: strict JSON (non-finite numbers become null), written through a
  temporary file and a rename, so a reader or a rerun after a kill sees the
  old file or the whole new one.
* One driver per directory: an exclusive lock on ``DIR/.lock`` for as long
  as a sweep runs. The operating system drops it when its holder exits, even
  by SIGKILL, so a killed driver leaves no stale lock. POSIX (fcntl) only;
  elsewhere no lock is taken.
"""
import glob
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np

from .config import check_structure, expand_units, fingerprint, is_number

try:
    import fcntl
except ImportError:     # not POSIX: run unlocked
    fcntl = None


# ---- records: atomic, strict JSON -----------------------------------------

def json_safe(obj):
    """A copy of ``obj`` with numpy scalars/arrays as Python values and NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _umask():
    mask = os.umask(0o022)      # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


#: mkstemp makes 0600 files; records get the mode any file of the user's gets.
FILE_MODE = 0o666 & ~_umask()


def write_json_atomic(path, record):
    """Write ``record`` to ``path`` through a temporary file and a rename.

    A reader (or a rerun after a kill) sees the old file or the whole new
    one, never a partial write.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")   # PARTIAL_WRITES
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(record), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- one driver per results directory --------------------------------------

LOCK_FILE = ".lock"


class ResultsLocked(ValueError):
    """Another driver holds the results directory."""


class DirectoryLock:
    """``with DirectoryLock(folder):`` holds ``folder``'s lock, or raises :class:`ResultsLocked`."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ResultsLocked(f"another sweep (pid {holder}) is running on {self.folder}: wait for it "
                                "to finish (rerun then to resume), or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)      # closing drops the lock; the file stays, harmless
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ---- which files are ours, and whether a record is sound ---------------------

CONFIG_FILE = "config.json"
#: The temporary files of :func:`write_json_atomic` (left behind only by a kill).
PARTIAL_WRITES = ".tmp-*.json"
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
#: Metrics that are flags (true, false or null), not numbers.
FLAG_METRICS = frozenset({"below_truth"})


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
            elif key in FLAG_METRICS:
                if value is not None and not isinstance(value, bool):
                    return f"metric {key} is not true, false or null ({type(value).__name__} {value!r})"
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
    for path in doomed:
        os.remove(path)
    return doomed + remove_partial_writes(out_dir)


def remove_partial_writes(out_dir):
    """Delete the temporary files of writes cut short by a kill (:func:`write_json_atomic`); returns their paths."""
    doomed = glob.glob(os.path.join(out_dir, PARTIAL_WRITES))
    for path in doomed:
        os.remove(path)
    return doomed


# ---- the records of a sweep: which are finished, resume -------------------------

RECORD_KEYS = ("unit_id", "config_fingerprint", "status", "dataset", "seed", "method", "settings")


class ConfigMismatch(ValueError):
    """The results directory holds records of another configuration."""


def read_record(path, unit):
    """The record at ``path`` if it is a finished record of ``unit``; else (None, reason)."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        return None, f"unreadable ({type(err).__name__})"
    if not isinstance(record, dict) or any(k not in record for k in RECORD_KEYS):
        return None, "missing fields"
    if record["unit_id"] != unit["unit_id"] or record["config_fingerprint"] != unit["config_fingerprint"]:
        return None, "belongs to another unit or configuration"
    if record["status"] == "ok" and "metrics" not in record:
        return None, "missing metrics"
    problem = record_problem(record)
    if problem:
        return None, problem
    return record, None


def prepare_results_dir(out_dir, config, fresh=False, log=None):
    """Create or check ``out_dir``: refuse a directory of another configuration.

    Call it holding the directory's lock (:class:`training.experiments.store.DirectoryLock`):
    it deletes temporary files. ``fresh`` deletes only the project's own files
    (:func:`training.experiments.store.clear_results`) and logs them. A missing or
    unreadable config.json is rebuilt when every record there belongs to this
    configuration (they are kept); otherwise it is refused.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    path = os.path.join(out_dir, CONFIG_FILE)
    fp = fingerprint(config)
    os.makedirs(out_dir, exist_ok=True)
    if fresh:
        deleted = clear_results(out_dir)
        log(f"--fresh: deleted {len(deleted)} files of earlier results from {out_dir}"
            + (f" ({', '.join(os.path.basename(p) for p in deleted[:5])}{', ...' if len(deleted) > 5 else ''})"
               if deleted else "") + "; other files are kept")
    remove_partial_writes(out_dir)
    try:
        old_fp, old_config = read_results_config(out_dir)
    except ResultsConfigError as err:
        problem = err
    else:
        if old_fp != fp:
            raise ConfigMismatch(
                f"{out_dir} holds results of a different configuration (profile "
                f"{old_config.get('name')!r}, fingerprint {old_fp}; this run "
                f"{fp}). Mixing them would corrupt the table: use another --out, or --fresh to "
                f"delete its records and start over.")
        return fp
    # config.json missing or broken: the records' own fingerprints say whose they are
    owners = record_fingerprints(out_dir)
    foreign = sorted({f for f in owners.values() if f != fp})
    if foreign:
        what = "missing" if problem.missing else f"unreadable ({problem})"
        raise ConfigMismatch(
            f"{out_dir}: {CONFIG_FILE} is {what}, and {sum(f != fp for f in owners.values())} of its "
            f"{len(owners)} records belong to another configuration (fingerprint {', '.join(foreign)}; this "
            f"run {fp}). To keep them, rerun with the configuration that made them ({CONFIG_FILE} is then "
            "rebuilt); else use another --out, or --fresh to delete them.")
    if os.path.exists(path):
        shutil.move(path, path + ".corrupt")
        log(f"{problem}: moved to {path}.corrupt")
    write_json_atomic(path, {"fingerprint": fp, "config": config})
    if owners:
        log(f"{CONFIG_FILE} rebuilt; the {len(owners)} records there belong to this configuration and are kept")
    return fp


def load_records(out_dir, config=None):
    """The finished records of ``out_dir`` (of ``config`` if given, else of its config.json)."""
    if config is None:
        config = read_results_config(out_dir)[1]
    records = []
    for unit in expand_units(config):
        path = os.path.join(out_dir, unit["file"])
        if os.path.exists(path):
            record, _ = read_record(path, unit)
            if record is not None:
                records.append(record)
    return config, records


def unfinished_units(out_dir, units, log):
    """The ``units`` without a finished record in ``out_dir`` (to run), and how many records were corrupt.

    A finished record has status ``ok`` or ``diverged``; a failed unit runs
    again; a corrupt record is moved aside to ``<file>.corrupt`` (and logged)
    and its unit runs again.
    """
    todo, corrupt = [], 0
    for unit in units:
        path = os.path.join(out_dir, unit["file"])
        if os.path.exists(path):
            record, reason = read_record(path, unit)
            if record is not None and record["status"] in ("ok", "diverged"):
                continue
            if record is None:
                corrupt += 1
                log(f"corrupt record {path} ({reason}): moved to {path}.corrupt, recomputing")
                shutil.move(path, path + ".corrupt")
        todo.append(unit)
    return todo, corrupt
