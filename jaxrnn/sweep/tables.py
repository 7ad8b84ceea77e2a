"""A sweep summary as tables a paper can take unedited: Markdown, LaTeX and CSV.

Markdown and LaTeX are for people: rounded, labelled, the best setting in bold.
The CSV is for programs: raw keys (``optim.learning_rate``, ``loss_mean``) and
every digit (``repr``), so that it parses back to the same floats.

**Rounding** (Particle Data Group, *Review of Particle Physics*, Introduction,
"Rounding"): the std is rounded by its three leading digits, to two significant
figures for 100–354, to one for 355–949, and for 950–999 up to 1000 with two; the
mean ends at the same decimal place. ``0.01774 ± 0.0009632`` is ``0.0177 ± 0.0010``,
``0.03419 ± 0.008433`` is ``0.034 ± 0.008``. A mean without a spread (one finished
seed, or a std of 0) shows no ``±`` and :data:`FIGURES` significant figures; its
``[min, max]`` is rounded at the mean's place. Ties round away from zero, on the
shortest decimal that reads back as the float (``repr``), as by hand: 0.125 is 0.13.
A setting with no finished member shows a dash; a non-finite mean of finished
members shows ``NaN`` or ``∞``, without ``±``.

**Scientific notation**, one exponent per column, in its header: a metric column is
in fixed point while every row's scale ``max(|mean|, std)`` lies in [10⁻³, 10⁴);
otherwise it is written in units of 10ᵏ, k the multiple of 3 that puts the largest
scale in [1, 1000), and headed ``(×10ᵏ)`` (its ``[min, max]`` too). Digits follow
the rule above in those units.

**Labels**: a setting column is named by the key's last part, underscores as spaces
(``optim.learning_rate``: "learning rate"; the whole key where two swept keys share
their last part), a metric by ``"test "`` and its name (``loss``: "test loss"), then
the metric's direction, ↓ (lower is better, ``"min"``) or ↑ (``"max"``), as the
experiment's objective declares it. The experiment file's ``LABELS`` and the
``labels`` of :func:`jaxrnn.sweep.summarize` (``--label`` of ``jaxrnn sweep``) replace
the names, not the arrows; text between ``$`` signs is math, written as is in both
Markdown (GitHub renders it) and LaTeX, where the rest is escaped.

**LaTeX** uses ``booktabs`` rules; with ``siunitx=True`` the metric columns are
``siunitx`` v3 ``S`` columns whose ``table-format`` is derived from the data,
aligned on the decimal marker, with the uncertainty printed as ``± 0.0010``
(``uncertainty-mode = separate``), and numbers elsewhere in ``\\num{}``.

References:
  Particle Data Group (2024), Review of Particle Physics, Phys. Rev. D 110, 030001,
  Introduction, Sec. 5.3 "Rounding".
  Fear, S. (2005), booktabs: publication-quality tables in LaTeX (CTAN).
  Wright, J. (2021), siunitx v3: a comprehensive (SI) units package (CTAN).
"""

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # summary imports this module; the type is only named here
    from jaxrnn.sweep.summary import Summary

FIGURES = 3  # significant figures of a mean shown without an uncertainty
# Fixed point while every row's scale lies in [10**FIXED[0], 10**(FIXED[1] + 1)).
FIXED = (-3, 3)
# Enough digits for any float at any place (5e-324 to 1.8e308), so quantize never fails.
_CONTEXT = Context(prec=1000)


class Rounded(NamedTuple):
    """A mean and its std as table text (see the module doc for the rule).

    Attributes:
      mean: the mean in fixed point (``"0.0177"``), or ``"nan"``, ``"inf"``, ``"-inf"``.
      std: the std at the mean's place (``"0.0010"``); None where no ``±`` is shown.
      place: the decimal exponent of the last digit shown (-4 for ``0.0177``);
        None for a non-finite mean.
    """

    mean: str
    std: str | None
    place: int | None


