"""Training glue for the text experiments: the seq2seq objective and its exact-match
evaluation, and sampling text from a trained character-level language model.

* :func:`seq2seq_objective`: teacher-forced cross-entropy over the valid target
  tokens (optionally with scheduled sampling, Bengio et al. 2015), token accuracy.
* :func:`seq2seq_eval_step`: the same metrics at ``key=None`` plus the exact-match
  accuracy of greedy decoding (jit-compiled, ``max_length = T``, early stop on EOS).
* :func:`generate`: prime a many-to-many char model with a prompt, then sample
  with :func:`jaxrnn.models.sample` through a one-hot ``decode_step``.

References:
  Sutskever, Vinyals, Le (2014). Sequence to Sequence Learning with Neural Networks. NeurIPS.
  Bengio, Vinyals, Jaitly, Shazeer (2015). Scheduled Sampling for Sequence
  Prediction with Recurrent Neural Networks. NeurIPS.
  Graves (2013). Generating Sequences With Recurrent Neural Networks. arXiv:1308.0850.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import losses
from jaxrnn.cell import Cell
from jaxrnn.models import Seq2Seq, attention, greedy, sample, seq2seq_model
from jaxrnn.models.heads import linear
from jaxrnn.models.sequence import ModelParams
from jaxrnn.models.vocab import BOS, EOS, PAD, Vocab, decode
from jaxrnn.rollout import scan
from jaxrnn.text import Seq2SeqBatch, encode_chars
from jaxrnn.training.config import ModelConfig

ATTENTIONS = {
    "additive": lambda size: attention.additive(size),
    "dot": lambda size: attention.dot(),
    "general": lambda size: attention.general(),
}


def seq2seq(cfg: ModelConfig, vocab_size: int, make_cell: Callable[[ModelConfig], Cell]) -> Seq2Seq:
    """The encoder-decoder of a config: ``make_cell(cfg)`` as the encoder (inside
    :func:`jaxrnn.bidirectional` if ``cfg.bidirectional``) and as the decoder,
    Luong attention of ``cfg.attention`` (additive: ``A = hidden_size``) or none."""
    encoder = make_cell(cfg)
    if cfg.bidirectional:
        encoder = jaxrnn.bidirectional(encoder)
    att = None if cfg.attention is None else ATTENTIONS[cfg.attention](cfg.hidden_size)
    return seq2seq_model(
        encoder,
        make_cell(cfg),
        vocab_size,
        vocab_size,
        embedding_size=cfg.embedding_size,
        attention=att,
    )


def seq2seq_objective(model: Seq2Seq, sampling_prob: float = 0.0) -> Callable:
    """``objective(params, batch: Seq2SeqBatch, key) -> (loss, metrics)``.

    ``loss`` is the mean cross-entropy (nats) over the valid target tokens of the
    teacher-forced logits; ``accuracy`` the share of them predicted right. With
    ``sampling_prob > 0`` the training pass (``key`` given) feeds the model's own
    samples with that probability (scheduled sampling); evaluation (``key=None``)
    always teacher-forces.
    """

    def objective(params, batch: Seq2SeqBatch, key):
        prob = sampling_prob if key is not None else 0.0
        logits, _ = model.apply_teacher_forced(
            params, batch.source, batch.source_lengths, batch.target_in, key=key,
            sampling_prob=prob,
        )  # fmt: skip
        loss = losses.cross_entropy(logits, batch.targets, batch.mask)
        return loss, {"loss": loss, "accuracy": losses.accuracy(logits, batch.targets, batch.mask)}

    return objective


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


def seq2seq_eval_step(model: Seq2Seq, objective: Callable) -> Callable:
    """``eval_step(params, batch) -> metrics`` (jitted): ``objective``'s metrics at
    ``key=None`` and ``exact_match``, the share of examples greedy decoding gets right."""

    def eval_step(params, batch: Seq2SeqBatch):
        metrics = objective(params, batch, None)[1]
        correct = exact_match(model, params, batch).astype(jnp.float32)
        return {**metrics, "exact_match": jnp.mean(correct)}

    return jax.jit(eval_step)


def char_decode_step(cell: Cell, vocab_size: int) -> Callable:
    """The step of a :func:`jaxrnn.models.many_to_many` model over one-hot characters::

        decode_step(params, carry, token [B]) -> (carry, logits [B, V], None)

    the same computation as one step of ``model.apply(params, one_hot(tokens))``.
    """

    def decode_step(params: ModelParams, carry, token):
        x = jax.nn.one_hot(token, vocab_size, dtype=jnp.float32)
        carry, y = cell.apply(params.cell, carry, x)
        return carry, linear(params.readout, y), None

    return decode_step


def generate(
    cell: Cell,
    params: ModelParams,
    vocab: Vocab,
    prompt: str,
    length: int,
    key: jax.Array,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> str:
    """Continue ``prompt`` by ``length`` characters sampled from a char model.

    The cell reads ``prompt[:-1]`` (one scan); sampling then starts from the
    prompt's last character: ``y_t ~ softmax(top_k(logits_t) / temperature)``
    (:func:`jaxrnn.models.sample`). ``top_k=1`` is greedy decoding.

    Args:
      cell: the model's cell; ``params``: its :class:`~jaxrnn.models.ModelParams`.
      vocab: the character vocabulary the model was trained with.
      prompt: at least one character, each in ``vocab``.
      length: characters to generate.
      key: PRNG key.
      temperature, top_k: see :func:`jaxrnn.models.sample`.

    Returns:
      ``prompt`` followed by the generated characters.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt: expected at least one character, got {prompt!r}")
    unknown = sorted({c for c in prompt if c not in vocab.index})
    if unknown:
        raise ValueError(f"prompt: characters {unknown} are not in the model's vocabulary")
    ids = jnp.asarray(encode_chars(vocab, prompt))[None]
    carry = cell.initial_carry(params.cell, (1,))
    if ids.shape[1] > 1:
        xs = jax.nn.one_hot(ids[:, :-1], vocab.size, dtype=jnp.float32)
        carry, _ = scan(cell, params.cell, xs, carry)
    out = sample(
        char_decode_step(cell, vocab.size), params, carry, key, bos_id=int(ids[0, -1]),
        eos_id=EOS, max_length=length, temperature=temperature, top_k=top_k,
    )  # fmt: skip
    return prompt + decode(vocab, out.tokens[0])
