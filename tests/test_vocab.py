"""jaxrnn.models.vocab: round trips (hypothesis), counts against collections.Counter, padding."""

import collections
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrnn.models import vocab as V

TEXT = st.text(alphabet=st.sampled_from("ab cé,.\n\tZ0_<>"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=4), level=st.sampled_from(V.LEVELS))
def test_encode_decode_round_trip(texts, level):
    vocab = V.build_vocab(texts, level=level)
    for text in texts:
        ids = V.encode(vocab, text, add_bos=True, add_eos=True)
        assert ids[0] == V.BOS and ids[-1] == V.EOS and V.UNK not in ids
        assert V.decode(vocab, ids) == text
        # Padded, as in a batch: padding after EOS is ignored.
        tokens, lengths = V.pad_batch([ids, [V.BOS]], max_length=len(ids) + 3)
        assert V.decode(vocab, tokens[0]) == text and lengths[0] == len(ids)


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=4))
def test_ids_follow_counts(texts):
    """Oracle: collections.Counter over the characters, sorted by (-count, char)."""
    vocab = V.build_vocab(texts, level="char")
    counts = collections.Counter("".join(texts))
    assert vocab.tokens == V.SPECIALS + tuple(sorted(counts, key=lambda c: (-counts[c], c)))
    assert all(vocab.index[t] == i for i, t in enumerate(vocab.tokens))


def test_word_level_tokens_and_unknowns():
    vocab = V.build_vocab(["the cat, the hat.", "the end"], level="word")
    # "the" x3, " " x4; then count-1 tokens in lexicographic order.
    assert vocab.tokens[4:6] == (" ", "the")
    assert set(vocab.tokens[6:]) == {",", ".", "cat", "end", "hat"}
    assert V.tokenize("a  b,c", "word") == ["a", "  ", "b", ",", "c"]
    ids = V.encode(vocab, "the dog.")
    assert ids == [vocab.index["the"], vocab.index[" "], V.UNK, vocab.index["."]]
    assert V.decode(vocab, ids) == "the <unk>."
    assert re.fullmatch(r"\s+", V.tokenize("\t\n ", "word")[0])


def test_min_count_and_max_size():
    vocab = V.build_vocab(["aaabbc"], min_count=2)
    assert vocab.tokens == (*V.SPECIALS, "a", "b")
    assert V.encode(vocab, "abc") == [4, 5, V.UNK]
    assert V.build_vocab(["aaabbc"], max_size=5).tokens == (*V.SPECIALS, "a")
    assert V.build_vocab(["aaabbc"]).size == 7


def test_pad_batch():
    tokens, lengths = V.pad_batch([[5, 6, 7], [8], []])
    np.testing.assert_array_equal(tokens, [[5, 6, 7], [8, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    assert tokens.dtype == np.int32 and lengths.dtype == np.int32
    tokens, _ = V.pad_batch([[5]], max_length=3, pad_id=9)
    np.testing.assert_array_equal(tokens, [[5, 9, 9]])


def test_vocab_bad_inputs():
    with pytest.raises(TypeError, match="texts: expected an iterable of str, got a single str"):
        V.build_vocab("abc")
    with pytest.raises(ValueError, match=r"level: expected one of \('char', 'word'\), got 'byte'"):
        V.build_vocab(["abc"], level="byte")
    with pytest.raises(ValueError, match="min_count: expected a positive int, got 0"):
        V.build_vocab(["abc"], min_count=0)
    with pytest.raises(ValueError, match="max_size: expected None or an int >= 4, got 2"):
        V.build_vocab(["abc"], max_size=2)
    with pytest.raises(TypeError, match="text: expected a str, got int"):
        V.encode(V.build_vocab(["abc"]), 5)
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 7\), got 9"):
        V.decode(V.build_vocab(["abc"]), [4, 9])
    with pytest.raises(
        ValueError, match=r"max_length: expected at least the longest .*\(3\), got 2"
    ):
        V.pad_batch([[1, 2, 3]], max_length=2)
