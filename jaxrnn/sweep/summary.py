"""A sweep's results for a paper: per-setting statistics over seeds, as Markdown, CSV and LaTeX.

A *setting* is a member's swept overrides without ``seed``; the members of one
setting differ only in their seed. For each setting and each chosen test metric
(scored once per member, with its params chosen on validation) :func:`summarize`
computes, over the setting's **finished** members (diverged ones are counted, not
averaged)::

    mean = (1/n) sum_i m_i
    std  = sqrt( sum_i (m_i - mean)^2 / (n - 1) )      sample std (ddof = 1); NaN for n = 1
    min, max, n

and picks the best setting by its mean of the config's ``train.best_metric``
(in the direction the experiment's objective declares for it, recorded in each
member's ``status.json``, as the runner ranks checkpoints). It reads the layout
the sweep engine writes::

    SWEEP_DIR/sweep.json                  members: [{"id", "overrides", ...}], versions
    SWEEP_DIR/members/<id>/config.json    the member's resolved config
    SWEEP_DIR/members/<id>/metrics.jsonl  {"kind": "train"|"eval"|"test", "step", "loss", ...}
    SWEEP_DIR/members/<id>/status.json    {"status", "step", "final": {test metrics}, ...}

and writes ``summary.md``, ``summary.csv``, ``summary.tex`` (``booktabs``),
``plots/`` (:mod:`jaxrnn.sweep.plots`) and ``CITATION.bib`` (:mod:`jaxrnn.training.cite`:
jaxrnn with the versions used, and the data set where the experiment names it).

References:
  Fisher (1925), Statistical Methods for Research Workers (the ``n - 1`` sample variance).
  Fear, S. (2005), booktabs: publication-quality tables in LaTeX (CTAN).
"""

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


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
    """

    overrides: dict[str, Any]
    members: tuple[str, ...]
    seeds: tuple[int | None, ...]
    n_finished: int
    n_diverged: int
    stats: dict[str, Stats]


class Member(NamedTuple):
    """One member as read back from its directory."""

    id: str
    overrides: dict[str, Any]
    status: str  # finished, diverged, running, interrupted, or pending (no files yet)
    final: dict[str, float]
    evals: list[dict]  # the metrics.jsonl records of kind "eval", in step order


class Summary(NamedTuple):
    """What :func:`summarize` computed (and wrote as tables).

    Attributes:
      swept: the swept keys (``seed`` excluded), in order of first appearance.
      metrics: the summarised metrics; the first is ``best_metric`` when present.
      best_metric, best_mode: the ranking metric and ``"min"`` or ``"max"``.
      settings: one :class:`Setting` per distinct setting, in order of first member.
      best: index into ``settings`` of the best setting (None: none finished).
      members: every member, read back (for plots).
      random: the sweep's random-search spec (``sweep.json``), for plot scales.
    """

    swept: tuple[str, ...]
    metrics: tuple[str, ...]
    best_metric: str
    best_mode: str
    settings: tuple[Setting, ...]
    best: int | None
    members: tuple[Member, ...]
    random: dict[str, Any]


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
    return Member(entry["id"], dict(entry["overrides"]), status["status"], final, evals)


def setting_of(overrides: dict[str, Any]) -> dict[str, Any]:
    """A member's setting: its overrides without ``seed``."""
    return {k: v for k, v in overrides.items() if k != "seed"}


def stats(values: Sequence[float]) -> Stats:
    """Mean, sample std (ddof = 1; NaN for fewer than two values), min, max, n."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, 0)
    std = float(np.std(v, ddof=1)) if v.size > 1 else math.nan
    return Stats(float(v.mean()), std, float(v.min()), float(v.max()), int(v.size))


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


def read(sweep_dir: str | Path, metrics: Sequence[str] | str | None = None) -> Summary:
    """Read a sweep directory and compute its :class:`Summary` (writes nothing).

    Args:
      sweep_dir: the directory ``jaxrnn sweep`` wrote (layout in the module doc).
      metrics: test metrics to summarise; None: every one the finished
        members report, ``train.best_metric`` first.

    Returns:
      The :class:`Summary`.
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
            )
        )
    swept = tuple(dict.fromkeys(k for m in members for k in setting_of(m.overrides)))
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
    ranked = [
        i
        for i, s in enumerate(settings)
        if best_metric in s.stats and math.isfinite(s.stats[best_metric].mean)
    ]
    sign = 1.0 if mode == "min" else -1.0
    best = min(ranked, key=lambda i: sign * settings[i].stats[best_metric].mean, default=None)
    return Summary(
        swept, metrics, best_metric, mode, tuple(settings), best, members, spec.get("random") or {}
    )


# ------------------------------------------------------------------------- tables


