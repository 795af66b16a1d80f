"""LiBI against the exact landscape: it recovers the data distribution the VAE misses, and its constraints hold."""
import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_vae_optimum
from training.datasets import load_dataset
from training.evaluate import aggregated_posterior, exact_log_likelihood
from training.trainers.libi import LiBI, MutualInformationConstraint
from training.models.objectives import neg_elbo
from training.trainers import VAE

TRUE_S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)


@pytest.fixture(scope="module")
def data(linear_jtex):
    return linear_jtex


@pytest.fixture(scope="module")
def libi(data):
    return LiBI(epochs=3000, inference_epochs=1500, restarts=3, seed=0).fit(data)


@pytest.fixture(scope="module")
def vae_optimum(data):
    return jtex_vae_optimum(data.second_moment, JTEX_B, JTEX_SIGMA2, restarts=5)


def _rel(C, S):
    return np.linalg.norm(C - S) / np.linalg.norm(S)


@pytest.mark.slow
def test_libi_recovers_the_data_distribution(data, libi, vae_optimum):
    S = data.second_moment
    A = libi.theta_["A"][0]
    assert _rel(A @ A.T + JTEX_SIGMA2 * np.eye(2), S) < 0.03
    assert _rel(vae_optimum.AAt + JTEX_SIGMA2 * np.eye(2), S) > 0.1      # the VAE's optimum is far
    libi_ll = float(LinearGaussian.jtex(A, JTEX_B, JTEX_SIGMA2).expected_log_likelihood(TRUE_S))
    truth_ll = float(LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2).expected_log_likelihood(TRUE_S))
    vae_ll = float(LinearGaussian.jtex(vae_optimum.A, JTEX_B, JTEX_SIGMA2).expected_log_likelihood(TRUE_S))
    assert abs(truth_ll - (-2.9708)) < 1e-3
    assert abs(libi_ll - truth_ll) < 0.03
    assert abs(vae_ll - (-3.133)) < 0.02


@pytest.mark.slow
def test_libi_aggregated_posterior_matches_the_prior(data, libi, vae_optimum):
    # Measure: KL of the moment-matched Gaussian of E_x q(z|x) to N(0, I),
    # and the largest latent correlation, on the test split.
    agg = aggregated_posterior(data.encoder, libi.phi_, data.test)
    assert agg["kl_to_prior"][0] < 0.02
    assert agg["max_abs_corr"][0] < 0.1
    cov = LinearGaussian.jtex(vae_optimum.A, JTEX_B, JTEX_SIGMA2).aggregated_posterior_cov(TRUE_S)
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert abs(corr) > 0.45                                             # the VAE's prior hole


@pytest.mark.slow
def test_libi_step2_reaches_the_best_mean_field_kl(data, libi):
    lik, enc = data.likelihood, data.encoder
    mu, logvar = enc(libi.phi_, data.train)
    neg = neg_elbo(lik, libi.theta_, mu, logvar, data.train)                  # exact ELBO
    posterior_gap = float(neg[0] + exact_log_likelihood(lik, libi.theta_, data.train).mean())
    best = float(LinearGaussian.jtex(libi.theta_["A"][0], JTEX_B, JTEX_SIGMA2).mean_field_kl())
    assert posterior_gap >= best - 1e-9
    assert posterior_gap - best < 2e-3


@pytest.mark.parametrize("delta", [0.5, 1.5])
@pytest.mark.slow
def test_libi_satisfies_a_mutual_information_lower_bound(delta):
    data = load_dataset("univariate", seed=0, theta=0.5)
    c = MutualInformationConstraint(delta)
    libi = LiBI(epochs=800, inference_epochs=200, restarts=3, seed=0, constraints=[c]).fit(data)
    assert c.satisfied(data.likelihood, libi.theta_)[0]


@pytest.mark.slow
def test_libi_satisfies_a_mutual_information_upper_bound():
    # Step 1 alone drives |theta| -> sigma (I -> inf) on this model, so an
    # upper bound is the constraint that has to do real work.
    data = load_dataset("univariate", seed=0, theta=0.5)
    c = MutualInformationConstraint(0.2, upper=True)
    libi = LiBI(epochs=800, inference_epochs=200, restarts=3, seed=0, constraints=[c]).fit(data)
    mi = float(c.mutual_information(data.likelihood, libi.theta_)[0])
    assert 0.2 - 0.1 < mi <= 0.2 + 3 * c.tau


