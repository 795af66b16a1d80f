"""The linear-Gaussian latent variable model, exact and batched (docs/theory.md §2).

``x = W z + eps``, ``z ~ N(0, I_K)``, ``eps ~ N(0, Psi)``. All methods work
on any leading batch shape, so a whole grid of models is one array program.

The formulas avoid ``Psi^-1`` (Woodbury form: posterior covariance
``I - W^T C^-1 W``, posterior mean ``W^T C^-1 x``), so a singular noise
covariance, the boundary |theta| = sigma of the univariate model, is still
well defined: there I(X;Z) = inf and the posterior is a point mass.
"""
import numpy as np

from . import checks

__all__ = ["LinearGaussian"]


#: Largest entry magnitude of W, noise_cov, A and sigma2: squares stay finite.
MAX_ENTRY = 1e100


def _t(a):
    return np.swapaxes(a, -1, -2)


def _diag(a):
    return np.diagonal(a, axis1=-2, axis2=-1)


def _logdet(a):
    sign, logdet = np.linalg.slogdet(a)
    return np.where(sign > 0, logdet, -np.inf)


def _data_cov(data_cov, D):
    S = checks.real_array("data_cov", data_cov, ndim_min=2)
    checks.square("data_cov", S, D)
    return checks.positive_definite("data_cov", S)


