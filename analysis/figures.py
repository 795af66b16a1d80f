"""Figure 1 of the paper (panels A-F) from the exact theory (docs/theory.md (T.25), (T.26)).

* A, B: the mean-field KL (= the VAE objective, the MLE term being 0) and
  I(X;Z) over B = diag(B11, B22) in [0, sigma2)^2 with A fixed at the truth.
* C, D: the data distribution of the truth and of the VAE's exact global
  optimum over A (B fixed).
* E, F: their aggregated posteriors E_{p(x)} q(z|x) (q the best mean-field
  Gaussian) against the prior N(0, I).

Everything is drawn on :class:`matplotlib.figure.Figure` objects with the Agg
canvas, so importing or calling this module leaves pyplot and the global
backend alone.
"""
import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.image import imsave

from . import checks
from .gaussian import LinearGaussian
from .landscape import JTEX_A, JTEX_B, JTEX_SIGMA2, jtex_b_landscape, jtex_vae_optimum

__all__ = ["figure1", "paper_numbers", "ellipse", "landscape_figure", "univariate_figure", "MAX_GRID",
           "MAX_THETA_GRID"]

PANELS = "ABCDEF"
PANEL_SIZE = (5.0, 4.0)
DPI = 120
# Grids are bounded so that a typo gives a clear error, not a MemoryError: a
# (B11, B22) grid of MAX_GRID^2 cells takes ~100 MB per array.
MAX_GRID = 2000
MAX_THETA_GRID = 1_000_000


def ellipse(cov, radius=1.0, n=200):
    """Points on the ellipse {x : x^T cov^-1 x = radius^2} of a 2-D Gaussian.

    Parameters
    ----------
    cov : array_like, shape (2, 2)
        Positive definite covariance.
    radius : float
        Mahalanobis radius (1, 2, 3 for the 1/2/3-sigma contours).
    n : int
        Number of points; the curve is closed (first point repeated).

    Returns
    -------
    ndarray, shape (n + 1, 2)

    Examples
    --------
    >>> pts = ellipse(np.diag([4.0, 1.0]), radius=2.0, n=4)
    >>> np.round(pts, 12)[:3] + 0.0
    array([[ 4.,  0.],
           [ 0.,  2.],
           [-4.,  0.]])
    """
    cov = checks.real_array("cov", cov)
    if cov.shape != (2, 2):
        raise ValueError(f"cov must have shape (2, 2); got {cov.shape}")
    checks.positive_definite("cov", cov)
    radius = checks.scalar("radius", checks.positive("radius", radius))
    n = checks.integer("n", n, 3)
    t = np.linspace(0.0, 2 * np.pi, n + 1)
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1) @ np.linalg.cholesky(cov).T


def paper_numbers(restarts=20, seed=0):
    """The paper's LinearJTEx numbers (docs/theory.md (T.26)) from the exact theory.

    Parameters
    ----------
    restarts : int
        Random starts of :func:`analysis.jtex_vae_optimum` (besides its two
        deterministic ones).
    seed : int or numpy.random.Generator
        Seed of those starts (results for an int seed are cached).

    Returns
    -------
    dict
        ``objective_truth`` (= ``pm_term_truth``, the MLE term being 0),
        ``objective_optimum``, ``mle_term_optimum``, ``pm_term_optimum``,
        ``expected_ll_truth``, ``expected_ll_optimum`` (per point, S the true
        data covariance), ``AAt_truth``, ``AAt_optimum``, ``A_optimum``,
        ``aggregated_cov_truth``, ``aggregated_cov_optimum`` (mean-field
        aggregated posterior covariances), ``mi_truth``, ``mi_optimum``,
        ``n_agree`` (starts that reached the global value). Matrices are
        nested lists of floats.

    Examples
    --------
    >>> nums = paper_numbers(restarts=3)
    >>> round(nums["objective_truth"], 3), round(nums["objective_optimum"], 3)
    (0.532, 0.196)
    >>> round(nums["expected_ll_truth"], 4), round(nums["expected_ll_optimum"], 4)
    (-2.9708, -3.1328)
    """
    restarts = checks.integer("restarts", restarts, 1)
    if not isinstance(seed, np.random.Generator):
        seed = checks.integer("seed", seed, 0)
        return copy.deepcopy(_paper_numbers(restarts, seed))
    return _paper_numbers.__wrapped__(restarts, seed)


