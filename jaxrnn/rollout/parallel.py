"""The parallel engine: a diagonal linear recurrence as an associative scan over time.

A cell that declares :class:`jaxrnn.cells.base.Linear` steps as ``h_t = a_t ⊙ h_{t-1} + b_t``
with ``a_t, b_t`` computed from ``x_t`` alone. Affine maps compose associatively,

    (a1, b1) ∘ (a2, b2) = (a1 ⊙ a2, a2 ⊙ b1 + b2)        (first 1, then 2)

so every ``h_t`` follows from one ``jax.lax.associative_scan`` of the pairs, in
``O(log T)`` depth instead of ``T`` sequential steps (Blelloch 1990; Martin & Cundy 2018).
The scan's prefix at ``t`` is the map ``h ↦ A_t ⊙ h + B_t`` from the carry the rollout
starts from to ``h_t``.

Resets and masks are elements of the same scan, so the result equals the plain loop of
:func:`jaxrnn.scan` step for step:

* a masked step is the identity map ``(1, 0)``: the carry passes unchanged;
* a start (reset) is a flag ``r`` inside the operator, which drops everything before it::

      (a1, b1, r1) ∘ (a2, b2, r2) = (r2 ? a2 : a1 ⊙ a2,  r2 ? b2 : a2 ⊙ b1 + b2,  r1 ∨ r2)

  and ``h_t = A_t ⊙ base_t + B_t`` with ``base_t = reset_to.h`` where a start occurred at
  or before ``t`` (the scanned flag), else ``carry0.h``. A masked start is the identity
  with the flag set: the carry becomes ``reset_to`` and stays there, as in the loop.

``log_space`` (Heinsen 2023): the elements are ``(log a_t, log b_t)`` of positive
``a_t, b_t`` and the operator is ``(la1 + la2, logaddexp(lb1 + la2, lb2))`` with the same
flags; ``h_t = exp(LA_t) ⊙ base_t + exp(LB_t)``. The carry enters only there, outside the
logarithms, so it may have any sign. A masked step's ``log b`` is ``LOG_ZERO``, a large
finite negative number rather than ``-inf``: ``logaddexp(-inf, -inf)`` has NaN gradients.

``reverse=True`` runs the scan from ``t = T-1`` down (``associative_scan(reverse=True)``
hands the operator its elements in that processing order); outputs stay aligned with the
inputs. The backward pass is JAX's autodiff of the scan, itself a parallel scan.

References:
  Blelloch (1990). Prefix Sums and Their Applications. CMU-CS-90-190.
  Martin, Cundy (2018). Parallelizing Linear Recurrent Neural Nets Over Sequence
  Length. ICLR.
  Heinsen (2023). Efficient Parallelization of a Ubiquitous Sequential Computation.
  arXiv:2311.06281.
"""

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Linear
from jaxrnn.rollout.steps import where_rows

# log b of a masked step: exp() of it is exactly 0 in float32 and wider, and sums of it
# with any log a of a real sequence stay finite (unlike -inf, or finfo.min doubled).
LOG_ZERO = -1e30


def combine(first, second):
    """The operator on ``(a, b, r)`` elements, ``first`` processed before ``second``
    (the module docstring). ``a, b: [..., H]``, ``r: [...]`` bool."""
    a1, b1, r1 = first
    a2, b2, r2 = second
    reset = r2[..., None]
    return jnp.where(reset, a2, a1 * a2), jnp.where(reset, b2, a2 * b1 + b2), r1 | r2


def combine_log(first, second):
    """:func:`combine` on ``(log a, log b, r)`` elements (Heinsen 2023)."""
    la1, lb1, r1 = first
    la2, lb2, r2 = second
    reset = r2[..., None]
    return (
        jnp.where(reset, la2, la1 + la2),
        jnp.where(reset, lb2, jnp.logaddexp(lb1 + la2, lb2)),
        r1 | r2,
    )


def rollout(linear: Linear, params, carry0, xs, valid, starts, *, reverse, reset_to):
    """The rollout of :func:`jaxrnn.scan` for a cell that declares ``linear``, time-major.

    Args:
      linear: the cell's :class:`jaxrnn.cells.base.Linear`.
      params: the cell's params.
      carry0: the carry the rollout starts from; its state is ``carry0.h: [*batch, H]``.
      xs: ``[T, *batch, I]``.
      valid: ``[T, *batch]`` bool, the steps that count, or None (all).
      starts: ``[T, *batch]`` bool, where the carry restarts from ``reset_to`` before the
        step (already shifted for ``reverse``), or None.
      reverse: process ``t = T-1, ..., 0``.
      reset_to: the carry a start restarts from (``carry0`` except inside segmented remat).

    Returns:
      ``(final_carry, ys)``, ``ys: [T, *batch, O]`` zero at masked steps, exactly what the
      plain loop returns: ``final_carry.h`` is ``h`` after the last step processed.
    """
    T, batch_shape = xs.shape[0], xs.shape[1:-1]
    a, b = linear.coefficients(params, xs)
    a, b = jnp.broadcast_arrays(a, b)  # a may not depend on x (the LRU's λ)
    identity = (0.0, LOG_ZERO) if linear.log_space else (1.0, 0.0)
    if valid is not None:
        keep = valid[..., None]
        a = jnp.where(keep, a, jnp.asarray(identity[0], a.dtype))
        b = jnp.where(keep, b, jnp.asarray(identity[1], b.dtype))
    r = jnp.zeros(b.shape[:-1], bool) if starts is None else starts
    op = combine_log if linear.log_space else combine
    A, B, started = jax.lax.associative_scan(op, (a, b, r), reverse=reverse)
    if linear.log_space:
        A, B = jnp.exp(A), jnp.exp(B)
    base = jnp.where(started[..., None], reset_to.h, carry0.h)
    h = A * base + B

    ys = linear.readout(params, h, xs)
    if valid is not None:
        ys = where_rows(valid, ys, jax.tree.map(jnp.zeros_like, ys), valid.shape)

    if T == 0:
        return carry0, ys
    last = 0 if reverse else T - 1
    # Leaves besides h are constant over the steps; a start anywhere restarts them.
    final = where_rows(started[last], reset_to, carry0, batch_shape)
    return final._replace(h=h[last]), ys
