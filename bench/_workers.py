"""One benchmark worker process per peer: ``python bench/_workers.py PEER``.

``bench/peers.py`` starts one of these per implementation, so that no two thread
pools share a process (PyTorch and XLA fight over the cores when they do, see
``BENCH.md``). The worker imports only its own framework, then answers one JSON
command per line on stdin with one JSON reply per line on its original stdout;
anything else the frameworks print goes to stderr.

Every peer trains the same model on the same batch: a one-layer RNN over
``xs [B, T, I]``, a linear readout ``[H, 1]`` of every hidden state and the mean
squared error against ``ys [B, T, 1]``; one training step is forward + BPTT +
Adam (lr 1e-3) after clipping the gradients to global norm 1 (Pascanu et al.
2013). Each framework initialises its own weights its own way.

Commands (one JSON object per line):
  ``{"cmd": "setup", "cell": c, "B": .., "T": .., "I": .., "H": .., "loss_steps": n}``
      builds the step, runs it ``n`` times from fresh weights on the fixed batch;
      replies with the first-call time (trace + compile + one step for JAX) and
      the ``n`` losses.
  ``{"cmd": "time", "cell": c, "B": .., ..., "calls": n}``
      one untimed warm-up call, then ``n`` timed calls; replies with the seconds.
  ``{"cmd": "peak"}`` (any JAX worker): float32 1024x1024 matmul GFLOP/s.
  ``{"cmd": "compile", "cell": c, "B": .., "I": .., "H": .., "Ts": [..]}`` (jaxrnn):
      lower + compile seconds and ``memory_analysis()`` bytes of the step per T.

The jaxrnn workers take their ``unroll`` (passed to ``jaxrnn.scan``, default 1) from the
environment variable ``JAXRNN_BENCH_UNROLL``, since ``bench/peers.py`` starts workers by
peer name alone: ``JAXRNN_BENCH_UNROLL=8 python bench/peers.py``. Their hello reply
reports it, and every JAX worker's its ``XLA_FLAGS``. PyTorch runs on CUDA (cuDNN)
where ``torch.cuda.is_available()``.
"""

import json
import os
import sys
import time

import numpy as np

LR = 1e-3
CLIP_NORM = 1.0
UNROLL_ENV = "JAXRNN_BENCH_UNROLL"


def unroll():
    """The jaxrnn workers' ``unroll`` (``JAXRNN_BENCH_UNROLL``, default 1)."""
    text = os.environ.get(UNROLL_ENV, "1")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{UNROLL_ENV}: expected a positive integer, got {text!r}")
    return int(text)


