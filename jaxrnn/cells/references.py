"""References: a method and the paper to cite for it, declared beside its implementation.

Each module that implements a published method holds that paper's BibTeX as a
module-level constant (``lstm.HOCHREITER_1997``, ``optim.KINGMA_2015``, ...), one
place per paper, and says which of its references a given setting uses: a cell's
factory through :func:`jaxrnn.cells.registry.register` (``references=``), a config
section through its ``references()`` method, the optimizer through
:func:`jaxrnn.training.optim.references`. :func:`jaxrnn.training.cite.methods`
collects them for a run (see there for what can and cannot be detected).

This module is the ground floor (cells), so that every floor above can declare
references; it imports nothing from jaxrnn. For example::

    MY_PAPER = r'''@article{doe2026gated,
      author = {Doe, Jane and Roe, Richard},
      title = {A Gated Cell},
      journal = {Journal of Recurrence},
      year = {2026},
    }'''
    Reference("my gated cell", MY_PAPER).short   # "Doe & Roe 2026"

References:
  Patashnik (1988), BibTeXing (entry types, fields and names ``von Last, Jr, First``).
"""

import re
from collections.abc import Iterable
from typing import NamedTuple

# "@type{key," at the start of an entry.
_HEAD = re.compile(r"^\s*@(\w+)\s*\{\s*([^,\s]+)\s*,", re.S)
# "name = {value}" with one level of nested braces (as in "{LSTM}" or "J{\"u}rgen").
_FIELD = re.compile(r"(\w+)\s*=\s*\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}", re.S)


class Reference(NamedTuple):
    """A method a run used, and the paper that introduced it.

    Attributes:
      method: what was used, in words (``"LSTM"``, ``"forget-gate bias 1"``).
      bibtex: the paper's BibTeX, one entry ``@type{key, field = {value}, ...}``
        with authors as ``Last, First and ...``.
    """

    method: str
    bibtex: str

    @property
    def key(self) -> str:
        """The entry's citation key."""
        return entry_key(self.bibtex)

    @property
    def short(self) -> str:
        """Authors and year, as a text cites them: ``"Gers et al. 2000"``."""
        return short_citation(self.bibtex)

    def as_dict(self) -> dict[str, str]:
        """``{"method", "reference", "key", "bibtex"}``, as a run's manifest lists it."""
        return {
            "method": self.method,
            "reference": self.short,
            "key": self.key,
            "bibtex": self.bibtex.strip(),
        }


def entry_key(bibtex: str) -> str:
    """The citation key of the BibTeX entry ``bibtex``.

    Raises:
      ValueError: ``bibtex`` does not start with ``@type{key,``.
    """
    head = _HEAD.match(bibtex)
    if head is None:
        start = bibtex.strip()[:40]
        raise ValueError(f"bibtex: expected an entry '@type{{key, ...}}', got {start!r}")
    return head.group(2)


def fields(bibtex: str) -> dict[str, str]:
    """The braced fields of one entry, lower-case names, values without the outer braces."""
    return {name.lower(): value for name, value in _FIELD.findall(bibtex)}


def _last_name(person: str) -> str:
    person = person.strip()
    if person.startswith("{") and person.endswith("}"):
        return person[1:-1]  # an organisation, braced as one name
    last = person.split(",")[0] if "," in person else person.split()[-1]
    # TeX accents ({\"u}) and case-protecting braces read as their letters.
    return re.sub(r"\\[\"'`^~=.uvHckbdrt]\s*|[{}]", "", last).strip()


def short_citation(bibtex: str) -> str:
    """``"Elman 1990"``, ``"Kingma & Ba 2015"`` or ``"Cho et al. 2014"`` from an entry's
    ``author`` and ``year``; its key where it has no author."""
    found = fields(bibtex)
    people = [p for p in re.split(r"\s+and\s+", found.get("author", "")) if p.strip()]
    if not people:
        return entry_key(bibtex)
    names = [_last_name(p) for p in people]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} & {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = found.get("year")
    return f"{who} {year}" if year else who


def unique(references: Iterable[Reference]) -> list[Reference]:
    """``references`` without repeats, in first-seen order."""
    return list(dict.fromkeys(references))
