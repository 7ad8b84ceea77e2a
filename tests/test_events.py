"""TensorBoard event files beside metrics.jsonl (jaxrnn.training.events), read back with
the tensorboard package's own reader (the oracle: what TensorBoard itself would show)."""

import json
import shutil
import subprocess
import sys
import warnings

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
