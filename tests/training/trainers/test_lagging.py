"""Lagging inference networks end at the VAE's biased optimum (paper Table 1, LinearJTEx row)."""
import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian
from training.core.optim import adam
from training.core.trees import tree_leaves
from training.datasets import load_dataset
from training.evaluate import mutual_information_estimate
from training.trainers.engine import BatchedRun
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


def _reference_lagging(lag, data):
    """LaggingVAE's own epoch loop, as written before it moved onto the shared loop (the reference).

    Returns the run, ``aggressive_until`` and ``inner_steps``.
    """
    params, streams = lag._setup(data)
    loss, val_loss, draw = lag._elbo_losses(data, streams, lag._beta, lag._final_beta())
    run = BatchedRun(params, adam(lag.lr), lag.patience, lag.tol)
    R = lag.restarts
    until, inner = np.full(R, -1), np.zeros(R, dtype=int)
    aggressive = np.full(R, bool(lag.aggressive))
    best_mi = np.full(R, -np.inf)
    mi_rng = np.random.default_rng(np.random.SeedSequence([lag.seed, 13]))
    schedule = None if lag.aggressive else lag._segment_schedule()

    def inner_loop(epoch, active):
        previous, total = np.full(R, np.inf), np.zeros(R)
        for i in range(1, lag.max_inner + 1):
            if not active.any():
                break
            total += np.where(active, run.step(loss, ("phi",), epoch, draw(), active=active, record=False), 0.0)
            inner[:] += active
            if i % lag.window == 0:
                current = total / lag.window
                active = active & (current < previous) & run.active
                previous, total = current, np.zeros(R)

    for epoch in range(lag.epochs):
        if schedule is not None:
            run.step(loss, ("phi",) if schedule[epoch] else ("theta", "phi"), epoch, draw())
        elif aggressive.any():
            inner_loop(epoch, aggressive & run.active)
            run.step(loss, ("theta",), epoch, draw(), active=aggressive, record=False)
            run.step(loss, ("theta", "phi"), epoch, draw(), active=~aggressive)
        else:
            run.step(loss, ("theta", "phi"), epoch, draw())
        if (epoch + 1) % lag.eval_every == 0 or epoch == lag.epochs - 1:
            run.validate(val_loss)
            if aggressive.any():
                mi = mutual_information_estimate(data.encoder, run.params["phi"], data.val, mi_rng)
                leaving = aggressive & ~(mi > best_mi)
                until[leaving] = epoch + 1
                aggressive &= ~leaving
                best_mi = np.maximum(best_mi, np.where(np.isfinite(mi), mi, -np.inf))
            if run.finished:
                break
    return run, until, inner


@pytest.mark.slow
@pytest.mark.parametrize("settings", [dict(segments=4), dict(segments=3, patience=10, tol=1e-2),
                                      dict(aggressive=True, max_inner=9, window=3),
                                      dict(aggressive=True, max_inner=6, window=2, patience=10, tol=1e-3)],
                         ids=["segments", "segments-stopping", "aggressive", "aggressive-stopping"])
def test_the_shared_loop_reproduces_lagging_bit_for_bit(settings):
    data = load_dataset("mobius", seed=1, n_train=40, n_val=30, n_test=2)
    lag = LaggingVAE(epochs=40, restarts=3, seed=2, eval_every=5, **settings).fit(data)
    run, until, inner = _reference_lagging(lag, data)
    for name, ours, theirs in [("params", lag.params_, run.params), ("best", lag.best_params_, run.best),
                               ("history", lag.history_, run.history())]:
        for a, b in zip(tree_leaves(ours), tree_leaves(theirs)):
            np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(lag.aggressive_until_, until)
    np.testing.assert_array_equal(lag.inner_steps_, inner)
    if lag.aggressive:
        assert inner.sum() > 0
