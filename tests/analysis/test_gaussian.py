"""analysis.LinearGaussian against Monte Carlo, textbook formulas and per-item loops.

Monte-Carlo checks use seeded generators and standard errors estimated from
the same samples; a tolerance of 4.5 standard errors per statistic makes a
false alarm rare (< 1e-5 per statistic under normality) while a formula that
is wrong by a few percent fails (the standard errors are ~0.3%).
"""
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian

NSE = 4.5
N_MC = 100_000


def _mean_se(v):
    """Sample mean and its standard error along axis 0."""
    return v.mean(axis=0), v.std(axis=0, ddof=1) / np.sqrt(v.shape[0])


def _assert_mc(estimate, se, expected, label):
    z = np.abs(np.asarray(estimate) - np.asarray(expected)) / np.asarray(se)
    assert np.all(z < NSE), f"{label}: {estimate} vs {expected} ({np.max(z):.1f} standard errors)"


def _second_moments(a, b):
    """All products a_i b_j per sample, shape (n, I, J)."""
    return a[:, :, None] * b[:, None, :]


def _models(random_pd):
    rng = np.random.default_rng(123)
    D, K = 3, 2
    general = LinearGaussian(rng.standard_normal((D, K)), random_pd(rng, D))
    return {"general": general,
            "univariate": LinearGaussian.univariate(0.8, 1.5),
            "jtex_truth": LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)}


@pytest.fixture(params=["general", "univariate", "jtex_truth"])
def model(request, random_pd):
    return _models(random_pd)[request.param]


def test_sample_marginal_covariance(model):
    x, z = model.sample(N_MC, np.random.default_rng(1))
    assert x.shape == (N_MC, model.D) and z.shape == (N_MC, model.K)
    est, se = _mean_se(_second_moments(x, x))
    _assert_mc(est, se, model.W @ model.W.T + model.noise_cov, "E[x x^T]")
    np.testing.assert_allclose(model.marginal_cov(), model.W @ model.W.T + model.noise_cov, rtol=1e-14)
    est, se = _mean_se(_second_moments(z, z))
    _assert_mc(est, se, np.eye(model.K), "E[z z^T]")
    est, se = _mean_se(_second_moments(x, z))
    _assert_mc(est, se, model.W, "E[x z^T] = W")


def test_posterior_mean_is_the_regression_of_z_on_x(model, closed_forms):
    x, z = model.sample(N_MC, np.random.default_rng(2))
    M = model.posterior_mean_map()
    ref = closed_forms(model.W, model.noise_cov)
    np.testing.assert_allclose(M, ref["M"], rtol=1e-9, atol=1e-12)
    # Least squares of z on x (no intercept) and its standard errors.
    coef, *_ = np.linalg.lstsq(x, z, rcond=None)              # z ~ x @ coef, coef = M^T
    resid = z - x @ coef
    sigma = resid.T @ resid / (N_MC - model.D)
    se = np.sqrt(np.outer(np.diag(np.linalg.inv(x.T @ x)), np.diag(sigma)))
    _assert_mc(coef, se, M.T, "regression coefficients of z on x")
    # posterior(x) returns exactly M x.
    mean, cov = model.posterior(x[:5])
    np.testing.assert_allclose(mean, x[:5] @ ref["M"].T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, ref["post_cov"], rtol=1e-9, atol=1e-12)


def test_posterior_covariance_is_the_residual_covariance(model, closed_forms):
    x, z = model.sample(N_MC, np.random.default_rng(3))
    r = z - x @ model.posterior_mean_map().T
    est, se = _mean_se(_second_moments(r, r))
    expected = closed_forms(model.W, model.noise_cov)["post_cov"]
    _assert_mc(est, se, expected, "Cov[z - M x]")
    np.testing.assert_allclose(model.posterior_cov(), expected, rtol=1e-9, atol=1e-12)
    # The residual is uncorrelated with x (it is independent of x).
    est, se = _mean_se(_second_moments(r, x))
    _assert_mc(est, se, np.zeros((model.K, model.D)), "E[(z - M x) x^T]")


def test_mutual_information_monte_carlo(model, closed_forms):
    x, z = model.sample(N_MC, np.random.default_rng(4))
    noise = scipy.stats.multivariate_normal(np.zeros(model.D), model.noise_cov)
    log_lik = noise.logpdf(x - z @ model.W.T)                           # log p(x | z)
    log_marg = scipy.stats.multivariate_normal(np.zeros(model.D), model.marginal_cov()).logpdf(x)
    est, se = _mean_se(log_lik - log_marg)
    _assert_mc(est, se, model.mutual_information(), "I(X;Z)")
    np.testing.assert_allclose(model.mutual_information(), closed_forms(model.W, model.noise_cov)["mi"],
                               rtol=1e-10)


