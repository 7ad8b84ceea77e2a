"""Sweep specs: a grid, random trials and seeds over a base config, as validated members.

A sweep is the cartesian product::

    members = grid points  ×  random trials  ×  seeds

* ``grid``: ``{key: [v1, v2, ...]}``, every combination (keys in the order given);
* ``random``: ``{key: "dist:args"}`` drawn ``trials`` times (each trial draws every
  random key once; the same trials combine with every grid point);
* ``seeds``: ``N`` (seeds ``0 .. N-1``), ``"a-b"`` (inclusive) or ``"a,b,c"``.

Distributions: ``loguniform:a,b`` (``exp U[log a, log b]``, ``0 < a < b``),
``uniform:a,b`` (``a < b``), ``int:a,b`` (integers in ``[a, b]``) and
``choice:x,y,...`` (one of the listed values, uniformly). Draws come from
``numpy.random.default_rng(base.seed)``, so a spec always expands to the same
members; drawn floats are rounded to 4 significant digits, which keeps tables
readable and the values exact in every config and log.

The spec comes from the command line (``--grid``, ``--random``, ``--trials``,
``--seeds``) and from the experiment file's optional ``get_sweep()``, which returns a
dict with any of ``grid`` (``{key: [values]}``), ``random`` (``{key: "dist:args"}``),
``trials``, ``seeds`` and ``max_group_size``. Command-line flags take precedence
per entry: ``--grid key=...`` replaces the file's grid values of ``key`` (other
keys of the file's grid stay), likewise ``--random``; ``--trials``, ``--seeds`` and
``--max-group-size`` replace the file's values. A plain override (``key=value`` for
every member) pins its key: the file's grid or range of that key is dropped (a
``--grid`` or ``--random`` of the key still sweeps it).

Every member's config is built with
:func:`jaxrnn.training.overrides.apply_overrides` (then the experiment's
``finalize_config``, if it declares one) before anything is computed, and every
problem of the spec — an unknown key (with the closest valid key), a value of the
wrong type, an empty grid, a bad distribution, a bad seed range, a combination
that breaks a cross-field rule — is reported in one
:class:`~jaxrnn.training.config.ConfigError`.
"""

import functools
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training.config import Config, ConfigError
from jaxrnn.training.overrides import apply_overrides, get, lookup, names_a_section, unknown_key

DISTRIBUTIONS = ("choice", "int", "loguniform", "uniform")
_SEEDS_HELP = "N (seeds 0..N-1, N > 0), a range 'a-b' (a <= b) or a list 'a,b,c' of integers >= 0"


class Member(NamedTuple):
    """One run of a sweep.

    Attributes:
      id: ``"m000"``, ``"m001"``, ... in spec order.
      overrides: the swept keys and their (validated, typed) values, ``seed``
        included, e.g. ``{"optim.learning_rate": 0.001, "seed": 2}``. The member's
        *setting* is this dict without ``seed``.
      config: the member's fully resolved config.
    """

    id: str
    overrides: dict[str, Any]
    config: Config


class Spec(NamedTuple):
    """A sweep as given (what ``sweep.json`` records), with its experiment, base config
    and members."""

    config: str  # the experiment file's path or name, as given
    experiment: experiment_lib.Experiment
    base_overrides: tuple[str, ...]  # key=value applied to every member
    grid: dict[str, list[str]]
    random: dict[str, str]
    trials: int
    seeds: list[int]
    max_group_size: int | None
    base: Config  # the experiment's config with base_overrides, not finalized
    members: list[Member]


