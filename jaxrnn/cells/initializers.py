"""Initialisers for recurrent weights and gate biases.

An initialiser has ``jax.nn.initializers``' signature ``init(key, shape, dtype)``.
The standard ones are re-exported from JAX; this module adds what recurrent
networks need on top:

* :func:`identity` — ``W_hh = scale * I`` for IRNNs (Le et al. 2015);
* :func:`gaussian` — ``W_hh ~ N(0, 1/fan_in)``, the random matrix that orthogonal
  initialisation is compared against (Saxe et al. 2014; Le et al. 2015);
* :func:`fused` — apply one initialiser per gate block of a fused
  ``[in, G*H]`` matrix or ``[G*H]`` bias (e.g. orthogonal per gate);
* :func:`lstm_bias` / :func:`chrono_lstm_bias` / :func:`chrono_gru_bias` —
  forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015) and chrono
  initialisation (Tallec & Ollivier 2018) on fused bias vectors.

References:
  Le, Jaitly, Hinton (2015). A Simple Way to Initialize Recurrent Networks of
  Rectified Linear Units. arXiv:1504.00941.
  Saxe, McClelland, Ganguli (2014). Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks. ICLR.
  Tallec, Ollivier (2018). Can recurrent neural networks warp time? ICLR.
  Jozefowicz, Zaremba, Sutskever (2015). An Empirical Exploration of Recurrent
  Network Architectures. ICML.

Their BibTeX is below (``SAXE_2014``, ...), for the runs that use them
(:func:`recurrent_reference`, :data:`CHRONO`; the forget-gate bias: the LSTM's).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.nn import initializers as jax_init
from jax.nn.initializers import (
    constant,
    glorot_normal,
    glorot_uniform,
    he_normal,
    lecun_normal,
    lecun_uniform,
    normal,
    ones,
    uniform,
    zeros,
)

from jaxrnn.cells.base import carry_dtype
from jaxrnn.cells.references import Reference

Initializer = Callable[..., jax.Array]

SAXE_2014 = r"""@inproceedings{saxe2014exact,
  author = {Saxe, Andrew M. and McClelland, James L. and Ganguli, Surya},
  title = {Exact Solutions to the Nonlinear Dynamics of Learning in Deep Linear Neural Networks},
  booktitle = {2nd International Conference on Learning Representations ({ICLR})},
  year = {2014},
  url = {https://arxiv.org/abs/1312.6120},
}"""
LE_2015 = r"""@misc{le2015simple,
  author = {Le, Quoc V. and Jaitly, Navdeep and Hinton, Geoffrey E.},
  title = {A Simple Way to Initialize Recurrent Networks of Rectified Linear Units},
  howpublished = {arXiv:1504.00941},
  year = {2015},
  url = {https://arxiv.org/abs/1504.00941},
}"""
TALLEC_2018 = r"""@inproceedings{tallec2018can,
  author = {Tallec, Corentin and Ollivier, Yann},
  title = {Can Recurrent Neural Networks Warp Time?},
  booktitle = {6th International Conference on Learning Representations ({ICLR})},
  year = {2018},
  url = {https://arxiv.org/abs/1804.11188},
}"""
JOZEFOWICZ_2015 = r"""@inproceedings{jozefowicz2015empirical,
  author = {Jozefowicz, Rafal and Zaremba, Wojciech and Sutskever, Ilya},
  title = {An Empirical Exploration of Recurrent Network Architectures},
  booktitle = {Proceedings of the 32nd International Conference on Machine Learning},
  series = {Proceedings of Machine Learning Research},
  volume = {37},
  pages = {2342--2350},
  year = {2015},
}"""

# A gate bias drawn by chrono_lstm_bias or chrono_gru_bias.
CHRONO = Reference("chrono initialisation of the gate biases", TALLEC_2018)

__all__ = [
    "CHRONO",
    "JOZEFOWICZ_2015",
    "LE_2015",
    "SAXE_2014",
    "TALLEC_2018",
    "Initializer",
    "chrono_gru_bias",
    "chrono_lstm_bias",
    "constant",
    "fused",
    "gaussian",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "identity",
    "lecun_normal",
    "lecun_uniform",
    "lstm_bias",
    "normal",
    "ones",
    "orthogonal",
    "recurrent",
    "recurrent_reference",
    "uniform",
    "zeros",
]


def orthogonal(scale: float = 1.0) -> Initializer:
    """``jax.nn.initializers.orthogonal`` (Saxe et al. 2014) for any float dtype.

    The QR decomposition runs in at least float32 (LAPACK has no bfloat16 or float16
    QR), and the result is cast to ``dtype``.
    """
    inner = jax_init.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        return inner(key, shape, carry_dtype(dtype)).astype(dtype)

    return init


def identity(scale: float = 1.0) -> Initializer:
    """``scale * I`` for a square ``[H, H]`` recurrent matrix (IRNN, Le et al. 2015)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"identity: expected a square 2-D shape, got {tuple(shape)}")
        return scale * jnp.eye(shape[0], dtype=dtype)

    return init


def gaussian() -> Initializer:
    """``W ~ N(0, 1/fan_in)`` entrywise, untruncated (``fan_in = shape[0]``).

    For a square ``[H, H]`` recurrent matrix the spectral radius tends to 1 (the
    circular law) while the singular values spread over ``[0, 2]`` (the quarter-circle
    law): the same scale as an orthogonal matrix, without its isometry, which is what
    an orthogonal-against-Gaussian comparison isolates (Saxe et al. 2014, Sec. 3).
    """

    def init(key, shape, dtype=jnp.float32):
        std = 1.0 / jnp.sqrt(jnp.asarray(shape[0], carry_dtype(dtype)))
        return (std * jax.random.normal(key, shape, carry_dtype(dtype))).astype(dtype)

    return init


RECURRENT = ("orthogonal", "identity", "gaussian")


def recurrent(name: str = "orthogonal", scale: float = 1.0, gates: int = 1) -> Initializer:
    """The recurrent-weight initialiser a config names, per gate block of ``gates``.

    ``"orthogonal"``: an orthogonal ``[H, H]`` block per gate (Saxe et al. 2014);
    ``"identity"``: ``scale * I`` per gate (IRNN, Le et al. 2015); ``"gaussian"``:
    :func:`gaussian` per gate.
    """
    if name not in RECURRENT:
        raise ValueError(f"name: expected one of {RECURRENT}, got {name!r}")
    one = {"identity": identity(scale), "orthogonal": orthogonal(), "gaussian": gaussian()}[name]
    return one if gates == 1 else fused(*[one] * gates)


def recurrent_reference(name: str = "orthogonal") -> Reference:
    """What a run whose recurrent weights :func:`recurrent` initialises by ``name`` cites:
    ``"orthogonal"``, Saxe et al. (2014); ``"identity"``, Le et al. (2015);
    ``"gaussian"``, Saxe et al. (2014), whose comparison it is."""
    if name == "identity":
        return Reference("identity-initialised recurrent weights", LE_2015)
    if name == "orthogonal":
        return Reference("orthogonal initialisation of the recurrent weights", SAXE_2014)
    if name == "gaussian":
        return Reference("Gaussian recurrent weights, N(0, 1/H)", SAXE_2014)
    raise ValueError(f"name: expected one of {RECURRENT}, got {name!r}")


def fused(*gate_inits: Initializer) -> Initializer:
    """Initialise a fused ``[..., G*H]`` array block by block, one initialiser per gate.

    ``fused(orthogonal(), orthogonal(), ...)`` gives each ``[H, H]`` gate block of a
    ``[H, G*H]`` recurrent matrix its own orthogonal matrix, which a single
    orthogonal ``[H, G*H]`` matrix does not.
    """
    num_gates = len(gate_inits)

    def init(key, shape, dtype=jnp.float32):
        if shape[-1] % num_gates:
            raise ValueError(
                f"fused: last axis {shape[-1]} is not divisible by {num_gates} gate initialisers"
            )
        block = (*shape[:-1], shape[-1] // num_gates)
        keys = jax.random.split(key, num_gates)
        return jnp.concatenate(
            [g(k, block, dtype) for g, k in zip(gate_inits, keys, strict=True)], axis=-1
        )

    return init


def lstm_bias(forget_bias: float = 1.0) -> Initializer:
    """Zero bias except ``forget_bias`` on the forget gate; gate order (i, f, g, o).

    A forget bias of 1 keeps the cell state flowing early in training
    (Gers et al. 2000; Jozefowicz et al. 2015).
    """
    return fused(zeros, constant(forget_bias), zeros, zeros)


def _check_t_max(t_max):
    if t_max <= 2:
        raise ValueError(f"t_max: expected a value > 2, got {t_max}")


def _gate_size(name, shape, num_gates):
    """``H`` of a fused ``[G*H]`` bias; raises unless ``shape`` is one such vector."""
    if len(shape) != 1 or shape[0] % num_gates:
        raise ValueError(
            f"{name}: expected a 1-D shape divisible by {num_gates} gates, got {tuple(shape)}"
        )
    return shape[0] // num_gates


def _chrono(key, hidden_size, t_max, dtype):
    return jnp.log(jax.random.uniform(key, (hidden_size,), dtype, 1.0, t_max - 1.0))


def chrono_lstm_bias(t_max: float) -> Initializer:
    """Chrono initialisation for a fused LSTM bias (gate order i, f, g, o).

    ``b_f ~ log(U[1, t_max - 1])`` and ``b_i = -b_f``, so each unit's
    characteristic forgetting time is spread over ``[1, t_max]`` (Tallec &
    Ollivier 2018, Sec. 3).
    """
    _check_t_max(t_max)

    def init(key, shape, dtype=jnp.float32):
        hidden = _gate_size("chrono_lstm_bias", shape, 4)
        b_f = _chrono(key, hidden, t_max, dtype)
        z = jnp.zeros((hidden,), dtype)
        return jnp.concatenate([-b_f, b_f, z, z])

    return init


def chrono_gru_bias(t_max: float) -> Initializer:
    """Chrono initialisation for a fused GRU bias (gate order r, z, n).

    With ``h' = (1 - z) * n + z * h`` the update gate ``z`` plays the role of
    the LSTM forget gate, so ``b_z ~ log(U[1, t_max - 1])`` (Tallec & Ollivier 2018).
    """
    _check_t_max(t_max)

    def init(key, shape, dtype=jnp.float32):
        hidden = _gate_size("chrono_gru_bias", shape, 3)
        z = jnp.zeros((hidden,), dtype)
        return jnp.concatenate([z, _chrono(key, hidden, t_max, dtype), z])

    return init
