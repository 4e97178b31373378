"""The results store: upserts keyed by run id, no downgrade of finished runs, concurrent writers, export."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pandas as pd
import pytest

from slopeft.experiments.store import ResultsStore, export


def _spec(run_id: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "kind": "train",
        "task": "slo-superglue/cb",
        "model": "tiny:bert",
        "method": "lora",
        "method_name": "lora",
        "seed": 1,
        "config": {"task": "slo-superglue/cb", "seed": 1},
        "config_hash": "abc",
        **extra,
    }


def _record(run_id: str, main: float) -> dict:
    return {
        "run_id": run_id,
        "status": "completed",
        "config": {"task": "slo-superglue/cb"},
        "versions": {"slopeft": "0.1.0", "torch": "2.13.0"},
        "git": {"commit": "deadbeef", "dirty": False},
        "data": {"fingerprint": "f" * 64, "train_examples": 32, "val_examples": 24},
        "metrics": {"val": {"accuracy": main, "average": main}, "main_metric": "average", "main": main},
        "cost": {"trainable": 10, "trainable_share": 0.1, "adapter_bytes": 100, "train_seconds": 1.5},
        "finished_at": "2026-01-01T00:00:00",
    }


def test_wal_mode_and_one_row_per_run(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.upsert(_spec("a"), "running", new_attempt=True, grid="g")
    store.upsert(_spec("a"), "failed", error="boom", grid="g")
    assert store.get("a")["status"] == "failed" and store.get("a")["error"] == "boom"
    store.upsert(_spec("a"), "running", new_attempt=True, grid="g")
    assert store.get("a")["error"] is None
    store.upsert(_spec("a"), "completed", record=_record("a", 0.5), run_dir=tmp_path / "a", grid="g")
    row = store.get("a")
    assert store.count() == 1
    assert (row["status"], row["main"], row["main_metric"], row["attempts"]) == (
        "completed",
        0.5,
        "average",
        2,
    )
    assert row["record"]["git"]["commit"] == "deadbeef"
    # a late "running" or "failed" write never turns a finished run back
    store.upsert(_spec("a"), "failed", error="late")
    store.upsert(_spec("a"), "running", new_attempt=True)
    assert store.get("a")["status"] == "completed" and store.get("a")["error"] is None
    with pytest.raises(ValueError):
        store.upsert(_spec("a"), "weird")


def _writer(path: str, worker: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):
        shared = f"shared-{i % 5}"  # every writer hits these rows
        store.upsert(_spec(shared), "running", new_attempt=True)
        store.upsert(_spec(shared), "completed", record=_record(shared, 0.1 * (i % 5)))
        own = f"w{worker}-{i}"
        store.upsert(_spec(own), "completed", record=_record(own, 0.5))


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ResultsStore(path)
    workers, n = 4, 40
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(path, w, n)) for w in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
        assert p.exitcode == 0
    rows = ResultsStore(path).rows()
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids)) == workers * n + 5
    assert all(r["status"] == "completed" for r in rows)


def test_export_csv_parquet_json(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.upsert(_spec("a"), "completed", record=_record("a", 0.25), grid="g")
    store.upsert(_spec("b", seed=2), "failed", error="out of memory", grid="g")
    csv = pd.read_csv(export(store, tmp_path / "r.csv", "csv"))
    parquet = pd.read_parquet(export(store, tmp_path / "r.parquet", "parquet"))
    for frame in (csv, parquet):
        assert sorted(frame["run_id"]) == ["a", "b"]
        a = frame.set_index("run_id").loc["a"]
        assert a["val.accuracy"] == 0.25 and a["cost.train_seconds"] == 1.5
        assert a["git.commit"] == "deadbeef" and a["data.fingerprint"] == "f" * 64
        assert a["versions.torch"] == "2.13.0" and json.loads(a["config"])["seed"] == 1
        assert frame.set_index("run_id").loc["b"]["error"] == "out of memory"
    full = json.loads(export(store, tmp_path / "r.json", "json").read_text())
    assert {r["run_id"]: r["status"] for r in full} == {"a": "completed", "b": "failed"}
    assert full[0]["record"]["metrics"]["main"] == 0.25


def test_a_file_that_is_not_a_store_is_refused_with_the_way_to_rebuild_it(tmp_path, cli):
    from slopeft.errors import DataError

    damaged = tmp_path / "results.sqlite"
    damaged.write_bytes(b"not a database, perhaps a half-copied one\n" * 100)
    with pytest.raises(DataError, match=r"not a readable results store .*slopeft results import"):
        ResultsStore(damaged)
    message = cli.fails("results", "export", "--store", damaged, "--output", tmp_path / "out.csv", watch=tmp_path)
    assert str(damaged) in message and not (tmp_path / "out.csv").exists()
