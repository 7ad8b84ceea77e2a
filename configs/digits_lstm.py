"""jaxrnn train digits_lstm

An LSTM (H = 128) reads scikit-learn's 8×8 handwritten digits row by row (T = 8,
8 pixels a step) and classifies them from its last state, on the split of
``BASELINES.md`` (stratified 80/20, ``random_state=0``: 1,437 training images, of
which 144 are held out for validation, and 360 test images). Adam 3e-3 after
global-norm clipping at 1, 1,500 steps of 64.

Expected (measured on 2 CPU cores, seed 0): test accuracy about 96%, below 1-NN's
98.33% on the same split (experiments/README.md has the figures), in under a minute.
``task.pixelwise=true`` reads the pixels one by one (T = 64, Le et al. 2015's
pixel-MNIST protocol at small scale): slower, lower.
"""

from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section

CITATION = """@misc{alpaydin1998digits,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {{Optical Recognition of Handwritten Digits}},
  howpublished = {UCI Machine Learning Repository},
  year = {1998},
  doi = {10.24432/C50P49},
}"""


@section
class Digits:
    """How the images are read: row by row (``T = 8``) or pixel by pixel (``T = 64``)."""

    pixelwise: bool = False


def get_config(smoke: bool = False) -> Config:
    """The digits experiment; ``smoke``: a seconds-long run with H = 8."""
    return Config(
        name="digits_lstm",
        seed=0,
        task=Digits(pixelwise=False),
        model=ModelConfig(cell="lstm", hidden_size=8 if smoke else 128),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1500,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 100,
            eval_batch_size=64 if smoke else 500,
            checkpoint_every=10 if smoke else 500,
            best_metric="accuracy",
        ),
    )


def get_data(config: Config) -> tasks.Dataset:
    """The fixed splits; training walks through a new permutation every epoch."""
    return tasks.digits.digits(pixelwise=config.task.pixelwise)


def get_model(config: Config, data) -> models.Model:
    """The configured cell read out after the last row (or pixel), ten classes."""
    cell = make_cell(config.model)
    size = 1 if config.task.pixelwise else 8
    return models.many_to_one(cell, 10, input_size=size, remat=config.model.remat)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Cross-entropy and accuracy."""
    return tasks.classification(model)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The training class frequencies (about log 10)."""
    return tasks.class_prior(data, test, 10)
