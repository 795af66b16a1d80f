import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_check_grads():
    # autograd's check_grads draws its probe directions from numpy's global
    # generator: seed it per test (and restore it) so the checks are reproducible.
    state = np.random.get_state()
    np.random.seed(0)
    yield
    np.random.set_state(state)


@pytest.fixture
def vae_units_fail(monkeypatch):
    """Every ``vae`` unit of a sweep raises at run time; the other methods fit as usual."""
    from training.experiments import sweep
    real = sweep.fit_and_evaluate

    def flaky(dataset, seed, method, settings, **kw):
        if method == "vae":
            raise RuntimeError("vae broke")
        return real(dataset, seed, method, settings, **kw)
    monkeypatch.setattr(sweep, "fit_and_evaluate", flaky)


@pytest.fixture(scope="session")
def linear_jtex():
    """LinearJTEx data set 0, the paper's first (500/500/500 points)."""
    from training import load_dataset
    return load_dataset("linear_jtex", seed=0)
