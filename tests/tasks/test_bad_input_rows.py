"""Bad task rows through the CLI: every field of every task's rows (SuperGLUE in both the
human-translated and the machine-translated shape, SI-NLI TSV rows, MT line files) missing, null,
of the wrong type, empty; wrong labels, duplicate idx values, malformed JSONL/TSV, wrong encodings.

Each case writes a small data root whose rows are all good but one, runs a model-free baseline on
it, and expects exit status 2 with a paragraph naming the file (and row), no traceback, and no
output folder.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

GOOD = {
    "BoolQ": {"idx": 0, "question": "Ali je nebo modro?", "passage": "Nebo je modro.", "label": True},
    "CB": {"idx": 0, "premise": "Ana je doma.", "hypothesis": "Ana ni doma.", "label": "contradiction"},
    "COPA": {"idx": 0, "premise": "Deževalo je.", "question": "effect", "choice1": "Mokro je.",
             "choice2": "Suho je.", "label": 0},
    "RTE": {"idx": 0, "premise": "Ana je doma.", "hypothesis": "Ana je.", "label": "entailment"},
    "WSC": {"idx": 0, "text": "Marko je rekel Petru, da on zmore.", "label": True,
            "target": {"span1_index": 0, "span1_text": "Marko", "span2_index": 5, "span2_text": "on"}},
    "MultiRC": {"idx": 0, "passage": {"text": "Besedilo o mački.", "questions": [
        {"idx": 0, "question": "Kdo?", "answers": [{"idx": 0, "text": "Mačka", "label": 1},
                                                   {"idx": 1, "text": "Pes", "label": 0}]}]}},
}
# The machine-translated MultiRC: questions and answers are objects keyed by position, idx values
# are floats, labels are strings with a decimal comma or point.
GOOD_MT_MULTIRC = {"idx": 0, "version": 1.1, "passage": {"text": "Besedilo o &quot;mački&quot;.", "questions": {
    "0": {"idx": 0.0, "question": "Kdo?", "answers": {"1": {"idx": 1.0, "text": "Pes", "label": "0,0"},
                                                       "0": {"idx": 0.0, "text": "Mačka", "label": "1.0"}}}}}}
TASK = {"BoolQ": "boolq", "CB": "cb", "COPA": "copa", "RTE": "rte", "WSC": "wsc", "MultiRC": "multirc"}
TEXT_FIELDS = {
    "BoolQ": ("question", "passage"),
    "CB": ("premise", "hypothesis"),
    "COPA": ("premise", "question", "choice1", "choice2"),
    "RTE": ("premise", "hypothesis"),
    "WSC": ("text",),
}
BAD_TEXT = {"missing": ..., "null": None, "number": 7, "list": ["a"], "object": {"a": 1}, "empty": "",
            "blank": "  \t"}


def _renumber(row: dict, shift: int) -> dict:
    """A copy of ``row`` with every idx (passage, question, answer) moved by ``shift``."""
    row = copy.deepcopy(row)
    row["idx"] = row["idx"] + shift

    def items(container):
        return container.values() if isinstance(container, dict) else container

    if "passage" in row and isinstance(row["passage"], dict):
        for question in items(row["passage"]["questions"]):
            question["idx"] = question["idx"] + shift
            for answer in items(question["answers"]):
                answer["idx"] = answer["idx"] + 10 * shift
    return row


def _rows(folder: str, mt: bool = False) -> list[dict]:
    good = GOOD_MT_MULTIRC if mt and folder == "MultiRC" else GOOD[folder]
    rows = [_renumber(good, i) for i in range(4)]
    if folder != "MultiRC":  # both labels present, so majority baselines have something to count
        labels = {"BoolQ": [True, False], "CB": ["entailment", "neutral"], "COPA": [0, 1],
                  "RTE": ["entailment", "not_entailment"], "WSC": [True, False]}[folder]
        for i, row in enumerate(rows):
            row["label"] = labels[i % 2]
    return rows


def _write_jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def superglue_root(tmp_path: Path, folder: str, bad_train: list | None = None, raw_train: bytes | None = None,
                   bad_test: list | None = None, machine: bool = False) -> Path:
    """A data root for one SuperGLUE task; ``bad_train`` replaces the training rows (of the machine-
    translated set when ``machine``), ``raw_train`` its bytes, ``bad_test`` the unlabelled test rows."""
    root = tmp_path / "data"
    base = root / "slo-superglue"
    _write_jsonl(base / "human-translated" / folder / "train.jsonl", _rows(folder))
    _write_jsonl(base / "human-translated" / folder / "val.jsonl", _rows(folder))
    unlabelled = [_strip_labels(r) for r in _rows(folder)]
    _write_jsonl(base / "test-unlabelled" / f"{folder}.jsonl", unlabelled if bad_test is None else bad_test)
    train = base / ("machine-translated" if machine else "human-translated") / folder / "train.jsonl"
    if machine:
        _write_jsonl(train, _rows(folder, mt=True))
    if bad_train is not None:
        _write_jsonl(train, bad_train)
    if raw_train is not None:
        train.write_bytes(raw_train)
    return root


def _strip_labels(row):
    if isinstance(row, dict):
        return {k: _strip_labels(v) for k, v in row.items() if k != "label"}
    if isinstance(row, list):
        return [_strip_labels(v) for v in row]
    return row


def _with(row: dict, path: tuple, value) -> dict:
    """A copy of ``row`` with the field at ``path`` set to ``value`` (``...``: removed)."""
    row = copy.deepcopy(row)
    container = row
    for key in path[:-1]:
        container = container[key]
    if value is ...:
        del container[path[-1]]
    else:
        container[path[-1]] = value
    return row


def _baseline(cli, root: Path, tmp_path: Path, folder: str, *extra: str) -> str:
    out = tmp_path / "out"
    return cli.fails("baseline", "--task", f"slo-superglue/{TASK[folder]}", "--strategy", "majority",
                     "--data-dir", root, "--output", out, *extra, watch=out)


# -- SuperGLUE: every text field of every task, in every bad shape, in both training sets -------------------
TEXT_CASES = [
    (folder, field, kind, machine)
    for folder, fields in TEXT_FIELDS.items()
    for field in fields
    for kind in BAD_TEXT
    for machine in ((False, True) if folder != "WSC" else (False,))
]


@pytest.mark.parametrize(("folder", "field", "kind", "machine"), TEXT_CASES,
                         ids=[f"{f}-{fi}-{k}-{'mt' if m else 'ht'}" for f, fi, k, m in TEXT_CASES])
def test_a_bad_text_field_is_refused(cli, tmp_path, folder, field, kind, machine):
    rows = _rows(folder, mt=machine)
    rows[2] = _with(rows[2], (field,), BAD_TEXT[kind])
    root = superglue_root(tmp_path, folder, bad_train=rows, machine=machine)
    message = _baseline(cli, root, tmp_path, folder, *(["--train-set", "machine"] if machine else []))
    assert "train.jsonl, row 3" in message and repr(field) in message, message


WSC_TARGET_CASES = {
    "target-missing": (("target",), ...),
    "target-null": (("target",), None),
    "target-text": (("target",), "Marko"),
    "span1_text-empty": (("target", "span1_text"), ""),
    "span2_text-null": (("target", "span2_text"), None),
    "span1_text-number": (("target", "span1_text"), 3),
    "span1_index-missing": (("target", "span1_index"), ...),
    "span1_index-text": (("target", "span1_index"), "0"),
    "span2_index-float": (("target", "span2_index"), 5.5),
    "span2_index-bool": (("target", "span2_index"), True),
    "span2_index-negative": (("target", "span2_index"), -1),
    "span2_index-outside": (("target", "span2_index"), 40),
    "span1_text-mismatch": (("target", "span1_text"), "Peter"),
}


@pytest.mark.parametrize("case", WSC_TARGET_CASES)
def test_a_bad_wsc_target_is_refused(cli, tmp_path, case):
    path, value = WSC_TARGET_CASES[case]
    rows = _rows("WSC")
    rows[1] = _with(rows[1], path, value)
    message = _baseline(cli, superglue_root(tmp_path, "WSC", bad_train=rows), tmp_path, "WSC")
    assert "train.jsonl, row 2" in message, message


def _multirc_cases(mt: bool) -> dict:
    q = ("passage", "questions", "0" if mt else 0)
    a = (*q, "answers", "0" if mt else 0)
    cases = {
        "passage-missing": (("passage",), ...), "passage-null": (("passage",), None),
        "passage-text": (("passage",), "Besedilo"),
        "passage.text-missing": (("passage", "text"), ...), "passage.text-null": (("passage", "text"), None),
        "passage.text-empty": (("passage", "text"), ""), "passage.text-list": (("passage", "text"), ["a"]),
        "questions-missing": (("passage", "questions"), ...), "questions-null": (("passage", "questions"), None),
        "questions-empty": (("passage", "questions"), []), "questions-text": (("passage", "questions"), "Kdo?"),
        "question-null": (q, None), "question-text": (q, "Kdo?"),
        "question.idx-missing": ((*q, "idx"), ...), "question.idx-null": ((*q, "idx"), None),
        "question.idx-text": ((*q, "idx"), "x"),
        "question.question-missing": ((*q, "question"), ...), "question.question-null": ((*q, "question"), None),
        "question.question-empty": ((*q, "question"), " "), "question.question-object": ((*q, "question"), {}),
        "answers-missing": ((*q, "answers"), ...), "answers-empty": ((*q, "answers"), []),
        "answers-number": ((*q, "answers"), 3),
        "answer-null": (a, None), "answer-list": (a, [1]),
        "answer.idx-missing": ((*a, "idx"), ...), "answer.idx-null": ((*a, "idx"), None),
        "answer.idx-fraction": ((*a, "idx"), 0.5), "answer.idx-bool": ((*a, "idx"), False),
        "answer.label-missing": ((*a, "label"), ...), "answer.label-null": ((*a, "label"), None),
        "answer.label-wrong": ((*a, "label"), 2), "answer.label-text": ((*a, "label"), "yes"),
        "answer.label-list": ((*a, "label"), [1]),
        "idx-missing": (("idx",), ...), "idx-null": (("idx",), None), "idx-text": (("idx",), "0"),
    }
    if not mt:  # the MT set drops its few answers without text (a documented repair); HT has none
        cases |= {"answer.text-missing": ((*a, "text"), ...), "answer.text-null": ((*a, "text"), None),
                  "answer.text-empty": ((*a, "text"), ""), "answer.text-object": ((*a, "text"), {"t": 1})}
    else:
        cases |= {"questions-bad-keys": (("passage", "questions"), {"first": {}}),
                  "answer.label-2,0": ((*a, "label"), "2,0"), "answer.text-object": ((*a, "text"), {"t": 1})}
    return cases


MULTIRC_CASES = [(name, mt) for mt in (False, True) for name in _multirc_cases(mt)]


@pytest.mark.parametrize(("case", "mt"), MULTIRC_CASES, ids=[f"{n}-{'mt' if m else 'ht'}" for n, m in MULTIRC_CASES])
def test_a_bad_multirc_field_is_refused(cli, tmp_path, case, mt):
    path, value = _multirc_cases(mt)[case]
    rows = _rows("MultiRC", mt=mt)
    rows[1] = _with(rows[1], path, value)
    root = superglue_root(tmp_path, "MultiRC", bad_train=rows, machine=mt)
    message = _baseline(cli, root, tmp_path, "MultiRC", *(["--train-set", "machine"] if mt else []))
    assert "train.jsonl, row 2" in message, message


def test_repeated_multirc_question_and_answer_idx_are_refused(cli, tmp_path):
    for shift_questions, what in ((True, "question idx 1"), (False, "idx 10")):
        rows = _rows("MultiRC")
        clash = _renumber(GOOD["MultiRC"], 7)
        if shift_questions:
            clash["passage"]["questions"][0]["idx"] = rows[1]["passage"]["questions"][0]["idx"]
        else:
            clash["passage"]["questions"][0]["answers"][0]["idx"] = 10  # row 2's first answer
        rows.append(clash)
        message = _baseline(cli, superglue_root(tmp_path, "MultiRC", bad_train=rows), tmp_path, "MultiRC")
        assert what in message and "already used by row 2" in message, message


# -- every task: labels, idx values, duplicates --------------------------------------------------------------
LABEL_CASES = {
    "missing": ..., "null": None, "wrong": "maybe", "list": ["entailment"], "object": {"label": 1}, "number": 7,
}


@pytest.mark.parametrize("folder", ["BoolQ", "CB", "COPA", "RTE", "WSC"])
@pytest.mark.parametrize("kind", LABEL_CASES)
def test_a_bad_label_is_refused(cli, tmp_path, folder, kind):
    rows = _rows(folder)
    rows[3] = _with(rows[3], ("label",), LABEL_CASES[kind])
    message = _baseline(cli, superglue_root(tmp_path, folder, bad_train=rows), tmp_path, folder)
    assert "train.jsonl, row 4" in message and "label" in message, message


@pytest.mark.parametrize("value", [True, False])
def test_a_json_boolean_is_not_a_zero_one_label(cli, tmp_path, value):
    rows = _rows("COPA")
    rows[3] = _with(rows[3], ("label",), value)
    message = _baseline(cli, superglue_root(tmp_path, "COPA", bad_train=rows), tmp_path, "COPA")
    assert "train.jsonl, row 4" in message and "JSON boolean" in message, message
    rows = _rows("MultiRC")
    rows[2] = _with(rows[2], ("passage", "questions", 0, "answers", 1, "label"), value)
    message = _baseline(cli, superglue_root(tmp_path / "m", "MultiRC", bad_train=rows), tmp_path / "m", "MultiRC")
    assert "train.jsonl, row 3" in message and "JSON boolean" in message, message


IDX_CASES = {"missing": ..., "null": None, "text": "1", "fraction": 1.5, "bool": True, "list": [1],
             "nan": float("nan"), "infinite": float("inf")}


@pytest.mark.parametrize("folder", list(GOOD))
@pytest.mark.parametrize("kind", IDX_CASES)
def test_a_bad_idx_is_refused(cli, tmp_path, folder, kind):
    rows = _rows(folder)
    rows[0] = _with(rows[0], ("idx",), IDX_CASES[kind])
    message = _baseline(cli, superglue_root(tmp_path, folder, bad_train=rows), tmp_path, folder)
    assert "train.jsonl, row 1" in message and "idx" in message, message


@pytest.mark.parametrize("folder", list(GOOD))
@pytest.mark.parametrize("split", ["train", "test"])
def test_a_duplicate_idx_is_refused(cli, tmp_path, folder, split):
    rows = _rows(folder)
    rows[2] = _renumber(rows[2], -1)  # row 3 takes row 2's idx values (for MultiRC: passage, questions, answers)
    if split == "train":
        root = superglue_root(tmp_path, folder, bad_train=rows)
        message = _baseline(cli, root, tmp_path, folder)
    else:
        root = superglue_root(tmp_path, folder, bad_test=[_strip_labels(r) for r in rows])
        message = _baseline(cli, root, tmp_path, folder, "--split", "test")
    assert "row 3" in message and "already used by row 2" in message, message


def test_copa_needs_cause_or_effect(cli, tmp_path):
    rows = _rows("COPA")
    rows[1]["question"] = "why"
    message = _baseline(cli, superglue_root(tmp_path, "COPA", bad_train=rows), tmp_path, "COPA")
    assert "'cause' or 'effect'" in message


# -- malformed files and wrong encodings ---------------------------------------------------------------------
GOOD_LINE = json.dumps({**GOOD["CB"], "premise": "Čebela je na cvetu."}, ensure_ascii=False)
RAW_FILES = {
    "truncated-json": (GOOD_LINE + "\n" + GOOD_LINE[:25] + "\n").encode(),
    "array-row": (GOOD_LINE + "\n[1, 2]\n").encode(),
    "string-row": (GOOD_LINE + '\n"row"\n').encode(),
    "deep-nesting": (GOOD_LINE + "\n" + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
    "cp1250": GOOD_LINE.encode("cp1250") + b"\n",
    "utf-16-with-bom": (GOOD_LINE + "\n").encode("utf-16"),
    "utf-16-without-bom": (GOOD_LINE + "\n").encode("utf-16-le"),
    "empty": b"",
    "blank-lines-only": b"\n \n\n",
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("case", RAW_FILES)
def test_a_malformed_or_misencoded_file_is_refused(cli, tmp_path, case):
    root = superglue_root(tmp_path, "CB", raw_train=RAW_FILES[case])
    message = _baseline(cli, root, tmp_path, "CB")
    assert "CB/train.jsonl" in message, message


def test_a_folder_in_place_of_a_file_is_refused(cli, tmp_path):
    root = superglue_root(tmp_path, "CB")
    val = root / "slo-superglue" / "human-translated" / "CB" / "val.jsonl"
    val.unlink()
    val.mkdir()
    assert "val.jsonl" in _baseline(cli, root, tmp_path, "CB")


# -- SI-NLI rows ------------------------------------------------------------------------------------------------
NLI_HEADER = ["pair_id", "premise", "hypothesis", "label"]


def _nli_rows(n: int = 30) -> list[list[str]]:
    labels = ("entailment", "neutral", "contradiction")
    return [[f"P{i}", f"Premisa številka {i}.", f"Hipoteza {i}.", labels[i % 3]] for i in range(n)]


def nli_root(tmp_path: Path, train: bytes | None = None, test: bytes | None = None) -> Path:
    root = tmp_path / "data" / "si-nli"
    root.mkdir(parents=True)

    def tsv(header, rows):
        return ("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)).encode()

    (root / "train.tsv").write_bytes(train if train is not None else tsv(NLI_HEADER, _nli_rows()))
    (root / "test-unlabelled.tsv").write_bytes(
        test if test is not None else tsv(["premise", "hypothesis"], [r[1:3] for r in _nli_rows(6)])
    )
    return root.parent


def _tsv(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)).encode()


def _nli_with(column: int, value: str) -> bytes:
    rows = _nli_rows()
    rows[4][column] = value
    return _tsv(NLI_HEADER, rows)


NLI_CASES = {
    "premise-empty": _nli_with(1, ""),
    "premise-blank": _nli_with(1, "   "),
    "hypothesis-empty": _nli_with(2, ""),
    "label-empty": _nli_with(3, ""),
    "label-wrong": _nli_with(3, "maybe"),
    "label-number": _nli_with(3, "1"),
    "missing-field": _tsv(NLI_HEADER, [*_nli_rows()[:4], ["P4", "Premisa."], *_nli_rows()[5:]]),
    "extra-field": _tsv(NLI_HEADER, [*_nli_rows()[:4], ["P4", "a", "b", "neutral", "x"], *_nli_rows()[5:]]),
    "missing-column": _tsv(["pair_id", "premise", "label"], [[r[0], r[1], r[3]] for r in _nli_rows()]),
    "repeated-column": _tsv([*NLI_HEADER, "label"], [[*r, "neutral"] for r in _nli_rows()]),
    "header-only": _tsv(NLI_HEADER, []),
    "too-few-rows-per-label": _tsv(NLI_HEADER, _nli_rows(3)),
    "cp1250": _tsv(NLI_HEADER, _nli_rows()).decode().encode("cp1250"),
    "utf-16": _tsv(NLI_HEADER, _nli_rows()).decode().encode("utf-16-le"),
    "empty": b"",
    # a repeat could be split into training and validation both: scored on a pair it trained on
    "repeated-pair-id": _tsv(NLI_HEADER, [*_nli_rows(), ["P4", "Druga premisa.", "Druga hipoteza.", "neutral"]]),
    "repeated-pair": _tsv(NLI_HEADER, [*_nli_rows(), ["P99", *_nli_rows()[4][1:]]]),
}


@pytest.mark.parametrize("case", NLI_CASES)
def test_a_bad_si_nli_training_file_is_refused(cli, tmp_path, case):
    root = nli_root(tmp_path, train=NLI_CASES[case])
    out = tmp_path / "out"
    message = cli.fails("baseline", "--task", "si-nli", "--strategy", "majority", "--data-dir", root,
                        "--output", out, watch=out)
    assert "train.tsv" in message, message
    if case.startswith("repeated-pair"):
        assert "line 32" in message and "line 6" in message and "appear once" in message


@pytest.mark.parametrize("case", ["premise-empty", "hypothesis-missing", "missing-column"])
def test_a_bad_si_nli_test_file_is_refused(cli, tmp_path, case):
    rows = [r[1:3] for r in _nli_rows(6)]
    header = ["premise", "hypothesis"]
    if case == "premise-empty":
        rows[2][0] = ""
    elif case == "hypothesis-missing":
        rows[2] = rows[2][:1]
    else:
        header, rows = ["premise"], [r[:1] for r in rows]
    root = nli_root(tmp_path, test=_tsv(header, rows))
    out = tmp_path / "out"
    message = cli.fails("baseline", "--task", "si-nli", "--strategy", "majority", "--split", "test",
                        "--data-dir", root, "--output", out, watch=out)
    assert "test-unlabelled.tsv" in message, message


# -- MT line files ----------------------------------------------------------------------------------------------
MT_FOLDERS = {"train": "ntrex128", "val": "flores200-dev-subset", "test": "flores200-devtest"}


def mt_root(tmp_path: Path, **files: bytes) -> Path:
    """An MT data root; ``files`` maps ``<split>_<lang>`` (e.g. ``train_sl``) to replacement bytes."""
    root = tmp_path / "data" / "mt"
    for split, folder in MT_FOLDERS.items():
        for lang, text in (("sl", "Dober dan."), ("en", "Good day.")):
            path = root / folder / f"{lang}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files.get(f"{split}_{lang}", "".join(f"{text} {i}\n" for i in range(5)).encode()))
    return root.parent


MT_CASES = {
    "val-source-empty-line": {"val_sl": b"Ena.\n\nTri.\nStiri.\nPet.\n"},
    "val-target-blank-line": {"val_en": b"One.\nTwo.\n   \nFour.\nFive.\n"},
    "val-lengths-differ": {"val_en": b"One.\nTwo.\n"},
    "val-cp1250": {"val_sl": "Čez.\nDva.\nTri.\nŠtiri.\nPet.\n".encode("cp1250")},
    "val-utf-16": {"val_sl": "Ena.\nDva.\nTri.\nStiri.\nPet.\n".encode("utf-16-le")},
    "val-empty-file": {"val_en": b""},
    "train-target-empty-line": {"train_en": b"One.\nTwo.\nThree.\n\nFive.\n"},
    "train-lengths-differ": {"train_sl": b"Ena.\n"},
    "train-binary": {"train_en": bytes(range(256))},
    "test-source-utf-16": {"test_sl": "Ena.\nDva.\n".encode("utf-16-le")},
}


@pytest.mark.parametrize("case", MT_CASES)
def test_a_bad_mt_line_file_is_refused(cli, tmp_path, case):
    root = mt_root(tmp_path, **MT_CASES[case])
    out = tmp_path / "out"
    split = "test" if case.startswith("test") else "val"
    message = cli.fails("baseline", "--task", "mt/sl-en", "--strategy", "copy-source", "--data-dir", root,
                        "--split", split, "--output", out, watch=out)
    split = case.split("-")[0]
    assert MT_FOLDERS[split] in message, message


def test_bad_own_mt_training_files_are_refused(cli, tmp_path):
    root = mt_root(tmp_path)
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("Ena.\nDva.\n")
    tgt.write_text("One.\n\n")
    out = tmp_path / "out"
    message = cli.fails("baseline", "--task", "mt/sl-en", "--strategy", "copy-source", "--data-dir", root,
                        "--train-src", src, "--train-tgt", tgt, "--output", out, watch=out)
    assert "tgt.txt" in message and "line(s) 2" in message, message
    missing = tmp_path / "nope.txt"
    message = cli.fails("baseline", "--task", "mt/sl-en", "--strategy", "copy-source", "--data-dir", root,
                        "--train-src", src, "--train-tgt", missing, "--output", out, watch=out)
    assert "nope.txt does not exist" in message, message


def test_good_rows_of_every_shape_still_load(cli, tmp_path):
    """The fixtures above are good apart from the corrupted field: unchanged, every task loads."""
    for folder in GOOD:
        for machine in (False, True) if folder != "WSC" else (False,):
            case = tmp_path / f"{folder}-{machine}"
            root = superglue_root(case, folder, machine=machine)
            cli.ok("baseline", "--task", f"slo-superglue/{TASK[folder]}", "--strategy", "majority", "--data-dir",
                   root, "--output", case / "out", *(["--train-set", "machine"] if machine else []))
            cli.ok("baseline", "--task", f"slo-superglue/{TASK[folder]}", "--strategy", "majority", "--split",
                   "test", "--data-dir", root, "--output", case / "test")
    cli.ok("baseline", "--task", "si-nli", "--strategy", "majority", "--data-dir", nli_root(tmp_path / "nli"),
           "--output", tmp_path / "nli-out")
    cli.ok("baseline", "--task", "mt/sl-en", "--strategy", "copy-source", "--data-dir", mt_root(tmp_path / "mt"),
           "--output", tmp_path / "mt-out")
