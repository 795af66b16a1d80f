"""Appendix D (docs/theory.md §5): joint MAP over (theta, Z) prefers shrunken codes; constraints fix it."""
import numpy as np
import pytest
import scipy.stats

from analysis import joint_map


def _data(seed=1, N=400, noise_sd=0.3):
    rng = np.random.default_rng(seed)
    W = np.array([[1.0, 0.3], [0.0, 0.8]])
    Z = rng.standard_normal((N, 2))
    X = Z @ W.T + noise_sd * rng.standard_normal((N, 2))
    return W, Z, X, noise_sd**2


def _kl(S, C):
    D = S.shape[0]
    return 0.5 * (np.trace(np.linalg.solve(C, S)) - D + np.log(np.linalg.det(C) / np.linalg.det(S)))


def test_joint_map_objective_matches_scipy():
    W, Z, X, nv = _data()
    rng = np.random.default_rng(2)
    W = W + 0.1 * rng.standard_normal(W.shape)                 # any W, not only the truth
    total, lik, prior = joint_map.joint_map_objective(W, Z, X, nv)
    lik_ref = np.mean([scipy.stats.multivariate_normal(W @ z, nv * np.eye(2)).logpdf(x) for x, z in zip(X, Z)])
    prior_ref = np.mean(scipy.stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(Z))
    np.testing.assert_allclose([lik, prior, total], [lik_ref, prior_ref, lik_ref + prior_ref], rtol=1e-12)


def test_shrink_family():
    W, Z, X, nv = _data(N=500, noise_sd=0.1)
    scales = np.linspace(0.5, 3.0, 11)
    fam = joint_map.shrink_family(W, Z, X, nv, scales)
    # The likelihood term does not depend on c: (W c^2)(Z / c^2) = W Z.
    assert np.ptp(fam["likelihood"]) < 1e-12 * np.abs(fam["likelihood"]).max()
    lik0 = joint_map.joint_map_objective(W, Z, X, nv)[1]
    np.testing.assert_allclose(fam["likelihood"], lik0, rtol=1e-12)
    # The prior term: -1/2 [K log 2 pi + mean ||z||^2 / c^4], rising in c.
    prior_ref = -0.5 * (2 * np.log(2 * np.pi) + np.mean(np.sum(Z**2, axis=1)) / scales**4)
    np.testing.assert_allclose(fam["prior"], prior_ref, rtol=1e-12)
    above = scales >= 1.0
    assert np.all(np.diff(fam["prior"][above]) > 0)
    assert np.all(np.diff(fam["objective"][above]) > 0)
    # The implied model p_c(x) = N(0, c^4 W W^T + noise I) drifts from the data as c grows.
    S = X.T @ X / X.shape[0]
    mle_ref = [_kl(S, c**4 * W @ W.T + nv * np.eye(2)) for c in scales]
    np.testing.assert_allclose(fam["mle_term"], mle_ref, rtol=1e-10)
    assert np.all(np.diff(fam["mle_term"][above]) > 0)
    assert fam["mle_term"][-1] > 1.0 > 0.05 > fam["mle_term"][scales == 1.0][0]


@pytest.fixture(scope="module")
def paths():
    _, _, X, nv = _data()
    free = joint_map.joint_map_path(X, 2, nv, 100, np.random.default_rng(0))
    kept = joint_map.joint_map_path(X, 2, nv, 100, np.random.default_rng(0), constrain=True)
    return X, nv, free, kept


def test_unconstrained_path_shrinks_codes_and_loses_the_data(paths):
    X, nv, free, _ = paths
    obj = free["objective"]
    assert obj.shape == (100,)
    assert np.all(np.diff(obj) >= -1e-12 * np.abs(obj).max())          # coordinate ascent
    assert obj[-1] > obj[0] + 0.5
    assert free["code_scale"][-1] < 0.3 < 0.8 < free["code_scale"][0]
    assert free["mle_term"][-1] > 1.0 and free["mle_term"][-1] > 10 * free["mle_term"][0]
    # The reported history is consistent with the returned parameters.
    W, Z = free["W"], free["Z"]
    np.testing.assert_allclose(obj[-1], joint_map.joint_map_objective(W, Z, X, nv)[0], rtol=1e-12)
    np.testing.assert_allclose(free["code_scale"][-1], np.sqrt(np.mean(Z**2)), rtol=1e-12)
    S = X.T @ X / X.shape[0]
    np.testing.assert_allclose(free["mle_term"][-1], _kl(S, W @ W.T + nv * np.eye(2)), rtol=1e-10)


def test_constrained_path_keeps_codes_standard_and_fits_the_data(paths):
    X, nv, free, kept = paths
    Z = kept["Z"]
    np.testing.assert_allclose(kept["code_scale"], 1.0, atol=1e-9)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.T @ Z / Z.shape[0], np.eye(2), atol=1e-9)
    assert kept["mle_term"][-1] < 0.02
    assert kept["mle_term"][-1] < free["mle_term"][-1] / 50
    # The constraint costs joint-MAP objective: the unconstrained optimum is "better" by that criterion.
    assert kept["objective"][-1] < free["objective"][-1]


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(noise_var=0.0), ValueError, "noise_var"),
    (dict(noise_var=np.nan), ValueError, "noise_var"),
    (dict(noise_var=[0.1, 0.2]), ValueError, "noise_var"),
    (dict(K=3), ValueError, "K"),
    (dict(K=0), ValueError, "K"),
    (dict(K=1.5), TypeError, "K"),
    (dict(steps=0), ValueError, "steps"),
    (dict(rng=None), TypeError, "rng"),
    (dict(rng=0), TypeError, "rng"),
    (dict(X=np.full((10, 2), np.inf)), ValueError, "X"),
    (dict(X="X"), TypeError, "X"),
])
def test_bad_path_arguments(kwargs, err, name):
    _, _, X, nv = _data(N=20)
    args = dict(X=X, K=2, noise_var=nv, steps=3, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(err, match=rf"\b{name}\b"):
        joint_map.joint_map_path(**args)


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(scales=[1.0, 0.0]), ValueError, "scales"),
    (dict(scales=[1.0, np.nan]), ValueError, "scales"),
    (dict(noise_var=-1.0), ValueError, "noise_var"),
    (dict(Z=np.ones((20, 3))), ValueError, "Z"),
    (dict(Z=np.ones((19, 2))), ValueError, "Z"),
    (dict(W=np.ones((3, 2))), ValueError, "W"),
    (dict(W=[[np.nan, 0], [0, 1]]), ValueError, "W"),
])
def test_bad_family_arguments(kwargs, err, name):
    W, Z, X, nv = _data(N=20)
    args = dict(W=W, Z=Z, X=X, noise_var=nv, scales=[1.0, 2.0])
    args.update(kwargs)
    with pytest.raises(err, match=rf"\b{name}\b"):
        joint_map.shrink_family(**args)
    objective_args = {k: v for k, v in args.items() if k != "scales"}
    if "scales" not in kwargs:
        with pytest.raises(err, match=rf"\b{name}\b"):
            joint_map.joint_map_objective(**objective_args)
