"""training.trainers: the VAE family's sklearn-like face, batching, schedules, checks and divergence."""
import dataclasses
import inspect

import numpy as np
import pytest

from training.datasets import Dataset, load_dataset
from training.trainers.engine import AllRestartsDiverged
from training.models import LinearMap
from training.trainers.lagging import LaggingVAE
from training.trainers.libi import LiBI
from training.trainers import VAE, AnnealedBetaVAE, BaseTrainer, BetaVAE, InferenceOnly
from training.core.trees import tree_leaves, tree_map


@pytest.fixture(scope="module")
def univariate():
    return load_dataset("univariate", seed=0, n_train=200, n_val=200, n_test=20)


@pytest.fixture(scope="module")
def small():
    return {name: load_dataset(name, seed=1, n_train=60, n_val=40, n_test=10)
            for name in ("linear_jtex", "cubic_jtex", "mobius", "gaussian")}


def _leaves_allclose(a, b, rtol=1e-12):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-300)


def test_vae_fits_the_univariate_model(univariate):
    vae = VAE(epochs=200, restarts=2, lr=0.05, seed=0)
    assert vae.fit(univariate) is vae
    # Every valid theta is a global optimum; at it -ELBO = -mean log N(x; 0, sigma2).
    optimum = 0.5 * np.log(2 * np.pi) + 0.5 * np.mean(univariate.val**2)
    np.testing.assert_allclose(vae.val_objective_, optimum, rtol=1e-5)
    train = vae.history_["train"]
    assert np.all(train[:, -1] < train[:, 0]) and np.all(np.abs(np.diff(train[:, -20:], axis=1)) < 1e-6)


@pytest.mark.parametrize("cls", [VAE, BetaVAE, AnnealedBetaVAE])
def test_learned_attributes_and_shapes(cls, small):
    data = small["linear_jtex"]
    R, epochs = 3, 25
    est = cls(epochs=epochs, restarts=R, eval_every=10, seed=2)
    assert not any(k.endswith("_") for k in vars(est))
    assert est.fit(data) is est
    for name in ("params_", "best_params_"):
        tree = getattr(est, name)
        assert set(tree) == {"theta", "phi"}
        assert tree["theta"]["A"].shape == (R, 2, 2)
        assert tree["phi"]["hidden"] == []
        assert tree["phi"]["mean"]["W"].shape == tree["phi"]["logvar"]["W"].shape == (R, 2, 2)
    assert est.val_objective_.shape == (R,) and np.all(np.isfinite(est.val_objective_))
    assert est.best_epoch_.shape == (R,) and set(est.best_epoch_) <= {10, 20, 25}
    assert est.diverged_.shape == (R,) and est.diverged_.dtype == bool and not est.diverged_.any()
    assert est.history_["train"].shape == (R, epochs)
    assert est.history_["val"].shape == (R, 3)
    np.testing.assert_array_equal(est.history_["val_epochs"], [10, 20, 25])
    assert isinstance(est.best_restart_, int) and est.best_restart_ == int(np.argmin(est.val_objective_))
    assert est.theta_["A"].shape == (1, 2, 2)
    selected = tree_map(lambda x: x[est.best_restart_:est.best_restart_ + 1], est.best_params_)
    _leaves_allclose({"theta": est.theta_, "phi": est.phi_}, selected, rtol=0)
    # The selected parameters plug straight into the model functions.
    mu, logvar = data.encoder(est.phi_, data.test)
    assert mu.shape == (1, 10, 2)
    assert data.likelihood.exact(est.theta_).marginal_cov().shape == (1, 2, 2)


def test_get_params_and_repr():
    est = AnnealedBetaVAE(beta=2.0, anneal_fraction=0.25, epochs=5, restarts=1)
    params = est.get_params()
    assert params["beta"] == 2.0 and params["anneal_fraction"] == 0.25 and params["epochs"] == 5
    assert repr(est).startswith("AnnealedBetaVAE(beta=2.0, anneal_fraction=0.25, epochs=5, restarts=1")


