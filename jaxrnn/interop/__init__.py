"""Conversion to and from other frameworks' recurrent networks.

* :mod:`jaxrnn.interop.torch` — PyTorch ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``.
* :mod:`jaxrnn.interop.flax` — Flax's ``LSTMCell`` / ``GRUCell`` / ``SimpleCell``
  (linen and NNX) converted both ways, jaxrnn cells inside ``nn.RNN`` / ``nnx.RNN``,
  and Flax cells under :func:`jaxrnn.scan`.
* :mod:`jaxrnn.interop.entries` — the entries-and-shapes check both make before
  reading a weight.

PyTorch is optional: :mod:`jaxrnn.interop.torch` imports it lazily, inside the
functions that need it, so ``import jaxrnn.interop.torch`` works without PyTorch
installed. Flax is one of jaxrnn's dependencies, imported at the top.
"""
