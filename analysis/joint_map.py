"""Appendix D made numeric: the joint MAP approximation prefers shrunken codes (docs/theory.md §5).

LiBI's Step 1 approximates max_theta log p_theta(x) by
max_{theta, Z} (1/N) sum_n log p_theta(x_n | z_n) + log p(z_n). For a linear
likelihood x = W z + eps, eps ~ N(0, noise_var I), the rescaled pair
(c^2 W, Z / c^2) has the same likelihood but a higher prior density for
c > 1, so the objective keeps rising as the codes shrink and the implied
p(x) = N(0, c^4 W W^T + noise_var I) drifts away from the data. Constraining
the codes to look like draws of N(0, I) (zero mean, identity covariance:
LiBI's penalties) removes the drift.
"""
import numpy as np

from . import checks
from .gaussian import LinearGaussian

__all__ = ["joint_map_objective", "shrink_family", "joint_map_path"]


def _model_data(W, Z, X, noise_var):
    W = checks.real_array("W", W, 2)
    Z = checks.real_array("Z", Z, 2)
    X = checks.real_array("X", X, 2)
    if W.ndim != 2 or Z.ndim != 2 or X.ndim != 2:
        raise ValueError(f"W, Z, X must be matrices; got W {W.shape}, Z {Z.shape}, X {X.shape}")
    if Z.shape[0] != X.shape[0] or W.shape != (X.shape[1], Z.shape[1]):
        raise ValueError(f"shapes must be W (D, K), Z (N, K), X (N, D); got W {W.shape}, "
                         f"Z {Z.shape}, X {X.shape}")
    noise_var = checks.scalar("noise_var", checks.positive("noise_var", noise_var))
    return W, Z, X, noise_var


def joint_map_objective(W, Z, X, noise_var):
    """(1/N) sum_n [log N(x_n; W z_n, noise_var I) + log N(z_n; 0, I)] (paper Eq. 31).

    Returns
    -------
    total, likelihood, prior : float
        The objective and its two terms.
    """
    W, Z, X, noise_var = _model_data(W, Z, X, noise_var)
    N, D = X.shape
    K = Z.shape[1]
    r = X - Z @ W.T
    lik = -0.5 * (D * np.log(2 * np.pi * noise_var) + np.sum(r**2) / (N * noise_var))
    prior = -0.5 * (K * np.log(2 * np.pi) + np.sum(Z**2) / N)
    return lik + prior, lik, prior


def _mle_term(W, noise_var, S):
    D = W.shape[0]
    return float(LinearGaussian(W, noise_var * np.eye(D)).mle_term(S))


def shrink_family(W, Z, X, noise_var, scales):
    """Evaluate the paper's family (W c^2, Z / c^2) (Eqs. 34-40) for each c.

    Parameters
    ----------
    W : array_like (D, K); Z : array_like (N, K); X : array_like (N, D)
    noise_var : float
    scales : array_like (n,)
        Values of c > 0.

    Returns
    -------
    dict of arrays (n,)
        ``objective``, ``likelihood`` (constant in c), ``prior`` (rising for
        c > 1) and ``mle_term`` KL[N(0, X^T X / N) || p_c(x)] of the implied
        model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = np.array([[1.0, 0.5], [0.0, 1.0]]); Z = rng.standard_normal((500, 2))
    >>> X = Z @ W.T + 0.1 * rng.standard_normal((500, 2))
    >>> fam = shrink_family(W, Z, X, 0.01, [1.0, 1.5, 2.0])
    >>> bool(np.all(np.diff(fam["objective"]) > 0)), bool(np.ptp(fam["likelihood"]) < 1e-9)
    (True, True)
    """
    W, Z, X, noise_var = _model_data(W, Z, X, noise_var)
    scales = checks.positive("scales", scales).ravel()
    S = X.T @ X / X.shape[0]
    rows = [joint_map_objective(W * c**2, Z / c**2, X, noise_var) for c in scales]
    out = {k: np.array(v) for k, v in zip(("objective", "likelihood", "prior"), zip(*rows))}
    out["mle_term"] = np.array([_mle_term(W * c**2, noise_var, S) for c in scales])
    return out


def _standardize(Z):
    """Project codes onto {mean 0, covariance I} (the constraint of LiBI, Eq. 43)."""
    Zc = Z - Z.mean(axis=0)
    L = np.linalg.cholesky(Zc.T @ Zc / Z.shape[0])
    return np.linalg.solve(L, Zc.T).T


def joint_map_path(X, K, noise_var, steps, rng, constrain=False):
    """Coordinate ascent on the joint MAP objective of a linear likelihood.

    Each step maximizes over all codes (the ridge solution
    z_n = (W^T W + noise_var I)^-1 W^T x_n), then over W (least squares).
    With ``constrain=True`` the codes are projected onto mean 0, covariance
    I after each code step, as LiBI's penalties demand.

    Parameters
    ----------
    X : array_like (N, D)
    K : int
        Latent dimension.
    noise_var : float
    steps : int
    rng : numpy.random.Generator
        For the initial W.
    constrain : bool

    Returns
    -------
    dict of arrays (steps,)
        ``objective`` (non-decreasing when unconstrained), ``code_scale``
        sqrt(mean ||z_n||^2 / K) (1 for N(0, I) codes), ``mle_term``
        KL[N(0, X^T X / N) || N(0, W W^T + noise_var I)]; and ``W``, ``Z``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> Z = rng.standard_normal((400, 2))
    >>> X = Z @ np.array([[1.0, 0.3], [0.0, 0.8]]) + 0.3 * rng.standard_normal((400, 2))
    >>> free = joint_map_path(X, 2, 0.09, 100, np.random.default_rng(0))
    >>> kept = joint_map_path(X, 2, 0.09, 100, np.random.default_rng(0), constrain=True)
    >>> bool(free["code_scale"][-1] < 0.3), bool(abs(kept["code_scale"][-1] - 1) < 1e-9)
    (True, True)
    >>> bool(free["mle_term"][-1] > 1.0), bool(kept["mle_term"][-1] < 0.01)
    (True, True)
    """
    X = checks.real_array("X", X, 2)
    N, D = X.shape
    K = checks.integer("K", K, 1, D)
    noise_var = checks.scalar("noise_var", checks.positive("noise_var", noise_var))
    steps = checks.integer("steps", steps, 1)
    checks.generator("rng", rng)
    S = X.T @ X / N
    W = np.linalg.cholesky(S)[:, :K] + 0.1 * rng.standard_normal((D, K))
    hist = {"objective": [], "code_scale": [], "mle_term": []}
    for _ in range(steps):
        Z = np.linalg.solve(W.T @ W + noise_var * np.eye(K), W.T @ X.T).T
        if constrain:
            Z = _standardize(Z)
        W = np.linalg.lstsq(Z, X, rcond=None)[0].T
        hist["objective"].append(joint_map_objective(W, Z, X, noise_var)[0])
        hist["code_scale"].append(np.sqrt(np.mean(np.sum(Z**2, axis=1)) / K))
        hist["mle_term"].append(_mle_term(W, noise_var, S))
    out = {k: np.array(v) for k, v in hist.items()}
    out.update(W=W, Z=Z)
    return out