def _decimal(x: float, exponent: int) -> Decimal:
    """``x / 10**exponent``, exactly, from the shortest decimal that reads back as ``x``."""
    return Decimal(repr(float(x))).scaleb(-exponent, _CONTEXT)


def _at(d: Decimal, place: int) -> str:
    """``d`` rounded at ``10**place`` (ties away from zero), fixed point, zero unsigned."""
    q = d.quantize(Decimal(1).scaleb(place), rounding=ROUND_HALF_UP, context=_CONTEXT)
    return f"{q.copy_abs() if q.is_zero() else q:f}"


def _pdg_place(std: Decimal) -> int:
    """The decimal place the PDG rule rounds ``std > 0`` at."""
    lead = std.adjusted()  # the exponent of its first significant digit
    three = int(std.scaleb(2 - lead).to_integral_value(rounding=ROUND_DOWN))
    # 100-354: two figures; 355-949: one; 950-999: one, which rounds up to 10 (two).
    return lead - 1 if three <= 354 else lead


def round_measurement(mean: float, std: float, exponent: int = 0) -> Rounded:
    """``mean ± std`` rounded for a table, in units of ``10**exponent``.

    Args:
      mean: the mean over seeds.
      std: its sample std; NaN (one seed) or 0 shows the mean alone.
      exponent: the column's power of ten (the values are divided by ``10**exponent``).

    Returns:
      The :class:`Rounded` text.

    Example:
      >>> round_measurement(0.01774, 0.0009632)
      Rounded(mean='0.0177', std='0.0010', place=-4)
      >>> round_measurement(0.01774, 0.0009632, exponent=-3)
      Rounded(mean='17.7', std='1.0', place=-1)
    """
    if not math.isfinite(mean):
        return Rounded(repr(float(mean)), None, None)
    m = _decimal(mean, exponent)
    if math.isfinite(std) and std > 0:
        place = _pdg_place(_decimal(std, exponent))
        return Rounded(_at(m, place), _at(_decimal(std, exponent), place), place)
    if m.is_zero():
        return Rounded("0", None, 0)
    place = m.adjusted() - (FIGURES - 1)
    return Rounded(_at(m, place), None, place)


def rounded_at(x: float, place: int | None, exponent: int = 0) -> str:
    """``x`` in units of ``10**exponent``, rounded at ``10**place`` (a row's ``[min,
    max]`` at its mean's place); ``place=None``: :data:`FIGURES` significant figures."""
    if not math.isfinite(x):
        return repr(float(x))
    if place is None:
        return round_measurement(x, math.nan, exponent).mean
    return _at(_decimal(x, exponent), place)


def column_exponent(values: Iterable[tuple[float, float]]) -> int:
    """The power of ten a metric column is written in: 0 (fixed point) while every
    row's scale ``max(|mean|, std)`` lies in [10⁻³, 10⁴), else the multiple of 3 that
    puts the largest in [1, 1000).

    Args:
      values: ``(mean, std)`` of the column's rows; non-finite means are skipped.
    """
    scales = [
        max(abs(mean), std if math.isfinite(std) else 0.0)
        for mean, std in values
        if math.isfinite(mean)
    ]
    leads = [Decimal(repr(float(s))).adjusted() for s in scales if s > 0]
    if not leads or (min(leads) >= FIXED[0] and max(leads) <= FIXED[1]):
        return 0
    return 3 * (max(leads) // 3)


# -------------------------------------------------------------------------- labels


def default_labels(swept: Iterable[str], metrics: Iterable[str]) -> dict[str, str]:
    """Readable names: a setting by its key's last part (the whole key where two share
    it), a metric as ``"test <name>"``; underscores and dots as spaces."""
    swept = tuple(swept)
    lasts = Counter(key.rsplit(".", 1)[-1] for key in swept)
    out = {}
    for key in swept:
        last = key.rsplit(".", 1)[-1]
        out[key] = (last if lasts[last] == 1 else key).replace(".", " ").replace("_", " ")
    for metric in metrics:
        out.setdefault(metric, "test " + metric.replace("_", " "))
    return out


def labels(summary: "Summary") -> dict[str, str]:
    """Every column's label (the summary's ``labels`` where given, else the defaults),
    for the swept keys, the shown metrics and ``best_metric``."""
    metrics = (*summary.metrics, summary.best_metric)
    return default_labels(summary.swept, metrics) | {
        k: v for k, v in summary.labels.items() if k in (*summary.swept, *metrics)
    }


# -------------------------------------------------------------------------- styles

_LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}
# The symbols of the Markdown text, as LaTeX writes them ("×10ᵏ" before "10ᵏ").
_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "×10ᵏ": r"$\times 10^{k}$",
    "10ᵏ": r"$10^{k}$",
}


