"""training.models.nets: batched dense layers, their hand-written gradient, MLPs and initialization."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads

from training.core import trees
from training.models import layers, nets
from training.trainers.engine import restart_streams


def _layer(rng, R, d_in, d_out):
    return {"W": rng.standard_normal((R, d_in, d_out)), "b": rng.standard_normal((R, d_out))}


@pytest.mark.parametrize("x_shape", [(5, 3), (4, 5, 3)])
def test_dense_shapes_and_values(x_shape):
    rng = np.random.default_rng(0)
    layer = _layer(rng, 4, 3, 2)
    x = rng.standard_normal(x_shape)
    out = nets.dense(layer, x)
    assert out.shape == (4, 5, 2)
    for r in range(4):
        xr = x if x.ndim == 2 else x[r]
        np.testing.assert_allclose(out[r], xr @ layer["W"][r] + layer["b"][r], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("x_shape", [(6, 2), (3, 6, 2)])
def test_mlp_shapes(x_shape):
    rngs = [g[0] for g in restart_streams(0, 3)]
    params = layers.init_mlp(rngs, [2, 5, 4, 3])
    assert [l["W"].shape for l in params["hidden"]] == [(3, 2, 5), (3, 5, 4)]
    assert params["out"]["W"].shape == (3, 4, 3) and params["out"]["b"].shape == (3, 3)
    out = nets.mlp(params, np.ones(x_shape), ["tanh", "relu"])
    assert out.shape == (3, 6, 3)
    assert trees.n_restarts(params) == 3


@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("sigmoid_cube_root", "relu")])
def test_mlp_gradient_through_a_loss(acts):
    rngs = [g[0] for g in restart_streams(1, 2)]
    params = layers.init_mlp(rngs, [2, 4, 3, 2])
    # Non-zero biases keep ReLU / cube-root inputs away from their kinks.
    rng = np.random.default_rng(3)
    for layer in params["hidden"] + [params["out"]]:
        layer["b"] = 0.3 + 0.1 * rng.standard_normal(layer["b"].shape)
    x = rng.standard_normal((5, 2))
    target = rng.standard_normal((2, 5, 2))

    def loss(params, x):
        out = nets.mlp(params, x, acts)
        return anp.sum(anp.tanh(out - target) ** 2)

    check_grads(loss, 0, modes=["rev"], order=1)(params, x)
    check_grads(loss, 1, modes=["rev"], order=1)(params, x)


def test_batched_mlp_restart_equals_unbatched_numpy():
    rngs = [g[0] for g in restart_streams(2, 3)]
    params = layers.init_mlp(rngs, [2, 6, 4, 2])
    rng = np.random.default_rng(4)
    for layer in params["hidden"] + [params["out"]]:
        layer["b"] = rng.standard_normal(layer["b"].shape)
    x = rng.standard_normal((7, 2))
    out = nets.mlp(params, x, ["tanh", "relu"])
    for r in range(3):
        h = np.tanh(x @ params["hidden"][0]["W"][r] + params["hidden"][0]["b"][r])
        h = np.maximum(h @ params["hidden"][1]["W"][r] + params["hidden"][1]["b"][r], 0.0)
        ref = h @ params["out"]["W"][r] + params["out"]["b"][r]
        np.testing.assert_allclose(out[r], ref, rtol=1e-12, atol=1e-12)
        # ... and a single-restart slice of the tree gives the same row.
        single = {"hidden": [{k: v[r:r + 1] for k, v in l.items()} for l in params["hidden"]],
                  "out": {k: v[r:r + 1] for k, v in params["out"].items()}}
        np.testing.assert_allclose(nets.mlp(single, x, ["tanh", "relu"])[0], ref, rtol=1e-12, atol=1e-12)


def test_init_mlp_restart_is_independent_of_the_number_of_restarts():
    sizes = [2, 5, 3]
    one = layers.init_mlp([g[0] for g in restart_streams(7, 1)], sizes)
    many = layers.init_mlp([g[0] for g in restart_streams(7, 4)], sizes)
    for a, b in zip(one["hidden"] + [one["out"]], many["hidden"] + [many["out"]]):
        np.testing.assert_array_equal(a["W"][0], b["W"][0])
        np.testing.assert_array_equal(a["b"][0], b["b"][0])
    # Restarts differ from each other; biases start at zero.
    assert not np.allclose(many["out"]["W"][0], many["out"]["W"][1])
    assert np.all(many["hidden"][0]["b"] == 0)
    # Reproducible: the same seed gives the same weights.
    again = layers.init_mlp([g[0] for g in restart_streams(7, 4)], sizes)
    np.testing.assert_array_equal(again["out"]["W"], many["out"]["W"])


def test_glorot_scale():
    rngs = [np.random.default_rng(i) for i in range(20)]
    layer = layers.init_dense(rngs, 30, 50)
    assert layer["W"].shape == (20, 30, 50)
    np.testing.assert_allclose(layer["W"].std(), np.sqrt(2.0 / 80), rtol=0.03)


def test_activations():
    a = np.array([-8.0, -1.0, 0.0, 0.5, 27.0])
    np.testing.assert_allclose(layers.cube_root(a), np.cbrt(a), rtol=1e-14)
    np.testing.assert_allclose(layers.sigmoid(a), 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_array_equal(layers.relu(a), np.maximum(a, 0))
    h = layers.sigmoid_cube_root(np.tile(a[:4], (3, 1)))
    np.testing.assert_allclose(h[:, :2], layers.sigmoid(a[:2]) * np.ones((3, 1)))
    np.testing.assert_allclose(h[:, 2:], np.cbrt(a[2:4]) * np.ones((3, 1)))


def test_n_restarts_of_an_empty_tree_raises():
    with pytest.raises(ValueError, match="no arrays"):
        trees.n_restarts({"hidden": [], "out": {}})
    assert trees.n_restarts({"hidden": [], "u": np.zeros(5)}) == 5


@pytest.mark.parametrize("acts, sizes", [(["relu"], [2, 7, 4]), (["tanh", "sigmoid"], [3, 5, 4, 2]),
                                         (["sigmoid_cube_root", "relu"], [2, 4, 6, 2]), ([], [3, 2])])
@pytest.mark.parametrize("shared_x", [True, False])
def test_mlp_matches_its_plain_autograd_reference(acts, sizes, shared_x):
    # The fast network (fused, or layer by layer with the dense primitive)
    # against the formula written in plain autograd: values and gradients.
    rng = np.random.default_rng(13)
    R, N = 3, 6
    params = layers.init_mlp([g[0] for g in restart_streams(3, R)], sizes)
    for layer in params["hidden"] + [params["out"]]:
        layer["b"] = 0.3 + 0.2 * rng.standard_normal(layer["b"].shape)
    x = rng.standard_normal((N, sizes[0]) if shared_x else (R, N, sizes[0]))
    target = rng.standard_normal((R, N, sizes[-1]))
    np.testing.assert_allclose(nets.mlp(params, x, acts), layers.mlp_reference(params, x, acts),
                               rtol=1e-13, atol=1e-13)

    def loss(fn):
        return lambda params, x: anp.sum(anp.sin(fn(params, x, acts) - target))

    fast, ref = grad(loss(nets.mlp), (0, 1))(params, x), grad(loss(layers.mlp_reference), (0, 1))(params, x)
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(fast[0]["hidden"] + [fast[0]["out"]], ref[0]["hidden"] + [ref[0]["out"]]):
        for k in ("W", "b"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape", [(5, 3), (4, 5, 3)])
def test_dense_matches_its_plain_autograd_reference(x_shape):
    rng = np.random.default_rng(14)
    layer = _layer(rng, 4, 3, 2)
    x = rng.standard_normal(x_shape)
    np.testing.assert_allclose(nets.dense(layer, x), layers.affine_reference(layer, x), rtol=1e-13, atol=1e-13)
    loss = lambda f: (lambda layer, x: anp.sum(anp.sin(f(layer, x))))
    for fast, ref in zip(grad(loss(nets.dense), (0, 1))(layer, x), grad(loss(layers.affine_reference), (0, 1))(layer, x)):
        for f, r in ([(fast[k], ref[k]) for k in ("W", "b")] if isinstance(fast, dict) else [(fast, ref)]):
            np.testing.assert_allclose(f, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("acts", [["relu"], ["relu", "tanh", "relu"]])
def test_layer_loops_need_one_activation_per_hidden_layer(acts):
    params = layers.init_mlp([g[0] for g in restart_streams(4, 2)], [2, 3, 3, 2])
    for fn in (nets.mlp, layers.mlp_reference):
        with pytest.raises(ValueError, match="one activation per hidden layer"):
            fn(params, np.ones((4, 2)), acts)
