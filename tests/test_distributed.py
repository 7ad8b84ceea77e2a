"""Scale-out with jax.sharding: data-parallel training, member-sharded sweeps, two processes.

A solo run is a group of one member: on 8 devices its batch is split 8 ways.

The device count is fixed when JAX starts, so every check runs this file as a
worker in a fresh subprocess (``python tests/test_distributed.py MODE OUT``) with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``; the worker writes what it
saw to ``OUT/result*.json`` / ``OUT/params*.npz`` and the tests compare. The
oracle of every sharded run is the same run on one device.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP_GRID = ["optim.learning_rate=0.001,0.01", "optim.clip_norm=0.5,1.0"]
SWEEP_SEEDS = "0-1"  # 2 × 2 × 2 = 8 members, one group
# The smoke adding-LSTM (T = 10, H = 8, B = 8), 12 steps: a log, an eval and a checkpoint
# at step 6 and at the end, so every code path of the loop runs, in seconds.
SHORT = ["train.steps=12", "train.log_every=6", "train.eval_every=6", "train.checkpoint_every=6"]
TIMEOUT = 300  # a hung collective must fail the test, not the CI job


# ----------------------------------------------------------------------------- the worker


def _flat(tree) -> dict[str, np.ndarray]:
    """``{"0": leaf, "1": leaf, ...}`` of a pytree of host arrays, for ``np.savez``."""
    import jax

    return {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


def _recording(seen: dict):
    """A ``make_program`` that records the layout of the first step's state and its HLO."""
    import jax

    from jaxrnn.training import program as program_lib

    make_program = program_lib.make_program

    def recording(*args, **kwargs):
        program = make_program(*args, **kwargs)

        def step(state, data_keys, s):
            if not seen:
                leaf = jax.tree.leaves(state.train.params)[0]
                hlo = program.step.lower(state, data_keys, s).compile().as_text()
                seen.update(
                    params_spec=list(leaf.sharding.spec),
                    params_shards=[list(x.data.shape) for x in leaf.addressable_shards],
                    params_shape=list(leaf.shape),
                    params_replicated=leaf.sharding.is_fully_replicated,
                    devices=len(leaf.sharding.device_set),
                    keys_spec=list(data_keys.sharding.spec),
                    mesh=dict(leaf.sharding.mesh.shape),
                    collectives=[
                        op for op in ("all-reduce", "all-gather", "all-to-all") if op in hlo
                    ],
                )
            return program.step(state, data_keys, s)

        return program._replace(step=step)

    return recording


def _worker_train(out: Path) -> None:
    """Data-parallel ``jaxrnn.training.train`` of the smoke adding-LSTM (a group of one);
    records the layout it ran with."""
    import jax

    from jaxrnn import training
    from jaxrnn.training import distributed
    from jaxrnn.training import program as program_lib

    seen: dict = {}
    program_lib.make_program = _recording(seen)
    result = training.train("adding_lstm", SHORT, smoke=True, workdir=out / "run")
    run = training.load_run(out / "run", step=12)
    pid = jax.process_index()
    np.savez(out / f"params{pid}.npz", **_flat(distributed.fetch(run.state.train.params)))
    result.pop("workdir")
    (out / f"result{pid}.json").write_text(json.dumps({"result": result, "seen": seen}))


def _worker_bad_batch(out: Path) -> None:
    """A batch size that does not split over the devices: the error, and that nothing ran."""
    from jaxrnn import training

    try:
        training.train(
            "adding_lstm", [*SHORT, "train.batch_size=12"], smoke=True, workdir=out / "run"
        )
        error = None
    except ValueError as e:
        error = str(e)
    created = (out / "run").exists()
    (out / "result0.json").write_text(json.dumps({"error": error, "created": created}))


