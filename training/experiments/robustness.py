"""The robustness study: how often fits fail on data sets nobody tuned on, restart by restart.

A Table 1 cell is a mean over a few data sets; it can hide a fit that fell
far below the truth, and a method whose restarts end on a plateau half the
time fails a data set whenever all its restarts do. This report reads the
records of a sweep (each carries :func:`training.experiments.unit.restart_metrics`)
and counts, per data-set type and method:

* data sets whose selected model fell more than ``FAIL_NATS`` nats per test
  point below the true model (exact or quadrature log-likelihood), with the
  worst one;
* restarts that did (a restart's own kept parameters, whether or not it
  was selected);
* fits whose restarts ended apart: validation objectives more than
  ``APART_NATS`` nats per point from each other (for the VAE family, whose
  optimum is biased by design, agreeing restarts are the target).

``python -m training robustness`` runs the sweep for fresh seeds and writes
``robustness.md``, ``robustness_datasets.csv``, ``robustness_restarts.csv``
and ``robustness.png`` (the gaps per method and data-set type, failures at a
glance).
"""
import csv
import json
import os

import numpy as np

from .table import DATASET_TITLES, METHOD_TITLES, failures
from .unit import FAIL_NATS, gap_to_truth

#: Restarts whose validation objectives differ by more than this (nats per point) ended apart.
APART_NATS = 0.05


def _finite(value):
    return value is not None and np.isfinite(value)


def restart_rows(records):
    """One row per restart of every ok record: how it ended, its own gap to the truth.

    Examples
    --------
    >>> rec = {"status": "ok", "dataset": "linear_jtex", "seed": 3, "method": "libi", "grid_point": {},
    ...        "best_restart": 0, "restarts": {"val_objective": [2.9, 19.0], "gap_to_truth": [0.01, 17.2],
    ...        "diverged": [False, False], "A_singular_values": [[1.9, 0.6], [1.8, 1e-6]]}}
    >>> [(r["restart"], r["selected"], r["failed"], r["A_sv_min"]) for r in restart_rows([rec])]
    [(0, True, False, 0.6), (1, False, True, 1e-06)]
    """
    rows = []
    for rec in records:
        per = rec.get("restarts") if rec.get("status") == "ok" else None
        if not per:
            continue
        R = len(per["val_objective"])

        def at(key, r, pick=None):
            values = per.get(key)
            if values is None or values[r] is None:
                return None
            return values[r] if pick is None else pick(values[r])

        for r in range(R):
            gap = at("gap_to_truth", r)
            rows.append({"dataset": rec["dataset"], "seed": rec["seed"], "method": rec["method"],
                         "setting": json.dumps(rec.get("grid_point", {}), sort_keys=True), "restart": r,
                         "selected": r == rec.get("best_restart"), "diverged": bool(at("diverged", r)),
                         "converged": at("converged", r), "epochs_run": at("epochs_run", r),
                         "val_objective": at("val_objective", r),
                         "step1_val_objective": at("step1_val_objective", r),
                         "test_ll": at("test_ll", r), "gap_to_truth": gap,
                         "failed": None if not _finite(gap) else bool(gap > FAIL_NATS),
                         "A_sv_min": at("A_singular_values", r, min), "A_sv_max": at("A_singular_values", r, max),
                         "code_eig_min": at("code_cov_eigenvalues", r, min),
                         "code_eig_max": at("code_cov_eigenvalues", r, max)})
    return rows


