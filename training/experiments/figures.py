"""Figures 2-5 of the paper (App. B): posterior means of the VAE and of LiBI in latent space.

Each figure is a grid of scatter panels over the test points x_n of one data
set; every panel plots one 2-D vector per point, coloured by the true code
z_n that generated x_n (hue = angle of z_n, saturation and size grow with
|z_n|), so the same point can be followed from panel to panel:

* top-left: the means of q_{phi_GT}(z|x), phi_GT = argmin_phi E KL[q_phi ||
  p_{theta_GT}(z|x)] (fitted by :class:`training.trainers.InferenceOnly`);
* bottom-left: the means of the true posterior p_{theta_GT}(z|x) (exact for
  a linear-Gaussian likelihood, else the importance-sampling estimate of
  :func:`training.evaluate.posterior_mean_is` with q_{phi_GT} as the proposal);
* next column, top: the learned q_phi means; bottom: the posterior means
  under the learned theta (exact, or IS with the learned q as the proposal);
* LiBI only, a last column: the true z (top) and LiBI's Step-1 codes
  h(x; varphi) (bottom).

A narrow right-hand column holds the colour key. Panels share their axis
limits; the prior's 1- and 2-sigma circles are drawn faintly for reference,
and each panel states the root-mean-square distance of its points to the
true posterior means. Figure 2 = (VAE, LinearJTEx), 3 = (LiBI, LinearJTEx),
4 = (VAE, CubicJTEx), 5 = (LiBI, CubicJTEx).

As in :mod:`analysis.figures`, everything is drawn on
:class:`matplotlib.figure.Figure` objects with the Agg canvas: pyplot and
the global backend are left alone.

For CubicJTEx the importance-sampled posterior means are noisy where the
posterior is far from Gaussian: with the default S = 2000 and q_{phi_GT}
as the proposal the effective sample size has median ~36 and falls to ~1
at a few points, yet two independent estimates differ by 0.02 RMS (0.13 at
worst) in z units, invisible at the figures' scale (data seed 0).

Default fits (:data:`DEFAULT_FIT_SETTINGS`) are short previews, chosen so
that :func:`make_figures` fits everything quickly (timings in
benchmarks/README.md); the paper trained 30 000 epochs with 10 restarts, so pass
larger settings for publication figures.

Examples
--------
>>> fig = posterior_figure(data, "vae", vae.theta_, vae.phi_, phi_gt)   # doctest: +SKIP
>>> paths = make_figures("out", fit_settings={"vae": {"epochs": 30000}})  # doctest: +SKIP
"""
import numbers
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure

from analysis import checks

from ..datasets.synthetic import Dataset, load_dataset
from ..evaluate.likelihood import exact_log_likelihood, log_likelihood_is, posterior_mean_is
from ..models.encoders import Encoder
from ..trainers.vae import InferenceOnly
from . import unit as experiment

__all__ = ["posterior_figure", "make_figures", "z_colours",
           "FIGURES", "DEFAULT_FIT_SETTINGS"]

#: (dataset, method) -> figure number of the paper.
FIGURES = {("linear_jtex", "vae"): 2, ("linear_jtex", "libi"): 3,
           ("cubic_jtex", "vae"): 4, ("cubic_jtex", "libi"): 5}
DATASET_LABELS = {"linear_jtex": "LinearJTEx", "cubic_jtex": "CubicJTEx"}
METHOD_LABELS = {"vae": "VAE", "libi": "LiBI"}

#: Fit settings used where ``make_figures`` must fit a model, per data set and
#: ``"inference"`` (q_phi_GT), ``"vae"`` or ``"libi"``; the caller's
#: ``fit_settings`` are merged over them. Sized for a short ``make_figures``
#: (timings in benchmarks/README.md); CubicJTEx LiBI's Step 1 pays
#: O(N^2) per epoch for the Henze-Zirkler statistic, hence its fewer epochs.
DEFAULT_FIT_SETTINGS = {
    "linear_jtex": {"inference": {"epochs": 2000, "restarts": 2},
                    "vae": {"epochs": 2000, "restarts": 3},
                    "libi": {"epochs": 2000, "inference_epochs": 1000, "restarts": 2}},
    "cubic_jtex": {"inference": {"epochs": 3000, "restarts": 2},
                   "vae": {"epochs": 3000, "restarts": 2},
                   "libi": {"epochs": 800, "inference_epochs": 1500, "restarts": 2}},
}

