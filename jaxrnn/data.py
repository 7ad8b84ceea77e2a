"""Synthetic and small offline sequence tasks, every batch a pure function of (key, step).

A task is a :class:`Task` NamedTuple: ``batch(key, step, batch_size) -> Batch``
plus the sizes a model needs. Batches are computed from ``fold_in(key, step)``
(or, for finite data sets, from a per-epoch permutation keyed by the epoch), so a
run resumed at step ``s`` sees exactly the batches it would have seen.

``Batch(inputs, targets, mask)``: ``inputs: [B, T, I]``; ``targets`` ``[B]`` or
``[B, O]`` (many-to-one) or ``[B, T]`` (many-to-many); ``mask: [B, T]`` bool marks the
valid steps of variable-length sequences (all True when lengths are fixed).

References:
  Hochreiter, Schmidhuber (1997). Long Short-Term Memory (adding problem, Sec. 5.4).
  Arjovsky, Shah, Bengio (2016). Unitary Evolution Recurrent Neural Networks (copying memory).
  Le, Jaitly, Hinton (2015). A Simple Way to Initialize Recurrent Networks of Rectified
  Linear Units (pixel-by-pixel digits).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cell import check_positive


class Batch(NamedTuple):
    inputs: jax.Array  # [B, T, I]
    targets: jax.Array  # [B], [B, O] or [B, T]
    mask: jax.Array  # [B, T] bool


class Task(NamedTuple):
    """A data source. ``kind``: ``"regression"`` (many-to-one, float targets),
    ``"classification"`` (many-to-one, int targets), ``"tokens"`` (many-to-many) or
    ``"seq2seq"`` (encoder-decoder over :class:`jaxrnn.text.Seq2SeqBatch` es)."""

    name: str
    batch: Callable[[jax.Array, int, int], Batch]
    input_size: int
    output_size: int
    kind: str
    baseline: float  # the loss of the best input-independent predictor


def _valid_mask(key, batch_size, length, min_length):
    """Right-padded validity mask with lengths ~ U{min_length, ..., length}."""
    lengths = jax.random.randint(key, (batch_size,), min_length, length + 1)
    return jnp.arange(length, dtype=lengths.dtype) < lengths[:, None]


def adding(length: int = 100, *, min_length: int | None = None) -> Task:
    """The adding problem: sum the two marked values.

    Each step is ``(value ~ U[0, 1], marker ∈ {0, 1})``; one marker falls in the
    first half of the valid steps, one in the second; the target is the sum of the
    two marked values. Predicting the mean (1.0) scores MSE = Var = 2/12 ≈ 0.167.
    ``min_length``: sample lengths in ``[min_length, length]`` (right-padded).
    """
    min_length = length if min_length is None else min_length
    if not 2 <= min_length <= length:
        raise ValueError(
            f"min_length: expected 2 <= min_length <= length={length}, got {min_length}"
        )

    def batch(key, step, batch_size):
        k_v, k_a, k_b, k_l = jax.random.split(jax.random.fold_in(key, step), 4)
        mask = _valid_mask(k_l, batch_size, length, min_length)
        n = jnp.sum(mask, axis=1)
        first = jax.random.randint(k_a, (batch_size,), 0, n // 2)
        second = jax.random.randint(k_b, (batch_size,), n // 2, n)
        # where, not `* mask`: a float32-bool product is an implicit promotion.
        values = jnp.where(mask, jax.random.uniform(k_v, (batch_size, length), jnp.float32), 0.0)
        steps = jnp.arange(length, dtype=n.dtype)
        marked = (steps == first[:, None]) | (steps == second[:, None])
        markers = marked.astype(jnp.float32)
        inputs = jnp.stack([values, markers], axis=-1)
        return Batch(inputs, jnp.sum(values * markers, axis=1), mask)

    return Task(f"adding-{length}", batch, 2, 1, "regression", 2.0 / 12.0)


def copying(delay: int = 100, *, num_symbols: int = 8, copy_length: int = 10) -> Task:
    """The copying-memory task (Arjovsky et al. 2016, Sec. 4.1).

    Inputs (one-hot over ``num_symbols + 2`` tokens: 0 blank, 1..num_symbols data,
    ``num_symbols + 1`` delimiter): ``copy_length`` random symbols, ``delay - 1``
    blanks, the delimiter, then ``copy_length`` blanks. Targets: blanks, then the
    symbols in the last ``copy_length`` steps. ``T = delay + 2 * copy_length``.
    The memoryless baseline (blanks, then uniform guesses) has cross-entropy
    ``copy_length * log(num_symbols) / T`` per step.
    """
    check_positive("delay", delay)
    check_positive("num_symbols", num_symbols)
    check_positive("copy_length", copy_length)
    T = delay + 2 * copy_length
    vocab = num_symbols + 2

    def batch(key, step, batch_size):
        k = jax.random.fold_in(key, step)
        symbols = jax.random.randint(k, (batch_size, copy_length), 1, num_symbols + 1)
        blanks = jnp.zeros((batch_size, delay - 1), symbols.dtype)
        delim = jnp.full((batch_size, 1), num_symbols + 1, symbols.dtype)
        tail = jnp.zeros((batch_size, copy_length), symbols.dtype)
        tokens = jnp.concatenate([symbols, blanks, delim, tail], axis=1)
        targets = jnp.concatenate(
            [jnp.zeros((batch_size, delay + copy_length), symbols.dtype), symbols], axis=1
        )
        inputs = jax.nn.one_hot(tokens, vocab, dtype=jnp.float32)
        return Batch(inputs, targets, jnp.ones((batch_size, T), bool))

    return Task(
        f"copying-{delay}",
        batch,
        vocab,
        vocab,
        "tokens",
        float(copy_length * np.log(num_symbols) / T),
    )


def parity(length: int = 20, *, min_length: int | None = None) -> Task:
    """Parity: is the number of ones among the valid bits odd? (many-to-one, 2 classes)."""
    min_length = length if min_length is None else min_length
    if not 1 <= min_length <= length:
        raise ValueError(
            f"min_length: expected 1 <= min_length <= length={length}, got {min_length}"
        )

    def batch(key, step, batch_size):
        k_b, k_l = jax.random.split(jax.random.fold_in(key, step))
        mask = _valid_mask(k_l, batch_size, length, min_length)
        bits = jax.random.bernoulli(k_b, 0.5, (batch_size, length)) & mask
        targets = jnp.sum(bits, axis=1) % 2
        return Batch(bits.astype(jnp.float32)[..., None], targets, mask)

    return Task(f"parity-{length}", batch, 1, 2, "classification", float(np.log(2.0)))


def epoch_indices(key: jax.Array, step, batch_size: int, n: int) -> jax.Array:
    """The item indices of batch ``step`` of a finite data set of ``n`` items.

    Batches are consecutive slices of a per-epoch permutation keyed by
    ``fold_in(key, epoch)``; an epoch is ``n // batch_size`` batches (the remainder
    is dropped), and a ``batch_size`` above ``n`` gives all ``n`` items. Pure in
    ``(key, step)`` and jit-compatible (``step`` may be traced).
    """
    per_epoch = max(n // batch_size, 1)
    epoch, offset = step // per_epoch, (step % per_epoch) * batch_size
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return jax.lax.dynamic_slice_in_dim(perm, offset, min(batch_size, n))


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a runtime dependency
        raise ImportError("sequential digits need scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int32)


def digits(*, pixelwise: bool = False, split: str = "train", test_fraction: float = 0.2) -> Task:
    """Sequential digits: sklearn's 8×8 digits (UCI, CC BY 4.0) read row by row
    (T = 8, I = 8) or pixel by pixel (T = 64, I = 1, as in Le et al. 2015's pixel MNIST).

    The 1,797 images are split once by a fixed permutation (seed 0) into train and
    test; batches walk through a per-epoch permutation keyed by ``fold_in(key, epoch)``
    (an epoch is ``n // batch_size`` batches, so it drops the remainder); a
    ``batch_size`` above the split's size ``n`` gives the whole split, ``n`` sequences.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected 0 < test_fraction < 1, got {test_fraction}")
    images, labels = _load_digits()
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    idx = order[n_test:] if split == "train" else order[:n_test]
    seqs = images[idx].reshape(len(idx), 64, 1) if pixelwise else images[idx]
    seqs, targets = jnp.asarray(seqs), jnp.asarray(labels[idx])
    n = len(idx)

    def batch(key, step, batch_size):
        take = epoch_indices(key, step, batch_size, n)
        return Batch(seqs[take], targets[take], jnp.ones(seqs[take].shape[:2], bool))

    name = f"digits-{'pixel' if pixelwise else 'row'}-{split}"
    return Task(name, batch, seqs.shape[-1], 10, "classification", float(np.log(10.0)))