@pytest.mark.parametrize("cls", [VAE, BetaVAE, AnnealedBetaVAE, InferenceOnly, LaggingVAE, LiBI])
def test_settings_are_the_signature(cls):
    """Every setting is a named constructor argument (no **kw), so get_params/set_params and a clone work."""
    sig = inspect.signature(cls)
    assert all(p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in sig.parameters.values())
    assert {"epochs", "restarts", "lr", "seed", "patience", "tol"} <= set(sig.parameters)
    est = cls()
    assert list(est.get_params()) == list(sig.parameters)
    assert est.get_params() == {k: p.default for k, p in sig.parameters.items()}
    clone = cls(**est.set_params(epochs=7, seed=3).get_params())
    assert clone.get_params() == est.get_params() and clone.epochs == 7 and clone.seed == 3
    with pytest.raises(ValueError, match="'epoch' is not a setting"):
        est.set_params(epoch=3)


def test_libi_stands_beside_the_vae():
    assert not issubclass(LiBI, VAE) and issubclass(LiBI, BaseTrainer)


def test_refit_is_deterministic(small):
    data = small["mobius"]
    a = VAE(epochs=8, restarts=2, seed=3).fit(data)
    b = VAE(epochs=8, restarts=2, seed=3).fit(data)
    _leaves_allclose(a.params_, b.params_, rtol=0)
    c = VAE(epochs=8, restarts=2, seed=4).fit(data)
    assert not np.allclose(a.params_["theta"]["out"]["W"], c.params_["theta"]["out"]["W"])


@pytest.mark.parametrize("name, epochs", [("linear_jtex", 40), ("mobius", 15)])
def test_batched_restarts_equal_separate_runs(name, epochs, small):
    data = small[name]
    three = VAE(epochs=epochs, restarts=3, seed=5).fit(data)
    one = VAE(epochs=epochs, restarts=1, seed=5).fit(data)
    two = VAE(epochs=epochs, restarts=2, seed=5).fit(data)
    take = lambda t, r: tree_map(lambda x: x[r:r + 1], t)
    _leaves_allclose(take(three.params_, 0), one.params_)
    _leaves_allclose(take(three.params_, 1), take(two.params_, 1))
    np.testing.assert_allclose(three.history_["train"][:2], two.history_["train"], rtol=1e-12)
    np.testing.assert_allclose(three.val_objective_[:1], one.val_objective_, rtol=1e-12)


@pytest.mark.parametrize("name", ["cubic_jtex", "mobius", "linear_jtex"])
def test_monte_carlo_elbo_runs(name, small):
    data = small[name]
    vae = VAE(epochs=6, restarts=2, elbo="mc", mc_samples=2, val_mc_samples=3, eval_every=3, seed=0).fit(data)
    assert np.all(np.isfinite(vae.history_["train"])) and np.all(np.isfinite(vae.val_objective_))
    assert vae.history_["val"].shape == (2, 2)


def test_mc_and_exact_paths_differ_only_by_noise(small):
    data = small["linear_jtex"]
    exact = VAE(epochs=1, restarts=1, seed=0).fit(data).history_["train"][0, 0]
    mc = VAE(epochs=1, restarts=1, seed=0, elbo="mc", mc_samples=400).fit(data).history_["train"][0, 0]
    assert abs(mc - exact) < 0.05 * abs(exact)


def test_beta_vae_with_beta_one_is_the_vae(small):
    data = small["gaussian"]
    a = VAE(epochs=10, restarts=2, seed=1).fit(data)
    b = BetaVAE(beta=1.0, epochs=10, restarts=2, seed=1).fit(data)
    c = AnnealedBetaVAE(beta=1.0, anneal_fraction=0.1, epochs=10, restarts=2, seed=1).fit(data)
    _leaves_allclose(a.params_, b.params_, rtol=0)
    other = BetaVAE(beta=3.0, epochs=10, restarts=2, seed=1).fit(data)
    assert np.abs(other.params_["theta"]["A"] - a.params_["theta"]["A"]).max() > 1e-8   # beta matters
    # Annealing over 1 epoch (0.1 x 10) starts at the final beta: the same run as the VAE.
    _leaves_allclose(a.params_, c.params_, rtol=0)


