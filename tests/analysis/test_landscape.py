"""The paper's claims (docs/theory.md (T.24)-(T.26); Fig. 1) and analysis.landscape.

Reference values are recomputed in the tests from the textbook formulas of
``conftest.py``; the only literal numbers are the paper's (docs/theory.md (T.26)).
"""
import numpy as np
import pytest
import scipy.optimize

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_b_landscape, jtex_vae_optimum


def _rotation(angle, reflect=False):
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return R @ np.diag([1.0, -1.0]) if reflect else R


# ---- docs/theory.md (T.26): the paper's numbers --------------------------------------------

def test_truth_objective_is_the_papers(jtex_truth, jtex_reference):
    A, b, sigma2, S = jtex_truth
    m = LinearGaussian.jtex(A, b, sigma2)
    assert abs(m.mean_field_kl() - 0.53235) < 5e-5
    assert abs(m.vae_objective(S) - 0.53235) < 5e-5
    assert abs(m.mle_term(S)) < 1e-12                      # the truth fits its own data exactly
    assert abs(m.expected_log_likelihood(S) - (-2.9708)) < 1e-4
    ref = jtex_reference(A, b, sigma2, S)
    np.testing.assert_allclose(m.vae_objective(S), ref["objective"], rtol=1e-10)
    np.testing.assert_allclose(m.expected_log_likelihood(S), ref["ell"], rtol=1e-12)


def test_vae_optimum_is_the_papers(jtex_truth, jtex_optimum, jtex_reference):
    A, b, sigma2, S = jtex_truth
    opt = jtex_optimum
    assert abs(opt.objective - 0.19618) < 5e-5
    assert abs(opt.mle_term - 0.1621) < 1e-4
    assert abs(opt.mean_field_kl - 0.0341) < 1e-4
    ref = jtex_reference(opt.A, b, sigma2, S)
    np.testing.assert_allclose([opt.objective, opt.mle_term, opt.mean_field_kl],
                               [ref["objective"], ref["mle"], ref["mf_kl"]], rtol=1e-9)
    assert abs(ref["ell"] - (-3.1328)) < 1e-4
    m = LinearGaussian.jtex(opt.A, b, sigma2)
    assert abs(m.expected_log_likelihood(S) - (-3.1328)) < 1e-4
    # The optimum's p(x) is not the data's: A A^T differs from the truth's.
    assert np.abs(opt.AAt - A @ A.T).max() > 0.3
    assert opt.n_agree >= 2


def test_vae_optimum_is_global_by_an_independent_search(jtex_truth, jtex_optimum, jtex_reference):
    """BFGS over all four entries of A on the numpy reference objective, from several starts."""
    A, b, sigma2, S = jtex_truth

    def objective(a):
        return jtex_reference(a.reshape(2, 2), b, sigma2, S)["objective"]

    rng = np.random.default_rng(0)
    starts = [A.ravel()] + [rng.standard_normal(4) for _ in range(3)]
    found = [scipy.optimize.minimize(objective, a0, method="BFGS", options={"gtol": 1e-9}).fun
             for a0 in starts]
    assert min(found) > jtex_optimum.objective - 1e-9
    # ... and it reaches the same value (so the library is not merely reporting too high a value).
    assert min(found) < jtex_optimum.objective + 1e-7


def test_objective_depends_on_A_only_through_AAt(jtex_truth, jtex_optimum):
    A0, b, sigma2, S = jtex_truth
    rng = np.random.default_rng(1)
    for A in (A0, jtex_optimum.A, rng.standard_normal((2, 2))):
        base = LinearGaussian.jtex(A, b, sigma2)
        for angle, reflect in [(0.3, False), (2.0, False), (1.1, True)]:
            rot = LinearGaussian.jtex(A @ _rotation(angle, reflect), b, sigma2)
            np.testing.assert_allclose(rot.vae_objective(S), base.vae_objective(S), rtol=1e-10)
            np.testing.assert_allclose(rot.mean_field_kl(), base.mean_field_kl(), rtol=1e-9)
    # A change of A A^T (not a rotation) does change it.
    bent = LinearGaussian.jtex(A0 @ np.diag([1.1, 1.0]), b, sigma2)
    assert abs(bent.vae_objective(S) - LinearGaussian.jtex(A0, b, sigma2).vae_objective(S)) > 1e-3


def _numerical_gradient(A, b, sigma2, S, h=1e-6):
    g = np.zeros(4)
    for k in range(4):
        E = np.zeros(4)
        E[k] = h
        E = E.reshape(2, 2)
        g[k] = (LinearGaussian.jtex(A + E, b, sigma2).vae_objective(S)
                - LinearGaussian.jtex(A - E, b, sigma2).vae_objective(S)) / (2 * h)
    return g


