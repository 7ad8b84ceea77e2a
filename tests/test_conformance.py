"""Every built-in cell passes ``jaxrnn.testing.check_cell``; broken cells fail it, by name.

A check is one compiled program, and on CPU its time is XLA's compilation (several
seconds, growing slowly with the cell's size). So the variants of one cell are checked
together as one cell, :func:`bundle`: the members run side by side on the same inputs,
with params, carries and outputs keyed by their names. The members share only the input
(whose gradient is their sum), so a bundle passes when each member does, and a failure
names the member in its leaf (``grad params['relu'].W_hh``).
"""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jaxrnn
from jaxrnn import trees
from jaxrnn.cells.base import Step
from jaxrnn.testing import Report, check_cell, check_tree_cell

H = 4


def bundle(**cells) -> jaxrnn.Cell:
    """The ``cells`` side by side on the same input, as one cell; it declares a
    :class:`Step` when every member does (the pieces keyed by member)."""
    names = sorted(cells)

    def init(key, input_size):
        return {
            n: cells[n].init(jax.random.fold_in(key, i), input_size) for i, n in enumerate(names)
        }

    def initial_carry(params, batch_shape=(), *, key=None):
        return {n: cells[n].initial_carry(params[n], batch_shape, key=key) for n in names}

    def apply(params, carry, x):
        out = {n: cells[n].apply(params[n], carry[n], x) for n in names}
        return {n: o[0] for n, o in out.items()}, {n: o[1] for n, o in out.items()}

    if any(cells[n].step is None for n in names):
        return jaxrnn.Cell(init, initial_carry, apply)

    def update(params, carry, u, r):
        out = {n: cells[n].step.update(params[n], carry[n], u[n], r[n]) for n in names}
        return {n: o[0] for n, o in out.items()}, {n: o[1] for n, o in out.items()}

    step = Step(
        project=lambda p, c, x: {n: cells[n].step.project(p[n], c[n], x) for n in names},
        recur=lambda p, c: {n: cells[n].step.recur(p[n], c[n]) for n in names},
        update=update,
    )
    return jaxrnn.Cell(init, initial_carry, apply, step)


def check(cell, steps=4, **options) -> Report:
    """``check_cell`` over 4 steps (the loop oracle's compilation grows with them), with
    the engines that others are still writing allowed to be absent."""
    try:
        return check_cell(cell, steps=steps, **options)
    except (NotImplementedError, ImportError) as e:
        pytest.xfail(f"an engine this cell declares is not available yet: {e!r}")


def failures(cell) -> tuple[set[str], str]:
    """The properties ``check_cell(cell)`` fails (each failure line names one), and its message."""
    with pytest.raises(AssertionError) as info:
        check(cell)
    lines = str(info.value).splitlines()[1:]
    return {line.strip().partition(":")[0] for line in lines}, str(info.value)


# --------------------------------------------------------------------------- built-in cells


def test_elman_with_every_activation():
    report = check(bundle(**{a: jaxrnn.elman(H, activation=a) for a in jaxrnn.ACTIVATIONS}))
    assert "engine[fused]" in report.checks


def test_gru_variants():
    check(
        bundle(
            reset_after=jaxrnn.gru(H),
            reset_before=jaxrnn.gru(H, reset_after=False),
            layer_norm=jaxrnn.gru(H, layer_norm=True),
        )
    )


LSTM_VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "projection": {"projection_size": 2},
    "layer_norm": {"layer_norm": True},
    "all_three": {"peephole": True, "projection_size": 2, "layer_norm": True},
}


@pytest.mark.parametrize("variant", LSTM_VARIANTS)
def test_lstm_variants(variant):
    """One check each: bundled, the LSTM variants compile slower than one by one."""
    check(jaxrnn.lstm(H, **LSTM_VARIANTS[variant]))


def test_variational_dropout_with_a_key():
    """The masks come from the carry's key, fixed for the sequence: loop and scan agree."""
    rates = {"input_rate": 0.3, "state_rate": 0.3}
    report = check(
        bundle(
            lstm=jaxrnn.variational_dropout(jaxrnn.lstm(H), **rates),
            gru=jaxrnn.variational_dropout(jaxrnn.gru(H), **rates),
        )
    )
    assert "holes" in report.checks and "vmap" in report.skipped  # vs the loop, vmapped


