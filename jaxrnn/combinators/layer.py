"""Sequence-level layers: a cell rolled over a whole sequence, and what needs one.

A cell works step by step; a bidirectional RNN needs the whole sequence, and so
does a stack of them. A :class:`Layer` is a NamedTuple of two pure functions::

    layer.init(key, input_size)                                    -> params
    layer.apply(params, xs, *, carry=None, lengths=None, mask=None,
                resets=None, key=None)                             -> (final_carry, ys)

with batch-major ``xs: [*batch, T, I]`` and ``ys: [*batch, T, O]``; ``lengths``,
``mask``, ``resets`` and ``key`` mean exactly what they mean in
:func:`jaxrnn.scan`, which every layer here delegates to.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Cell, check_bool, check_is_cell, probe_dtype
from jaxrnn.cells.references import Reference
from jaxrnn.combinators.dropout import check_rate
from jaxrnn.combinators.stack import (
    StackParams,
    init_layers,
    layer_input,
    layer_output,
    split_key,
)
from jaxrnn.rollout.scan import check_remat, scan

SCHUSTER_1997 = r"""@article{schuster1997bidirectional,
  author = {Schuster, Mike and Paliwal, Kuldip K.},
  title = {Bidirectional Recurrent Neural Networks},
  journal = {IEEE Transactions on Signal Processing},
  volume = {45},
  number = {11},
  pages = {2673--2681},
  year = {1997},
  doi = {10.1109/78.650093},
}"""
# What a bidirectional() layer cites.
BIDIRECTIONAL = Reference("bidirectional RNN", SCHUSTER_1997)

Array = jax.Array


class Layer(NamedTuple):
    """A sequence-level layer: ``init`` and ``apply``, both pure."""

    init: Callable[[Array, int], Any]
    apply: Callable[..., tuple[Any, Array]]


class BidirectionalParams(NamedTuple):
    """The params of a :func:`bidirectional` layer, one set per direction.

    Attributes:
      forward: the forward cell's params.
      backward: the backward cell's params.
    """

    forward: Any
    backward: Any


class BidirectionalCarry(NamedTuple):
    """The carry of a :func:`bidirectional` layer, one per direction.

    As the initial ``carry`` argument of ``apply``, an entry None means that
    direction's default initial carry.

    Attributes:
      forward: the forward cell's carry; final: after each sequence's last valid step.
      backward: the backward cell's carry; final: after each sequence's first step.
    """

    forward: Any
    backward: Any


def rnn(
    cell: Cell, *, reverse: bool = False, unroll: int | bool = 1, remat: int | str | None = None
) -> Layer:
    """Lift a cell to a layer: ``apply`` is :func:`jaxrnn.scan` over the time axis.

    Args:
      cell: any :class:`jaxrnn.Cell`; the layer's params are the cell's, unchanged.
      reverse: read each sequence backwards (within its own length, see ``jaxrnn.scan``).
      unroll: passed to ``jax.lax.scan``.
      remat: segment checkpointing for long sequences (``k`` steps, ``"sqrt"`` or
        None), see ``jaxrnn.scan``.

    Returns:
      A :class:`Layer` whose final carry is the cell's.
    """
    check_is_cell(cell)
    reverse = check_bool("reverse", reverse)
    check_remat(remat)

    def apply(params, xs, *, carry=None, lengths=None, mask=None, resets=None, key=None):
        return scan(
            cell,
            params,
            xs,
            carry,
            lengths=lengths,
            mask=mask,
            resets=resets,
            reverse=reverse,
            unroll=unroll,
            remat=remat,
            key=key,
        )

    return Layer(cell.init, apply)


def _concat(y_fw, y_bw):
    return jnp.concatenate([y_fw, y_bw], axis=-1)


def _sum(y_fw, y_bw):
    return y_fw + y_bw


def _mean(y_fw, y_bw):
    return (y_fw + y_bw) / 2


MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": _concat,
    "sum": _sum,
    "mean": _mean,
}


def bidirectional(
    forward: Cell,
    backward: Cell | None = None,
    *,
    merge: str | Callable[[Array, Array], Array] = "concat",
    remat: int | str | None = None,
) -> Layer:
    """A bidirectional RNN: one cell reads each sequence forwards, another backwards.

    ::

        (c_fw, y_fw) = scan(forward,  p_fw, xs, lengths=..., mask=..., resets=...)
        (c_bw, y_bw) = scan(backward, p_bw, xs, lengths=..., mask=..., resets=..., reverse=True)
        ys = merge(y_fw, y_bw)

    The backward direction reads each padded sequence reversed *within its own
    length*, as Flax's ``Bidirectional`` does: ``y_bw[t]`` depends on the valid
    steps ``t, ..., length-1`` only, and with a holey ``mask`` the backward cell
    runs over the reversed valid steps. With ``resets`` (packed sequences),
    each packed sequence is read backwards on its own. Outputs at masked steps
    are zero in both directions.

    Args:
      forward: the forward cell.
      backward: the backward cell; default ``forward``'s architecture with its own params.
      merge: ``"concat"`` (forward first, along the last axis), ``"sum"``,
        ``"mean"``, or a callable ``(y_fw, y_bw) -> y``.
      remat: segment checkpointing of both directions (``k`` steps, ``"sqrt"`` or
        None), see ``jaxrnn.scan``.

    Returns:
      A :class:`Layer` with params ``BidirectionalParams(forward, backward)`` and final
      carry ``BidirectionalCarry(forward, backward)``; its ``carry`` argument, if
      given, is a ``BidirectionalCarry`` (either entry None: the default).

    References:
      Schuster, Paliwal (1997). Bidirectional Recurrent Neural Networks. IEEE
      Transactions on Signal Processing 45(11).
      Graves, Schmidhuber (2005). Framewise phoneme classification with
      bidirectional LSTM and other neural network architectures. Neural Networks.

    Example:
      >>> layer = jaxrnn.bidirectional(jaxrnn.lstm(32))
      >>> params = layer.init(jax.random.key(0), input_size=8)
      >>> carry, ys = layer.apply(params, xs, lengths=lengths)   # ys: [B, T, 64]
    """
    check_is_cell(forward, "forward")
    backward = forward if backward is None else check_is_cell(backward, "backward")
    if not callable(merge):
        if merge not in MERGES:
            raise ValueError(
                f"merge: expected one of {sorted(MERGES)} or a callable, got {merge!r}"
            )
        merge_name, merge = merge, MERGES[merge]
    else:
        merge_name = None
    fw_layer, bw_layer = rnn(forward, remat=remat), rnn(backward, reverse=True, remat=remat)

    def init(key, input_size: int) -> BidirectionalParams:
        k_fw, k_bw = jax.random.split(key)
        return BidirectionalParams(forward.init(k_fw, input_size), backward.init(k_bw, input_size))

    def apply(params, xs, *, carry=None, lengths=None, mask=None, resets=None, key=None):
        if carry is None:
            carry = BidirectionalCarry(None, None)
        elif not isinstance(carry, BidirectionalCarry):
            raise TypeError(
                f"carry: expected a BidirectionalCarry(forward, backward), got {type(carry)}"
            )
        k_fw, k_bw = (None, None) if key is None else jax.random.split(key)
        c_fw, y_fw = fw_layer.apply(
            params.forward, xs, carry=carry.forward, lengths=lengths, mask=mask, resets=resets,
            key=k_fw,
        )  # fmt: skip
        c_bw, y_bw = bw_layer.apply(
            params.backward, xs, carry=carry.backward, lengths=lengths, mask=mask, resets=resets,
            key=k_bw,
        )  # fmt: skip
        if merge_name in ("sum", "mean") and y_fw.shape != y_bw.shape:
            raise ValueError(
                f"merge: {merge_name!r} needs equal output sizes in both directions, got "
                f"forward {y_fw.shape[-1]} and backward {y_bw.shape[-1]}"
            )
        return BidirectionalCarry(c_fw, c_bw), merge(y_fw, y_bw)

    return Layer(init, apply)


def stack_layers(*layers: Layer | Cell, residual: bool = False, dropout: float = 0.0) -> Layer:
    """A deep network run layer by layer, each over the whole sequence.

    The same network as :func:`jaxrnn.stack` (the same dropout masks, bit for bit,
    for the same cells, params and key), but each layer sees the whole sequence, so layers may be
    bidirectional::

        x_0 = xs
        x_l = drop_l(ys_{l-1})                        for l >= 1
        (c_l, ys_l) = layer_l.apply(p_l, x_l, lengths=..., mask=..., resets=...)
        ys_l = ys_l + ys_{l-1}                        for l >= 1, if residual

    Dropout uses one mask per sequence, ``bernoulli(fold_in(k, l), 1 - dropout,
    [*batch, D])`` for the boundary before layer ``l``, scaled by ``1 / (1 - dropout)``,
    the same at every time step; it is only active when ``apply`` gets a key.

    Args:
      *layers: :class:`Layer` s, or :class:`jaxrnn.Cell` s (lifted with :func:`rnn`),
        bottom first.
      residual: add each layer's input to its output (every layer after the
        first; sizes must match). The residual path skips the dropout.
      dropout: rate in ``[0, 1)`` on the input of every layer after the first
        (never on the final output).

    Returns:
      A :class:`Layer` with params ``StackParams(layers)``; the final carry is a tuple
      with one entry per layer, and so is the ``carry`` argument (an entry None: the
      default).

    References:
      Graves, Mohamed, Hinton (2013). Speech Recognition with Deep Recurrent
      Neural Networks. ICASSP (deep bidirectional LSTMs).
      Gal, Ghahramani (2016). A Theoretically Grounded Application of Dropout in
      Recurrent Neural Networks. NeurIPS.

    Example:
      >>> net = jaxrnn.stack_layers(jaxrnn.bidirectional(jaxrnn.lstm(32)),
      ...                           jaxrnn.bidirectional(jaxrnn.lstm(32)), dropout=0.3)
      >>> params = net.init(jax.random.key(0), input_size=8)
      >>> carries, ys = net.apply(params, xs, lengths=lengths, key=jax.random.key(1))
    """
    if not layers:
        raise ValueError("layers: expected at least one Layer or Cell, got none")
    lifted = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Cell):
            layer = rnn(layer)
        elif not isinstance(layer, Layer):
            raise TypeError(
                f"layers[{i}]: expected a jaxrnn.Layer or jaxrnn.Cell, got {type(layer).__name__}"
            )
        lifted.append(layer)
    layers = tuple(lifted)
    dropout = check_rate("dropout", dropout)

    def output_size(l, params, input_size):
        xs = jax.ShapeDtypeStruct((1, input_size), probe_dtype(params))
        _, ys = jax.eval_shape(lambda xs: layers[l].apply(params, xs), xs)
        return ys.shape[-1]

    def init(key, input_size: int) -> StackParams:
        return init_layers(key, input_size, tuple(la.init for la in layers), output_size, residual)

    def apply(params, xs, *, carry=None, lengths=None, mask=None, resets=None, key=None):
        if carry is None:
            carry = (None,) * len(layers)
        elif not isinstance(carry, tuple) or len(carry) != len(layers):
            raise ValueError(
                f"carry: expected a tuple with one entry per layer ({len(layers)}), got {carry!r}"
            )
        between, keys = split_key(key, len(layers))
        ys, finals = xs, []
        for l, (layer, p, c, k) in enumerate(zip(layers, params.layers, carry, keys, strict=True)):
            x = layer_input(ys, l, dropout=dropout, key=between, time_axis=True)
            c, out = layer.apply(p, x, carry=c, lengths=lengths, mask=mask, resets=resets, key=k)
            ys = layer_output(out, ys, l, residual=residual)
            finals.append(c)
        return tuple(finals), ys

    return Layer(init, apply)
