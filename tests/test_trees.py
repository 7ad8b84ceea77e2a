"""Tree cells and level-synchronous evaluation against a recursive implementation of the papers.

The oracle recurses over the nested tuples themselves, written from Socher et al.
(2011) and Tai et al. (2015, Eq. 2-14) with per-position matrices (not the fused
layout of ``jaxrnn.trees``), generic over NumPy (values) and ``jax.numpy`` (gradients).
"""

import ast
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn import trees as jt

I, H = 3, 4
CELLS = {
    "recursive": lambda: jt.recursive(H),
    "child_sum": lambda: jt.child_sum_tree_lstm(H),
    "nary": lambda: jt.nary_tree_lstm(H),
}
# Child-Sum handles any number of children; the other two are binary by default.
MAX_CHILDREN = {"recursive": 2, "child_sum": 3, "nary": 2}


def random_tree(rng, max_children, depth=0):
    if depth > 0 and (depth >= 3 or rng.random() < 0.3):
        return rng.normal(size=I)
    k = int(rng.integers(1, max_children + 1))
    return tuple(random_tree(rng, max_children, depth + 1) for _ in range(k))


def random_params(cell, key):
    params = cell.init(key, I)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    # Random (non-zero) biases too, so every term of the equations is exercised.
    new = [
        0.5 * jax.random.normal(k, a.shape, jnp.float64) for k, a in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, new)


def sig(xp, z):
    return 1 / (1 + xp.exp(-z))


def oracle(name, xp, p, tree, out):
    """State of ``tree``'s root; appends every node's state to ``out`` in post-order."""
    if isinstance(tree, tuple):
        kids = [oracle(name, xp, p, c, out) for c in tree]
        x = xp.zeros(I)
    else:
        kids, x = [], tree
    z = xp.zeros(H)
    if name == "recursive":  # Socher et al. (2011): h = tanh(W [h_1; h_2] + U x + b)
        hs = [k[0] for k in kids] + [z] * (2 - len(kids))
        state = (xp.tanh(sum(hs[l] @ p.W[l * H : (l + 1) * H] for l in range(2)) + x @ p.U + p.b),)
    elif name == "child_sum":  # Tai et al. (2015), Eq. 2-8
        W, U, b = (
            [a[..., g * H : (g + 1) * H] for g in range(3)] for a in (p.W_iou, p.U_iou, p.b_iou)
        )
        h_sum = sum((k[0] for k in kids), z)
        i, o, u = (x @ W[g] + h_sum @ U[g] + b[g] for g in range(3))
        f = [sig(xp, x @ p.W_f + h_k @ p.U_f + p.b_f) for h_k, _ in kids]
        c = sig(xp, i) * xp.tanh(u) + sum((f_k * k[1] for f_k, k in zip(f, kids, strict=True)), z)
        state = (sig(xp, o) * xp.tanh(c), c)
    else:  # N-ary Tree-LSTM, N = 2, Tai et al. (2015), Eq. 9-14
        hs = [k[0] for k in kids] + [z] * (2 - len(kids))
        cs = [k[1] for k in kids] + [z] * (2 - len(kids))

        def U(m, l, g):  # U^{(g)}_l, or U^{(f)}_{g l} for m = U_f
            return m[l * H : (l + 1) * H, g * H : (g + 1) * H]

        i, o, u = (
            x @ p.W_iou[:, g * H : (g + 1) * H]
            + sum(hs[l] @ U(p.U_iou, l, g) for l in range(2))
            + p.b_iou[g * H : (g + 1) * H]
            for g in range(3)
        )
        f = [
            sig(xp, x @ p.W_f + sum(hs[l] @ U(p.U_f, l, k) for l in range(2)) + p.b_f)
            for k in (0, 1)
        ]
        c = sig(xp, i) * xp.tanh(u) + f[0] * cs[0] + f[1] * cs[1]
        state = (sig(xp, o) * xp.tanh(c), c)
    out.append(state)
    return state


def as_numpy(params):
    return jax.tree.map(np.asarray, params)


@pytest.fixture(scope="module")
def forests():
    rng = np.random.default_rng(0)
    return {name: [random_tree(rng, MAX_CHILDREN[name]) for _ in range(6)] for name in CELLS}


def evaluate_fn(cell):
    return jax.jit(partial(jt.evaluate, cell))


