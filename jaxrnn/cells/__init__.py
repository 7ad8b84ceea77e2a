"""Built-in cells: Elman, GRU and LSTM (with layer-norm, peephole, projection options), and
the linear recurrences LRU, minGRU, minLSTM and RG-LRU (which run as parallel scans).

Importing the package registers them by name (:mod:`jaxrnn.cells.registry`).
"""

from jaxrnn.cells import elman, gru, lru, lstm, minimal, registry, rglru

__all__ = ["elman", "gru", "lru", "lstm", "minimal", "registry", "rglru"]
