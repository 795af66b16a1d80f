"""training.datasets: the synthetic data sets, drawn from explicit seeds, and their checks."""
import numpy as np
import pytest

from training.datasets.synthetic import DATASETS, GAUSSIAN_A, Dataset, load_dataset
from training.models import Encoder, LinearMap

SHAPES = {"univariate": (1, 1), "linear_jtex": (2, 2), "cubic_jtex": (2, 2), "gaussian": (4, 2), "mobius": (2, 2)}


def test_the_registry():
    assert set(DATASETS) == set(SHAPES)


@pytest.mark.parametrize("name", list(SHAPES))
def test_default_splits_and_shapes(name):
    d = load_dataset(name, seed=3)
    D, K = SHAPES[name]
    for split in ("train", "val", "test"):
        assert getattr(d, split).shape == (500, D)
        assert getattr(d, f"z_{split}").shape == (500, K)
        assert np.all(np.isfinite(getattr(d, split)))
    assert d.name == name and d.seed == 3
    assert d.likelihood.data_dim == D and d.likelihood.latent_dim == K
    assert d.encoder.data_dim == D and d.encoder.latent_dim == K
    assert d.second_moment.shape == (D, D)
    # The truth has a restart axis of length 1 and the splits are its draws.
    mean = np.asarray(d.likelihood.mean(d.truth, d.z_train[None]))[0]
    resid = (d.train - mean) / np.sqrt(np.asarray(d.likelihood.noise(d.truth))[0])
    assert abs(resid.std() - 1) < 0.1 and abs(resid.mean()) < 0.1


@pytest.mark.parametrize("name", list(SHAPES))
def test_deterministic_per_seed_and_different_across_seeds(name):
    a = load_dataset(name, seed=1, n_train=20, n_val=10, n_test=10)
    b = load_dataset(name, seed=1, n_train=20, n_val=10, n_test=10)
    c = load_dataset(name, seed=2, n_train=20, n_val=10, n_test=10)
    for split in ("train", "val", "test", "z_train"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
        assert not np.allclose(getattr(a, split), getattr(c, split))
    assert not np.allclose(a.train, a.val[:10].repeat(2, axis=0))


def test_different_across_names_with_the_same_seed():
    zs = {name: load_dataset(name, seed=0, n_train=50, n_val=2, n_test=2).z_train for name in SHAPES}
    names = list(zs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            k = min(zs[a].shape[1], zs[b].shape[1])
            assert not np.allclose(zs[a][:, :k], zs[b][:, :k]), (a, b)


def test_split_sizes():
    d = load_dataset("linear_jtex", seed=0, n_train=7, n_val=3, n_test=2)
    assert (len(d.train), len(d.val), len(d.test)) == (7, 3, 2)


@pytest.mark.parametrize("name", ["univariate", "linear_jtex", "gaussian"])
def test_empirical_second_moment_matches_the_true_marginal(name):
    n = 6000
    d = load_dataset(name, seed=4, n_train=n, n_val=2, n_test=2)
    C = d.likelihood.exact(d.truth).marginal_cov()[0]
    S = d.second_moment
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert np.all(np.abs(S - C) < 5 * se)


def test_univariate_settings():
    d = load_dataset("univariate", seed=0, theta=0.3, sigma2=2.0, n_train=4000)
    assert float(d.likelihood.theta(d.truth)[0]) == pytest.approx(0.3, rel=1e-12)
    assert d.likelihood.sigma2 == 2.0
    assert d.info == {"theta": 0.3, "sigma2": 2.0}
    assert abs(d.train.var() - 2.0) < 5 * 2.0 * np.sqrt(2 / 4000)


def test_gaussian_truth_has_unit_columns():
    d = load_dataset("gaussian", seed=0, n_train=2, n_val=2, n_test=2)
    A = d.truth["A"][0]
    np.testing.assert_array_equal(A, GAUSSIAN_A)
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, atol=1e-3)
    assert isinstance(d.likelihood, LinearMap) and d.likelihood.noise_var == 1e-6


def test_mobius_truth_is_the_shipped_network():
    from training.datasets.mobius import mobius_net
    d = load_dataset("mobius", seed=0, n_train=10, n_val=2, n_test=2)
    np.testing.assert_allclose(np.asarray(d.likelihood.mean(d.truth, d.z_train[None]))[0], mobius_net(d.z_train),
                               rtol=1e-12)


def test_sample_truth():
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    x = d.sample_truth(np.random.default_rng(0), 30)
    assert x.shape == (30, 2)
    np.testing.assert_array_equal(x, d.sample_truth(np.random.default_rng(0), 30))


@pytest.mark.parametrize("kw, exc, name", [
    (dict(name="jtex"), ValueError, "name"),
    (dict(name="linear_jtex", seed=-1), ValueError, "seed"),
    (dict(name="linear_jtex", seed=1.5), TypeError, "seed"),
    (dict(name="linear_jtex", n_train=1), ValueError, "n_train"),
    (dict(name="linear_jtex", n_val=0), ValueError, "n_val"),
    (dict(name="linear_jtex", n_test=2.0), TypeError, "n_test"),
    (dict(name="linear_jtex", theta=0.5), TypeError, "theta"),
    (dict(name="mobius", sigma2=2.0), TypeError, "sigma2"),
    (dict(name="univariate", theta=1.0), ValueError, "theta"),
    (dict(name="univariate", theta=-2.0, sigma2=3.0), ValueError, "theta"),
    (dict(name="univariate", sigma2=0.0), ValueError, "sigma2"),
    (dict(name="univariate", rho=0.1), TypeError, "rho"),
])
def test_bad_input(kw, exc, name):
    kw = dict(kw)
    with pytest.raises(exc, match=name):
        load_dataset(kw.pop("name"), **kw)


def _arrays(D=2, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, D)) for _ in range(3)]


def test_from_arrays():
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    tr, va, te = _arrays()
    user = Dataset.from_arrays(tr.tolist(), va, te, d.likelihood, d.encoder)
    assert user.name == "user" and user.truth is None and user.z_train is None
    assert user.train.dtype == np.float64 and user.train.shape == (5, 2)
    np.testing.assert_array_equal(user.train, tr)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_from_arrays_rejects_bad_splits(split):
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    base = dict(zip(("train", "val", "test"), _arrays()))
    bad_values = [
        (np.where(np.arange(10).reshape(5, 2) == 3, np.nan, base[split]), ValueError),   # NaN
        (np.full((5, 2), np.inf), ValueError),                                            # inf
        (np.ones((5, 3)), ValueError),                                                     # wrong D
        (np.ones(5), ValueError),                                                          # 1-D
        (np.ones((1, 2)), ValueError),                                                     # too few points
        (None, TypeError),
        (np.ones((5, 2)) * 1j, TypeError),
        ([["a", "b"]] * 5, TypeError),
    ]
    for value, exc in bad_values:
        arrays = dict(base, **{split: value})
        with pytest.raises(exc, match=split):
            Dataset.from_arrays(arrays["train"], arrays["val"], arrays["test"], d.likelihood, d.encoder)


def test_from_arrays_rejects_a_mismatched_encoder():
    d = load_dataset("linear_jtex", seed=0, n_train=2, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="encoder"):
        Dataset.from_arrays(*_arrays(), d.likelihood, Encoder(2, 1))
