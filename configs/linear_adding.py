"""jaxrnn sweep linear_adding

Diagonal linear recurrences against a GRU on the adding problem with T = 1,000
(Hochreiter & Schmidhuber 1997, Sec. 5.4; Le et al. 2015): minGRU (Feng et al. 2024),
the LRU (Orvieto et al. 2023) and a GRU, H = 64, one layer, read out at the last step,
× seeds 0, 1, 2, as one sweep. Adam 2e-3 after global-norm clipping at 1, batch 32,
400 steps — a budget cut to fit 2 CPU cores in an hour, far short of a converged
protocol.

The LRU starts its eigenvalues on the ring 0.9 <= |λ| <= 0.999 with phases up to π/10
and trains them at half the learning rate (``optim.recurrent_lr``), as the LRU paper
does for long-range tasks. A config rejects settings its cell does not read and a
sweep grid has no per-value settings, so ``finalize_config`` derives them for
``model.cell=lru`` alone; the other cells keep their defaults.

The data, model, objective and baseline are those of the ``adding_lstm`` experiment,
and the sweep and the LRU's settings those of ``linear_copying``, both loaded by name.

Expected (measured on 2 shared CPU cores): a score against predicting the training
mean, MSE about 0.167; the per-cell test MSEs over the seeds, the wall times and the
curves are in experiments/README.md, "Linear recurrences against a GRU", which says
which cells lose to the baseline. The same command resumes an interrupted sweep.
"""

from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, load_experiment

adding = load_experiment("adding_lstm").module
get_data, get_model = adding.get_data, adding.get_model
get_objective, get_baseline = adding.get_objective, adding.get_baseline
linear = load_experiment("linear_copying").module
get_sweep, finalize_config = linear.get_sweep, linear.finalize_config


def get_config(smoke: bool = False) -> Config:
    """The sweep's base run (a GRU); ``smoke``: a seconds-long run with T = 10 and H = 8."""
    return Config(
        name="linear_adding",
        seed=0,
        task=adding.Adding(length=10 if smoke else 1000),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 64),
        optim=OptimConfig(name="adam", learning_rate=2e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 400,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 100,
            eval_batch_size=16 if smoke else 256,
            eval_batches=1,
            checkpoint_every=10 if smoke else 100,
            log_every=1 if smoke else 10,
            best_metric="loss",
        ),
    )
