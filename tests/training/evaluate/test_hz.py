"""Tests for training.evaluate.hz (Henze--Zirkler statistic)."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from scipy.spatial.distance import mahalanobis
from scipy.stats import lognorm

from training.evaluate.hz import henze_zirkler, henze_zirkler_beta, henze_zirkler_pvalue, henze_zirkler_reference


def reference_hz(Z):
    """Plain double-loop Henze--Zirkler statistic (MVN / pingouin definition)."""
    n, p = Z.shape
    mean = Z.mean(axis=0)
    S_inv = np.linalg.inv(np.cov(Z, rowvar=False, bias=True).reshape(p, p))
    beta = ((2 * p + 1) * n / 4) ** (1 / (p + 4)) / np.sqrt(2)
    b2 = beta**2
    pair = 0.0
    for j in range(n):
        for k in range(n):
            pair += np.exp(-b2 / 2 * mahalanobis(Z[j], Z[k], S_inv) ** 2)
    single = 0.0
    for j in range(n):
        single += np.exp(-b2 / (2 * (1 + b2)) * mahalanobis(Z[j], mean, S_inv) ** 2)
    return pair / n - 2 * (1 + b2) ** (-p / 2) * single + n * (1 + 2 * b2) ** (-p / 2)


def reference_pvalue(hz, n, p):
    """Log-normal p-value transcribed term by term from pingouin's code."""
    b = 1 / np.sqrt(2) * ((2 * p + 1) / 4) ** (1 / (p + 4)) * n ** (1 / (p + 4))
    wb = (1 + b**2) * (1 + 3 * b**2)
    a = 1 + 2 * b**2
    mu = 1 - a ** (-p / 2) * (1 + p * b**2 / a + (p * (p + 2) * b**4) / (2 * a**2))
    si2 = (2 * (1 + 4 * b**2) ** (-p / 2)
           + 2 * a ** (-p) * (1 + (2 * p * b**4) / a**2 + (3 * p * (p + 2) * b**8) / (4 * a**4))
           - 4 * wb ** (-p / 2) * (1 + (3 * p * b**4) / (2 * wb) + (p * (p + 2) * b**8) / (2 * wb**2)))
    pmu = np.log(np.sqrt(mu**4 / (si2 + mu**2)))
    psi = np.sqrt(np.log((si2 + mu**2) / mu**2))
    return lognorm.sf(hz, psi, scale=np.exp(pmu))


@pytest.mark.parametrize("n, p, seed", [(7, 1, 0), (12, 2, 1), (15, 3, 2), (30, 2, 3)])
def test_matches_double_loop_reference(n, p, seed):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + rng.exponential(size=(n, p))
    np.testing.assert_allclose(henze_zirkler(Z), reference_hz(Z), rtol=1e-10)


def test_beta_formula():
    assert henze_zirkler_beta(500, 2) == pytest.approx(2**-0.5 * (5 * 500 / 4) ** (1 / 6), rel=1e-15)


def test_affine_invariance():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((60, 3)) ** 3
    M = np.array([[2.0, 0.3, -1.0], [0.0, -0.5, 0.2], [1.5, 0.0, 3.0]])
    c = np.array([10.0, -3.0, 0.5])
    assert abs(np.linalg.det(M)) > 0.1
    np.testing.assert_allclose(henze_zirkler(Z @ M + c), henze_zirkler(Z), rtol=1e-8)
    perm = rng.permutation(60)
    np.testing.assert_allclose(henze_zirkler(Z[perm]), henze_zirkler(Z), rtol=1e-12)


def test_batched_equals_per_item():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((2, 3, 25, 2))
    Z[1, 2] = rng.uniform(size=(25, 2))
    batched = henze_zirkler(Z)
    assert batched.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        np.testing.assert_allclose(batched[idx], henze_zirkler(Z[idx]), rtol=1e-13)


def test_pvalue_matches_transcription_and_pingouin_example():
    hz = np.array([0.1, 0.5, 1.0, 2.0, 7.0])
    for n, p in [(36, 3), (100, 2), (500, 2), (20, 5)]:
        np.testing.assert_allclose(henze_zirkler_pvalue(hz, n, p), reference_pvalue(hz, n, p), rtol=1e-12)
    # Example in pingouin's docstring: HZResults(hz=0.5400861018514641, pval=0.7173686509624891)
    # on its 'multivariate' data set (36 rows, 3 columns).
    assert float(henze_zirkler_pvalue(0.5400861018514641, 36, 3)) == pytest.approx(0.7173686509624891, rel=1e-12)
    assert henze_zirkler_pvalue(hz, 100, 2).shape == hz.shape
    assert np.all(np.diff(henze_zirkler_pvalue(hz, 100, 2)) < 0)