def _text(value) -> str:
    """A Python value as an override string (``none``, ``true``, ``1e-3``, ``gru``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_grid(items: Sequence[str], problems: list[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: ["v1", "v2"]}``; problems are appended, not raised."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(
                f"grid {item!r}: expected key=v1,v2,..., e.g. 'optim.learning_rate=1e-3,3e-3'"
            )
            continue
        parts = [v.strip() for v in values.split(",")]
        if parts == [""]:
            problems.append(f"grid {key!r}: expected at least one value (key=v1,v2,...), got none")
        elif "" in parts:
            problems.append(f"grid {key!r}: an empty value in {values!r}; separate values by ','")
        elif key in grid:
            problems.append(f"grid {key!r}: given twice; list all its values once: {key}=v1,v2")
        else:
            grid[key] = parts
    return grid


def parse_random(items: Sequence[str], problems: list[str]) -> dict[str, str]:
    """``["key=dist:args", ...]`` -> ``{key: "dist:args"}`` with each distribution checked."""
    random: dict[str, str] = {}
    for item in items:
        key, sep, dist = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(
                f"random {item!r}: expected key=dist:args, e.g. 'lr=loguniform:1e-4,1e-2'"
            )
            continue
        if key in random:
            problems.append(f"random {key!r}: given twice")
            continue
        try:
            distribution(dist)
        except ValueError as e:
            problems.append(f"random {key}={dist!r}: {e}")
            continue
        random[key] = dist.strip()
    return random


def file_space(
    file: Mapping[str, Any], overrides: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The grid and random entries of a ``get_sweep()`` dict that plain overrides leave.

    A plain override (``key=value``, applied to every member) pins its key: the file's
    grid or range of that key is dropped, so ``jaxrnn sweep lm task.split=C`` trains
    split C only, not every split of the file's grid. (A ``--grid`` or ``--random``
    of the key still sweeps it: the flags win over both.)
    """
    pinned = {o.partition("=")[0].strip() for o in overrides}
    grid = {
        k: [_text(v) for v in values]
        for k, values in file.get("grid", {}).items()
        if k not in pinned
    }
    random = {k: v for k, v in file.get("random", {}).items() if k not in pinned}
    return grid, random


def distribution(text: str) -> tuple[str, list]:
    """``"loguniform:1e-4,1e-2"`` -> ``("loguniform", [1e-4, 1e-2])``, or ValueError."""
    name, sep, args = text.strip().partition(":")
    example = "e.g. loguniform:1e-4,1e-2, uniform:0,1, int:1,4 or choice:lstm,gru"
    if name not in DISTRIBUTIONS or not sep:
        raise ValueError(
            f"expected dist:args with dist one of {', '.join(DISTRIBUTIONS)} ({example})"
        )
    values = [a.strip() for a in args.split(",")]
    if name == "choice":
        if "" in values:
            raise ValueError("choice: expected one or more non-empty values, e.g. choice:lstm,gru")
        return name, values
    if len(values) != 2:
        raise ValueError(f"{name}: expected two bounds a,b, got {len(values)} value(s) {args!r}")
    try:
        lo, hi = (int(v) for v in values) if name == "int" else (float(v) for v in values)
    except ValueError:
        kind = "integers" if name == "int" else "numbers"
        raise ValueError(f"{name}: expected two {kind} a,b, got {args!r}") from None
    if (
        not (math.isfinite(lo) and math.isfinite(hi))
        or not lo <= hi
        or (name != "int" and lo == hi)
    ):
        op = "<=" if name == "int" else "<"
        raise ValueError(f"{name}: expected finite bounds a {op} b, got a={lo}, b={hi}")
    if name == "loguniform" and lo <= 0.0:
        raise ValueError(f"loguniform: expected 0 < a < b, got a={lo}")
    return name, [lo, hi]


def _draw(text: str, rng: np.random.Generator) -> str:
    name, args = distribution(text)
    if name == "choice":
        return args[int(rng.integers(len(args)))]
    if name == "int":
        return str(int(rng.integers(args[0], args[1] + 1)))
    if name == "loguniform":
        value = math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
    else:
        value = rng.uniform(args[0], args[1])
    return repr(float(f"{value:.4g}"))


