"""Deterministic log-likelihood log p_theta(x) of a 1- or 2-D latent model by adaptive quadrature.

For a likelihood ``x | z ~ N(f_theta(z), diag(psi))`` with prior ``z ~ N(0, I_K)``,
K <= 2, :func:`log_likelihood_quadrature` computes, per restart and point,

    log p_theta(x) = log  integral  exp g(z) dz,   g(z) = log N(x; f(z), psi) + log N(z; 0, I),

with an error estimate: a reference that needs no encoder and no sampling.

Method
------
1. *Modes.* Per point, candidates are the best node and up to three other
   local maxima (within 30 nats of the best) of g on a grid of 61^K nodes over
   [-6, 6]^K (the mean evaluated once per restart on the grid), plus the
   likelihood's own hint :meth:`training.models.Likelihood.mode_guess` when it
   has one. Each is refined by damped Gauss-Newton on -g (exact Jacobians J
   of f by autograd; H = J^T diag(1/psi) J + I; Armijo backtracking);
   candidates within 0.1 posterior sd (under H) of a better one are the same
   mode; at most 4 modes are kept, all within 40 nats of Laplace mass of the
   best.
2. *Frame and box.* Along each eigenvector of H at a mode, g is probed on both
   sides at distances sigma 2^(j/2), j = -10..10 (sigma the Laplace sd). The
   distances where g has first dropped by 2 nats give the frame: a centre
   (their midpoint) and a scale per axis (that of the Gaussian dropping 2 nats
   there; for a Gaussian g, exactly the Laplace approximation). Those where g
   has dropped by 30 nats, times 1.1, give the mode's box. The point's box is
   the bounding box, in the best mode's frame u (z = c + S u), of all its
   modes' boxes.
3. *Rule.* The tensor-product midpoint rule with n nodes per dimension on the
   box integrates exp g (in log space), for n = 8, 12, 16, 24, 32, 48, ...
   up to ``max_order``: exponentially convergent for smooth integrands that
   are negligible at the box's rim. A point is converged once
   |log I_n - log I_prev| <= ``tol`` (its error estimate, conservative for
   I_n) and its rim carries less than 1e-3 ``tol`` of the mass; a box whose rim
   carries more grows by 1.5. Only unconverged points go on.

Why not the Gauss-Hermite mixture rule (Laplace-scaled Gaussians per mode
and a partition of unity) that was tried first: the CubicJTEx posteriors are
peaks on plateaus (the flat cube (W z)^3 near 0 leaves a shoulder a few nats
below the peak) with steep sextic walls, on which Gauss-Hermite rules on any
Gaussian proposal, or ladder of them, still differed by ~1e-3 at 128^2 nodes
per point; the uniform midpoint rule on a box resolves peak, plateau and walls
alike (all 500 CubicJTEx test points converge). One box per point counts each
region once by construction. The price: modes far apart and much narrower
than their distance need many nodes (they are reported unconverged if
``max_order`` is not enough).

All restarts and points are one array program per step (chunked to bound
memory); loops run only over refinement levels, Newton iterations and
candidate modes.
"""
import warnings
from itertools import product
from typing import NamedTuple

import numpy as np
from autograd import make_vjp
from scipy.special import logsumexp

from analysis import checks

from ..models.likelihoods import LOG_2PI, Likelihood

__all__ = ["log_likelihood_quadrature", "log_likelihood_quadrature_with_error", "QuadratureResult"]

GRID_HALF_WIDTH = 6.0       # the mode search grid covers [-6, 6]^K ...
GRID_NODES = 61             # ... with this many nodes per dimension
GRID_WINDOW = 30.0          # grid maxima kept within this many nats of the best
GRID_CANDIDATES = 4         # at most this many grid maxima per point
NEWTON_STEPS = 60
SAME_MODE = 0.1             # candidates closer than this many posterior sds (under H) are one mode
MAX_MODES = 4
MODE_WINDOW = 40.0          # modes kept within this many nats of Laplace mass of the best
FRAME_DROP = 2.0            # the frame's scales: where g has dropped by this many nats
BOX_DROP = 30.0             # a mode's box reaches where g has dropped this many nats ...
BOX_MARGIN = 1.1            # ... times this
BOX_GROWTH = 1.5            # a box with mass on its rim grows by this factor
EDGE_FRACTION = 1e-3        # rim mass allowed, as a fraction of tol
ORDERS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)   # rule sizes per dimension, in turn
MAX_ENTRIES = 2 ** 21       # bound on the entries of one chunk's largest array


