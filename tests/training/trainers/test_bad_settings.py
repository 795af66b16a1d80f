"""Trainer settings and sweep configurations: errors name the setting or key and its range."""
import numpy as np
import pytest

from training.experiments import unit as experiment
from training.experiments.config import check_settings, trainer_settings
from training.datasets import load_dataset
from training.trainers.lagging import LaggingVAE
from training.trainers.libi import LiBI
from training.experiments.config import load_profile, set_option
from training.trainers.vae import VAE, AnnealedBetaVAE, BetaVAE, store_settings


@pytest.fixture(scope="module")
def data():
    return load_dataset("univariate", 0, n_train=10, n_val=10, n_test=10)


def test_aggressive_lagging_does_not_check_segments(data):
    LaggingVAE(aggressive=True, epochs=3)._check_settings(data)          # segments=50 > epochs: unused
    with pytest.raises(ValueError, match="segments"):
        LaggingVAE(epochs=3)._check_settings(data)


@pytest.mark.parametrize("value", [np.float32(1), np.float64(0.5), np.int64(2), np.int32(1), 1, 0.5])
def test_libi_takes_every_numpy_scalar(data, value):
    LiBI(lambda_hz=value, eps_sigma=value, eps_mu=value)._check_settings(data)


@pytest.mark.parametrize("trainer, name", [
    (AnnealedBetaVAE(anneal_fraction="x"), "anneal_fraction"),
    (LaggingVAE(inference_fraction="x"), "inference_fraction"),
    (LiBI(lambda_hz="1"), "lambda_hz"),
    (LiBI(lambda_hz=True), "lambda_hz"),
    (VAE(lr="0.01"), "lr"),
])
def test_non_numbers_are_named(data, trainer, name):
    with pytest.raises((TypeError, ValueError)) as err:
        trainer._check_settings(data)
    assert str(err.value).startswith(name)


@pytest.mark.parametrize("key, value, words", [
    ("grids.beta_vae.beta", 0.5, ["grids.beta_vae.beta", "list", "float"]),
    ("train", 5, ["train", "object"]),
    ("datasets", "linear_jtex", ["datasets", "list"]),
    ("grids.beta_vae", [0.5], ["grids.beta_vae", "object"]),
    ("grids.libi.lambda_hz", {"nope": [1.0]}, ["grids.libi.lambda_hz", "nope"]),
    ("method_settings.libi.segments", 5, ["method_settings.libi.segments", "not a setting of libi"]),
])
def test_configuration_layout_errors_name_the_key(key, value, words):
    with pytest.raises(ValueError) as err:
        set_option(load_profile("tiny"), key, value)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("value", [None, 1, 50])
def test_patience_is_accepted(value):
    check_settings(set_option(set_option(load_profile("tiny"), "train.patience", value), "train.tol", 1e-6))


def test_settings_are_the_trainers_own(monkeypatch):
    assert {"lambda_hz", "val_is_samples", "epochs"} <= trainer_settings("libi")
    assert "progress" not in trainer_settings("vae")

    class WithFoo(BetaVAE):              # a setting a trainer gains is checked with no change here
        def __init__(self, foo=1, beta=1.0, *, epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1,
                     val_mc_samples=16, eval_every=10, seed=0, progress=False, patience=None, tol=0.0):
            store_settings(self, locals())

        def _check_settings(self, data):
            super()._check_settings(data)
            if self.foo < 0:
                raise ValueError(f"foo must be >= 0, got {self.foo}")
    monkeypatch.setitem(experiment.METHODS, "beta_vae", WithFoo)
    config = set_option(load_profile("tiny"), "method_settings.beta_vae", {"foo": -1})
    with pytest.raises(ValueError, match=r"^method_settings\.beta_vae\.foo: foo must be >= 0"):
        check_settings(config)
