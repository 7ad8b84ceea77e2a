"""JapaneseVowels (Kudo et al. 1999): nine speakers say the vowels /ae/; each utterance is
7 to 29 frames of 12 LPC cepstrum coefficients, to be classified by speaker.

Read from the UEA/UCR archive's ``.ts`` files that ship in ``aeon==1.6.0``
(``pip install --no-deps aeon==1.6.0``; ``aeon.datasets`` itself is not imported, as
it pulls numba), parsed once and cached (:mod:`jaxrnn.tasks.carriers`). The split
is the official one of ``BASELINES.md``: TRAIN 270 (30 per speaker), TEST 370.
Sequences keep their true lengths: they are right-padded to 29 frames and the
padding is masked, never resampled.

References:
  Kudo, Toyama, Shimbo (1999). Multidimensional curve classification using
  passing-through regions. Pattern Recognition Letters 20(11-13), 1103-1111.
"""

from pathlib import Path

import numpy as np

from jaxrnn.tasks.carriers import Carrier, cached, locate
from jaxrnn.tasks.data import Batch, Dataset, stratified_holdout

CARRIER = Carrier("aeon", "1.6.0", "pip install --no-deps aeon==1.6.0")
FOLDER = "aeon/datasets/data/JapaneseVowels"
CITATION = r"""@article{kudo1999multidimensional,
  author = {Kudo, Mineichi and Toyama, Jun and Shimbo, Masaru},
  title = {Multidimensional Curve Classification Using Passing-through Regions},
  journal = {Pattern Recognition Letters},
  volume = {20},
  number = {11--13},
  pages = {1103--1111},
  year = {1999},
  doi = {10.1016/S0167-8655(99)00077-X},
}"""
CHANNELS, MAX_LENGTH, NUM_CLASSES = 12, 29, 9


def read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """A multivariate ``.ts`` file of the UEA archive: its series and labels.

    Each data line is ``channel:channel:...:label``, each channel comma-separated
    values; series may differ in length but not in their channels.

    Returns:
      ``(series, labels)``: one ``[T_i, D]`` float64 array per example, and the
      labels as written (strings).

    Raises:
      ValueError: a malformed line, naming the file and the line number.
    """
    series, labels, in_data = [], [], False
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        try:
            values = [np.array(c.split(","), dtype=np.float64) for c in channels]
        except ValueError as e:
            raise ValueError(f"{path}: line {number}: not numbers ({e})") from None
        lengths = {len(v) for v in values}
        if not values or len(lengths) != 1:
            raise ValueError(
                f"{path}: line {number}: expected channels of one length, got lengths "
                f"{[len(v) for v in values]}"
            )
        series.append(np.stack(values, axis=-1))
        labels.append(label)
    if not series:
        raise ValueError(f"{path}: no @data section with examples")
    return series, np.array(labels)


def _parse(path: Path) -> dict[str, np.ndarray]:
    series, labels = read_ts(path)
    if any(s.shape[1] != CHANNELS or len(s) > MAX_LENGTH for s in series):
        raise ValueError(f"{path}: expected [T <= {MAX_LENGTH}, {CHANNELS}] series")
    x = np.zeros((len(series), MAX_LENGTH, CHANNELS), np.float32)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    return {
        "x": x,
        "lengths": np.array([len(s) for s in series], np.int32),
        "y": labels.astype(np.int32) - 1,  # speakers 1..9 -> 0..8
    }


def arrays(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official ``"train"`` or ``"test"`` split: ``x [N, 29, 12]`` float32 (zero
    after each length), ``lengths [N]`` and speakers ``y [N]`` in ``0..8`` (int32).

    Raises:
      FileNotFoundError: aeon is not installed, or lacks the file (the message names it).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    path = locate(CARRIER, f"{FOLDER}/JapaneseVowels_{split.upper()}.ts")
    data = cached(f"japanese_vowels_{split}", [path], lambda: _parse(path))
    return data["x"], data["lengths"], data["y"]


def summary_features(inputs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 73 features of ``BASELINES.md``'s logistic regression: per channel the mean,
    standard deviation, minimum, maximum, first and last value over the valid frames,
    then the length.

    Args:
      inputs: ``[N, T, 12]``; mask: ``[N, T]``, True at the valid (leading) frames.

    Returns:
      ``[N, 73]`` float64.
    """
    rows = []
    for x, valid in zip(np.asarray(inputs, np.float64), np.asarray(mask), strict=True):
        frames = x[valid]
        stats = [frames.mean(0), frames.std(0), frames.min(0), frames.max(0), frames[0], frames[-1]]
        rows.append(np.concatenate([*stats, [len(frames)]]))
    return np.stack(rows)


def japanese_vowels(*, validation_fraction: float = 0.1, standardize: bool = True) -> Dataset:
    """JapaneseVowels as a :class:`~jaxrnn.tasks.data.Dataset` of masked, padded sequences.

    Args:
      validation_fraction: the stratified share of TRAIN held out for model choice
        (``random_state=0``): 27 of the 270 at 0.1; 0: none, the model is fitted on
        all 270 (the refit of a two-stage protocol) and ``validation`` is None.
      standardize: scale each channel to mean 0 and variance 1 over the valid frames
        of the training part (the held-out frames do not enter the statistics).

    Returns:
      Examples ``Batch(inputs [N, 29, 12] float32, targets [N] int32, mask [N, 29])``,
      the mask True at each utterance's frames; padded frames are zero.
    """
    x, lengths, y = arrays("train")
    x_test, lengths_test, y_test = arrays("test")
    train, val = np.arange(len(y)), None
    if validation_fraction:
        train, val = map(np.sort, stratified_holdout(train, y, validation_fraction))
    mask = np.arange(MAX_LENGTH) < lengths[:, None]
    mask_test = np.arange(MAX_LENGTH) < lengths_test[:, None]
    if standardize:
        frames = x[train][mask[train]]
        mean, std = frames.mean(axis=0), frames.std(axis=0)
        x = np.where(mask[..., None], (x - mean) / std, 0.0).astype(np.float32)
        x_test = np.where(mask_test[..., None], (x_test - mean) / std, 0.0).astype(np.float32)
    return Dataset(
        Batch(x[train], y[train], mask[train]),
        None if val is None else Batch(x[val], y[val], mask[val]),
        Batch(x_test, y_test, mask_test),
    )
