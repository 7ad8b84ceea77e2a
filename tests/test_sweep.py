"""jaxrnn.sweep: spec parsing and its errors, grouping, lax.map against vmap, per-member
divergence against solo runs (``jaxrnn.training.train``), and resume of a killed sweep
(subprocesses of the ``jaxrnn`` command). Members against their solo runs, one
compilation per group, and the summary: tests/test_experiments.py.
"""

import hashlib
import json
import math
import shutil
import signal
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cli, sweep, training
from jaxrnn.sweep import engine
from jaxrnn.training import distributed, liveness, loop, rundir
from jaxrnn.training import program as program_lib
from jaxrnn.training.config import ConfigError
from jaxrnn.training.optim import schedule

# A member and its solo run agree to float32 rounding (README: "Sweeps").
RTOL, ATOL = 1e-5, 1e-7

TIMING = {"steps_per_s", "tokens_per_s"}

# optax's own code (e.g. Adam's bias correction) is not strict-promotion clean.
standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")


def _spec(**kwargs):
    return sweep.load("adding_lstm", kwargs.pop("overrides", ()), smoke=True, **kwargs)


def _problems(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        _spec(**kwargs)
    return str(info.value)


# --- the spec ---------------------------------------------------------------------------


def test_grid_times_seeds_in_spec_order_with_typed_overrides():
    spec = _spec(
        grid=["optim.learning_rate=1e-3,3e-3", "model.cell=gru,lstm"],
        seeds="0-1",
        overrides=["train.steps=7"],
    )
    want = [(lr, cell, seed) for lr in (1e-3, 3e-3) for cell in ("gru", "lstm") for seed in (0, 1)]
    got = [
        (m.overrides["optim.learning_rate"], m.overrides["model.cell"], m.overrides["seed"])
        for m in spec.members
    ]
    assert got == want
    assert [m.id for m in spec.members] == [f"m{i:03d}" for i in range(8)]
    for m in spec.members:
        assert m.config.optim.learning_rate == m.overrides["optim.learning_rate"]
        assert m.config.model.cell == m.overrides["model.cell"]
        assert m.config.seed == m.overrides["seed"] and m.config.train.steps == 7
    assert spec.base_overrides == ("train.steps=7",) and spec.seeds == [0, 1]


@pytest.mark.parametrize(
    "seeds, want",
    [(3, [0, 1, 2]), ("3", [0, 1, 2]), ("2-4", [2, 3, 4]), ("0,3,7", [0, 3, 7]), ([5], [5])],
)
def test_seed_forms(seeds, want):
    assert [m.config.seed for m in _spec(seeds=seeds).members] == want


def test_without_seeds_the_base_seed_alone():
    assert [m.config.seed for m in _spec(overrides=["seed=4"]).members] == [4]


def test_random_trials_are_drawn_from_the_base_seed_reproducibly():
    kwargs = dict(
        random=["optim.learning_rate=loguniform:1e-4,1e-2", "model.hidden_size=int:4,9"],
        trials=5,
        seeds="0-1",
        overrides=["seed=3"],
    )
    spec = _spec(**kwargs)
    # Oracle: the documented draw order, trial by trial, key by key, from default_rng(seed).
    rng = np.random.default_rng(3)
    want = []
    for _ in range(5):
        lr = float(f"{math.exp(rng.uniform(math.log(1e-4), math.log(1e-2))):.4g}")
        want.append((lr, int(rng.integers(4, 10))))
    got = [
        (m.overrides["optim.learning_rate"], m.overrides["model.hidden_size"]) for m in spec.members
    ]
    assert got == [w for w in want for _ in range(2)]
    assert [m.overrides["seed"] for m in spec.members] == [0, 1] * 5
    assert all(1e-4 <= lr <= 1e-2 and 4 <= h <= 9 for lr, h in want)
    assert [m.config for m in _spec(**kwargs).members] == [m.config for m in spec.members]
    choice = _spec(random=["model.cell=choice:gru,lstm"], trials=6).members
    assert {m.config.model.cell for m in choice} <= {"gru", "lstm"}


def test_get_sweep_in_the_config_file_and_flags_override_it_per_key(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent(
            """
            from jaxrnn.training.config import Config, TrainConfig

            from jaxrnn.training import load_experiment

            adding = load_experiment("adding_lstm").module
            get_data, get_model = adding.get_data, adding.get_model
            get_objective = adding.get_objective

            def get_config(smoke=False):
                return Config(name="mine", task=adding.Adding(), train=TrainConfig(steps=5))

            def get_sweep():
                grid = {"optim.learning_rate": [1e-3, 1e-2], "optim.clip_norm": [None, 1.0]}
                return {"grid": grid, "seeds": "0-2", "max_group_size": 4}
            """
        )
    )
    spec = sweep.load(str(path))
    assert len(spec.members) == 2 * 2 * 3 and spec.max_group_size == 4
    assert {m.config.optim.clip_norm for m in spec.members} == {None, 1.0}
    spec = sweep.load(str(path), grid=["optim.clip_norm=0.5"], seeds="7", max_group_size=2)
    assert [m.config.optim.clip_norm for m in spec.members] == [0.5] * 14
    assert {m.config.optim.learning_rate for m in spec.members} == {1e-3, 1e-2}  # file's grid
    assert spec.seeds == list(range(7)) and spec.max_group_size == 2
    assert spec.grid == {"optim.learning_rate": ["0.001", "0.01"], "optim.clip_norm": ["0.5"]}
    # A plain override pins its key: the file's grid of it goes, its other keys stay.
    spec = sweep.load(str(path), ["optim.learning_rate=0.05"], seeds="1")
    assert [m.config.optim.learning_rate for m in spec.members] == [0.05, 0.05]
    assert [m.config.optim.clip_norm for m in spec.members] == [None, 1.0]
    assert spec.grid == {"optim.clip_norm": ["none", "1.0"]}
    spec = sweep.load(str(path), ["optim.clip_norm=2"], grid=["optim.clip_norm=0.5,3"])
    assert {m.config.optim.clip_norm for m in spec.members} == {0.5, 3.0}  # the flag wins


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(grid=["optim.lr=1e-3,1e-2"]),
            "grid: unknown key 'optim.lr'; valid keys in 'optim': name, learning_rate",
        ),
        (dict(grid=["optim.lr=1e-3"]), "(did you mean 'optim.learning_rate'?)"),
        (
            dict(grid=["optim.learning_rate=1e-3,fast"]),
            "optim.learning_rate='fast': expected a number",
        ),
        (dict(grid=["model.hidden_size=8,-1"]), "model.hidden_size=-1: must be > 0"),
        (
            dict(grid=["model.hidden_size="]),
            "grid 'model.hidden_size': expected at least one value",
        ),
        (
            dict(grid=["model.hidden_size=8,,16"]),
            "grid 'model.hidden_size': an empty value in '8,,16'",
        ),
        (dict(grid=["model.hidden_size"]), "grid 'model.hidden_size': expected key=v1,v2,..."),
        (dict(grid=["seed=1,2"]), "grid 'seed': sweep seeds with --seeds"),
        (
            dict(grid=["model.hidden_size=8", "model.hidden_size=16"]),
            "grid 'model.hidden_size': given twice",
        ),
        (
            dict(random=["optim.learning_rate=logunif:1e-4,1e-2"], trials=2),
            "random optim.learning_rate='logunif:1e-4,1e-2': expected dist:args with dist one "
            "of choice, int, loguniform, uniform",
        ),
        (
            dict(random=["optim.learning_rate=loguniform:0,1e-2"], trials=2),
            "loguniform: expected 0 < a < b, got a=0.0",
        ),
        (
            dict(random=["optim.learning_rate=uniform:1,0.5"], trials=2),
            "uniform: expected finite bounds a < b, got a=1.0, b=0.5",
        ),
        (
            dict(random=["model.hidden_size=int:4"], trials=2),
            "int: expected two bounds a,b, got 1 value(s) '4'",
        ),
        (
            dict(random=["model.hidden_size=int:4.5,9"], trials=2),
            "int: expected two integers a,b, got '4.5,9'",
        ),
        (
            dict(random=["model.cell=choice:gru,tree"], trials=8),
            "model.cell='tree': expected a registered cell, one of 'binary_tree_lstm'",
        ),
        (
            dict(random=["optim.learning_rate=uniform:0.1,1"]),
            "random optim.learning_rate: expected --trials N > 0, got None",
        ),
        (dict(trials=3), "trials=3: needs --random key=dist:args to draw from"),
        (
            dict(grid=["optim.eps=1e-8"], random=["optim.eps=uniform:1e-8,1e-6"], trials=1),
            "'optim.eps': in both grid and random",
        ),
        (dict(seeds="4-2"), "seeds='4-2': expected N (seeds 0..N-1, N > 0), a range 'a-b'"),
        (dict(seeds="0,3,3"), "seeds='0,3,3': expected"),
        (dict(seeds="0"), "seeds='0': expected"),
        (dict(seeds="x"), "seeds='x': expected"),
        (dict(seeds="-1"), "seeds='-1': expected"),
        (dict(max_group_size=0), "max_group_size=0: expected an integer >= 1"),
        (
            # Valid alone, invalid together: warm-up must be shorter than the run.
            dict(grid=["train.steps=10,40", "optim.warmup_steps=20"]),
            "optim.warmup_steps=20 must be < train.steps=10 "
            "(member train.steps=10 optim.warmup_steps=20 seed=0)",
        ),
    ],
)
def test_every_spec_problem_is_one_config_error_naming_key_value_and_expectation(kwargs, message):
    assert message in _problems(**kwargs)