@pytest.mark.slow
def test_plain_vae_theta_is_arbitrary_on_the_univariate_model():
    data = load_dataset("univariate", seed=0, theta=0.5)
    vae = VAE(epochs=600, restarts=6, seed=0).fit(data)
    thetas = np.asarray(data.likelihood.theta(vae.params_["theta"]))
    assert np.all(np.abs(thetas) < 1.0)
    assert np.ptp(thetas) > 0.5            # every theta is a global optimum: restarts scatter


def _code_variances(libi, data):
    Z = np.asarray(data.encoder.mean(libi.varphi_, data.train))[0]
    return np.diag(np.cov(Z.T, bias=True))


@pytest.mark.slow
def test_joint_map_without_penalties_shrinks_the_codes(data):
    plain = LiBI(epochs=3000, inference_epochs=10, restarts=1, seed=0, lambda_hz=0.0,
                 eps_sigma=np.inf, eps_mu=np.inf, joint_map=True).fit(data)
    penalized = LiBI(epochs=3000, inference_epochs=10, restarts=1, seed=0, joint_map=True).fit(data)
    assert np.mean(_code_variances(plain, data)) < 0.5
    assert np.all(_code_variances(penalized, data) > 0.8)
    assert plain.val_log_likelihood_[-1, 0] < penalized.val_log_likelihood_[-1, 0] - 0.2


@pytest.mark.slow
def test_libi_codes_keep_unit_scale(data, libi):
    assert np.all(np.abs(_code_variances(libi, data) - 1.0) < 0.1)


def test_bad_settings(data):
    for kw, name in [({"lambda_hz": -1.0}, "lambda_hz"), ({"eps_sigma": 0.0}, "eps_sigma"),
                     ({"eps_mu": -2.0}, "eps_mu"), ({"repeats": 0}, "repeats"),
                     ({"inference_epochs": 0}, "inference_epochs")]:
        with pytest.raises(ValueError, match=name):
            LiBI(epochs=2, restarts=1, **kw).fit(data)
    with pytest.raises(TypeError, match="constraints"):
        LiBI(epochs=2, restarts=1, constraints=[object()]).fit(data)
    with pytest.raises(ValueError, match="delta"):
        MutualInformationConstraint(-0.1)


@pytest.mark.slow
def test_a_restart_whose_codes_collapse_is_marked_diverged_and_the_fit_finishes():
    """Mobius at lr 0.3: one restart's codes collapse (singular covariance, HZ undefined) at epoch 19."""
    mobius = load_dataset("mobius", seed=0, n_val=40, n_test=10)
    fit = LiBI(lr=0.3, epochs=100, restarts=4, seed=0, step1_init="standardize").fit(mobius)
    assert fit.diverged_.tolist() == [False, True, False, False]
    assert fit.epochs_run_[1] < 100 <= fit.epochs_run_[0]
    assert fit.best_restart_ != 1 and np.isfinite(fit.val_objective_[fit.best_restart_])


@pytest.mark.slow
def test_step1_starts_where_jtex_cannot_be_trapped():
    """The earlier start leaves some restarts with a rank-deficient A; the fitted start leaves none.

    Seed 202 is a development data set (the acceptance seeds of the robustness study are others).
    """
    data = load_dataset("linear_jtex", seed=202)
    smallest = {}
    for init in ("standardize", "fit"):
        fit = LiBI(epochs=1000, inference_epochs=10, restarts=4, seed=202, step1_init=init).fit(data)
        smallest[init] = np.linalg.svd(fit.best_params_["theta"]["A"], compute_uv=False)[:, -1]
    assert smallest["standardize"].min() < 0.01          # on the plateau: A of rank 1
    assert smallest["fit"].min() > 0.5                   # every restart at full rank (the truth's: 0.6)


def test_step1_init_is_checked():
    data = load_dataset("linear_jtex", seed=0, n_train=20, n_val=20, n_test=20)
    with pytest.raises(ValueError, match="step1_init must be one of"):
        LiBI(epochs=2, restarts=1, step1_init="whiten").fit(data)