class QuadratureResult(NamedTuple):
    """The result of :func:`log_likelihood_quadrature_with_error`, each (R, N).

    Attributes
    ----------
    log_likelihood : ndarray
        log p_theta(x_n) per restart.
    error : ndarray
        |log I_n - log I_prev|, the change at the last refinement.
    order : ndarray of int
        Nodes per latent dimension of the final rule.
    converged : ndarray of bool
        ``error <= tol`` (with a clean rim) reached by ``max_order``.
    """
    log_likelihood: np.ndarray
    error: np.ndarray
    order: np.ndarray
    converged: np.ndarray


def _mean(likelihood, theta, z):
    """f(z) for z (R, ..., K) -> (R, ..., D) as float64."""
    R, K = z.shape[0], z.shape[-1]
    f = np.asarray(likelihood.mean(theta, z.reshape(R, -1, K)), dtype=np.float64)
    return f.reshape(z.shape[:-1] + (f.shape[-1],))


def _mean_and_jacobian(likelihood, theta, z):
    """f(z) (R, P, D) and its Jacobian (R, P, D, K) for z (R, P, K): one forward, D backward passes."""
    vjp, f = make_vjp(lambda zz: likelihood.mean(theta, zz))(z)
    f = np.asarray(f, dtype=np.float64)
    J = np.empty(f.shape + (z.shape[-1],))
    for d in range(f.shape[-1]):
        e = np.zeros_like(f)
        e[..., d] = 1.0
        J[..., d, :] = vjp(e)   # points are independent: the gradient of the sum is per point
    return f, J


def _log_joint(x, f, ipsi, z):
    """g = log N(x; f, psi) + log N(z; 0, I) without the constant (added by the caller)."""
    r = x - f
    return -0.5 * (np.sum(r * r * ipsi, axis=-1) + np.sum(z * z, axis=-1))


