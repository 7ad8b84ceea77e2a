"""Randomised cell wrappers: variational dropout and zoneout.

Each wrapper returns a :class:`jaxrnn.Cell` whose carry holds the wrapped
cell's carry and a PRNG key. The key comes from ``initial_carry(..., key=k)``
(or ``jaxrnn.scan(..., key=k)``); without a key the wrapper is in evaluation
mode and deterministic. The key is a per-rollout carry leaf: under
``jaxrnn.scan`` masking and resets leave it to the wrapper, so a zoneout key
also advances on masked steps (the wrapped carry itself is unchanged there),
and packed sequences in one row (``resets``) share one dropout mask.

Wrap a deterministic cell (such as ``jaxrnn.lstm`` or a
:func:`jaxrnn.learned_initial_carry` of one): both wrappers read the wrapped
carry's fields by name (``h``, ``c``), which another wrapper's carry lacks.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Cell, Step, check_is_cell
from jaxrnn.cells.references import Reference

GAL_2016 = r"""@inproceedings{gal2016theoretically,
  author = {Gal, Yarin and Ghahramani, Zoubin},
  title = {A Theoretically Grounded Application of Dropout in Recurrent Neural Networks},
  booktitle = {Advances in Neural Information Processing Systems 29},
  pages = {1019--1027},
  year = {2016},
}"""
# What dropout with one mask per sequence (variational_dropout, stack's dropout) cites.
VARIATIONAL = Reference("variational dropout (one mask per sequence)", GAL_2016)


class DropoutCarry(NamedTuple):
    """The carry of :func:`variational_dropout` (Gal & Ghahramani 2016).

    Attributes:
      cell: the wrapped cell's carry.
      key: the PRNG key the masks are drawn from, fixed for the whole sequence (the
        same masks at every step); None: evaluation mode, no dropout.
    """

    cell: Any
    key: jax.Array | None


class ZoneoutCarry(NamedTuple):
    """The carry of :func:`zoneout` (Krueger et al. 2017).

    Attributes:
      cell: the wrapped cell's carry.
      key: the PRNG key, split every step for fresh masks; None: evaluation mode
        (the expectation, no randomness).
    """

    cell: Any
    key: jax.Array | None


def check_rate(name: str, rate: float) -> float:
    """Raise unless ``rate`` is a number in ``[0, 1)``; return it as a float."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {rate!r}")
    return float(rate)


def dropout_mask(key: jax.Array, rate: float, x: jax.Array, *, time_axis: bool = False):
    """Inverted dropout: ``x ⊙ m / (1 - rate)`` with ``m ~ Bernoulli(1 - rate)``.

    ``m`` has shape ``[*batch, D]``; for ``x: [*batch, T, D]`` (``time_axis``) the same
    ``m`` drops the same units at every step, and its bits equal those drawn for one
    step ``[*batch, D]`` with the same key. Dividing by ``1 - rate`` keeps each
    unit's expectation equal to ``x``, so evaluation needs no rescaling
    (Srivastava et al. 2014).
    """
    shape = (*x.shape[:-2], x.shape[-1]) if time_axis else x.shape
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    if time_axis:
        keep = keep[..., None, :]
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


