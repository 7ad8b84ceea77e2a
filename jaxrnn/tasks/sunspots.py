"""Yearly sunspot numbers, 1700-2008 (309 values), forecast one year ahead.

Read from the CSV that ships in ``statsmodels==0.15.0``
(``pip install --no-deps statsmodels==0.15.0``; statsmodels is not imported). The
split is that of ``BASELINES.md``: train 1700-1920 (221 years), validation
1921-1955 (35), test 1956-2008 (53). A forecast of year ``t`` may use every actual
value before ``t``, so held-out years are predicted from windows that reach back
into the earlier parts; the final model is refit on train + validation.

An example is a window of the ``window`` years before a target year (inputs
``[window, 1]``) and that year's value. Values are scaled with the mean and
standard deviation of the years the model is fitted on (train, or train +
validation for the refit), never of the years it is scored on.

References:
  NOAA National Geophysical Data Center: yearly sunspot numbers, 1700-2008 (public
  domain), as shipped in statsmodels' ``sunspots`` data set.
  Seabold, Perktold (2010). statsmodels: Econometric and Statistical Modeling with
  Python. Proceedings of the 9th Python in Science Conference.
"""

from typing import NamedTuple

import numpy as np

from jaxrnn.tasks.carriers import Carrier, cached, locate
from jaxrnn.tasks.data import Batch, Dataset

CARRIER = Carrier("statsmodels", "0.15.0", "pip install --no-deps statsmodels==0.15.0")
# The series as statsmodels ships it (from NOAA's National Geophysical Data Center).
CITATION = r"""@inproceedings{seabold2010statsmodels,
  author = {Seabold, Skipper and Perktold, Josef},
  title = {statsmodels: Econometric and Statistical Modeling with Python},
  booktitle = {Proceedings of the 9th Python in Science Conference},
  pages = {92--96},
  year = {2010},
  doi = {10.25080/Majora-92bf1922-011},
}"""
FIRST_YEAR, LAST_YEAR = 1700, 2008
# BASELINES.md: the last training year and the last validation year.
TRAIN_END, VALIDATION_END = 1920, 1955


def _parse(path) -> dict[str, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1)
    except ValueError as e:
        raise ValueError(f"{path}: expected rows of YEAR,SUNACTIVITY numbers ({e})") from None
    years = table[:, 0].astype(np.int32)
    if table.shape != (LAST_YEAR - FIRST_YEAR + 1, 2) or not np.array_equal(
        years, np.arange(FIRST_YEAR, LAST_YEAR + 1)
    ):
        raise ValueError(
            f"{path}: expected the years {FIRST_YEAR}..{LAST_YEAR}, one row each; "
            f"got {table.shape[0]} rows"
        )
    return {"years": years, "values": table[:, 1]}


def series() -> tuple[np.ndarray, np.ndarray]:
    """``(years [309] int32, sunspot numbers [309] float64)``, 1700 to 2008.

    Raises:
      FileNotFoundError: statsmodels is not installed (the message names the command).
    """
    path = locate(CARRIER, "statsmodels/datasets/sunspots/sunspots.csv")
    data = cached("sunspots", [path], lambda: _parse(path))
    return data["years"], data["values"]


class Scale(NamedTuple):
    """``scaled = (value - mean) / std``, fitted on the years a model is fitted on."""

    mean: float
    std: float


def scale(refit: bool = False) -> Scale:
    """The scaling fitted on train (1700-1920), or on train + validation (``refit``)."""
    years, values = series()
    fitted = values[years <= (VALIDATION_END if refit else TRAIN_END)]
    return Scale(float(fitted.mean()), float(fitted.std()))


def _examples(targets: np.ndarray, window: int, values: np.ndarray) -> Batch:
    starts = targets - window
    x = np.stack([values[s : s + window] for s in starts])[..., None].astype(np.float32)
    return Batch(x, values[targets].astype(np.float32), np.ones((len(targets), window), bool))


def windows(window: int = 20, *, refit: bool = False) -> Dataset:
    """One-step-ahead examples: the ``window`` scaled values before a year, and that year's.

    Args:
      window: years of history each forecast reads (at least 1, at most 221 - 1).
      refit: the second stage: fit on train + validation (1700-1955), with no
        validation split; otherwise fit on train and choose on validation.

    Returns:
      A data set of ``Batch(inputs [N, window, 1], targets [N], mask [N, window])``,
      scaled by :func:`scale` (``refit``). Training targets are the fitted years from
      ``1700 + window`` on; validation targets 1921-1955 (None when ``refit``); test
      targets 1956-2008.
    """
    years, values = series()
    if not 1 <= window < int(np.sum(years <= TRAIN_END)):
        raise ValueError(f"window: expected 1 <= window < 221 (the training years), got {window}")
    s = scale(refit)
    scaled = (values - s.mean) / s.std
    fit_end = VALIDATION_END if refit else TRAIN_END
    index = np.arange(len(years))
    train = index[(index >= window) & (years <= fit_end)]
    val = index[(years > TRAIN_END) & (years <= VALIDATION_END)]
    test = index[years > VALIDATION_END]
    return Dataset(
        _examples(train, window, scaled),
        None if refit else _examples(val, window, scaled),
        _examples(test, window, scaled),
    )


def persistence(split: str = "test") -> dict[str, float]:
    """The persistence forecast (next year = this year) on ``"validation"`` or ``"test"``:
    its ``rmse`` and ``mae`` in sunspot numbers (``BASELINES.md``: 33.42 / 25.24 on test)."""
    years, values = series()
    lo, hi = {"validation": (TRAIN_END, VALIDATION_END), "test": (VALIDATION_END, LAST_YEAR)}[split]
    t = np.flatnonzero((years > lo) & (years <= hi))
    error = values[t] - values[t - 1]
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
