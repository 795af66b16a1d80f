"""Exact landscapes and optima of the VAE objective for the JTEx family (docs/theory.md §4)."""
import numpy as np

from . import _optimize, checks
from .gaussian import LinearGaussian
from .linear_vae import VAEOptimum, fixed_noise_mle, mean_field_rotation

__all__ = ["jtex_b_landscape", "jtex_vae_optimum", "JTEX_A", "JTEX_B", "JTEX_SIGMA2"]

#: The ground truth of the paper's LinearJTEx example (docs/theory.md (T.19)):
#: A, the diagonal of B, and sigma2.
JTEX_A = np.array([[0.75, 0.25], [1.5, -1.0]])
JTEX_B = np.array([0.006, 0.006])
JTEX_SIGMA2 = 0.01


#: sigma2 in [SIGMA2_MIN, SIGMA2_MAX], entries of A at most MAX_A * sqrt(sigma2), the data
#: covariance's eigenvalues within DATA_RATIO of sigma2 either way: beyond
#: these the closed forms under- or overflow (or the posterior variance
#: rounds to 0) and the objective is NaN.
SIGMA2_MIN, SIGMA2_MAX, MAX_A, DATA_RATIO = 1e-30, 1e30, 1e6, 1e12


def _sigma2(sigma2):
    sigma2 = checks.scalar("sigma2", checks.positive("sigma2", sigma2))
    if not SIGMA2_MIN <= sigma2 <= SIGMA2_MAX:
        raise ValueError(f"sigma2 must lie in [{SIGMA2_MIN:g}, {SIGMA2_MAX:g}], got {sigma2:g}")
    return sigma2


def _jtex_args(A, sigma2):
    A = checks.real_array("A", A)
    if A.shape != (2, 2):
        raise ValueError(f"A must have shape (2, 2) (the 2-D JTEx family); got {A.shape}")
    sigma2 = _sigma2(sigma2)
    checks.bounded("A", A, MAX_A * np.sqrt(sigma2))
    return A, sigma2


def _check_pd(A, b1, b2, names):
    """A A^T + diag(b) positive definite at the smallest b (then at every b of the grid)."""
    try:
        np.linalg.cholesky(A @ A.T + np.diag([np.min(b1), np.min(b2)]))
    except np.linalg.LinAlgError:
        raise ValueError(f"A A^T + diag({names}) must be positive definite: A's rows must be "
                         f"linearly independent, or {names} > 0 where they are not; got A of rank "
                         f"{np.linalg.matrix_rank(A)} with min {names} = {np.min(b1):g}, {np.min(b2):g}") from None


def _check_data_cov(S, sigma2):
    w = np.linalg.eigvalsh(S)
    if w[0] < sigma2 / DATA_RATIO or w[-1] > sigma2 * DATA_RATIO:
        raise ValueError(f"data_cov's eigenvalues must lie in [sigma2 / {DATA_RATIO:g}, sigma2 * "
                         f"{DATA_RATIO:g}] = [{sigma2 / DATA_RATIO:g}, {sigma2 * DATA_RATIO:g}]; got "
                         f"[{w[0]:g}, {w[-1]:g}]")
    return S


def _b_values(name, b, sigma2):
    b = checks.real_array(name, b)
    if b.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.any(b < 0) or np.any(b >= sigma2):
        raise ValueError(f"{name} must lie in [0, sigma2) = [0, {sigma2:g}); got min {b.min():g}, "
                         f"max {b.max():g} (at sigma2 the noise is singular and I(X;Z) = inf)")
    return b


def _data_cov(data_cov):
    S = checks.real_array("data_cov", data_cov)
    if S.shape != (2, 2):
        raise ValueError(f"data_cov must have shape (2, 2); got {S.shape}")
    return checks.positive_definite("data_cov", S)


def jtex_b_landscape(A, sigma2, b1, b2, data_cov=None):
    """The exact landscape over B = diag(b1, b2) with A fixed (paper Fig. 1A-B).

    Every B gives the same p(x) = N(0, A A^T + sigma2 I), so the MLE term is
    zero when the data follow the model and the VAE objective is the
    mean-field KL alone (docs/theory.md (T.25)). Evaluated by the sympy-derived,
    lambdified closed forms in one vectorized pass.

    Parameters
    ----------
    A : array_like, shape (2, 2)
    sigma2 : float
        > 0.
    b1, b2 : array_like, shape (n1,) and (n2,)
        Grid values, each in [0, sigma2).
    data_cov : array_like, shape (2, 2), optional
        Data second moment S for the MLE term; default the model's own
        A A^T + sigma2 I.

    Returns
    -------
    dict
        ``mean_field_kl``, ``mutual_information``, ``vae_objective``: arrays of
        shape (n1, n2), entry [i, j] at (b1[i], b2[j]); ``b1``, ``b2``: the
        grids; ``argmin``: (i, j) of the objective's minimum; ``optimum``:
        (b1[i], b2[j]).

    Examples
    --------
    >>> from analysis import JTEX_A, JTEX_SIGMA2
    >>> g = np.linspace(0, JTEX_SIGMA2, 101)[:-1]
    >>> land = jtex_b_landscape(JTEX_A, JTEX_SIGMA2, g, g)
    >>> land["vae_objective"].shape, land["optimum"]
    ((100, 100), (0.0099, 0.0))
    """
    A, sigma2 = _jtex_args(A, sigma2)
    b1 = _b_values("b1", b1, sigma2).ravel()
    b2 = _b_values("b2", b2, sigma2).ravel()
    _check_pd(A, b1, b2, "b1, b2")
    S = A @ A.T + sigma2 * np.eye(2) if data_cov is None else _check_data_cov(_data_cov(data_cov), sigma2)
    from .compiled import jtex_functions  # sympy loads on first use only
    f = jtex_functions()
    B1, B2 = b1[:, None], b2[None, :]
    model = (*A.ravel(), B1, B2, sigma2)
    shape = (b1.size, b2.size)
    out = {"b1": b1, "b2": b2,
           "mean_field_kl": np.broadcast_to(f["mean_field_kl"](*model), shape).copy(),
           "mutual_information": np.broadcast_to(f["mutual_information"](*model), shape).copy()}
    mle = float(f["mle_term"](*A.ravel(), 0.0, 0.0, sigma2, S[0, 0], S[0, 1], S[1, 1]))
    out["vae_objective"] = out["mean_field_kl"] + mle
    i, j = np.unravel_index(np.argmin(out["vae_objective"]), shape)
    out["argmin"] = (int(i), int(j))
    out["optimum"] = (float(b1[i]), float(b2[j]))
    return out


