"""Typed, validated experiment configs and ``key=value`` command-line overrides.

A config is a tree of frozen pydantic dataclasses::

    Config(name, seed, task: TaskConfig, model: ModelConfig, optim: OptimConfig,
           train: TrainConfig)

Every field is typed (``Literal`` for choices, ``Field(gt=0)`` and friends for
ranges), unknown fields are refused, and the cross-field rules (``min_length <=
length``, ``warmup_steps < train.steps``, ...) are checked when a config is built,
so a bad config fails before any compute. The defaults are the default
experiment, ``configs/adding_lstm.py``.

A config file (big_vision style) is a Python file whose docstring opens with the
command that runs it and the result it should give, and whose
``get_config(smoke: bool = False) -> Config`` returns the config; ``smoke=True``
shrinks it to a run of a few seconds for tests. :func:`load` imports such a file
and applies overrides::

    cfg = load("configs/adding_lstm.py", ["optim.learning_rate=1e-3", "model.cell=gru"])

Override values are strings parsed by pydantic against the field's type (its lax
mode reads ``"3"`` as 3, ``"1e-3"`` as 0.001, ``"true"`` as True); ``none`` or
``null`` set an optional field to None. Every problem is reported in one
:class:`ConfigError` naming the key, the value and what was expected.

References:
  Beyer, Zhai, Kolesnikov (2022). big_vision (``configs/*.py`` with ``get_config``
  and a local-run mode). https://github.com/google-research/big_vision
  pydantic v2 dataclasses and validation errors: https://docs.pydantic.dev/
"""

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from jaxrnn.cell import ACTIVATIONS

# Frozen: a config is a value (hashable, safe to share); extra="forbid": a misspelt
# field is an error, not a silently ignored setting; no inf/nan: every config is JSON.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

UnitInterval = Annotated[float, Field(ge=0.0, lt=1.0)]  # [0, 1)

# Where `load` finds bare config names: <repository>/configs.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = "adding_lstm"


# Cells over trees (jaxrnn.trees), for the expressions task only: the binary (N-ary, N = 2)
# and Child-Sum Tree-LSTMs (Tai et al. 2015) and the recursive network (Socher et al. 2011).
TREE_CELLS = ("binary_tree_lstm", "child_sum_tree_lstm", "recursive")


# Metrics that improve upwards; every other metric (a loss, bits per token) is minimised.
MAXIMISED = ("accuracy", "exact_match")


def metric_mode(metric: str) -> Literal["min", "max"]:
    """``"max"`` for an accuracy (``accuracy``, ``accuracy_*``, ``exact_match``), else ``"min"``:
    how checkpoints and sweep settings are ranked by ``train.best_metric``."""
    return "max" if metric.startswith(MAXIMISED) else "min"


class ConfigError(ValueError):
    """A config or an override is invalid; the message lists every problem, one a line."""


