"""jaxrnn sweep sunspots_rnn

A GRU or LSTM (H = 32) forecasts the yearly sunspot number one year ahead from the
``task.window`` years before it, on ``BASELINES.md``'s split: train 1700-1920,
validation 1921-1955, test 1956-2008. Values are scaled with the statistics of the
years the model is fitted on. Adam 3e-3 after global-norm clipping at 1, batch 32,
MSE on the scaled values; RMSE and MAE are reported in sunspot numbers.

The protocol is the baseline's, in two stages:

1. ``jaxrnn sweep sunspots_rnn``: both cells × windows 10 and 20 × 5 seeds, fitted
   on train; validation RMSE (every 25 steps) chooses the setting and the number
   of steps.
2. ``jaxrnn sweep sunspots_rnn task.refit=true train.steps=N --grid model.cell=C
   --grid task.window=W``: the chosen setting (lowest mean validation RMSE over the
   seeds) refit on train + validation for N steps (the median of its seeds' chosen
   steps), 5 seeds, scored once on test.

Expected (2 CPU cores, minutes): a test RMSE to stand beside ARIMA(8,1,0)'s 19.14,
AR(18)'s 20.16 and persistence's 33.42 (experiments/README.md has the figures).
Needs ``pip install --no-deps statsmodels==0.15.0``.
"""

from typing import Annotated

import jax
import numpy as np
from pydantic import Field

from jaxrnn import models, tasks
from jaxrnn.tasks import sunspots
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section

CITATION = sunspots.CITATION
LABELS = {
    "model.cell": "cell",
    "task.window": "window",
    "rmse": "test RMSE",
    "mae": "test MAE",
}


@section
class Forecast:
    """The forecasting task.

    Attributes:
      window: years of history each forecast reads.
      refit: stage 2, fit on train + validation (no validation split, no model choice).
    """

    window: Annotated[int, Field(ge=1, le=200)] = 20
    refit: bool = False


def get_config(smoke: bool = False) -> Config:
    """Stage 1 of the forecaster; ``smoke``: a seconds-long run with H = 4."""
    return Config(
        name="sunspots_rnn",
        seed=0,
        task=Forecast(window=20),
        model=ModelConfig(cell="gru", hidden_size=4 if smoke else 32),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1500,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 25,
            eval_batch_size=64,
            checkpoint_every=10 if smoke else 500,
            best_metric="rmse",
        ),
    )


def get_data(config: Config) -> tasks.Dataset:
    """Windows of the scaled series; stage 2 fits train + validation."""
    return sunspots.windows(config.task.window, refit=config.task.refit)


def get_model(config: Config, data) -> models.Model:
    """The configured cell read out after the window's last year."""
    cell = make_cell(config.model)
    return models.many_to_one(cell, 1, input_size=1, remat=config.model.remat)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """MSE of the scaled forecast; RMSE and MAE in sunspot numbers over a whole split."""
    mse = tasks.regression(model).loss
    scale = sunspots.scale(config.task.refit)
    predict = jax.jit(lambda params, inputs: model.apply(params, inputs)[..., 0])

    def evaluate(params, batches) -> dict[str, float]:
        error = np.concatenate(
            [np.asarray(predict(params, b.inputs) - b.targets) * scale.std for b in batches]
        )
        return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}

    return tasks.Objective(mse, {"rmse": "min", "mae": "min"}, evaluate=evaluate)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """Persistence (next year = this year) on the test years."""
    return tasks.Baseline("persistence", sunspots.persistence("test"))


def get_sweep() -> dict:
    """Stage 1: GRU and LSTM × windows 10 and 20 × seeds 0-4."""
    return {
        "grid": {"model.cell": ["gru", "lstm"], "task.window": [10, 20]},
        "seeds": [0, 1, 2, 3, 4],
    }
