"""The results store: one SQLite row per run, safe under many concurrent writers.

SQLite in WAL mode lets readers run while one writer commits; every write is a short
``BEGIN IMMEDIATE`` transaction with a busy timeout, so workers in parallel processes (or Ray
tasks on a shared filesystem that supports locking) queue instead of failing. A row is an
upsert keyed by the run id: rerunning a run updates its row, never adds a second one, and a
completed row is never downgraded by a late "running" or "failed" write.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slopeft.errors import ConfigError, DataError
from slopeft.records import RunRecord

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000
STATUSES = ("completed", "failed", "running", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    grid         TEXT,
    kind         TEXT NOT NULL,
    task         TEXT NOT NULL,
    model        TEXT NOT NULL,
    method       TEXT NOT NULL,
    method_name  TEXT,
    seed         INTEGER,
    status       TEXT NOT NULL,
    error        TEXT,
    config_hash  TEXT,
    config       TEXT,
    main_metric  TEXT,
    main         REAL,
    run_dir      TEXT,
    record       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    host         TEXT,
    started_at   TEXT,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

_COLUMNS = (
    "run_id",
    "grid",
    "kind",
    "task",
    "model",
    "method",
    "method_name",
    "seed",
    "status",
    "error",
    "config_hash",
    "config",
    "main_metric",
    "main",
    "run_dir",
    "record",
    "attempts",
    "host",
    "started_at",
    "updated_at",
)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ResultsStore:
    """The SQLite results store at ``path`` (created on first use).

    Args:
        path: the database file (``<grid out>/results.sqlite`` for a grid).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.DatabaseError as err:  # another file under the name, or a damaged one
            raise DataError(
                f"{self.path} is not a readable results store ({err}). The store only indexes the run records, "
                "so nothing is lost: move the file away and rebuild it with `slopeft results import GRID` "
                "(a grid run rebuilds it too)."
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A fresh connection per operation: nothing is shared across threads or forks.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------
    def upsert(
        self,
        spec: dict[str, Any],
        status: str,
        *,
        record: dict[str, Any] | None = None,
        error: str | None = None,
        run_dir: Path | str | None = None,
        grid: str | None = None,
        new_attempt: bool = False,
    ) -> None:
        """Inserts or updates the row of run ``spec["run_id"]``.

        Args:
            spec: the run's :class:`~slopeft.experiments.grid.RunSpec` as a dict.
            status: ``running``, ``completed``, ``failed`` or ``interrupted`` (resumable).
            record: the run record (completed runs).
            error: what went wrong (failed runs).
            run_dir: the run's folder.
            grid: the grid's name.
            new_attempt: count one more attempt (a worker starting the run).
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        # Indexed from the record as written: the runner stores what it finds, readers validate it.
        metrics = (record or {}).get("metrics", {})
        now = _now()
        row = {
            "run_id": spec["run_id"],
            "grid": grid,
            "kind": spec["kind"],
            "task": spec["task"],
            "model": spec["model"],
            "method": spec["method"],
            "method_name": spec.get("method_name"),
            "seed": spec.get("seed"),
            "status": status,
            "error": error,
            "config_hash": spec.get("config_hash"),
            "config": json.dumps(spec.get("config"), sort_keys=True, default=str),
            "main_metric": metrics.get("main_metric"),
            "main": metrics.get("main"),
            "run_dir": str(run_dir) if run_dir else None,
            "record": json.dumps(record, ensure_ascii=False, default=str) if record is not None else None,
            "attempts": 1 if new_attempt else 0,
            "host": socket.gethostname(),
            "started_at": now if status == "running" else None,
            "updated_at": now,
        }
        placeholders = ", ".join(f":{c}" for c in _COLUMNS)
        with self._write() as db:
            db.execute(
                f"""
                INSERT INTO runs ({", ".join(_COLUMNS)}) VALUES ({placeholders})
                ON CONFLICT(run_id) DO UPDATE SET
                    grid = COALESCE(excluded.grid, runs.grid),
                    kind = excluded.kind, task = excluded.task, model = excluded.model,
                    method = excluded.method, method_name = excluded.method_name, seed = excluded.seed,
                    status = excluded.status,
                    error = excluded.error,
                    config_hash = excluded.config_hash, config = excluded.config,
                    main_metric = COALESCE(excluded.main_metric, runs.main_metric),
                    main = COALESCE(excluded.main, runs.main),
                    run_dir = COALESCE(excluded.run_dir, runs.run_dir),
                    record = COALESCE(excluded.record, runs.record),
                    attempts = runs.attempts + excluded.attempts,
                    host = excluded.host,
                    started_at = COALESCE(excluded.started_at, runs.started_at),
                    updated_at = excluded.updated_at
                WHERE runs.status != 'completed' OR excluded.status = 'completed'
                """,
                row,
            )

    # -- reading --------------------------------------------------------------------------------
    def rows(self, grid: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every row (optionally of one grid / status) as a dict; ``record`` and ``config`` parsed."""
        query = "SELECT * FROM runs"
        clauses, args = [], []
        if grid is not None:
            clauses.append("grid = ?")
            args.append(grid)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY task, model, method, seed, run_id"
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            result = [dict(r) for r in db.execute(query, args)]
        for row in result:
            for key in ("record", "config"):
                row[key] = json.loads(row[key]) if row[key] else None
        return result

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        row = dict(row)
        for key in ("record", "config"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def statuses(self) -> dict[str, str]:
        """run id → status."""
        with self._connect() as db:
            return dict(db.execute("SELECT run_id, status FROM runs"))

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def open_store(path: Path | str, must_exist: bool = True) -> ResultsStore:
    path = Path(path)
    if must_exist and not path.is_file():
        raise ConfigError(
            f"No results store at {path}. Run the grid first (`slopeft grid run GRID`), or pass --store."
        )
    return ResultsStore(path)


# -- export -------------------------------------------------------------------------------------
# Identity and status columns of an export: the stored columns without the JSON blobs (flattened below).
_EXPORT_COLUMNS = tuple(c for c in _COLUMNS if c not in ("config", "record", "started_at"))


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat dict per run: identity, status, metrics (``val.<name>``), costs, versions, commit, data."""
    flat = []
    for row in rows:
        record = RunRecord.from_dict(row["record"], f"the record of {row['run_id']}") if row.get("record") else None
        item: dict[str, Any] = {key: row[key] for key in _EXPORT_COLUMNS}
        for name, value in (record.metrics.val if record else {}).items():
            item[f"val.{name}"] = value
        for name, value in (record.cost if record else {}).items():
            item[f"cost.{name}"] = value
        for name, value in (record.versions if record else {}).items():
            item[f"versions.{name}"] = value
        item["git.commit"] = record.commit if record else None
        item["git.dirty"] = record.dirty if record else None
        data = record.data if record else {}
        item["data.fingerprint"] = data.get("fingerprint")
        item["data.train_examples"] = data.get("train_examples")
        item["data.val_examples"] = data.get("val_examples")
        item["finished_at"] = (record.finished_at or None) if record else None
        item["config"] = json.dumps(row.get("config"), sort_keys=True)
        flat.append(item)
    return flat


def export(store: ResultsStore, out: Path | str, fmt: str, grid: str | None = None) -> Path:
    """Writes the store's runs to ``out`` as csv, parquet or json (json keeps the full records)."""
    import pandas as pd

    out = Path(out)
    rows = store.rows(grid=grid)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        out.write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        return out
    frame = pd.DataFrame(flat_rows(rows))
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        raise ConfigError(f"--format must be csv, parquet or json, not {fmt!r}.")
    return out