def dataset_rows(records):
    """One row per ok record (a data set, method and setting): the selected model's gap, its restarts'."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        mine = restart_rows([rec])
        vals = [r["val_objective"] for r in mine if not r["diverged"] and _finite(r["val_objective"])]
        gap = gap_to_truth(rec["metrics"])
        rows.append({"dataset": rec["dataset"], "seed": rec["seed"], "method": rec["method"],
                     "setting": json.dumps(rec.get("grid_point", {}), sort_keys=True),
                     "gap_to_truth": gap, "failed": None if gap is None else bool(gap > FAIL_NATS),
                     "restarts": len(mine), "restarts_failed": sum(bool(r["failed"]) for r in mine),
                     "restarts_diverged": sum(r["diverged"] for r in mine),
                     "val_spread": (max(vals) - min(vals)) if len(vals) > 1 else 0.0,
                     "apart": len(vals) > 1 and max(vals) - min(vals) > APART_NATS})
    return rows


def summary(records):
    """Per (data set type, method): failure counts and rates, and the worst data set.

    Returns
    -------
    list of dict
        ``dataset``, ``method``, ``datasets`` (ok records), ``datasets_failed``
        and ``datasets_known`` (with a known gap), ``worst_seed``,
        ``worst_gap``, ``mean_gap``, ``restarts``, ``restarts_failed``,
        ``restarts_known``, ``fits_apart`` (fits whose restarts ended apart).
    """
    data, rest = dataset_rows(records), restart_rows(records)
    out = []
    for key in sorted({(r["dataset"], r["method"]) for r in data}):
        mine = [r for r in data if (r["dataset"], r["method"]) == key]
        cell = failures([r for r in records if r.get("status") == "ok" and (r["dataset"], r["method"]) == key])
        known = [r["gap_to_truth"] for r in mine if _finite(r["gap_to_truth"])]
        restarts = [r for r in rest if (r["dataset"], r["method"]) == key]
        restarts_known = [r for r in restarts if r["failed"] is not None]
        out.append({"dataset": key[0], "method": key[1], "datasets": len(mine),
                    "datasets_known": cell["n_gap"], "datasets_failed": cell["n_fail"] or 0,
                    "worst_seed": cell["worst_seed"], "worst_gap": cell["worst_gap"],
                    "mean_gap": float(np.mean(known)) if known else None,
                    "restarts": len(restarts), "restarts_known": len(restarts_known),
                    "restarts_failed": sum(r["failed"] for r in restarts_known),
                    "restarts_diverged": sum(r["diverged"] for r in restarts),
                    "fits_apart": sum(r["apart"] for r in mine)})
    return out


def markdown(rows, title="Robustness"):
    """The summary as a Markdown table: failures beside the totals, the worst data set named."""
    lines = [f"## {title}", "",
             f"A data set (or restart) failed when its test log-likelihood fell more than {FAIL_NATS:g} nat per "
             f"point below the true model's (exact or quadrature); restarts ended apart when their validation "
             f"objectives differ by more than {APART_NATS:g} nat per point.", "",
             "| data set | method | data sets failed | worst data set (gap) | mean gap | restarts failed "
             "| restarts diverged | fits with restarts apart |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        worst = "n/a" if r["worst_gap"] is None else f"s{r['worst_seed']} ({r['worst_gap']:.2f})"
        mean = "n/a" if r["mean_gap"] is None else f"{r['mean_gap']:.3f}"
        lines.append(f"| {DATASET_TITLES.get(r['dataset'], r['dataset'])} | {METHOD_TITLES.get(r['method'], r['method'])} "
                     f"| {r['datasets_failed']}/{r['datasets_known']} | {worst} | {mean} "
                     f"| {r['restarts_failed']}/{r['restarts_known']} | {r['restarts_diverged']}/{r['restarts']} "
                     f"| {r['fits_apart']}/{r['datasets']} |")
    return "\n".join(lines) + "\n"


def _write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["dataset"])
        writer.writeheader()
        writer.writerows(rows)


def figure(records, path):
    """The gaps to the truth per method and data-set type: restarts as grey dots, selected models coloured."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg   # matplotlib loads only for the figure
    from matplotlib.figure import Figure

    rest = [r for r in restart_rows(records) if _finite(r["gap_to_truth"])]
    types = [d for d in DATASET_TITLES if any(r["dataset"] == d for r in rest)]
    methods = [m for m in METHOD_TITLES if any(r["method"] == m for r in rest)]
    fig = Figure(figsize=(3.2 * max(1, len(types)), 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(types)), squeeze=False)[0]
    jitter = np.random.default_rng(0)      # the dots' horizontal spread only
    for ax, d in zip(axes, types):
        for i, m in enumerate(methods):
            mine = [r for r in rest if (r["dataset"], r["method"]) == (d, m)]
            for selected, style in ((False, dict(s=9, color="0.6")), (True, dict(s=18, color=f"C{i}"))):
                gaps = [max(r["gap_to_truth"], 1e-4) for r in mine if r["selected"] == selected]
                ax.scatter(i + 0.15 * jitter.standard_normal(len(gaps)), gaps, **style)
        ax.axhline(FAIL_NATS, color="k", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(methods)), [METHOD_TITLES[m] for m in methods], rotation=45, ha="right")
        ax.set_title(DATASET_TITLES.get(d, d))
    axes[0].set_ylabel("test LL gap to the truth (nats/point)")
    fig.suptitle(f"Gap to the true model: restarts (grey), selected models (colour); dashed: {FAIL_NATS:g} nat")
    fig.savefig(path)
    return path


def write_report(records, out_dir, title="Robustness"):
    """Write robustness.md, robustness_datasets.csv, robustness_restarts.csv and robustness.png; returns the paths."""
    rows = summary(records)
    paths = {name: os.path.join(out_dir, name) for name in
             ("robustness.md", "robustness_datasets.csv", "robustness_restarts.csv", "robustness.png")}
    with open(paths["robustness.md"], "w") as f:
        f.write(markdown(rows, title))
    _write_csv(dataset_rows(records), paths["robustness_datasets.csv"])
    _write_csv(restart_rows(records), paths["robustness_restarts.csv"])
    figure(records, paths["robustness.png"])
    return paths
