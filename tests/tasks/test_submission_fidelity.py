"""Submissions read as the official evaluator reads them: byte-order marks, line ends, lines NLTK 3.6.6
fails on. Every case here is one the evaluator rejects or scores wrongly (see slopeft.tasks.reading)."""

from __future__ import annotations

import zipfile

import pytest

from slopeft.cli import main
from slopeft.errors import SubmissionError
from slopeft.tasks import get_tasks
from slopeft.tasks.reading import lone_carriage_returns, readlines
from slopeft.tasks.submission import parse_unit, read_prediction_files, submission_files, write_zip

BOM = "\ufeff"
SUPERGLUE_FILES = ["BoolQ.jsonl", "CB.jsonl", "COPA.jsonl", "MultiRC.jsonl", "RTE.jsonl", "WSC.jsonl"]


def _gold(tasks, split="val"):
    return {t.name: {e.idx: e.label for e in t.examples(split)} for t in tasks}


def _encoded(files):
    return {name: text.encode("utf-8") for name, text in files.items()}


def _check(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, " ".join(err.split())


# -- byte-order marks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", SUPERGLUE_FILES)
def test_a_bom_in_any_superglue_member_is_refused(tiny_superglue, member):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = _encoded(submission_files(tasks, _gold(tasks), "val"))
    assert parse_unit(tasks, files, "val") == _gold(tasks)  # the same files without the mark pass
    files[member] = b"\xef\xbb\xbf" + files[member]
    with pytest.raises(SubmissionError, match=rf"{member} starts with a UTF-8 byte-order mark.*Expected object or value"):
        parse_unit(tasks, files, "val")


def test_a_bom_in_the_si_nli_file_is_refused(real_data_env):
    tasks = get_tasks("si-nli")
    text = "neutral\n" * len(tasks[0].examples("test"))
    assert parse_unit(tasks, {"submission.txt": text.encode()}, "test")
    with pytest.raises(SubmissionError, match=r"byte-order mark.*Unrecognized predicted class in row 0"):
        parse_unit(tasks, {"submission.txt": (BOM + text).encode()}, "test")


def test_a_bom_in_an_mt_file_is_refused(real_data_env):
    tasks = get_tasks("mt/sl-en")
    text = "A translation.\n" * len(tasks[0].examples("test"))
    assert parse_unit(tasks, {"out.txt": text.encode()}, "test")
    with pytest.raises(SubmissionError, match=r"out\.txt starts with a UTF-8 byte-order mark.*first token of line 1"):
        parse_unit(tasks, {"out.txt": (BOM + text).encode()}, "test")


def test_submission_check_cli_refuses_a_bom(tiny_superglue, tmp_path, capsys):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = submission_files(tasks, _gold(tasks), "val")
    good = write_zip(files, tmp_path / "good.zip")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, ("\ufeff" if name == "RTE.jsonl" else "") + text)
    code, err = _check(["score", "--task", "slo-superglue", "--predictions", str(bad), "--split", "val",
                        "--data-dir", str(tiny_superglue)], capsys)
    assert code == 2 and "RTE.jsonl starts with a UTF-8 byte-order mark" in err
    main(["score", "--task", "slo-superglue", "--predictions", str(good), "--split", "val",
          "--data-dir", str(tiny_superglue)])


@pytest.mark.parametrize("unit", ["slo-superglue", "si-nli", "mt/sl-en", "mt/en-sl"])
def test_our_writers_never_start_a_file_with_a_bom(real_data_env, unit):
    tasks = get_tasks(unit)
    predictions = _gold(tasks, "val")
    if unit.startswith("mt/"):  # a model that emits U+FEFF first must not turn it into a BOM
        (task,) = tasks
        first = task.examples("val")[0].idx
        predictions[task.name][first] = BOM + predictions[task.name][first]
    files = submission_files(tasks, predictions, "val")
    assert files and not any(text.startswith(BOM) for text in files.values())
    assert not any(text.encode("utf-8").startswith(b"\xef\xbb\xbf") for text in files.values())


