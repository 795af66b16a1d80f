"""The sympy derivations of :mod:`analysis.symbolic` against numpy closed forms.

Each symbolic result is evaluated at random numbers and compared with the
textbook formulas of docs/theory.md §2 written in ``conftest.py`` (explicit inverses and
determinants) and with :class:`analysis.LinearGaussian` (Woodbury/Cholesky
forms), so a wrong derivation, substitution or lambdification shows up.
"""
import numpy as np
import pytest
import sympy as sp

from analysis import LinearGaussian, compiled, symbolic


def _evaluate(expr, values):
    """Evaluate a sympy scalar or Matrix with ``values`` {symbol: float} by lambdify."""
    syms = list(values)
    f = sp.lambdify(syms, expr, modules="numpy")
    return np.asarray(f(*[values[s] for s in syms]), dtype=float)


def _evalf(expr, values):
    """The same by sympy's own arbitrary-precision evalf (an independent evaluator)."""
    return float(sp.sympify(expr).evalf(30, subs=values))


def _random_model(rng, D, K, diagonal_noise):
    W = rng.standard_normal((D, K))
    if diagonal_noise:
        Psi = np.diag(rng.uniform(0.2, 2.0, size=D))
    else:
        G = rng.standard_normal((D, D))
        Psi = G @ G.T / D + 0.3 * np.eye(D)
    x = rng.standard_normal(D)
    return W, Psi, x


def _values(d, W, Psi, x):
    """Map the derivation's symbols to numbers (checking the noise's structure)."""
    vals = {}
    D, K = W.shape
    for i in range(D):
        for j in range(K):
            vals[d["W"][i, j]] = W[i, j]
        vals[d["x"][i]] = x[i]
        for j in range(D):
            entry = d["Psi"][i, j]
            if isinstance(entry, sp.Symbol):
                if entry in vals:          # a symmetric matrix reuses its symbols
                    assert vals[entry] == Psi[i, j]
                vals[entry] = Psi[i, j]
            else:
                assert float(entry) == Psi[i, j] == 0.0
    return vals


CONFIGS = [(1, 1, False), (2, 2, True), (2, 2, False)]


