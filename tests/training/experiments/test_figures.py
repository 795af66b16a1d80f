"""Figures 2-5 (training.experiments.figures): the IS posterior-mean estimator and the figure pipeline."""
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from training.experiments import unit as experiment
from training.datasets import load_dataset
from training.evaluate import posterior_mean_is, posterior_mean_is_with_ess
from training.experiments.figures import FIGURES, make_figures, posterior_figure
from training.core.trees import tree_stack, tree_to_lists

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = {"inference": {"epochs": 40, "restarts": 1},
        "vae": {"epochs": 40, "restarts": 1},
        "libi": {"epochs": 30, "inference_epochs": 30, "restarts": 1, "val_is_samples": 20}}


@pytest.fixture(scope="module")
def linear():
    return load_dataset("linear_jtex", seed=0)


def _exact_phi(data, theta):
    """A linear encoder whose q is the best mean-field Gaussian of p_theta(z|x), one per restart.

    Mean head = the exact posterior-mean map M (E[z|x] = M x); log-variance
    bias = log(1 / P_ii) (docs/theory.md (T.9), (T.11)).
    """
    lg = data.likelihood.exact(theta)
    M, P = lg.posterior_mean_map(), lg.posterior_precision()
    R = M.shape[0]
    phi = data.encoder.init([np.random.default_rng(r) for r in range(R)])
    phi["mean"] = {"W": np.swapaxes(M, -1, -2).copy(), "b": np.zeros((R, 2))}
    phi["logvar"] = {"W": np.zeros((R, 2, 2)), "b": -np.log(np.diagonal(P, axis1=-2, axis2=-1))}
    return phi, lg


def _snis_sd(post_cov, proposal_var):
    """Delta-method sd of the self-normalized IS mean per coordinate, for S = 1.

    For p = N(m, Sigma) and a proposal q = N(m, Lambda) (mean exact), with
    Omega = 2 Sigma^-1 - Lambda^-1 positive definite:
    Var ~ (1/S) E_q[(p/q)^2 (z - m)^2] = (1/S) rho (Omega^-1)_kk,
    rho = |Lambda|^(1/2) |Sigma|^-1 |Omega|^(-1/2) = E_q[(p/q)^2].
    """
    Lam = np.diag(proposal_var)
    Omega = 2 * np.linalg.inv(post_cov) - np.linalg.inv(Lam)
    assert np.all(np.linalg.eigvalsh(Omega) > 0), "weights of infinite variance"
    rho = np.sqrt(np.linalg.det(Lam)) / np.linalg.det(post_cov) / np.sqrt(np.linalg.det(Omega))
    return np.sqrt(rho * np.diag(np.linalg.inv(Omega)))


@pytest.mark.slow
def test_posterior_mean_is_matches_exact_linear_jtex(linear):
    """Two restarts at once (the truth and another A), each against its exact posterior mean.

    inflate = 4 gives finite-variance weights (LinearJTEx's posterior
    correlation is -0.81; the mean-field proposal needs inflate > 2.63), so
    the error of each coordinate is ~ N(0, sd^2 / S) with sd from
    ``_snis_sd``: over 2 x 500 x 2 = 2000 z-scores the largest should stay
    below 4.5 (P(|N(0,1)| > 4.5) * 2000 ~ 0.014) and their RMS near 1.
    """
    other = {"A": np.array([[[1.0, 0.2], [0.9, -1.3]]])}
    theta = tree_stack([linear.truth, other])
    phi, lg = _exact_phi(linear, theta)
    S = 2000
    means, ess = posterior_mean_is_with_ess(linear.likelihood, theta, linear.encoder, phi, linear.test,
                                            np.random.default_rng(3), samples=S, inflate=4.0)
    exact = lg.posterior(linear.test)[0]
    assert means.shape == exact.shape == (2, 500, 2) and ess.shape == (2, 500)
    post_cov = lg.posterior_cov()
    P = lg.posterior_precision()
    zs = []
    for r in range(2):
        sd = _snis_sd(post_cov[r], 4.0 / np.diag(P[r])) / np.sqrt(S)
        zs.append((means[r] - exact[r]) / sd)
    zs = np.array(zs)
    assert np.abs(zs).max() < 4.5, np.abs(zs).max()
    assert 0.8 < np.sqrt(np.mean(zs ** 2)) < 1.2, np.sqrt(np.mean(zs ** 2))
    assert np.all(ess > 0.25 * S)