def test_log_likelihood_and_mle_term_monte_carlo(model, random_pd, gauss_kl, expected_ll):
    rng = np.random.default_rng(5)
    S = random_pd(rng, model.D)
    x = rng.multivariate_normal(np.zeros(model.D), S, size=N_MC)
    ll = model.log_likelihood(x)
    np.testing.assert_allclose(
        ll[:100], scipy.stats.multivariate_normal(np.zeros(model.D), model.marginal_cov()).logpdf(x[:100]),
        rtol=1e-10)
    est, se = _mean_se(ll)
    _assert_mc(est, se, model.expected_log_likelihood(S), "E log p(x)")
    log_data = scipy.stats.multivariate_normal(np.zeros(model.D), S).logpdf(x)
    est, se = _mean_se(log_data - ll)
    _assert_mc(est, se, model.mle_term(S), "KL[N(0,S) || p(x)]")
    C = model.marginal_cov()
    np.testing.assert_allclose(model.mle_term(S), gauss_kl(S, C), rtol=1e-10)
    np.testing.assert_allclose(model.expected_log_likelihood(S), expected_ll(S, C), rtol=1e-12)
    np.testing.assert_allclose(model.vae_objective(S), model.mle_term(S) + model.mean_field_kl(), rtol=1e-14)
    np.testing.assert_allclose(model.mle_term(C), 0.0, atol=1e-12)


