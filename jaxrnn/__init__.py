"""jaxrnn: recurrent neural networks as pure JAX functions."""

from jaxrnn import initializers
from jaxrnn.cell import ACTIVATIONS, Cell
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRULayerNorm, GRUParams, gru
from jaxrnn.cells.lstm import LSTMCarry, LSTMLayerNorm, LSTMParams, LSTMPeephole, lstm
from jaxrnn.layer_norm import LayerNormParams
from jaxrnn.learned_init import LearnedInitParams, learned_initial_carry
from jaxrnn.rollout import scan

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Cell",
    "ElmanCarry",
    "ElmanParams",
    "GRUCarry",
    "GRULayerNorm",
    "GRUParams",
    "LSTMCarry",
    "LSTMLayerNorm",
    "LSTMParams",
    "LSTMPeephole",
    "LayerNormParams",
    "LearnedInitParams",
    "elman",
    "gru",
    "initializers",
    "learned_initial_carry",
    "lstm",
    "scan",
]