def test_write_zip_refuses_text_with_a_bom(tmp_path):
    with pytest.raises(SubmissionError, match=r"CB\.jsonl start\(s\) with a byte-order mark"):
        write_zip({"CB.jsonl": BOM + '{"idx": 0, "label": "neutral"}\n'}, tmp_path / "s.zip")
    assert not list(tmp_path.iterdir())  # nothing written


# -- line ends --------------------------------------------------------------------------------------


def test_readlines_is_pythons_universal_newlines(tmp_path):
    text = "a\r\nb\rc\nd\x0ce\u2028f\x85g\n"
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode("utf-8"))
    with open(path, encoding="utf-8") as f:  # what the evaluator does
        expected = [line.rstrip("\n") for line in f.readlines()]
    assert readlines(text) == expected == ["a", "b", "c", "d\x0ce\u2028f\x85g"]
    assert lone_carriage_returns(text) == [2]
    assert lone_carriage_returns("a\r\nb\n") == []


def test_mt_refuses_a_lone_carriage_return(real_data_env):
    tasks = get_tasks("mt/sl-en")
    n = len(tasks[0].examples("test"))
    crlf = "One.\r\n" * n
    assert len(parse_unit(tasks, {"a.txt": crlf.encode()}, "test")["mt/sl-en"]) == n  # CRLF is fine
    lines = ["One."] * n
    lines[3] = "Two\rhalves."
    with pytest.raises(SubmissionError, match=r"line\(s\) 4 hold a carriage return.*wrong source line"):
        parse_unit(tasks, {"a.txt": ("\n".join(lines) + "\n").encode()}, "test")


def test_si_nli_reads_a_lone_carriage_return_as_a_line_end(real_data_env):
    tasks = get_tasks("si-nli")
    n = len(tasks[0].examples("test"))
    # n labels, two of them separated by a lone \r: the evaluator reads n lines, and so do we.
    text = "neutral\rentailment\n" + "contradiction\n" * (n - 2)
    parsed = parse_unit(tasks, {"submission.txt": text.encode()}, "test")["si-nli"]
    assert [parsed[e.idx] for e in tasks[0].examples("test")[:3]] == ["neutral", "entailment", "contradiction"]
    with pytest.raises(SubmissionError, match=f"{n + 1} line"):
        parse_unit(tasks, {"submission.txt": ("neutral\rentailment\n" + "neutral\n" * (n - 1)).encode()}, "test")


def test_superglue_lines_end_at_line_feeds_only(tiny_superglue):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = submission_files(tasks, _gold(tasks), "val")
    crlf = {name: text.replace("\n", "\r\n").encode() for name, text in files.items()}
    assert parse_unit(tasks, crlf, "val") == _gold(tasks)  # pandas strips the \r of \r\n
    lone = _encoded(files)
    lone["CB.jsonl"] = files["CB.jsonl"].replace("\n", "\r", 1).encode()
    with pytest.raises(SubmissionError, match=r"CB\.jsonl, line 1: holds a carriage return.*pandas\.read_json"):
        parse_unit(tasks, lone, "val")


# -- lines NLTK 3.6.6 fails on ------------------------------------------------------------------------


def _mt_zip(tmp_path, lines, name="mt.zip"):
    path = tmp_path / name
    write_zip({"translations.txt": "".join(line + "\n" for line in lines)}, path)
    return path