def variational_dropout(cell: Cell, *, input_rate: float = 0.0, state_rate: float = 0.0) -> Cell:
    """Variational (tied-across-time) dropout on a cell's input and recurrent state.

    At every step, with masks ``m_x: [*batch, I]`` and ``m_h: [*batch, H]`` drawn
    once per sequence (the same units are dropped at every step)::

        x̃_t = x_t ⊙ m_x / (1 - input_rate),      m_x ~ Bernoulli(1 - input_rate)
        h̃   = h_{t-1} ⊙ m_h / (1 - state_rate),  m_h ~ Bernoulli(1 - state_rate)
        (carry_t, y_t) = cell.apply(params, carry_{t-1} with h = h̃, x̃_t)

    The masks are redrawn at each step from the same key in the carry
    (``fold_in(key, 0)`` for ``x``, ``fold_in(key, 1)`` for ``h``), which gives
    identical masks without knowing the input size in advance. Only ``h``
    (every built-in carry has it) is dropped; the LSTM's ``c`` is not, as in
    Gal & Ghahramani (2016). Without a key (evaluation) this is the wrapped cell.

    Args:
      cell: the cell to wrap; its carry must have a field ``h`` if ``state_rate > 0``.
      input_rate: probability of dropping each input unit, in ``[0, 1)``.
      state_rate: probability of dropping each unit of ``h``, in ``[0, 1)``.

    Returns:
      A cell with the wrapped cell's params and carry ``DropoutCarry(cell, key)``.

    References:
      Gal, Ghahramani (2016). A Theoretically Grounded Application of Dropout in
      Recurrent Neural Networks. NeurIPS.

    Example:
      >>> cell = jaxrnn.variational_dropout(jaxrnn.lstm(64), input_rate=0.25, state_rate=0.25)
      >>> carry, ys = jaxrnn.scan(cell, params, xs, key=jax.random.key(1))  # training
      >>> carry, ys = jaxrnn.scan(cell, params, xs)                          # evaluation
    """
    check_is_cell(cell)
    input_rate = check_rate("input_rate", input_rate)
    state_rate = check_rate("state_rate", state_rate)

    def initial_carry(params, batch_shape=(), *, key=None) -> DropoutCarry:
        # fold_in(key, 0) and fold_in(key, 1) draw the masks; the wrapped cell gets its own stream.
        inner_key = None if key is None else jax.random.fold_in(key, 2)
        return DropoutCarry(cell.initial_carry(params, batch_shape, key=inner_key), key)

    def dropped(carry: DropoutCarry):
        """The wrapped carry with ``h`` dropped (training, ``state_rate > 0``)."""
        inner = carry.cell
        if state_rate > 0.0 and "h" not in getattr(inner, "_fields", ()):
            raise ValueError(
                f"state_rate: dropping the state needs a carry with a field 'h', got "
                f"{type(inner).__name__} with fields {getattr(inner, '_fields', None)}"
            )
        if carry.key is None or state_rate == 0.0:
            return inner
        return inner._replace(h=dropout_mask(jax.random.fold_in(carry.key, 1), state_rate, inner.h))

    def dropped_input(carry: DropoutCarry, x: jax.Array):
        if carry.key is None or input_rate == 0.0:
            return x
        return dropout_mask(jax.random.fold_in(carry.key, 0), input_rate, x)

    def apply(params, carry: DropoutCarry, x: jax.Array):
        inner, y = cell.apply(params, dropped(carry), dropped_input(carry, x))
        return DropoutCarry(inner, carry.key), y

    # The masks scale x and h by constants of the rollout, so the wrapped cell's
    # projections stay linear and the fused engine applies (a mask drawn again at a
    # step is the same mask: the key is fixed).
    step = None
    if cell.step is not None:
        inner_step = cell.step

        def project(params, carry: DropoutCarry, x):
            return inner_step.project(params, carry.cell, dropped_input(carry, x))

        def recur(params, carry: DropoutCarry):
            return inner_step.recur(params, dropped(carry))

        def update(params, carry: DropoutCarry, u, r):
            inner, y = inner_step.update(params, dropped(carry), u, r)
            return DropoutCarry(inner, carry.key), y

        step = Step(project, recur, update)

    return Cell(cell.init, initial_carry, apply, step)


