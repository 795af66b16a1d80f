"""Shared fixtures for the tests of :mod:`analysis`.

The reference formulas here are written directly from docs/theory.md §2 with plain
numpy (explicit inverses, no Woodbury identities, no Cholesky tricks), so that
they are an independent derivation to compare the package against.
"""
import numpy as np
import pytest


def _closed_forms(W, Psi, x=None):
    """docs/theory.md §2 by the textbook formulas, for one model (no batch axes).

    Returns a dict with ``P`` = I + W^T Psi^-1 W, ``post_cov`` P^-1,
    ``M`` = P^-1 W^T Psi^-1 (so E[z|x] = M x), ``C`` = W W^T + Psi,
    ``mi`` = 1/2 log det P, ``mf_kl`` = 1/2 [sum log P_ii - log det P],
    ``mf_var`` = 1/P_ii and, when ``x`` is given, ``post_mean`` = M x.
    """
    W = np.asarray(W, dtype=float)
    Psi = np.asarray(Psi, dtype=float)
    K = W.shape[1]
    Psi_inv = np.linalg.inv(Psi)
    P = np.eye(K) + W.T @ Psi_inv @ W
    post_cov = np.linalg.inv(P)
    M = post_cov @ W.T @ Psi_inv
    out = {"P": P, "post_cov": post_cov, "M": M, "C": W @ W.T + Psi,
           "mi": 0.5 * np.log(np.linalg.det(P)),
           "mf_kl": 0.5 * (np.sum(np.log(np.diag(P))) - np.log(np.linalg.det(P))),
           "mf_var": 1.0 / np.diag(P)}
    if x is not None:
        out["post_mean"] = M @ np.asarray(x, dtype=float)
    return out


def _gauss_kl(S, C):
    """KL[N(0, S) || N(0, C)] for D x D covariances."""
    D = S.shape[0]
    return 0.5 * (np.trace(np.linalg.solve(C, S)) - D + np.log(np.linalg.det(C))
                  - np.log(np.linalg.det(S)))


def _expected_ll(S, C):
    """E_{x ~ N(0, S)} log N(x; 0, C)."""
    D = S.shape[0]
    return -0.5 * (D * np.log(2 * np.pi) + np.log(np.linalg.det(C)) + np.trace(np.linalg.solve(C, S)))


def _random_pd(rng, n, floor=0.3):
    G = rng.standard_normal((n, n))
    return G @ G.T / n + floor * np.eye(n)


def _jtex_reference(A, b, sigma2, S=None):
    """The JTEx model (docs/theory.md (T.19)) by numpy: W = chol(A A^T + B), Psi = sigma2 I - B."""
    A = np.asarray(A, dtype=float)
    B = np.diag(np.asarray(b, dtype=float))
    W = np.linalg.cholesky(A @ A.T + B)
    Psi = sigma2 * np.eye(2) - B
    out = _closed_forms(W, Psi)
    out["W"] = W
    if S is not None:
        out["mle"] = _gauss_kl(S, out["C"])
        out["objective"] = out["mle"] + out["mf_kl"]
        out["ell"] = _expected_ll(S, out["C"])
    return out


@pytest.fixture
def closed_forms():
    return _closed_forms


@pytest.fixture
def gauss_kl():
    return _gauss_kl


@pytest.fixture
def expected_ll():
    return _expected_ll


@pytest.fixture
def random_pd():
    return _random_pd


@pytest.fixture
def jtex_reference():
    return _jtex_reference


@pytest.fixture(scope="session")
def jtex_truth():
    """(A, b, sigma2, S) of the paper's LinearJTEx ground truth, S = A A^T + sigma2 I."""
    from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2
    S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    return JTEX_A.copy(), JTEX_B.copy(), float(JTEX_SIGMA2), S


@pytest.fixture(scope="session")
def jtex_optimum(jtex_truth):
    """The VAE's exact global optimum over A at the truth's data covariance (computed once)."""
    from analysis import jtex_vae_optimum
    A, b, sigma2, S = jtex_truth
    return jtex_vae_optimum(S, b, sigma2)
