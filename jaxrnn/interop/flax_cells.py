"""jaxrnn cells as Flax cells and Flax cells as jaxrnn cells (see :mod:`jaxrnn.interop.flax`).

* :class:`LinenCell` / :class:`NNXCell`: any :class:`jaxrnn.Cell` as a
  ``flax.linen.RNNCellBase`` / ``flax.nnx.RNNCellBase``, for ``nn.RNN`` / ``nnx.RNN``.
* :func:`flax_cell`: any Flax cell with one feature axis as a :class:`jaxrnn.Cell`, for
  :func:`jaxrnn.scan` (masks with holes, ``resets``, ``reverse`` within ``lengths``).

Nothing is converted here: each side keeps the other's params and carries as they are
(a jaxrnn cell's ``LSTMCarry(h, c)`` inside ``nn.RNN``, Flax's ``(c, h)`` under
``jaxrnn.scan``). Import these from :mod:`jaxrnn.interop.flax`.
"""

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import unfreeze
from jax.extend.core import Var

from jaxrnn.cells.base import Cell, check_is_cell, check_positive, describe


def _abstract_params(cell: Cell, input_size: int):
    return jax.eval_shape(lambda k: cell.init(k, input_size), jax.random.key(0))


def _carry_reads_params(cell: Cell, params, batch_shape) -> bool:
    """Whether ``cell.initial_carry``'s value depends on the params' values (a learned
    initial carry) rather than on their dtypes only: a walk of its jaxpr, no compute."""
    closed = jax.make_jaxpr(lambda p: cell.initial_carry(p, batch_shape, key=jax.random.key(0)))
    jaxpr = closed(params).jaxpr
    reached = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        if any(isinstance(v, Var) and v in reached for v in eqn.invars):
            reached.update(eqn.outvars)
    return any(isinstance(v, Var) and v in reached for v in jaxpr.outvars)


class LinenCell(nn.RNNCellBase):
    """A jaxrnn cell as a ``flax.linen.RNNCellBase``, for ``nn.RNN`` and any linen model.

    Its variables are ``{'params': {'cell': params}}`` with ``params`` the jaxrnn cell's
    own (``LSTMParams``...), made by ``cell.init`` on the first call (the input size is
    read from ``x``). Its carry is the jaxrnn cell's (``LSTMCarry(h, c)``, not Flax's
    ``(c, h)``), and ``nn.RNN(LinenCell(cell))`` with ``seq_lengths`` equals
    ``jaxrnn.scan(cell, params, xs, lengths=...)`` at valid steps and in the final carry.

    ``initialize_carry(rng, input_shape)`` cannot see the params, so a cell whose initial
    carry depends on them (:func:`jaxrnn.learned_initial_carry`) raises there: pass
    ``nn.RNN(...)(xs, initial_carry=cell.initial_carry(params, batch_shape))``, or use
    :class:`NNXCell`.

    Attributes:
      cell: any :class:`jaxrnn.Cell` whose steps take ``x: [*batch, I]``.

    Example:
      >>> rnn = nn.RNN(LinenCell(jaxrnn.lstm(64)), return_carry=True)
      >>> variables = rnn.init(key, xs)                   # xs: [B, T, I]
      >>> carry, ys = rnn.apply(variables, xs, seq_lengths=lengths)
    """

    cell: Cell

    def __post_init__(self):
        check_is_cell(self.cell, "cell")
        super().__post_init__()

    @nn.compact
    def __call__(self, carry, x):
        """One step, ``(carry, x) -> (carry, y)``: ``cell.apply(params, carry, x)``."""
        if not hasattr(x, "shape") or jnp.ndim(x) < 1:
            raise ValueError(f"x: expected shape [*batch, I], got {type(x).__name__}")
        params = self.param("cell", lambda key: self.cell.init(key, x.shape[-1]))
        return self.cell.apply(params, carry, x)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        """``cell.initial_carry(params, input_shape[:-1], key=rng)``, for the params' shapes
        and dtypes (their values are not at hand; see the class docstring)."""
        input_shape = tuple(input_shape)
        if not input_shape:
            raise ValueError("input_shape: expected (*batch, I), got ()")
        batch_shape = input_shape[:-1]
        shapes = _abstract_params(self.cell, input_shape[-1])
        if _carry_reads_params(self.cell, shapes, batch_shape):
            raise ValueError(
                "cell: its initial carry depends on its params (jaxrnn.learned_initial_carry), "
                "which Flax's initialize_carry(rng, input_shape) cannot see; pass "
                "initial_carry=cell.initial_carry(params, batch_shape) to nn.RNN, or use NNXCell"
            )
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return self.cell.initial_carry(zeros, batch_shape, key=rng)

    @property
    def num_feature_axes(self) -> int:
        """One feature axis: ``x: [*batch, I]``."""
        return 1


def _values(tree):
    is_variable = lambda v: isinstance(v, nnx.Variable)  # noqa: E731
    return jax.tree.map(lambda v: v[...], tree, is_leaf=is_variable)


