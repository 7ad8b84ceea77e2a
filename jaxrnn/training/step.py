"""One pure training step and its evaluation twin, for any :class:`~jaxrnn.tasks.Objective`.

``train_step(state, batch) -> (state, metrics)``: the objective's loss on the
batch, BPTT by ``jax.grad``, optax update (global-norm clipping first). Per-step
randomness (dropout) comes from ``fold_in(state.key, state.step)``, so the result
never depends on where a run was interrupted. A stateful objective's carry is
part of the state: it enters the step and leaves it (``stop_gradient``: BPTT is
truncated at the step boundary), so it is checkpointed with the params. A
non-finite loss or gradient leaves params, optimizer state and carry unchanged
(the step counter still advances, so the data stream stays aligned) and is
reported in ``metrics["finite"]``; the loop decides whether to skip on or stop.

Both are pure (not jitted): the run loop compiles them into one program over the
members of a group (:mod:`jaxrnn.training.loop`).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn.tasks.objectives import Objective
from jaxrnn.training.optim import clip_norm, learning_rate


class TrainState(NamedTuple):
    """Everything a step updates.

    Attributes:
      step: int32 scalar, the number of steps taken.
      params: the model's params.
      opt_state: the optax state (with the injected hyperparameters).
      key: the base PRNG key; step keys are ``fold_in(key, step)``.
      carry: a stateful objective's carry (``()`` for a stateless one).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array
    carry: Any = ()


def stateful_loss(objective: Objective) -> Callable:
    """``f(params, carry, batch, key) -> (loss, (metrics, carry))`` for any objective
    (a stateless one passes its carry through), with ``metrics["loss"]`` always set."""

    def f(params, carry, batch, key):
        if objective.carry is None:
            loss, metrics = objective.loss(params, batch, key)
        else:
            loss, (metrics, carry) = objective.loss(params, carry, batch, key)
        return loss, ({"loss": loss, **metrics}, carry)

    return f


def init_state(params, optimizer: optax.GradientTransformation, key, carry=()) -> TrainState:
    """The state before step 0."""
    return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params), key, carry)


def make_train_step(
    objective: Objective, optimizer: optax.GradientTransformation, schedule: optax.Schedule
) -> Callable:
    """Build ``train_step(state, batch) -> (state, metrics)`` (pure; jit it or map it).

    Metrics: the objective's (``loss`` + its metrics), ``grad_norm`` (global norm
    *before* clipping), ``clipped`` (whether global-norm clipping fired: the bound is
    read from the optimizer state, so it may differ per sweep member),
    ``learning_rate`` (the effective one: injected peak × schedule), ``finite``.
    """
    loss_fn = stateful_loss(objective)

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        (value, (metrics, carry)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.carry, batch, key
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
            state.step + 1,
            keep(params, state.params),
            keep(opt_state, state.opt_state),
            state.key,
            keep(jax.lax.stop_gradient(carry), state.carry),
        )
        return new_state, metrics

    return train_step


def make_eval_step(objective: Objective) -> Callable:
    """Build ``eval_step(params, carry, batch) -> (metrics, carry)`` (pure; ``key=None``:
    no dropout). A stateless objective passes ``carry`` through."""
    loss_fn = stateful_loss(objective)

    def eval_step(params, carry, batch):
        _, (metrics, carry) = loss_fn(params, carry, batch, None)
        return metrics, carry

    return eval_step