def zoneout(cell: Cell, rates: float | dict[str, float]) -> Cell:
    """Zoneout: each unit of the state keeps its previous value with probability ``rate``.

    For each zoned carry field ``s`` (``h``, ``c``, ...), with ``s̃_t`` the wrapped
    cell's update::

        training:    s_t = d_t ⊙ s_{t-1} + (1 - d_t) ⊙ s̃_t,   d_t ~ Bernoulli(rate), fresh each step
        evaluation:  s_t = rate · s_{t-1} + (1 - rate) · s̃_t    (the expectation)

    The key in the carry advances by ``jax.random.split`` every step. If the
    wrapped cell outputs its new ``h`` (all built-in cells do), the output is
    the zoned-out ``h``.

    Args:
      cell: the cell to wrap; its carry must be a NamedTuple of arrays.
      rates: one rate in ``[0, 1)`` for every carry field, or a dict per field name,
        e.g. ``{"h": 0.05, "c": 0.5}`` for an LSTM (the paper's best values on
        character-level Penn Treebank); fields not named are not zoned.

    Returns:
      A cell with the wrapped cell's params and carry ``ZoneoutCarry(cell, key)``.

    References:
      Krueger et al. (2017). Zoneout: Regularizing RNNs by Randomly Preserving
      Hidden Activations. ICLR.
    """
    check_is_cell(cell)
    if isinstance(rates, dict):
        rates = {name: check_rate(f"rates[{name!r}]", r) for name, r in rates.items()}
    else:
        rates = check_rate("rates", rates)

    def field_rates(inner) -> dict[str, float]:
        fields = getattr(inner, "_fields", None)
        if fields is None:
            raise TypeError(
                f"zoneout: expected the wrapped carry to be a NamedTuple, got {type(inner)}"
            )
        if not isinstance(rates, dict):
            return dict.fromkeys(fields, rates)
        for name in rates:
            if name not in fields:
                raise ValueError(
                    f"rates: expected keys among the carry's fields {fields}, got {name!r}"
                )
        return rates

    def initial_carry(params, batch_shape=(), *, key=None) -> ZoneoutCarry:
        if key is None:
            inner = cell.initial_carry(params, batch_shape)
        else:
            inner_key, key = jax.random.split(key)
            inner = cell.initial_carry(params, batch_shape, key=inner_key)
        field_rates(inner)  # unknown field names fail here, before any compute
        return ZoneoutCarry(inner, key)

    def keeps(carry: ZoneoutCarry):
        """This step's masks ``d_t`` (True: keep the old unit), by field; None in evaluation."""
        if carry.key is None:
            return None
        step_key = jax.random.split(carry.key)[1]
        masks = {}
        for i, (name, rate) in enumerate(field_rates(carry.cell).items()):
            shape = getattr(carry.cell, name).shape
            masks[name] = jax.random.bernoulli(jax.random.fold_in(step_key, i), rate, shape)
        return masks

    def zone(carry: ZoneoutCarry, new, y, keep):
        """The step's result with the zoned fields: ``(ZoneoutCarry, y)``."""
        prev = carry.cell
        zoned = {}
        for name, rate in field_rates(prev).items():
            s_prev, s_new = getattr(prev, name), getattr(new, name)
            if keep is None:
                zoned[name] = rate * s_prev + (1.0 - rate) * s_new
            else:
                zoned[name] = jnp.where(keep[name], s_prev, s_new)
        # Identity, not equality: only a cell that returns its new h as the output
        # (y_t = h_t) gets the zoned h as output; any other output is left alone.
        if "h" in zoned and y is new.h:
            y = zoned["h"]
        key = None if carry.key is None else jax.random.split(carry.key)[0]
        return ZoneoutCarry(new._replace(**zoned), key), y

    def apply(params, carry: ZoneoutCarry, x: jax.Array):
        return zone(carry, *cell.apply(params, carry.cell, x), keeps(carry))

    # Zoneout mixes the wrapped cell's old and new state row by row: it is part of the
    # update, and the wrapped cell's projections are the fused engine's. The masks are
    # drawn with the input projection, which depends on no earlier step, so the engine
    # saves them with it and its backward pass never draws them again (drawing them
    # again at every backward step took 136 ms instead of 105 at (8, 1000, 16, 64)).
    step = None
    if cell.step is not None:
        inner_step = cell.step
        step = Step(
            lambda params, carry, x: (inner_step.project(params, carry.cell, x), keeps(carry)),
            lambda params, carry: inner_step.recur(params, carry.cell),
            lambda params, carry, u, r: zone(
                carry, *inner_step.update(params, carry.cell, u[0], r), u[1]
            ),
        )

    return Cell(cell.init, initial_carry, apply, step)