@dataclass(frozen=True, config=_STRICT)
class TaskConfig:
    """The data (see :mod:`jaxrnn.data`).

    Attributes:
      name: ``"adding"``, ``"copying"``, ``"parity"`` or ``"digits"``.
      length: sequence length ``T`` of adding/parity; the delay of copying.
      min_length: sample lengths in ``[min_length, length]`` (adding, parity);
        None: every sequence has ``length`` steps.
      pixelwise: digits read pixel by pixel (``T = 64``) instead of row by row (``T = 8``).
      digits: the most digits of an operand of ``"addition"`` (``"123+45"`` -> ``"168"``,
        a seq2seq task, see :func:`jaxrnn.text.addition`), in ``[1, 9]``; that task needs it.
      text_chars: ``"shakespeare"`` (character-level language modelling, windows of
        ``length`` characters, see :func:`jaxrnn.text.shakespeare`) reads only the first
        ``text_chars`` characters of the corpus; None: all 5.06 M.
      max_ops: ``"expressions"`` (arithmetic expression trees, value mod 10, read as a
        tree by a tree cell or as a string by a sequence cell, see
        :mod:`jaxrnn.trees.expressions`): training expressions have 1..``max_ops``
        operators; that task needs it.
      test_max_ops: expressions: the test split adds as many expressions with
        ``max_ops + 1 .. test_max_ops`` operators (longer and deeper than any in
        training); None: only held-out expressions of the training range.
      num_train: expressions: the size of the finite training set; that task needs it.
    """

    name: Literal[
        "adding", "copying", "parity", "digits", "addition", "shakespeare", "expressions"
    ] = "adding"
    length: Annotated[int, Field(ge=2)] = 100
    min_length: Annotated[int, Field(ge=2)] | None = None
    pixelwise: bool = False
    digits: Annotated[int, Field(ge=1, le=9)] | None = None
    text_chars: Annotated[int, Field(ge=1000)] | None = None
    max_ops: PositiveInt | None = None
    test_max_ops: PositiveInt | None = None
    num_train: PositiveInt | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.min_length is not None:
            if self.name not in ("adding", "parity"):
                raise ValueError(
                    f"min_length={self.min_length} is only used by the adding and parity tasks, "
                    f"not {self.name!r}; set min_length=none"
                )
            if self.min_length > self.length:
                raise ValueError(f"min_length={self.min_length} must be <= length={self.length}")
        if self.pixelwise and self.name != "digits":
            raise ValueError(f"pixelwise=True is only used by the digits task, not {self.name!r}")
        if self.name == "addition" and self.digits is None:
            raise ValueError("digits=None: the addition task needs an int in [1, 9], e.g. digits=3")
        if self.digits is not None and self.name != "addition":
            raise ValueError(
                f"digits={self.digits} is only used by the addition task, not {self.name!r}; "
                f"set digits=none"
            )
        if self.text_chars is not None and self.name != "shakespeare":
            raise ValueError(
                f"text_chars={self.text_chars} is only used by the shakespeare task, "
                f"not {self.name!r}; set text_chars=none"
            )
        expression_fields = {
            "max_ops": self.max_ops,
            "test_max_ops": self.test_max_ops,
            "num_train": self.num_train,
        }
        for key, value in expression_fields.items():
            if self.name == "expressions" and value is None and key != "test_max_ops":
                raise ValueError(
                    f"{key}=None: the expressions task needs a positive int, e.g. "
                    f"{key}={dict(max_ops=8, num_train=20000)[key]}"
                )
            if self.name != "expressions" and value is not None:
                raise ValueError(
                    f"{key}={value} is only used by the expressions task, not {self.name!r}; "
                    f"set {key}=none"
                )
        if self.test_max_ops is not None and self.max_ops and self.test_max_ops < self.max_ops:
            raise ValueError(
                f"test_max_ops={self.test_max_ops} must be >= max_ops={self.max_ops} "
                "(or none: test on the training range only)"
            )
        return self


