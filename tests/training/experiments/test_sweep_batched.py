"""The sweep fits the grid points of a batchable method as one batched fit (groups)."""
import glob
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from training.experiments import unit as experiment
from training.experiments.cli import build_parser
from training.experiments.unit import batch_key, fit_and_evaluate, fit_and_evaluate_batched
from training.experiments.config import expand_units, load_profile, set_option
from training.experiments.store import load_records
from training.experiments.sweep import plan_groups, run_sweep

GRID = [0.5, 2.0]


def config_of(methods=("beta_vae",), datasets=("linear_jtex",), **changes):
    config = load_profile("tiny")
    base = {"seeds": [0], "datasets": list(datasets), "methods": list(methods), "train.restarts": 2,
            "grids.beta_vae.beta": GRID, "grids.annealed_beta_vae.beta": GRID}
    for key, value in {**base, **changes}.items():
        config = set_option(config, key, value)
    return config


def run_serial(config, out, **kw):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return run_sweep(config, str(out), executor=pool, progress=False, log=lambda m: None, **kw)


def by_id(out):
    return {r["unit_id"]: r for r in load_records(str(out))[1]}


def assert_same_tree(a, b):
    if isinstance(b, dict):
        assert sorted(a) == sorted(b)
        for key in b:
            assert_same_tree(a[key], b[key])
    else:
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9)


def test_groups_are_the_grid_points_of_a_batchable_method():
    config = config_of(methods=["vae", "beta_vae", "annealed_beta_vae", "libi"],
                       datasets=["linear_jtex", "gaussian"], seeds=[0, 1])
    units = expand_units(config)
    groups = plan_groups(units)
    sizes = sorted((g[0]["method"], len(g)) for g in groups)
    assert sizes == sorted([("vae", 1), ("libi", 1), ("beta_vae", 2), ("annealed_beta_vae", 2)] * 4)
    for g in groups:
        assert len({(u["dataset"], u["seed"], u["method"]) for u in g}) == 1
    assert sum(len(g) for g in groups) == len(units)
    assert all(len(g) == 1 for g in plan_groups(units, batch_settings=False))
    # Only what fit_batched lets differ may differ.
    assert batch_key("beta_vae", {"beta": 1.0, "lr": 0.1, "restarts": 3, "seed": 4, "epochs": 5}) == \
        batch_key("beta_vae", {"beta": 2.0, "epochs": 5})
    assert batch_key("beta_vae", {"beta": 1.0, "eval_every": 5}) != batch_key("beta_vae", {"beta": 2.0})
    assert batch_key("lagging", {"segments": 5}) is None
    mixed = config_of(**{"grids.beta_vae": {"beta": GRID, "eval_every": [5, 10]}})
    assert sorted(len(g) for g in plan_groups(expand_units(mixed))) == [2, 2]


@pytest.mark.slow
def test_batched_sweep_gives_the_records_of_the_unbatched_one(tmp_path):
    config = config_of(methods=["vae", "beta_vae", "annealed_beta_vae"], datasets=["linear_jtex", "gaussian"])
    batched = run_serial(config, tmp_path / "b")
    alone = run_serial(config, tmp_path / "a", batch_settings=False)
    assert batched["ran"] == alone["ran"] == batched["total"] == 10
    assert batched["batched"] == 8 and batched["groups"] == 6
    assert alone["batched"] == 0 and alone["groups"] == 10
    rb, ra = by_id(tmp_path / "b"), by_id(tmp_path / "a")
    assert sorted(rb) == sorted(ra)
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "b" / "*-s*.json"))) == \
        sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "a" / "*-s*.json")))
    for uid, b in rb.items():
        a = ra[uid]
        assert a["status"] == b["status"] == "ok"
        assert "batched_with" not in a and "fit_seconds_shared_by" not in a
        if b["method"] == "vae":
            assert "batched_with" not in b
        else:
            (other,) = b["batched_with"]
            assert other != uid and rb[other]["batched_with"] == [uid]
            assert b["fit_seconds_shared_by"] == b["wall_seconds_shared_by"] == 2
            assert b["fit_seconds"] == rb[other]["fit_seconds"]
        assert b["config_fingerprint"] == a["config_fingerprint"] and b["settings"] == a["settings"]
        assert b["best_restart"] == a["best_restart"] and b["diverged"] == a["diverged"]
        for key in ("val_objective", "selected_val_objective"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-9)
        for key, value in a["metrics"].items():
            if key == "test_ll_is_worst":
                assert [w["index"] for w in b["metrics"][key]] == [w["index"] for w in value]
                np.testing.assert_allclose([w["is"] for w in b["metrics"][key]], [w["is"] for w in value], rtol=1e-9)
            elif key != "eval_seconds" and value is not None:
                np.testing.assert_allclose(b["metrics"][key], value, rtol=1e-9, err_msg=f"{uid} {key}")
        assert_same_tree(b["selected"], a["selected"])


