"""Flax cells to jaxrnn and back, a jaxrnn cell inside nn.RNN, a Flax cell under jaxrnn.scan."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.interop import flax as jf

key, xs, lengths = jax.random.key(0), jnp.ones((4, 10, 8)), jnp.array([10, 7, 3, 1])
module = nn.LSTMCell(16)  # a Flax cell and its variables
variables = module.init(key, module.initialize_carry(key, (8,)), jnp.zeros(8))

cell, params = jf.from_flax(module, variables)  # jaxrnn.lstm(16) and LSTMParams
final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths)  # final: LSTMCarry(h, c)
back = jf.to_flax(params, module)  # and back, bit for bit
same = jax.tree.map(np.array_equal, back, variables)
print("round trip exact:", all(jax.tree.leaves(same)))

rnn = nn.RNN(jf.LinenCell(jaxrnn.gru(16)))  # a jaxrnn cell inside nn.RNN
rnn_vars = rnn.init(key, xs, seq_lengths=lengths)
print("nn.RNN over a jaxrnn GRU:", rnn.apply(rnn_vars, xs, seq_lengths=lengths).shape)

fcell, fparams = jf.flax_cell(module, variables)  # a Flax cell under jaxrnn.scan
resets = jnp.zeros((4, 10), bool).at[:, 5].set(True)
final, ys = jaxrnn.scan(fcell, fparams, xs, lengths=lengths, resets=resets)
print("Flax LSTM under jaxrnn.scan with resets:", ys.shape)
