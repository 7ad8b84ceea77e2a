"""Character-level text: characters as ids, and sampling text from a character model.

* :func:`encode_chars`: text to ids by table lookup;
* :func:`generate`: prime a many-to-many character model with a prompt, then
  sample with :func:`jaxrnn.models.sample` through a one-hot ``decode_step``.

References:
  Graves (2013). Generating Sequences With Recurrent Neural Networks. arXiv:1308.0850.
  Karpathy (2015). The Unreasonable Effectiveness of Recurrent Neural Networks.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import Cell
from jaxrnn.models import sample
from jaxrnn.models.heads import linear
from jaxrnn.models.sequence import ModelParams
from jaxrnn.models.vocab import EOS, UNK, Vocab, decode
from jaxrnn.rollout.scan import scan


def encode_chars(vocab: Vocab, text: str) -> np.ndarray:
    """``jaxrnn.models.vocab.encode`` of ASCII text as an int32 array, by table lookup
    (the 5 MB corpus in milliseconds rather than seconds)."""
    table = np.full(256, UNK, np.int32)
    for token, i in vocab.index.items():
        if len(token) == 1 and ord(token) < 256:
            table[ord(token)] = i
    return table[np.frombuffer(text.encode("latin-1"), np.uint8)]


def char_decode_step(cell: Cell, vocab_size: int) -> Callable:
    """The step of a :func:`jaxrnn.models.many_to_many` model over one-hot characters::

        decode_step(params, carry, token [B]) -> (carry, logits [B, V], None)

    the same computation as one step of ``model.apply(params, one_hot(tokens))``.
    """

    def decode_step(params: ModelParams, carry, token):
        x = jax.nn.one_hot(token, vocab_size, dtype=jnp.float32)
        carry, y = cell.apply(params.cell, carry, x)
        return carry, linear(params.readout, y), None

    return decode_step


def generate(
    cell: Cell,
    params: ModelParams,
    vocab: Vocab,
    prompt: str,
    length: int,
    key: jax.Array,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> str:
    """Continue ``prompt`` by ``length`` characters sampled from a char model.

    The cell reads ``prompt[:-1]`` (one scan); sampling then starts from the
    prompt's last character: ``y_t ~ softmax(top_k(logits_t) / temperature)``
    (:func:`jaxrnn.models.sample`). ``top_k=1`` is greedy decoding.

    Args:
      cell: the model's cell; ``params``: its :class:`~jaxrnn.models.ModelParams`.
      vocab: the character vocabulary the model was trained with.
      prompt: at least one character, each in ``vocab``.
      length: characters to generate.
      key: PRNG key.
      temperature, top_k: see :func:`jaxrnn.models.sample`.

    Returns:
      ``prompt`` followed by the generated characters.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt: expected at least one character, got {prompt!r}")
    unknown = sorted({c for c in prompt if c not in vocab.index})
    if unknown:
        raise ValueError(f"prompt: characters {unknown} are not in the model's vocabulary")
    ids = jnp.asarray(encode_chars(vocab, prompt))[None]
    carry = cell.initial_carry(params.cell, (1,))
    if ids.shape[1] > 1:
        xs = jax.nn.one_hot(ids[:, :-1], vocab.size, dtype=jnp.float32)
        carry, _ = scan(cell, params.cell, xs, carry)
    out = sample(
        char_decode_step(cell, vocab.size), params, carry, key, bos_id=int(ids[0, -1]),
        eos_id=EOS, max_length=length, temperature=temperature, top_k=top_k,
    )  # fmt: skip
    return prompt + decode(vocab, out.tokens[0])
