"""Finished runs committed with the project: ``results/<grid>/<run_id>/``.

A grid with ``results: results/<name>`` publishes every finished run's ``record.json`` and
``val_predictions.json`` (never weights) into that folder, the way huggingface/peft keeps its
method-comparison results in its repository. ``slopeft grid run`` treats a run published there as
done, so a study can be finished in pieces, on several machines, and a fresh clone that has the
committed results trains nothing it already has; the SQLite store is rebuilt from these records
(``slopeft results import``, and on the fly by ``grid run`` and ``report``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from slopeft.records import RECORD, VAL_PREDICTIONS, completed_record_data, predictions_file

#: Copied in this order: the record last, because its presence marks the run as published.
PUBLISHED_FILES = (VAL_PREDICTIONS, RECORD)


def published_record(results_dir: Path | str | None, run_id: str) -> dict[str, Any] | None:
    """The completed record published for ``run_id`` under ``results_dir``, or None."""
    if results_dir is None:
        return None
    return completed_record_data(Path(results_dir) / run_id)


def publish(run_dir: Path | str, results_dir: Path | str, run_id: str) -> bool:
    """Copies a finished run's record and validation predictions (of every validation set scored)
    into ``results_dir/run_id``.

    Each file goes through a temporary name and a rename, the record last, so a reader (or a
    ``git add`` in the middle) never sees a published record without its predictions. Returns
    False when ``run_dir`` holds no completed record; publishing twice changes nothing.
    """
    source = Path(run_dir)
    if completed_record_data(source) is None:
        return False
    target = Path(results_dir) / run_id
    target.mkdir(parents=True, exist_ok=True)
    extra = sorted(p.name for p in source.glob(predictions_file("*")))  # extra validation sets
    for name in (*extra, *PUBLISHED_FILES):
        if not (source / name).is_file():
            continue
        if (target / name).is_file() and (target / name).read_bytes() == (source / name).read_bytes():
            continue
        tmp = target / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(source / name, tmp)
        os.replace(tmp, target / name)
    return True
