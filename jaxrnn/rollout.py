"""Rolling a cell over a sequence: ``jaxrnn.scan``.

The semantics are those of this Python loop (the test oracle, forward case)::

    carry0 = carry if carry is not None else cell.initial_carry(params, batch, key=key)
    c, ys = carry0, []
    for t in range(T):
        if resets[t]:  c = carry0                  # a new sequence starts at step t
        c_new, y = cell.apply(params, c, xs[t])
        if mask[t]:    c, y = c_new, y             # a valid step
        else:          c, y = c, zeros_like(y)     # a masked step changes nothing
        ys.append(y)
    return c, stack(ys)

``lengths`` is shorthand for ``mask[t] = t < lengths``; since masked steps leave
the carry unchanged, the final carry of each right-padded sequence is the one
at its last valid step, without storing every carry (Flax's ``nn.RNN`` stores
them all to pick the last). ``reverse=True`` runs ``t = T-1, ..., 0``: padding
then comes first and is skipped, so each sequence is read backwards within its
own length, and the state resets *after* the first step of each packed
sequence (``resets[t+1]``).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cell import Cell, check_carry


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _where(cond, a, b, batch_shape):
    """Per batch element, ``a`` where ``cond`` else ``b``, leaf by leaf.

    Leaves that do not start with ``batch_shape`` and typed PRNG keys (per-rollout
    state such as a zoneout key) are not per-sequence: they always take ``b``.
    """
    nb = len(batch_shape)

    def pick(x, y):
        # Without batch dims every leaf starts with batch_shape = (), so a key is
        # recognised by its dtype: it must advance at masked steps there too.
        if x.shape[:nb] != tuple(batch_shape) or _is_key(x):
            return y
        c = jnp.reshape(cond, cond.shape + (1,) * (x.ndim - nb))
        return jnp.where(c, x, y)

    return jax.tree.map(pick, a, b)


def _as_mask(name, value, shape, is_time_major):
    value = jnp.asarray(value)
    if value.dtype != jnp.bool_:
        raise TypeError(f"{name}: expected a bool array, got dtype {value.dtype}")
    if value.shape != shape:
        layout = "[T, *batch]" if is_time_major else "[*batch, T]"
        raise ValueError(f"{name}: expected shape {shape} ({layout}), got {tuple(value.shape)}")
    return value


def _check_lengths(lengths, batch_shape, T):
    # Values can only be checked when concrete: before jnp.asarray, which turns a
    # constant captured by an outer jit into a tracer.
    concrete = None if isinstance(lengths, jax.core.Tracer) else np.asarray(lengths)
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
    if lengths.shape != tuple(batch_shape):
        raise ValueError(
            f"lengths: expected shape {tuple(batch_shape)} (the batch shape of xs), "
            f"got {tuple(lengths.shape)}"
        )
    if concrete is not None:
        lo, hi = (int(concrete.min()), int(concrete.max())) if concrete.size else (0, 0)
        if lo < 0 or hi > T:
            raise ValueError(f"lengths: expected values in [0, T={T}], got min {lo}, max {hi}")
    return lengths


def scan(
    cell: Cell,
    params,
    xs: jax.Array,
    carry=None,
    *,
    lengths: jax.Array | None = None,
    mask: jax.Array | None = None,
    resets: jax.Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    key: jax.Array | None = None,
):
    """Run ``cell`` over the time axis of ``xs`` with ``jax.lax.scan``.

    Args:
      cell: any :class:`jaxrnn.Cell`.
      params: the cell's params.
      xs: ``[*batch, T, I]``, or ``[T, *batch, I]`` if ``time_major``.
      carry: initial carry ``[*batch, ...]``; default ``cell.initial_carry`` (zeros, or
        the learned state of :func:`jaxrnn.learned_initial_carry`).
      lengths: ``[*batch]`` integers in ``[0, T]``: right-padded sequences. Values are
        checked when concrete (outside ``jit``).
      mask: ``[*batch, T]`` bool (``[T, *batch]`` if ``time_major``): valid steps.
        May have holes. Combined with ``lengths`` by logical and.
      resets: bool, shaped like ``mask``: ``True`` where a new sequence starts; the
        carry restarts from the initial carry there.
      reverse: process ``t = T-1, ..., 0``; outputs stay aligned with the inputs.
      time_major: layout of ``xs``, ``mask``, ``resets`` and the returned ``ys``.
      unroll: passed to ``jax.lax.scan``.
      key: PRNG key for randomised cells (dropout, zoneout) when ``carry`` is None.

    Returns:
      ``(final_carry, ys)`` with ``ys: [*batch, T, O]`` (``[T, *batch, O]`` if
      ``time_major``); outputs at masked steps are zero.
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(
            f"xs: expected shape {'[T, *batch, I]' if time_major else '[*batch, T, I]'}, "
            f"got {tuple(xs.shape)}"
        )
    if not time_major:
        xs = jnp.moveaxis(xs, -2, 0)
    T, batch_shape = xs.shape[0], xs.shape[1:-1]
    mask_shape = (T, *batch_shape) if time_major else (*batch_shape, T)

    def to_time_major(m):
        return m if time_major else jnp.moveaxis(m, -1, 0)

    valid = None
    if mask is not None:
        valid = to_time_major(_as_mask("mask", mask, mask_shape, time_major))
    if lengths is not None:
        lengths = _check_lengths(lengths, batch_shape, T)
        steps = jnp.arange(T, dtype=lengths.dtype).reshape((T,) + (1,) * len(batch_shape))
        in_length = steps < lengths
        valid = in_length if valid is None else valid & in_length
    starts = None
    if resets is not None:
        starts = to_time_major(_as_mask("resets", resets, mask_shape, time_major))
        if reverse:  # backwards, a sequence starts after the step that began it going forward
            starts = jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])])

    if carry is None:
        carry0 = cell.initial_carry(params, batch_shape, key=key)
    else:
        # A training carry holds its own key; shape-check it against a keyed template.
        has_key = any(_is_key(leaf) for leaf in jax.tree.leaves(carry))
        template_key = jax.random.key(0) if key is None and has_key else key
        template = jax.eval_shape(
            lambda p, k: cell.initial_carry(p, batch_shape, key=k), params, template_key
        )
        check_carry(carry, template)
        carry0 = carry

    def step(c, inputs):
        x, v, s = inputs
        if s is not None:  # per-rollout leaves are not reset
            c = _where(s, carry0, c, batch_shape)
        c_new, y = cell.apply(params, c, x)
        if v is not None:
            # Per-rollout leaves (e.g. a zoneout key) advance on every step.
            c_new = _where(jnp.logical_not(v), c, c_new, batch_shape)
            y = _where(v, y, jax.tree.map(jnp.zeros_like, y), batch_shape)
        return c_new, y

    final, ys = jax.lax.scan(step, carry0, (xs, valid, starts), reverse=reverse, unroll=unroll)
    if not time_major:
        ys = jax.tree.map(lambda y: jnp.moveaxis(y, 0, len(batch_shape)), ys)
    return final, ys
