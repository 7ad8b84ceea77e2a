"""jaxrnn.sweep.search (``jaxrnn sweep --optuna N --batch K``): the search finds the
obvious optimum of a tiny problem, a trial equals its solo ``jaxrnn train`` run, a
search killed between training a batch and telling it resumes to the uninterrupted
study, and bad input is one line (exit 2) before any compute."""

import builtins
import json
import math
import signal
import textwrap

import numpy as np
import pytest

from jaxrnn import cli, sweep, training
from jaxrnn.sweep import search
from jaxrnn.training import loop

optuna = pytest.importorskip("optuna")

# optax's own code (e.g. Adam's bias correction) is not strict-promotion clean.
standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")

# A member and its solo run agree to float32 rounding (README: "Sweeps").
RTOL, ATOL = 1e-5, 1e-7

# Learning rates from 1e-6 (nothing learned in 20 steps) to 0.1 (Adam's largest
# useful step here): the validation loss falls with the rate over this range.
SPACE = ["optim.learning_rate=loguniform:1e-6,1e-1"]
BASE = ["model.hidden_size=4", "train.steps=20", "train.eval_every=10"]


def _search(trials=4, batch=2, **kwargs):
    return search.load(
        "adding_lstm", BASE, trials=trials, batch=batch, random=SPACE, smoke=True, **kwargs
    )


def _study(sweep_dir) -> list[tuple]:
    """Per trial: number, state, params, value."""
    study = optuna.load_study(
        study_name=search.STUDY_NAME, storage=f"sqlite:///{sweep_dir / search.STUDY}"
    )
    return [(t.number, t.state.name, t.params, t.value) for t in study.trials]


class _Killed(Exception):
    pass


def _kill_after_training(batch):
    raise _Killed(f"killed after training batch {batch}, before telling it")


class _StopInSecondBatch(loop.Stop):
    """As if SIGTERM arrived at step 15 of the second batch: the engine reads ``signum``
    once per group (one a batch here), the loop once per step (20 steps a batch)."""

    def __init__(self):
        self.reads = 0

    @property
    def signum(self):
        self.reads += 1
        return signal.SIGTERM if self.reads >= 1 + 20 + 1 + 15 else None