def _latex_text(s: str) -> str:
    """Plain text escaped for LaTeX, its symbols (±, ↓, ↑, 10ᵏ) in math."""
    s = "".join(_LATEX_SPECIALS.get(c, c) for c in s)
    for symbol, tex in _LATEX_SYMBOLS.items():
        s = s.replace(symbol, tex)
    return s


def _latex_label(s: str) -> str:
    """A label: its text escaped, its ``$...$`` spans kept as math."""
    return "".join(
        _latex_text(part) if i % 2 == 0 else f"${part}$" for i, part in enumerate(s.split("$"))
    )


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _num(v: Any) -> str:
    """A swept value for siunitx: a number in ``\\num{}``, anything else as text."""
    number = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return rf"\num{{{_value(v)}}}" if number else _latex_text(_value(v))


def _num_text(x: str) -> str:
    """A rounded number in ``\\num{}``; a braced non-finite one as it is."""
    return x if x.startswith("{") else rf"\num{{{x}}}"


_SUPERSCRIPT = str.maketrans("-0123456789k", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹ᵏ")


class _Style(NamedTuple):
    """How a display table differs between Markdown and LaTeX; the row logic is shared."""

    text: Callable[[str], str]  # escape plain text (its ±, ↓, ↑, 10ᵏ too)
    label: Callable[[str], str]  # a label ($...$ is math)
    setting: Callable[[Any], str]  # a swept value
    measurement: Callable[[str, str | None], str]  # mean ± std (std None: the mean alone)
    interval: Callable[[str, str], str]  # [min, max]
    nonfinite: dict[str, str]  # "nan", "inf", "-inf" as measurement() and interval() take them
    dash: str  # a setting with no finished member
    bold: Callable[[str], str]  # a cell of the best row
    power: Callable[[int], str]  # a column's exponent, in its header: (×10⁻³)


_MARKDOWN = _Style(
    text=lambda s: s.replace("|", r"\|"),
    label=lambda s: s.replace("|", r"\|"),
    setting=lambda v: _value(v).replace("|", r"\|"),
    measurement=lambda m, s: m if s is None else f"{m} ± {s}",
    interval=lambda lo, hi: f"[{lo}, {hi}]",
    nonfinite={"nan": "NaN", "inf": "∞", "-inf": "-∞"},
    dash="–",
    bold=lambda s: f"**{s}**",
    power=lambda k: f"(×10{str(k).translate(_SUPERSCRIPT)})",
)
_LATEX = _Style(
    text=_latex_text,
    label=_latex_label,
    setting=lambda v: _latex_text(_value(v)),
    # Numbers in math mode: a true minus sign, and \boldmath bolds the best row's.
    measurement=lambda m, s: f"${m}$" if s is None else rf"${m} \pm {s}$",
    interval=lambda lo, hi: f"$[{lo}, {hi}]$",
    nonfinite={"nan": r"\mathrm{NaN}", "inf": r"\infty", "-inf": r"-\infty"},
    dash="--",
    bold=lambda s: rf"\textbf{{\boldmath {s}}}" if "$" in s else rf"\textbf{{{s}}}",
    power=lambda k: rf"($\times 10^{{{k}}}$)",
)
# siunitx: an S cell holds a bare number (``0.0177 \pm 0.0010``), text in braces; bold
# is \bfseries, which S columns carry into the number (text-series-to-math, below).
_SIUNITX = _LATEX._replace(
    setting=_num,
    measurement=lambda m, s: m if s is None else rf"{m} \pm {s}",
    interval=lambda lo, hi: f"[{_num_text(lo)}, {_num_text(hi)}]",
    nonfinite={"nan": "{NaN}", "inf": r"{$\infty$}", "-inf": r"{$-\infty$}"},
    dash="{--}",
    bold=lambda s: rf"\bfseries {s}",
)
SIUNITX_SETUP = (
    r"\sisetup{uncertainty-mode = separate, table-align-uncertainty = false, "
    r"reset-text-series = false, text-series-to-math = true}"
)


# -------------------------------------------------------------------------- tables


class _Column(NamedTuple):
    """One metric column, rounded: per setting ``(Rounded, min, max)``, or None where
    no member finished."""

    metric: str
    exponent: int
    rows: list[tuple[Rounded, str, str] | None]


def _columns(summary: "Summary") -> list[_Column]:
    columns = []
    for metric in summary.metrics:
        stats = [s.stats[metric] for s in summary.settings]
        k = column_exponent((st.mean, st.std) for st in stats if st.n)
        rows: list[tuple[Rounded, str, str] | None] = []
        for st in stats:
            r = round_measurement(st.mean, st.std, k) if st.n else None
            rows.append(r and (r, rounded_at(st.min, r.place, k), rounded_at(st.max, r.place, k)))
        columns.append(_Column(metric, k, rows))
    return columns


def _table(summary: "Summary", style: _Style, columns: list[_Column]):
    """Header and body cells (already escaped, the best row in bold)."""
    names = labels(summary)
    arrows = {"min": " ↓", "max": " ↑"}
    header = [style.label(names[k]) for k in summary.swept] + ["finished", "diverged"]
    for c in columns:
        power = f" {style.power(c.exponent)}" if c.exponent else ""
        arrow = style.text(arrows.get(summary.directions.get(c.metric), ""))
        header += [f"{style.label(names[c.metric])}{power}{arrow}", f"[min, max]{power}"]
    body = []
    for i, s in enumerate(summary.settings):
        cells = [style.setting(s.overrides.get(k)) for k in summary.swept]
        cells += [f"{s.n_finished}/{len(s.members)}", str(s.n_diverged)]
        for c in columns:
            if c.rows[i] is None:
                cells += [style.dash, style.dash]
                continue
            r, lo, hi = c.rows[i]
            mean = r.mean if r.place is not None else style.nonfinite[r.mean]
            cells.append(style.measurement(mean, r.std))
            cells.append(style.interval(*(style.nonfinite.get(x, x) for x in (lo, hi))))
        body.append([style.bold(c) for c in cells] if i == summary.best else cells)
    return header, body


def _caption(summary: "Summary", style: _Style, columns: list[_Column]) -> str:
    names = labels(summary)
    text = [
        "Test metrics over each setting's finished seeds (each scored once, with its params "
        "chosen on validation): mean ± sample std (ddof = 1, n = finished), [min, max]; "
        "diverged members are not averaged."
    ]
    shown = {summary.directions.get(c.metric) for c in columns}
    better = {"min": "↓: lower is better", "max": "↑: higher is better"}
    if shown & set(better):
        text.append("; ".join(better[d] for d in better if d in shown) + ".")
    if any(c.exponent for c in columns):
        text.append("(×10ᵏ): in units of 10ᵏ.")
    text.append(
        "The std is rounded by the Particle Data Group rule, to 2 significant figures where "
        "its three leading digits are 100 to 354 and to 1 otherwise (0.00096 becomes 0.0010), "
        "and the mean to the same place; a mean without ± (one seed, or std 0) has "
        f"{FIGURES} significant figures."
    )
    caption = style.text(" ".join(text))
    if summary.best is None:
        return caption + " " + style.text("No setting finished.")
    best = summary.settings[summary.best]
    where = ", ".join(
        f"{style.label(names[k])} = {style.setting(v)}" for k, v in best.overrides.items()
    )
    lowest = "lowest" if summary.best_mode == "min" else "highest"
    metric = names[summary.best_metric]
    if summary.best_by == "validation":
        # Each seed's best validation value (its checkpoint's), not the test figure.
        bold = f"Bold: the setting chosen on validation, of {lowest} mean best validation"
        metric = metric.removeprefix("test ")
    else:
        bold = f"Bold: the best setting (no validation split to choose on), of {lowest} mean"
    return f"{caption} {style.text(bold)} {style.label(metric)}" + (
        f" ({where})." if where else "."
    )


def markdown(summary: "Summary") -> str:
    """The summary as a Markdown table and its caption (best setting in bold)."""
    columns = _columns(summary)
    header, body = _table(summary, _MARKDOWN, columns)
    align = ["---"] * len(summary.swept) + ["---:"] * (len(header) - len(summary.swept))
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(f"{a}|" for a in align)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n\n" + _caption(summary, _MARKDOWN, columns) + "\n"


def _table_format(rows: list[tuple[Rounded, str, str] | None]) -> str | None:
    """siunitx's ``table-format`` for a metric column's numbers (``-1.4(2)``: a sign,
    1 integer digit, 4 decimals, 2 uncertainty digits); None: no finite number."""
    means = [r for r, _, _ in filter(None, rows) if r.place is not None]
    if not means:
        return None
    sign = "-" if any(r.mean.startswith("-") for r in means) else ""
    whole = max(len(r.mean.lstrip("-").split(".")[0]) for r in means)
    decimals = max(len(r.mean.partition(".")[2]) for r in means)
    # The uncertainty's digits as siunitx counts them: 0.0010 is (10), 1200 is (1200).
    spread = max((len(r.std.replace(".", "").lstrip("0")) for r in means if r.std), default=0)
    return (
        f"{sign}{whole}" + (f".{decimals}" if decimals else "") + (f"({spread})" if spread else "")
    )


def latex(summary: "Summary", *, siunitx: bool = False) -> str:
    """The summary as a LaTeX ``booktabs`` table (best setting in bold).

    Args:
      summary: from :func:`jaxrnn.sweep.summary.read`.
      siunitx: align the metric columns on the decimal marker with ``siunitx`` v3
        ``S`` columns (``table-format`` from the data, ``± std`` printed separately);
        needs ``\\usepackage{siunitx}``. Off by default: plain ``booktabs`` needs only
        ``\\usepackage{booktabs}``.
    """
    style = _SIUNITX if siunitx else _LATEX
    columns = _columns(summary)
    header, body = _table(summary, style, columns)
    cols = "l" * len(summary.swept) + "rr"
    for c in columns:
        fmt = _table_format(c.rows) if siunitx else None
        cols += (f"S[table-format={fmt}]" if fmt else "r") + "r"
    if siunitx:  # an S column's header is text: braced, so that siunitx does not parse it
        at = len(summary.swept) + 2
        header = header[:at] + [f"{{{h}}}" if i % 2 == 0 else h for i, h in enumerate(header[at:])]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        *([SIUNITX_SETUP] if siunitx else []),
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in body),
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_caption(summary, style, columns)}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def records(summary: "Summary") -> list[dict[str, Any]]:
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


def csv_text(summary: "Summary") -> str:
    """The :func:`records` as CSV, for programs: raw keys, no labels, and floats written
    with ``repr`` (every digit, no rounding), so that they parse back exactly."""
    rows = records(summary)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
