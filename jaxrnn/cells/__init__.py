"""Built-in cells: Elman, GRU and LSTM (with layer-norm, peephole, projection options).

Importing the package registers them by name (:mod:`jaxrnn.cells.registry`).
"""

from jaxrnn.cells import elman, gru, lstm, registry

__all__ = ["elman", "gru", "lstm", "registry"]