@pytest.mark.slow
def test_resume_runs_only_the_unfinished_units_of_a_group(tmp_path):
    config = config_of(**{"grids.beta_vae.beta": [0.5, 2.0, 5.0]})
    assert run_serial(config, tmp_path)["batched"] == 3
    paths = sorted(glob.glob(str(tmp_path / "*-s*.json")))
    stamps = {p: os.stat(p).st_mtime_ns for p in paths}
    os.remove(paths[1])
    counts = run_serial(config, tmp_path)
    assert counts["skipped"] == 2 and counts["ran"] == 1 and counts["groups"] == 1
    for p in paths:
        assert os.path.exists(p)
        if p != paths[1]:
            assert os.stat(p).st_mtime_ns == stamps[p]
    with open(paths[1]) as f:
        redone = json.load(f)
    assert redone["status"] == "ok" and "batched_with" not in redone    # fitted alone this time
    # Two unfinished units of the group run as a smaller group.
    stamp = os.stat(paths[1]).st_mtime_ns
    os.remove(paths[0])
    os.remove(paths[2])
    counts = run_serial(config, tmp_path)
    assert counts["ran"] == counts["batched"] == 2 and counts["groups"] == 1
    assert os.stat(paths[1]).st_mtime_ns == stamp
    with open(paths[0]) as f:
        assert len(json.load(f)["batched_with"]) == 1


@pytest.mark.slow
def test_a_diverged_setting_leaves_the_others_of_its_group_ok(tmp_path):
    config = config_of(**{"grids.beta_vae": {"beta": [1.0], "lr": [0.01, 1e6, 0.02]}})
    counts = run_serial(config, tmp_path)
    assert counts["ran"] == 3 and counts["diverged"] == 1 and counts["failed"] == 0 and counts["batched"] == 3
    status = {r["grid_point"]["lr"]: r for r in by_id(tmp_path).values()}
    assert status[1e6]["status"] == "diverged" and "diverged" in status[1e6]["error"]
    assert len(status[1e6]["batched_with"]) == 2
    assert status[0.01]["status"] == status[0.02]["status"] == "ok"
    assert np.isfinite(status[0.02]["metrics"]["test_ll_is"])
    # As fitted alone (this lr differs from the others: equal up to rounding).
    alone = fit_and_evaluate("linear_jtex", 0, "beta_vae", status[0.02]["settings"], is_samples=50, knn_repeats=20)
    np.testing.assert_allclose(status[0.02]["metrics"]["test_ll_is"], alone["metrics"]["test_ll_is"], rtol=1e-9)
    assert run_serial(config, tmp_path)["ran"] == 0                     # diverged counts as finished


@pytest.mark.slow
def test_a_failed_batched_fit_fails_its_group_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def boom(trainers, data):
        raise RuntimeError("boom in the batched fit")
    monkeypatch.setattr(experiment, "fit_batched", boom)
    config = config_of(methods=["vae", "beta_vae"])
    counts = run_serial(config, tmp_path)
    assert counts["ran"] == 3 and counts["failed"] == 2
    records = list(by_id(tmp_path).values())
    failed = [r for r in records if r["status"] == "failed"]
    assert sorted(r["method"] for r in failed) == ["beta_vae", "beta_vae"]
    for r in failed:
        assert r["error"] == "RuntimeError: boom in the batched fit" and "boom" in r["traceback"]
        assert len(r["batched_with"]) == 1
    assert [r["status"] for r in records if r["method"] == "vae"] == ["ok"]
    monkeypatch.undo()
    counts = run_serial(config, tmp_path)                              # failed units are retried
    assert counts["ran"] == 2 and counts["failed"] == 0 and counts["batched"] == 2


def test_an_invalid_setting_fails_alone():
    out = fit_and_evaluate_batched("linear_jtex", 0, "beta_vae",
                                   [{"epochs": 10, "restarts": 1, "beta": b} for b in (-1.0, 2.0)],
                                   is_samples=20, knn_repeats=0)
    assert isinstance(out[0], ValueError) and "beta" in str(out[0])
    assert out[1]["fit_seconds_shared_by"] == 1 and np.isfinite(out[1]["metrics"]["test_ll_is"])
    with pytest.raises(ValueError, match="cannot be fitted batched"):
        fit_and_evaluate_batched("linear_jtex", 0, "libi", [{}, {}])
    with pytest.raises(ValueError, match="may differ only"):
        fit_and_evaluate_batched("linear_jtex", 0, "beta_vae", [{"epochs": 10}, {"epochs": 20}])


def test_cli_flag():
    parser = build_parser()
    assert parser.parse_args(["table1", "--out", "x", "--no-batch-settings"]).no_batch_settings
    assert not parser.parse_args(["table1", "--out", "x"]).no_batch_settings
