"""training.core.optim: Adam as pure functions."""
import numpy as np
import pytest

from training.core.optim import adam, apply_updates
from training.core.trees import tree_map, tree_where


def reference_adam(params, grads_seq, lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1, one array at a time."""
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    out = [params.copy()]
    for t, g in enumerate(grads_seq, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        params = params - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(params.copy())
    return out


@pytest.mark.parametrize("settings", [dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8),
                                      dict(lr=0.3, b1=0.5, b2=0.9, eps=1e-3),
                                      dict(lr=1e-3, b1=0.0, b2=0.0, eps=1e-8)])
def test_adam_matches_a_reference_implementation(settings):
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 2, 2)), "b": [rng.standard_normal((3,))]}
    grads_seq = [{"a": rng.standard_normal((3, 2, 2)), "b": [rng.standard_normal((3,))]} for _ in range(7)]
    opt = adam(**settings)
    state = opt.init(params)
    p = params
    ref_a = reference_adam(params["a"], [g["a"] for g in grads_seq], **settings)
    ref_b = reference_adam(params["b"][0], [g["b"][0] for g in grads_seq], **settings)
    for t, g in enumerate(grads_seq, start=1):
        updates, state = opt.update(g, state)
        p = apply_updates(p, updates)
        np.testing.assert_allclose(p["a"], ref_a[t], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(p["b"][0], ref_b[t], rtol=1e-13, atol=1e-15)
    assert np.all(state["t"]["a"] == 7)


def test_adam_on_a_flat_matrix_and_a_quadratic():
    opt = adam(lr=0.05)
    target = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = np.zeros((2, 2))
    state = opt.init(x)
    for _ in range(2000):
        updates, state = opt.update(2 * (x - target), state)
        x = apply_updates(x, updates)
    np.testing.assert_allclose(x, target, atol=0.01)


def test_update_is_pure():
    opt = adam(lr=0.1)
    params = {"w": np.array([1.0, 2.0])}
    state = opt.init(params)
    g = {"w": np.array([0.3, -0.2])}
    u1, s1 = opt.update(g, state)
    u2, s2 = opt.update(g, state)
    np.testing.assert_array_equal(u1["w"], u2["w"])
    assert np.all(state["t"]["w"] == 0) and np.all(state["m"]["w"] == 0)
    np.testing.assert_array_equal(s1["m"]["w"], s2["m"]["w"])


def test_per_entry_step_counts():
    """An entry frozen for some steps keeps its own count: its bias correction starts when it moves."""
    settings = dict(lr=0.1, b1=0.9, b2=0.99, eps=1e-8)
    opt = adam(**settings)
    rng = np.random.default_rng(1)
    x_init = rng.standard_normal((2, 3))     # row 1 (a restart) frozen for the first 3 steps
    grads = [rng.standard_normal((2, 3)) for _ in range(6)]
    x, state = x_init, opt.init(x_init)
    for i, g in enumerate(grads):
        updates, new_state = opt.update(g, state)
        move = np.array([True, i >= 3])
        x = tree_where(move, apply_updates(x, updates), x)
        state = tree_where(move, new_state, state)
    np.testing.assert_array_equal(state["t"], [[6, 6, 6], [3, 3, 3]])
    ref0 = reference_adam(x_init[0], [g[0] for g in grads], **settings)[-1]
    ref1 = reference_adam(x_init[1], [g[1] for g in grads[3:]], **settings)[-1]
    np.testing.assert_allclose(x[0], ref0, rtol=1e-13)
    np.testing.assert_allclose(x[1], ref1, rtol=1e-13)


def test_state_is_elementwise_with_tree_map():
    opt = adam()
    state = opt.init({"p": np.ones((2, 2)), "q": [np.ones(3)]})
    assert set(state) == {"m", "v", "t"}
    shapes = tree_map(np.shape, state["v"])
    assert shapes == {"p": (2, 2), "q": [(3,)]}


@pytest.mark.parametrize("kw, name", [(dict(lr=0.0), "lr"), (dict(lr=-0.1), "lr"), (dict(lr=np.nan), "lr"),
                                      (dict(lr=np.inf), "lr"),
                                      (dict(b1=1.0), "b1"), (dict(b1=-0.1), "b1"), (dict(b1=np.nan), "b1"),
                                      (dict(b2=1.0), "b2"), (dict(b2=1.5), "b2"), (dict(b2=-1e-9), "b2")])
def test_bad_settings_raise_naming_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        adam(**kw)


def test_a_learning_rate_per_row_equals_separate_optimizers():
    # fit_batched gives each restart (row) its own rate: an (R, 1) column.
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 4))}
    lrs = np.array([0.01, 0.1, 0.003])
    opt = adam(lrs[:, None])
    state = opt.init(params)
    singles = [adam(lr) for lr in lrs]
    single_states = [o.init({"w": params["w"][r]}) for r, o in enumerate(singles)]
    for _ in range(5):
        g = {"w": rng.standard_normal((3, 4))}
        updates, state = opt.update(g, state)
        for r, o in enumerate(singles):
            u, single_states[r] = o.update({"w": g["w"][r]}, single_states[r])
            np.testing.assert_array_equal(updates["w"][r], u["w"])
    with pytest.raises(ValueError, match="lr"):
        adam(np.array([[0.01], [-1.0]]))
