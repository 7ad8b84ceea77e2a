"""jaxrnn.sweep: spec parsing and its errors, grouping, vmapped members against separate
``loop.train`` runs, per-member divergence, one compilation per group, and resume of a
killed sweep (subprocesses of the ``jaxrnn`` command, as in tests/test_training.py).
"""

import json
import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cli, sweep
from jaxrnn.sweep import engine
from jaxrnn.training import config as config_lib
from jaxrnn.training import loop
from jaxrnn.training.config import ConfigError

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

            def get_config(smoke=False):
                return Config(name="mine", train=TrainConfig(steps=5))

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
            "model.cell='tree': expected one of 'lstm', 'gru', 'elman'",
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
    monkeypatch.setattr(loop, "build", lambda cfg: pytest.fail("computed before validation"))
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
    """The eval metrics of a result of ``run`` or ``loop.train``."""
    return {k: v for k, v in result.items() if k not in ("status", "step")}


def _close(got, want, what):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6, err_msg=what)


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in loop.read_log(path)]


def _logs_close(got: list[dict], want: list[dict], what: str):
    assert [(r["kind"], r["step"]) for r in got] == [(r["kind"], r["step"]) for r in want], what
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys(), what
        for key in a.keys() - {"kind"}:
            np.testing.assert_allclose(
                a[key], b[key], rtol=2e-5, atol=2e-6, err_msg=f"{what} {key}"
            )


@pytest.fixture(scope="module")
def programs():
    """Every Program ``run`` builds, to count their compilations."""
    built = []
    make = engine.make_program

    def recording(*args):
        built.append(make(*args))
        return built[-1]

    engine.make_program = recording
    yield built
    engine.make_program = make


@standard_promotion
def test_vmapped_members_equal_separate_runs_with_one_compilation(tmp_path, programs):
    spec = _spec(
        grid=["optim.learning_rate=3e-3,3e-2", "optim.clip_norm=0.05,1.0"],
        seeds=2,
        overrides=["train.log_every=5"],
    )
    programs.clear()
    results = sweep.run(spec.base, spec.members, tmp_path / "sweep", progress=False, spec=spec)
    assert len(programs) == 1 and programs[0].step._cache_size() == 1
    assert programs[0].evaluate._cache_size() == 1
    clipped = set()
    for m in spec.members:
        solo_dir = tmp_path / "solo" / m.id
        solo = loop.train(m.config, solo_dir, progress=False)
        assert results[m.id]["status"] == "finished" and results[m.id]["step"] == 20
        assert results[m.id]["status"] == solo["status"] and results[m.id]["step"] == solo["step"]
        assert _final(results[m.id]).keys() == _final(solo).keys()
        _close(_final(results[m.id]), _final(solo), m.id)
        _, _, solo_state = loop.final_params(solo_dir, m.config)
        cfg, state = engine.final_state(tmp_path / "sweep", m.id)
        assert cfg == m.config and int(state.step) == 20
        _close(state.params, solo_state.params, m.id)
        _close(state.opt_state, solo_state.opt_state, m.id)
        member_dir = tmp_path / "sweep" / "members" / m.id
        _logs_close(
            _records(member_dir / "metrics.jsonl"), _records(solo_dir / "metrics.jsonl"), m.id
        )
        assert json.loads((member_dir / "config.json").read_text()) == config_lib.to_dict(m.config)
        status = json.loads((member_dir / "status.json").read_text())
        assert status["status"] == "finished" and status["final"] == _final(results[m.id])
        clipped.add(any(r.get("clipped") for r in _records(member_dir / "metrics.jsonl")))
    assert clipped == {True, False}  # the per-member clip bounds did differ in effect
    described = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [e["id"] for e in described["members"]] == [m.id for m in spec.members]
    assert {e["group"] for e in described["members"]} == {"g000"}
    assert described["grid"] == spec.grid and described["seeds"] == [0, 1]
    assert described["versions"]["jax"] == jax.__version__
    # Again: the finished sweep is reported, not re-run; a different one is refused.
    assert sweep.run(spec.base, spec.members, tmp_path / "sweep", progress=False) == results
    assert len(programs) == 1
    other = _spec(grid=["optim.learning_rate=3e-3"])
    with pytest.raises(ValueError, match="holds a different sweep"):
        sweep.run(other.base, other.members, tmp_path / "sweep", progress=False)


@standard_promotion
def test_members_mapped_within_a_block_equal_members_vmapped(monkeypatch):
    """CPU runs a block's members one after another (``lax.map``), other backends vmap
    them: the two programs give the same states and metrics, for one block or several."""
    spec = _spec(grid=["optim.learning_rate=3e-3,3e-2"], seeds=2)
    cfg = spec.members[0].config
    data_keys = jnp.stack([loop.data_key(m.config) for m in spec.members])
    eval_keys = jnp.stack([loop.eval_key(m.config) for m in spec.members])

    def three_steps():
        program = engine.make_program(cfg)
        state = engine.init_group(spec.members)
        for s in range(3):
            state, metrics = program.step(state, data_keys, s)
        evals = program.evaluate(state.train.params, eval_keys, 0)
        return state.train.params, state.train.opt_state, metrics, evals

    mapped = three_steps()  # this machine's backend is the CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    vmapped = three_steps()
    _close(mapped, vmapped, "lax.map vs vmap within a block")
    assert not np.allclose(mapped[2]["loss"][0], mapped[2]["loss"][2])  # members differ

    # Two blocks (as on two devices), each looped, equal one vmap over all members.
    def fn(tree, key, i):
        return {"y": jnp.tanh(tree["w"] @ tree["x"]) * i + jax.random.normal(key, (3,))}

    tree = {"w": jnp.arange(4 * 9.0).reshape(4, 3, 3), "x": jnp.ones((4, 3))}
    keys = jax.random.split(jax.random.key(0), 4)
    looped = engine._over_members(2, loop_within=True)(fn, tree, keys, 2.0)
    _close(looped, jax.vmap(lambda t, k: fn(t, k, 2.0))(tree, keys), "two blocks")


