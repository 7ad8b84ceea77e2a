"""Decoding from any model with a ``decode_step``: greedy, sampling, beam search.

Each function takes the model's pure step and the state to start from::

    decode_step(params, state, token [B]) -> (state, logits [B, V], weights [B, S] or None)

(e.g. :class:`jaxrnn.models.Seq2Seq` ``.decode_step`` with its ``init_decode_state``),
where every leaf of ``state`` starts with the batch axis ``B``. All are
``jax.jit``-compiled with a fixed ``max_length`` (``decode_step`` and the token
ids are static, so a model compiles once). The loop is a ``lax.while_loop`` that
stops as soon as every sequence (every beam) has emitted ``eos_id``, or after
``max_length`` steps; after its ``eos_id`` a sequence emits ``pad_id`` only. The
first input token is ``bos_id``; the returned tokens exclude it and include the
``eos_id``, and ``lengths`` counts them. Decoding is not differentiable (it is
a ``while_loop``); train with the teacher-forced pass.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Decoded(NamedTuple):
    """The output of :func:`greedy`, :func:`sample` and :func:`beam_search`.

    Attributes:
      tokens: ``[B, L]`` (``[B, K, L]`` for beam search, best beam first), the
        generated tokens without ``bos_id``; ``pad_id`` after ``eos_id``.
      lengths: ``[B]`` (``[B, K]``), the number of tokens up to and including ``eos_id``.
      scores: ``[B]`` (``[B, K]``), the sum of the tokens' log-probabilities (beam
        search: divided by the length penalty).
      weights: ``[B, L, S]``, each step's attention weights (0 after ``eos_id``);
        None for beam search, or for a model without attention.
    """

    tokens: Array
    lengths: Array
    scores: Array
    weights: Array | None


def _check(max_length, ids):
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0:
        raise ValueError(f"max_length: expected a positive int, got {max_length!r}")
    for name, value in ids.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int token id, got {value!r}")


def _batch_size(state) -> int:
    return jax.tree.leaves(state)[0].shape[0]


def _generate(decode_step, params, state, pick, bos_id, eos_id, max_length, pad_id):
    """The decoding loop shared by greedy and sampling; ``pick(t, logits) -> tokens``."""
    B = _batch_size(state)
    token = jnp.full((B,), bos_id, jnp.int32)
    _, logits, weights = jax.eval_shape(decode_step, params, state, token)
    init = (
        jnp.int32(0),
        state,
        token,
        jnp.full((B, max_length), pad_id, jnp.int32),
        jnp.zeros((B,), bool),
        jnp.zeros((B,), jnp.int32),
        jnp.zeros((B,), logits.dtype),
        None if weights is None else jnp.zeros((B, max_length, *weights.shape[1:]), weights.dtype),
    )

    def cond(carry):
        t, finished = carry[0], carry[4]
        return (t < max_length) & ~jnp.all(finished)

    def body(carry):
        t, state, token, tokens, finished, lengths, scores, all_weights = carry
        state, logits, weights = decode_step(params, state, token)
        new = jnp.where(finished, pad_id, pick(t, logits).astype(jnp.int32))
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), new[:, None], -1)[:, 0]
        scores = scores + jnp.where(finished, 0.0, logp)
        tokens = tokens.at[:, t].set(new)
        lengths = lengths + (~finished).astype(jnp.int32)
        if all_weights is not None:
            w = jnp.where(finished.reshape((B,) + (1,) * (weights.ndim - 1)), 0.0, weights)
            all_weights = all_weights.at[:, t].set(w)
        finished = finished | (new == eos_id)
        return t + 1, state, new, tokens, finished, lengths, scores, all_weights

    _, _, _, tokens, _, lengths, scores, all_weights = jax.lax.while_loop(cond, body, init)
    return Decoded(tokens, lengths, scores, all_weights)


@functools.partial(
    jax.jit, static_argnames=("decode_step", "bos_id", "eos_id", "max_length", "pad_id")
)
def greedy(decode_step, params, state, *, bos_id: int, eos_id: int, max_length: int, pad_id=0):
    """Greedy decoding: ``y_t = argmax_v logits_t[v]``, fed back as the next input.

    Args:
      decode_step: the model's step (see the module docstring).
      params: the model's params.
      state: the start state, every leaf ``[B, ...]``.
      bos_id, eos_id, pad_id: token ids.
      max_length: ``L``, the most tokens generated.

    Returns:
      :class:`Decoded` with ``tokens [B, L]``, ``lengths [B]``, ``scores [B]`` (the
      sum of the log-probabilities of the generated tokens) and ``weights [B, L, S]``.
    """
    _check(max_length, {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id})
    pick = lambda t, logits: jnp.argmax(logits, axis=-1)  # noqa: E731
    return _generate(decode_step, params, state, pick, bos_id, eos_id, max_length, pad_id)


def top_k_logits(logits: Array, k: int) -> Array:
    """``logits`` with all but the ``k`` largest of each row set to ``-inf`` (ties: lowest ids)."""
    _, idx = jax.lax.top_k(logits, k)
    keep = jnp.any(jnp.arange(logits.shape[-1], dtype=idx.dtype) == idx[..., None], axis=-2)
    return jnp.where(keep, logits, -jnp.inf)


def sample(
    decode_step,
    params,
    state,
    key: Array,
    *,
    bos_id: int,
    eos_id: int,
    max_length: int,
    pad_id: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
):
    """Ancestral sampling: ``y_t ~ softmax(top_k(logits_t) / temperature)``.

    Step ``t`` draws with ``jax.random.fold_in(key, t)``, so a key gives one
    sequence per batch row, reproducibly. ``temperature -> 0`` approaches greedy
    decoding, and so does ``top_k=1`` exactly.

    Args:
      key: PRNG key.
      temperature: a positive scale of the logits.
      top_k: sample among the ``k`` most likely tokens only; None: all.
      (others as in :func:`greedy`)

    Returns:
      :class:`Decoded`; ``scores`` are the model's (untempered, untruncated)
      log-probabilities of the sampled tokens.

    References:
      Fan, Lewis, Dauphin (2018). Hierarchical Neural Story Generation. ACL (top-k sampling).
    """
    _check(max_length, {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id})
    if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k: expected a positive int or None, got {top_k!r}")
    if not isinstance(temperature, jax.core.Tracer) and not float(temperature) > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    return _sample(
        decode_step, params, state, key, bos_id=bos_id, eos_id=eos_id, max_length=max_length,
        pad_id=pad_id, temperature=temperature, top_k=top_k,
    )  # fmt: skip


@functools.partial(
    jax.jit,
    static_argnames=("decode_step", "bos_id", "eos_id", "max_length", "pad_id", "top_k"),
)
def _sample(
    decode_step, params, state, key, *, bos_id, eos_id, max_length, pad_id, temperature, top_k
):
    def pick(t, logits):
        if top_k is not None:
            logits = top_k_logits(logits, min(top_k, logits.shape[-1]))
        return jax.random.categorical(jax.random.fold_in(key, t), logits / temperature, axis=-1)

    return _generate(decode_step, params, state, pick, bos_id, eos_id, max_length, pad_id)


def length_penalty(length: Array, alpha, dtype) -> Array:
    """GNMT's length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14)."""
    return ((5.0 + length.astype(dtype)) / 6.0) ** jnp.asarray(alpha, dtype)