class NNXCell(nnx.RNNCellBase):
    """A jaxrnn cell as a ``flax.nnx.RNNCellBase``, for ``nnx.RNN`` and any NNX model.

    Each leaf of the jaxrnn params is an ``nnx.Param`` in ``self.params`` (the same
    NamedTuple, e.g. ``LSTMParams``), so ``nnx.grad`` and NNX optimisers see them; the
    carry is the jaxrnn cell's. Since the params are at hand, ``initialize_carry`` is
    ``cell.initial_carry(params, ...)`` for every cell, learned initial carries included.

    Args:
      cell: any :class:`jaxrnn.Cell` whose steps take ``x: [*batch, I]``.
      in_features: ``I``.
      params: the cell's params for ``in_features`` (e.g. trained ones); default
        ``cell.init(rngs.params(), in_features)``.
      rngs: ``nnx.Rngs``, needed when ``params`` is None.

    Example:
      >>> rnn = nnx.RNN(NNXCell(jaxrnn.gru(64), 8, rngs=nnx.Rngs(0)), return_carry=True)
      >>> carry, ys = rnn(xs, seq_lengths=lengths)       # xs: [B, T, 8]
    """

    def __init__(self, cell: Cell, in_features: int, *, params=None, rngs=None):
        check_is_cell(cell, "cell")
        check_positive("in_features", in_features)
        want = _abstract_params(cell, in_features)
        if params is None:
            if not isinstance(rngs, nnx.Rngs):
                raise TypeError(
                    f"rngs: expected nnx.Rngs to initialise the params, got {type(rngs).__name__}"
                )
            params = cell.init(rngs.params(), in_features)
        elif jax.tree.structure(params) != jax.tree.structure(want) or [
            jnp.shape(x) for x in jax.tree.leaves(params)
        ] != [x.shape for x in jax.tree.leaves(want)]:
            raise ValueError(
                f"params: expected the cell's params for in_features={in_features}, "
                f"{describe(want)}, got {describe(params)}"
            )
        self.cell = cell
        self.in_features = in_features
        self.params = nnx.data(jax.tree.map(nnx.Param, params))

    def param_values(self):
        """The params as the jaxrnn cell's plain NamedTuple (arrays, not ``nnx.Param``)."""
        return _values(self.params)

    def __call__(self, carry, x):
        """One step, ``(carry, x) -> (carry, y)``: ``cell.apply(params, carry, x)``."""
        return self.cell.apply(self.param_values(), carry, x)

    def initialize_carry(self, input_shape, rngs=None, carry_init=None):
        """``cell.initial_carry(params, input_shape[:-1], key=...)``, the key drawn from
        ``rngs`` (its ``carry`` stream) when given; ``carry_init`` is not supported: the
        cell's initial carry is its own (use :func:`jaxrnn.learned_initial_carry`)."""
        if carry_init is not None:
            raise TypeError(
                "carry_init: a jaxrnn cell's initial carry is cell.initial_carry (or "
                f"jaxrnn.learned_initial_carry), so expected None, got {carry_init!r}"
            )
        input_shape = tuple(input_shape)
        if not input_shape:
            raise ValueError("input_shape: expected (*batch, I), got ()")
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        key = None if rngs is None else rngs()
        return self.cell.initial_carry(self.param_values(), input_shape[:-1], key=key)

    @property
    def num_feature_axes(self) -> int:
        """One feature axis: ``x: [*batch, I]``."""
        return 1


# --------------------------------------------------------------- Flax cells in jaxrnn


def _check_x(x, input_size):
    if not hasattr(x, "shape") or jnp.ndim(x) < 1 or x.shape[-1] != input_size:
        raise ValueError(
            f"x: expected shape [*batch, {input_size}] (the Flax cell's input size), "
            f"got {tuple(getattr(x, 'shape', ()))}"
        )


def _linen_input_size(module, variables, dtype) -> int:
    """The input size of ``variables`` (as ``module.init`` made them), found by comparing
    the abstract init at input sizes 1 and 2; the variables are checked against it."""

    def shapes(I):
        def init(key):
            carry = module.initialize_carry(key, (I,))
            return unfreeze(module.init(key, carry, jnp.zeros((I,), dtype)))

        return jax.eval_shape(init, jax.random.key(0))

    one, two = shapes(1), shapes(2)
    if jax.tree.structure(variables) != jax.tree.structure(one):
        raise ValueError(
            f"variables: expected the variables of flax.linen.{type(module).__name__} "
            f"(module.init), {describe(one)}, got {describe(variables)}"
        )
    I = 1
    leaves = (jax.tree.leaves(t) for t in (one, two, variables))
    for a, b, v in zip(*leaves, strict=True):
        if a.shape != b.shape and len(a.shape) == jnp.ndim(v):
            axis = next(d for d, (m, n) in enumerate(zip(a.shape, b.shape, strict=True)) if m != n)
            I = jnp.shape(v)[axis]
            break
    want = shapes(I)
    if [x.shape for x in jax.tree.leaves(want)] != [
        jnp.shape(v) for v in jax.tree.leaves(variables)
    ]:
        raise ValueError(
            f"variables: expected the leaf shapes of flax.linen.{type(module).__name__} at "
            f"input size {I}, {describe(want)}, got {describe(variables)}"
        )
    return I