def parse_seeds(seeds, problems: list[str]) -> list[int]:
    """``5`` -> ``[0..4]``; ``"0-4"`` -> ``[0..4]``; ``"0,3,7"`` or ``[0, 3, 7]`` as given."""
    is_list = isinstance(seeds, list | tuple)
    text = ",".join(map(str, seeds)) if is_list else str(seeds).strip()
    count, span, listed = (re.fullmatch(p, text) for p in (r"\d+", r"(\d+)-(\d+)", r"\d+(,\d+)*"))
    if isinstance(seeds, bool):
        pass
    elif count and not is_list and int(text) > 0:
        return list(range(int(text)))
    elif span and int(span[1]) <= int(span[2]):
        return list(range(int(span[1]), int(span[2]) + 1))
    elif listed and (is_list or "," in text):
        values = [int(v) for v in text.split(",")]
        if len(set(values)) == len(values):
            return values
    problems.append(f"seeds={text!r}: expected {_SEEDS_HELP}, without repeats")
    return []


def _known_key(base: Config, key: str, where: str, problems: list[str]) -> bool:
    """Whether ``key`` names a config value; if not, say so (with the closest valid key)."""
    if key == "seed":
        problems.append(f"{where} 'seed': sweep seeds with --seeds (or 'seeds' in get_sweep())")
        return False
    if lookup(base, key) is None:
        problems.append(f"{where}: {unknown_key(base, key)}")
        return False
    if names_a_section(base, key):
        problems.append(f"{where} {key!r}: a section, not a value; sweep one of its keys")
        return False
    return True


def expand(
    base: Config,
    *,
    grid: Mapping[str, Sequence[str]] = {},
    random: Mapping[str, str] = {},
    trials: int | None = None,
    seeds: Sequence[int] = (0,),
    problems: list[str] | None = None,
    finalize: Callable[[Config], Config] | None = None,
) -> list[Member]:
    """The members of ``grid × random trials × seeds`` over ``base``, each validated.

    Args:
      base: the config every member starts from (plain overrides already applied).
      grid: ``{key: [value strings]}``.
      random: ``{key: "dist:args"}``; needs ``trials``.
      trials: how many random draws (None or 0 without ``random``).
      seeds: the seeds of every setting.
      problems: a list to append problems to; None: raise them here.
      finalize: applied to each member's config after its overrides (an
        experiment's ``finalize_config``).

    Returns:
      The members in spec order (grid in key order, then trials, then seeds).

    Raises:
      ConfigError: every problem, one a line, each naming its key and value.
    """
    own = problems is None
    problems = [] if own else problems
    if random and not trials:
        problems.append(f"random {', '.join(random)}: expected --trials N > 0, got {trials}")
    if trials and not random:
        problems.append(f"trials={trials}: needs --random key=dist:args to draw from")
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 0
    ):
        problems.append(f"trials={trials!r}: expected an integer > 0")
        trials = 0
    for key in set(grid) & set(random):
        problems.append(f"{key!r}: in both grid and random; sweep it one way")
    for key, values in grid.items():
        if not values:
            problems.append(f"grid {key!r}: expected at least one value, got none")
    valid_random = {}
    for key, dist in random.items():
        try:
            distribution(dist)
            valid_random[key] = dist
        except ValueError as e:
            problems.append(f"random {key}={dist!r}: {e}")
    if not seeds:
        problems.append(f"seeds: expected {_SEEDS_HELP}, got none")
    # Unknown keys are reported once; the values of the others are still checked, by
    # building every member, so that one error lists every problem. A value's own
    # problem (type, range) or a broken cross-field rule is reported once, for the
    # first member that has it.
    known_grid = {k: v for k, v in grid.items() if _known_key(base, k, "grid", problems) and v}
    known_random = {
        k: d for k, d in valid_random.items() if _known_key(base, k, "random", problems)
    }
    rng = np.random.default_rng(base.seed)
    draws = [{k: _draw(d, rng) for k, d in known_random.items()} for _ in range(trials or 0)]
    combos = list(
        itertools.product(
            itertools.product(*known_grid.values()), draws or [{}], seeds or [base.seed]
        )
    )
    width = max(3, len(str(len(combos) - 1)))
    members, seen = [], set(problems)
    for point, draw, seed in combos:
        swept = {**dict(zip(known_grid, point, strict=True)), **draw}
        strings = [f"{k}={v}" for k, v in swept.items()] + [f"seed={seed}"]
        try:
            config = apply_overrides(base, strings)
            config = finalize(config) if finalize is not None else config
        except ConfigError as e:
            for line in str(e).splitlines():
                if line not in seen:
                    seen.add(line)
                    problems.append(f"{line} (member {' '.join(strings)})")
            continue
        overrides = {k: get(config, k) for k in [*swept, "seed"]}
        members.append(Member(f"m{len(members):0{width}d}", overrides, config))
    if problems:
        if own:
            raise ConfigError("\n".join(dict.fromkeys(problems)))
        return []
    return members


