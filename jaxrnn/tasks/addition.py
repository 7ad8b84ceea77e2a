"""Addition written as strings, ``"123+45"`` -> ``"168"``: a sequence-to-sequence task.

Batches are :class:`~jaxrnn.tasks.seq2seq.Seq2SeqBatch` es, pure functions of
``(key, step)``, with characters mapped to ids by :func:`addition_vocab` (ids
``0..3`` are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``). About 10% of all
problems are held out (never drawn for training), so the held-out splits measure
generalisation, not recall.

References:
  Zaremba, Sutskever (2014). Learning to Execute. arXiv:1410.4615 (addition of
  numbers written as character strings, read by a sequence-to-sequence LSTM).
"""

import jax
import jax.numpy as jnp

from jaxrnn.models.vocab import BOS, EOS, PAD, Vocab, build_vocab
from jaxrnn.tasks.data import Stream
from jaxrnn.tasks.seq2seq import Seq2SeqBatch

MAX_DIGITS = 9  # a + b < 2 * 10**9 fits int32


def addition_vocab() -> Vocab:
    """The character vocabulary of :func:`addition`: the specials, ``+`` and the ten digits."""
    return build_vocab(["+0123456789"], level="char")


def _held_out_digit(a: jax.Array) -> jax.Array:
    """``h(a)`` in ``0..9``: ``(a, b)`` is a test problem iff ``b mod 10 == h(a)``.

    Knuth's multiplicative hash, so that which ``b`` are held out looks random in ``a``.
    """
    mixed = a.astype(jnp.uint32) * jnp.uint32(2654435761)
    return ((mixed >> jnp.uint32(16)) % jnp.uint32(10)).astype(jnp.int32)


def _num_digits(n: jax.Array, pow10: jax.Array) -> jax.Array:
    """Decimal digits of ``n >= 0`` (``0`` has one)."""
    return 1 + jnp.sum(n[..., None] >= pow10[1:], axis=-1, dtype=jnp.int32)


def _write(n, k, offset, width, pow10, digit_ids):
    """Ids ``[B, width]`` with the ``k`` digits of ``n`` at positions ``offset .. offset+k-1``."""
    i = jnp.arange(width, dtype=jnp.int32) - offset[:, None]
    valid = (i >= 0) & (i < k[:, None])
    power = pow10[jnp.clip(k[:, None] - 1 - i, 0, len(pow10) - 1)]
    return jnp.where(valid, digit_ids[(n[:, None] // power) % 10], PAD), valid


def addition(digits: int = 3) -> Stream:
    """Multi-digit addition written as characters: ``"123+45"`` -> ``"168"``.

    Each operand has ``k ~ U{1, ..., digits}`` digits and is uniform among the
    ``k``-digit numbers (``0..9`` for ``k = 1``). The problem ``(a, b)`` is held out
    iff the last digit of ``b`` equals ``h(a)``, a hash of ``a`` (10% of all
    problems; for each ``a`` one last digit of ``b``). Training batches redraw that
    digit among the other nine; validation and test batches set it to ``h(a)``, so
    both score problems never drawn for training (their own draws, under their own
    keys, from the same held-out set).

    Shapes: ``source [B, 2 * digits + 1]`` (``a``, ``+``, ``b``), ``target_in`` and
    ``targets`` ``[B, digits + 2]`` (the sum has at most ``digits + 1`` digits, plus
    ``<bos>`` / ``<eos>``); ids index :func:`addition_vocab`.

    Args:
      digits: the most digits of an operand, in ``[1, 9]``.

    Returns:
      A :class:`~jaxrnn.tasks.data.Stream` of :class:`~jaxrnn.tasks.seq2seq.Seq2SeqBatch` es.
    """
    if not isinstance(digits, int) or not 1 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits: expected an int in [1, {MAX_DIGITS}], got {digits!r}")
    held_out = _addition_batch(digits, "test")
    return Stream(_addition_batch(digits, "train"), held_out, held_out)


def _addition_batch(digits: int, split: str):
    """The batch function of :func:`addition` (arguments checked there)."""
    vocab = addition_vocab()
    digit_ids = jnp.array([vocab.index[str(d)] for d in range(10)], jnp.int32)
    plus_id = vocab.index["+"]
    pow10 = jnp.array([10**j for j in range(digits + 1)], jnp.int32)
    S, T = 2 * digits + 1, digits + 2

    def operand(key, batch_size):
        k_len, k_val = jax.random.split(key)
        k = jax.random.randint(k_len, (batch_size,), 1, digits + 1, jnp.int32)
        low = jnp.where(k == 1, 0, pow10[k - 1])
        return jax.random.randint(k_val, (batch_size,), low, pow10[k], jnp.int32), k

    def batch(key, step, batch_size):
        k_a, k_b, k_last = jax.random.split(jax.random.fold_in(key, step), 3)
        a, ka = operand(k_a, batch_size)
        b, kb = operand(k_b, batch_size)
        held = _held_out_digit(a)
        if split == "test":
            last = held
        else:
            shift = jax.random.randint(k_last, (batch_size,), 1, 10, jnp.int32)
            last = jnp.where(b % 10 == held, (held + shift) % 10, b % 10)
        b = b - b % 10 + last
        s = a + b
        ks = _num_digits(s, pow10)
        zero = jnp.zeros((batch_size,), jnp.int32)
        src_a, in_a = _write(a, ka, zero, S, pow10, digit_ids)
        src_b, in_b = _write(b, kb, ka + 1, S, pow10, digit_ids)
        plus = jnp.arange(S, dtype=jnp.int32) == ka[:, None]
        source = jnp.where(in_a, src_a, jnp.where(in_b, src_b, jnp.where(plus, plus_id, PAD)))
        tgt_in, _ = _write(s, ks, zero + 1, T, pow10, digit_ids)
        tgt_in = tgt_in.at[:, 0].set(BOS)
        targets, _ = _write(s, ks, zero, T, pow10, digit_ids)
        positions = jnp.arange(T, dtype=jnp.int32)
        targets = jnp.where(positions == ks[:, None], EOS, targets)
        mask = positions <= ks[:, None]
        return Seq2SeqBatch(source, ka + 1 + kb, tgt_in, targets, mask)

    return batch
