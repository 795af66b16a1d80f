"""The exact global optimum of a general linear VAE: any D and K, fixed or learned noise.

The model is x = W z + eps, z ~ N(0, I_K), eps ~ N(0, Psi), with W a free
D x K matrix, and the VAE's encoder the best mean-field Gaussian. For data of
second moment S the exact VAE objective (the negative ELBO up to the data's
entropy) is

    L(W, Psi) = KL[N(0, S) || N(0, W W^T + Psi)] + 1/2 [sum_i log P_ii - log det P],

with P = I + W^T Psi^-1 W the posterior precision. Rotating W's columns,
W -> W R with R orthogonal, leaves p(x) and the first term unchanged, and the
R of P's eigenvectors makes P diagonal, so the second term 0
(:func:`mean_field_rotation`). So with a free W the VAE optimum is the
maximum-likelihood solution, rotated; the mean-field posterior costs nothing
(Lucas et al. 2019, "Don't Blame the ELBO"). The paper's bias (Yacoby, Pan &
Doshi-Velez 2020) comes from a family that cannot rotate: JTEx's W is lower
triangular (:func:`analysis.jtex_vae_optimum`).

Closed forms: with Psi fixed, the MLE is probabilistic PCA with unit noise
after whitening by Psi^-1/2; with Psi = sigma2 I learned it is probabilistic
PCA (Tipping & Bishop 1999). Diagonal Psi (factor analysis) has none and is
searched numerically.
"""
from dataclasses import dataclass

import numpy as np

from . import _optimize, checks
from .gaussian import LinearGaussian

__all__ = ["VAEOptimum", "linear_vae_optimum", "mean_field_rotation", "ppca_mle", "fixed_noise_mle",
           "linear_vae_objective"]

NOISE_KINDS = ("isotropic", "diagonal")



@dataclass(frozen=True)
class VAEOptimum:
    """The global minimum of the exact VAE objective (``jtex_vae_optimum``, ``linear_vae_optimum``).

    Attributes
    ----------
    A : ndarray (2, 2) or None
        JTEx only: a minimizer, lower triangular (L depends on A only through
        A A^T). None for ``linear_vae_optimum``.
    objective, mle_term, mean_field_kl : float
        The minimum and its two terms: KL[N(0, S) || p_theta(x)] and the best
        mean-field KL to the posterior.
    minima : ndarray (starts,)
        The local minimum reached from every start, sorted.
    n_agree : int
        How many starts reached the global value (within 1e-8).
    W : ndarray (D, K)
        The optimum's loading matrix (JTEx: chol(A A^T + diag b)).
    noise_cov : ndarray (D, D)
        The optimum's noise covariance Psi (JTEx: sigma2 I - diag b).
    rotation : ndarray (K, K)
        The orthogonal R (:func:`analysis.mean_field_rotation`) that makes
        the posterior precision of ``W @ R`` diagonal: ``W @ R`` has the same
        p(x) and a mean-field KL of 0. For a free W it is the identity up to
        signs (the optimum is already rotated); for JTEx ``W @ R`` is not
        lower triangular, so the family cannot use it, and the mean-field KL
        is what the VAE pays for that.
    mle_term_at_mle : float
        The smallest MLE term the family reaches (at its maximum-likelihood
        solution). ``objective - mle_term_at_mle`` is the bias the mean-field
        posterior causes: 0 for a free W, 0.196 for JTEx at the paper's truth.
    noise : str
        ``"jtex"``, ``"fixed"``, ``"isotropic"`` or ``"diagonal"``.
    """
    A: np.ndarray
    objective: float
    mle_term: float
    mean_field_kl: float
    minima: np.ndarray
    n_agree: int
    W: np.ndarray = None
    noise_cov: np.ndarray = None
    rotation: np.ndarray = None
    mle_term_at_mle: float = None
    noise: str = None

    @property
    def AAt(self):
        """A A^T (JTEx results only)."""
        if self.A is None:
            raise AttributeError("AAt is defined for JTEx results only; use W @ W.T")
        return self.A @ self.A.T

    @property
    def model(self):
        """The optimum as a :class:`analysis.LinearGaussian`."""
        return LinearGaussian(self.W, self.noise_cov)


def _data_cov(data_cov):
    S = checks.real_array("data_cov", data_cov)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] < 1:
        raise ValueError(f"data_cov must have shape (D, D) with D >= 1; got {S.shape}")
    return checks.positive_definite("data_cov", S)


def _noise_cov(name, noise_cov, D):
    Psi = checks.real_array(name, noise_cov)
    if Psi.shape != (D, D):
        raise ValueError(f"{name} must have shape ({D}, {D}) to match data_cov; got {Psi.shape}")
    return checks.positive_definite(name, Psi)


