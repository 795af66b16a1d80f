"""The Mobius map, the shipped true network f and its reproducible fit."""
import numpy as np
import pytest

from training.datasets import fit_mobius
from training.datasets.mobius import WEIGHTS_PATH, load_mobius_params, mobius_map, mobius_net
from training.models.likelihoods import MOBIUS_ACTIVATIONS, MOBIUS_SIZES
from training.models.layers import ACTIVATIONS
from training.models.nets import mlp

NOISE_SD = np.sqrt(1e-5)  # likelihood noise of the Mobius data set, ~0.0032


def _complex_map(w):
    return (1 * w + (1 + 4j)) / (1 * w + (7 + 4j))


def _disk_grid(radius=3.0, n=241):
    g = np.linspace(-radius, radius, n)
    z = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    return z[np.sum(z ** 2, axis=1) <= radius ** 2 + 1e-12]


# (a) the map ---------------------------------------------------------------

def test_mobius_map_known_values():
    # m(0) = (1 + 4i) / (7 + 4i) = (23 + 24i) / 65
    np.testing.assert_allclose(mobius_map([0.0, 0.0]), [23 / 65, 24 / 65], rtol=1e-15)
    # m(-1 - 4i) = 0 (zero of the numerator); m(1) = (2 + 4i) / (8 + 4i) = (8 + 6i) / 20
    np.testing.assert_allclose(mobius_map([-1.0, -4.0]), [0.0, 0.0], atol=1e-16)
    np.testing.assert_allclose(mobius_map([1.0, 0.0]), [0.4, 0.3], rtol=1e-15)
    # m(z) = 1 - 6 / (z + 7 + 4i) tends to 1 far away
    np.testing.assert_allclose(mobius_map([1e9, -1e9]), [1.0, 0.0], atol=1e-8)


def test_mobius_map_matches_complex_arithmetic_and_broadcasts():
    z = np.random.default_rng(0).standard_normal((4, 5, 2)) * 3
    m = _complex_map(z[..., 0] + 1j * z[..., 1])
    out = mobius_map(z)
    assert out.shape == (4, 5, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out[..., 0], m.real, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out[..., 1], m.imag, rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError):
        mobius_map(np.zeros((3, 3)))


# (b) the shipped network approximates the map ------------------------------

def test_mobius_net_approximates_map_on_prior_samples():
    z = np.random.default_rng(20240).standard_normal((10_000, 2))
    m = mobius_map(z)
    err = mobius_net(z) - m
    rmse = np.sqrt(np.mean(err ** 2))
    # Achieved 9.7e-5 on this draw (1.4e-4 on 1e6 draws, where rare |z| > 3
    # points dominate); the noise sd is 3.2e-3.
    assert rmse < 4e-4
    assert rmse < NOISE_SD / 8
    # relative to the spread of the outputs (sd ~ 0.095 per coordinate)
    assert rmse / np.mean(np.std(m, axis=0)) < 5e-3  # achieved 1.0e-3


def test_mobius_net_max_error_within_radius_3():
    z = _disk_grid(3.0)
    err = np.max(np.abs(mobius_net(z) - mobius_map(z)))
    assert err < 1.5e-3  # achieved 6.7e-4 on this grid
    inner = _disk_grid(2.0)
    assert np.max(np.abs(mobius_net(inner) - mobius_map(inner))) < 5e-4  # achieved 2.1e-4


def test_shipped_train_rmse_matches_metadata():
    """The weights file is the fit of the training set its metadata names."""
    with np.load(WEIGHTS_PATH) as f:
        seed, n_points, train_rmse = int(f["seed"]), int(f["n_points"]), float(f["train_rmse"])
    z, x = fit_mobius.training_set(seed, n_points)
    rmse = np.sqrt(np.mean((mobius_net(z) - x) ** 2))
    np.testing.assert_allclose(rmse, train_rmse, rtol=1e-10)
    assert train_rmse < 2e-4  # achieved 9.8e-5


# (c) the shipped parameters ------------------------------------------------

def test_load_mobius_params_shapes_dtypes_and_forward():
    assert len(MOBIUS_ACTIVATIONS) == len(MOBIUS_SIZES) - 2
    assert all(a in ACTIVATIONS for a in MOBIUS_ACTIVATIONS)
    assert MOBIUS_SIZES[0] == MOBIUS_SIZES[-1] == 2
    assert WEIGHTS_PATH.is_file() and WEIGHTS_PATH.stat().st_size < 16_000

    params = load_mobius_params()
    layers = [*params["hidden"], params["out"]]
    assert len(params["hidden"]) == len(MOBIUS_SIZES) - 2
    for layer, d_in, d_out in zip(layers, MOBIUS_SIZES[:-1], MOBIUS_SIZES[1:]):
        assert layer["W"].shape == (1, d_in, d_out) and layer["b"].shape == (1, d_out)
        assert layer["W"].dtype == layer["b"].dtype == np.float64
        assert np.all(np.isfinite(layer["W"])) and np.all(np.isfinite(layer["b"]))

    z = np.random.default_rng(1).standard_normal((50, 2))
    out = mlp(params, z, MOBIUS_ACTIVATIONS)
    assert out.shape == (1, 50, 2)
    np.testing.assert_array_equal(out[0], mobius_net(z))

    # fresh arrays each call: mutating one copy leaves the shipped net intact
    params["out"]["b"][:] = 0.0
    np.testing.assert_array_equal(mlp(load_mobius_params(), z, MOBIUS_ACTIVATIONS)[0],
                                  mobius_net(z))


def test_mobius_net_rejects_bad_shapes():
    with pytest.raises(ValueError):
        mobius_net(np.zeros(2))
    with pytest.raises(ValueError):
        mobius_net(np.zeros((3, 3)))


# (d) the fit is reproducible -----------------------------------------------

def test_fit_is_deterministic_and_round_trips(tmp_path):
    p1, info1 = fit_mobius.fit(seed=3, n_points=300, maxiter=15)
    p2, info2 = fit_mobius.fit(seed=3, n_points=300, maxiter=15)
    p3, _ = fit_mobius.fit(seed=4, n_points=300, maxiter=15)
    leaves = lambda p: [a for layer in [*p["hidden"], p["out"]] for a in layer.values()]
    for a, b in zip(leaves(p1), leaves(p2)):
        np.testing.assert_array_equal(a, b)
    assert info1["train_rmse"] == info2["train_rmse"]
    assert not np.array_equal(p1["out"]["W"], p3["out"]["W"])
    # the training set grows by appending rows: its prefix does not depend on n_points
    z_small, _ = fit_mobius.training_set(3, 10)
    z_big, _ = fit_mobius.training_set(3, 300)
    np.testing.assert_array_equal(z_small, z_big[:10])

    path = fit_mobius.save_params(p1, info1, tmp_path / "net.npz")
    loaded = load_mobius_params(path)
    for a, b in zip(leaves(loaded), leaves(p1)):
        np.testing.assert_array_equal(a, b)
    with np.load(path) as f:
        assert int(f["seed"]) == 3 and int(f["n_points"]) == 300
        assert float(f["train_rmse"]) == info1["train_rmse"]


def test_load_rejects_other_architectures(tmp_path):
    p, info = fit_mobius.fit(seed=0, n_points=50, maxiter=2, sizes=[2, 3, 2],
                             activations=("tanh",))
    path = fit_mobius.save_params(p, info, tmp_path / "other.npz")
    with pytest.raises(ValueError):
        load_mobius_params(path)