@standard_promotion
def test_a_diverging_member_is_frozen_and_marked_while_the_others_go_on(tmp_path, programs):
    base = ["optim.name=sgd", "optim.clip_norm=none", "train.nonfinite=stop", "train.log_every=1"]
    spec = _spec(grid=["optim.learning_rate=1e30,0.05"], overrides=base)
    programs.clear()
    results = sweep.run(spec.base, spec.members, tmp_path / "sweep", progress=False)
    bad, good = spec.members
    # The diverging member alone: `jaxrnn train` stops at the same step.
    with pytest.raises(loop.NonFiniteError):
        loop.train(bad.config, tmp_path / "bad", progress=False)
    stopped = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert results[bad.id]["status"] == "diverged" and results[bad.id]["step"] == stopped["step"]
    member_dir = tmp_path / "sweep" / "members" / bad.id
    assert json.loads((member_dir / "status.json").read_text())["status"] == "diverged"
    _logs_close(
        _records(member_dir / "metrics.jsonl"), _records(tmp_path / "bad" / "metrics.jsonl"), "bad"
    )
    # Frozen: its state is that of a run that stopped just before the non-finite step.
    before = config_lib.apply_overrides(bad.config, [f"train.steps={stopped['step'] - 1}"])
    loop.train(before, tmp_path / "before", progress=False)
    _, _, want = loop.final_params(tmp_path / "before", before)
    _, frozen = engine.final_state(tmp_path / "sweep", bad.id)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(frozen.params))
    _close(frozen.params, want.params, "frozen")
    assert int(frozen.step) == stopped["step"] - 1
    # The other member trained all its steps, as alone.
    solo = loop.train(good.config, tmp_path / "good", progress=False)
    assert results[good.id]["status"] == "finished" and results[good.id]["step"] == 20
    assert _final(results[good.id]).keys() == _final(solo).keys()
    _close(_final(results[good.id]), _final(solo), "good")
    _, _, solo_state = loop.final_params(tmp_path / "good", good.config)
    _close(engine.final_state(tmp_path / "sweep", good.id)[1].params, solo_state.params, "good")
    assert programs[0].step._cache_size() == 1


# --- the command, kill and resume ---------------------------------------------------------

SWEEP = [sys.executable, "-m", "jaxrnn.cli", "sweep", "adding_lstm", "--smoke", "--no-progress"]
# Two groups (hidden sizes) of two seeds; long enough to be killed in the second group.
RESUMABLE = [
    "--grid", "model.hidden_size=4,6", "--seeds", "2",
    "train.steps=200", "train.checkpoint_every=10", "train.eval_every=50",
]  # fmt: skip


def _params_digests(*sweep_dirs: Path) -> list[str]:
    """Per sweep directory and member, step and sha256 of the params (a fresh interpreter:
    the test process enables x64)."""
    code = (
        "import hashlib, json, sys, jax, numpy as np\n"
        "from jaxrnn.sweep import engine\n"
        "for d in sys.argv[1:]:\n"
        "    for e in json.load(open(d + '/sweep.json'))['members']:\n"
        "        cfg, state = engine.final_state(d, e['id'])\n"
        "        h = hashlib.sha256()\n"
        "        [h.update(np.asarray(x).tobytes()) for x in jax.tree.leaves(state.params)]\n"
        "        print(e['id'], int(state.step), h.hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, sweep_dirs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


def _snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_killed_sweep_resumes_to_the_uninterrupted_result_without_rerunning_finished_groups(
    tmp_path,
):
    reference = tmp_path / "reference"
    subprocess.run([*SWEEP, *RESUMABLE, "--sweep-dir", reference], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*SWEEP, *RESUMABLE, "--sweep-dir", killed],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    second = killed / "groups" / "g001" / "checkpoints"
    while not (second.exists() and any(p.name.isdigit() for p in second.iterdir())):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint of the second group appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (
        json.loads((killed / "members" / "m002" / "status.json").read_text())["status"] == "running"
    )
    finished = {
        name: _snapshot(killed / name) for name in ("groups/g000", "members/m000", "members/m001")
    }
    out = subprocess.run(
        [*SWEEP, *RESUMABLE, "--sweep-dir", killed], check=True, capture_output=True, text=True
    )
    assert "group g001: resuming 2 members from step" in out.stdout
    assert "group g000" not in out.stdout
    for name, snapshot in finished.items():
        assert _snapshot(killed / name) == snapshot, name  # not re-run: untouched
    digests = _params_digests(killed, reference)
    assert len(digests) == 8 and digests[:4] == digests[4:]
    for member_id in ("m000", "m001", "m002", "m003"):
        log = Path("members") / member_id / "metrics.jsonl"
        assert _records(killed / log) == _records(reference / log)
        status = json.loads((killed / "members" / member_id / "status.json").read_text())
        assert status == json.loads((reference / "members" / member_id / "status.json").read_text())
    assert (killed / "summary.md").is_file()


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
