"""Every ``jaxrnn`` error is one clear line and a non-zero exit code, never a traceback
unless ``--debug`` is given (issue 14, item 4).

Each case of the table runs the real command in a subprocess and checks the exit code,
the key words of the message and the absence of a traceback. Faults that no command
line can cause are injected by a wrapper that patches one function and then runs
``jaxrnn.cli.main``: a disk that fills where jaxrnn hands the state to orbax's save,
where it writes a metrics record and where it writes ``status.json`` (each run must
keep its previous checkpoint and resume from it with the same command), and a folder
that is not writable (patched too, since root may write anywhere).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxrnn import cli
from jaxrnn.training import rundir
from jaxrnn.training.checkpoint import Checkpointer

JAXRNN = [sys.executable, "-m", "jaxrnn.cli"]
TINY = ["--smoke", "--no-progress", "model.hidden_size=4"]
# A run of 4 steps that checkpoints at step 2 and at step 4 (its last).
SHORT = [*TINY, "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2"]

# Run as `python -c FAULTS <fault> <jaxrnn arguments...>`. ENOSPC at step 4: after the
# step-2 checkpoint, so that there is a previous good one to keep.
FAULTS = textwrap.dedent(
    """
    import errno, json, os, pathlib, sys

    import orbax.checkpoint as ocp

    from jaxrnn import cli

    fault, argv = sys.argv[1], sys.argv[2:]

    def full(path):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if fault == "checkpoint":  # where jaxrnn hands the state to orbax's save
        save = ocp.CheckpointManager.save

        def failing_save(self, step, *args, **kwargs):
            if step >= 4:  # a save that filled the disk halfway leaves its temporary folder
                (pathlib.Path(self.directory) / f"{step}.orbax-checkpoint-tmp").mkdir()
                raise full(pathlib.Path(self.directory) / str(step))
            return save(self, step, *args, **kwargs)

        ocp.CheckpointManager.save = failing_save
    elif fault == "metrics":  # the run's metrics.jsonl, from the step-3 record on
        open_ = pathlib.Path.open

        class Full:
            def __init__(self, file, path):
                self.file, self.path = file, path

            def write(self, text):
                if json.loads(text)["step"] >= 3:
                    raise full(self.path)
                return self.file.write(text)

            def __getattr__(self, name):
                return getattr(self.file, name)

        def failing_open(self, mode="r", *args, **kwargs):
            file = open_(self, mode, *args, **kwargs)
            return Full(file, self) if self.name == "metrics.jsonl" and "a" in mode else file

        pathlib.Path.open = failing_open
    elif fault == "status":  # status.json, when the run writes its result
        write_text = pathlib.Path.write_text

        def failing_write_text(self, data, *args, **kwargs):
            if self.name.startswith("status.json") and '"finished"' in data:
                raise full(self)
            return write_text(self, data, *args, **kwargs)

        pathlib.Path.write_text = failing_write_text
    elif fault == "readonly":  # folders named readonly: what chmod 555 is to anyone but root
        mkdir = pathlib.Path.mkdir

        def failing_mkdir(self, *args, **kwargs):
            if "readonly" in self.parts:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return mkdir(self, *args, **kwargs)

        pathlib.Path.mkdir = failing_mkdir
    sys.exit(cli.main(argv))
    """
)

NO_SMOKE = """
from jaxrnn.training import Config


def get_config():
    return Config(name="nosmoke")


