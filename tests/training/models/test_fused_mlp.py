"""training.models._fused_mlp and training.core._flat's slices: the fast primitives against plain autograd."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads

from training.core import _flat
from training.models import _fused_mlp
from training.models import layers as reference

from .test_nets import _layer


@pytest.mark.parametrize("x_shape", [(5, 3), (4, 5, 3)])
def test_affine_gradient_matches_finite_differences(x_shape):
    rng = np.random.default_rng(1)
    layer = _layer(rng, 4, 3, 2)
    x = rng.standard_normal(x_shape)
    check_grads(_fused_mlp.affine, (0, 1, 2), modes=["rev"], order=1)(x, layer["W"], layer["b"])
    for argnum in range(3):
        check_grads(_fused_mlp.affine, argnum, modes=["rev"], order=1)(x, layer["W"], layer["b"])


def test_affine_gradient_of_a_shared_input_sums_over_restarts():
    rng = np.random.default_rng(2)
    layer = _layer(rng, 3, 2, 4)
    x = rng.standard_normal((6, 2))
    g = grad(lambda x: anp.sum(_fused_mlp.affine(x, layer["W"], layer["b"])))(x)
    # d/dx sum_r sum_{n,o} (x W_r)_{no} = sum_r W_r 1
    np.testing.assert_allclose(g, np.broadcast_to(layer["W"].sum(axis=(0, 2)), (6, 2)), rtol=1e-13)



def _layers(rng, R, sizes):
    # Biases away from 0 keep ReLU inputs off their kink for finite differences.
    return [{"W": rng.standard_normal((R, a, b)), "b": 0.3 + 0.2 * rng.standard_normal((R, b))}
            for a, b in zip(sizes[:-1], sizes[1:])]


def _reference(x, layers, acts):
    """The network in plain autograd (training.models.reference.mlp_reference)."""
    return reference.mlp_reference({"hidden": layers[:-1], "out": layers[-1]}, x, acts)


CASES = [(["relu"], [2, 7, 4]), (["tanh", "tanh"], [2, 5, 5, 2]),
         (["sigmoid", "relu", "identity"], [3, 4, 6, 3, 2]), ([], [3, 2])]


@pytest.mark.parametrize("acts, sizes", CASES)
@pytest.mark.parametrize("shared_x", [True, False])
@pytest.mark.parametrize("block_bytes", [2 ** 21, 1])
def test_fused_mlp_matches_the_layerwise_network_values_and_gradients(acts, sizes, shared_x, block_bytes,
                                                                    monkeypatch):
    # block_bytes = 1: one restart per block, so the blocked loops are exercised.
    monkeypatch.setattr(_fused_mlp, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(5)
    R, N = 3, 6
    layers = _layers(rng, R, sizes)
    x = rng.standard_normal((N, sizes[0]) if shared_x else (R, N, sizes[0]))
    target = rng.standard_normal((R, N, sizes[-1]))
    np.testing.assert_allclose(_fused_mlp.fused_mlp(x, layers, acts), _reference(x, layers, acts),
                               rtol=1e-13, atol=1e-13)

    def loss(fn):
        return lambda x, layers: anp.sum(anp.sin(fn(x, layers) - target))

    fused = loss(lambda x, lay: _fused_mlp.fused_mlp(x, lay, acts))
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
    check_grads(lambda lay: anp.sum(_fused_mlp.fused_mlp(x, lay, ["tanh"]) ** 2), modes=["rev"], order=1)(layers)


def test_fused_vjp_recomputes_when_the_stash_is_not_its_own():
    # The vjp maker normally takes the forward pass's activations; if another
    # forward pass came in between it must recompute, not use the wrong ones.
    rng = np.random.default_rng(7)
    layers = _layers(rng, 2, [2, 5, 2])
    wb = [a for lay in layers for a in (lay["W"], lay["b"])]
    x, other = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    ans = _fused_mlp._fused_forward(x, *wb, acts=("tanh",))
    _fused_mlp._fused_forward(other, *wb, acts=("tanh",))
    g = rng.standard_normal(ans.shape)
    got = _fused_mlp._fused_vjp((1,), ans, (x, *wb), {"acts": ("tanh",)})(g)[0]
    fresh = _fused_mlp._fused_forward(x, *wb, acts=("tanh",))
    want = _fused_mlp._fused_vjp((1,), fresh, (x, *wb), {"acts": ("tanh",)})(g)[0]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_fused_mlp_needs_one_activation_per_hidden_layer():
    layers = _layers(np.random.default_rng(8), 1, [2, 3, 2])
    with pytest.raises(ValueError, match="activations"):
        _fused_mlp.fused_mlp(np.ones((2, 2)), layers, [])


def test_split_last_values_and_gradient():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 5))
    a, b = _flat.split_last(x, 2)
    np.testing.assert_array_equal(a, x[..., :2])
    np.testing.assert_array_equal(b, x[..., 2:])
    check_grads(lambda x: anp.sum(anp.sin(_flat.split_last(x, 2)[0]) * _flat.split_last(x, 2)[1][..., :2]),
                modes=["rev"], order=1)(x)


def test_second_derivatives_through_the_fused_primitives():
    # The fused gradients are plain numpy; under an outer trace they fall
    # back to differentiable forms, so second derivatives stay right.
    rng = np.random.default_rng(10)
    layers = _layers(rng, 2, [2, 4, 2])
    x = rng.standard_normal((2, 5, 2))
    check_grads(lambda W: anp.sum(_fused_mlp.fused_mlp(x, [layers[0], {"W": W, "b": layers[1]["b"]}], ["tanh"]) ** 2),
                modes=["rev"], order=2)(layers[1]["W"])
    check_grads(lambda W: anp.sum(_fused_mlp.fused_mlp(x, [{"W": W, "b": layers[0]["b"]}, layers[1]], ["tanh"]) ** 2),
                modes=["rev"], order=2)(layers[0]["W"])
    check_grads(lambda f: anp.sum(anp.tanh(_flat.columns(f, 1, 3, (2, 2))) ** 3), modes=["rev"], order=2)(
        rng.standard_normal((2, 4)))
    check_grads(lambda x: anp.sum(anp.sin(_flat.split_last(x, 2)[0]) ** 2 * _flat.split_last(x, 2)[1][..., :2]),
                modes=["rev"], order=2)(rng.standard_normal((2, 3, 5)))


@pytest.mark.parametrize("x_shape, match", [((3, 5, 2), "R = 2"), ((5,), "shape"), ((5, 3), "features")])
def test_fused_mlp_refuses_inputs_of_the_wrong_shape(x_shape, match):
    layers = _layers(np.random.default_rng(11), 2, [2, 4, 2])
    with pytest.raises(ValueError, match=match):
        _fused_mlp.fused_mlp(np.ones(x_shape), layers, ["relu"])


def test_fused_mlp_of_no_points():
    layers = _layers(np.random.default_rng(12), 2, [2, 4, 2])
    assert _fused_mlp.fused_mlp(np.ones((0, 2)), layers, ["relu"]).shape == (2, 0, 2)
