"""An experiment's data: an endless stream of batches, or a finite data set with three splits.

Two forms, both with a training, a validation and a test split:

* :class:`Stream`: every batch a pure function of ``(key, step, batch_size)``,
  e.g. a synthetic task drawn afresh at every step. A run's training batches come
  from a key of its seed; the validation and test batches from fixed keys
  (:func:`split_key`), the same for every run and seed, so every member of a
  sweep is scored on the same examples.
* :class:`Dataset`: finite splits, each a pytree of arrays whose leaves share a
  leading example axis (a :class:`Batch` of ``N`` examples, say). Training batches
  walk through a fresh permutation every epoch (:func:`epoch_indices`); the
  validation and test splits are scored whole, in order, **each example exactly
  once** (the last batch is smaller: :func:`eval_batches`). ``collate`` turns a
  slice of examples into a batch under ``jit`` (one-hot encoding, say).

Variable lengths work in both: a batch's ``mask [B, T]`` marks the valid steps
(stored per example in a :class:`Dataset`, or built by ``collate`` from lengths).
Either way a resumed run sees exactly the batches it would have seen.

References:
  Hochreiter, Schmidhuber (1997). Long Short-Term Memory (the adding problem).
"""

import functools
import itertools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Split = Literal["train", "validation", "test"]
SPLITS = ("train", "validation", "test")


class Batch(NamedTuple):
    """A batch of sequences: ``inputs [B, T, I]``; ``targets [B]`` or ``[B, O]``
    (one per sequence) or ``[B, T]`` (one per step); ``mask [B, T]`` bool, True at
    the valid steps."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array


class Stream(NamedTuple):
    """Endless data: ``train(key, step, batch_size) -> batch``, pure in its arguments.

    ``validation`` and ``test`` are the batch functions of the held-out splits, where
    they differ from training (held-out problems, another part of a text); None:
    fresh draws from ``train`` under their own key.
    """

    train: Callable[[jax.Array, Any, int], Any]
    validation: Callable[[jax.Array, Any, int], Any] | None = None
    test: Callable[[jax.Array, Any, int], Any] | None = None


class Dataset(NamedTuple):
    """A finite data set: ``train``, ``validation`` (None: no model choice) and ``test``
    splits, each a pytree of arrays with a leading example axis; ``collate(examples)
    -> batch`` (traced under ``jit``; None: the examples are the batch)."""

    train: Any
    validation: Any | None
    test: Any
    collate: Callable[[Any], Any] | None = None


def split_key(split: Split) -> jax.Array:
    """The fixed key of a stream's ``"validation"`` or ``"test"`` batches.

    Derived from ``key(0)``, which no run uses for its data (a run's training key is
    ``key(seed + 1)``), so held-out draws never repeat a training draw's key.
    """
    if split not in ("validation", "test"):
        raise ValueError(f"split: expected 'validation' or 'test', got {split!r}")
    return jax.random.fold_in(jax.random.key(0), SPLITS.index(split))


def num_examples(examples) -> int:
    """The leading (example) axis shared by every leaf of ``examples``.

    Raises:
      ValueError: if the leaves disagree or there are none.
    """
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(examples)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"examples: expected arrays that share a leading example axis, got leading "
            f"sizes {sorted(sizes, key=str)}"
        )
    return sizes.pop()


def epoch_indices(key: jax.Array, step, batch_size: int, n: int) -> jax.Array:
    """The example indices of training batch ``step`` of a finite split of ``n`` examples.

    Batches are consecutive slices of a per-epoch permutation keyed by
    ``fold_in(key, epoch)``; an epoch is ``n // batch_size`` batches (the remainder,
    different every epoch, waits for the next), and a ``batch_size`` above ``n``
    gives all ``n`` examples. Pure in ``(key, step)`` and jit-compatible.
    """
    per_epoch = max(n // batch_size, 1)
    epoch, offset = step // per_epoch, (step % per_epoch) * batch_size
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return jax.lax.dynamic_slice_in_dim(perm, offset, min(batch_size, n))


def _collate(data: Dataset) -> Callable:
    return data.collate if data.collate is not None else (lambda examples: examples)


def train_batch(data: Stream | Dataset, key: jax.Array, step, batch_size: int):
    """Training batch ``step`` of a run whose data key is ``key`` (pure, jit-compatible)."""
    if isinstance(data, Stream):
        return data.train(key, step, batch_size)
    take = epoch_indices(key, step, batch_size, num_examples(data.train))
    return _collate(data)(jax.tree.map(lambda a: jnp.asarray(a)[take], data.train))


@functools.lru_cache(maxsize=64)
def draw(fn: Callable) -> Callable:
    """``fn(key, step, batch_size)`` jitted once per function (``batch_size`` static), so
    a run's validation, test and baseline draws share their compilations."""
    return jax.jit(fn, static_argnums=2)