def test_annealing_schedule():
    est = AnnealedBetaVAE(beta=2.0, anneal_fraction=0.5, epochs=100)
    betas = np.array([est._beta(e) for e in range(100)])
    ramp = betas[:50]
    np.testing.assert_allclose(np.diff(ramp), 2.0 / 50, rtol=1e-12)   # linear ...
    assert betas[0] == pytest.approx(2.0 / 50)                         # ... from 0 (one step in) ...
    assert betas[49] == 2.0 and np.all(betas[50:] == 2.0)              # ... to beta at anneal_fraction
    assert est._final_beta() == 2.0
    full = AnnealedBetaVAE(beta=1.0, anneal_fraction=1.0, epochs=10)
    np.testing.assert_allclose([full._beta(e) for e in range(10)], np.arange(1, 11) / 10)


def test_the_trainer_uses_the_schedule_and_validates_with_the_final_beta(small):
    data = small["linear_jtex"]
    seen = []

    class Recording(AnnealedBetaVAE):
        def _beta(self, epoch):
            b = super()._beta(epoch)
            seen.append((epoch, b))
            return b

    est = Recording(beta=5.0, anneal_fraction=0.4, epochs=10, restarts=1, eval_every=5, seed=0).fit(data)
    assert seen == [(e, 5.0 * min(1.0, (e + 1) / 4)) for e in range(10)]
    # Validation uses beta = 5 at every check: the same number as a BetaVAE(5)'s objective on those params.
    from training.models.objectives import neg_elbo
    p = est.best_params_
    mu, logvar = data.encoder(p["phi"], data.val)
    np.testing.assert_allclose(est.val_objective_, neg_elbo(data.likelihood, p["theta"], mu, logvar, data.val, 5.0),
                               rtol=1e-12)


@pytest.mark.parametrize("cls, kw, exc, name", [
    (VAE, dict(epochs=-1), ValueError, "epochs"),
    (VAE, dict(epochs=0), ValueError, "epochs"),
    (VAE, dict(epochs=2.5), TypeError, "epochs"),
    (VAE, dict(restarts=0), ValueError, "restarts"),
    (VAE, dict(lr=0.0), ValueError, "lr"),
    (VAE, dict(lr=-0.01), ValueError, "lr"),
    (VAE, dict(lr=np.nan), ValueError, "lr"),
    (VAE, dict(elbo="closed"), ValueError, "elbo"),
    (VAE, dict(mc_samples=0), ValueError, "mc_samples"),
    (VAE, dict(val_mc_samples=0), ValueError, "val_mc_samples"),
    (VAE, dict(eval_every=0), ValueError, "eval_every"),
    (VAE, dict(seed=-3), ValueError, "seed"),
    (BetaVAE, dict(beta=-0.5), ValueError, "beta"),
    (BetaVAE, dict(beta=np.inf), ValueError, "beta"),
    (BetaVAE, dict(beta="2"), ValueError, "beta"),
    (AnnealedBetaVAE, dict(beta=-1.0), ValueError, "beta"),
    (AnnealedBetaVAE, dict(anneal_fraction=0.0), ValueError, "anneal_fraction"),
    (AnnealedBetaVAE, dict(anneal_fraction=1.5), ValueError, "anneal_fraction"),
])
def test_bad_settings_raise_naming_the_argument(cls, kw, exc, name, small):
    with pytest.raises(exc, match=name):
        cls(**dict(dict(epochs=2, restarts=1), **kw)).fit(small["linear_jtex"])


def test_exact_elbo_needs_a_linear_likelihood(small):
    with pytest.raises(ValueError, match="elbo"):
        VAE(epochs=2, restarts=1, elbo="exact").fit(small["cubic_jtex"])
    with pytest.raises(ValueError, match="elbo"):
        VAE(epochs=2, restarts=1, elbo="exact").fit(small["mobius"])


@pytest.mark.parametrize("bad", [None, np.ones((10, 2)), {"train": np.ones((10, 2))}])
def test_fit_needs_a_dataset(bad):
    with pytest.raises(TypeError, match="data"):
        VAE(epochs=2, restarts=1).fit(bad)


