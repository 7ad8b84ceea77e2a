"""jaxrnn: recurrent neural networks as pure JAX functions."""

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

# What `import jaxrnn` offers. Each name is imported on first use (PEP 562), so that
# `jaxrnn --help`, a config check or a sweep's status do not pay for importing jax and
# optax (about 1 s of a 2-core machine) before they need them. The imports below are
# the list: type checkers read them, _EXPORTS is read from them, and ruff checks that
# __all__ names each of them once.
if TYPE_CHECKING:
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


def _exports() -> dict[str, str]:
    """``{name: module}``, read from the imports above."""
    block = next(n for n in ast.parse(Path(__file__).read_text()).body if isinstance(n, ast.If))
    return {alias.name: node.module for node in block.body for alias in node.names}


_EXPORTS = _exports()
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxrnn' has no attribute {name!r}")
    parent = importlib.import_module(_EXPORTS[name])
    # A function or class of the module, or its submodule (models, fused, ...).
    if name in vars(parent):
        value = vars(parent)[name]
    else:
        value = importlib.import_module(f"{parent.__name__}.{name}")
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