@lru_cache(maxsize=8)
def _paper_numbers(restarts, seed):
    A, b, sigma2 = JTEX_A, JTEX_B, JTEX_SIGMA2
    S = A @ A.T + sigma2 * np.eye(2)
    truth = LinearGaussian.jtex(A, b, sigma2)
    opt = jtex_vae_optimum(S, b, sigma2, restarts=restarts, seed=seed)
    learned = LinearGaussian.jtex(opt.A, b, sigma2)
    return {
        "objective_truth": float(truth.vae_objective(S)),
        "mle_term_truth": float(truth.mle_term(S)),
        "pm_term_truth": float(truth.mean_field_kl()),
        "objective_optimum": opt.objective,
        "mle_term_optimum": opt.mle_term,
        "pm_term_optimum": opt.mean_field_kl,
        "expected_ll_truth": float(truth.expected_log_likelihood(S)),
        "expected_ll_optimum": float(learned.expected_log_likelihood(S)),
        "AAt_truth": (A @ A.T).tolist(),
        "AAt_optimum": opt.AAt.tolist(),
        "A_optimum": opt.A.tolist(),
        "aggregated_cov_truth": truth.aggregated_posterior_cov(S).tolist(),
        "aggregated_cov_optimum": learned.aggregated_posterior_cov(S).tolist(),
        "mi_truth": float(truth.mutual_information()),
        "mi_optimum": float(learned.mutual_information()),
        "n_agree": opt.n_agree,
    }


# ---- panels --------------------------------------------------------------------------------

def _landscape_panel(fig, ax, land, key, title, label, log, truth_b):
    b1, b2 = land["b1"], land["b2"]
    values = land[key]
    d1 = b1[1] - b1[0] if b1.size > 1 else 1.0
    d2 = b2[1] - b2[0] if b2.size > 1 else 1.0
    extent = [b2[0] - d2 / 2, b2[-1] + d2 / 2, b1[0] - d1 / 2, b1[-1] + d1 / 2]
    norm = None
    if log:
        positive = values[values > 0]
        norm = LogNorm(vmin=positive.min(), vmax=values.max())
    # Rows are B11 (y axis, growing upwards), columns B22 (x axis), as in the paper.
    im = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap="viridis",
                   norm=norm, interpolation="nearest")
    fig.colorbar(im, ax=ax, label=label)
    i, j = land["argmin"]
    ax.plot(b2[j], b1[i], ls="none", marker="*", ms=18, mfc="red", mec="white", mew=1.0,
            clip_on=False, zorder=5,
            label=f"VAE optimum: B = diag({b1[i]:.4f}, {b2[j]:.4f})\n"
                  f"L = {land['vae_objective'][i, j]:.3f}, I(X;Z) = {land['mutual_information'][i, j]:.2f}")
    ax.plot(truth_b[1], truth_b[0], ls="none", marker="o", ms=8, mfc="none", mec="white",
            mew=1.5, label=f"truth: B = diag({truth_b[0]:g}, {truth_b[1]:g})")
    ax.set_xlabel("$B_{22}$")
    ax.set_ylabel("$B_{11}$")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)


def _gaussian_panel(ax, points, cov, title, limits, xlabel, ylabel, colour, reference=None, ref_label=None,
                    equal=True):
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.3, color=colour, rasterized=True,
               label=f"samples (n = {points.shape[0]})")
    for k in (1, 2, 3):
        e = ellipse(cov, k)
        ax.plot(e[:, 0], e[:, 1], color="black", lw=1.2, label="1/2/3-$\\sigma$ contours" if k == 1 else None)
        if reference is not None:
            r = ellipse(reference, k)
            ax.plot(r[:, 0], r[:, 1], color="tab:red", lw=1.0, ls="--", label=ref_label if k == 1 else None)
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])
    if equal:
        ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)


def _limits(*arrays, pad=0.05):
    """Common (x, y) limits covering every array of 2-D points, padded by 5% of the span."""
    pts = np.concatenate(arrays)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = hi - lo
    return [(lo[0] - pad * span[0], hi[0] + pad * span[0]), (lo[1] - pad * span[1], hi[1] + pad * span[1])]


