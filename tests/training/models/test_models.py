"""training.models: likelihood families and inference networks."""
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian
from training.trainers.engine import restart_streams
from training.models import Encoder, JTEx, LinearMap, MLPLikelihood, Univariate
from training.models.layers import sigmoid

R = 3


def _rngs(seed=0, R=R):
    return [s[0] for s in restart_streams(seed, R)]


LIKELIHOODS = {
    "univariate": lambda: Univariate(2.0),
    "linear_jtex": lambda: JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A"),
    "learn_b_jtex": lambda: JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="b"),
    "cubic_jtex": lambda: JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A", cubic=True),
    "gaussian": lambda: LinearMap(2, 4, 1e-2),
    "mobius": lambda: MLPLikelihood(noise_var=1e-5),
}
LINEAR = ["univariate", "linear_jtex", "learn_b_jtex", "gaussian"]


@pytest.mark.parametrize("name", list(LIKELIHOODS))
def test_likelihood_shapes(name):
    lik = LIKELIHOODS[name]()
    theta = lik.init(_rngs())
    K, D = lik.latent_dim, lik.data_dim
    z = np.random.default_rng(0).standard_normal((R, 7, K))
    assert lik.mean(theta, z).shape == (R, 7, D)
    assert lik.noise(theta).shape == (R, D)
    assert np.all(np.asarray(lik.noise(theta)) > 0)
    x = np.random.default_rng(1).standard_normal((7, D))
    assert lik.log_likelihood(theta, x, z).shape == (R, 7)
    xs, zs = lik.sample(theta, 5, np.random.default_rng(2))
    assert xs.shape == (R, 5, D) and zs.shape == (R, 5, K)
    assert lik.linear == (name in LINEAR)
    if lik.linear:
        assert lik.loading(theta).shape == (R, D, K)
        np.testing.assert_allclose(lik.mean(theta, z), z @ np.swapaxes(lik.loading(theta), 1, 2), rtol=1e-13)
    else:
        with pytest.raises(TypeError, match="not linear"):
            lik.loading(theta)
        with pytest.raises(TypeError):
            lik.exact(theta)


def test_log_likelihood_is_the_gaussian_density():
    lik = LIKELIHOODS["gaussian"]()
    theta = lik.init(_rngs(1))
    rng = np.random.default_rng(3)
    z, x = rng.standard_normal((R, 4, 2)), rng.standard_normal((4, 4))
    ll = lik.log_likelihood(theta, x, z)
    for r in range(R):
        for n in range(4):
            ref = multivariate_normal(z[r, n] @ theta["A"][r], 1e-2 * np.eye(4)).logpdf(x[n])
            assert ll[r, n] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("learn", ["A", "b"])
def test_jtex_loading_equals_the_analysis_model(learn):
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn=learn)
    theta = lik.init(_rngs(2))
    W = lik.loading(theta)
    for r in range(R):
        A = theta["A"][r] if learn == "A" else JTEX_A
        b = JTEX_B if learn == "A" else JTEX_SIGMA2 * sigmoid(theta["u"][r])
        ref = LinearGaussian.jtex(A, b, JTEX_SIGMA2)
        np.testing.assert_allclose(W[r], ref.W, rtol=1e-12)
        np.testing.assert_allclose(np.diag(lik.noise(theta)[r]), ref.noise_cov, rtol=1e-12, atol=1e-18)
        np.testing.assert_allclose(lik.exact(theta).marginal_cov()[r], ref.marginal_cov(), rtol=1e-12)
    assert np.allclose(np.triu(W, 1), 0)     # lower Cholesky factor


def test_cubic_jtex_mean_is_the_cube_of_the_linear_mean():
    lin = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2)
    cub = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, cubic=True)
    theta = lin.init(_rngs(3))
    z = np.random.default_rng(4).standard_normal((R, 5, 2))
    np.testing.assert_allclose(cub.mean(theta, z), lin.mean(theta, z) ** 3, rtol=1e-13)


