"""Table 1: aggregate sweep records the paper's way and print them beside the paper's numbers.

Per data set type and method, the hyper-parameter setting with the best
average test log-likelihood over the data sets (seeds) is reported (paper
App. E), as mean +- standard deviation over the data sets (sample standard
deviation, ddof = 1; 0 for a single data set) of the test log-likelihood,
both as the paper estimated it (importance sampling, "IS") and by
quadrature ("quad", a deterministic integral over the latent space, accurate
where IS is not), and of the smooth k-NN statistic. The setting is chosen by
the quadrature log-likelihood where every record has it (IS otherwise): IS
can be hundreds of nats off on the nonlinear data sets. A cell whose
selected models did not all stop by the stopping rule (they hit the epoch
budget, or the rule was off) is marked with a dagger. One more row gives
the true model's own test log-likelihood: the ceiling.

A mean over data sets can hide a failed fit, so every cell also counts the
data sets whose selected model fell more than :data:`FAIL_NATS` nats per
point below the true model's test log-likelihood (by the exact or the
quadrature log-likelihood, where the truth is known), and names the worst.
"""
import csv
import json

import numpy as np

from .unit import FAIL_NATS, gap_to_truth

DATASET_TITLES = {"linear_jtex": "LinearJTEx", "cubic_jtex": "CubicJTEx", "gaussian": "Gaussian",
                  "mobius": "Mobius", "univariate": "Univariate"}
METHOD_TITLES = {"vae": "VAE", "beta_vae": "β-VAE", "annealed_beta_vae": "β-VAE + anneal",
                 "lagging": "Lagging", "libi": "LiBI"}

# Paper Table 1 (docs/theory.md (T.61)): (LL mean, LL std, S-kNN mean, S-kNN std).
PAPER_TABLE1 = {
    "vae": {"linear_jtex": (-3.15, 0.04, 1.62, 0.12), "cubic_jtex": (-5.85, 0.63, 4.86, 1.82),
            "gaussian": (6.73, 0.23, 15.28, 7.98), "mobius": (1.88, 0.05, 0.38, 0.20)},
    "beta_vae": {"linear_jtex": (-3.15, 0.04, 1.62, 0.12), "cubic_jtex": (-5.47, 0.14, 2.99, 1.48),
                 "gaussian": (7.65, 0.09, 4.10, 1.22), "mobius": (1.92, 0.06, 0.27, 0.14)},
    "annealed_beta_vae": {"linear_jtex": (-3.15, 0.04, 1.63, 0.12), "cubic_jtex": (-12.91, 11.51, 2.86, 1.01),
                          "gaussian": (7.54, 0.14, 5.86, 1.66), "mobius": (1.88, 0.05, 0.37, 0.19)},
    "lagging": {"linear_jtex": (-3.15, 0.04, 1.62, 0.11), "cubic_jtex": (-30.64, 39.17, 7.07, 1.24),
                "gaussian": (6.94, 0.53, 15.61, 8.26), "mobius": (1.90, 0.08, 0.72, 0.78)},
    "libi": {"linear_jtex": (-2.99, 0.03, 0.06, 0.05), "cubic_jtex": (-8.90, 3.98, 1.75, 2.75),
             "gaussian": (7.85, 0.05, 0.10, 0.08), "mobius": (1.91, 0.05, 0.17, 0.06)},
}


def failures(records, nats=FAIL_NATS):
    """How many of ``records`` fell more than ``nats`` below the truth, of how many known; and the worst.

    Returns
    -------
    dict
        ``n_fail`` (None where no gap is known), ``n_gap`` (records with a
        known gap), ``worst_seed`` and ``worst_gap`` (the largest gap; None
        where none is known).

    Examples
    --------
    >>> recs = [{"seed": s, "metrics": {"test_ll_truth": -3.0, "test_ll_exact": ll}}
    ...         for s, ll in ((0, -3.1), (1, -20.0), (2, -3.05))]
    >>> failures(recs)
    {'n_fail': 1, 'n_gap': 3, 'worst_seed': 1, 'worst_gap': 17.0}
    """
    gaps = [(gap_to_truth(r["metrics"]), r.get("seed")) for r in records]
    gaps = [(g, seed) for g, seed in gaps if g is not None]
    if not gaps:
        return {"n_fail": None, "n_gap": 0, "worst_seed": None, "worst_gap": None}
    worst, seed = max(gaps, key=lambda item: item[0])
    return {"n_fail": sum(g > nats for g, _ in gaps), "n_gap": len(gaps), "worst_seed": seed, "worst_gap": worst}


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ll_key(records):
    """The metric settings are chosen by: quadrature where every record has it, else IS."""
    if records and all(r["metrics"].get("test_ll_quadrature") is not None for r in records):
        return "test_ll_quadrature"
    return "test_ll_is"


