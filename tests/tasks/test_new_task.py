"""Adding a task is one module: a throwaway pair-classification task (and a group of two), registered
here, loads, is shown to encoders and generative models, scores, submits, and trains, with no other
file of slopeft touched."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from rich.console import Console

from slopeft.errors import ConfigError
from slopeft.metrics.classification import accuracy
from slopeft.tasks import TASK_GROUPS, TASKS, Example, Split, TaskGroup, TaskSpec, expand_task_names, get_task
from slopeft.tasks.formats import TaskFormat
from slopeft.tasks.line_based import LineSubmissionTask

ROWS = [
    ("Vlak zamuja.", "Vlak ima zamudo.", "same"),
    ("Danes sije sonce.", "Zunaj dežuje.", "different"),
    ("Ana bere knjigo.", "Knjigo bere Ana.", "same"),
    ("Peter teče.", "Peter spi.", "different"),
] * 4


class Paraphrase(LineSubmissionTask):
    """Do the two sentences say the same? (In-memory rows: a real task reads its dataset's files.)"""

    spec = TaskSpec(
        name="throwaway/paraphrase",
        kind="pair-classification",
        labels=("same", "different"),
        metric_names=("accuracy",),
        main_metric="accuracy",
        dataset="throwaway",
        text_fields=("sentence1", "sentence2"),
        verbalizer={"same": "da", "different": "ne"},
    )
    submission_name = "paraphrase.txt"
    submission_name_required = True

    def _load(self, split: Split) -> list[Example]:
        labelled = split != "test"
        return [
            Example(i, {"sentence1": a, "sentence2": b}, label if labelled else None)
            for i, (a, b, label) in enumerate(ROWS)
        ]

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        return {"accuracy": accuracy(*self.aligned(predictions, examples))}

    def parse_line(self, line: str) -> str:
        if line.strip() not in self.spec.labels:
            raise ValueError(f"{line!r} is not same or different")
        return line.strip()


class Reversed(Paraphrase):
    spec = dataclasses.replace(
        Paraphrase.spec, name="throwaway/reversed", short_name="", pair=("{sentence2}", "{sentence1}")
    )
    submission_name = "reversed.txt"


GROUP = TaskGroup(
    name="throwaway",
    members=("throwaway/paraphrase", "throwaway/reversed"),
    title="Throwaway board",
    board_names={("throwaway/paraphrase", "accuracy"): "Paraphrase", ("throwaway/reversed", "accuracy"): "Reversed"},
    average_parts={"throwaway/paraphrase": "accuracy", "throwaway/reversed": "accuracy"},
    average_description="mean of the two accuracies",
)


@pytest.fixture
def registered():
    TASKS.add(Paraphrase.spec.name, Paraphrase)
    TASKS.add(Reversed.spec.name, Reversed)
    TASK_GROUPS.add(GROUP.name, GROUP)
    try:
        yield
    finally:
        TASKS.remove(Paraphrase.spec.name)
        TASKS.remove(Reversed.spec.name)
        TASK_GROUPS.remove(GROUP.name)


def test_a_new_pair_task_is_shown_to_every_model_family(registered, tiny_models):
    from transformers import AutoTokenizer

    from slopeft.models.heads import build_head

    task = get_task("throwaway/paraphrase")
    fmt = TaskFormat.for_task(task)
    example = task.examples("val")[0]
    assert fmt.text_pair(example) == ("Vlak zamuja.", "Vlak ima zamudo.")
    # no prompt declared: both texts, then the answer cue with the task's label words
    assert fmt.prompt(example) == "Vlak zamuja.\nVlak ima zamudo.\nOdgovor (da ali ne):"
    assert fmt.candidates(example) == [" da", " ne"] and fmt.target(example) == " da"
    assert TaskFormat.for_task(get_task("throwaway/reversed")).text_pair(example) == (
        "Vlak ima zamudo.",
        "Vlak zamuja.",
    )
    broken = dataclasses.replace(task.spec, prompt="{sentence1}\nVprašanje: {question}")
    with pytest.raises(ConfigError, match="names the field 'question'"):
        TaskFormat.for_task(type("Broken", (Paraphrase,), {"spec": broken})()).prompt(example)
    for arch, family in (("bert", "encoder"), ("gemma", "causal")):
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_models(arch)))
        head = build_head(fmt, tokenizer, family, max_length=32)
        features = head.encode(task.examples("train")[:4], with_labels=True)
        assert len(features) == 4 and all(head.feature_length(f) > 0 for f in features)
        assert head.peft_task_type == {"encoder": "SEQ_CLS", "causal": "CAUSAL_LM"}[family]


def test_a_new_group_scores_submits_and_expands(registered, tmp_path):
    from slopeft.evaluation.baselines import run_baseline
    from slopeft.tasks.submission import (
        expected_files,
        parse_unit,
        read_prediction_files,
        score_unit,
        submission_files,
        write_zip,
    )

    assert expand_task_names("throwaway") == GROUP.members
    tasks = [get_task(name) for name in GROUP.members]
    predictions = run_baseline(tasks, "majority", "val")
    report = score_unit(tasks, predictions, "val")
    assert report.per_task["throwaway/paraphrase"] == {"accuracy": 0.5}
    assert report.board == {"Paraphrase": 0.5, "Reversed": 0.5, "Average": 0.5}
    assert expected_files(tasks) == {"paraphrase.txt", "reversed.txt"}
    zipped = write_zip(submission_files(tasks, predictions, "test"), tmp_path / "sub.zip")
    assert parse_unit(tasks, read_prediction_files(zipped), "test") == predictions


def test_a_new_task_trains_through_the_trainer(registered, tiny_models, tmp_path):
    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.training.run import train_run

    config = RunConfig(
        task="throwaway/paraphrase",
        model=str(tiny_models("bert")),
        method="lora",
        seed=1,
        output=str(tmp_path / "run"),
        training=TrainingConfig(max_steps=2, epochs=1, batch_size=4, max_length=32, eval_batch_size=8),
    )
    record = train_run(config, console=Console(file=io.StringIO()))
    assert record["metrics"]["main_metric"] == "accuracy" and record["cost"]["steps"] == 2