def make_batch(B, T, I):
    """The same float32 batch in every worker: ``xs [B, T, I]``, ``ys [B, T, 1]``."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, T, I), dtype=np.float32)
    ys = rng.standard_normal((B, T, 1), dtype=np.float32)
    return xs, ys


# --------------------------------------------------------------------------- JAX


class JaxTrainer:
    """A jitted training step over any ``predict(params, xs) -> [B, T, 1]``.

    Params and optimizer state are donated, so XLA may update them in place; a
    step is timed up to ``block_until_ready`` on the new params, state and loss.
    """

    def __init__(self, params, predict, xs, ys):
        import jax
        import jax.numpy as jnp
        import optax

        self.jax = jax
        self.opt = optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.adam(LR))

        def loss_fn(p, xs, ys):
            return jnp.mean((predict(p, xs) - ys) ** 2)

        def step(p, opt_state, xs, ys):
            loss, grads = jax.value_and_grad(loss_fn)(p, xs, ys)
            updates, opt_state = self.opt.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, loss

        self.step_fn = step
        self.jitted = jax.jit(step, donate_argnums=(0, 1))
        self.state = (params, self.opt.init(params))
        self.xs, self.ys = jnp.asarray(xs), jnp.asarray(ys)
        self.loss = None

    def step(self):
        p, s, loss = self.jitted(*self.state, self.xs, self.ys)
        self.jax.block_until_ready((p, s, loss))
        self.state, self.loss = (p, s), loss

    def last_loss(self):
        return float(self.loss)


def _readout(key, H):
    import jax
    import jax.numpy as jnp

    return jax.random.normal(key, (H, 1), jnp.float32) / np.sqrt(H), jnp.zeros((1,), jnp.float32)


def build_jaxrnn(cell, B, T, I, H, **scan_options):
    """The jaxrnn trainer; ``scan_options`` (``bptt=``, ``remat=``) go to ``jaxrnn.scan``."""
    import jax

    import jaxrnn

    rnn = {"lstm": jaxrnn.lstm, "gru": jaxrnn.gru, "elman": jaxrnn.elman}[cell](H)
    k_cell, k_out = jax.random.split(jax.random.key(0))
    params = (rnn.init(k_cell, I), *_readout(k_out, H))

    def predict(p, xs):
        cell_params, W_out, b_out = p
        _, hs = jaxrnn.scan(rnn, cell_params, xs, **scan_options)
        return hs @ W_out + b_out

    return JaxTrainer(params, predict, *make_batch(B, T, I))


def build_flax(cell, B, T, I, H):
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    make_cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "elman": nn.SimpleCell}[cell]

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            return nn.Dense(1)(nn.RNN(make_cell(features=H))(xs))

    model = Model()
    xs, ys = make_batch(B, T, I)
    params = model.init(jax.random.key(0), jnp.asarray(xs))
    return JaxTrainer(params, model.apply, xs, ys)


def build_haiku(cell, B, T, I, H):
    import haiku as hk
    import jax
    import jax.numpy as jnp

    make_core = {"lstm": hk.LSTM, "gru": hk.GRU, "elman": hk.VanillaRNN}[cell]

    def forward(xs):
        core = make_core(H)
        hs, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[0]), time_major=False)
        return hk.Linear(1)(hs)

    model = hk.without_apply_rng(hk.transform(forward))
    xs, ys = make_batch(B, T, I)
    params = model.init(jax.random.key(0), jnp.asarray(xs))
    return JaxTrainer(params, model.apply, xs, ys)


def build_equinox(cell, B, T, I, H):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class ElmanCell(eqx.Module):
        """Equinox ships no Elman cell: ``h' = tanh(x W_ih + b_ih + h W_hh + b_hh)``."""

        ih: eqx.nn.Linear
        hh: eqx.nn.Linear

        def __init__(self, input_size, hidden_size, *, key):
            k1, k2 = jax.random.split(key)
            self.ih = eqx.nn.Linear(input_size, hidden_size, key=k1)
            self.hh = eqx.nn.Linear(hidden_size, hidden_size, key=k2)

        def __call__(self, x, h):
            return jnp.tanh(self.ih(x) + self.hh(h))

    make_cell = {"lstm": eqx.nn.LSTMCell, "gru": eqx.nn.GRUCell, "elman": ElmanCell}[cell]
    k_cell, k_out = jax.random.split(jax.random.key(0))
    model = (make_cell(I, H, key=k_cell), eqx.nn.Linear(H, 1, key=k_out))
    params, static = eqx.partition(model, eqx.is_array)

    def predict(p, xs):
        rnn, out = eqx.combine(p, static)
        h0 = jnp.zeros((xs.shape[0], H), jnp.float32)
        carry0 = (h0, h0) if cell == "lstm" else h0
        step = jax.vmap(rnn)  # the cells are unbatched

        def body(carry, x):
            carry = step(x, carry)
            return carry, carry[0] if cell == "lstm" else carry

        _, hs = jax.lax.scan(body, carry0, jnp.swapaxes(xs, 0, 1))
        return jax.vmap(jax.vmap(out))(jnp.swapaxes(hs, 0, 1))

    return JaxTrainer(params, predict, *make_batch(B, T, I))


# ----------------------------------------------------------------------- PyTorch


