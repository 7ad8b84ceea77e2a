"""Built-in cells: Elman, GRU and LSTM (with layer-norm, peephole, projection options)."""