def load(
    path: str | None = None,
    overrides: Sequence[str] = (),
    *,
    grid: Sequence[str] = (),
    random: Sequence[str] = (),
    trials: int | None = None,
    seeds: int | str | Sequence[int] | None = None,
    max_group_size: int | None = None,
    smoke: bool = False,
) -> Spec:
    """The sweep of an experiment file and command-line flags, validated, as a :class:`Spec`.

    Args:
      path: the experiment file's path, or a built-in experiment's name (see
        :func:`jaxrnn.training.experiment.load`).
      overrides: ``key=value`` strings applied to every member.
      grid: ``"key=v1,v2,..."`` strings (``--grid``).
      random: ``"key=dist:args"`` strings (``--random``).
      trials: random draws (``--trials``).
      seeds: ``N``, ``"a-b"`` or ``"a,b,c"`` (``--seeds``); default: the file's, else
        the base config's seed alone.
      max_group_size: members per compiled program (``--max-group-size``); default:
        the file's, else all of a group.
      smoke: the experiment's seconds-long mode.

    Raises:
      ConfigError: every problem of the config, the overrides and the spec.
      FileNotFoundError: no such experiment.
      ExperimentError: the experiment file lacks a piece.

    Example:
      >>> spec = load("adding_lstm", grid=["optim.learning_rate=1e-3,3e-3"], seeds="0-2")
      >>> len(spec.members)
      6
    """
    experiment = experiment_lib.load(path)
    # Not finalized: each member is, after its own overrides.
    base = experiment_lib.overridden_config(experiment, overrides, smoke=smoke)
    file = experiment_lib.get_sweep(experiment)
    problems: list[str] = []
    file_grid, file_random = file_space(file, overrides)
    grid_ = {**file_grid, **parse_grid(grid, problems)}
    random_ = {**file_random, **parse_random(random, problems)}
    trials = trials if trials is not None else file.get("trials")
    seeds = seeds if seeds is not None else file.get("seeds", [base.seed])
    seed_list = parse_seeds(seeds, problems)
    max_group_size = max_group_size if max_group_size is not None else file.get("max_group_size")
    if max_group_size is not None and (
        isinstance(max_group_size, bool)
        or not isinstance(max_group_size, int)
        or max_group_size < 1
    ):
        problems.append(f"max_group_size={max_group_size!r}: expected an integer >= 1 (or none)")
    members = expand(
        base,
        grid=grid_,
        random=random_,
        trials=trials,
        seeds=seed_list or [base.seed],  # bad seeds are reported already; check the rest
        problems=problems,
        finalize=functools.partial(experiment_lib.finalize, experiment),
    )
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return Spec(
        config=str(path) if path is not None else experiment_lib.DEFAULT,
        experiment=experiment,
        base_overrides=tuple(overrides),
        grid=grid_,
        random=random_,
        trials=trials or 0,
        seeds=seed_list,
        max_group_size=max_group_size,
        base=base,
        members=members,
    )
