"""The tree experiment (``configs/expressions_treelstm.py``, :mod:`jaxrnn.tasks.expressions`):
expression data against Python's own arithmetic, the tree model against a recursive NumPy
Tree-LSTM written from Tai et al. (2015, Eq. 9-14), batches pure in (key, step), the
baseline against NumPy label counts, the config's checks, and smoke runs of both readers
through ``jaxrnn train``.
"""

import ast
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxrnn import cli, tasks
from jaxrnn import trees as jt
from jaxrnn.tasks import data as data_lib
from jaxrnn.tasks import expressions as ex
from jaxrnn.training import ConfigError, rundir
from jaxrnn.training import experiment as experiment_lib

H = 5
KEY0 = jax.random.key(0)
EXPERIMENT = experiment_lib.load("expressions_treelstm")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}

# optax's own code (e.g. Adam's bias correction) is not strict-promotion clean.
standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")


SPLITS = {"max_ops": 4, "num_train": 300, "num_test": 40, "num_validation": 40, "seed": 3}


@pytest.fixture(scope="module")
def data():
    return ex.splits(**SPLITS, test_max_ops=7)


def in_order(sets: ex.Splits, form: str, split: str = "train"):
    """One batch of a whole split, in order, in ``form`` (the data set's own collation)."""
    ds = ex.dataset(sets, form)
    (batch,) = data_lib.eval_batches(ds, split, len(getattr(sets, split).labels), 1)
    return batch


def chain(num_ops: int) -> ex.Expression:
    """``(((1-2)-3)-...)``: the tallest tree with ``num_ops`` operators."""
    e = 1
    for k in range(num_ops):
        e = ("-", e, (k + 2) % 10)
    return e


def value_from_arrays(x, children, v):
    """The exact integer value of node ``v`` of one padded tree, read from its arrays."""
    left, right = children[v]
    if left < 0:
        assert right < 0
        return int(x[v])
    op = ex.VOCAB[int(x[v])]
    return OPS[op](value_from_arrays(x, children, left), value_from_arrays(x, children, right))


def text_from_arrays(x, children, v):
    left, right = children[v]
    if left < 0:
        return ex.VOCAB[int(x[v])]
    l, r = text_from_arrays(x, children, left), text_from_arrays(x, children, right)
    return f"({l}{ex.VOCAB[int(x[v])]}{r})"


def parse(text: str) -> ex.Expression:
    """An expression back from its string, by Python's own parser."""
    ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}

    def visit(n):
        if isinstance(n, ast.BinOp):
            return (ops[type(n.op)], visit(n.left), visit(n.right))
        return n.value

    return visit(ast.parse(text, mode="eval").body)


# ----------------------------------------------------------------------------- data


def test_labels_are_python_eval_mod_10():
    expressions = ex.generate(300, 1, 9, seed=0)
    for e in expressions:
        text = ex.to_text(e)
        assert ex.label(e) == eval(text) % 10  # Python's own integer arithmetic
    encoded = ex.encode(expressions, 9)
    np.testing.assert_array_equal(encoded.labels, [eval(t) % 10 for t in encoded.text])
    np.testing.assert_array_equal(encoded.ops, [sum(map(t.count, "+-*")) for t in encoded.text])
    assert set(encoded.ops.tolist()) == set(range(1, 10))
    assert set(encoded.labels.tolist()) == set(range(10))
    # The label counts against a hand-checked example: ((3+4)*(8-9)) = -7 -> 3.
    assert ex.label(("*", ("+", 3, 4), ("-", 8, 9))) == 3


def test_arrays_encode_the_same_expression_as_the_string(data):
    for split in data:
        trees = split.trees
        for b, text in enumerate(split.text):
            x, children, root = trees.x[b], trees.children[b], int(trees.root[b])
            assert value_from_arrays(x, children, root) % 10 == split.labels[b]
            assert value_from_arrays(x, children, root) == eval(text)
            assert text_from_arrays(x, children, root) == text
            assert "".join(ex.VOCAB[t] for t in split.tokens[b][split.token_mask[b]]) == text
            n = split.ops[b]
            assert trees.node_mask[b].sum() == 2 * n + 1 and split.token_mask[b].sum() == 4 * n + 1
            assert split.token_mask[b, : 4 * n + 1].all()  # right-padded
            assert 1 <= trees.level[b].max() <= n  # a height of at most n


