"""How to cite a result: jaxrnn's BibTeX, and the papers of the methods and data a run used.

``jaxrnn cite`` prints jaxrnn's own entry; ``jaxrnn cite RUN_OR_SWEEP_DIR`` prints it
with the version and commit that run (or sweep) recorded, followed by the BibTeX of
every method it used and of its data set. Every run directory holds the same as
``CITATION.bib`` (written before its first step), and every summarised sweep
directory too, for the union of its members' methods.

**jaxrnn's entry** comes from the ``preferred-citation`` of ``CITATION.cff`` when
there is one, else from the file's top level (the software itself). Software is
written for classic BibTeX by default (``style="bibtex"``): ``@misc`` with
``howpublished`` and a ``note`` that carries the version and git commit, the entry
type and fields that ``plain.bst`` and natbib's ``plainnat.bst`` render (neither
defines ``@software``, and both drop fields they do not know, such as
``version``). ``style="biblatex"`` writes biblatex's ``@software`` with its
``version`` field (the commit in ``note``). Other CFF types map as the Citation File
Format guide describes (``article`` -> ``@article``, ``conference-paper`` ->
``@inproceedings``, other types -> ``@misc``). A ``%`` comment block above the entry
records the versions of jaxrnn, JAX, jaxlib, Flax, optax and Python and the full
git commit, as collected by :func:`current_versions`.

**The methods a run used** (:func:`methods`) are derived from its resolved config,
with each paper's BibTeX declared beside the code that implements the method
(:mod:`jaxrnn.cells.references`), not in a list here:

* the model section's ``references()`` (:meth:`~jaxrnn.training.ModelConfig.references`:
  the cell's factory says what its settings select, e.g. the LSTM and its forget gate,
  the forget-gate bias only when it is non-zero and chrono initialisation is off,
  chrono only when ``chrono_t_max`` is set, the orthogonal or identity initialiser,
  layer norm; then dropout and residual connections between layers);
* the task section's ``references()``, where the experiment declares one;
* the optimizer (:func:`jaxrnn.training.optim.references`: the optimizer by name,
  momentum, global-norm clipping only when ``clip_norm`` is set, ...);
* the data set: the experiment file's ``CITATION``.

What cannot be detected: the methods of a model section of the experiment's own
that does not subclass :class:`~jaxrnn.training.ModelConfig` and declares no
``references()``, of a cell factory that declares no ``references``, and anything
``get_model`` builds beyond what its config section says (an opaque model). Such a
run lists what it can and names what it could not (:func:`undeclared`) in its
manifest and above its method entries. An experiment adds its own by giving its
section a ``references(self)`` method (``configs/addition_seq2seq.py`` adds the
encoder-decoder, attention and scheduled sampling this way). Fixed implementation
choices that no setting selects (input-weight initialisers, readout layers) and ways
of computing the same values (``remat``, the parallel and fused scans) are not listed.

Where ``CITATION.cff`` is found: at the repository root, next to the ``jaxrnn``
package (a source checkout or an editable install). A wheel does not carry it,
so an installed package falls back to its own metadata
(``importlib.metadata``: name, summary, authors, version), which gives the same
title, authors and version as long as ``pyproject.toml`` and ``CITATION.cff``
agree (``tests/test_sweep_results.py`` checks that they do).

Why not ``cffconvert``: its BibTeX (2.0) is a ``@misc`` without version, URL or
preferred citation, and it would bring ``requests``, ``pykwalify`` and
``jsonschema`` into the runtime dependencies; it stays a test dependency that
validates ``CITATION.cff``. The YAML is read with PyYAML (a direct dependency;
Flax and orbax require it too).

References:
  Druskat et al. (2021), Citation File Format 1.2.0. https://citation-file-format.github.io/
  Patashnik (1988), BibTeXing (entry types and fields; ``plain.bst``); Daly, natbib
  (``plainnat.bst``); Kime, Wemheuer, Lehman, The biblatex Package (``@software``).
"""

import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxrnn.cells import registry
from jaxrnn.cells.references import Reference, entry_key, short_citation, unique
from jaxrnn.training import optim
from jaxrnn.training.config import Config, ModelConfig

# The repository root of a source checkout or editable install.
CFF_PATH = Path(__file__).resolve().parents[2] / "CITATION.cff"

# The manifest entries that say what produced a result (not the run's seed or hash).
VERSION_KEYS = ("jaxrnn", "jax", "jaxlib", "flax", "optax", "python", "git_commit")

# "bibtex": classic BibTeX and natbib (@misc for software); "biblatex": @software.
STYLES = ("bibtex", "biblatex")

# The digits of the git commit in a software entry's note (the comment has all 40).
COMMIT_DIGITS = 12

