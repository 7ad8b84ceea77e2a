"""Training: typed configs, experiments as plug-ins, the one training loop, checkpoints.

The public surface an experiment file uses::

    from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section

and the runner from Python (:func:`train`, :func:`load_run`, :func:`evaluate`).
"""

from jaxrnn.training.config import (
    Config,
    ConfigError,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_hash,
    make_cell,
    section,
    to_dict,
)
from jaxrnn.training.experiment import Experiment, ExperimentError
from jaxrnn.training.experiment import load as load_experiment
from jaxrnn.training.overrides import apply_overrides, from_dict
from jaxrnn.training.runs import Run, evaluate, extend, load_run, train

__all__ = [
    "Config",
    "ConfigError",
    "Experiment",
    "ExperimentError",
    "ModelConfig",
    "OptimConfig",
    "Run",
    "TrainConfig",
    "apply_overrides",
    "config_hash",
    "evaluate",
    "extend",
    "from_dict",
    "load_experiment",
    "load_run",
    "make_cell",
    "section",
    "to_dict",
    "train",
]