def test_held_out_splits_and_the_longer_test_expressions(data):
    train, validation, test = data
    assert train.ops.min() == 1 and train.ops.max() == 4 and len(train.text) == 300
    iid, longer = test.ops <= 4, test.ops > 4
    assert iid.sum() == longer.sum() == 40
    assert not set(np.asarray(test.text)[iid]) & set(train.text)
    assert set(test.ops[longer].tolist()) <= set(range(5, 8)) and test.ops.max() == 7
    # Validation (model choice): the training range only, in neither of the others.
    assert len(validation.text) == 40 and set(validation.ops.tolist()) <= set(range(1, 5))
    assert not set(validation.text) & (set(train.text) | set(test.text))
    assert train.trees.level.shape[1] == validation.trees.level.shape[1] == 9  # 2n + 1
    assert test.trees.level.shape[1] == 15
    # Same arguments, same data, also when drawn afresh (splits() is memoised).
    again = ex.splits.__wrapped__(**SPLITS, test_max_ops=7)
    for fresh, cached in zip(again, data, strict=True):
        assert fresh.text == cached.text
        np.testing.assert_array_equal(fresh.labels, cached.labels)
    assert ex.splits(**{**SPLITS, "seed": 4}).train.text != train.text
    # Without test_max_ops the test split holds the training range only.
    assert ex.splits(**SPLITS).test.ops.max() <= 4


def test_exclusion_that_cannot_be_met_names_the_argument():
    every = frozenset(f"({a}{op}{b})" for a in range(10) for b in range(10) for op in "+-*")
    with pytest.raises(ValueError, match=r"exclude: could not draw 5 expressions with 1..1"):
        ex.generate(5, 1, 1, seed=0, exclude=every)
    with pytest.raises(ValueError, match="test_max_ops: expected at least max_ops=4, got 3"):
        ex.splits(4, num_train=10, test_max_ops=3)
    with pytest.raises(ValueError, match="form: expected one of"):
        ex.dataset(ex.Splits(*[ex.encode([chain(2)], 2)] * 3), "graph")


def decode_batch_text(batch, form):
    """The expressions of a batch, as strings, read back from its one-hot arrays."""
    if form == "tree":
        t = batch.inputs
        ids = np.argmax(np.asarray(t.x), -1)
        return [
            text_from_arrays(ids[b], np.asarray(t.children[b]), int(t.root[b]))
            for b in range(ids.shape[0])
        ]
    ids = np.argmax(np.asarray(batch.inputs), -1)
    mask = np.asarray(batch.mask)
    return ["".join(ex.VOCAB[i] for i in ids[b][mask[b]]) for b in range(ids.shape[0])]


def test_batches_are_pure_in_key_and_step_and_both_forms_agree(data, key):
    train = data.train
    sets = {form: ex.dataset(data, form) for form in ex.FORMS}

    def batch(form, step, size=16):
        return data_lib.train_batch(sets[form], key, step, size)

    jitted = jax.jit(lambda step: batch("tree", step))
    a, b = batch("tree", 5), jitted(5)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.targets, batch("tree", 6).targets)
    seq = batch("sequence", 5)
    assert decode_batch_text(a, "tree") == decode_batch_text(seq, "sequence")
    np.testing.assert_array_equal(a.targets, seq.targets)
    np.testing.assert_array_equal(a.ops, seq.ops)
    np.testing.assert_array_equal(a.mask, a.inputs.node_mask)
    # One epoch (300 // 16 = 18 batches) visits 288 distinct items of the set.
    seq_batch = jax.jit(lambda step: batch("sequence", step))
    epoch = [t for s in range(18) for t in decode_batch_text(seq_batch(s), "sequence")]
    items = list(train.text)
    for t in epoch:
        items.remove(t)  # raises if an item came twice more than it exists
    assert len(items) == 300 - 288
    # The held-out splits are scored whole and in order.
    for split in ("validation", "test"):
        assert decode_batch_text(in_order(data, "sequence", split), "sequence") == list(
            getattr(data, split).text
        )


def test_baseline_is_the_training_label_frequencies_on_the_test_split(data):
    ds = ex.dataset(data, "tree")
    test = data_lib.eval_batches(ds, "test", 32, 1)  # 80 expressions: 32, 32, 16
    cfg = experiment_lib.get_config(EXPERIMENT, smoke=True)
    baseline = experiment_lib.get_baseline(EXPERIMENT, cfg, ds, test)
    # Oracle: add-one smoothed counts of the training labels, scored on the test labels.
    counts = np.array([np.sum(data.train.labels == c) + 1 for c in range(10)])
    want = np.mean([-np.log(counts[y] / counts.sum()) for y in data.test.labels])
    assert baseline.metrics["loss"] == pytest.approx(want, rel=1e-12)
    assert baseline == tasks.class_prior(ds, test, 10)


