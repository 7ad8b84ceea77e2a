"""Test accuracy by number of operators of finished ``expressions_treelstm`` runs.

    python experiments/expressions_by_length.py RUN_DIR [RUN_DIR ...]

Prints one row per run: its cell and its accuracy, with the run's chosen params,
on the test expressions with n = 1, 2, ... operators (training saw 1..max_ops).
"""

import sys

import jax
import numpy as np

from jaxrnn.tasks import eval_batches
from jaxrnn.training import load_run


def by_length(workdir: str) -> tuple[str, dict[int, float]]:
    run = load_run(workdir)
    apply = jax.jit(run.model.apply)
    right, ops = [], []
    for batch in eval_batches(run.group.data, "test", 1000, 0):  # the whole test split
        logits = apply(run.params, batch.inputs, mask=batch.mask)
        right.append(np.asarray(np.argmax(logits, -1) == batch.targets))
        ops.append(np.asarray(batch.ops))
    right, ops = np.concatenate(right), np.concatenate(ops)
    return run.config.model.cell, {int(n): float(right[ops == n].mean()) for n in np.unique(ops)}


if __name__ == "__main__":
    rows = [by_length(w) for w in sys.argv[1:]]
    ns = sorted({n for _, acc in rows for n in acc})
    print("| cell | " + " | ".join(f"n={n}" for n in ns) + " |")
    print("|---|" + "---|" * len(ns))
    for cell, acc in rows:
        print(f"| {cell} | " + " | ".join(f"{100 * acc[n]:.0f}" for n in ns) + " |")