@pytest.mark.parametrize("name", LINEAR)
def test_exact_marginal_matches_the_sample_covariance(name):
    lik = LIKELIHOODS[name]()
    theta = lik.init(_rngs(4))
    n = 20000
    x, z = lik.sample(theta, n, np.random.default_rng(5))
    C = lik.exact(theta).marginal_cov()
    for r in range(R):
        S = x[r].T @ x[r] / n
        se = np.sqrt((np.outer(np.diag(C[r]), np.diag(C[r])) + C[r] ** 2) / n)
        assert np.all(np.abs(S - C[r]) < 5 * se), (S, C[r])
        se_mean = np.sqrt(np.diag(C[r]) / n)
        assert np.all(np.abs(x[r].mean(axis=0)) < 5 * se_mean)
        # z ~ N(0, I)
        assert np.all(np.abs(z[r].T @ z[r] / n - np.eye(lik.latent_dim)) < 5 * np.sqrt(2 / n))


def test_sample_is_reproducible():
    lik = LIKELIHOODS["mobius"]()
    theta = lik.init(_rngs(5))
    a = lik.sample(theta, 10, np.random.default_rng(7))
    b = lik.sample(theta, 10, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


U_EXTREME = np.array([-1e3, -400.0, -40.0, -20.0, -5.0, 0.0, 1e-3, 5.0, 19.0, 20.0, 37.0, 40.0, 300.0, 400.0, 1e3])


@pytest.mark.parametrize("sigma2", [1.0, 2.0, 0.01])
def test_univariate_theta_and_noise_stay_valid_for_extreme_u(sigma2):
    lik = Univariate(sigma2)
    params = {"u": U_EXTREME}
    theta = np.asarray(lik.theta(params))
    noise = np.asarray(lik.noise(params))[:, 0]
    assert np.all(np.abs(theta) <= np.sqrt(sigma2))
    assert np.all(np.isfinite(noise)) and np.all(noise >= 0)
    moderate = np.abs(U_EXTREME) <= 300
    assert np.all(noise[moderate] > 0)
    # The noise is sigma2 sech^2(u) to full relative precision (sigma2 - theta^2 cancels).
    np.testing.assert_allclose(noise[moderate], sigma2 / np.cosh(U_EXTREME[moderate]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(theta**2 + noise, sigma2, rtol=1e-12)


def test_learn_b_jtex_noise_stays_positive_for_extreme_u():
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="b")
    u = np.stack([U_EXTREME, -U_EXTREME], axis=1)
    params = {"u": u}
    b = np.asarray(lik.b_of(params))
    noise = np.asarray(lik.noise(params))
    assert np.all((b >= 0) & (b <= JTEX_SIGMA2))
    assert np.all(np.isfinite(noise)) and np.all(noise >= 0)
    moderate = np.abs(u) <= 300
    assert np.all(noise[moderate] > 0)
    # noise = sigma2 * sigmoid(-u) to full relative precision.
    np.testing.assert_allclose(noise[moderate], JTEX_SIGMA2 / (1 + np.exp(u[moderate])), rtol=1e-12)
    np.testing.assert_allclose(b + noise, JTEX_SIGMA2, rtol=1e-12)


def test_univariate_params_for_round_trip():
    lik = Univariate(2.0)
    theta = np.array([-1.4, -0.3, 0.0, 0.9, 1.41])
    np.testing.assert_allclose(lik.theta(lik.params_for(theta)), theta, rtol=1e-12, atol=1e-15)
    u = np.array([-3.0, 0.2, 4.0])
    np.testing.assert_allclose(lik.params_for(lik.theta({"u": u}))["u"], u, rtol=1e-10)
    assert lik.loading(lik.params_for(theta)).shape == (5, 1, 1)
    for bad in ([np.sqrt(2.0)], [-1.5], [np.nan]):
        with pytest.raises(ValueError, match="theta"):
            lik.params_for(np.array(bad))


@pytest.mark.parametrize("make, name", [(lambda: Univariate(0.0), "sigma2"), (lambda: Univariate(-1.0), "sigma2"),
                                        (lambda: JTEx(JTEX_A, JTEX_B, 0.01, learn="c"), "learn"),
                                        (lambda: JTEx(JTEX_A, JTEX_B, -0.01), "sigma2"),
                                        (lambda: JTEx([[np.nan, 0], [0, 1]], JTEX_B, 0.01), "A"),
                                        (lambda: LinearMap(0, 4, 1.0), "latent_dim"),
                                        (lambda: LinearMap(2, 4, 0.0), "noise_var"),
                                        (lambda: MLPLikelihood(noise_var=-1.0), "noise_var"),
                                        (lambda: Encoder(2, 2, "conv"), "kind"),
                                        (lambda: Encoder(0, 2), "data_dim")])
def test_bad_model_settings(make, name):
    with pytest.raises(ValueError, match=name):
        make()


ENCODER_HIDDEN = {"linear": [], "mlp": [50], "cubic": [4, 20]}


@pytest.mark.parametrize("kind", ["linear", "mlp", "cubic"])
@pytest.mark.parametrize("x_rank", [2, 3])
def test_encoder_shapes(kind, x_rank):
    D, K = 4, 2
    enc = Encoder(D, K, kind)
    params = enc.init(_rngs(6))
    widths = [D] + ENCODER_HIDDEN[kind]
    assert [l["W"].shape for l in params["hidden"]] == [(R, a, b) for a, b in zip(widths[:-1], widths[1:])]
    assert params["mean"]["W"].shape == params["logvar"]["W"].shape == (R, widths[-1], K)
    x = np.random.default_rng(7).standard_normal((R, 9, D) if x_rank == 3 else (9, D))
    mu, logvar = enc(params, x)
    assert mu.shape == logvar.shape == (R, 9, K)
    np.testing.assert_array_equal(enc.mean(params, x), mu)


def test_encoder_restart_r_is_independent_of_the_number_of_restarts():
    enc = Encoder(2, 2, "mlp")
    one = enc.init(_rngs(8, 1))
    many = enc.init(_rngs(8, 4))
    x = np.random.default_rng(8).standard_normal((5, 2))
    for a, b in zip(enc(one, x), enc(many, x)):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)


def test_cubic_encoder_forward_is_finite():
    enc = Encoder(2, 2, "cubic")
    params = enc.init(_rngs(9))
    x = np.concatenate([np.zeros((1, 2)), 1e-300 * np.ones((1, 2)), -1e6 * np.ones((1, 2)),
                        np.random.default_rng(9).standard_normal((20, 2)) ** 3])
    mu, logvar = enc(params, x)
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(logvar))


