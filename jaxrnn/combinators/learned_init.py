"""A learned initial state: the initial carry as a parameter."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Cell, Step, check_is_cell


class LearnedInitParams(NamedTuple):
    """The params of a :func:`learned_initial_carry` cell.

    Attributes:
      cell: the wrapped cell's params.
      carry: the learned initial carry, unbatched (e.g. ``[H]`` per leaf), broadcast
        over the batch.
    """

    cell: Any
    carry: Any


def learned_initial_carry(cell: Cell, init=None) -> Cell:
    """Wrap ``cell`` so that its initial carry is learned.

    The initial carry becomes part of the params (initialised to the wrapped
    cell's own initial carry, zeros for the built-in cells, or by ``init(key,
    shape, dtype)`` per leaf) and is broadcast over the batch, so ``jax.grad``
    trains it like any other weight. Wrap the deterministic cell, then add
    dropout or zoneout around the result.
    """
    check_is_cell(cell)

    def init_fn(key, input_size: int) -> LearnedInitParams:
        k_cell, k_carry = jax.random.split(key)
        params = cell.init(k_cell, input_size)
        carry = cell.initial_carry(params, ())
        if init is not None:
            keys = jax.random.split(k_carry, len(jax.tree.leaves(carry)))
            leaves, tree = jax.tree.flatten(carry)
            carry = jax.tree.unflatten(
                tree, [init(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
            )
        return LearnedInitParams(params, carry)

    def initial_carry(params: LearnedInitParams, batch_shape=(), *, key=None):
        template = cell.initial_carry(params.cell, batch_shape, key=key)
        return jax.tree.map(
            lambda learned, t: jnp.broadcast_to(learned.astype(t.dtype), t.shape),
            params.carry,
            template,
        )

    def apply(params: LearnedInitParams, carry, x):
        return cell.apply(params.cell, carry, x)

    # The wrapped cell's engines, reading its own params.
    step, linear = cell.step, cell.linear
    if step is not None:
        step = Step(
            lambda params, carry, x: cell.step.project(params.cell, carry, x),
            lambda params, carry: cell.step.recur(params.cell, carry),
            lambda params, carry, u, r: cell.step.update(params.cell, carry, u, r),
        )
    if linear is not None:
        linear = linear._replace(
            coefficients=lambda params, x: cell.linear.coefficients(params.cell, x),
            readout=lambda params, h, x: cell.linear.readout(params.cell, h, x),
        )
    return Cell(init_fn, initial_carry, apply, step, linear)
