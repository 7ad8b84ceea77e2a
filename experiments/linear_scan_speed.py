"""The parallel/sequential speed ratio of a linear recurrence's training step.

For minGRU and the LRU at the sizes of the "Linear recurrences against a GRU" runs
(H = 64, batch 32; copying: 10 one-hot inputs, T = 520 and 1,020; adding: 2 inputs,
T = 1,000), times ``jax.grad`` of a loss through ``jaxrnn.scan(..., mode=m)`` for
``m = "sequential"`` (``lax.scan``) and ``"parallel"`` (associative scan), jit-compiled,
both modes interleaved, and prints the min over the timed calls of each and the ratio
sequential / parallel (> 1: the parallel engine is faster).

    python experiments/linear_scan_speed.py [--repeats 5]
"""

import argparse
import time

import jax
import jax.numpy as jnp

import jaxrnn

CELLS = {
    "min_gru": lambda H: jaxrnn.min_gru(H),
    "lru": lambda H: jaxrnn.lru(H, r_min=0.9, r_max=0.999, max_phase=jnp.pi / 10),
}
# (task, T, input size): the runs' sequences.
SHAPES = [("copying", 520, 10), ("adding", 1000, 2), ("copying", 1020, 10)]


def grad_step(cell, mode):
    """A jitted gradient of a scalar loss through the rollout in ``mode``."""

    def loss(params, xs):
        _, ys = jaxrnn.scan(cell, params, xs, mode=mode)
        return jnp.mean(ys**2)

    return jax.jit(jax.grad(loss))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per mode")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; H={args.hidden}, B={args.batch}")
    print("| cell | task | T | sequential (ms) | parallel (ms) | sequential / parallel |")
    print("|---|---|---|---|---|---|")
    for name, make in CELLS.items():
        cell = make(args.hidden)
        for task, T, inputs in SHAPES:
            params = cell.init(jax.random.key(0), inputs)
            xs = jax.random.normal(jax.random.key(1), (args.batch, T, inputs))
            fns = {m: grad_step(cell, m) for m in ("sequential", "parallel")}
            for fn in fns.values():
                timed(fn, params, xs)  # compile
            best = {m: float("inf") for m in fns}
            for _ in range(args.repeats):  # interleaved, so load changes hit both
                for m, fn in fns.items():
                    best[m] = min(best[m], timed(fn, params, xs))
            seq, par = 1e3 * best["sequential"], 1e3 * best["parallel"]
            print(f"| {name} | {task} | {T} | {seq:.1f} | {par:.1f} | {seq / par:.2f} |")


if __name__ == "__main__":
    main()
