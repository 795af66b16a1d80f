"""The paper's synthetic data sets, each with its true model (docs/theory.md §3).

* :mod:`.synthetic`: ``load_dataset`` and the catalogue ``DATASETS``.
* :mod:`.mobius`: the Mobius map and the shipped network fitted to it
  (``python -m training.datasets.fit_mobius`` refits it).
"""
from .synthetic import DATASETS, Dataset, load_dataset

__all__ = ["DATASETS", "Dataset", "load_dataset"]
