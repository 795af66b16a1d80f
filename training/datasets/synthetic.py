"""The paper's synthetic data sets (docs/theory.md §3), drawn from an explicit seed.

Each draw returns train / validation / test splits (500 points each by
default), the true latent codes and the true parameters; the paper's "5
data sets" of a type are seeds 0-4.

Examples
--------
>>> d = load_dataset("linear_jtex", seed=0)
>>> d.train.shape, d.z_train.shape, d.likelihood.linear
((500, 2), (500, 2), True)
"""
from dataclasses import dataclass, field

import numpy as np

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, checks

from ..models.encoders import Encoder
from ..models.likelihoods import JTEx, Likelihood, LinearMap, MLPLikelihood, Univariate
from .mobius import load_mobius_params

__all__ = ["Dataset", "load_dataset", "DATASETS", "GAUSSIAN_A"]

# Our reading of the garbled matrix (docs/theory.md (T.21)): four unit columns.
GAUSSIAN_A = np.array([[-0.7074, 0.0995, 0.0286, 0.1240],
                       [0.7074, 0.9948, -0.9995, 0.9920]])


@dataclass(frozen=True)
class Dataset:
    """One synthetic data set: splits, true codes and the true model.

    Attributes
    ----------
    name : str
    seed : int
    train, val, test : ndarray (N, D)
    z_train, z_val, z_test : ndarray (N, K) or None
        The codes that generated the points (None for user data).
    likelihood : training.models.Likelihood
        The model family to learn (the ground truth's form, noise fixed).
    encoder : training.models.Encoder
        The inference network architecture (docs/theory.md (T.23)).
    truth : dict
        The true parameters as a pytree with a restart axis of length 1.
    info : dict
        The generating settings.
    """
    name: str
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    likelihood: Likelihood
    encoder: Encoder
    truth: dict = None
    z_train: np.ndarray = None
    z_val: np.ndarray = None
    z_test: np.ndarray = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        D = self.likelihood.data_dim
        for split in ("train", "val", "test"):
            arr = checks.real_array(split, getattr(self, split), 2)
            if arr.shape[1] != D:
                raise ValueError(f"{split} must have shape (N, {D}) for this likelihood; got {arr.shape}")
            if arr.shape[0] < 2:
                raise ValueError(f"{split} must hold at least 2 points; got {arr.shape[0]}")
            object.__setattr__(self, split, arr)
        if self.encoder.data_dim != D or self.encoder.latent_dim != self.likelihood.latent_dim:
            raise ValueError("encoder dimensions do not match the likelihood's")

    @classmethod
    def from_arrays(cls, train, val, test, likelihood, encoder, name="user", **kw):
        """A data set from the caller's own arrays (checked like the built-in ones)."""
        return cls(name=name, seed=-1, train=train, val=val, test=test,
                   likelihood=likelihood, encoder=encoder, **kw)

    def sample_truth(self, rng, n):
        """n fresh draws of x from the true model (needs ``truth``)."""
        return self.likelihood.sample(self.truth, n, rng)[0][0]

    @property
    def second_moment(self):
        """X^T X / N of the training split (what exact-ELBO trainers fit, docs/theory.md (T.13))."""
        return self.train.T @ self.train / self.train.shape[0]


def _draw(name, seed, likelihood, encoder, truth, sizes, info):
    rng = np.random.default_rng(np.random.SeedSequence([seed, _NAME_KEYS[name]]))
    x, z = likelihood.sample(truth, sum(sizes), rng)
    x, z = x[0], z[0]
    cut = np.cumsum(sizes)[:-1]
    xs, zs = np.split(x, cut), np.split(z, cut)
    return Dataset(name=name, seed=seed, train=xs[0], val=xs[1], test=xs[2],
                   z_train=zs[0], z_val=zs[1], z_test=zs[2],
                   likelihood=likelihood, encoder=encoder, truth=truth, info=info)


def _univariate(seed, sizes, theta=0.5, sigma2=1.0):
    lik = Univariate(sigma2)
    truth = lik.params_for(np.array([theta])) if abs(theta) < np.sqrt(sigma2) else None
    if truth is None:
        raise ValueError(f"theta must satisfy |theta| < sqrt(sigma2) = {np.sqrt(sigma2):g}")
    return _draw("univariate", seed, lik, Encoder(1, 1, "linear"), truth, sizes,
                 {"theta": theta, "sigma2": sigma2})


def _jtex(seed, sizes, cubic=False):
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2, learn="A", cubic=cubic)
    name = "cubic_jtex" if cubic else "linear_jtex"
    return _draw(name, seed, lik, Encoder(2, 2, "cubic" if cubic else "linear"),
                 {"A": JTEX_A[None].copy()}, sizes,
                 {"A": JTEX_A.tolist(), "b": JTEX_B.tolist(), "sigma2": JTEX_SIGMA2})


def _gaussian(seed, sizes):
    lik = LinearMap(2, 4, 1e-6)
    return _draw("gaussian", seed, lik, Encoder(4, 2, "linear"), {"A": GAUSSIAN_A[None].copy()},
                 sizes, {"A": GAUSSIAN_A.tolist(), "noise_var": 1e-6})


def _mobius(seed, sizes):
    lik = MLPLikelihood(noise_var=1e-5)
    return _draw("mobius", seed, lik, Encoder(2, 2, "mlp"), load_mobius_params(), sizes,
                 {"noise_var": 1e-5, "a": 1, "b": "1+4i", "c": 1, "d": "7+4i"})


DATASETS = {
    "univariate": _univariate,
    "linear_jtex": _jtex,
    "cubic_jtex": lambda seed, sizes: _jtex(seed, sizes, cubic=True),
    "gaussian": _gaussian,
    "mobius": _mobius,
}
_NAME_KEYS = {name: i for i, name in enumerate(DATASETS)}


def load_dataset(name, seed=0, n_train=500, n_val=500, n_test=500, **params):
    """Draw data set ``name`` with ``seed`` (docs/theory.md §3).

    Parameters
    ----------
    name : {"univariate", "linear_jtex", "cubic_jtex", "gaussian", "mobius"}
    seed : int
        Data set index (the paper's 5 data sets are seeds 0-4).
    n_train, n_val, n_test : int
        Split sizes (>= 2).
    **params
        Model settings: ``theta`` and ``sigma2`` for "univariate".

    Returns
    -------
    Dataset
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    seed = checks.integer("seed", seed, 0)
    sizes = [checks.integer(k, v, 2) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    if params and name != "univariate":
        raise TypeError(f"{name} takes no model settings, got {sorted(params)}")
    return DATASETS[name](seed, sizes, **params)
