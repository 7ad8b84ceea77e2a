"""jaxrnn train mackey_glass.py

One-step forecasting of the chaotic Mackey-Glass series (tau = 17), generated in
code: a GRU reads windows of 50 steps and predicts the next value at every step.
Beside it stands the persistence forecast (the next value is the current one).
"""

from typing import Annotated

import numpy as np
from pydantic import Field, PositiveInt

from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, TrainConfig, make_cell, section


@section
class Series:
    points: PositiveInt = 10_000  # samples of the series
    length: Annotated[int, Field(ge=2)] = 50  # steps per window
    tau: PositiveInt = 17  # the delay; chaotic for tau > 16.8


def get_config(smoke: bool = False) -> Config:
    return Config(
        name="mackey_glass",
        task=Series(points=1000 if smoke else 10_000),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 32),
        train=TrainConfig(
            steps=20 if smoke else 3000,
            batch_size=16,
            eval_every=10 if smoke else 250,
            checkpoint_every=10 if smoke else 1000,
            best_metric="r2",
        ),
    )


def mackey_glass(points: int, tau: int) -> np.ndarray:
    """x(t+1) = x(t) + 0.2 x(t-tau) / (1 + x(t-tau)^10) - 0.1 x(t), from x = 1.2."""
    x = np.full(points + tau, 1.2)
    for t in range(tau, points + tau - 1):
        x[t + 1] = x[t] + 0.2 * x[t - tau] / (1 + x[t - tau] ** 10) - 0.1 * x[t]
    return x[tau:].astype(np.float32)


def get_data(config: Config) -> tasks.Dataset:
    """Consecutive windows (input x[t], target x[t+1]), split 80/10/10 in time."""
    s = config.task
    x = mackey_glass(s.points + 1, s.tau)
    w = np.stack([x[i : i + s.length + 1] for i in range(0, s.points - s.length, s.length)])
    windows = tasks.Batch(w[:, :-1, None], w[:, 1:], np.ones((len(w), s.length), bool))
    n_train, n_val = int(0.8 * len(w)), int(0.1 * len(w))
    parts = [n_train, n_val, len(w) - n_train - n_val]
    return tasks.Dataset(*tasks.split_examples(windows, parts))


def get_model(config: Config, data: tasks.Dataset) -> models.Model:
    return models.many_to_many(make_cell(config.model), 1, input_size=1)


def get_objective(config: Config, model, data: tasks.Dataset) -> tasks.Objective:
    variance = float(np.var(data.train.targets))  # R^2 against the training variance

    def loss(params, batch, key):
        pred = model.apply(params, batch.inputs, mask=batch.mask, key=key)[..., 0]
        mse = tasks.mse(pred, batch.targets, batch.mask)
        return mse, {"loss": mse, "r2": 1.0 - mse / variance}

    return tasks.Objective(loss, metrics={"r2": "max"})


def get_baseline(config: Config, data, test: list) -> tasks.Baseline:
    errors = np.concatenate([(b.inputs[..., 0] - b.targets).ravel() for b in test])
    return tasks.Baseline("persistence", {"loss": float(np.mean(errors**2))})
