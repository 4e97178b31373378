"""SloBench tasks and task groups, registered by name. Importing this package registers them all.

One module (or package) per task family declares everything about its tasks: the spec (fields,
labels, metrics, how a model is shown an example), the loader, the submission format and the dataset
it reads; :mod:`~slopeft.tasks.base` says what a task and a group are, :mod:`~slopeft.tasks.formats`
what each kind of task does with its templates.
"""

from __future__ import annotations

from pathlib import Path

from slopeft.errors import ConfigError

# isort: off
# Registration order is the order the datasets are listed in messages: SuperGLUE, SI-NLI, MT.
from slopeft.tasks import superglue  # noqa: F401  (registration)
from slopeft.tasks import si_nli  # noqa: F401  (registration)
from slopeft.tasks import mt  # noqa: F401  (registration)

# isort: on
from slopeft.tasks.base import SPLITS, TASK_GROUPS, TASKS, Example, Split, Task, TaskGroup, TaskSpec, group_of

__all__ = [
    "SPLITS",
    "TASKS",
    "TASK_GROUPS",
    "Example",
    "Split",
    "Task",
    "TaskGroup",
    "TaskSpec",
    "expand_task_names",
    "get_task",
    "get_tasks",
    "group_of",
]


def expand_task_names(name: str) -> tuple[str, ...]:
    """A task name, or every member of a task group (``slo-superglue``)."""
    if name in TASK_GROUPS:
        return TASK_GROUPS.get(name).members
    if name in TASKS:
        return (name,)
    raise ConfigError(TASKS.unknown_message(name) + f" Task groups: {', '.join(TASK_GROUPS)}.")


def get_task(
    name: str,
    data_dir: Path | str | None = None,
    train_set: str | None = None,
    val_set: str | None = None,
    **options,
) -> Task:
    """Builds the task ``name`` reading from ``data_dir`` (or the usual data resolution)."""
    task_class = TASKS.get(name)
    kwargs = dict(options)
    if train_set is not None:
        kwargs["train_set"] = train_set
    if val_set is not None:
        if val_set not in task_class.spec.val_sets:
            raise ConfigError(
                f"Task {name} has no validation set {val_set!r}; choose one of {', '.join(task_class.spec.val_sets)}."
            )
        kwargs["val_set"] = val_set
    return task_class(data_dir, **kwargs)


def get_tasks(
    name: str, data_dir: Path | str | None = None, train_set: str | None = None, **options
) -> list[Task]:
    """The task ``name`` or the members of group ``name``.

    In a group, a training set that some members lack (WSC has no ``machine`` set) falls back to
    those members' default (first) set, ``human`` for WSC, as in the Slovene SuperGLUE paper.
    """
    names = expand_task_names(name)
    tasks = []
    for member in names:
        member_set = train_set
        offered = TASKS.get(member).spec.train_sets
        if len(names) > 1 and train_set is not None and train_set not in offered:
            member_set = offered[0]
        tasks.append(get_task(member, data_dir, member_set, **options))
    return tasks
