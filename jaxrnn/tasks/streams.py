"""Contiguous token streams for truncated BPTT: the carry passes from one window to the next.

Training (:func:`training_windows`) cuts a token sequence into ``B`` lanes of equal
length, one per batch row; step ``s`` reads window ``s mod W`` of every lane (``W``
windows of ``T`` tokens fit a lane), so that row ``b`` of step ``s + 1`` continues row
``b`` of step ``s`` and a stateful objective (:class:`jaxrnn.tasks.Objective` with a
``carry``) carries its state across steps. ``resets`` marks where a document begins
(and each lane's first window, where a new pass over the lane starts): the
objective restarts the carry there (``jaxrnn.scan(..., resets=, reset_to=)``).

Evaluation (:func:`scored_segments`) scores each held-out segment as its own stream,
one lane per segment, every target exactly once: batch ``i`` is window ``i`` of every
lane, ``mask`` False past a segment's last target. A split is scored with
``eval_batch_size`` = the number of segments and ``eval_batches`` = the windows of the
longest (:class:`Segments`).
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import check_positive


class TextBatch(NamedTuple):
    """A window of every lane: ``inputs [B, T]`` and ``targets [B, T]`` token ids (the
    next token), ``mask [B, T]`` (valid targets), ``resets [B, T]`` (a document begins
    at that input: the carry restarts before reading it)."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    resets: jax.Array


class Segments(NamedTuple):
    """Held-out segments as a batch function: ``batch(key, i, lanes)`` is window ``i``;
    ``lanes`` (the eval batch size) and ``windows`` (the eval batches) cover them."""

    batch: Callable
    lanes: int
    windows: int


def _check(ids, starts) -> tuple[np.ndarray, np.ndarray]:
    ids, starts = np.asarray(ids), np.asarray(starts, bool)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids: expected a 1-d integer array, got {ids.dtype} {ids.shape}")
    if starts.shape != ids.shape:
        raise ValueError(f"starts: expected shape {ids.shape} (one per token), got {starts.shape}")
    return ids.astype(np.int32), starts


def training_windows(ids, starts, length: int) -> Callable:
    """The training batch function over one token sequence.

    Args:
      ids: ``[N]`` token ids, the documents one after another.
      starts: ``[N]`` bool, True at each document's first token.
      length: ``T``, the window (the truncation of BPTT).

    Returns:
      ``batch(key, step, batch_size) -> TextBatch``: lane ``b`` is
      ``ids[b L : (b + 1) L]``, ``L = N // batch_size``; the window at ``step`` starts at
      ``(step mod W) T`` in every lane, ``W = (L - 1) // T`` (``key`` is not used).

    Raises:
      ValueError: (when called) a lane shorter than one window plus its target.
    """
    ids, starts = _check(ids, starts)
    check_positive("length", length)
    ids, starts = jnp.asarray(ids), jnp.asarray(starts)
    n = int(ids.shape[0])

    def batch(key, step, batch_size: int) -> TextBatch:
        lane = n // batch_size
        windows = (lane - 1) // length
        if windows < 1:
            raise ValueError(
                f"batch_size: {batch_size} lanes of {n} tokens hold {lane} each, fewer than "
                f"one window of length {length} plus its target"
            )
        first = jnp.asarray(step) % windows
        positions = (jnp.arange(batch_size) * lane)[:, None] + first * length
        positions = positions + jnp.arange(length + 1)
        tokens = ids[positions]
        # A new pass over the lane begins with a fresh carry, as a document does.
        new_pass = (first == 0) & (jnp.arange(length) == 0)
        resets = starts[positions[:, :-1]] | new_pass
        return TextBatch(tokens[:, :-1], tokens[:, 1:], jnp.ones(tokens[:, 1:].shape, bool), resets)

    return batch


def scored_segments(segments: Sequence[tuple], length: int) -> Segments:
    """Held-out segments, each scored as its own stream from its first token.

    Args:
      segments: ``[(ids [N_k], starts [N_k]), ...]``; segment ``k`` predicts its tokens
        ``1 .. N_k - 1`` from the ones before them, with a reset at its first token
        and wherever ``starts`` marks a document within it.
      length: ``T``, the tokens of a window.

    Returns:
      :class:`Segments`; the batch function raises (when called) unless its batch
      size is ``len(segments)``.
    """
    check_positive("length", length)
    if not segments:
        raise ValueError("segments: expected at least one (ids, starts) pair, got none")
    checked = [_check(ids, starts) for ids, starts in segments]
    sizes = np.array([len(ids) for ids, _ in checked])
    if sizes.min() < 2:
        raise ValueError(f"segments: expected at least 2 tokens each, got sizes {sizes.tolist()}")
    windows = int(-(-(sizes.max() - 1) // length))
    width = windows * length + 1
    ids = np.zeros((len(checked), width), np.int32)
    starts = np.zeros((len(checked), width), bool)
    for k, (segment, begins) in enumerate(checked):
        ids[k, : len(segment)], starts[k, : len(segment)] = segment, begins
        starts[k, 0] = True
    ids, starts, last = jnp.asarray(ids), jnp.asarray(starts), jnp.asarray(sizes - 1)
    lanes = len(checked)

    def batch(key, i, batch_size: int) -> TextBatch:
        if batch_size != lanes:
            raise ValueError(
                f"eval_batch_size: expected {lanes} (one lane per held-out segment), "
                f"got {batch_size}"
            )
        positions = jnp.asarray(i) * length + jnp.arange(length + 1)
        mask = positions[None, :-1] < last[:, None]
        inputs, targets = ids[:, positions[:-1]], ids[:, positions[1:]]
        return TextBatch(inputs, targets, mask, starts[:, positions[:-1]])

    return Segments(batch, lanes, windows)