@dataclass(frozen=True, config=_STRICT)
class ModelConfig:
    """The recurrent model: ``num_layers`` cells, stacked by :func:`jaxrnn.stack`.

    Attributes:
      cell: ``"lstm"``, ``"gru"`` or ``"elman"``; for the expressions task also a tree
        cell reading the expression tree: ``"binary_tree_lstm"`` (N-ary Tree-LSTM, N = 2),
        ``"child_sum_tree_lstm"`` (Tai et al. 2015) or ``"recursive"`` (Socher et al. 2011).
      hidden_size: ``H`` of every layer.
      num_layers: stacked layers.
      activation: Elman (or recursive-network) activation, a key of ``jaxrnn.cell.ACTIVATIONS``.
      forget_bias: initial LSTM forget-gate bias (1.0: Gers et al. 2000; Jozefowicz et al. 2015).
      recurrent_init: ``W_hh`` initialiser: ``"orthogonal"`` (Saxe et al. 2014) or
        ``"identity"`` (Le et al. 2015, scaled by ``identity_scale``).
      identity_scale: the scale of the identity initialiser.
      chrono_t_max: chrono gate-bias initialisation for the expected longest
        dependency (Tallec & Ollivier 2018); must be > 2; None: off.
      layer_norm: layer-normalised LSTM/GRU (Ba et al. 2016).
      dropout: dropout rate between stacked layers, in ``[0, 1)``.
      residual: residual connections between stacked layers.
      remat: memory-lean BPTT for long sequences: recompute segments of this many
        steps in the backward pass (``"sqrt"``: ``round(sqrt(T))``; None: off), see
        ``jaxrnn.scan``. Same values and gradients, less memory, more time.
      attention: seq2seq tasks only: the decoder's Luong attention over the encoder
        outputs, ``"additive"`` (Bahdanau et al. 2015), ``"dot"`` or ``"general"``
        (Luong et al. 2015); None: none (the source is read through the final carry only).
      embedding_size: seq2seq tasks only (and needed there): the width of the token embeddings.
      bidirectional: seq2seq tasks only: a bidirectional encoder (Schuster, Paliwal 1997).
      scheduled_sampling: seq2seq tasks only: the probability, in ``[0, 1)``, of feeding
        the decoder its own sampled token instead of the true one during training
        (Bengio et al. 2015); 0: teacher forcing.
    """

    cell: Literal["lstm", "gru", "elman", *TREE_CELLS] = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    activation: str = "tanh"
    forget_bias: float = 1.0
    recurrent_init: Literal["orthogonal", "identity"] = "orthogonal"
    identity_scale: PositiveFloat = 1.0
    chrono_t_max: Annotated[float, Field(gt=2.0)] | None = None
    layer_norm: bool = False
    dropout: UnitInterval = 0.0
    residual: bool = False
    remat: PositiveInt | Literal["sqrt"] | None = None
    attention: Literal["additive", "dot", "general"] | None = None
    embedding_size: PositiveInt | None = None
    bidirectional: bool = False
    scheduled_sampling: UnitInterval = 0.0

    @field_validator("remat", mode="before")
    @classmethod
    def _remat(cls, remat):
        # Checked before pydantic's union, which would report each member apart.
        if isinstance(remat, str) and remat.strip().isdigit():
            remat = int(remat)
        if remat is None or remat == "sqrt":
            return remat
        if isinstance(remat, int) and not isinstance(remat, bool) and remat > 0:
            return remat
        raise ValueError("expected a positive int (steps per segment) or 'sqrt' (or none)")

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, activation: str) -> str:
        if activation not in ACTIVATIONS:
            raise ValueError(f"expected one of {', '.join(map(repr, ACTIVATIONS))}")
        return activation

    @model_validator(mode="after")
    def _check(self):
        # Settings the chosen model would silently ignore are errors.
        if self.activation != "tanh" and self.cell not in ("elman", "recursive"):
            raise ValueError(
                f"activation={self.activation!r} is only used by cell='elman' or 'recursive' "
                f"(LSTM and GRU have fixed activations), got cell={self.cell!r}"
            )
        if self.cell == "elman" and (self.layer_norm or self.chrono_t_max is not None):
            raise ValueError(
                "layer_norm and chrono_t_max need a gated cell ('lstm' or 'gru'), got cell='elman'"
            )
        if self.num_layers == 1 and (self.dropout > 0.0 or self.residual):
            raise ValueError(
                f"dropout={self.dropout} and residual={self.residual} act between stacked layers; "
                f"they need num_layers > 1, got num_layers=1"
            )
        if self.cell in TREE_CELLS:
            sequence_only = {
                "num_layers": self.num_layers != 1,
                "layer_norm": self.layer_norm,
                "chrono_t_max": self.chrono_t_max is not None,
                "recurrent_init": self.recurrent_init != "orthogonal",
                "remat": self.remat is not None,
            }
            if any(sequence_only.values()):
                keys = ", ".join(f"{k}={getattr(self, k)!r}" for k, v in sequence_only.items() if v)
                raise ValueError(
                    f"{keys}: sequence-cell settings, not used by the tree cell "
                    f"cell={self.cell!r}; leave them at their defaults"
                )
        return self


