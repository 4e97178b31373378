"""Bad input files give one clear DataError naming the file, the line and the fix."""

from __future__ import annotations

import pytest

from slopeft.data.readers import read_jsonl, read_parallel, read_tsv
from slopeft.errors import DataError
from slopeft.tasks import get_task
from tests.conftest import write_jsonl


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"idx": 0}\n\n{"idx": 1,\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl, line 3: not valid JSON"):
        read_jsonl(path)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text('{"idx": 0}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected a JSON object, found list"):
        read_jsonl(path)


def test_empty_file(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        read_jsonl(path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "sl.txt"
    path.write_bytes("prva vrstica\nčas\n".encode("cp1250"))
    with pytest.raises(DataError, match=r"not valid UTF-8 \(line 2"):
        read_parallel(path, path)


def test_missing_file_says_where_to_look(tmp_path):
    with pytest.raises(DataError, match="does not exist.*SLOPEFT_DATA"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_parallel_files_of_different_length(tmp_path):
    (tmp_path / "sl.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match="sl.txt has 3 lines.*en.txt has 2"):
        read_parallel(tmp_path / "sl.txt", tmp_path / "en.txt")


def test_tsv_missing_column_and_ragged_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("premise\thypothesis\nA\tB\n", encoding="utf-8")
    with pytest.raises(DataError, match="lacks column.*label"):
        read_tsv(path, ("premise", "hypothesis", "label"))
    path.write_text("premise\thypothesis\nA\tB\tC\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: wrong number of tab-separated fields"):
        read_tsv(path, ("premise", "hypothesis"))


def _cb_root(tmp_path, rows):
    root = tmp_path / "data"
    write_jsonl(root / "slo-superglue" / "human-translated" / "CB" / "train.jsonl", rows)
    return root


PAIR = {"premise": "P", "hypothesis": "H"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"idx": 0, **PAIR, "label": "maybe"}], r"row 1: unknown label \('maybe' is not one of"),
        ([{"idx": 0, **PAIR}], "row 1: the label is missing"),
        ([{"idx": 0, **PAIR, "label": "neutral"}, {"idx": 0, **PAIR, "label": "neutral"}], "row 2: idx 0 already used by row 1"),
        ([{**PAIR, "label": "neutral"}], "row 1: no idx field"),
        ([{"idx": 0.5, **PAIR, "label": "neutral"}], "idx 0.5 is not an integer"),
        ([{"idx": 0, "premise": "P", "label": "neutral"}], "missing field 'hypothesis'"),
    ],
)
def test_bad_task_rows(tmp_path, rows, message):
    task = get_task("slo-superglue/cb", _cb_root(tmp_path, rows))
    with pytest.raises(DataError, match=message):
        task.examples("train")


def test_wsc_span_that_does_not_match_the_text(tmp_path):
    root = tmp_path / "data"
    row = {"idx": 0, "text": "Marko je rekel Petru, da on zmore.", "label": True,
           "target": {"span1_index": 1, "span1_text": "Marko", "span2_index": 5, "span2_text": "on"}}
    write_jsonl(root / "slo-superglue" / "human-translated" / "WSC" / "train.jsonl", [row])
    with pytest.raises(DataError, match=r"span1_text 'Marko' does not match words 1\.\. of the text \('je'\)"):
        get_task("slo-superglue/wsc", root).examples("train")
    row["target"]["span1_index"] = 40
    write_jsonl(root / "slo-superglue" / "human-translated" / "WSC" / "train.jsonl", [row])
    with pytest.raises(DataError, match="outside the text's 7 words"):
        get_task("slo-superglue/wsc", root).examples("train")


def test_wsc_span_with_attached_punctuation_is_accepted(tmp_path):
    root = tmp_path / "data"
    row = {"idx": 0, "text": "Marko je rekel Petru, da on zmore.", "label": True,
           "target": {"span1_index": 3, "span1_text": "Petru", "span2_index": 5, "span2_text": "on"}}
    write_jsonl(root / "slo-superglue" / "human-translated" / "WSC" / "train.jsonl", [row])
    (example,) = get_task("slo-superglue/wsc", root).examples("train")
    assert example.label is True and example.inputs["span1_index"] == 3


def test_si_nli_unknown_label(tmp_path):
    root = tmp_path / "data"
    (root / "si-nli").mkdir(parents=True)
    (root / "si-nli" / "train.tsv").write_text("premise\thypothesis\tlabel\nA\tB\tentails\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: unknown label 'entails'"):
        get_task("si-nli", root).examples("train")
