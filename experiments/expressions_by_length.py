"""Test accuracy by number of operators of finished ``configs/expressions_treelstm.py`` runs.

    python experiments/expressions_by_length.py RUN_DIR [RUN_DIR ...]

Prints one row per run: its cell and its accuracy on the test expressions with
n = 1, 2, ... operators (training saw 1..max_ops).
"""

import sys

import jax
import numpy as np

from jaxrnn.training import loop


def by_length(workdir: str) -> tuple[str, dict[int, float]]:
    cfg, exp, state = loop.final_params(workdir)
    batch = exp.eval_task.batch(jax.random.key(0), 0, 10**6)  # the whole test split
    logits = jax.jit(exp.model.apply)(state.params, batch.inputs, mask=batch.mask)
    right = np.asarray(np.argmax(logits, -1) == batch.targets)
    ops = np.asarray(batch.ops)
    return cfg.model.cell, {int(n): float(right[ops == n].mean()) for n in np.unique(ops)}


if __name__ == "__main__":
    rows = [by_length(w) for w in sys.argv[1:]]
    ns = sorted({n for _, acc in rows for n in acc})
    print("| cell | " + " | ".join(f"n={n}" for n in ns) + " |")
    print("|---|" + "---|" * len(ns))
    for cell, acc in rows:
        print(f"| {cell} | " + " | ".join(f"{100 * acc[n]:.0f}" for n in ns) + " |")