@dataclass(frozen=True, config=_STRICT)
class OptimConfig:
    """The optimizer (optax), its learning-rate schedule and gradient clipping.

    Attributes:
      name: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"``.
      learning_rate: the peak learning rate.
      momentum: in ``[0, 1)``, for sgd and rmsprop.
      nesterov: Nesterov momentum (sgd, needs ``momentum > 0``).
      weight_decay: decoupled weight decay (adamw), ``>= 0``.
      b1, b2: Adam's moment decay rates, in ``[0, 1)``.
      eps: Adam/RMSProp/Adagrad denominator offset.
      schedule: ``"constant"``, ``"warmup_cosine"`` (linear warm-up, then cosine
        decay to ``end_value_fraction * learning_rate``; Loshchilov & Hutter 2017)
        or ``"exponential"`` (times ``decay_rate`` every ``decay_steps``).
      warmup_steps: linear warm-up steps, ``< train.steps``.
      decay_steps: schedule length; None: the run's total steps.
      decay_rate: exponential decay factor, in ``(0, 1]``.
      end_value_fraction: the cosine floor as a fraction of the peak, in ``[0, 1]``.
      clip_norm: global-norm clipping bound (Pascanu et al. 2013); None: off.
      clip_value: element-wise clipping bound; None: off.
    """

    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"] = "adam"
    learning_rate: PositiveFloat = 3e-3
    momentum: UnitInterval = 0.0
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    b1: UnitInterval = 0.9
    b2: UnitInterval = 0.999
    eps: PositiveFloat = 1e-8
    schedule: Literal["constant", "warmup_cosine", "exponential"] = "constant"
    warmup_steps: NonNegativeInt = 0
    decay_steps: PositiveInt | None = None
    decay_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    end_value_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    clip_norm: PositiveFloat | None = 1.0  # Pascanu, Mikolov, Bengio (2013)
    clip_value: PositiveFloat | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError(
                f"nesterov=True requires name='sgd' and momentum > 0, "
                f"got name={self.name!r}, momentum={self.momentum}"
            )
        if self.momentum > 0.0 and self.name not in ("sgd", "rmsprop"):
            raise ValueError(
                f"momentum={self.momentum} is only used by 'sgd' and 'rmsprop', "
                f"got name={self.name!r}"
            )
        if self.weight_decay > 0.0 and self.name != "adamw":
            raise ValueError(
                f"weight_decay={self.weight_decay} is only used by 'adamw', got name={self.name!r}"
            )
        return self


@dataclass(frozen=True, config=_STRICT)
class TrainConfig:
    """The run: steps, batches, evaluation, checkpoints and logging.

    Attributes:
      steps: optimizer steps.
      batch_size: training sequences per step.
      eval_every: evaluate every this many steps (and at the end).
      eval_batch_size, eval_batches: held-out evaluation size.
      checkpoint_every: save every this many steps (and at the end).
      keep_last: how many recent checkpoints to keep.
      keep_best: how many best checkpoints (by ``best_metric``) to keep; 0: none.
      best_metric: the evaluation metric that ranks checkpoints.
      nonfinite: a non-finite loss or gradient ``"skip"``-s the update or ``"stop"``-s the run.
      log_every: log training metrics every this many steps.
    """

    # The defaults are the default experiment: LSTM (H = 64, Adam 3e-3) on adding,
    # T = 100, which leaves the 0.167 plateau after 900-1,000 steps (seeds 0-2).
    steps: PositiveInt = 2000
    batch_size: PositiveInt = 64
    eval_every: PositiveInt = 200
    eval_batch_size: PositiveInt = 500
    eval_batches: PositiveInt = 2
    checkpoint_every: PositiveInt = 500
    keep_last: PositiveInt = 2
    keep_best: NonNegativeInt = 1
    best_metric: Annotated[str, Field(min_length=1)] = "loss"
    nonfinite: Literal["skip", "stop"] = "skip"
    log_every: PositiveInt = 1


