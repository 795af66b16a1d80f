"""training.evaluate.quadrature: deterministic log p_theta(x) against exact, Monte Carlo and dense-grid references."""
import autograd.numpy as anp
import numpy as np
import pytest
from scipy.special import logsumexp

from training.evaluate import quadrature
from training.datasets import load_dataset
from training.evaluate import exact_log_likelihood
from training.models.likelihoods import gaussian_log_density, Likelihood, LinearMap
from training.evaluate.quadrature import log_likelihood_quadrature, log_likelihood_quadrature_with_error


def _perturbed(theta, rng, scale):
    """theta and a copy with N(0, scale^2) added to every leaf, stacked as R = 2 restarts."""
    if isinstance(theta, dict):
        return {k: _perturbed(v, rng, scale) for k, v in theta.items()}
    if isinstance(theta, list):
        return [_perturbed(v, rng, scale) for v in theta]
    return np.concatenate([theta, theta + scale * rng.standard_normal(theta.shape)])


@pytest.mark.parametrize("name", ["linear_jtex", "gaussian", "univariate"])
def test_linear_models_match_exact(name):
    d = load_dataset(name, seed=0)
    theta = _perturbed(d.truth, np.random.default_rng(1), 0.3)
    x = d.test[:100]
    res = log_likelihood_quadrature_with_error(d.likelihood, theta, x)
    exact = exact_log_likelihood(d.likelihood, theta, x)
    assert res.log_likelihood.shape == (2, 100)
    # 1e-6 absolute; plus 1e-9 relative for the perturbed Gaussian model (noise 1e-6, log p ~ -1e5),
    # where the float64 closed form itself is off by that much (checked against mpmath: the
    # quadrature agreed to all digits)
    assert np.all(np.abs(res.log_likelihood - exact) <= 1e-6 + 1e-9 * np.abs(exact))
    assert np.max(np.abs(res.log_likelihood - exact)[np.abs(exact) < 1e3]) < 1e-6
    assert res.converged.all()


def _prior_monte_carlo(likelihood, theta, x, draws, rng, chunk=8):
    """log mean_s p(x | z_s), z_s ~ N(0, I), with its delta-method SE and ESS: each (R, N)."""
    psi = np.asarray(likelihood.noise(theta))
    R = psi.shape[0]
    z = rng.standard_normal((R, draws, likelihood.latent_dim))
    f = np.asarray(likelihood.mean(theta, z))[:, None]                    # (R, 1, S, D)
    ipsi = (1.0 / psi)[:, None, None, :]
    const = -0.5 * np.sum(np.log(2 * np.pi * psi), axis=-1)[:, None]
    est, se, ess = (np.empty((R, len(x))) for _ in range(3))
    for a in range(0, len(x), chunk):
        r = x[None, a:a + chunk, None, :] - f                                # (R, n, S, D)
        log_w = -0.5 * np.sum(r * r * ipsi, axis=-1)
        top = log_w.max(axis=-1, keepdims=True)
        w = np.exp(log_w - top)
        m1, m2 = w.mean(axis=-1), np.mean(w * w, axis=-1)
        est[:, a:a + chunk] = np.log(m1) + top[..., 0] + const
        se[:, a:a + chunk] = np.sqrt(np.maximum(m2 - m1 * m1, 0.0) / draws) / m1
        ess[:, a:a + chunk] = draws * m1 * m1 / m2
    return est, se, ess


@pytest.mark.parametrize("name, draws, scale", [("cubic_jtex", 200_000, 0.05), ("mobius", 600_000, 0.02)])
@pytest.mark.slow
def test_nonlinear_models_match_prior_monte_carlo(name, draws, scale):
    d = load_dataset(name, seed=0)
    theta = _perturbed(d.truth, np.random.default_rng(2), scale)
    # Mobius posteriors are narrow (noise 1e-5): prior sampling is only reliable for codes near 0
    order = np.argsort(np.sum(d.z_test ** 2, axis=1))
    x = d.test[order[:30]] if name == "mobius" else d.test[:40]
    res = log_likelihood_quadrature_with_error(d.likelihood, theta, x)
    assert res.converged.all() and np.all(np.isfinite(res.log_likelihood))
    est, se, ess = _prior_monte_carlo(d.likelihood, theta, x, draws, np.random.default_rng(3))
    reliable = ess > 1000
    assert reliable.sum() >= 10
    z = (res.log_likelihood - est)[reliable] / se[reliable]
    # 4 SE per point (about 80 comparisons) and no bias on average
    assert np.max(np.abs(z)) < 4.0, z
    assert np.sqrt(np.mean(z * z)) < 1.5, z


class _Fold1D(Likelihood):
    """x = (z - 0.3)^2 + eps: two modes z = 0.3 +- sqrt(x) of different prior weight."""
    latent_dim = data_dim = 1

    def mean(self, theta, z):
        return (z - 0.3) ** 2 + 0.0 * theta["a"][:, None, None]

    def noise(self, theta):
        return anp.full((theta["a"].shape[0], 1), 0.05)


class _Fold2D(Likelihood):
    """x = ((z1 - 0.2)^2 + 0.3 z2, z2) + eps: a fold along z1 = 0.2, two modes per point."""
    latent_dim = data_dim = 2

    def mean(self, theta, z):
        z1, z2 = z[..., :1], z[..., 1:]
        return anp.concatenate([(z1 - 0.2) ** 2 + 0.3 * z2, z2], axis=-1) + 0.0 * theta["a"][:, None, None]

    def noise(self, theta):
        return anp.array([[0.02, 0.01]]) + anp.zeros((theta["a"].shape[0], 1))


