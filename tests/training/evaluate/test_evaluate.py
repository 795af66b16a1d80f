"""training.evaluate: importance-sampled and exact log-likelihoods, aggregated posterior, smooth kNN."""
import numpy as np
import pytest

from training.datasets import load_dataset
from training.trainers.engine import restart_streams
from training.evaluate import (aggregated_posterior, exact_log_likelihood, log_likelihood_is,
                               log_likelihood_is_with_ess, smooth_knn, held_out_log_likelihood as ll_summary)


def posterior_encoder(lik, theta):
    """Linear-encoder parameters of the best mean-field q for ``theta``: the exact posterior
    mean map and the variances 1/P_ii (the exact posterior when K = 1)."""
    exact = lik.exact(theta)
    M = exact.posterior_mean_map()                     # (R, K, D): E[z | x] = M x
    R, K, D = M.shape
    return {"hidden": [], "mean": {"W": np.swapaxes(M, 1, 2), "b": np.zeros((R, K))},
            "logvar": {"W": np.zeros((R, D, K)), "b": np.log(exact.mean_field_variances())}}


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name, seed=0, n_train=2, n_val=2, n_test=200)
            for name in ("univariate", "linear_jtex", "gaussian")}


@pytest.mark.parametrize("name", ["linear_jtex", "gaussian"])
def test_importance_sampling_agrees_with_the_exact_log_likelihood(name, datasets):
    d = datasets[name]
    lik, theta, x = d.likelihood, d.truth, d.test
    phi = posterior_encoder(lik, theta)
    exact = exact_log_likelihood(lik, theta, x)
    assert exact.shape == (1, 200)
    runs = np.stack([log_likelihood_is(lik, theta, d.encoder, phi, x, np.random.default_rng(s), samples=500)
                     for s in range(4)])                              # (4, 1, N)
    # Monte Carlo standard error of the average over points, from the spread of independent runs.
    se = np.sqrt(runs.var(axis=0, ddof=1).sum()) / x.shape[0] / np.sqrt(len(runs))
    diff = runs.mean(axis=0).mean() - exact.mean()
    assert abs(diff) < 5 * se + 1e-3, (diff, se)
    assert np.median(np.abs(runs.mean(axis=0) - exact)) < 0.05


def test_importance_sampling_is_exact_with_the_exact_posterior_proposal(datasets):
    d = datasets["univariate"]
    lik = d.likelihood
    theta = lik.params_for(np.array([0.0, 0.5, -0.9]))
    phi = posterior_encoder(lik, theta)
    est = log_likelihood_is(lik, theta, d.encoder, phi, d.test, np.random.default_rng(0), samples=7, inflate=1.0)
    np.testing.assert_allclose(est, exact_log_likelihood(lik, theta, d.test), rtol=0, atol=1e-10)
    # With the default inflation it is a (noisy) estimate of the same value.
    est = log_likelihood_is(lik, theta, d.encoder, phi, d.test, np.random.default_rng(0), samples=200)
    assert np.abs(est - exact_log_likelihood(lik, theta, d.test)).max() < 0.1


@pytest.mark.parametrize("name, R", [("linear_jtex", 1), ("mobius", 1), ("linear_jtex", 3)])
def test_chunking_does_not_change_the_result(name, R):
    d = load_dataset(name, seed=1, n_train=2, n_val=2, n_test=30)
    rngs = [s[0] for s in restart_streams(0, R)]
    phi = d.encoder.init(rngs)
    phi["logvar"]["b"] = phi["logvar"]["b"] - 3.0
    theta = d.likelihood.init(rngs) if R > 1 else d.truth
    one = log_likelihood_is(d.likelihood, theta, d.encoder, phi, d.test, np.random.default_rng(5), samples=200)
    for max_entries in (R * 30 * 7, R * 30, 1):   # chunks of 7, 1 and 1 samples
        chunked = log_likelihood_is(d.likelihood, theta, d.encoder, phi, d.test, np.random.default_rng(5),
                                    samples=200, max_entries=max_entries)
        np.testing.assert_allclose(chunked, one, rtol=1e-12)
    assert np.all(np.isfinite(one))


