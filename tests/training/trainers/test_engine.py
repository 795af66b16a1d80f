"""training.trainers.engine: batched steps, divergence freezing, validation-best, random streams."""
import autograd.numpy as anp
import numpy as np
import pytest

from training.core.optim import adam
from training.core.trees import tree_leaves
from training.trainers.engine import (AllRestartsDiverged, BatchedRun, NoiseStream, RestartState, Schedule,
                                      fixed_noise, progress_bar, restart_streams, train_epochs)

R = 3
TARGETS = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]])


def _run(lr=0.05, R=R):
    params = {"theta": {"w": np.zeros((R, 2)), "s": [np.zeros(R)]}, "phi": {"v": np.ones((R, 1, 2))}}
    return BatchedRun(params, adam(lr))


def _quadratic(p, *args):
    w, s = p["theta"]["w"], p["theta"]["s"][0]
    v = p["phi"]["v"][:, 0, :]
    return anp.sum((w - TARGETS) ** 2, axis=1) + (s - 0.5) ** 2 + anp.sum((v - w) ** 2, axis=1)


def _flat_copy(run):
    return {k: v.copy() for k, v in run.flat.items()}


def test_all_restarts_reach_the_optimum_of_a_quadratic():
    run = _run()
    for _ in range(300):
        run.step(_quadratic, ("theta", "phi"))
    p = run.params
    np.testing.assert_allclose(p["theta"]["w"], TARGETS, atol=1e-3)
    np.testing.assert_allclose(p["phi"]["v"][:, 0], TARGETS, atol=1e-3)
    np.testing.assert_allclose(p["theta"]["s"][0], 0.5, atol=1e-3)
    assert run.epoch == 300 and not run.diverged.any()
    assert run.history()["train"].shape == (R, 300)


def _poisoned(kind, at):
    """The quadratic, with restart 1 turning non-finite from step ``at`` on (``kind``: where)."""
    def loss(p, epoch):
        base = _quadratic(p)
        if epoch < at:
            return base
        w = p["theta"]["w"]
        if kind == "value":       # log of a negative number: NaN value (and gradient)
            bad = anp.log(-1.0 - w[1, 0] ** 2)
        elif kind == "inf":       # overflow to inf
            bad = anp.exp(1e3 * (1.0 + w[1, 0] ** 2))
        else:                     # finite value, NaN gradient: d sqrt(0 * w) / dw = 0 * inf
            bad = anp.sqrt(0.0 * w[1, 0])
        return anp.stack([base[0], base[1] + bad, base[2]])
    return loss


@pytest.mark.parametrize("kind", ["value", "inf", "gradient"])
def test_a_diverging_restart_is_frozen_and_the_others_go_on(kind):
    run = _run()
    loss = _poisoned(kind, at=5)
    for epoch in range(5):
        run.step(loss, ("theta", "phi"), epoch)
    before = _flat_copy(run)
    state_before = {k: {s: np.copy(v) for s, v in run.state[k].items()} for k in run.state}
    for epoch in range(5, 300):
        run.step(loss, ("theta", "phi"), epoch)
    np.testing.assert_array_equal(run.diverged, [False, True, False])
    for k in run.flat:
        np.testing.assert_array_equal(run.flat[k][1], before[k][1])          # frozen
        for s in ("m", "v", "t"):
            np.testing.assert_array_equal(run.state[k][s][1], state_before[k][s][1])
        assert np.all(np.isfinite(run.flat[k]))
    p = run.params
    np.testing.assert_allclose(p["theta"]["w"][[0, 2]], TARGETS[[0, 2]], atol=1e-3)
    hist = run.history()["train"]
    assert np.all(np.isnan(hist[1, 5:])) and np.all(np.isfinite(hist[1, :5]))
    assert np.all(np.isfinite(hist[[0, 2]]))


def test_a_diverged_restart_stays_diverged():
    run = _run()
    run.step(_poisoned("value", at=0), ("theta",), 0)
    assert run.diverged.tolist() == [False, True, False]
    frozen = _flat_copy(run)
    for _ in range(3):                       # a finite loss later does not revive it
        run.step(_quadratic, ("theta", "phi"))
    assert run.diverged.tolist() == [False, True, False]
    for k in run.flat:
        np.testing.assert_array_equal(run.flat[k][1], frozen[k][1])


