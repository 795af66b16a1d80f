"""Trainers against the exact landscape of :mod:`analysis`: fitted VAEs reach its global optimum and best posterior."""
import dataclasses

import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_b_landscape, jtex_vae_optimum
from training.datasets import load_dataset
from training.trainers.engine import restart_streams
from training.models import JTEx
from training.models.objectives import neg_elbo
from training.trainers import VAE

TRUE_S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)


@pytest.fixture(scope="module")
def fitted_vae(linear_jtex):
    # 4500 epochs at the paper's lr: the exact ELBO's slow valley (the code
    # scale against W) needs about that many for the best restart.
    return VAE(epochs=4500, restarts=4, seed=0).fit(linear_jtex)


@pytest.mark.slow
def test_vae_reaches_the_exact_global_optimum(linear_jtex, fitted_vae):
    S = linear_jtex.second_moment
    opt = jtex_vae_optimum(S, JTEX_B, JTEX_SIGMA2, restarts=10, seed=1)
    A = fitted_vae.theta_["A"][0]
    rel = np.linalg.norm(A @ A.T - opt.AAt) / np.linalg.norm(opt.AAt)
    assert rel < 0.01
    learned = LinearGaussian.jtex(A, JTEX_B, JTEX_SIGMA2)
    assert abs(float(learned.vae_objective(S)) - opt.objective) < 0.002
    # At the true data distribution: the paper's biased optimum, L = 0.196.
    assert abs(float(learned.vae_objective(TRUE_S)) - 0.196) < 0.01
    # ... far from the truth's L = 0.532 and its data covariance.
    assert np.linalg.norm(A @ A.T - JTEX_A @ JTEX_A.T) / np.linalg.norm(JTEX_A @ JTEX_A.T) > 0.05


@pytest.mark.slow
def test_vae_encoder_is_the_best_mean_field_posterior(linear_jtex, fitted_vae):
    A = fitted_vae.theta_["A"][0]
    exact = LinearGaussian.jtex(A, JTEX_B, JTEX_SIGMA2)
    mu, logvar = linear_jtex.encoder(fitted_vae.phi_, linear_jtex.test)
    post_mean, _ = exact.posterior(linear_jtex.test)
    scale = np.sqrt(np.mean(post_mean**2))
    assert np.sqrt(np.mean((mu[0] - post_mean) ** 2)) < 0.02 * scale
    np.testing.assert_allclose(np.exp(logvar[0]), np.broadcast_to(exact.mean_field_variances(), (500, 2)),
                               rtol=0.05)


@pytest.mark.slow
def test_univariate_vae_learns_a_valid_theta_and_the_exact_posterior():
    sigma2 = 1.0
    data = load_dataset("univariate", seed=0, theta=0.5, sigma2=sigma2)
    vae = VAE(epochs=1500, restarts=3, seed=0).fit(data)
    for r in range(3):
        params = {"u": vae.params_["theta"]["u"][r:r + 1]}
        theta = float(data.likelihood.theta(params)[0])
        assert abs(theta) < np.sqrt(sigma2)
        phi = {k: v for k, v in vae.params_["phi"].items()}
        phi = {"hidden": [], "mean": {k: v[r:r + 1] for k, v in phi["mean"].items()},
               "logvar": {k: v[r:r + 1] for k, v in phi["logvar"].items()}}
        mu, logvar = data.encoder(phi, data.test)
        exact = LinearGaussian.univariate(theta, sigma2)
        post_mean, post_cov = exact.posterior(data.test)
        np.testing.assert_allclose(mu[0], post_mean, atol=0.02)
        np.testing.assert_allclose(np.exp(logvar[0]), float(post_cov[0, 0]), rtol=0.05)


@pytest.mark.slow
def test_learning_b_ends_in_the_corner_the_landscape_predicts(linear_jtex):
    data = dataclasses.replace(linear_jtex, likelihood=JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="b"))
    # b = sigma2 * sigmoid(u) approaches the boundary slowly: a larger step.
    vae = VAE(epochs=2500, restarts=3, seed=0, lr=0.05).fit(data)
    b = np.asarray(data.likelihood.b_of(vae.theta_))[0]
    grid = np.linspace(0, JTEX_SIGMA2, 51)[:-1]
    land = jtex_b_landscape(JTEX_A, JTEX_SIGMA2, grid, grid, data_cov=linear_jtex.second_moment)
    i, j = land["argmin"]
    assert (i, j) == (len(grid) - 1, 0)          # large B11, small B22
    assert b[0] > 0.9 * JTEX_SIGMA2 and b[1] < 0.1 * JTEX_SIGMA2
    learned = float(LinearGaussian.jtex(JTEX_A, b, JTEX_SIGMA2).vae_objective(linear_jtex.second_moment))
    assert np.mean(land["vae_objective"] < learned) < 0.01


@pytest.mark.parametrize("name", ["linear_jtex", "gaussian", "univariate"])
def test_monte_carlo_elbo_agrees_with_the_exact_elbo(name):
    data = load_dataset(name, seed=1)
    lik, enc = data.likelihood, data.encoder
    streams = restart_streams(0, 3)
    theta = lik.init([s[0] for s in streams])
    phi = enc.init([s[0] for s in streams])
    phi["logvar"]["b"] = phi["logvar"]["b"] - 3.0
    X = data.train[:100]
    mu, logvar = enc(phi, X)
    exact = neg_elbo(lik, theta, mu, logvar, X)
    rng = np.random.default_rng(0)
    draws = np.stack([neg_elbo(lik, theta, mu, logvar, X, eps=rng.standard_normal((3, 1, 100, lik.latent_dim)))
                      for _ in range(400)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 4 * se + 1e-12)


@pytest.mark.slow
def test_vae_with_the_stopping_rule_stops_at_the_exact_optimum(linear_jtex):
    """Every restart stops by the rule well before the budget, at the exact optimum."""
    vae = VAE(epochs=20000, restarts=2, seed=0, patience=200, tol=1e-4).fit(linear_jtex)
    assert vae.converged_.all() and (vae.epochs_run_ < 12000).all()
    opt = jtex_vae_optimum(linear_jtex.second_moment, JTEX_B, JTEX_SIGMA2, restarts=3, seed=1)
    A = vae.theta_["A"][0]
    assert np.linalg.norm(A @ A.T - opt.AAt) / np.linalg.norm(opt.AAt) < 0.01
