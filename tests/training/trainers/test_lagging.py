"""Lagging inference networks end at the VAE's biased optimum (paper Table 1, LinearJTEx row)."""
import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian
from training.datasets import load_dataset
from training.trainers.lagging import LaggingVAE

TRUE_S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)


@pytest.fixture(scope="module")
def data():
    return load_dataset("linear_jtex", seed=0)


def _objective_at_truth(trainer):
    A = trainer.theta_["A"][0]
    return float(LinearGaussian.jtex(A, JTEX_B, JTEX_SIGMA2).vae_objective(TRUE_S))


@pytest.mark.slow
def test_segmented_lagging_ends_at_the_vae_optimum(data):
    lag = LaggingVAE(epochs=5000, segments=50, restarts=4, seed=0).fit(data)
    assert abs(_objective_at_truth(lag) - 0.196) < 0.01
    assert lag.inner_steps_.sum() == 0


@pytest.mark.slow
def test_aggressive_lagging_ends_at_the_vae_optimum(data):
    lag = LaggingVAE(epochs=3000, aggressive=True, restarts=3, seed=0).fit(data)
    assert abs(_objective_at_truth(lag) - 0.196) < 0.01
    # The aggressive phase ran (encoder-only steps) and ended for every restart.
    assert np.all(lag.inner_steps_ > 0) and np.all(lag.aggressive_until_ > 0)


def test_segment_schedule():
    lag = LaggingVAE(epochs=10, segments=2, inference_fraction=0.4)
    assert lag._segment_schedule().tolist() == [True, True, False, False, False] * 2


def test_bad_settings(data):
    for kw, name in [({"segments": 0}, "segments"), ({"segments": 20}, "segments"),
                     ({"inference_fraction": 1.0}, "inference_fraction"),
                     ({"max_inner": 0}, "max_inner"), ({"window": 0}, "window")]:
        with pytest.raises(ValueError, match=name):
            LaggingVAE(epochs=10, restarts=1, **{"segments": 5, **kw}).fit(data)