@pytest.mark.parametrize("D,K,diagonal_noise", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_gaussian_matches_closed_forms(D, K, diagonal_noise, seed, closed_forms):
    rng = np.random.default_rng(1000 * seed + 10 * D + int(diagonal_noise))
    d = symbolic.linear_gaussian(D, K, diagonal_noise)
    W, Psi, x = _random_model(rng, D, K, diagonal_noise)
    vals = _values(d, W, Psi, x)
    ref = closed_forms(W, Psi, x)

    np.testing.assert_allclose(_evaluate(d["posterior_precision"], vals), ref["P"], rtol=1e-10)
    np.testing.assert_allclose(_evaluate(d["posterior_cov"], vals), ref["post_cov"], rtol=1e-10)
    np.testing.assert_allclose(_evaluate(d["posterior_mean"], vals).ravel(), ref["post_mean"],
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_evaluate(d["marginal_cov"], vals), ref["C"], rtol=1e-10)
    np.testing.assert_allclose(_evaluate(d["mutual_information"], vals), ref["mi"], rtol=1e-10)
    np.testing.assert_allclose(_evalf(d["mutual_information"], vals), ref["mi"], rtol=1e-12)
    np.testing.assert_allclose(_evaluate(d["mean_field_kl"], vals), ref["mf_kl"], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose([float(_evaluate(v, vals)) for v in d["mean_field_variances"]],
                               ref["mf_var"], rtol=1e-10)


@pytest.mark.parametrize("D,K,diagonal_noise", CONFIGS)
def test_linear_gaussian_matches_package(D, K, diagonal_noise):
    rng = np.random.default_rng(7 + D)
    d = symbolic.linear_gaussian(D, K, diagonal_noise)
    W, Psi, x = _random_model(rng, D, K, diagonal_noise)
    vals = _values(d, W, Psi, x)
    m = LinearGaussian(W, Psi)
    np.testing.assert_allclose(_evaluate(d["posterior_precision"], vals), m.posterior_precision(), rtol=1e-10)
    np.testing.assert_allclose(_evaluate(d["posterior_cov"], vals), m.posterior_cov(), rtol=1e-10)
    mean, cov = m.posterior(x[None, :])
    np.testing.assert_allclose(_evaluate(d["posterior_mean"], vals).ravel(), mean[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_evaluate(d["marginal_cov"], vals), m.marginal_cov(), rtol=1e-12)
    np.testing.assert_allclose(_evaluate(d["mutual_information"], vals), m.mutual_information(), rtol=1e-10)
    np.testing.assert_allclose(_evaluate(d["mean_field_kl"], vals), m.mean_field_kl(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose([float(_evaluate(v, vals)) for v in d["mean_field_variances"]],
                               m.mean_field_variances(), rtol=1e-10)


def test_mean_field_kl_is_zero_only_for_diagonal_precision():
    # docs/theory.md (T.12): the mean-field KL is >= 0, zero iff P is diagonal.
    d = symbolic.linear_gaussian(2, 2, diagonal_noise=True)
    rng = np.random.default_rng(3)
    W = np.diag(rng.uniform(0.5, 2.0, 2))                 # diagonal W and noise: P diagonal
    vals = _values(d, W, np.diag([0.5, 1.5]), np.zeros(2))
    assert abs(float(_evaluate(d["mean_field_kl"], vals))) < 1e-14
    W[1, 0] = 0.7                                         # P_12 = W_11 W_12/psi_1 + ... != 0
    vals = _values(d, W, np.diag([0.5, 1.5]), np.zeros(2))
    assert float(_evaluate(d["mean_field_kl"], vals)) > 1e-3


def test_univariate_matches_closed_forms():
    u = symbolic.univariate()
    rng = np.random.default_rng(11)
    for _ in range(5):
        sigma2 = rng.uniform(0.1, 5.0)
        theta = rng.uniform(-1, 1) * np.sqrt(sigma2)
        vals = {u["theta"]: theta, u["sigma2"]: sigma2}
        np.testing.assert_allclose(_evaluate(u["marginal_var"], vals), sigma2, rtol=1e-13)
        np.testing.assert_allclose(_evaluate(u["posterior_mean_coef"], vals), theta / sigma2, rtol=1e-13)
        np.testing.assert_allclose(_evaluate(u["posterior_var"], vals), (sigma2 - theta**2) / sigma2,
                                   rtol=1e-12)
        np.testing.assert_allclose(_evaluate(u["mutual_information"], vals),
                                   0.5 * np.log(sigma2 / (sigma2 - theta**2)), rtol=1e-10, atol=1e-14)
        assert float(_evaluate(u["mean_field_kl"], vals)) == 0.0
        m = LinearGaussian.univariate(theta, sigma2)
        np.testing.assert_allclose(_evaluate(u["posterior_var"], vals), m.posterior_cov()[0, 0], rtol=1e-10)
        np.testing.assert_allclose(_evaluate(u["posterior_mean_coef"], vals),
                                   m.posterior_mean_map()[0, 0], rtol=1e-12)
        np.testing.assert_allclose(_evaluate(u["mutual_information"], vals), m.mutual_information(),
                                   rtol=1e-9, atol=1e-14)


def _jtex_values(j, A, b, sigma2, S):
    vals = {a: v for a, v in zip(list(j["A"]), A.ravel())}
    vals.update({j["b"][0]: b[0], j["b"][1]: b[1], j["sigma2"]: sigma2})
    vals.update({j["S"][0, 0]: S[0, 0], j["S"][0, 1]: S[0, 1], j["S"][1, 1]: S[1, 1]})
    return vals


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_jtex_matches_closed_forms(seed, jtex_reference, random_pd):
    j = symbolic.jtex()
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((2, 2))
    sigma2 = rng.uniform(0.005, 0.5)
    b = rng.uniform(0, sigma2, size=2)
    S = random_pd(rng, 2)
    vals = _jtex_values(j, A, b, sigma2, S)
    ref = jtex_reference(A, b, sigma2, S)
    np.testing.assert_allclose(_evaluate(j["W"], vals), ref["W"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(_evaluate(j["posterior_precision"], vals), ref["P"], rtol=1e-9)
    np.testing.assert_allclose(_evaluate(j["marginal_cov"], vals), A @ A.T + sigma2 * np.eye(2), rtol=1e-12)
    np.testing.assert_allclose(_evaluate(j["mutual_information"], vals), ref["mi"], rtol=1e-9)
    np.testing.assert_allclose(_evaluate(j["mean_field_kl"], vals), ref["mf_kl"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(_evaluate(j["mle_term"], vals), ref["mle"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_evaluate(j["vae_objective"], vals), ref["objective"], rtol=1e-9)
    m = LinearGaussian.jtex(A, b, sigma2)
    np.testing.assert_allclose(_evaluate(j["mean_field_kl"], vals), m.mean_field_kl(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(_evaluate(j["vae_objective"], vals), m.vae_objective(S), rtol=1e-9)
    np.testing.assert_allclose(_evaluate(j["mutual_information"], vals), m.mutual_information(), rtol=1e-9)


def _gauss_kl_diag(d, s, P):
    """KL[N(m + d, diag(s)) || N(m, P^-1)], the textbook Gaussian KL."""
    K = len(s)
    return 0.5 * (np.trace(P @ np.diag(s)) + d @ P @ d - K - np.sum(np.log(s))
                  - np.log(np.linalg.det(P)))


@pytest.mark.parametrize("K", [1, 2, 3])
def test_mean_field_stationary_minimum(K, random_pd):
    r = symbolic.mean_field(K)
    rng = np.random.default_rng(20 + K)
    P = random_pd(rng, K) + 0.5 * np.ones((K, K))          # strongly non-diagonal
    Psym = r["precision"]
    p_vals = {Psym[i, j]: P[i, j] for i in range(K) for j in range(K)}
    s_syms = sorted([v for v in r["kl_general"].free_symbols if v.name.startswith("s")], key=str)
    d_syms = sorted([v for v in r["kl_general"].free_symbols if v.name.startswith("d")], key=str)
    assert len(s_syms) == K and len(d_syms) == K
    kl_general = sp.lambdify(list(Psym.free_symbols) + s_syms + d_syms, r["kl_general"], "numpy")
    p_args = [p_vals[v] for v in Psym.free_symbols]

    def kl(s, d):
        return float(kl_general(*p_args, *s, *d))

    # The derived general KL is the textbook one.
    for _ in range(3):
        s, d = rng.uniform(0.1, 2.0, K), rng.standard_normal(K)
        np.testing.assert_allclose(kl(s, d), _gauss_kl_diag(d, s, P), rtol=1e-10)

    s_opt = np.array([float(_evaluate(v, p_vals)) for v in r["variances"]])
    d_opt = np.array([float(_evaluate(sp.sympify(v), p_vals)) for v in r["mean_offset"]])
    np.testing.assert_allclose(s_opt, 1.0 / np.diag(P), rtol=1e-12)
    np.testing.assert_allclose(d_opt, 0.0, atol=1e-14)
    kl_opt = kl(s_opt, d_opt)
    np.testing.assert_allclose(float(_evaluate(r["kl"], p_vals)), kl_opt, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(kl_opt, 0.5 * (np.sum(np.log(np.diag(P))) - np.log(np.linalg.det(P))),
                               rtol=1e-10, atol=1e-14)

    # Stationarity: central finite differences in every s_i and d_i vanish.
    h = 1e-6
    for i in range(K):
        e = np.eye(K)[i]
        g_s = (kl(s_opt + h * e, d_opt) - kl(s_opt - h * e, d_opt)) / (2 * h)
        g_d = (kl(s_opt, d_opt + h * e) - kl(s_opt, d_opt - h * e)) / (2 * h)
        assert abs(g_s) < 1e-7 and abs(g_d) < 1e-7, (i, g_s, g_d)
    # A minimum: every perturbation raises the KL.
    for _ in range(20):
        ds = rng.normal(0, 0.05, K) * s_opt
        dd = rng.normal(0, 0.05, K)
        assert kl(s_opt + ds, d_opt + dd) > kl_opt
    # A wrong claim would be caught: a stationary check at a non-optimal s fails.
    g_bad = (kl(1.2 * s_opt + h * np.eye(K)[0], d_opt) - kl(1.2 * s_opt - h * np.eye(K)[0], d_opt)) / (2 * h)
    assert abs(g_bad) > 1e-3


def test_gaussian_expectation_quadratic_forms():
    rng = np.random.default_rng(5)
    u = sp.symbols("u1 u2")
    v = sp.symbols("v1:2")
    Su = rng.standard_normal((2, 2))
    Su = Su @ Su.T
    a, c, k = rng.standard_normal(2), rng.standard_normal(), rng.standard_normal()
    expr = (a[0] * u[0] + a[1] * u[1] + c * v[0] + k) ** 2 + 3 * u[0] * v[0] + 5 * u[1]
    got = symbolic.gaussian_expectation(expr, [(list(u), sp.Matrix(Su)), (list(v), sp.eye(1))])
    # E[(a.u + c v + k)^2] = a^T Su a + c^2 + k^2; the cross and linear terms vanish.
    np.testing.assert_allclose(float(got), a @ Su @ a + c**2 + k**2, rtol=1e-12)
    with pytest.raises(ValueError, match="degree"):
        symbolic.gaussian_expectation(u[0] ** 3, [(list(u), sp.Matrix(Su))])


def test_compiled_univariate_matches_package():
    f = compiled.univariate_functions()
    rng = np.random.default_rng(8)
    sigma2 = rng.uniform(0.1, 4.0, size=50)
    theta = rng.uniform(-0.999, 0.999, size=50) * np.sqrt(sigma2)
    m = LinearGaussian.univariate(theta, sigma2)
    np.testing.assert_allclose(f["marginal_var"](theta, sigma2), m.marginal_cov()[:, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(f["posterior_var"](theta, sigma2), m.posterior_cov()[:, 0, 0], rtol=1e-8)
    np.testing.assert_allclose(f["posterior_mean_coef"](theta, sigma2), m.posterior_mean_map()[:, 0, 0],
                               rtol=1e-10)
    np.testing.assert_allclose(f["mutual_information"](theta, sigma2), m.mutual_information(), rtol=1e-8)


def test_compiled_jtex_matches_package(random_pd):
    f = compiled.jtex_functions()
    rng = np.random.default_rng(9)
    n = 40
    A = rng.standard_normal((n, 2, 2))
    sigma2 = rng.uniform(0.005, 0.5, size=n)
    b = rng.uniform(0, 1, size=(n, 2)) * sigma2[:, None]
    S = np.array([random_pd(rng, 2) for _ in range(n)])
    m = LinearGaussian.jtex(A, b, sigma2)
    model = (A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1], b[:, 0], b[:, 1], sigma2)
    data = (S[:, 0, 0], S[:, 0, 1], S[:, 1, 1])
    np.testing.assert_allclose(f["mean_field_kl"](*model), m.mean_field_kl(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(f["mutual_information"](*model), m.mutual_information(), rtol=1e-9)
    np.testing.assert_allclose(f["mle_term"](*model, *data), m.mle_term(S), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f["vae_objective"](*model, *data), m.vae_objective(S), rtol=1e-9)


def test_compiled_jtex_gradient_matches_finite_differences(random_pd):
    f = compiled.jtex_functions()
    rng = np.random.default_rng(10)
    sigma2 = 0.05
    b = np.array([0.01, 0.03])
    S = random_pd(rng, 2)
    h = 1e-6
    for _ in range(3):
        A = rng.standard_normal((2, 2))
        grad = np.array(f["vae_objective_grad"](*A.ravel(), *b, sigma2, S[0, 0], S[0, 1], S[1, 1]), float)
        fd = np.zeros(4)
        for k in range(4):
            E = np.zeros(4)
            E[k] = h
            up = LinearGaussian.jtex(A + E.reshape(2, 2), b, sigma2).vae_objective(S)
            dn = LinearGaussian.jtex(A - E.reshape(2, 2), b, sigma2).vae_objective(S)
            fd[k] = (up - dn) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
