"""Bad input as a user gives it: ``python -m training`` in a subprocess.

Each case must end in a one-line message naming the culprit, a non-zero exit
and no traceback, and must fail before any training: the settings ask for a
million epochs, so a late check would hit the timeout instead.
"""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow       # every case starts python -m training in a subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
HUGE = "1000000"
TIMEOUT = 60


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "training", *argv], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=TIMEOUT)


def assert_refused(proc, words, code=2):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2, proc.stderr             # argparse adds its usage line
    for word in words:
        assert word in lines[-1], (word, proc.stderr)


def unwritable(tmp_path):
    """A folder this process cannot write in (root ignores permissions: use /proc then)."""
    if os.geteuid() == 0:
        if not sys.platform.startswith("linux"):
            pytest.skip("needs a folder root cannot write")
        return "/proc/no-such-dir"
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return str(folder)


# ---- fit -------------------------------------------------------------------------------------
FIT = ["fit", "--dataset", "linear_jtex", "--method", "vae", "--epochs", HUGE, "--no-progress"]


@pytest.mark.parametrize("extra, words", [
    (["--is-samples", "0"], ["--is-samples", ">= 1"]),              # 4: late, unnamed before
    (["--knn-repeats", "-1"], ["--knn-repeats", ">= 0"]),
    (["--epochs", "-1"], ["epochs", ">= 1"]),
    (["--lr", "nan"], ["lr", "finite"]),
])
def test_fit_bad_numbers(tmp_path, extra, words):
    out = tmp_path / "r.json"
    assert_refused(cli(*FIT, *extra, "--out", str(out)), words)
    assert not out.exists()


def test_fit_out_is_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    for out, words in [(tmp_path, ["--out", "is a directory"]),                      # 4
                       (tmp_path / "file" / "r.json", ["--out", "is a file"]),
                       (os.path.join(unwritable(tmp_path), "r.json"), ["--out", "cannot write"])]:
        assert_refused(cli(*FIT, "--out", str(out)), words)


def test_fit_all_restarts_diverged(tmp_path):
    out = tmp_path / "r.json"                                                          # 5
    proc = cli("fit", "--dataset", "mobius", "--method", "vae", "--lr", "1e6", "--epochs", "3", "--restarts", "2",
               "--no-progress", "--out", str(out))
    assert_refused(proc, ["diverged", "all 2 restarts", "--lr"], code=1)
    assert not out.exists()


def test_fit_lagging_aggressive_needs_no_segments(tmp_path):
    out = tmp_path / "r.json"                                                          # 12
    proc = cli("fit", "--dataset", "univariate", "--method", "lagging", "--aggressive", "--epochs", "3",
               "--restarts", "1", "--is-samples", "10", "--knn-repeats", "0", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["settings"]["aggressive"] is True


# ---- table1 ----------------------------------------------------------------------------------
TABLE1 = ["table1", "--profile", "tiny", "--set", f"train.epochs={HUGE}", "--no-progress"]   # later --set win


@pytest.mark.parametrize("extra, words", [
    (["--set", "train.epochs=-1"], ["train.epochs", ">= 1"]),                          # 3
    (["--set", "train.lr=NaN"], ["train.lr", "finite"]),
    (["--set", "train.bogus=1"], ["train.bogus", "not a setting"]),
    (["--set", "eval.is_samples=0"], ["eval.is_samples", ">= 1"]),
    (["--set", "eval.bogus=0"], ["eval", "bogus"]),
    (["--set", "bogus.key=1"], ["bogus", "unknown configuration key"]),
    (["--set", "=5"], ["--set", "'=5'"]),
    (["--set", "grids.beta_vae.beta=[0.5,"], ["grids.beta_vae.beta", "not valid JSON"]),
    (["--set", "grids.beta_vae.beta=0.5"], ["grids.beta_vae.beta", "list"]),           # 12
    (["--set", "grids.beta_vae.beta=[-1.0]"], ["grids.beta_vae.beta", "beta", ">= 0"]),
    (["--set", "train=5"], ["train", "object"]),
    (["--set", "datasets=linear_jtex"], ["datasets", "list", "'linear_jtex'"]),
    (["--set", "train.patience=0"], ["train.patience", ">= 1"]),
    (["--set", "train.patience=1.5"], ["train.patience", "integer"]),
    (["--set", "train.tol=-1"], ["train.tol", ">= 0"]),
    (["--set", 'grids.annealed_beta_vae={"anneal_fraction": ["x"]}', "--methods", "annealed_beta_vae"],
     ["grids.annealed_beta_vae.anneal_fraction"]),
    (["--set", "grids.lagging.segments=[5]", "--methods", "lagging", "--epochs", "3"],
     ["grids.lagging.segments", "[1, 3]"]),
    (["--seeds", "0,0"], ["seeds", "more than once"]),                                 # 2
    (["--datasets", "gaussian,gaussian"], ["datasets", "more than once"]),
    (["--methods", "vae,vae"], ["methods", "more than once"]),
    (["--workers", "0"], ["--workers", ">= 1"]),
])
def test_table1_bad_configuration(tmp_path, extra, words):
    out = tmp_path / "res"
    assert_refused(cli(*TABLE1, *extra, "--out", str(out)), words)
    assert not out.exists()                         # refused before the results directory is made


def test_table1_bad_profile_and_out(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad.json").write_text('{"datasets": ')
    res = str(tmp_path / "res")
    for argv, words in [(["--profile", str(tmp_path / "missing.json"), "--out", res], ["profile", "missing.json"]),
                        (["--profile", str(tmp_path / "bad.json"), "--out", res], ["profile", "not valid JSON"]),
                        (["--out", str(tmp_path / "file")], ["--out", "not a directory"]),          # 6
                        (["--out", os.path.join(unwritable(tmp_path), "res")], ["--out", "cannot write"])]:
        proc = cli("table1", "--epochs", HUGE, "--no-progress", *argv)
        assert_refused(proc, words)


# ---- figures ---------------------------------------------------------------------------------
def test_figures_bad_results(tmp_path):
    figs = str(tmp_path / "figs")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"config": 5}')
    (tmp_path / "file").write_text("x")
    for argv, words in [(["--results", str(tmp_path / "missing")], ["--results", "not a directory"]),  # 6
                        (["--results", str(bad)], ["config.json", "not a results configuration"]),
                        (["--results", str(tmp_path)], ["no config.json"]),
                        (["--profile", str(tmp_path / "missing.json")], ["profile", "missing.json"])]:
        assert_refused(cli("figures", "--out", figs, "--no-progress", *argv), words)
    assert_refused(cli("figures", "--out", str(tmp_path / "file"), "--no-progress"), ["--out", "not a directory"])
    assert not os.path.exists(figs)
