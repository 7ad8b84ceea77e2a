"""One pure, jitted training step and its evaluation twin.

``train_step(state, batch) -> (state, metrics)``: forward over the sequences,
BPTT by ``jax.grad``, optax update (global-norm clipping first). Per-step
randomness (dropout) comes from ``fold_in(state.key, state.step)``, so the result
never depends on where a run was interrupted. A non-finite loss or gradient
leaves params and optimizer state unchanged (the step counter still advances,
so the data stream stays aligned) and is reported in ``metrics["finite"]``;
the loop decides whether to skip on or stop.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn import losses
from jaxrnn.data import Batch
from jaxrnn.models import Model
from jaxrnn.training.optim import clip_norm, learning_rate


class TrainState(NamedTuple):
    step: jax.Array  # int32 scalar: the number of steps taken
    params: Any
    opt_state: Any
    key: jax.Array  # base PRNG key; step keys are fold_in(key, step)


def task_loss(kind: str) -> Callable:
    """``loss(outputs, batch) -> (loss, metrics)`` for a task kind (see ``jaxrnn.data.Task``)."""

    def regression(outputs, batch: Batch):
        loss = losses.mse(outputs[..., 0], batch.targets)
        return loss, {"loss": loss}

    def classification(logits, batch: Batch):
        loss = losses.cross_entropy(logits, batch.targets)
        return loss, {"loss": loss, "accuracy": losses.accuracy(logits, batch.targets)}

    def tokens(logits, batch: Batch):
        loss = losses.cross_entropy(logits, batch.targets, batch.mask)
        return loss, {
            "loss": loss,
            "accuracy": losses.accuracy(logits, batch.targets, batch.mask),
            "bits_per_token": losses.bits_per_character(logits, batch.targets, batch.mask),
        }

    kinds = {"regression": regression, "classification": classification, "tokens": tokens}
    if kind not in kinds:
        raise ValueError(f"kind: expected one of {sorted(kinds)}, got {kind!r}")
    return kinds[kind]


def supervised(model: Model, loss: Callable) -> Callable:
    """The objective of a sequence model on a :class:`~jaxrnn.data.Batch`:
    ``objective(params, batch, key) -> (loss, metrics)``; ``key=None`` at evaluation
    (no dropout)."""

    def objective(params, batch: Batch, key):
        return loss(model.apply(params, batch.inputs, mask=batch.mask, key=key), batch)

    return objective


def make_train_step(
    objective: Callable,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
):
    """Build ``train_step(state, batch) -> (state, metrics)`` (jitted, state donated).

    ``objective(params, batch, key) -> (loss, metrics)`` is any differentiable loss
    of the params on a batch (a pytree); see :func:`supervised`.

    Metrics: ``loss`` (+ task metrics), ``grad_norm`` (global norm *before*
    clipping), ``clipped`` (whether global-norm clipping fired: the bound is read
    from the optimizer state, so it may differ per sweep member), ``learning_rate``
    (the effective one: injected peak × schedule), ``finite``.
    """

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        (value, metrics), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, batch, key
        )
        grad_norm = optax.tree.norm(grads)
        bound = clip_norm(state.opt_state)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(value) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        metrics = {
            **metrics,
            "grad_norm": grad_norm,
            "clipped": grad_norm > bound if bound is not None else jnp.array(False),
            "learning_rate": learning_rate(state.opt_state, schedule),
            "finite": finite,
        }
        new_state = TrainState(
            state.step + 1, keep(params, state.params), keep(opt_state, state.opt_state), state.key
        )
        return new_state, metrics

    return jax.jit(train_step, donate_argnums=0)


def make_eval_step(objective: Callable):
    """Build ``eval_step(params, batch) -> metrics`` (jitted, no dropout: ``key=None``)."""

    def eval_step(params, batch):
        return objective(params, batch, None)[1]

    return jax.jit(eval_step)
