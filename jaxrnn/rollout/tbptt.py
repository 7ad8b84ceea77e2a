"""Truncated backpropagation through time, BPTT(k2; k1).

A long sequence is processed in segments of ``k1`` steps. After each segment
the loss of its ``k1`` steps is back-propagated ``k2 >= k1`` steps, through a
window that starts ``k2 - k1`` steps before the segment from the carry at
that point, taken as a constant (``jax.lax.stop_gradient``); the carry is then
passed on to the next segment. ``k1 = k2`` gives the common "chunked" TBPTT;
``k2 = k1 = T`` is full BPTT. The semantics are those of this Python loop (the
test oracle), with ``d = k2 - k1`` and ``s(t)`` the carry entering step ``t``::

    for j in range(ceil(T / k1)):
        a, e = j * k1 - d, min((j + 1) * k1, T)    # window [a, e), loss on [j * k1, e)
        start = stop_gradient(s(max(a, 0)))
        if a <= 0 and carry is None:
            start = cell.initial_carry(params)     # differentiable: a learned state is trained
        loss_j, g_j = value_and_grad(loss of rollout(params, start, xs[max(a, 0):e]))
        params = optimizer step with g_j           # if an optimizer is given

Each window is recomputed with the current params from its start carry, and
``s(j * k1 + k1 - d)``, the start of the next window, is taken from that
recomputation. With fixed params (no optimizer) every ``s(t)`` is therefore
exactly the untruncated rollout's carry.

All windows have the same shape, so one ``jax.lax.scan`` over segments runs
them: the sequence is left-padded with ``d`` masked steps (a window that would
start before ``t = 0`` starts at 0) and right-padded with masked steps to a
multiple of ``k1``; :func:`jaxrnn.scan` keeps the carry on masked steps.

References:
  Williams, Peng (1990). An Efficient Gradient-Based Algorithm for On-Line
  Training of Recurrent Network Trajectories. Neural Computation 2(4).
  Sutskever (2013). Training Recurrent Neural Networks. PhD thesis, §3.4.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn.cells.base import Cell, check_carry, check_is_cell, check_positive
from jaxrnn.rollout.scan import scan


class TBPTTResult(NamedTuple):
    """The result of :func:`truncated_bptt`, BPTT(k2; k1) (Williams & Peng 1990).

    Attributes:
      params: the params after the last update (the input params without an optimizer).
      opt_state: the optimizer state after the last update; None without an optimizer.
      grads: the sum over segments of each segment's truncated gradient.
      losses: ``[num_segments]`` (``ceil(T / k1)``), each segment's loss.
      carry: ``[*batch, ...]``, the carry after the last valid step.
    """

    params: Any
    opt_state: Any
    grads: Any
    losses: jax.Array
    carry: Any


def _pad_time(tree, axis: int, before: int, after: int):
    def pad(x):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (before, after)
        return jnp.pad(x, widths)

    return jax.tree.map(pad, tree)


def _slice_time(tree, axis: int, start, size: int):
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, size, axis), tree)


def truncated_bptt(
    cell: Cell,
    loss_fn,
    params,
    xs: jax.Array,
    targets,
    *,
    k1: int,
    k2: int | None = None,
    carry=None,
    optimizer: optax.GradientTransformation | None = None,
    opt_state=None,
) -> TBPTTResult:
    """Run BPTT(k2; k1) over ``xs`` (see the module docstring).

    Args:
      cell: any deterministic :class:`jaxrnn.Cell`.
      loss_fn: ``loss_fn(ys, targets, mask) -> scalar`` with ``ys [*batch, k1, O]``,
        ``targets`` sliced like ``xs`` (``[*batch, k1, ...]`` per leaf) and ``mask
        [*batch, k1]`` bool, the valid steps. It must be a **sum** over the valid
        steps (``mask`` is False on padding), so that the segment losses add up to
        the loss of the whole sequence; divide by a fixed count if you want a mean.
      params: the cell's params.
      xs: ``[*batch, T, I]``.
      targets: a pytree of arrays ``[*batch, T, ...]``.
      k1: segment length: an update (or gradient) every ``k1`` steps.
      k2: how many steps each segment's loss is back-propagated, ``k2 >= k1``;
        default ``k1``.
      carry: initial carry ``[*batch, ...]``; default ``cell.initial_carry(params,
        batch)``, which then receives gradients (e.g. a learned initial state) in
        every window that reaches back to ``t = 0``.
      optimizer: an optax ``GradientTransformation``; if given, params are updated
        after every segment.
      opt_state: the optimizer's state; default ``optimizer.init(params)``.

    Returns:
      :class:`TBPTTResult` ``(params, opt_state, grads, losses, carry)``.

    Example:
      >>> def loss_fn(ys, targets, mask):
      ...     return jnp.sum(jnp.where(mask[..., None], (ys - targets) ** 2, 0))
      >>> result = jaxrnn.truncated_bptt(cell, loss_fn, params, xs, targets, k1=16, k2=32,
      ...                                optimizer=optax.sgd(1e-2))
    """
    check_is_cell(cell)
    check_positive("k1", k1)
    k2 = k1 if k2 is None else check_positive("k2", k2)
    if k2 < k1:
        raise ValueError(
            f"k2: expected k2 >= k1 = {k1} (back-propagate at least k1 steps), got {k2}"
        )
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"xs: expected shape [*batch, T, I], got {tuple(xs.shape)}")
    batch_shape, T = xs.shape[:-2], xs.shape[-2]
    t_axis = len(batch_shape)
    for leaf in jax.tree.leaves(targets):
        if leaf.shape[: t_axis + 1] != (*batch_shape, T):
            raise ValueError(
                f"targets: expected leaves of shape [*batch, T, ...] = {(*batch_shape, T)} + ..., "
                f"got {tuple(leaf.shape)}"
            )
    if opt_state is not None and optimizer is None:
        raise ValueError("opt_state: given without an optimizer; pass optimizer= as well")

    d = k2 - k1
    num_segments = -(-T // k1)
    after = num_segments * k1 - T
    xs_p = _pad_time(xs, t_axis, d, after)
    targets_p = _pad_time(targets, t_axis, d, after)
    valid_p = _pad_time(jnp.ones((*batch_shape, T), jnp.bool_), t_axis, d, after)

    learn_carry0 = carry is None
    carry0 = cell.initial_carry(params, batch_shape)
    if carry is not None:
        check_carry(carry, carry0)
        carry0 = carry
    if optimizer is not None and opt_state is None:
        opt_state = optimizer.init(params)

    def window_loss(p, start, x, tgt, valid, starts_at_zero):
        if learn_carry0:  # a window reaching back to t = 0 starts from the initial carry
            init = cell.initial_carry(p, batch_shape)
            start = jax.tree.map(lambda a, b: jnp.where(starts_at_zero, a, b), init, start)
        # The first k1 steps end where the next window starts.
        next_start, ys_a = scan(cell, p, x[..., :k1, :], start, mask=valid[..., :k1])
        end, ys_b = scan(cell, p, x[..., k1:, :], next_start, mask=valid[..., k1:])
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b], t_axis), ys_a, ys_b)
        last = (slice(None),) * t_axis + (slice(k2 - k1, None),)
        ys = jax.tree.map(lambda y: y[last], ys)
        tgt = jax.tree.map(lambda y: y[last], tgt)
        return loss_fn(ys, tgt, valid[last]), (next_start, end)

    grad_fn = jax.value_and_grad(window_loss, has_aux=True)

    def segment(state, j):
        p, o, start, _, grad_sum = state
        a = j * k1  # window start, in padded time
        x = _slice_time(xs_p, t_axis, a, k2)
        tgt = _slice_time(targets_p, t_axis, a, k2)
        valid = _slice_time(valid_p, t_axis, a, k2)
        # The window starts from a constant: no gradient reaches earlier windows, even
        # when truncated_bptt itself is differentiated.
        start = jax.lax.stop_gradient(start)
        (loss, (next_start, end)), g = grad_fn(p, start, x, tgt, valid, a <= d)
        grad_sum = jax.tree.map(jnp.add, grad_sum, g)
        if optimizer is not None:
            updates, o = optimizer.update(g, o, p)
            p = optax.apply_updates(p, updates)
        return (p, o, next_start, end, grad_sum), loss

    zeros = jax.tree.map(jnp.zeros_like, params)
    init_state = (params, opt_state, carry0, carry0, zeros)
    (params, opt_state, _, final, grads), losses = jax.lax.scan(
        segment, init_state, jnp.arange(num_segments)
    )
    return TBPTTResult(params, opt_state, grads, losses, final)