def _worker_shardings(out: Path) -> None:
    """``member_sharding``, ``place`` and ``fetch`` on 8 devices, against NumPy."""
    import logging

    import jax
    import jax.numpy as jnp

    from jaxrnn.training import distributed

    facts: dict = {}
    warned: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warned.append(record.getMessage())
    logging.getLogger("jaxrnn").addHandler(handler)
    rng = np.random.default_rng(0)
    for n in (8, 16, 12, 6, 3, 1):
        x = rng.standard_normal((n, 5)).astype(np.float32)
        placed = distributed.place(x, distributed.member_sharding(n))
        # Per member, a computation over its own row only: no communication needed.
        y = jax.jit(lambda a: jnp.tanh(a) @ jnp.ones((5, 2), jnp.float32))(placed)
        facts[str(n)] = {
            "mesh": dict(distributed.member_sharding(n).mesh.shape),
            "shard_rows": sorted({s.data.shape[0] for s in placed.addressable_shards}),
            "distinct_blocks": len({str(s.index) for s in placed.addressable_shards}),
            "max_err": float(np.max(np.abs(distributed.fetch(y) - np.tanh(x) @ np.ones((5, 2))))),
            "out_spec": list(y.sharding.spec),
            "warned": [m for m in warned if m.startswith(f"{n} members")],
        }
    key = jax.random.key(3)
    keys = distributed.place(jax.random.split(key, 8), distributed.member_sharding(8))
    facts["keys_equal"] = bool(
        np.array_equal(
            distributed.fetch(jax.random.key_data(keys)),
            np.asarray(jax.random.key_data(jax.random.split(key, 8))),
        )
    )
    facts["keys_typed"] = bool(jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key))
    errors = {}
    for bad in (0, -1, 2.0, True):
        try:
            distributed.member_sharding(bad)
        except ValueError as e:
            errors[repr(bad)] = str(e)
    facts["errors"] = errors
    (out / "result0.json").write_text(json.dumps(facts))


def _worker_sweep(out: Path) -> None:
    """The 8-member sweep; records the layout of its state and its compiled step."""
    import jax

    from jaxrnn import sweep, training
    from jaxrnn.training import distributed
    from jaxrnn.training import program as program_lib

    spec = sweep.load("adding_lstm", SHORT, grid=SWEEP_GRID, seeds=SWEEP_SEEDS, smoke=True)
    seen: dict = {}
    program_lib.make_program = _recording(seen)
    results = sweep.run(spec.experiment, spec.members, out / "sweep", spec=spec, progress=False)
    params = [
        training.load_run(sweep.member_dir(out / "sweep", m.id), step=12).state.train.params
        for m in spec.members
    ]
    pid = jax.process_index()
    np.savez(out / f"params{pid}.npz", **_flat(distributed.fetch(params)))
    record = {"results": results, "seen": seen, "step": 12, "devices": jax.device_count()}
    (out / f"result{pid}.json").write_text(json.dumps(record))


def _main(argv) -> None:
    from jaxrnn.training import distributed

    # One process of several when the launcher set JAX_COORDINATOR_ADDRESS & co.
    distributed.initialize()
    mode, out = argv[0], Path(argv[1])
    modes = {
        "train": _worker_train,
        "bad_batch": _worker_bad_batch,
        "shardings": _worker_shardings,
        "sweep": _worker_sweep,
    }
    modes[mode](out)


# ----------------------------------------------------------------------------- the tests


def _env(devices: int) -> dict:
    cache = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_")) or k in cache}
    env.update(  # the suite's compile flags (tests/conftest.py), and the device count
        XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def test_initialize_reads_the_environment(monkeypatch):
    from jaxrnn.training import distributed

    names = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False  # a single-process run: nothing to join
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="missing JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID"):
        distributed.initialize()
    # Joining for real is what the two-process tests below do.


