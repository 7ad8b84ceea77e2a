"""The cell interface: a recurrent cell is a NamedTuple of three pure functions.

A cell is built by a factory (``jaxrnn.lstm(128)``) that closes over its
hyperparameters and returns::

    cell.init(key, input_size)                      -> params
    cell.initial_carry(params, batch_shape=(), *, key=None) -> carry
    cell.apply(params, carry, x)                    -> (carry, y)

``apply`` has ``jax.lax.scan``'s argument order, so rolling a cell over a
sequence *is* ``lax.scan(partial(cell.apply, params), carry, xs)``. Inputs may
carry any leading batch dimensions (``x: [*batch, I]``, every carry leaf
``[*batch, ...]``), so no ``vmap`` is needed, and ``vmap`` works as well.

``key`` in ``initial_carry`` is only used by randomised cells (dropout,
zoneout), which keep their random state in the carry; deterministic cells
ignore it. Carry leaves that do not start with the batch shape, and typed PRNG
keys (``jax.random.key``) whatever their shape, are per-rollout state: masking
and resets in :func:`jaxrnn.scan` leave them to the cell.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = Any
Carry = Any
Array = jax.Array


class Cell(NamedTuple):
    """A recurrent cell: ``init``, ``initial_carry`` and ``apply``, all pure.

    ``fused`` is optional: a rollout with a hand-derived backward pass (see
    :mod:`jaxrnn.rollout.fused`), ``fused(params, carry, xs, valid, *, reverse, unroll) ->
    (final_carry, ys)`` on time-major ``xs [T, *batch, I]`` and ``valid [T, *batch]``
    bool (or None), equal in values and gradients to :func:`jaxrnn.scan` over
    ``apply`` with that mask. It raises ``jaxrnn.rollout.fused.Unsupported`` (a ``ValueError``)
    at trace time for arguments it does not handle. The built-in factories fill it
    in; a cell built as ``Cell(init, initial_carry, apply)`` (a user cell, or a
    wrapper such as dropout or ``stack``) has none, so it is never used by mistake.
    """

    init: Callable[[Array, int], Params]
    initial_carry: Callable[..., Carry]
    apply: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    fused: Callable[..., tuple[Carry, Array]] | None = None


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda z: z,
    "hard_tanh": jax.nn.hard_tanh,
    "softsign": jax.nn.soft_sign,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
}


def activation_fn(activation: str | Callable[[Array], Array], name: str = "activation"):
    """Resolve an activation given by name (see ``ACTIVATIONS``) or as a callable."""
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{name}: expected one of {sorted(ACTIVATIONS)} or a callable, got {activation!r}"
        )
    return ACTIVATIONS[activation]


def carry_dtype(param_dtype) -> jnp.dtype:
    """The dtype a recurrence accumulates in: at least float32.

    Low-precision (bfloat16/float16) parameters still carry their state in
    float32, since rounding errors compound over the time steps.
    """
    param_dtype = jnp.dtype(param_dtype)
    if jnp.finfo(param_dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return param_dtype


def check_positive(name: str, value: int) -> int:
    """Return ``value`` if it is a positive int (a ``bool`` is not), else raise ``ValueError``.

    ``name`` is the argument's name, for the error message.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def check_input(x: Array, input_size: int, h: Array, name: str = "x") -> None:
    """Raise unless ``x`` is floating ``[*batch, input_size]`` and ``h`` is ``[*batch, H]``.

    Called inside ``apply``; under ``jit``/``scan`` it runs at trace time, so a
    bad shape is reported before any computation.
    """
    if not hasattr(x, "shape") or x.ndim < 1 or x.shape[-1] != input_size:
        raise ValueError(
            f"{name}: expected shape [*batch, {input_size}] (input_size={input_size} from the "
            f"params), got shape {tuple(getattr(x, 'shape', ()))}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected a floating dtype, got {x.dtype}")
    if h.shape[:-1] != x.shape[:-1]:
        raise ValueError(
            f"carry: expected batch shape {tuple(x.shape[:-1])} (the batch shape of {name}), "
            f"got carry.h of shape {tuple(h.shape)}"
        )


def check_carry(carry, expected, name: str = "carry") -> None:
    """Raise if ``carry`` differs from ``expected`` in tree structure or leaf shapes."""
    got = jax.tree.structure(carry)
    want = jax.tree.structure(expected)
    if got != want:
        raise ValueError(f"{name}: expected a pytree with structure {want}, got {got}")
    got_shapes = [tuple(x.shape) for x in jax.tree.leaves(carry)]
    want_shapes = [tuple(x.shape) for x in jax.tree.leaves(expected)]
    if got_shapes != want_shapes:
        raise ValueError(f"{name}: expected leaf shapes {want_shapes}, got {got_shapes}")


def matmul(x: Array, w: Array, acc_dtype) -> Array:
    """``x @ w`` in the parameter dtype, accumulated and returned in ``acc_dtype``."""
    return jnp.matmul(x.astype(w.dtype), w, preferred_element_type=acc_dtype)


def probe_dtype(params) -> jnp.dtype:
    """A floating dtype for shape probes: the params' first floating one."""
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.dtype(jnp.float32)


def step_output(cell: Cell, params, input_size: int) -> jax.ShapeDtypeStruct:
    """Shape and dtype of ``y`` from one unbatched ``cell.apply`` step (no compute)."""
    x = jax.ShapeDtypeStruct((input_size,), probe_dtype(params))
    _, y = jax.eval_shape(lambda x: cell.apply(params, cell.initial_carry(params, ()), x), x)
    return y