def test_all_problems_are_reported_together_before_any_compute(monkeypatch):
    monkeypatch.setattr(loop, "build", lambda *a: pytest.fail("computed before validation"))
    text = _problems(grid=["optim.lr=1", "model.hidden_size=x"], seeds="3-1")
    assert "unknown key 'optim.lr'" in text
    assert "model.hidden_size='x': expected an integer" in text
    assert "seeds='3-1'" in text
    assert len(text.splitlines()) == 3


# --- grouping ---------------------------------------------------------------------------


def test_groups_split_on_shapes_and_structure_not_on_vmappable_values():
    spec = _spec(grid=["optim.learning_rate=1e-3,1e-2", "optim.clip_norm=0.5,1.0"], seeds=2)
    assert [len(g.members) for g in engine.plan(spec.members)] == [8]
    spec = _spec(grid=["model.hidden_size=4,8", "optim.learning_rate=1e-3,1e-2"], seeds=2)
    groups = engine.plan(spec.members)
    assert [len(g.members) for g in groups] == [4, 4]
    assert [{m.config.model.hidden_size for m in g.members} for g in groups] == [{4}, {8}]
    # Clipping off (None) drops a transform from the optimizer: another program.
    spec = _spec(grid=["optim.clip_norm=none,1.0,2.0"])
    assert [len(g.members) for g in engine.plan(spec.members)] == [1, 2]
    spec = _spec(grid=["model.forget_bias=0,1,2", "model.recurrent_init=orthogonal,identity"])
    assert [len(g.members) for g in engine.plan(spec.members)] == [6]
    # The cap splits a group in spec order; ids are stable.
    spec = _spec(grid=["optim.learning_rate=1e-3,1e-2"], seeds=3)
    groups = engine.plan(spec.members, max_group_size=4)
    assert [(g.id, [m.id for m in g.members]) for g in groups] == [
        ("g000", ["m000", "m001", "m002", "m003"]),
        ("g001", ["m004", "m005"]),
    ]


