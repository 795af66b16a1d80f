"""A sweep's configuration, owned here alone: load a profile, override, expand into units, check.

A *profile* (``profiles/*.json`` beside this module, or a JSON path) is data:
data sets, seeds, methods, the shared training settings, per-method
hyper-parameter grids (a list, or a dict keyed by data set name with an
optional ``"default"``) and the evaluation budget. :func:`load_profile`
reads one, :func:`set_option` overrides a dotted key, :func:`expand_units`
lists its units and :func:`fingerprint` names everything that changes results.

Two checks, every error naming its key and the valid range:
:func:`check_structure` checks the layout (known keys, names, lists without
repeats, grids as lists): cheap, so loading and every override run it.
:func:`check_settings` checks every unit's training settings the way the
trainers themselves do (their constructors and ``_check_settings``, without
fitting), so a setting a trainer gains is checked here without a change;
:func:`check_config` is both, run once before a sweep starts.
"""
import copy
import hashlib
import itertools
import json
import numbers
import os
from importlib import resources

from ..datasets import DATASETS, load_dataset
from .unit import METHODS, make_trainer

TOP_KEYS = ("name", "description", "datasets", "seeds", "methods", "train", "method_settings",
            "dataset_settings", "grids", "eval")
REQUIRED = ("datasets", "seeds", "methods", "train", "grids", "eval")
#: eval key -> smallest valid value
EVAL_KEYS = {"is_samples": 1, "knn_repeats": 0}


def trainer_settings(method):
    """The settings a sweep may give ``method``'s trainer: its constructor's, less ``progress``."""
    return set(METHODS[method]().get_params()) - {"progress"}


def _type(value):
    return type(value).__name__


def _names(key, value, valid):
    """A non-empty list of distinct names from ``valid``."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a non-empty list of names from {sorted(valid)}, got "
                         f"{_type(value)} {value!r}")
    for name in value:
        if not isinstance(name, str) or name not in valid:
            raise ValueError(f"{key}: unknown name {name!r}; valid: {sorted(valid)}")
    _distinct(key, value)


def _distinct(key, values):
    seen = set()
    for v in values:
        text = json.dumps(v, sort_keys=True)
        if text in seen:
            raise ValueError(f"{key}: {v!r} appears more than once (each would count again)")
        seen.add(text)


def _mapping(key, value):
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object of settings (key: value), got {_type(value)} {value!r}")
    return value


def _setting_keys(key, settings, methods):
    """Every key of ``settings`` must be a setting of each of ``methods``."""
    for name in settings:
        for method in methods:
            if name not in trainer_settings(method):
                raise ValueError(f"{key}.{name}: not a setting of {method}; valid: "
                                 f"{sorted(trainer_settings(method))}")


def check_structure(config):
    """The layout of ``config``: keys, types, names, repeats. Returns ``config``."""
    methods = METHODS
    if not isinstance(config, dict):
        raise ValueError(f"a configuration must be a JSON object, got {_type(config)}")
    for key in config:
        if key not in TOP_KEYS:
            raise ValueError(f"unknown configuration key {key!r}; valid: {list(TOP_KEYS)}")
    for key in REQUIRED:
        if key not in config:
            raise ValueError(f"profile is missing {key!r}")
    for key in ("name", "description"):
        if key in config and not isinstance(config[key], str):
            raise ValueError(f"{key} must be a string, got {_type(config[key])}")
    _names("datasets", config["datasets"], DATASETS)
    _names("methods", config["methods"], methods)
    seeds = config["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    _distinct("seeds", seeds)
    _setting_keys("train", _mapping("train", config["train"]), config["methods"])
    for name, settings in _mapping("dataset_settings", config.get("dataset_settings", {})).items():
        if name not in DATASETS:
            raise ValueError(f"dataset_settings: unknown data set {name!r}; valid: {sorted(DATASETS)}")
        _setting_keys(f"dataset_settings.{name}", _mapping(f"dataset_settings.{name}", settings),
                      config["methods"])
    for name, settings in _mapping("method_settings", config.get("method_settings", {})).items():
        if name not in methods:
            raise ValueError(f"method_settings: unknown method {name!r}; valid: {sorted(methods)}")
        _setting_keys(f"method_settings.{name}", _mapping(f"method_settings.{name}", settings), [name])
    for name, grid in _mapping("grids", config["grids"]).items():
        if name not in methods:
            raise ValueError(f"grids: unknown method {name!r}; valid: {sorted(methods)}")
        _setting_keys(f"grids.{name}", _mapping(f"grids.{name}", grid), [name])
        for setting, values in grid.items():
            key = f"grids.{name}.{setting}"
            per_dataset = values if isinstance(values, dict) else {None: values}
            for dataset, vals in per_dataset.items():
                where = key if dataset is None else f"{key}.{dataset}"
                if dataset is not None and dataset != "default" and dataset not in DATASETS:
                    raise ValueError(f"{key}: unknown data set {dataset!r}; valid: "
                                     f"{sorted(DATASETS)} or 'default'")
                if not isinstance(vals, list) or not vals:
                    raise ValueError(f"{where} must be a non-empty list of values (or an object of such "
                                     f"lists by data set name), got {_type(vals)} {vals!r}")
                _distinct(where, vals)
    ev = _mapping("eval", config["eval"])
    for key in ev:
        if key not in EVAL_KEYS:
            raise ValueError(f"eval: unknown key {key!r}; valid: {sorted(EVAL_KEYS)}")
    for key, low in EVAL_KEYS.items():
        value = ev.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"eval.{key} must be an int >= {low}, got {value!r}")
    return config


def _origin(config, unit, name):
    """The configuration key that gave ``unit`` its setting ``name`` (the last of the merge wins)."""
    d, m = unit["dataset"], unit["method"]
    if name in unit["grid_point"]:
        return f"grids.{m}.{name}"
    if name in config.get("method_settings", {}).get(m, {}):
        return f"method_settings.{m}.{name}"
    if name in config.get("dataset_settings", {}).get(d, {}):
        return f"dataset_settings.{d}.{name}"
    return f"train.{name}"


def _problem(method, settings, data):
    """The error ``method``'s trainer finds in ``settings``, or None."""
    accepted = set(METHODS[method]().get_params())
    try:
        make_trainer(method, **{k: v for k, v in settings.items() if k in accepted})._check_settings(data)
    except (TypeError, ValueError) as err:
        return err
    return None