def _descending_eigh(S):
    lam, U = np.linalg.eigh(S)
    return lam[::-1], U[:, ::-1]


def mean_field_rotation(W, noise_cov):
    """The rotation R that makes the posterior precision of W R diagonal.

    W -> W R (R orthogonal) leaves p(x) = N(0, W W^T + Psi) unchanged, and the
    posterior precision becomes R^T P R. With R the eigenvectors of P (those
    of the posterior covariance, computed without Psi^-1), R^T P R is
    diagonal: the mean-field family then holds the exact posterior and the
    mean-field KL is 0.

    Parameters
    ----------
    W : array_like, shape (..., D, K)
    noise_cov : array_like, shape (..., D, D)
        As for :class:`analysis.LinearGaussian`.

    Returns
    -------
    ndarray, shape (..., K, K)
        Orthogonal; columns ordered by decreasing posterior precision, each
        with its largest-magnitude entry positive.

    Examples
    --------
    >>> W = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> Psi = 0.5 * np.eye(2)
    >>> R = mean_field_rotation(W, Psi)
    >>> float(LinearGaussian(W, Psi).mean_field_kl()) > 0.1
    True
    >>> abs(float(LinearGaussian(W @ R, Psi).mean_field_kl())) < 1e-12
    True
    """
    model = LinearGaussian(W, noise_cov)
    _, V = np.linalg.eigh(model.posterior_cov())     # ascending variance = descending precision
    big = np.argmax(np.abs(V), axis=-2)[..., None, :]
    return V * np.sign(np.take_along_axis(V, big, axis=-2))


def ppca_mle(data_cov, K):
    """Probabilistic PCA (Tipping & Bishop 1999): the MLE of W W^T + sigma2 I.

    With S = U diag(lambda) U^T (lambda decreasing), sigma2 is the mean of the
    D - K smallest eigenvalues and W = U_K (Lambda_K - sigma2 I)^1/2: its
    columns are orthogonal, so the posterior precision is diagonal.

    Parameters
    ----------
    data_cov : array_like, shape (D, D)
        Positive definite data second moment S.
    K : int
        Latent dimension, 1 <= K < D.

    Returns
    -------
    W : ndarray (D, K)
    sigma2 : float

    Examples
    --------
    >>> W, sigma2 = ppca_mle(np.diag([4.0, 2.0, 1.0]), 1)
    >>> np.round(np.abs(W).ravel(), 6).tolist(), sigma2
    ([1.581139, 0.0, 0.0], 1.5)
    """
    S = _data_cov(data_cov)
    D = S.shape[0]
    if D < 2:
        raise ValueError(f"data_cov must be at least 2 x 2 for probabilistic PCA (K < D); got {S.shape}")
    K = checks.integer("K", K, 1, D - 1)
    lam, U = _descending_eigh(S)
    sigma2 = float(np.mean(lam[K:]))
    return U[:, :K] * np.sqrt(np.clip(lam[:K] - sigma2, 0.0, None)), sigma2


def fixed_noise_mle(data_cov, K, noise_cov):
    """The MLE of W W^T + Psi over W (D x K) with Psi fixed, by whitening.

    With T = Psi^1/2, the whitened data T^-1 S T^-1 = V diag(lambda) V^T
    (lambda decreasing) is fitted by probabilistic PCA with unit noise:
    T^-1 W = V_K (Lambda_K - I)_+^1/2, where (.)_+ keeps the directions
    whose variance exceeds the noise's. The columns are Psi^-1-orthogonal,
    so the posterior precision is diagonal.

    Parameters
    ----------
    data_cov : array_like, shape (D, D)
        Positive definite.
    K : int
        1 <= K <= D.
    noise_cov : array_like, shape (D, D)
        Positive definite Psi.

    Returns
    -------
    W : ndarray (D, K)
    noise_cov : ndarray (D, D)
        Psi as given.
    mle_term : float
        KL[N(0, S) || N(0, W W^T + Psi)], the smallest over W.

    Examples
    --------
    >>> W, Psi, mle = fixed_noise_mle(np.diag([3.0, 0.5]), 1, np.eye(2))
    >>> np.round(np.abs(W).ravel(), 6).tolist(), round(mle, 6)
    ([1.414214, 0.0], 0.096574)
    """
    S = _data_cov(data_cov)
    D = S.shape[0]
    K = checks.integer("K", K, 1, D)
    Psi = _noise_cov("noise_cov", noise_cov, D)
    w, Q = np.linalg.eigh(Psi)
    root, root_inv = (Q * np.sqrt(w)) @ Q.T, (Q / np.sqrt(w)) @ Q.T
    lam, V = _descending_eigh(root_inv @ S @ root_inv)
    W = root @ (V[:, :K] * np.sqrt(np.clip(lam[:K] - 1.0, 0.0, None)))
    return W, Psi, float(LinearGaussian(W, Psi).mle_term(S))