# --- execution --------------------------------------------------------------------------


def _final(result: dict) -> dict:
    """The test metrics of a result of ``sweep.run`` or ``training.train``."""
    skip = ("status", "step", "chosen_step", "baseline", "workdir")
    return {k: v for k, v in result.items() if k not in skip}


def _close(got, want, what):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rundir.read_log(path)]


def _logs_close(got: list[dict], want: list[dict], what: str):
    assert [(r["kind"], r["step"]) for r in got] == [(r["kind"], r["step"]) for r in want], what
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys(), what
        for key in a.keys() - {"kind", "split"}:
            np.testing.assert_allclose(
                a[key], b[key], rtol=RTOL, atol=ATOL, err_msg=f"{what} {key}"
            )


@pytest.fixture(scope="module")
def programs():
    """Every Program a run builds, to count their compilations."""
    built = []
    make = program_lib.make_program

    def recording(*args):
        built.append(make(*args))
        return built[-1]

    program_lib.make_program = recording
    yield built
    program_lib.make_program = make


def _member(dir_, step=20):
    return training.load_run(dir_, step=step).state.train


@standard_promotion
def test_members_mapped_within_a_block_equal_members_vmapped(monkeypatch):
    """CPU runs a block's members one after another (``lax.map``), other backends vmap
    them: the two programs give the same states and metrics, for one block or several."""
    spec = _spec(grid=["optim.learning_rate=3e-3,3e-2"], overrides=["model.cell=elman"])
    configs = [m.config for m in spec.members]
    group = loop.build(spec.experiment, configs)
    data_keys = jnp.stack([program_lib.data_key(c) for c in configs])
    sharding = distributed.member_sharding(len(configs))
    validation = training.runs.eval_batches(group.data, "validation", 16, 1)[0]

    def three_steps():
        program = program_lib.make_program(
            group.data,
            group.objective,
            group.optimizers[0],
            schedule(configs[0].optim, 20),
            configs[0],
            sharding,
        )
        state = program_lib.stack(
            [
                program_lib.initial_state(c, model, group.objective, opt, np.inf)
                for c, model, opt in zip(configs, group.models, group.optimizers, strict=True)
            ],
            [m.id for m in spec.members],
        )
        for s in range(3):
            state, metrics = program.step(state, data_keys, s)
        evals, _ = program.evaluate(state.train.params, (), validation)
        return state.train.params, state.train.opt_state, metrics, evals

    mapped = three_steps()  # this machine's backend is the CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    vmapped = three_steps()
    _close(mapped, vmapped, "lax.map vs vmap within a block")
    assert not np.allclose(mapped[2]["loss"][0], mapped[2]["loss"][1])  # members differ

    # Two blocks (as on two devices), each looped, equal one vmap over all members.
    def fn(pair, i):
        tree, key = pair
        return {"y": jnp.tanh(tree["w"] @ tree["x"]) * i + jax.random.normal(key, (3,))}

    tree = {"w": jnp.arange(4 * 9.0).reshape(4, 3, 3), "x": jnp.ones((4, 3))}
    keys = jax.random.split(jax.random.key(0), 4)
    looped = program_lib.over_members(2, loop_within=True)(fn, (tree, keys), 2.0)
    _close(looped, jax.vmap(lambda t, k: fn((t, k), 2.0))(tree, keys), "two blocks")


