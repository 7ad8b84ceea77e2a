"""Run status a scheduler and a person can trust: heartbeats, dead runs, one writer per
directory, exit codes, and signals that never fail a finished run (issue 14).

The CLI cases run the real command in a subprocess. Signals are sent by the process to
itself from a patched hook (the first training step, the plot, the results table), so
each case is deterministic rather than a race against the clock.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrnn import cli, training
from jaxrnn.training import liveness, rundir

JAXRNN = [sys.executable, "-m", "jaxrnn.cli"]
SMOKE = ["adding_lstm", "--smoke", "--no-progress", "model.hidden_size=4"]
# A run of the real CLI with one hook patched to send this process a signal first.
PATCHED = """
import os, signal, sys
from jaxrnn import cli
from jaxrnn.training import progress, rundir

def signalling(obj, name, signum):
    original = getattr(obj, name)
    def call(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(*args, **kwargs)
    setattr(obj, name, call)

signalling({target}, {name!r}, signal.{signal})
sys.exit(cli.main(sys.argv[1:]))
"""


def _run(args, cwd, patch=None, timeout=300):
    code = [sys.executable, "-c", PATCHED.format(**patch)] if patch else JAXRNN
    return subprocess.run([*code, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _status(workdir: Path) -> dict:
    return json.loads((workdir / "status.json").read_text())


# --- the rule for a live run -------------------------------------------------------


def _running(**fields) -> dict:
    me = liveness.identity()
    return {
        "status": "running",
        "step": 12,
        "heartbeat": time.time(),
        "heartbeat_every": 30.0,
        **me,
        **fields,
    }


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_status_is_believed_only_while_its_process_lives():
    assert liveness.is_alive(_running())
    assert not liveness.is_alive(_running(pid=_dead_pid()))
    # A live pid with a heartbeat of many intervals ago: the pid was reused.
    assert not liveness.is_alive(_running(heartbeat=time.time() - 5 * 30.0))
    # From another host only the heartbeat tells.
    assert liveness.is_alive(_running(host="elsewhere", pid=_dead_pid()))
    stale = time.time() - liveness.STALE_AFTER * 30.0 - 1
    assert not liveness.is_alive(_running(host="elsewhere", heartbeat=stale))
    # A status written before heartbeats proves nothing.
    assert not liveness.is_alive({"status": "running", "step": 3})


def test_runs_shows_a_dead_run_as_stopped_and_resumable():
    dead = _running(pid=_dead_pid(), last_checkpoint=10)
    assert liveness.describe(dead) == "stopped at step 12 (last checkpoint 10), resumable"
    assert liveness.describe(_running(pid=_dead_pid())).endswith("(no checkpoint yet), resumable")
    assert liveness.describe(_running()) == "running"
    interrupted = {"status": "interrupted", "step": 7, "last_checkpoint": 7}
    assert liveness.describe(interrupted) == "interrupted at step 7 (last checkpoint 7), resumable"
    assert liveness.describe({"status": "finished", "step": 20}) == "finished"


def test_the_heartbeat_rewrites_the_latest_step_between_checkpoints(tmp_path):
    with liveness.Heartbeat(every=0.05) as beat:
        beat.write(tmp_path, "running", step=0)
        first = _status(tmp_path)
        beat.done(7)
        deadline = time.time() + 10
        while _status(tmp_path)["step"] != 7 and time.time() < deadline:
            time.sleep(0.05)
        later = _status(tmp_path)
    assert later["step"] == 7 and later["heartbeat"] > first["heartbeat"]
    assert later["host"] == socket.gethostname() and later["pid"] == os.getpid()
    assert {"started", "heartbeat_every"} <= later.keys()
    beat_after_exit = _status(tmp_path)["heartbeat"]
    time.sleep(0.2)
    assert _status(tmp_path)["heartbeat"] == beat_after_exit  # the thread has ended


@pytest.mark.usefixtures("standard_dtype_promotion")
def test_the_status_is_written_at_checkpoints_and_status_changes_not_at_every_step(
    tmp_path, monkeypatch
):
    writes = []
    original = rundir.write_status
    monkeypatch.setattr(
        rundir, "write_status", lambda d, *a, **k: (writes.append(k), original(d, *a, **k))
    )
    steps = 40
    overrides = [f"train.steps={steps}", "train.checkpoint_every=20", "train.log_every=1"]
    training.train("adding_lstm", overrides, smoke=True, workdir=tmp_path, echo=lambda s: None)
    # running at the start, a checkpoint at 20 and 40, finished: no write per step
    assert len(writes) <= 5, writes
    status = _status(tmp_path)
    assert status["status"] == "finished" and status["last_checkpoint"] == steps


# --- one writer per directory ------------------------------------------------------


def test_a_second_holder_is_refused_with_the_holders_pid_and_a_dead_ones_lock_is_taken(
    tmp_path, held_elsewhere
):
    with (
        held_elsewhere(tmp_path) as pid,
        pytest.raises(liveness.BusyError, match=f"pid {pid} on host"),
        liveness.hold([tmp_path]),
    ):
        pass
    # The kernel drops a lock whose holder is killed (SIGKILL): its lock file stays, and
    # the next holder takes it over.
    with liveness.hold([tmp_path]):
        assert f"pid {os.getpid()}" in (tmp_path / liveness.LOCK).read_text()
        with liveness.hold([tmp_path]):  # re-entrant within one process
            pass
        # Still held after the inner block: another process is refused.
        probe = subprocess.run(
            [sys.executable, "-c", "from jaxrnn.training import liveness\n"
             f"with liveness.hold([{str(tmp_path)!r}]): pass"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert probe.returncode != 0 and f"pid {os.getpid()} on host" in probe.stderr


def test_a_second_process_on_a_running_directory_refuses_and_a_killed_run_shows_stopped(
    tmp_path,
):
    workdir = tmp_path / "runs" / "long"
    first = subprocess.Popen(
        [*JAXRNN, "train", *SMOKE, "train.steps=1000000", "--workdir", str(workdir)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not (workdir / rundir.LOG).exists() or not (workdir / rundir.LOG).read_text():
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        second = _run(["train", *SMOKE, "train.steps=1000000", "--workdir", str(workdir)], tmp_path)
        assert second.returncode == cli.EXIT_FAILED
        assert f"in use by pid {first.pid} on host" in second.stdout, second.stdout
        assert "Traceback" not in second.stdout + second.stderr
    finally:
        first.kill()
        first.wait()
    assert _status(workdir)["status"] == "running"  # what a kill -9 leaves behind
    listed = _run(["runs", str(tmp_path / "runs")], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "stopped at step" in listed.stdout and "resumable" in listed.stdout, listed.stdout


# --- exit codes, and signals after training ----------------------------------------


@pytest.mark.parametrize(
    ("command", "patch", "code", "status"),
    [
        # SIGTERM during training: a checkpoint, "interrupted", EX_TEMPFAIL.
        (["train"], ("progress.Board", "advance", "SIGTERM"), cli.EXIT_INTERRUPTED, "interrupted"),
        (["train"], ("progress.Board", "advance", "SIGINT"), cli.EXIT_INTERRUPTED, "interrupted"),
        (["sweep", "--seeds", "2"], ("progress.Board", "advance", "SIGTERM"), 75, "interrupted"),
        # A signal after the final checkpoint never fails the finished run.
        (["train"], ("rundir", "plot_losses", "SIGTERM"), 0, "finished"),
        (["train"], ("cli", "_print_results", "SIGTERM"), 0, "finished"),
        (["sweep", "--seeds", "2"], ("rundir", "plot_losses", "SIGTERM"), 0, "finished"),
    ],
)
def test_exit_codes_after_signals(tmp_path, command, patch, code, status):
    target, name, signum = patch
    where = "--workdir" if command[0] == "train" else "--sweep-dir"
    args = [command[0], *SMOKE, *command[1:], where, str(tmp_path / "out")]
    proc = _run(args, tmp_path, patch={"target": target, "name": name, "signal": signum})
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    out = tmp_path / "out"
    statuses = (
        [_status(out)]
        if command[0] == "train"
        else [_status(d) for d in sorted((out / "members").iterdir())]
    )
    assert {s["status"] for s in statuses} == {status}
    if status == "interrupted":
        assert "Resume with the same command" in proc.stdout


def test_a_run_stopped_by_a_nonfinite_loss_exits_with_its_own_code(tmp_path):
    diverge = ["optim.name=sgd", "optim.learning_rate=1e30", "optim.clip_norm=none"]
    args = ["train", *SMOKE, *diverge, "train.nonfinite=stop", "--workdir", str(tmp_path / "d")]
    proc = _run(args, tmp_path)
    assert proc.returncode == cli.EXIT_DIVERGED, proc.stdout[-3000:]
    assert _status(tmp_path / "d")["status"] == "diverged"


# --- a status whose checkpoint no longer restores ---------------------------------


def _train_records(workdir: Path) -> list[dict]:
    """The log without its wall-clock rates."""
    return [
        {k: v for k, v in r.items() if not k.endswith("_per_s")}
        for r in rundir.read_log(workdir / rundir.LOG)
    ]


@pytest.mark.usefixtures("standard_dtype_promotion")
@pytest.mark.parametrize("first", ["runs", "train"])
def test_a_finished_status_whose_final_checkpoint_is_truncated_is_corrected_and_redone(
    tmp_path, capfd, held_elsewhere, first
):
    from jaxrnn.training import runs
    from jaxrnn.training.checkpoint import Checkpointer

    workdir = tmp_path / "runs" / "r"
    overrides = ["model.hidden_size=4", "train.steps=20", "train.checkpoint_every=10"]
    messages = []
    train = lambda: training.train(  # noqa: E731
        "adding_lstm", overrides, smoke=True, workdir=workdir, echo=messages.append
    )
    train()
    before, log = _status(workdir), _train_records(workdir)
    final = workdir / "checkpoints" / "20"
    shutil.copytree(final, tmp_path / "intact" / "20")
    for f in (final / "default" / "d").iterdir():
        os.truncate(f, f.stat().st_size // 2)

    if first == "runs":
        # A directory another process holds is left to that process.
        with held_elsewhere(workdir):
            assert liveness.verified(workdir, before) == before
        assert _status(workdir) == before
        assert cli.main(["runs", str(workdir.parent)]) == 0
        status = _status(workdir)
        assert status["status"] == "stopped" and status["step"] == 10, status
        assert status["last_checkpoint"] == 10 and status["damaged"]["checkpoint"] == 20
        assert "final" not in status and "chosen_step" not in status
        assert liveness.describe(status) == (
            "stopped at step 10 (last checkpoint 10; checkpoint 20 no longer restores), resumable"
        )
        assert "no longer" in capfd.readouterr().out
    # The same command resumes from step 10 and writes steps 11-20 again, identically.
    messages.clear()
    result = train()
    assert any("checkpoint step 20" in m and "falling back" in m for m in messages), messages
    assert any("resuming" in m and "from step 10" in m for m in messages), messages
    after = _status(workdir)
    assert after["status"] == "finished" and after["final"] == before["final"]
    assert result["loss"] == before["final"]["loss"]
    assert _train_records(workdir) == log
    run = runs.load_run(workdir)
    intact = Checkpointer(tmp_path / "intact")
    try:
        want = intact.restore_step(20, run.state)
    finally:
        intact.close()
    assert run.step == 20
    keys_as_data = lambda tree: jax.tree.map(  # noqa: E731
        lambda x: (
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ),
        tree,
    )
    jax.tree.map(np.testing.assert_array_equal, keys_as_data(run.state), keys_as_data(want))
    assert "Traceback" not in capfd.readouterr().err
