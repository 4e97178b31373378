"""Slovene SuperGLUE (CLARIN.SI 11356/1380): BoolQ, CB, COPA, MultiRC, RTE, WSC.

:mod:`~slopeft.tasks.superglue.base` holds what the six share (rows, training sets, jsonl
submissions), :mod:`~slopeft.tasks.superglue.tasks` each task and the ``slo-superglue`` group,
:mod:`~slopeft.tasks.superglue.dataset` where the files come from. Importing the package registers them.
"""

from slopeft.tasks.superglue.base import SuperGlueTask
from slopeft.tasks.superglue.tasks import (
    COPA,
    FOLDERS,
    MACHINE_FOLDERS,
    RTE,
    SLO_SUPERGLUE,
    SUPERGLUE_TASKS,
    WSC,
    BoolQ,
    CommitmentBank,
    MultiRC,
    mark_wsc_spans,
    superglue_leaderboard,
)

__all__ = [
    "COPA",
    "FOLDERS",
    "MACHINE_FOLDERS",
    "RTE",
    "SLO_SUPERGLUE",
    "SUPERGLUE_TASKS",
    "WSC",
    "BoolQ",
    "CommitmentBank",
    "MultiRC",
    "SuperGlueTask",
    "mark_wsc_spans",
    "superglue_leaderboard",
]