def test_stepping_one_part_leaves_the_other_alone():
    run = _run()
    phi = run.flat["phi"].copy()
    for _ in range(10):
        run.step(_quadratic, ("theta",))
    np.testing.assert_array_equal(run.flat["phi"], phi)
    assert np.all(run.state["phi"]["t"] == 0) and np.all(run.state["theta"]["t"] == 10)


def test_active_masks_restarts():
    run = _run()
    active = np.array([True, False, True])
    before = _flat_copy(run)
    for _ in range(4):
        run.step(_quadratic, ("theta", "phi"), active=active)
    for k in run.flat:
        np.testing.assert_array_equal(run.flat[k][1], before[k][1])
        assert not np.array_equal(run.flat[k][0], before[k][0])
        np.testing.assert_array_equal(run.state[k]["t"][1], 0)
    # A non-finite restart outside ``active`` is not watched: not marked diverged, not moved.
    run.step(_poisoned("value", at=0), ("theta",), 0, active=active)
    assert not run.diverged.any()
    np.testing.assert_array_equal(run.flat["theta"][1], before["theta"][1])
    # ... but it is once it is stepped.
    run.step(_poisoned("value", at=0), ("theta",), 0)
    assert run.diverged.tolist() == [False, True, False]


def test_record_false_keeps_the_history_and_epoch():
    run = _run()
    run.step(_quadratic, ("theta",), record=False)
    assert run.epoch == 0 and run.train_history == []


def test_validate_keeps_each_restarts_best_parameters():
    run = _run()
    # Prescribed validation values per check: restart 0 best at check 2, 1 at check 0, 2 at check 3.
    table = np.array([[5.0, 4.0, 1.0, 3.0],
                      [0.5, 2.0, 3.0, 4.0],
                      [9.0, 8.0, 7.0, 6.0]])
    snapshots = []
    for check in range(4):
        for _ in range(3):
            run.step(_quadratic, ("theta", "phi"))
        snapshots.append(_flat_copy(run))
        run.validate(lambda p, c=check: table[:, c])
    for r, c in enumerate([2, 0, 3]):
        for k in run.flat:
            np.testing.assert_array_equal(run.best_flat[k][r], snapshots[c][k][r])
        assert run.best_epoch[r] == 3 * (c + 1)
        assert run.best_value[r] == table[r, c]
    np.testing.assert_array_equal(run.best["theta"]["w"], np.stack([snapshots[c]["theta"][r, :2]
                                                                     for r, c in enumerate([2, 0, 3])]))
    assert run.selected_restart() == 1
    h = run.history()
    np.testing.assert_array_equal(h["val"], table)
    np.testing.assert_array_equal(h["val_epochs"], [3, 6, 9, 12])


def test_validate_ignores_non_finite_values():
    run = _run()
    run.validate(lambda p: np.array([np.nan, 1.0, np.inf]))
    assert run.best_value[0] == np.inf and run.best_value[1] == 1.0 and run.best_value[2] == np.inf
    assert run.selected_restart() == 1
    assert np.isnan(run.history()["val"][:, 0]).tolist() == [True, False, True]


def test_selected_restart_skips_diverged_restarts():
    run = _run()
    run.step(_quadratic, ("theta",))
    run.validate(lambda p: np.array([3.0, 0.1, 2.0]))   # restart 1 looks best ...
    run.step(_poisoned("value", at=0), ("theta",), 0)  # ... then diverges
    assert run.diverged.tolist() == [False, True, False]
    assert run.selected_restart() == 2
    run.validate(lambda p: np.array([1.0, 0.0, 2.0]))   # a diverged restart's value is ignored
    assert np.isnan(run.val_history[-1][1]) and run.best_value[1] == 0.1
    assert run.selected_restart() == 0