@standard_promotion
def test_search_finds_the_optimum_resumes_after_a_kill_and_its_trials_equal_solo_runs(
    tmp_path, monkeypatch
):
    found = _search()
    quiet = dict(progress=False, echo=lambda s: None)
    results = search.run(found, tmp_path / "whole", **quiet)
    study = _study(tmp_path / "whole")
    assert [(n, state) for n, state, *_ in study] == [(i, "COMPLETE") for i in range(4)]
    # The value told is the member's best validation loss, never its test loss.
    listed = json.loads((tmp_path / "whole" / "sweep.json").read_text())["members"]
    for n, _, params, value in study:
        member_dir = sweep.member_dir(tmp_path / "whole", f"t{n:04d}")
        status = json.loads((member_dir / "status.json").read_text())
        assert value == status["best_validation"]["loss"] == results[f"t{n:04d}"]["value"]
        assert listed[n]["overrides"] == {**params, "seed": 0}
    # The known optimum: the validation loss falls with the learning rate here, so the
    # best trial is the one of the largest rate, and it learned: its loss is a fraction
    # of that of the smallest rate, which stays near the untrained one.
    rates = [params["optim.learning_rate"] for _, _, params, _ in study]
    values = [value for *_, value in study]
    assert int(np.argmin(values)) == int(np.argmax(rates))
    assert np.all(np.diff(np.asarray(values)[np.argsort(rates)]) < 0), (rates, values)
    best = search.best(tmp_path / "whole")
    assert best[0] == f"t{int(np.argmax(rates)):04d}"
    assert min(values) < 0.2 * values[int(np.argmin(rates))]

    # Killed after the first batch trained, before it was told: the rerun trains nothing
    # again for it (its members finished), tells it, and goes on as if never killed.
    with pytest.raises(_Killed):
        search.run(found, tmp_path / "cut", after_training=_kill_after_training, **quiet)
    assert [state for _, state, *_ in _study(tmp_path / "cut")] == ["RUNNING"] * 2
    search.run(found, tmp_path / "cut", **quiet)
    assert _study(tmp_path / "cut") == study

    # SIGTERM in the second batch: its members save a checkpoint and stop, the study
    # keeps their trials asked, and the rerun resumes them from that checkpoint.
    monkeypatch.setattr(search, "Stop", _StopInSecondBatch)
    stopped = search.run(found, tmp_path / "sigterm", **quiet)
    monkeypatch.setattr(search, "Stop", loop.Stop)
    assert [(stopped[i]["status"], stopped[i]["step"]) for i in ("t0002", "t0003")] == [
        ("interrupted", 15)
    ] * 2
    assert [state for _, state, *_ in _study(tmp_path / "sigterm")] == ["COMPLETE"] * 2 + [
        "RUNNING"
    ] * 2
    messages = []
    search.run(found, tmp_path / "sigterm", progress=False, echo=messages.append)
    assert any("resuming t0002, t0003 from step 15" in m for m in messages), messages
    assert _study(tmp_path / "sigterm") == study

    # A trial's member equals `jaxrnn train` with the same overrides.
    trial = best[0]
    overrides = next(m["overrides"] for m in listed if m["id"] == trial)
    solo = training.train(
        "adding_lstm",
        [*BASE, *(f"{k}={v!r}" for k, v in overrides.items())],
        smoke=True,
        workdir=tmp_path / "solo",
        echo=lambda s: None,
        progress=False,
    )
    got = results[trial]
    for k in solo:
        if isinstance(solo[k], float):
            np.testing.assert_allclose(got[k], solo[k], rtol=RTOL, atol=ATOL, err_msg=k)
    solo_status = json.loads((tmp_path / "solo" / "status.json").read_text())
    assert math.isclose(
        solo_status["best_validation"]["loss"], got["value"], rel_tol=RTOL, abs_tol=ATOL
    )
    assert solo_status["chosen_step"] == got["chosen_step"]


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["sweep", "adding_lstm", "--smoke", "--no-progress", *argv])
    return code, " ".join(capsys.readouterr().out.split())  # rich wraps lines


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--optuna", "4", "--random", "optim.learning_rate=normal:0,1"],
            "random optim.learning_rate='normal:0,1': expected dist:args with dist one of "
            "choice, int, loguniform, uniform",
        ),
        (["--optuna", "4"], "search space: expected at least one --random key=dist:args"),
        (["--optuna", "0", "--random", SPACE[0]], "--optuna 0: expected an integer >= 1"),
        (["--batch", "2", "--random", SPACE[0]], "--batch 2: needs --optuna N"),
        (
            ["--optuna", "4", "--random", "optim.lr=loguniform:1e-4,1e-1"],
            "(did you mean 'optim.learning_rate'?)",
        ),
        (
            ["--optuna", "4", "--random", "model.hidden_size=int:0,4"],
            "model.hidden_size",
        ),
        (["--optuna", "4", "--seeds", "2", "--random", SPACE[0]], "expected one, got 2"),
    ],
)
def test_bad_search_input_is_one_line_and_exit_2_before_any_compute(
    argv, message, capsys, monkeypatch, tmp_path
):
    monkeypatch.setattr(search, "run", lambda *a, **k: pytest.fail("computed"))
    code, out = _cli(capsys, "--sweep-dir", str(tmp_path / "s"), *argv)
    assert code == 2, out
    assert message in out, out
    assert not (tmp_path / "s").exists()


def test_without_optuna_the_error_names_the_extra(capsys, monkeypatch, tmp_path):
    real = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    code, out = _cli(capsys, "--optuna", "4", "--random", SPACE[0])
    assert code == 2 and "pip install 'jaxrnn[optuna]'" in out, out


def test_trials_of_a_batch_that_differ_in_a_shape_form_groups_of_their_own():
    found = search.load(
        "adding_lstm",
        BASE,
        trials=4,
        batch=4,
        random=[SPACE[0]],
        grid=["model.hidden_size=4,6"],
        smoke=True,
    )
    members = [
        search.member(found, n, {"optim.learning_rate": lr, "model.hidden_size": h})
        for n, (lr, h) in enumerate([(1e-3, 4), (1e-2, 6), (3e-3, 4), (1e-4, 6)])
    ]
    groups = sweep.plan(members)
    assert [[m.id for m in g.members] for g in groups] == [["t0000", "t0002"], ["t0001", "t0003"]]


