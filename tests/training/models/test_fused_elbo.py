"""training.models._fused_elbo: the exact negative ELBO's fused primitive against its plain-autograd reference."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2
from training.core import _forward_cache
from training.models._fused_elbo import _exact_neg_elbo, _exact_neg_elbo_vjp, exact_neg_elbo
from training.models import JTEx
from training.models.objectives import expected_reconstruction_exact, kl_to_prior, neg_elbo

from .test_objectives import FixedLinear, _args


def _reference(W, psi, mu, logvar, x, beta):
    """mean_n [-E_q log p(x_n | z) + beta KL] from the readable functions of training.models.objectives."""
    b = anp.reshape(beta, (-1, 1)) if np.ndim(beta) else beta
    rec = expected_reconstruction_exact(FixedLinear(), (W, psi), mu, logvar, x)
    return anp.mean(rec + b * kl_to_prior(mu, logvar), axis=-1)


@pytest.mark.parametrize("beta", [1.0, 0.3, "per_restart"])
def test_fused_exact_neg_elbo_gradient_and_value(beta):
    W, psi, mu, logvar, x = _args()
    b = np.linspace(0.5, 2.0, W.shape[0]) if beta == "per_restart" else beta
    check_grads(lambda *a: _exact_neg_elbo(*a, x, b), (0, 1, 2, 3), modes=["rev"], order=1)(W, psi, mu, logvar)
    np.testing.assert_allclose(_exact_neg_elbo(W, psi, mu, logvar, x, b), _reference(W, psi, mu, logvar, x, b),
                               rtol=1e-12)
    weights = np.linspace(1.0, 2.0, W.shape[0])
    fast = grad(lambda *a: anp.sum(weights * exact_neg_elbo(*a, x, b)), (0, 1, 2, 3))(W, psi, mu, logvar)
    ref = grad(lambda *a: anp.sum(weights * _reference(*a, x, b)), (0, 1, 2, 3))(W, psi, mu, logvar)
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f, r, rtol=1e-11, atol=1e-13)


def test_fused_exact_neg_elbo_vjp_recomputes_when_the_stash_is_not_its_own():
    # The vjp maker takes the forward pass's intermediates; after another
    # forward pass in between it must recompute them, not use the wrong ones.
    W, psi, mu, logvar, x = _args()
    args = (W, psi, mu, logvar, x, 1.0)
    ans = _exact_neg_elbo(*args)
    _exact_neg_elbo(W, psi, mu + 1.0, logvar, x, 1.0)
    g = np.linspace(1.0, 2.0, W.shape[0])
    got = _exact_neg_elbo_vjp((0, 1, 2, 3), ans, args, {})(g)
    want = _exact_neg_elbo_vjp((0, 1, 2, 3), _exact_neg_elbo(*args), args, {})(g)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_an_undifferentiated_exact_elbo_keeps_nothing_for_a_vjp():
    W, psi, mu, logvar, x = _args(D=2)
    lik = JTEx(JTEX_A, JTEX_B, JTEX_SIGMA2)
    _forward_cache._last.entry = None
    neg_elbo(lik, {"A": np.repeat(JTEX_A[None], W.shape[0], axis=0)}, mu, logvar, x)
    assert getattr(_forward_cache._last, "entry", None) is None
