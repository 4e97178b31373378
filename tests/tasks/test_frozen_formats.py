"""What every task shows a model stays byte for byte what it was: the encoder text pairs and choice
pairs, the generative prompts, candidates and targets (``frozen_formats.json``, the first three
validation and two training examples of each task). A change here changes every trained number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slopeft.tasks import get_task
from slopeft.tasks.formats import TaskFormat

FROZEN = json.loads((Path(__file__).parent / "frozen_formats.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_task_presentation_is_unchanged(real_data_env, name):
    task = get_task(name)
    fmt = TaskFormat.for_task(task)
    frozen = FROZEN[name]
    assert fmt.long_field == frozen["long_field"]
    assert {str(k): v for k, v in fmt.verbalizer.items()} == frozen["verbalizer"]
    if frozen["candidate_labels"] is not None:
        assert [str(x) for x in fmt.candidate_labels()] == frozen["candidate_labels"]
    examples = task.examples("val")[:3] + task.examples("train")[:2]
    assert [e.idx for e in examples] == [row["idx"] for row in frozen["examples"]]
    for example, row in zip(examples, frozen["examples"], strict=True):
        assert fmt.prompt(example) == row["prompt"]
        assert fmt.target(example) == row["target"]
        if "choice_pairs" in row:
            assert [list(p) for p in fmt.choice_pairs(example)] == row["choice_pairs"]
        if "text_pair" in row:
            assert list(fmt.text_pair(example)) == row["text_pair"]
        if "candidates" in row:
            assert fmt.candidates(example) == row["candidates"]
