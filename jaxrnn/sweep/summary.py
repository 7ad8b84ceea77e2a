"""A sweep's results for a paper: per-setting statistics over seeds, as Markdown, CSV and LaTeX.

A *setting* is a member's swept overrides without ``seed``; the members of one
setting differ only in their seed. For each setting and each chosen test metric
(scored once per member, with its params chosen on validation) :func:`summarize`
computes, over the setting's **finished** members (diverged ones are counted, not
averaged)::

    mean = (1/n) sum_i m_i
    std  = sqrt( sum_i (m_i - mean)^2 / (n - 1) )      sample std (ddof = 1); NaN for n = 1
    min, max, n

and picks the best setting on **validation**: by the mean over its trained seeds
of each seed's best validation ``train.best_metric`` (the value that chose its
checkpoint, ``best_validation`` in ``status.json``; a seed never finite there makes
its setting the worst), in the direction the experiment's objective declares for
it, as the runner ranks checkpoints. The test split never chooses, else its figures
would no longer estimate the chosen setting's error; only a sweep without a
validation split (a refit on train + validation) is ranked by its test means. It
reads the layout the sweep engine writes::

    SWEEP_DIR/sweep.json                  members: [{"id", "overrides", ...}], versions
    SWEEP_DIR/members/<id>/config.json    the member's resolved config
    SWEEP_DIR/members/<id>/metrics.jsonl  {"kind": "train"|"eval"|"test", "step", "loss", ...}
    SWEEP_DIR/members/<id>/status.json    {"status", "step", "final": {test metrics},
                                           "best_validation": {best_metric: value}, ...}

and writes ``summary.md``, ``summary.csv``, ``summary.tex`` (``booktabs``; rounding,
labels and the LaTeX options in :mod:`jaxrnn.sweep.tables`), ``plots/``
(:mod:`jaxrnn.sweep.plots`) and ``CITATION.bib`` (:mod:`jaxrnn.training.cite`:
jaxrnn with the versions used, and the data set where the experiment names it).

References:
  Fisher (1925), Statistical Methods for Research Workers (the ``n - 1`` sample variance).
  Fear, S. (2005), booktabs: publication-quality tables in LaTeX (CTAN).
"""

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxrnn.sweep.tables import csv_text, latex, markdown, records
from jaxrnn.training.labels import label_problems

__all__ = [  # the tables are written by jaxrnn.sweep.tables, and named here too
    "Member",
    "Setting",
    "Stats",
    "Summary",
    "best_of",
    "csv_text",
    "latex",
    "markdown",
    "read",
    "records",
    "setting_of",
    "stats",
    "summarize",
]


class Stats(NamedTuple):
    """One metric of one setting over its finished seeds (``std``: sample, ddof = 1)."""

    mean: float
    std: float
    min: float
    max: float
    n: int


class Setting(NamedTuple):
    """The members that share one setting (overrides without ``seed``).

    Attributes:
      overrides: ``{key: value}`` of the swept keys, ``seed`` excluded.
      members: member ids, in the order of ``sweep.json``.
      seeds: their seeds (None where ``seed`` was not swept).
      n_finished, n_diverged: members with that status.
      stats: ``{metric: Stats}`` over the finished members, for the summarised
        metrics and ``best_metric``.
      validation: each trained (finished or diverged) member's best validation
        ``best_metric``, the value that chose its checkpoint: infinitely bad for a
        member never finite on validation, so that its setting is not chosen
        (``n = 0``: no validation split).
    """

    overrides: dict[str, Any]
    members: tuple[str, ...]
    seeds: tuple[int | None, ...]
    n_finished: int
    n_diverged: int
    stats: dict[str, Stats]
    validation: Stats = Stats(math.nan, math.nan, math.nan, math.nan, 0)


class Member(NamedTuple):
    """One member as read back from its directory."""

    id: str
    overrides: dict[str, Any]
    status: str  # finished, diverged, running, interrupted, or pending (no files yet)
    final: dict[str, float]
    evals: list[dict]  # the metrics.jsonl records of kind "eval", in step order
    best_validation: dict[str, float]  # status.json's: {best_metric: value}


