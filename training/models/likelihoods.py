"""Likelihoods p_theta(x | z) of the ground truths' own forms (docs/theory.md §3).

Parameters are plain pytrees whose leaves carry a leading restart axis R.
A likelihood is ``N(x; mean(theta, z), diag(noise(theta)))``; only the mean
function is learned, the noise stays that of the truth (for the univariate
and the learn-B JTEx families the noise is a function of theta by
definition of the family).
"""
import autograd.numpy as anp
import numpy as np

from analysis import LinearGaussian, checks

from ..core.trees import n_restarts
from . import nets
from .layers import init_mlp

LOG_2PI = np.log(2 * np.pi)

#: Layer widths ``[d_in, h1, h2, d_out]`` of the Mobius data set's true network f
#: (:mod:`training.datasets.mobius` ships its weights); the default :class:`MLPLikelihood`.
MOBIUS_SIZES = [2, 8, 8, 2]

#: One :data:`training.models.layers.ACTIVATIONS` name per hidden layer of f.
MOBIUS_ACTIVATIONS = ("tanh", "tanh")


def _t(a):
    return anp.swapaxes(a, -1, -2)


def gaussian_log_density(x, mean, var):
    """log N(x; mean, diag(var)) summed over the last axis (broadcasting)."""
    r = x - mean    # r * r: autograd's vjp of ** 2 is a slow general power
    return -0.5 * anp.sum(LOG_2PI + anp.log(var) + r * r / var, axis=-1)


def _sigmoid(a):
    """1 / (1 + exp(-a)) to full relative precision in both tails, without overflow."""
    return anp.exp(-anp.logaddexp(0.0, -a))


class Likelihood:
    """Base class: ``x | z ~ N(mean(theta, z), diag(noise(theta)))``.

    Subclasses define ``data_dim``, ``latent_dim``, ``init``, ``mean`` and
    ``noise``; linear-Gaussian ones set ``linear = True`` and define
    ``loading`` (W), which enables the exact ELBO and exact log-likelihood.
    """
    linear = False
    data_dim = latent_dim = None

    def init(self, rngs):
        raise NotImplementedError

    def mean(self, theta, z):
        """z (R, M, K) -> (R, M, D)."""
        raise NotImplementedError

    def noise(self, theta):
        """Diagonal noise variances, shape (R, D)."""
        raise NotImplementedError

    def loading(self, theta):
        raise TypeError(f"{type(self).__name__} is not linear-Gaussian")

    def mode_guess(self, theta, x):
        """A starting point (R, N, K) for the mode of p_theta(z | x_n), or None (no hint).

        Used by :func:`training.evaluate.quadrature.log_likelihood_quadrature` beside its own search.
        """
        return None

    def decoder_from_codes(self, theta, Z, X):
        """The family's least-squares decoder for white codes Z (R, N, K) of X (N, D), or None.

        Returns ``(theta, Q)``: parameters whose noise-free mean maps the
        codes ``Z @ Q`` (Q (R, K, K) orthogonal, so the codes stay white)
        closest to X, and Q. None where the family has no closed form
        (then ``theta`` is kept as drawn). LiBI starts Step 1 here.
        """
        return None

    def log_likelihood(self, theta, x, z):
        """log p_theta(x | z): x (N, D) or (R, N, D), z (R, N, K) -> (R, N)."""
        return gaussian_log_density(x, self.mean(theta, z), self.noise(theta)[:, None, :])

    def exact(self, theta):
        """The batched :class:`analysis.LinearGaussian` of a linear likelihood."""
        psi = np.asarray(self.noise(theta))
        return LinearGaussian(np.asarray(self.loading(theta)), psi[..., :, None] * np.eye(self.data_dim))

    def sample(self, theta, n, rng):
        """n draws of (x, z) from p_theta per restart: shapes (R, n, D), (R, n, K)."""
        R = n_restarts(theta)
        z = rng.standard_normal((R, n, self.latent_dim))
        x = self.mean(theta, z) + np.sqrt(self.noise(theta))[:, None, :] * rng.standard_normal((R, n, self.data_dim))
        return np.asarray(x), z