@functools.partial(
    jax.jit,
    static_argnames=("decode_step", "beam_size", "bos_id", "eos_id", "max_length", "pad_id"),
)
def beam_search(
    decode_step,
    params,
    state,
    *,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_length: int,
    pad_id: int = 0,
    alpha: float = 0.0,
):
    """Beam search ranking hypotheses by ``log p(Y) / lp(Y)`` (GNMT length normalisation).

    Each row keeps ``K = beam_size`` hypotheses, finished (ended by ``eos_id``)
    and unfinished together. At step ``t`` every unfinished hypothesis is
    extended by every token (``K * V`` candidates of length ``t + 1``), a
    finished one only by ``pad_id`` at no cost (its score and length frozen), and
    the ``K`` candidates with the best normalised score ``log p / lp(length)``
    are kept. With ``alpha = 0`` (``lp = 1``) this is plain beam search on
    ``log p``, and a beam that holds all candidates finds the exact best sequence.

    Args:
      beam_size: ``K``.
      alpha: the length-penalty exponent; 0: no length normalisation. GNMT uses 0.6–0.7.
      (others as in :func:`greedy`)

    Returns:
      :class:`Decoded` with ``tokens [B, K, L]``, ``lengths [B, K]`` and
      ``scores [B, K]`` (normalised), beams sorted best first; ``weights`` is None.
      Beams that never held a finite-score hypothesis (``K`` larger than the
      candidates) score ``-inf``.

    References:
      Wu et al. (2016). Google's Neural Machine Translation System: Bridging the
      Gap between Human and Machine Translation. arXiv:1609.08144.
    """
    _check(max_length, {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id})
    if not isinstance(beam_size, int) or beam_size <= 0:
        raise ValueError(f"beam_size: expected a positive int, got {beam_size!r}")
    B, K = _batch_size(state), beam_size
    state = jax.tree.map(lambda x: jnp.repeat(x, K, axis=0), state)
    token = jnp.full((B * K,), bos_id, jnp.int32)
    _, logits, _ = jax.eval_shape(decode_step, params, state, token)
    V, dtype = logits.shape[-1], logits.dtype
    # Only the first beam is live at the start, so the K first candidates differ.
    raw = jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf).astype(dtype)
    init = (
        jnp.int32(0),
        state,
        token,
        jnp.full((B, K, max_length), pad_id, jnp.int32),
        jnp.isneginf(jnp.broadcast_to(raw, (B, K))),
        jnp.zeros((B, K), jnp.int32),
        jnp.broadcast_to(raw, (B, K)),
    )
    pad_row = jnp.where(jnp.arange(V) == pad_id, 0.0, -jnp.inf).astype(dtype)

    def cond(carry):
        t, finished = carry[0], carry[4]
        return (t < max_length) & ~jnp.all(finished)

    def body(carry):
        t, state, token, tokens, finished, lengths, raw = carry
        state, logits, _ = decode_step(params, state, token)
        logp = jax.nn.log_softmax(logits, -1).reshape(B, K, V)
        logp = jnp.where(finished[..., None], pad_row, logp)
        cand_raw = (raw[..., None] + logp).reshape(B, K * V)
        cand_len = jnp.broadcast_to(jnp.where(finished, lengths, t + 1)[..., None], (B, K, V))
        cand_len = cand_len.reshape(B, K * V)
        _, idx = jax.lax.top_k(cand_raw / length_penalty(cand_len, alpha, dtype), K)
        parent, new = idx // V, (idx % V).astype(jnp.int32)
        raw = jnp.take_along_axis(cand_raw, idx, -1)
        lengths = jnp.take_along_axis(cand_len, idx, -1)
        finished = jnp.take_along_axis(finished, parent, -1) | (new == eos_id) | jnp.isneginf(raw)
        tokens = jnp.take_along_axis(tokens, parent[..., None], 1).at[:, :, t].set(new)
        rows = (jnp.arange(B, dtype=parent.dtype)[:, None] * K + parent).reshape(-1)
        state = jax.tree.map(lambda x: x[rows], state)
        return t + 1, state, new.reshape(-1), tokens, finished, lengths, raw

    _, _, _, tokens, _, lengths, raw = jax.lax.while_loop(cond, body, init)
    scores = raw / length_penalty(lengths, alpha, dtype)
    order = jnp.argsort(-scores, axis=-1, stable=True)
    return Decoded(
        jnp.take_along_axis(tokens, order[..., None], 1),
        jnp.take_along_axis(lengths, order, -1),
        jnp.take_along_axis(scores, order, -1),
        None,
    )
