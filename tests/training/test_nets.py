"""training.nets: batched dense layers, their hand-written gradient, MLPs and initialization."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads

from training import nets
from training.engine import restart_streams



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


@pytest.mark.parametrize("x_shape", [(5, 3), (4, 5, 3)])
def test_affine_gradient_matches_finite_differences(x_shape):
    rng = np.random.default_rng(1)
    layer = _layer(rng, 4, 3, 2)
    x = rng.standard_normal(x_shape)
    check_grads(nets._affine, (0, 1, 2), modes=["rev"], order=1)(x, layer["W"], layer["b"])
    for argnum in range(3):
        check_grads(nets._affine, argnum, modes=["rev"], order=1)(x, layer["W"], layer["b"])


def test_affine_gradient_of_a_shared_input_sums_over_restarts():
    rng = np.random.default_rng(2)
    layer = _layer(rng, 3, 2, 4)
    x = rng.standard_normal((6, 2))
    g = grad(lambda x: anp.sum(nets._affine(x, layer["W"], layer["b"])))(x)
    # d/dx sum_r sum_{n,o} (x W_r)_{no} = sum_r W_r 1
    np.testing.assert_allclose(g, np.broadcast_to(layer["W"].sum(axis=(0, 2)), (6, 2)), rtol=1e-13)


@pytest.mark.parametrize("x_shape", [(6, 2), (3, 6, 2)])
def test_mlp_shapes(x_shape):
    rngs = [g[0] for g in restart_streams(0, 3)]
    params = nets.init_mlp(rngs, [2, 5, 4, 3])
    assert [l["W"].shape for l in params["hidden"]] == [(3, 2, 5), (3, 5, 4)]
    assert params["out"]["W"].shape == (3, 4, 3) and params["out"]["b"].shape == (3, 3)
    out = nets.mlp(params, np.ones(x_shape), ["tanh", "relu"])
    assert out.shape == (3, 6, 3)
    assert nets.n_restarts(params) == 3


@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("sigmoid_cube_root", "relu")])
def test_mlp_gradient_through_a_loss(acts):
    rngs = [g[0] for g in restart_streams(1, 2)]
    params = nets.init_mlp(rngs, [2, 4, 3, 2])
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
    params = nets.init_mlp(rngs, [2, 6, 4, 2])
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
    one = nets.init_mlp([g[0] for g in restart_streams(7, 1)], sizes)
    many = nets.init_mlp([g[0] for g in restart_streams(7, 4)], sizes)
    for a, b in zip(one["hidden"] + [one["out"]], many["hidden"] + [many["out"]]):
        np.testing.assert_array_equal(a["W"][0], b["W"][0])
        np.testing.assert_array_equal(a["b"][0], b["b"][0])
    # Restarts differ from each other; biases start at zero.
    assert not np.allclose(many["out"]["W"][0], many["out"]["W"][1])
    assert np.all(many["hidden"][0]["b"] == 0)
    # Reproducible: the same seed gives the same weights.
    again = nets.init_mlp([g[0] for g in restart_streams(7, 4)], sizes)
    np.testing.assert_array_equal(again["out"]["W"], many["out"]["W"])


def test_glorot_scale():
    rngs = [np.random.default_rng(i) for i in range(20)]
    layer = nets.init_dense(rngs, 30, 50)
    assert layer["W"].shape == (20, 30, 50)
    np.testing.assert_allclose(layer["W"].std(), np.sqrt(2.0 / 80), rtol=0.03)


def test_activations():
    a = np.array([-8.0, -1.0, 0.0, 0.5, 27.0])
    np.testing.assert_allclose(nets.cube_root(a), np.cbrt(a), rtol=1e-14)
    np.testing.assert_allclose(nets.sigmoid(a), 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_array_equal(nets.relu(a), np.maximum(a, 0))
    h = nets.sigmoid_cube_root(np.tile(a[:4], (3, 1)))
    np.testing.assert_allclose(h[:, :2], nets.sigmoid(a[:2]) * np.ones((3, 1)))
    np.testing.assert_allclose(h[:, 2:], np.cbrt(a[2:4]) * np.ones((3, 1)))


def test_n_restarts_of_an_empty_tree_raises():
    with pytest.raises(ValueError, match="no arrays"):
        nets.n_restarts({"hidden": [], "out": {}})
    assert nets.n_restarts({"hidden": [], "u": np.zeros(5)}) == 5


# ---- the fused MLP -----------------------------------------------------------

def _layers(rng, R, sizes):
    # Biases away from 0 keep ReLU inputs off their kink for finite differences.
    return [{"W": rng.standard_normal((R, a, b)), "b": 0.3 + 0.2 * rng.standard_normal((R, b))}
            for a, b in zip(sizes[:-1], sizes[1:])]


def _reference(x, layers, acts):
    """Layer by layer with the unfused primitives (the path fused_mlp replaces)."""
    h = x
    for layer, act in zip(layers[:-1], acts):
        h = nets.ACTIVATIONS[act](nets.dense(layer, h))
    return nets.dense(layers[-1], h)


CASES = [(["relu"], [2, 7, 4]), (["tanh", "tanh"], [2, 5, 5, 2]),
         (["sigmoid", "relu", "identity"], [3, 4, 6, 3, 2]), ([], [3, 2])]


@pytest.mark.parametrize("acts, sizes", CASES)
@pytest.mark.parametrize("shared_x", [True, False])
@pytest.mark.parametrize("block_bytes", [2 ** 21, 1])
def test_fused_mlp_matches_the_layerwise_network_values_and_gradients(acts, sizes, shared_x, block_bytes,
                                                                    monkeypatch):
    # block_bytes = 1: one restart per block, so the blocked loops are exercised.
    monkeypatch.setattr(nets, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(5)
    R, N = 3, 6
    layers = _layers(rng, R, sizes)
    x = rng.standard_normal((N, sizes[0]) if shared_x else (R, N, sizes[0]))
    target = rng.standard_normal((R, N, sizes[-1]))
    np.testing.assert_allclose(nets.fused_mlp(x, layers, acts), _reference(x, layers, acts),
                               rtol=1e-13, atol=1e-13)

    def loss(fn):
        return lambda x, layers: anp.sum(anp.sin(fn(x, layers) - target))

    fused = loss(lambda x, lay: nets.fused_mlp(x, lay, acts))
    ref = loss(lambda x, lay: _reference(x, lay, acts))
    gx, gl = grad(fused, (0, 1))(x, layers)
    rx, rl = grad(ref, (0, 1))(x, layers)
    np.testing.assert_allclose(gx, rx, rtol=1e-12, atol=1e-12)
    for a, b in zip(gl, rl):
        for k in ("W", "b"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12)
    check_grads(fused, (0, 1), modes=["rev"], order=1)(x, layers)


def test_fused_mlp_gradient_of_the_parameters_alone():
    # Only some arguments boxed: the input's gradient is not asked for.
    rng = np.random.default_rng(6)
    layers = _layers(rng, 2, [2, 5, 2])
    x = rng.standard_normal((4, 2))
    check_grads(lambda lay: anp.sum(nets.fused_mlp(x, lay, ["tanh"]) ** 2), modes=["rev"], order=1)(layers)


def test_fused_vjp_recomputes_when_the_stash_is_not_its_own():
    # The vjp maker normally takes the forward pass's activations; if another
    # forward pass came in between it must recompute, not use the wrong ones.
    rng = np.random.default_rng(7)
    layers = _layers(rng, 2, [2, 5, 2])
    wb = [a for lay in layers for a in (lay["W"], lay["b"])]
    x, other = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    ans = nets._fused_forward(x, *wb, acts=("tanh",))
    nets._fused_forward(other, *wb, acts=("tanh",))
    g = rng.standard_normal(ans.shape)
    got = nets._fused_vjp((1,), ans, (x, *wb), {"acts": ("tanh",)})(g)[0]
    fresh = nets._fused_forward(x, *wb, acts=("tanh",))
    want = nets._fused_vjp((1,), fresh, (x, *wb), {"acts": ("tanh",)})(g)[0]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_fused_mlp_needs_one_activation_per_hidden_layer():
    layers = _layers(np.random.default_rng(8), 1, [2, 3, 2])
    with pytest.raises(ValueError, match="activations"):
        nets.fused_mlp(np.ones((2, 2)), layers, [])


def test_split_last_values_and_gradient():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 5))
    a, b = nets.split_last(x, 2)
    np.testing.assert_array_equal(a, x[..., :2])
    np.testing.assert_array_equal(b, x[..., 2:])
    check_grads(lambda x: anp.sum(anp.sin(nets.split_last(x, 2)[0]) * nets.split_last(x, 2)[1][..., :2]),
                modes=["rev"], order=1)(x)


def test_second_derivatives_through_the_fused_primitives():
    # The fused gradients are plain numpy; under an outer trace they fall
    # back to differentiable forms, so second derivatives stay right.
    from training import flat
    rng = np.random.default_rng(10)
    layers = _layers(rng, 2, [2, 4, 2])
    x = rng.standard_normal((2, 5, 2))
    check_grads(lambda W: anp.sum(nets.fused_mlp(x, [layers[0], {"W": W, "b": layers[1]["b"]}], ["tanh"]) ** 2),
                modes=["rev"], order=2)(layers[1]["W"])
    check_grads(lambda W: anp.sum(nets.fused_mlp(x, [{"W": W, "b": layers[0]["b"]}, layers[1]], ["tanh"]) ** 2),
                modes=["rev"], order=2)(layers[0]["W"])
    check_grads(lambda f: anp.sum(anp.tanh(flat.columns(f, 1, 3, (2, 2))) ** 3), modes=["rev"], order=2)(
        rng.standard_normal((2, 4)))
    check_grads(lambda x: anp.sum(anp.sin(nets.split_last(x, 2)[0]) ** 2 * nets.split_last(x, 2)[1][..., :2]),
                modes=["rev"], order=2)(rng.standard_normal((2, 3, 5)))


@pytest.mark.parametrize("x_shape, match", [((3, 5, 2), "R = 2"), ((5,), "shape"), ((5, 3), "features")])
def test_fused_mlp_refuses_inputs_of_the_wrong_shape(x_shape, match):
    layers = _layers(np.random.default_rng(11), 2, [2, 4, 2])
    with pytest.raises(ValueError, match=match):
        nets.fused_mlp(np.ones(x_shape), layers, ["relu"])


def test_fused_mlp_of_no_points():
    layers = _layers(np.random.default_rng(12), 2, [2, 4, 2])
    assert nets.fused_mlp(np.ones((0, 2)), layers, ["relu"]).shape == (2, 0, 2)
