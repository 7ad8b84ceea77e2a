"""The tree experiment: expression data against Python's own arithmetic, the tree model
against a recursive NumPy Tree-LSTM written from Tai et al. (2015, Eq. 9-14), batches pure
in (key, step), the config's checks, and smoke runs of both readers through ``jaxrnn train``.
"""

import ast
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxrnn import cli
from jaxrnn import trees as jt
from jaxrnn.training import config as config_lib
from jaxrnn.training import loop
from jaxrnn.trees import expressions as ex

H = 5
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}

# optax's own code (e.g. Adam's bias correction) is not strict-promotion clean.
standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")


@pytest.fixture(scope="module")
def data():
    return ex.splits(4, num_train=300, num_test=40, test_max_ops=7, seed=3)


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


def test_test_split_is_held_out_and_has_the_longer_expressions(data):
    train, test = data
    assert train.ops.min() == 1 and train.ops.max() == 4
    iid, longer = test.ops <= 4, test.ops > 4
    assert iid.sum() == longer.sum() == 40
    assert not set(np.asarray(test.text)[iid]) & set(train.text)
    assert set(test.ops[longer].tolist()) <= set(range(5, 8)) and test.ops.max() == 7
    assert train.trees.level.shape[1] == 9 and test.trees.level.shape[1] == 15  # 2n + 1
    # Same arguments, same data (the loop builds the train and test tasks separately).
    again = ex.splits(4, num_train=300, num_test=40, test_max_ops=7, seed=3)[0]
    assert again.text == train.text
    assert ex.splits(4, num_train=300, num_test=40, seed=4)[0].text != train.text


