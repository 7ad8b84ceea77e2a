"""jaxrnn sweep adding_cells

Four recurrent cells on the adding problem (Hochreiter & Schmidhuber 1997, Sec. 5.4;
the protocol of Le, Jaitly, Hinton 2015, Sec. 4.1), H = 64, read out at the last step:
an LSTM with forget-gate bias 1 (Gers et al. 2000), a GRU (Cho et al. 2014), the IRNN
(ReLU Elman with identity recurrent weights and zero bias, Le et al. 2015) and a tanh
Elman network with orthogonal recurrent weights, at T = 200 (``task.length=100`` or
``400`` for the other lengths; ``--grid model.preset=lstm,chrono_lstm`` adds the LSTM
with chrono initialisation, Tallec & Ollivier 2018, ``T_max = T``). Adam after
global-norm clipping at 1, batch 64, 5,000 steps, validation MSE on 1,000 sequences
every 250 steps; the checkpoint of lowest validation MSE is scored on 1,000 test
sequences. The sweep: the four cells × learning rates 3e-4 and 1e-3 × seeds 0, 1, 2;
each cell's learning rate is the one of lower mean validation MSE.

Expected (measured on 2 CPU cores, 2 December 2026, T = 200): test MSE GRU 0.00020 ±
0.00005 (every seed below 0.01 by step 1,250), IRNN 0.0015 ± 0.0004 (at 3e-4; at 1e-3
one seed of three diverges), LSTM 0.005 ± 0.006 (two seeds solve by step 3,500, the third ends
at 0.011, still improving), tanh Elman 0.148, no better than predicting the training
mean (0.147 on the test sequences); 52 minutes for the sweep. experiments/README.md,
"Adding problem: four cells at T = 100, 200, 400", has the tables, the steps to solve
and the curves.

``model.preset`` names a cell with its published settings, which ``finalize_config``
writes into the model section: a sweep grid has one value per key, and the IRNN is
three settings (``cell``, ``activation``, ``recurrent_init``).
"""

from typing import Literal

from jaxrnn.training import (
    Config,
    ConfigError,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    load_experiment,
    section,
)

adding = load_experiment("adding_lstm").module
Adding = adding.Adding
get_data, get_model = adding.get_data, adding.get_model
get_objective, get_baseline = adding.get_objective, adding.get_baseline

LABELS = {"model.preset": "cell", "optim.learning_rate": "learning rate", "loss": "test MSE"}

# The model settings of each preset; "T" stands for task.length.
PRESETS = {
    "lstm": {"cell": "lstm", "forget_bias": 1.0},
    "chrono_lstm": {"cell": "lstm", "chrono_t_max": "T"},
    "gru": {"cell": "gru"},
    "irnn": {"cell": "elman", "activation": "relu", "recurrent_init": "identity"},
    # The default W_hh, orthogonal, is not part of it: model.recurrent_init=gaussian
    # compares the two (experiments/gradients.py).
    "tanh": {"cell": "elman", "activation": "tanh"},
}


@section
class Cells(ModelConfig):
    """The model section with a named preset.

    Attributes:
      preset: ``"lstm"`` (forget bias 1), ``"chrono_lstm"`` (chrono init, ``T_max = T``),
        ``"gru"``, ``"irnn"`` (ReLU Elman, identity ``W_hh``) or ``"tanh"`` (tanh Elman,
        ``W_hh`` by ``model.recurrent_init``, orthogonal by default); its settings are
        written over the section's, and setting one of them to another value as well is
        an error.
    """

    preset: Literal["lstm", "chrono_lstm", "gru", "irnn", "tanh"] = "lstm"


def apply_preset(config: Config, length: int) -> Config:
    """Write the preset's settings into ``model``, ``T`` being ``length`` (the sequence
    length); a conflicting override is an error. Other experiments' ``finalize_config``
    call it with their own ``T`` (``copying_cells``)."""
    settings = {
        key: float(length) if value == "T" else value
        for key, value in PRESETS[config.model.preset].items()
    }
    defaults = Cells()
    for key, value in settings.items():
        current = getattr(config.model, key)
        if current != value and current != getattr(defaults, key):
            raise ConfigError(
                f"model.{key}={current!r}: model.preset={config.model.preset!r} sets "
                f"model.{key}={value!r}; drop one of the two"
            )
    return apply_overrides(config, [f"model.{k}={v}" for k, v in settings.items()])


def finalize_config(config: Config) -> Config:
    """The preset's settings, with ``T = task.length``."""
    return apply_preset(config, config.task.length)


def get_config(smoke: bool = False) -> Config:
    """The sweep's base run (the LSTM); ``smoke``: a seconds-long run with T = 10, H = 8."""
    return Config(
        name="adding_cells",
        seed=0,
        task=Adding(length=10 if smoke else 200),
        model=Cells(hidden_size=8 if smoke else 64),
        optim=OptimConfig(name="adam", learning_rate=1e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 5000,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 250,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 500,
            best_metric="loss",
        ),
    )


def get_sweep() -> dict:
    """LSTM, GRU, IRNN and tanh Elman × learning rates 3e-4, 1e-3 × seeds 0, 1, 2 (each
    cell's six runs train as one program)."""
    return {
        "grid": {
            "model.preset": ["lstm", "gru", "irnn", "tanh"],
            "optim.learning_rate": [3e-4, 1e-3],
        },
        "seeds": [0, 1, 2],
    }
