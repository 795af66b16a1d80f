"""``python -m training fit``: the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.experiments.cli import main

ROOT = Path(__file__).resolve().parents[3]

RECORD_KEYS = {"dataset", "seed", "method", "settings", "metrics", "selected", "best_restart", "val_objective",
               "selected_val_objective", "diverged", "epochs_run", "converged", "selected_epochs_run",
               "selected_converged", "restarts", "fit_seconds", "versions"}
METRIC_KEYS = {"test_ll_is", "test_ll_is_se", "test_ll_is_ess_mean", "test_ll_is_ess_min", "test_ll_is_worst",
               "test_ll_exact", "test_ll_quadrature", "test_ll_quadrature_error", "test_ll_quadrature_unconverged",
               "test_ll_truth", "smooth_knn", "smooth_knn_std", "agg_kl_to_prior", "agg_max_abs_corr",
               "test_ll_gap_to_truth", "below_truth", "eval_seconds"}
RESTART_KEYS = {"val_objective", "epochs_run", "diverged", "converged", "test_ll", "gap_to_truth",
                "code_cov_eigenvalues"}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.mark.slow
def test_fit_writes_the_documented_record(tmp_path):
    out = tmp_path / "tmp" / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "training", "fit", "--dataset", "univariate", "--method", "vae", "--epochs", "30",
         "--restarts", "2", "--is-samples", "200", "--knn-repeats", "50", "--out", str(out), "--no-progress"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "vae on univariate" in proc.stdout and str(out) in proc.stdout
    record = json.loads(out.read_text())
    assert set(record) == RECORD_KEYS
    assert set(record["metrics"]) == METRIC_KEYS
    assert record["dataset"] == "univariate" and record["method"] == "vae" and record["seed"] == 0
    assert record["settings"] == {"epochs": 30, "restarts": 2}
    assert len(record["val_objective"]) == len(record["diverged"]) == 2
    assert set(record["restarts"]) == RESTART_KEYS and len(record["restarts"]["gap_to_truth"]) == 2
    gap = record["metrics"]["test_ll_gap_to_truth"]
    m = record["metrics"]
    assert gap == m["test_ll_truth"] - (m["test_ll_exact"] if m["test_ll_exact"] is not None else m["test_ll_quadrature"])
    assert record["metrics"]["below_truth"] == (gap > 1.0) and f"{gap:.4f} below it" in proc.stdout
    assert record["best_restart"] in (0, 1)
    assert record["selected_val_objective"] == record["val_objective"][record["best_restart"]]
    m = record["metrics"]
    assert abs(m["test_ll_is"] - m["test_ll_exact"]) < 0.05
    assert abs(m["test_ll_quadrature"] - m["test_ll_exact"]) < 1e-6       # two independent routes
    assert m["test_ll_quadrature_error"] <= 1e-6 and m["test_ll_quadrature_unconverged"] == 0
    assert 1 <= m["test_ll_is_ess_min"] <= m["test_ll_is_ess_mean"] <= 200
    assert len(m["test_ll_is_worst"]) == 3
    assert record["epochs_run"] == [30, 30] and record["converged"] == [False, False]
    assert record["selected_epochs_run"] == 30 and record["selected_converged"] is False
    assert "not converged" in proc.stdout
    assert set(record["selected"]) == {"theta", "phi"} and len(record["selected"]["theta"]["u"]) == 1
    assert not list(out.parent.glob("*.tmp"))


@pytest.mark.slow
def test_fit_with_the_stopping_rule_reports_convergence(tmp_path):
    out = tmp_path / "result.json"
    assert main(["fit", "--dataset", "linear_jtex", "--method", "vae", "--epochs", "20000", "--restarts", "2",
                 "--patience", "100", "--tol", "1e-3", "--is-samples", "100", "--knn-repeats", "0",
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads(out.read_text())
    assert record["settings"] == {"epochs": 20000, "restarts": 2, "patience": 100, "tol": 1e-3}
    assert all(record["converged"]) and max(record["epochs_run"]) < 20000
    assert record["selected_converged"] is True


@pytest.mark.slow
def test_a_bad_dataset_exits_non_zero_in_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "training", "fit", "--dataset", "nope", "--method", "vae",
                           "--out", str(tmp_path / "r.json")],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--dataset" in proc.stderr and "nope" in proc.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("argv, name", [
    (["--dataset", "nope", "--method", "vae"], "--dataset"),
    (["--dataset", "univariate", "--method", "gan"], "--method"),
    (["--dataset", "univariate", "--method", "vae", "--epochs", "ten"], "--epochs"),
])
def test_bad_choices_are_refused(argv, name, capsys, tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["fit", *argv, "--out", str(tmp_path / "r.json")])
    assert err.value.code != 0
    assert name in capsys.readouterr().err


def test_beta_is_refused_for_the_vae(capsys, tmp_path):
    argv = ["fit", "--dataset", "univariate", "--method", "vae", "--beta", "2", "--out", str(tmp_path / "r.json")]
    try:
        code = main(argv)
    except SystemExit as err:          # an argparse-style exit is as good as an error return
        code = err.code
    message = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert code not in (0, None)
    assert "--beta" in message
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("argv, name", [(["--epochs", "-3"], "epochs"), (["--restarts", "0"], "restarts"),
                                        (["--lr", "0"], "lr"), (["--seed", "-1"], "seed")])
def test_bad_settings_exit_with_a_message(argv, name, capsys, tmp_path):
    code = main(["fit", "--dataset", "univariate", "--method", "vae", *argv, "--out", str(tmp_path / "r.json")])
    assert code == 2
    assert name in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_missing_command_or_out(capsys):
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["fit", "--dataset", "univariate", "--method", "vae"])
    assert "--out" in capsys.readouterr().err