@dataclass(frozen=True, config=_STRICT)
class Config:
    """A whole experiment. The defaults are ``configs/adding_lstm.py``.

    Attributes:
      name: the experiment's name (the config file's name by convention).
      seed: the root of every random key of the run, ``>= 0``.
      task, model, optim, train: the sections.
    """

    name: Annotated[str, Field(min_length=1)] = DEFAULT_CONFIG
    seed: NonNegativeInt = 0
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check(self):
        if self.optim.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optim.warmup_steps={self.optim.warmup_steps} must be < "
                f"train.steps={self.train.steps}"
            )
        self._check_seq2seq()
        if self.model.cell in TREE_CELLS and self.task.name != "expressions":
            raise ValueError(
                f"model.cell={self.model.cell!r} reads trees: only the expressions task has "
                f"them, not task.name={self.task.name!r}"
            )
        return self

    def _check_seq2seq(self):
        """The model.* fields of the encoder-decoder are set for seq2seq tasks only."""
        m = self.model
        seq2seq_fields = {
            "attention": (m.attention, None),
            "embedding_size": (m.embedding_size, None),
            "bidirectional": (m.bidirectional, False),
            "scheduled_sampling": (m.scheduled_sampling, 0.0),
        }
        if self.task.name != "addition":
            for field, (value, default) in seq2seq_fields.items():
                if value != default:
                    raise ValueError(
                        f"model.{field}={value!r} is only used by the seq2seq task "
                        f"(task.name='addition'), not task.name={self.task.name!r}; "
                        f"set model.{field}={'none' if default is None else default}"
                    )
            return
        if m.embedding_size is None:
            raise ValueError(
                "model.embedding_size=None: the seq2seq task (task.name='addition') needs "
                "a positive int, e.g. model.embedding_size=32"
            )
        if m.dropout > 0.0 or m.remat is not None:
            raise ValueError(
                f"model.dropout={m.dropout} and model.remat={m.remat!r} are not supported by "
                f"the seq2seq task (task.name='addition'); set model.dropout=0 and model.remat=none"
            )
        if m.attention == "dot" and m.bidirectional:
            raise ValueError(
                "model.attention='dot' needs decoder and encoder outputs of one width, but "
                "model.bidirectional=True doubles the encoder's; use 'general' or 'additive'"
            )


_ADAPTER = TypeAdapter(Config)


def _fields(cls) -> dict[str, Any]:
    """``{name: FieldInfo}`` of a pydantic dataclass, in declaration order."""
    return cls.__pydantic_fields__


def _is_section(annotation) -> bool:
    return dataclasses.is_dataclass(annotation)


def _is_optional(annotation) -> bool:
    """Whether a field may be None (``X | None``), so that ``none`` means None."""
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and type(None) in typing.get_args(annotation)


def _literal_choices(annotation) -> tuple | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return None


def _lookup(key: str):
    """The FieldInfo at a dotted key, or None if ``key`` names no field."""
    cls, info = Config, None
    for part in key.split("."):
        if cls is None or part not in _fields(cls):
            return None
        info = _fields(cls)[part]
        cls = info.annotation if _is_section(info.annotation) else None
    return info


def _unknown_key(key: str) -> str:
    """'unknown key ...' with the valid keys of the deepest valid section and a suggestion."""
    parts = key.split(".")
    cls, prefix = Config, ""
    for part in parts[:-1]:
        info = _fields(cls).get(part)
        if info is None or not _is_section(info.annotation):
            break
        cls, prefix = info.annotation, f"{prefix}{part}."
    names = list(_fields(cls))
    where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
    message = f"unknown key {key!r}; valid keys {where}: {', '.join(names)}"
    leaf = parts[prefix.count(".")]  # the first part that is not a section
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


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error (``loc``, ``input``, ``type``, ``msg``) as a line naming the key."""
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return _unknown_key(key)
    if kind == "value_error":
        # A validator's own message; its section (if any) is the key.
        text = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        info = _lookup(key) if key else None
        if info is not None and not _is_section(info.annotation):
            return f"{key}={_show(error['input'])}: {text}"
        return f"{key}: {text}" if key else text
    if kind == "literal_error":
        info = _lookup(key)
        choices = _literal_choices(info.annotation) if info is not None else None
        expected = ", ".join(map(repr, choices)) if choices else error["ctx"]["expected"]
        expectation = f"expected one of {expected}"
    elif kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        expectation = f"must be {op} {error['ctx'][name]:g}"
    else:
        expectation = _EXPECTED.get(kind, error["msg"])
    info = _lookup(key)
    if info is not None and _is_optional(info.annotation):
        expectation += " (or none)"
    return f"{key}={_show(error['input'])}: {expectation}"


def _validate(d: Mapping[str, Any]) -> Config:
    try:
        return _ADAPTER.validate_python(d)
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err) for err in e.errors())) from None


def to_dict(config: Config) -> dict[str, Any]:
    """The fully resolved config as nested JSON-able dicts (every field, defaults included)."""
    return dataclasses.asdict(config)


def from_dict(d: Mapping[str, Any]) -> Config:
    """Validate nested dicts (e.g. a saved ``config.json``) into a :class:`Config`.

    Missing fields take their defaults; unknown keys and invalid values raise
    :class:`ConfigError`. ``from_dict(to_dict(c)) == c``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"config: expected a mapping of keys to values, got {type(d).__name__}")
    return _validate(d)