def test_posterior_mean_is_default_inflation_and_chunks(linear):
    """At the paper's inflate = 2 the weights have infinite variance here, yet the estimate is close.

    Observed RMS error 0.12 posterior sd at S = 2000; the bound 0.3 leaves
    room. Chunking (max_entries) must not change the draws.
    """
    phi, lg = _exact_phi(linear, linear.truth)
    x = linear.test[:200]
    a = posterior_mean_is(linear.likelihood, linear.truth, linear.encoder, phi, x,
                          np.random.default_rng(5), samples=2000)
    b = posterior_mean_is(linear.likelihood, linear.truth, linear.encoder, phi, x,
                          np.random.default_rng(5), samples=2000, max_entries=7 * 200)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    exact = lg.posterior(x)[0]
    sd = np.sqrt(np.diag(lg.posterior_cov()[0]))
    assert np.sqrt(np.mean(((a - exact) / sd) ** 2)) < 0.3


def test_posterior_mean_is_bad_input(linear):
    phi, _ = _exact_phi(linear, linear.truth)
    lik, enc, rng = linear.likelihood, linear.encoder, np.random.default_rng(0)
    with pytest.raises(ValueError, match="x must have shape"):
        posterior_mean_is(lik, linear.truth, enc, phi, np.zeros((3, 3)), rng)
    with pytest.raises(ValueError, match="samples"):
        posterior_mean_is(lik, linear.truth, enc, phi, linear.test, rng, samples=0)
    with pytest.raises(ValueError, match="same number of restarts"):
        posterior_mean_is(lik, tree_stack([linear.truth] * 2), enc, phi, linear.test, rng)
    with pytest.raises(TypeError, match="rng"):
        posterior_mean_is(lik, linear.truth, enc, phi, linear.test, 0)


def _check_png(path, min_bytes=20_000):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > min_bytes, (path, len(data))
    img = matplotlib.image.imread(path)
    h, w = img.shape[:2]
    assert 9 * 110 <= w <= 12 * 110 and 6 * 110 <= h <= 10 * 110, (path, img.shape)
    px = np.round(img[::2, ::2, :3] * 255).astype(np.uint32)
    colours = np.unique(px[..., 0] << 16 | px[..., 1] << 8 | px[..., 2])
    assert colours.size > 200, (path, colours.size)     # coloured scatter, not a blank canvas
    return img.shape


@pytest.mark.slow
def test_make_figures_fits_everything(tmp_path):
    paths = make_figures(tmp_path / "figs", fit_settings=TINY, seed=0, samples=50, ll_samples=50)
    assert sorted(paths) == [f"figure{n}" for n in (2, 3, 4, 5)]
    shapes = {name: _check_png(p) for name, p in paths.items()}
    assert all(Path(p).parent == tmp_path / "figs" for p in paths.values())
    # LiBI figures have the extra column: wider than the VAE ones.
    assert shapes["figure3"][1] > shapes["figure2"][1]
    assert shapes["figure5"][1] > shapes["figure4"][1]


@pytest.mark.slow
def test_given_models_skip_fitting(tmp_path, monkeypatch, linear):
    """A provided VAE (as JSON lists) is drawn without calling the trainer; LiBI is still fitted."""
    calls = []
    real = experiment.make_trainer

    def fake(method, **settings):
        calls.append(method)
        if method == "vae":
            raise AssertionError("the VAE must not be fitted when models provides it")
        return real(method, **settings)

    monkeypatch.setattr(experiment, "make_trainer", fake)
    phi, _ = _exact_phi(linear, linear.truth)
    models = {("linear_jtex", "vae"): tree_to_lists({"theta": linear.truth, "phi": phi})}
    paths = make_figures(tmp_path, models=models, fit_settings=TINY, figures=[2, 3])
    assert sorted(paths) == ["figure2", "figure3"] and calls == ["libi"]
    for p in paths.values():
        _check_png(p)


