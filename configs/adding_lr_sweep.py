"""jaxrnn sweep adding_lr_sweep

A learning-rate sweep, the kind every paper's appendix reports: a GRU (H = 32) on the
adding problem with T = 50 (Hochreiter & Schmidhuber 1997, Sec. 5.4), Adam after
global-norm clipping at 1, batch 32, 1,500 steps; ``get_sweep()`` crosses six
learning rates (3e-4 to 1e-1, half a decade apart) with three seeds, and the
eighteen runs train as one compiled program.

The data, model, objective and baseline are those of the ``adding_lstm``
experiment, loaded by name: only the base config and the sweep are this file's.

Expected (measured on 2 CPU cores, about 2 min): the test MSE falls from a few
percent at 3e-4 to about 7e-5 at the best rate, 3e-2, and rises again at 1e-1
(predicting the training mean scores 0.157); the table and plots are in the "Sweeps" section
of experiments/README.md. ``jaxrnn train adding_lr_sweep`` runs the base config alone.
"""

from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, load_experiment

adding = load_experiment("adding_lstm").module
get_data, get_model = adding.get_data, adding.get_model
get_objective, get_baseline = adding.get_objective, adding.get_baseline


def get_config(smoke: bool = False) -> Config:
    """The base run of the sweep; ``smoke``: a seconds-long run with T = 10 and H = 8."""
    return Config(
        name="adding_lr_sweep",
        seed=0,
        task=adding.Adding(length=10 if smoke else 50),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 32),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1500,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 100,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 500,
            best_metric="loss",
        ),
    )


def get_sweep() -> dict:
    """Six learning rates (half a decade apart, the best one inside the grid) × three seeds."""
    return {
        "grid": {"optim.learning_rate": ["3e-4", "1e-3", "3e-3", "1e-2", "3e-2", "1e-1"]},
        "seeds": [0, 1, 2],
    }
