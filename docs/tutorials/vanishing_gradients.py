import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import initializers

T, I, H = 100, 4, 32
xs = jax.random.normal(jax.random.key(1), (T, I))  # one sequence [T, I]

cells = {
    "elman tanh, W_hh = 0.5 Q": jaxrnn.elman(H, recurrent_init=initializers.orthogonal(0.5)),
    "elman tanh, W_hh = 1.0 Q": jaxrnn.elman(H, recurrent_init=initializers.orthogonal(1.0)),
    "elman linear, W_hh = 1.1 Q": jaxrnn.elman(
        H, activation="identity", recurrent_init=initializers.orthogonal(1.1)
    ),
    "lstm, forget bias 1": jaxrnn.lstm(H),
    "lstm, chrono T_max = 100": jaxrnn.lstm(H, bias_init=initializers.chrono_lstm_bias(100.0)),
}
print(f"{'cell':28} {'|ds_T/ds_t|: t=99':>18} {'t=90':>9} {'t=50':>9} {'t=0':>9}  radius(J_50)")
for name, cell in cells.items():
    params = cell.init(jax.random.key(0), input_size=I)
    norms = jaxrnn.jacobian_norms(cell, params, xs, ord=2)  # [T]
    J = jaxrnn.recurrent_jacobians(cell, params, xs)  # [T, S, S]
    radius = jaxrnn.spectral_stats(J[50]).spectral_radius
    row = [norms[t] for t in (99, 90, 50, 0)]
    print(f"{name:28} {row[0]:18.3g} {row[1]:9.3g} {row[2]:9.3g} {row[3]:9.3g}  {radius:.3f}")

# The gradient of a loss on the last output only, reaching each step's carry (batch of 16):
cell = jaxrnn.elman(H, recurrent_init=initializers.orthogonal(1.0))
params = cell.init(jax.random.key(0), input_size=I)
batch = jax.random.normal(jax.random.key(2), (16, T, I))
g = jaxrnn.hidden_grad_norms(cell, params, batch, lambda ys: jnp.sum(ys[:, -1] ** 2))
print(
    "elman tanh, ||dL/ds_t|| averaged over the batch, t = 99, 90, 50, 0:",
    g.mean(0)[jnp.array([99, 90, 50, 0])],
)
