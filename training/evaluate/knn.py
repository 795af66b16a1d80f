"""Smooth k-nearest-neighbour two-sample statistic (Djolonga & Krause, 2017).

The two samples ``X`` (``n1`` points) and ``Y`` (``n2`` points) are pooled into
``N = n1 + n2`` points.  Every point ``i`` draws a set ``S`` of ``k`` neighbours
among the other ``N - 1`` points with probability proportional to
``exp(-alpha * sum_{j in S} d_ij)`` (a conditional-Poisson, or cardinality
constrained, k-subset model).  ``mu_ij = P(j in S_i)`` are the exact marginal
inclusion probabilities, ``T = sum of mu_ij over ordered pairs from different
samples`` and the reported statistic is ``-(T - E T) / sd(T)`` with the exact
mean and variance of ``T`` under a uniformly random relabelling of the pooled
points (``n1`` and ``n2`` fixed).  Large values mean the samples differ.

Marginals.  With ``w_j = exp(-alpha d_ij)`` and ``mu(m)`` the marginals for
subsets of size ``m``, ``mu_j(1) = w_j / sum(w)`` and::

    mu_j(m + 1) = (m + 1) w_j (1 - mu_j(m)) / sum_l w_l (1 - mu_l(m)),

which follows from ``e_m(w without j) = e_m(w) (1 - mu_j(m))`` for the
elementary symmetric polynomials ``e_m``.  This loop over ``k`` (four array
passes per step) is used for every row.  Its first-order rounding-error
amplification is at most about ``prod_m (m + 2) Z_1 / Z_{m+1}`` with
``Z_m = sum_l w_l (1 - mu_l(m - 1))``; it is large only when some neighbours
are almost surely picked and the others carry little weight (isolated points
or large ``alpha``).  Rows where it exceeds ``1e4`` (errors above ~1e-12), or
whose weights underflow, are recomputed with the exact forward-backward
dynamic programme for ``e_{k-1}(w without j)`` (nonnegative sums only), in
linear space after rescaling by the row maximum and, where even that
underflows, in log space.  So the marginals are accurate to ~1e-12 for any
finite input; the DP is run, batched, on the few flagged rows only.

Defaults.  The paper fixes neither ``k`` nor ``alpha``.  Here distances are
divided by the mean pairwise distance of the pooled sample (a symmetric
function of the pooled points, so the permutation moments stay exact and the
statistic is invariant to translations, rotations and global rescaling) and
``k = DEFAULT_K = 4``, ``alpha = DEFAULT_ALPHA = 5.0`` are fixed constants, the
same for every method compared.  The mean distance was preferred to the
median because a per-sample selection pass costs about as much as the rest
of the statistic; it is less robust to gross outliers.  In a small power
study (set-up and rejection rates: benchmarks/README.md), ``alpha = 5`` was
the best compromise: smaller values favour shifts and scale changes, larger
ones favour shape changes.  At that temperature ``k`` mattered little, and
under the null the normal approximation was slightly liberal.  ``k = 4``
rather than 5: at k = 5 many more rows fail the recursion's error bound and
take the slower exact dynamic programme, for no measurable gain in power.
Under exchangeability the statistic has mean 0 and variance 1 exactly.

The module is plain NumPy (not differentiable): it is an evaluation metric.

References
----------
Djolonga, J. and Krause, A. (2017). Learning implicit generative models using
differentiable graph tests. arXiv:1709.01006.
"""

from dataclasses import dataclass

import numpy as np

from analysis import checks

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_K",
    "SmoothKNNResult",
    "knn_marginals",
    "permutation_moments",
    "smooth_knn_statistic",
    "smooth_knn_test",
    "smooth_knn",
]

DEFAULT_K = 4
DEFAULT_ALPHA = 5.0
_KAPPA_MAX = 1e4  # rows whose error-amplification bound exceeds this use the DP
_TINY = 1e-250  # linear-space DP results below this are redone in log space
_CHUNK_BYTES = 2**21  # weight array of one chunk of smooth_knn_statistic (cache sized)
_PENDING_BYTES = 2**24  # marginals of samples waiting for the DP on ill-conditioned rows
_BLOCK_DEPTH = 2  # weights are evaluated on 2**(depth + 1) - 1 blocks of the upper triangle