def _summary(values):
    values = [v for v in values if v is not None]
    return (float(np.mean(values)), _std(values)) if values else (None, None)


def aggregate(records, datasets, methods):
    """One row per (data set, method): the setting with the best mean test LL.

    Parameters
    ----------
    records : list of dict
        Sweep records (``status``, ``dataset``, ``method``, ``grid_point``,
        ``metrics``; ``selected_converged`` where the fit reported it).
    datasets, methods : sequence of str

    Returns
    -------
    list of dict
        ``dataset``, ``method``, ``setting`` (the chosen grid point), ``n``
        (data sets with a finished record), ``test_ll_mean``, ``test_ll_std``
        (IS), ``quad_ll_mean``, ``quad_ll_std`` (quadrature, None where
        absent), ``knn_mean``, ``knn_std``, ``selected_by`` (the metric the
        setting was chosen by), ``unconverged`` (data sets whose selected
        model hit the budget without stopping by the rule), ``failed``
        (units not ok for that setting), the :func:`failures` of its selected
        models (``n_fail``, ``n_gap``, ``worst_seed``, ``worst_gap``), and the
        paper's numbers (``paper_*``, None where absent).

    Examples
    --------
    >>> recs = [{"status": "ok", "dataset": "gaussian", "method": "vae", "grid_point": {},
    ...          "metrics": {"test_ll_is": v, "smooth_knn": 1.0}} for v in (7.0, 8.0)]
    >>> row = aggregate(recs, ["gaussian"], ["vae"])[0]
    >>> row["test_ll_mean"], round(row["test_ll_std"], 4), row["n"], row["unconverged"]
    (7.5, 0.7071, 2, 2)
    """
    rows = []
    for dataset in datasets:
        for method in methods:
            by_setting = {}
            for r in records:
                if r["dataset"] == dataset and r["method"] == method:
                    key = json.dumps(r.get("grid_point", {}), sort_keys=True)
                    by_setting.setdefault(key, []).append(r)
            best = None
            # One metric ranks every setting of the cell: quadrature only where all have it.
            by = _ll_key([r for g in by_setting.values() for r in g
                          if r["status"] == "ok" and r["metrics"].get("test_ll_is") is not None])
            for key, group in by_setting.items():
                ok = [r for r in group if r["status"] == "ok" and r["metrics"].get("test_ll_is") is not None]
                if not ok:
                    continue
                ll_mean, ll_std = _summary([r["metrics"]["test_ll_is"] for r in ok])
                quad_mean, quad_std = _summary([r["metrics"].get("test_ll_quadrature") for r in ok])
                knn_mean, knn_std = _summary([r["metrics"].get("smooth_knn") for r in ok])
                cand = {"setting": json.loads(key), "n": len(ok), "failed": len(group) - len(ok),
                        "test_ll_mean": ll_mean, "test_ll_std": ll_std,
                        "quad_ll_mean": quad_mean, "quad_ll_std": quad_std,
                        "knn_mean": knn_mean, "knn_std": knn_std, "selected_by": by,
                        "unconverged": sum(not r.get("selected_converged", False) for r in ok),
                        **failures(ok), "_score": float(np.mean([r["metrics"][by] for r in ok]))}
                if best is None or cand["_score"] > best["_score"]:
                    best = cand
            if best is None:
                best = {"setting": None, "n": 0, "failed": sum(len(g) for g in by_setting.values()),
                        "test_ll_mean": None, "test_ll_std": None, "quad_ll_mean": None, "quad_ll_std": None,
                        "knn_mean": None, "knn_std": None, "selected_by": None, "unconverged": 0,
                        **failures([])}
            best.pop("_score", None)
            paper = PAPER_TABLE1.get(method, {}).get(dataset, (None,) * 4)
            rows.append({"dataset": dataset, "method": method, **best,
                         "paper_ll_mean": paper[0], "paper_ll_std": paper[1],
                         "paper_knn_mean": paper[2], "paper_knn_std": paper[3]})
    return rows


def truth_rows(records, datasets):
    """Per data set type, the true model's test log-likelihood (mean, std over its data sets).

    Each data set (seed) counts once, whatever the number of records that
    carry its ``test_ll_truth``.
    """
    out = {}
    for dataset in datasets:
        by_seed = {}
        for r in records:
            value = r.get("metrics", {}).get("test_ll_truth") if r.get("status") == "ok" else None
            if r["dataset"] == dataset and value is not None:
                by_seed.setdefault(r["seed"], value)
        out[dataset] = _summary(list(by_seed.values())) + (len(by_seed),)
    return out


def _cell(mean, std, mark=""):
    return "n/a" if mean is None else f"{mean:.2f} ± {std:.2f}{mark}"


