"""jaxrnn sweep mnist1d_rnn

A GRU and an LSTM (H = 128) read MNIST-1D (Greydanus 2020) one value a step (T = 40)
and classify it from the last state: ``BASELINES.md``'s split, the generator's first
4,000 examples for training (400 of them held out for model choice) and its last
1,000 for test. Adam 3e-3 with a cosine decay after global-norm clipping at 1, batch
100, 8,000 steps (about 220 epochs); the checkpoint of best validation accuracy is scored.
The sweep: both cells × seeds 0, 1, 2.

Expected (measured on 2 CPU cores, 2 December 2026): test accuracy GRU 97.8 ± 0.4%,
LSTM 96.7 ± 0.4% over the seeds, above the published GRU's 91% and far above 1-NN's
56.7% and the MLP's 64% on the same split; about 30 minutes for the sweep (see
experiments/README.md, "MNIST-1D"). ``jaxrnn train mnist1d_rnn`` trains the GRU alone.
Needs ``pip install --no-deps mnist1d==0.0.2.post1``.
"""

from jaxrnn import models, tasks
from jaxrnn.tasks import mnist1d
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell

CITATION = mnist1d.CITATION
LABELS = {"model.cell": "cell", "accuracy": "test accuracy"}


def get_config(smoke: bool = False) -> Config:
    """The MNIST-1D classifier; ``smoke``: a seconds-long run with H = 8."""
    steps = 20 if smoke else 8000
    return Config(
        name="mnist1d_rnn",
        seed=0,
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 128),
        optim=OptimConfig(
            name="adam",
            learning_rate=3e-3,
            schedule="warmup_cosine",
            end_value_fraction=0.01,
            clip_norm=1.0,
        ),
        train=TrainConfig(
            steps=steps,
            batch_size=8 if smoke else 100,
            eval_every=10 if smoke else 250,
            eval_batch_size=64 if smoke else 500,
            checkpoint_every=10 if smoke else 1000,
            best_metric="accuracy",
        ),
    )


def get_data(config: Config) -> tasks.Dataset:
    """The fixed splits; training walks through a new permutation every epoch."""
    return mnist1d.mnist1d()


def get_model(config: Config, data) -> models.Model:
    """The configured cell read out after the last of the 40 values, ten classes."""
    cell = make_cell(config.model)
    return models.many_to_one(cell, mnist1d.NUM_CLASSES, input_size=1, remat=config.model.remat)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Cross-entropy and accuracy."""
    return tasks.classification(model)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """1-NN on the raw signals, fitted on the same training examples (``BASELINES.md``
    measures 56.7% with all 4,000; here the 3,600 the model trains on)."""
    return tasks.nearest_neighbour(data, test)


def get_sweep() -> dict:
    """GRU and LSTM × seeds 0, 1, 2 (each cell's seeds train as one program)."""
    return {"grid": {"model.cell": ["gru", "lstm"]}, "seeds": [0, 1, 2]}
