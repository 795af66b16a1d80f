"""The package's public face: what ``import training`` offers, and which modules are internals."""
import inspect
import pkgutil

import training

SPEED_WORDS = ("fused", "cache", "flat", "slice")


def test_the_public_names_import_from_the_package():
    for name in ("VAE", "LiBI", "load_dataset", "log_likelihood_is", "fit_batched", "run_sweep",
                 "posterior_mean_is", "log_likelihood_quadrature", "smooth_knn_test"):
        assert name in training.__all__
    for name in training.__all__:
        obj = getattr(training, name)
        assert obj is not None
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"training.{name} has no docstring"
    assert training.VAE is training.trainers.VAE and training.LiBI is training.trainers.libi.LiBI


def test_speed_internals_are_private_modules():
    modules = [m.name for m in pkgutil.walk_packages(training.__path__, "training.")]
    modules = [m.rsplit(".", 1)[-1] for m in modules]
    internals = [m for m in modules if any(w in m for w in SPEED_WORDS)]
    assert internals, "the fused primitives live somewhere"
    assert all(m.startswith("_") for m in internals), internals
    for name in training.__all__:
        assert not any(w in name.lower() for w in SPEED_WORDS), name


def test_analysis_checks_is_public():
    import analysis.checks
    assert not any(m.name == "_checks" for m in pkgutil.iter_modules(__import__("analysis").__path__))
    assert callable(analysis.checks.real_array)