def check_settings(config):
    """Every unit's settings, as its trainer would check them before fitting. Returns ``config``.

    Raises
    ------
    ValueError, TypeError
        Naming the configuration key (e.g. ``train.epochs``), the method and
        data set, and the trainer's valid range.
    """
    check_structure(config)
    data, seen = {}, set()
    for unit in expand_units(config):
        d, m, settings = unit["dataset"], unit["method"], unit["settings"]
        key = json.dumps([d, m, settings], sort_keys=True, default=repr)
        if key in seen:
            continue
        seen.add(key)
        if d not in data:    # small splits: only the model's form matters here
            data[d] = load_dataset(d, 0, n_train=2, n_val=2, n_test=2)
        err = _problem(m, settings, data[d])
        if err is None:
            continue
        text = str(err)
        # the setting the message names, else the one whose removal clears it
        culprit = next((k for k in settings if text.startswith(f"{k} ")), None)
        if culprit is None:
            culprit = next((k for k in settings
                            if _problem(m, {n: v for n, v in settings.items() if n != k}, data[d]) is None),
                           None)
        where = _origin(config, unit, culprit) if culprit else "settings"
        raise type(err)(f"{where}: {text} (method {m}, data set {d})") from None
    return config


def check_config(config):
    """:func:`check_structure` and :func:`check_settings`: all of ``config``. Returns it."""
    return check_settings(config)


def is_number(value):
    """A JSON number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ---- profiles: load, override, expand ------------------------------------------

PROFILE_DIR = resources.files(__package__) / "profiles"


def available_profiles():
    return sorted(p.name[:-5] for p in PROFILE_DIR.iterdir() if p.name.endswith(".json"))


def load_profile(name):
    """The profile ``name`` (a bundled name, or a path to a JSON file)."""
    path = name if os.path.sep in name or name.endswith(".json") else None
    if path is None:
        if name not in available_profiles():
            raise ValueError(f"profile must be one of {available_profiles()} or a JSON path, got {name!r}")
        text = (PROFILE_DIR / f"{name}.json").read_text()
    else:
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"profile {name!r}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"profile {name!r} is not valid JSON: {err}") from None
    return check_structure(profile)


def set_option(config, key, value):
    """Override a dotted ``key`` (e.g. ``train.epochs``) with ``value``; returns a new config."""
    config = copy.deepcopy(config)
    node = config
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"--set: bad key {key!r} (expected dotted names, e.g. train.epochs)")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return check_structure(config)


def parse_assignment(text):
    """``key=value`` with a JSON value (bare words are strings)."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ValueError(f"--set expects key=value with a key, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        if not raw.strip() or raw.strip()[0] in '[{"-.0123456789':   # meant as JSON, but broken
            raise ValueError(f"--set {key.strip()}: {raw!r} is not valid JSON ({err})") from None
        value = raw
    return key.strip(), value


def fingerprint(config):
    """A hash of everything that changes results (not the name or description)."""
    core = {k: v for k, v in config.items() if k not in ("name", "description")}
    return hashlib.sha1(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def _grid_values(values, dataset):
    if isinstance(values, dict):
        return values.get(dataset, values.get("default"))
    return values


def expand_units(config):
    """Every unit of the sweep, in a deterministic order."""
    fp = fingerprint(config)
    units = []
    for dataset, seed, method in itertools.product(config["datasets"], config["seeds"], config["methods"]):
        grid = {k: _grid_values(v, dataset) for k, v in config["grids"].get(method, {}).items()}
        grid = {k: v for k, v in grid.items() if v is not None}
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            point = dict(zip(keys, values))
            settings = {**config["train"], **config.get("dataset_settings", {}).get(dataset, {}),
                        **config.get("method_settings", {}).get(method, {}), **point}
            unit_id = f"{dataset}/{seed}/{method}/{json.dumps(point, sort_keys=True)}"
            digest = hashlib.sha1(unit_id.encode()).hexdigest()[:10]
            units.append({"unit_id": unit_id, "file": f"{dataset}-s{seed}-{method}-{digest}.json",
                          "dataset": dataset, "seed": seed, "method": method, "grid_point": point,
                          "settings": settings, "eval": dict(config["eval"]), "config_fingerprint": fp})
    return units
