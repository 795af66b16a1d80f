"""The Table 1 experiment sweep: units scheduled on workers, resumable.

A *profile* (``training/experiments/profiles/*.json``, :mod:`.config`) is data: data sets, seeds,
methods, the shared training settings, per-method hyper-parameter grids
(a list, or a dict keyed by data set name with an optional ``"default"``)
and the evaluation budget. Every (data set, seed, method, grid point) is a
*unit*; each finished unit is one self-describing JSON record in the results
directory, written atomically (temporary file, then rename) by the driver as
units complete (:mod:`.store`). Re-running the same command skips finished
units (status ``ok`` or ``diverged``) and recomputes failed or corrupt ones,
so a sweep killed at any point resumes without losing finished work. This
module only schedules: the configuration is :mod:`.config`'s, the results
directory :mod:`.store`'s.

The unfinished units of one data set, seed and batchable method (``vae``,
``beta_vae``, ``annealed_beta_vae``) whose settings differ only in what
:func:`training.trainers.fit_batched` lets differ (``beta``, ``lr``, ...; see
:func:`training.experiments.unit.batch_key`) form a *group*: one worker call fits
them as one batched computation and evaluates each with the seeds of its
unbatched run, so the records are those of separate runs (same unit ids,
files and metrics), plus ``batched_with`` (the other unit ids of the group)
and ``fit_seconds_shared_by`` / ``wall_seconds_shared_by`` (``fit_seconds``
and ``wall_seconds`` are the group's). A setting whose restarts all diverged
is ``diverged`` while the others of its group are ``ok``; any other error of
the batched fit makes every unit of the group ``failed``. Resume stays per
unit: only a group's unfinished units run again (as a smaller group; a
single one alone). ``run_sweep(..., batch_settings=False)`` (CLI
``--no-batch-settings``) runs every unit alone.

Groups and single units run on any ``concurrent.futures.Executor``: a local
process pool by default, or e.g. a Dask cluster's ``Client(...).get_executor()``.
"""
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm.auto import tqdm

from ..trainers import AllRestartsDiverged
from .config import check_config, expand_units
from .store import RECORD_KEYS, DirectoryLock, prepare_results_dir, unfinished_units, write_json_atomic
from .unit import batch_key, fit_and_evaluate, fit_and_evaluate_batched, versions

# ---- workers that exit with their driver (a SIGKILL leaves no orphans) -----
# A spawned pool worker blocks on its task queue forever if the driver is
# killed: :func:`watch_parent`, the pool's initializer, starts a daemon thread
# that ends the worker once its parent is gone. multiprocessing's resource
# tracker then exits too, when the last holder of its pipe is gone.

POLL_SECONDS = 0.5


def _watch(parent):
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:      # reparented: the driver is gone
            os._exit(1)


def watch_parent(parent=None):
    """Pool initializer: exit this process when ``parent`` (default: the current parent) dies."""
    parent = os.getppid() if parent is None else parent
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="watch-parent").start()


def _unit_record(unit, outcome, tb=None):
    """The record of ``unit`` from ``outcome``: its fit's record, or the exception that ended it."""
    base = {k: unit[k] for k in ("unit_id", "config_fingerprint", "dataset", "seed", "method",
                                 "grid_point", "settings")}
    if isinstance(outcome, dict):
        return {**outcome, **base, "status": "ok"}
    if isinstance(outcome, AllRestartsDiverged):
        return {**base, "status": "diverged", "error": str(outcome), "versions": versions()}
    return {**base, "status": "failed", "error": f"{type(outcome).__name__}: {outcome}",
            "traceback": tb or "".join(traceback.format_exception(outcome)), "versions": versions()}


def run_unit(unit):
    """Fit and evaluate one unit; never raises: failures become a record with the error."""
    started = time.time()
    tb = None
    try:
        outcome = fit_and_evaluate(unit["dataset"], unit["seed"], unit["method"], unit["settings"],
                                   is_samples=unit["eval"]["is_samples"],
                                   knn_repeats=unit["eval"]["knn_repeats"])
    except Exception as err:   # recorded, and the sweep goes on
        outcome, tb = err, traceback.format_exc()
    record = _unit_record(unit, outcome, tb)
    record["wall_seconds"] = time.time() - started
    return record


