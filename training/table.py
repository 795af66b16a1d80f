"""Table 1: aggregate sweep records the paper's way and print them beside the paper's numbers.

Per data set type and method, the hyper-parameter setting with the best
average test log-likelihood over the data sets (seeds) is reported (paper
App. E), as mean +- standard deviation over the data sets (sample standard
deviation, ddof = 1; 0 for a single data set) of the importance-sampled
test log-likelihood and of the smooth k-NN statistic.
"""
import csv
import json

import numpy as np

DATASET_TITLES = {"linear_jtex": "LinearJTEx", "cubic_jtex": "CubicJTEx", "gaussian": "Gaussian",
                  "mobius": "Mobius", "univariate": "Univariate"}
METHOD_TITLES = {"vae": "VAE", "beta_vae": "β-VAE", "annealed_beta_vae": "β-VAE + anneal",
                 "lagging": "Lagging", "libi": "LiBI"}

# Paper Table 1 (SPEC 7): (LL mean, LL std, S-kNN mean, S-kNN std).
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


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def aggregate(records, datasets, methods):
    """One row per (data set, method): the setting with the best mean test LL.

    Parameters
    ----------
    records : list of dict
        Sweep records (``status``, ``dataset``, ``method``, ``grid_point``,
        ``metrics``).
    datasets, methods : sequence of str

    Returns
    -------
    list of dict
        ``dataset``, ``method``, ``setting`` (the chosen grid point), ``n``
        (data sets with a finished record), ``test_ll_mean``, ``test_ll_std``,
        ``knn_mean``, ``knn_std``, ``failed`` (units not ok for that setting),
        and the paper's numbers (``paper_*``, None where absent).

    Examples
    --------
    >>> recs = [{"status": "ok", "dataset": "gaussian", "method": "vae", "grid_point": {},
    ...          "metrics": {"test_ll_is": v, "smooth_knn": 1.0}} for v in (7.0, 8.0)]
    >>> row = aggregate(recs, ["gaussian"], ["vae"])[0]
    >>> row["test_ll_mean"], round(row["test_ll_std"], 4), row["n"]
    (7.5, 0.7071, 2)
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
            for key, group in by_setting.items():
                ok = [r for r in group if r["status"] == "ok" and r["metrics"].get("test_ll_is") is not None]
                if not ok:
                    continue
                ll = [r["metrics"]["test_ll_is"] for r in ok]
                knn = [r["metrics"].get("smooth_knn") for r in ok]
                knn = [k for k in knn if k is not None]
                cand = {"setting": json.loads(key), "n": len(ok), "failed": len(group) - len(ok),
                        "test_ll_mean": float(np.mean(ll)), "test_ll_std": _std(ll),
                        "knn_mean": float(np.mean(knn)) if knn else None,
                        "knn_std": _std(knn) if knn else None}
                if best is None or cand["test_ll_mean"] > best["test_ll_mean"]:
                    best = cand
            if best is None:
                best = {"setting": None, "n": 0, "failed": sum(len(g) for g in by_setting.values()),
                        "test_ll_mean": None, "test_ll_std": None, "knn_mean": None, "knn_std": None}
            paper = PAPER_TABLE1.get(method, {}).get(dataset, (None,) * 4)
            rows.append({"dataset": dataset, "method": method, **best,
                         "paper_ll_mean": paper[0], "paper_ll_std": paper[1],
                         "paper_knn_mean": paper[2], "paper_knn_std": paper[3]})
    return rows


def _cell(mean, std):
    return "n/a" if mean is None else f"{mean:.2f} ± {std:.2f}"


def markdown(rows, datasets, methods, title="Table 1"):
    """The paper's layout: methods as rows, (Test-LL, S-kNN) per data set; ours, then the paper's."""
    lookup = {(r["dataset"], r["method"]): r for r in rows}
    head = "| method | " + " | ".join(f"{DATASET_TITLES.get(d, d)} Test-LL | S-kNN" for d in datasets) + " |"
    rule = "|---|" + "---|---|" * len(datasets)

    def table(ll, knn):
        lines = [head, rule]
        for m in methods:
            cells = []
            for d in datasets:
                r = lookup[(d, m)]
                cells += [_cell(r[f"{ll}_mean"], r[f"{ll}_std"]), _cell(r[f"{knn}_mean"], r[f"{knn}_std"])]
            lines.append(f"| {METHOD_TITLES.get(m, m)} | " + " | ".join(cells) + " |")
        return lines

    n = sorted({r["n"] for r in rows})
    out = [f"## {title}: this run (mean ± std over data sets; n = {', '.join(map(str, n))})", ""]
    out += table("test_ll", "knn")
    out += ["", "## Paper (Yacoby et al. 2020, Table 1; mean ± std over 5 data sets)", ""]
    out += table("paper_ll", "paper_knn")
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
    fields = ["dataset", "method", "setting", "n", "failed", "test_ll_mean", "test_ll_std", "knn_mean",
              "knn_std", "paper_ll_mean", "paper_ll_std", "paper_knn_mean", "paper_knn_std"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in fields}, "setting": json.dumps(r["setting"])})