def test_posterior_figure_uses_given_theta(linear):
    """The bottom-right panel shows the posterior means under the theta passed in."""
    other = {"A": np.array([[[1.0, 0.2], [0.9, -1.3]]])}
    phi, lg = _exact_phi(linear, other)
    fig = posterior_figure(linear, "vae", other, phi, phi, title="t", test_ll=-3.0)
    axes = [ax for ax in fig.axes if ax.collections]
    titles = [ax.get_title() for ax in axes]
    ax = axes[[i for i, t in enumerate(titles) if "under learned" in t][0]]
    offsets = ax.collections[0].get_offsets()
    exact = lg.posterior(linear.test)[0][0]
    assert np.allclose(np.sort(offsets[:, 0]), np.sort(exact[:, 0]))
    assert "t\ntest log-likelihood per point: -3.000" == fig._suptitle.get_text()


def test_bad_input(tmp_path, linear):
    ok = tree_to_lists({"theta": linear.truth, "phi": _exact_phi(linear, linear.truth)[0]})
    with pytest.raises(ValueError, match="unknown dataset 'mobius'"):
        make_figures(tmp_path, models={("mobius", "vae"): ok})
    with pytest.raises(ValueError, match="unknown method 'lagging'"):
        make_figures(tmp_path, models={("linear_jtex", "lagging"): ok})
    with pytest.raises(ValueError, match="lacks \\['varphi'\\]"):
        make_figures(tmp_path, models={("linear_jtex", "libi"): ok})
    with pytest.raises(ValueError, match="unknown fit_settings key 'vea'"):
        make_figures(tmp_path, fit_settings={"vea": {}})
    with pytest.raises(ValueError, match="unknown figure 6"):
        make_figures(tmp_path, figures=[6])
    bad = {"theta": {"A": [[0.75, 0.25], [1.5, -1.0]]}, "phi": ok["phi"]}   # no restart axis
    with pytest.raises(ValueError, match=r"\['theta'\]\['A'\] must have shape \(1, 2, 2\)"):
        make_figures(tmp_path, models={("linear_jtex", "vae"): bad}, figures=[2])
    # Checked before any fit: a bad CubicJTEx entry fails before LinearJTEx is fitted.
    cubic_bad = {"theta": {"A": np.zeros((1, 2, 2))}, "phi": ok["phi"]}     # a linear encoder's phi
    with pytest.raises(ValueError, match=r"models\[\('cubic_jtex', 'vae'\)\]\['phi'\]\['hidden'\] must be a list of 2"):
        make_figures(tmp_path, models={("cubic_jtex", "vae"): cubic_bad})
    with pytest.raises(ValueError, match="test_ll"):
        make_figures(tmp_path, models={("linear_jtex", "vae"): {**ok, "test_ll": "high"}})
    phi = _exact_phi(linear, linear.truth)[0]
    with pytest.raises(ValueError, match="method must be one of"):
        posterior_figure(linear, "beta_vae", linear.truth, phi, phi)
    with pytest.raises(ValueError, match="varphi .* required"):
        posterior_figure(linear, "libi", linear.truth, phi, phi)
    with pytest.raises(ValueError, match="phi_gt must have keys"):
        posterior_figure(linear, "vae", linear.truth, phi, {"mean": phi["mean"]})
    assert set(FIGURES.values()) == {2, 3, 4, 5}


@pytest.mark.slow
def test_no_pyplot(tmp_path):
    """Drawing and saving leave pyplot unimported (Agg canvas on a bare Figure)."""
    import os
    import subprocess
    import sys
    code = ("import sys, numpy as np\n"
            "from training.datasets import load_dataset\n"
            "from training.experiments.figures import posterior_figure\n"
            "d = load_dataset('linear_jtex', n_train=20, n_val=20, n_test=20)\n"
            "phi = d.encoder.init([np.random.default_rng(0)])\n"
            f"posterior_figure(d, 'vae', d.truth, phi, phi, path={str(tmp_path / 'f.png')!r})\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("MPLBACKEND", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root, timeout=120)
    _check_png(tmp_path / "f.png", min_bytes=5_000)