def test_deterministic_part_serves_the_mean_network():
    enc = Encoder(2, 2, "cubic")
    params = enc.init(_rngs(10))
    det = Encoder.deterministic_part(params)
    assert set(det) == {"hidden", "mean"}
    x = np.random.default_rng(10).standard_normal((6, 2))
    np.testing.assert_array_equal(enc.mean(det, x), enc(params, x)[0])
    # Re-initializing the stochastic encoder from it keeps the mean.
    fresh = enc.init(_rngs(11))
    fresh.update(det)
    np.testing.assert_array_equal(enc(fresh, x)[0], enc(params, x)[0])


@pytest.mark.parametrize("x_rank", [2, 3])
def test_fused_mlp_encoder_equals_its_layerwise_network(x_rank):
    # The 50-ReLU encoder runs trunk and both heads as one fused primitive;
    # values and gradients must be those of the layer-by-layer network.
    import autograd.numpy as anp
    from autograd import grad
    enc = Encoder(2, 2, "mlp")
    assert enc._fused
    layerwise = Encoder(2, 2, "mlp")
    layerwise._fused = False
    rng = np.random.default_rng(3)
    params = enc.init([s[0] for s in restart_streams(0, 3)])
    params["logvar"]["W"] = 0.1 * rng.standard_normal(params["logvar"]["W"].shape)
    x = rng.standard_normal((7, 2) if x_rank == 2 else (3, 7, 2))
    for a, b in zip(enc(params, x), layerwise(params, x)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(enc.mean(params, x), layerwise.mean(params, x), rtol=1e-13, atol=1e-13)

    def loss(e):
        return lambda p: anp.sum(anp.sin(e(p, x)[0]) + anp.exp(0.1 * e(p, x)[1]))
    got, want = grad(loss(enc))(params), grad(loss(layerwise))(params)
    for part in ("mean", "logvar"):
        for k in ("W", "b"):
            np.testing.assert_allclose(got[part][k], want[part][k], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["hidden"][0]["W"], want["hidden"][0]["W"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cubic", [False, True])
@pytest.mark.parametrize("reflect", [False, True])
def test_jtex_decoder_from_white_codes_takes_the_data_scale_and_turns_the_codes(cubic, reflect):
    """X = (Z0 W^T)^(3 if cubic) with white Z0: W W^T from the data, the codes turned onto W^-1 y.

    A reflected code orientation, which no W = chol(A A^T + B) can represent
    (det W > 0), is absorbed by the orthogonal turn of the codes.
    """
    rng = np.random.default_rng(3)
    Z0 = rng.standard_normal((400, 2))
    Z0 = (Z0 - Z0.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(Z0.T, bias=True))).T
    W = np.array([[0.9, 0.0], [1.2, 0.7]])
    Y = Z0 @ W.T
    X = Y ** 3 if cubic else Y
    Z = (Z0 * [-1.0, 1.0])[None] if reflect else Z0[None]
    lik = JTEx(np.eye(2), [1e-9, 1e-9], 1e-8, cubic=cubic)       # noise negligible: W W^T = Y^T Y / N
    theta, Q = lik.decoder_from_codes({"A": np.zeros((1, 2, 2))}, Z, X)
    assert np.allclose(Q[0] @ Q[0].T, np.eye(2)) and np.isclose(np.linalg.det(Q[0]), -1.0 if reflect else 1.0)
    assert np.allclose(lik.W(theta)[0], W, atol=1e-6)
    assert np.allclose(lik.mean(theta, Z @ Q), X, atol=1e-5)


def test_jtex_decoder_from_codes_starts_at_full_rank_with_the_mle_scale():
    """Linear: A A^T = Y^T Y / N - sigma2 I (the maximum-likelihood value); its eigenvalues are floored."""
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((2, 300, 2))
    X = rng.standard_normal((300, 2)) @ [[1.0, 0.0], [0.99, 0.141]]     # nearly collinear data
    lik = JTEx(np.eye(2), [0.006, 0.006], 0.01)
    theta, _ = lik.decoder_from_codes({"A": np.zeros((2, 2, 2))}, Z, X)
    M = X.T @ X / 300 - 0.01 * np.eye(2)
    w = np.linalg.eigvalsh(M)
    got = np.linalg.eigvalsh(theta["A"][0] @ theta["A"][0].T)
    assert np.allclose(got, np.maximum(w, 1e-3 * np.abs(w).mean()))


def test_linear_map_decoder_from_white_codes_is_least_squares():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((1, 300, 2))
    Z = (Z - Z.mean(1)) @ np.linalg.inv(np.linalg.cholesky(np.cov(Z[0].T, bias=True))).T
    X = Z[0] @ [[1.0, 0.5, -0.2], [0.3, 0.0, 0.8]] + 0.01 * rng.standard_normal((300, 3))
    lik = LinearMap(2, 3, 1e-4)
    theta, Q = lik.decoder_from_codes({"A": np.zeros((1, 2, 3))}, Z, X)
    assert np.allclose(theta["A"][0], np.linalg.lstsq(Z[0], X, rcond=None)[0]) and np.allclose(Q, np.eye(2))


def test_whitened_codes_and_their_affine_change_are_exact():
    enc = Encoder(3, 2, kind="mlp")
    phi = enc.init([np.random.default_rng(0), np.random.default_rng(1)])
    X = np.random.default_rng(2).standard_normal((150, 3)) * [1.0, 3.0, 0.2]
    Z = np.asarray(enc.mean(enc.whiten(phi, X), X))
    assert np.allclose(Z.mean(1), 0, atol=1e-12)
    assert np.allclose(np.einsum("rnk,rnj->rkj", Z, Z) / 150, np.eye(2))
    S = np.array([[[0.0, 1.0], [-1.0, 0.0]]] * 2)
    shift = np.array([[0.5, -1.0]] * 2)
    moved = np.asarray(enc.mean(enc.transform_codes(phi, shift, S), X))
    assert np.allclose(moved, (np.asarray(enc.mean(phi, X)) - shift[:, None]) @ S)