_ENTRY_TYPES = {
    "software": "software",
    "article": "article",
    "conference-paper": "inproceedings",
    "book": "book",
    "report": "techreport",
    "thesis": "phdthesis",
}


def load_cff(path: str | Path | None = None) -> dict[str, Any]:
    """The citation metadata as a CFF mapping.

    Args:
      path: a ``CITATION.cff``; None: the repository's, else the installed
        package's metadata (see the module doc).

    Returns:
      The parsed CFF (``title``, ``authors``, ``version``, ...).
    """
    import yaml

    if path is not None or CFF_PATH.is_file():
        path = Path(path or CFF_PATH)
        if not path.is_file():
            what = "a directory" if path.is_dir() else "no such file"
            raise FileNotFoundError(
                f"path: expected a CITATION.cff file, got {str(path)!r} ({what})"
            )
        try:
            cff = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            problem = str(e).splitlines()[0]
            raise ValueError(f"path: {str(path)!r} is not a CFF file (not YAML: {problem})") from e
        if not isinstance(cff, Mapping) or "title" not in cff:
            raise ValueError(f"path: {str(path)!r} is not a CFF file (no 'title' mapping key)")
        return dict(cff)
    meta = importlib.metadata.metadata("jaxrnn")
    authors = [a.strip() for a in (meta.get("Author") or "").split(",") if a.strip()]
    return {
        "type": "software",
        "title": f"{meta['Name']}: {meta['Summary']}",
        "authors": [{"name": a} for a in authors],
        "version": meta["Version"],
    }


def _escape(text: str) -> str:
    return "".join("\\" + c if c in "&%$#_" else c for c in str(text))


def _person(author: Mapping[str, Any]) -> str:
    """One CFF author as a BibTeX name: ``{Entity}`` or ``von Last, Jr, First``."""
    if "family-names" not in author:
        # Braced, so BibTeX does not split an organisation into first and last names.
        return "{" + _escape(author.get("name", "")) + "}"
    last = " ".join(str(author[k]) for k in ("name-particle", "family-names") if author.get(k))
    parts = [last, author.get("name-suffix"), author.get("given-names")]
    return ", ".join(_escape(p) for p in parts if p)


def _fields(ref: Mapping[str, Any]) -> dict[str, str]:
    fields = {
        "author": " and ".join(_person(a) for a in ref.get("authors", [])),
        # Double braces keep the title's capitals ("JAX") in every bibliography style.
        "title": "{" + _escape(ref["title"]) + "}",
    }
    year = ref.get("year") or str(ref.get("date-released") or ref.get("date-published") or "")[:4]
    optional = {
        "journal": ref.get("journal"),
        "booktitle": (ref.get("conference") or {}).get("name") or ref.get("collection-title"),
        "volume": ref.get("volume"),
        "number": ref.get("issue"),
        "pages": "--".join(str(ref[k]) for k in ("start", "end") if k in ref) or None,
        "year": year or None,
        "version": ref.get("version"),
        "doi": ref.get("doi"),
        "url": ref.get("url") or ref.get("repository-code"),
        "license": ref.get("license"),
    }
    fields.update({k: _escape(v) for k, v in optional.items() if v is not None})
    return fields


def check_style(style: str) -> str:
    """``style`` itself if it is one of :data:`STYLES`; else a ValueError naming them."""
    if style not in STYLES:
        raise ValueError(
            f"style: expected 'bibtex' (@misc, for classic BibTeX and natbib) or 'biblatex' "
            f"(@software), got {style!r}"
        )
    return style


def _software(fields: dict[str, str], versions: Mapping[str, Any], style: str):
    """The entry type and fields of jaxrnn as software, in ``style``."""
    version = versions.get("jaxrnn") or fields.get("version")
    commit = versions.get("git_commit")
    fields = dict(fields)
    if version is not None:
        fields["version"] = _escape(version)
    commit_note = f"git commit {str(commit)[:COMMIT_DIGITS]}" if commit else None
    if style == "biblatex":
        if commit_note:
            fields["note"] = _escape(commit_note)
        return "software", fields
    # plain.bst and plainnat.bst: @misc renders author, title, howpublished, year, note
    # (plainnat also doi and url); version and license they drop, so the version goes
    # into the note.
    note = ", ".join(x for x in (version and f"Version {version}", commit_note) if x)
    keep = ("author", "title", "howpublished", "year", "note", "doi", "url")
    fields = {"howpublished": "Computer software", **fields, "note": _escape(note)}
    return "misc", {k: fields[k] for k in keep if fields.get(k)}


