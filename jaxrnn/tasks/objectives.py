"""An experiment's objective: the loss to minimise, and metrics that each say which way is better.

An :class:`Objective` holds a pure function ::

    loss(params, batch, key) -> (loss, metrics)        # key is None at evaluation

whose ``loss`` is the scalar that training differentiates (BPTT by ``jax.grad``)
and whose ``metrics`` is a dict of scalars (``"loss"`` among them, or added by the
runner), plus the direction of every metric besides the loss (``"max"`` for an
accuracy, ``"min"`` for an error): model choice and sweep tables rank by it. At
evaluation ``key`` is None (no dropout), which is also where evaluation-only
metrics go (exact match of greedy decoding, say).

A metric averages over a split in one of two ways: a plain scalar is a mean over
the batch's examples, and the runner weighs each batch by its number of examples;
a :class:`Mean` ``(total, count)`` is summed over the batches and divided once,
exact for means over tokens of sequences of different lengths.

Optional parts:

* ``carry(params, batch_size) -> carry``: a *stateful* objective (truncated BPTT
  over contiguous streams): the loss becomes ``loss(params, carry, batch, key) ->
  (loss, (metrics, carry))``, the runner keeps the carry across training steps
  (in the train state and its checkpoints) and threads it through a held-out
  split's batches in order.
* ``evaluate(params, batches) -> {name: float}``: metrics computed on the host,
  outside ``jit``, from one member's params and the split's batches (BLEU of
  decoded text, say), logged with the others at every evaluation.

:func:`regression`, :func:`classification` and :func:`tokens` are the objectives
of sequence models over :class:`~jaxrnn.tasks.data.Batch` es.
"""

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.tasks import losses
from jaxrnn.tasks.data import Batch

Direction = Literal["min", "max"]


class Mean(NamedTuple):
    """A metric as ``total / count``, summed over a split's batches before dividing."""

    total: jax.Array
    count: jax.Array


class Objective(NamedTuple):
    """What training minimises and what evaluation reports (see the module doc).

    Attributes:
      loss: ``loss(params, batch, key) -> (loss, metrics)``; stateful:
        ``loss(params, carry, batch, key) -> (loss, (metrics, carry))``.
      metrics: ``{name: "min" | "max"}``, the direction of every metric besides
        ``loss`` (which is minimised), evaluation-only and host metrics included.
      carry: ``carry(params, batch_size) -> carry``, the initial carry of a stateful
        objective; None: stateless.
      evaluate: ``evaluate(params, batches) -> {name: float}``, host-side metrics.
    """

    loss: Callable
    metrics: Mapping[str, Direction] = {}
    carry: Callable | None = None
    evaluate: Callable | None = None


def mean(values: jax.Array, mask: jax.Array | None = None) -> Mean:
    """``values`` as a :class:`Mean` over the entries where ``mask`` is True (all if None)."""
    if mask is None:
        return Mean(jnp.sum(values), jnp.asarray(values.size, values.dtype))
    kept = jnp.where(mask, values, 0.0)  # where: an inf at a padded entry must not leak
    return Mean(jnp.sum(kept), jnp.sum(mask).astype(values.dtype))


def value(metric) -> jax.Array:
    """A metric's value: a scalar as it is, a :class:`Mean` divided (0 where it counts nothing)."""
    if isinstance(metric, Mean):
        return metric.total / jnp.maximum(metric.count, 1)
    return metric


def directions(objective: Objective) -> dict[str, Direction]:
    """``{"loss": "min", **objective.metrics}``."""
    return {"loss": "min", **objective.metrics}


def regression(model: Any) -> Objective:
    """Mean squared error of a one-output sequence model (``model.apply(params, inputs,
    mask=, key=) -> [B, 1]``) against ``batch.targets [B]``."""

    def loss(params, batch: Batch, key):
        outputs = model.apply(params, batch.inputs, mask=batch.mask, key=key)
        mse = losses.mse(outputs[..., 0], batch.targets)
        return mse, {"loss": mse}

    return Objective(loss)


def classification(model: Any) -> Objective:
    """Cross-entropy (nats) and accuracy of a sequence classifier (logits ``[B, C]``)
    against integer ``batch.targets [B]``."""

    def loss(params, batch: Batch, key):
        logits = model.apply(params, batch.inputs, mask=batch.mask, key=key)
        ce = losses.cross_entropy(logits, batch.targets)
        return ce, {"loss": ce, "accuracy": losses.accuracy(logits, batch.targets)}

    return Objective(loss, {"accuracy": "max"})


def tokens(model: Any, *, spans: Mapping[str, Callable[[Batch], jax.Array]] = {}) -> Objective:
    """Per-step cross-entropy (nats), accuracy and bits per token of a many-to-many model
    (logits ``[B, T, V]``) over the valid steps of ``batch.targets [B, T]``, each an
    exact :class:`Mean` over the tokens of a split.

    Args:
      model: the model, ``apply(params, inputs, mask=, key=) -> logits``.
      spans: ``{name: positions}``, ``positions(batch) -> [B, T] bool``: metric
        ``name`` (maximised) is the accuracy over those of the valid steps alone, e.g.
        the steps where the copying task writes its symbols.

    Raises:
      ValueError: a span named like one of the metrics above.
    """
    own = ("loss", "accuracy", "bits_per_token")
    if clash := [name for name in spans if name in own]:
        raise ValueError(f"spans: {clash} name metrics tokens() reports itself {own}")

    def loss(params, batch: Batch, key):
        logits = model.apply(params, batch.inputs, mask=batch.mask, key=key)
        nats = losses.item_cross_entropy(logits, batch.targets)
        right = losses.item_correct(logits, batch.targets)
        ce = mean(nats, batch.mask)
        metrics = {
            "loss": ce,
            "accuracy": mean(right, batch.mask),
            "bits_per_token": Mean(ce.total / jnp.log(2.0).astype(ce.total.dtype), ce.count),
        }
        for name, positions in spans.items():
            metrics[name] = mean(right, batch.mask & positions(batch))
        return value(ce), metrics

    directions = {"accuracy": "max", "bits_per_token": "min"}
    return Objective(loss, {**directions, **dict.fromkeys(spans, "max")})


def check_directions(metrics: Mapping[str, str], where: str) -> list[str]:
    """Problems with a ``{name: direction}`` mapping, each naming ``where`` it came from."""
    if not isinstance(metrics, Mapping):
        return [f"{where}: expected a dict {{name: 'min' or 'max'}}, got {type(metrics).__name__}"]
    return [
        f"{where}[{name!r}] = {direction!r}: expected 'min' or 'max'"
        for name, direction in metrics.items()
        if direction not in ("min", "max")
    ]
