"""Labels for the columns of a sweep's tables, and their check.

A label maps a key to text: the key is a config key as an override names it
(``optim.learning_rate``) or a metric of the objective (``loss``); the text is plain,
with ``$...$`` spans for math. They come from an experiment file's ``LABELS``
(:mod:`jaxrnn.training.experiment`, checked with its other pieces before any compute),
from :func:`jaxrnn.sweep.summarize` and from ``jaxrnn sweep --label``; the tables that
use them are :mod:`jaxrnn.sweep.tables`.
"""

import difflib
from collections.abc import Collection, Mapping
from typing import Any


def config_keys(section: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of a config's values (``optim.learning_rate``), as overrides name them."""
    keys = []
    for name, value in section.items():
        if isinstance(value, Mapping):
            keys += config_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def label_problems(
    labels: Any, config: Mapping[str, Any] | None = None, metrics: Collection[str] = ()
) -> list[str]:
    """What is wrong with a mapping of table labels (``LABELS``, ``--label``).

    Args:
      labels: expected ``{key: text}``, every ``$`` paired (``$...$`` is math).
      config: a resolved config as :func:`~jaxrnn.training.config.to_dict` gives it
        (None: the keys are not checked); a key must be one of its dotted keys ...
      metrics: ... or one of these metric names.

    Returns:
      One message per problem, naming the key; empty when there is none.
    """
    if not isinstance(labels, Mapping):
        return [f"expected a dict {{key: text}}, got {type(labels).__name__}"]
    problems = []
    known = set(metrics) | set(config_keys(config or {}))
    for key, text in labels.items():
        if not isinstance(key, str) or not isinstance(text, str):
            problems.append(f"{key!r}: expected a str key and a str text, got {text!r}")
        elif text.count("$") % 2:
            problems.append(f"{key!r}: {text!r} has an unpaired '$' ($...$ is math)")
        elif config is not None and key not in known:
            close = _closest(key, known)
            problems.append(
                f"unknown key {key!r}: expected a metric ({', '.join(sorted(metrics))}) or a "
                f"config key as an override names it (optim.learning_rate, ...)"
                + (f" (did you mean {close!r}?)" if close else "")
            )
    return problems


def _closest(key: str, known: Collection[str]) -> str | None:
    """The known key ``key`` most likely meant: a close name in its section, or one whose
    initials it is (``optim.lr``), as for overrides; else the closest whole key."""
    section, _, leaf = key.rpartition(".")
    leaves = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == section}
    close = difflib.get_close_matches(leaf, sorted(leaves), n=1) or [
        name for name in sorted(leaves) if "".join(w[0] for w in name.split("_") if w) == leaf
    ]
    if close:
        return leaves[close[0]]
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return close[0] if close else None
