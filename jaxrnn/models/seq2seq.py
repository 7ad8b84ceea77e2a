"""Encoder–decoder (sequence-to-sequence) models with attention.

The source tokens are embedded and read by an encoder (any cell, or a
:class:`jaxrnn.Layer` such as ``jaxrnn.bidirectional(...)`` or
``jaxrnn.stack_layers(...)``), with the source lengths, so padding is never
read. The decoder is a cell run one target token at a time. With Luong et al.'s
*input feeding* (``style="luong"``, the default), step ``t`` computes::

    x_t         = [E_tgt y_{t-1}; h~_{t-1}]                  (h~_0 = 0)
    carry, h_t  = decoder(carry, x_t)
    c_t, a_t    = attention(query=h_t, keys=values=encoder outputs, mask=source mask)
    h~_t        = tanh(W_c [c_t; h_t] + b_c)
    logits_t    = W_s h~_t + b_s

With ``style="bahdanau"`` the context is computed *before* the step, from the
previous decoder output ``s_{t-1}`` (``s_0 = 0``), and fed as input::

    c_t, a_t    = attention(query=s_{t-1}, ...)
    carry, s_t  = decoder(carry, [E_tgt y_{t-1}; c_t])
    logits_t    = W_s [s_t; c_t] + b_s

Without attention (``attention=None``), ``x_t = E_tgt y_{t-1}`` and
``logits_t = W_s h_t + b_s``; the returned weights are ``None``.

The decoder's initial carry is the encoder's final carry when the two have the
same structure and shapes (``bridge_mode="auto"`` or ``"copy"``); otherwise each
floating leaf is a linear map of the concatenated leaves of the encoder's final
carry (``bridge_mode="linear"``, see :func:`jaxrnn.models.heads.bridge`), or the
decoder's own initial carry (``bridge_mode="none"``).

The teacher-forced pass is a ``lax.scan`` of the same ``decode_step`` that
decoding uses, so step-by-step decoding gives the same logits as the full pass.

References:
  Sutskever, Vinyals, Le (2014). Sequence to Sequence Learning with Neural Networks. NeurIPS.
  Cho et al. (2014). Learning Phrase Representations using RNN Encoder-Decoder
  for Statistical Machine Translation. EMNLP.
  Bahdanau, Cho, Bengio (2015). Neural Machine Translation by Jointly Learning
  to Align and Translate. ICLR.
  Luong, Pham, Manning (2015). Effective Approaches to Attention-based Neural
  Machine Translation. EMNLP.
  Bengio, Vinyals, Jaitly, Shazeer (2015). Scheduled Sampling for Sequence
  Prediction with Recurrent Neural Networks. NeurIPS.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Cell, check_is_cell, check_positive
from jaxrnn.cells.gru import CHO_2014
from jaxrnn.cells.references import Reference
from jaxrnn.combinators.layer import Layer, rnn
from jaxrnn.models.attention import BAHDANAU_2015, LUONG_2015, Attention
from jaxrnn.models.heads import (
    Embedding,
    Linear,
    bridge,
    bridge_init,
    embed,
    embedding_init,
    flat_state,
    linear,
    linear_init,
)

Array = jax.Array

SUTSKEVER_2014 = r"""@inproceedings{sutskever2014sequence,
  author = {Sutskever, Ilya and Vinyals, Oriol and Le, Quoc V.},
  title = {Sequence to Sequence Learning with Neural Networks},
  booktitle = {Advances in Neural Information Processing Systems 27},
  pages = {3104--3112},
  year = {2014},
}"""
BENGIO_2015 = r"""@inproceedings{bengio2015scheduled,
  author = {Bengio, Samy and Vinyals, Oriol and Jaitly, Navdeep and Shazeer, Noam},
  title = {Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks},
  booktitle = {Advances in Neural Information Processing Systems 28},
  pages = {1171--1179},
  year = {2015},
}"""
# What a seq2seq_model cites: the encoder-decoder; with attention, the decoder of its style
# (the attention's score cites its own, attention.SCORES); scheduled sampling where used.
ENCODER_DECODER = (
    Reference("RNN encoder-decoder", SUTSKEVER_2014),
    Reference("RNN encoder-decoder", CHO_2014),
)
DECODERS = {
    "luong": Reference("input-feeding attentional decoder", LUONG_2015),
    "bahdanau": Reference("attention-conditioned decoder", BAHDANAU_2015),
}
SCHEDULED_SAMPLING = Reference("scheduled sampling", BENGIO_2015)

STYLES = ("luong", "bahdanau")
BRIDGES = ("auto", "copy", "linear", "none")
SAMPLINGS = ("sample", "argmax")


class Seq2SeqParams(NamedTuple):
    """The params of a :class:`Seq2Seq` model (equations in the module docstring).

    Attributes:
      source_embedding: ``[V_src, E]``, the source token embedding.
      target_embedding: ``[V_tgt, E]``, ``E_tgt``, the previous target token's embedding.
      encoder: the encoder cell's or layer's params.
      bridge: one :class:`Linear` per floating leaf of the decoder carry, from the
        encoder's flattened final carry (``bridge_mode="linear"``, or ``"auto"`` when
        the carries differ); None when the carry is copied or not bridged.
      decoder: the decoder cell's params.
      attention: the attention's params; None for dot attention or without attention.
      attentional: Luong's ``W_c, b_c``, ``[c_t; h_t] -> h~_t``; None otherwise.
      readout: ``W_s, b_s``, to the logits ``[V_tgt]`` from ``h~_t`` (Luong),
        ``[s_t; c_t]`` (Bahdanau) or ``h_t`` (no attention).
    """

    source_embedding: Embedding
    target_embedding: Embedding
    encoder: Any
    bridge: tuple[Linear, ...] | None
    decoder: Any
    attention: Any
    attentional: Linear | None
    readout: Linear


class DecodeState(NamedTuple):
    """The state a :class:`Seq2Seq` decoder carries from step to step.

    Attributes:
      carry: the decoder cell's carry, every leaf ``[B, ...]``.
      feed: ``[B, F]``, the previous step's vector: Luong's ``h~_{t-1}`` (input
        feeding), Bahdanau's ``s_{t-1}`` (the query), or ``[B, 0]`` without attention.
      memory: ``[B, S, D]``, the encoder outputs (the attention's keys and values).
      memory_mask: ``[B, S]`` bool, True at the valid source positions.
      prepared: the attention's ``prepare(params, memory)``, computed once per source
        (additive: ``U_aᵀ k_s``, ``[B, S, A]``); None without attention.
    """

    carry: Any
    feed: Array
    memory: Array
    memory_mask: Array
    prepared: Array | None


class Seq2Seq(NamedTuple):
    """An encoder–decoder model: pure functions over :class:`Seq2SeqParams`.

    ``init(key) -> params``;
    ``apply_teacher_forced(params, src, src_lengths, tgt_in, *, key=None, sampling_prob=0.0)
    -> (logits [B, T, V], weights [B, T, S] or None)``;
    ``init_decode_state(params, src, src_lengths) -> DecodeState``;
    ``decode_step(params, state, token [B]) -> (state, logits [B, V], weights [B, S] or None)``.
    """

    init: Callable[[Array], Seq2SeqParams]
    apply_teacher_forced: Callable[..., tuple[Array, Array | None]]
    init_decode_state: Callable[..., DecodeState]
    decode_step: Callable[..., tuple[DecodeState, Array, Array | None]]


def _check_tokens(name, tokens, ndim, shape=None):
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"{name}: expected an integer array, got dtype {tokens.dtype}")
    if tokens.ndim != ndim:
        layout = "[B, T]" if ndim == 2 else "[B]"
        raise ValueError(f"{name}: expected shape {layout}, got {tuple(tokens.shape)}")
    if shape is not None and tokens.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(tokens.shape)}")


def seq2seq_model(
    encoder: Cell | Layer,
    decoder: Cell,
    source_vocab_size: int,
    target_vocab_size: int,
    *,
    embedding_size: int,
    attention: Attention | None = None,
    style: str = "luong",
    attentional_size: int | None = None,
    bridge_mode: str = "auto",
    dtype=jnp.float32,
) -> Seq2Seq:
    """Build an encoder–decoder model (equations in the module docstring).

    Args:
      encoder: a :class:`jaxrnn.Cell` (rolled with :func:`jaxrnn.rnn`) or a
        :class:`jaxrnn.Layer` (e.g. ``jaxrnn.bidirectional(jaxrnn.lstm(32))``).
      decoder: a :class:`jaxrnn.Cell`.
      source_vocab_size: ``V_src``.
      target_vocab_size: ``V_tgt``, the number of logits.
      embedding_size: ``E``, for both embedding tables.
      attention: e.g. ``jaxrnn.models.attention.additive(32)``, ``dot()``, ``general()``;
        None: no attention (the encoder is read only through its final carry).
      style: ``"luong"`` (input feeding) or ``"bahdanau"`` (context from the
        previous decoder state); ignored without attention.
      attentional_size: width of Luong's ``h~_t``; default the decoder's output size.
      bridge_mode: ``"auto"``, ``"copy"``, ``"linear"`` or ``"none"`` (see the module docstring).
      dtype: dtype of the embeddings, bridge, attentional layer and readout.

    Returns:
      A :class:`Seq2Seq`.

    Example:
      >>> model = seq2seq_model(jaxrnn.bidirectional(jaxrnn.gru(32)), jaxrnn.gru(32), 20, 20,
      ...                       embedding_size=16, attention=attention.additive(32))
      >>> params = model.init(jax.random.key(0))
      >>> logits, weights = model.apply_teacher_forced(params, src, src_lengths, tgt_in)
    """
    if isinstance(encoder, Cell):
        encoder = rnn(encoder)
    elif not isinstance(encoder, Layer):
        raise TypeError(
            f"encoder: expected a jaxrnn.Cell or jaxrnn.Layer, got {type(encoder).__name__}"
        )
    check_is_cell(decoder, "decoder")
    if attention is not None and not isinstance(attention, Attention):
        raise TypeError(
            f"attention: expected a jaxrnn.models.attention.Attention or None, "
            f"got {type(attention).__name__}"
        )
    check_positive("source_vocab_size", source_vocab_size)
    check_positive("target_vocab_size", target_vocab_size)
    check_positive("embedding_size", embedding_size)
    if attentional_size is not None:
        check_positive("attentional_size", attentional_size)
    if style not in STYLES:
        raise ValueError(f"style: expected one of {STYLES}, got {style!r}")
    if bridge_mode not in BRIDGES:
        raise ValueError(f"bridge_mode: expected one of {BRIDGES}, got {bridge_mode!r}")
    luong = attention is not None and style == "luong"
    bahdanau = attention is not None and style == "bahdanau"

    def encode(source_embedding: Embedding, enc_params, src, src_lengths):
        xs = embed(source_embedding, src)
        return encoder.apply(enc_params, xs, lengths=src_lengths)

    def init(key) -> Seq2SeqParams:
        k_src, k_tgt, k_enc, k_br, k_dec, k_att, k_c, k_s = jax.random.split(key, 8)
        source_embedding = embedding_init(k_src, source_vocab_size, embedding_size, dtype)
        target_embedding = embedding_init(k_tgt, target_vocab_size, embedding_size, dtype)
        enc_params = encoder.init(k_enc, embedding_size)
        src = jax.ShapeDtypeStruct((1, 1), jnp.int32)
        lengths = jax.ShapeDtypeStruct((1,), jnp.int32)
        enc_final, memory = jax.eval_shape(
            lambda s, n: encode(source_embedding, enc_params, s, n),
            src, lengths,
        )  # fmt: skip
        D = memory.shape[-1]
        # The decoder's output size H sets Luong's default feed width; a cell's output
        # size does not depend on its input size, so probe it with input size 1.
        probe = jax.eval_shape(lambda k: decoder.init(k, 1), k_dec)
        H = jax.eval_shape(
            lambda p, x: decoder.apply(p, decoder.initial_carry(p, (1,)), x)[1],
            probe, jax.ShapeDtypeStruct((1, 1), memory.dtype),
        ).shape[-1]  # fmt: skip
        feed_size = (attentional_size or H) if luong else D if bahdanau else 0
        dec_params = decoder.init(k_dec, embedding_size + feed_size)
        carry0 = jax.eval_shape(lambda p: decoder.initial_carry(p, (1,)), dec_params)
        same = jax.tree.structure(carry0) == jax.tree.structure(enc_final) and [
            x.shape for x in jax.tree.leaves(carry0)
        ] == [x.shape for x in jax.tree.leaves(enc_final)]
        if bridge_mode == "copy" and not same:
            raise ValueError(
                f"bridge_mode: 'copy' needs the encoder's final carry to match the decoder's "
                f"carry, got {enc_final} and {carry0}; use 'linear'"
            )
        bridge_params = None
        if bridge_mode == "linear" or (bridge_mode == "auto" and not same):
            width = jax.eval_shape(flat_state, enc_final).shape[-1]
            bridge_params = bridge_init(k_br, width, carry0, dtype)
        att_params = None if attention is None else attention.init(k_att, H, D)
        attentional = None
        if luong:
            attentional = linear_init(k_c, D + H, feed_size, dtype)
        out_size = feed_size if luong else H + (D if bahdanau else 0)
        readout = linear_init(k_s, out_size, target_vocab_size, dtype)
        return Seq2SeqParams(
            source_embedding, target_embedding, enc_params, bridge_params, dec_params,
            att_params, attentional, readout,
        )  # fmt: skip

    def init_decode_state(params: Seq2SeqParams, src, src_lengths) -> DecodeState:
        src, src_lengths = jnp.asarray(src), jnp.asarray(src_lengths)
        _check_tokens("src", src, 2)
        _check_tokens("src_lengths", src_lengths, 1, src.shape[:1])
        enc_final, memory = encode(params.source_embedding, params.encoder, src, src_lengths)
        B, S = src.shape
        carry = decoder.initial_carry(params.decoder, (B,))
        if params.bridge is not None:
            carry = bridge(params.bridge, flat_state(enc_final), carry)
        elif bridge_mode != "none":
            carry = jax.tree.map(lambda e, d: e.astype(d.dtype), enc_final, carry)
        if luong:
            feed_size = params.attentional.W.shape[1]
        elif bahdanau:  # s_{t-1}: the readout reads [s_t; c_t]
            feed_size = params.readout.W.shape[0] - memory.shape[-1]
        else:
            feed_size = 0
        feed = jnp.zeros((B, feed_size), memory.dtype)
        mask = jnp.arange(S, dtype=src_lengths.dtype) < src_lengths[:, None]
        prepared = None if attention is None else attention.prepare(params.attention, memory)
        return DecodeState(carry, feed, memory, mask, prepared)

    def decode_step(params: Seq2SeqParams, state: DecodeState, token):
        token = jnp.asarray(token)
        _check_tokens("token", token, 1, state.memory.shape[:1])
        e = embed(params.target_embedding, token)
        weights = None
        if bahdanau:
            context, weights = attention.apply(
                params.attention, state.feed, state.memory, state.memory, state.memory_mask,
                prepared=state.prepared,
            )  # fmt: skip
            carry, s = decoder.apply(params.decoder, state.carry, jnp.concatenate([e, context], -1))
            out, feed = jnp.concatenate([s, context], -1), s
        else:
            carry, h = decoder.apply(
                params.decoder, state.carry, jnp.concatenate([e, state.feed], -1)
            )
            out, feed = h, state.feed
            if luong:
                context, weights = attention.apply(
                    params.attention, h, state.memory, state.memory, state.memory_mask,
                    prepared=state.prepared,
                )  # fmt: skip
                out = jnp.tanh(linear(params.attentional, jnp.concatenate([context, h], -1)))
                feed = out
        logits = linear(params.readout, out)
        return state._replace(carry=carry, feed=feed), logits, weights

    def apply_teacher_forced(
        params: Seq2SeqParams,
        src,
        src_lengths,
        tgt_in,
        *,
        key: Array | None = None,
        sampling_prob: float = 0.0,
        sampling: str = "sample",
    ):
        """Logits for every target step, reading ``tgt_in`` (the target shifted right, BOS first).

        Args:
          params: from ``init``.
          src: ``[B, S]`` source tokens, right-padded.
          src_lengths: ``[B]`` source lengths in ``[0, S]``.
          tgt_in: ``[B, T]`` decoder input tokens (``tgt_in[:, 0]`` is BOS).
          key: PRNG key for scheduled sampling.
          sampling_prob: scheduled sampling (Bengio et al. 2015): at each step
            ``t >= 1``, each sequence independently feeds the model's own token
            from step ``t-1`` instead of ``tgt_in[:, t]`` with this probability.
            Step ``t`` draws with ``fold_in(key, t)``, split into (coin, token) keys:
            ``coin: uniform([B]) < sampling_prob``. No gradient flows through the
            choice. 0 (default): plain teacher forcing.
          sampling: the model's own token: ``"sample"`` (from ``softmax(logits_{t-1})``
            with the token key) or ``"argmax"``.

        Returns:
          ``(logits [B, T, V], weights [B, T, S])``; weights are None without attention.
        """
        tgt_in = jnp.asarray(tgt_in)
        _check_tokens("tgt_in", tgt_in, 2)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling: expected one of {SAMPLINGS}, got {sampling!r}")
        scheduled = not (isinstance(sampling_prob, (int, float)) and sampling_prob == 0)
        if isinstance(sampling_prob, (int, float)) and not 0 <= sampling_prob <= 1:
            raise ValueError(f"sampling_prob: expected a value in [0, 1], got {sampling_prob!r}")
        if scheduled and key is None:
            raise ValueError("key: expected a PRNG key when sampling_prob > 0, got None")
        state = init_decode_state(params, src, src_lengths)
        if tgt_in.shape[0] != state.memory.shape[0]:
            raise ValueError(
                f"tgt_in: expected batch size {state.memory.shape[0]} (that of src), "
                f"got shape {tuple(tgt_in.shape)}"
            )
        T = tgt_in.shape[1]
        steps = jnp.arange(T, dtype=jnp.int32)

        def body(carry, inputs):
            state, prev_logits = carry
            t, token = inputs
            if scheduled:
                k_coin, k_tok = jax.random.split(jax.random.fold_in(key, t))
                if sampling == "argmax":
                    own = jnp.argmax(prev_logits, axis=-1)
                else:
                    own = jax.random.categorical(k_tok, prev_logits, axis=-1)
                coin = jax.random.uniform(k_coin, token.shape, prev_logits.dtype) < sampling_prob
                token = jnp.where((t > 0) & coin, own.astype(token.dtype), token)
            state, logits, weights = decode_step(params, state, token)
            return (state, jax.lax.stop_gradient(logits)), (logits, weights)

        logits0 = jax.eval_shape(decode_step, params, state, tgt_in[:, 0])[1]
        init_carry = (state, jnp.zeros(logits0.shape, logits0.dtype))
        _, (logits, weights) = jax.lax.scan(body, init_carry, (steps, jnp.moveaxis(tgt_in, 1, 0)))
        logits = jnp.moveaxis(logits, 0, 1)
        weights = None if weights is None else jnp.moveaxis(weights, 0, 1)
        return logits, weights

    return Seq2Seq(init, apply_teacher_forced, init_decode_state, decode_step)
