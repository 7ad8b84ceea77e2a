"""MNIST-1D (Greydanus 2020): ten one-dimensional digit templates, shifted, scaled,
sheared and noised into 40-step signals; small, yet hard for models without memory.

The data comes from the package's own generator, ``mnist1d.data.make_dataset()``
with its default arguments (seed 42; ``pip install --no-deps mnist1d==0.0.2.post1``),
run once and cached (:mod:`jaxrnn.tasks.carriers`); it never downloads the pickle
that the package's ``get_dataset`` fetches. The split is that of ``BASELINES.md``:
the generator's first 4,000 examples train, its last 1,000 test.

References:
  Greydanus (2020). Scaling down Deep Learning. arXiv:2011.14439.
"""

import importlib
import random

import numpy as np

from jaxrnn.tasks.carriers import Carrier, cached, locate
from jaxrnn.tasks.data import Batch, Dataset, stratified_holdout

CARRIER = Carrier("mnist1d", "0.0.2.post1", "pip install --no-deps mnist1d==0.0.2.post1")
CITATION = r"""@article{greydanus2020scaling,
  author = {Greydanus, Sam},
  title = {Scaling down Deep Learning},
  journal = {arXiv preprint arXiv:2011.14439},
  year = {2020},
}"""
# BASELINES.md: the first 4,000 of the 5,000 generated examples train, the rest test.
NUM_TRAIN, NUM_TEST, LENGTH, NUM_CLASSES = 4000, 1000, 40, 10


def _generate() -> dict[str, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")  # mnist1d.utils imports pyplot
    # make_dataset seeds the global NumPy and Python generators (its set_seed);
    # the caller's streams are put back afterwards.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = importlib.import_module("mnist1d.data").make_dataset()
    except ImportError as e:
        raise ImportError(
            f"mnist1d: its generator needs {e.name!r} ({e}); the package itself: "
            f"`{CARRIER.install}`"
        ) from e
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int32)
    return {"x": x, "y": y}


def arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 examples in the generator's order: signals ``[5000, 40]`` float32
    (standardised over the whole set, as the generator does) and labels ``[5000]`` int32.

    Raises:
      FileNotFoundError: mnist1d is not installed (the message names the command).
    """
    sources = [locate(CARRIER, f"mnist1d/{m}.py") for m in ("data", "transform")]
    data = cached("mnist1d", sources, _generate)
    return data["x"], data["y"]


def mnist1d(*, validation_fraction: float = 0.1) -> Dataset:
    """MNIST-1D as a :class:`~jaxrnn.tasks.data.Dataset` read one value a step.

    Args:
      validation_fraction: the stratified share of the 4,000 training examples held
        out for model choice (``random_state=0``): 400 at 0.1, leaving 3,600.

    Returns:
      Examples ``Batch(inputs [N, 40, 1] float32, targets [N] int32, mask [N, 40])``;
      the test split is the generator's last 1,000 examples.
    """
    x, y = arrays()
    train, val = stratified_holdout(np.arange(NUM_TRAIN), y, validation_fraction)
    test = np.arange(NUM_TRAIN, NUM_TRAIN + NUM_TEST)

    def examples(idx):
        return Batch(x[idx, :, None], y[idx], np.ones((len(idx), LENGTH), bool))

    return Dataset(examples(np.sort(train)), examples(np.sort(val)), examples(test))
