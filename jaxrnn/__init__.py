"""jaxrnn: recurrent neural networks as pure JAX functions."""

from jaxrnn import fused, initializers, models, trees
from jaxrnn.bptt import elman_bptt
from jaxrnn.cell import ACTIVATIONS, Cell
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRULayerNorm, GRUParams, gru
from jaxrnn.cells.lstm import LSTMCarry, LSTMLayerNorm, LSTMParams, LSTMPeephole, lstm
from jaxrnn.diagnostics import (
    SpectralStats,
    hidden_grad_norms,
    jacobian_norms,
    recurrent_jacobians,
    spectral_stats,
)
from jaxrnn.dropout import DropoutCarry, ZoneoutCarry, variational_dropout, zoneout
from jaxrnn.layer import (
    BidirectionalCarry,
    BidirectionalParams,
    Layer,
    bidirectional,
    rnn,
    stack_layers,
)
from jaxrnn.layer_norm import LayerNormParams
from jaxrnn.learned_init import LearnedInitParams, learned_initial_carry
from jaxrnn.rollout import scan
from jaxrnn.stack import StackCarry, StackParams, stack
from jaxrnn.tbptt import TBPTTResult, truncated_bptt

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
