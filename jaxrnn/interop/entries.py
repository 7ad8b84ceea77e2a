"""The one check every converter makes before it reads a weight: the entries and shapes.

A converted state (PyTorch's ``state_dict``, Flax's variables, jaxrnn's params
flattened by name) must hold exactly the entries the target expects, each of the
expected shape; anything else is an error that names the argument, what was expected
and what was found, before any value is copied.
"""

from collections.abc import Mapping


def check_entries(
    name: str,
    got: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    context: str,
) -> None:
    """Raise unless ``got`` has exactly ``expected``'s entries, each of its shape.

    Args:
      name: the argument the entries came from (``"state_dict"``, ``"params"``, ...).
      got: ``{entry: shape}`` as found.
      expected: ``{entry: shape}`` as the target needs them.
      context: what the expectation comes from (a module's repr, a cell's sizes).

    Raises:
      ValueError: naming missing and unexpected entries, or the first wrong shape.
    """
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{name}: expected the entries of {context}, {list(expected)}; "
            f"missing {missing}, unexpected {unexpected}"
        )
    for k, shape in expected.items():
        if tuple(got[k]) != shape:
            raise ValueError(
                f"{name}: expected {k} of shape {shape} ({context}), got {tuple(got[k])}"
            )
