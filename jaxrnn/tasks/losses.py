"""Mask-aware losses and metrics.

Every function takes an optional boolean ``mask`` with the shape of the per-item
loss (``[B]`` for many-to-one, ``[B, T]`` for per-step targets) and averages over
the valid items only, so padding never dilutes a loss.
"""

import jax
import jax.numpy as jnp
import optax


def masked_mean(values: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean of ``values`` over the entries where ``mask`` is True (all if None).

    ``mask``: bool, the shape of ``values``. Padded entries are selected out, not
    multiplied by 0, so an inf or NaN there cannot leak; returns 0 (not NaN) when
    nothing is valid.
    """
    if mask is None:
        return jnp.mean(values)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
    if mask.shape != values.shape:
        raise ValueError(f"mask: expected shape {tuple(values.shape)}, got {tuple(mask.shape)}")
    # where, not `values * mask`: an inf or NaN at a padded entry times 0 is NaN.
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return total / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


def mse(predictions: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean squared error; ``predictions`` and ``targets`` share a shape ``[*items, (O)]``.

    A trailing output axis (if ``predictions.ndim > mask.ndim``) is averaged first.
    """
    if predictions.shape != targets.shape:
        raise ValueError(
            f"targets: expected shape {tuple(predictions.shape)} (the predictions'), "
            f"got {tuple(targets.shape)}"
        )
    err = jnp.square(predictions - targets.astype(predictions.dtype))
    if mask is not None and err.ndim > mask.ndim:
        err = jnp.mean(err, axis=tuple(range(mask.ndim, err.ndim)))
    return masked_mean(err, mask)


def _check_logits(logits, labels):
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"labels: expected shape {tuple(logits.shape[:-1])} (logits without the class axis), "
            f"got {tuple(labels.shape)}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels: expected integer class indices, got dtype {labels.dtype}")


def item_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy in nats of every item: ``[*items]`` from ``logits [*items, C]``
    and integer ``labels [*items]``."""
    _check_logits(logits, labels)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def item_correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``[*items]`` float32: 1 where the arg-max class equals the label, else 0."""
    _check_logits(logits, labels)
    # argmax gives the default int (int64 under x64): compare in the labels' dtype.
    return (jnp.argmax(logits, axis=-1).astype(labels.dtype) == labels).astype(jnp.float32)


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Softmax cross-entropy in nats, averaged over valid items.

    ``logits: [*items, C]``, ``labels: [*items]`` integers; for token sequences
    ``items = (B, T)`` and the mean is over valid tokens only.
    """
    return masked_mean(item_cross_entropy(logits, labels), mask)


def bits_per_character(
    logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """Cross-entropy in bits per token (character-level language modelling)."""
    return cross_entropy(logits, labels, mask) / jnp.log(2.0).astype(logits.dtype)


def perplexity(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``exp`` of the mean token cross-entropy."""
    return jnp.exp(cross_entropy(logits, labels, mask))


def accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Fraction of valid items whose arg-max class equals the label."""
    return masked_mean(item_correct(logits, labels), mask)
