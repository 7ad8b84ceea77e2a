"""Deep RNNs as one cell: ``stack`` (Haiku's ``DeepRNN``).

At each time step layer ``l`` reads layer ``l-1``'s output::

    x_0 = x_t
    x_l = drop_l(y_{l-1})                         for l >= 1
    (c_l, y_l) = cell_l.apply(p_l, c_l, x_l)
    y_l = y_l + y_{l-1}                           for l >= 1, if residual
    y_t = y_{L-1}

The between-layer rules (variational dropout, residual connections) are the
helpers :func:`layer_input` and :func:`layer_output`, shared with
:func:`jaxrnn.stack_layers`, which runs the same network layer by layer over
the whole sequence. For the same params and key the two draw bit-identical
dropout masks, so they give the same results (up to the last-ulp rounding
differences XLA may make between the two differently fused programs).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax

from jaxrnn.cells.base import Cell, check_is_cell, step_output
from jaxrnn.cells.references import Reference
from jaxrnn.combinators.dropout import check_rate, dropout_mask

HE_2016 = r"""@inproceedings{he2016deep,
  author = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  title = {Deep Residual Learning for Image Recognition},
  booktitle = {Proceedings of the {IEEE} Conference on Computer Vision and Pattern Recognition
    ({CVPR})},
  pages = {770--778},
  year = {2016},
  doi = {10.1109/CVPR.2016.90},
}"""
# What residual connections between layers (residual=True) cite.
RESIDUAL = Reference("residual connections between layers", HE_2016)


class StackParams(NamedTuple):
    """The params of a deep network (:func:`stack`, :func:`jaxrnn.stack_layers`).

    Attributes:
      layers: one entry per layer, bottom first: that layer's params.
    """

    layers: tuple


class StackCarry(NamedTuple):
    """The carry of a :func:`stack` cell.

    Attributes:
      layers: one entry per layer, bottom first: that layer's carry.
      key: the PRNG key of the between-layer dropout masks, fixed for the whole
        sequence; None: no dropout (``dropout=0``, or evaluation without a key).
    """

    layers: tuple
    key: jax.Array | None


def split_key(key: jax.Array | None, num_layers: int):
    """``(between_key, layer_keys)``: the dropout key between layers, and one key per layer.

    Two independent streams, so that a layer's own randomness (a dropout cell)
    never reuses the bits of the between-layer masks.
    """
    if key is None:
        return None, (None,) * num_layers
    between, layers = jax.random.split(key)
    return between, tuple(jax.random.fold_in(layers, l) for l in range(num_layers))


def layer_input(y_prev: jax.Array, l: int, *, dropout: float, key, time_axis: bool = False):
    """The input of layer ``l``: the previous layer's output, with variational dropout.

    For ``l >= 1`` and a key, the units of ``y_prev`` are dropped with the mask
    ``bernoulli(fold_in(key, l), 1 - dropout, [*batch, D])``, scaled by
    ``1 / (1 - dropout)``: one mask per sequence, the same at every time step
    (Gal & Ghahramani 2016). Layer 0 reads the raw input; no key: no dropout.

    Args:
      y_prev: ``[*batch, D]`` (one step), or ``[*batch, T, D]`` if ``time_axis``.
      l: the index of the layer that reads the result.
      dropout: rate in ``[0, 1)``.
      key: the between-layer key (see :func:`split_key`), or None.
      time_axis: whether ``y_prev`` has a time axis (one mask for all its steps).
    """
    if l == 0 or key is None or dropout == 0.0:
        return y_prev
    return dropout_mask(jax.random.fold_in(key, l), dropout, y_prev, time_axis=time_axis)


def check_residual(l: int, input_size: int, output_size: int) -> None:
    """Raise unless layer ``l``'s input and output sizes match, as its residual connection needs."""
    if input_size != output_size:
        raise ValueError(
            f"residual: layer {l} adds its input to its output, so both need the same size; "
            f"got input size {input_size} and output size {output_size}"
        )


