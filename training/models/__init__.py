"""Models: likelihoods p_theta(x | z), inference networks q_phi(z | x), dense networks, the ELBO.

* :mod:`.likelihoods`: the ground truths' own forms (univariate, JTEx, linear map, MLP).
* :mod:`.encoders`: mean-field Gaussian inference networks.
* :mod:`.layers`: the dense network's equations in plain autograd (the reference);
  :mod:`.nets`: the same networks on the fused fast path (``_fused_mlp``).
* :mod:`.objectives`: the negative ELBO, exact or Monte Carlo (the exact one fused in ``_fused_elbo``).
"""
from .encoders import Encoder
from .likelihoods import JTEx, Likelihood, LinearMap, MLPLikelihood, Univariate
from .objectives import kl_to_prior, neg_elbo

__all__ = ["Likelihood", "Univariate", "JTEx", "LinearMap", "MLPLikelihood", "Encoder", "neg_elbo", "kl_to_prior"]
