"""Every task loads the real data with the row counts of ../shared/data/README.md."""

from __future__ import annotations

import pytest

from slopeft.cli import main
from slopeft.errors import ConfigError
from slopeft.tasks import TASKS, get_task, get_tasks

# (task, train set) -> (train, val, test) rows, from ../shared/data/README.md
README_COUNTS = {
    ("slo-superglue/boolq", "human"): (92, 18, 30),
    ("slo-superglue/boolq", "machine"): (9427, 18, 30),
    ("slo-superglue/cb", "human"): (250, 56, 250),
    ("slo-superglue/copa", "human"): (400, 100, 500),
    ("slo-superglue/rte", "human"): (232, 29, 29),
    ("slo-superglue/rte", "machine"): (2490, 29, 29),
    ("slo-superglue/wsc", "human"): (554, 104, 146),
    ("slo-superglue/multirc", "human"): (946, 145, 1672),
    ("si-nli", "human"): (4392 - 440, 440, 998),
    ("mt/sl-en", "ntrex128"): (1997, 533, 1012),
    ("mt/en-sl", "ntrex128"): (1997, 533, 1012),
}


@pytest.mark.parametrize(("name", "train_set"), list(README_COUNTS))
def test_row_counts(real_data_env, name, train_set):
    task = get_task(name, train_set=train_set)
    assert tuple(len(task.examples(s)) for s in ("train", "val", "test")) == README_COUNTS[(name, train_set)]


def test_every_task_has_a_count(real_data_env):
    assert {name for name, _ in README_COUNTS} == set(TASKS.names())


def test_multirc_passages_and_machine_labels(real_data_env):
    human = get_task("slo-superglue/multirc")
    assert human.count_rows("train") == "15 passages (946 answers)"
    assert human.count_rows("val") == "3 passages (145 answers)"
    machine = get_task("slo-superglue/multirc", train_set="machine")
    examples = machine.examples("train")
    labels = {e.label for e in examples}
    assert labels == {0, 1}  # "0,0" and "1.0" strings parsed, never truthy
    assert machine.count_rows("train").startswith("456 passages")
    assert len(machine.notes) == 3  # the three MT answers without text
    assert not any("&quot;" in e.inputs["passage"] for e in examples)


def test_combined_is_human_plus_machine(real_data_env):
    combined = get_task("slo-superglue/rte", train_set="combined").examples("train")
    assert len(combined) == 232 + 2490
    assert {e.origin for e in combined} == {"human", "machine"}


def test_wsc_has_no_machine_set_but_the_group_falls_back(real_data_env):
    with pytest.raises(ConfigError, match="no training set 'machine'"):
        get_task("slo-superglue/wsc", train_set="machine")
    tasks = get_tasks("slo-superglue", train_set="machine")
    assert {t.name: t.train_set for t in tasks}["slo-superglue/wsc"] == "human"


def test_si_nli_validation_is_a_fixed_stratified_holdout(real_data_env):
    task = get_task("si-nli")
    train, val = task.examples("train"), task.examples("val")
    assert not {e.idx for e in train} & {e.idx for e in val}
    assert [e.idx for e in val] == [e.idx for e in get_task("si-nli").examples("val")]
    shares = [sum(e.label == c for e in val) / len(val) for c in task.spec.labels]
    assert all(0.3 < s < 0.37 for s in shares)


def test_user_parallel_files_replace_training_data(real_data_env, tmp_path):
    (tmp_path / "sl.txt").write_text("Dober dan.\nHvala.\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("Good day.\nThanks.\n", encoding="utf-8")
    by_folder = get_task("mt/sl-en", train_set=str(tmp_path)).examples("train")
    by_files = get_task("mt/en-sl", train_files=(tmp_path / "en.txt", tmp_path / "sl.txt")).examples("train")
    assert [(e.inputs["source"], e.label) for e in by_folder] == [("Dober dan.", "Good day."), ("Hvala.", "Thanks.")]
    assert by_files[1].inputs["source"] == "Thanks." and by_files[1].label == "Hvala."


def test_data_list_prints_every_task(real_data_env, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    main(["data", "list"])
    out = capsys.readouterr().out
    for name in TASKS.names():
        assert name in out
    assert "15 passages (946 answers)" in out


def test_leaderboard_test_source_replaces_local_test(real_data_env, tmp_path):
    (tmp_path / "src.txt").write_text("Dober dan.\nHvala.\n", encoding="utf-8")
    task = get_task("mt/sl-en", test_source=tmp_path / "src.txt")
    assert [(e.inputs["source"], e.label) for e in task.examples("test")] == [("Dober dan.", None), ("Hvala.", None)]
    assert len(task.examples("val")) == 533


def test_a_multirc_slice_ends_on_a_question_boundary(real_data_env):
    from slopeft.tasks import get_task

    task = get_task("slo-superglue/multirc", val_set="machine")
    examples = task.examples("val")
    sliced = task.first(examples, 1000)
    assert 900 < len(sliced) <= 1000
    last_question = sliced[-1].inputs["question_idx"]
    assert examples[len(sliced)].inputs["question_idx"] != last_question  # nothing of a question left out
    assert task.first(examples, 0) == examples
    si_nli = get_task("si-nli")
    assert si_nli.first(si_nli.examples("val"), 7) == si_nli.examples("val")[:7]
    # A slice shorter than the first question keeps that whole question, not nothing.
    first = next(i for i, e in enumerate(examples) if e.inputs["question_idx"] != examples[0].inputs["question_idx"])
    assert first > 1
    assert task.first(examples, 1) == examples[:first]
