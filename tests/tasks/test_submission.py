"""Submission zips: golden layout, round trips, and every way a zip can be wrong."""

from __future__ import annotations

import json
import zipfile

import pytest

from slopeft.cli import main
from slopeft.errors import SubmissionError
from slopeft.tasks import get_tasks
from slopeft.tasks.submission import parse_unit, read_prediction_files, submission_files, write_zip


def _gold(tasks, split="val"):
    return {t.name: {e.idx: e.label for e in t.examples(split)} for t in tasks}


def _files(tasks, split="val", **replace):
    files = {k: v.encode() for k, v in submission_files(tasks, _gold(tasks, split), split).items()}
    files.update({k: v.encode() if isinstance(v, str) else v for k, v in replace.items()})
    return files


def test_superglue_golden_files(tiny_superglue):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = submission_files(tasks, _gold(tasks), "val")
    assert sorted(files) == ["BoolQ.jsonl", "CB.jsonl", "COPA.jsonl", "MultiRC.jsonl", "RTE.jsonl", "WSC.jsonl"]
    assert files["BoolQ.jsonl"].splitlines()[0] == '{"idx": 0, "label": "true"}'
    assert files["WSC.jsonl"].splitlines()[1] == '{"idx": 1, "label": "False"}'
    assert files["COPA.jsonl"].splitlines()[1] == '{"idx": 1, "label": 1}'
    assert json.loads(files["MultiRC.jsonl"]) == {"idx": 0, "passage": {"questions": [
        {"idx": 0, "answers": [{"idx": 0, "label": 1}, {"idx": 1, "label": 0}]},
        {"idx": 1, "answers": [{"idx": 2, "label": 1}, {"idx": 3, "label": 1}]}]}}


def test_zip_round_trip_has_only_top_level_files(tiny_superglue, tmp_path):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    out = write_zip(submission_files(tasks, _gold(tasks), "val"), tmp_path / "s.zip")
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(f"{t.folder}.jsonl" for t in tasks)
    assert parse_unit(tasks, read_prediction_files(out), "val") == _gold(tasks)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"extra.txt": "x"}, "unexpected extra.txt"),
        ({"CB.jsonl": '{"idx": 0, "label": "entailment"}\n{"idx": 0, "label": "neutral"}\n{"idx": 1, "label": "neutral"}\n'},
         "line 2: idx 0 appears more than once"),
        ({"CB.jsonl": '{"idx": 0, "label": "entailment"}\n{"idx": 1, "label": "neutral"}\n'}, r"1 idx value\(s\) missing \(first: \[2\]\)"),
        ({"CB.jsonl": '{"idx": 0, "label": "Entailment"}\n{"idx": 1, "label": "neutral"}\n{"idx": 2, "label": "neutral"}\n'},
         "line 1: illegal label"),
        ({"BoolQ.jsonl": '{"idx": 0, "label": "yes"}\n{"idx": 1, "label": "true"}\n{"idx": 2, "label": "true"}\n'},
         "'yes' is neither true nor false"),
        ({"COPA.jsonl": '{"idx": 0, "label": "1"}\n{"idx": 1, "label": 1}\n{"idx": 2, "label": 0}\n'}, "not the JSON integer 0 or 1"),
        ({"RTE.jsonl": '{"idx": 0, "label": "entailment"\n'}, r"RTE\.jsonl, line 1: not valid JSON"),
        ({"WSC.jsonl": b"\xff\xfe"}, "not valid UTF-8"),
        ({"COPA.jsonl": '{"idx": 0, "label": 1}\n{"idx": 1, "label": 1}\n{"idx": 2, "label": 0}\n{"idx": 9, "label": 0}\n'},
         r"not in the inputs \(first: \[9\]\)"),
    ],
)
def test_bad_superglue_submissions(tiny_superglue, replace, message):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    with pytest.raises(SubmissionError, match=message):
        parse_unit(tasks, _files(tasks, **replace), "val")


def test_missing_task_file(tiny_superglue):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = _files(tasks)
    del files["WSC.jsonl"]
    with pytest.raises(SubmissionError, match="missing WSC.jsonl"):
        parse_unit(tasks, files, "val")


def _multirc(questions):
    return json.dumps({"idx": 0, "passage": {"questions": questions}}) + "\n"


