"""The run record: every shape slopeft has written loads, upgrades and keeps its fields; unknown shapes are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slopeft.config import RunConfig
from slopeft.errors import ConfigError
from slopeft.records import (
    FORMAT,
    RECORD,
    RunRecord,
    completed_record_data,
    load_predictions,
    load_record,
    read_record,
    write_predictions,
    write_record,
)

FIXTURES = Path(__file__).parent / "fixtures" / "records"
REPO = Path(__file__).resolve().parent.parent


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _kept(old: dict, new: dict) -> None:
    """Every field of ``old`` is in ``new`` with the same value (new may add fields)."""
    for key, value in old.items():
        assert key in new, key
        if isinstance(value, dict) and isinstance(new[key], dict):
            _kept(value, new[key])
        else:
            assert new[key] == value, key


def test_a_baseline_record_of_format_1_upgrades_and_keeps_every_field():
    raw = _fixture("baseline-format1.json")  # as committed under results/sweep/
    record = RunRecord.from_dict(raw)
    assert (record.kind, record.format, record.task) == ("baseline", FORMAT, "si-nli")
    assert record.metrics.main == pytest.approx(0.3295454545) and record.metrics.main_metric == "accuracy"
    assert record.val_examples == 440 and record.eval_limit == 0
    assert record.commit == raw["git"]["commit"] and record.data_fingerprint == raw["data"]["fingerprint"]
    assert record.method_report == {}
    upgraded = record.to_dict()
    _kept(raw, upgraded)
    assert upgraded["kind"] == "baseline" and upgraded["format"] == FORMAT
    assert set(upgraded) == set(raw) | {"format"}
    assert RunRecord.from_dict(upgraded) == record  # the current shape reads back unchanged
    with pytest.raises(ConfigError, match="only training runs have a RunConfig"):
        record.run_config()


def test_a_training_record_of_format_1_upgrades_and_keeps_every_field():
    raw = _fixture("train-format1.json")  # written by slopeft train before RunRecord existed
    record = RunRecord.from_dict(raw)
    assert (record.kind, record.format) == ("train", FORMAT)
    assert record.metrics.best_step == raw["metrics"]["best_step"]
    assert record.metrics.history == raw["metrics"]["history"]
    assert record.method_report == raw["cost"]["method"]
    assert record.eval_limit == raw["config"]["training"]["max_eval_examples"]
    config = record.run_config()
    assert isinstance(config, RunConfig)
    _kept(raw["config"], config.to_dict())  # settings added since take their defaults
    upgraded = record.to_dict()
    _kept(raw, upgraded)
    assert set(upgraded) == set(raw) | {"kind", "format"}
    assert list(upgraded["metrics"]) == list(raw["metrics"])
    assert RunRecord.from_dict(upgraded) == record


def test_the_precision_a_record_trained_in():
    raw = _fixture("train-format1.json")  # before cost.precision: read from what its config asked for
    assert RunRecord.from_dict(raw).precision == "fp32"  # auto (or nothing) was fp32 on every CPU
    raw["config"]["training"]["precision"] = "bf16"
    assert RunRecord.from_dict(raw).precision == "bf16"
    raw["config"]["training"]["precision"] = "fastest"
    raw["cost"]["precision"] = "bf16"  # what the run resolved to wins over what it asked for
    assert RunRecord.from_dict(raw).precision == "bf16"
    assert RunRecord.from_dict(_fixture("baseline-format1.json")).precision is None  # nothing trained


def test_the_first_training_records_load_without_a_method_report_or_later_settings():
    raw = _fixture("train-first.json")  # no cost.method; training settings added later are absent
    record = RunRecord.from_dict(raw)
    assert record.method_report == {} and "method" not in record.to_dict()["cost"]
    config = record.run_config()  # the settings added since take the values that kept the old behaviour
    assert config.training.select_best is True and config.training.malloc_mmap_threshold_kib == 2048


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "not a run record: it holds list"),
        ({"run_id": "x", "status": "completed"}, "lacks config, metrics"),
        ({**_fixture("baseline-format1.json"), "format": 99}, "record format 99.*formats 1 to"),
        ({**_fixture("baseline-format1.json"), "kind": "evaluation"}, "unknown run kind 'evaluation'"),
        ({**_fixture("baseline-format1.json"), "surprise": 1}, "fields no record format knows \\(surprise\\)"),
        ({**_fixture("baseline-format1.json"), "metrics": {"val": {}}}, "metrics must hold"),
        ({**_fixture("baseline-format1.json"), "config": "si-nli"}, "config is str"),
    ],
)
def test_unknown_shapes_are_config_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        RunRecord.from_dict(data, "the record")


def test_a_bad_training_config_in_a_record_is_a_config_error():
    raw = _fixture("train-format1.json")
    raw["config"]["training"]["epochz"] = 3
    with pytest.raises(ConfigError, match="epochz"):
        RunRecord.from_dict(raw).run_config()


def test_written_records_and_predictions_read_back(tmp_path):
    record = RunRecord.from_dict(_fixture("train-format1.json"))
    written = write_record(tmp_path / "run", record)
    assert json.loads((tmp_path / "run" / RECORD).read_text()) == written == record.to_dict()
    assert [p.name for p in (tmp_path / "run").iterdir()] == [RECORD]  # no temporary file left
    assert read_record(tmp_path / "run") == load_record(tmp_path / "run" / RECORD) == record
    assert completed_record_data(tmp_path / "run") == written
    write_predictions(tmp_path / "run", {3: "entailment", 10: "neutral"})
    assert load_predictions(tmp_path / "run") == {3: "entailment", 10: "neutral"}
    assert load_predictions(tmp_path / "elsewhere") is None


def test_a_folder_without_a_finished_record(tmp_path):
    with pytest.raises(ConfigError, match="not a finished slopeft run"):
        read_record(tmp_path)
    assert completed_record_data(tmp_path) is None
    (tmp_path / RECORD).write_text(json.dumps({"run_id": "x", "status": "running"}))
    assert completed_record_data(tmp_path) is None  # the runner only asks whether a run is done
    (tmp_path / RECORD).write_text("{half")
    assert completed_record_data(tmp_path) is None
    with pytest.raises(ConfigError, match="Cannot read the run record"):
        read_record(tmp_path)


def test_every_committed_record_loads():
    committed = sorted(REPO.glob("results/*/*/" + RECORD))
    for path in committed:
        record = load_record(path)
        assert record.run_id == path.parent.name and record.status == "completed"