def _ask_and_tell(storage: str, *, trials=20, batch=4, kill_at=None, kill_told=None):
    """search.ask's loop on a known objective, (log10 x + 2)^2, least at x = 0.01;
    ``kill_at``: stop once that many trials were asked (within a batch); ``kill_told``:
    once that many were told (within a batch)."""
    space = search.distributions({"x": "loguniform:1e-4,1"})
    study = optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
    while pending := search.ask(study, space, seed=0, batch=batch, trials=trials):
        if kill_at is not None and len(study.trials) >= kill_at:
            return None
        for t in pending:
            if t.number == kill_told:
                return None
            study.tell(t.number, (math.log10(t.params["x"]) + 2) ** 2)
    return study


def test_asks_in_the_tpe_regime_resume_to_the_same_study_after_a_kill_within_a_batch(
    tmp_path, monkeypatch
):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    whole = _ask_and_tell(f"sqlite:///{tmp_path / 'whole.db'}")
    # Killed after 2 of the 4 asks of trials 12..15 (TPE, past its 10 random trials).
    ask = search.ask
    calls = []

    def dying(study, space, **kwargs):
        if len(study.trials) == 12:
            calls.append(1)
            kwargs["trials"] = 14  # asks 12 and 13, then "dies"
        return ask(study, space, **kwargs)

    monkeypatch.setattr(search, "ask", dying)
    assert _ask_and_tell(f"sqlite:///{tmp_path / 'cut.db'}", kill_at=14) is None
    monkeypatch.setattr(search, "ask", ask)
    cut = _ask_and_tell(f"sqlite:///{tmp_path / 'cut.db'}")
    assert calls and len(cut.trials) == 20
    described = lambda s: [(t.params, t.value, t.user_attrs) for t in s.trials]  # noqa: E731
    assert described(cut) == described(whole)
    # Killed after telling 2 of the 4 trials 12..15: the rerun tells the other two first.
    assert _ask_and_tell(f"sqlite:///{tmp_path / 'told.db'}", kill_told=14) is None
    told = _ask_and_tell(f"sqlite:///{tmp_path / 'told.db'}")
    assert described(told) == described(whole)
    # The search found the optimum: TPE's best is within 0.1 decade of x = 0.01 (a
    # twentieth of the 4 decades searched).
    assert abs(math.log10(whole.best_params["x"]) + 2) < 0.1


def test_the_space_comes_from_the_experiment_file_and_flags_override_it_per_key(tmp_path):
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
                return {"random": {"optim.learning_rate": "loguniform:1e-4,1e-1",
                                   "optim.b1": "uniform:0.8,0.95"}}
            """
        )
    )
    found = search.load(str(path), trials=3, batch=3)
    assert found.spec.random == {
        "optim.learning_rate": "loguniform:1e-4,1e-1",
        "optim.b1": "uniform:0.8,0.95",
    }
    found = search.load(str(path), trials=3, batch=3, random=["optim.b1=choice:0.9,0.99"])
    assert found.spec.random["optim.b1"] == "choice:0.9,0.99"
    space = search.distributions(found.spec.random)
    assert space["optim.learning_rate"] == optuna.distributions.FloatDistribution(
        1e-4, 1e-1, log=True
    )
    assert space["optim.b1"] == optuna.distributions.CategoricalDistribution(["0.9", "0.99"])
    t = search.member(found, 7, {"optim.learning_rate": 0.0123456789, "optim.b1": "0.99"})
    assert t.id == "t0007" and t.config.optim.learning_rate == 0.0123456789
    assert t.overrides == {"optim.learning_rate": 0.0123456789, "optim.b1": 0.99, "seed": 0}
    # A plain override pins its key: the file's range of it is dropped.
    found = search.load(str(path), ["optim.b1=0.85"], trials=3, batch=3)
    assert found.spec.random == {"optim.learning_rate": "loguniform:1e-4,1e-1"}
    assert search.member(found, 0, {"optim.learning_rate": 0.01}).config.optim.b1 == 0.85


def test_a_directory_of_another_sweep_or_search_is_refused_before_training(tmp_path):
    found = _search()
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "sweep.json").write_text(json.dumps({"members": []}))
    with pytest.raises(ValueError, match="holds a sweep, not an Optuna search"):
        search.run(found, tmp_path / "grid", progress=False)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / search.STUDY}", study_name=search.STUDY_NAME
    )
    study.set_user_attr("identity", {**search._identity(found), "batch": 3})
    with pytest.raises(ValueError, match=r"holds another search \(other batch\)"):
        search.run(found, tmp_path, progress=False)
    assert not (tmp_path / "members").exists()
