"""Typed, validated run configs: the shared sections and an experiment's own.

A config is a tree of frozen pydantic dataclasses, the *sections*::

    Config(name, seed, task, model, optim: OptimConfig, train: TrainConfig)

``optim`` and ``train`` are shared by every experiment. ``task`` is the
experiment's own section (any class decorated with :func:`section`, or None when
it has no settings of its own) and ``model`` is :class:`ModelConfig` or, again,
the experiment's own section. Every field is typed (``Literal`` for choices,
``Field(gt=0)`` and friends for ranges), unknown fields are refused, and the
cross-field rules (``warmup_steps < train.steps``, a cell setting the chosen cell
does not read, ...) are checked when a config is built, so a bad config fails
before any compute. ``key=value`` overrides and their error messages are
:mod:`jaxrnn.training.overrides`.

An experiment's own section::

    from jaxrnn.training import section

    @section
    class Series:
        \"\"\"The data: the Mackey-Glass series in windows of ``length`` steps.\"\"\"

        length: Annotated[int, Field(ge=2)] = 64
        tau: PositiveInt = 17

References:
  Beyer, Zhai, Kolesnikov (2022). big_vision (configs as typed Python with a
  local-run mode). https://github.com/google-research/big_vision
  pydantic v2 dataclasses and validation errors: https://docs.pydantic.dev/
"""

import dataclasses
import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from jaxrnn.cells import registry
from jaxrnn.cells.base import ACTIVATIONS, Cell
from jaxrnn.cells.references import Reference
from jaxrnn.combinators import dropout as dropout_lib
from jaxrnn.combinators.stack import RESIDUAL, stack

# Importing the tree cells registers them with the cell registry.
from jaxrnn.trees import TreeCell

# Frozen: a config is a value (hashable, safe to share); extra="forbid": a misspelt
# field is an error, not a silently ignored setting; no inf/nan: every config is JSON.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

UnitInterval = Annotated[float, Field(ge=0.0, lt=1.0)]  # [0, 1)

# The ModelConfig fields that configure one cell; a cell factory reads those its
# signature names (jaxrnn.cells.registry). The other fields stack and roll cells.
CELL_SETTINGS = (
    "activation",
    "forget_bias",
    "recurrent_init",
    "identity_scale",
    "chrono_t_max",
    "layer_norm",
    "r_min",
    "r_max",
    "max_phase",
)


def section(cls: type) -> type:
    """Make ``cls`` a config section: a frozen pydantic dataclass that refuses unknown
    fields and non-finite numbers, validated when it is built and by every override.

    Fields are annotated as for a dataclass, with pydantic's constraints
    (``PositiveInt``, ``Annotated[float, Field(ge=0.0)]``, ``Literal[...]``) and
    validators (``@field_validator``, ``@model_validator``), whose ``ValueError``
    messages reach the user with the key and value in front.

    A section may say which published methods its settings select, for a run's
    manifest and ``jaxrnn cite`` (:func:`jaxrnn.training.cite.methods`), with a method
    ``references(self) -> list[jaxrnn.cells.references.Reference]``, as
    :meth:`ModelConfig.references` does; a subclass of :class:`ModelConfig` adds its
    own to ``super().references()``.
    """
    return dataclass(frozen=True, config=STRICT)(cls)