DPI = 110
PANEL_INCHES = {"vae": 3.6, "libi": 3.15}   # side of one scatter panel: ~9.3 and ~11.4 in wide
KEY_RATIO = 0.42            # width of the colour-key column relative to a panel
COLOUR_RADIUS = 2.5         # |z| at which colours reach full saturation


# ---- input checks --------------------------------------------------------------------------------

def _conform(name, value, template):
    """``value`` as a tree of float arrays shaped like ``template`` (JSON nested lists accepted).

    The template says where the leaves are, so nested lists of numbers
    become arrays, not containers.
    """
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict with keys {sorted(template)}, got {type(value).__name__}")
        if set(value) != set(template):
            raise ValueError(f"{name} must have keys {sorted(template)}, got {sorted(value)}")
        return {k: _conform(f"{name}[{k!r}]", value[k], template[k]) for k in template}
    if isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(template):
            raise ValueError(f"{name} must be a list of {len(template)} entries, got "
                             f"{type(value).__name__}"
                             + (f" of {len(value)}" if isinstance(value, (list, tuple)) else ""))
        return [_conform(f"{name}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, template))]
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(value).__name__}") from None
    want = np.shape(template)
    if arr.shape != want:
        raise ValueError(f"{name} must have shape {want} (a leading restart axis of length 1), "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _templates(data):
    g = [np.random.default_rng(0)]
    theta = data.likelihood.init(g)
    phi = data.encoder.init(g)
    return theta, phi, Encoder.deterministic_part(phi)


def _rng(rng):
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(checks.integer("rng", rng, 0))


# ---- drawing -------------------------------------------------------------------------------------

def z_colours(z, radius=COLOUR_RADIUS):
    """RGB colours and marker sizes of codes z (N, 2): hue = angle, saturation and size grow with |z|.

    Examples
    --------
    >>> rgb, size = z_colours(np.array([[0.0, 0.0], [3.0, 0.0]]))
    >>> rgb.shape, bool(size[1] > size[0])
    ((2, 3), True)
    """
    z = checks.real_array("z", z, 2)
    if z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2); got {z.shape}")
    r = np.minimum(np.hypot(z[:, 0], z[:, 1]) / radius, 1.0)
    hue = (np.arctan2(z[:, 1], z[:, 0]) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, 0.12 + 0.88 * r, 0.55 + 0.4 * r], axis=1)
    return hsv_to_rgb(hsv), 5.0 + 17.0 * r