def bibtex(
    cff: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    *,
    key: str = "jaxrnn",
    style: str = "bibtex",
) -> str:
    """BibTeX for jaxrnn with a comment block of the versions used.

    Args:
      cff: CFF metadata (:func:`load_cff`); None: load it.
      versions: ``{name: version}`` as :func:`current_versions` returns (a run's
        manifest; other entries are ignored); None: this process's versions.
      key: the citation key.
      style: ``"bibtex"`` (software as ``@misc``, for classic BibTeX and natbib) or
        ``"biblatex"`` (software as ``@software``).

    Returns:
      ``% ...`` comment lines, then one entry, e.g.::

        @misc{jaxrnn,
          author = {{The jaxrnn authors}},
          title = {{jaxrnn: recurrent neural networks as pure JAX functions}},
          howpublished = {Computer software},
          year = {2026},
          note = {Version 0.1.0, git commit 1c0dd57aa8f2},
        }

    Raises:
      ValueError: an unknown ``style``.
    """
    check_style(style)
    cff = load_cff() if cff is None else cff
    versions = current_versions() if versions is None else versions
    ref = cff.get("preferred-citation") or cff
    entry_type = _ENTRY_TYPES.get(ref.get("type", "software"), "misc")
    used = ", ".join(
        f"{k.replace('_', ' ')} {versions[k]}" for k in VERSION_KEYS if versions.get(k) is not None
    )
    comment = ["% Please cite jaxrnn as below."]
    if used:
        comment.append(_comment(f"Versions used: {used}."))
    fields = _fields(ref)
    if entry_type == "software":
        entry_type, fields = _software(fields, versions, style)
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields.items())
    return "\n".join(comment) + f"\n@{entry_type}{{{key},\n{body}}}\n"


def _comment(text: str) -> str:
    # "@" would start an entry for BibTeX even inside a comment line.
    return f"% {text}".replace("@", "(at)")


def methods(config: Config) -> list[Reference]:
    """The methods a run of ``config`` uses, each with its paper, in the order: model,
    task, optimizer (see the module docstring for what is and is not detected).

    Raises:
      ValueError: a section's ``references()`` returned something other than
        :class:`~jaxrnn.cells.references.Reference` s with a BibTeX entry each.
    """
    found = []
    for name in ("model", "task"):
        section = getattr(config, name)
        declared = getattr(section, "references", None)
        if not callable(declared):
            continue
        refs = list(declared())
        for ref in refs:
            if not isinstance(ref, Reference):
                raise ValueError(
                    f"{name}: {type(section).__name__}.references() must return "
                    f"jaxrnn.cells.references.Reference s, got {type(ref).__name__}"
                )
            entry_key(ref.bibtex)  # a ValueError naming the entry that is not one
        found += refs
    return unique([*found, *optim.references(config.optim)])


def undeclared(config: Config) -> list[str]:
    """What :func:`methods` cannot list for ``config``: a model section that is no
    :class:`~jaxrnn.training.ModelConfig` and has no ``references()``, or a cell whose
    factory declares no references; empty when every part is covered."""
    model = config.model
    if isinstance(model, ModelConfig):
        if registry.lookup(model.cell).references is None:
            return [f"the cell {model.cell!r} declares no references"]
        return []
    if not callable(getattr(model, "references", None)):
        return [f"the experiment's model section {type(model).__name__} declares no references()"]
    return []


def record(config: Config, data_bibtex: str | None = None) -> dict[str, Any]:
    """What a run's manifest says about its references: ``{"methods": [{"method",
    "reference", "key", "bibtex"}, ...], "data_set": {...} or None, "not_listed": [...]}``
    (:func:`methods`, the data set's BibTeX, :func:`undeclared`)."""
    return {
        "methods": [ref.as_dict() for ref in methods(config)],
        "data_set": _data_set(data_bibtex),
        "not_listed": undeclared(config),
    }


def _data_set(data_bibtex: str | None) -> dict[str, str] | None:
    if not data_bibtex:
        return None
    return {
        "reference": short_citation(data_bibtex),
        "key": entry_key(data_bibtex),
        "bibtex": data_bibtex.strip(),
    }


