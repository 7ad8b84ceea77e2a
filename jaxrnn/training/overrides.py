"""``key=value`` overrides of a config, with errors naming key, value and expectation.

The keys are those of the config being overridden: ``seed``, ``optim.learning_rate``,
and the fields of whatever sections the experiment's config holds
(``task.length``, ``model.cell``, ...), so an experiment's own section is
overridden exactly like the shared ones::

    cfg = apply_overrides(cfg, ["optim.learning_rate=1e-3", "model.cell=gru", "task.tau=30"])

Override values are strings parsed by pydantic against the field's type (its lax
mode reads ``"3"`` as 3, ``"1e-3"`` as 0.001, ``"true"`` as True); ``none`` or
``null`` set an optional field to None. Every problem is reported in one
:class:`~jaxrnn.training.config.ConfigError`, a line each: an unknown key (with
the valid keys of its section and the closest one), a missing ``=``, a value of
the wrong type or out of range, a broken cross-field rule.
"""

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from jaxrnn.training.config import Config, ConfigError, is_section, to_dict


def _fields(cls) -> dict[str, Any]:
    """``{name: FieldInfo}`` of a pydantic dataclass, in declaration order."""
    return cls.__pydantic_fields__


def _section_class(config: Config, name: str) -> type | None:
    """The class of ``config``'s section ``name`` (None: not a section, or None)."""
    value = getattr(config, name, None)
    return type(value) if is_section(value) else None


def is_optional(annotation) -> bool:
    """Whether a field may be None (``X | None``), so that ``none`` means None."""
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and type(None) in typing.get_args(annotation)


def _literal_choices(annotation) -> tuple | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return None


def _walk(config: Config, parts: Sequence[str]) -> list[type | None]:
    """The section classes along a dotted key, ``[Config, section class, ...]``, as far as
    the parts name sections; None for a section the experiment leaves empty (``task=None``)."""
    classes: list[type | None] = [type(config)]
    for part in parts:
        cls = classes[-1]
        if cls is None or part not in _fields(cls):
            break
        if cls is type(config):
            value = getattr(config, part)
            if not is_section(value) and not (value is None and part in ("task", "model")):
                break  # a value, not a section
            classes.append(_section_class(config, part))
        else:
            annotation = _fields(cls)[part].annotation
            if not dataclasses.is_dataclass(annotation):
                break
            classes.append(annotation)
    return classes


def lookup(config: Config, key: str):
    """The field a dotted key names in ``config`` (its pydantic ``FieldInfo``), the class
    of a section for a section's key, or None where ``key`` names nothing."""
    parts = key.split(".")
    classes = _walk(config, parts[:-1])
    if len(classes) < len(parts) or classes[-1] is None:
        return None
    info = _fields(classes[-1]).get(parts[-1])
    if info is None:
        return None
    section = _walk(config, parts)
    return section[-1] if len(section) > len(parts) and section[-1] is not None else info


def names_a_section(config: Config, key: str) -> bool:
    """Whether ``key`` names a whole section (``optim``) rather than a value."""
    return isinstance(lookup(config, key), type)


def get(config: Config, key: str):
    """The value at a dotted key (``get(cfg, "optim.learning_rate")``)."""
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def unknown_key(config: Config, key: str) -> str:
    """'unknown key ...' with the valid keys of the deepest valid section and a suggestion."""
    parts = key.split(".")
    classes = _walk(config, parts[:-1])
    depth = len(classes) - 1
    cls, prefix = classes[-1], "".join(f"{p}." for p in parts[:depth])
    if cls is None:  # a section the experiment leaves empty (task=None)
        section = prefix[:-1]
        return f"unknown key {key!r}: this experiment's config has no {section!r} settings"
    names = list(_fields(cls))
    where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
    message = f"unknown key {key!r}; valid keys {where}: {', '.join(names)}"
    leaf = parts[depth]  # the first part that is not a section
    # Also catch abbreviations by initials (`lr`, `wd`, `bs`), too short for difflib.
    close = difflib.get_close_matches(leaf, names, n=1) or [
        name for name in names if "".join(word[0] for word in name.split("_")) == leaf
    ]
    if close:
        message += f" (did you mean '{prefix}{close[0]}'?)"
    return message