def test_all_restarts_diverged_raises():
    run = _run()
    run.validate(lambda p: np.ones(R))
    run.step(lambda p: anp.log(-1.0 - p["theta"]["w"][:, 0] ** 2), ("theta",))
    assert run.diverged.all()
    with pytest.raises(AllRestartsDiverged, match="all 3 restarts"):
        run.selected_restart()
    with pytest.raises(AllRestartsDiverged):
        _run().selected_restart()                       # never validated
    assert issubclass(AllRestartsDiverged, RuntimeError)


def test_set_part_resets_the_optimizer():
    run = _run()
    for _ in range(3):
        run.step(_quadratic, ("theta", "phi"))
    run.set_part("phi", {"v": np.full((R, 1, 2), 7.0)})
    np.testing.assert_array_equal(run.params["phi"]["v"], 7.0)
    assert np.all(run.state["phi"]["t"] == 0) and np.all(run.state["theta"]["t"] == 3)
    run.set_part("theta", {"w": np.zeros((R, 2)), "s": [np.ones(R)]}, reset_optimizer=False)
    assert np.all(run.state["theta"]["t"] == 3)


def test_restart_streams_are_children_of_the_seed():
    a = restart_streams(5, 1)
    b = restart_streams(5, 4, n_streams=3)
    assert len(b) == 4 and all(len(s) == 3 for s in b)
    for i in range(3):
        np.testing.assert_array_equal(a[0][i].standard_normal(5), b[0][i].standard_normal(5))
    draws = [s[0].standard_normal(3) for s in restart_streams(5, 4)]
    assert not np.allclose(draws[0], draws[1])
    other = restart_streams(6, 1)[0][0].standard_normal(3)
    assert not np.allclose(other, restart_streams(5, 1)[0][0].standard_normal(3))


def _draws(stream, n):
    return np.stack([stream.next() for _ in range(n)])


def test_noise_stream_is_independent_of_the_number_of_restarts():
    shape = (2, 7, 3)
    one = NoiseStream([s[1] for s in restart_streams(11, 1)], shape)
    three = NoiseStream([s[1] for s in restart_streams(11, 3)], shape)
    a, b = _draws(one, 5), _draws(three, 5)
    assert a.shape == (5, 1) + shape and b.shape == (5, 3) + shape
    np.testing.assert_array_equal(a[:, 0], b[:, 0])
    assert not np.allclose(b[:, 0], b[:, 1])


