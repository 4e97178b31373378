"""Finished runs committed with the project: ``results/<grid>/<run_id>/``.

A grid with ``results: results/<name>`` publishes every finished run's ``record.json`` and
``val_predictions.json`` (never weights) into that folder, the way huggingface/peft keeps its
method-comparison results in its repository. ``slopeft grid run`` treats a run published there as
done, so a study can be finished in pieces, on several machines, and a fresh clone that has the
committed results trains nothing it already has; the SQLite store is rebuilt from these records
(``slopeft results import``, and on the fly by ``grid run`` and ``report``).

A run whose training diverged (non-finite or runaway loss: seeded, so it diverges again) is a result
too: its ``failure.json`` (the run, the error, the versions) is published in the same place, ``grid
run`` does not train it again (``--retry-diverged`` does) and the report lists it with its error.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from slopeft.errors import ConfigError
from slopeft.files import write_json_atomic
from slopeft.records import RECORD, VAL_PREDICTIONS, RunRecord, completed_record_data, predictions_file

#: A published run that diverged: its configuration and error instead of a record.
FAILURE = "failure.json"
DIVERGED = "diverged"

#: Copied in this order: the record last, because its presence marks the run as published.
PUBLISHED_FILES = (VAL_PREDICTIONS, RECORD)


def published_record(results_dir: Path | str | None, run_id: str) -> dict[str, Any] | None:
    """The completed record published for ``run_id`` under ``results_dir``, or None."""
    if results_dir is None:
        return None
    return completed_record_data(Path(results_dir) / run_id)


def read_published(results_dir: Path | str | None, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The published records of ``run_ids`` (run id → the record's data), each read once and checked.

    A published ``record.json`` that is cut short, hand-edited, left with merge-conflict markers or
    copied into another run's folder would otherwise count as missing: ``grid run`` would train the
    run again and overwrite it, and a report would leave it out without a word. So every one is
    refused here, and callers take the records from the answer instead of reading them again.

    Raises:
        ConfigError: naming every such file, what is wrong with it and what to do.
    """
    if results_dir is None:
        return {}
    damaged, records = [], {}
    for run_id in run_ids:
        path = Path(results_dir) / run_id / RECORD
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            RunRecord.from_dict(data, where="it")
        except (OSError, UnicodeDecodeError) as err:
            damaged.append(f"{path}: unreadable ({err})")
            continue
        except ValueError as err:
            damaged.append(f"{path}: not JSON ({err})")
            continue
        except ConfigError as err:
            damaged.append(f"{path}: {err}")
            continue
        if data.get("run_id") != run_id:
            damaged.append(f"{path}: holds the record of run {data.get('run_id')!r}, not of {run_id}")
        elif data.get("status") != "completed":
            damaged.append(f"{path}: its status is {data.get('status')!r}; a published record is a completed run's")
        else:
            records[run_id] = data
    if damaged:
        raise ConfigError(
            f"{len(damaged)} published record(s) do not read as their run's finished record: "
            + "; ".join(damaged)
            + ". Restore each from git (git checkout -- PATH, or resolve the merge), or delete its folder "
            "to train the run again. Until then grid run, grid status, results import and report stop here, "
            "so that nothing is trained over them or left out of a report unsaid."
        )
    return records


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
    (target / FAILURE).unlink(missing_ok=True)  # a run trained again with --retry-diverged that finished
    return True


def publish_failure(results_dir: Path | str, run_id: str, failure: dict[str, Any]) -> Path:
    """Publishes ``failure`` (the run's spec, the error) as ``results_dir/run_id/failure.json``."""
    data = {"run_id": run_id, "status": DIVERGED, **failure}
    return write_json_atomic(Path(results_dir) / run_id / FAILURE, data, "the published failure")


def published_failure(results_dir: Path | str | None, run_id: str) -> dict[str, Any] | None:
    """The divergence published for ``run_id`` (and no completed record beside it), or None.

    A file that does not read as one (hand-edited, cut short) counts as none: the run is trained again.
    """
    if results_dir is None:
        return None
    try:  # the usual case, no failure file, costs one failed open
        failure = json.loads((Path(results_dir) / run_id / FAILURE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(failure, dict) or failure.get("status") != DIVERGED or failure.get("run_id") != run_id:
        return None
    return None if published_record(results_dir, run_id) is not None else failure


def diverged_note(results_dir: Path | str, run_id: str, error: str) -> str:
    """The store's and the status table's error text for a run whose divergence is published."""
    return f"diverged (published in {results_dir}/{run_id}): {error}"