def test_vae_optimum_for_a_finite_sample_is_stationary(jtex_truth):
    A, b, sigma2, _ = jtex_truth
    x, _ = LinearGaussian.jtex(A, b, sigma2).sample(500, np.random.default_rng(2))
    S_hat = x.T @ x / x.shape[0]
    opt = jtex_vae_optimum(S_hat, b, sigma2, restarts=5, seed=np.random.default_rng(3))
    assert opt.n_agree >= 2
    # Central differences: error ~ h^2 f''' + eps f / h ~ 1e-10, far below the threshold.
    g = _numerical_gradient(opt.A, b, sigma2, S_hat)
    assert np.abs(g).max() < 1e-6, g
    # The same check is not vacuous: at the truth the gradient is large.
    assert np.abs(_numerical_gradient(A, b, sigma2, S_hat)).max() > 1e-2
    # A local minimum: random perturbations of A raise the objective.
    base = LinearGaussian.jtex(opt.A, b, sigma2).vae_objective(S_hat)
    rng = np.random.default_rng(4)
    for _ in range(10):
        assert LinearGaussian.jtex(opt.A + 1e-3 * rng.standard_normal((2, 2)), b, sigma2).vae_objective(S_hat) > base
    np.testing.assert_allclose(opt.objective, base, rtol=1e-12)


def test_aggregated_posterior_at_the_optimum_is_far_from_the_prior(jtex_truth, jtex_optimum, closed_forms):
    """docs/theory.md (T.16) / Fig. 1E-F: the prior hole.

    Theory used for the tolerances: rescaling latent i by a (decoder column by
    1/a, q's mean and standard deviation by a) keeps the mean-field family and
    the reconstruction term and changes KL[q || p(z)] by
    (a^2 - 1)/2 E[mu_i^2 + s_i] - log a; so at any stationary point of the VAE
    objective E[mu_i^2 + s_i] = 1: the diagonal of the aggregated posterior
    covariance is exactly 1 (up to the optimizer's gradient tolerance, here
    ~1e-8). The prior-matching failure is then entirely the off-diagonal
    correlation, which the test requires to be large (Frobenius distance to I
    = sqrt(2) |rho| > 0.3, i.e. |rho| > 0.21).
    """
    A, b, sigma2, S = jtex_truth
    opt = LinearGaussian.jtex(jtex_optimum.A, b, sigma2)
    agg = opt.aggregated_posterior_cov(S)
    ref = closed_forms(opt.W, opt.noise_cov)
    expected = ref["M"] @ S @ ref["M"].T + np.diag(ref["mf_var"])
    np.testing.assert_allclose(agg, expected, rtol=1e-9)
    np.testing.assert_allclose(np.diag(agg), 1.0, atol=1e-6)
    rho = agg[0, 1] / np.sqrt(agg[0, 0] * agg[1, 1])
    assert abs(rho) > 0.4, rho
    assert np.linalg.norm(agg - np.eye(2)) > 0.3
    # At the truth the true posteriors aggregate to the prior exactly ...
    truth = LinearGaussian.jtex(A, b, sigma2)
    np.testing.assert_allclose(truth.aggregated_posterior_cov(S, mean_field=False), np.eye(2), atol=1e-12)
    # ... and the truth's best mean-field q aggregates to nearly the prior (not a stationary point:
    # its diagonal need not be 1, but the correlation is small).
    agg_truth = truth.aggregated_posterior_cov(S)
    assert np.linalg.norm(agg_truth - np.eye(2)) < 0.05 < 0.3 < np.linalg.norm(agg - np.eye(2))


# ---- docs/theory.md (T.18): the univariate model's non-identifiability -----------------------