def _fail_cell(row):
    """``k/n`` data sets more than FAIL_NATS below the truth, and the worst one's seed and gap."""
    if row.get("n_fail") is None:
        return "n/a"
    return f"{row['n_fail']}/{row['n_gap']} (worst s{row['worst_seed']}: {row['worst_gap']:.2f})"


def markdown(rows, datasets, methods, title="Table 1", truth=None):
    """The paper's layout: methods as rows, (Test-LL IS, Test-LL quad, S-kNN, failures) per data set; then the paper's.

    ``truth`` (from :func:`truth_rows`) adds the true model's row.
    """
    lookup = {(r["dataset"], r["method"]): r for r in rows}
    names = [DATASET_TITLES.get(d, d) for d in datasets]
    head = ("| method | " + " | ".join(f"{n} LL (IS) | LL (quad) | S-kNN | > {FAIL_NATS:g} nat below truth"
                                      for n in names) + " |")
    rule = "|---|" + "---|---|---|---|" * len(datasets)
    lines = [head, rule]
    for m in methods:
        cells = []
        for d in datasets:
            r = lookup[(d, m)]
            mark = " †" if r["unconverged"] else ""
            cells += [_cell(r["test_ll_mean"], r["test_ll_std"], mark), _cell(r["quad_ll_mean"], r["quad_ll_std"], mark),
                      _cell(r["knn_mean"], r["knn_std"], mark), _fail_cell(r)]
        lines.append(f"| {METHOD_TITLES.get(m, m)} | " + " | ".join(cells) + " |")
    if truth:
        cells = []
        for d in datasets:
            mean, std, _ = truth.get(d, (None, None, 0))
            cells += ["", _cell(mean, std), "", ""]
        lines.append("| true model (ceiling) | " + " | ".join(cells) + " |")
    n = sorted({r["n"] for r in rows})
    out = [f"## {title}: this run (mean ± std over data sets; n = {', '.join(map(str, n))})", ""] + lines
    if any(r["unconverged"] for r in rows):
        out += ["", "† some selected models hit the epoch budget without stopping by the stopping rule "
                "(not converged, or the rule was off): "
                + ", ".join(f"{DATASET_TITLES.get(r['dataset'], r['dataset'])}/"
                            f"{METHOD_TITLES.get(r['method'], r['method'])} {r['unconverged']} of {r['n']}"
                            for r in rows if r["unconverged"])]
    by = sorted({r["selected_by"] for r in rows if r["selected_by"]})
    out += ["", "LL (IS): importance sampling, the paper's estimator; LL (quad): quadrature over the latent "
            "space. Settings chosen by " + (", ".join(b.replace("test_ll_", "") for b in by) or "n/a") + ". "
            f"> {FAIL_NATS:g} nat below truth: of the data sets whose true model is known, how many selected "
            f"models score more than {FAIL_NATS:g} nat per test point below it (exact or quadrature "
            "log-likelihood), and the worst data set (its seed and gap)."]
    paper_head = "| method | " + " | ".join(f"{n} Test-LL | S-kNN" for n in names) + " |"
    out += ["", "## Paper (Yacoby et al. 2020, Table 1; mean ± std over 5 data sets)", "", paper_head,
            "|---|" + "---|---|" * len(datasets)]
    for m in methods:
        cells = []
        for d in datasets:
            r = lookup[(d, m)]
            cells += [_cell(r["paper_ll_mean"], r["paper_ll_std"]), _cell(r["paper_knn_mean"], r["paper_knn_std"])]
        out.append(f"| {METHOD_TITLES.get(m, m)} | " + " | ".join(cells) + " |")
    out += ["", "Settings chosen (best mean test log-likelihood per data set and method):", ""]
    for r in rows:
        if r["setting"]:
            out.append(f"- {DATASET_TITLES.get(r['dataset'], r['dataset'])}, "
                       f"{METHOD_TITLES.get(r['method'], r['method'])}: {json.dumps(r['setting'])}")
    failed = [r for r in rows if r["failed"]]
    if failed:
        out += ["", "Units not ok (failed or diverged) per cell: "
                + ", ".join(f"{r['dataset']}/{r['method']}: {r['failed']}" for r in failed)]
    return "\n".join(out) + "\n"


def write_csv(rows, path):
    fields = ["dataset", "method", "setting", "n", "failed", "unconverged", "selected_by", "test_ll_mean",
              "test_ll_std", "quad_ll_mean", "quad_ll_std", "knn_mean", "knn_std", "n_fail", "n_gap",
              "worst_seed", "worst_gap", "paper_ll_mean", "paper_ll_std", "paper_knn_mean", "paper_knn_std"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in fields}, "setting": json.dumps(r["setting"])})
