"""Data sets that ship inside PyPI packages: found without importing them, parsed once, cached.

Machines here reach the package registry and nothing else, so real data comes from
files that PyPI packages carry (``statsmodels``' CSVs, ``aeon``'s ``.ts`` files,
``mnist1d``'s generator). A :class:`Carrier` names such a package, the version its
data was checked against and the exact ``pip`` line that installs it; :func:`locate`
finds a file in it with ``importlib.metadata`` (the package is not imported, so its
own dependencies need not be installed: ``--no-deps`` suffices) and raises an error
naming that line when the package is missing.

:func:`cached` keeps the parsed arrays in ``<user cache folder>/jaxrnn/data`` (via
platformdirs; ``$JAXRNN_DATA_CACHE`` instead, where set), keyed by the bytes of the
files they were parsed from, so that a changed file is parsed again and a damaged
cache entry is rebuilt, never trusted.
"""

import hashlib
import importlib.metadata
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Carrier(NamedTuple):
    """A PyPI package that carries a data set.

    Attributes:
      package: the distribution's name on PyPI (``"statsmodels"``).
      version: the version whose files the loader was written and tested against.
      install: the command that installs it (``pip install --no-deps statsmodels==0.15.0``).
    """

    package: str
    version: str
    install: str


def locate(carrier: Carrier, path: str) -> Path:
    """The file ``path`` inside the installed ``carrier``, without importing it.

    Raises:
      FileNotFoundError: the package is not installed, or holds no such file; the
        message names the file and the command that installs the package.
    """
    try:
        distribution = importlib.metadata.distribution(carrier.package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{carrier.package}: the file {path!r} ships in the PyPI package "
            f"{carrier.package}=={carrier.version}, which is not installed; install it with "
            f"`{carrier.install}`"
        ) from None
    found = Path(distribution.locate_file(path))
    if not found.is_file():
        raise FileNotFoundError(
            f"{carrier.package}: no file {path!r} in the installed {carrier.package} "
            f"{distribution.version} (looked for {str(found)!r}); the loader expects "
            f"{carrier.package}=={carrier.version}: `{carrier.install}`"
        )
    return found


def cache_dir() -> Path:
    """Where parsed data sets are kept: ``$JAXRNN_DATA_CACHE``, else the user cache
    folder's ``jaxrnn/data`` (``~/.cache/jaxrnn/data`` on Linux)."""
    if os.environ.get("JAXRNN_DATA_CACHE"):
        return Path(os.environ["JAXRNN_DATA_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("jaxrnn")) / "data"


def cached(
    name: str, sources: Sequence[Path], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns, kept on disk under ``name`` and the bytes of ``sources``.

    Args:
      name: the data set's name, the first part of the cache file's name.
      sources: the files the arrays are parsed from: a change in any of them (another
        version of the package) gives another cache entry.
      build: parse the sources; returns ``{name: array}`` (no object arrays).

    Returns:
      The arrays, from the cache when an intact entry exists. A cache folder that
      cannot be written to is not an error: the arrays are then built every time.
    """
    digest = hashlib.sha256(name.encode())
    for source in sources:
        digest.update(Path(source).read_bytes())
    path = cache_dir() / f"{name}-{digest.hexdigest()[:16]}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # absent or damaged: rebuild
        pass
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed: a reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
            np.savez(f, **arrays)
        os.replace(f.name, path)
    except OSError:
        pass
    return arrays
