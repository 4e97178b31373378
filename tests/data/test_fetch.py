"""Tests for slopeft.data.fetch and slopeft.data.convert (the datasets as the task modules declare them), against archives built here and served from 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from slopeft.data import convert
from slopeft.data.catalogue import DATASETS, Source, describe_sources
from slopeft.data.fetch import ensure_dataset
from slopeft.errors import DataError
from slopeft.tasks.superglue import FOLDERS as TASKS
from slopeft.tasks.superglue import MACHINE_FOLDERS as MT_TASKS


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def _tar_gz(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _row(task: str, split: str) -> str:
    return json.dumps({"idx": 0, "task": task, "split": split}) + "\n"


class _Server:
    """Serves ``files`` (path -> bytes) over HTTP on 127.0.0.1; unknown paths are 404."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = files.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def _serve(
    server: _Server,
    monkeypatch: pytest.MonkeyPatch,
    dataset: str,
    files: dict[str, bytes],
    sha256: dict[str, str] | None = None,
) -> None:
    """Points the sources of ``dataset`` at ``server``, one source per key of ``files``."""
    sources = []
    for key, body in files.items():
        server.files[f"/{dataset}/{key}"] = body
        url = server.url(f"/{dataset}/{key}")
        sources.append(Source(key, url, (sha256 or {}).get(key), "test", key, "test"))
    monkeypatch.setattr(DATASETS[dataset], "sources", tuple(sources))


def _superglue_files() -> dict[str, bytes]:
    qa = {
        # qa_train wraps its files in a folder to exercise the search at any depth.
        key: _zip({f"{prefix}{task}.jsonl": _row(task, key) for task in TASKS})
        for key, prefix in (("qa_train", "qa_train/"), ("qa_validation", ""), ("qa_test", ""))
    }
    mt: dict[str, str] = {"SuperGLUE-GoogleMT/csv/BoolQ/train.csv": "x\n", "__MACOSX/._x": ""}
    for task in (*MT_TASKS, "ReCoRD"):
        for split in ("train", "val", "test"):
            mt[f"SuperGLUE-GoogleMT/json/{task}/{split}.jsonl"] = _row(task, f"mt-{split}")
    return {**qa, "googlemt": _zip(mt)}


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith(".partial"))


def test_slo_superglue_is_laid_out_and_pinned(server, monkeypatch, tmp_path) -> None:
    _serve(server, monkeypatch, "slo-superglue", _superglue_files())
    root = ensure_dataset("slo-superglue", tmp_path, progress=False)
    base = root / "slo-superglue"
    assert root == tmp_path

    def split(path: Path) -> str:
        return json.loads(path.read_text())["split"]

    for task in TASKS:
        assert split(base / "human-translated" / task / "train.jsonl") == "qa_train"
        assert split(base / "human-translated" / task / "val.jsonl") == "qa_validation"
        assert split(base / "test-unlabelled" / f"{task}.jsonl") == "qa_test"
    for task in MT_TASKS:
        assert split(base / "machine-translated" / task / "val.jsonl") == "mt-val"
    assert sorted(p.name for p in (base / "machine-translated").iterdir()) == sorted(MT_TASKS)
    assert (base / ".complete").is_file()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for src in DATASETS["slo-superglue"].sources:  # trust on first use: every hash recorded
        body = server.files[src.url.split(str(server.httpd.server_address[1]))[1]]
        assert manifest["files"][src.url]["sha256"] == hashlib.sha256(body).hexdigest()
    assert _leftovers(tmp_path) == []


def test_complete_dataset_is_not_downloaded_again(server, monkeypatch, tmp_path) -> None:
    _serve(server, monkeypatch, "slo-superglue", _superglue_files())
    ensure_dataset("slo-superglue", tmp_path, progress=False)
    server.files.clear()  # any further request would now fail with 404
    assert ensure_dataset("slo-superglue", tmp_path, progress=False) == tmp_path