# ----------------------------------------------------------------------------- model


def sig(z):
    return 1 / (1 + np.exp(-z))


def tree_lstm_oracle(p, e):
    """Binary Tree-LSTM state ``(h, c)`` of expression ``e``, Tai et al. (2015, Eq. 9-14),
    recursing over the expression itself, with per-position blocks of the fused matrices."""
    V = len(ex.VOCAB)
    token = ex.VOCAB.index(e[0]) if isinstance(e, tuple) else e
    x = np.eye(V)[token]
    z = np.zeros(H)
    kids = [tree_lstm_oracle(p, c) for c in e[1:]] if isinstance(e, tuple) else [(z, z), (z, z)]

    def block(m, l, g):  # U^{(g)}_l (or U^{(f)}_{g l} for m = U_f)
        return m[l * H : (l + 1) * H, g * H : (g + 1) * H]

    i, o, u = (
        x @ p.W_iou[:, g * H : (g + 1) * H]
        + sum(kids[l][0] @ block(p.U_iou, l, g) for l in range(2))
        + p.b_iou[g * H : (g + 1) * H]
        for g in range(3)
    )
    f = [
        sig(x @ p.W_f + sum(kids[l][0] @ block(p.U_f, l, k) for l in range(2)) + p.b_f)
        for k in range(2)
    ]
    c = sig(i) * np.tanh(u) + f[0] * kids[0][1] + f[1] * kids[1][1]
    return sig(o) * np.tanh(c), c


def oracle_loss(params, texts):
    """Mean cross-entropy and per-expression correctness of the root readout, in NumPy."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    losses, right = [], []
    for text in texts:
        h, _ = tree_lstm_oracle(p.cell, parse(text))
        logits = h @ p.readout.W + p.readout.b
        log_p = logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()
        losses.append(-log_p[eval(text) % 10])
        right.append(np.argmax(logits) == eval(text) % 10)
    return np.mean(losses), np.asarray(right)


def random_params(model, key, dtype):
    params = model.init(key, len(ex.VOCAB))
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    # Random biases too, so every term of the equations is exercised.
    new = [0.7 * jax.random.normal(k, a.shape, dtype) for k, a in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, new)


def test_tree_objective_equals_recursive_oracle_and_finite_differences(key):
    # Random expressions plus the tallest one (a chain): the model must run enough levels.
    expressions = [*ex.generate(7, 1, 5, seed=1), chain(5)]
    data = ex.encode(expressions, 5)
    batch = in_order(ex.Splits(data, data, data), "tree")
    texts = decode_batch_text(batch, "tree")
    assert texts == list(data.text)
    batch = batch._replace(inputs=batch.inputs._replace(x=batch.inputs.x.astype(jnp.float64)))
    model = ex.tree_classifier(jt.nary_tree_lstm(H, dtype=jnp.float64), 10)
    params = random_params(model, key, jnp.float64)
    objective = jax.jit(ex.objective(model, max_ops=3).loss)
    loss, metrics = objective(params, batch, None)
    want, right = oracle_loss(params, texts)
    np.testing.assert_allclose(loss, want, rtol=0, atol=1e-10)
    ops = np.asarray(batch.ops)
    assert float(metrics["accuracy"]) == pytest.approx(right.mean())
    # Exact means over the expressions of each kind (summed over a split's batches).
    assert tuple(map(float, metrics["accuracy_iid"])) == (right[ops <= 3].sum(), (ops <= 3).sum())
    assert float(tasks.value(metrics["accuracy_longer"])) == pytest.approx(right[ops > 3].mean())
    # Training (a key) reports no per-length accuracy.
    assert set(objective(params, batch, key)[1]) == {"loss", "accuracy"}
    check_grads(
        lambda p: objective(p, batch, None)[0],
        (params,),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def build(overrides):
    """The smoke experiment's config, data, model and objective, as the runner builds them."""
    cfg = experiment_lib.get_config(EXPERIMENT, overrides, smoke=True)
    data = experiment_lib.get_data(EXPERIMENT, cfg)
    model = experiment_lib.get_model(EXPERIMENT, cfg, data)
    return cfg, data, model, experiment_lib.get_objective(EXPERIMENT, cfg, model, data)