def layer_output(y: jax.Array, y_prev: jax.Array, l: int, *, residual: bool) -> jax.Array:
    """Layer ``l``'s output ``y``, plus its (undropped) input ``y_prev`` if ``residual``.

    The residual path skips the dropout, so only what the layer reads is noised.
    Layer 0 has no residual connection (its input size is the data's).
    """
    if not residual or l == 0:
        return y
    check_residual(l, y_prev.shape[-1], y.shape[-1])
    return y + y_prev


def init_layers(
    key: jax.Array,
    input_size: int,
    inits: tuple[Callable, ...],
    output_size: Callable[[int, object, int], int],
    residual: bool,
) -> StackParams:
    """Initialise layer after layer, each with the previous layer's output size.

    ``output_size(l, params_l, input_size_l)`` returns layer ``l``'s output size.
    """
    keys = jax.random.split(key, len(inits))
    layers, size = [], input_size
    for l, (init, k) in enumerate(zip(inits, keys, strict=True)):
        params = init(k, size)
        out = output_size(l, params, size)
        if residual and l > 0:
            check_residual(l, size, out)
        layers.append(params)
        size = out
    return StackParams(tuple(layers))


def stack(*cells: Cell, residual: bool = False, dropout: float = 0.0) -> Cell:
    """Stack cells into one deep cell: at each step layer ``l`` reads layer ``l-1``.

    Usable wherever a cell is (:func:`jaxrnn.scan`, step-by-step decoding). For
    a deep *bidirectional* network, which needs each layer over the whole
    sequence, use :func:`jaxrnn.stack_layers`.

    Args:
      *cells: the layers, bottom first.
      residual: add each layer's input to its output (every layer after the
        first; sizes must match).
      dropout: variational dropout rate in ``[0, 1)`` on the input of every layer
        after the first (never on the final output), one mask per sequence. Only
        active when ``initial_carry`` (or ``jaxrnn.scan``) gets a key.

    Returns:
      A cell with params ``StackParams(layers)`` and carry ``StackCarry(layers, key)``;
      ``key`` is None without dropout or without a key.

    References:
      Graves, Mohamed, Hinton (2013). Speech Recognition with Deep Recurrent
      Neural Networks. ICASSP (stacked RNNs).
      Gal, Ghahramani (2016). A Theoretically Grounded Application of Dropout in
      Recurrent Neural Networks. NeurIPS.
      Wu et al. (2016). Google's Neural Machine Translation System. arXiv:1609.08144
      (residual connections between stacked LSTM layers).

    Example:
      >>> cell = jaxrnn.stack(jaxrnn.lstm(64), jaxrnn.lstm(64), residual=True, dropout=0.3)
      >>> params = cell.init(jax.random.key(0), input_size=16)
      >>> carry, ys = jaxrnn.scan(cell, params, xs, key=jax.random.key(1))  # ys: [B, T, 64]
    """
    if not cells:
        raise ValueError("cells: expected at least one cell, got none")
    for i, c in enumerate(cells):
        check_is_cell(c, f"cells[{i}]")
    dropout = check_rate("dropout", dropout)

    def output_size(l, params, input_size):
        return step_output(cells[l], params, input_size).shape[-1]

    def init(key, input_size: int) -> StackParams:
        return init_layers(key, input_size, tuple(c.init for c in cells), output_size, residual)

    def initial_carry(params: StackParams, batch_shape=(), *, key=None) -> StackCarry:
        between, keys = split_key(key, len(cells))
        layers = tuple(
            cell.initial_carry(p, batch_shape, key=k)
            for cell, p, k in zip(cells, params.layers, keys, strict=True)
        )
        return StackCarry(layers, between if dropout > 0.0 else None)

    def apply(params: StackParams, carry: StackCarry, x: jax.Array):
        y, new = x, []
        for l, (cell, p, c) in enumerate(zip(cells, params.layers, carry.layers, strict=True)):
            c, out = cell.apply(p, c, layer_input(y, l, dropout=dropout, key=carry.key))
            y = layer_output(out, y, l, residual=residual)
            new.append(c)
        return StackCarry(tuple(new), carry.key), y

    return Cell(init, initial_carry, apply)
