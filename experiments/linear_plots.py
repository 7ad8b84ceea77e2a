"""Loss against steps and against wall time for the "Linear recurrences against a GRU"
sweeps, and their table (experiments/README.md).

For each sweep directory: the validation loss of every cell (mean over its seeds,
min–max band) against the training step and against the training wall time, with the
baseline as a dashed line, as ``experiments/figures/<name>_vs_step.png`` and
``<name>_vs_time.png``; and a markdown table of the test loss per cell (mean ± sample
std over the finished seeds, each seed's value), the chosen steps and the wall time.

Wall time is the training loop's own, rebuilt from ``metrics.jsonl``: each training
record's ``steps_per_s`` covers the steps since the one before, so the time at a step
is the sum of (steps / steps_per_s) up to it. It includes the first step's compilation
and excludes evaluation and checkpoints. A cell's seeds train as one vmapped program,
so the time is the cell's (all its seeds together), on 2 CPU cores shared with other jobs.

    python experiments/linear_plots.py NAME=SWEEP_DIR [NAME=SWEEP_DIR ...]
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

FIGURES = Path(__file__).resolve().parent / "figures"
COLORS = {"min_gru": "tab:blue", "lru": "tab:green", "gru": "tab:red"}


def member_curves(directory: Path, metric: str = "loss"):
    """``(steps, train seconds, validation metric)`` at the eval steps, the total time and
    the last step trained."""
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    clock, last, at = 0.0, 0, {0: 0.0}
    for r in records:
        if r["kind"] == "train":
            clock += (r["step"] - last) / r["steps_per_s"]
            last = r["step"]
            at[last] = clock
    evals = [r for r in records if r["kind"] == "eval" and r.get("split") == "validation"]
    steps = np.array([r["step"] for r in evals])
    values = np.array([r[metric] for r in evals])
    return steps, np.array([at[s] for s in steps]), values, clock, last


def main(pairs):
    FIGURES.mkdir(exist_ok=True)
    for pair in pairs:
        name, _, folder = pair.partition("=")
        sweep = json.loads((Path(folder) / "sweep.json").read_text())
        by_cell: dict[str, list] = {}
        for m in sweep["members"]:
            by_cell.setdefault(m["overrides"]["model.cell"], []).append(m["id"])
        figs = {x: plt.subplots(figsize=(6, 4)) for x in ("step", "time")}
        print(f"\n### {name} ({folder})\n")
        print(
            "| cell | seeds finished | test loss, mean ± std | per seed | chosen steps "
            "| steps run | train time (s) |"
        )
        print("|---|---|---|---|---|---|---|")
        baseline = None
        for cell, ids in by_cell.items():
            finals, chosen, curves, done = [], [], [], []
            for i in ids:
                d = Path(folder) / "members" / i
                status = (
                    json.loads((d / "status.json").read_text())
                    if (d / "status.json").exists()
                    else {}
                )
                if (d / "metrics.jsonl").exists():
                    curves.append(member_curves(d))
                    done.append(curves[-1][4])
                if status.get("status") == "finished":
                    finals.append(status["final"]["loss"])
                    chosen.append(status["chosen_step"])
                    baseline = status["baseline"]
            if finals:
                std = np.std(finals, ddof=1) if len(finals) > 1 else float("nan")
                seconds = max(c[3] for c in curves)
                print(
                    f"| {cell} | {len(finals)}/{len(ids)} | {np.mean(finals):.4f} ± {std:.4f} | "
                    f"{', '.join(f'{f:.4f}' for f in finals)} | {', '.join(map(str, chosen))} | "
                    f"{max(done)} | {seconds:.0f} |"
                )
            else:
                print(f"| {cell} | 0/{len(ids)} | — | — | — | {max(done, default=0)} | — |")
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            n = min(len(c[0]) for c in curves)
            losses = np.stack([c[2][:n] for c in curves])
            for x, col in (("step", 0), ("time", 1)):
                ax = figs[x][1]
                xs = np.mean([c[col][:n] for c in curves], axis=0)
                ax.plot(
                    xs,
                    losses.mean(0),
                    color=COLORS.get(cell),
                    label=f"{cell} ({len(curves)} seeds)",
                )
                ax.fill_between(xs, losses.min(0), losses.max(0), color=COLORS.get(cell), alpha=0.2)
        if baseline:
            print(f"\nbaseline ({baseline['name']}): {baseline['loss']:.4f}")
        for x, (fig, ax) in figs.items():
            if baseline:
                ax.axhline(baseline["loss"], color="k", ls="--", lw=1, label=baseline["name"])
            ax.set_yscale("log")
            ax.set_xlabel(
                "training step" if x == "step" else "training wall time (s), 2 shared CPU cores"
            )
            ax.set_ylabel("validation loss")
            ax.set_title(name)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(FIGURES / f"{name}_vs_{x}.png", dpi=110)
            plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