def test_built_experiment_is_the_configured_tree_lstm(key):
    cfg, data, model, objective = build([f"model.hidden_size={H}"])
    params = model.init(key)
    assert isinstance(params.cell, jt.NaryTreeLSTMParams)
    np.testing.assert_array_equal(params.cell.b_f, cfg.model.forget_bias)  # Tai et al.'s f bias
    batch = data_lib.train_batch(data, key, 0, 8)
    loss, _ = jax.jit(objective.loss)(params, batch, None)
    texts = decode_batch_text(batch, "tree")
    # The smoke training set: 200 expressions with 1..3 operators drawn with seed 0.
    assert (cfg.task.max_ops, cfg.task.num_train) == (3, 200)
    assert set(texts) <= {ex.to_text(e) for e in ex.generate(200, 1, 3, seed=0)}
    np.testing.assert_array_equal(batch.targets, [eval(t) % 10 for t in texts])
    want, _ = oracle_loss(params, texts)
    np.testing.assert_allclose(loss, want, rtol=1e-5)  # float32 model vs float64 oracle


def test_built_sequence_baseline_reads_the_string_like_a_numpy_lstm(key):
    """The comparison's other side: an LSTM loop over the characters (gate order i, f, g, o),
    read out at each expression's last character, on the same expressions."""
    _, data, model, objective = build(["model.cell=lstm", f"model.hidden_size={H}"])
    params = model.init(key)
    batch = data_lib.eval_batches(data, "test", 6, 1)[0]  # padded to the test's longest string
    assert not np.asarray(batch.mask).all()
    loss, _ = jax.jit(objective.loss)(params, batch, None)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    total = 0.0
    for text in decode_batch_text(batch, "sequence"):
        h, c = np.zeros(H), np.zeros(H)
        for ch in text:
            a = np.eye(len(ex.VOCAB))[ex.VOCAB.index(ch)] @ p.cell.W_xh + h @ p.cell.W_hh + p.cell.b
            i, f, g, o = (a[k * H : (k + 1) * H] for k in range(4))
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
        logits = h @ p.readout.W + p.readout.b
        total += np.log(np.sum(np.exp(logits))) - logits[eval(text) % 10]
    np.testing.assert_allclose(loss, total / 6, rtol=1e-5)


def test_child_sum_is_blind_to_operand_order(key):
    # Why the binary Tree-LSTM is the default: Child-Sum sums its children, so a-b = b-a.
    data = ex.encode([("-", 3, ("*", 2, 7)), ("-", ("*", 2, 7), 3)], 2)
    batch = in_order(ex.Splits(data, data, data), "tree")
    for cell, same in ((jt.child_sum_tree_lstm(H), True), (jt.nary_tree_lstm(H), False)):
        model = ex.tree_classifier(cell, 10, input_size=len(ex.VOCAB))
        logits = model.apply(model.init(key), batch.inputs)
        assert np.allclose(logits[0], logits[1], rtol=0, atol=1e-6) == same


# ----------------------------------------------------------------------------- config and runs


@pytest.mark.parametrize(
    ("experiment", "overrides", "fragments"),
    [
        # The expression sets' own section (smoke: max_ops=3, test_max_ops=5).
        (
            "expressions_treelstm",
            ["task.test_max_ops=2"],
            ["task: test_max_ops=2 must be >= max_ops=3"],
        ),
        ("expressions_treelstm", ["task.max_ops=6"], ["test_max_ops=5 must be >= max_ops=6"]),
        ("expressions_treelstm", ["task.num_train=0"], ["task.num_train=0", "must be > 0"]),
        ("expressions_treelstm", ["task.max_ops=0"], ["task.max_ops=0", "must be > 0"]),
        (
            "expressions_treelstm",
            ["task.num_train=none"],
            ["task.num_train='none'", "expected an integer"],
        ),
        (
            "expressions_treelstm",
            ["model.cell=tree_lstm"],
            ["model.cell='tree_lstm'", "'binary_tree_lstm'"],
        ),
        # The expression settings are the expressions experiment's: unknown elsewhere.
        ("adding_lstm", ["task.max_ops=3"], ["unknown key 'task.max_ops'", "length, min_length"]),
        ("adding_lstm", ["task.num_train=9"], ["unknown key 'task.num_train'"]),
    ],
)
def test_bad_config_values_name_the_key(experiment, overrides, fragments):
    with pytest.raises(ConfigError) as e:
        experiment_lib.get_config(experiment_lib.load(experiment), overrides, smoke=True)
    for fragment in fragments:
        assert fragment in str(e.value), str(e.value)


