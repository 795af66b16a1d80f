"""training.core._flat: parameter trees <-> (R, P) matrices."""
import autograd.numpy as anp
import numpy as np
from autograd.test_util import check_grads

from training.core._flat import TreeDef
from training.models import Encoder
from training.trainers.engine import restart_streams


def _tree(R, rng):
    return {"enc": {"hidden": [], "mean": {"W": rng.standard_normal((R, 2, 3)), "b": rng.standard_normal((R, 3))}},
            "layers": [{"W": rng.standard_normal((R, 3, 1))}, [], {"b": rng.standard_normal((R, 4))}],
            "u": rng.standard_normal(R)}


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)


def test_round_trip_of_a_nested_tree_with_empty_lists():
    tree = _tree(3, np.random.default_rng(0))
    td = TreeDef(tree)
    flat = td.flatten(tree)
    assert flat.shape == (3, 6 + 3 + 3 + 4 + 1) == (3, td.size)
    back = td.unflatten(flat)
    _assert_same(back, tree)
    assert back["enc"]["hidden"] == [] and back["layers"][1] == []
    # Row r of the matrix holds restart r only.
    np.testing.assert_array_equal(flat[1, :6], tree["enc"]["mean"]["W"][1].ravel())
    np.testing.assert_array_equal(flat[:, -1], tree["u"])


def test_round_trip_of_encoder_parameters():
    rngs = [s[0] for s in restart_streams(0, 2)]
    for kind in ("linear", "mlp", "cubic"):
        enc = Encoder(2, 2, kind)
        params = enc.init(rngs)
        td = TreeDef(params)
        _assert_same(td.unflatten(td.flatten(params)), params)
    assert TreeDef(Encoder(2, 2, "linear").init(rngs)).skeleton["hidden"] == []


def test_the_same_treedef_serves_any_number_of_restarts():
    rng = np.random.default_rng(1)
    td = TreeDef(_tree(3, rng))
    other = _tree(5, rng)
    _assert_same(td.unflatten(td.flatten(other)), other)


def test_unflatten_returns_fresh_containers():
    tree = _tree(2, np.random.default_rng(2))
    td = TreeDef(tree)
    a = td.unflatten(td.flatten(tree))
    a["enc"]["hidden"].append("x")
    assert td.unflatten(td.flatten(tree))["enc"]["hidden"] == []


def test_unflatten_is_differentiable():
    np.random.seed(0)
    tree = _tree(2, np.random.default_rng(3))
    td = TreeDef(tree)
    flat = td.flatten(tree)

    def loss(flat):
        t = td.unflatten(flat)
        h = anp.tanh(anp.ones((2, 4, 2)) @ t["enc"]["mean"]["W"] + t["enc"]["mean"]["b"][:, None, :])
        return (anp.sum(h @ t["layers"][0]["W"]) + anp.sum(anp.sin(t["layers"][2]["b"]))
                + anp.sum(t["u"] ** 3))

    check_grads(loss, modes=["rev"], order=1)(flat)


def test_a_bare_array_tree():
    x = np.arange(6.0).reshape(3, 2)
    td = TreeDef(x)
    np.testing.assert_array_equal(td.unflatten(td.flatten(x)), x)