def _tril(p):
    return np.array([[p[0], 0.0], [p[1], p[2]]])


def jtex_vae_optimum(data_cov, b, sigma2, restarts=20, seed=0):
    """Globally minimize the exact VAE objective over A with B fixed (Fig. 1C-F).

    L(A) = KL[N(0, S) || N(0, A A^T + sigma2 I)] + mean-field KL, with the
    sympy-derived closed form and its symbolic gradient. L depends on A
    only through A A^T, so A is searched as a lower-triangular L (every
    positive semi-definite A A^T is some L L^T), removing the rotational flat
    directions. Globality: L-BFGS from the MLE solution chol(S - sigma2 I)
    (when S - sigma2 I is positive definite), from the data's own Cholesky
    factor and from ``restarts`` random starts of the data's scale; the
    best value is kept, ``n_agree`` says how many starts found it (a lone
    winner would be a warning sign: raise ``restarts``).

    Parameters
    ----------
    data_cov : array_like (2, 2)
        The data second moment S: the truth's A A^T + sigma2 I, or a sample's
        X^T X / N (what a trainer with the exact ELBO converges to).
    b : array_like (2,)
        Diagonal of B, entries in [0, sigma2).
    sigma2 : float
    restarts : int
        Random starts (>= 1) besides the two deterministic ones.
    seed : int or numpy.random.Generator
        For the random starts.

    Returns
    -------
    VAEOptimum

    Examples
    --------
    >>> from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2
    >>> S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    >>> opt = jtex_vae_optimum(S, JTEX_B, JTEX_SIGMA2, restarts=5)
    >>> round(opt.objective, 5), round(opt.mle_term, 4), round(opt.mean_field_kl, 4)
    (0.19618, 0.1621, 0.0341)
    """
    S = _data_cov(data_cov)
    sigma2 = _sigma2(sigma2)
    _check_data_cov(S, sigma2)
    b = _b_values("b", b, sigma2)
    if b.shape != (2,):
        raise ValueError(f"b must have shape (2,); got {b.shape}")
    restarts = checks.integer("restarts", restarts, 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
        checks.integer("seed", seed, 0))
    from .compiled import jtex_functions  # sympy loads on first use only
    f = jtex_functions()
    fixed = (b[0], b[1], sigma2, S[0, 0], S[0, 1], S[1, 1])

    def loss(p):
        return float(f["vae_objective"](p[0], 0.0, p[1], p[2], *fixed))

    def grad(p):
        g = f["vae_objective_grad"](p[0], 0.0, p[1], p[2], *fixed)
        return np.array([g[0], g[2], g[3]], dtype=float)

    starts = [np.linalg.cholesky(S)]
    if np.all(np.linalg.eigvalsh(S - sigma2 * np.eye(2)) > 0):
        starts.append(np.linalg.cholesky(S - sigma2 * np.eye(2)))
    scale = np.sqrt(np.trace(S) / 2)
    for _ in range(restarts):
        A0 = scale * rng.standard_normal((2, 2))
        starts.append(np.linalg.cholesky(A0 @ A0.T + 1e-6 * scale**2 * np.eye(2)))
    results = [r for r in _optimize.multistart(loss, grad, [L0[[0, 1, 1], [0, 0, 1]] for L0 in starts])
               if np.isfinite(r.fun)]
    if not results:
        raise ValueError(f"no start reached a finite objective for data_cov={S.tolist()}, b={b.tolist()}, "
                         f"sigma2={sigma2:g}")
    best = min(results, key=lambda r: r.fun)
    minima, n_agree = _optimize.agreement([r.fun for r in results], best.fun)
    A = _tril(best.x)
    model = LinearGaussian.jtex(A, b, sigma2)
    return VAEOptimum(A=A, objective=float(best.fun), mle_term=float(model.mle_term(S)),
                      mean_field_kl=float(model.mean_field_kl()), minima=minima, n_agree=n_agree,
                      W=model.W.copy(), noise_cov=model.noise_cov.copy(),
                      rotation=mean_field_rotation(model.W, model.noise_cov),
                      mle_term_at_mle=fixed_noise_mle(S, 2, sigma2 * np.eye(2))[2], noise="jtex")