def test_test_max_ops_none_tests_the_training_range_only():
    cfg, data, model, objective = build(["task.test_max_ops=none"])
    assert cfg.task.test_max_ops is None
    assert data.test.ops.max() <= cfg.task.max_ops
    # No longer expressions: the objective reports no per-length accuracy.
    batch = data_lib.eval_batches(data, "test", 4, 1)[0]
    shapes = jax.eval_shape(functools.partial(objective.loss, key=None), model.init(KEY0), batch)
    assert set(shapes[1]) == {"loss", "accuracy"}


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["model.num_layers=2"], ["num_layers=2", "tree cell", "'binary_tree_lstm'"]),
        (["model.dropout=0.1"], ["dropout=0.1", "tree cell", "'binary_tree_lstm'"]),
        (["model.remat=4"], ["remat=4", "tree cell"]),
        (
            ["model.layer_norm=true"],
            ["layer_norm=True", "not a setting of cell='binary_tree_lstm'"],
        ),
        (["model.activation=relu"], ["activation='relu'", "cell='binary_tree_lstm'"]),
        (
            ["model.cell=child_sum_tree_lstm", "model.residual=true"],
            ["residual=True", "tree cell", "'child_sum_tree_lstm'"],
        ),
    ],
)
def test_sequence_settings_on_a_tree_cell_are_refused(overrides, fragments):
    with pytest.raises(ConfigError) as e:
        experiment_lib.get_config(EXPERIMENT, overrides, smoke=True)
    for fragment in fragments:
        assert fragment in str(e.value), str(e.value)
    cfg = experiment_lib.get_config(
        EXPERIMENT, ["model.cell=recursive", "model.activation=relu"], smoke=True
    )
    assert cfg.model.activation == "relu"


def test_a_tree_cell_on_a_sequence_experiment_fails_before_any_compute(tmp_path, capsys):
    """``model.cell`` accepts every registered cell; a tree cell cannot be rolled over the
    adding problem's sequences, and the runner's trace of the pieces says so before
    training (it no longer names ``model.cell``: the config has no task to check it by)."""
    argv = ["train", "adding_lstm", "model.cell=binary_tree_lstm", "--smoke", "--no-progress"]
    assert cli.main([*argv, "--workdir", str(tmp_path)]) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "adding_lstm.py" in out and "get_model()" in out
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoints").exists()


@standard_promotion
def test_the_tree_lstm_smoke_run_learns(tmp_path, capsys):
    """The experiment's smoke run through the command (the sequence reader's pieces are
    tested against a NumPy LSTM above)."""
    overrides = []
    argv = ["train", "expressions_treelstm", "--smoke", "--no-progress"]
    assert cli.main([*argv, "--workdir", str(tmp_path), *overrides]) == 0
    out = capsys.readouterr().out
    assert "accuracy_longer" in out and "expressions_treelstm: test split at step 30" in out
    records = rundir.read_log(tmp_path / "metrics.jsonl")
    train = [r["loss"] for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    (test,) = [r for r in records if r["kind"] == "test"]
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    assert np.mean(train[-10:]) < np.mean(train[:10]), train
    assert [r["step"] for r in evals] == [30] and evals[0]["split"] == "validation"
    assert records[0]["tokens_per_s"] > 0
    # The test split (smoke: 1,000 held-out expressions of 1-3 operators and 1,000 of 4-5)
    # is scored once, at the chosen step: its accuracy is the count-weighted mean of both.
    assert test["step"] == 30 and {"accuracy_iid", "accuracy_longer"} <= set(test)
    assert test["accuracy"] == pytest.approx((test["accuracy_iid"] + test["accuracy_longer"]) / 2)
    # The baseline beside it: the training label frequencies on the test labels (NumPy).
    sets = ex.splits(3, num_train=200, test_max_ops=5)
    counts = np.bincount(sets.train.labels, minlength=10) + 1.0
    want = -np.mean(np.log(counts / counts.sum())[sets.test.labels])
    status = rundir.read_status(tmp_path)
    assert status["baseline"]["loss"] == pytest.approx(want, rel=1e-12)
    assert f"test loss {test['loss']:.4g} vs {want:.4g} for the training class frequencies" in out