def test_mean_field_is_the_best_diagonal_gaussian(model, closed_forms):
    ref = closed_forms(model.W, model.noise_cov)
    P = ref["P"]
    K = model.K

    def kl(log_s):        # KL[N(m, diag(s)) || N(m, P^-1)]
        s = np.exp(log_s)
        return 0.5 * (np.sum(np.diag(P) * s) - K - np.sum(log_s) - np.log(np.linalg.det(P)))

    res = scipy.optimize.minimize(kl, np.zeros(K), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(model.mean_field_kl(), res.fun, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(model.mean_field_variances(), np.exp(res.x), rtol=1e-5)
    np.testing.assert_allclose(model.mean_field_kl(), ref["mf_kl"], rtol=1e-9, atol=1e-14)
    assert model.mean_field_kl() >= 0


def test_aggregated_posterior_monte_carlo(model, random_pd):
    rng = np.random.default_rng(6)
    S = random_pd(rng, model.D)
    x = rng.multivariate_normal(np.zeros(model.D), S, size=N_MC)
    mean, _ = model.posterior(x)
    for mean_field in (True, False):
        if mean_field:
            z = mean + np.sqrt(model.mean_field_variances()) * rng.standard_normal(mean.shape)
        else:
            z = mean + rng.standard_normal(mean.shape) @ np.linalg.cholesky(model.posterior_cov()).T
        est, se = _mean_se(_second_moments(z, z))
        _assert_mc(est, se, model.aggregated_posterior_cov(S, mean_field=mean_field),
                   f"aggregated posterior covariance (mean_field={mean_field})")


def _all_quantities(m, x, S):
    """Every quantity of a LinearGaussian (single or batched) at data x and second moment S."""
    return {
        "marginal_cov": m.marginal_cov(), "posterior_cov": m.posterior_cov(),
        "posterior_precision": m.posterior_precision(), "M": m.posterior_mean_map(),
        "posterior_mean": m.posterior(x)[0], "mi": m.mutual_information(),
        "mf_kl": m.mean_field_kl(), "mf_var": m.mean_field_variances(),
        "mle": m.mle_term(S), "objective": m.vae_objective(S),
        "ell": m.expected_log_likelihood(S), "ll": m.log_likelihood(x),
        "agg": m.aggregated_posterior_cov(S), "agg_true": m.aggregated_posterior_cov(S, False)}


def test_true_aggregated_posterior_is_the_prior(random_pd):
    rng = np.random.default_rng(7)
    for D, K in [(1, 1), (2, 2), (3, 2), (4, 3)]:
        m = LinearGaussian(rng.standard_normal((D, K)), random_pd(rng, D))
        np.testing.assert_allclose(m.aggregated_posterior_cov(m.marginal_cov(), mean_field=False),
                                   np.eye(K), atol=1e-12)
    # ... while the mean-field aggregate at the truth of JTEx is close to, not equal to, I.
    m = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    agg = m.aggregated_posterior_cov(m.marginal_cov())
    assert 1e-4 < np.abs(agg - np.eye(2)).max() < 0.05


def test_batch_equals_loop(random_pd):
    rng = np.random.default_rng(8)
    D, K = 3, 2
    W = rng.standard_normal((3, 4, D, K))
    Psi = np.array([random_pd(rng, D) for _ in range(4)])          # broadcasts over the first axis
    S = random_pd(rng, D)
    x = rng.standard_normal((6, D))
    batch = LinearGaussian(W, Psi)
    assert batch.batch_shape == (3, 4)
    out = _all_quantities(batch, x, S)
    assert out["mi"].shape == (3, 4) and out["posterior_mean"].shape == (3, 4, 6, K)
    for i in range(3):
        for j in range(4):
            m = LinearGaussian(W[i, j], Psi[j])
            one = _all_quantities(m, x, S)
            for key, value in one.items():
                np.testing.assert_allclose(out[key][i, j], value, rtol=1e-12, atol=1e-14, err_msg=key)
    xs, zs = batch.sample(5, np.random.default_rng(0))
    assert xs.shape == (3, 4, 5, D) and zs.shape == (3, 4, 5, K)


def test_batched_constructors_equal_loops():
    rng = np.random.default_rng(9)
    theta = rng.uniform(-1, 1, size=(3, 4))
    sigma2 = rng.uniform(1.0, 2.0, size=(4,))
    uni = LinearGaussian.univariate(theta, sigma2)
    A = rng.standard_normal((3, 1, 2, 2))
    b = rng.uniform(0, 0.01, size=(4, 2))
    jt = LinearGaussian.jtex(A, b, 0.01)
    assert uni.batch_shape == (3, 4) and jt.batch_shape == (3, 4)
    for i in range(3):
        for j in range(4):
            u = LinearGaussian.univariate(theta[i, j], sigma2[j])
            np.testing.assert_allclose(uni.mutual_information()[i, j], u.mutual_information(), rtol=1e-12)
            np.testing.assert_allclose(uni.posterior_cov()[i, j], u.posterior_cov(), rtol=1e-12)
            m = LinearGaussian.jtex(A[i, 0], b[j], 0.01)
            np.testing.assert_allclose(jt.mean_field_kl()[i, j], m.mean_field_kl(), rtol=1e-12)
            np.testing.assert_allclose(jt.W[i, j], m.W, rtol=1e-12)


# ---- bad input: a ValueError (TypeError for non-numbers) naming the argument ----

GOOD_W, GOOD_PSI = np.array([[1.0], [0.5]]), np.eye(2)


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(W=GOOD_W, noise_cov=np.diag([1.0, -0.1])), ValueError, "noise_cov"),         # not PSD
    (dict(W=GOOD_W, noise_cov=np.array([[1.0, 0.2], [0.0, 1.0]])), ValueError, "noise_cov"),  # asymmetric
    (dict(W=GOOD_W, noise_cov=np.eye(3)), ValueError, "noise_cov"),                   # shape mismatch
    (dict(W=np.ones(2), noise_cov=GOOD_PSI), ValueError, "W"),                        # not a matrix
    (dict(W=np.ones((3, 2, 1)), noise_cov=np.stack([GOOD_PSI] * 4)), ValueError, "noise_cov"),  # batches
    (dict(W=[[np.nan], [1.0]], noise_cov=GOOD_PSI), ValueError, "W"),
    (dict(W=[[np.inf], [1.0]], noise_cov=GOOD_PSI), ValueError, "W"),
    (dict(W=GOOD_W, noise_cov=[[np.nan, 0], [0, 1]]), ValueError, "noise_cov"),
    (dict(W=GOOD_W, noise_cov=[[1, 0], [0, np.inf]]), ValueError, "noise_cov"),
    (dict(W="abc", noise_cov=GOOD_PSI), TypeError, "W"),
    (dict(W=None, noise_cov=GOOD_PSI), TypeError, "W"),
    (dict(W=np.array([[1j], [1.0]]), noise_cov=GOOD_PSI), TypeError, "W"),
    (dict(W=GOOD_W, noise_cov={"a": 1}), TypeError, "noise_cov"),
])
def test_bad_model(kwargs, err, name):
    with pytest.raises(err, match=rf"\b{name}\b"):
        LinearGaussian(**kwargs)


def test_singular_marginal_is_rejected():
    with pytest.raises(ValueError, match="noise_cov"):
        LinearGaussian(np.zeros((2, 1)), np.diag([1.0, 0.0]))