def test_batched_restarts_have_the_right_shape(datasets):
    d = datasets["linear_jtex"]
    rngs = [s[0] for s in restart_streams(1, 3)]
    theta, phi = d.likelihood.init(rngs), d.encoder.init(rngs)
    est = log_likelihood_is(d.likelihood, theta, d.encoder, phi, d.test[:10], np.random.default_rng(0), samples=20)
    assert est.shape == (3, 10) and np.all(np.isfinite(est))
    summary = ll_summary(d.likelihood, theta, d.encoder, phi, d.test[:10], np.random.default_rng(0), samples=20)
    assert set(summary) == {"is", "exact", "is_se", "is_ess_mean", "is_ess_min", "quadrature",
                            "quadrature_error", "quadrature_unconverged", "worst"}
    for key in ("is", "exact", "is_se", "is_ess_mean", "is_ess_min", "quadrature", "quadrature_error"):
        assert summary[key].shape == (3,)
    exact = exact_log_likelihood(d.likelihood, theta, d.test[:10])
    np.testing.assert_allclose(summary["exact"], exact.mean(axis=1))
    np.testing.assert_allclose(summary["quadrature"], exact.mean(axis=1), atol=1e-6, rtol=0)
    assert np.all((1 <= summary["is_ess_min"]) & (summary["is_ess_min"] <= summary["is_ess_mean"])
                  & (summary["is_ess_mean"] <= 20))
    # The worst points: where IS falls furthest below the exact value, in that order.
    est = log_likelihood_is(d.likelihood, theta, d.encoder, phi, d.test[:10], np.random.default_rng(0), samples=20)
    for r, worst in enumerate(summary["worst"]):
        gaps = [w["reference"] - w["is"] for w in worst]
        assert len(worst) == 3 and gaps == sorted(gaps, reverse=True)
        assert gaps[0] == pytest.approx(np.max(exact[r] - est[r]))


def test_the_ess_is_the_sample_size_for_the_exact_posterior():
    """q = the exact posterior (not inflated): every weight is p(x), so ESS = S exactly."""
    d = load_dataset("univariate", seed=0, n_train=2, n_val=2, n_test=20)
    phi = posterior_encoder(d.likelihood, d.truth)
    ll, ess = log_likelihood_is_with_ess(d.likelihood, d.truth, d.encoder, phi, d.test, np.random.default_rng(0),
                                         samples=50, inflate=1.0)
    np.testing.assert_allclose(ess, 50.0, rtol=1e-9)
    np.testing.assert_allclose(ll, exact_log_likelihood(d.likelihood, d.truth, d.test), atol=1e-9)


def test_summary_of_a_nonlinear_model_has_no_exact_value():
    d = load_dataset("cubic_jtex", seed=0, n_train=2, n_val=2, n_test=10)
    phi = d.encoder.init([s[0] for s in restart_streams(0, 1)])
    out = ll_summary(d.likelihood, d.truth, d.encoder, phi, d.test, np.random.default_rng(0), samples=10)
    assert out["exact"] is None and out["is"].shape == (1,)
    assert out["quadrature"].shape == (1,) and np.isfinite(out["quadrature"]).all()


@pytest.mark.parametrize("kw, exc, name", [(dict(samples=0), ValueError, "samples"),
                                           (dict(samples=1.5), TypeError, "samples"),
                                           (dict(inflate=0.0), ValueError, "inflate"),
                                           (dict(rng=0), TypeError, "rng"),
                                           (dict(x=np.full((3, 2), np.nan)), ValueError, "x"),
                                           (dict(x=np.ones(2)), ValueError, "x")])
def test_importance_sampling_bad_input(kw, exc, name, datasets):
    d = datasets["linear_jtex"]
    phi = posterior_encoder(d.likelihood, d.truth)
    args = dict(x=d.test, rng=np.random.default_rng(0), samples=5)
    args.update(kw)
    with pytest.raises(exc, match=name):
        log_likelihood_is(d.likelihood, d.truth, d.encoder, phi, **args)


