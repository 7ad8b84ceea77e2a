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
import shutil
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


def test_the_wide_vector_peer_runs_jaxrnn_with_its_flag():
    # The extra peer is jaxrnn under XLA_FLAGS=--xla_cpu_prefer_vector_width=512: the same
    # model and losses as the default worker (up to rounding), only the flag differs.
    hellos, losses = {}, {}
    for name in ("jaxrnn", "jaxrnn-wide-vectors"):
        worker = peers.Worker(name)
        try:
            hellos[name] = worker.ready()
            shape = {"cell": "lstm", "B": 2, "T": 6, "I": 3, "H": 4}
            reply = worker.ask(cmd="setup", loss_steps=5, **shape)
            assert reply["ok"], reply
            losses[name] = reply["losses"]
        finally:
            worker.close()
    assert "--xla_cpu_prefer_vector_width=512" in hellos["jaxrnn-wide-vectors"]["xla_flags"]
    if "prefer_vector_width" not in os.environ.get("XLA_FLAGS", ""):
        assert "prefer_vector_width" not in hellos["jaxrnn"]["xla_flags"]
    np.testing.assert_allclose(losses["jaxrnn-wide-vectors"], losses["jaxrnn"], rtol=1e-5)


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
    and the sweep's members end where their sequential runs end (float32), also with
    the members sharded over one CPU device per core (``sweep-cores``)."""
    out = tmp_path / "sweep.json"
    cmd = [sys.executable, str(ROOT / "bench" / "sweep.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    parts = result["parts"]
    torch_there = importlib.util.find_spec("torch") is not None
    assert parts["torch"]["status"] == ("ok" if torch_there else "skipped")
    n = len(result["size"]["learning_rates"]) * len(result["size"]["seeds"])
    for name in ("sweep", "sweep-cores", "sequential", *(["torch"] if torch_there else [])):
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert parts["sweep-cores"]["devices"] == cores
    np.testing.assert_allclose(
        parts["sweep-cores"]["final_loss"], parts["sequential"]["final_loss"], rtol=1e-4, atol=1e-6
    )
    ratio = parts["sequential"]["wall_s"] / parts["sweep-cores"]["wall_s"]
    assert result["ratios_cores"]["sequential"] == pytest.approx(ratio, rel=1e-12)


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


@pytest.fixture(scope="module")
def engines_quick(tmp_path_factory):
    """``bench/engines.py --quick``: all three sections at tiny shapes."""
    out = tmp_path_factory.mktemp("engines") / "engines.json"
    cmd = [sys.executable, str(ROOT / "bench" / "engines.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return proc, json.loads(out.read_text()) if out.exists() else None


def engine_records(result):
    """``(section, where, record, blocks)`` for every trainer ``bench/engines.py`` timed."""
    blocks = result["spec"]["blocks"]
    for section in ("fast-path", "dropout"):
        for row in result["sections"][section]["rows"]:
            for name, v in row["variants"].items():
                for engine, rec in v["engines"].items():
                    yield section, (tuple(row["config"]), name, engine), rec, blocks
    for row in result["sections"]["linear"]["rows"]:
        for name, c in row["cells"].items():
            for mode, rec in c["modes"].items():
                yield "linear", (row["T"], name, mode), rec, row["blocks"]


def test_engines_quick_run_succeeds_and_writes_json(engines_quick):
    proc, result = engines_quick
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result["failures"] == []
    assert {n: s["status"] for n, s in result["sections"].items()} == {
        "fast-path": "ok",
        "dropout": "ok",
        "linear": "ok",
    }
    m = result["machine"]
    assert m["cpu_count"] >= 1 and len(m["loadavg_before"]) == len(m["loadavg_after"]) == 3
    assert {"jax", "jaxlib", "optax", "jaxrnn"} <= set(result["versions"])
    fast = result["sections"]["fast-path"]["rows"]
    assert [row["config"] for row in fast] == [[2, 6, 3, 4]]
    assert list(fast[0]["variants"]) == result["spec"]["variants"]
    assert [row["T"] for row in result["sections"]["linear"]["rows"]] == [16, 64]
    # One Markdown table per section went to stdout, a bold ratio in each row.
    for head in ("| (B, T, I, H) | variant | fused |", "| (B, T, I, H) | variant | default"):
        assert head in proc.stdout
    assert "| 64 | minGRU |" in proc.stdout
    sections = result["sections"]
    rows = sum(len(r["variants"]) for s in ("fast-path", "dropout") for r in sections[s]["rows"])
    rows += sum(len(r["cells"]) for r in sections["linear"]["rows"])
    assert sum("×**" in line for line in proc.stdout.splitlines()) == rows


def test_engines_losses_finite_decreasing_and_engines_agree(engines_quick):
    _, result = engines_quick
    first_T = result["spec"]["lengths"][0]
    for section, where, rec, _ in engine_records(result):
        losses = rec["losses"]
        assert all(math.isfinite(v) for v in losses + rec["timed_losses"]), where
        if section != "linear" or where[0] == first_T:
            assert len(losses) == 20, where
            assert losses[-1] < losses[0], where
        else:
            assert len(losses) == 1, where
        # Each trainer ran the engine it asked for (the "jaxrnn" logger at trace time).
        asked = where[2]
        expected = {"auto": "fused", "sequential": "autodiff"}.get(asked, asked)
        assert rec["engine_ran"] == expected, where
    # Oracle: the fused and the autodiff engine (or the sequential and the parallel scan)
    # from the same weights, batch and key take the same first step: the same loss and
    # gradient norm (bfloat16 up to its rounding).
    pairs = [
        (name, *v["engines"].values())
        for section in ("fast-path", "dropout")
        for row in result["sections"][section]["rows"]
        for name, v in row["variants"].items()
    ]
    pairs += [
        (name, c["modes"]["sequential"], c["modes"]["parallel"])
        for row in result["sections"]["linear"]["rows"]
        for name, c in row["cells"].items()
    ]
    for name, a, b in pairs:
        rtol = 2e-2 if name.endswith("bf16") else 1e-4
        first = [a["losses"][0], a["grad_norms"][0]]
        np.testing.assert_allclose(first, [b["losses"][0], b["grad_norms"][0]], rtol=rtol)
        assert a["grad_norms"][0] > 0, name


def test_engines_ratios_agree_with_raw_timings(engines_quick):
    _, result = engines_quick
    spec = result["spec"]
    for _, where, rec, blocks in engine_records(result):
        times, cpu = np.asarray(rec["times_s"]), np.asarray(rec["cpu_s"])
        assert 1 <= blocks <= spec["blocks"]
        assert times.shape == cpu.shape == (blocks * spec["calls"],), where
        assert np.all(times > 0) and np.all(cpu >= 0), where
        q25, q50, q75 = 1e3 * np.percentile(times, [25, 50, 75])
        assert (rec["p25_ms"], rec["median_ms"], rec["p75_ms"]) == pytest.approx((q25, q50, q75))
        assert rec["cpu_median_ms"] == pytest.approx(1e3 * np.median(cpu))
    for row in result["sections"]["fast-path"]["rows"]:
        for v in row["variants"].values():
            e = v["engines"]
            ratio = e["autodiff"]["median_ms"] / e["fused"]["median_ms"]
            assert v["autodiff_over_fused"] == pytest.approx(ratio)
    for row in result["sections"]["dropout"]["rows"]:
        plain = row["variants"]["lstm"]["engines"]
        for v in row["variants"].values():
            for engine, rec in v["engines"].items():
                ratio = rec["median_ms"] / plain[engine]["median_ms"]
                assert rec["over_plain"] == pytest.approx(ratio)
            ratio = v["engines"]["autodiff"]["median_ms"] / v["engines"]["auto"]["median_ms"]
            assert v["autodiff_over_auto"] == pytest.approx(ratio)
    for row in result["sections"]["linear"]["rows"]:
        for c in row["cells"].values():
            seq, par = c["modes"]["sequential"], c["modes"]["parallel"]
            assert c["wall_seq_over_par"] == pytest.approx(seq["median_ms"] / par["median_ms"])
            assert c["cpu_seq_over_par"] == pytest.approx(
                seq["cpu_median_ms"] / par["cpu_median_ms"]
            )
            for rec in (seq, par):
                total = rec["temp_bytes"] + rec["argument_bytes"] + rec["output_bytes"]
                assert rec["memory_bytes"] == total > 0


@pytest.mark.skipif(not shutil.which("bash") or not shutil.which("timeout"), reason="needs bash")
def test_gpu_sh_quick_mode_runs_engines_peers_and_sweeps(tmp_path):
    """``bench/gpu.sh --quick``: every stage runs on CPU and writes what the GPU run will."""
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = ["bash", str(ROOT / "bench" / "gpu.sh"), "--quick", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = [line.split("\t") for line in (tmp_path / "stages.tsv").read_text().splitlines()]
    names = ["peers-unroll1", "peers-unroll8", "linear", "sweep-1run", "sweep-2"]
    assert [s[0] for s in stages] == names
    assert all(s[1] == "0" for s in stages), stages
    torch_there = importlib.util.find_spec("torch") is not None
    for u in (1, 8):
        peers_run = json.loads((tmp_path / f"peers-unroll{u}.json").read_text())
        assert peers_run["failures"] == []
        assert peers_run["workers"]["jaxrnn"]["unroll"] == u
        assert peers_run["workers"]["pytorch"]["status"] == ("ok" if torch_there else "skipped")
        row = peers_run["rows"][0]
        assert row["peers"]["jaxrnn"]["losses"][-1] < row["peers"]["jaxrnn"]["losses"][0]
    linear = json.loads((tmp_path / "linear.json").read_text())
    assert linear["failures"] == [] and list(linear["sections"]) == ["linear"]
    one = json.loads((tmp_path / "sweep-1run.json").read_text())
    sweep = json.loads((tmp_path / "sweep-2.json").read_text())
    assert len(one["parts"]["sequential"]["final_loss"]) == 1
    assert len(sweep["parts"]["sweep"]["final_loss"]) == 2
    summary = (tmp_path / "summary.md").read_text()
    ratio = sweep["parts"]["sweep"]["wall_s"] / one["parts"]["sequential"]["wall_s"]
    assert f"| `jaxrnn sweep` engine | 2 | {sweep['parts']['sweep']['wall_s']:.1f} |" in summary
    assert f"**{ratio:.2f}×**" in summary
    assert "## peers-unroll8" in summary and "| GRU | (2, 6, 3, 4) |" in summary


def test_startup_benchmark_one_round(tmp_path):
    """``bench/startup.py --rounds 1`` runs every kind and its table is its JSON's medians.
    The first metrics line of each smoke run appears before the run ends."""
    out = tmp_path / "startup.json"
    cmd = [sys.executable, str(ROOT / "bench" / "startup.py"), "--rounds", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    smokes = [k for k in result["median"] if k.startswith("smoke")]
    assert len(smokes) == 3
    for name in smokes:
        rec = result["median"][name]
        assert 0 < rec["first_step_s"] < rec["total_s"]
        assert f"| {name} | {rec['first_step_s']:.2f} | {rec['total_s']:.2f} |" in proc.stdout
    assert ("PyTorch script" in result["median"]) == bool(importlib.util.find_spec("torch"))
    assert result["import_profile"] and "Largest self times" in proc.stdout