class Univariate(Likelihood):
    """x = theta z + eps, eps ~ N(0, sigma2 - theta^2) (docs/theory.md (T.18)).

    theta = sqrt(sigma2) tanh(u) keeps every iterate valid (|theta| < sigma).
    Parameters: ``{"u": (R,)}``.
    """
    linear = True
    data_dim = latent_dim = 1

    def __init__(self, sigma2=1.0):
        self.sigma2 = float(checks.positive("sigma2", sigma2))

    def theta(self, params):
        return np.sqrt(self.sigma2) * anp.tanh(params["u"])

    def params_for(self, theta):
        """The parameters of the given theta values (shape (R,)), |theta| < sigma."""
        theta = checks.real_array("theta", theta, 1)
        if np.any(np.abs(theta) >= np.sqrt(self.sigma2)):
            raise ValueError(f"theta must satisfy |theta| < sqrt(sigma2) = {np.sqrt(self.sigma2):g}")
        return {"u": np.arctanh(theta / np.sqrt(self.sigma2))}

    def init(self, rngs):
        return {"u": np.array([g.standard_normal() for g in rngs])}

    def loading(self, params):
        return self.theta(params)[:, None, None]

    def mean(self, params, z):
        return self.theta(params)[:, None, None] * z

    def noise(self, params):
        # sigma2 sech^2(u), not sigma2 - theta^2: the difference cancels for large |u|
        # (and turned negative by rounding once tanh(u) rounds to +-1, e.g. sigma2 = 2, u >= 19).
        a = anp.exp(-2.0 * anp.abs(params["u"]))
        return (self.sigma2 * 4.0 * a / ((1.0 + a) * (1.0 + a)))[:, None]


class JTEx(Likelihood):
    """The JTEx family (docs/theory.md (T.19), (T.20)): x = W z + eps (or (W z)^3 + eps), W = chol(A A^T + B).

    Parameters
    ----------
    A : array (2, 2)
        Fixed when ``learn="b"``; the truth's when sampling.
    b : array (2,)
        Diagonal of B; fixed when ``learn="A"``.
    sigma2 : float
    learn : {"A", "b"}
        ``"A"``: params ``{"A": (R, 2, 2)}`` (LinearJTEx, CubicJTEx).
        ``"b"``: params ``{"u": (R, 2)}`` with b = sigma2 * sigmoid(u), so
        b stays in (0, sigma2) (Fig. 1A-B).
    cubic : bool
        The CubicJTEx mean (W z)^3, elementwise.
    """
    data_dim = latent_dim = 2

    def __init__(self, A, b, sigma2, learn="A", cubic=False):
        self.A = checks.real_array("A", A)
        self.b = checks.real_array("b", b)
        self.sigma2 = float(checks.positive("sigma2", sigma2))
        if learn not in ("A", "b"):
            raise ValueError(f"learn must be 'A' or 'b', got {learn!r}")
        self.learn, self.cubic = learn, bool(cubic)
        self.linear = not cubic

    def b_of(self, params):
        if self.learn == "b":
            return self.sigma2 * _sigmoid(params["u"])
        return anp.broadcast_to(self.b, (n_restarts(params), 2))

    def A_of(self, params):
        if self.learn == "A":
            return params["A"]
        return anp.broadcast_to(self.A, (n_restarts(params), 2, 2))

    def init(self, rngs):
        if self.learn == "A":
            return {"A": np.stack([g.standard_normal((2, 2)) for g in rngs])}
        return {"u": np.stack([g.standard_normal(2) for g in rngs])}

    def W(self, params):
        A, b = self.A_of(params), self.b_of(params)
        return anp.linalg.cholesky(A @ _t(A) + b[:, :, None] * np.eye(2))

    def loading(self, params):
        if self.cubic:
            return super().loading(params)
        return self.W(params)

    def mode_guess(self, params, x):
        """The noise-free inverse W^{-1} x (linear) or W^{-1} cbrt(x) (cubic), (R, N, 2)."""
        h = np.cbrt(x) if self.cubic else np.asarray(x)
        W = np.asarray(self.W(params))
        return np.linalg.solve(W[:, None], np.broadcast_to(h, (W.shape[0],) + h.shape[-2:])[..., None])[..., 0]

    def mean(self, params, z):
        h = z @ _t(self.W(params))
        return h * h * h if self.cubic else h

    def decoder_from_codes(self, params, Z, X):
        """A at the data's own scale, and the codes turned to the orientation W can represent.

        With Y = X (cube roots of X for CubicJTEx), W W^T is set to Y's second
        moment, less the noise (linear: A A^T = Y^T Y / N - sigma2 I, the
        maximum-likelihood value) or less B (cubic), eigenvalues floored at
        1e-3 of their mean so that A starts full rank. W is then the lower
        triangular L = chol(A A^T + B) with positive diagonal, and the codes
        are turned by the orthogonal Q closest to mapping them onto
        W^{-1} y (Procrustes): a reflected orientation, which no such W can
        represent, is absorbed into Q (docs/design.md). Not a least-squares
        fit to the codes: while the codes explain little of Y, that fit
        shrinks W towards rank 1, the trap itself.
        """
        if self.learn != "A":
            return None
        Y = np.cbrt(X) if self.cubic else np.asarray(X)
        b = np.diag(np.broadcast_to(self.b, (2,)))
        M = Y.T @ Y / len(Y) - (b if self.cubic else self.sigma2 * np.eye(2))
        w, V = np.linalg.eigh(0.5 * (M + M.T))
        w = np.maximum(w, 1e-3 * np.mean(np.abs(w)))
        A = np.linalg.cholesky((V * w) @ V.T)
        L = np.linalg.cholesky(A @ A.T + b)
        target = np.linalg.solve(L, Y.T).T                       # W^{-1} y: white
        U, _, Vt = np.linalg.svd(np.einsum("rnk,nj->rkj", Z, target))
        R = Z.shape[0]
        return {**params, "A": np.broadcast_to(A, (R, 2, 2)).copy()}, U @ Vt

    def noise(self, params):
        if self.learn == "b":
            # sigma2 * sigmoid(-u), not sigma2 - b: the difference cancels to 0 near the
            # corner b -> sigma2 that the VAE objective prefers (docs/theory.md (T.25)).
            return self.sigma2 * _sigmoid(-params["u"])
        return self.sigma2 - self.b_of(params)