def is_section(value: Any) -> bool:
    """Whether ``value`` is a section instance (not the class)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


class ConfigError(ValueError):
    """A config or an override is invalid; the message lists every problem, one a line."""


@section
class ModelConfig:
    """A recurrent model: ``num_layers`` cells named by ``cell``, stacked by :func:`jaxrnn.stack`.

    Attributes:
      cell: a registered cell (:mod:`jaxrnn.cells.registry`: ``"lstm"``, ``"gru"``,
        ``"elman"``; the linear recurrences ``"lru"``, ``"min_gru"``, ``"min_lstm"``,
        ``"rg_lru"``; the tree cells ``"binary_tree_lstm"``, ``"child_sum_tree_lstm"``,
        ``"recursive"``; anything a module registered) or a ``"module:factory"`` path.
      hidden_size: ``H`` of every layer.
      num_layers: stacked layers.
      activation: Elman (or recursive-network) activation, a key of ``jaxrnn.ACTIVATIONS``.
      forget_bias: initial LSTM forget-gate bias (1.0: Gers et al. 2000; Jozefowicz et al. 2015).
      recurrent_init: ``W_hh`` initialiser: ``"orthogonal"`` (Saxe et al. 2014),
        ``"identity"`` (Le et al. 2015, scaled by ``identity_scale``) or ``"gaussian"``
        (``N(0, 1/H)`` entrywise, the baseline orthogonal initialisation is compared with).
      identity_scale: the scale of the identity initialiser.
      chrono_t_max: chrono gate-bias initialisation for the expected longest
        dependency (Tallec & Ollivier 2018); must be > 2; None: off.
      layer_norm: layer-normalised LSTM/GRU (Ba et al. 2016).
      r_min, r_max: the LRU's eigenvalues start uniform on the ring ``r_min <= |λ| <= r_max``,
        ``0 <= r_min <= r_max <= 1`` (Orvieto et al. 2023; 0.9 and 0.999 for long ranges).
      max_phase: the largest initial phase of the LRU's eigenvalues, ``> 0`` (``π/10`` for
        long ranges).
      dropout: dropout rate between stacked layers, in ``[0, 1)``.
      residual: residual connections between stacked layers.
      remat: memory-lean BPTT for long sequences: recompute segments of this many
        steps in the backward pass (``"sqrt"``: ``round(sqrt(T))``; None: off), see
        ``jaxrnn.scan``. Same values and gradients, less memory, more time.

    The cell settings (``activation`` ... ``max_phase``) go to the cell's factory,
    which reads those its signature names; a setting changed from its default that
    the chosen cell does not read is an error, never silently ignored.

    :meth:`references` lists the methods these settings select, each with its paper.
    """

    cell: str = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    activation: str = "tanh"
    forget_bias: float = 1.0
    recurrent_init: Literal["orthogonal", "identity", "gaussian"] = "orthogonal"
    identity_scale: PositiveFloat = 1.0
    chrono_t_max: Annotated[float, Field(gt=2.0)] | None = None
    layer_norm: bool = False
    r_min: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    r_max: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    max_phase: PositiveFloat = 2 * math.pi
    dropout: UnitInterval = 0.0
    residual: bool = False
    remat: PositiveInt | Literal["sqrt"] | None = None

    @field_validator("cell")
    @classmethod
    def _known_cell(cls, cell: str) -> str:
        registry.lookup(cell)  # raises a ValueError naming the registered cells
        return cell

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
        factory = registry.lookup(self.cell)
        defaults = ModelConfig.__dataclass_fields__
        unread = [
            key
            for key in CELL_SETTINGS
            if getattr(self, key) != defaults[key].default and key not in factory.settings
        ]
        if unread:
            reads = [key for key in CELL_SETTINGS if key in factory.settings]
            changed = ", ".join(f"{key}={getattr(self, key)!r}" for key in unread)
            raise ValueError(
                f"{changed}: not a setting of cell={self.cell!r}, which reads "
                f"{', '.join(reads) or 'none of the cell settings'}; leave it at its default"
            )
        if factory.kind == "tree":
            sequence_only = ("num_layers", "dropout", "residual", "remat")
            changed = [k for k in sequence_only if getattr(self, k) != defaults[k].default]
            if changed:
                keys = ", ".join(f"{k}={getattr(self, k)!r}" for k in changed)
                raise ValueError(
                    f"{keys}: settings of cells rolled over sequences, not used by the tree "
                    f"cell cell={self.cell!r}; leave them at their defaults"
                )
        if self.r_min > self.r_max:
            raise ValueError(
                f"r_min={self.r_min}, r_max={self.r_max}: expected r_min <= r_max (the ring "
                f"r_min <= |λ| <= r_max the LRU's eigenvalues start on)"
            )
        if self.num_layers == 1 and (self.dropout > 0.0 or self.residual):
            raise ValueError(
                f"dropout={self.dropout} and residual={self.residual} act between stacked layers; "
                f"they need num_layers > 1, got num_layers=1"
            )
        return self

    def references(self) -> list[Reference]:
        """The methods this model uses, each with its paper (``jaxrnn cite``).

        The cell's, as its factory declares them for the settings it reads
        (:func:`jaxrnn.cells.registry.register`; none for a factory that declares
        none, see :func:`jaxrnn.training.cite.undeclared`), then variational dropout
        between layers (Gal & Ghahramani 2016) and residual connections (He et al.
        2016) where on. Stacking and ``remat`` (the same values, less memory) cite
        nothing.
        """
        factory = registry.lookup(self.cell)
        found = list(factory.references(**cell_settings(self))) if factory.references else []
        if self.dropout > 0.0:
            found.append(dropout_lib.VARIATIONAL)
        if self.residual:
            found.append(RESIDUAL)
        return found


def cell_settings(model: ModelConfig) -> dict[str, Any]:
    """The settings of ``model`` that its cell's factory reads (those its signature names)."""
    factory = registry.lookup(model.cell)
    return {key: getattr(model, key) for key in CELL_SETTINGS if key in factory.settings}


