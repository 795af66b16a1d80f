"""The results store under faults: kills, a second driver, foreign and broken files, --fresh."""
import glob
import json
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from training.experiments import cli
from training.experiments.config import expand_units, load_profile, set_option
from training.experiments.store import ConfigMismatch, load_records
from training.experiments.sweep import run_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def small(**changes):
    config = load_profile("tiny")
    changes = {"seeds": [0], "datasets": ["linear_jtex"], "methods": ["vae"], **changes}
    for key, value in changes.items():
        config = set_option(config, key.replace("__", "."), value)
    return config


def run_serial(config, out, messages=None, **kw):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return run_sweep(config, str(out), executor=pool, progress=False,
                         log=(messages.append if messages is not None else lambda m: None), **kw)


def records_in(folder):
    return sorted(glob.glob(os.path.join(folder, "*-s*-*.json")))


# ---- --fresh deletes only the project's own files -----------------------------------------
@pytest.mark.slow
def test_fresh_keeps_files_that_are_not_records(tmp_path):
    config = small()
    run_serial(config, tmp_path)
    (tmp_path / "my_profile.json").write_text(json.dumps(config))
    (tmp_path / "notes.json").write_text('{"todo": 1}')
    (tmp_path / "notes.txt").write_text("keep me")
    messages = []
    counts = run_serial(small(train__epochs=41), tmp_path, messages, fresh=True)
    assert counts["ran"] == 1
    for name in ("my_profile.json", "notes.json", "notes.txt"):
        assert (tmp_path / name).exists(), name
    said = " ".join(messages)
    assert "--fresh: deleted" in said and "config.json" not in said.split("deleted")[0]
    assert len(records_in(tmp_path)) == 1


# ---- repeated seeds, data sets, methods, grid values ------------------------------------
@pytest.mark.parametrize("key, value, word", [("seeds", [0, 0], "seeds"),
                                              ("datasets", ["gaussian", "gaussian"], "datasets"),
                                              ("methods", ["vae", "vae"], "methods"),
                                              ("grids.beta_vae.beta", [2.0, 2.0], "grids.beta_vae.beta")])
def test_repeats_are_refused(key, value, word):
    with pytest.raises(ValueError, match="more than once") as err:
        set_option(load_profile("tiny"), key, value)
    assert word in str(err.value)


# ---- failed units make the sweep exit non-zero -------------------------------------------
@pytest.mark.slow
def test_table1_exits_non_zero_when_units_failed(tmp_path, monkeypatch, capsys, vae_units_fail):
    monkeypatch.setattr("training.experiments.sweep.default_executor", lambda workers: ThreadPoolExecutor(1))
    code = cli.main(["table1", "--profile", "tiny", "--out", str(tmp_path), "--seeds", "0", "--datasets",
                     "linear_jtex", "--methods", "vae,beta_vae", "--epochs", "5", "--no-progress"])
    assert code == 1
    assert "1 units failed" in capsys.readouterr().err
    assert (tmp_path / "table1.md").exists()


# ---- config.json missing or broken beside valid records -----------------------------------
@pytest.mark.parametrize("damage", ["missing", "truncated", "not a config"])
def test_a_broken_config_json_keeps_this_configurations_records(tmp_path, damage):
    config = small()
    run_serial(config, tmp_path)
    (record,) = records_in(tmp_path)
    before = open(record, "rb").read()
    path = tmp_path / "config.json"
    if damage == "missing":
        path.unlink()
    else:
        path.write_text(path.read_text()[:40] if damage == "truncated" else '{"config": 5}')
    messages = []
    counts = run_serial(config, tmp_path, messages)
    assert counts["skipped"] == 1 and counts["ran"] == 0
    assert open(record, "rb").read() == before
    assert any("rebuilt" in m and "kept" in m for m in messages)
    assert load_records(str(tmp_path))[0]["name"] == "tiny"


def test_a_broken_config_json_beside_foreign_records_is_explained(tmp_path):
    run_serial(small(), tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ConfigMismatch) as err:
        run_serial(small(train__epochs=41), tmp_path)
    text = str(err.value)
    assert "unreadable" in text and "To keep them, rerun with the configuration that made them" in text
    assert len(records_in(tmp_path)) == 1


