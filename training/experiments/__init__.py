"""Experiments: one unit, the configuration, the results store, the sweep, Table 1, figures, the CLI.

* :mod:`.unit`: fit and evaluate one (data set, seed, method, setting).
* :mod:`.config`: the one owner of a sweep's configuration: load a profile,
  override, expand into units, check (``profiles/*.json`` are the bundled ones).
* :mod:`.store`: the results directory (atomic JSON records, the driver's lock).
* :mod:`.sweep`: scheduling units on workers (local processes or Dask), resumable.
* :mod:`.table`, :mod:`.figures`: Table 1 and Figures 2-5; :mod:`.cli`: ``python -m training``.
"""
from .config import load_profile
from .store import load_records
from .sweep import run_sweep
from .unit import METHODS, fit_and_evaluate

__all__ = ["METHODS", "fit_and_evaluate", "run_sweep", "load_profile", "load_records"]