def make_cell(model: ModelConfig) -> Cell | TreeCell:
    """The cell a model section names: its factory called with the settings it reads,
    ``num_layers`` of them stacked (with ``dropout`` and ``residual``) when more than one."""
    factory = registry.lookup(model.cell)
    settings = cell_settings(model)
    cells = [factory.factory(model.hidden_size, **settings) for _ in range(model.num_layers)]
    if model.num_layers == 1:
        return cells[0]
    return stack(*cells, residual=model.residual, dropout=model.dropout)


@section
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
      recurrent_lr: the learning rate of the params a linear recurrent cell declares its
        recurrence's own (``Linear.recurrent``: the LRU's ``nu_log``, ``theta_log``,
        ``gamma_log``, the RG-LRU's ``Lambda``), which then get no weight decay, as the
        papers train them (Orvieto et al. 2023; De et al. 2024); the schedule and the
        clipping are shared. None: trained like every other param.
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
    recurrent_lr: PositiveFloat | None = None

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


@section
class TrainConfig:
    """The run: steps, batches, evaluation, model choice, checkpoints and logging.

    Attributes:
      steps: optimizer steps.
      batch_size: training examples per step.
      eval_every: evaluate on the validation split every this many steps (and at the end).
      eval_batch_size: examples per evaluation batch.
      eval_batches: evaluation batches of a stream's validation and test splits (a
        finite data set's splits are always scored whole, each example once).
      checkpoint_every: save every this many steps (and at the end).
      keep_last: how many recent checkpoints to keep.
      keep_best: how many checkpoints to keep by the validation ``best_metric``; the
        test split is scored once, at the best; 0: none kept, the test is scored at
        the last step.
      best_metric: the validation metric that chooses checkpoints (a metric the
        experiment's objective declares, or ``loss``).
      patience: stop a run (or sweep member) after this many evaluations without a
        better validation ``best_metric``; None: never stop early.
      nonfinite: a non-finite loss or gradient ``"skip"``-s the update, or ``"stop"``-s
        the run (a sweep member: that member) and marks it diverged.
      log_every: log training metrics every this many steps.
    """

    steps: PositiveInt = 2000
    batch_size: PositiveInt = 64
    eval_every: PositiveInt = 200
    eval_batch_size: PositiveInt = 500
    eval_batches: PositiveInt = 2
    checkpoint_every: PositiveInt = 500
    keep_last: PositiveInt = 2
    keep_best: NonNegativeInt = 1
    best_metric: Annotated[str, Field(min_length=1)] = "loss"
    patience: PositiveInt | None = None
    nonfinite: Literal["skip", "stop"] = "skip"
    log_every: PositiveInt = 1


@section
class Config:
    """A whole run.

    Attributes:
      name: the experiment's name (names the default run directory).
      seed: the root of every random key of the run, ``>= 0``.
      task: the experiment's own section, or None.
      model: :class:`ModelConfig` or the experiment's own section.
      optim, train: the shared sections.
    """

    name: Annotated[str, Field(min_length=1)] = "experiment"
    seed: NonNegativeInt = 0
    task: Any = None
    model: Any = dataclasses.field(default_factory=ModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @field_validator("task", "model")
    @classmethod
    def _a_section(cls, value, info):
        if value is None and info.field_name == "task":
            return value
        if not is_section(value):
            raise ValueError(
                f"expected a section (an instance of a @jaxrnn.training.section class), "
                f"got {type(value).__name__}"
            )
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.optim.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optim.warmup_steps={self.optim.warmup_steps} must be < "
                f"train.steps={self.train.steps}"
            )
        return self


def to_dict(config: Any) -> dict[str, Any]:
    """A config (or section) as nested JSON-able dicts, every field, defaults included."""
    return dataclasses.asdict(config)


def config_hash(config: Config) -> str:
    """The first 12 hex digits of the sha256 of the canonical (sorted, compact) JSON.

    Equal configs give equal hashes in any process; any field change changes it.
    """
    canonical = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
