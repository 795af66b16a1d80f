"""analysis.testing: the assertions pass at the optimum and fail 5 % away from it.

The optima are recomputed here from the closed forms (probabilistic PCA by an
SVD, the fixed-noise MLE by scipy's generalized eigenproblem) and the
encoder from the textbook formulas of ``conftest.py``.
"""
import numpy as np
import pytest
import scipy.linalg

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, linear_vae_optimum, mean_field_rotation
from analysis.testing import assert_mle, assert_posterior_exact, assert_vae_optimum

from .conftest import _closed_forms


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    W = rng.standard_normal((4, 2))
    X = rng.standard_normal((300, 2)) @ W.T + 0.5 * rng.standard_normal((300, 4))
    return X.T @ X / 300


def _ppca(S, K):
    U, lam, _ = np.linalg.svd(S)
    sigma2 = lam[K:].mean()
    return U[:, :K] * np.sqrt(lam[:K] - sigma2), sigma2 * np.eye(S.shape[0])


def _fixed(S, K, Psi):
    lam, V = scipy.linalg.eigh(S, Psi)
    lam, V = lam[::-1], V[:, ::-1]
    return Psi @ V[:, :K] * np.sqrt(np.clip(lam[:K] - 1, 0, None)), Psi


def _optimum(S, noise):
    if noise == "isotropic":
        return _ppca(S, 2)
    if noise == "fixed":
        return _fixed(S, 2, 0.3 * np.eye(4) + 0.05)
    opt = linear_vae_optimum(S, 2, noise="diagonal", restarts=2, seed=0)
    return opt.W, opt.noise_cov


@pytest.mark.parametrize("noise", ["fixed", "isotropic", "diagonal"])
@pytest.mark.slow
def test_vae_optimum_and_mle_pass_at_the_optimum_and_fail_5_percent_away(data, noise):
    W, Psi = _optimum(data, noise)
    ref = assert_vae_optimum(W, Psi, data, noise=noise, restarts=2)
    assert abs(ref.objective - LinearGaussian(W, Psi).vae_objective(data)) < 1e-6
    assert_mle(W, Psi, data, noise=noise, restarts=2)
    # A rotation of W keeps the likelihood (assert_mle passes) but not the VAE optimum.
    R = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
    assert_mle(W @ R, Psi, data, noise=noise, restarts=2)
    with pytest.raises(AssertionError, match="mean-field KL"):
        assert_vae_optimum(W @ R, Psi, data, noise=noise, restarts=2)
    perturbed = [(1.05 * W, Psi), (0.95 * W, Psi)]
    if noise != "fixed":                    # a fixed noise is not the model's to move
        perturbed.append((W, 1.05 * Psi))
    for W_bad, Psi_bad in perturbed:
        with pytest.raises(AssertionError, match="not at the exact VAE optimum") as err:
            assert_vae_optimum(W_bad, Psi_bad, data, noise=noise, restarts=2)
        message = str(err.value)
        assert "MLE term" in message and "mean-field KL" in message and "optimum W" in message
        with pytest.raises(AssertionError, match="not the maximum-likelihood fit"):
            assert_mle(W_bad, Psi_bad, data, noise=noise, restarts=2)


def test_vae_optimum_message_splits_the_gap(data):
    W, Psi = _ppca(data, 2)
    bad = 1.05 * W
    with pytest.raises(AssertionError) as err:
        assert_vae_optimum(bad, Psi, data, noise="isotropic", restarts=2)
    model, best = LinearGaussian(bad, Psi), LinearGaussian(W, Psi)
    gap = model.mle_term(data) - best.mle_term(data)
    assert f"gap {gap:.3g}" in str(err.value)               # the MLE part; the mean-field part is 0 here
    assert f"{float(model.mle_term(data)):.8g}" in str(err.value)


def test_posterior_assertion(data):
    W, Psi = _ppca(data, 2)
    ref = _closed_forms(W, Psi)
    M, v = assert_posterior_exact(W, Psi, ref["M"], ref["mf_var"], exact=True)
    np.testing.assert_allclose(M, ref["M"], rtol=1e-10)
    for M_bad, v_bad, what in [(1.05 * ref["M"], ref["mf_var"], "mean map"),
                               (0.95 * ref["M"], ref["mf_var"], "mean map"),
                               (ref["M"], 1.05 * ref["mf_var"], "variances"),
                               (ref["M"], ref["post_cov"].diagonal(), None)]:
        if what is None:                    # PPCA's posterior is diagonal: its variances are q's
            assert_posterior_exact(W, Psi, M_bad, v_bad, exact=True)
            continue
        with pytest.raises(AssertionError, match=what):
            assert_posterior_exact(W, Psi, M_bad, v_bad)


def test_posterior_assertion_exact_needs_a_diagonal_posterior():
    """At the JTEx truth q can be the best mean-field one, never the exact posterior."""
    truth = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    W, Psi = truth.W, truth.noise_cov
    ref = _closed_forms(W, Psi)
    assert_posterior_exact(W, Psi, ref["M"], ref["mf_var"])            # the best mean-field q
    with pytest.raises(AssertionError, match="not diagonal"):
        assert_posterior_exact(W, Psi, ref["M"], ref["mf_var"], exact=True)
    # The exact posterior's marginal variances are not q's (q is narrower).
    assert np.all(ref["post_cov"].diagonal() > 1.05 * ref["mf_var"])
    WR = W @ mean_field_rotation(W, Psi)
    rot = _closed_forms(WR, Psi)
    assert_posterior_exact(WR, Psi, rot["M"], rot["post_cov"].diagonal(), exact=True)


@pytest.mark.parametrize("call, err, name", [
    (lambda W, P, S: assert_vae_optimum(W, P + 0.01 * np.diag([1, 0, 0, 0]), S, noise="isotropic"),
     ValueError, "sigma2 \\* I"),
    (lambda W, P, S: assert_vae_optimum(W, P + 0.01, S, noise="diagonal"), ValueError, "diagonal"),
    (lambda W, P, S: assert_vae_optimum(W, P, S, noise="learned"), ValueError, "noise"),
    (lambda W, P, S: assert_vae_optimum(W, P, S[:3, :3]), ValueError, "data_cov"),
    (lambda W, P, S: assert_vae_optimum(W[None], P, S), ValueError, "W"),
    (lambda W, P, S: assert_vae_optimum(W, P, S, atol=-1.0), ValueError, "atol"),
    (lambda W, P, S: assert_mle(W, P, S, atol="x"), TypeError, "atol"),
    (lambda W, P, S: assert_posterior_exact(W, P, np.zeros((4, 2)), np.ones(2)), ValueError, "mean_map"),
    (lambda W, P, S: assert_posterior_exact(W, P, np.zeros((2, 4)), np.ones(3)), ValueError, "variances"),
    (lambda W, P, S: assert_posterior_exact(W, P, np.zeros((2, 4)), np.ones(2), rtol=-1), ValueError, "rtol"),
])
def test_bad_arguments(data, call, err, name):
    W, Psi = _ppca(data, 2)
    with pytest.raises(err, match=name):
        call(W, Psi, data)
