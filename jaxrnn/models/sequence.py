"""Sequence models: a recurrent cell plus a linear readout.

A :class:`Model` is a NamedTuple of pure functions, like a cell:
``init(key, input_size=None) -> params`` and
``apply(params, xs, *, mask=None, key=None) -> outputs``. A model built with an
``input_size`` initialises from a key alone (``init(key)``), as the training
runner calls it.

* :func:`many_to_one` — one output per sequence (classification/regression) from
  the output at the last valid step, or pooled over the valid steps;
* :func:`many_to_many` — one output per step (tagging, language modelling);
* :func:`embedded` — either of them over token ids, through a learned embedding;
* :func:`one_to_many` — a token sequence generated from one input vector.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers
from jaxrnn.cells.base import Cell, check_is_cell, check_positive, probe_dtype
from jaxrnn.combinators.layer import Layer
from jaxrnn.combinators.layer import rnn as layer_of
from jaxrnn.models.heads import (
    Embedding,
    Linear,
    bridge,
    bridge_init,
    embed,
    embedding_init,
    linear,
)
from jaxrnn.rollout.scan import scan


class ModelParams(NamedTuple):
    """The params of a :class:`Model`: a recurrent cell and a linear readout.

    Attributes:
      cell: the cell's params (a layer's, for a model over a :class:`jaxrnn.Layer`).
      readout: ``W: [H, O]``, ``b: [O]``, from the cell's output (size ``H``) to the outputs.
    """

    cell: Any
    readout: Linear


class Model(NamedTuple):
    """``init(key, input_size=None) -> params``; ``apply(params, xs, *, mask=None, key=None)``."""

    init: Callable[..., ModelParams]
    apply: Callable[..., jax.Array]


def bound_input_size(given: int | None, bound: int | None) -> int:
    """The input size of a model's ``init``: the one passed, else the one the model was
    built with (an error if neither, or if they disagree)."""
    if given is None and bound is None:
        raise ValueError(
            "input_size: expected init(key, input_size), or a model built with input_size=..."
        )
    if given is not None and bound is not None and given != bound:
        raise ValueError(f"input_size: the model was built for {bound}, got {given}")
    return check_positive("input_size", given if given is not None else bound)


def _readout_init(key, layer: Layer, params, input_size: int, output_size: int) -> Linear:
    # The layer's output width, from one step of one sequence (no compute).
    xs = jax.ShapeDtypeStruct((1, 1, input_size), probe_dtype(params))
    y = jax.eval_shape(lambda xs: layer.apply(params, xs)[1], xs)
    return Linear(
        W=initializers.glorot_uniform()(key, (y.shape[-1], output_size), y.dtype),
        b=jnp.zeros((output_size,), y.dtype),
    )


def _as_layer(rnn: Cell | Layer, remat: int | str | None) -> Layer:
    """A cell rolled by ``jaxrnn.scan`` (its params unchanged), or a layer as it is."""
    if not isinstance(rnn, Layer):
        return layer_of(check_is_cell(rnn, "cell"), remat=remat)
    if remat is not None:
        raise ValueError(
            "remat: a jaxrnn.Layer is built with its own (bidirectional(..., remat=k)); "
            f"expected None with a layer, got {remat!r}"
        )
    return rnn


def _model(
    rnn: Cell | Layer,
    output_size: int,
    head: Callable,
    remat: int | str | None,
    input_size: int | None,
) -> Model:
    layer = _as_layer(rnn, remat)
    check_positive("output_size", output_size)
    built = input_size if input_size is None else check_positive("input_size", input_size)

    def init(key, input_size: int | None = None) -> ModelParams:
        input_size = bound_input_size(input_size, built)
        k_cell, k_out = jax.random.split(key)
        cell_params = layer.init(k_cell, input_size)
        return ModelParams(
            cell_params, _readout_init(k_out, layer, cell_params, input_size, output_size)
        )

    def apply(params: ModelParams, xs: jax.Array, *, mask=None, key=None) -> jax.Array:
        _, ys = layer.apply(params.cell, xs, mask=mask, key=key)
        return head(params.readout, ys, mask)

    return Model(init, apply)


def many_to_one(
    cell: Cell | Layer,
    output_size: int,
    *,
    pooling: str = "last",
    remat: int | str | None = None,
    input_size: int | None = None,
) -> Model:
    """Classify or regress a whole sequence.

    Args:
      cell: the recurrent cell (any :class:`jaxrnn.Cell`, e.g. a ``jaxrnn.stack``), or
        a :class:`jaxrnn.Layer` such as ``jaxrnn.bidirectional(jaxrnn.gru(64))``.
      output_size: ``O``.
      pooling: ``"last"`` — the output at each sequence's last valid step (where a
        bidirectional layer's backward half has read one step only: pool it);
        ``"mean"`` / ``"max"`` — pooled over the valid steps. A sequence with no
        valid step pools to zeros (its output is the readout bias).
      remat: segment checkpointing of the rollout for long sequences (``k`` steps,
        ``"sqrt"`` or None), see ``jaxrnn.scan``; a layer takes its own instead.
      input_size: ``I``, so that ``init(key)`` needs no size; None: ``init(key, I)``.

    Returns:
      A model whose ``apply(params, xs: [B, T, I], mask=[B, T])`` gives ``[B, O]``.
    """
    if pooling not in ("last", "mean", "max"):
        raise ValueError(f"pooling: expected 'last', 'mean' or 'max', got {pooling!r}")

    def head(readout, ys, mask):
        T = ys.shape[-2]
        if mask is None:
            mask = jnp.ones(ys.shape[:-1], bool)
        if pooling == "last":
            # Index of the last True step; the rollout already zeroed the masked outputs.
            last = T - 1 - jnp.argmax(jnp.flip(mask, axis=-1), axis=-1)
            pooled = jnp.take_along_axis(ys, last[..., None, None], axis=-2)[..., 0, :]
        elif pooling == "mean":
            w = mask.astype(ys.dtype)[..., None]
            pooled = jnp.sum(ys * w, axis=-2) / jnp.maximum(jnp.sum(w, axis=-2), 1.0)
        else:
            pooled = jnp.max(jnp.where(mask[..., None], ys, -jnp.inf), axis=-2)
            # A sequence with no valid step pools to 0 (as "mean" does), not -inf.
            pooled = jnp.where(jnp.any(mask, axis=-1)[..., None], pooled, 0.0)
        return linear(readout, pooled)

    return _model(cell, output_size, head, remat, input_size)


class EmbeddedParams(NamedTuple):
    """The params of :func:`embedded`.

    Attributes:
      embedding: ``table: [V, E]``, one learned vector per token id.
      model: the params of the model that reads the vectors.
    """

    embedding: Embedding
    model: Any


def embedded(model: Model, vocab_size: int, embedding_size: int, *, dtype=jnp.float32) -> Model:
    """A model over token ids: each id is looked up in a learned ``[V, E]`` table and the
    vectors are read by ``model``::

        apply(params, tokens [B, T] int, mask=, key=) = model.apply(params.model, E[tokens], ...)

    equal to feeding ``one_hot(tokens) @ E``, without the ``[B, T, V]`` one-hot. The
    table starts as :func:`jaxrnn.models.heads.embedding_init` (N(0, 1)); its gradient
    reaches only the rows of the ids a batch holds.

    Args:
      model: a :class:`Model` built for ``E`` inputs (or without an input size).
      vocab_size: ``V``, the number of ids, padding included.
      embedding_size: ``E``.
      dtype: the table's dtype (the inputs ``model`` reads).

    Returns:
      A :class:`Model`; ``init(key, input_size=None)`` takes ``V`` as its input size.
    """
    check_positive("vocab_size", vocab_size)
    check_positive("embedding_size", embedding_size)

    def init(key, input_size: int | None = None) -> EmbeddedParams:
        bound_input_size(input_size, vocab_size)
        k_embed, k_model = jax.random.split(key)
        return EmbeddedParams(
            embedding_init(k_embed, vocab_size, embedding_size, dtype),
            model.init(k_model, embedding_size),
        )

    def apply(params: EmbeddedParams, tokens: jax.Array, *, mask=None, key=None) -> jax.Array:
        return model.apply(params.model, embed(params.embedding, tokens), mask=mask, key=key)

    return Model(init, apply)


def many_to_many(
    cell: Cell | Layer,
    output_size: int,
    *,
    remat: int | str | None = None,
    input_size: int | None = None,
) -> Model:
    """One output per step: ``apply(params, xs: [B, T, I])`` gives ``[B, T, O]``.

    ``cell``: a :class:`jaxrnn.Cell`, or a :class:`jaxrnn.Layer` (a bidirectional
    tagger); ``remat``: segment checkpointing of the rollout (``k`` steps, ``"sqrt"`` or None),
    see ``jaxrnn.scan``; ``input_size``: ``I``, so that ``init(key)`` needs no size.
    """
    readout = lambda readout, ys, mask: linear(readout, ys)  # noqa: E731
    return _model(cell, output_size, readout, remat, input_size)


class OneToManyParams(NamedTuple):
    """The params of a :class:`OneToMany` generator.

    Attributes:
      init_map: one :class:`Linear` per floating carry leaf, ``carry_0 = W_l v + b_l``
        (``"init_state"``); None for ``"every_step"``.
      embedding: ``[V, E]``, ``E``, the embedding of the previous output token.
      cell: the cell's params.
      readout: ``W_s: [H, V]``, ``b_s: [V]``, the logits from the cell's output ``h_t``.
    """

    init_map: tuple[Linear, ...] | None
    embedding: Embedding
    cell: Any
    readout: Linear


class OneToManyState(NamedTuple):
    """The state a :class:`OneToMany` generator carries from step to step.

    Attributes:
      carry: the cell's carry, every leaf ``[B, ...]``.
      v: ``[B, I]``, the input vector, fed at every step (``"every_step"``); ``[B, 0]``
        for ``"init_state"``.
    """

    carry: Any
    v: jax.Array


class OneToMany(NamedTuple):
    """A one-to-many generator: pure functions over :class:`OneToManyParams`.

    ``init(key) -> params``;
    ``apply_teacher_forced(params, v [B, I], tgt_in [B, T]) -> logits [B, T, V]``;
    ``init_decode_state(params, v) -> OneToManyState``;
    ``decode_step(params, state, token [B]) -> (state, logits [B, V], None)``, for
    :func:`jaxrnn.models.greedy`, :func:`~jaxrnn.models.sample` and
    :func:`~jaxrnn.models.beam_search`.
    """

    init: Callable[[jax.Array], OneToManyParams]
    apply_teacher_forced: Callable[..., jax.Array]
    init_decode_state: Callable[..., OneToManyState]
    decode_step: Callable[..., tuple[OneToManyState, jax.Array, None]]


MODES = ("init_state", "every_step")


def one_to_many(
    cell: Cell,
    input_size: int,
    output_size: int,
    *,
    mode: str = "init_state",
    embedding_size: int = 16,
    dtype=jnp.float32,
) -> OneToMany:
    """Generate a token sequence from one vector ``v`` (captioning, conditional generation).

    Each step reads the embedding of the previous token (``y_0 = BOS``)::

        "init_state":  carry_0 = W_l v + b_l per carry leaf (h, and c for an LSTM);
                       x_t = E y_{t-1}
        "every_step":  carry_0 = cell.initial_carry;  x_t = [E y_{t-1}; v]
        carry_t, h_t = cell(carry_{t-1}, x_t);   logits_t = W_s h_t + b_s

    Args:
      cell: the recurrent cell.
      input_size: ``I``, the size of ``v``.
      output_size: ``V``, the number of tokens (logits).
      mode: ``"init_state"`` or ``"every_step"``.
      embedding_size: ``E``.
      dtype: dtype of the embedding, the init map and the readout.

    Returns:
      A :class:`OneToMany`.

    References:
      Vinyals, Toshev, Bengio, Erhan (2015). Show and Tell: A Neural Image
      Caption Generator. CVPR (the vector as the first input / initial state).
      Mao et al. (2015). Deep Captioning with Multimodal Recurrent Neural
      Networks (m-RNN). ICLR (the vector fed at every step).

    Example:
      >>> gen = one_to_many(jaxrnn.lstm(32), input_size=8, output_size=30)
      >>> params = gen.init(jax.random.key(0))
      >>> out = jaxrnn.models.greedy(gen.decode_step, params, gen.init_decode_state(params, v),
      ...                            bos_id=1, eos_id=2, max_length=20)
    """
    check_is_cell(cell)
    check_positive("input_size", input_size)
    check_positive("output_size", output_size)
    check_positive("embedding_size", embedding_size)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    every_step = mode == "every_step"
    cell_input = embedding_size + (input_size if every_step else 0)

    def init(key) -> OneToManyParams:
        k_map, k_emb, k_cell, k_out = jax.random.split(key, 4)
        cell_params = cell.init(k_cell, cell_input)
        readout = _readout_init(k_out, layer_of(cell), cell_params, cell_input, output_size)
        init_map = None
        if not every_step:
            carry = jax.eval_shape(lambda p: cell.initial_carry(p, (1,)), cell_params)
            init_map = bridge_init(k_map, input_size, carry, dtype)
        embedding = embedding_init(k_emb, output_size, embedding_size, dtype)
        return OneToManyParams(init_map, embedding, cell_params, readout)

    def init_decode_state(params: OneToManyParams, v) -> OneToManyState:
        v = jnp.asarray(v)
        if v.ndim != 2 or v.shape[-1] != input_size:
            raise ValueError(f"v: expected shape [B, {input_size}], got {tuple(v.shape)}")
        carry = cell.initial_carry(params.cell, v.shape[:1])
        if not every_step:
            carry = bridge(params.init_map, v, carry)
        return OneToManyState(carry, v if every_step else v[:, :0])

    def inputs(params, state, tokens):
        e = embed(params.embedding, tokens)
        # v [B, I] is read at every step: broadcast over the time axis of tokens [B, T].
        B, I = state.v.shape
        v = jnp.broadcast_to(state.v.reshape(B, *(1,) * (e.ndim - 2), I), (*e.shape[:-1], I))
        return jnp.concatenate([e, v.astype(e.dtype)], axis=-1)

    def decode_step(params: OneToManyParams, state: OneToManyState, token):
        carry, h = cell.apply(params.cell, state.carry, inputs(params, state, token))
        return OneToManyState(carry, state.v), linear(params.readout, h), None

    def apply_teacher_forced(params: OneToManyParams, v, tgt_in) -> jax.Array:
        tgt_in = jnp.asarray(tgt_in)
        state = init_decode_state(params, v)
        if tgt_in.ndim != 2 or tgt_in.shape[0] != state.v.shape[0]:
            raise ValueError(
                f"tgt_in: expected shape [B={state.v.shape[0]}, T], got {tuple(tgt_in.shape)}"
            )
        _, ys = scan(cell, params.cell, inputs(params, state, tgt_in), state.carry)
        return linear(params.readout, ys)

    return OneToMany(init, apply_teacher_forced, init_decode_state, decode_step)