class TorchTrainer:
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` + ``nn.Linear``, Adam, ``clip_grad_norm_``."""

    def __init__(self, cell, B, T, I, H):
        import torch

        torch.manual_seed(0)
        rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[cell]
        self.torch = torch
        # On a GPU, nn.LSTM/GRU/RNN run cuDNN's fused kernels.
        self.cuda = torch.cuda.is_available()
        device = "cuda" if self.cuda else "cpu"
        self.rnn = rnn_cls(I, H, batch_first=True).to(device)
        self.out = torch.nn.Linear(H, 1).to(device)
        self.params = [*self.rnn.parameters(), *self.out.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=LR)
        xs, ys = make_batch(B, T, I)
        self.xs, self.ys = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        self.loss = None

    def step(self):
        self.opt.zero_grad()
        hs, _ = self.rnn(self.xs)
        loss = torch_mse(self.out(hs), self.ys)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
        self.opt.step()
        self.loss = loss.detach()
        if self.cuda:  # CUDA runs asynchronously: a timed call ends when the GPU is done
            self.torch.cuda.synchronize()

    def last_loss(self):
        return float(self.loss)


def torch_mse(a, b):
    return ((a - b) ** 2).mean()


def build_torch(cell, B, T, I, H):
    return TorchTrainer(cell, B, T, I, H)


# ------------------------------------------------------------------------ server

BUILDERS = {
    "jaxrnn": lambda *config: build_jaxrnn(*config, unroll=unroll()),
    "jaxrnn-autodiff": lambda *config: build_jaxrnn(*config, bptt="autodiff", unroll=unroll()),
    "jaxrnn-reuse-memory": lambda *config: build_jaxrnn(*config, unroll=unroll()),
    "jaxrnn-wide-vectors": lambda *config: build_jaxrnn(*config, unroll=unroll()),
    "pytorch": build_torch,
    "flax": build_flax,
    "haiku": build_haiku,
    "equinox": build_equinox,
}
IMPORTS = {
    "jaxrnn": ["jax", "optax", "jaxrnn"],
    "jaxrnn-autodiff": ["jax", "optax", "jaxrnn"],
    "jaxrnn-reuse-memory": ["jax", "optax", "jaxrnn"],
    "jaxrnn-wide-vectors": ["jax", "optax", "jaxrnn"],
    "pytorch": ["torch"],
    "flax": ["jax", "optax", "flax"],
    "haiku": ["jax", "optax", "haiku"],
    "equinox": ["jax", "optax", "equinox"],
}


def matmul_peak(n=1024, reps=20):
    """Best of numpy's and XLA's median GFLOP/s for an ``n x n`` float32 matmul."""
    import jax
    import jax.numpy as jnp

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    ja = jnp.asarray(a)
    mm = jax.jit(jnp.matmul)
    mm(ja, ja).block_until_ready()

    def median_s(f):
        f()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    flops = 2 * n**3
    return {
        "numpy_gflops": flops / median_s(lambda: a @ a) / 1e9,
        "jax_gflops": flops / median_s(lambda: mm(ja, ja).block_until_ready()) / 1e9,
    }


def compile_step(trainer):
    """A fresh compile of ``trainer``'s step: ``(stats, executable)``, the stats being
    lower and compile seconds and the executable's ``memory_analysis()`` bytes."""
    import jax

    jax.clear_caches()
    args = (*trainer.state, trainer.xs, trainer.ys)
    t0 = time.perf_counter()
    lowered = trainer.jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    mem = compiled.memory_analysis()
    row = {"lower_s": t1 - t0, "compile_s": t2 - t1}
    for name in ("temp", "argument", "output", "alias"):
        row[f"{name}_bytes"] = int(getattr(mem, f"{name}_size_in_bytes", -1)) if mem else None
    return row, compiled


def compile_stats(cell, B, I, H, Ts):
    """Lower/compile seconds and compiled memory of the jaxrnn step for each T."""
    return [
        {"T": T, **compile_step(build_jaxrnn(cell, B, T, I, H, unroll=unroll()))[0]} for T in Ts
    ]


def serve(peer):
    if peer == "pytorch":
        import torch

        # BENCH.md: torch's thread count equals the core count.
        torch.set_num_threads(os.cpu_count())
    built = {}

    def get(msg):
        k = (msg["cell"], msg["B"], msg["T"], msg["I"], msg["H"])
        return built[k], k

    def handle(msg):
        cmd = msg["cmd"]
        if cmd == "setup":
            k = (msg["cell"], msg["B"], msg["T"], msg["I"], msg["H"])
            t0 = time.perf_counter()
            tr = BUILDERS[peer](*k)
            t1 = time.perf_counter()
            tr.step()
            t2 = time.perf_counter()
            losses = [tr.last_loss()]
            steps = []
            for _ in range(msg["loss_steps"] - 1):
                s0 = time.perf_counter()
                tr.step()
                steps.append(time.perf_counter() - s0)
                losses.append(tr.last_loss())
            built[k] = tr
            return {
                "build_s": t1 - t0,
                "first_call_s": t2 - t1,
                "losses": losses,
                "loss_step_s": steps,
            }
        if cmd == "time":
            tr, _ = get(msg)
            tr.step()  # untimed warm-up: this VM is slow right after an idle moment
            times = []
            for _ in range(msg["calls"]):
                t0 = time.perf_counter()
                tr.step()
                times.append(time.perf_counter() - t0)
            return {"times_s": times, "loss": tr.last_loss()}
        if cmd == "peak":
            return matmul_peak()
        if cmd == "compile":
            return {"rows": compile_stats(msg["cell"], msg["B"], msg["I"], msg["H"], msg["Ts"])}
        raise ValueError(f"cmd: expected setup, time, peak or compile, got {cmd!r}")

    return handle


def main():
    peer = sys.argv[1]
    # The protocol owns the original stdout; whatever the frameworks print (even
    # from C) goes to stderr.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        import importlib

        if peer == "jaxrnn-reuse-memory":
            # What `jaxrnn train --reuse-host-memory` does before JAX starts its threads.
            from jaxrnn.training.host_memory import reuse_host_memory

            reuse_host_memory()
        if peer == "jaxrnn-wide-vectors":
            # 512-bit vectors in XLA:CPU's generated kernels where the CPU has them
            # (bench/README.md); XLA reads the flag when JAX starts its backend.
            os.environ["XLA_FLAGS"] = (
                os.environ.get("XLA_FLAGS", "") + " --xla_cpu_prefer_vector_width=512"
            )
        versions = {}
        for mod in IMPORTS[peer]:
            m = importlib.import_module(mod)
            versions[mod] = getattr(m, "__version__", None)
        handle = serve(peer)
    except Exception as e:  # an uninstalled peer is skipped, not failed
        reply({"ok": False, "unavailable": f"{type(e).__name__}: {e}"})
        return
    info = {"versions": versions, "cpu_count": os.cpu_count()}
    if "jax" in versions:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    if peer.startswith("jaxrnn"):
        info["unroll"] = unroll()
    if peer == "pytorch":
        import torch

        info["torch_device"] = "cuda" if torch.cuda.is_available() else "cpu"
    reply({"ok": True, **info})
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            reply({"ok": True, **handle(msg)})
        except Exception as e:
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
