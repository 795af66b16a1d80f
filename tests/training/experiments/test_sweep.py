"""The Table 1 pipeline: units, records, resume after a kill, refusals, table aggregation, Dask."""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from training.experiments import table
from training.experiments.config import expand_units, load_profile, set_option
from training.experiments.store import ConfigMismatch, load_records, record_problem
from training.experiments.sweep import run_sweep
from training.experiments.unit import gap_to_truth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def small(config=None, **changes):
    config = config or load_profile("tiny")
    for key, value in changes.items():
        config = set_option(config, key.replace("__", "."), value)
    return config


def records_in(folder):
    return sorted(glob.glob(os.path.join(folder, "*-s*-*.json")))


def run_serial(config, out, **kw):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return run_sweep(config, str(out), executor=pool, progress=False, log=lambda m: None, **kw)


def test_units_expand_the_grids_per_data_set():
    config = load_profile("paper")
    units = expand_units(config)
    per = {}
    for u in units:
        per.setdefault((u["dataset"], u["method"]), set()).add(json.dumps(u["grid_point"], sort_keys=True))
    assert len(per[("linear_jtex", "libi")]) == 4 * 2 * 2 * 2
    assert len(per[("mobius", "libi")]) == 3 * 2 * 2 * 2
    assert {json.loads(p)["segments"] for p in per[("gaussian", "lagging")]} == {5, 10, 15, 20}
    assert len(units) == 4 * 5 * (1 + 3 + 4 + 4 + 32) - 5 * 8      # Mobius has one lambda less
    assert len({u["file"] for u in units}) == len(units)
    assert all(u["settings"]["epochs"] == 30000 and u["settings"]["restarts"] == 10 for u in units)


@pytest.mark.slow
def test_tiny_profile_end_to_end(tmp_path):
    config = small(seeds=[0], datasets=["linear_jtex"])
    counts = run_serial(config, tmp_path)
    assert counts["ran"] == counts["total"] == 4 and counts["failed"] == 0
    _, records = load_records(str(tmp_path))
    assert len(records) == 4
    for r in records:
        assert r["status"] == "ok"
        for key in ("settings", "seed", "versions", "selected", "metrics", "fit_seconds"):
            assert key in r
        assert r["metrics"]["test_ll_exact"] is not None
    again = run_serial(config, tmp_path)
    assert again["skipped"] == 4 and again["ran"] == 0


@pytest.mark.slow
def test_refuses_a_directory_of_another_configuration(tmp_path):
    config = small(seeds=[0], datasets=["linear_jtex"], methods=["vae"])
    run_serial(config, tmp_path)
    with pytest.raises(ConfigMismatch, match="--fresh"):
        run_serial(small(config, train__epochs=41), tmp_path)
    counts = run_serial(small(config, train__epochs=41), tmp_path, fresh=True)
    assert counts["ran"] == 1


@pytest.mark.slow
def test_corrupt_record_is_reported_and_recomputed(tmp_path):
    config = small(seeds=[0], datasets=["linear_jtex"], methods=["vae"])
    run_serial(config, tmp_path)
    (path,) = records_in(tmp_path)
    with open(path, "w") as f:
        f.write('{"unit_id": "trunc')
    messages = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        counts = run_sweep(config, str(tmp_path), executor=pool, progress=False, log=messages.append)
    assert counts["corrupt"] == 1 and counts["ran"] == 1
    assert any("corrupt" in m for m in messages)
    assert os.path.exists(path + ".corrupt")
    with open(path) as f:
        assert json.load(f)["status"] == "ok"


@pytest.mark.slow
def test_failed_unit_is_recorded_and_the_sweep_goes_on(tmp_path, vae_units_fail):
    # invalid settings are refused before any unit runs, so a unit fails at run time here
    config = small(seeds=[0], datasets=["linear_jtex"], methods=["vae", "beta_vae"])
    counts = run_serial(config, tmp_path)
    assert counts["failed"] == 1 and counts["ran"] == 3
    _, records = load_records(str(tmp_path))
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "vae broke" in failed[0]["error"]
    # A rerun retries the failed unit only.
    assert run_serial(config, tmp_path)["ran"] == 1


@pytest.mark.slow
def test_resume_after_a_real_kill(tmp_path):
    out = str(tmp_path / "res")
    cmd = [sys.executable, "-m", "training", "table1", "--profile", "tiny", "--out", out,
           "--workers", "1", "--no-progress", "--set", "train.epochs=150"]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while len(records_in(out)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: open(p, "rb").read() for p in records_in(out)}
    total = len(expand_units(load_profile_with(out)))
    assert 3 <= len(before) < total, "the sweep should have been killed midway"
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = records_in(out)
    assert len(after) == total
    for path, content in before.items():
        assert open(path, "rb").read() == content          # finished units untouched
    ids = [json.load(open(p))["unit_id"] for p in after]
    assert len(set(ids)) == len(ids)
    assert f"{len(before)} already finished" in done.stdout
    assert os.path.exists(os.path.join(out, "table1.md"))


def load_profile_with(out):
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)["config"]


