"""Sweep plots for a paper (matplotlib, Agg; each figure as PNG and PDF).

* ``curves_<metric>``: the evaluation ``metric`` against step, one line per setting:
  the **mean over its finished seeds** with a shaded **min–max band** (the band
  shows every seed's spread, not an interval estimate). The y axis is logarithmic
  for a metric minimised (a loss, an error) whose values are all positive, linear
  for one maximised (an accuracy, R²), which a log axis would squash near its top.
* ``final_<metric>_vs_<key>``: the final ``metric`` against each swept
  hyperparameter: one dot per finished member (seed) and a line through the mean
  of all finished members that share that value (marginal over the other swept
  keys). The x axis is logarithmic for learning rates, for keys drawn
  log-uniformly in the random search and for positive values spanning 10× or
  more; non-numeric values are categories.

Diverged members are left out of both (their metrics are not finite); the
tables count them.
"""

import math
import re
from pathlib import Path

import numpy as np

from jaxrnn.sweep.summary import Setting, Summary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.tight_layout()
    for path in paths:
        fig.savefig(path)
    _pyplot().close(fig)
    return paths


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _label(overrides: dict) -> str:
    return (
        ", ".join(
            f"{k.split('.')[-1]}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in overrides.items()
        )
        or "all members"
    )


def _log_scale(key: str, values: list, spec) -> bool:
    """A learning rate, log-uniform in the random spec, or positive numbers spanning >= 10×."""
    if key.endswith("learning_rate") or (spec is not None and "log" in str(spec).lower()):
        return True
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        return False
    lo, hi = min(values), max(values)
    return lo > 0 and hi / lo >= 10.0


def curve(summary: Summary, setting: Setting, metric: str):
    """A setting's learning curve over its finished seeds: what :func:`learning_curves` draws.

    Returns:
      ``(steps [S], mean [S], min [S], max [S])`` over the finished members at the
      eval steps they all logged ``metric`` at; None if no finished member logged it.
    """
    runs = [
        m
        for m in summary.members
        if m.id in setting.members and m.status == "finished" and any(metric in r for r in m.evals)
    ]
    if not runs:
        return None
    # Members of one setting evaluate at the same steps; keep the common ones.
    steps = sorted(set.intersection(*({r["step"] for r in m.evals if metric in r} for m in runs)))
    values = np.array(
        [[{r["step"]: r[metric] for r in m.evals}[s] for s in steps] for m in runs], np.float64
    )
    return np.asarray(steps), values.mean(0), values.min(0), values.max(0)


def learning_curves(summary: Summary, metric: str, out_dir: Path) -> list[Path]:
    """Eval ``metric`` vs step per setting: mean over finished seeds, min–max band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=150)
    positive = True
    for setting in summary.settings:
        drawn = curve(summary, setting, metric)
        if drawn is None:
            continue
        steps, mean, lo, hi = drawn
        positive &= bool(np.all(lo > 0))
        (line,) = ax.plot(steps, mean, "o-", label=_label(setting.overrides), lw=1.5, ms=3)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    if positive and ax.lines and summary.directions.get(metric, "min") == "min":
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"eval {metric}")
    ax.set_title("mean over seeds, band: min–max", fontsize=9)
    if ax.lines:
        ax.legend(frameon=False, fontsize=7)
    return _save(fig, out_dir, f"curves_{_slug(metric)}")


def final_vs_hyperparameter(summary: Summary, metric: str, key: str, out_dir: Path) -> list[Path]:
    """Final ``metric`` against swept ``key``: one dot per seed, a line through the means."""
    plt = _pyplot()
    points = [
        (m.overrides[key], m.final[metric])
        for m in summary.members
        if m.status == "finished"
        and key in m.overrides
        and math.isfinite(m.final.get(metric, math.nan))
    ]
    xs = list(dict.fromkeys(x for x, _ in points))
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    xs = sorted(xs) if numeric else xs
    where = {x: (x if numeric else i) for i, x in enumerate(xs)}
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=150)
    ax.scatter(
        [where[x] for x, _ in points], [y for _, y in points], s=12, alpha=0.6, label="one seed"
    )
    means = [np.mean([y for x2, y in points if x2 == x]) for x in xs]
    ax.plot([where[x] for x in xs], means, "k-o", ms=4, lw=1.2, label="mean")
    if numeric and _log_scale(key, xs, summary.random.get(key)):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel(key)
    ax.set_ylabel(f"final {metric}")
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, out_dir, f"final_{_slug(metric)}_vs_{_slug(key)}")


def plot_all(summary: Summary, out_dir: str | Path) -> list[Path]:
    """Every plot of a sweep into ``out_dir``: curves and final-vs-key per summarised metric.

    Returns:
      The written files (a PNG and a PDF per figure).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in summary.metrics:
        written += learning_curves(summary, metric, out_dir)
        for key in summary.swept:
            written += final_vs_hyperparameter(summary, metric, key, out_dir)
    return written