def _colour_key(ax, radius=COLOUR_RADIUS):
    t = np.linspace(-1.25 * radius, 1.25 * radius, 161)
    g1, g2 = np.meshgrid(t, t)
    rgb, _ = z_colours(np.stack([g1.ravel(), g2.ravel()], axis=1))
    ax.imshow(rgb.reshape(t.size, t.size, 3), origin="lower", extent=[t[0], t[-1], t[0], t[-1]],
              interpolation="bilinear")
    ax.set_title("colour key:\ntrue $z_n$ of each $x_n$", fontsize=9)
    ax.set_xlabel("$z_1$", fontsize=8)
    ax.set_ylabel("$z_2$", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xticks([-2, 0, 2])
    ax.set_yticks([-2, 0, 2])
    ax.text(0.5, -0.55, "hue: angle of $z_n$\nsaturation, size: $|z_n|$\n"
            "dashed: prior 1$\\sigma$, 2$\\sigma$", transform=ax.transAxes, ha="center", va="top",
            fontsize=8)


def _limit(arrays):
    """A common half-width L of square limits [-L, L]^2 covering the bulk of every panel."""
    pts = np.abs(np.concatenate([a[np.all(np.isfinite(a), axis=1)] for a in arrays]))
    hi = pts.max()
    bulk = np.quantile(pts, 0.99)
    return 1.08 * float(min(hi, 2.0 * bulk)) if hi > 0 else 1.0


def _scatter(ax, points, rgb, size, order, limit, title, reference=None):
    ax.scatter(points[order, 0], points[order, 1], c=rgb[order], s=size[order], linewidths=0.2,
               edgecolors=(0, 0, 0, 0.35), rasterized=True)
    t = np.linspace(0, 2 * np.pi, 200)
    for k in (1, 2):
        ax.plot(k * np.cos(t), k * np.sin(t), color="0.55", lw=0.7, ls="--", zorder=0)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("$z_1$", fontsize=9)
    ax.set_ylabel("$z_2$", fontsize=9)
    ax.tick_params(labelsize=8)
    notes = []
    if reference is not None:
        rms = float(np.sqrt(np.mean(np.sum((points - reference) ** 2, axis=1))))
        notes.append(f"RMS to true post. means: {rms:.3f}")
    outside = int(np.sum(np.any(np.abs(points) > limit, axis=1)))
    if outside:
        notes.append(f"{outside} point{'s' if outside > 1 else ''} outside view")
    if notes:
        ax.text(0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=7.5, va="bottom",
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.7", "alpha": 0.85})


def _posterior_means(data, theta, phi, x, rng, samples, inflate):
    """Posterior means (N, K) under theta: exact if linear-Gaussian, else IS with q_phi."""
    if data.likelihood.linear:
        return np.asarray(data.likelihood.exact(theta).posterior(x)[0])[0], "exact"
    means = posterior_mean_is(data.likelihood, theta, data.encoder, phi, x, rng, samples, inflate)
    return means[0], f"IS, S = {samples}"


def _ll_text(test_ll):
    if test_ll is None:
        return ""
    if isinstance(test_ll, dict):
        parts = [f"{k} {float(v):.3f}" for k, v in test_ll.items() if v is not None]
        return ("test log-likelihood per point: " + ", ".join(parts)) if parts else ""
    if isinstance(test_ll, numbers.Real) and np.isfinite(test_ll):
        return f"test log-likelihood per point: {float(test_ll):.3f}"
    raise ValueError(f"test_ll must be a finite number or a dict of them, got {test_ll!r}")


def posterior_figure(data, method, theta, phi, phi_gt, varphi=None, rng=None, title=None, path=None,
                     samples=2000, inflate=2.0, test_ll=None, reference=None):
    """Draw one of Figures 2-5: posterior means of a fitted model against the truth's.

    Parameters
    ----------
    data : training.datasets.Dataset
        With a 2-D latent space, ``truth`` and ``z_test`` (the points are
        ``data.test``).
    method : {"vae", "libi"}
        "libi" adds the column of true z and Step-1 codes h(x; varphi).
    theta, phi : pytrees
        The learned likelihood and inference network (leading restart axis
        of length 1; nested lists, e.g. from JSON, are accepted).
    phi_gt : pytree
        q_{phi_GT}: the inference network fitted to the true likelihood.
    varphi : pytree, required for "libi"
        LiBI's Step-1 encoder h(x; varphi) (``{"hidden", "mean"}``).
    rng : numpy.random.Generator, int or None
        For the importance samples of nonlinear likelihoods (None: seed 0).
    title : str, optional
        Replaces the suptitle's first line.
    path : str or path-like, optional
        Where to save the PNG (DPI 110).
    samples : int
        Importance samples per point for nonlinear likelihoods.
    inflate : float
        Proposal variance inflation of :func:`posterior_mean_is`.
    test_ll : float or dict, optional
        Test log-likelihood(s) to print under the title, e.g.
        ``{"learned θ": -3.14, "θ_GT": -2.97}``.
    reference : array (N, 2), optional
        Precomputed true posterior means of ``data.test`` (to share one
        estimate between the VAE and LiBI figures of a data set; for a
        nonlinear likelihood computed with the same ``samples``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a training.datasets.Dataset, got {type(data).__name__}")
    if method not in METHOD_LABELS:
        raise ValueError(f"method must be one of {sorted(METHOD_LABELS)}, got {method!r}")
    if data.likelihood.latent_dim != 2:
        raise ValueError(f"the figures need a 2-D latent space; {data.name} has "
                         f"{data.likelihood.latent_dim}")
    if data.truth is None or data.z_test is None:
        raise ValueError(f"data {data.name!r} must carry its truth and z_test (the generating codes)")
    samples = checks.integer("samples", samples, 1)
    inflate = float(checks.positive("inflate", inflate))
    rng = _rng(rng)
    t_theta, t_phi, t_varphi = _templates(data)
    theta = _conform("theta", theta, t_theta)
    phi = _conform("phi", phi, t_phi)
    phi_gt = _conform("phi_gt", phi_gt, t_phi)
    if method == "libi":
        if varphi is None:
            raise ValueError("varphi (LiBI's Step-1 encoder) is required for method 'libi'")
        varphi = _conform("varphi", varphi, t_varphi)
    elif varphi is not None:
        raise ValueError("varphi is only used by method 'libi'")
    ll_line = _ll_text(test_ll)

    x, z_true = data.test, np.asarray(data.z_test)
    truth = _conform("data.truth", data.truth, t_theta)
    gt_q = np.asarray(data.encoder.mean(phi_gt, x))[0]
    if reference is None:
        gt_post, gt_how = _posterior_means(data, truth, phi_gt, x, rng, samples, inflate)
    else:
        gt_post = checks.real_array("reference", reference, 2)
        if gt_post.shape != gt_q.shape:
            raise ValueError(f"reference must have shape {gt_q.shape}, got {gt_post.shape}")
        gt_how = "exact" if data.likelihood.linear else f"IS, S = {samples}"
    learned_q = np.asarray(data.encoder.mean(phi, x))[0]
    learned_post, how = _posterior_means(data, theta, phi, x, rng, samples, inflate)
    gt, lt = "$\\theta_{GT}$", "$\\theta$"
    panels = [  # (row, column, points, title)
        (0, 0, gt_q, "$q_{\\phi_{GT}}(z|x)$ means\n($\\phi$ fitted to " + gt + ")"),
        (1, 0, gt_post, f"true posterior means $p_{{\\theta_{{GT}}}}(z|x)$\n({gt_how})"),
        (0, 1, learned_q, f"learned $q_\\phi(z|x)$ means\n({METHOD_LABELS[method]})"),
        (1, 1, learned_post, f"posterior means under learned {lt}\n$p_\\theta(z|x)$ ({how})"),
    ]
    if method == "libi":
        codes = np.asarray(data.encoder.mean(varphi, x))[0]
        panels += [(0, 2, z_true, "true $z$\n(that generated the $x$)"),
                   (1, 2, codes, "LiBI codes $h(x;\\varphi)$\n(Step-1 encoder)")]
    n_cols = 3 if method == "libi" else 2

    rgb, size = z_colours(z_true)
    order = np.argsort(-np.hypot(z_true[:, 0], z_true[:, 1]), kind="stable")  # small |z| drawn on top
    limit = _limit([p for *_, p, _ in panels])

    side = PANEL_INCHES[method]
    width = (n_cols + KEY_RATIO) * side + 0.6
    height = 2 * side + (1.35 if ll_line else 1.1)
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08, hspace=0.04)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, n_cols + 1, width_ratios=[1.0] * n_cols + [KEY_RATIO])
    for row, col, points, panel_title in panels:
        ax = fig.add_subplot(grid[row, col])
        _scatter(ax, points, rgb, size, order, limit, panel_title,
                 reference=None if (row, col) == (1, 0) else gt_post)
    _colour_key(fig.add_subplot(grid[0, n_cols]))
    number = FIGURES.get((data.name, method))
    if title is None:
        head = f"Figure {number}: " if number is not None else ""
        title = (f"{head}posterior means of {METHOD_LABELS[method]} on "
                 f"{DATASET_LABELS.get(data.name, data.name)} (data seed {data.seed}, "
                 f"{x.shape[0]} test points)")
    fig.suptitle(title + (f"\n{ll_line}" if ll_line else ""), fontsize=12)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    return fig


# ---- all four figures ----------------------------------------------------------------------------

_SETTING_KEYS = ("inference", "vae", "libi")


def _dict_or_empty(name, value):
    """None -> {}; a dict as it is; anything else a ValueError naming the argument."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    return value


def _check_fit_settings(fit_settings):
    fit_settings = _dict_or_empty("fit_settings", fit_settings)
    for key, value in fit_settings.items():
        if key in _SETTING_KEYS:
            if not isinstance(value, dict):
                raise ValueError(f"fit_settings[{key!r}] must be a dict of settings")
            if key == "inference" and "theta" in value:
                raise ValueError("fit_settings['inference'] must not set theta (it is the truth's)")
        elif key in DATASET_LABELS:
            if not isinstance(value, dict) or set(value) - set(_SETTING_KEYS):
                raise ValueError(f"fit_settings[{key!r}] must map some of {list(_SETTING_KEYS)} to settings")
            _check_fit_settings(value)
        else:
            raise ValueError(f"unknown fit_settings key {key!r}: use {list(_SETTING_KEYS)} "
                             f"or a data set name {sorted(DATASET_LABELS)}")
    return fit_settings


def _settings(fit_settings, dataset, what, seed, progress):
    return {"seed": seed, "progress": progress, **DEFAULT_FIT_SETTINGS[dataset][what],
            **fit_settings.get(what, {}), **fit_settings.get(dataset, {}).get(what, {})}


def _check_models(models):
    models = _dict_or_empty("models", models)
    for key, entry in models.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"models keys must be (dataset, method) pairs, got {key!r}")
        dataset, method = key
        if dataset not in DATASET_LABELS:
            raise ValueError(f"unknown dataset {dataset!r} in models key {key!r}: "
                             f"use one of {sorted(DATASET_LABELS)}")
        if method not in METHOD_LABELS:
            raise ValueError(f"unknown method {method!r} in models key {key!r}: "
                             f"use one of {sorted(METHOD_LABELS)}")
        if not isinstance(entry, dict):
            raise ValueError(f"models[{key!r}] must be a dict, got {type(entry).__name__}")
        need = {"theta", "phi"} | ({"varphi"} if method == "libi" else set())
        missing, extra = need - set(entry), set(entry) - need - {"test_ll"}
        if missing:
            raise ValueError(f"models[{key!r}] lacks {sorted(missing)}")
        if extra:
            raise ValueError(f"models[{key!r}] has unknown entries {sorted(extra)}")
    return models


FIGURES_BY_NAME = {f"figure{n}": key for key, n in FIGURES.items()}


def _given_models(models, data, methods):
    """The entries of ``models`` for ``data`` as checked arrays: {method: model}."""
    t_theta, t_phi, t_varphi = _templates(data)
    given = {}
    for method in methods:
        entry = models.get((data.name, method))
        if entry is None:
            continue
        label = f"models[{(data.name, method)!r}]"
        test_ll = entry.get("test_ll")
        if test_ll is not None and (not isinstance(test_ll, numbers.Real) or not np.isfinite(test_ll)):
            raise ValueError(f"{label}['test_ll'] must be a finite number, got {test_ll!r}")
        given[method] = {"theta": _conform(f"{label}['theta']", entry["theta"], t_theta),
                         "phi": _conform(f"{label}['phi']", entry["phi"], t_phi),
                         "test_ll": test_ll}
        if method == "libi":
            given[method]["varphi"] = _conform(f"{label}['varphi']", entry["varphi"], t_varphi)
    return given


def _figure_names(figures):
    if figures is None:
        return list(FIGURES_BY_NAME)
    if isinstance(figures, (str, numbers.Integral)):
        figures = [figures]
    names = []
    for f in figures:
        name = f"figure{f}" if isinstance(f, numbers.Integral) else f
        if name not in FIGURES_BY_NAME:
            raise ValueError(f"unknown figure {f!r}: use some of {sorted(FIGURES_BY_NAME)}")
        names.append(name)
    return [n for n in FIGURES_BY_NAME if n in names]


def _test_ll(data, theta, phi, rng, samples):
    if data.likelihood.linear:
        return float(exact_log_likelihood(data.likelihood, theta, data.test).mean())
    return float(log_likelihood_is(data.likelihood, theta, data.encoder, phi, data.test, rng,
                                   samples=samples).mean())


def make_figures(out_dir, models=None, fit_settings=None, seed=0, progress=False, samples=2000,
                 ll_samples=5000, inflate=2.0, figures=None):
    """Write Figures 2-5 (``figure2.png`` ... ``figure5.png``) into ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like
        Created if missing.
    models : dict, optional
        ``(dataset, method) -> {"theta", "phi"[, "varphi"][, "test_ll"]}``
        with dataset in {"linear_jtex", "cubic_jtex"} and method in
        {"vae", "libi"} ("varphi" for LiBI): parameter trees with a leading
        restart axis of length 1, arrays or nested lists (JSON). Missing
        entries are fitted here.
    fit_settings : dict, optional
        Trainer keywords merged over :data:`DEFAULT_FIT_SETTINGS`:
        ``{"vae": {...}, "libi": {...}, "inference": {...}}`` for both data
        sets, and optionally ``{"cubic_jtex": {"vae": {...}}, ...}`` for one.
        Methods are built with :func:`training.experiments.unit.make_trainer`;
        "inference" configures the :class:`InferenceOnly` fit of q_{phi_GT},
        done once per data set. ``seed`` defaults to ``make_figures``'s.
    seed : int
        Data set seed (:func:`training.datasets.load_dataset`), trainer seed
        and root of the importance-sampling streams.
    progress : bool
        Progress bars for the fits.
    samples : int
        Importance samples per point for CubicJTEx's posterior means.
    ll_samples : int
        Importance samples per point for CubicJTEx's test log-likelihoods
        (LinearJTEx's are exact).
    inflate : float
        Proposal variance inflation of :func:`posterior_mean_is`.
    figures : iterable, optional
        A subset of the figures to draw (numbers 2-5 or names "figure2" ...).

    Returns
    -------
    dict
        ``{"figure2": path, ...}``.
    """
    seed = checks.integer("seed", seed, 0)
    samples = checks.integer("samples", samples, 1)
    ll_samples = checks.integer("ll_samples", ll_samples, 1)
    inflate = float(checks.positive("inflate", inflate))
    models = _check_models(models)
    fit_settings = _check_fit_settings(fit_settings)
    names = _figure_names(figures)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir must be a directory; {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    wanted = {FIGURES_BY_NAME[n] for n in names}
    # Draw the data and check every given model before any (long) fit.
    plan = {}
    for dataset in DATASET_LABELS:
        methods = [m for m in METHOD_LABELS if (dataset, m) in wanted]
        if methods:
            data = load_dataset(dataset, seed)
            plan[dataset] = (data, methods, _given_models(models, data, methods))
    paths = {}
    for dataset, (data, methods, given) in plan.items():
        settings = _settings(fit_settings, dataset, "inference", seed, progress)
        try:
            inference = InferenceOnly(theta=data.truth, **settings)
        except TypeError as err:
            raise TypeError(f"bad fit_settings for 'inference': {err}") from None
        phi_gt = inference.fit(data).phi_
        # Streams per data set: 0 true posterior means, 1 the truth's test LL, then per
        # method (fixed order, whatever subset is drawn) its test LL and its figure.
        streams = [np.random.default_rng(s) for s in
                   np.random.SeedSequence([seed, 5, list(DATASET_LABELS).index(dataset)]).spawn(6)]
        reference, _ = _posterior_means(data, data.truth, phi_gt, data.test, streams[0], samples, inflate)
        truth_ll = _test_ll(data, data.truth, phi_gt, streams[1], ll_samples)
        for method in methods:
            i = list(METHOD_LABELS).index(method)
            model = given.get(method)
            if model is None:
                trainer = experiment.make_trainer(method, **_settings(fit_settings, dataset, method,
                                                                      seed, progress))
                trainer.fit(data)
                model = {"theta": trainer.theta_, "phi": trainer.phi_, "test_ll": None,
                         "varphi": getattr(trainer, "varphi_", None)}
            test_ll = model["test_ll"]
            if test_ll is None:
                test_ll = _test_ll(data, model["theta"], model["phi"], streams[2 + 2 * i], ll_samples)
            how = "exact" if data.likelihood.linear else f"IS, S = {ll_samples}"
            number = FIGURES[(dataset, method)]
            name = f"figure{number}"
            fig_rng = streams[3 + 2 * i]
            paths[name] = str(out / f"{name}.png")
            posterior_figure(data, method, model["theta"], model["phi"], phi_gt,
                             varphi=model.get("varphi") if method == "libi" else None, rng=fig_rng,
                             path=paths[name], samples=samples, inflate=inflate, reference=reference,
                             test_ll={f"learned $\\theta$ ({how})": test_ll, "$\\theta_{GT}$": truth_ll})
    return {n: paths[n] for n in names}
