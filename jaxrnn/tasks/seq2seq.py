"""Sequence-to-sequence batches and their objective: teacher-forced cross-entropy and exact match.

* :class:`Seq2SeqBatch`: source ids and lengths, decoder inputs ``<bos> + target``,
  decoder targets ``target + <eos>`` and their mask.
* :func:`objective`: the mean cross-entropy over the valid target tokens of the
  teacher-forced logits (optionally with scheduled sampling, Bengio et al. 2015)
  and token accuracy; at evaluation also the exact-match accuracy of greedy
  decoding (jit-compiled, ``max_length = T``, early stop on ``<eos>``).
* :func:`model`: the encoder-decoder of a cell factory, with or without attention.

References:
  Sutskever, Vinyals, Le (2014). Sequence to Sequence Learning with Neural Networks. NeurIPS.
  Bengio, Vinyals, Jaitly, Shazeer (2015). Scheduled Sampling for Sequence
  Prediction with Recurrent Neural Networks. NeurIPS.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.references import Reference
from jaxrnn.combinators.layer import BIDIRECTIONAL, bidirectional
from jaxrnn.models import Seq2Seq, attention, beam_search, greedy, seq2seq_model
from jaxrnn.models import seq2seq as seq2seq_lib
from jaxrnn.models.vocab import BOS, EOS, PAD
from jaxrnn.tasks import losses
from jaxrnn.tasks.objectives import Objective, mean, value

ATTENTIONS = {
    "additive": lambda size: attention.additive(size),
    "dot": lambda size: attention.dot(),
    "general": lambda size: attention.general(),
}


class Seq2SeqBatch(NamedTuple):
    """A batch of source and target token sequences (int32 ids)."""

    source: jax.Array  # [B, S] right-padded with <pad>
    source_lengths: jax.Array  # [B]
    target_in: jax.Array  # [B, T]: <bos> + target, then <pad>
    targets: jax.Array  # [B, T]: target + <eos>, then <pad>
    mask: jax.Array  # [B, T] bool: the valid positions of ``targets``


def model(
    make_cell: Callable[[], object],
    vocab_size: int,
    *,
    embedding_size: int,
    hidden_size: int,
    attention_kind: str | None = None,
    bidirectional_encoder: bool = False,
    target_vocab_size: int | None = None,
    **options,
) -> Seq2Seq:
    """An encoder-decoder from ``vocab_size`` source ids to ``target_vocab_size`` target
    ids (None: the same vocabulary): ``make_cell()`` as the encoder (inside
    :func:`jaxrnn.bidirectional` if ``bidirectional_encoder``) and as the decoder, with
    attention of ``attention_kind`` (``"additive"``: ``A = hidden_size``; ``"dot"``;
    ``"general"``) or none. ``options`` go to :func:`jaxrnn.models.seq2seq_model` as they
    are: ``style`` (the decoder with attention, ``"luong"``: input feeding;
    ``"bahdanau"``: the context enters the recurrence and the readout),
    ``attentional_size``, ``bridge_mode``, ``dtype``."""
    encoder = make_cell()
    if bidirectional_encoder:
        encoder = bidirectional(encoder)
    att = None if attention_kind is None else ATTENTIONS[attention_kind](hidden_size)
    return seq2seq_model(
        encoder, make_cell(), vocab_size, target_vocab_size or vocab_size,
        embedding_size=embedding_size, attention=att, **options,
    )  # fmt: skip


def references(
    attention_kind: str | None = None,
    bidirectional_encoder: bool = False,
    sampling_prob: float = 0.0,
    attention_style: str = "luong",
) -> list[Reference]:
    """The methods of :func:`model` (``attention_kind``, ``bidirectional_encoder``,
    ``attention_style``) trained by :func:`objective` (``sampling_prob``), each with its
    paper, for an experiment's model section to list (``references()``, see
    :func:`jaxrnn.training.section`).

    The encoder-decoder (Sutskever et al. 2014; Cho et al. 2014); with attention, its
    score (``"additive"``: Bahdanau et al. 2015; ``"dot"``, ``"general"``: Luong et al.
    2015) and its decoder (``"luong"``: Luong et al.'s input feeding; ``"bahdanau"``:
    Bahdanau et al.'s); a bidirectional encoder (Schuster &
    Paliwal 1997); scheduled sampling (Bengio et al. 2015) where ``sampling_prob > 0``.
    The cell's own references are the model config's.
    """
    found = list(seq2seq_lib.ENCODER_DECODER)
    if attention_kind is not None:
        found += [attention.SCORES[attention_kind], seq2seq_lib.DECODERS[attention_style]]
    if bidirectional_encoder:
        found.append(BIDIRECTIONAL)
    if sampling_prob > 0.0:
        found.append(seq2seq_lib.SCHEDULED_SAMPLING)
    return found


def exact_match(model: Seq2Seq, params, batch: Seq2SeqBatch) -> jax.Array:
    """Per-example ``[B]`` bool: greedy decoding reproduces ``targets`` exactly.

    Decoding runs at most ``T`` steps and emits ``<pad>`` after ``<eos>``, as
    ``targets`` does, so a right answer matches at every position (its EOS included).
    """
    state = model.init_decode_state(params, batch.source, batch.source_lengths)
    out = greedy(
        model.decode_step, params, state, bos_id=BOS, eos_id=EOS,
        max_length=batch.targets.shape[1], pad_id=PAD,
    )  # fmt: skip
    return jnp.all(out.tokens == batch.targets.astype(out.tokens.dtype), axis=1)


def objective(
    model: Seq2Seq, sampling_prob: float = 0.0, *, exact_match_metric: bool = True
) -> Objective:
    """The objective of an encoder-decoder on :class:`Seq2SeqBatch` es.

    ``loss`` is the mean cross-entropy (nats) over the valid target tokens of the
    teacher-forced logits, ``accuracy`` the share of them predicted right (both exact
    means over a split's tokens). With ``sampling_prob > 0`` the training pass feeds
    the model's own samples with that probability (scheduled sampling); evaluation
    (``key=None``) always teacher-forces, and adds ``exact_match``, the share of
    examples that greedy decoding gets exactly right, unless ``exact_match_metric``
    is False (long outputs, which are never exactly right: translated sentences).
    """

    def loss(params, batch: Seq2SeqBatch, key):
        prob = sampling_prob if key is not None else 0.0
        logits, _ = model.apply_teacher_forced(
            params, batch.source, batch.source_lengths, batch.target_in, key=key,
            sampling_prob=prob,
        )  # fmt: skip
        ce = mean(losses.item_cross_entropy(logits, batch.targets), batch.mask)
        metrics = {
            "loss": ce,
            "accuracy": mean(losses.item_correct(logits, batch.targets), batch.mask),
        }
        if key is None and exact_match_metric:
            metrics["exact_match"] = jnp.mean(exact_match(model, params, batch).astype(jnp.float32))
        return value(ce), metrics

    directions = {"accuracy": "max"} | ({"exact_match": "max"} if exact_match_metric else {})
    return Objective(loss, directions)


def translate(
    model: Seq2Seq,
    params,
    source,
    source_lengths,
    *,
    beam_size: int = 1,
    alpha: float = 0.0,
    max_length: int,
) -> list[list[int]]:
    """The best output of each source: its ids up to, not including, ``<eos>``.

    Greedy decoding for ``beam_size=1``, else :func:`~jaxrnn.models.beam_search` with
    length-penalty exponent ``alpha``; at most ``max_length`` tokens each.
    """  # fmt: skip
    state = jax.jit(model.init_decode_state)(params, source, source_lengths)
    bounds = dict(bos_id=BOS, eos_id=EOS, max_length=max_length, pad_id=PAD)
    if beam_size == 1:
        out = greedy(model.decode_step, params, state, **bounds)
        tokens, lengths = out.tokens, out.lengths
    else:
        out = beam_search(
            model.decode_step, params, state, beam_size=beam_size, alpha=alpha, **bounds
        )
        tokens, lengths = out.tokens[:, 0], out.lengths[:, 0]
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    outputs = [row[:n].tolist() for row, n in zip(tokens, lengths, strict=True)]
    return [ids[: ids.index(EOS)] if EOS in ids else ids for ids in outputs]