def test_multirc_float_labels_and_wrong_nesting_are_rejected(tiny_superglue):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    floats = _multirc([{"idx": 0, "answers": [{"idx": 0, "label": 1.0}, {"idx": 1, "label": 0}]},
                       {"idx": 1, "answers": [{"idx": 2, "label": 1}, {"idx": 3, "label": 1}]}])
    with pytest.raises(SubmissionError, match="1.0 is not the JSON integer"):
        parse_unit(tasks, _files(tasks, **{"MultiRC.jsonl": floats}), "val")
    swapped = _multirc([{"idx": 0, "answers": [{"idx": 0, "label": 1}, {"idx": 2, "label": 0}]},
                        {"idx": 1, "answers": [{"idx": 1, "label": 1}, {"idx": 3, "label": 1}]}])
    with pytest.raises(SubmissionError, match="answer 2 is under passage 0 question 0, but belongs to passage 0 question 1"):
        parse_unit(tasks, _files(tasks, **{"MultiRC.jsonl": swapped}), "val")
    flat = '{"idx": 0, "label": 1}\n'
    with pytest.raises(SubmissionError, match="not nested as"):
        parse_unit(tasks, _files(tasks, **{"MultiRC.jsonl": flat}), "val")


def test_zip_with_a_folder_is_rejected(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("preds/CB.jsonl", "{}")
    with pytest.raises(SubmissionError, match="inside folders.*zip -j"):
        read_prediction_files(path)
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(SubmissionError, match="not a valid zip"):
        read_prediction_files(tmp_path / "not.zip")


def test_si_nli_submission_rules(real_data_env):
    tasks = get_tasks("si-nli")
    n = len(tasks[0].examples("test"))
    good = "\n".join(["Entailment"] * n) + "\n\n"  # case and blank lines are forgiven, as by the evaluator
    assert len(parse_unit(tasks, {"submission.txt": good.encode()}, "test")["si-nli"]) == n == 998
    with pytest.raises(SubmissionError, match="997 line.*998"):
        parse_unit(tasks, {"submission.txt": ("neutral\n" * 997).encode()}, "test")
    with pytest.raises(SubmissionError, match="exactly submission.txt"):
        parse_unit(tasks, {"preds.txt": good.encode()}, "test")
    with pytest.raises(SubmissionError, match="line 1: 'maybe'"):
        parse_unit(tasks, {"submission.txt": ("maybe\n" + "neutral\n" * (n - 1)).encode()}, "test")


def test_mt_submission_keeps_empty_hypotheses_and_counts_lines(real_data_env):
    tasks = get_tasks("mt/sl-en")
    n = len(tasks[0].examples("test"))
    text = "Hello.\n" + "\n" * (n - 1)  # empty hypotheses are kept as lines, not dropped
    parsed = parse_unit(tasks, {"any-name.txt": text.encode()}, "test")["mt/sl-en"]
    assert len(parsed) == n and parsed[0] == "Hello." and parsed[n - 1] == ""
    with pytest.raises(SubmissionError, match="exactly one text file"):
        parse_unit(tasks, {"a.txt": text.encode(), "b.txt": text.encode()}, "test")
    with pytest.raises(SubmissionError, match=f"{n - 1} line"):
        parse_unit(tasks, {"a.txt": ("x\n" * (n - 1)).encode()}, "test")


def test_cli_errors_are_one_paragraph_with_exit_status_2(real_data_env, tmp_path, capsys):
    bad = tmp_path / "bad.zip"
    write_zip({"CB.jsonl": "{}"}, bad)
    with pytest.raises(SystemExit) as exit_info:
        main(["submission", "check", str(bad), "--task", "slo-superglue"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Error:" in err and "missing BoolQ.jsonl" in err and "Traceback" not in err


def test_score_cli_on_a_folder(tiny_superglue, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    tasks = get_tasks("slo-superglue", tiny_superglue)
    for name, text in submission_files(tasks, _gold(tasks), "val").items():
        (tmp_path / name).write_text(text)
    main(["score", "--task", "slo-superglue", "--predictions", str(tmp_path), "--split", "val",
          "--data-dir", str(tiny_superglue), "--json", str(tmp_path / "m.json")])
    board = json.loads((tmp_path / "m.json").read_text())["leaderboard"]
    assert board["Average"] == 1.0