def flax_cell(module, variables=None):
    """Any Flax cell as a :class:`jaxrnn.Cell`, for :func:`jaxrnn.scan` and the combinators.

    The cell's params are Flax's own (the linen variables, or the NNX module's state) and
    its carry is Flax's (``(c, h)`` for an LSTM): nothing is converted, so any cell with
    one feature axis works (``MGUCell``, a user's cell), and ``jaxrnn.scan`` adds what
    ``nn.RNN`` lacks: masks with holes, ``resets``, ``reverse`` within ``lengths``, ``remat``.

    * ``init(key, input_size)``: linen: ``module.init`` at a fresh carry; NNX: the
      module's own state (an NNX module is initialised when built; ``key`` is unused and
      ``input_size`` must be its ``in_features``).
    * ``initial_carry(params, batch_shape, key=None)``:
      ``module.initialize_carry`` at ``input_shape = (*batch_shape, I)``, with ``key``
      (default ``jax.random.key(0)``: Flax's default zero carry ignores it).
    * ``apply(params, carry, x)``: ``module.apply(params, carry, x)``, or the NNX module
      merged from ``params`` and called. State an NNX module changes in its call (RNG
      counts, batch statistics) is not kept: the step is a pure function of the params.

    Args:
      module: a ``flax.linen.RNNCellBase`` or ``flax.nnx.RNNCellBase`` with
        ``num_feature_axes == 1``.
      variables: for a linen module, its variables from ``module.init`` (checked against
        it; the input size is read from them); for an NNX module, None.

    Returns:
      ``(cell, params)``: the cell, and the params to roll it with (the linen variables
      as plain dicts, or the NNX module's ``nnx.State``; ``jax.grad`` of a loss of
      ``jaxrnn.scan(cell, params, xs)`` is a tree of the same kind).

    Example:
      >>> cell, params = flax_cell(nn.GRUCell(16), variables)
      >>> final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths, resets=resets)
    """
    is_nnx = isinstance(module, nnx.Module)
    base = nnx.RNNCellBase if is_nnx else nn.RNNCellBase
    if not isinstance(module, base):
        raise TypeError(
            "module: expected a flax.linen.RNNCellBase or flax.nnx.RNNCellBase, got "
            f"{type(module).__module__}.{type(module).__name__}"
        )
    if module.num_feature_axes != 1:
        raise ValueError(
            f"module: expected a cell with one feature axis (x: [*batch, I]), got "
            f"{type(module).__name__} with num_feature_axes={module.num_feature_axes}"
        )
    if is_nnx:
        return _nnx_cell(module, variables)
    if variables is None:
        raise TypeError(
            f"variables: expected the variables of the linen {type(module).__name__} "
            "(module.init(key, carry, x)), got None"
        )
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"variables: expected a mapping {{'params': ...}} as module.init returns, "
            f"got {type(variables).__name__}"
        )
    variables = unfreeze(variables)
    dtype = getattr(module, "param_dtype", jnp.float32)
    I = _linen_input_size(module, variables, dtype)

    def init(key, input_size: int):
        check_positive("input_size", input_size)
        k_carry, k_params = jax.random.split(key)
        carry = module.initialize_carry(k_carry, (input_size,))
        return unfreeze(module.init(k_params, carry, jnp.zeros((input_size,), dtype)))

    def initial_carry(params, batch_shape=(), *, key=None):
        key = jax.random.key(0) if key is None else key
        return module.initialize_carry(key, (*batch_shape, I))

    def apply(params, carry, x):
        _check_x(x, I)
        return module.apply(params, carry, x)

    return Cell(init, initial_carry, apply), variables


def _nnx_cell(module, variables):
    if variables is not None:
        raise TypeError(
            "variables: an NNX module holds its own variables, so expected None, got "
            f"{type(variables).__name__}"
        )
    I = getattr(module, "in_features", None)
    if not isinstance(I, int) or isinstance(I, bool) or I <= 0:
        raise TypeError(
            f"module: expected an NNX cell with a positive int in_features (as Flax's cells "
            f"have), got {type(module).__name__} with in_features={I!r}"
        )
    graphdef, state = nnx.split(module)

    def init(key, input_size: int):
        del key  # the module was initialised when it was built
        if input_size != I:
            raise ValueError(
                f"input_size: expected the NNX module's in_features={I} (its variables exist "
                f"already; the last axis of xs?), got {input_size}"
            )
        return state

    def initial_carry(params, batch_shape=(), *, key=None):
        key = jax.random.key(0) if key is None else key
        return nnx.merge(graphdef, params).initialize_carry(
            (*batch_shape, I), rngs=nnx.Rngs(carry=key)
        )

    def apply(params, carry, x):
        _check_x(x, I)
        return nnx.merge(graphdef, params)(carry, x)

    return Cell(init, initial_carry, apply), state