def linear_vae_objective(params, data_cov, K, noise):
    """The exact VAE objective and its gradient in the search parametrization.

    ``params`` is vec(W) (row-major, D*K entries) followed by the noise's log
    variances: none for a fixed ``noise`` (D, D) array, one (log sigma2) for
    ``"isotropic"``, D (log psi_i) for ``"diagonal"``. The gradient is the
    analytic one: with C = W W^T + Psi, Sigma = C^-1, Lambda = Psi^-1 and
    G = 1/2 [diag(1/P_ii) - P^-1],

        dL/dW   = (Sigma - Sigma S Sigma) W + 2 Lambda W G,
        dL/dPsi = 1/2 (Sigma - Sigma S Sigma) - Lambda W G W^T Lambda.

    Parameters
    ----------
    params : ndarray, shape (D*K + n_noise,)
    data_cov : ndarray (D, D)
    K : int
    noise : "isotropic", "diagonal" or ndarray (D, D)

    Returns
    -------
    value : float
    gradient : ndarray, same shape as ``params``

    Examples
    --------
    >>> S = np.diag([2.0, 1.0])
    >>> value, grad = linear_vae_objective(np.array([1.0, 0.0, np.log(1.0)]), S, 1, "isotropic")
    >>> round(value, 12), np.round(grad, 12) + 0.0
    (0.0, array([0., 0., 0.]))
    """
    S = np.asarray(data_cov, dtype=float)
    D = S.shape[0]
    W, Psi, Lam = _unpack(params, D, K, noise)
    C = W @ W.T + Psi
    Sigma = np.linalg.inv(C)
    SSS = Sigma @ S @ Sigma
    mle = 0.5 * (np.trace(Sigma @ S) - D + np.linalg.slogdet(C)[1] - np.linalg.slogdet(S)[1])
    P = np.eye(K) + W.T @ Lam @ W
    Pd = np.diag(P)
    mf = 0.5 * (np.sum(np.log(Pd)) - np.linalg.slogdet(P)[1])
    G = 0.5 * (np.diag(1.0 / Pd) - np.linalg.inv(P))
    LW = Lam @ W
    gW = (Sigma - SSS) @ W + 2.0 * LW @ G
    gPsi = 0.5 * (Sigma - SSS) - LW @ G @ LW.T
    if isinstance(noise, str) and noise == "isotropic":
        g_noise = [Psi[0, 0] * np.trace(gPsi)]
    elif isinstance(noise, str):
        g_noise = np.diag(Psi) * np.diag(gPsi)
    else:
        g_noise = []
    return float(mle + mf), np.concatenate([gW.ravel(), g_noise])


def _unpack(params, D, K, noise):
    W = params[:D * K].reshape(D, K)
    if not isinstance(noise, str):
        return W, noise, np.linalg.inv(noise)
    psi = np.exp(params[D * K:])
    psi = np.full(D, psi[0]) if noise == "isotropic" else psi
    return W, np.diag(psi), np.diag(1.0 / psi)


def _pack(W, Psi, noise):
    if not isinstance(noise, str):
        return W.ravel()
    psi = np.diag(Psi)
    return np.concatenate([W.ravel(), np.log(psi[:1] if noise == "isotropic" else psi)])


def _noise_arg(noise, D):
    if isinstance(noise, str):
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be 'isotropic', 'diagonal' or a ({D}, {D}) noise covariance; "
                             f"got {noise!r}")
        return noise
    return _noise_cov("noise", noise, D)


