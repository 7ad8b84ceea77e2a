"""Sweeps: seeds × hyperparameters, each group of members as one compiled program.

Optuna searches in batches (``jaxrnn sweep --optuna N --batch K``): :mod:`jaxrnn.sweep.search`.
"""

from jaxrnn.sweep.engine import VMAPPABLE, Group, group_key, member_dir, plan, run
from jaxrnn.sweep.spec import Member, Spec, expand, load
from jaxrnn.sweep.summary import Summary, summarize

__all__ = [
    "VMAPPABLE",
    "Group",
    "Member",
    "Spec",
    "Summary",
    "expand",
    "group_key",
    "load",
    "member_dir",
    "plan",
    "run",
    "summarize",
]
