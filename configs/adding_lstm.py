"""jaxrnn train adding_lstm

The default experiment: an LSTM (H = 64) on the adding problem with T = 100
(Hochreiter & Schmidhuber 1997, Sec. 5.4), Adam 3e-3 after global-norm clipping at 1,
batch 64, 2,000 steps; the checkpoint of lowest validation MSE is scored on the test split.

Expected (measured on 2 CPU cores, seed 0): the MSE sits on the 0.167 plateau
(predicting the training mean) for ~1,000 steps, then drops below 0.01 by step 1,200;
see experiments/README.md for the test MSE and the wall time.
"""

from typing import Annotated

from pydantic import Field, model_validator

from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section


@section
class Adding:
    """The adding problem's sequences.

    Attributes:
      length: ``T``, the sequence length.
      min_length: draw lengths in ``[min_length, length]`` (right-padded, masked);
        None: every sequence has ``length`` steps.
    """

    length: Annotated[int, Field(ge=2)] = 100
    min_length: Annotated[int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.min_length is not None and self.min_length > self.length:
            raise ValueError(f"min_length={self.min_length} must be <= length={self.length}")
        return self


def get_config(smoke: bool = False) -> Config:
    """The adding experiment; ``smoke``: a seconds-long run with T = 10 and H = 8."""
    return Config(
        name="adding_lstm",
        seed=0,
        task=Adding(length=10 if smoke else 100),
        model=ModelConfig(cell="lstm", hidden_size=8 if smoke else 64, forget_bias=1.0),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 2000,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 200,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 500,
            best_metric="loss",
        ),
    )


def get_data(config: Config) -> tasks.Stream:
    """Fresh sequences every step; held-out ones from fixed keys."""
    return tasks.adding(config.task.length, min_length=config.task.min_length)


def get_model(config: Config, data) -> models.Model:
    """The configured cell read out at each sequence's last valid step (inputs: value, marker)."""
    cell = make_cell(config.model)
    return models.many_to_one(cell, 1, input_size=2, remat=config.model.remat)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Mean squared error of the predicted sum."""
    return tasks.regression(model)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """Predicting the training targets' mean (about 1.0) scores the variance, 2/12."""
    return tasks.mean_predictor(data, test)