class LinearGaussian:
    """x = W z + eps with z ~ N(0, I_K), eps ~ N(0, noise_cov) (docs/theory.md (T.8)).

    Parameters
    ----------
    W : array_like, shape (..., D, K)
        Loading matrix.
    noise_cov : array_like, shape (..., D, D)
        Noise covariance Psi: symmetric positive semi-definite, with
        ``W W^T + Psi`` positive definite. Batch shapes broadcast.

    Examples
    --------
    >>> m = LinearGaussian.univariate(theta=0.6, sigma2=1.0)
    >>> float(m.marginal_cov()[0, 0]), round(float(m.mutual_information()), 4)
    (1.0, 0.2231)
    >>> m.posterior(np.array([[2.0]]))[0]
    array([[1.2]])
    """

    def __init__(self, W, noise_cov):
        W = checks.bounded("W", checks.real_array("W", W, ndim_min=2), MAX_ENTRY)
        Psi = checks.bounded("noise_cov", checks.real_array("noise_cov", noise_cov, ndim_min=2), MAX_ENTRY)
        D, K = W.shape[-2:]
        if D < 1 or K < 1:
            raise ValueError(f"W must have shape (..., D, K) with D >= 1 and K >= 1; got {W.shape}")
        if Psi.shape[-2:] != (D, D):
            raise ValueError(f"noise_cov must have shape (..., {D}, {D}) to match W of shape "
                             f"(..., D={D}, K={K}); got {Psi.shape}")
        batch = checks.batch_shape([("W", W.shape[:-2]), ("noise_cov", Psi.shape[:-2])])
        checks.symmetric("noise_cov", Psi)
        if np.any(np.linalg.eigvalsh(Psi)[..., 0] < 0):
            raise ValueError("noise_cov must be positive semi-definite (every eigenvalue >= 0)")
        self.W = np.broadcast_to(W, batch + (D, K))
        self.noise_cov = np.broadcast_to(Psi, batch + (D, D))
        self.batch_shape, self.D, self.K = batch, D, K
        C = self.marginal_cov()
        try:
            self._chol = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            raise ValueError("W W^T + noise_cov must be positive definite") from None
        # V = L^-1 W: then W^T C^-1 W = V^T V and C^-1 = L^-T L^-1.
        self._V = np.linalg.solve(self._chol, self.W)

    # ---- constructors -------------------------------------------------
    @classmethod
    def univariate(cls, theta, sigma2):
        """The model of docs/theory.md (T.18) (paper Eq. 5): x = theta z + eps, eps ~ N(0, sigma2 - theta^2).

        Parameters
        ----------
        theta : array_like, shape (...)
            Loading, valid for |theta| <= sqrt(sigma2). At |theta| = sqrt(sigma2)
            the noise vanishes: I(X;Z) = inf, the posterior is a point mass.
        sigma2 : array_like, shape (...)
            The data variance (> 0); p(x) = N(0, sigma2) for every valid theta.

        Examples
        --------
        >>> m = LinearGaussian.univariate(np.array([0.0, 0.5, 1.0]), 1.0)
        >>> m.mutual_information()
        array([0.        , 0.14384104,        inf])
        """
        theta = checks.real_array("theta", theta)
        sigma2 = checks.positive("sigma2", sigma2)
        checks.batch_shape([("theta", theta.shape), ("sigma2", sigma2.shape)])
        # A relative slack of a few ulps admits theta = sqrt(sigma2) as computed.
        if np.any(theta**2 > sigma2 * (1 + 4 * np.finfo(float).eps)):
            raise ValueError("theta must satisfy |theta| <= sqrt(sigma2) (the noise variance "
                             f"sigma2 - theta^2 must be >= 0); got theta={theta}, sigma2={sigma2}")
        noise = np.clip(sigma2 - theta**2, 0.0, None)
        return cls(theta[..., None, None], noise[..., None, None])

    @classmethod
    def jtex(cls, A, b, sigma2):
        """The JTEx family (docs/theory.md (T.19), paper Eq. 3): W = chol(A A^T + diag(b)), noise sigma2 I - diag(b).

        Parameters
        ----------
        A : array_like, shape (..., D, J)
            p(x) = N(0, A A^T + sigma2 I) whatever ``b``.
        b : array_like, shape (..., D)
            Diagonal of B, each entry in [0, sigma2).
        sigma2 : array_like, shape (...)
            Total per-coordinate variance of the noise plus B (> 0).

        Examples
        --------
        >>> from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2
        >>> m = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
        >>> round(float(m.mean_field_kl()), 5)
        0.53235
        """
        A = checks.bounded("A", checks.real_array("A", A, ndim_min=2), MAX_ENTRY)
        D = A.shape[-2]
        if D < 1:
            raise ValueError(f"A must have shape (..., D, J) with D >= 1; got {A.shape}")
        b = checks.real_array("b", b, ndim_min=1)
        if b.shape[-1] != D:
            raise ValueError(f"b must have shape (..., {D}) to match A of shape {A.shape}; got {b.shape}")
        sigma2 = checks.bounded("sigma2", checks.positive("sigma2", sigma2), MAX_ENTRY)
        checks.batch_shape([("A", A.shape[:-2]), ("b", b.shape[:-1]), ("sigma2", sigma2.shape)])
        s2 = sigma2[..., None]
        if np.any(b < 0) or np.any(b >= s2):
            raise ValueError(f"b must lie in [0, sigma2) = [0, {np.max(sigma2):g}) entrywise "
                             "(at b = sigma2 the noise is singular and I(X;Z) infinite); "
                             f"got b={b}")
        B = b[..., :, None] * np.eye(D)
        try:
            W = np.linalg.cholesky(A @ _t(A) + B)
        except np.linalg.LinAlgError:
            raise ValueError("A A^T + diag(b) must be positive definite: A's rows must be linearly "
                             "independent, or b > 0 where they are not; got A with rank "
                             f"{np.linalg.matrix_rank(A).max()} of {D} rows and b={b}") from None
        return cls(W, s2[..., None] * np.eye(D) - B)

    # ---- the model ----------------------------------------------------
    def marginal_cov(self):
        """C = W W^T + Psi, the covariance of p(x) = N(0, C), shape (..., D, D)."""
        return self.W @ _t(self.W) + self.noise_cov

    def _solve_C(self, rhs):
        L = self._chol
        return np.linalg.solve(_t(L), np.linalg.solve(L, rhs))

    def posterior_cov(self):
        """P^-1 = I - W^T C^-1 W, shape (..., K, K) (it does not depend on x)."""
        return np.eye(self.K) - _t(self._V) @ self._V

    def posterior_precision(self):
        """P = I + W^T Psi^-1 W, shape (..., K, K); inf where the posterior is a point mass (K = 1)."""
        cov = self.posterior_cov()
        if self.K == 1:
            with np.errstate(divide="ignore"):
                return 1.0 / np.clip(cov, 0.0, None)
        if np.any(np.linalg.eigvalsh(cov)[..., 0] <= 0):
            raise ValueError("the posterior precision is infinite where noise_cov is singular "
                             "(defined here only for K = 1)")
        return np.linalg.inv(cov)

    def posterior_mean_map(self):
        """M = W^T C^-1, so that E[z | x] = M x; shape (..., K, D)."""
        return _t(self._solve_C(self.W))

    def posterior(self, x):
        """p(z | x) = N(M x, P^-1) (docs/theory.md (T.9)).

        Parameters
        ----------
        x : array_like, shape (..., N, D)

        Returns
        -------
        mean : ndarray, shape (..., N, K)
        cov : ndarray, shape (..., K, K)
        """
        x = self._points(x)
        return x @ _t(self.posterior_mean_map()), self.posterior_cov()

    def mutual_information(self):
        """I(X;Z) = 1/2 [log det C - log det Psi] = 1/2 log det P; inf for singular noise."""
        return 0.5 * (_logdet(self.marginal_cov()) - _logdet(self.noise_cov))

    def mean_field_variances(self):
        """Variances 1/P_ii of the best mean-field Gaussian (paper App. C.3)."""
        return 1.0 / _diag(self.posterior_precision())

    def mean_field_kl(self):
        """min over diagonal q of KL[q || p(z | x)] = 1/2 [sum_i log P_ii - log det P] (App. C.3).

        The same for every x. Zero when K = 1 (the family holds every posterior).
        """
        if self.K == 1:
            return np.zeros(self.batch_shape)
        P = self.posterior_precision()
        return 0.5 * (np.sum(np.log(_diag(P)), axis=-1) - _logdet(P))

    def _data_cov(self, data_cov):
        S = _data_cov(data_cov, self.D)
        checks.batch_shape([("model", self.batch_shape), ("data_cov", S.shape[:-2])])
        return S

    def _points(self, x):
        x = checks.real_array("x", x, ndim_min=2)
        if x.shape[-1] != self.D:
            raise ValueError(f"x must have shape (..., N, {self.D}); got {x.shape}")
        checks.batch_shape([("model", self.batch_shape), ("x", x.shape[:-2])])
        return x

    def mle_term(self, data_cov):
        """KL[N(0, S) || p(x)] = 1/2 [tr(C^-1 S) - D + log det C - log det S], the 'MLE term'."""
        S = self._data_cov(data_cov)
        return 0.5 * (np.trace(self._solve_C(S), axis1=-2, axis2=-1) - self.D
                      + _logdet(self.marginal_cov()) - _logdet(S))

    def vae_objective(self, data_cov):
        """The exact VAE loss with the best mean-field q: MLE term + mean-field KL (docs/theory.md (T.15))."""
        return self.mle_term(data_cov) + self.mean_field_kl()

    def expected_log_likelihood(self, data_cov):
        """E_{x ~ N(0, S)} log p(x) = -1/2 [D log 2 pi + log det C + tr(C^-1 S)] per point."""
        S = self._data_cov(data_cov)
        return -0.5 * (self.D * np.log(2 * np.pi) + _logdet(self.marginal_cov())
                       + np.trace(self._solve_C(S), axis1=-2, axis2=-1))

    def log_likelihood(self, x):
        """log p(x) = log N(x; 0, C) per point: x (..., N, D) -> (..., N)."""
        x = self._points(x)
        r = np.linalg.solve(self._chol, _t(x))         # (..., D, N)
        half_logdet = np.sum(np.log(_diag(self._chol)), axis=-1)[..., None]
        return -0.5 * (self.D * np.log(2 * np.pi) + np.sum(r**2, axis=-2)) - half_logdet

    def aggregated_posterior_cov(self, data_cov, mean_field=True):
        """Covariance of E_{x ~ N(0,S)} q(z | x): M S M^T + diag(1/P_ii) (docs/theory.md (T.16)).

        With ``mean_field=False`` the true posterior's: M S M^T + P^-1, which is
        I when S = C (the aggregated posterior then equals the prior).
        """
        S = self._data_cov(data_cov)
        M = self.posterior_mean_map()
        spread = (self.mean_field_variances()[..., :, None] * np.eye(self.K) if mean_field
                  else self.posterior_cov())
        return M @ S @ _t(M) + spread

    def sample(self, n, rng):
        """Draw n points: returns x (..., n, D) and z (..., n, K) from ``rng``."""
        n = checks.integer("n", n, 1)
        checks.generator("rng", rng)
        z = rng.standard_normal(self.batch_shape + (n, self.K))
        eps = rng.standard_normal(self.batch_shape + (n, self.D))
        w, U = np.linalg.eigh(self.noise_cov)       # a square root that allows singular noise
        noise_root = U * np.sqrt(np.clip(w, 0.0, None))[..., None, :]
        return z @ _t(self.W) + eps @ _t(noise_root), z