@pytest.mark.parametrize("theta,sigma2,err,name", [
    (1.01, 1.0, ValueError, "theta"), (-1.01, 1.0, ValueError, "theta"),
    (np.array([0.5, 2.0]), 1.0, ValueError, "theta"),
    (0.5, 0.0, ValueError, "sigma2"), (0.5, -1.0, ValueError, "sigma2"),
    (np.nan, 1.0, ValueError, "theta"), (0.5, np.inf, ValueError, "sigma2"), (0.5, np.nan, ValueError, "sigma2"),
    (np.zeros(3), np.ones(4), ValueError, "theta"),                     # batch shapes
    ("a", 1.0, TypeError, "theta"), (0.5, "b", TypeError, "sigma2"),
])
def test_bad_univariate(theta, sigma2, err, name):
    with pytest.raises(err, match=rf"\b{name}\b"):
        LinearGaussian.univariate(theta, sigma2)


@pytest.mark.parametrize("A,b,sigma2,err,name", [
    (JTEX_A, [-0.001, 0.0], 0.01, ValueError, "b"),
    (JTEX_A, [0.01, 0.0], 0.01, ValueError, "b"),            # b = sigma2: singular noise
    (JTEX_A, [0.0, 0.02], 0.01, ValueError, "b"),
    (JTEX_A, [0.0, 0.0, 0.0], 0.01, ValueError, "b"),        # wrong length
    (JTEX_A, [np.nan, 0.0], 0.01, ValueError, "b"),
    (JTEX_A, [0.0, 0.0], np.inf, ValueError, "sigma2"),
    (JTEX_A, [0.0, 0.0], -0.01, ValueError, "sigma2"),
    ([[np.inf, 0], [0, 1]], [0.0, 0.0], 0.01, ValueError, "A"),
    (np.ones(2), [0.0, 0.0], 0.01, ValueError, "A"),
    (np.stack([JTEX_A] * 3), np.zeros((4, 2)), 0.01, ValueError, "b"),   # batch shapes
    ("A", [0.0, 0.0], 0.01, TypeError, "A"),
])
def test_bad_jtex(A, b, sigma2, err, name):
    with pytest.raises(err, match=rf"\b{name}\b"):
        LinearGaussian.jtex(A, b, sigma2)


@pytest.mark.parametrize("method,arg,err,name", [
    ("mle_term", np.array([[1.0, 2.0], [2.0, 1.0]]), ValueError, "data_cov"),          # not PD
    ("mle_term", np.array([[1.0, 0.1], [0.0, 1.0]]), ValueError, "data_cov"),          # asymmetric
    ("mle_term", np.eye(3), ValueError, "data_cov"),
    ("mle_term", np.array([[np.nan, 0], [0, 1.0]]), ValueError, "data_cov"),
    ("expected_log_likelihood", np.array([[1.0, 0.0], [0.0, 0.0]]), ValueError, "data_cov"),
    ("vae_objective", np.array([[1.0, 0.0], [0.0, -1.0]]), ValueError, "data_cov"),
    ("aggregated_posterior_cov", np.diag([np.inf, 1.0]), ValueError, "data_cov"),
    ("vae_objective", "S", TypeError, "data_cov"),
    ("posterior", np.ones((4, 3)), ValueError, "x"),
    ("posterior", np.array([[np.nan, 1.0]]), ValueError, "x"),
    ("log_likelihood", np.array([[np.inf, 1.0]]), ValueError, "x"),
    ("log_likelihood", np.ones(2), ValueError, "x"),
])
def test_bad_method_arguments(method, arg, err, name):
    m = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    with pytest.raises(err, match=rf"\b{name}\b"):
        getattr(m, method)(arg)


def test_bad_batch_arguments():
    batch = LinearGaussian.jtex(np.stack([JTEX_A] * 3), JTEX_B, JTEX_SIGMA2)
    with pytest.raises(ValueError, match="data_cov"):
        batch.mle_term(np.stack([np.eye(2)] * 4))
    with pytest.raises(ValueError, match=r"\bx\b"):
        batch.log_likelihood(np.ones((4, 5, 2)))


def test_bad_sample_arguments():
    m = LinearGaussian.univariate(0.5, 1.0)
    with pytest.raises(ValueError, match=r"\bn\b"):
        m.sample(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"\bn\b"):
        m.sample(2.5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        m.sample(3, 0)
    with pytest.raises(TypeError, match="rng"):
        m.sample(3, None)
