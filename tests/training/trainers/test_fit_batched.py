"""training.trainers.fit_batched: several settings as one batched fit, each as if fitted alone."""
import dataclasses
import re

import numpy as np
import pytest

from training.datasets import load_dataset
from training.trainers.engine import AllRestartsDiverged, BatchedRun, NoiseStream
from training.trainers.lagging import LaggingVAE
from training.trainers.libi import LiBI
from training.models import LinearMap
from training.core.optim import adam
from training.trainers import VAE, AnnealedBetaVAE, BetaVAE, InferenceOnly, fit_batched
from training.core.trees import tree_leaves

LEARNED = ("params_", "best_params_", "val_objective_", "best_epoch_", "diverged_", "epochs_run_", "converged_", "history_",
           "best_restart_", "theta_", "phi_")


@pytest.fixture(scope="module")
def small():
    return {name: load_dataset(name, seed=1, n_train=60, n_val=40, n_test=10)
            for name in ("linear_jtex", "mobius", "gaussian")}


def _allclose(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


def assert_same_fit(batched, alone):
    """Every learned attribute of ``batched`` equals that of ``alone`` (fitted by itself)."""
    assert sorted(k for k in vars(batched) if k.endswith("_")) == sorted(LEARNED)
    for name in ("params_", "best_params_", "theta_", "phi_", "val_objective_"):
        _allclose(getattr(batched, name), getattr(alone, name))
    for key in ("train", "val"):
        _allclose(batched.history_[key], alone.history_[key])      # NaN where diverged, in both
    np.testing.assert_array_equal(batched.history_["val_epochs"], alone.history_["val_epochs"])
    np.testing.assert_array_equal(batched.best_epoch_, alone.best_epoch_)
    np.testing.assert_array_equal(batched.diverged_, alone.diverged_)
    np.testing.assert_array_equal(batched.epochs_run_, alone.epochs_run_)
    np.testing.assert_array_equal(batched.converged_, alone.converged_)
    assert batched.best_restart_ == alone.best_restart_


def _clone(trainer):
    return type(trainer)(**trainer.get_params())


@pytest.mark.parametrize("lrs", [(0.01, 0.01, 0.01), (0.01, 0.03, 0.005)], ids=["same-lr", "own-lr"])
def test_beta_vae_settings_equal_separate_fits(lrs, small):
    data = small["linear_jtex"]                                   # exact ELBO
    common = {"epochs": 40, "eval_every": 10}
    grid = [BetaVAE(beta=0.5, restarts=2, seed=0, lr=lrs[0], **common),
            BetaVAE(beta=2.0, restarts=1, seed=3, lr=lrs[1], **common),
            BetaVAE(beta=5.0, restarts=3, seed=0, lr=lrs[2], **common)]
    alone = [_clone(t).fit(data) for t in grid]
    fitted = fit_batched(grid, data)
    assert isinstance(fitted, list) and all(f is t for f, t in zip(fitted, grid))
    for t, a in zip(fitted, alone):
        assert_same_fit(t, a)
    # The settings really differ: same seed, other beta, other optimum.
    assert not np.allclose(fitted[0].params_["theta"]["A"][:1], fitted[2].params_["theta"]["A"][:1])


@pytest.mark.slow
def test_settings_that_stop_at_different_epochs_equal_separate_fits(small):
    """With the stopping rule, finished restarts leave the batch; the rest go on as alone."""
    data = small["mobius"]
    common = {"epochs": 400, "eval_every": 10, "patience": 30, "tol": 0.05}
    grid = [BetaVAE(beta=0.5, restarts=2, seed=0, **common), BetaVAE(beta=5.0, restarts=2, seed=1, **common)]
    alone = [_clone(t).fit(data) for t in grid]
    fit_batched(grid, data)
    for t, a in zip(grid, alone):
        assert_same_fit(t, a)
    runs = np.concatenate([t.epochs_run_ for t in grid])
    assert len(set(runs.tolist())) > 1 and runs.min() < common["epochs"]   # rows really left early


@pytest.mark.parametrize("name, elbo", [("linear_jtex", "mc"), ("mobius", "auto")])
def test_annealed_monte_carlo_settings_equal_separate_fits(name, elbo, small):
    data = small[name]
    common = {"epochs": 12, "eval_every": 4, "elbo": elbo, "mc_samples": 2, "val_mc_samples": 3}
    grid = [AnnealedBetaVAE(beta=2.0, anneal_fraction=0.5, restarts=2, seed=1, **common),
            AnnealedBetaVAE(beta=0.5, anneal_fraction=0.2, restarts=1, seed=4, lr=0.02, **common),
            AnnealedBetaVAE(beta=1.0, anneal_fraction=1.0, restarts=2, seed=1, **common)]
    alone = [_clone(t).fit(data) for t in grid]
    fit_batched(grid, data)
    for t, a in zip(grid, alone):
        assert_same_fit(t, a)


def test_vae_seeds_equal_separate_fits(small):
    data = small["gaussian"]
    grid = (VAE(epochs=15, eval_every=5, restarts=2, seed=s) for s in (0, 7))     # any iterable
    fitted = fit_batched(grid, data)
    for t in fitted:
        assert_same_fit(t, _clone(t).fit(data))


class PoisonedLinearMap(LinearMap):
    """A linear likelihood whose noise turns NaN for restarts ``bad`` of the batched fit
    (``restarts`` rows) after ``fail_after`` batched calls: a mid-training divergence."""

    def __init__(self, *args, fail_after, bad, restarts, **kw):
        super().__init__(*args, **kw)
        self.fail_after, self.bad, self.restarts, self.calls = fail_after, bad, restarts, 0

    def noise(self, params):
        base = super().noise(params)
        if base.shape[0] != self.restarts:          # a single trainer's setup
            return base
        self.calls += 1
        if self.calls <= self.fail_after:
            return base
        poison = np.zeros(self.restarts)
        poison[self.bad] = np.nan
        return base + poison[:, None]


def test_a_diverging_restart_is_flagged_in_its_own_setting_only(small):
    data = small["gaussian"]
    lik = PoisonedLinearMap(2, 4, 1e-6, fail_after=12, bad=[1], restarts=4)
    poisoned = dataclasses.replace(data, likelihood=lik)
    common = {"epochs": 30, "eval_every": 5}
    a = BetaVAE(beta=0.5, restarts=2, seed=0, **common)
    b = BetaVAE(beta=2.0, restarts=2, seed=1, **common)
    fit_batched([a, b], poisoned)
    np.testing.assert_array_equal(a.diverged_, [False, True])
    assert a.best_restart_ == 0 and np.isnan(a.history_["train"][1, -1])
    assert all(np.all(np.isfinite(leaf)) for leaf in tree_leaves(a.params_))
    # The other setting is the run it would have been alone on clean data ...
    assert_same_fit(b, _clone(b).fit(data))
    # ... and so is the surviving restart of the first.
    a_alone = _clone(a).fit(data)
    _allclose(a.history_["train"][0], a_alone.history_["train"][0])
    np.testing.assert_allclose(a.params_["theta"]["A"][0], a_alone.params_["theta"]["A"][0], rtol=1e-9)
    np.testing.assert_allclose(a.val_objective_[0], a_alone.val_objective_[0], rtol=1e-9)


def test_a_setting_whose_restarts_all_diverge_raises_after_the_others_are_fitted(small):
    data = small["linear_jtex"]
    common = {"epochs": 6, "eval_every": 3}
    grid = [BetaVAE(beta=0.5, restarts=2, seed=0, **common),
            BetaVAE(beta=1.0, restarts=3, seed=0, lr=1e6, **common),
            BetaVAE(beta=2.0, restarts=1, seed=2, **common)]
    alone = [_clone(t) for t in grid]
    with pytest.raises(AllRestartsDiverged, match=re.escape("trainers[1] = BetaVAE(")) as info:
        fit_batched(grid, data)
    assert info.value.failed == [1] and "lr=1000000.0" in str(info.value)
    assert isinstance(info.value.__cause__, AllRestartsDiverged)
    assert_same_fit(grid[0], alone[0].fit(data))
    assert_same_fit(grid[2], alone[2].fit(data))
    # The failed setting is left as its own fit leaves it: flags and history, no selection.
    with pytest.raises(AllRestartsDiverged):
        alone[1].fit(data)
    assert grid[1].diverged_.all() and not hasattr(grid[1], "best_restart_")
    np.testing.assert_array_equal(grid[1].diverged_, alone[1].diverged_)
    _allclose(grid[1].history_["train"], alone[1].history_["train"])


def _unfitted(trainers):
    return not any(k.endswith("_") for t in trainers for k in vars(t))


class MyBetaVAE(BetaVAE):
    pass


@pytest.mark.parametrize("make", [
    lambda d: InferenceOnly(d.truth, epochs=2, restarts=1),
    lambda d: LaggingVAE(segments=1, epochs=2, restarts=1),
    lambda d: LiBI(epochs=2, restarts=1),
    lambda d: MyBetaVAE(epochs=2, restarts=1),
    lambda d: "VAE",
], ids=["InferenceOnly", "LaggingVAE", "LiBI", "subclass", "str"])
def test_other_trainer_classes_are_refused(make, small):
    data = small["linear_jtex"]
    other = make(data)
    with pytest.raises(TypeError, match=r"trainers\[1\] is a"):
        fit_batched([VAE(epochs=2, restarts=1), other], data)


def test_bad_trainer_sequences(small):
    data = small["linear_jtex"]
    for empty in ([], ()):
        with pytest.raises(ValueError, match="trainers must not be empty"):
            fit_batched(empty, data)
    with pytest.raises(TypeError, match="trainers must be a sequence.*single VAE"):
        fit_batched(VAE(epochs=2, restarts=1), data)
    with pytest.raises(TypeError, match="trainers must be a sequence"):
        fit_batched(3, data)
    mixed = [VAE(epochs=2, restarts=1), BetaVAE(epochs=2, restarts=1)]
    with pytest.raises(TypeError, match="trainers must all be of one class, got BetaVAE, VAE"):
        fit_batched(mixed, data)
    twice = BetaVAE(epochs=2, restarts=1)
    with pytest.raises(ValueError, match="distinct"):
        fit_batched([twice, BetaVAE(epochs=2, restarts=1), twice], data)
    with pytest.raises(TypeError, match="data"):
        fit_batched([VAE(epochs=2, restarts=1)], data.train)
    assert _unfitted(mixed + [twice])


@pytest.mark.parametrize("name, values", [
    ("epochs", (2, 3)), ("elbo", ("auto", "mc")), ("mc_samples", (1, 2)),
    ("val_mc_samples", (16, 8)), ("eval_every", (10, 1)),
])
def test_shared_settings_must_agree(name, values, small):
    grid = [AnnealedBetaVAE(**{"epochs": 2, "restarts": 1, name: v}) for v in (values[0], values[0], values[1])]
    want = f"{name}=[{values[0]!r}, {values[0]!r}, {values[1]!r}]"
    with pytest.raises(ValueError, match=rf"^{name} must be the same .*{re.escape(want)}"):
        fit_batched(grid, small["linear_jtex"])
    assert _unfitted(grid)


def test_each_trainers_own_checks_come_first(small):
    data = small["linear_jtex"]
    with pytest.raises(ValueError, match="beta must be a finite number"):
        fit_batched([BetaVAE(epochs=2), BetaVAE(beta=-1.0, epochs=3)], data)        # epochs differ too
    with pytest.raises(ValueError, match="anneal_fraction"):
        fit_batched([AnnealedBetaVAE(epochs=2), AnnealedBetaVAE(anneal_fraction=0.0, epochs=2)], data)
    with pytest.raises(ValueError, match="lr"):
        fit_batched([VAE(epochs=2), VAE(epochs=2, lr=-1.0)], data)
    with pytest.raises(ValueError, match="elbo"):
        fit_batched([VAE(epochs=2, elbo="exact"), VAE(epochs=2, elbo="exact")], small["mobius"])


def test_batched_run_subset():
    R = 4
    params = {"theta": {"w": np.arange(R * 2.0).reshape(R, 2)}, "phi": {"b": np.ones((R, 1))}}
    run = BatchedRun(params, adam(0.1))
    target = np.array([0.0, 1.0, 2.0, 3.0])[:, None]

    def loss(p, scale):
        return scale * np.sum((p["theta"]["w"] - target) ** 2, axis=1) + np.sum(p["phi"]["b"] ** 2, axis=1)

    for epoch in range(3):
        run.step(loss, ("theta", "phi"), 1.0)
        run.validate(lambda p: loss(p, 1.0) + np.array([3.0, 0.0, 2.0, 1.0]))
    run.diverged[3] = True
    for index in (slice(2, 4), np.array([2, 3]), np.array([False, False, True, True])):
        part = run.subset(index)
        assert part.n_restarts == 2 and part.epoch == run.epoch
        for k in run.flat:
            np.testing.assert_array_equal(part.flat[k], run.flat[k][2:])
            np.testing.assert_array_equal(part.best_flat[k], run.best_flat[k][2:])
            for leaf, whole in zip(tree_leaves(part.state[k]), tree_leaves(run.state[k])):
                np.testing.assert_array_equal(leaf, whole[2:])
        np.testing.assert_array_equal(part.diverged, [False, True])
        np.testing.assert_array_equal(part.best_value, run.best_value[2:])
        np.testing.assert_array_equal(part.best_epoch, run.best_epoch[2:])
        h, hw = part.history(), run.history()
        np.testing.assert_array_equal(h["train"], hw["train"][2:])
        np.testing.assert_array_equal(h["val"], hw["val"][2:])
        np.testing.assert_array_equal(h["val_epochs"], hw["val_epochs"])
        assert part.selected_restart() == 0                  # within the subset; the whole run picks 1
    assert run.selected_restart() == 1
    # A copy: stepping the subset leaves the whole run alone, and a single index keeps its axis.
    before = run.flat["theta"].copy()
    part = run.subset(slice(0, 2))
    part.step(lambda p: np.sum(p["theta"]["w"] ** 2, axis=1), ("theta",))
    np.testing.assert_array_equal(run.flat["theta"], before)
    assert run.subset(1).params["theta"]["w"].shape == (1, 2)
    with pytest.raises(AllRestartsDiverged):
        run.subset([3]).selected_restart()


def test_noise_blocks_do_not_depend_on_the_chunk_size():
    # More restarts side by side draw the noise in smaller chunks; each restart's
    # blocks must still be those of its own fit.
    shape = (2, 5, 3)
    big = NoiseStream([np.random.default_rng(s) for s in range(4)], shape, max_entries=4 * 30 * 7)
    alone = NoiseStream([np.random.default_rng(2)], shape, max_entries=10**6)
    assert big.chunk == 7 and alone.chunk == 100
    for _ in range(20):
        np.testing.assert_array_equal(big.next()[2], alone.next()[0])