def _check_alpha(alpha):
    return float(checks.positive("alpha", checks.scalar("alpha", alpha)))


# ----------------------------------------------------------------------------
# marginals of the k-subset model
# ----------------------------------------------------------------------------
# Layout: weights are stored item-major, ``W[..., t, r]`` = weight of item t for
# row (choosing point) r, so per-row scalars broadcast along the last axis.


def _recursion(W, k):
    """Marginals by the recursion over k for weights ``W`` of shape (..., items, rows).

    Returns the marginals (same layout) and a boolean mask of shape
    (..., 1, rows) of the rows whose error-amplification bound exceeds
    ``_KAPPA_MAX`` or whose weights underflow.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        Z1 = W.sum(axis=-2, keepdims=True)
        mu = W / Z1
        kappa = np.ones_like(Z1)
        for m in range(1, k):
            np.subtract(1.0, mu, out=mu)
            mu *= W
            Z = mu.sum(axis=-2, keepdims=True)
            mu *= (m + 1) / Z
            # exact factors are >= m + 2 since Z <= Z1; Z <= 0 or Z > Z1 is garbage
            kappa *= np.maximum(np.where(Z > 0, (m + 2) * Z1 / Z, np.inf), m + 2)
        return mu, ~((kappa <= _KAPPA_MAX) & (Z1 >= _TINY))


def _dp(X, k, log):
    """Exact marginals by the forward-backward DP over items.

    ``X`` has shape (items, rows) and holds weights (``log=False``) or log
    weights (``log=True``).  Returns the marginals with the same layout and
    ``e_k`` (or ``log e_k``) per row.  The loop over items is sequential by
    nature; it is vectorised over rows and only run on the rare rows where
    the recursion is ill-conditioned.
    """
    add, mul, zero, one = (np.logaddexp, np.add, -np.inf, 0.0) if log else (np.add, np.multiply, 0.0, 1.0)
    M, R = X.shape
    back = np.full((M + 1, k + 1, R), zero)  # back[t, m] = e_m(items >= t)
    back[:, 0] = one
    tmp = np.empty((k, R))
    for t in range(M - 1, -1, -1):
        mul(back[t + 1, :-1], X[t], out=tmp)
        add(back[t + 1, 1:], tmp, out=back[t, 1:])
    fwd = np.full((k, R), zero)  # fwd[m] = e_m(items < t)
    fwd[0] = one
    loo = np.empty((M, R))  # e_{k-1}(all items but t)
    for t in range(M):
        mul(fwd, back[t + 1, k - 1 :: -1], out=tmp)
        add.reduce(tmp, axis=0, out=loo[t])
        mul(fwd[:-1], X[t], out=tmp[1:])
        add(fwd[1:], tmp[1:], out=fwd[1:])
    total = back[0, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        if log:
            return np.exp(X + loo - total), total
        return X * loo / total, total


def _exact_rows(A, k):
    """Exact marginals for rows of exponents ``A`` (rows, items); ``inf`` excludes.

    Row ``r`` picks ``k`` items with probability proportional to
    ``exp(-sum of A[r, items])``.  Linear-space DP on weights rescaled by the
    row maximum; rows where ``e_k`` underflows are redone in log space.
    """
    R, M = A.shape
    step = max(1, _PENDING_BYTES // (8 * (M + 1) * (k + 2)))  # bounds the DP tables
    out = np.empty((R, M))
    for lo in range(0, R, step):
        logw = A[lo : lo + step].min(axis=-1, keepdims=True) - A[lo : lo + step]
        mu, total = _dp(np.ascontiguousarray(np.exp(logw).T), k, log=False)
        low = np.flatnonzero(~(total >= _TINY))
        if low.size:
            mu[:, low] = _dp(np.ascontiguousarray(logw[low].T), k, log=True)[0]
        out[lo : lo + step] = mu.T
    return out


def knn_marginals(D, k=DEFAULT_K, alpha=DEFAULT_ALPHA):
    """Exact neighbour-inclusion probabilities of the smooth k-NN graph.

    Point ``i`` picks a set ``S`` of ``k`` other points with probability
    proportional to ``exp(-alpha * sum_{j in S} D[i, j])``; the result is
    ``mu[i, j] = P(j in S)``.  For ``k = 1`` this is the softmax of
    ``-alpha * D[i, j]`` over ``j != i``.

    Parameters
    ----------
    D : array_like of float, shape (..., N, N)
        Finite non-negative dissimilarities (the diagonal is ignored; ``D``
        need not be symmetric), ``N >= 2``.  No rescaling is applied.
    k : int, optional
        Number of neighbours, ``1 <= k <= N - 1``.
    alpha : float, optional
        Inverse temperature, finite and ``> 0``.

    Returns
    -------
    ndarray of float64, shape (..., N, N)
        Marginals in ``[0, 1]`` with zero diagonal; each row sums to ``k``.

    Examples
    --------
    >>> D = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    >>> knn_marginals(D, k=1, alpha=1.0).round(4)
    array([[0.    , 0.7311, 0.2689],
           [0.5   , 0.    , 0.5   ],
           [0.2689, 0.7311, 0.    ]])
    >>> knn_marginals(D, k=2, alpha=1.0)
    array([[0., 1., 1.],
           [1., 0., 1.],
           [1., 1., 0.]])
    """
    D = checks.real_array("D", D, 2)
    N = D.shape[-1]
    if D.shape[-2] != N or N < 2:
        raise ValueError(f"D must have shape (..., N, N) with N >= 2, got {D.shape}")
    if np.any(D < 0):
        raise ValueError("D must be non-negative")
    k = checks.integer("k", k, 1, N - 1)
    alpha = _check_alpha(alpha)
    A = (alpha * D).reshape(-1, N, N)
    A[:, np.arange(N), np.arange(N)] = np.inf
    mu, bad = _recursion(np.exp(-A.transpose(0, 2, 1)), k)
    b, _, r = np.nonzero(bad)
    mu[b, :, r] = _exact_rows(A[b, r], k)
    return mu.transpose(0, 2, 1).reshape(D.shape)


# ----------------------------------------------------------------------------
# permutation null of the cross-sample sum
# ----------------------------------------------------------------------------
def _moments(S, n1):
    """Permutation mean and variance of the cross sum, from ``S = mu + mu^T``.

    ``S`` has shape (B, N, N), is contiguous and has a zero diagonal.
    """
    B, N, _ = S.shape
    n2 = N - n1
    degree = S.sum(axis=-1)
    total = 0.5 * degree.sum(axis=-1)  # sum of mu
    node = np.einsum("bi,bi->b", degree, degree)
    flat = S.reshape(B, 1, N * N)
    same = 0.5 * np.matmul(flat, flat.transpose(0, 2, 1))[:, 0, 0]  # sum mu_ij (mu_ij + mu_ji)
    p1 = 2.0 * n1 * n2 / (N * (N - 1))
    p2 = p1 / 2.0
    p3 = p1 * 2.0 * (n1 - 1) * (n2 - 1) / ((N - 2) * (N - 3))
    mean = p1 * total
    second = p1 * same + p2 * (node - 2.0 * same) + p3 * (total**2 - node + same)
    return mean, second - mean**2


def permutation_moments(mu, n1):
    """Exact mean and variance of the cross-sample sum under relabelling.

    ``T = sum over ordered pairs (i, j), i != j, with i and j in different
    samples, of mu[i, j]``, where the first ``n1`` of the ``N`` points form
    one sample.  Under a uniformly random permutation of the labels, with
    ``p1 = 2 n1 n2 / (N (N - 1))`` (pair split), ``p2 = p1 / 2`` (two pairs
    sharing a point both split) and ``p3 = 4 n1 n2 (n1 - 1)(n2 - 1) /
    (N (N - 1)(N - 2)(N - 3))`` (two disjoint pairs split)::

        E T   = p1 m
        E T^2 = p1 s + p2 (sum_i d_i^2 - 2 s) + p3 (m^2 - sum_i d_i^2 + s)

    with ``m = sum mu``, ``s = sum mu_ij (mu_ij + mu_ji)`` and ``d_i`` the
    total (in plus out) weight at point ``i``; this is the Friedman--Rafsky /
    Chen--Friedman computation for the weighted directed graph ``mu``.

    Parameters
    ----------
    mu : array_like of float, shape (..., N, N)
        Edge weights; the diagonal is ignored.  ``N >= 4``.
    n1 : int
        Size of the first sample, ``1 <= n1 <= N - 1``.

    Returns
    -------
    mean, var : ndarray of float64, shape (...)

    Examples
    --------
    >>> mu = np.ones((4, 4)) - np.eye(4)
    >>> permutation_moments(mu, 2)
    (array(8.), array(0.))
    """
    mu = checks.real_array("mu", mu, 2)
    N = mu.shape[-1]
    if mu.shape[-2] != N or N < 4:
        raise ValueError(f"mu must have shape (..., N, N) with N >= 4, got {mu.shape}")
    n1 = checks.integer("n1", n1, 1, N - 1)
    lead = mu.shape[:-2]
    mu = (mu * (1.0 - np.eye(N))).reshape(-1, N, N)
    mean, var = _moments(mu + mu.transpose(0, 2, 1), n1)
    return mean.reshape(lead), var.reshape(lead)


def _cross_standardised(mu, n1):
    """``-(T - E T) / sd(T)`` for marginals ``mu`` (B, N, N), either orientation."""
    S = mu + mu.transpose(0, 2, 1)
    mean, var = _moments(S, n1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (mean - S[:, :n1, n1:].sum(axis=(-2, -1))) / np.sqrt(var)


# ----------------------------------------------------------------------------
# the statistic
# ----------------------------------------------------------------------------
def _blocks(lo, hi, depth):
    """Blocks covering the upper triangle of ``[lo, hi)^2``: (r0, r1, c0, c1, off)."""
    if depth == 0 or hi - lo < 64:
        return [(lo, hi, lo, hi, False)]
    mid = (lo + hi) // 2
    return _blocks(lo, mid, depth - 1) + _blocks(mid, hi, depth - 1) + [(lo, mid, mid, hi, True)]


def _weights(Z, alpha):
    """Symmetric weights ``exp(-c d_ij)`` of pooled samples ``Z`` (B, N, d).

    ``c = alpha / mean pairwise distance`` per sample (``c = 0`` when all
    points coincide).  The diagonal is zero.  Distances come from one matrix
    product of augmented coordinates; square roots and exponentials are
    only evaluated on the blocks of the upper triangle.  Returns ``(E, c)``.
    """
    B, N, _ = Z.shape
    Zc = Z - Z.mean(axis=1, keepdims=True)
    sq = np.einsum("bnd,bnd->bn", Zc, Zc)[..., None]
    one = np.ones_like(sq)
    left = np.concatenate([Zc, sq, one], axis=-1)
    right = np.concatenate([-2.0 * Zc, one, sq], axis=-1).transpose(0, 2, 1)
    blocks = _blocks(0, N, _BLOCK_DEPTH)
    values = []
    total = np.zeros(B)
    for r0, r1, c0, c1, off in blocks:
        V = np.matmul(left[:, r0:r1], right[:, :, c0:c1])
        np.maximum(V, 0.0, out=V)
        np.sqrt(V, out=V)
        if not off:
            V.reshape(B, -1)[:, :: r1 - r0 + 1] = 0.0
        total += (2.0 if off else 1.0) * V.sum(axis=(1, 2))
        values.append(V)
    c = np.divide(alpha * N * (N - 1), total, out=np.zeros_like(total), where=total > 0)
    E = np.empty((B, N, N))
    for (r0, r1, c0, c1, off), V in zip(blocks, values):
        V *= -c[:, None, None]
        np.exp(V, out=V)
        E[:, r0:r1, c0:c1] = V
        if off:
            E[:, c0:c1, r0:r1] = V.transpose(0, 2, 1)
    E.reshape(B, N * N)[:, :: N + 1] = 0.0
    return E, c


def _exponent_rows(Z, c, b, r):
    """Exponents ``c[b] * |Z[b, r] - Z[b, j]|`` (rows, N), ``inf`` at ``j = r``."""
    A = np.sqrt(np.sum((Z[b] - Z[b, r][:, None, :]) ** 2, axis=-1)) * c[b][:, None]
    A[np.arange(len(r)), r] = np.inf
    return A


def _finish_flagged(pending, k, n1):
    """Statistics of samples whose flagged rows still need the exact DP.

    ``pending`` holds tuples (sample indices, their marginals, position of
    each flagged row's sample within them, flagged row, its exponents).  All
    flagged rows go through one batched DP.  Returns (indices, statistics).
    """
    idx = np.concatenate([p[0] for p in pending])
    mus = np.concatenate([p[1] for p in pending])
    offsets = np.cumsum([0] + [len(p[0]) for p in pending[:-1]])
    pos = np.concatenate([p[2] + o for p, o in zip(pending, offsets)])
    rows = np.concatenate([p[3] for p in pending])
    mus[pos, :, rows] = _exact_rows(np.concatenate([p[4] for p in pending]), k)
    return idx, _cross_standardised(mus, n1)


def smooth_knn_statistic(X, Y, k=DEFAULT_K, alpha=DEFAULT_ALPHA):
    """Standardised smooth k-NN two-sample statistic (Djolonga & Krause).

    The pooled points are rescaled by their mean pairwise Euclidean distance,
    ``mu = knn_marginals(D / mean(D), k, alpha)`` and the result is
    ``-(T - E T) / sd(T)`` with ``T`` the sum of ``mu`` over ordered
    cross-sample pairs and the moments of :func:`permutation_moments`.  When
    ``X`` and ``Y`` are exchangeable (same distribution) it has mean 0 and
    variance 1 exactly; large values indicate different distributions.  It
    is invariant to permutations within each sample, translations, rotations
    and global rescaling.  Degenerate inputs (all pooled points equal) give
    ``nan``.  Distances use the Gram identity on centred coordinates, so a
    pair at distance ``d`` carries a relative error of about
    ``1e-16 |z|^2 / d^2`` (negligible unless near-duplicates lie far out).

    Parameters
    ----------
    X : array_like of float, shape (..., n1, d)
        First sample(s), ``n1 >= 2``.
    Y : array_like of float, shape (..., n2, d)
        Second sample(s), ``n2 >= 2``; leading axes broadcast against ``X``.
    k : int, optional
        Number of neighbours, ``1 <= k <= n1 + n2 - 2``.  Default 4.
    alpha : float, optional
        Inverse temperature in units of the mean pairwise distance, finite
        and ``> 0``.  Default 5.0 (see the module docstring).

    Returns
    -------
    ndarray of float64, shape (...)
        The statistic for each pair of samples.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(float(smooth_knn_statistic(X, X + 0.1)), 6)
    -0.86831
    >>> round(float(smooth_knn_statistic(X, X + 5.0)), 6)
    4.440856
    >>> smooth_knn_statistic(np.stack([X, X]), np.stack([X + 0.1, X + 5.0])).shape
    (2,)
    """
    X = checks.real_array("X", X, 2)
    Y = checks.real_array("Y", Y, 2)
    n1, d = X.shape[-2:]
    n2 = Y.shape[-2]
    if Y.shape[-1] != d:
        raise ValueError(f"X and Y must have the same dimension d, got {d} and {Y.shape[-1]}")
    checks.integer("n1 (X.shape[-2])", n1, 2)
    checks.integer("n2 (Y.shape[-2])", n2, 2)
    if d < 1:
        raise ValueError("X and Y must have d >= 1 columns")
    k = checks.integer("k", k, 1, n1 + n2 - 2)
    alpha = _check_alpha(alpha)
    try:
        lead = np.broadcast_shapes(X.shape[:-2], Y.shape[:-2])
    except ValueError:
        raise ValueError(f"leading axes of X {X.shape[:-2]} and Y {Y.shape[:-2]} do not broadcast") from None
    N = n1 + n2
    Z = np.concatenate(
        [np.broadcast_to(X, lead + (n1, d)), np.broadcast_to(Y, lead + (n2, d))], axis=-2
    ).reshape(-1, N, d)
    stats = np.empty(len(Z))
    chunk = max(1, _CHUNK_BYTES // (16 * N * N))
    pending = []  # samples with rows flagged by the recursion, see _finish_flagged
    for start in range(0, len(Z), chunk):
        Zc = Z[start : start + chunk]
        E, c = _weights(Zc, alpha)
        mu, bad = _recursion(E, k)  # E is symmetric: item-major == row-major
        b, _, r = np.nonzero(bad)
        if b.size == 0:
            stats[start : start + len(Zc)] = _cross_standardised(mu, n1)
        else:
            reps, pos = np.unique(b, return_inverse=True)
            good = np.setdiff1d(np.arange(len(Zc)), reps)
            if good.size:
                stats[start + good] = _cross_standardised(mu[good], n1)
            pending.append((start + reps, mu[reps], pos, r, _exponent_rows(Zc, c, b, r)))
        if pending and (sum(p[1].nbytes for p in pending) > _PENDING_BYTES or start + chunk >= len(Z)):
            idx, values = _finish_flagged(pending, k, n1)
            stats[idx] = values
            pending = []
    degenerate = np.all(Z == Z[:, :1], axis=(1, 2))
    stats[degenerate] = np.nan
    return stats.reshape(lead)


# ----------------------------------------------------------------------------
# repeated test
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SmoothKNNResult:
    """Summary of :func:`smooth_knn_test`.

    Attributes
    ----------
    mean : float
        Mean of the per-repetition statistics.
    std : float
        Their standard deviation (``ddof=1``).
    stats : ndarray of float64, shape (repeats,)
        The per-repetition statistics.
    """

    mean: float
    std: float
    stats: np.ndarray


def _subsample_indices(rng, M, n, size):
    """``size`` independent uniformly random ``n``-subsets of ``range(M)``."""
    if n * (n - 1) <= M:  # rejection of draws with repeats: acceptance >= exp(-1/2)
        idx = rng.integers(0, M, size=(size, n))
        while True:
            srt = np.sort(idx, axis=1)
            redo = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))
            if redo.size == 0:
                return idx
            idx[redo] = rng.integers(0, M, size=(redo.size, n))
    rows = max(1, 2**22 // M)  # n smallest of M uniforms, a few rows at a time
    return np.concatenate(
        [
            np.argpartition(rng.random((min(rows, size - i), M)), n - 1, axis=1)[:, :n]
            for i in range(0, size, rows)
        ]
    )


def _draw(name, sampler, rng, n, size):
    """``size`` samples of ``n`` points from a callable or a data array."""
    if callable(sampler):
        out = checks.real_array(f"{name}(rng, size)", sampler(rng, size * n), 2)
        if out.ndim != 2 or out.shape[0] != size * n:
            raise ValueError(f"{name}(rng, size) must return shape (size, d), got {out.shape}")
        return out.reshape(size, n, out.shape[1])
    return sampler[_subsample_indices(rng, len(sampler), n, size)]


def smooth_knn_test(
    sample_p,
    sample_q,
    rng,
    n=100,
    repeats=20000,
    k=DEFAULT_K,
    alpha=DEFAULT_ALPHA,
    chunk=1000,
):
    """Average smooth k-NN statistic over repeated ``n`` vs ``n`` comparisons.

    Each repetition draws ``n`` points from each of ``sample_p`` and
    ``sample_q`` and computes :func:`smooth_knn_statistic`; repetitions are
    vectorised in chunks.

    Parameters
    ----------
    sample_p, sample_q : callable or array_like of shape (M, d)
        Either ``f(rng, size) -> array of shape (size, d)`` (called once per
        chunk with ``size = chunk * n``), or a data set from which each
        repetition takes ``n`` distinct rows uniformly at random
        (``M >= n``).  Both must have the same ``d``.
    rng : numpy.random.Generator
        Source of all randomness.
    n : int, optional
        Points per sample and repetition, ``n >= 2``.
    repeats : int, optional
        Number of repetitions, ``>= 1``.
    k, alpha : optional
        Passed to :func:`smooth_knn_statistic`; ``1 <= k <= 2 n - 2``.
    chunk : int, optional
        Repetitions drawn per chunk (``>= 1``).  The statistic works through
        each chunk in cache-sized pieces, so the working memory stays near or
        below 100 MB whatever ``chunk`` is (the drawn points themselves take
        ``16 chunk n d`` bytes).  Results for a given seed depend on
        ``chunk`` when a sampler is a callable.

    Returns
    -------
    SmoothKNNResult
        ``mean``, ``std`` and per-repetition ``stats``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> gauss = lambda rng, size: rng.standard_normal((size, 2))
    >>> res = smooth_knn_test(gauss, gauss, rng, n=20, repeats=100)
    >>> res.stats.shape, abs(res.mean) < 0.5
    ((100,), True)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n = checks.integer("n", n, 2)
    repeats = checks.integer("repeats", repeats, 1)
    k = checks.integer("k", k, 1, 2 * n - 2)
    alpha = _check_alpha(alpha)
    samplers = {}
    for name, sampler in (("sample_p", sample_p), ("sample_q", sample_q)):
        if not callable(sampler):
            sampler = checks.real_array(name, sampler, 2)
            if sampler.ndim != 2 or sampler.shape[0] < n:
                raise ValueError(f"{name} must have shape (M, d) with M >= n={n}, got {sampler.shape}")
        samplers[name] = sampler
    chunk = checks.integer("chunk", chunk, 1)
    stats = []
    for start in range(0, repeats, chunk):
        size = min(chunk, repeats - start)
        X = _draw("sample_p", samplers["sample_p"], rng, n, size)
        Y = _draw("sample_q", samplers["sample_q"], rng, n, size)
        if X.shape[-1] != Y.shape[-1]:
            raise ValueError(f"sample_p and sample_q must have the same d, got {X.shape[-1]} and {Y.shape[-1]}")
        stats.append(smooth_knn_statistic(X, Y, k=k, alpha=alpha))
    stats = np.concatenate(stats)
    std = float(stats.std(ddof=1)) if repeats > 1 else float("nan")
    return SmoothKNNResult(mean=float(stats.mean()), std=std, stats=stats)


def smooth_knn(data, theta, rng, n=100, repeats=20000, k=DEFAULT_K, alpha=DEFAULT_ALPHA):
    """Smooth k-NN statistic between p(x) (the truth) and p_theta(x), averaged (docs/theory.md (T.60)).

    Each repetition compares ``n`` fresh draws of the true model with ``n``
    draws of the learned one (both ancestral samples); the paper's 100 vs 100,
    20 000 times. Smaller means closer.

    Parameters
    ----------
    data : training.datasets.Dataset
        With ``truth`` (the generating parameters).
    theta : pytree
        One restart (leading axis 1).

    Returns
    -------
    training.evaluate.knn.SmoothKNNResult
    """
    if data.truth is None:
        raise ValueError("data.truth is None: the smooth k-NN test needs the generating model")
    lik = data.likelihood

    def model(g, size):
        return lik.sample(theta, size, g)[0][0]

    def truth(g, size):
        return data.sample_truth(g, size)

    return smooth_knn_test(truth, model, rng, n=n, repeats=repeats, k=k, alpha=alpha)