class Summary(NamedTuple):
    """What :func:`summarize` computed (and wrote as tables).

    Attributes:
      swept: the swept keys (``seed`` excluded), in order of first appearance.
      metrics: the summarised metrics; the first is ``best_metric`` when present.
      best_metric, best_mode: the ranking metric and ``"min"`` or ``"max"``.
      settings: one :class:`Setting` per distinct setting, in order of first member.
      best: index into ``settings`` of the best setting (None: none finished).
      best_by: ``"validation"``, or ``"test"`` where a finished setting has no
        validation value (a sweep without a validation split).
      members: every member, read back (for plots).
      random: the sweep's random-search spec (``sweep.json``), for plot scales.
      directions: ``{metric: "min" | "max"}`` as the objective declares them
        (``status.json``); empty for a sweep that did not record them.
      labels: ``{key or metric: text}`` for the tables: the experiment's ``LABELS``
        (``sweep.json``), then those given to :func:`read`.
    """

    swept: tuple[str, ...]
    metrics: tuple[str, ...]
    best_metric: str
    best_mode: str
    settings: tuple[Setting, ...]
    best: int | None
    members: tuple[Member, ...]
    random: dict[str, Any]
    directions: dict[str, str]
    labels: dict[str, str]
    best_by: str = "validation"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"sweep_dir: expected {path.name} at {path} (written by `jaxrnn sweep`); not found"
        ) from None


def _read_member(member_dir: Path, entry: dict) -> Member:
    # A member whose group has not started yet (a sweep still running, or killed)
    # has no files: it is "pending", counted but not summarised.
    path = member_dir / "status.json"
    status = json.loads(path.read_text()) if path.exists() else {"status": "pending"}
    log = member_dir / "metrics.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    # A line cut by a kill is skipped, as the train loop does when it resumes.
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    evals = sorted((r for r in records if r["kind"] == "eval"), key=lambda r: r["step"])
    # status.json carries the test metrics; a member without them (e.g. killed
    # before writing it) falls back to its last logged evaluation.
    final = status.get("final") or (
        {k: v for k, v in evals[-1].items() if k not in ("kind", "step")} if evals else {}
    )
    best = status.get("best_validation") or {}
    return Member(entry["id"], dict(entry["overrides"]), status["status"], final, evals, best)


def _validation(member: Member, metric: str, worst: float) -> float | None:
    """A trained member's best validation ``metric``: ``worst`` where it was evaluated
    but never finitely (diverged before its first finite evaluation), None where it
    has no validation split or has not finished training."""
    if member.status not in ("finished", "diverged"):
        return None
    if metric in member.best_validation:
        return member.best_validation[metric]
    return worst if member.evals else None


def setting_of(overrides: dict[str, Any]) -> dict[str, Any]:
    """A member's setting: its overrides without ``seed``."""
    return {k: v for k, v in overrides.items() if k != "seed"}