def test_exclusion_that_cannot_be_met_names_the_argument():
    every = frozenset(f"({a}{op}{b})" for a in range(10) for b in range(10) for op in "+-*")
    with pytest.raises(ValueError, match=r"exclude: could not draw 5 expressions with 1..1"):
        ex.generate(5, 1, 1, seed=0, exclude=every)
    with pytest.raises(ValueError, match="test_max_ops: expected at least max_ops=4, got 3"):
        ex.splits(4, num_train=10, test_max_ops=3)
    with pytest.raises(ValueError, match="form: expected one of"):
        ex.task(ex.encode([chain(2)], 2), "graph")


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
    train = data[0]
    tasks = {form: ex.task(train, form) for form in ex.FORMS}
    jitted = jax.jit(tasks["tree"].batch, static_argnums=2)
    a, b = tasks["tree"].batch(key, 5, 16), jitted(key, 5, 16)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.targets, tasks["tree"].batch(key, 6, 16).targets)
    seq = tasks["sequence"].batch(key, 5, 16)
    assert decode_batch_text(a, "tree") == decode_batch_text(seq, "sequence")
    np.testing.assert_array_equal(a.targets, seq.targets)
    np.testing.assert_array_equal(a.mask, a.inputs.node_mask)
    # One epoch (300 // 16 = 18 batches) visits 288 distinct items of the set.
    seq_batch = jax.jit(tasks["sequence"].batch, static_argnums=2)
    epoch = [t for s in range(18) for t in decode_batch_text(seq_batch(key, s, 16), "sequence")]
    items = list(train.text)
    for t in epoch:
        items.remove(t)  # raises if an item came twice more than it exists
    assert len(items) == 300 - 288
    want = np.bincount(train.labels, minlength=10) / 300
    assert tasks["tree"].baseline == pytest.approx(-np.sum(want * np.log(want)))


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
    batch = ex.task(data, "tree").batch(key, 0, len(expressions))
    texts = decode_batch_text(batch, "tree")
    assert sorted(texts) == sorted(data.text)
    batch = batch._replace(inputs=batch.inputs._replace(x=batch.inputs.x.astype(jnp.float64)))
    model = ex.tree_classifier(jt.nary_tree_lstm(H, dtype=jnp.float64), 10)
    params = random_params(model, key, jnp.float64)
    objective = jax.jit(ex.objective(model, max_ops=3))
    loss, metrics = objective(params, batch, None)
    want, right = oracle_loss(params, texts)
    np.testing.assert_allclose(loss, want, rtol=0, atol=1e-10)
    ops = np.asarray(batch.ops)
    assert float(metrics["accuracy"]) == pytest.approx(right.mean())
    assert float(metrics["accuracy_iid"]) == pytest.approx(right[ops <= 3].mean())
    assert float(metrics["accuracy_longer"]) == pytest.approx(right[ops > 3].mean())
    check_grads(
        lambda p: objective(p, batch, None)[0],
        (params,),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def test_built_experiment_is_the_configured_tree_lstm(key):
    cfg = config_lib.load("expressions_treelstm", [f"model.hidden_size={H}"], smoke=True)
    exp = loop.build(cfg)
    params = exp.init_params(key)
    assert isinstance(params.cell, jt.NaryTreeLSTMParams)
    np.testing.assert_array_equal(params.cell.b_f, cfg.model.forget_bias)  # Tai et al.'s f bias
    batch = exp.task.batch(key, 0, 8)
    loss, _ = jax.jit(exp.objective)(params, batch, None)
    texts = decode_batch_text(batch, "tree")
    train = ex.splits(3, num_train=200, test_max_ops=5)[0]
    assert set(texts) <= set(train.text)
    np.testing.assert_array_equal(batch.targets, [eval(t) % 10 for t in texts])
    want, _ = oracle_loss(params, texts)
    np.testing.assert_allclose(loss, want, rtol=1e-5)  # float32 model vs float64 oracle


def test_built_sequence_baseline_reads_the_string_like_a_numpy_lstm(key):
    """The comparison's other side: an LSTM loop over the characters (gate order i, f, g, o),
    read out at each expression's last character, on the same expressions."""
    overrides = ["model.cell=lstm", f"model.hidden_size={H}"]
    exp = loop.build(config_lib.load("expressions_treelstm", overrides, smoke=True))
    params = exp.init_params(key)
    batch = exp.eval_task.batch(key, 0, 6)  # padded to the test split's longest string
    assert not np.asarray(batch.mask).all()
    loss, _ = jax.jit(exp.objective)(params, batch, None)
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
    batch = ex.task(data, "tree").batch(key, 0, 2)
    for cell, same in ((jt.child_sum_tree_lstm(H), True), (jt.nary_tree_lstm(H), False)):
        model = ex.tree_classifier(cell, 10)
        logits = model.apply(model.init(key, len(ex.VOCAB)), batch.inputs)
        assert np.allclose(logits[0], logits[1], rtol=0, atol=1e-6) == same


# ----------------------------------------------------------------------------- config and runs


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["model.cell=binary_tree_lstm"], ["model.cell='binary_tree_lstm'", "task.name='adding'"]),
        (["task.max_ops=3"], ["max_ops=3", "only used by the expressions task", "'adding'"]),
        (["task.name=expressions", "task.max_ops=3"], ["num_train=None", "expressions"]),
        (["task.name=expressions", "task.num_train=9"], ["max_ops=None", "e.g. max_ops=8"]),
        (
            ["task.name=expressions", "task.max_ops=3", "task.num_train=9", "task.test_max_ops=2"],
            ["test_max_ops=2 must be >= max_ops=3"],
        ),
        (["task.num_train=0"], ["task.num_train=0", "must be > 0"]),
        (["model.cell=tree_lstm"], ["model.cell='tree_lstm'", "'binary_tree_lstm'"]),
    ],
)
def test_bad_config_values_name_the_key(overrides, fragments):
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.apply_overrides(config_lib.Config(), overrides)
    for fragment in fragments:
        assert fragment in str(e.value)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["model.num_layers=2"], ["num_layers=2", "tree cell", "'binary_tree_lstm'"]),
        (["model.layer_norm=true"], ["layer_norm=True", "tree cell"]),
        (["model.remat=4"], ["remat=4", "tree cell"]),
        (["model.activation=relu"], ["activation='relu'", "'recursive'"]),
    ],
)
def test_sequence_settings_on_a_tree_cell_are_refused(overrides, fragments):
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.load("expressions_treelstm", overrides, smoke=True)
    for fragment in fragments:
        assert fragment in str(e.value)
    cfg = config_lib.load(
        "expressions_treelstm", ["model.cell=recursive", "model.activation=relu"], smoke=True
    )
    assert cfg.model.activation == "relu"


@standard_promotion
@pytest.mark.parametrize("overrides", [[], ["model.cell=lstm"]], ids=["tree_lstm", "lstm"])
def test_smoke_runs_of_both_readers_learn(overrides, tmp_path, capsys):
    argv = ["train", "expressions_treelstm", "--smoke", "--no-progress"]
    assert cli.main([*argv, "--workdir", str(tmp_path), *overrides]) == 0
    assert "accuracy_longer" in capsys.readouterr().out
    records = loop.read_log(tmp_path / "metrics.jsonl")
    train = [r["loss"] for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    assert np.mean(train[-10:]) < np.mean(train[:10]), train
    assert [r["step"] for r in evals] == [30] and {"accuracy_iid", "accuracy_longer"} <= set(
        evals[0]
    )
    assert records[0]["tokens_per_s"] > 0
