"""The benchmark harness ``bench/peers.py`` works: it is run in its quickest mode.

No wall time is asserted (it is a benchmark, not a test). What is checked: the
JSON is well formed, every peer's loss is finite and decreases, the statistics
and ratios agree with the raw timings, a peer that cannot be imported is reported
as skipped rather than failing the run, and the FLOP count matches ``BENCH.md``.
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("bench_peers", ROOT / "bench" / "peers.py")
peers = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(peers)

# Flax is a core dependency, so it is always there; PyTorch only where installed
# (CI installs it), and it is the peer that must live in a process of its own.
OTHER_PEERS = ["flax"] + (["pytorch"] if importlib.util.find_spec("torch") else [])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    # A stand-in `haiku` that fails to import: the harness must skip that peer.
    (tmp / "fake" / "haiku").mkdir(parents=True)
    (tmp / "fake" / "haiku" / "__init__.py").write_text("raise ImportError('simulated absence')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp / "fake"))
    out = tmp / "results.json"
    cmd = [sys.executable, str(ROOT / "bench" / "peers.py"), "--cells", "elman"]
    cmd += ["--configs", "2x6x3x4", "--peers", ",".join(["jaxrnn", *OTHER_PEERS, "haiku"])]
    cmd += ["--blocks", "2", "--calls", "2", "--no-extras", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return proc, json.loads(out.read_text()) if out.exists() else None


def test_quick_run_succeeds_and_writes_json(quick_run):
    proc, result = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result is not None
    assert result["failures"] == []
    assert [(r["cell"], r["B"], r["T"], r["I"], r["H"]) for r in result["rows"]] == [
        ("elman", 2, 6, 3, 4)
    ]
    # The Markdown table went to stdout, with a ratio for each peer.
    assert "| ELMAN | (2, 6, 3, 4) |" in proc.stdout
    assert proc.stdout.count("×**") == len(OTHER_PEERS)


def test_unimportable_peer_is_skipped(quick_run):
    _, result = quick_run
    haiku = result["workers"]["haiku"]
    assert haiku["status"] == "skipped"
    assert "simulated absence" in haiku["reason"]
    assert "haiku" not in result["rows"][0]["peers"]


def test_losses_finite_and_decreasing(quick_run):
    _, result = quick_run
    row = result["rows"][0]
    assert sorted(row["peers"]) == sorted(["jaxrnn", *OTHER_PEERS])
    for name, p in row["peers"].items():
        assert p["status"] == "ok", (name, p)
        assert len(p["losses"]) == 20
        assert all(math.isfinite(v) for v in p["losses"]), name
        assert p["losses"][-1] < p["losses"][0], name


def test_statistics_agree_with_raw_timings(quick_run):
    _, result = quick_run
    row = result["rows"][0]
    ours = row["peers"]["jaxrnn"]
    for name, p in row["peers"].items():
        times = np.asarray(p["times_s"])
        assert times.shape == (2 * 2,)  # blocks x calls
        assert np.all(times > 0)
        # Oracle: sort and interpolate by hand (percentile with linear interpolation).
        s = np.sort(times) * 1e3
        assert p["median_ms"] == pytest.approx((s[1] + s[2]) / 2, rel=1e-12)
        assert p["p25_ms"] == pytest.approx(s[0] + 0.75 * (s[1] - s[0]), rel=1e-12)
        assert p["p75_ms"] == pytest.approx(s[2] + 0.25 * (s[3] - s[2]), rel=1e-12)
        if name != "jaxrnn":
            assert p["ratio_to_jaxrnn"] == pytest.approx(p["median_ms"] / ours["median_ms"])
    ratios = {n: p["ratio_to_jaxrnn"] for n, p in row["peers"].items() if n != "jaxrnn"}
    assert row["fastest_peer_ratio"] == min(ratios.values())
    assert row["fastest_peer"] == min(ratios, key=ratios.get)


def test_step_flops_matches_bench_md():
    # BENCH.md: the (32, 100, 64, 512) LSTM step is 22.65 GFLOP.
    assert peers.step_flops("lstm", 32, 100, 64, 512) / 1e9 == pytest.approx(22.65, abs=5e-3)
    # 3 x 2 B T (I + H) G H written out for a GRU (G = 3) and an Elman cell (G = 1).
    assert peers.step_flops("gru", 2, 3, 4, 5) == 3 * 2 * 2 * 3 * 9 * 15
    assert peers.step_flops("elman", 2, 3, 4, 5) == 3 * 2 * 2 * 3 * 9 * 5


def test_loss_check():
    assert peers.loss_check([1.0, 0.9, 0.95, 0.8]) is None
    assert "did not decrease" in peers.loss_check([1.0, 0.5, 1.0])
    assert "non-finite" in peers.loss_check([1.0, float("nan"), 0.5])


def test_parse_config_rejects_bad_input():
    assert peers.parse_config("32x100x32x128") == (32, 100, 32, 128)
    with pytest.raises(argparse.ArgumentTypeError, match=r"BxTxIxH.*'32x100x32'"):
        peers.parse_config("32x100x32")
    with pytest.raises(argparse.ArgumentTypeError, match=r"positive"):
        peers.parse_config("0x100x32x128")


def test_write_readme_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    start, end = peers.README_MARKERS
    readme.write_text(f"intro\n{start}\nold\n{end}\noutro\n")
    peers.write_readme(readme, "| new |")
    assert readme.read_text() == f"intro\n{start}\n| new |\n{end}\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        peers.write_readme(readme, "x")


def test_sweep_benchmark_quick_mode(tmp_path):
    """``bench/sweep.py --quick``: every part runs, the ratios are the wall-time ratios,
    and the sweep's members end where their sequential runs end (float32)."""
    out = tmp_path / "sweep.json"
    cmd = [sys.executable, str(ROOT / "bench" / "sweep.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    parts = result["parts"]
    torch_there = importlib.util.find_spec("torch") is not None
    assert parts["torch"]["status"] == ("ok" if torch_there else "skipped")
    n = len(result["size"]["learning_rates"]) * len(result["size"]["seeds"])
    for name in ("sweep", "sequential", *(["torch"] if torch_there else [])):
        assert parts[name]["status"] == "ok", (name, parts[name])
        assert parts[name]["wall_s"] > 0
        assert len(parts[name]["final_loss"]) == n
        assert all(math.isfinite(v) for v in parts[name]["final_loss"])
        if name != "sweep":
            ratio = parts[name]["wall_s"] / parts["sweep"]["wall_s"]
            assert result["ratios"][name] == pytest.approx(ratio, rel=1e-12)
            assert f"**{ratio:.1f}×**" in proc.stdout
    # Oracle: each member trained alone with `jaxrnn train`'s loop.
    np.testing.assert_allclose(
        parts["sweep"]["final_loss"], parts["sequential"]["final_loss"], rtol=1e-4, atol=1e-6
    )
    diffs = np.abs(np.subtract(parts["sweep"]["final_loss"], parts["sequential"]["final_loss"]))
    assert result["max_final_loss_diff"] == pytest.approx(diffs.max(), abs=1e-15)


def test_memory_benchmark_quick_run(tmp_path):
    """``bench/memory.py --quick`` (remat=None against "sqrt") runs and its JSON adds up."""
    out = tmp_path / "memory.json"
    cmd = [sys.executable, str(ROOT / "bench" / "memory.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failures"] == []
    assert [row["T"] for row in result["rows"]] == [12, 30]
    for row in result["rows"]:
        plain, lean = row["variants"]["none"], row["variants"]["sqrt"]
        # The same step from the same weights: the same losses, finite and decreasing.
        np.testing.assert_allclose(lean["losses"], plain["losses"], rtol=1e-4)
        assert lean["losses"][-1] < lean["losses"][0]
        # Compiler output, not timing: segment checkpointing needs less temp memory.
        assert lean["temp_bytes"] < plain["temp_bytes"]
        assert row["memory_ratio"] == pytest.approx(plain["temp_bytes"] / lean["temp_bytes"])
        assert row["time_ratio"] == pytest.approx(lean["median_ms"] / plain["median_ms"])
        assert plain["median_ms"] == pytest.approx(1e3 * np.median(plain["times_s"]))
    assert {(r["remat"], r["T"]) for r in result["compile"]} == {
        (remat, T) for remat in ("none", "sqrt") for T in (100, 1000)
    }
    assert "| 30 |" in proc.stdout and "×**" in proc.stdout