def stats(values: Sequence[float]) -> Stats:
    """Mean, sample std (ddof = 1; NaN for fewer than two values), min, max, n."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, 0)
    with np.errstate(invalid="ignore"):  # an infinite value: std NaN
        std = float(np.std(v, ddof=1)) if v.size > 1 else math.nan
    return Stats(float(v.mean()), std, float(v.min()), float(v.max()), int(v.size))


def best_of(settings: Sequence[Setting], metric: str, mode: str) -> tuple[int | None, str]:
    """The best of ``settings`` and what chose it: the best finite mean validation value
    (:attr:`Setting.validation`, of the sweep's ``best_metric``) in direction ``mode``
    (``"min"`` or ``"max"``), or, where a setting that finished has no validation
    value, the best mean test ``metric``.

    Returns:
      ``(index into settings or None where none has a finite value, "validation" or
      "test")``.
    """
    finished = [s for s in settings if s.n_finished]
    by = "validation" if all(s.validation.n for s in finished) else "test"

    def value(s: Setting) -> float:
        return s.validation.mean if by == "validation" else s.stats[metric].mean

    ranked = [i for i, s in enumerate(settings) if s.n_finished and math.isfinite(value(s))]
    sign = 1.0 if mode == "min" else -1.0
    return min(ranked, key=lambda i: sign * value(settings[i]), default=None), by


def _choose_metrics(members: Sequence[Member], metrics, best_metric: str) -> tuple[str, ...]:
    present = {k for m in members if m.status == "finished" for k in m.final}
    if metrics is None:
        rest = sorted(present - {best_metric})
        return ((best_metric,) if best_metric in present else ()) + tuple(rest)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    missing = [m for m in metrics if m not in present]
    if missing:
        raise ValueError(
            f"metrics: expected test metrics of the finished members "
            f"({', '.join(sorted(present)) or 'none'}), got unknown {', '.join(missing)}"
        )
    return metrics


def read(
    sweep_dir: str | Path,
    metrics: Sequence[str] | str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Summary:
    """Read a sweep directory and compute its :class:`Summary` (writes nothing).

    Args:
      sweep_dir: the directory ``jaxrnn sweep`` wrote (layout in the module doc).
      metrics: test metrics to summarise; None: every one the finished
        members report, ``train.best_metric`` first.
      labels: ``{key: text}`` column labels for the tables, over the experiment's
        ``LABELS``: a config key as in an override (``optim.learning_rate``) or a
        metric (``loss``); see :mod:`jaxrnn.sweep.tables`.

    Returns:
      The :class:`Summary`.

    Raises:
      ValueError: an unknown metric, or a label for a key that is neither a config
        key nor a metric of the sweep (naming it).
    """
    sweep_dir = Path(sweep_dir)
    spec = _read_json(sweep_dir / "sweep.json")
    entries = spec.get("members") or []
    if not entries:
        raise ValueError(f"sweep_dir: {sweep_dir / 'sweep.json'} lists no members")
    members = tuple(_read_member(sweep_dir / "members" / e["id"], e) for e in entries)
    configs = [sweep_dir / "members" / e["id"] / "config.json" for e in entries]
    config = _read_json(next((p for p in configs if p.exists()), configs[0]))
    best_metric = config["train"]["best_metric"]
    metrics = _choose_metrics(members, metrics, best_metric)

    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(json.dumps(setting_of(m.overrides), sort_keys=True), []).append(m)
    # The best setting is ranked by best_metric even where it is not shown.
    computed = tuple(dict.fromkeys((*metrics, best_metric)))
    settings = []
    statuses = [sweep_dir / "members" / e["id"] / "status.json" for e in entries]
    directions = next(
        (
            _read_json(p)["directions"]
            for p in statuses
            if p.exists() and "directions" in _read_json(p)
        ),
        {},
    )
    mode = directions.get(best_metric, "min")
    worst = math.inf if mode == "min" else -math.inf
    for group in groups.values():
        finished = [m for m in group if m.status == "finished"]
        settings.append(
            Setting(
                setting_of(group[0].overrides),
                tuple(m.id for m in group),
                tuple(m.overrides.get("seed") for m in group),
                len(finished),
                sum(m.status == "diverged" for m in group),
                {k: stats([m.final[k] for m in finished if k in m.final]) for k in computed},
                stats([v for m in group if (v := _validation(m, best_metric, worst)) is not None]),
            )
        )
    swept = tuple(dict.fromkeys(k for m in members for k in setting_of(m.overrides)))
    problems = label_problems(labels or {}, config, {*directions, *metrics})
    if problems:
        raise ValueError("labels: " + "; ".join(problems))
    best, best_by = best_of(settings, best_metric, mode)
    return Summary(
        swept,
        metrics,
        best_metric,
        mode,
        tuple(settings),
        best,
        members,
        spec.get("random") or {},
        directions,
        {**(spec.get("labels") or {}), **(labels or {})},
        best_by,
    )


def summarize(
    sweep_dir: str | Path,
    metrics: Sequence[str] | str | None = None,
    *,
    plots: bool = True,
    labels: Mapping[str, str] | None = None,
    siunitx: bool = False,
) -> Summary:
    """Summarise a finished (or partly finished) sweep and write its tables, plots and BibTeX.

    Writes ``summary.md``, ``summary.csv``, ``summary.tex``, ``plots/*.png|pdf``
    (unless ``plots=False``) and ``CITATION.bib`` into ``sweep_dir``.

    Args:
      sweep_dir: the sweep directory (layout in the module doc).
      metrics: test metrics to summarise; None: all, ``train.best_metric`` first.
      plots: also draw the learning curves and metric-vs-hyperparameter plots.
      labels: column labels over the experiment's ``LABELS`` (see :func:`read`).
      siunitx: ``summary.tex`` with ``siunitx`` ``S`` columns (see
        :func:`jaxrnn.sweep.tables.latex`).

    Returns:
      The :class:`Summary` the tables show.

    Raises:
      ValueError: an unknown metric or label key (see :func:`read`).

    Example:
      >>> s = summarize("runs/sweep-adding", labels={"optim.learning_rate": r"$\\eta$"})
      >>> s.settings[s.best].overrides, s.settings[s.best].stats["loss"].mean
    """
    from jaxrnn.training import cite

    sweep_dir = Path(sweep_dir)
    summary = read(sweep_dir, metrics, labels)
    (sweep_dir / "summary.md").write_text(markdown(summary))
    (sweep_dir / "summary.csv").write_text(csv_text(summary))
    (sweep_dir / "summary.tex").write_text(latex(summary, siunitx=siunitx))
    if plots:
        from jaxrnn.sweep import plots as plots_lib

        plots_lib.plot_all(summary, sweep_dir / "plots")
    # The sweep's versions and data set, and the union of its members' methods.
    cite.write_bibtex(sweep_dir / "CITATION.bib", cite.collect(sweep_dir))
    return summary