def records(summary: Summary) -> list[dict[str, Any]]:
    """The summary as flat rows (the CSV): swept keys, counts, per metric mean/std/min/max/n."""
    rows = []
    for i, s in enumerate(summary.settings):
        row = {key: s.overrides.get(key) for key in summary.swept}
        row.update(
            n_members=len(s.members),
            n_finished=s.n_finished,
            n_diverged=s.n_diverged,
            best=i == summary.best,
        )
        for metric in summary.metrics:
            row.update({f"{metric}_{k}": v for k, v in s.stats[metric]._asdict().items()})
        rows.append(row)
    return rows


class _Style(NamedTuple):
    """How a display table differs between Markdown and LaTeX; the row logic is shared."""

    text: Any  # str -> str: escape a literal
    pm: str
    dash: str
    bold: Any  # str -> str


_MARKDOWN = _Style(lambda s: s.replace("|", r"\|"), " ± ", "–", lambda s: f"**{s}**")
_LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}
_LATEX = _Style(
    lambda s: "".join(_LATEX_SPECIALS.get(c, c) for c in s),
    r" $\pm$ ",
    "--",
    lambda s: rf"\textbf{{{s}}}",
)


def _display(summary: Summary, style: _Style) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the Markdown/LaTeX table (already escaped, best in bold)."""

    def num(x):
        return style.dash if not math.isfinite(x) else f"{x:.4g}"

    header = [style.text(k) for k in summary.swept] + ["finished", "diverged"]
    for metric in summary.metrics:
        header += [f"{style.text(metric)} (mean{style.pm.strip()}std)", "[min, max]"]
    body = []
    for i, s in enumerate(summary.settings):
        cells = [style.text(_value(s.overrides.get(k))) for k in summary.swept]
        cells += [f"{s.n_finished}/{len(s.members)}", str(s.n_diverged)]
        for metric in summary.metrics:
            st = s.stats[metric]
            cells += [f"{num(st.mean)}{style.pm}{num(st.std)}", f"[{num(st.min)}, {num(st.max)}]"]
        body.append([style.bold(c) for c in cells] if i == summary.best else cells)
    return header, body


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _caption(summary: Summary) -> str:
    if summary.best is None:
        best = "no setting finished"
    else:
        s = summary.settings[summary.best]
        where = ", ".join(f"{k}={_value(v)}" for k, v in s.overrides.items()) or "(the only one)"
        best = f"best ({summary.best_mode} mean {summary.best_metric}): {where}"
    return (
        "Test metrics per setting (each member scored once, with its params chosen on "
        "validation) over its finished seeds: mean ± sample std (ddof = 1, n = finished), "
        f"[min, max]; diverged members are not averaged. {best}."
    )


def markdown(summary: Summary) -> str:
    """The summary as a Markdown table with a caption line (best setting in bold)."""
    header, body = _display(summary, _MARKDOWN)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n\n" + _caption(summary) + "\n"


def latex(summary: Summary) -> str:
    """The summary as a LaTeX ``booktabs`` table (needs ``\\usepackage{booktabs}``)."""
    header, body = _display(summary, _LATEX)
    caption = _LATEX.text(_caption(summary)).replace("±", r"$\pm$")
    cols = "l" * len(summary.swept) + "rr" + "rr" * len(summary.metrics)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in body),
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{caption}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def csv_text(summary: Summary) -> str:
    """The :func:`records` as CSV; floats written with ``repr`` so they parse back exactly."""
    rows = records(summary)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def summarize(
    sweep_dir: str | Path, metrics: Sequence[str] | str | None = None, *, plots: bool = True
) -> Summary:
    """Summarise a finished (or partly finished) sweep and write its tables, plots and BibTeX.

    Writes ``summary.md``, ``summary.csv``, ``summary.tex``, ``plots/*.png|pdf``
    (unless ``plots=False``) and ``CITATION.bib`` into ``sweep_dir``.

    Args:
      sweep_dir: the sweep directory (layout in the module doc).
      metrics: test metrics to summarise; None: all, ``train.best_metric`` first.
      plots: also draw the learning curves and metric-vs-hyperparameter plots.

    Returns:
      The :class:`Summary` the tables show.

    Example:
      >>> s = summarize("runs/sweep-adding")
      >>> s.settings[s.best].overrides, s.settings[s.best].stats["loss"].mean
    """
    from jaxrnn.training import cite

    sweep_dir = Path(sweep_dir)
    summary = read(sweep_dir, metrics)
    (sweep_dir / "summary.md").write_text(markdown(summary))
    (sweep_dir / "summary.csv").write_text(csv_text(summary))
    (sweep_dir / "summary.tex").write_text(latex(summary))
    if plots:
        from jaxrnn.sweep import plots as plots_lib

        plots_lib.plot_all(summary, sweep_dir / "plots")
    # The sweep's versions and data set, and the union of its members' methods.
    cite.write_bibtex(sweep_dir / "CITATION.bib", cite.collect(sweep_dir))
    return summary
