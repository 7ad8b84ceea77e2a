"""jaxrnn sweep spoken_digits_ctc

Speech recognition of spoken digit strings with CTC (Graves et al. 2006): 1 to 7
digits said by espeak-ng in 24 voices, at random speeds and pitches, in white noise of
10–30 dB SNR (``jaxrnn.tasks.spoken_digits``); **the test voices are held out
entirely** (variants ``m4`` and ``f2``, validation ``m6`` and ``f4``, in both accents).
3,200 training, 400 validation and 800 test utterances, synthesised once and cached.
Log-mel features (40 bands, NumPy), three 10 ms frames stacked into one 30 ms step.
Two bidirectional layers of the configured cell (H = 128 each way, variational
dropout 0.1 on inputs and states) give each step's logits over the blank and the 10
digits; ``optax.ctc_loss``; Adam 2e-3 with a cosine decay after global-norm clipping
at 1, 1,000 steps of 32 utterances. Every evaluation decodes the split greedily and
with prefix beam search (beam 8, Hannun et al. 2014) and reports the label error rate
of each (``ler_greedy``, ``ler``); the checkpoint of lowest validation ``ler`` is
scored once on test. The sweep: LSTM and GRU × seeds 0, 1, 2.

Expected (2 CPU cores, 3 December 2026: 26 min for the sweep, beside other jobs): a
label error rate below 5% on the held-out voices. Measured: **0** for every LSTM seed
(no error in the 3,223 test digits), 0.0008 ± 0.0014 for the GRU (one seed: 8 errors),
against the trivial baseline each run reports, the most frequent training digit said
as often as the median training utterance has digits: 111% (worse than saying nothing,
100%). Needs the engine: ``pip install espeakng-loader==0.2.4``.
"""

from typing import Annotated

import numpy as np
from pydantic import Field

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.tasks import ctc
from jaxrnn.tasks import spoken_digits as digits
from jaxrnn.training import (
    Config,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_experiment,
    section,
)

vowels = load_experiment("japanese_vowels_birnn").module
Regularise = vowels.Regularise
LABELS = {"model.cell": "cell", "ler": "test label error rate"}
CITATION = r"""@inproceedings{graves2006connectionist,
  author = {Graves, Alex and Fern{\'a}ndez, Santiago and Gomez, Faustino and
            Schmidhuber, J{\"u}rgen},
  title = {Connectionist Temporal Classification: Labelling Unsegmented Sequence Data
           with Recurrent Neural Networks},
  booktitle = {Proceedings of the 23rd International Conference on Machine Learning},
  pages = {369--376},
  year = {2006},
  doi = {10.1145/1143844.1143891},
}"""


@section
class Speech(Regularise):
    """The task section: the dropout rates of ``Regularise``, and

    Attributes:
      layers: stacked bidirectional layers.
      beam: the prefix beam of every evaluation's decoding.
      scale: that share of the 3,200 / 400 / 800 utterances (smoke runs).
    """

    layers: Annotated[int, Field(ge=1)] = 2
    beam: Annotated[int, Field(ge=1)] = 8
    scale: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0


def get_config(smoke: bool = False) -> Config:
    """The recogniser; ``smoke``: a seconds-long run with H = 8 on 5% of the utterances."""
    return Config(
        name="spoken_digits_ctc",
        seed=0,
        task=Speech(layers=1 if smoke else 2, beam=2 if smoke else 8, scale=0.05 if smoke else 1.0),
        model=ModelConfig(cell="lstm", hidden_size=8 if smoke else 128),
        optim=OptimConfig(
            name="adam",
            learning_rate=2e-3,
            schedule="warmup_cosine",
            end_value_fraction=0.01,
            clip_norm=1.0,
        ),
        train=TrainConfig(
            steps=20 if smoke else 1000,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 100,
            eval_batch_size=64 if smoke else 400,
            checkpoint_every=10 if smoke else 500,
            best_metric="ler",
        ),
    )


def get_data(config: Config) -> tasks.Dataset:
    """The synthesised utterances (cached), standardised with the training steps' statistics."""
    return digits.spoken_digits(config.task.scale)


def get_model(config: Config, data) -> models.Model:
    """``task.layers`` bidirectional layers of the configured cell, read out at every step."""
    layers = [vowels.bidirectional_layer(config) for _ in range(config.task.layers)]
    return models.many_to_many(
        jaxrnn.stack_layers(*layers),
        digits.NUM_LABELS,
        input_size=digits.STACK * digits.N_MELS,
    )


def get_objective(config: Config, model, data) -> tasks.Objective:
    """CTC; the label error rates of greedy and prefix beam decoding at evaluation."""
    return ctc.objective(model, config.task.beam)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The most frequent training digit, said as often as the median training
    utterance has digits, for every test utterance."""
    train = np.asarray(data.train.targets)
    said = train[train != ctc.BLANK]
    guess = [int(np.bincount(said).argmax())] * int(np.median((train != ctc.BLANK).sum(1)))
    truth = [[int(k) for k in row if k != ctc.BLANK] for b in test for row in np.asarray(b.targets)]
    error = ctc.label_error_rate([guess] * len(truth), truth)
    return tasks.Baseline(
        "the most frequent digit, median-many times", {"ler": error, "ler_greedy": error}
    )


def get_sweep() -> dict:
    """LSTM and GRU × seeds 0, 1, 2."""
    return {"grid": {"model.cell": ["lstm", "gru"]}, "seeds": [0, 1, 2]}