@pytest.mark.parametrize("name", CELLS)
def test_values_match_recursive_oracle(name, forests, key):
    cell = CELLS[name]()
    params = random_params(cell, key)
    nested = forests[name]
    singles = [jt.from_nested(t, dtype=np.float64) for t in nested]
    assert len({t.level.shape[0] for t in singles}) > 2 and max(t.level.max() for t in singles) >= 3
    nodes, roots = evaluate_fn(cell)(params, jt.batch_trees(singles))
    for b, t in enumerate(nested):
        want = []
        root = oracle(name, np, as_numpy(params), t, want)
        for field, r in enumerate(root):
            np.testing.assert_allclose(roots[field][b], r, rtol=0, atol=1e-10)
            got = np.asarray(nodes[field][b, : len(want)])
            np.testing.assert_allclose(got, np.stack([w[field] for w in want]), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", CELLS)
def test_grads_match_recursive_jax_oracle(name, forests, key):
    cell = CELLS[name]()
    params = random_params(cell, key)
    nested = forests[name][:2]
    batch = jt.batch_trees([jt.from_nested(t, dtype=np.float64) for t in nested])
    v = jax.random.normal(jax.random.fold_in(key, 7), (H,), jnp.float64)

    def loss(params):
        nodes, roots = jt.evaluate(cell, params, batch)
        node_term = jnp.where(batch.node_mask[..., None], nodes.h, 0.0) ** 2
        return jnp.sum(roots.h @ v) + 0.1 * jnp.sum(node_term)

    def loss_oracle(params):
        total = 0.0
        for t in nested:
            out = []
            root = oracle(name, jnp, params, t, out)
            total = total + root[0] @ v + 0.1 * sum(jnp.sum(s[0] ** 2) for s in out)
        return total

    g, g_ref = jax.jit(jax.grad(loss))(params), jax.grad(loss_oracle)(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", CELLS)
def test_finite_difference_gradients(name, key):
    cell = CELLS[name]()
    params = random_params(cell, key)
    rng = np.random.default_rng(1)
    batch = jt.batch_trees(
        [jt.from_nested(random_tree(rng, MAX_CHILDREN[name]), dtype=np.float64) for _ in range(2)]
    )

    def f(params, x):
        nodes, roots = jt.evaluate(cell, params, batch._replace(x=x))
        return jnp.sum(jnp.sin(roots.h)) + jnp.sum(
            jnp.where(batch.node_mask[..., None], nodes.h, 0.0)
        )

    check_grads(
        jax.jit(f), (params, jnp.asarray(batch.x)), order=1, modes=["rev"], atol=1e-6, rtol=1e-6
    )


def test_child_sum_on_a_chain_is_an_lstm(key):
    T = 7
    cell = jt.child_sum_tree_lstm(H)
    p = random_params(cell, key)
    xs = jax.random.normal(jax.random.fold_in(key, 3), (T, I), jnp.float64)
    # Node t has the single child t - 1: the chain read from the leaf (t = 0) to the root.
    chain = jt.Trees(
        x=xs,
        children=np.arange(-1, T - 1, dtype=np.int32)[:, None],
        level=np.arange(T, dtype=np.int32),
        node_mask=np.ones(T, bool),
        root=np.int32(T - 1),
    )
    nodes, root = jt.evaluate(cell, p, chain)

    def gates(a):  # (i, o, u) -> jaxrnn.lstm's fused order (i, f, g, o)
        return [a[..., :H], None, a[..., 2 * H :], a[..., H : 2 * H]]

    def fused(iou, f):
        i, _, g, o = gates(iou)
        return jnp.concatenate([i, f, g, o], axis=-1)

    lstm_params = jaxrnn.LSTMParams(
        W_xh=fused(p.W_iou, p.W_f), W_hh=fused(p.U_iou, p.U_f), b=fused(p.b_iou, p.b_f)
    )
    carry, ys = jaxrnn.scan(jaxrnn.lstm(H), lstm_params, xs[None])
    np.testing.assert_allclose(nodes.h, ys[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(root.c, carry.c[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CELLS)
def test_batch_equals_one_by_one_and_padding_is_inert(name, forests, key):
    cell = CELLS[name]()
    params = random_params(cell, key)
    singles = [jt.from_nested(t, dtype=np.float64) for t in forests[name][:4]]
    one_by_one = [jt.evaluate(cell, params, t) for t in singles]
    n = max(t.level.shape[0] for t in singles) + 5
    k = MAX_CHILDREN[name] + (name == "child_sum")
    batch = jt.batch_trees(singles, max_nodes=n, max_children=k, max_levels=8)
    # Garbage in padding nodes' inputs must not leak into real nodes.
    garbage = np.random.default_rng(2).normal(size=batch.x.shape) * 100
    batch = batch._replace(x=np.where(batch.node_mask[..., None], batch.x, garbage))
    nodes, roots = jt.evaluate(cell, params, batch, num_levels=8)
    for b, (t, (n1, r1)) in enumerate(zip(singles, one_by_one, strict=True)):
        m = t.level.shape[0]
        for got, want in zip(jax.tree.leaves(roots), jax.tree.leaves(r1), strict=True):
            np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-12)
        for got, want in zip(jax.tree.leaves(nodes), jax.tree.leaves(n1), strict=True):
            np.testing.assert_allclose(got[b, :m], want, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(got[b, m:], 0.0)


def test_one_compile_for_different_trees_of_the_same_padding(forests, key):
    cell = jt.child_sum_tree_lstm(H)
    params = random_params(cell, key)
    f = evaluate_fn(cell)
    singles = [jt.from_nested(t, dtype=np.float64) for t in forests["child_sum"]]
    first = jt.batch_trees(singles[:3], max_nodes=40, max_children=3)
    second = jt.batch_trees(singles[3:], max_nodes=40, max_children=3)
    assert not np.array_equal(first.children, second.children)
    f(params, first)
    _, roots = f(params, second)
    assert f._cache_size() == 1
    np.testing.assert_allclose(roots.h, jt.evaluate(cell, params, second)[1].h, atol=1e-12)


def test_vmap_over_trees_equals_batched_evaluation(forests, key):
    cell = jt.nary_tree_lstm(H)
    params = random_params(cell, key)
    batch = jt.batch_trees([jt.from_nested(t, dtype=np.float64) for t in forests["nary"]])
    nodes, roots = jt.evaluate(cell, params, batch)
    v_nodes, v_roots = jax.vmap(lambda t: jt.evaluate(cell, params, t))(batch)
    for a, b in zip(
        jax.tree.leaves((nodes, roots)), jax.tree.leaves((v_nodes, v_roots)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # Any number of leading batch dimensions: [6, N] -> [2, 3, N].
    grid = jax.tree.map(lambda a: np.reshape(a, (2, 3, *a.shape[1:])), batch)
    g_nodes, g_roots = jt.evaluate(cell, params, grid)
    np.testing.assert_allclose(g_roots.c.reshape(roots.c.shape), roots.c, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g_nodes.h.reshape(nodes.h.shape), nodes.h, rtol=0, atol=1e-12)


def test_float32_state_and_token_embedding(key):
    cell = jt.recursive(H)
    params = cell.init(key, I)
    table = jax.random.normal(key, (5, I), jnp.float32)
    tree = jt.from_nested(((1, 2), 3))
    with pytest.raises(TypeError, match=r"trees.x: expected floating node features, got int32"):
        jt.evaluate(cell, params, tree)
    _, root = jt.evaluate(cell, params, tree._replace(x=table[tree.x]))
    assert root.h.dtype == jnp.float32
    p = jax.tree.map(np.asarray, params)
    emb = np.asarray(table)
    h1 = np.tanh(np.zeros(2 * H) @ p.W + emb[1] @ p.U + p.b)
    h2 = np.tanh(np.zeros(2 * H) @ p.W + emb[2] @ p.U + p.b)
    h12 = np.tanh(np.concatenate([h1, h2]) @ p.W + emb[0] @ p.U + p.b)
    h3 = np.tanh(np.zeros(2 * H) @ p.W + emb[3] @ p.U + p.b)
    want = np.tanh(np.concatenate([h12, h3]) @ p.W + emb[0] @ p.U + p.b)
    np.testing.assert_allclose(root.h, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- builders

CONLLU = """\
# sent_id = 1
# text = The cat sat on the mat.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_
4\ton\ton\tADP\tIN\t_\t6\tcase\t_\t_
5\tthe\tthe\tDET\tDT\t_\t6\tdet\t_\t_
6\tmat\tmat\tNOUN\tNN\t_\t3\tobl\t_\tSpaceAfter=No
7\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
"""


def test_conllu_gives_the_dependency_tree():
    vocab = {"the": 1, "cat": 2, "sat": 3, "mat": 4, "go": 5}
    first, second = jt.from_conllu(CONLLU, vocab)
    np.testing.assert_array_equal(first.x, [0, 2, 3, 0, 1, 4, 0])  # case-sensitive, unk 0
    np.testing.assert_array_equal(
        first.children,
        [[-1, -1, -1], [0, -1, -1], [1, 5, 6], [-1, -1, -1], [-1, -1, -1], [3, 4, -1], [-1] * 3],
    )
    np.testing.assert_array_equal(first.level, [0, 1, 2, 0, 0, 1, 0])
    assert first.root == 2
    np.testing.assert_array_equal(second.children, [[-1, -1], [-1, -1], [0, 1]])
    np.testing.assert_array_equal(second.level, [0, 0, 1])
    assert second.root == 2
    lemmas = jt.from_conllu(CONLLU, {"sit": 9}, field="LEMMA")
    assert lemmas[0].x[2] == 9


def test_conllu_cycle_is_rejected():
    # Word 1 is the root; words 2 and 3 are each other's heads.
    cyclic = "".join(
        f"{i}\t{w}\t_\t_\t_\t_\t{h}\tdep\t_\t_\n"
        for i, w, h in [(1, "a", 0), (2, "b", 3), (3, "c", 2)]
    )
    with pytest.raises(ValueError, match=r"sentence 0.*reachable from the root 0, got .*\[1, 2\]"):
        jt.from_conllu(cyclic, {})
    with pytest.raises(ValueError, match="expected 10 tab-separated CoNLL-U columns, got 3"):
        jt.from_conllu("1\ta\t0\n", {})


def test_nested_tuples_round_trip():
    nested = ((1, 2), 3, ((4,), 5))
    t = jt.from_nested(nested)
    # Post-order numbering: 1, 2, (1 2), 3, 4, (4), 5, ((4) 5), root.
    np.testing.assert_array_equal(t.x, [1, 2, 0, 3, 4, 0, 5, 0, 0])
    np.testing.assert_array_equal(t.children[2], [0, 1, -1])
    np.testing.assert_array_equal(t.children[8], [2, 3, 7])
    np.testing.assert_array_equal(t.level, [0, 0, 1, 0, 0, 1, 0, 2, 3])
    assert t.root == 8
    assert jt.to_nested(t) == nested
    again = jt.from_nested(jt.to_nested(t))
    for a, b in zip(t, again, strict=True):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    feats = random_tree(rng, 3)
    back = jt.to_nested(jt.from_nested(feats, dtype=np.float64))
    assert jax.tree.structure(back) == jax.tree.structure(feats)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(feats), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ast_tree():
    t = jt.from_ast(ast.parse("a + 1", mode="eval"))
    names = ["Load", "Name", "Add", "Constant", "BinOp", "Expression"]  # post-order
    np.testing.assert_array_equal(t.x, [jt.AST_NODE_TYPES.index(n) + 1 for n in names])
    np.testing.assert_array_equal(t.children[:, 0], [-1, 0, -1, -1, 1, 4])
    np.testing.assert_array_equal(t.children[4], [1, 2, 3])
    np.testing.assert_array_equal(t.level, [0, 1, 0, 0, 2, 3])
    assert t.root == 5
    assert jt.from_ast(ast.parse("a + 1", mode="eval"), node_types=["Name"]).x.tolist() == [
        0,
        1,
        0,
        0,
        0,
        0,
    ]


# ----------------------------------------------------------------------------- errors


def _tree(children, level, n_features=I):
    n = len(level)
    return jt.Trees(
        x=np.zeros((n, n_features)),
        children=np.asarray(children, np.int32),
        level=np.asarray(level, np.int32),
        node_mask=np.ones(n, bool),
        root=np.int32(n - 1),
    )


def test_bad_trees_are_rejected(key):
    cell = jt.child_sum_tree_lstm(H)
    params = random_params(cell, key)
    cycle = _tree([[1], [0], [1]], [1, 1, 2])
    with pytest.raises(
        ValueError,
        match=r"trees.level: .*smaller level .*node 0 \(level 1\) with child 1 \(level 1",
    ):
        jt.evaluate(cell, params, cycle)
    out_of_range = _tree([[-1], [0], [3]], [0, 1, 2])
    with pytest.raises(
        ValueError, match=r"trees.children: expected indices in \[-1, 3\).*got \[3\]"
    ):
        jt.evaluate(cell, params, out_of_range)
    wrong_size = _tree([[-1], [0], [1]], [0, 1, 2], n_features=I + 2)
    with pytest.raises(
        ValueError, match=rf"x: expected .*\(3, {I}\).*input_size={I}.*got \(3, {I + 2}\)"
    ):
        jt.evaluate(cell, params, wrong_size)
    chain = _tree([[-1], [0], [1]], [0, 1, 2])
    with pytest.raises(
        ValueError, match="num_levels: expected more than the largest level 2, got 2"
    ):
        jt.evaluate(cell, params, chain, num_levels=2)
    ternary = jt.from_nested((1, 2, 3))._replace(x=np.zeros((4, I)))
    nary = jt.nary_tree_lstm(H)
    with pytest.raises(ValueError, match=r"at most 2 child slots .*got K=3"):
        jt.evaluate(nary, random_params(nary, key), ternary)
    # N-ary positions survive batching: a node with only its right child keeps slot 1.
    right_only = _tree([[-1, -1, -1], [-1, 0, -1]], [0, 1])
    np.testing.assert_array_equal(jt.batch_trees([right_only]).children[0], [[-1, -1], [-1, 0]])
    with pytest.raises(ValueError, match=r"max_children: expected at least 3.*got 2"):
        jt.batch_trees([jt.from_nested((1, 2, 3))], max_children=2)
    with pytest.raises(
        ValueError, match="max_levels: expected more than the largest tree height 1"
    ):
        jt.batch_trees([jt.from_nested((1, 2, 3))], max_levels=1)
