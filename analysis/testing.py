"""Assertions for your own tests: is a trained linear VAE at the exact optimum?

numpy in, framework-agnostic: pass the learned decoder ``W`` (D x K), its
noise covariance, the data's second moment S = X^T X / N (or the true
covariance), and for the encoder its linear mean map and variances. Each
function returns quietly (with the exact reference) when the model passes
and raises ``AssertionError`` with the gap, split into its terms, when it
does not.

Tolerances. Around its minimum the VAE objective is quadratic in the
parameters, so an objective within ``atol = 1e-6`` nats of the optimum means
parameters within about 1e-3 relative (for unit curvature), the same accuracy
that ``rtol = 1e-3`` asks of an encoder. A converged float64 fit is within
1e-8 nats (the examples' L-BFGS fits: below 1e-10), and float32 rounding of
the parameters (6e-8 relative) moves the objective by about 1e-14, so these
defaults pass converged fits and fail a model a percent off. The reference
optimum itself is accurate to about 1e-12.

Examples
--------
>>> import numpy as np
>>> from analysis import linear_vae_optimum
>>> S = np.array([[2.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 0.8]])
>>> opt = linear_vae_optimum(S, 1, noise="isotropic", restarts=2)
>>> ref = assert_vae_optimum(opt.W, opt.noise_cov, S, noise="isotropic", restarts=2)
>>> assert_vae_optimum(1.05 * opt.W, opt.noise_cov, S, noise="isotropic", restarts=2)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: not at the exact VAE optimum ...
"""
import numpy as np

from . import checks
from .gaussian import LinearGaussian
from .linear_vae import fixed_noise_mle, linear_vae_optimum, ppca_mle

__all__ = ["assert_vae_optimum", "assert_mle", "assert_posterior_exact"]

NOISE = ("fixed", "isotropic", "diagonal")


def _model(W, noise_cov, noise):
    W = checks.real_array("W", W)
    if W.ndim != 2:
        raise ValueError(f"W must have shape (D, K) (one model, no batch axes); got {W.shape}")
    model = LinearGaussian(W, noise_cov)
    if not isinstance(noise, str) or noise not in NOISE:
        raise ValueError(f"noise must be one of {NOISE}; got {noise!r}")
    Psi = model.noise_cov
    scale = np.max(np.abs(Psi))
    off = Psi - np.diag(np.diag(Psi))
    if noise in ("isotropic", "diagonal") and np.max(np.abs(off)) > 1e-12 * scale:
        raise ValueError(f"noise_cov must be diagonal for noise={noise!r}")
    if noise == "isotropic" and np.ptp(np.diag(Psi)) > 1e-12 * scale:
        raise ValueError("noise_cov must be sigma2 * I for noise='isotropic'; got diagonal "
                         f"{np.diag(Psi)}")
    if noise != "fixed" and np.any(np.diag(Psi) <= 0):
        raise ValueError("noise_cov must be positive definite")
    return model


def _data_cov(model, data_cov):
    S = checks.real_array("data_cov", data_cov)
    if S.shape != (model.D, model.D):
        raise ValueError(f"data_cov must have shape ({model.D}, {model.D}) to match W; got {S.shape}")
    return checks.positive_definite("data_cov", S)


def _fmt(a):
    return np.array2string(np.asarray(a), precision=6, suppress_small=True, separator=", ",
                           max_line_width=120)