def _new_figure(size, layout="constrained"):
    fig = Figure(figsize=size, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _render(fig):
    """The figure's pixels, an (h, w, 4) uint8 RGBA array (one draw, no pyplot)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def _combine(panels, title):
    """Tile the panel images 2 x 3 under a title strip (the panels are drawn once)."""
    rows = [np.concatenate(panels[k:k + 3], axis=1) for k in (0, 3)]
    body = np.concatenate(rows, axis=0)
    strip = _new_figure((body.shape[1] / DPI, 0.45), layout=None)
    strip.text(0.5, 0.5, title, ha="center", va="center", fontsize=13)
    head = _render(strip)
    return np.concatenate([head[:, :body.shape[1]], body], axis=0)


def figure1(out_dir, grid=300, n_points=2000, seed=0):
    """Draw the paper's Figure 1 (A-F) from the exact theory and write PNGs.

    Parameters
    ----------
    out_dir : str or path-like
        Created if missing; receives ``figure1A.png`` ... ``figure1F.png``
        (one panel each, 5 x 4 in at 120 dpi) and ``figure1.png`` (all six).
    grid : int
        Points per axis of the (B11, B22) grid on [0, sigma2), in [2, MAX_GRID].
    n_points : int
        Samples drawn for panels C-F (>= 1).
    seed : int or numpy.random.Generator
        For the samples (the optimum itself is deterministic).

    Returns
    -------
    dict
        The numbers of :func:`paper_numbers` plus ``landscape_optimum_B``
        (B11, B22), ``landscape_min_objective``, ``mi_at_landscape_optimum``,
        ``mi_range`` (min, max over the grid), ``grid``, ``n_points`` and
        ``paths`` (panel letter or ``"combined"`` -> file path).

    Examples
    --------
    >>> summary = figure1("out", grid=50, n_points=500)  # doctest: +SKIP
    >>> round(summary["objective_optimum"], 3)  # doctest: +SKIP
    0.196
    """
    grid = checks.integer("grid", grid, 2, MAX_GRID)
    n_points = checks.integer("n_points", n_points, 1)
    if isinstance(seed, np.random.Generator):
        rng = seed
    else:
        rng = np.random.default_rng(checks.integer("seed", seed, 0))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir must be a directory; {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)

    A, b, sigma2 = JTEX_A, JTEX_B, JTEX_SIGMA2
    S = A @ A.T + sigma2 * np.eye(2)
    nums = paper_numbers()
    A_opt = np.array(nums["A_optimum"])
    truth = LinearGaussian.jtex(A, b, sigma2)
    learned = LinearGaussian.jtex(A_opt, b, sigma2)

    # A, B: the landscape over B with A fixed.
    bgrid = np.linspace(0.0, sigma2, grid + 1)[:-1]
    land = jtex_b_landscape(A, sigma2, bgrid, bgrid)
    i, j = land["argmin"]

    # C, D: data. E, F: aggregated posteriors of the best mean-field q, x from the data.
    x_truth, _ = truth.sample(n_points, rng)
    x_learned, _ = learned.sample(n_points, rng)

    def aggregate(model):
        mean, _ = model.posterior(x_truth)
        return mean + np.sqrt(model.mean_field_variances()) * rng.standard_normal(mean.shape)

    z_truth, z_learned = aggregate(truth), aggregate(learned)
    C_truth, C_learned = truth.marginal_cov(), learned.marginal_cov()
    agg_truth = truth.aggregated_posterior_cov(S)
    agg_learned = learned.aggregated_posterior_cov(S)
    L_truth, L_opt = nums["objective_truth"], nums["objective_optimum"]

    x_lim = _limits(x_truth, x_learned, ellipse(C_truth, 3), ellipse(C_learned, 3))
    z_lim = _limits(z_truth, z_learned, ellipse(np.eye(2), 3), ellipse(agg_truth, 3), ellipse(agg_learned, 3))
    mi = land["mutual_information"]

    def draw(letter, fig, ax):
        if letter == "A":
            _landscape_panel(fig, ax, land, "mean_field_kl",
                             "A: min$_\\phi$ KL$[q_\\phi(z|x)\\,\\|\\,p_\\theta(z|x)]$ = L(B), A fixed\n"
                             f"(the MLE term is 0 for every B; min L = {land['vae_objective'][i, j]:.4f})",
                             "mean-field KL (nats, log scale)", True, b)
        elif letter == "B":
            _landscape_panel(fig, ax, land, "mutual_information",
                             "B: I(X;Z) vs B, A fixed\n"
                             f"(at L's optimum {mi[i, j]:.2f}; grid range {mi.min():.2f} to {mi.max():.2f})",
                             "I(X;Z) (nats)", False, b)
        elif letter == "C":
            _gaussian_panel(ax, x_truth, C_truth, f"C: true data $p(x)$, L(truth) = {L_truth:.3f}",
                            x_lim, "$x_1$", "$x_2$", "tab:blue", equal=False)
        elif letter == "D":
            _gaussian_panel(ax, x_learned, C_learned,
                            f"D: VAE global optimum $p_{{\\theta^*}}(x)$, L = {L_opt:.3f}",
                            x_lim, "$x_1$", "$x_2$", "tab:orange", reference=C_truth,
                            ref_label="true p(x) contours", equal=False)
        elif letter == "E":
            _gaussian_panel(ax, z_truth, agg_truth,
                            f"E: aggregated $q(z)$ at the truth, L = {L_truth:.3f}",
                            z_lim, "$z_1$", "$z_2$", "tab:blue", reference=np.eye(2),
                            ref_label="prior N(0, I) contours")
        else:
            _gaussian_panel(ax, z_learned, agg_learned,
                            f"F: aggregated $q(z)$ at the VAE optimum, L = {L_opt:.3f}",
                            z_lim, "$z_1$", "$z_2$", "tab:orange", reference=np.eye(2),
                            ref_label="prior N(0, I) contours")

    paths, images = {}, []
    for letter in PANELS:
        fig = _new_figure(PANEL_SIZE)
        draw(letter, fig, fig.add_subplot())
        images.append(_render(fig))
        paths[letter] = str(out / f"figure1{letter}.png")
        imsave(paths[letter], images[-1], dpi=DPI)
    paths["combined"] = str(out / "figure1.png")
    imsave(paths["combined"], _combine(images, "Figure 1: problematic global optima of the VAE objective "
                                               "(LinearJTEx, exact theory)"), dpi=DPI)

    summary = dict(nums)
    summary.update({
        "landscape_optimum_B": tuple(land["optimum"]),
        "landscape_min_objective": float(land["vae_objective"][i, j]),
        "mi_at_landscape_optimum": float(mi[i, j]),
        "mi_range": (float(mi.min()), float(mi.max())),
        "grid": grid, "n_points": n_points, "paths": paths,
    })
    return summary


# ---- landscapes of your own model ------------------------------------------------------------

def _fmt_matrix(A):
    return "[" + "; ".join(", ".join(f"{v:.4g}" for v in row) for row in A) + "]"


def landscape_figure(A, sigma2, b=None, grid=200):
    """The JTEx landscape over B (Figure 1 A-B) for any A and sigma2.

    With A fixed, every B = diag(b1, b2) in [0, sigma2)^2 gives the same
    p(x) = N(0, A A^T + sigma2 I), so the exact VAE objective is the
    mean-field KL alone; its minimum over B is what the VAE picks among
    models of equal likelihood.

    Parameters
    ----------
    A : array_like (2, 2)
    sigma2 : float
        > 0.
    b : array_like (2,), optional
        The truth's B (marked on the landscape); default (0.6, 0.6) sigma2,
        the paper's proportion (b = 0.006 at sigma2 = 0.01).
    grid : int
        Points per axis on [0, sigma2), in [2, MAX_GRID].

    Returns
    -------
    dict
        The arrays of :func:`analysis.jtex_b_landscape` (``b1``, ``b2``,
        ``mean_field_kl``, ``mutual_information``, ``vae_objective``,
        ``argmin``, ``optimum``), ``truth_b``, ``truth_objective`` and
        ``figure``: a matplotlib Figure with the two panels (objective,
        I(X;Z)), the optimum starred and the truth circled.

    Examples
    --------
    >>> out = landscape_figure([[1.0, 0.0], [0.5, 0.5]], 0.1, grid=20)
    >>> out["vae_objective"].shape, out["optimum"]
    ((20, 20), (0.095, 0.0))
    >>> out["figure"].savefig("landscape.png")  # doctest: +SKIP
    """
    A = checks.real_array("A", A)
    if A.shape != (2, 2):
        raise ValueError(f"A must have shape (2, 2) (the 2-D JTEx family); got {A.shape}")
    sigma2 = checks.scalar("sigma2", checks.positive("sigma2", sigma2))
    grid = checks.integer("grid", grid, 2, MAX_GRID)
    b = np.array([0.6 * sigma2, 0.6 * sigma2]) if b is None else checks.real_array("b", b)
    if b.shape != (2,) or np.any(b < 0) or np.any(b >= sigma2):
        raise ValueError(f"b must be two values in [0, sigma2) = [0, {sigma2:g}); got {b}")
    bgrid = np.linspace(0.0, sigma2, grid + 1)[:-1]
    land = jtex_b_landscape(A, sigma2, bgrid, bgrid)
    truth = LinearGaussian.jtex(A, b, sigma2)
    mi = land["mutual_information"]
    i, j = land["argmin"]
    fig = _new_figure((2 * PANEL_SIZE[0], PANEL_SIZE[1]))
    ax1, ax2 = fig.subplots(1, 2)
    name = f"A = {_fmt_matrix(A)}, $\\sigma^2$ = {sigma2:g}"
    _landscape_panel(fig, ax1, land, "mean_field_kl",
                     f"VAE objective over B ({name})\n(= mean-field KL: every B has the data's "
                     f"likelihood; min {land['vae_objective'][i, j]:.4g})",
                     "mean-field KL (nats, log scale)",
                     bool(np.all(land["mean_field_kl"] > 0)), b)
    _landscape_panel(fig, ax2, land, "mutual_information",
                     f"I(X;Z) over B\n(at the optimum {mi[i, j]:.3g}; range {mi.min():.3g} to {mi.max():.3g})",
                     "I(X;Z) (nats)", False, b)
    land.update(truth_b=tuple(float(v) for v in b), truth_objective=float(truth.mean_field_kl()),
                figure=fig)
    return land


def univariate_figure(sigma2, grid=401):
    """The univariate model x = theta z + eps over its valid theta range (paper Eq. 5).

    Every |theta| < sigma gives p(x) = N(0, sigma2): the objective (at data
    variance sigma2) is flat, theta is not identifiable, yet I(X;Z) and the
    posterior variance sweep their whole range.

    Parameters
    ----------
    sigma2 : float
        The data variance, > 0.
    grid : int
        Points in the open interval (-sigma, sigma) (the endpoints have
        I(X;Z) = inf), in [2, MAX_THETA_GRID].

    Returns
    -------
    dict
        ``theta``, ``vae_objective``, ``mle_term``, ``mean_field_kl``,
        ``mutual_information``, ``posterior_var`` (arrays of shape (grid,))
        and ``figure`` (three panels).

    Examples
    --------
    >>> out = univariate_figure(1.0, grid=5)
    >>> out["theta"]
    array([-0.66666667, -0.33333333,  0.        ,  0.33333333,  0.66666667])
    >>> float(np.max(np.abs(out["vae_objective"]))) < 1e-12
    True
    >>> np.round(out["posterior_var"], 4)
    array([0.5556, 0.8889, 1.    , 0.8889, 0.5556])
    """
    sigma2 = checks.scalar("sigma2", checks.positive("sigma2", sigma2))
    grid = checks.integer("grid", grid, 2, MAX_THETA_GRID)
    sigma = np.sqrt(sigma2)
    theta = sigma * np.linspace(-1.0, 1.0, grid + 2)[1:-1]
    model = LinearGaussian.univariate(theta, sigma2)
    S = np.array([[sigma2]])
    out = {"theta": theta, "mle_term": model.mle_term(S), "mean_field_kl": model.mean_field_kl(),
           "mutual_information": model.mutual_information(),
           "posterior_var": model.posterior_cov()[:, 0, 0]}
    out["vae_objective"] = out["mle_term"] + out["mean_field_kl"]
    fig = _new_figure((3 * 3.6, 3.4))
    axes = fig.subplots(1, 3)
    panels = [("vae_objective", "VAE objective L($\\theta$) (nats)",
               "flat: every $\\theta$ gives p(x) = N(0, $\\sigma^2$)"),
              ("mutual_information", "I(X;Z) (nats)", "I(X;Z): from 0 to $\\infty$ at |$\\theta$| = $\\sigma$"),
              ("posterior_var", "posterior variance", "Var(z | x) = 1 - $\\theta^2/\\sigma^2$")]
    for ax, (key, label, title) in zip(axes, panels):
        ax.plot(theta, out[key], color="tab:blue")
        ax.set_xlabel("$\\theta$")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=9)
        ax.axvline(0.0, color="grey", lw=0.5)
    axes[0].set_ylim(-0.1, 0.1)
    fig.suptitle(f"univariate model x = $\\theta$z + $\\epsilon$, $\\sigma^2$ = {sigma2:g}: "
                 "non-identifiable, equally good $\\theta$ with different posteriors", fontsize=10)
    out["figure"] = fig
    return out