def test_noise_stream_chunking_does_not_change_the_sequence():
    shape = (1, 4, 2)
    big = NoiseStream([s[1] for s in restart_streams(2, 3)], shape)
    small = NoiseStream([s[1] for s in restart_streams(2, 3)], shape, max_entries=3 * 8 * 3)
    tiny = NoiseStream([s[1] for s in restart_streams(2, 3)], shape, max_entries=1)
    assert big.chunk == 100 and small.chunk == 3 and tiny.chunk == 1
    a, b, c = _draws(big, 12), _draws(small, 12), _draws(tiny, 12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # Consecutive blocks differ.
    assert not np.allclose(a[0], a[1])


def test_fixed_noise():
    rngs = [s[2] for s in restart_streams(3, 2)]
    eps = fixed_noise(rngs, (4, 5, 2))
    assert eps.shape == (2, 4, 5, 2)
    np.testing.assert_array_equal(eps[0], restart_streams(3, 1)[0][2].standard_normal((4, 5, 2)))


# ---- the stopping rule ----------------------------------------------------

def _slow_and_fast(p, *args, rows=None):
    """Restart 0 is at its optimum from the start (flat); restarts 1 and 2 keep improving."""
    w = p["theta"]["w"]
    targets = TARGETS if rows is None else TARGETS[rows]
    scale = np.array([0.0, 1.0, 1.0]) if rows is None else np.array([0.0, 1.0, 1.0])[rows]
    return scale * anp.sum((w - targets) ** 2, axis=1)


def _train_with_rule(patience, tol=1e-9, epochs=200, log=None):
    run = BatchedRun({"theta": {"w": np.zeros((R, 2))}}, adam(0.002), patience=patience, tol=tol)

    def loss(p, *args, rows=None):
        if log is not None:
            log.append(None if rows is None else rows.tolist())
        return _slow_and_fast(p, rows=rows)

    for epoch in range(epochs):
        run.step(loss, ("theta",))
        if (epoch + 1) % 10 == 0:
            run.validate(lambda p, rows=None: _slow_and_fast(p, rows=rows))
            if run.finished:
                break
    return run


def test_a_flat_restart_stops_and_is_no_longer_computed():
    log = []
    run = _train_with_rule(patience=30, log=log)
    assert run.stopped.tolist() == [True, False, False]
    # Restart 0 never improves after its first check (epoch 10): it stops at epoch 40.
    assert run.epochs_run.tolist() == [40, 200, 200]
    assert log[39] is None and log[40] == [1, 2]          # computed while running, then dropped
    assert np.isnan(run.history()["train"][0, 40:]).all()
    assert np.isnan(run.history()["val"][0, 4:]).all()


def test_stopping_leaves_the_other_restarts_trajectories_unchanged():
    stopped = _train_with_rule(patience=30)
    free = _train_with_rule(patience=None)
    assert not free.stopped.any() and free.epochs_run.tolist() == [200, 200, 200]
    np.testing.assert_allclose(stopped.flat["theta"][1:], free.flat["theta"][1:], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(stopped.state["theta"]["v"][1:], free.state["theta"]["v"][1:], rtol=1e-13)
    # The stopped restart keeps the parameters it had when it stopped.
    assert stopped.epochs_run[0] == 40 and np.isfinite(stopped.flat["theta"][0]).all()


def test_the_run_finishes_when_every_restart_has_stopped():
    run = _train_with_rule(patience=30, tol=10.0)       # nothing ever improves by 10
    assert run.finished and run.stopped.all()
    assert run.epochs_run.tolist() == [40, 40, 40] and run.epoch == 40


@pytest.mark.slow
def test_a_restart_improving_by_less_than_tol_stops():
    # Restarts 1 and 2 improve quickly at first, then by less than tol per check.
    run = _train_with_rule(patience=30, tol=1e-2, epochs=5000)
    assert run.stopped.all() and (run.epochs_run[1:] < 5000).all()
    assert (run.epochs_run[1:] > 40).all()


def test_per_restart_learning_rates_follow_the_rows():
    lr = np.array([[0.002], [0.001], [0.002]])
    runs = []
    for patience in (30, None):
        run = BatchedRun({"theta": {"w": np.zeros((R, 2))}}, adam(lr), patience=patience, tol=1e-9)
        for epoch in range(100):
            run.step(lambda p, *a, rows=None: _slow_and_fast(p, rows=rows), ("theta",))
            if (epoch + 1) % 10 == 0:
                run.validate(lambda p, rows=None: _slow_and_fast(p, rows=rows))
        runs.append(run)
    assert runs[0].stopped[0] and not runs[1].stopped.any()
    np.testing.assert_allclose(runs[0].flat["theta"][1:], runs[1].flat["theta"][1:], rtol=1e-13, atol=1e-15)


def test_near_best_keeps_the_latest_iterate_within_the_margin():
    run = BatchedRun({"theta": {"w": np.zeros((1, 1))}}, adam(0.1), near_best=0.5)
    for value, w in [(3.0, 1.0), (1.0, 2.0), (1.4, 3.0), (9.0, 4.0), (1.2, 5.0), (50.0, 6.0)]:
        run.flat["theta"] = np.array([[w]])
        run.epoch += 1
        run.validate(lambda p: np.array([value]))
    assert run.best["theta"]["w"].tolist() == [[2.0]]
    assert run.kept["theta"]["w"].tolist() == [[5.0]] and run.kept_epoch.tolist() == [5]


@pytest.mark.parametrize("patience, tol, exc", [(0, 0.0, ValueError), (1.5, 0.0, TypeError),
                                                (10, -1.0, ValueError), (10, float("nan"), ValueError)])
def test_bad_stopping_settings(patience, tol, exc):
    from training.trainers.engine import check_stopping
    with pytest.raises(exc, match="patience" if tol == 0.0 else "tol"):
        check_stopping(patience, tol)


# ---- the per-restart state as one tree, and the shared epoch loop -----------------------------------------

CENTRES = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0], [2.0, 0.0], [0.0, 1.0]])
CURVATURES = np.array([1.0, 0.05, 3.0, 0.3, 0.01])


