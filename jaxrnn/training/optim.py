"""Optimizers from config: optax, always after global-norm clipping.

The chain is::

    inject_hyperparams(clipping)(clip_norm, clip_value)  # skipped if both are None:
        clip_by_global_norm(clip_norm)  # Pascanu, Mikolov, Bengio (2013); skipped if None
        clip(clip_value)                # optional element-wise clipping
    inject_hyperparams(opt)(learning_rate=peak, ...)   # hyperparameters live in the state
    scale_by_schedule(multiplier)       # warm-up / decay shape, 1.0 for "constant"

With ``recurrent_lr`` set, the optimizer step is split by ``optax.multi_transform``::

    "recurrent": inject_hyperparams(opt)(learning_rate=recurrent_lr, weight_decay=0, ...)
    "default":   inject_hyperparams(opt)(learning_rate=peak, ...)

where ``"recurrent"`` are the params whose NamedTuple field a linear recurrent cell declares
its recurrence's own (``Linear.recurrent``: the LRU's ``nu_log``, ``theta_log``,
``gamma_log``; the RG-LRU's ``Lambda``), trained as the papers do with their own learning
rate and no weight decay (Orvieto et al. 2023, Sec. 3.3; De et al. 2024). The clipping
before and the schedule after stay global.

The peak learning rate, the clipping bounds and the other numeric hyperparameters
are arrays in the optimizer state, so changing them — by hand, or per member of a
sweep (``jaxrnn.sweep``) — never forces a recompile; the schedule contributes only
its shape. An array bound computes exactly what a Python float bound does (both
enter the float32 arithmetic as float32).

:func:`references` lists the methods a config's optimizer uses, each with its paper
(BibTeX below: ``KINGMA_2015``, ``PASCANU_2013``, ...), for ``jaxrnn cite``.
"""

import functools

import jax
import optax

from jaxrnn.cells import registry
from jaxrnn.cells.references import Reference
from jaxrnn.training.config import OptimConfig

# The multi_transform groups with recurrent_lr set; "default" holds the peak learning rate.
RECURRENT, DEFAULT = "recurrent", "default"

# The papers of the methods below. The ICML 2013 entries (PMLR 28) leave out the
# number of the volume, which plain.bst refuses beside a volume in @inproceedings.
ROBBINS_1951 = r"""@article{robbins1951stochastic,
  author = {Robbins, Herbert and Monro, Sutton},
  title = {A Stochastic Approximation Method},
  journal = {The Annals of Mathematical Statistics},
  volume = {22},
  number = {3},
  pages = {400--407},
  year = {1951},
  doi = {10.1214/aoms/1177729586},
}"""
POLYAK_1964 = r"""@article{polyak1964some,
  author = {Polyak, Boris T.},
  title = {Some Methods of Speeding up the Convergence of Iteration Methods},
  journal = {USSR Computational Mathematics and Mathematical Physics},
  volume = {4},
  number = {5},
  pages = {1--17},
  year = {1964},
  doi = {10.1016/0041-5553(64)90137-5},
}"""
SUTSKEVER_2013 = r"""@inproceedings{sutskever2013importance,
  author = {Sutskever, Ilya and Martens, James and Dahl, George and Hinton, Geoffrey},
  title = {On the Importance of Initialization and Momentum in Deep Learning},
  booktitle = {Proceedings of the 30th International Conference on Machine Learning},
  series = {Proceedings of Machine Learning Research},
  volume = {28},
  pages = {1139--1147},
  year = {2013},
}"""
KINGMA_2015 = r"""@inproceedings{kingma2015adam,
  author = {Kingma, Diederik P. and Ba, Jimmy},
  title = {Adam: A Method for Stochastic Optimization},
  booktitle = {3rd International Conference on Learning Representations ({ICLR})},
  year = {2015},
  url = {https://arxiv.org/abs/1412.6980},
}"""
LOSHCHILOV_2019 = r"""@inproceedings{loshchilov2019decoupled,
  author = {Loshchilov, Ilya and Hutter, Frank},
  title = {Decoupled Weight Decay Regularization},
  booktitle = {7th International Conference on Learning Representations ({ICLR})},
  year = {2019},
  url = {https://arxiv.org/abs/1711.05101},
}"""
TIELEMAN_2012 = r"""@misc{tieleman2012rmsprop,
  author = {Tieleman, Tijmen and Hinton, Geoffrey},
  title = {Lecture 6.5: {RMSProp}: Divide the Gradient by a Running Average of its Recent
    Magnitude},
  howpublished = {{COURSERA}: Neural Networks for Machine Learning},
  year = {2012},
}"""
DUCHI_2011 = r"""@article{duchi2011adaptive,
  author = {Duchi, John and Hazan, Elad and Singer, Yoram},
  title = {Adaptive Subgradient Methods for Online Learning and Stochastic Optimization},
  journal = {Journal of Machine Learning Research},
  volume = {12},
  pages = {2121--2159},
  year = {2011},
}"""
LOSHCHILOV_2017 = r"""@inproceedings{loshchilov2017sgdr,
  author = {Loshchilov, Ilya and Hutter, Frank},
  title = {{SGDR}: Stochastic Gradient Descent with Warm Restarts},
  booktitle = {5th International Conference on Learning Representations ({ICLR})},
  year = {2017},
  url = {https://arxiv.org/abs/1608.03983},
}"""
PASCANU_2013 = r"""@inproceedings{pascanu2013difficulty,
  author = {Pascanu, Razvan and Mikolov, Tomas and Bengio, Yoshua},
  title = {On the Difficulty of Training Recurrent Neural Networks},
  booktitle = {Proceedings of the 30th International Conference on Machine Learning},
  series = {Proceedings of Machine Learning Research},
  volume = {28},
  pages = {1310--1318},
  year = {2013},
}"""
MIKOLOV_2012 = r"""@phdthesis{mikolov2012statistical,
  author = {Mikolov, Tom{\'a}{\v{s}}},
  title = {Statistical Language Models Based on Neural Networks},
  school = {Brno University of Technology},
  year = {2012},
}"""


