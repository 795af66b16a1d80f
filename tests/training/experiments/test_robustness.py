"""training.experiments.robustness: failed fits counted per data set and per restart, never hidden by a mean."""
import csv
import json

import numpy as np
import pytest

from training.experiments import robustness
from training.experiments.cli import main, parse_seeds
from training.experiments.unit import fit_and_evaluate, restart_metrics


def _record(seed, gaps, vals, method="libi", selected=0, dataset="linear_jtex", status="ok"):
    return {"status": status, "dataset": dataset, "seed": seed, "method": method, "grid_point": {},
            "best_restart": selected,
            "metrics": {"test_ll_truth": -3.0, "test_ll_exact": -3.0 - gaps[selected],
                        "test_ll_gap_to_truth": gaps[selected]},
            "restarts": {"val_objective": vals, "gap_to_truth": gaps, "diverged": [False] * len(gaps),
                         "A_singular_values": [[1.0, 0.5]] * len(gaps)}}


def test_a_failed_data_set_shows_beside_the_others():
    records = [_record(100, [0.01, 17.0], [2.9, 19.0]), _record(101, [18.0, 17.5], [19.0, 19.02]),
               _record(102, [0.02, 0.03], [2.95, 2.96]), _record(103, [0.0], [1.0], status="failed")]
    (row,) = robustness.summary(records)
    assert (row["datasets"], row["datasets_known"], row["datasets_failed"]) == (3, 3, 1)
    assert (row["worst_seed"], row["worst_gap"]) == (101, 18.0)
    assert (row["restarts"], row["restarts_failed"]) == (6, 3)
    assert row["fits_apart"] == 1            # seed 100: 2.9 against 19.0
    text = robustness.markdown([row])
    assert "| 1/3 | s101 (18.00) |" in text and "| 3/6 |" in text


def test_restarts_apart_need_more_than_the_margin():
    close = _record(0, [0.5, 0.5], [3.00, 3.00 + 0.9 * robustness.APART_NATS], method="vae")
    far = _record(1, [0.5, 0.5], [3.00, 3.00 + 1.1 * robustness.APART_NATS], method="vae")
    assert [r["apart"] for r in robustness.dataset_rows([close, far])] == [False, True]


def test_seeds_parse_as_lists_and_inclusive_ranges():
    assert parse_seeds("100-102,7, 9") == [100, 101, 102, 7, 9]
    for bad in ("1-x", "5-2", "a"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.slow
def test_restart_metrics_score_every_restart_like_the_selected_one():
    record = fit_and_evaluate("linear_jtex", 3, "libi", {"epochs": 150, "restarts": 3, "inference_epochs": 30},
                              is_samples=20, knn_repeats=0)
    per = record["restarts"]
    best = record["best_restart"]
    assert len(per["test_ll"]) == 3 and np.asarray(per["A_singular_values"]).shape == (3, 2)
    # the selected restart's own score is the selected model's
    assert per["test_ll"][best] == pytest.approx(record["metrics"]["test_ll_exact"], abs=1e-10)
    assert per["gap_to_truth"][best] == pytest.approx(record["metrics"]["test_ll_gap_to_truth"], abs=1e-10)
    assert np.all(np.diff(np.asarray(per["code_cov_eigenvalues"]), axis=1) >= 0)    # ascending
    assert record["metrics"]["below_truth"] == (record["metrics"]["test_ll_gap_to_truth"] > 1.0)


@pytest.mark.slow
def test_the_robustness_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "rb"
    code = main(["robustness", "--profile", "tiny", "--seeds", "300-301", "--datasets", "linear_jtex",
                 "--methods", "vae", "--out", str(out), "--workers", "1", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Robustness, profile tiny, seeds 300-301" in printed
    for name in ("robustness.md", "robustness_datasets.csv", "robustness_restarts.csv", "robustness.png"):
        assert (out / name).stat().st_size > 0
    with open(out / "robustness_datasets.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["seed"]) for r in rows) == [300, 301]
    with open(out / "config.json") as f:
        assert json.load(f)["config"]["seeds"] == [300, 301]