def test_univariate_non_identifiability():
    sigma2 = 2.0
    sigma = np.sqrt(sigma2)
    r = np.linspace(0.0, 1.0, 21)[1:]                              # ends at exactly 1: |theta| = sigma
    theta = sigma * np.concatenate([-r[::-1], [0.0], r])
    m = LinearGaussian.univariate(theta, sigma2)
    # p(x) = N(0, sigma2) for every theta (including the boundary).
    np.testing.assert_allclose(m.marginal_cov()[:, 0, 0], sigma2, rtol=1e-14)
    x = np.linspace(-3, 3, 7)[:, None]
    ll = m.log_likelihood(x)
    np.testing.assert_allclose(ll, np.broadcast_to(-0.5 * (np.log(2 * np.pi * sigma2) + x[:, 0]**2 / sigma2),
                                                   ll.shape), rtol=1e-12)
    # Every theta is a global optimum: the objective is zero for all.
    np.testing.assert_allclose(m.vae_objective(np.array([[sigma2]])), 0.0, atol=1e-13)
    np.testing.assert_array_equal(m.mean_field_kl(), 0.0)
    # ... but I(X;Z) varies: 0 at theta = 0, strictly increasing in |theta|, inf at |theta| = sigma.
    mi = m.mutual_information()
    at_zero = np.flatnonzero(theta == 0.0)
    assert at_zero.size == 1 and mi[at_zero[0]] == 0.0
    boundary = np.isclose(np.abs(theta), sigma, rtol=1e-15, atol=0)
    assert boundary.sum() == 2 and np.all(np.isinf(mi[boundary])) and np.all(mi[boundary] > 0)
    inner = ~boundary
    np.testing.assert_allclose(mi[inner], 0.5 * np.log(sigma2 / (sigma2 - theta[inner]**2)), rtol=1e-9, atol=1e-15)
    pos = np.sort(np.unique(np.abs(theta[inner])))
    mi_pos = LinearGaussian.univariate(pos, sigma2).mutual_information()
    assert np.all(np.diff(mi_pos) > 0)
    np.testing.assert_allclose(LinearGaussian.univariate(-pos, sigma2).mutual_information(), mi_pos, rtol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_univariate_boundary(sign):
    """|theta| = sigma: the noise vanishes; I = inf, the posterior is a point mass, KL = 0."""
    sigma2 = 0.7
    theta = sign * np.sqrt(sigma2)
    m = LinearGaussian.univariate(theta, sigma2)
    assert np.isinf(m.mutual_information()) and m.mutual_information() > 0
    assert abs(m.posterior_cov()[0, 0]) < 1e-12
    assert np.all(m.mean_field_variances() < 1e-12)
    assert m.mean_field_kl() == 0.0
    x = np.array([[0.3], [-1.2]])
    mean, _ = m.posterior(x)
    np.testing.assert_allclose(mean[:, 0], x[:, 0] / theta, rtol=1e-12)      # z = x / theta exactly
    xs, zs = m.sample(100, np.random.default_rng(0))
    np.testing.assert_allclose(xs, theta * zs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m.vae_objective([[sigma2]]), 0.0, atol=1e-14)


# ---- Fig. 1A-B: the landscape over B with A fixed ------------------------------------------

@pytest.fixture(scope="module")
def landscape(jtex_truth):
    A, _, sigma2, _ = jtex_truth
    grid = np.linspace(0.0, sigma2, 61)[:-1]                      # [0, sigma2), excludes sigma2
    return grid, jtex_b_landscape(A, sigma2, grid, grid)


def test_landscape_matches_linear_gaussian(jtex_truth, landscape, jtex_reference):
    A, _, sigma2, S = jtex_truth
    grid, land = landscape
    n = grid.size
    assert land["mean_field_kl"].shape == land["mutual_information"].shape == (n, n)
    # Every cell by the batched LinearGaussian path ...
    B1, B2 = np.meshgrid(grid, grid, indexing="ij")
    m = LinearGaussian.jtex(A, np.stack([B1, B2], axis=-1), sigma2)
    np.testing.assert_allclose(land["mean_field_kl"], m.mean_field_kl(), rtol=1e-9)
    np.testing.assert_allclose(land["mutual_information"], m.mutual_information(), rtol=1e-9)
    # ... and a random sample of cells by the numpy reference.
    rng = np.random.default_rng(5)
    for i, j in rng.integers(0, n, size=(30, 2)):
        ref = jtex_reference(A, [grid[i], grid[j]], sigma2, S)
        np.testing.assert_allclose(land["mean_field_kl"][i, j], ref["mf_kl"], rtol=1e-9)
        np.testing.assert_allclose(land["mutual_information"][i, j], ref["mi"], rtol=1e-9)
        np.testing.assert_allclose(land["vae_objective"][i, j], ref["objective"], rtol=1e-9, atol=1e-12)


def test_landscape_optimum_is_the_corner_large_b11_small_b22(landscape):
    grid, land = landscape
    n = grid.size
    assert land["argmin"] == (n - 1, 0)
    assert land["optimum"] == (grid[-1], grid[0])
    assert land["vae_objective"][n - 1, 0] == land["vae_objective"].min()
    # The landscape is not symmetric in B: the mirrored corner is far worse.
    assert land["vae_objective"][0, n - 1] > 10 * land["vae_objective"][n - 1, 0]


def test_landscape_mi_at_optimum_is_neither_highest_nor_lowest(landscape):
    _, land = landscape
    mi = land["mutual_information"]
    at_opt = mi[land["argmin"]]
    lo, hi = mi.min(), mi.max()
    assert lo < at_opt < hi
    # Not marginally: it sits well inside the range.
    assert 0.1 < (at_opt - lo) / (hi - lo) < 0.9


def test_every_B_gives_the_same_data_distribution(jtex_truth, landscape, random_pd):
    A, _, sigma2, S = jtex_truth
    grid, land = landscape
    B1, B2 = np.meshgrid(grid[::7], grid[::5], indexing="ij")
    m = LinearGaussian.jtex(A, np.stack([B1, B2], axis=-1), sigma2)
    np.testing.assert_allclose(m.marginal_cov(), np.broadcast_to(S, B1.shape + (2, 2)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.mle_term(S), 0.0, atol=1e-12)
    np.testing.assert_allclose(land["vae_objective"], land["mean_field_kl"], rtol=1e-12, atol=1e-14)
    # With other data the MLE term is a nonzero constant over B.
    S_other = random_pd(np.random.default_rng(6), 2)
    other = jtex_b_landscape(A, sigma2, grid, grid, data_cov=S_other)
    shift = other["vae_objective"] - other["mean_field_kl"]
    np.testing.assert_allclose(shift, shift[0, 0], rtol=1e-12)
    np.testing.assert_allclose(m.mle_term(S_other), shift[0, 0], rtol=1e-10)
    assert shift[0, 0] > 0.01


# ---- bad input ----------------------------------------------------------------------------

G = np.array([0.0, 0.005])


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(b1=[-0.001, 0.0]), ValueError, "b1"),
    (dict(b1=[0.0, JTEX_SIGMA2]), ValueError, "b1"),
    (dict(b2=[0.0, 0.02]), ValueError, "b2"),
    (dict(b2=[0.0, np.nan]), ValueError, "b2"),
    (dict(b1=[]), ValueError, "b1"),
    (dict(b1="x"), TypeError, "b1"),
    (dict(A=np.eye(3)), ValueError, "A"),
    (dict(A=np.ones((2, 3))), ValueError, "A"),
    (dict(A=np.stack([JTEX_A] * 2)), ValueError, "A"),
    (dict(A=[[np.nan, 0], [0, 1]]), ValueError, "A"),
    (dict(A="A"), TypeError, "A"),
    (dict(sigma2=-0.01), ValueError, "sigma2"),
    (dict(sigma2=np.inf), ValueError, "sigma2"),
    (dict(sigma2=[0.01, 0.02]), ValueError, "sigma2"),
    (dict(data_cov=np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError, "data_cov"),
    (dict(data_cov=np.array([[1.0, 0.1], [0.0, 1.0]])), ValueError, "data_cov"),
    (dict(data_cov=np.eye(3)), ValueError, "data_cov"),
    (dict(data_cov=np.diag([1.0, np.inf])), ValueError, "data_cov"),
])
def test_bad_landscape_arguments(kwargs, err, name):
    args = dict(A=JTEX_A, sigma2=JTEX_SIGMA2, b1=G, b2=G)
    args.update(kwargs)
    with pytest.raises(err, match=rf"\b{name}\b"):
        jtex_b_landscape(**args)


S_TRUE = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(data_cov=np.eye(3)), ValueError, "data_cov"),
    (dict(data_cov=np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError, "data_cov"),
    (dict(data_cov=np.diag([np.nan, 1.0])), ValueError, "data_cov"),
    (dict(b=[0.0, 0.01]), ValueError, "b"),
    (dict(b=[-1e-4, 0.0]), ValueError, "b"),
    (dict(b=[0.0, 0.0, 0.0]), ValueError, "b"),
    (dict(sigma2=0.0), ValueError, "sigma2"),
    (dict(sigma2=np.nan), ValueError, "sigma2"),
    (dict(restarts=0), ValueError, "restarts"),
    (dict(restarts=-3), ValueError, "restarts"),
    (dict(restarts=2.5), TypeError, "restarts"),
    (dict(seed="x"), TypeError, "seed"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_bad_optimum_arguments(kwargs, err, name):
    args = dict(data_cov=S_TRUE, b=JTEX_B, sigma2=JTEX_SIGMA2)
    args.update(kwargs)
    with pytest.raises(err, match=rf"\b{name}\b"):
        jtex_vae_optimum(**args)
