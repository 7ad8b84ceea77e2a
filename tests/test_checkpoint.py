"""Tests for jaxrnn.training.checkpoint: bit-identical round trips, retention, atomicity, damage.

The oracle for every restore is the state that was saved (copied to NumPy
before saving) and, for retention, the step directories on disk listed with
``os.listdir``, independently of orbax's own bookkeeping.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.training.checkpoint import Checkpointer

# After a failed read, orbax leaves asyncio callbacks that fire on a closed loop
# when garbage-collected (in whichever test comes next); they are reported, not raised.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class TrainState(NamedTuple):
    """The shape of ``jaxrnn.training.step.TrainState``, kept local to test this module alone."""

    step: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array


OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def fresh_state(key, hidden=8, inputs=3):
    k_params, k_train = jax.random.split(key)
    params = jaxrnn.lstm(hidden).init(k_params, inputs)
    return TrainState(jnp.zeros((), jnp.int32), params, OPTIMIZER.init(params), k_train)


def trained_state(key, steps):
    """``steps`` Adam updates on a quadratic, so every optimizer leaf is non-trivial."""
    state = fresh_state(key)
    for _ in range(steps):
        grads = jax.tree.map(lambda p: 2.0 * p - 0.1, state.params)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = OPTIMIZER.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        state = TrainState(state.step + 1, params, opt_state, jax.random.split(state.key)[0])
    return state


def as_numpy(tree):
    """Host copies, typed keys as their key data: the oracle for a restored state."""

    def leaf(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.array(x)

    return jax.tree.map(leaf, tree)


def assert_bit_identical(restored, expected):
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
        assert got.dtype == want.dtype
        if jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(got) == jax.random.key_impl(want)
            got, want = jax.random.key_data(got), jax.random.key_data(want)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def step_dirs(directory) -> list[int]:
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def data_files(step_dir: Path) -> list[Path]:
    """The array data files of one checkpoint (OCDBT data under ``default/d``)."""
    files = sorted((step_dir / "default" / "d").iterdir())
    assert files, f"no data files under {step_dir}"
    return files


@pytest.fixture
def states(key):
    """Distinct states for steps 1..6, as saved and as NumPy oracles."""
    return {s: trained_state(jax.random.fold_in(key, s), s) for s in range(1, 7)}


def save_steps(directory, states, steps, **kwargs):
    ckpt = Checkpointer(directory, **kwargs)
    for s in steps:
        ckpt.save(s, states[s])
    return ckpt


# --- round trip ---------------------------------------------------------------------------


def test_round_trip_is_bit_identical(tmp_path, key):
    state = trained_state(key, 3)
    oracle = as_numpy(state)
    ckpt = Checkpointer(tmp_path)
    ckpt.save(3, state)
    ckpt.close()

    step, restored = Checkpointer(tmp_path).restore(fresh_state(jax.random.key(42)))

    assert step == 3
    assert_bit_identical(restored, state)
    assert jax.tree.structure(as_numpy(restored)) == jax.tree.structure(oracle)
    for got, want in zip(jax.tree.leaves(as_numpy(restored)), jax.tree.leaves(oracle), strict=True):
        np.testing.assert_array_equal(got, want)
    # The optimizer state really round-tripped (not just the template's zeros).
    assert int(restored.opt_state.inner_state[0].count) == 3
    assert float(restored.opt_state.hyperparams["learning_rate"]) == np.float32(1e-3)
    # The restored key is a working typed key that draws the same numbers.
    np.testing.assert_array_equal(
        jax.random.normal(restored.key, (4,), jnp.float64),
        jax.random.normal(state.key, (4,), jnp.float64),
    )


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_typed_keys_anywhere_in_the_tree(tmp_path, impl):
    """Keys in nested containers, of any implementation, with float64 and int64 leaves."""
    tree = {
        "keys": [jax.random.key(7, impl=impl), jax.random.split(jax.random.key(8, impl=impl), 3)],
        "x": jnp.linspace(-1.0, 1.0, 5, dtype=jnp.float64),
        "n": jnp.arange(4, dtype=jnp.int64),
    }
    template = {
        "keys": [jax.random.key(0, impl=impl), jax.random.split(jax.random.key(0, impl=impl), 3)],
        "x": jnp.zeros(5, jnp.float64),
        "n": jnp.zeros(4, jnp.int64),
    }
    ckpt = Checkpointer(tmp_path)
    ckpt.save(0, tree)
    step, restored = ckpt.restore(template)
    assert step == 0
    assert_bit_identical(restored, tree)


def test_template_mismatch_raises_instead_of_falling_back(tmp_path, key):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, fresh_state(key))
    ckpt.save(2, fresh_state(key))
    other_size = fresh_state(key, hidden=4)
    with pytest.raises(ValueError, match="template"):
        ckpt.restore(other_size)
    # A dtype change is refused too, rather than silently cast.
    as_f64 = fresh_state(key)._replace(
        params=jax.tree.map(lambda p: p.astype(jnp.float64), fresh_state(key).params)
    )
    with pytest.raises(ValueError, match="float64"):
        ckpt.restore(as_f64)


def test_empty_or_missing_directory_restores_none(tmp_path, key):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert Checkpointer(tmp_path).restore(fresh_state(key)) is None
        missing = Checkpointer(tmp_path / "not" / "yet")
        assert missing.restore(fresh_state(key)) is None
    assert missing.steps() == [] and missing.latest_step() is None


def test_resume_sees_old_checkpoints(tmp_path, states):
    save_steps(tmp_path, states, [1, 2, 3], keep_last=5).close()
    again = Checkpointer(tmp_path, keep_last=5)
    assert again.steps() == [1, 2, 3] and again.latest_step() == 3
    step, restored = again.restore(fresh_state(jax.random.key(9)))
    assert step == 3
    assert_bit_identical(restored, states[3])
    again.save(4, states[4])
    assert step_dirs(tmp_path) == [1, 2, 3, 4]


def test_saving_an_existing_step_is_a_no_op(tmp_path, states):
    ckpt = save_steps(tmp_path, states, [1])
    ckpt.save(1, states[2])
    assert step_dirs(tmp_path) == [1]
    assert_bit_identical(ckpt.restore(fresh_state(jax.random.key(9)))[1], states[1])


# --- retention ----------------------------------------------------------------------------


def test_keep_last_prunes_older_checkpoints(tmp_path, states):
    ckpt = save_steps(tmp_path, states, [1, 2, 3, 4, 5], keep_last=2)
    assert ckpt.steps() == [4, 5]
    assert step_dirs(tmp_path) == [4, 5]


LOSSES = {1: 0.5, 2: 0.2, 3: 0.9, 4: None, 5: 0.3, 6: float("nan")}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # min: 0.2 (step 2) and 0.3 (step 5) are the two best; step 6 is the latest.
        ("min", [2, 5, 6]),
        # max: 0.9 (step 3) and 0.5 (step 1); NaN (step 6) and no metric (step 4) never rank.
        ("max", [1, 3, 6]),
    ],
)
def test_keep_best_by_metric(tmp_path, states, mode, expected):
    ckpt = Checkpointer(tmp_path, keep_last=1, keep_best=2, best_metric="loss", best_mode=mode)
    for s, loss in LOSSES.items():
        metrics = None if loss is None else {"loss": loss, "accuracy": 1.0 - (loss or 0.0)}
        ckpt.save(s, states[s], metrics=metrics)
    assert step_dirs(tmp_path) == expected
    # The latest checkpoint is what restore returns, not the best.
    assert ckpt.restore(fresh_state(jax.random.key(9)))[0] == 6


def test_best_and_final_survive_a_resume(tmp_path, states):
    """Retention after a restart uses the metrics and final marks read back from disk."""
    ckpt = Checkpointer(tmp_path, keep_last=1, keep_best=1)
    ckpt.save(1, states[1], metrics={"loss": 0.1})
    ckpt.save(2, states[2], metrics={"loss": 0.7}, final=True)
    ckpt.save(3, states[3], metrics={"loss": 0.8})
    ckpt.close()
    assert step_dirs(tmp_path) == [1, 2, 3]

    resumed = Checkpointer(tmp_path, keep_last=1, keep_best=1)
    resumed.save(4, states[4], metrics={"loss": 0.9})
    resumed.save(5, states[5])
    # 1: best loss; 2: final; 5: latest. 3 and 4 are neither.
    assert step_dirs(tmp_path) == [1, 2, 5]


def test_final_is_kept_without_best(tmp_path, states):
    ckpt = Checkpointer(tmp_path, keep_last=1)
    ckpt.save(1, states[1])
    ckpt.save(2, states[2], final=True)
    for s in (3, 4, 5):
        ckpt.save(s, states[s])
    assert step_dirs(tmp_path) == [2, 5]


# --- atomicity and damage -----------------------------------------------------------------


def test_interrupted_save_is_never_listed(tmp_path, states, monkeypatch):
    """A save that dies before its final rename leaves only a temporary directory."""
    from orbax.checkpoint._src.path import atomicity

    ckpt = save_steps(tmp_path, states, [1, 2], keep_last=5)

    async def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the commit")

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(3, states[3])
    monkeypatch.undo()
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith("3.")]
    assert leftovers, "the simulated crash should leave a temporary directory behind"

    resumed = Checkpointer(tmp_path, keep_last=5)
    assert resumed.steps() == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step, restored = resumed.restore(fresh_state(jax.random.key(9)))
    assert step == 2
    assert_bit_identical(restored, states[2])
    # The resumed run can write step 3 for real.
    resumed.save(3, states[3])
    assert_bit_identical(resumed.restore(fresh_state(jax.random.key(9)))[1], states[3])


def test_sigkill_during_saves_leaves_a_complete_latest_checkpoint(tmp_path):
    """A real process saving in a loop, killed with SIGKILL: what restores is exactly some step."""
    child = textwrap.dedent(
        f"""
        import jax.numpy as jnp
        from jaxrnn.training.checkpoint import Checkpointer

        ckpt = Checkpointer({str(tmp_path)!r}, keep_last=3)
        for step in range(1, 10_000):
            ckpt.save(step, {{"w": jnp.full((256, 512), step, jnp.float32),
                              "step": jnp.asarray(step, jnp.int32)}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(step_dirs(tmp_path)) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the child process saved nothing in 60 s"
            time.sleep(0.01)
        time.sleep(0.013)  # land somewhere inside a later save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    template = {"w": jnp.zeros((256, 512), jnp.float32), "step": jnp.zeros((), jnp.int32)}
    ckpt = Checkpointer(tmp_path, keep_last=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step, restored = ckpt.restore(template)
    assert step == max(ckpt.steps()) >= 3
    np.testing.assert_array_equal(restored["w"], np.full((256, 512), step, np.float32))
    assert int(restored["step"]) == step
    # The resumed run saves the next step over whatever the killed save left behind.
    ckpt.save(step + 1, {"w": restored["w"] + 1.0, "step": restored["step"] + 1})
    assert ckpt.restore(template)[0] == step + 1
    np.testing.assert_array_equal(
        ckpt.restore(template)[1]["w"], np.full((256, 512), step + 1, np.float32)
    )
    assert [n for n in os.listdir(tmp_path) if "tmp" in n] == []


def test_tmp_directory_is_ignored(tmp_path, states):
    save_steps(tmp_path, states, [1, 2], keep_last=5).close()
    shutil.copytree(tmp_path / "2", tmp_path / "3.orbax-checkpoint-tmp-1234")
    ckpt = Checkpointer(tmp_path, keep_last=5)
    assert ckpt.steps() == [1, 2]
    assert ckpt.restore(fresh_state(jax.random.key(9)))[0] == 2


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_corrupted_latest_falls_back_with_a_warning(tmp_path, states, damage, capfd):
    save_steps(tmp_path, states, [1, 2, 3], keep_last=5).close()
    for f in data_files(tmp_path / "3"):
        if damage == "truncate":
            os.truncate(f, f.stat().st_size // 2)
        elif damage == "delete":
            f.unlink()
        else:  # one flipped byte: must be detected, not restored as wrong values
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            f.write_bytes(bytes(data))

    ckpt = Checkpointer(tmp_path, keep_last=5)
    assert ckpt.damage(2) is None
    assert ckpt.damage(3) is not None, "damage() must see what a restore would fail on"
    with pytest.warns(UserWarning, match=r"step 3 .*could not be restored"):
        step, restored = ckpt.restore(fresh_state(jax.random.key(9)))
    assert step == 2
    assert_bit_identical(restored, states[2])
    # Read through before orbax's asynchronous restore: no traceback per array in flight.
    assert "Traceback" not in capfd.readouterr().err

    # Resuming from 2 writes step 3 again: the damaged one is replaced, not kept.
    ckpt.save(3, states[3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step, restored = ckpt.restore(fresh_state(jax.random.key(9)))
    assert step == 3
    assert_bit_identical(restored, states[3])


def test_step_directory_without_checkpoint_files_is_skipped(tmp_path, states):
    """A directory named like a step but not written by a save (e.g. a partial copy)."""
    save_steps(tmp_path, states, [1, 2], keep_last=5).close()
    (tmp_path / "3").mkdir()
    with pytest.warns(UserWarning, match="step 3"):
        step, restored = Checkpointer(tmp_path, keep_last=5).restore(fresh_state(jax.random.key(9)))
    assert step == 2
    assert_bit_identical(restored, states[2])


def test_nothing_restorable_returns_none_with_a_warning(tmp_path, states):
    save_steps(tmp_path, states, [1, 2], keep_last=5).close()
    for s in (1, 2):
        (tmp_path / str(s) / "default" / "manifest.ocdbt").unlink()
    with pytest.warns(UserWarning) as record:
        assert Checkpointer(tmp_path).restore(fresh_state(jax.random.key(9))) is None
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    assert [m.split(" under ")[0] for m in messages] == [
        "checkpoint step 2",
        "checkpoint step 1",
        "no checkpoint",
    ]
    assert all(len(m) < 1000 for m in messages)


def test_damaged_metrics_file_keeps_the_checkpoint_usable(tmp_path, states):
    ckpt = Checkpointer(tmp_path, keep_best=1)
    ckpt.save(1, states[1], metrics={"loss": 0.3})
    ckpt.close()
    (tmp_path / "1" / "metrics" / "metrics").write_bytes(b"\x82{not json")
    with pytest.warns(UserWarning, match="unreadable metrics"):
        step, restored = Checkpointer(tmp_path).restore(fresh_state(jax.random.key(9)))
    assert step == 1
    assert_bit_identical(restored, states[1])


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"keep_last": 0}, "keep_last"),
        ({"keep_best": -1}, "keep_best"),
        ({"best_mode": "median"}, "best_mode"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        Checkpointer(tmp_path, **kwargs)


def test_bad_step_is_named(tmp_path, key):
    with pytest.raises(ValueError, match="step"):
        Checkpointer(tmp_path).save(-1, fresh_state(key))


def test_a_fresh_run_takes_its_first_step_before_importing_orbax(tmp_path):
    """Orbax (about 0.3 s to import) loads at the run's first save, after its first
    step (bench/startup.py: time to the first step); flax, which this run does not
    use, is never imported (the manifest reads its version from the metadata)."""
    code = textwrap.dedent(
        f"""
        import contextlib, sys
        events = []
        def hook(event, args):
            if event == "import" and args[0] in ("orbax.checkpoint", "flax"):
                events.append(args[0])
            elif event == "open" and str(args[0]).endswith("metrics.jsonl"):
                events.append("first step")
        sys.addaudithook(hook)
        from jaxrnn import cli
        with contextlib.suppress(SystemExit):
            cli.main(["train", "adding_lstm", "--smoke", "--no-progress", "--no-compile-cache",
                      "--workdir", {str(tmp_path / "run")!r}])
        print(list(dict.fromkeys(events)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['first step', 'orbax.checkpoint']"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())  # it saved
