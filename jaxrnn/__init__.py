"""jaxrnn: recurrent neural networks as pure JAX functions."""

from jaxrnn import models, trees
from jaxrnn.cells import initializers
from jaxrnn.cells.base import ACTIVATIONS, Cell, Linear, Step
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRULayerNorm, GRUParams, gru
from jaxrnn.cells.layer_norm import LayerNormParams
from jaxrnn.cells.lru import LRUCarry, LRUParams, lru
from jaxrnn.cells.lstm import LSTMCarry, LSTMLayerNorm, LSTMParams, LSTMPeephole, lstm
from jaxrnn.cells.minimal import MinGRUParams, MinimalCarry, MinLSTMParams, min_gru, min_lstm
from jaxrnn.cells.rglru import RGLRUCarry, RGLRUParams, rg_lru
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
    "LRUCarry",
    "LRUParams",
    "LSTMCarry",
    "LSTMLayerNorm",
    "LSTMParams",
    "LSTMPeephole",
    "Layer",
    "LayerNormParams",
    "LearnedInitParams",
    "Linear",
    "MinGRUParams",
    "MinLSTMParams",
    "MinimalCarry",
    "RGLRUCarry",
    "RGLRUParams",
    "SpectralStats",
    "StackCarry",
    "StackParams",
    "Step",
    "TBPTTResult",
    "ZoneoutCarry",
    "bidirectional",
    "elman",
    "fused",
    "gru",
    "hidden_grad_norms",
    "initializers",
    "jacobian_norms",
    "learned_initial_carry",
    "lru",
    "lstm",
    "min_gru",
    "min_lstm",
    "models",
    "recurrent_jacobians",
    "rg_lru",
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