def test_changed_file_fails_trust_on_first_use(server, monkeypatch, tmp_path) -> None:
    _serve(server, monkeypatch, "slo-superglue", _superglue_files())
    ensure_dataset("slo-superglue", tmp_path, progress=False)
    (tmp_path / "slo-superglue" / ".complete").unlink()  # force a rebuild
    server.files["/slo-superglue/qa_test"] = _zip({f"{t}.jsonl": _row(t, "tampered") for t in TASKS})
    with pytest.raises(DataError, match=r"first-use checksum.*manifest\.json"):
        ensure_dataset("slo-superglue", tmp_path, progress=False)
    assert not (tmp_path / "slo-superglue").exists()
    assert _leftovers(tmp_path) == []


def test_published_checksum_mismatch_installs_nothing(server, monkeypatch, tmp_path) -> None:
    files = _superglue_files()
    _serve(server, monkeypatch, "slo-superglue", files, sha256={"googlemt": "0" * 64})
    with pytest.raises(DataError, match="published checksum") as err:
        ensure_dataset("slo-superglue", tmp_path, progress=False)
    assert "0" * 64 in str(err.value) and "/slo-superglue/googlemt" in str(err.value)
    assert not (tmp_path / "slo-superglue").exists()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "manifest.json").exists()  # nothing pinned from a failed build


def test_failed_download_leaves_no_partial_dataset(server, monkeypatch, tmp_path) -> None:
    _serve(server, monkeypatch, "slo-superglue", _superglue_files())
    del server.files["/slo-superglue/googlemt"]  # the last file 404s after three succeeded
    (tmp_path / "slo-superglue").mkdir(parents=True)  # an incomplete leftover without .complete
    with pytest.raises(DataError, match="HTTP 404"):
        ensure_dataset("slo-superglue", tmp_path, progress=False)
    assert not (tmp_path / "slo-superglue").exists()  # the incomplete leftover is gone too
    assert _leftovers(tmp_path) == []


def test_stale_partial_folder_is_cleaned_up(server, monkeypatch, tmp_path) -> None:
    (tmp_path / ".partial-slo-superglue-killed").mkdir()  # what a killed run leaves
    _serve(server, monkeypatch, "slo-superglue", _superglue_files())
    ensure_dataset("slo-superglue", tmp_path, progress=True)  # also exercises the rich progress bar
    assert _leftovers(tmp_path) == []


def test_archive_without_expected_files_is_a_data_error(server, monkeypatch, tmp_path) -> None:
    files = _superglue_files()
    files["googlemt"] = _zip({"README.txt": "moved"})
    _serve(server, monkeypatch, "slo-superglue", files)
    with pytest.raises(DataError, match=r"no BoolQ/train\.jsonl.*README\.txt"):
        ensure_dataset("slo-superglue", tmp_path, progress=False)
    assert not (tmp_path / "slo-superglue").exists()


