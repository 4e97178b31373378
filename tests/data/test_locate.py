"""Data resolution order: --data-dir, SLOPEFT_DATA, the cache, then a download."""

from __future__ import annotations

import pytest

import slopeft.tasks  # noqa: F401  (the task modules declare the datasets)
from slopeft.data import locate
from slopeft.data.locate import locate_dataset
from slopeft.errors import DataError


def _make(root, dataset="si-nli"):
    (root / "si-nli").mkdir(parents=True)
    (root / "si-nli" / "train.tsv").write_text("premise\thypothesis\tlabel\n")
    return root


def test_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    flag, env, cache = _make(tmp_path / "flag"), _make(tmp_path / "env"), tmp_path / "cache"
    _make(cache / "data")
    (cache / "data" / "si-nli" / ".complete").write_text("")
    monkeypatch.setenv("SLOPEFT_CACHE", str(cache))
    monkeypatch.setenv("SLOPEFT_DATA", str(env))
    assert locate_dataset("si-nli", flag) == locate.DataLocation(flag, "--data-dir")
    assert locate_dataset("si-nli") == locate.DataLocation(env, "SLOPEFT_DATA")
    monkeypatch.delenv("SLOPEFT_DATA")
    found = locate_dataset("si-nli", download=False)
    assert found.origin == "cache"


def test_explicit_folder_without_the_dataset_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOPEFT_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"SLOPEFT_DATA points to .* no si-nli data.*Expected layout"):
        locate_dataset("si-nli")
    with pytest.raises(DataError, match="--data-dir points to"):
        locate_dataset("slo-superglue", tmp_path)


def test_half_written_cache_does_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOPEFT_CACHE", str(tmp_path))
    _make(tmp_path / "data")  # no .complete marker: an interrupted download
    with pytest.raises(DataError, match="No local copy of si-nli.*SLOPEFT_DATA"):
        locate_dataset("si-nli", download=False)


def test_offline_with_nothing_local_names_layout_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOPEFT_CACHE", str(tmp_path))

    def offline(name, root, **_):
        raise OSError("network unreachable")

    monkeypatch.setattr("slopeft.data.fetch.ensure_dataset", offline)
    with pytest.raises(DataError) as err:
        locate_dataset("slo-superglue")
    message = str(err.value)
    assert "network unreachable" in message and "SLOPEFT_DATA" in message and "human-translated" in message
