"""One step of a rollout: reset, step, mask; the semantics every engine reproduces.

A carry's leaves are of two kinds. Per-sequence leaves start with the batch shape
(``h: [*batch, H]``): a reset restarts them and a masked step keeps them. Per-rollout
leaves (a leaf that does not start with the batch shape, or a typed PRNG key whatever
its shape, such as a zoneout key) belong to the cell: resets and masks leave them alone.
"""

import jax
import jax.numpy as jnp


def is_key(x) -> bool:
    """Whether ``x`` is an array of typed PRNG keys (``jax.random.key``)."""
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def where_rows(cond, a, b, batch_shape):
    """Per batch element, ``a`` where ``cond`` else ``b``, leaf by leaf.

    Leaves that do not start with ``batch_shape`` and typed PRNG keys (per-rollout
    state such as a zoneout key) are not per-sequence: they always take ``b``.
    """
    nb = len(batch_shape)

    def pick(x, y):
        # Without batch dims every leaf starts with batch_shape = (), so a key is
        # recognised by its dtype: it must advance at masked steps there too.
        if x.shape[:nb] != tuple(batch_shape) or is_key(x):
            return y
        c = jnp.reshape(cond, cond.shape + (1,) * (x.ndim - nb))
        return jnp.where(c, x, y)

    return jax.tree.map(pick, a, b)


def rollout_step(apply, params, reset_to, batch_shape):
    """The body of the plain rollout (the loop in ``jaxrnn.scan``'s docstring), for ``lax.scan``
    over ``(x_t, valid_t, start_t)`` (either of the last two None): reset, step, mask."""

    def step(c, inputs):
        x, v, s = inputs
        if s is not None:  # per-rollout leaves are not reset
            c = where_rows(s, reset_to, c, batch_shape)
        return keep_masked(v, c, *apply(params, c, x), batch_shape)

    return step


def keep_masked(valid, c, c_new, y, batch_shape):
    """A step's ``(c_new, y)`` where ``valid`` (None: everywhere), else ``(c, 0)``: a masked
    step changes nothing. Per-rollout leaves (e.g. a zoneout key) advance on every step."""
    if valid is None:
        return c_new, y
    c_new = where_rows(jnp.logical_not(valid), c, c_new, batch_shape)
    return c_new, where_rows(valid, y, jax.tree.map(jnp.zeros_like, y), batch_shape)
