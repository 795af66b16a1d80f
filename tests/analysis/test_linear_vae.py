"""General linear VAEs (analysis.linear_vae) against independent derivations.

References: the textbook formulas of ``conftest.py`` (explicit inverses),
probabilistic PCA from an SVD, the fixed-noise MLE from scipy's generalized
eigenproblem, and numeric searches over W (and the log noise variances)
with finite-difference BFGS on the reference objective.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from analysis import (JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, VAEOptimum, fixed_noise_mle,
                      linear_vae_objective, linear_vae_optimum, mean_field_rotation,
                      ppca_mle)

from .conftest import _closed_forms, _gauss_kl


def _reference_objective(W, Psi, S):
    return _gauss_kl(S, W @ W.T + Psi) + _closed_forms(W, Psi)["mf_kl"]


def _sample_cov(rng, D, K, n=400, diagonal=True):
    """X^T X / N of n draws from a random factor model (so no model fits it exactly)."""
    W = rng.standard_normal((D, K))
    psi = rng.uniform(0.2, 1.0, D) if diagonal else np.full(D, 0.5)
    X = rng.standard_normal((n, K)) @ W.T + rng.standard_normal((n, D)) * np.sqrt(psi)
    return X.T @ X / n


def _search(S, K, noise, rng, starts=4):
    """Independent multi-start BFGS (finite differences) on the reference objective."""
    D = S.shape[0]
    n_noise = {"isotropic": 1, "diagonal": D}.get(noise, 0) if isinstance(noise, str) else 0

    def unpack(p):
        W = p[:D * K].reshape(D, K)
        if n_noise == 0:
            return W, noise
        return W, np.diag(np.exp(p[D * K:]) * np.ones(D))

    def f(p):
        W, Psi = unpack(p)
        return _reference_objective(W, Psi, S)

    best = None
    for _ in range(starts):
        p0 = np.concatenate([rng.standard_normal(D * K), np.log(rng.uniform(0.2, 1.0, n_noise))])
        r = scipy.optimize.minimize(f, p0, method="BFGS", options={"gtol": 1e-10})
        if best is None or r.fun < best.fun:
            best = r
    return best.fun, unpack(best.x)


# ---- the objective and its gradient --------------------------------------------------------

@pytest.mark.parametrize("noise", ["fixed", "isotropic", "diagonal"])
def test_objective_and_gradient_match_the_reference(noise, random_pd):
    rng = np.random.default_rng(3)
    D, K = 4, 2
    S = random_pd(rng, D)
    Psi_fixed = random_pd(rng, D)
    arg = Psi_fixed if noise == "fixed" else noise
    n_noise = {"fixed": 0, "isotropic": 1, "diagonal": D}[noise]
    p = np.concatenate([rng.standard_normal(D * K), rng.uniform(-1.0, 0.0, n_noise)])
    value, grad = linear_vae_objective(p, S, K, arg)
    W = p[:D * K].reshape(D, K)
    Psi = Psi_fixed if noise == "fixed" else np.diag(np.exp(p[D * K:]) * np.ones(D))
    np.testing.assert_allclose(value, _reference_objective(W, Psi, S), rtol=1e-11)
    h = 1e-6
    numeric = np.array([(linear_vae_objective(p + h * e, S, K, arg)[0]
                         - linear_vae_objective(p - h * e, S, K, arg)[0]) / (2 * h)
                        for e in np.eye(p.size)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# ---- the rotation --------------------------------------------------------------------------

def test_mean_field_rotation_diagonalizes_the_posterior_and_keeps_p_x(random_pd):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((2, 5, 3))          # a batch of two models
    Psi = np.stack([random_pd(rng, 5), np.diag(rng.uniform(0.1, 1.0, 5))])
    R = mean_field_rotation(W, Psi)
    assert R.shape == (2, 3, 3)
    for b in range(2):
        np.testing.assert_allclose(R[b].T @ R[b], np.eye(3), atol=1e-12)
        before, after = _closed_forms(W[b], Psi[b]), _closed_forms(W[b] @ R[b], Psi[b])
        assert before["mf_kl"] > 1e-3                      # a random W has a correlated posterior
        assert abs(after["mf_kl"]) < 1e-12
        P = after["P"]
        np.testing.assert_allclose(P - np.diag(np.diag(P)), 0.0, atol=1e-10 * np.abs(P).max())
        assert np.all(np.diff(np.diag(P)) <= 0)            # decreasing precision
        np.testing.assert_allclose(after["C"], before["C"], rtol=1e-12)


# ---- isotropic noise: probabilistic PCA ----------------------------------------------------

@pytest.mark.parametrize("D, K", [(3, 1), (4, 2), pytest.param(5, 3, marks=pytest.mark.slow)])
def test_isotropic_optimum_is_ppca_and_the_numeric_search(D, K):
    rng = np.random.default_rng(10 + D)
    S = _sample_cov(rng, D, K)
    # Tipping & Bishop 1999 from an SVD of S (not eigh): sigma2 the mean discarded eigenvalue.
    U, lam, _ = np.linalg.svd(S)
    sigma2 = lam[K:].mean()
    C_ppca = (U[:, :K] * (lam[:K] - sigma2)) @ U[:, :K].T + sigma2 * np.eye(D)
    opt = linear_vae_optimum(S, K, noise="isotropic", restarts=3, seed=0)
    assert opt.noise == "isotropic" and opt.A is None
    np.testing.assert_allclose(opt.noise_cov, sigma2 * np.eye(D), rtol=1e-10)
    np.testing.assert_allclose(opt.W @ opt.W.T + opt.noise_cov, C_ppca, atol=1e-10)
    np.testing.assert_allclose(opt.objective, _gauss_kl(S, C_ppca), atol=1e-10)
    assert abs(opt.mean_field_kl) < 1e-12                  # orthogonal columns: diagonal posterior
    assert opt.mle_term_at_mle == opt.mle_term
    np.testing.assert_allclose(np.abs(opt.rotation), np.eye(K), atol=1e-8)
    assert opt.n_agree == 4                                # every start reaches it
    W_closed, s2_closed = ppca_mle(S, K)
    np.testing.assert_allclose(s2_closed, sigma2, rtol=1e-12)
    # An independent numeric search reaches the same value, not lower.
    found, (W, Psi) = _search(S, K, "isotropic", rng)
    assert abs(found - opt.objective) < 1e-6
    np.testing.assert_allclose(Psi, opt.noise_cov, atol=1e-4)


# ---- the contrast with JTEx ----------------------------------------------------------------

def test_free_W_reaches_the_mle_where_jtex_is_biased(jtex_optimum):
    """Same data (the LinearJTEx truth), same noise 0.004 I: a free W reaches the MLE, JTEx does not."""
    S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    Psi = JTEX_SIGMA2 * np.eye(2) - np.diag(JTEX_B)
    np.testing.assert_allclose(Psi, 0.004 * np.eye(2))
    free = linear_vae_optimum(S, 2, noise=Psi, restarts=3, seed=0)
    assert free.objective < 1e-8 and abs(free.mean_field_kl) < 1e-12 and abs(free.mle_term) < 1e-8
    np.testing.assert_allclose(free.W @ free.W.T + Psi, S, atol=1e-12)      # p(x) is the data's
    assert free.n_agree == 4
    jtex = jtex_optimum
    assert abs(jtex.objective - 0.19618) < 5e-5
    assert jtex.objective - jtex.mle_term_at_mle > 0.19     # the triangular family's price
    # Why: the truth's W = chol(A A^T + B) has a correlated posterior, and the rotation that would
    # remove it breaks the triangular form.
    truth = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    W = truth.W[...]
    R = mean_field_rotation(W, Psi)
    ref = _closed_forms(W @ R, Psi)
    assert abs(ref["mf_kl"]) < 1e-12 and _closed_forms(W, Psi)["mf_kl"] > 0.5
    np.testing.assert_allclose(ref["C"], S, atol=1e-12)
    assert abs((W @ R)[0, 1]) > 0.1                        # not lower triangular
    WR = jtex.W @ jtex.rotation                             # the same at the JTEx optimum
    assert abs(_closed_forms(WR, jtex.noise_cov)["mf_kl"]) < 1e-12 and abs(WR[0, 1]) > 0.1
    np.testing.assert_allclose(jtex.W, np.linalg.cholesky(jtex.AAt + np.diag(JTEX_B)), rtol=1e-12)


# ---- fixed and diagonal noise against independent searches ----------------------------------

@pytest.mark.parametrize("D, K", [(3, 1), pytest.param(4, 2, marks=pytest.mark.slow),
                                  pytest.param(5, 3, marks=pytest.mark.slow), (3, 3)])
def test_fixed_noise_optimum(D, K, random_pd):
    rng = np.random.default_rng(20 + D + K)
    S = _sample_cov(rng, D, K)
    Psi = random_pd(rng, D, floor=0.1) * 0.4
    opt = linear_vae_optimum(S, K, noise=Psi, restarts=3, seed=1)
    assert opt.noise == "fixed"
    np.testing.assert_array_equal(opt.noise_cov, Psi)
    assert abs(opt.mean_field_kl) < 1e-12 and opt.n_agree == 4
    # Closed form from the generalized eigenproblem S v = lambda Psi v (v^T Psi v = 1).
    lam, V = scipy.linalg.eigh(S, Psi)
    lam, V = lam[::-1], V[:, ::-1]
    Wg = Psi @ V[:, :K] * np.sqrt(np.clip(lam[:K] - 1, 0, None))
    np.testing.assert_allclose(opt.W @ opt.W.T, Wg @ Wg.T, atol=1e-9)
    np.testing.assert_allclose(opt.objective, _reference_objective(Wg, Psi, S), atol=1e-10)
    found, _ = _search(S, K, Psi, rng)
    assert abs(found - opt.objective) < 1e-6
    np.testing.assert_allclose(fixed_noise_mle(S, K, Psi)[2], opt.objective, atol=1e-12)


@pytest.mark.parametrize("D, K", [(3, 1), pytest.param(4, 1, marks=pytest.mark.slow),
                                  pytest.param(5, 2, marks=pytest.mark.slow)])
def test_diagonal_noise_optimum(D, K):
    rng = np.random.default_rng(30 + D)
    S = _sample_cov(rng, D, K, n=300)
    opt = linear_vae_optimum(S, K, noise="diagonal", restarts=3, seed=2)
    assert opt.noise == "diagonal" and opt.n_agree >= 3
    Psi = opt.noise_cov
    np.testing.assert_array_equal(Psi, np.diag(np.diag(Psi)))
    assert abs(opt.mean_field_kl) < 1e-12
    # The factor-analysis MLE fits the data's variances exactly (a stationarity condition in psi).
    np.testing.assert_allclose(np.diag(opt.W @ opt.W.T + Psi), np.diag(S), rtol=1e-6)
    found, (W, Psi_search) = _search(S, K, "diagonal", rng)
    assert abs(found - opt.objective) < 1e-6
    np.testing.assert_allclose(W @ W.T + Psi_search, opt.W @ opt.W.T + Psi, atol=1e-3)
    # Below the isotropic optimum: the family is larger.
    assert opt.objective < linear_vae_optimum(S, K, noise="isotropic", restarts=1).objective


def test_result_type_and_seed():
    rng = np.random.default_rng(5)
    S = _sample_cov(rng, 4, 1)
    a = linear_vae_optimum(S, 1, noise="diagonal", restarts=2, seed=7)
    b = linear_vae_optimum(S, 1, noise="diagonal", restarts=2, seed=np.random.default_rng(7))
    assert isinstance(a, VAEOptimum)
    np.testing.assert_array_equal(a.minima, b.minima)
    with pytest.raises(AttributeError, match="JTEx"):
        a.AAt
    np.testing.assert_allclose(a.model.vae_objective(S), a.objective, rtol=1e-12)


@pytest.mark.parametrize("kwargs, err, name", [
    (dict(noise="spherical"), ValueError, "noise"),
    (dict(noise=np.eye(2)), ValueError, "noise"),
    (dict(noise=-np.eye(3)), ValueError, "noise"),
    (dict(K=3), ValueError, "K"),
    (dict(K=0), ValueError, "K"),
    (dict(K=1.5), TypeError, "K"),
    (dict(noise=np.eye(3), K=4), ValueError, "K"),
    (dict(restarts=0), ValueError, "restarts"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(data_cov=-np.eye(3)), ValueError, "data_cov"),
    (dict(data_cov=np.ones((3, 2))), ValueError, "data_cov"),
    (dict(data_cov=[[1.0, np.nan], [np.nan, 1.0]]), ValueError, "data_cov"),
])
def test_bad_arguments(kwargs, err, name):
    args = dict(data_cov=np.diag([3.0, 2.0, 1.0]), K=1, noise="isotropic")
    args.update(kwargs)
    with pytest.raises(err, match=name):
        linear_vae_optimum(**args)


@pytest.mark.parametrize("call, err, name", [
    (lambda: ppca_mle(np.eye(1), 1), ValueError, "data_cov"),
    (lambda: ppca_mle(np.eye(3), 3), ValueError, "K"),
    (lambda: fixed_noise_mle(np.eye(3), 1, np.eye(2)), ValueError, "noise_cov"),
    (lambda: fixed_noise_mle(np.eye(3), 4, np.eye(3)), ValueError, "K"),
    (lambda: mean_field_rotation(np.ones((3, 2)), np.eye(2)), ValueError, "noise_cov"),
])
def test_bad_closed_form_arguments(call, err, name):
    with pytest.raises(err, match=name):
        call()
