"""jaxrnn train addition_seq2seq

Multi-digit addition written as characters, ``"123+45"`` -> ``"168"`` (operands of
1-3 digits; Zaremba & Sutskever 2014), learnt by an LSTM encoder-decoder (H = 128,
embeddings of 32) with additive attention (Bahdanau et al. 2015, in Luong et al.
2015's input-feeding decoder). The comparison without attention, where the source
reaches the decoder only through the encoder's final carry::

    jaxrnn train addition_seq2seq model.attention=none

Expected (measured on 2 CPU cores, seed 0, 3,000 steps of 128 problems): exact-match
accuracy of greedy decoding on 2,000 held-out problems (10% of all problems, never
drawn for training) about 96% with attention and 89% without (experiments/README.md).
"""

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from jaxrnn import models, tasks
from jaxrnn.tasks import addition, seq2seq
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section


@section
class Addition:
    """The problems: operands of 1 to ``digits`` digits."""

    digits: Annotated[int, Field(ge=1, le=addition.MAX_DIGITS)] = 3


@section
class Seq2SeqModel(ModelConfig):
    """An encoder-decoder: the cell of :class:`~jaxrnn.training.ModelConfig` as encoder
    and decoder, plus

    Attributes:
      embedding_size: the width of the character embeddings.
      attention: the decoder's Luong attention over the encoder outputs,
        ``"additive"`` (Bahdanau et al. 2015), ``"dot"`` or ``"general"`` (Luong et
        al. 2015); None: the source is read through the final carry only.
      attention_style: the decoder around the attention: ``"luong"`` (Luong et al.
        2015: the attentional state ``tanh(W_c [c_t; h_t])`` is read out and fed to the
        next step) or ``"bahdanau"`` (Bahdanau et al. 2015: the context of the previous
        state enters the recurrence, and the readout reads ``[s_t; c_t]``).
      bidirectional: a bidirectional encoder (Schuster & Paliwal 1997).
      scheduled_sampling: the probability, in ``[0, 1)``, of feeding the decoder its
        own sampled token instead of the true one in training (Bengio et al. 2015).
    """

    embedding_size: PositiveInt = 32
    attention: Literal["additive", "dot", "general"] | None = "additive"
    attention_style: Literal["luong", "bahdanau"] = "luong"
    bidirectional: bool = False
    scheduled_sampling: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    def references(self):
        """The cell's references (ModelConfig's) and the encoder-decoder's (``jaxrnn cite``)."""
        own = seq2seq.references(
            self.attention, self.bidirectional, self.scheduled_sampling, self.attention_style
        )
        return [*super().references(), *own]

    @model_validator(mode="after")
    def _seq2seq(self):
        if self.dropout > 0.0 or self.remat is not None:
            raise ValueError(
                f"dropout={self.dropout} and remat={self.remat!r} are not supported by the "
                f"encoder-decoder; set model.dropout=0 and model.remat=none"
            )
        if self.attention == "dot" and self.bidirectional:
            raise ValueError(
                "attention='dot' needs decoder and encoder outputs of one width, but "
                "bidirectional=True doubles the encoder's; use 'general' or 'additive'"
            )
        return self


def get_config(smoke: bool = False) -> Config:
    """The addition experiment; ``smoke``: a seconds-long run with 2-digit operands and H = 16."""
    return Config(
        name="addition_seq2seq",
        seed=0,
        task=Addition(digits=2 if smoke else 3),
        model=Seq2SeqModel(
            cell="lstm", hidden_size=16 if smoke else 128, embedding_size=8 if smoke else 32
        ),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=30 if smoke else 3000,
            batch_size=16 if smoke else 128,
            eval_every=15 if smoke else 500,
            eval_batch_size=64 if smoke else 1000,
            eval_batches=1 if smoke else 2,
            checkpoint_every=15 if smoke else 1000,
            best_metric="exact_match",
        ),
    )


def get_data(config: Config) -> tasks.Stream:
    """Training problems, and held-out ones (validation and test draw their own)."""
    return addition.addition(config.task.digits)


def get_model(config: Config, data) -> models.Seq2Seq:
    """The encoder-decoder over the characters ``+0123456789`` and the specials."""
    m = config.model
    return seq2seq.model(
        lambda: make_cell(m),
        addition.addition_vocab().size,
        embedding_size=m.embedding_size,
        hidden_size=m.hidden_size,
        attention_kind=m.attention,
        bidirectional_encoder=m.bidirectional,
        style=m.attention_style,
    )


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Teacher-forced cross-entropy; greedy exact match at evaluation."""
    return seq2seq.objective(model, config.model.scheduled_sampling)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """A decoder that never reads its source: the training frequencies per position."""
    return tasks.baselines.position_prior(data, test, addition.addition_vocab().size)