def _separable(p, epoch, eps, rows=None):
    """A loss per restart that sees only its own row: restarts differ in centre and curvature.

    Restart 2 returns NaN at epoch 7 (it diverges there).
    """
    c, a = (CENTRES, CURVATURES) if rows is None else (CENTRES[rows], CURVATURES[rows])
    r = np.arange(len(CENTRES)) if rows is None else rows
    w = p["theta"]["w"]
    value = a * anp.sum((w - c) ** 2, axis=1) + anp.sum((p["phi"]["v"] - w) ** 2, axis=1)
    return value + np.where((r == 2) & (epoch == 7), np.nan, 0.0)


def _separable_losses(restarts):
    """Training and validation losses of the restarts ``restarts`` (indices into CENTRES) of :func:`_separable`."""
    def loss(p, epoch, eps, rows=None):
        return _separable(p, epoch, eps, restarts if rows is None else restarts[rows])

    def val_loss(p, rows=None):
        return loss(p, -1, None, rows)
    return loss, val_loss


def _two_parts(R, **settings):
    return BatchedRun({"theta": {"w": np.zeros((R, 2))}, "phi": {"v": np.ones((R, 2))}}, adam(0.05), **settings)


def _separable_run(restarts, epochs=120, patience=20):
    loss, val_loss = _separable_losses(restarts)
    run = _two_parts(len(restarts), patience=patience, tol=1e-3)
    return train_epochs(run, ("theta", "phi"), loss, val_loss, lambda: None, epochs, 5,
                        progress_bar(epochs, False, "test"))


def _assert_same_tree(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def test_every_field_of_the_restart_state_has_the_restart_axis():
    run = _separable_run(np.arange(5), epochs=30)
    assert isinstance(run.per_restart, RestartState)
    for leaf in tree_leaves(run.per_restart):
        assert np.shape(leaf)[0] == 5
    assert run.per_restart.best.flat.keys() == run.per_restart.flat.keys() == run.per_restart.opt_state.keys()


@pytest.mark.parametrize("index", [np.array([1, 3]), np.array([0, 2, 4]), slice(3, 5)])
def test_a_subset_is_the_run_of_those_restarts_alone(index):
    """Stopping at different epochs and a divergence included: every field of the state, bit for bit."""
    whole = _separable_run(np.arange(5))
    assert whole.diverged.tolist() == [False, False, True, False, False] and whole.stopped.any()
    restarts = np.arange(5)[index]
    part, alone = whole.subset(index), _separable_run(restarts)
    _assert_same_tree(part.per_restart, alone.per_restart)
    assert part.epoch == alone.epoch and part.val_epochs == alone.val_epochs
    assert part.selected_restart() == alone.selected_restart()


def test_the_loop_steps_the_parts_the_schedule_names():
    run = _two_parts(2)
    schedule = Schedule(lambda epoch: ("phi",) if epoch % 3 == 0 else ("theta", "phi"))
    train_epochs(run, schedule, *_separable_losses(np.array([0, 1])), lambda: None, 30, 10,
                 progress_bar(30, False, "test"))
    # Epochs 0, 3, ..., 27 step phi only: theta takes 20 Adam steps, phi 30.
    assert np.all(run.state["theta"]["t"] == 20) and np.all(run.state["phi"]["t"] == 30)
    assert run.epoch == 30 and run.val_epochs == [10, 20, 30]


def test_a_schedule_sees_every_validation_and_the_loop_ends_when_all_stopped():
    seen = []

    class Watch(Schedule):
        def validated(self, run, epoch):
            seen.append((epoch, run.epoch, run.stopped.copy()))

    run = _two_parts(2, patience=10, tol=1e6)          # nothing improves by 1e6: all stop at the second check
    train_epochs(run, Watch(("theta", "phi")), *_separable_losses(np.array([0, 1])), lambda: None, 100, 10,
                 progress_bar(100, False, "test"))
    assert [(e, n) for e, n, _ in seen] == [(9, 10), (19, 20)]
    assert seen[-1][2].all() and run.finished and run.epoch == 20