def config_hash(config: Config) -> str:
    """The first 12 hex digits of the sha256 of the canonical (sorted, compact) JSON.

    Equal configs give equal hashes in any process; any field change changes it.
    """
    canonical = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


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
      >>> apply_overrides(Config(), ["model.cell=gru", "optim.learning_rate=1e-3"]).model.cell
      'gru'
    """
    if isinstance(overrides, str):
        raise ConfigError(
            f"overrides: expected a sequence of 'key=value' strings, got {overrides!r}"
        )
    merged = to_dict(config)
    problems = []
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.strip()
        if not sep:
            problems.append(f"{override!r}: expected key=value, e.g. 'optim.learning_rate=1e-3'")
            continue
        info = _lookup(key)
        if info is None:
            problems.append(_unknown_key(key))
            continue
        if _is_section(info.annotation):
            keys = ", ".join(f"{key}.{name}" for name in _fields(info.annotation))
            problems.append(f"{key!r} is a section, not a value; set one of its keys: {keys}")
            continue
        if _is_optional(info.annotation) and value.strip().lower() in ("none", "null"):
            value = None
        *path, leaf = key.split(".")
        section = merged
        for part in path:
            section = section[part]
        section[leaf] = value
    try:
        # Validated even after a bad key, so that one error lists every problem.
        config = _validate(merged)
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def available_configs() -> list[str]:
    """The names of the config files in ``CONFIG_DIR`` (what a bare name may be)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))


def _resolve(path: str | None) -> Path:
    if path is None:
        path = DEFAULT_CONFIG
    given = Path(path)
    if given.is_file():
        return given
    if given.parent == Path("."):  # a bare name: `adding_lstm` or `adding_lstm.py`
        candidate = CONFIG_DIR / (given.name if given.suffix == ".py" else f"{given.name}.py")
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"config: no file {str(path)!r}; give a path to a config file or one of the "
        f"available configs in {CONFIG_DIR}: {', '.join(available_configs()) or '(none)'}"
    )


def load(path: str | None = None, overrides: Sequence[str] = (), *, smoke: bool = False) -> Config:
    """Import a config file, call its ``get_config(smoke=smoke)`` and apply overrides.

    Args:
      path: a config file's path, or a bare name resolved in ``CONFIG_DIR``
        (``"adding_lstm"`` -> ``configs/adding_lstm.py``); None: the default experiment.
      overrides: ``key=value`` strings, see :func:`apply_overrides`.
      smoke: ask the file for its seconds-long smoke-test variant.

    Returns:
      The validated :class:`Config`.

    Raises:
      FileNotFoundError: no such file (the message lists the available configs).
      ConfigError: the file has no ``get_config``, it returns no ``Config``, or an
        override is invalid.

    Example:
      >>> cfg = load("adding_lstm", ["train.steps=500"], smoke=False)
    """
    file = _resolve(path)
    spec = importlib.util.spec_from_file_location(f"jaxrnn_config_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"config: {str(file)!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(
            f"config: {str(file)!r} defines no get_config(smoke: bool = False) -> Config"
        )
    config = get_config(smoke=smoke)
    if not isinstance(config, Config):
        raise ConfigError(
            f"config: get_config() in {str(file)!r} must return a jaxrnn.training.config.Config, "
            f"got {type(config).__name__}"
        )
    return apply_overrides(config, overrides)