def test_aggregated_posterior_moments_match_monte_carlo():
    d = load_dataset("linear_jtex", seed=2, n_train=2, n_val=2, n_test=300)
    rngs = [s[0] for s in restart_streams(3, 2)]
    phi = d.encoder.init(rngs)
    phi["mean"]["b"] = np.array([[0.3, -0.2], [0.0, 0.5]])
    phi["logvar"]["b"] = np.array([[-1.0, 0.5], [0.2, -0.3]])
    out = aggregated_posterior(d.encoder, phi, d.test)
    assert out["mean"].shape == (2, 2) and out["cov"].shape == (2, 2, 2)
    assert out["kl_to_prior"].shape == out["max_abs_corr"].shape == (2,)
    mu, logvar = d.encoder(phi, d.test)
    rng = np.random.default_rng(0)
    groups, draws = 20, 10
    for r in range(2):
        # z ~ q(z) = (1/N) sum_n q(z | x_n): in each group, `draws` codes per test point.
        z = mu[r] + np.exp(0.5 * logvar[r]) * rng.standard_normal((groups, draws, 300, 2))
        z = z.reshape(groups, -1, 2)
        means = z.mean(axis=1)
        covs = np.stack([np.cov(g.T, bias=True) for g in z])
        corrs = np.array([np.corrcoef(g.T)[0, 1] for g in z])
        # Group-to-group spread gives the Monte Carlo standard errors (the codes are far from Gaussian).
        for est, ref in ((means, out["mean"][r]), (covs, out["cov"][r])):
            se = est.std(axis=0, ddof=1) / np.sqrt(groups)
            assert np.all(np.abs(est.mean(axis=0) - ref) < 5 * se), (est.mean(axis=0), ref, se)
        se = corrs.std(ddof=1) / np.sqrt(groups)
        assert abs(abs(corrs.mean()) - out["max_abs_corr"][r]) < 5 * se
        # KL of the moment-matched Gaussian to N(0, I), from the general formula.
        m, S = out["mean"][r], out["cov"][r]
        kl = 0.5 * (np.trace(S) + m @ m - 2 - np.log(np.linalg.det(S)))
        assert out["kl_to_prior"][r] == pytest.approx(kl, rel=1e-10)


def test_aggregated_posterior_of_the_exact_posterior_is_the_prior():
    """With the exact posterior (K = 1) and data from the model, q(z) = p(z) = N(0, 1)."""
    d = load_dataset("univariate", seed=0, theta=0.8, n_train=2, n_val=2, n_test=20000)
    phi = posterior_encoder(d.likelihood, d.truth)
    out = aggregated_posterior(d.encoder, phi, d.test)
    assert abs(out["cov"][0, 0, 0] - 1) < 5 * np.sqrt(2 / 20000)
    assert abs(out["mean"][0, 0]) < 5 / np.sqrt(20000)
    assert out["kl_to_prior"][0] < 1e-3 and out["max_abs_corr"][0] == 0


def test_smooth_knn_prefers_the_truth():
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    truth = smooth_knn(d, d.truth, np.random.default_rng(0), repeats=40)
    wrong = smooth_knn(d, {"A": 1.5 * d.truth["A"]}, np.random.default_rng(0), repeats=40)
    assert truth.stats.shape == (40,) and np.isfinite(truth.std)
    assert abs(truth.mean) < 4 * truth.std / np.sqrt(40) + 0.1
    assert wrong.mean > truth.mean + 1.0
    again = smooth_knn(d, d.truth, np.random.default_rng(0), repeats=40)
    np.testing.assert_array_equal(again.stats, truth.stats)


def test_smooth_knn_needs_the_truth():
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    from dataclasses import replace
    with pytest.raises(ValueError, match="truth"):
        smooth_knn(replace(d, truth=None), d.truth, np.random.default_rng(0), repeats=2)


def test_the_named_tuple_twins_match_the_plain_estimators_and_the_old_flags_still_work():
    from training.evaluate import ISLogLikelihood, ISPosteriorMean, posterior_mean_is, posterior_mean_is_with_ess
    d = load_dataset("mobius", seed=0, n_train=2, n_val=2, n_test=15)
    phi = d.encoder.init([s[0] for s in restart_streams(0, 2)])
    theta = d.likelihood.init([s[0] for s in restart_streams(1, 2)])
    args = (d.likelihood, theta, d.encoder, phi, d.test)
    res = log_likelihood_is_with_ess(*args, np.random.default_rng(4), samples=30)
    assert isinstance(res, ISLogLikelihood) and res.ess.shape == (2, 15)
    np.testing.assert_array_equal(res.log_likelihood, log_likelihood_is(*args, np.random.default_rng(4), samples=30))
    post = posterior_mean_is_with_ess(*args, np.random.default_rng(5), samples=30)
    assert isinstance(post, ISPosteriorMean) and post.mean.shape == (2, 15, 2)
    np.testing.assert_array_equal(post.mean, posterior_mean_is(*args, np.random.default_rng(5), samples=30))
    # The deprecated flags return the same NamedTuples (they unpack as the old pairs).
    with pytest.warns(DeprecationWarning, match="log_likelihood_is_with_ess"):
        ll, ess = log_likelihood_is(*args, np.random.default_rng(4), samples=30, return_ess=True)
    np.testing.assert_array_equal(ll, res.log_likelihood)
    np.testing.assert_array_equal(ess, res.ess)
    with pytest.warns(DeprecationWarning, match="posterior_mean_is_with_ess"):
        old = posterior_mean_is(*args, np.random.default_rng(5), samples=30, return_ess=True)
    _assert_equal_tuples(old, post)


def _assert_equal_tuples(a, b):
    assert type(a) is type(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
