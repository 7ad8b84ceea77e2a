"""Cells by name, for configs: a registry that cell modules add themselves to.

A config names its cell with one string (``model.cell``), either

* a name a module registered: the built-in ``"elman"``, ``"gru"``, ``"lstm"`` (this
  package) and the tree cells ``"binary_tree_lstm"``, ``"child_sum_tree_lstm"``,
  ``"recursive"`` (:mod:`jaxrnn.trees`), or whatever a user's module registered
  once it is imported; or
* a ``"module:factory"`` path to any factory that can be imported, a user's own
  cell included, with nothing registered.

A factory is called as ``factory(hidden_size, **settings)`` and returns a cell.
Its *settings* are the keyword parameters of its signature (keyword-only ones, and
those with a default that may be passed by keyword): a config passes the
values of those of its fields that the factory names, and refuses a field that
the factory does not read (so a setting is never silently ignored). ``kind`` says
how the cell is rolled: ``"sequence"`` (a :class:`jaxrnn.Cell`, over time) or
``"tree"`` (a :class:`jaxrnn.trees.TreeCell`, over the levels of a tree).

Registering a cell of one's own::

    from jaxrnn.cells import registry

    @registry.register("my_cell")
    def my_cell(hidden_size: int, *, activation: str = "tanh") -> jaxrnn.Cell: ...

after which ``model.cell=my_cell`` works in any config of a process that imported
the module; ``model.cell=my_package.cells:my_cell`` works without the import.

A factory may say what a run of it cites (``jaxrnn cite``, a run's manifest):
``register(name, references=fn)``, or, for a ``"module:factory"`` path, a
``references`` attribute of the factory. ``fn(**settings)`` gets the settings a
config passes to the factory and returns the
:class:`~jaxrnn.cells.references.Reference` s of the methods they select::

    def my_references(*, activation="tanh"):
        return [Reference("my cell", MY_PAPER)]

    @registry.register("my_cell", references=my_references)
    def my_cell(hidden_size: int, *, activation: str = "tanh") -> jaxrnn.Cell: ...
"""

import difflib
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from jaxrnn.cells.references import Reference

Kind = Literal["sequence", "tree"]


class CellFactory(NamedTuple):
    """A factory as a config sees it.

    Attributes:
      name: the registered name, or the ``"module:factory"`` path.
      factory: ``factory(hidden_size, **settings) -> cell``.
      settings: the keyword parameters of ``factory`` besides ``hidden_size``.
      kind: ``"sequence"`` or ``"tree"``.
      references: ``references(**settings) -> [Reference, ...]``, the methods a cell of
        those settings uses and their papers; None: the factory declares none.
    """

    name: str
    factory: Callable
    settings: tuple[str, ...]
    kind: Kind
    references: Callable[..., Sequence[Reference]] | None = None


_FACTORIES: dict[str, CellFactory] = {}


def _settings(factory: Callable) -> tuple[str, ...]:
    """The keyword parameters besides ``hidden_size``: keyword-only ones, and those with
    a default that may be passed by keyword."""
    params = inspect.signature(factory).parameters.values()
    return tuple(
        p.name
        for p in params
        if p.name != "hidden_size"
        and (
            p.kind is p.KEYWORD_ONLY
            or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
        )
    )


def register(
    name: str,
    *,
    kind: Kind = "sequence",
    references: Callable[..., Sequence[Reference]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorate a factory ``factory(hidden_size, *, setting=default, ...) -> cell``
    to make it available to configs as ``model.cell=<name>``.

    ``references(**settings)``, if given, lists the methods a cell of those settings
    uses, each with its paper (see the module docstring).

    Raises:
      ValueError: if ``name`` is taken by another factory, is not an identifier, or
        ``kind`` is not ``"sequence"`` or ``"tree"``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier such as 'my_cell', got {name!r}")
    if kind not in ("sequence", "tree"):
        raise ValueError(f"kind: expected 'sequence' or 'tree', got {kind!r}")

    def add(factory: Callable) -> Callable:
        taken = _FACTORIES.get(name)
        if taken is not None and taken.factory is not factory:
            raise ValueError(
                f"name: {name!r} is already registered to {taken.factory.__module__}."
                f"{taken.factory.__qualname__}; choose another name"
            )
        _FACTORIES[name] = CellFactory(name, factory, _settings(factory), kind, references)
        return factory

    return add


def names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_FACTORIES)


def lookup(name: str) -> CellFactory:
    """The factory that ``name`` (a registered name or ``"module:factory"``) stands for.

    Raises:
      ValueError: naming the value, the registered names and the closest of them,
        or why a ``"module:factory"`` path does not import.
    """
    if not isinstance(name, str):
        raise ValueError(f"expected a cell name (a string), got {name!r}")
    if name in _FACTORIES:
        return _FACTORIES[name]
    module_name, sep, attribute = name.partition(":")
    if not sep:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"expected a registered cell, one of {', '.join(map(repr, names()))}, or a "
            f"'module:factory' path to your own{hint}"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"the path {name!r} does not import: {e}") from None
    if not callable(factory):
        raise ValueError(f"the path {name!r} names a {type(factory).__name__}, not a factory")
    kind, references = getattr(factory, "kind", "sequence"), getattr(factory, "references", None)
    return CellFactory(name, factory, _settings(factory), kind, references)
