"""The tables, CSV and figure of the long-memory sweeps in experiments/README.md
("Adding problem: four cells at T = 100, 200, 400"; "Copying memory"), from their
sweep directories.

For each sweep (one per T, of ``configs/adding_cells.py`` or ``copying_cells.py``; or
several, comma-separated, whose cells are read together, e.g. one sweep per learning
rate) and each cell (``model.preset``): the learning rate of lowest mean validation
loss over the seeds (each seed's best evaluation, the one its checkpoint keeps;
:func:`jaxrnn.sweep.summary.best_of`); at that rate, the test
loss (mean ± sample std over the seeds that finished with a finite one, rounded as
the sweep tables round them, and each seed's value), the diverged seeds (stopped, or
ended with a non-finite test loss), and the **steps to solve**: each seed's first
evaluation step with validation loss below ``--threshold`` ("never" where none is).
Sweeps are read with :func:`jaxrnn.sweep.summary.read`, curves with
:func:`jaxrnn.sweep.plots.curve`.

Writes ``experiments/figures/<name>_curves.png`` (validation loss against step for
each cell at its chosen rate: mean over seeds, min–max band, the baseline dashed; the
y axis ends at 1) and
``experiments/figures/<name>.csv`` (one row per member: every number behind the
table), and prints the markdown table::

    python experiments/long_memory.py --threshold 0.01 adding_T200=sweeps/adding_cells_T200
"""

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jaxrnn.sweep import plots, summary, tables

FIGURES = Path(__file__).resolve().parent / "figures"
KEY, RATE = "model.preset", "optim.learning_rate"


def steps_to(member, metric: str, threshold: float) -> int | None:
    """The first evaluation step with validation ``metric`` below ``threshold``."""
    return next((r["step"] for r in member.evals if r.get(metric, np.inf) < threshold), None)


def learning_rate(folder: Path, setting) -> float:
    """The setting's learning rate: swept, or the base config's."""
    if RATE in setting.overrides:
        return setting.overrides[RATE]
    config = json.loads((folder / "members" / setting.members[0] / "config.json").read_text())
    return config["optim"]["learning_rate"]


def report(name: str, folders: list[Path], threshold: float) -> None:
    sweeps = [(summary.read(folder), folder) for folder in folders]
    metric, mode = sweeps[0][0].best_metric, sweeps[0][0].best_mode
    baseline = next(
        json.loads(p.read_text())["baseline"]
        for p in sorted((folders[0] / "members").glob("*/status.json"))
    )
    rows, lines = [], []
    fig, ax = plt.subplots(figsize=(6, 4))
    # (summary, folder, setting) over every sweep: member ids repeat across sweeps.
    settings = [(s, folder, st) for s, folder in sweeps for st in s.settings]
    for cell in dict.fromkeys(st.overrides[KEY] for _, _, st in settings):
        candidates = [entry for entry in settings if entry[2].overrides[KEY] == cell]
        for s, folder, st in candidates:
            members = {m.id: m for m in s.members}
            for i in st.members:
                m = members[i]
                rows.append(
                    {
                        "cell": cell,
                        "learning_rate": learning_rate(folder, st),
                        "seed": m.overrides["seed"],
                        "status": m.status,
                        "best_validation": m.best_validation.get(metric),
                        "test": m.final.get(metric) if m.status == "finished" else None,
                        "steps_to_threshold": steps_to(m, metric, threshold),
                    }
                )
        best, _ = summary.best_of([st for _, _, st in candidates], metric, mode)
        if best is None:  # a sweep still running
            lines.append(f"| {cell} | – | no seed finished | | | |")
            continue
        s, folder, chosen = candidates[best]
        members = {m.id: m for m in s.members}
        seeds = [members[i] for i in chosen.members]
        tests = [m.final[metric] for m in seeds if m.status == "finished"]
        # "skip" (the default of train.nonfinite) keeps a run going past non-finite
        # losses: a seed whose test loss is not finite diverged all the same.
        diverged = len(seeds) - sum(np.isfinite(tests))
        tests = [t for t in tests if np.isfinite(t)]
        solved = [steps_to(m, metric, threshold) for m in seeds]
        stats = summary.stats(tests)
        shown = tables.round_measurement(stats.mean, stats.std)
        rate = learning_rate(folder, chosen)
        lines.append(
            f"| {cell} | {rate:g} | {shown.mean} ± {shown.std} | "
            f"{', '.join(f'{t:.2g}' for t in tests)} | {diverged} | "
            f"{', '.join('never' if n is None else f'{n:,}' for n in solved)} |"
        )
        drawn = plots.curve(s, chosen, metric)
        if drawn is not None:
            steps, mean, lo, hi = drawn
            # A diverged seed's inf would leave the band unfilled: cut above the axis.
            mean, hi = np.minimum(mean, 10.0), np.minimum(hi, 10.0)
            (line,) = ax.plot(steps, mean, label=f"{cell} (lr {rate:g})")
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(baseline[metric], color="k", ls="--", lw=1, label=baseline["name"])
    ax.axhline(threshold, color="grey", ls=":", lw=1, label=f"{threshold:g}")
    # The y axis stops at 1: a spike above it (the IRNN's, up to 1e33, recovered from) is
    # drawn off the top rather than flattening every other curve.
    ax.set(yscale="log", xlabel="training step", ylabel=f"validation {metric}", title=name)
    ax.set_ylim(top=1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / f"{name}_curves.png", dpi=110)
    plt.close(fig)
    with open(FIGURES / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    where = ", ".join(str(f) for f in folders)
    print(f"\n### {name} ({where}); baseline ({baseline['name']}): {baseline[metric]:.4f}\n")
    print(
        f"| cell | learning rate | test {metric} | per seed | diverged "
        f"| steps to < {threshold:g} (validation) |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("sweeps", nargs="+", metavar="NAME=SWEEP_DIR[,SWEEP_DIR...]")
    args = parser.parse_args(argv)
    for pair in args.sweeps:
        name, _, folders = pair.partition("=")
        report(name, [Path(f) for f in folders.split(",")], args.threshold)


if __name__ == "__main__":
    main()