def _show(value) -> str:
    """A value as the user typed it: numbers bare, other strings quoted."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return repr(value)
        return value
    return repr(value)


_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "bool_parsing": "expected a boolean (true or false)",
    "bool_type": "expected a boolean (true or false)",
    "string_type": "expected a string",
    "string_too_short": "expected a non-empty string",
    "dataclass_type": "expected a mapping of keys to values",
    "dataclass_args_type": "expected a mapping of keys to values",
}


def _describe(error: Mapping[str, Any], config: Config) -> str:
    """One pydantic error (``loc``, ``input``, ``type``, ``msg``) as a line naming the key."""
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return unknown_key(config, key)
    info = lookup(config, key) if key else None
    if kind == "value_error":
        # A validator's own message; its section (if any) is the key.
        text = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        if info is not None and not isinstance(info, type):
            return f"{key}={_show(error['input'])}: {text}"
        return f"{key}: {text}" if key else text
    if kind == "literal_error":
        choices = _literal_choices(info.annotation) if info is not None else None
        expected = ", ".join(map(repr, choices)) if choices else error["ctx"]["expected"]
        expectation = f"expected one of {expected}"
    elif kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        expectation = f"must be {op} {error['ctx'][name]:g}"
    else:
        expectation = _EXPECTED.get(kind, error["msg"])
    if info is not None and not isinstance(info, type) and is_optional(info.annotation):
        expectation += " (or none)"
    return f"{key}={_show(error['input'])}: {expectation}"


def _validate(cls, value, config: Config, prefix: tuple = ()):
    """``value`` validated as ``cls``; pydantic's errors as ConfigError lines."""
    try:
        return TypeAdapter(cls).validate_python(value)
    except ValidationError as e:
        lines = [_describe({**err, "loc": (*prefix, *err["loc"])}, config) for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None


def from_dict(d: Mapping[str, Any], like: Config) -> Config:
    """Validate nested dicts (e.g. a saved ``config.json``) into a config of ``like``'s kind.

    ``like`` gives the classes of the experiment's own sections (a config from the
    same experiment's ``get_config``; its values are not used). Missing fields take
    their defaults; unknown keys and invalid values raise :class:`ConfigError`.
    ``from_dict(to_dict(c), c) == c``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"config: expected a mapping of keys to values, got {type(d).__name__}")
    problems, values = [], dict(d)
    for name in ("task", "model"):
        cls = _section_class(like, name)
        if cls is None:
            continue
        try:
            values[name] = _validate(cls, values.get(name, {}), like, (name,))
        except ConfigError as e:
            problems.append(str(e))
            values[name] = getattr(like, name)  # keep checking the rest
    try:
        config = _validate(type(like), values, like)
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Apply ``key.sub=value`` overrides in order (a later one wins) and re-validate.

    Args:
      config: the base config.
      overrides: strings ``"section.field=value"`` (or ``"seed=3"`` / ``"name=x"``),
        split at the first ``=``. The value is parsed by pydantic against the
        field's type; ``none``/``null`` (any case) set an optional field to None.

    Returns:
      A new, validated config (the cross-field rules are re-checked on the whole).

    Raises:
      ConfigError: listing every missing ``=``, unknown key (with the valid keys
        and the closest match), unparsable value, out-of-range value or broken
        cross-field rule, each with its key and value.

    Example:
      >>> apply_overrides(cfg, ["model.cell=gru", "optim.learning_rate=1e-3"]).model.cell
      'gru'
    """
    if isinstance(overrides, str | bytes | Mapping) or not isinstance(overrides, Iterable):
        hint = ""
        if isinstance(overrides, Mapping):
            hint = f"; write {[f'{k}={v}' for k, v in overrides.items()]!r}"
        raise ConfigError(
            f"overrides: expected a sequence of 'key=value' strings, got {overrides!r}{hint}"
        )
    merged = to_dict(config)
    problems = []
    for i, override in enumerate(overrides):
        if not isinstance(override, str):
            problems.append(
                f"overrides[{i}]: expected a 'key=value' string, got {type(override).__name__} "
                f"{override!r}"
            )
            continue
        key, sep, value = override.partition("=")
        key = key.strip()
        if not sep:
            problems.append(f"{override!r}: expected key=value, e.g. 'optim.learning_rate=1e-3'")
            continue
        info = lookup(config, key)
        if info is None:
            problems.append(unknown_key(config, key))
            continue
        if isinstance(info, type):
            keys = ", ".join(f"{key}.{name}" for name in _fields(info))
            problems.append(f"{key!r} is a section, not a value; set one of its keys: {keys}")
            continue
        if is_optional(info.annotation) and value.strip().lower() in ("none", "null"):
            value = None
        *path, leaf = key.split(".")
        section = merged
        for part in path:
            section = section[part]
        section[leaf] = value
    try:
        # Validated even after a bad key, so that one error lists every problem.
        config = from_dict(merged, config)
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return config
