"""Synthetic sequence tasks: every batch a pure function of (key, step).

Each returns a :class:`~jaxrnn.tasks.data.Stream` of :class:`~jaxrnn.tasks.data.Batch` es
``(inputs [B, T, I], targets, mask [B, T])``; held-out batches are fresh draws.

* :func:`adding`: sum the two marked values (regression; ``I = 2``);
* :func:`copying`: reproduce ten symbols after a delay (per-step classification,
  one-hot ``I = num_symbols + 2``);
* :func:`parity`: is the number of ones odd (classification; ``I = 1``).

References:
  Hochreiter, Schmidhuber (1997). Long Short-Term Memory (adding problem, Sec. 5.4).
  Arjovsky, Shah, Bengio (2016). Unitary Evolution Recurrent Neural Networks (copying memory).
"""

import math

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import check_positive
from jaxrnn.tasks.data import Batch, Stream


def _valid_mask(key, batch_size, length, min_length):
    """Right-padded validity mask with lengths ~ U{min_length, ..., length}."""
    # int32 throughout: the same draws with or without jax_enable_x64.
    lengths = jax.random.randint(key, (batch_size,), min_length, length + 1, jnp.int32)
    return jnp.arange(length, dtype=lengths.dtype) < lengths[:, None]


def adding(length: int = 100, *, min_length: int | None = None) -> Stream:
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
        n = jnp.sum(mask, axis=1, dtype=jnp.int32)
        first = jax.random.randint(k_a, (batch_size,), 0, n // 2, jnp.int32)
        second = jax.random.randint(k_b, (batch_size,), n // 2, n, jnp.int32)
        # where, not `* mask`: a float32-bool product is an implicit promotion.
        values = jnp.where(mask, jax.random.uniform(k_v, (batch_size, length), jnp.float32), 0.0)
        steps = jnp.arange(length, dtype=n.dtype)
        marked = (steps == first[:, None]) | (steps == second[:, None])
        markers = marked.astype(jnp.float32)
        inputs = jnp.stack([values, markers], axis=-1)
        return Batch(inputs, jnp.sum(values * markers, axis=1), mask)

    return Stream(batch)


def copying(delay: int = 100, *, num_symbols: int = 8, copy_length: int = 10) -> Stream:
    """The copying-memory task (Arjovsky et al. 2016, Sec. 4.1).

    Inputs (one-hot over ``num_symbols + 2`` tokens: 0 blank, 1..num_symbols data,
    ``num_symbols + 1`` delimiter): ``copy_length`` random symbols, ``delay - 1``
    blanks, the delimiter, then ``copy_length`` blanks. Targets: blanks, then the
    symbols in the last ``copy_length`` steps. ``T = delay + 2 * copy_length``.
    The memoryless baseline (blanks, then uniform guesses) has cross-entropy
    ``copy_length * log(num_symbols) / T`` per step (:func:`copying_baseline`).
    """
    check_positive("delay", delay)
    check_positive("num_symbols", num_symbols)
    check_positive("copy_length", copy_length)
    T = delay + 2 * copy_length
    vocab = num_symbols + 2

    def batch(key, step, batch_size):
        k = jax.random.fold_in(key, step)
        symbols = jax.random.randint(k, (batch_size, copy_length), 1, num_symbols + 1, jnp.int32)
        blanks = jnp.zeros((batch_size, delay - 1), symbols.dtype)
        delim = jnp.full((batch_size, 1), num_symbols + 1, symbols.dtype)
        tail = jnp.zeros((batch_size, copy_length), symbols.dtype)
        tokens = jnp.concatenate([symbols, blanks, delim, tail], axis=1)
        targets = jnp.concatenate(
            [jnp.zeros((batch_size, delay + copy_length), symbols.dtype), symbols], axis=1
        )
        inputs = jax.nn.one_hot(tokens, vocab, dtype=jnp.float32)
        return Batch(inputs, targets, jnp.ones((batch_size, T), bool))

    return Stream(batch)


def parity(length: int = 20, *, min_length: int | None = None) -> Stream:
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
        targets = jnp.sum(bits, axis=1, dtype=jnp.int32) % 2
        return Batch(bits.astype(jnp.float32)[..., None], targets, mask)

    return Stream(batch)


def copying_baseline(delay: int, *, num_symbols: int = 8, copy_length: int = 10) -> float:
    """The memoryless strategy's cross-entropy per step of :func:`copying` (nats):
    blanks where the target is blank, then a uniform guess among the symbols."""
    return copy_length * math.log(num_symbols) / (delay + 2 * copy_length)