# ---- one driver per results directory ------------------------------------------------------
@pytest.mark.slow
def test_a_second_driver_is_refused_and_touches_nothing(tmp_path):
    from training.experiments.store import DirectoryLock
    out = tmp_path / "res"
    out.mkdir()
    tmp_file = out / ".tmp-inflight.json"
    tmp_file.write_text("{}")
    with DirectoryLock(str(out)):
        proc = subprocess.run([sys.executable, "-m", "training", "table1", "--profile", "tiny", "--out", str(out),
                               "--fresh", "--no-progress"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 2 and "another sweep" in proc.stderr and "Traceback" not in proc.stderr
    assert tmp_file.exists()                       # the running driver's temporary file is left alone
    assert not records_in(str(out)) and not (out / "config.json").exists()
    run_serial(small(), out)                        # free again once the holder is gone


# ---- records whose metrics are not numbers ------------------------------------------------
@pytest.mark.slow
def test_a_record_with_non_numeric_metrics_is_recomputed(tmp_path):
    config = small()
    run_serial(config, tmp_path)
    (path,) = records_in(tmp_path)
    record = json.load(open(path))
    record["metrics"]["test_ll_is"] = "-3.1"
    json.dump(record, open(path, "w"))
    assert load_records(str(tmp_path))[1] == []
    messages = []
    counts = run_serial(config, tmp_path, messages)
    assert counts["corrupt"] == 1 and counts["ran"] == 1
    assert any("test_ll_is" in m and path in m for m in messages)
    assert isinstance(json.load(open(path))["metrics"]["test_ll_is"], float)


# ---- outputs follow the umask -------------------------------------------------------------
def test_records_have_the_mode_of_the_users_files(tmp_path):
    run_serial(small(), tmp_path)
    (record,) = records_in(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for path in (record, tmp_path / "config.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


# ---- resume after SIGKILL at random points; workers exit with their driver ----------------
def _session_members(sid):
    """Pids of live processes in session ``sid`` (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:      # state, ..., session
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    cmd = [sys.executable, "-m", "training", "table1", "--profile", "tiny", "--datasets", "linear_jtex",
           "--methods", "vae,beta_vae,libi", "--set", "train.epochs=400", "--workers", "2", "--no-progress"]
    ref = tmp_path / "ref"
    done = subprocess.run(cmd + ["--out", str(ref)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = str(tmp_path / "res")
    total = len(expand_units(json.load(open(ref / "config.json"))["config"]))
    finished, midway = {}, []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        # kill after a random number of this run's units (0: during start-up), plus a random delay
        target = len(finished) + int(rng.integers(0, max(1, (total - len(finished)) // 2)))
        extra = float(rng.uniform(0.0, 0.3))
        proc = subprocess.Popen(cmd + ["--out", out], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while len(records_in(out)) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(extra)
        midway.append(proc.poll() is None and len(records_in(out)) < total)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)       # the driver only: its workers must notice
        proc.wait()
        deadline = time.time() + 20
        while _session_members(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        left = _session_members(proc.pid)
        for pid in left:                            # clean up before failing
            os.kill(pid, signal.SIGKILL)
        assert not left, f"kill {seed}: orphaned processes {left}"
        for path, content in finished.items():      # earlier finished records untouched
            assert open(path, "rb").read() == content
        finished.update({p: open(p, "rb").read() for p in records_in(out) if p not in finished})
        print(f"kill {seed}: at {target}+{extra:.2f}s, {len(finished)} of {total} finished")
    assert sum(midway) >= 2, f"the kills should land mid-sweep: {midway}"
    done = subprocess.run(cmd + ["--out", out], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(finished)} already finished" in done.stdout
    after = records_in(out)
    assert len(after) == total
    for path, content in finished.items():
        assert open(path, "rb").read() == content
    ids = [json.load(open(p))["unit_id"] for p in after]
    assert len(set(ids)) == total
    assert not glob.glob(os.path.join(out, ".tmp-*")) and not glob.glob(os.path.join(out, "*.corrupt"))
    assert open(os.path.join(out, "table1.md")).read() == (ref / "table1.md").read_text()


def test_a_worst_points_list_with_missing_values_is_a_sound_record():
    from training.experiments.store import record_problem
    record = {"status": "ok", "grid_point": {}, "metrics": {
        "test_ll_is": -3.0, "test_ll_is_worst": [{"index": 4, "is": None, "reference": -2.0, "ess": None}]}}
    assert record_problem(record) is None
    record["metrics"]["test_ll_is_worst"] = [{"index": "four"}]
    assert "test_ll_is_worst" in record_problem(record)