def test_mt_check_names_the_lines_the_evaluator_fails_on(real_data_env, tmp_path, capsys):
    tasks = get_tasks("mt/sl-en")
    n = len(tasks[0].examples("test"))
    lines = ["A translation."] * n
    lines[4], lines[8], lines[11] = ". A stray full stop.", "? A stray question mark", "?! passes: its '!' is kept first"
    bad = _mt_zip(tmp_path, lines)
    with pytest.raises(SubmissionError, match=r"fails on translation lines 5, 9: each begins with a lone"):
        parse_unit(tasks, read_prediction_files(bad), "test")
    code, err = _check(["submission", "check", str(bad), "--task", "mt/sl-en"], capsys)
    assert code == 2 and "translation lines 5, 9" in err and "--nltk 3.6.5" in err
    # The evaluator's first pin, NLTK 3.6.5, tokenizes those lines.
    main(["submission", "check", str(bad), "--task", "mt/sl-en", "--nltk", "3.6.5"])
    assert "every line tokenizes under NLTK 3.6.5" in " ".join(capsys.readouterr().out.split())
    good = ["A translation."] * n
    main(["submission", "check", str(_mt_zip(tmp_path, good, "good.zip")), "--task", "mt/sl-en"])
    assert "every line tokenizes under NLTK 3.6.6" in " ".join(capsys.readouterr().out.split())


def test_copying_the_flores_devtest_references_fails_at_line_29(real_data_env, tmp_path):
    (task,) = tasks = get_tasks("mt/sl-en")
    references = [e.label for e in task.examples("test")]
    with pytest.raises(SubmissionError, match=r"translation line 29:"):
        parse_unit(tasks, read_prediction_files(_mt_zip(tmp_path, references)), "test")


def test_nltk_option_is_for_translation_tasks_only(tiny_superglue, tmp_path, capsys):
    code, err = _check(["score", "--task", "slo-superglue", "--predictions", str(tmp_path), "--nltk", "3.6.5",
                        "--data-dir", str(tiny_superglue)], capsys)
    assert code == 2 and "--nltk apply to the tasks that take them (mt/en-sl, mt/sl-en)" in err
    code, err = _check(["submission", "check", str(tmp_path / "x.zip"), "--task", "mt/sl-en", "--nltk", "3.7"],
                       capsys)
    assert code == 2 and "Unknown NLTK version '3.7'" in err


def test_mt_scores_report_the_nltk_release_and_the_lines_it_fails_on(real_data_env, tmp_path, capsys):
    import json

    (task,) = get_tasks("mt/sl-en")
    lines = [e.label for e in task.examples("val")]
    lines[1] = ". " + lines[1]
    folder = tmp_path / "preds"
    folder.mkdir()
    (folder / "val.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    code, err = _check(["score", "--task", "mt/sl-en", "--predictions", str(folder)], capsys)
    assert code == 2 and "translation line 2" in err  # a file the leaderboard would reject is refused
    lines[1] = lines[1][2:]
    (folder / "val.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for nltk in ("3.6.6", "3.6.5"):
        main(["score", "--task", "mt/sl-en", "--predictions", str(folder), "--nltk", nltk,
              "--json", str(tmp_path / "m.json")])
        scores = json.loads((tmp_path / "m.json").read_text())
        assert scores["scoring"] == {"mt/sl-en": {"nltk": nltk}}
        assert scores["per_task"]["mt/sl-en"]["chrF (corpus)"] == pytest.approx(1.0)
        assert scores["warnings"] == []


def test_in_memory_mt_scores_stay_defined_and_carry_the_warning(real_data_env):
    # Training scores model outputs in memory: a line NLTK 3.6.6 fails on must not break model selection.
    (task,) = get_tasks("mt/sl-en")
    examples = task.examples("val")[:6]
    predictions = {e.idx: e.label for e in examples}
    predictions[examples[2].idx] = "! " + examples[2].label
    metrics = task.metrics(predictions, examples)
    assert set(metrics) >= {"BLEU (avg)", "chrF (corpus)"} and 0 < metrics["chrF (corpus)"] < 1
    (warning,) = task.metric_warnings()
    assert "translation line 3" in warning and "NLTK 3.6.7" in warning
    assert task.scoring() == {"nltk": "3.6.6"}
    predictions[examples[2].idx] = examples[2].label
    task.metrics(predictions, examples)
    assert task.metric_warnings() == []
