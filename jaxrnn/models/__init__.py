"""Sequence models: many-to-one, many-to-many, one-to-many, encoder–decoder, decoding."""

from jaxrnn.models import attention, decoding, heads, vocab
from jaxrnn.models.attention import AdditiveParams, Attention, GeneralParams, additive, dot, general
from jaxrnn.models.decoding import Decoded, beam_search, greedy, sample
from jaxrnn.models.heads import MLP, Embedding, Linear, embed, linear, mlp
from jaxrnn.models.seq2seq import DecodeState, Seq2Seq, Seq2SeqParams, seq2seq_model
from jaxrnn.models.sequence import (
    EmbeddedParams,
    Model,
    ModelParams,
    OneToMany,
    OneToManyParams,
    OneToManyState,
    embedded,
    many_to_many,
    many_to_one,
    one_to_many,
)
from jaxrnn.models.vocab import Vocab, build_vocab, pad_batch

__all__ = [
    "MLP",
    "AdditiveParams",
    "Attention",
    "DecodeState",
    "Decoded",
    "EmbeddedParams",
    "Embedding",
    "GeneralParams",
    "Linear",
    "Model",
    "ModelParams",
    "OneToMany",
    "OneToManyParams",
    "OneToManyState",
    "Seq2Seq",
    "Seq2SeqParams",
    "Vocab",
    "additive",
    "attention",
    "beam_search",
    "build_vocab",
    "decoding",
    "dot",
    "embed",
    "embedded",
    "general",
    "greedy",
    "heads",
    "linear",
    "many_to_many",
    "many_to_one",
    "mlp",
    "one_to_many",
    "pad_batch",
    "sample",
    "seq2seq_model",
    "vocab",
]
