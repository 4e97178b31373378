"""The rows of `slopeft data list`: every task, training set and split with its size."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slopeft.errors import DataError
from slopeft.tasks import TASKS, get_task


@dataclass
class Inventory:
    rows: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # task, train set, split, rows, file
    locations: dict[str, str] = field(default_factory=dict)  # dataset -> "root (found via ...)" or the error


def inventory(data_dir: Path | None = None) -> Inventory:
    """Every registered task's splits with row counts and first source file.

    A dataset that cannot be found is reported with its error instead of rows, so one
    missing dataset does not hide the others.
    """
    result = Inventory()
    for name, task_class in TASKS.items():
        dataset = task_class.spec.dataset
        for train_set in task_class.spec.train_sets:
            try:
                task = get_task(name, data_dir, train_set)
                location = task.location
            except DataError as err:
                result.locations[dataset] = f"unavailable: {err}"
                break
            result.locations[dataset] = f"{location.root} (found via {location.origin})"
            splits = ("train", "val", "test") if train_set == task_class.spec.train_sets[0] else ("train",)
            for split in splits:
                files = task.source_files(split)
                shown = str(files[-1].relative_to(location.root)) + (
                    f" +{len(files) - 1}" if len(files) > 1 else ""
                )
                result.rows.append((name, train_set, split, task.count_rows(split), shown))
    return result