class LinearMap(Likelihood):
    """x = z^T A + eps, eps ~ N(0, noise_var I) (the Gaussian data set, docs/theory.md (T.21)).

    Parameters ``{"A": (R, K, D)}``; W = A^T.
    """
    linear = True

    def __init__(self, latent_dim, data_dim, noise_var):
        self.latent_dim = checks.integer("latent_dim", latent_dim, 1)
        self.data_dim = checks.integer("data_dim", data_dim, 1)
        self.noise_var = float(checks.positive("noise_var", noise_var))

    def init(self, rngs):
        scale = 1.0 / np.sqrt(self.latent_dim)
        return {"A": np.stack([scale * g.standard_normal((self.latent_dim, self.data_dim)) for g in rngs])}

    def loading(self, params):
        return _t(params["A"])

    def mean(self, params, z):
        return z @ params["A"]

    def decoder_from_codes(self, params, Z, X):
        """A = Z^T X / N: the least-squares map from white codes Z to X (the codes kept as they are)."""
        A = np.einsum("rnk,nd->rkd", Z, np.asarray(X)) / Z.shape[1]
        return {**params, "A": A}, np.broadcast_to(np.eye(self.latent_dim), (Z.shape[0],) + (self.latent_dim,) * 2)

    def noise(self, params):
        return anp.full((n_restarts(params), self.data_dim), self.noise_var)


class MLPLikelihood(Likelihood):
    """x = f(z) + eps with f a dense network (the Mobius data set, docs/theory.md (T.22)).

    Parameters: a :mod:`training.models.layers` MLP.
    """

    def __init__(self, sizes=MOBIUS_SIZES, activations=MOBIUS_ACTIVATIONS, noise_var=1e-5):
        self.sizes, self.activations = list(sizes), tuple(activations)
        self.latent_dim, self.data_dim = self.sizes[0], self.sizes[-1]
        self.noise_var = float(checks.positive("noise_var", noise_var))

    def init(self, rngs):
        return init_mlp(rngs, self.sizes)

    def mean(self, params, z):
        return nets.mlp(params, z, self.activations)

    def noise(self, params):
        return anp.full((n_restarts(params), self.data_dim), self.noise_var)