@standard_promotion
def test_a_diverging_member_is_frozen_and_marked_while_the_others_go_on(tmp_path, programs):
    base = ["optim.name=sgd", "optim.clip_norm=none", "train.nonfinite=stop", "train.log_every=1"]
    spec = _spec(grid=["optim.learning_rate=1e30,0.05"], overrides=base)
    programs.clear()
    results = sweep.run(spec.experiment, spec.members, tmp_path / "sweep", progress=False)
    bad, good = spec.members

    def alone(member, workdir, extra=()):
        overrides = [*base, *(f"{k}={v}" for k, v in member.overrides.items()), *extra]
        return training.train(
            "adding_lstm", overrides, smoke=True, workdir=workdir, echo=lambda s: None
        )

    # The diverging member alone: `jaxrnn train` stops at the same step.
    stopped = alone(bad, tmp_path / "bad")
    assert stopped["status"] == "diverged"
    assert results[bad.id]["status"] == "diverged" and results[bad.id]["step"] == stopped["step"]
    member_dir = sweep.member_dir(tmp_path / "sweep", bad.id)
    assert json.loads((member_dir / "status.json").read_text())["status"] == "diverged"
    _logs_close(
        _records(member_dir / rundir.LOG)[:-1], _records(tmp_path / "bad" / rundir.LOG)[:-1], "bad"
    )
    # Frozen: its state is that of a run that stopped just before the non-finite step.
    alone(bad, tmp_path / "before", [f"train.steps={stopped['step'] - 1}"])
    frozen = training.load_run(member_dir, step=20).state.train
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(frozen.params))
    _close(frozen.params, _member(tmp_path / "before", stopped["step"] - 1).params, "frozen")
    assert int(frozen.step) == stopped["step"] - 1
    # The other member trained all its steps, as alone.
    solo = alone(good, tmp_path / "good")
    assert results[good.id]["status"] == "finished" and results[good.id]["step"] == 20
    assert _final(results[good.id]).keys() == _final(solo).keys()
    _close(_final(results[good.id]), _final(solo), "good")
    _close(
        _member(sweep.member_dir(tmp_path / "sweep", good.id)).params,
        _member(tmp_path / "good").params,
        "good",
    )
    assert programs[0].step._cache_size() == 1


