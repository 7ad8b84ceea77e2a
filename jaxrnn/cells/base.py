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


class Step(NamedTuple):
    """A cell's step in the three pieces the fused engine needs (:mod:`jaxrnn.rollout.fused`).

    ``apply(params, carry, x) == update(params, carry, project(params, carry, x),
    recur(params, carry))``: the built-in cells define their ``apply`` this way, so the
    fast path runs the cell's own equations, not a copy.

    * ``project(params, carry, x) -> u``: the input projection (``x W_xh``). It must be
      linear in ``x`` and read from ``carry`` only per-rollout leaves (a dropout key),
      so that the engine can run it over all ``T`` steps at once: its weight and
      input gradients are then one matmul over all ``T·N`` rows each. ``u`` may be a
      pytree that also holds values of the step that depend on neither ``x`` nor the
      state, such as zoneout's masks: the engine saves ``u`` in the forward pass, so
      the backward pass does not draw them again. Its non-float leaves (boolean masks)
      are not differentiated.
    * ``recur(params, carry) -> r``: the recurrent projection (``h_{t-1} W_hh``), linear
      in the carry; its weight gradient is likewise one matmul over all rows.
    * ``update(params, carry, u, r) -> (carry, y)``: the rest of the step, row by row
      (gates, nonlinearities, layer norm, zoneout). Differentiated by JAX one step at a
      time; any matmul in it (an LSTMP projection) is accumulated per step, as autodiff does.

    Each piece works on any leading batch shape, like ``apply``.
    """

    project: Callable[[Params, Carry, Array], Any]
    recur: Callable[[Params, Carry], Any]
    update: Callable[[Params, Carry, Any, Any], tuple[Carry, Array]]


class Linear(NamedTuple):
    """A diagonal linear recurrence, for the parallel engine (:mod:`jaxrnn.rollout.parallel`).

    The cell's state is ``carry.h`` and its step is::

        a_t, b_t = coefficients(params, x_t)        # from the input only
        h_t = a_t ⊙ h_{t-1} + b_t                   # elementwise, real or complex
        y_t = readout(params, h_t, x_t)

    so ``h_t`` over all steps is an associative scan of the pairs ``(a_t, b_t)``
    (Blelloch 1990). ``log_space``: ``coefficients`` returns ``(log a_t, log b_t)``
    of positive ``a_t, b_t``, combined with ``logaddexp`` (Heinsen 2023; minGRU).
    ``recurrent``: the params fields that hold the recurrence's own parameters
    (eigenvalues, decay rates), which the papers train with their own learning
    rate and no weight decay (``optim.recurrent_lr``).

    References:
      Blelloch (1990). Prefix Sums and Their Applications. CMU-CS-90-190.
      Heinsen (2023). Efficient Parallelization of a Ubiquitous Sequential
      Computation. arXiv:2311.06281.
    """

    coefficients: Callable[[Params, Array], tuple[Array, Array]]
    readout: Callable[[Params, Array, Array], Array]
    log_space: bool = False
    recurrent: tuple[str, ...] = ()


class Cell(NamedTuple):
    """A recurrent cell: ``init``, ``initial_carry`` and ``apply``, all pure.

    Two optional declarations give :func:`jaxrnn.scan` faster engines; both must
    describe exactly what ``apply`` computes (``jaxrnn.testing.check_cell`` tests it):

    * ``step``: a :class:`Step`, for the fused engine (hand-structured BPTT,
      ``bptt="fused"``); the built-in Elman, GRU, LSTM and the dropout and zoneout
      wrappers declare one.
    * ``linear``: a :class:`Linear`, for the parallel engine (``mode="parallel"``);
      the linear recurrences (LRU, minGRU, minLSTM, RG-LRU) declare one.

    A cell built as ``Cell(init, initial_carry, apply)`` (a user's cell, ``stack``)
    declares neither and runs as a ``lax.scan`` of ``apply`` differentiated by JAX,
    which is always correct.
    """

    init: Callable[[Array, int], Params]
    initial_carry: Callable[..., Carry]
    apply: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    step: Step | None = None
    linear: Linear | None = None


def apply_step(step: Step, params, carry, x):
    """``apply`` of a cell that declares ``step``:
    ``update(p, c, project(p, c, x), recur(p, c))``."""
    return step.update(params, carry, step.project(params, carry, x), step.recur(params, carry))


def apply_linear(linear: Linear, params, carry, x):
    """``apply`` of a cell that declares ``linear``: one step of ``h_t = a_t ⊙ h_{t-1} + b_t``
    (in linear space, also for a ``log_space`` declaration), then the readout."""
    a, b = linear.coefficients(params, x)
    if linear.log_space:
        a, b = jnp.exp(a), jnp.exp(b)
    h = a * carry.h + b
    return carry._replace(h=h), linear.readout(params, h, x)


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