def _tolerance(name, value):
    value = checks.scalar(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def assert_vae_optimum(W, noise_cov, data_cov, *, noise="fixed", atol=1e-6, restarts=10, seed=0):
    """Assert that (W, noise_cov) is the global minimum of the exact VAE objective.

    The objective is KL[N(0, S) || N(0, W W^T + Psi)] plus the best
    mean-field KL (the encoder is taken at its best, so this checks the
    decoder; see :func:`assert_posterior_exact` for the encoder). The
    reference is :func:`analysis.linear_vae_optimum` for a free D x K W.
    Values are compared, not parameters: the optimum's W is unique only up
    to the signs (and order) of its columns.

    Parameters
    ----------
    W : array_like (D, K)
        The learned loading matrix.
    noise_cov : array_like (D, D)
        The learned (or fixed) noise covariance Psi.
    data_cov : array_like (D, D)
        The data's second moment S (the training set's X^T X / N).
    noise : {"fixed", "isotropic", "diagonal"}
        What was learned: nothing (Psi was fixed at ``noise_cov``), sigma2 I,
        or a diagonal Psi. ``noise_cov`` must have that form.
    atol : float
        Largest allowed |objective - optimum| in nats (default 1e-6: see the
        module docstring).
    restarts, seed
        Of the reference search (:func:`analysis.linear_vae_optimum`).

    Returns
    -------
    VAEOptimum
        The reference optimum.

    Raises
    ------
    AssertionError
        With the objective's gap, split into the MLE term and the
        mean-field KL, and the optimum's W and noise covariance.

    Examples
    --------
    >>> S = np.diag([3.0, 1.0])
    >>> W, Psi, _ = fixed_noise_mle(S, 1, 0.5 * np.eye(2))
    >>> round(assert_vae_optimum(W, Psi, S).objective, 6)    # (1 - log 2) / 2: x2's excess variance
    0.153426
    >>> assert_vae_optimum(0.95 * W, Psi, S)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: not at the exact VAE optimum (noise='fixed', D=2, K=1): ...
    """
    model = _model(W, noise_cov, noise)
    S = _data_cov(model, data_cov)
    atol = _tolerance("atol", atol)
    opt = linear_vae_optimum(S, model.K, noise=model.noise_cov if noise == "fixed" else noise,
                             restarts=restarts, seed=seed)
    mle, mf = float(model.mle_term(S)), float(model.mean_field_kl())
    gap = mle + mf - opt.objective
    if abs(gap) > atol:
        head = (f"not at the exact VAE optimum (noise={noise!r}, D={model.D}, K={model.K}): "
                f"objective {mle + mf:.8g} vs the optimum's {opt.objective:.8g}, gap {gap:.3g} "
                f"(atol {atol:g})")
        if gap < 0:
            head += ("; below the reference, which means its search missed the global minimum: "
                     "raise restarts")
        raise AssertionError(
            f"{head}\n"
            f"  MLE term KL[N(0,S) || p(x)]: {mle:.8g} (optimum {opt.mle_term:.8g}, gap {mle - opt.mle_term:.3g})\n"
            f"  mean-field KL:               {mf:.8g} (optimum {opt.mean_field_kl:.8g}, "
            f"gap {mf - opt.mean_field_kl:.3g})\n"
            f"  optimum W =\n{_fmt(opt.W)}\n  optimum noise_cov =\n{_fmt(opt.noise_cov)}")
    return opt


def assert_mle(W, noise_cov, data_cov, *, noise="fixed", atol=1e-6, restarts=10, seed=0):
    """Assert that p(x) = N(0, W W^T + Psi) is the family's maximum-likelihood fit to S.

    Compares the MLE term KL[N(0, S) || p(x)] with its smallest value over
    the family: closed forms for ``"fixed"`` (:func:`analysis.fixed_noise_mle`)
    and ``"isotropic"`` (:func:`analysis.ppca_mle`), the numeric optimum for
    ``"diagonal"``. The mean-field posterior plays no part: with a free W the
    VAE optimum is an MLE, and this is the check that a LiBI-style fit
    (likelihood first) also needs.

    Parameters
    ----------
    W, noise_cov, data_cov, noise
        As for :func:`assert_vae_optimum`.
    atol : float
        Largest allowed gap of the MLE term in nats (default 1e-6).
    restarts, seed
        Of the numeric search (``"diagonal"`` only).

    Returns
    -------
    float
        The family's smallest MLE term.

    Examples
    --------
    >>> S = np.diag([3.0, 1.0, 0.5])
    >>> W, sigma2 = ppca_mle(S, 1)
    >>> round(assert_mle(W, sigma2 * np.eye(3), S, noise="isotropic"), 6)
    0.058892
    >>> assert_mle(W, 1.05 * sigma2 * np.eye(3), S, noise="isotropic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: not the maximum-likelihood fit (noise='isotropic', D=3, K=1): ...
    """
    model = _model(W, noise_cov, noise)
    S = _data_cov(model, data_cov)
    atol = _tolerance("atol", atol)
    if noise == "fixed":
        W_ref, Psi_ref, best = fixed_noise_mle(S, model.K, model.noise_cov)
    elif noise == "isotropic":
        if model.K >= model.D:
            raise ValueError(f"W must have K < D columns for noise='isotropic'; got K={model.K}")
        W_ref, sigma2 = ppca_mle(S, model.K)
        Psi_ref = sigma2 * np.eye(model.D)
        best = float(LinearGaussian(W_ref, Psi_ref).mle_term(S))
    else:
        opt = linear_vae_optimum(S, model.K, noise="diagonal", restarts=restarts, seed=seed)
        W_ref, Psi_ref, best = opt.W, opt.noise_cov, opt.mle_term_at_mle
    mle = float(model.mle_term(S))
    if abs(mle - best) > atol:
        C_ref = W_ref @ W_ref.T + Psi_ref
        raise AssertionError(
            f"not the maximum-likelihood fit (noise={noise!r}, D={model.D}, K={model.K}): "
            f"MLE term KL[N(0,S) || p(x)] {mle:.8g} vs the MLE's {best:.8g}, gap {mle - best:.3g} "
            f"(atol {atol:g})\n"
            f"  marginal covariance W W^T + Psi =\n{_fmt(model.marginal_cov())}\n"
            f"  the MLE's =\n{_fmt(C_ref)}")
    return best


def assert_posterior_exact(W, noise_cov, mean_map, variances, *, exact=False, rtol=1e-3, atol=0.0):
    """Assert that a linear Gaussian encoder is the best mean-field q for the model.

    The best mean-field Gaussian q(z | x) = N(M x, diag(v)) has the exact
    posterior mean map M = W^T (W W^T + Psi)^-1 and variances v_i = 1/P_ii,
    P = I + W^T Psi^-1 W (the mean-field solution; the paper's App. C.3).
    Where P is diagonal, q is the exact posterior.

    Parameters
    ----------
    W : array_like (D, K)
    noise_cov : array_like (D, D)
    mean_map : array_like (K, D)
        The encoder's linear map: E_q[z | x] = mean_map @ x (no bias; the
        data have mean 0).
    variances : array_like (K,)
        The encoder's variances (the same for every x in a linear VAE).
    exact : bool
        Also require q to be the exact posterior: P must be diagonal.
    rtol, atol : float
        Each array passes when max|got - want| <= atol + rtol * max|want|
        (a scale-free test per array; default rtol 1e-3: see the module
        docstring). For ``exact``, every posterior correlation must be
        below rtol.

    Returns
    -------
    (ndarray (K, D), ndarray (K,))
        The best mean-field encoder's mean map and variances.

    Examples
    --------
    >>> W, Psi = np.array([[1.0], [2.0]]), 0.5 * np.eye(2)
    >>> M = W.T @ np.linalg.inv(W @ W.T + Psi)
    >>> v = 1 / (1 + W.T @ np.linalg.inv(Psi) @ W).ravel()
    >>> _ = assert_posterior_exact(W, Psi, M, v, exact=True)
    >>> assert_posterior_exact(W, Psi, M, 1.05 * v)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: the encoder's variances are not the best mean-field q's: ...
    """
    model = _model(W, noise_cov, "fixed")
    K, D = model.K, model.D
    mean_map = checks.real_array("mean_map", mean_map)
    if mean_map.shape != (K, D):
        raise ValueError(f"mean_map must have shape ({K}, {D}) (K x D, E[z|x] = mean_map @ x); "
                         f"got {mean_map.shape}")
    variances = checks.real_array("variances", variances)
    if variances.shape != (K,):
        raise ValueError(f"variances must have shape ({K},); got {variances.shape}")
    rtol, atol = _tolerance("rtol", rtol), _tolerance("atol", atol)
    want_M, want_v = model.posterior_mean_map(), model.mean_field_variances()
    for what, got, want in (("mean map", mean_map, want_M), ("variances", variances, want_v)):
        err = np.max(np.abs(got - want))
        if err > atol + rtol * np.max(np.abs(want)):
            raise AssertionError(
                f"the encoder's {what} are not the best mean-field q's: max |error| {err:.3g} "
                f"> atol {atol:g} + rtol {rtol:g} * max |want| {np.max(np.abs(want)):.3g}\n"
                f"  got =\n{_fmt(got)}\n  want =\n{_fmt(want)}")
    if exact:
        cov = model.posterior_cov()
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd) - np.eye(K)
        if np.max(np.abs(corr), initial=0.0) > rtol:
            raise AssertionError(
                f"the exact posterior is not diagonal (largest |correlation| "
                f"{np.max(np.abs(corr)):.3g} > rtol {rtol:g}): no mean-field q is exact; its "
                f"best costs a mean-field KL of {float(model.mean_field_kl()):.6g} nats. "
                "W @ analysis.mean_field_rotation(W, noise_cov) has the same p(x) and a "
                "diagonal posterior.")
    return want_M, want_v
