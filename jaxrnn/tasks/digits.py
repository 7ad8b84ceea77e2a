"""Sequential digits: scikit-learn's 8×8 handwritten digits read as sequences, a finite data set.

The 1,797 images (UCI, CC BY 4.0; shipped inside scikit-learn) read row by row
(``T = 8``, ``I = 8``) or pixel by pixel (``T = 64``, ``I = 1``, as in Le et al.
2015's pixel MNIST), classified into ten classes.

References:
  Alpaydin, Kaynak (1998). Optical Recognition of Handwritten Digits. UCI ML Repository.
  Le, Jaitly, Hinton (2015). A Simple Way to Initialize Recurrent Networks of Rectified
  Linear Units (pixel-by-pixel digits).
"""

import numpy as np

from jaxrnn.tasks.data import Batch, Dataset, stratified_holdout


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a runtime dependency
        raise ImportError("sequential digits need scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int32)


def digits(*, pixelwise: bool = False, validation_fraction: float = 0.1) -> Dataset:
    """The digits as a :class:`~jaxrnn.tasks.data.Dataset` of :class:`~jaxrnn.tasks.data.Batch` es.

    The test split is that of ``BASELINES.md``: scikit-learn's stratified 80/20
    ``train_test_split(random_state=0)``, 1,437 training and 360 test images (1-NN
    scores 98.33% on it). The validation split is a stratified
    ``validation_fraction`` of the training images (``random_state=0``): 144 of
    them at 0.1, leaving 1,293 to train on.

    Args:
      pixelwise: read pixel by pixel (``inputs [N, 64, 1]``) instead of row by row
        (``[N, 8, 8]``).
      validation_fraction: the share of the training images held out for model
        choice, in ``(0, 1)``.

    Returns:
      A data set whose examples are ``Batch(inputs, targets [N] int32, mask [N, T])``.
    """
    from sklearn.model_selection import train_test_split

    images, labels = _load_digits()
    seqs = images.reshape(len(labels), 64, 1) if pixelwise else images
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=0.2, random_state=0, stratify=labels)
    train, val = stratified_holdout(rest, labels, validation_fraction)

    def examples(idx):
        return Batch(seqs[idx], labels[idx], np.ones(seqs[idx].shape[:2], bool))

    return Dataset(examples(train), examples(val), examples(test))