def _grid_candidates(likelihood, theta, x, ipsi):
    """Grid maxima of g per point: z (R, N, C, K) and valid (R, N, C)."""
    R, K = ipsi.shape[0], likelihood.latent_dim
    t = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, GRID_NODES)
    grid = np.stack(np.meshgrid(*[t] * K, indexing="ij"), axis=-1).reshape(-1, K)
    G = grid.shape[0]
    fg = _mean(likelihood, theta, np.broadcast_to(grid, (R, G, K)).copy())    # (R, G, D)
    prior = -0.5 * np.sum(grid * grid, axis=-1)
    N, D = x.shape
    C = min(GRID_CANDIDATES, G)
    z_out = np.empty((R, N, C, K))
    valid = np.empty((R, N, C), dtype=bool)
    step = max(1, MAX_ENTRIES // (R * G * D))
    offsets = [o for o in product((-1, 0, 1), repeat=K) if any(o)]
    for a in range(0, N, step):
        b = min(N, a + step)
        r = x[None, a:b, None, :] - fg[:, None, :, :]                       # (R, n, G, D)
        g = prior - 0.5 * np.sum(r * r * ipsi[:, :, None, :], axis=-1)      # (R, n, G)
        cube = g.reshape(g.shape[:2] + (GRID_NODES,) * K)
        padded = np.pad(cube, [(0, 0), (0, 0)] + [(1, 1)] * K, constant_values=-np.inf)
        is_max = np.ones(cube.shape, dtype=bool)
        for o in offsets:
            is_max &= cube >= padded[(Ellipsis,) + tuple(slice(1 + i, 1 + i + GRID_NODES) for i in o)]
        best = g.max(axis=-1, keepdims=True)
        score = np.where(is_max.reshape(g.shape) & (g >= best - GRID_WINDOW), g, -np.inf)
        top = np.argpartition(-score, C - 1, axis=-1)[..., :C] if C < G else np.broadcast_to(np.arange(G), score.shape)
        z_out[:, a:b] = grid[top]
        valid[:, a:b] = np.take_along_axis(score, top, axis=-1) > -np.inf
    return z_out, valid


def _newton(likelihood, theta, x, ipsi, z):
    """Damped Gauss-Newton ascent of g from z (R, P, K); x (R, P, D), ipsi (R, 1, D)."""
    K = z.shape[-1]
    eye = np.eye(K)
    for _ in range(NEWTON_STEPS):
        f, J = _mean_and_jacobian(likelihood, theta, z)
        g = _log_joint(x, f, ipsi, z)
        grad = np.einsum("rpdk,rpd->rpk", J, (x - f) * ipsi) - z
        H = np.einsum("rpdk,rpdl->rpkl", J * ipsi[..., None], J) + eye
        step = np.linalg.solve(H, grad[..., None])[..., 0]
        dec = np.sum(grad * step, axis=-1)                # squared Newton decrement, >= 0
        done = ~(dec > 1e-14)                              # also stops NaN (never seen) from spreading
        if done.all():
            break
        t = np.ones(dec.shape)
        z_new = z.copy()
        for _ in range(40):
            cand = z + t[..., None] * step
            ok = ~done & (_log_joint(x, _mean(likelihood, theta, cand), ipsi, cand) >= g + 1e-4 * t * dec)
            z_new[ok] = cand[ok]
            done |= ok
            if done.all():
                break
            t = np.where(done, t, 0.5 * t)
        z = z_new
    return z


def _crossing(a, d, target):
    """Distance (...) where sqrt-drop profiles a (..., J) at distances d (..., J) first reach target."""
    hit = a >= target
    j = np.argmax(hit, axis=-1)
    reached = np.take_along_axis(hit, j[..., None], axis=-1)[..., 0]
    d_hi = np.take_along_axis(d, j[..., None], axis=-1)[..., 0]
    a_hi = np.take_along_axis(a, j[..., None], axis=-1)[..., 0]
    jm = np.maximum(j - 1, 0)
    d_lo = np.where(j > 0, np.take_along_axis(d, jm[..., None], axis=-1)[..., 0], 0.0)
    a_lo = np.where(j > 0, np.take_along_axis(a, jm[..., None], axis=-1)[..., 0], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(np.isfinite(a_hi), (target - a_lo) / (a_hi - a_lo), 0.0)
        inside = d_lo + np.clip(frac, 0.0, 1.0) * (d_hi - d_lo)
        a_end, d_end = a[..., -1], d[..., -1]
        beyond = np.where(a_end > 0, d_end * target / np.maximum(a_end, 1e-300), 4.0 * d_end)
    return np.where(reached, inside, np.minimum(beyond, 4.0 * d_end))


def _modes(likelihood, theta, x, ipsi):
    """Each point's frame and box: centre c (R, N, K), scale matrix S (R, N, K, K), box (R, N, K, 2) in u.

    Points are integrated as z = c + S u over the box in u; c, S are those of
    the best mode, the box covers the boxes of all modes found (see the module
    docstring). Also returns the number of modes kept per point (R, N).
    """
    R, K = ipsi.shape[0], likelihood.latent_dim
    N, D = x.shape
    z0, valid = _grid_candidates(likelihood, theta, x, ipsi)
    hint = likelihood.mode_guess(theta, x)
    if hint is not None:
        hint = np.broadcast_to(np.asarray(hint, dtype=np.float64), (R, N, K))
        ok = np.all(np.isfinite(hint), axis=-1)
        z0 = np.concatenate([z0, np.where(ok[..., None], hint, z0[:, :, 0])[:, :, None]], axis=2)
        valid = np.concatenate([valid, ok[:, :, None]], axis=2)
    C = z0.shape[2]
    xr = np.broadcast_to(x[None, :, None, :], (R, N, C, D)).reshape(R, N * C, D)
    z = _newton(likelihood, theta, xr, ipsi, z0.reshape(R, N * C, K))
    f, J = _mean_and_jacobian(likelihood, theta, z)
    H = np.einsum("rpdk,rpdl->rpkl", J * ipsi[..., None], J) + np.eye(K)
    logdet = np.linalg.slogdet(H)[1]
    mass = (_log_joint(xr, f, ipsi, z) - 0.5 * logdet).reshape(R, N, C)   # Laplace log mass, up to a constant
    z, H = z.reshape(R, N, C, K), H.reshape(R, N, C, K, K)
    mass = np.where(valid & np.isfinite(mass), mass, -np.inf)

    # best first; drop candidates within SAME_MODE posterior sds of a better kept one
    order = np.argsort(-mass, axis=-1, kind="stable")
    mass = np.take_along_axis(mass, order, axis=-1)
    z = np.take_along_axis(z, order[..., None], axis=2)
    H = np.take_along_axis(H, order[..., None, None], axis=2)
    keep = mass >= mass[..., :1] - MODE_WINDOW
    for c in range(1, C):
        for e in range(c):
            d = z[:, :, c] - z[:, :, e]
            near = np.einsum("rnk,rnkl,rnl->rn", d, H[:, :, e], d) < SAME_MODE ** 2
            keep[:, :, c] &= ~(keep[:, :, e] & near)
    order = np.argsort(~keep, axis=-1, kind="stable")
    M = int(min(MAX_MODES, keep.sum(axis=-1).max()))
    order = order[..., :M]
    keep = np.take_along_axis(keep, order, axis=-1)
    mass = np.take_along_axis(mass, order, axis=-1)
    z = np.take_along_axis(z, order[..., None], axis=2)
    H = np.take_along_axis(H, order[..., None, None], axis=2)
    z = np.where(keep[..., None], z, z[:, :, :1])
    H = np.where(keep[..., None, None], H, H[:, :, :1])
    center, S, box = _frames(likelihood, theta, x, ipsi, z, H)     # (R, N, M, K), (.., K, K), (.., K, 2)
    # every mode's box corners in the best mode's frame; their bounding box
    corners = np.array(list(product((0, 1), repeat=K)))                    # (2^K, K)
    u_k = np.stack([box[..., np.arange(K), c] for c in corners], axis=-2)   # (R, N, M, 2^K, K)
    zc = center[..., None, :] + np.einsum("rnmkl,rnmcl->rnmck", S, u_k)
    S0inv = np.linalg.inv(S[:, :, 0])
    u0 = np.einsum("rnkl,rnmcl->rnmck", S0inv, zc - center[:, :, :1, None, :])
    u0 = np.where(keep[..., None, None], u0, u0[:, :, :1])
    lo = np.minimum(u0.min(axis=(2, 3)), box[:, :, 0, :, 0])
    hi = np.maximum(u0.max(axis=(2, 3)), box[:, :, 0, :, 1])
    return center[:, :, 0], S[:, :, 0], np.stack([lo, hi], axis=-1), keep.sum(axis=-1)


def _frames(likelihood, theta, x, ipsi, z, H):
    """Per mode: frame centre (R, N, M, K), scale matrix S (R, N, M, K, K) and box (R, N, M, K, 2) in u.

    See step 2 of the module docstring.
    """
    lam, V = np.linalg.eigh(H)
    sigma = 1.0 / np.sqrt(lam)                                               # (R, N, M, K)
    t = 2.0 ** (np.arange(-10, 11) / 2.0)                                    # (J,)
    sign = np.array([1.0, -1.0])
    dist = sigma[..., :, None, None] * sign[:, None] * t                     # (R, N, M, K, 2, J)
    axes = np.swapaxes(V, -1, -2)                                            # rows = eigenvectors
    probes = z[..., None, None, None, :] + dist[..., None] * axes[..., :, None, None, :]
    g = _log_joint(x[None, :, None, None, None, None, :], _mean(likelihood, theta, probes),
                   ipsi[:, :, None, None, None, None, :], probes)
    g0 = _log_joint(x[None, :, None, :], _mean(likelihood, theta, z), ipsi[:, :, None, :], z)
    with np.errstate(invalid="ignore"):
        a = np.sqrt(np.maximum(g0[..., None, None, None] - g, 0.0))
    a = np.where(np.isfinite(a), a, np.inf)
    d = np.abs(dist)
    near = _crossing(a, d, np.sqrt(FRAME_DROP))                              # (R, N, M, K, 2)
    far = _crossing(a, d, np.sqrt(BOX_DROP))
    width = (near[..., 0] + near[..., 1]) / (2.0 * np.sqrt(2.0 * FRAME_DROP))   # (R, N, M, K)
    shift = 0.5 * (near[..., 0] - near[..., 1])
    center = z + np.einsum("rnmki,rnmi->rnmk", V, shift)
    S = V * width[..., None, :]
    box = BOX_MARGIN * np.stack([(-far[..., 1] - shift) / width, (far[..., 0] - shift) / width], axis=-1)
    return center, S, box


def _level(likelihood, theta, x, log_const, ipsi, center, S, box, group, n, tol, new, edge):
    """Midpoint rule of n nodes per dimension for the points in ``group`` (R, N).

    Writes log I into ``new`` and whether the rim carries too much mass into ``edge``.
    """
    R = group.shape[0]
    P = int(group.sum(axis=1).max())
    K, D = center.shape[-1], x.shape[1]
    # each restart's points first, padded to a common P with repeats of its first
    idx = np.argsort(~group, axis=1, kind="stable")[:, :P]
    live = np.take_along_axis(group, idx, axis=1)
    idx = np.where(live, idx, idx[:, :1])
    mid = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) / n] * K, indexing="ij"), axis=-1).reshape(-1, K)
    on_rim = np.any((mid < 1.0 / n) | (mid > 1.0 - 1.0 / n), axis=-1)
    step = max(1, MAX_ENTRIES // (R * mid.shape[0] * (K + D)))
    out = np.empty((R, P))
    rim_heavy = np.zeros((R, P), dtype=bool)
    for a in range(0, P, step):
        sl = idx[:, a:a + step]

        def take(arr):
            return np.take_along_axis(arr, sl.reshape(sl.shape + (1,) * (arr.ndim - 2)), axis=1)

        b = take(box)
        lo, hi = b[..., 0], b[..., 1]                                          # (R, p, K)
        u = lo[:, :, None, :] + (hi - lo)[:, :, None, :] * mid                 # (R, p, Q, K)
        z = take(center)[:, :, None, :] + np.einsum("rpkl,rpql->rpqk", take(S), u)
        g = _log_joint(x[sl][:, :, None, :], _mean(likelihood, theta, z), ipsi[:, :, None, :], z)
        log_cell = np.sum(np.log((hi - lo) / n), axis=-1) + np.linalg.slogdet(take(S))[1]
        total = logsumexp(g, axis=-1)
        out[:, a:a + step] = total + log_cell + log_const[:, None]
        rim = logsumexp(g[..., on_rim], axis=-1)
        rim_heavy[:, a:a + step] = rim - total > np.log(EDGE_FRACTION * tol)
    rows = np.broadcast_to(np.arange(R)[:, None], idx.shape)[live]
    new[rows, idx[live]] = out[live]
    edge[rows, idx[live]] = rim_heavy[live]


def log_likelihood_quadrature(likelihood, theta, x, *, tol=1e-6, max_order=256, max_evaluations=2_000_000,
                              return_error=False):
    """log p_theta(x_n) per restart and point by adaptive deterministic quadrature.

    Integrates p_theta(x | z) N(z; 0, I) over z for a likelihood with a 1- or
    2-D latent space (see the module docstring for the method), to ``tol``
    per point where ``max_order`` allows. Deterministic; float64.
    :func:`log_likelihood_quadrature_with_error` also returns the per-point
    error estimates and convergence flags.

    Parameters
    ----------
    likelihood : training.models.Likelihood
        With ``latent_dim`` <= 2.
    theta : pytree
        Its parameters, with a leading restart axis R.
    x : array (N, D)
        Points, D = ``likelihood.data_dim``.
    tol : float
        > 0: a point is done once successive rules agree to ``tol`` in
        log p (a relative tolerance on p).
    max_order : int
        Largest number of nodes per latent dimension, in [16, 256] (default 256); the rules
        used are 8, 12, 16, 24, 32, 48, ... below it, then ``max_order``.
    max_evaluations : int
        Work bound (>= 1): a finer rule is not started when it would evaluate
        the likelihood mean at more than this many nodes for one restart
        (unconverged points x nodes per point); the points left are reported
        unconverged. A well-fitted model's 500 points need well under a
        million; a badly fitted one (folded, very peaked posteriors almost
        everywhere) would otherwise run the finest rule at almost every point.
    return_error : bool
        Deprecated: use :func:`log_likelihood_quadrature_with_error` (True
        returns its :class:`QuadratureResult`, with a DeprecationWarning).

    Returns
    -------
    ndarray (R, N)

    Raises
    ------
    ValueError
        If ``likelihood.latent_dim`` > 2, ``x`` does not have D columns,
        ``tol`` <= 0 or ``max_order`` is out of range.

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> from training.evaluate import exact_log_likelihood
    >>> d = load_dataset("linear_jtex", seed=0)
    >>> x = d.test[:5]
    >>> ll = log_likelihood_quadrature(d.likelihood, d.truth, x)
    >>> ll.shape
    (1, 5)
    >>> bool(np.allclose(ll, exact_log_likelihood(d.likelihood, d.truth, x), rtol=0, atol=1e-6))
    True

    """
    if return_error:
        warnings.warn("return_error=True is deprecated; call "
                      "training.evaluate.log_likelihood_quadrature_with_error(...) instead", DeprecationWarning,
                      stacklevel=2)
    result = log_likelihood_quadrature_with_error(likelihood, theta, x, tol=tol, max_order=max_order,
                                                  max_evaluations=max_evaluations)
    return result if return_error else result.log_likelihood


def log_likelihood_quadrature_with_error(likelihood, theta, x, *, tol=1e-6, max_order=256,
                                         max_evaluations=2_000_000):
    """:func:`log_likelihood_quadrature` with its per-point error estimates, as a :class:`QuadratureResult`.

    Same arguments and the same computation: its ``log_likelihood`` equals
    :func:`log_likelihood_quadrature`.

    Returns
    -------
    QuadratureResult
        ``log_likelihood``, ``error`` (the change at the last refinement),
        ``order`` (nodes per dimension of the final rule) and ``converged``,
        each (R, N).

    Raises
    ------
    ValueError
        As :func:`log_likelihood_quadrature`.

    Examples
    --------
    >>> from training.datasets import load_dataset
    >>> c = load_dataset("cubic_jtex", seed=0)
    >>> res = log_likelihood_quadrature_with_error(c.likelihood, c.truth, c.test[:20])
    >>> res.log_likelihood.shape, bool(res.converged.all()), bool((res.error <= 1e-6).all())
    ((1, 20), True, True)
    """
    if not isinstance(likelihood, Likelihood):
        raise TypeError(f"likelihood must be a training.models.Likelihood, got {type(likelihood).__name__}")
    K, D = likelihood.latent_dim, likelihood.data_dim
    if K is None or K > 2:
        raise ValueError(f"likelihood must have latent_dim <= 2 for quadrature, got {K}")
    x = checks.real_array("x", x, 2)
    if x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"x must have shape (N, {D}) for this likelihood, got {x.shape}")
    tol = checks.scalar("tol", tol)
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    max_order = checks.integer("max_order", max_order, 16, 256)
    max_evaluations = checks.integer("max_evaluations", max_evaluations, 1)

    psi = np.asarray(likelihood.noise(theta), dtype=np.float64)
    if psi.ndim != 2 or psi.shape[1] != D or not np.all(psi > 0):
        raise ValueError(f"likelihood.noise(theta) must be positive of shape (R, {D}), got {psi.shape}")
    R, N = psi.shape[0], x.shape[0]
    ipsi = (1.0 / psi)[:, None, :]                                            # (R, 1, D)
    log_const = -0.5 * (np.sum(np.log(psi), axis=-1) + (D + K) * LOG_2PI)    # (R,)

    center, S, box, _ = _modes(likelihood, theta, x, ipsi)
    orders = [n for n in ORDERS if n < max_order] + [max_order]
    value = np.full((R, N), np.nan)
    error = np.full((R, N), np.inf)
    used = np.zeros((R, N), dtype=int)
    converged = np.zeros((R, N), dtype=bool)
    active = np.ones((R, N), dtype=bool)
    for level, n in enumerate(orders):
        if not active.any() or (level > 1 and active.sum(axis=1).max() * n**K > max_evaluations):
            break
        new = np.full((R, N), np.nan)
        edge = np.zeros((R, N), dtype=bool)
        _level(likelihood, theta, x, log_const, ipsi, center, S, box, active, n, tol, new, edge)
        rows, cols = np.nonzero(active)
        if level > 0:
            diff = np.abs(new[rows, cols] - value[rows, cols])
            error[rows, cols] = diff
            done = (diff <= tol) & ~edge[rows, cols]
            converged[rows[done], cols[done]] = True
            active[rows[done], cols[done]] = False
        value[rows, cols] = new[rows, cols]
        used[rows, cols] = n
        # a box whose rim still carries mass grows (about its centre u = 0)
        box = np.where(edge[..., None, None], BOX_GROWTH * box, box)
    return QuadratureResult(value, error, used, converged)