def schedule(config: OptimConfig, total_steps: int) -> optax.Schedule:
    """The learning-rate multiplier ``m(s)`` at optimizer step ``s`` (peak 1.0).

    With ``W = warmup_steps``, ``D = decay_steps or total_steps``, ``f =
    end_value_fraction``, ``r = decay_rate``:

    * ``"constant"``: ``m(s) = 1``;
    * ``"warmup_cosine"``: ``m(s) = s / W`` for ``s < W``, then
      ``f + (1 - f) (1 + cos(π min(s - W, D - W) / (D - W))) / 2`` (``D`` counts
      the warm-up; Loshchilov & Hutter 2017);
    * ``"exponential"``: ``m(s) = s / W`` for ``s < W``, then ``r ** ((s - W) / D)``
      (continuous, not a staircase: a factor ``r`` every ``D`` steps).
    """
    decay_steps = config.decay_steps or total_steps
    if config.schedule == "constant":
        return optax.constant_schedule(1.0)
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=config.warmup_steps,
            decay_steps=max(decay_steps, config.warmup_steps + 1),
            end_value=config.end_value_fraction,
        )
    # "exponential": linear warm-up (if any), then decay_rate every decay_steps.
    decay = optax.exponential_decay(1.0, transition_steps=decay_steps, decay_rate=config.decay_rate)
    if not config.warmup_steps:
        return decay
    warmup = optax.linear_schedule(0.0, 1.0, config.warmup_steps)
    return optax.join_schedules([warmup, decay], [config.warmup_steps])


def references(config: OptimConfig) -> list[Reference]:
    """The methods of the optimizer :func:`make_optimizer` builds from ``config``, each
    with its paper.

    Global-norm clipping (Pascanu et al. 2013) where ``clip_norm`` is set, element-wise
    clipping (Mikolov 2012, as Pascanu et al. name it) where ``clip_value`` is; the
    optimizer: SGD (Robbins & Monro 1951) with momentum (Polyak 1964) or Nesterov's
    (Sutskever et al. 2013), Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019,
    and Adam), RMSProp (Tieleman & Hinton 2012, with Polyak's momentum where set) or
    Adagrad (Duchi et al. 2011); the cosine schedule (Loshchilov & Hutter 2017). The
    constant and exponential schedules, the warm-up and ``recurrent_lr`` (the LRU's and
    RG-LRU's own training recipe, cited with the cell) cite nothing.
    """
    found = []
    if config.clip_norm is not None:
        found.append(Reference("gradient clipping by global norm", PASCANU_2013))
    if config.clip_value is not None:
        found.append(Reference("element-wise gradient clipping", MIKOLOV_2012))
    name = config.name
    if name == "sgd":
        found.append(Reference("stochastic gradient descent", ROBBINS_1951))
    elif name in ("adam", "adamw"):
        found.append(Reference("Adam", KINGMA_2015))
        if name == "adamw":
            found.append(Reference("AdamW (decoupled weight decay)", LOSHCHILOV_2019))
    elif name == "rmsprop":
        found.append(Reference("RMSProp", TIELEMAN_2012))
    elif name == "adagrad":
        found.append(Reference("Adagrad", DUCHI_2011))
    if config.nesterov:
        found.append(Reference("Nesterov momentum", SUTSKEVER_2013))
    elif config.momentum > 0.0:
        found.append(Reference("momentum", POLYAK_1964))
    if config.schedule == "warmup_cosine":
        found.append(Reference("cosine learning-rate decay", LOSHCHILOV_2017))
    return found