def get_data(config): ...
def get_model(config, data): ...
def get_objective(config, model, data): ...
"""


def _run(args, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    command = JAXRNN if fault is None else [sys.executable, "-c", FAULTS, fault]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def ground(tmp_path_factory) -> Path:
    """A folder with what the cases give the command: a plain folder, a text file, a
    binary file, broken experiment files, a read-only folder and a finished sweep."""
    root = tmp_path_factory.mktemp("cli_errors")
    (root / "notarun").mkdir()
    (root / "notarun" / "notes.txt").write_text("not a run")
    (root / "afile.txt").write_text("a: b: c\n")  # not YAML either
    (root / "binary.dat").write_bytes(b"\xff\xfe\x00\x01")
    (root / "nosmoke.py").write_text(NO_SMOKE)
    builtin = Path(__file__).resolve().parents[1] / "configs" / "adding_lstm.py"
    source = builtin.read_text()
    head = "def get_config(smoke: bool = False) -> Config:\n"
    (root / "wrongtype.py").write_text(source.replace(head, head + "    return {'name': 1}\n"))
    (root / "readonly").mkdir()
    (root / "readonly").chmod(0o555)
    sweep = _run(["sweep", *TINY, "train.steps=2", "--seeds", "2", "--sweep-dir", "sweep"], root)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    return root


def _out(proc: subprocess.CompletedProcess) -> str:
    return " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines


# (id, arguments, fault, exit code, key words of the message)
CASES = [
    ("eval-folder", ["eval", "notarun"], None, 2, ["run_dir", "'notarun'", "not a run directory"]),
    ("eval-file", ["eval", "afile.txt"], None, 2, ["run_dir", "'afile.txt'", "a file"]),
    ("eval-missing", ["eval", "nowhere"], None, 2, ["run_dir", "'nowhere'", "no such path"]),
    ("eval-sweep", ["eval", "sweep"], None, 2, ["sweep directory", "sweep/members/<id>", "m001"]),
    ("sample-folder", ["sample", "notarun"], None, 2, ["run_dir", "not a run directory"]),
    ("sample-file", ["sample", "afile.txt"], None, 2, ["run_dir", "'afile.txt'", "a file"]),
    ("sample-missing", ["sample", "nowhere"], None, 2, ["run_dir", "no such path"]),
    ("runs-folder", ["runs", "notarun"], None, 2, ["root", "'notarun'", "holds no run direc"]),
    ("runs-file", ["runs", "afile.txt"], None, 2, ["root", "'afile.txt'", "is a file"]),
    ("runs-missing", ["runs", "nowhere"], None, 2, ["root", "no folder 'nowhere'"]),
    ("cite-folder", ["cite", "--cff", "notarun"], None, 2, ["CITATION.cff", "a directory"]),
    ("cite-file", ["cite", "--cff", "afile.txt"], None, 2, ["'afile.txt'", "not a CFF file"]),
    ("cite-binary", ["cite", "--cff", "binary.dat"], None, 2, ["'binary.dat'", "not YAML"]),
    ("cite-missing", ["cite", "--cff", "nowhere"], None, 2, ["'nowhere'", "no such file"]),
    ("cite-dir-folder", ["cite", "notarun"], None, 2, ["run_or_sweep_dir", "not a run"]),
    ("cite-dir-file", ["cite", "afile.txt"], None, 2, ["run_or_sweep_dir", "'afile.txt'"]),
    ("cite-dir-missing", ["cite", "nowhere"], None, 2, ["run_or_sweep_dir", "no such path"]),
    ("cite-style", ["cite", "sweep", "--style", "apa"], None, 2, ["--style", "'apa'"]),
    (
        "config-signature",
        ["train", "nosmoke.py", "--smoke"],
        None,
        2,
        ["nosmoke.py", "get_config", "expected get_config(smoke: bool = False)", "'smoke'"],
    ),
    (
        "config-type",
        ["train", "wrongtype.py", "--smoke"],
        None,
        2,
        ["wrongtype.py", "get_config()", "expected a jaxrnn.training.Config, got dict"],
    ),
    (
        "best-metric",
        ["train", *TINY, "train.best_metric=acuracy", "--workdir", "bm"],
        None,
        2,
        ["train.best_metric='acuracy'", "one of loss"],
    ),
    (
        "unwritable-workdir",
        ["train", *SHORT, "--workdir", "readonly/run"],
        "readonly",
        1,
        ["Permission denied", "readonly/run", "stopped before saving anything", "can write to"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_an_error_is_one_line_and_an_exit_code(case, ground):
    _, args, fault, code, words = case
    proc = _run(args, ground, fault)
    out = _out(proc)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    assert out.count("error:") == 1
    for word in words:
        assert word in out


def test_debug_shows_the_traceback(ground, monkeypatch):
    proc = _run(["eval", "nowhere", "--debug"], ground)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "FileNotFoundError: run_dir:" in proc.stderr
    monkeypatch.chdir(ground)
    for argv in (["--debug", "eval", "nowhere"], ["eval", "nowhere", "--debug"]):
        with pytest.raises(FileNotFoundError, match="run_dir: 'nowhere'"):
            cli.main(argv)
    assert cli.main(["eval", "nowhere"]) == 2


def test_eval_of_a_sweep_member_gives_its_own_test_loss(ground):
    member = ground / "sweep" / "members" / "m001"
    proc = _run(["eval", str(member)], ground)
    assert proc.returncode == 0, _out(proc)
    final = rundir.read_status(member)["final"]["loss"]
    assert "test split at step 2" in proc.stdout and f"{final:.4g}" in proc.stdout


def test_a_misspelt_best_metric_in_any_group_stops_a_sweep_before_it_writes(ground):
    grid = ["--grid", "train.best_metric=loss,acuracy", "--sweep-dir", "bad_sweep"]
    proc = _run(["sweep", *TINY, "train.steps=2", *grid], ground)
    out = _out(proc)
    assert proc.returncode == 2 and "Traceback" not in out
    assert "train.best_metric='acuracy'" in out and "one of loss" in out
    # Not the first group trained, not even sweep.json written: the same command with
    # the name corrected starts afresh in the same directory.
    assert not (ground / "bad_sweep").exists()


def test_a_full_disk_stops_the_run_keeping_its_last_checkpoint(tmp_path):
    """The disk fills at a checkpoint save, then (resumed) at a metrics record, then
    (resumed again) at the result's status.json: each time the run stops with one line
    naming the checkpoint it keeps, and the same command resumes from that one."""
    args = ["train", *SHORT, "--workdir", "run"]
    # The status is written after the last save (step 4), the others fail before it.
    for fault, kept in (("checkpoint", 2), ("metrics", 2), ("status", 4)):
        proc = _run(args, tmp_path, fault)
        out = _out(proc)
        assert proc.returncode == 1, out
        assert "Traceback" not in out and out.count("error:") == 1
        assert "No space left on device" in out
        assert f"its last complete checkpoint, step {kept}, is intact" in out
        assert "run the same command to resume" in out
        assert Checkpointer(tmp_path / "run" / "checkpoints").steps() == sorted({2, kept})
    again = _run(args, tmp_path)
    assert again.returncode == 0, _out(again)
    assert "resuming run from step 4" in _out(again)
    status = rundir.read_status(tmp_path / "run")
    assert (status["status"], status["step"]) == ("finished", 4)
    log = rundir.read_log(tmp_path / "run" / rundir.LOG)
    assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4]


def test_a_read_only_folder_is_refused_for_real_where_permissions_apply(ground):
    """Without the patch: a real read-only folder (skipped as root, which may write it)."""
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    proc = _run(["train", *SHORT, "--workdir", "readonly/run"], ground)
    out = _out(proc)
    assert proc.returncode == 1 and "Traceback" not in out and "Permission denied" in out


def test_runs_given_a_sweep_lists_its_members(ground):
    proc = _run(["runs", "sweep"], ground)
    assert proc.returncode == 0, _out(proc)
    assert "members/m000" in proc.stdout and "members/m001" in proc.stdout
