import jax
import numpy as np
import torch

from jaxrnn.interop import torch as jt

# PyTorch -> jaxrnn: the module's weights, and a layer that computes what it computes.
module = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True).eval()
layer, params = jt.from_torch(module)

xs = np.random.default_rng(0).normal(size=(4, 10, 8)).astype(np.float32)  # [B, T, I]
final_carry, ys = layer.apply(params, xs)
h_n, c_n = jt.carry_to_torch(final_carry)  # PyTorch's layout: [num_layers * 2, B, H]

with torch.no_grad():
    ys_t, (h_t, c_t) = module(torch.from_numpy(xs))
print("outputs  max |jaxrnn - torch|:", np.abs(np.asarray(ys) - ys_t.numpy()).max())
print("h_n      max |jaxrnn - torch|:", (h_n - h_t).abs().max().item())
print("c_n      max |jaxrnn - torch|:", (c_n - c_t).abs().max().item())

# Train in JAX, then copy the params back into the module (in place).
params = jax.tree.map(lambda p: p * 0.5, params)  # stands in for a few optax steps
jt.to_torch(params, module)
with torch.no_grad():
    ys_t, _ = module(torch.from_numpy(xs))
print("after to_torch:", np.abs(np.asarray(layer.apply(params, xs)[1]) - ys_t.numpy()).max())

# Variable lengths: `lengths=` equals the module on pack_padded_sequence.
lengths = np.array([10, 7, 3, 1])
carry, ys = layer.apply(params, xs, lengths=lengths)
packed = torch.nn.utils.rnn.pack_padded_sequence(
    torch.from_numpy(xs), torch.from_numpy(lengths), batch_first=True
)
with torch.no_grad():
    out, (h_t, c_t) = module(packed)
ys_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=10)
print(
    "packed   max |jaxrnn - torch|:",
    np.abs(np.asarray(ys) - ys_t.numpy()).max(),
    (jt.carry_to_torch(carry)[0] - h_t).abs().max().item(),
)