def eval_batches(data: Stream | Dataset, split: Split, batch_size: int, num_batches: int) -> list:
    """The batches a run scores a held-out split on, in order.

    A stream: ``num_batches`` batches of ``batch_size`` from ``split``'s function under
    :func:`split_key`. A data set: the whole split in order, ``ceil(n / batch_size)``
    batches, the last one smaller, so each example counts exactly once
    (``num_batches`` is not used).

    Raises:
      ValueError: if a data set has no such split (``validation=None``).
    """
    if isinstance(data, Stream):
        fn = draw(getattr(data, split) or data.train)
        return [fn(split_key(split), i, batch_size) for i in range(num_batches)]
    examples = getattr(data, split)
    if examples is None:
        raise ValueError(f"data: this data set has no {split} split (Dataset.{split}=None)")
    n = num_examples(examples)
    collate = jax.jit(_collate(data))
    return [
        collate(jax.tree.map(lambda a, i=i: jnp.asarray(a[i : i + batch_size]), examples))
        for i in range(0, n, batch_size)
    ]


def batch_size_of(batch) -> int:
    """The leading (batch) axis of a batch's first leaf."""
    return int(np.shape(jax.tree.leaves(batch)[0])[0])


def shapes(data: Stream | Dataset, batch_size: int = 1):
    """The shapes and dtypes of a training batch (``jax.ShapeDtypeStruct`` leaves),
    without computing one: ``shapes(data).inputs.shape[-1]`` is the input size."""
    return jax.eval_shape(lambda key: train_batch(data, key, 0, batch_size), jax.random.key(0))


def split_examples(examples, sizes, *, seed: int | None = None) -> tuple:
    """Cut a pytree of examples into consecutive parts of ``sizes`` examples.

    Args:
      examples: arrays sharing a leading example axis.
      sizes: the parts' sizes; they must add up to at most the number of examples.
      seed: shuffle the examples first with ``numpy.random.default_rng(seed)``;
        None: keep their order (a chronological split of a series, say).

    Returns:
      One pytree per size.
    """
    n = num_examples(examples)
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"sizes: expected sizes >= 0 adding up to at most {n}, got {sizes}")
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return tuple(
        jax.tree.map(lambda a, lo=lo, hi=hi: np.asarray(a)[order[lo:hi]], examples)
        for lo, hi in itertools.pairwise(bounds)
    )


def stratified_holdout(index, labels, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split the examples ``index`` into ``(kept, held_out)``, ``fraction`` of them held
    out with each class's share of ``labels[index]`` (scikit-learn's
    ``train_test_split(random_state=0)``): the validation split of a finite data set.

    Raises:
      ValueError: ``fraction`` not in ``(0, 1)``, named ``validation_fraction``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"validation_fraction: expected 0 < validation_fraction < 1, got {fraction}"
        )
    from sklearn.model_selection import train_test_split

    index = np.asarray(index)
    return tuple(
        train_test_split(
            index, test_size=fraction, random_state=0, stratify=np.asarray(labels)[index]
        )
    )