def test_gaussian_accepted_non_gaussian_rejected():
    rng = np.random.default_rng(6)
    n = 500
    gauss = rng.standard_normal((8, n, 2)) @ np.array([[1.0, 0.4], [0.0, 2.0]])
    p_gauss = henze_zirkler_pvalue(henze_zirkler(gauss), n, 2)
    assert np.sum(p_gauss > 0.01) >= 7
    square = rng.uniform(size=(3, n, 2))
    centres = np.where(rng.uniform(size=(3, n, 1)) < 0.5, -2.0, 2.0) * np.array([1.0, 0.0])
    bimodal = centres + rng.standard_normal((3, n, 2))
    for sample in (square, bimodal):
        assert np.all(henze_zirkler_pvalue(henze_zirkler(sample), n, 2) < 1e-3)


def test_pvalue_roughly_calibrated_under_normality():
    rng = np.random.default_rng(7)
    n = 100
    pvals = henze_zirkler_pvalue(henze_zirkler(rng.standard_normal((600, n, 2))), n, 2)
    assert 0.02 < np.mean(pvals < 0.05) < 0.09


def test_gradients():
    rng = np.random.default_rng(8)
    check_grads(henze_zirkler, modes=["rev"], order=1)(rng.standard_normal((20, 2)))
    Z = rng.standard_normal((3, 12, 2))
    check_grads(lambda z: anp.sum(henze_zirkler(z) * anp.array([1.0, -2.0, 0.5])), modes=["rev"], order=1)(Z)


@pytest.mark.parametrize(
    "Z, exc, match",
    [
        ([[0.0, 1.0], [2.0, 3.0]], TypeError, "Z must be a float64 numpy array"),
        (np.zeros((4, 2), dtype=np.float32), TypeError, "Z must be a float64 numpy array"),
        (np.zeros(5), ValueError, "Z must have at least 2 dimensions"),
        (np.zeros((1, 2)), ValueError, r"n \(the rows of Z, axis -2\) must be >= 2"),
        (np.zeros((4, 0)), ValueError, r"p \(the columns of Z, axis -1\) must be >= 1"),
        (np.array([[0.0, 1.0], [np.nan, 3.0], [1.0, 1.0]]), ValueError, "Z must be finite"),
    ],
)
def test_bad_sample(Z, exc, match):
    with pytest.raises(exc, match=match):
        henze_zirkler(Z)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((1.0, 1, 2), ValueError, "n must be >= 2"),
        ((1.0, 10, 0), ValueError, "p must be >= 1"),
        ((1.0, 10.0, 2), TypeError, "n must be an integer"),
        ((-1.0, 10, 2), ValueError, "hz"),
        ((np.inf, 10, 2), ValueError, "hz"),
    ],
)
def test_bad_pvalue_input(args, exc, match):
    with pytest.raises(exc, match=match):
        henze_zirkler_pvalue(*args)


def test_a_collapsed_sample_gives_nan_and_leaves_the_others_alone():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((3, 50, 2))
    Z[1, :, 1] = 2.0 * Z[1, :, 0]               # rank 1: singular covariance
    Z[2] = 0.0                                  # every code the same
    hz = henze_zirkler(Z)
    assert np.isnan(hz[1:]).all()
    assert hz[0] == henze_zirkler(Z[0])
    # Numerically singular whatever the rounding: collinear codes with an offset, a constant column.
    for seed in range(20):
        a = np.random.default_rng(seed).standard_normal(50)
        assert np.isnan(henze_zirkler(np.stack([a, 3.0 * a + 1.0], axis=1)))
        assert np.isnan(henze_zirkler(np.stack([a, np.full(50, 2.0)], axis=1)))
    # Strongly but not exactly correlated codes still have a statistic.
    b = np.random.default_rng(1).standard_normal(50)
    assert np.isfinite(henze_zirkler(np.stack([b, b + 1e-3 * np.random.default_rng(2).standard_normal(50)], axis=1)))


@pytest.mark.parametrize("shape", [(40, 2), (3, 25, 1), (2, 30, 3)])
def test_primitive_matches_its_plain_autograd_reference(shape):
    # Values and the hand-written gradient against the formula written term
    # by term in plain autograd.
    rng = np.random.default_rng(11)
    Z = rng.standard_normal(shape) @ np.triu(np.ones((shape[-1], shape[-1])))
    np.testing.assert_allclose(henze_zirkler(Z), henze_zirkler_reference(Z), rtol=1e-12)
    w = rng.standard_normal(shape[:-2])
    fast = grad(lambda z: anp.sum(w * henze_zirkler(z)))(Z)
    ref = grad(lambda z: anp.sum(w * henze_zirkler_reference(z)))(Z)
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-12)


def test_second_derivatives_raise_instead_of_being_wrong():
    Z = np.random.default_rng(12).standard_normal((20, 2))

    def first(z):
        return anp.sum(grad(henze_zirkler)(z) ** 2)
    with pytest.raises(NotImplementedError, match="first order"):
        grad(first)(Z)
    # ... while the reference differentiates twice.
    assert np.all(np.isfinite(grad(lambda z: anp.sum(grad(henze_zirkler_reference)(z) ** 2))(Z)))


def test_an_undifferentiated_statistic_keeps_nothing_for_a_vjp():
    from training.core import _forward_cache
    _forward_cache._last.entry = None
    henze_zirkler(np.random.default_rng(13).standard_normal((20, 2)))
    assert getattr(_forward_cache._last, "entry", None) is None