def _base(config: OptimConfig, learning_rate: float, weight_decay: float):
    """``config``'s optimizer at ``learning_rate`` (and ``weight_decay``, for adamw)."""
    name = config.name
    if name == "sgd":
        return optax.inject_hyperparams(optax.sgd)(
            learning_rate=learning_rate,
            momentum=config.momentum or None,
            nesterov=config.nesterov,
        )
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(
            learning_rate=learning_rate, b1=config.b1, b2=config.b2, eps=config.eps
        )
    if name == "adamw":
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=learning_rate,
            b1=config.b1,
            b2=config.b2,
            eps=config.eps,
            weight_decay=weight_decay,
        )
    if name == "rmsprop":
        return optax.inject_hyperparams(optax.rmsprop)(
            learning_rate=learning_rate, eps=config.eps, momentum=config.momentum or None
        )
    if name == "adagrad":
        return optax.inject_hyperparams(optax.adagrad)(learning_rate=learning_rate, eps=config.eps)
    raise ValueError(f"optim.name: unknown optimizer {name!r}")  # the config validates first


def _clipping(clip_norm=None, clip_value=None) -> optax.GradientTransformation:
    """Global-norm, then element-wise clipping; a bound of None switches that clip off."""
    parts = []
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    return optax.chain(*parts)


def recurrent_fields() -> frozenset[str]:
    """The params fields that the registered sequence cells declare recurrent
    (``Cell.linear.recurrent``), read from each factory's cell at its default settings;
    a cell registered by the user counts once its module is imported."""
    fields = set()
    for name in registry.names():
        factory = registry.lookup(name)
        if factory.kind == "sequence":
            linear = getattr(factory.factory(1), "linear", None)
            fields.update(linear.recurrent if linear is not None else ())
    return frozenset(fields)


def recurrent_labels(params, fields: frozenset[str]):
    """``params`` with each leaf replaced by its group: ``"recurrent"`` where a NamedTuple
    field on its path is one of ``fields`` (:func:`recurrent_fields`), else ``"default"``."""

    def label(path, _):
        names = {key.name for key in path if isinstance(key, jax.tree_util.GetAttrKey)}
        return RECURRENT if names & fields else DEFAULT

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(config: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """The optax chain described in the module docstring."""
    parts = []
    if config.clip_norm is not None or config.clip_value is not None:
        parts.append(
            optax.inject_hyperparams(_clipping)(
                clip_norm=config.clip_norm, clip_value=config.clip_value
            )
        )
    base = _base(config, config.learning_rate, config.weight_decay)
    if config.recurrent_lr is not None:
        recurrent = _base(config, config.recurrent_lr, 0.0)
        labels = functools.partial(recurrent_labels, fields=recurrent_fields())
        base = optax.multi_transform({DEFAULT: base, RECURRENT: recurrent}, labels)
    parts.append(base)
    if config.schedule != "constant":
        parts.append(optax.scale_by_schedule(schedule(config, total_steps)))
    return optax.chain(*parts)


def _injected(opt_state) -> list[dict]:
    """The ``inject_hyperparams`` dicts of a chain's state, in chain order; in a
    ``multi_transform``, the ``"default"`` group's before the ``"recurrent"`` one's."""
    kinds = optax.InjectHyperparamsState | optax.InjectStatefulHyperparamsState
    found = []
    for part in opt_state:
        if isinstance(part, kinds):
            found.append(part.hyperparams)
        elif isinstance(part, optax.MultiTransformState):
            groups = part.inner_states
            found += _injected([groups[DEFAULT].inner_state, groups[RECURRENT].inner_state])
    return found


def injected_hyperparams(opt_state) -> dict:
    """The optimizer's ``inject_hyperparams`` dict (``learning_rate``, ...) inside a
    state built by :func:`make_optimizer` (with ``recurrent_lr``: the ``"default"`` group's);
    assigning to it changes the next update."""
    for hyperparams in _injected(opt_state):
        if "learning_rate" in hyperparams:
            return hyperparams
    raise ValueError("opt_state: expected a state from jaxrnn.training.optim.make_optimizer")


def clip_norm(opt_state):
    """The global-norm clipping bound in a state built by :func:`make_optimizer`
    (a scalar array), or None where global-norm clipping is off."""
    for hyperparams in _injected(opt_state):
        if "clip_norm" in hyperparams:
            return hyperparams["clip_norm"]
    return None


def learning_rate(opt_state, schedule: optax.Schedule):
    """The learning rate the next update applies: the injected peak × the schedule.

    The schedule is read at the optimizer's own update count, which does not advance
    on a skipped (non-finite) step.
    """
    peak = injected_hyperparams(opt_state)["learning_rate"]
    for part in opt_state:
        if isinstance(part, optax.ScaleByScheduleState):
            return peak * schedule(part.count)
    return peak