def _grid_reference(likelihood, theta, x, half_width, nodes):
    """log integral of p(x | z) N(z; 0, I) by the trapezoid rule on a dense grid (one restart)."""
    K = likelihood.latent_dim
    t = np.linspace(-half_width, half_width, nodes)
    Z = np.stack(np.meshgrid(*[t] * K, indexing="ij"), axis=-1).reshape(1, -1, K)
    f = np.asarray(likelihood.mean(theta, Z))
    psi = np.asarray(likelihood.noise(theta))[:, None, :]
    out = []
    for xn in x:
        g = np.asarray(gaussian_log_density(xn, f, psi))[0] - 0.5 * np.sum(Z[0] ** 2 + np.log(2 * np.pi), axis=-1)
        out.append(logsumexp(g) + K * np.log(t[1] - t[0]))
    return np.array(out)


@pytest.mark.parametrize("lik, x, half_width, nodes", [
    (_Fold1D(), [[0.8], [1.5], [2.5]], 12.0, 240_001),
    pytest.param(_Fold2D(), [[1.2, 0.5], [2.0, -0.3], [0.9, 1.0]], 5.0, 2001, marks=pytest.mark.slow),
])
def test_bimodal_counts_both_modes_once(lik, x, half_width, nodes):
    theta = {"a": np.zeros(1)}
    x = np.array(x)
    # modes far apart relative to their widths need fine boxes: 256 nodes per dimension
    res = log_likelihood_quadrature_with_error(lik, theta, x, max_order=256)
    assert res.converged.all()
    ipsi = (1.0 / np.asarray(lik.noise(theta)))[:, None, :]
    assert np.all(quadrature._modes(lik, theta, x, ipsi)[3] == 2)          # both modes found
    ref = _grid_reference(lik, theta, x, half_width, nodes)
    assert np.max(np.abs(res.log_likelihood[0] - ref)) < 1e-6


def test_error_estimates_and_flags():
    d = load_dataset("cubic_jtex", seed=1)
    x = d.test[:30]
    res = log_likelihood_quadrature_with_error(d.likelihood, d.truth, x, tol=1e-8)
    assert np.all(np.isfinite(res.log_likelihood))
    assert np.all(res.error[res.converged] <= 1e-8)
    assert res.order.dtype.kind == "i" and res.converged.dtype == bool
    # too small a rule: unconverged points are flagged, with their last change as error
    coarse = log_likelihood_quadrature_with_error(d.likelihood, d.truth, x, tol=1e-12, max_order=16)
    assert np.all(np.isfinite(coarse.log_likelihood))
    assert np.all(coarse.error[~coarse.converged] > 1e-12)
    assert np.all(coarse.order <= 16)
    plain = log_likelihood_quadrature(d.likelihood, d.truth, x, tol=1e-8)
    np.testing.assert_array_equal(plain, res.log_likelihood)


def test_argument_checks():
    d = load_dataset("linear_jtex", seed=0)
    lik, theta, x = d.likelihood, d.truth, d.test[:3]
    big = LinearMap(3, 4, 0.1)
    with pytest.raises(ValueError, match="likelihood"):
        log_likelihood_quadrature(big, {"A": np.ones((1, 3, 4))}, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="likelihood"):
        log_likelihood_quadrature("linear", theta, x)
    for bad in (0.0, -1e-6):
        with pytest.raises(ValueError, match="tol"):
            log_likelihood_quadrature(lik, theta, x, tol=bad)
    with pytest.raises(ValueError, match="tol"):
        log_likelihood_quadrature(lik, theta, x, tol=float("nan"))
    with pytest.raises(ValueError, match="x"):
        log_likelihood_quadrature(lik, theta, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x"):
        log_likelihood_quadrature(lik, theta, [[np.inf, 0.0]])
    with pytest.raises(ValueError, match="max_order"):
        log_likelihood_quadrature(lik, theta, x, max_order=8)
    with pytest.raises(TypeError, match="max_order"):
        log_likelihood_quadrature(lik, theta, x, max_order=32.0)


def test_the_work_bound_stops_refinement_and_flags_the_points_left():
    d = load_dataset("cubic_jtex", seed=0)
    x = d.test[:60]
    full = log_likelihood_quadrature_with_error(d.likelihood, d.truth, x)
    bounded = log_likelihood_quadrature_with_error(d.likelihood, d.truth, x, max_evaluations=1)
    assert full.converged.all() and full.order.max() > 12
    assert bounded.order.max() == 12                      # two rules, then no finer one is started
    assert (~bounded.converged).any() and np.isfinite(bounded.log_likelihood).all()
    assert np.array_equal(bounded.converged, bounded.error <= 1e-6)


def test_the_error_twin_matches_the_values_and_the_old_flag_still_works():
    d = load_dataset("cubic_jtex", seed=0)
    x = d.test[:8]
    res = log_likelihood_quadrature_with_error(d.likelihood, d.truth, x, max_order=24)
    assert isinstance(res, quadrature.QuadratureResult) and res.order.shape == (1, 8)
    np.testing.assert_array_equal(res.log_likelihood, log_likelihood_quadrature(d.likelihood, d.truth, x, max_order=24))
    with pytest.warns(DeprecationWarning, match="log_likelihood_quadrature_with_error"):
        old = log_likelihood_quadrature(d.likelihood, d.truth, x, max_order=24, return_error=True)
    for a, b in zip(old, res):
        np.testing.assert_array_equal(a, b)
