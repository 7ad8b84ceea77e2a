"""TensorBoard event files beside metrics.jsonl (jaxrnn.training.events), read back with
the tensorboard package's own reader (the oracle: what TensorBoard itself would show)."""

import importlib.util
import json
import logging
import math
import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from jaxrnn import training
from jaxrnn.training import rundir

pytestmark = pytest.mark.usefixtures("standard_dtype_promotion")
SMALL = ["model.hidden_size=4", "train.steps=20", "train.checkpoint_every=10", "train.log_every=1"]
SMALL += ["train.eval_every=5"]


def _quiet(_):
    pass


def _read(directory):
    acc = event_accumulator.EventAccumulator(
        str(directory), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    return acc


def _expected(directory) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as TensorBoard should show it: ``{tag: [(step, float32 value)]}``."""
    want: dict[str, list[tuple[int, float]]] = {}
    for record in rundir.read_log(directory / rundir.LOG):
        split = record.get("split", record["kind"])
        for key, value in record.items():
            if key not in ("kind", "split", "step") and isinstance(value, int | float):
                want.setdefault(f"{split}/{key}", []).append(
                    (record["step"], float(np.float32(value)))
                )
    return want


def _shown(acc) -> dict[str, list[tuple[int, float]]]:
    return {
        tag: [(e.step, float(np.float32(e.value))) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def test_every_logged_number_config_and_loss_plot_are_in_tensorboard(tmp_path):
    workdir = tmp_path / "run"
    training.train("adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet)
    acc = _read(workdir)
    want = _expected(workdir)
    assert {"train/loss", "validation/loss", "test/loss"} <= want.keys()
    assert _shown(acc) == want
    [text] = acc.Tensors("config/text_summary")
    shown = "\n".join(line[4:] for line in text.tensor_proto.string_val[0].decode().splitlines())
    assert json.loads(shown) == json.loads((workdir / "config.json").read_text())
    [image] = acc.Images("loss")
    assert image.step == 20 and image.width > 100 and image.height > 100


def test_a_resumed_run_shows_each_step_once(tmp_path):
    """Killed after step 20 but before its final checkpoint: the events past the last
    checkpoint (10) are purged on resume, as metrics.jsonl is truncated there."""
    workdir = tmp_path / "run"
    training.train("adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet)
    ckpts = workdir / "checkpoints"
    shutil.rmtree(ckpts / "20")
    status = rundir.read_status(workdir)
    rundir.write_status(workdir, "interrupted", step=10, last_checkpoint=10)
    assert status["status"] == "finished"
    training.train("adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet)
    assert len(list(workdir.glob("events.out.tfevents.*"))) == 2
    shown, want = _shown(_read(workdir)), _expected(workdir)
    steps = [s for s, _ in shown["train/loss"]]
    assert steps == list(range(1, 21))  # once each, not 11-20 twice
    assert shown == want


def test_a_failing_writer_warns_once_and_the_run_goes_on(tmp_path, monkeypatch):
    calls = []

    def broken(self, *args, **kwargs):
        calls.append(args)
        raise OSError(28, "No space left on device")

    from jaxrnn.training.events import _tensorboardx

    monkeypatch.setattr(_tensorboardx().SummaryWriter, "add_scalar", broken)
    workdir = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = training.train("adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet)
    tb = [w for w in caught if "TensorBoard events are no longer written" in str(w.message)]
    assert len(tb) == 1 and "No space left on device" in str(tb[0].message)
    assert len(calls) == 1  # dropped after the first failure
    assert result["status"] == "finished"
    assert [r["step"] for r in rundir.read_log(workdir / rundir.LOG) if r["kind"] == "train"] == (
        list(range(1, 21))
    )


def test_a_diverged_value_is_written_without_a_warning_per_scalar(tmp_path, caplog):
    """A diverged sweep member logs inf/NaN each step: TensorBoard gets the values, the
    console no tensorboardX warning per scalar (it would flood a long sweep's log)."""
    from jaxrnn.training.events import Events

    with caplog.at_level(logging.WARNING), Events(tmp_path, start=0) as events:
        for step in (1, 2, 3):
            events.write({"kind": "train", "step": step, "loss": math.inf, "grad_norm": math.nan})
    assert not [r for r in caplog.records if "NaN or Inf" in r.getMessage()]
    shown = _shown(_read(tmp_path))
    assert shown["train/loss"] == [(1, math.inf), (2, math.inf), (3, math.inf)]
    assert [s for s, _ in shown["train/grad_norm"]] == [1, 2, 3]
    assert all(math.isnan(v) for _, v in shown["train/grad_norm"])


def test_sweep_members_each_write_their_own_events(tmp_path):
    from jaxrnn import sweep

    spec = sweep.load("adding_lstm", seeds="0-1", smoke=True, overrides=SMALL[:2])
    sweep.run(spec.experiment, spec.members, tmp_path / "s", spec=spec, progress=False, echo=_quiet)
    members = sorted((tmp_path / "s" / "members").iterdir())
    assert len(members) == 2
    runs = [_shown(_read(m)) for m in members]
    for member, shown in zip(members, runs, strict=True):
        assert shown == _expected(member)
    assert runs[0]["train/loss"] != runs[1]["train/loss"]  # two seeds, overlaid by TensorBoard


def test_tensorboardx_is_imported_without_torch():
    code = "import sys; from jaxrnn.training import events; events._tensorboardx(); "
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# --- W&B, offline -------------------------------------------------------------------


def _wandb_records(offline_run: Path) -> list:
    """The records of a W&B offline run file (``run-<id>.wandb``), read as W&B writes them:
    a LevelDB-log stream (32 KiB blocks of chunks: crc32 u32, length u16, type u8) after a
    7-byte header, each record a ``wandb_internal_pb2.Record``. (wandb 0.31 has no Python
    reader of its own any more: the store moved to its Go core.)"""
    from wandb.proto import wandb_internal_pb2

    [path] = offline_run.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, chunks, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE/LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def _key(item) -> str:
    """A W&B record item's key (a key with "/" in it is stored as ``nested_key``)."""
    return item.key or "/".join(item.nested_key)


def _wandb_finished_records(offline_run: Path, timeout: float = 60.0) -> list:
    """The records once the file ends with W&B's ``exit`` record: W&B's core process
    writes it asynchronously, and may still be writing when ``finish()`` has returned."""
    deadline = time.monotonic() + timeout
    while True:
        records = _wandb_records(offline_run)
        if records and records[-1].WhichOneof("record_type") == "exit":
            return records
        assert time.monotonic() < deadline, f"{offline_run}: no exit record in {timeout} s"
        time.sleep(0.2)


def _wandb_view(offline_run: Path) -> tuple[str, dict, dict, dict, dict]:
    """(run id, {step: {tag: value}} of the history, the summary's test metrics, config,
    {step: the loss plot's image record})."""
    history, summary, config, run_id = {}, {}, {}, None
    for record in _wandb_finished_records(offline_run):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
            config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            history[row.pop("_step")] = {k: v for k, v in row.items() if not k.startswith("_")}
        elif kind == "summary":
            summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
    images = {}  # the loss plot, logged as "loss": stored flattened, "loss/_type", ...
    for step, row in history.items():
        for key in [k for k in row if k.startswith("loss/")]:
            images.setdefault(step, {})[key[5:]] = row.pop(key)
    test = {k: v for k, v in summary.items() if k.startswith("test/")}
    config.pop("_wandb", None)  # W&B's own
    return run_id, history, test, config, images


def _jsonl_rows(directory: Path, after: int = 0) -> tuple[dict, dict]:
    """metrics.jsonl as W&B should hold it: ({step: {tag: value}} of train and validation
    records past ``after``, {test tag: value})."""
    history, test = {}, {}
    for record in rundir.read_log(directory / rundir.LOG):
        split = record.get("split", record["kind"])
        numbers = {
            f"{split}/{k}": v
            for k, v in record.items()
            if k not in ("kind", "split", "step") and isinstance(v, int | float)
        }
        if record["kind"] == "test":
            test.update(numbers)
        elif record["step"] > after:
            history.setdefault(record["step"], {}).update(numbers)
    return history, test


def test_wandb_offline_holds_every_record_and_a_resume_continues_the_same_run(tmp_path):
    workdir = tmp_path / "run"
    train = lambda: training.train(  # noqa: E731
        "adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet, wandb=True
    )
    train()
    [first] = (workdir / "wandb").glob("offline-run-*")
    run_id, history, summary, config, images = _wandb_view(first)
    want_history, want_test = _jsonl_rows(workdir)
    assert history == want_history  # every train and validation number, exactly
    assert summary == want_test and "test/loss" in summary
    assert config == json.loads((workdir / "config.json").read_text())
    assert list(images) == [20] and images[20]["_type"] == "image-file"
    # Killed after step 20 but before its final checkpoint: resumed from 10.
    shutil.rmtree(workdir / "checkpoints" / "20")
    rundir.write_status(workdir, "interrupted", step=10, last_checkpoint=10)
    train()
    [second] = set((workdir / "wandb").glob("offline-run-*")) - {first}
    again, resumed, summary, _, _ = _wandb_view(second)
    assert again == run_id  # the same W&B run, continued
    want_history, want_test = _jsonl_rows(workdir, after=10)
    assert resumed == want_history and summary == want_test


def test_wandb_missing_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    from jaxrnn import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    workdir = tmp_path / "run"
    argv = ["train", "adding_lstm", "--smoke", "--wandb", "--workdir", str(workdir)]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "pip install 'jaxrnn[wandb]'" in capsys.readouterr().out
    assert not workdir.exists()
    with pytest.raises(ValueError, match="jaxrnn\\[wandb\\]"):
        training.train("adding_lstm", SMALL, smoke=True, workdir=workdir, wandb=True)


def test_a_failing_wandb_warns_once_and_the_run_goes_on(tmp_path, monkeypatch):
    import wandb

    calls = []

    def broken(self, *args, **kwargs):
        calls.append(args)
        raise RuntimeError("wandb-core exited")

    monkeypatch.setattr(wandb.Run, "log", broken)
    workdir = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = training.train(
            "adding_lstm", SMALL, smoke=True, workdir=workdir, echo=_quiet, wandb=True
        )
    dropped = [w for w in caught if "W&B records are no longer written" in str(w.message)]
    assert len(dropped) == 1 and "wandb-core exited" in str(dropped[0].message)
    assert len(calls) == 1 and result["status"] == "finished"
    assert list(workdir.glob("events.out.tfevents.*"))  # TensorBoard unaffected