# --- interruption and resume ------------------------------------------------------------

# Two groups (hidden sizes) of two seeds.
RESUMABLE = dict(
    grid=["model.hidden_size=4,6"],
    seeds=2,
    overrides=["train.steps=40", "train.checkpoint_every=10", "train.eval_every=20"],
)


def _params_digests(sweep_dir: Path) -> list[str]:
    """Per member: id, step and sha256 of the final params."""
    out = []
    for e in json.loads((sweep_dir / "sweep.json").read_text())["members"]:
        state = training.load_run(sweep.member_dir(sweep_dir, e["id"]), step=40).state.train
        h = hashlib.sha256()
        for x in jax.tree.leaves(state.params):
            h.update(np.asarray(x).tobytes())
        out.append(f"{e['id']} {int(state.step)} {h.hexdigest()}")
    return out


def _snapshot(root: Path) -> dict:
    """Every file's time and bytes, but the locks, which name the last process that
    held a directory (a resumed sweep holds them all, also those of finished groups)."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != liveness.LOCK
    }


class _StopInSecondGroup(loop.Stop):
    """As if SIGTERM arrived at step 15 of the second group: the engine reads ``signum``
    once per group, the loop once per step (40 steps a group)."""

    def __init__(self):
        self.reads = 0

    @property
    def signum(self):
        self.reads += 1
        return signal.SIGTERM if self.reads >= 1 + 40 + 1 + 15 else None


@standard_promotion
def test_an_interrupted_sweep_resumes_to_the_uninterrupted_result_without_rerunning_groups(
    tmp_path, monkeypatch
):
    spec = _spec(**RESUMABLE)
    quiet = dict(progress=False, echo=lambda s: None)
    reference = sweep.run(spec.experiment, spec.members, tmp_path / "reference", **quiet)
    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        m.setattr(engine, "Stop", _StopInSecondGroup)
        results = sweep.run(spec.experiment, spec.members, cut, **quiet)
    assert [results[i]["status"] for i in ("m000", "m001")] == ["finished"] * 2
    assert [(results[i]["status"], results[i]["step"]) for i in ("m002", "m003")] == [
        ("interrupted", 15)
    ] * 2
    # A kill between the two members' saves leaves them at different latest steps:
    # the group resumes from the latest step that both hold.
    shutil.rmtree(sweep.member_dir(cut, "m003") / "checkpoints" / "15")
    finished = {name: _snapshot(cut / name) for name in ("members/m000", "members/m001")}
    messages = []
    again = sweep.run(spec.experiment, spec.members, cut, progress=False, echo=messages.append)
    assert any("resuming m002, m003 from step 10" in msg for msg in messages), messages
    assert not any("m000" in msg for msg in messages)
    for name, snapshot in finished.items():
        assert _snapshot(cut / name) == snapshot, name  # not re-run: untouched
    assert again == reference
    assert _params_digests(cut) == _params_digests(tmp_path / "reference")
    for member_id in ("m000", "m001", "m002", "m003"):
        log = Path("members") / member_id / rundir.LOG
        assert _records(cut / log) == _records(tmp_path / "reference" / log)


@standard_promotion
def test_cli_sweep_reports_config_errors_and_runs(tmp_path, capsys):
    assert cli.main(["sweep", "adding_lstm", "--smoke", "--grid", "optim.lr=1"]) == 2
    assert "(did you mean 'optim.learning_rate'?)" in " ".join(capsys.readouterr().out.split())
    argv = ["sweep", "adding_lstm", "--smoke", "--seeds", "2", "--sweep-dir", str(tmp_path)]
    # With the live table (rich renders it once at the end when not on a terminal).
    assert cli.main([*argv, "train.steps=3", "--grid", "optim.eps=1e-8,1e-6"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    assert "4 members" in out and (tmp_path / "summary.md").is_file()
    assert all(f"m00{i}" in out for i in range(4)) and "finished" in out
    statuses = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("members/*/status.json"))]
    assert [s["status"] for s in statuses] == ["finished"] * 4
    assert {s["step"] for s in statuses} == {3}
