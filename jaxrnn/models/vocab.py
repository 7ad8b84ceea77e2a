"""Character and word vocabularies: text <-> token ids, and padded batches.

Ids ``0..3`` are the special tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``
(``PAD, BOS, EOS, UNK``); the others follow by decreasing count, ties in
lexicographic order, so a vocabulary depends only on the counts of its text.

Word-level tokenisation keeps the whitespace as tokens (``\\w+``, single
punctuation marks, whitespace runs), so ``decode(encode(text)) == text`` at
both levels whenever every token of ``text`` is in the vocabulary; unknown
tokens encode to ``UNK`` and decode to ``"<unk>"``.

Example:
  >>> vocab = build_vocab(["hello world"], level="char")
  >>> ids = encode(vocab, "hello", add_bos=True, add_eos=True)
  >>> decode(vocab, ids)
  'hello'
  >>> tokens, lengths = pad_batch([ids, ids[:3]])      # [2, 7] int32, [2]
"""

import collections
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
LEVELS = ("char", "word")
_WORD = re.compile(r"\w+|[^\w\s]|\s+")


class Vocab(NamedTuple):
    """A character- or word-level vocabulary, from :func:`build_vocab`.

    Attributes:
      tokens: id -> token; the first four are ``SPECIALS`` (ids ``PAD, BOS, EOS, UNK``).
      index: token -> id, the inverse of ``tokens``.
      level: ``"char"`` or ``"word"``, how :func:`tokenize` splits a text.
    """

    tokens: tuple[str, ...]
    index: dict[str, int]
    level: str

    @property
    def size(self) -> int:
        """``V``, the number of ids (specials included): the embedding and logit size."""
        return len(self.tokens)


def tokenize(text: str, level: str) -> list[str]:
    """Split ``text`` into characters, or into words, punctuation marks and whitespace runs."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    return list(text) if level == "char" else _WORD.findall(text)


def build_vocab(
    texts: Iterable[str], *, level: str = "char", min_count: int = 1, max_size: int | None = None
) -> Vocab:
    """Build a vocabulary from ``texts``.

    Args:
      texts: the training texts.
      level: ``"char"`` or ``"word"``.
      min_count: drop tokens seen fewer times (they become ``<unk>``).
      max_size: keep at most this many ids, specials included; None: all.

    Returns:
      A :class:`Vocab`.
    """
    if isinstance(texts, str):
        raise TypeError("texts: expected an iterable of str, got a single str; wrap it in a list")
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count: expected a positive int, got {min_count!r}")
    if max_size is not None and (not isinstance(max_size, int) or max_size < len(SPECIALS)):
        raise ValueError(f"max_size: expected None or an int >= {len(SPECIALS)}, got {max_size!r}")
    counts = collections.Counter()
    for text in texts:
        counts.update(tokenize(text, level))
    ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    tokens = SPECIALS + tuple(ranked)
    if max_size is not None:
        tokens = tokens[:max_size]
    return Vocab(tokens, {t: i for i, t in enumerate(tokens)}, level)


def encode(vocab: Vocab, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of ``text`` (``UNK`` for unknown tokens), optionally framed by BOS / EOS."""
    ids = [vocab.index.get(t, UNK) for t in tokenize(text, vocab.level)]
    return [BOS] * add_bos + ids + [EOS] * add_eos


def decode(vocab: Vocab, ids: Iterable[int]) -> str:
    """The text of ``ids``: stops at the first EOS and skips PAD and BOS."""
    out = []
    for i in np.asarray(list(ids), dtype=np.int64).reshape(-1).tolist():
        if not 0 <= i < len(vocab.tokens):
            raise ValueError(f"ids: expected ids in [0, {len(vocab.tokens)}), got {i}")
        if i == EOS:
            break
        if i not in (PAD, BOS):
            out.append(vocab.tokens[i])
    return "".join(out)


def pad_batch(
    sequences: Sequence[Sequence[int]], *, max_length: int | None = None, pad_id: int = PAD
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id sequences into ``(tokens [B, T] int32, lengths [B] int32)``.

    ``T`` is ``max_length`` if given (longer sequences raise), else the longest length.
    """
    lengths = np.array([len(s) for s in sequences], np.int32)
    longest = int(lengths.max()) if len(sequences) else 0
    T = longest if max_length is None else max_length
    if longest > T:
        raise ValueError(
            f"max_length: expected at least the longest sequence ({longest}), got {max_length}"
        )
    tokens = np.full((len(sequences), T), pad_id, np.int32)
    for row, s in zip(tokens, sequences, strict=True):
        row[: len(s)] = s
    return tokens, lengths