def test_all_restarts_diverging_raises_instead_of_returning_nan(small):
    with pytest.raises(AllRestartsDiverged, match="diverged"):
        VAE(epochs=5, restarts=3, lr=1e6, seed=0).fit(small["linear_jtex"])


class FailingLinearMap(LinearMap):
    """The Gaussian data set's likelihood, except that restart ``bad``'s noise turns NaN
    after ``fail_after`` calls (a deterministic mid-training divergence)."""

    def __init__(self, *args, fail_after, bad, restarts, **kw):
        super().__init__(*args, **kw)
        self.fail_after, self.bad, self.restarts, self.calls = fail_after, bad, restarts, 0

    def noise(self, params):
        self.calls += 1
        base = super().noise(params)
        if self.calls <= self.fail_after:
            return base
        poison = np.zeros(self.restarts)
        poison[self.bad] = np.nan
        return base + poison[:, None]


def test_a_diverging_restart_is_flagged_not_selected(small):
    data = small["gaussian"]
    R = 3
    lik = FailingLinearMap(2, 4, 1e-6, fail_after=12, bad=0, restarts=R)
    failing = dataclasses.replace(data, likelihood=lik)
    est = VAE(epochs=30, restarts=R, eval_every=5, seed=0).fit(failing)
    np.testing.assert_array_equal(est.diverged_, [True, False, False])
    assert est.best_restart_ in (1, 2)
    hist = est.history_["train"]
    # noise() is called at setup, once per step and once per validation: the 13th call comes
    # about 10 steps in (the exact step depends on the trainer's bookkeeping).
    k = int(np.argmax(np.isnan(hist[0])))
    assert 5 <= k <= 12
    assert np.all(np.isfinite(hist[0, :k])) and np.all(np.isnan(hist[0, k:]))
    assert np.all(np.isfinite(hist[1:]))
    for tree in (est.params_, est.best_params_):
        assert all(np.all(np.isfinite(leaf)) for leaf in tree_leaves(tree))
    # Its validation-best comes from a check before it diverged.
    assert np.isfinite(est.val_objective_[0]) and 5 <= est.best_epoch_[0] <= k
    assert np.all(np.isfinite(est.theta_["A"])) and np.isfinite(est.val_objective_[est.best_restart_])
    # The survivors are the runs they would have been alone.
    plain = VAE(epochs=30, restarts=R, eval_every=5, seed=0).fit(data)
    np.testing.assert_allclose(est.params_["theta"]["A"][1:], plain.params_["theta"]["A"][1:], rtol=1e-12)
    # The diverged restart is frozen at its last finite parameters: those of the plain run after k steps.
    early = VAE(epochs=k, restarts=R, eval_every=5, seed=0).fit(data)
    np.testing.assert_allclose(est.params_["theta"]["A"][0], early.params_["theta"]["A"][0], rtol=1e-12)
    _leaves_allclose(tree_map(lambda a: a[:1], est.params_["phi"]), tree_map(lambda a: a[:1], early.params_["phi"]))


def test_fit_accepts_user_arrays(small):
    d = small["linear_jtex"]
    user = Dataset.from_arrays(d.train, d.val, d.test, d.likelihood, d.encoder)
    est = VAE(epochs=5, restarts=1).fit(user)
    assert np.all(np.isfinite(est.val_objective_))


def test_the_stopping_rule_waits_for_the_end_of_the_beta_ramp(small):
    """Nothing improves by tol = 1e9 nats: plain beta-VAE restarts stop at the first chance, annealed ones after the ramp."""
    common = dict(epochs=400, restarts=2, seed=0, patience=20, tol=1e9)
    plain = BetaVAE(beta=2.0, **common).fit(small["linear_jtex"])
    annealed = AnnealedBetaVAE(beta=2.0, anneal_fraction=0.5, **common).fit(small["linear_jtex"])
    assert plain.converged_.all() and plain.epochs_run_.tolist() == [30, 30]
    assert annealed.converged_.all() and annealed.epochs_run_.tolist() == [220, 220]   # ramp, then patience