def linear_vae_optimum(data_cov, K, noise="isotropic", restarts=10, seed=0):
    """The global minimum of the exact VAE objective of a linear VAE with a free W.

    L(W, Psi) = KL[N(0, S) || N(0, W W^T + Psi)] + (best mean-field KL),
    minimized over W (D x K) and, where learned, the noise Psi.

    How the minimum is made global. Since W -> W R with R from
    :func:`mean_field_rotation` keeps the first term and zeroes the second,
    the minimum is the family's maximum-likelihood solution, rotated.
    ``"isotropic"`` and a fixed ``noise`` have closed forms (:func:`ppca_mle`,
    :func:`fixed_noise_mle`); ``"diagonal"`` (factor analysis) has none. In
    every case L-BFGS-B with the analytic gradient (:func:`linear_vae_objective`)
    runs from the closed form (for ``"diagonal"``, probabilistic PCA's
    solution) and from ``restarts`` random starts of the data's scale; each
    end point is rotated by its own :func:`mean_field_rotation` (which never
    raises L). The result is the best end point (for closed-form cases the
    closed form itself, unless a search went lower, which would be a bug),
    and ``n_agree`` says how many starts reached it within 1e-8 (all of them
    on well-posed problems; a lone winner would be a warning sign: raise
    ``restarts``). Learned noise variances are kept in [1e-10, 10] times the
    largest data variance; a factor-analysis optimum on the lower bound is a
    Heywood case (a coordinate explained without noise).

    Parameters
    ----------
    data_cov : array_like, shape (D, D)
        The data second moment S (positive definite): a model's W W^T + Psi,
        or a sample's X^T X / N.
    K : int
        Latent dimension: 1 <= K < D for learned noise, 1 <= K <= D for a
        fixed one.
    noise : "isotropic", "diagonal" or array_like (D, D)
        sigma2 I learned, diag(psi) learned, or this positive definite noise
        covariance fixed.
    restarts : int
        Random starts (>= 1) besides the closed-form one.
    seed : int or numpy.random.Generator
        For the random starts.

    Returns
    -------
    VAEOptimum
        With ``W``, ``noise_cov``, ``rotation`` (the identity up to signs:
        the optimum is already rotated), ``mle_term_at_mle`` (equal to
        ``objective``: the VAE optimum is the MLE) and ``noise``; ``A`` is None.

    Examples
    --------
    >>> from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2
    >>> S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    >>> opt = linear_vae_optimum(S, 2, noise=(JTEX_SIGMA2 - JTEX_B[0]) * np.eye(2), restarts=3)
    >>> opt.objective < 1e-12, abs(opt.mean_field_kl) < 1e-12, opt.n_agree
    (True, True, 4)
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 2)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]])
    >>> opt = linear_vae_optimum(X.T @ X / 200 + 0.1 * np.eye(3), 1, noise="isotropic", restarts=3)
    >>> opt.W.shape, opt.noise_cov.shape, opt.n_agree
    ((3, 1), (3, 3), 4)
    """
    S = _data_cov(data_cov)
    D = S.shape[0]
    noise = _noise_arg(noise, D)
    learned = isinstance(noise, str)
    if learned and D < 2:
        raise ValueError(f"data_cov must be at least 2 x 2 for learned noise (K < D); got {S.shape}")
    K = checks.integer("K", K, 1, D - 1 if learned else D)
    restarts = checks.integer("restarts", restarts, 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
        checks.integer("seed", seed, 0))

    if learned:
        W0, sigma2 = ppca_mle(S, K)
        start = (W0, sigma2 * np.eye(D))
        closed = start if noise == "isotropic" else None
    else:
        W0, _, _ = fixed_noise_mle(S, K, noise)
        start = closed = (W0, noise)
    scale = np.max(np.diag(S))
    starts = [_pack(*start, noise)]
    for _ in range(restarts):
        W_r = np.sqrt(scale / K) * rng.standard_normal((D, K))
        psi = np.diag(S) * rng.uniform(0.05, 1.0, size=D)
        if isinstance(noise, str) and noise == "isotropic":
            psi = np.full(D, psi.mean())
        starts.append(_pack(W_r, np.diag(psi), noise))
    n_noise = {"isotropic": 1, "diagonal": D}[noise] if learned else 0
    bounds = [(None, None)] * (D * K) + [(np.log(1e-10 * scale), np.log(10 * scale))] * n_noise
    results = _optimize.multistart(lambda p: linear_vae_objective(p, S, K, noise), True, starts,
                                   bounds=bounds)

    candidates = []
    for r in results:
        W, Psi, _ = _unpack(r.x, D, K, noise)
        W = W @ mean_field_rotation(W, Psi)
        candidates.append((float(LinearGaussian(W, Psi).vae_objective(S)), W, Psi))
    values = [c[0] for c in candidates]
    best = min(candidates, key=lambda c: c[0])
    if closed is not None:
        W_c = closed[0] @ mean_field_rotation(*closed)
        value_c = float(LinearGaussian(W_c, closed[1]).vae_objective(S))
        if value_c <= best[0] + _optimize.AGREE_TOL:
            best = (value_c, W_c, closed[1])
    value, W, Psi = best
    minima, n_agree = _optimize.agreement(values, value)
    model = LinearGaussian(W, Psi)
    mle = float(model.mle_term(S))
    return VAEOptimum(A=None, objective=value, mle_term=mle, mean_field_kl=float(model.mean_field_kl()),
                      minima=minima, n_agree=n_agree, W=W, noise_cov=np.array(Psi),
                      rotation=mean_field_rotation(W, Psi), mle_term_at_mle=mle,
                      noise=noise if learned else "fixed")