def run_group(units):
    """Fit a group's units as one batch and evaluate each; one record per unit, never raises.

    A group of one unit is :func:`run_unit`.
    """
    if len(units) == 1:
        return [run_unit(units[0])]
    started = time.time()
    first = units[0]
    try:
        outcomes = fit_and_evaluate_batched(first["dataset"], first["seed"], first["method"],
                                            [u["settings"] for u in units],
                                            is_samples=first["eval"]["is_samples"],
                                            knn_repeats=first["eval"]["knn_repeats"])
        tb = None
    except Exception as err:   # the batched fit failed: every unit of the group, and the sweep goes on
        outcomes, tb = [err] * len(units), traceback.format_exc()
    wall = time.time() - started
    ids = [u["unit_id"] for u in units]
    records = []
    for unit, outcome in zip(units, outcomes):
        record = _unit_record(unit, outcome, tb)
        record.update(batched_with=[i for i in ids if i != unit["unit_id"]], wall_seconds=wall,
                      wall_seconds_shared_by=len(units))
        records.append(record)
    return records


def plan_groups(units, batch_settings=True):
    """``units`` as a list of groups (lists of units fitted in one worker call), in order.

    With ``batch_settings``, units of one data set, seed, method and
    evaluation budget whose settings share a
    :func:`training.experiments.unit.batch_key` form one group; every other unit
    is a group of its own.
    """
    groups = {}
    for unit in units:
        key = batch_key(unit["method"], unit["settings"]) if batch_settings else None
        if key is None:
            key = ("unit", unit["unit_id"])
        else:
            key = ("group", unit["dataset"], unit["seed"], json.dumps(unit["eval"], sort_keys=True), key)
        groups.setdefault(key, []).append(unit)
    return list(groups.values())


def default_executor(workers):
    """A local process pool (spawn: clean workers with one BLAS thread each)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=watch_parent, initargs=(os.getpid(),))


def run_sweep(config, out_dir, executor=None, workers=None, fresh=False, progress=True, log=None,
              batch_settings=True):
    """Run every unfinished unit of ``config``, writing records into ``out_dir``.

    Parameters
    ----------
    config : dict
        A profile (see :func:`load_profile`, :func:`set_option`).
    out_dir : str
    executor : concurrent.futures.Executor, optional
        Where groups and units run; default a local process pool of ``workers``.
    workers : int, optional
        Local processes (default: the CPU count).
    fresh : bool
        Delete this directory's records first.
    progress : bool
        A progress bar with an ETA over the units.
    log : callable, optional
        Receives messages (default: print to stderr).
    batch_settings : bool
        Fit the unfinished units of a group (see the module docstring) as
        one batch; False runs every unit alone.

    Returns
    -------
    dict
        Counts of units: ``total``, ``skipped`` (finished before), ``ran``,
        ``batched`` (ran in a group of several), ``failed``, ``diverged``,
        ``corrupt`` (recomputed); ``groups`` (worker calls) and ``seconds``.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    check_config(config)        # the layout and every unit's settings, before any runs
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"results directory {out_dir!r} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    with DirectoryLock(out_dir):    # a second driver is refused before it touches anything
        return _run_locked(config, out_dir, executor, workers, fresh, progress, log, batch_settings)


def _run_locked(config, out_dir, executor, workers, fresh, progress, log, batch_settings):
    """:func:`run_sweep` with the directory locked."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    prepare_results_dir(out_dir, config, fresh, log)
    units = expand_units(config)
    todo, corrupt = unfinished_units(out_dir, units, log)
    groups = plan_groups(todo, batch_settings)
    counts = {"total": len(units), "skipped": len(units) - len(todo), "ran": 0,
              "batched": sum(len(g) for g in groups if len(g) > 1), "failed": 0, "diverged": 0,
              "corrupt": corrupt, "groups": len(groups)}
    started = time.time()
    own = executor is None and todo
    if own:
        executor = default_executor(workers or os.cpu_count())
    try:
        with tqdm(total=len(units), initial=counts["skipped"], disable=not progress, desc="units",
                  unit="unit", smoothing=0.1) as bar:
            futures = {(executor.submit(run_unit, group[0]) if len(group) == 1
                        else executor.submit(run_group, group)): group for group in groups}
            for future in as_completed(futures):
                group = futures[future]
                try:
                    records = future.result()
                    records = [records] if isinstance(records, dict) else records
                except Exception as err:   # a worker died: record it, go on
                    records = [{**{k: unit[k] for k in RECORD_KEYS if k != "status"},
                                "status": "failed", "error": f"{type(err).__name__}: {err}"}
                               for unit in group]
                    if len(group) > 1:
                        for unit, record in zip(group, records):
                            record["batched_with"] = [u["unit_id"] for u in group if u is not unit]
                for unit, record in zip(group, records):
                    write_json_atomic(os.path.join(out_dir, unit["file"]), record)
                    counts["ran"] += 1
                    if record["status"] in ("failed", "diverged"):
                        counts[record["status"]] += 1
                        log(f"unit {unit['unit_id']} {record['status']}: {record.get('error')}")
                bar.update(len(group))
    finally:
        if own:
            executor.shutdown(wait=False, cancel_futures=True)
    counts["seconds"] = time.time() - started
    return counts
