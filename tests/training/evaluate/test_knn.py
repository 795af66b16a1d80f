"""Tests for training.evaluate.knn (smooth k-NN two-sample statistic)."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from training.evaluate import knn
from training.evaluate.knn import (DEFAULT_ALPHA, DEFAULT_K, knn_marginals, permutation_moments, smooth_knn_statistic, smooth_knn_test, SmoothKNNResult)


def distances(Z):
    return np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))


def brute_marginals(D, k, alpha):
    """Enumerate every k-subset of the other points, in log space."""
    N = D.shape[0]
    mu = np.zeros((N, N))
    for i in range(N):
        subsets = np.array(list(itertools.combinations([j for j in range(N) if j != i], k)))
        logp = -alpha * D[i, subsets].sum(axis=1)
        p = np.exp(logp - logsumexp(logp))
        np.add.at(mu[i], subsets.ravel(), np.repeat(p, k))
    return mu


def cross_sum(mu, labels):
    return mu[np.ix_(labels, ~labels)].sum() + mu[np.ix_(~labels, labels)].sum()


def reference_statistic(X, Y, k, alpha):
    """Direct implementation: scaled distances, brute-force marginals, enumerated null."""
    Z = np.concatenate([X, Y])
    N, n1 = len(Z), len(X)
    D = distances(Z)
    mu = brute_marginals(D / (D.sum() / (N * (N - 1))), k, alpha)
    values = []
    for split in itertools.combinations(range(N), n1):
        labels = np.zeros(N, dtype=bool)
        labels[list(split)] = True
        values.append(cross_sum(mu, labels))
    values = np.array(values)
    return -(cross_sum(mu, np.arange(N) < n1) - values.mean()) / values.std()


# ---------------------------------------------------------------------------
# marginals
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("alpha", [0.5, 5.0, 60.0])
def test_marginals_match_enumeration(k, alpha):
    rng = np.random.default_rng(k)
    Z = rng.standard_normal((8, 2))
    Z[0] += 6.0  # an isolated point: concentrated rows at large alpha
    D = distances(Z)
    mu = knn_marginals(D, k=k, alpha=alpha)
    np.testing.assert_allclose(mu, brute_marginals(D, k, alpha), rtol=0, atol=1e-11)
    assert np.all(mu >= 0) and np.all(mu <= 1 + 1e-12)
    np.testing.assert_allclose(mu.sum(axis=-1), k, rtol=1e-12)
    np.testing.assert_array_equal(np.diag(mu), 0.0)


def test_marginals_asymmetric_and_batched():
    rng = np.random.default_rng(10)
    D = rng.exponential(size=(2, 3, 7, 7))
    mu = knn_marginals(D, k=3, alpha=2.0)
    assert mu.shape == D.shape
    for idx in np.ndindex(2, 3):
        np.testing.assert_allclose(mu[idx], brute_marginals(D[idx], 3, 2.0), atol=1e-12)


def test_marginals_k1_is_softmax():
    rng = np.random.default_rng(11)
    D = distances(rng.standard_normal((30, 3)))
    logits = np.where(np.eye(30, dtype=bool), -np.inf, -3.0 * D)
    np.testing.assert_allclose(knn_marginals(D, k=1, alpha=3.0), softmax(logits, axis=1), rtol=1e-12, atol=1e-300)


def test_marginals_large_sample_properties():
    rng = np.random.default_rng(12)
    D = distances(rng.standard_t(2, size=(150, 2)))
    mu = knn_marginals(D / D.mean(), k=5, alpha=20.0)
    assert np.all(mu >= 0) and np.all(mu <= 1 + 1e-12)
    np.testing.assert_allclose(mu.sum(axis=-1), 5.0, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 4])
def test_ill_conditioned_rows_use_exact_dp(k):
    """Rows the k-recursion cannot handle (underflow, dominant neighbours) are exact."""
    Z = np.array([[0.0, 0.0], [0.01, 0.0], [0.3, 0.2], [0.5, -0.1], [1.0, 1.0], [50.0, 0.0], [50.02, 0.0], [0.7, 0.4]])
    D = distances(Z)
    alpha = 40.0
    A = alpha * D
    np.fill_diagonal(A, np.inf)
    _, bad = knn._recursion(np.exp(-A.T)[None], k)
    assert bad.any()  # the fast path hands over some rows...
    logw = A.min(axis=1, keepdims=True) - A
    assert np.any((np.exp(logw) > 0).sum(axis=1) < k)  # ...some even underflow in linear space...
    mu = knn_marginals(D, k=k, alpha=alpha)  # ...and the result is still exact
    np.testing.assert_allclose(mu, brute_marginals(D, k, alpha), rtol=0, atol=1e-12)


def test_dp_linear_and_log_agree_with_enumeration():
    rng = np.random.default_rng(13)
    D = distances(rng.standard_normal((7, 2)))
    A = 3.0 * D
    np.fill_diagonal(A, np.inf)
    ref = brute_marginals(D, 3, 3.0)
    lin, _ = knn._dp(np.exp(-A).T.copy(), 3, log=False)
    log, _ = knn._dp((-A).T.copy(), 3, log=True)
    np.testing.assert_allclose(lin.T, ref, atol=1e-14)
    np.testing.assert_allclose(log.T, ref, atol=1e-13)


# ---------------------------------------------------------------------------
# permutation moments
# ---------------------------------------------------------------------------
def test_permutation_moments_exact_by_enumeration():
    rng = np.random.default_rng(20)
    N, n1 = 10, 4
    mu = rng.uniform(size=(N, N))  # any weighted directed graph
    mean, var = permutation_moments(mu, n1)
    np.fill_diagonal(mu, 0.0)
    values = []
    for split in itertools.combinations(range(N), n1):
        labels = np.zeros(N, dtype=bool)
        labels[list(split)] = True
        values.append(cross_sum(mu, labels))
    np.testing.assert_allclose(mean, np.mean(values), rtol=1e-12)
    np.testing.assert_allclose(var, np.var(values), rtol=1e-10)


def test_permutation_moments_monte_carlo():
    rng = np.random.default_rng(21)
    Z = rng.standard_normal((14, 2))
    mu = knn_marginals(distances(Z), k=3, alpha=2.0)
    n1 = 6
    mean, var = permutation_moments(mu, n1)
    perms = rng.permuted(np.tile(np.arange(14), (5000, 1)), axis=1)
    labels = perms < n1
    T = np.einsum("pi,ij,pj->p", labels, mu, ~labels) + np.einsum("pi,ij,pj->p", ~labels, mu, labels)
    assert abs(T.mean() - mean) < 4 * np.sqrt(var / 5000)
    assert abs(T.var() / var - 1) < 4 * np.sqrt(2 / 5000) * 1.5


def test_permutation_moments_batched_and_diagonal_ignored():
    rng = np.random.default_rng(22)
    mu = rng.uniform(size=(3, 6, 6))
    mean, var = permutation_moments(mu, 2)
    assert mean.shape == var.shape == (3,)
    zeroed = mu * (1 - np.eye(6))
    for b in range(3):
        np.testing.assert_allclose(permutation_moments(zeroed[b], 2), (mean[b], var[b]), rtol=1e-13)


# ---------------------------------------------------------------------------
# the statistic
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k, alpha", [(1, 5.0), (3, 5.0), (2, 30.0)])
def test_statistic_matches_direct_reference(k, alpha):
    rng = np.random.default_rng(30 + k)
    X = rng.standard_normal((5, 2))
    Y = rng.standard_normal((4, 2)) + np.array([1.0, 0.0])
    np.testing.assert_allclose(smooth_knn_statistic(X, Y, k=k, alpha=alpha), reference_statistic(X, Y, k, alpha), rtol=1e-9)


def test_statistic_exact_null_moments_over_relabellings():
    """Over all splits of one pooled sample the statistic has mean 0 and variance 1."""
    rng = np.random.default_rng(31)
    Z = rng.standard_normal((10, 3))
    splits = [list(s) for s in itertools.combinations(range(10), 4)]
    X = np.stack([Z[s] for s in splits])
    Y = np.stack([np.delete(Z, s, axis=0) for s in splits])
    stats = smooth_knn_statistic(X, Y)
    assert abs(stats.mean()) < 1e-10
    assert abs(stats.var() - 1) < 1e-10


def test_statistic_invariances():
    rng = np.random.default_rng(32)
    X = rng.standard_normal((40, 3))
    Y = rng.standard_normal((35, 3)) * 1.3
    base = smooth_knn_statistic(X, Y)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    moved = smooth_knn_statistic(7.0 * X @ Q + 3.0, 7.0 * Y @ Q + 3.0)
    np.testing.assert_allclose(moved, base, rtol=1e-9)
    np.testing.assert_allclose(smooth_knn_statistic(Y, X), base, rtol=1e-10)
    np.testing.assert_allclose(smooth_knn_statistic(X[::-1], Y[rng.permutation(35)]), base, rtol=1e-10)


def test_statistic_null_and_alternative():
    rng = np.random.default_rng(33)
    X = rng.standard_normal((300, 50, 2))
    Y = rng.standard_normal((300, 50, 2))
    null = smooth_knn_statistic(X, Y)
    assert abs(null.mean()) < 4 / np.sqrt(300)
    assert 0.8 < null.std() < 1.2
    shifted = smooth_knn_statistic(X[:20], Y[:20] + np.array([1.5, 0.0]))
    assert np.all(shifted > 3)


def test_statistic_batched_equals_per_item_and_broadcasts():
    rng = np.random.default_rng(34)
    X = rng.standard_normal((2, 3, 20, 2))
    Y = rng.standard_normal((3, 15, 2)) + 0.5  # broadcasts against X's leading axes
    batched = smooth_knn_statistic(X, Y, k=4, alpha=8.0)
    assert batched.shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        np.testing.assert_allclose(batched[i, j], smooth_knn_statistic(X[i, j], Y[j], k=4, alpha=8.0), rtol=1e-12)


def test_statistic_many_chunks_and_flagged_rows(monkeypatch):
    """Chunking and the batched DP for ill-conditioned rows do not change results."""
    rng = np.random.default_rng(35)
    X = rng.standard_t(1.5, size=(9, 30, 2))
    Y = rng.standard_t(1.5, size=(9, 30, 2))
    ref = np.array([smooth_knn_statistic(X[b], Y[b], k=4, alpha=30.0) for b in range(9)])
    monkeypatch.setattr(knn, "_CHUNK_BYTES", 16 * 60 * 60 * 2)  # 2 samples per chunk
    monkeypatch.setattr(knn, "_PENDING_BYTES", 8 * 60 * 60 * 3)  # flush every few samples
    np.testing.assert_allclose(smooth_knn_statistic(X, Y, k=4, alpha=30.0), ref, rtol=1e-12)
    for b in range(9):  # each sample against the direct (all-DP) computation
        Z = np.concatenate([X[b], Y[b]])
        D = distances(Z)
        mu = knn_marginals(D / (D.sum() / (60 * 59)), k=4, alpha=30.0)
        labels = np.arange(60) < 30
        mean, var = permutation_moments(mu, 30)
        np.testing.assert_allclose(ref[b], -(cross_sum(mu, labels) - mean) / np.sqrt(var), rtol=1e-8)


def test_statistic_degenerate_sample_is_nan():
    assert np.isnan(smooth_knn_statistic(np.ones((3, 2)), np.ones((4, 2))))


# ---------------------------------------------------------------------------
# repeated test
# ---------------------------------------------------------------------------
def gauss(rng, size):
    return rng.standard_normal((size, 2))


def test_smooth_knn_test_reproducible_with_callables():
    a = smooth_knn_test(gauss, gauss, np.random.default_rng(40), n=15, repeats=50, chunk=16)
    b = smooth_knn_test(gauss, gauss, np.random.default_rng(40), n=15, repeats=50, chunk=16)
    c = smooth_knn_test(gauss, gauss, np.random.default_rng(41), n=15, repeats=50, chunk=16)
    assert isinstance(a, SmoothKNNResult)
    assert a.stats.shape == (50,)
    np.testing.assert_array_equal(a.stats, b.stats)
    assert a.mean == b.mean and a.std == b.std
    assert not np.array_equal(a.stats, c.stats)
    assert a.mean == pytest.approx(a.stats.mean()) and a.std == pytest.approx(a.stats.std(ddof=1))


def test_smooth_knn_test_arrays_and_mixed():
    rng = np.random.default_rng(42)
    data_small = rng.standard_normal((40, 2))  # argpartition path (M < n (n - 1))
    data_large = rng.standard_normal((5000, 2)) + np.array([2.0, 0.0])  # rejection path
    same = smooth_knn_test(data_small, gauss, np.random.default_rng(1), n=20, repeats=60)
    again = smooth_knn_test(data_small, gauss, np.random.default_rng(1), n=20, repeats=60)
    np.testing.assert_array_equal(same.stats, again.stats)
    assert abs(same.mean) < 1.0
    differ = smooth_knn_test(gauss, data_large, np.random.default_rng(2), n=20, repeats=60)
    assert differ.mean > 3


@pytest.mark.parametrize("M, n", [(12, 5), (30, 30), (10_000, 20)])
def test_subsample_indices_distinct_and_uniform(M, n):
    idx = knn._subsample_indices(np.random.default_rng(43), M, n, 3000)
    assert idx.shape == (3000, n)
    assert np.all(np.sort(idx, axis=1)[:, 1:] != np.sort(idx, axis=1)[:, :-1])
    assert idx.min() >= 0 and idx.max() < M
    if M <= 30:
        counts = np.bincount(idx.ravel(), minlength=M)
        expected = 3000 * n / M
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
X_OK = np.zeros((5, 2)) + np.arange(5.0)[:, None]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(X=np.zeros(5)), ValueError, "X must have at least 2 dimensions"),
        (dict(X=np.zeros((1, 2))), ValueError, "n1"),
        (dict(Y=np.zeros((1, 2))), ValueError, "n2"),
        (dict(Y=np.zeros((5, 3))), ValueError, "same dimension"),
        (dict(X=np.full((5, 2), np.nan)), ValueError, "X must be finite"),
        (dict(Y=np.array([["a", "b"], ["c", "d"]])), TypeError, "Y must be a real array-like"),
        (dict(k=0), ValueError, r"k must be in \[1, 8\]"),
        (dict(k=9), ValueError, r"k must be in \[1, 8\]"),
        (dict(k=2.0), TypeError, "k must be an integer"),
        (dict(alpha=0.0), ValueError, "alpha must be > 0"),
        (dict(alpha=np.inf), ValueError, "alpha"),
        (dict(alpha="1"), TypeError, "alpha"),
        (dict(X=np.zeros((2, 5, 2)), Y=np.zeros((3, 5, 2))), ValueError, "broadcast"),
    ],
)
def test_statistic_bad_input(kwargs, exc, match):
    args = dict(X=X_OK, Y=X_OK + 0.5, k=2, alpha=1.0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        smooth_knn_statistic(**args)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: knn_marginals(np.ones((3, 4))), ValueError, "shape"),
        (lambda: knn_marginals(-np.ones((3, 3))), ValueError, "non-negative"),
        (lambda: knn_marginals(np.ones((3, 3)), k=3), ValueError, r"k must be in \[1, 2\]"),
        (lambda: knn_marginals(np.ones((3, 3)), k=1, alpha=-1.0), ValueError, "alpha"),
        (lambda: permutation_moments(np.ones((3, 3)), 1), ValueError, "N >= 4"),
        (lambda: permutation_moments(np.ones((5, 5)), 5), ValueError, r"n1 must be in \[1, 4\]"),
    ],
)
def test_marginals_and_moments_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(rng=np.random.RandomState(0)), TypeError, "rng must be a numpy.random.Generator"),
        (dict(n=1), ValueError, "n must be >= 2"),
        (dict(repeats=0), ValueError, "repeats must be >= 1"),
        (dict(chunk=0), ValueError, "chunk must be >= 1"),
        (dict(k=20), ValueError, r"k must be in \[1, 18\]"),
        (dict(alpha=-2.0), ValueError, "alpha"),
        (dict(sample_p=np.zeros((5, 2))), ValueError, "M >= n"),
        (dict(sample_p=np.zeros(50)), ValueError, "sample_p must have at least 2 dimensions"),
        (dict(sample_q=lambda rng, size: np.zeros(size)), ValueError, "sample_q"),
        (dict(sample_q=lambda rng, size: np.zeros((size + 1, 2))), ValueError, "shape"),
        (dict(sample_q=lambda rng, size: np.zeros((size, 3))), ValueError, "same d"),
    ],
)
def test_smooth_knn_test_bad_input(kwargs, exc, match):
    args = dict(sample_p=gauss, sample_q=gauss, rng=np.random.default_rng(0), n=10, repeats=3)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        smooth_knn_test(**args)


def test_defaults_documented():
    assert (DEFAULT_K, DEFAULT_ALPHA) == (4, 5.0)
    assert str(DEFAULT_K) in smooth_knn_statistic.__doc__ and str(DEFAULT_ALPHA) in smooth_knn_statistic.__doc__
