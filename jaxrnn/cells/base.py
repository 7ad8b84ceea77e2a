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
import numpy as np

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


def check_is_cell(cell, name: str = "cell") -> Cell:
    """Return ``cell`` if it is a :class:`Cell`, else raise a ``TypeError`` naming ``name``
    and what was given (with a hint for a sequence-level layer, ``jaxrnn.Layer``)."""
    if isinstance(cell, Cell):
        return cell
    hint = ""
    if callable(getattr(cell, "apply", None)) and not hasattr(cell, "initial_carry"):
        # A Layer (jaxrnn.rnn, bidirectional, stack_layers): it has init and apply too.
        hint = "; a layer runs over the whole sequence itself: call its apply(params, xs)"
    raise TypeError(f"{name}: expected a jaxrnn.Cell, got {type(cell).__name__}{hint}")


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is True or False, else raise ``TypeError``: a flag given
    as ``"no"`` or ``0`` would otherwise be read by its truthiness."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_array(name: str, value, expected: str, *, scalars: bool = False):
    """Return ``value`` if it is a JAX or NumPy array (or, with ``scalars``, a Python
    int), else raise ``TypeError`` naming ``name``, the ``expected`` array and what was
    given. Lists and strings are refused, as ``jax.numpy`` functions refuse them."""
    scalar = scalars and isinstance(value, int) and not isinstance(value, bool)
    if not (isinstance(value, jax.Array | np.ndarray | np.generic) or scalar):
        raise TypeError(f"{name}: expected {expected}, got {_kind_of(value)}")
    return value


def _kind_of(value) -> str:
    """``type value`` for a message, the value cut short (an ``xs`` given as a list)."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:60] + ' ...'}"


def describe(tree) -> str:
    """A pytree with each array leaf shown as ``dtype[shape]``, for error messages:
    ``LSTMParams(W_xh='float32[3, 16]', W_hh='float32[4, 16]', b='float32[16]')``."""
    return str(jax.tree.map(_leaf, tree))


def _leaf(x) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{x.dtype}{list(x.shape)}"
    return type(x).__name__


def check_params(cell: Cell, params, input_size: int) -> None:
    """Raise unless ``params`` has the tree structure and leaf shapes of
    ``cell.init(key, input_size)``: the params of another kind of cell, or of another
    hidden size, or None, are named here instead of failing inside the cell's equations.

    Runs ``cell.init`` abstractly (``jax.eval_shape``, no compute); under ``jit`` it
    runs once, at trace time. Leaves that differ only where the input size enters
    (``W_xh``'s rows) are left to the cell's input check, which knows whether ``xs``
    or the params are at fault (:func:`check_input` names ``x``).
    """
    if params is None:
        raise TypeError(
            f"params: expected the cell's params (cell.init(key, input_size={input_size})), "
            f"got None"
        )
    key = jax.eval_shape(jax.random.key, 0)
    want = jax.eval_shape(lambda k: cell.init(k, input_size), key)
    if jax.tree.structure(params) != jax.tree.structure(want):
        raise ValueError(
            f"params: expected the params of this cell, {describe(want)} (cell.init(key, "
            f"input_size={input_size})), got {describe(params)}"
        )
    have = jax.tree_util.tree_flatten_with_path(params)[0]
    wants = jax.tree.leaves(want)
    bad = [
        (path, np.shape(x), w.shape)
        for (path, x), w in zip(have, wants, strict=True)
        if np.shape(x) != w.shape
    ]
    if not bad:
        return
    other = jax.tree.leaves(jax.eval_shape(lambda k: cell.init(k, input_size + 1), key))
    by_input = {
        jax.tree_util.keystr(path)
        for (path, _), w, o in zip(have, wants, other, strict=True)
        if w.shape != o.shape
    }
    if all(jax.tree_util.keystr(path) in by_input for path, _, _ in bad):
        return  # only the input size differs: the cell's check_input names x
    shown = "; ".join(
        f"params{jax.tree_util.keystr(path)} {list(got)} (expected {list(w)})"
        for path, got, w in bad
    )
    raise ValueError(
        f"params: expected the leaf shapes of this cell's init(key, input_size={input_size}) "
        f"(another hidden size?), got {shown}"
    )


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
    """Raise if ``carry`` differs from ``expected`` in tree structure, leaf shapes or
    leaf kinds (floating, integer, bool, PRNG key): an integer carry would otherwise
    fail inside the cell's nonlinearities with an error that does not name it."""
    got = jax.tree.structure(carry)
    want = jax.tree.structure(expected)
    if got != want:
        raise ValueError(f"{name}: expected a pytree with structure {want}, got {got}")
    got_shapes = [tuple(x.shape) for x in jax.tree.leaves(carry)]
    want_shapes = [tuple(x.shape) for x in jax.tree.leaves(expected)]
    if got_shapes != want_shapes:
        raise ValueError(f"{name}: expected leaf shapes {want_shapes}, got {got_shapes}")
    paths = jax.tree_util.tree_flatten_with_path(carry)[0]
    wrong = [
        f"{name}{jax.tree_util.keystr(path)} {x.dtype} (expected {_dtype_kind(w.dtype)}, "
        f"like {w.dtype})"
        for (path, x), w in zip(paths, jax.tree.leaves(expected), strict=True)
        if _dtype_kind(x.dtype) != _dtype_kind(w.dtype)
    ]
    if wrong:
        raise TypeError(f"{name}: expected the dtypes of the cell's carry, got " + "; ".join(wrong))


def _dtype_kind(dtype) -> str:
    """The kind of dtype a carry leaf must keep: float32 and float64 (or complex, for
    the LRU's state) are the same kind, an integer is not."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return "a PRNG key"
    if jnp.issubdtype(dtype, jnp.inexact):
        return "floating"
    if jnp.issubdtype(dtype, jnp.integer):
        return "integer"
    return str(dtype)


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
