"""training.models.objectives: exact and Monte Carlo negative ELBOs and the KL to the prior."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads
from scipy.stats import multivariate_normal

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian
from training.trainers.engine import restart_streams
from training.models import JTEx, LinearMap, MLPLikelihood, Univariate
from training.models.objectives import expected_reconstruction_exact, kl_to_prior, neg_elbo

R, N = 2, 6


class FixedLinear:
    """A linear-Gaussian likelihood whose parameters are (W, psi) themselves."""

    def loading(self, theta):
        return theta[0]

    def noise(self, theta):
        return theta[1]


def _exact_terms(W, psi, mu, logvar, x):
    """-E_q log p(x | z) per point for x = W z + eps (training.models.objectives.expected_reconstruction_exact)."""
    return expected_reconstruction_exact(FixedLinear(), (W, psi), mu, logvar, x)


def _args(D=3, K=2, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((R, D, K))
    psi = 0.5 + rng.random((R, D))
    mu = rng.standard_normal((R, N, K))
    logvar = 0.5 * rng.standard_normal((R, N, K))
    x = rng.standard_normal((N, D))
    return W, psi, mu, logvar, x


@pytest.mark.parametrize("argnum", [0, 1, 2, 3, (0, 1, 2, 3), (1, 3)])
def test_exact_terms_gradient(argnum):
    check_grads(_exact_terms, argnum, modes=["rev"], order=1)(*_args())


def test_exact_terms_gradient_univariate_shapes():
    check_grads(_exact_terms, (0, 1, 2, 3), modes=["rev"], order=1)(*_args(D=1, K=1, seed=1))


def _reference_terms(W, psi, mu, logvar, x):
    """-E_q log N(x; W z, diag psi) with full matrices, one point at a time."""
    out = np.empty(mu.shape[:2])
    D = x.shape[1]
    for r in range(W.shape[0]):
        Psi = np.diag(psi[r])
        Pinv = np.linalg.inv(Psi)
        for n in range(mu.shape[1]):
            V = np.diag(np.exp(logvar[r, n]))
            e = x[n] - W[r] @ mu[r, n]
            out[r, n] = 0.5 * (D * np.log(2 * np.pi) + np.linalg.slogdet(Psi)[1] + e @ Pinv @ e
                               + np.trace(Pinv @ W[r] @ V @ W[r].T))
    return out


def _reference_kl(mu, logvar):
    """KL[N(mu, V) || N(0, I)] from the general Gaussian KL formula."""
    out = np.empty(mu.shape[:2])
    K = mu.shape[-1]
    for idx in np.ndindex(*mu.shape[:2]):
        S0, S1 = np.diag(np.exp(logvar[idx])), np.eye(K)
        m = 0 - mu[idx]
        out[idx] = 0.5 * (np.trace(np.linalg.solve(S1, S0)) + m @ np.linalg.solve(S1, m) - K
                          + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])
    return out


def test_exact_terms_and_kl_match_full_matrix_formulas():
    W, psi, mu, logvar, x = _args()
    np.testing.assert_allclose(_exact_terms(W, psi, mu, logvar, x), _reference_terms(W, psi, mu, logvar, x),
                               rtol=1e-12)
    np.testing.assert_allclose(kl_to_prior(mu, logvar), _reference_kl(mu, logvar), rtol=1e-12, atol=1e-14)


def test_exact_terms_match_brute_force_monte_carlo():
    W, psi, mu, logvar, x = _args(seed=2)
    rng = np.random.default_rng(0)
    exact = _exact_terms(W, psi, mu, logvar, x)
    S = 20000
    for r, n in [(0, 0), (1, 3)]:
        z = mu[r, n] + np.exp(0.5 * logvar[r, n]) * rng.standard_normal((S, 2))
        vals = -multivariate_normal(np.zeros(3), np.diag(psi[r])).logpdf(x[n] - z @ W[r].T)
        se = vals.std(ddof=1) / np.sqrt(S)
        assert abs(vals.mean() - exact[r, n]) < 4 * se


def test_kl_to_prior_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mu, logvar = np.array([[[0.3, -1.2]]]), np.array([[[-0.5, 0.7]]])
    z = mu[0, 0] + np.exp(0.5 * logvar[0, 0]) * rng.standard_normal((50000, 2))
    logq = multivariate_normal(mu[0, 0], np.diag(np.exp(logvar[0, 0]))).logpdf(z)
    logp = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
    d = logq - logp
    assert abs(d.mean() - kl_to_prior(mu, logvar)[0, 0]) < 4 * d.std(ddof=1) / np.sqrt(len(d))
    assert kl_to_prior(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))[0, 0] == 0


# ---- neg_elbo through the likelihoods' parameters -------------------------

def _likelihoods():
    rngs = [s[0] for s in restart_streams(3, R)]
    out = {
        "linear_jtex": JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A"),
        "learn_b_jtex": JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="b"),
        "gaussian": LinearMap(2, 4, 0.1),
        "univariate": Univariate(1.5),
    }
    return {k: (lik, lik.init(rngs)) for k, lik in out.items()}


@pytest.mark.parametrize("name", ["linear_jtex", "learn_b_jtex", "gaussian", "univariate"])
def test_neg_elbo_gradient_through_likelihood_parameters(name):
    lik, theta = _likelihoods()[name]
    (key, leaf), = theta.items()
    rng = np.random.default_rng(4)
    K, D = lik.latent_dim, lik.data_dim
    mu = 0.5 * rng.standard_normal((R, N, K))
    logvar = -1.0 + 0.3 * rng.standard_normal((R, N, K))
    x = rng.standard_normal((N, D))

    def loss(leaf, mu, logvar):
        return anp.sum(neg_elbo(lik, {key: leaf}, mu, logvar, x, beta=0.7))

    check_grads(loss, (0, 1, 2), modes=["rev"], order=1)(leaf, mu, logvar)


@pytest.mark.parametrize("cubic", [False, True])
def test_monte_carlo_neg_elbo_gradient(cubic):
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A", cubic=cubic)
    theta = lik.init([s[0] for s in restart_streams(5, R)])
    rng = np.random.default_rng(5)
    mu = 0.3 * rng.standard_normal((R, N, 2))
    logvar = -2.0 + 0.3 * rng.standard_normal((R, N, 2))
    x = 0.5 * rng.standard_normal((N, 2))
    eps = rng.standard_normal((R, 3, N, 2))

    def loss(A, mu, logvar):
        return anp.sum(neg_elbo(lik, {"A": A}, mu, logvar, x, eps=eps))

    check_grads(loss, (0, 1, 2), modes=["rev"], order=1)(theta["A"], mu, logvar)


def test_monte_carlo_neg_elbo_gradient_mlp():
    lik = MLPLikelihood(noise_var=0.1)
    theta = lik.init([s[0] for s in restart_streams(6, R)])
    rng = np.random.default_rng(6)
    mu, logvar = rng.standard_normal((R, N, 2)), -1.0 + 0.1 * rng.standard_normal((R, N, 2))
    x, eps = 0.3 * rng.standard_normal((N, 2)), rng.standard_normal((R, 2, N, 2))

    def loss(theta, mu):
        return anp.sum(neg_elbo(lik, theta, mu, logvar, x, eps=eps))

    check_grads(loss, (0, 1), modes=["rev"], order=1)(theta, mu)


def test_exact_neg_elbo_equals_the_independent_formula():
    lik, theta = _likelihoods()["linear_jtex"]
    rng = np.random.default_rng(7)
    mu, logvar = rng.standard_normal((R, N, 2)), rng.standard_normal((R, N, 2))
    x = rng.standard_normal((N, 2))
    W = np.linalg.cholesky(theta["A"] @ np.swapaxes(theta["A"], 1, 2) + np.diag(JTEX_B))
    psi = np.broadcast_to(JTEX_SIGMA2 - JTEX_B, (R, 2))
    ref = (_reference_terms(W, psi, mu, logvar, x) + 1.3 * _reference_kl(mu, logvar)).mean(axis=1)
    np.testing.assert_allclose(neg_elbo(lik, theta, mu, logvar, x, beta=1.3), ref, rtol=1e-12)


def test_monte_carlo_neg_elbo_agrees_with_exact():
    lik, theta = _likelihoods()["gaussian"]
    rng = np.random.default_rng(8)
    mu, logvar = rng.standard_normal((R, N, 2)), -1 + rng.standard_normal((R, N, 2))
    x = rng.standard_normal((N, 4))
    exact = neg_elbo(lik, theta, mu, logvar, x)
    draws = np.stack([neg_elbo(lik, theta, mu, logvar, x, eps=rng.standard_normal((R, 1, N, 2)))
                      for _ in range(2000)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 4 * se)


def test_elbo_is_tight_at_the_exact_posterior_of_the_univariate_model():
    sigma2 = 1.3
    thetas = np.array([0.0, 0.4, -0.9, 1.1])
    lik = Univariate(sigma2)
    params = lik.params_for(thetas)
    x = np.random.default_rng(9).standard_normal((50, 1)) * np.sqrt(sigma2)
    exact = LinearGaussian.univariate(thetas, sigma2)
    mean, cov = exact.posterior(np.broadcast_to(x, (4, 50, 1)))
    logvar = np.broadcast_to(np.log(cov), mean.shape)
    minus_log_p = -exact.log_likelihood(np.broadcast_to(x, (4, 50, 1)))
    np.testing.assert_allclose(neg_elbo(lik, params, mean, logvar, x), minus_log_p.mean(axis=1),
                               rtol=0, atol=1e-10)
    # ... point by point.
    per_point = (_exact_terms(lik.loading(params), lik.noise(params), mean, logvar, x)
                 + kl_to_prior(mean, logvar))
    np.testing.assert_allclose(per_point, minus_log_p, rtol=0, atol=1e-10)


def test_elbo_gap_at_the_best_mean_field_q_is_the_mean_field_kl():
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A")
    theta = {"A": np.stack([JTEX_A, 0.7 * JTEX_A[::-1]])}
    exact = lik.exact(theta)
    x = np.random.default_rng(10).standard_normal((30, 2))
    xb = np.broadcast_to(x, (2, 30, 2))
    mean, _ = exact.posterior(xb)
    logvar = np.broadcast_to(np.log(exact.mean_field_variances())[:, None, :], mean.shape)
    gap = neg_elbo(lik, theta, mean, logvar, x) + exact.log_likelihood(xb).mean(axis=1)
    np.testing.assert_allclose(gap, exact.mean_field_kl(), rtol=1e-9, atol=1e-10)
    assert abs(exact.mean_field_kl()[0] - 0.53235) < 1e-5


def test_beta_enters_linearly():
    lik, theta = _likelihoods()["linear_jtex"]
    rng = np.random.default_rng(11)
    mu, logvar = rng.standard_normal((R, N, 2)), rng.standard_normal((R, N, 2))
    x = rng.standard_normal((N, 2))
    f = {b: neg_elbo(lik, theta, mu, logvar, x, beta=b) for b in (0.0, 1.0, 2.5, 5.0)}
    slope = f[1.0] - f[0.0]
    np.testing.assert_allclose(slope, kl_to_prior(mu, logvar).mean(axis=1), rtol=1e-12)
    for b in (2.5, 5.0):
        np.testing.assert_allclose(f[b], f[0.0] + b * slope, rtol=1e-12)
    # The MC estimate too (same draws).
    eps = rng.standard_normal((R, 2, N, 2))
    g0, g1, g5 = (neg_elbo(lik, theta, mu, logvar, x, beta=b, eps=eps) for b in (0.0, 1.0, 5.0))
    np.testing.assert_allclose(g5, g0 + 5 * (g1 - g0), rtol=1e-12)


def test_per_restart_beta():
    lik, theta = _likelihoods()["gaussian"]
    rng = np.random.default_rng(12)
    mu, logvar = rng.standard_normal((R, N, 2)), rng.standard_normal((R, N, 2))
    x = rng.standard_normal((N, 4))
    betas = np.array([0.5, 2.0])
    both = neg_elbo(lik, theta, mu, logvar, x, beta=betas)
    for r in range(R):
        assert both[r] == pytest.approx(neg_elbo(lik, theta, mu, logvar, x, beta=betas[r])[r], rel=1e-14)
    eps = rng.standard_normal((R, 3, N, 2))
    both = neg_elbo(lik, theta, mu, logvar, x, beta=betas, eps=eps)
    for r in range(R):
        assert both[r] == pytest.approx(neg_elbo(lik, theta, mu, logvar, x, beta=betas[r], eps=eps)[r], rel=1e-14)


def test_second_derivatives_of_the_exact_elbo_raise_instead_of_being_wrong():
    from autograd import grad
    W, psi, mu, logvar, x = _args(D=2)
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2)
    theta = {"A": np.repeat(JTEX_A[None], W.shape[0], axis=0)}

    def first(m):
        return anp.sum(grad(lambda m: anp.sum(neg_elbo(lik, theta, m, logvar, x)))(m) ** 2)
    with pytest.raises(NotImplementedError, match="first order"):
        grad(first)(mu)