def test_zoneout_with_a_key():
    """Zoneout's key advances every step, masked or not: holes, resets and reverse are
    then checked on the evaluation carry."""
    report = check(
        bundle(
            lstm=jaxrnn.zoneout(jaxrnn.lstm(H), {"h": 0.3, "c": 0.5}),
            gru=jaxrnn.zoneout(jaxrnn.gru(H), 0.3),
        )
    )
    assert report.skipped["holes"].startswith("on the evaluation carry")


def test_learned_initial_carry():
    check(jaxrnn.learned_initial_carry(jaxrnn.gru(H)))


def test_stack_with_residual_and_dropout():
    check(jaxrnn.stack(jaxrnn.gru(H), jaxrnn.lstm(H), residual=True, dropout=0.25))


@pytest.mark.parametrize("name", ["lru", "min_gru", "min_lstm", "rg_lru"])
def test_linear_recurrences(name):
    if not hasattr(jaxrnn, name):
        pytest.skip(f"jaxrnn.{name} is not there yet (being added)")
    report = check(getattr(jaxrnn, name)(H))
    assert "engine[parallel]" in report.checks


@pytest.mark.parametrize(
    "cell, max_children",
    [(trees.recursive(H), 2), (trees.child_sum_tree_lstm(H), 3), (trees.nary_tree_lstm(H), 2)],
    ids=["recursive", "child_sum_tree_lstm", "nary_tree_lstm"],
)
def test_tree_cells(cell, max_children):
    check_tree_cell(cell, max_children=max_children)


# --------------------------------------------------------------------------- a user's cell


def readme_example() -> str:
    """The Python block of the README's "Check your own cell": a 20-line IndRNN and its check."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Check your own cell") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_users_own_cell_passes(capsys):
    """The README's cell and call, verbatim: check_cell's defaults, no declared engine."""
    exec(readme_example(), {})  # prints the report
    report = capsys.readouterr().out
    for prop in ("loop", "holes", "resets", "reverse", "vmap", "finite_differences"):
        assert f"\n{prop} " in f"\n{report}", report
    assert "engine" not in report


# --------------------------------------------------------------------------- broken cells


def test_a_declared_step_that_is_not_apply_fails_the_fused_engine():
    """The fast path's pieces must compose to ``apply``: here ``recur`` is 1% off."""
    good = jaxrnn.elman(H)
    off = good.step._replace(recur=lambda p, c: 1.01 * good.step.recur(p, c))
    failed, message = failures(good._replace(step=off))
    assert failed == {"engine[fused]", "loop"}, message  # the plain call runs the fused engine
    assert "engine[fused]: grad params.W_hh: max error" in message and "> tolerance" in message
    assert all("plain call" in line for line in message.splitlines() if "loop:" in line)


def test_a_wrong_custom_derivative_fails_the_finite_differences():
    """Loop and scan share a wrong derivative; only central differences see it."""

    @jax.custom_jvp
    def tanh(z):
        return jnp.tanh(z)

    @tanh.defjvp
    def tanh_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return jnp.tanh(z), 0.9 * (1 - jnp.tanh(z) ** 2) * dz  # 10% too small

    base = jaxrnn.elman(H)

    def apply(params, carry, x):
        h = tanh(x @ params.W_xh + carry.h @ params.W_hh + params.b)
        return jaxrnn.ElmanCarry(h), h

    failed, message = failures(jaxrnn.Cell(base.init, base.initial_carry, apply))
    assert failed == {"finite_differences"}, message


def test_an_impure_apply_fails_the_loop_and_is_named_per_property():
    """State kept in Python (a call counter, here scaling the bias) is read once by a
    traced scan, at every step by the loop: the rollout is no longer the loop over
    ``apply``. The params' gradients then fail summed over several properties' rows, so
    the check runs again per property to name each."""
    base, calls = jaxrnn.elman(H), [0]

    def apply(params, carry, x):
        calls[0] += 1
        return base.apply(params._replace(b=(1 + 0.1 * calls[0]) * params.b), carry, x)

    failed, message = failures(jaxrnn.Cell(base.init, base.initial_carry, apply))
    assert {"loop", "holes", "resets", "reverse", "vmap"} <= failed, message
    assert not any("+" in prop for prop in failed) and "engine[fused]" not in failed, message
    assert "loop: grad params.b" in message and "loop: ys" in message
