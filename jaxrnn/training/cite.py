"""How to cite jaxrnn: BibTeX from ``CITATION.cff`` plus the exact versions a result used.

``jaxrnn cite`` prints it; every ``jaxrnn train`` run directory and every sweep
directory holds it as ``CITATION.bib``. The entry comes from the
``preferred-citation`` of ``CITATION.cff`` when there is one, else from the file's
top level (the software itself), mapped to BibTeX as the Citation File Format
guide describes (``software`` -> ``@software``, ``article`` -> ``@article``,
``conference-paper`` -> ``@inproceedings``, other types -> ``@misc``). A ``%``
comment block above the entry records the versions of jaxrnn, JAX, jaxlib, Flax,
optax and Python and the git commit, as collected by
:func:`current_versions`.

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
  Patashnik (1988), BibTeXing (entry types and fields); biblatex's ``@software``.
"""

import importlib.metadata
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The repository root of a source checkout or editable install.
CFF_PATH = Path(__file__).resolve().parents[2] / "CITATION.cff"

# The manifest entries that say what produced a result (not the run's seed or hash).
VERSION_KEYS = ("jaxrnn", "jax", "jaxlib", "flax", "optax", "python", "git_commit")

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


def bibtex(
    cff: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    *,
    key: str = "jaxrnn",
) -> str:
    """BibTeX for jaxrnn with a comment block of the versions used.

    Args:
      cff: CFF metadata (:func:`load_cff`); None: load it.
      versions: ``{name: version}`` as :func:`current_versions`
        returns (other entries are ignored); None: this process's versions.
      key: the citation key.

    Returns:
      ``% ...`` comment lines, then one entry, e.g.::

        @software{jaxrnn,
          author = {{The jaxrnn authors}},
          title = {{jaxrnn: recurrent neural networks as pure JAX functions}},
          year = {2026},
          version = {0.1.0},
        }
    """
    cff = load_cff() if cff is None else cff
    versions = current_versions() if versions is None else versions
    ref = cff.get("preferred-citation") or cff
    entry_type = _ENTRY_TYPES.get(ref.get("type", "software"), "misc")
    used = ", ".join(
        f"{k.replace('_', ' ')} {versions[k]}" for k in VERSION_KEYS if versions.get(k) is not None
    )
    comment = ["% Please cite jaxrnn as below."]
    if used:
        # "@" would start an entry for BibTeX even inside a comment line.
        comment.append(f"% Versions used: {used}.".replace("@", "(at)"))
    fields = _fields(ref)
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields.items())
    return "\n".join(comment) + f"\n@{entry_type}{{{key},\n{body}}}\n"


def current_versions() -> dict[str, Any]:
    """This process's versions, git commit and devices (what a run's manifest records)."""
    import flax
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
        "flax": flax.__version__,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
    }


def write_bibtex(
    path: str | Path, versions: Mapping[str, Any] | None = None, data: str | None = None
) -> Path:
    """Write :func:`bibtex` (``versions``: a run's manifest, None: this process) to
    ``path``, followed by ``data``, the BibTeX of the data set an experiment used."""
    path = Path(path)
    text = bibtex(versions=versions)
    if data:
        text += "\n% The data set, as its experiment asks it to be cited.\n" + data.strip() + "\n"
    path.write_text(text)
    return path
