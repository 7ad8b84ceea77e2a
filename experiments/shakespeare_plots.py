"""Bits per character against training wall time for the ``shakespeare_tbptt`` runs,
beside the Kneser-Ney line of each split, and their table (experiments/README.md).

Each setting (split, dropout, steps) of the given sweep directories is one curve:
validation bits per character (mean over its seeds, min–max band) against the
training loop's wall time in hours, rebuilt from ``metrics.jsonl`` as
``linear_plots.member_curves`` does (evaluation and checkpoints excluded; seeds of
one sweep group train as one program, so their time is the group's). The dashed
lines are ``BASELINES.md``'s best Kneser-Ney figure on each split's *test* part, the
bar the test results are held to; the markers at the end of each curve are those
test results. Writes ``experiments/figures/shakespeare_tbptt_bpc_vs_time.png``.

    python experiments/shakespeare_plots.py SWEEP_DIR [SWEEP_DIR ...]
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from linear_plots import FIGURES, member_curves

# BASELINES.md: interpolated Kneser-Ney at the order best on validation, test bpc.
KNESER_NEY = {"B": (2.146, "6-gram"), "C": (1.986, "7-gram")}
COLORS = {"B": "tab:blue", "C": "tab:red"}


def setting(config: dict) -> tuple[str, str]:
    """``(split, label)`` of a member's config: split, dropout and steps."""
    task, steps = config["task"], config["train"]["steps"]
    dropout = task["input_dropout"] or task["state_dropout"]
    regime = f"dropout {task['input_dropout']}/{task['state_dropout']}" if dropout else "no dropout"
    return task["split"], f"split {task['split']}, {regime}, {steps:,} steps"


def main(folders: list[str], out_dir: Path = FIGURES) -> Path:
    """Print the table, write the figure into ``out_dir``; returns its path."""
    runs: dict[tuple[str, str], list] = {}
    for folder in folders:
        for d in sorted((Path(folder) / "members").iterdir()):
            config = json.loads((d / "config.json").read_text())
            status = json.loads((d / "status.json").read_text())
            final = (
                status.get("final", {}).get("bits_per_char")
                if status["status"] == "finished"
                else None
            )
            runs.setdefault(setting(config), []).append((member_curves(d, "bits_per_char"), final))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    print("| setting | seeds finished | test bpc, mean ± std | per seed | train time (h) |")
    print("|---|---|---|---|---|")
    for (split, label), members in sorted(runs.items()):
        curves = [c for c, _ in members if len(c[0])]
        finals = [f for _, f in members if f is not None]
        hours = max(c[3] for c, _ in members) / 3600
        std = f" ± {np.std(finals, ddof=1):.3f}" if len(finals) > 1 else ""
        print(
            f"| {label} | {len(finals)}/{len(members)} | "
            f"{np.mean(finals):.3f}{std} | {', '.join(f'{f:.3f}' for f in finals)} | {hours:.2f} |"
            if finals
            else f"| {label} | 0/{len(members)} | — | — | {hours:.2f} |"
        )
        if not curves:  # a sweep still before its first evaluation
            continue
        n = min(len(c[0]) for c in curves)
        bpc = np.stack([c[2][:n] for c in curves])
        hours_at = np.mean([c[1][:n] for c in curves], axis=0) / 3600
        style = "-" if "no dropout" in label else ":"
        ax.plot(
            hours_at,
            bpc.mean(0),
            style,
            marker=".",
            color=COLORS[split],
            label=f"{label} ({len(curves)} seed{'s' * (len(curves) > 1)})",
        )
        ax.fill_between(hours_at, bpc.min(0), bpc.max(0), color=COLORS[split], alpha=0.15)
        if finals:
            ax.plot([hours_at[-1]] * len(finals), finals, "x", color=COLORS[split])
    for split in sorted({s for s, _ in runs}):
        value, order = KNESER_NEY[split]
        ax.axhline(
            value,
            color=COLORS[split],
            ls="--",
            lw=1,
            label=f"split {split}: Kneser-Ney {order}, test {value}",
        )
    ax.set_ylim(1.8, 2.6)
    ax.set_xlabel("training wall time (h), 2 CPU cores shared with other jobs")
    ax.set_ylabel("validation bits per character (x: test)")
    ax.set_title("shakespeare_tbptt: 2-layer LSTM (H = 384), truncated BPTT")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(exist_ok=True)
    out = out_dir / "shakespeare_tbptt_bpc_vs_time.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