def document(
    manifest: Mapping[str, Any], cff: Mapping[str, Any] | None = None, *, style: str = "bibtex"
) -> str:
    """The whole BibTeX of a run or sweep: jaxrnn's entry (:func:`bibtex`, with the
    versions ``manifest`` records), then one entry per paper of its ``"methods"``, each
    paper once, under a comment listing what each was cited for, and the data set's
    entry last.

    Args:
      manifest: a run's ``manifest.json`` (or :func:`collect`'s merge of a sweep's).
      cff: CFF metadata; None: :func:`load_cff`.
      style: of jaxrnn's entry, ``"bibtex"`` or ``"biblatex"``.
    """
    text = bibtex(cff, manifest, style=style)
    listed = manifest.get("methods")
    if listed is None:
        text += "\n" + _comment("This run's manifest lists no methods (an older jaxrnn).") + "\n"
        listed = []
    entries: dict[str, str] = {}
    by_method: dict[str, list[str]] = {}
    for m in listed:
        entries.setdefault(m["key"], m["bibtex"])
        by_method.setdefault(m["method"], []).append(f"{m['reference']} ({m['key']})")
    lines = [_comment(f"  {method}: {'; '.join(refs)}") for method, refs in by_method.items()]
    lines += [_comment(f"Not listed: {note}.") for note in manifest.get("not_listed") or []]
    if lines:
        head = "The methods used, each with the paper to cite for it (jaxrnn cite):"
        text += "\n" + "\n".join([_comment(head), *lines]) + "\n"
    for entry in entries.values():
        text += "\n" + entry.strip() + "\n"
    data = manifest.get("data_set")
    if data:
        text += "\n% The data set, as its experiment asks it to be cited.\n"
        text += data["bibtex"].strip() + "\n"
    return text


def collect(directory: str | Path) -> dict[str, Any]:
    """The versions, methods and data set of a run directory (its ``manifest.json``)
    or of a sweep directory (``sweep.json``'s versions and data set, the union of its
    members' methods), as :func:`document` reads them.

    Raises:
      FileNotFoundError, ValueError: ``directory`` is no run or sweep directory (the
        message names ``run_or_sweep_dir`` and says what it is instead).
    """
    directory = Path(directory)
    given = f"run_or_sweep_dir: {str(directory)!r}"
    if not directory.exists():
        raise FileNotFoundError(
            f"{given}: no such path; give a run directory (made by `jaxrnn train`) or a "
            f"sweep directory (made by `jaxrnn sweep`)"
        )
    if not directory.is_dir():
        raise ValueError(f"{given} is a file; give a run or sweep directory")
    if (directory / "manifest.json").is_file():
        return _read_json(directory / "manifest.json")
    if (directory / "sweep.json").is_file():
        return _collect_sweep(directory)
    if (directory / "config.json").is_file():
        raise ValueError(f"{given} is a run that has not started (no manifest.json yet)")
    raise ValueError(
        f"{given} is not a run directory (no manifest.json) nor a sweep directory "
        f"(no sweep.json); give one made by `jaxrnn train` or `jaxrnn sweep`"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"run_or_sweep_dir: {str(path)!r} is not a JSON file ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"run_or_sweep_dir: {str(path)!r} holds no JSON object")
    return value


def _collect_sweep(directory: Path) -> dict[str, Any]:
    described = _read_json(directory / "sweep.json")
    merged: dict[str, Any] = dict(described.get("versions") or {})
    manifests = [_read_json(p) for p in sorted(directory.glob("members/*/manifest.json"))]
    listed = [m["methods"] for m in manifests if "methods" in m]
    if listed:
        seen = {}
        for methods_of_member in listed:
            for m in methods_of_member:
                seen.setdefault((m["method"], m["key"]), m)
        merged["methods"] = list(seen.values())
    elif not manifests:
        merged["methods"] = []
        merged["not_listed"] = ["the methods of this sweep's members (none has started)"]
    notes = dict.fromkeys(n for m in manifests for n in m.get("not_listed") or [])
    if notes:
        merged["not_listed"] = list(notes)
    data = next((m["data_set"] for m in manifests if m.get("data_set")), None)
    merged["data_set"] = data or _data_set(described.get("citation"))
    return merged


def current_versions() -> dict[str, Any]:
    """This process's versions, git commit and devices (what a run's manifest records)."""
    import jax
    import jaxlib
    import optax

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    devices = jax.devices()
    return {
        "jaxrnn": importlib.metadata.version("jaxrnn"),
        "git_commit": commit,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        # Not imported for its version: a run that does not use flax skips its import.
        "flax": importlib.metadata.version("flax"),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
    }


def write_bibtex(
    path: str | Path, versions: Mapping[str, Any] | None = None, data: str | None = None
) -> Path:
    """Write :func:`document` of ``versions`` (a run's manifest, or :func:`collect` of a
    sweep; None: this process's versions, no methods) to ``path``; ``data``, the BibTeX
    of the data set an experiment used, where ``versions`` records none."""
    path = Path(path)
    manifest = dict(current_versions() if versions is None else versions)
    manifest.setdefault("methods", [])
    if data and not manifest.get("data_set"):
        manifest["data_set"] = _data_set(data)
    path.write_text(document(manifest))
    return path