def test_settings_of_a_cell_are_ranked_by_one_metric():
    """Quadrature ranks only where every setting has it; else IS ranks them all."""
    def rec(beta, is_ll, quad):
        return {"status": "ok", "dataset": "cubic_jtex", "method": "beta_vae", "grid_point": {"beta": beta},
                "metrics": {"test_ll_is": is_ll, "test_ll_quadrature": quad, "smooth_knn": 1.0}}
    both = [rec(0.5, -20.0, -4.0), rec(2.0, -5.0, -4.5)]
    row = table.aggregate(both, ["cubic_jtex"], ["beta_vae"])[0]
    assert row["setting"] == {"beta": 0.5} and row["selected_by"] == "test_ll_quadrature"
    mixed = [rec(0.5, -20.0, -4.0), rec(2.0, -5.0, None)]
    row = table.aggregate(mixed, ["cubic_jtex"], ["beta_vae"])[0]
    assert row["setting"] == {"beta": 2.0} and row["selected_by"] == "test_ll_is"


def test_table_aggregation_on_known_records():
    def rec(dataset, method, point, ll, knn, status="ok"):
        return {"status": status, "dataset": dataset, "method": method, "grid_point": point,
                "metrics": {"test_ll_is": ll, "smooth_knn": knn}}
    records = [rec("gaussian", "beta_vae", {"beta": 2.0}, 7.0, 4.0), rec("gaussian", "beta_vae", {"beta": 2.0}, 8.0, 2.0),
               rec("gaussian", "beta_vae", {"beta": 5.0}, 7.2, 1.0), rec("gaussian", "beta_vae", {"beta": 5.0}, 7.4, 3.0),
               rec("gaussian", "beta_vae", {"beta": 0.5}, 9.9, 0.0, status="failed"),
               rec("gaussian", "vae", {}, 6.0, 10.0)]
    rows = {(r["dataset"], r["method"]): r for r in table.aggregate(records, ["gaussian"], ["vae", "beta_vae"])}
    best = rows[("gaussian", "beta_vae")]
    assert best["setting"] == {"beta": 2.0}                # mean 7.5 beats 7.3; the failed one is ignored
    assert best["test_ll_mean"] == pytest.approx(7.5) and best["test_ll_std"] == pytest.approx(0.5 ** 0.5)
    assert best["knn_mean"] == pytest.approx(3.0) and best["n"] == 2
    assert best["paper_ll_mean"] == 7.65
    assert rows[("gaussian", "vae")]["test_ll_std"] == 0.0
    text = table.markdown(list(rows.values()), ["gaussian"], ["vae", "beta_vae"])
    assert "7.50 ± 0.71" in text and "7.65 ± 0.09" in text


@pytest.mark.slow
def test_bad_profile_input(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        load_profile("no_such_profile")
    with pytest.raises(ValueError, match="datasets"):
        set_option(load_profile("tiny"), "datasets", ["nope"])
    with pytest.raises(ValueError, match="methods"):
        set_option(load_profile("tiny"), "methods", ["gan"])
    cli = subprocess.run([sys.executable, "-m", "training", "table1", "--profile", "nope", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert cli.returncode == 2 and "profile" in cli.stderr


@pytest.mark.slow
def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    config = small(seeds=[0], datasets=["linear_jtex"], methods=["vae", "libi"])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        counts = run_sweep(config, str(tmp_path), executor=client.get_executor(), progress=False)
    assert counts["ran"] == 2 and counts["failed"] == 0
    _, records = load_records(str(tmp_path))
    assert sorted(r["method"] for r in records) == ["libi", "vae"]


def test_cells_count_the_data_sets_that_fell_below_the_truth(tmp_path):
    """A mean over data sets can hide a failed fit: each cell counts them and names the worst."""
    def rec(method, seed, quad, truth=7.8):
        return {"status": "ok", "dataset": "gaussian", "method": method, "grid_point": {}, "seed": seed,
                "metrics": {"test_ll_is": quad, "test_ll_quadrature": quad, "test_ll_truth": truth,
                            "smooth_knn": 1.0}}
    records = [rec("libi", 0, 7.7), rec("libi", 1, 5.0), rec("libi", 2, 7.79), rec("vae", 0, 7.0, truth=None)]
    rows = {r["method"]: r for r in table.aggregate(records, ["gaussian"], ["vae", "libi"])}
    libi = rows["libi"]
    assert (libi["n_fail"], libi["n_gap"], libi["worst_seed"]) == (1, 3, 1)
    assert libi["worst_gap"] == pytest.approx(2.8)
    assert rows["vae"]["n_fail"] is None and rows["vae"]["n_gap"] == 0
    text = table.markdown(list(rows.values()), ["gaussian"], ["vae", "libi"])
    assert "1/3 (worst s1: 2.80)" in text and "| n/a |" in text
    path = tmp_path / "t.csv"
    table.write_csv(list(rows.values()), path)
    with open(path) as f:
        csv_rows = {r["method"]: r for r in csv.DictReader(f)}
    assert csv_rows["libi"]["n_fail"] == "1" and csv_rows["libi"]["worst_seed"] == "1"


def test_a_gap_to_the_truth_uses_exact_or_quadrature_only():
    assert gap_to_truth({"test_ll_truth": -3.0, "test_ll_exact": -3.5, "test_ll_quadrature": -9.0}) == 0.5
    assert gap_to_truth({"test_ll_truth": -3.0, "test_ll_exact": None, "test_ll_quadrature": -4.0}) == 1.0
    assert gap_to_truth({"test_ll_truth": -3.0, "test_ll_is": -3.1}) is None
    assert gap_to_truth({"test_ll_truth": None, "test_ll_exact": -3.0}) is None


def test_a_record_flag_metric_must_be_a_bool():
    base = {"status": "ok", "metrics": {"test_ll_is": -3.0, "below_truth": False}}
    assert record_problem(base) is None
    bad = {"status": "ok", "metrics": {"test_ll_is": -3.0, "below_truth": 1}}
    assert "below_truth" in record_problem(bad)