def test_unreachable_host_fails_fast_with_remedy(monkeypatch, tmp_path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/SuperGLUE-GoogleMT.zip"
    monkeypatch.setattr(DATASETS["slo-superglue"], "sources", (Source("googlemt", url, None, "t", "t", "t"),))
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        ensure_dataset("slo-superglue", tmp_path, progress=False)
    assert time.monotonic() - start < 20
    message = str(err.value)
    assert url in message and "failed" in message
    assert "SLOPEFT_DATA" in message and "--data-dir" in message
    assert "human-translated/<Task>/{train,val}.jsonl" in message
    assert not (tmp_path / "slo-superglue").exists() and _leftovers(tmp_path) == []


def test_file_urls_and_mt_conversion(monkeypatch, tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "en.txt").write_bytes(b"\xef\xbb\xbfHello.\r\nBye.\r\n")  # BOM and CRLF are normalised
    (raw / "sl.txt").write_text("Pozdravljeni.\nAdijo.", encoding="utf-8")  # no final newline
    (raw / "docs.tsv").write_text("doc.1\ndoc.1\n", encoding="utf-8")
    flores = {}
    for split in ("dev", "devtest"):
        for code in ("eng_Latn", "slv_Latn", "deu_Latn"):
            flores[f"./flores200_dataset/{split}/{code}.{split}"] = f"{code} {split} 1\n{code} {split} 2\n"
    (raw / "flores.tar.gz").write_bytes(_tar_gz(flores))
    digest = hashlib.sha256((raw / "flores.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setattr(DATASETS["mt"], "sources", tuple(
            Source(key, (raw / name).as_uri(), sha, "t", "t", "t")
            for key, name, sha in (
                ("ntrex_en", "en.txt", None),
                ("ntrex_sl", "sl.txt", None),
                ("ntrex_docs", "docs.tsv", None),
                ("flores", "flores.tar.gz", digest),
            )
        ),
    )
    cache = tmp_path / "cache"
    ensure_dataset("mt", cache, progress=False)
    mt = cache / "mt"
    assert (mt / "ntrex128" / "en.txt").read_bytes() == b"Hello.\nBye.\n"
    assert (mt / "ntrex128" / "sl.txt").read_text(encoding="utf-8") == "Pozdravljeni.\nAdijo.\n"
    assert (mt / "ntrex128" / "document_ids.tsv").read_text() == "doc.1\ndoc.1\n"
    assert (mt / "flores200-dev" / "sl.txt").read_text() == "slv_Latn dev 1\nslv_Latn dev 2\n"
    assert (mt / "flores200-devtest" / "en.txt").read_text() == "eng_Latn devtest 1\neng_Latn devtest 2\n"
    folders = sorted(p.name for p in mt.iterdir())
    assert folders == [".complete", "flores200-dev", "flores200-devtest", "ntrex128"]


def test_si_nli_conversion(server, monkeypatch, tmp_path) -> None:
    # Parquet needs pyarrow, which slopeft does not depend on; the reader is swapped for JSON rows.
    train = [
        {
            "pair_id": "P0",
            "premise": 'Rekla je "da".',
            "hypothesis": "Tab\there",
            "annotation1": "entailment",
            "annotation_final": "entailment",
            "label": "entailment",
        },
    ]
    test = [{"pair_id": "", "premise": "A", "hypothesis": "B", "label": ""}]
    files = {"train": json.dumps(train).encode(), "test": json.dumps(test).encode()}
    _serve(server, monkeypatch, "si-nli", files)
    monkeypatch.setattr(convert, "_read_table", lambda path: json.loads(path.read_text()))
    ensure_dataset("si-nli", tmp_path, progress=False)
    lines = (tmp_path / "si-nli" / "train.tsv").read_text(encoding="utf-8").splitlines()
    header = ["pair_id", "premise", "hypothesis", "annotation_1", "annotation_FINAL", "label"]
    assert lines[0].split("\t") == header
    assert lines[1].split("\t") == ["P0", 'Rekla je "da".', "Tab here", *["entailment"] * 3]
    assert (tmp_path / "si-nli" / "test-unlabelled.tsv").read_text() == "premise\thypothesis\nA\tB\n"


def test_unknown_dataset_and_missing_pyarrow(tmp_path, monkeypatch) -> None:
    with pytest.raises(DataError, match="slopeft can download: slo-superglue, si-nli, mt"):
        ensure_dataset("superglue", tmp_path)
    import pandas

    def no_engine(path: object) -> None:
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pandas, "read_parquet", no_engine)
    with pytest.raises(DataError, match="pip install pyarrow"):
        convert._read_table(tmp_path / "x.parquet")


def test_source_table_is_documented() -> None:
    rows = describe_sources()
    assert {r["dataset"] for r in rows} == {"slo-superglue", "si-nli", "mt"}
    for row in rows:
        assert row["url"].startswith("https://")
        assert row["licence"] and row["description"] and row["evidence"]
        assert row["sha256"] is None or len(row["sha256"]) == 64
    # The converters look files up by these keys.
    assert {s.key for s in DATASETS["slo-superglue"].sources} == {"qa_train", "qa_validation", "qa_test", "googlemt"}
    assert {s.key for s in DATASETS["mt"].sources} == {"ntrex_en", "ntrex_sl", "ntrex_docs", "flores"}
    assert {s.key for s in DATASETS["si-nli"].sources} == {"train", "test"}
