"""jaxrnn: recurrent neural networks as pure JAX functions."""

from jaxrnn import models, trees
from jaxrnn.cells import initializers
from jaxrnn.cells.base import ACTIVATIONS, Cell
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRULayerNorm, GRUParams, gru
from jaxrnn.cells.layer_norm import LayerNormParams
from jaxrnn.cells.lstm import LSTMCarry, LSTMLayerNorm, LSTMParams, LSTMPeephole, lstm
from jaxrnn.combinators.dropout import DropoutCarry, ZoneoutCarry, variational_dropout, zoneout
from jaxrnn.combinators.layer import (
    BidirectionalCarry,
    BidirectionalParams,
    Layer,
    bidirectional,
    rnn,
    stack_layers,
)
from jaxrnn.combinators.learned_init import LearnedInitParams, learned_initial_carry
from jaxrnn.combinators.stack import StackCarry, StackParams, stack
from jaxrnn.rollout import fused
from jaxrnn.rollout.bptt import elman_bptt
from jaxrnn.rollout.diagnostics import (
    SpectralStats,
    hidden_grad_norms,
    jacobian_norms,
    recurrent_jacobians,
    spectral_stats,
)
from jaxrnn.rollout.scan import scan
from jaxrnn.rollout.tbptt import TBPTTResult, truncated_bptt

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BidirectionalCarry",
    "BidirectionalParams",
    "Cell",
    "DropoutCarry",
    "ElmanCarry",
    "ElmanParams",
    "GRUCarry",
    "GRULayerNorm",
    "GRUParams",
    "LSTMCarry",
    "LSTMLayerNorm",
    "LSTMParams",
    "LSTMPeephole",
    "Layer",
    "LayerNormParams",
    "LearnedInitParams",
    "SpectralStats",
    "StackCarry",
    "StackParams",
    "TBPTTResult",
    "ZoneoutCarry",
    "bidirectional",
    "elman",
    "elman_bptt",
    "fused",
    "gru",
    "hidden_grad_norms",
    "initializers",
    "jacobian_norms",
    "learned_initial_carry",
    "lstm",
    "models",
    "recurrent_jacobians",
    "rnn",
    "scan",
    "spectral_stats",
    "stack",
    "stack_layers",
    "trees",
    "truncated_bptt",
    "variational_dropout",
    "zoneout",
]