def _run(mode: str, out: Path, devices: int) -> dict:
    """Run the worker in a fresh process with ``devices`` CPU devices; its ``result0.json``."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(out)],
        cwd=ROOT,
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "result0.json").read_text())


def _params(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[str(i)] for i in range(len(f.files))]


def _assert_params_close(a: list, b: list, rtol: float, atol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _log(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


# Data parallelism sums the batch gradient in another order (per-device partial
# sums, then the all-reduce); over 20 Adam steps float32 rounding stays far below these.
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def single_device_train(tmp_path_factory):
    out = tmp_path_factory.mktemp("train1")
    return out, _run("train", out, devices=1)


@pytest.fixture(scope="module")
def single_device_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep1")
    return out, _run("sweep", out, devices=1)


def test_data_parallel_train_equals_single_device(single_device_train, tmp_path):
    one_dir, one = single_device_train
    eight = _run("train", tmp_path, devices=8)
    # The run really was data-parallel: a group of one member on a (1, 8) mesh, its
    # batch split along "data", its params replicated on all 8 devices, and the step
    # all-reduces the gradient (with the batch not split, no device would need another's).
    seen = eight["seen"]
    assert seen["mesh"] == {"members": 1, "data": 8}
    assert seen["params_replicated"] and seen["devices"] == 8
    assert "all-reduce" in seen["collectives"]
    assert one["seen"]["devices"] == 1 and one["seen"]["collectives"] == []
    # ... and computed what one device computes.
    assert eight["result"]["status"] == one["result"]["status"] == "finished"
    assert eight["result"]["step"] == one["result"]["step"]
    np.testing.assert_allclose(eight["result"]["loss"], one["result"]["loss"], rtol=RTOL)
    _assert_params_close(
        _params(tmp_path / "params0.npz"), _params(one_dir / "params0.npz"), RTOL, ATOL
    )
    log8, log1 = _log(tmp_path / "run" / "metrics.jsonl"), _log(one_dir / "run" / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in log8] == [(r["kind"], r["step"]) for r in log1]
    for r8, r1 in zip(log8, log1, strict=True):
        for name in ("loss", "grad_norm") if r1["kind"] == "train" else ("loss",):
            np.testing.assert_allclose(r8[name], r1[name], rtol=RTOL, err_msg=f"{r1}")


def test_batch_size_not_divisible_by_device_count_is_refused_before_compute(tmp_path):
    result = _run("bad_batch", tmp_path, devices=8)
    assert result["error"] is not None
    assert "batch_size" in result["error"] and "8" in result["error"] and "12" in result["error"]
    assert not result["created"]  # refused before the run directory or any compute


def test_member_sharding_layout_and_values(tmp_path):
    facts = _run("shardings", tmp_path, devices=8)
    # n a multiple of 8: every device holds its own n/8 members.
    assert facts["8"]["mesh"] == {"members": 8, "data": 1}
    assert facts["8"]["shard_rows"] == [1] and facts["8"]["distinct_blocks"] == 8
    assert facts["16"]["shard_rows"] == [2] and facts["16"]["distinct_blocks"] == 8
    # Otherwise split gcd(n, 8) ways, each block's batches split over the other devices.
    assert facts["12"]["mesh"] == {"members": 4, "data": 2}
    assert facts["12"]["shard_rows"] == [3] and facts["12"]["distinct_blocks"] == 4
    assert facts["6"]["mesh"] == {"members": 2, "data": 4}
    assert facts["6"]["shard_rows"] == [3] and facts["6"]["distinct_blocks"] == 2
    assert facts["3"]["mesh"] == {"members": 1, "data": 8}
    assert facts["3"]["shard_rows"] == [3] and facts["3"]["distinct_blocks"] == 1
    for n in ("8", "16", "12", "6", "3"):
        assert facts[n]["max_err"] < 1e-6, n  # against NumPy on the host
    # The uneven layouts say so, with their numbers; the even ones and a solo run do not.
    assert not facts["8"]["warned"] and not facts["16"]["warned"] and not facts["1"]["warned"]
    assert facts["12"]["warned"][0].startswith(
        "12 members do not split evenly over 8 devices: 4 block(s) of 3 members, each "
        "block's batches split over 2 devices"
    )
    assert "1 block(s) of 3 members" in facts["3"]["warned"][0]
    assert "2 block(s) of 3 members" in facts["6"]["warned"][0]
    assert facts["8"]["out_spec"] == ["members"]
    assert facts["keys_equal"] and facts["keys_typed"]
    assert set(facts["errors"]) == {"0", "-1", "2.0", "True"}
    assert all(msg.startswith("n: expected") for msg in facts["errors"].values())


def _assert_sweeps_agree(a: dict, b: dict, params_a: list, params_b: list) -> None:
    assert a["results"].keys() == b["results"].keys() and len(a["results"]) == 8
    for member, ra in a["results"].items():
        rb = b["results"][member]
        assert ra["status"] == rb["status"] == "finished"
        assert ra["step"] == rb["step"]
        np.testing.assert_allclose(ra["loss"], rb["loss"], rtol=RTOL, err_msg=member)
    assert a["step"] == b["step"]
    _assert_params_close(params_a, params_b, RTOL, ATOL)


def test_sweep_sharded_over_8_devices_equals_one_device(single_device_sweep, tmp_path):
    one_dir, one = single_device_sweep
    eight = _run("sweep", tmp_path, devices=8)
    seen = eight["seen"]
    assert eight["devices"] == 8 and seen["devices"] == 8
    assert seen["params_spec"] == seen["keys_spec"] == ["members"]
    assert seen["params_shards"] == [[1, *seen["params_shape"][1:]]] * 8  # one member each
    assert seen["collectives"] == []
    assert one["seen"]["devices"] == 1
    _assert_sweeps_agree(
        eight, one, _params(tmp_path / "params0.npz"), _params(one_dir / "params0.npz")
    )
    # The per-member logs agree too (process 0 wrote them; same records).
    for member in one["results"]:
        log8 = _log(tmp_path / "sweep" / "members" / member / "metrics.jsonl")
        log1 = _log(one_dir / "sweep" / "members" / member / "metrics.jsonl")
        assert [r["step"] for r in log8] == [r["step"] for r in log1]
        for r8, r1 in zip(log8, log1, strict=True):
            np.testing.assert_allclose(r8["loss"], r1["loss"], rtol=RTOL, err_msg=member)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_two_processes(mode: str, out: Path) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Two ``jax.distributed`` processes on localhost (gloo CPU collectives, 2 devices each)."""
    address = f"localhost:{_free_port()}"
    env = dict(_env(2), JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2")
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, mode, str(out)],
            cwd=ROOT,
            env=dict(env, JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            proc.kill()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    results = [json.loads((out / f"result{i}.json").read_text()) for i in range(2)]
    params = [_params(out / f"params{i}.npz") for i in range(2)]
    # Both processes agree exactly: they fetched the same global arrays.
    for x, y in zip(*params, strict=True):
        np.testing.assert_array_equal(x, y)
    return results, params


def test_two_process_data_parallel_train_agrees(single_device_train, tmp_path):
    one_dir, one = single_device_train
    results, params = _run_two_processes("train", tmp_path)
    for result in results:
        seen = result["seen"]
        assert seen["devices"] == 4 and seen["params_replicated"]
        assert seen["mesh"] == {"members": 1, "data": 4}
        assert "all-reduce" in seen["collectives"]
    assert results[0]["result"] == results[1]["result"]
    np.testing.assert_allclose(results[0]["result"]["loss"], one["result"]["loss"], rtol=RTOL)
    _assert_params_close(params[0], _params(one_dir / "params0.npz"), RTOL, ATOL)
    # Only process 0 wrote the log: one record per logged step, not two.
    log = _log(tmp_path / "run" / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in log] == [
        (r["kind"], r["step"]) for r in _log(one_dir / "run" / "metrics.jsonl")
    ]


def test_two_process_sweep_agrees(single_device_sweep, tmp_path):
    one_dir, one = single_device_sweep
    results, params = _run_two_processes("sweep", tmp_path)
    for result in results:
        assert result["devices"] == 4
        seen = result["seen"]
        assert seen["params_spec"] == ["members"] and seen["devices"] == 4
        # 8 members over 4 devices: each process holds 2 blocks of 2 members.
        assert seen["params_shards"] == [[2, *seen["params_shape"][1:]]] * 2
    assert results[0]["results"] == results[1]["results"]
    # The same as the sweep on one device.
    _assert_sweeps_agree(results[0], one, params[0], _params(one_dir / "params0.npz"))
    # Only process 0 wrote the logs: one record per logged step, not two.
    for member in one["results"]:
        steps = [r["step"] for r in _log(tmp_path / "sweep" / "members" / member / "metrics.jsonl")]
        assert steps == [
            r["step"] for r in _log(one_dir / "sweep" / "members" / member / "metrics.jsonl")
        ]


if __name__ == "__main__":
    _main(sys.argv[1:])
