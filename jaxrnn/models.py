"""Sequence models: a recurrent cell plus a linear readout.

A :class:`Model` is a NamedTuple of pure functions, like a cell:
``init(key, input_size) -> params`` and
``apply(params, xs, *, mask=None, key=None) -> outputs``.

* :func:`many_to_one` — one output per sequence (classification/regression) from
  the output at the last valid step, or pooled over the valid steps;
* :func:`many_to_many` — one output per step (tagging, language modelling).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import initializers
from jaxrnn.cell import Cell, check_positive
from jaxrnn.rollout import scan


class Linear(NamedTuple):
    W: jax.Array  # [H, O]
    b: jax.Array  # [O]


class ModelParams(NamedTuple):
    cell: Any
    readout: Linear


class Model(NamedTuple):
    init: Callable[[jax.Array, int], ModelParams]
    apply: Callable[..., jax.Array]


def _readout_init(key, cell: Cell, cell_params, input_size: int, output_size: int) -> Linear:
    x = jax.ShapeDtypeStruct((input_size,), jnp.float32)
    _, y = jax.eval_shape(lambda x: cell.apply(cell_params, cell.initial_carry(cell_params), x), x)
    width = y.shape[-1]
    return Linear(
        W=initializers.glorot_uniform()(key, (width, output_size), y.dtype),
        b=jnp.zeros((output_size,), y.dtype),
    )


def _linear(params: Linear, h: jax.Array) -> jax.Array:
    return h @ params.W.astype(h.dtype) + params.b.astype(h.dtype)


def _model(cell: Cell, output_size: int, head: Callable) -> Model:
    check_positive("output_size", output_size)

    def init(key, input_size: int) -> ModelParams:
        k_cell, k_out = jax.random.split(key)
        cell_params = cell.init(k_cell, input_size)
        return ModelParams(
            cell_params, _readout_init(k_out, cell, cell_params, input_size, output_size)
        )

    def apply(params: ModelParams, xs: jax.Array, *, mask=None, key=None) -> jax.Array:
        _, ys = scan(cell, params.cell, xs, mask=mask, key=key)
        return head(params.readout, ys, mask)

    return Model(init, apply)


def many_to_one(cell: Cell, output_size: int, *, pooling: str = "last") -> Model:
    """Classify or regress a whole sequence.

    Args:
      cell: the recurrent cell (any :class:`jaxrnn.Cell`, e.g. a ``jaxrnn.stack``).
      output_size: ``O``.
      pooling: ``"last"`` — the output at each sequence's last valid step;
        ``"mean"`` / ``"max"`` — pooled over the valid steps. A sequence with no
        valid step pools to zeros (its output is the readout bias).

    Returns:
      A model whose ``apply(params, xs: [B, T, I], mask=[B, T])`` gives ``[B, O]``.
    """
    if pooling not in ("last", "mean", "max"):
        raise ValueError(f"pooling: expected 'last', 'mean' or 'max', got {pooling!r}")

    def head(readout, ys, mask):
        T = ys.shape[-2]
        if mask is None:
            mask = jnp.ones(ys.shape[:-1], bool)
        if pooling == "last":
            # Index of the last True step; the rollout already zeroed the masked outputs.
            last = T - 1 - jnp.argmax(jnp.flip(mask, axis=-1), axis=-1)
            pooled = jnp.take_along_axis(ys, last[..., None, None], axis=-2)[..., 0, :]
        elif pooling == "mean":
            w = mask.astype(ys.dtype)[..., None]
            pooled = jnp.sum(ys * w, axis=-2) / jnp.maximum(jnp.sum(w, axis=-2), 1.0)
        else:
            pooled = jnp.max(jnp.where(mask[..., None], ys, -jnp.inf), axis=-2)
            # A sequence with no valid step pools to 0 (as "mean" does), not -inf.
            pooled = jnp.where(jnp.any(mask, axis=-1)[..., None], pooled, 0.0)
        return _linear(readout, pooled)

    return _model(cell, output_size, head)


def many_to_many(cell: Cell, output_size: int) -> Model:
    """One output per step: ``apply(params, xs: [B, T, I])`` gives ``[B, T, O]``."""
    return _model(cell, output_size, lambda readout, ys, mask: _linear(readout, ys))
