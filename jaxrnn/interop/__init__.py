"""Conversion to and from other frameworks' recurrent networks.

* :mod:`jaxrnn.interop.torch` — PyTorch ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``.

Each submodule imports its framework lazily, inside the functions that need it,
so ``import jaxrnn.interop.torch`` works without PyTorch installed.
"""
