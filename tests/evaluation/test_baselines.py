"""Baselines reproduce the published majority-class numbers and give valid submissions."""

from __future__ import annotations

import json

import pytest

from slopeft.cli import main
from slopeft.evaluation.baselines import run_baseline
from slopeft.tasks import get_tasks

# ../shared/docs/slobench.md: "majority class from HT train", scored on the leaderboard's val.
PUBLISHED_MAJORITY = {
    "BoolQ Accuracy": 0.778, "CB Accuracy": 0.500, "CB F1 Score": 0.222, "COPA Accuracy": 0.450,
    "RTE Accuracy": 0.414, "WSC Accuracy": 0.635, "MultiRC F1a Score": 0.0, "MultiRC EM": 0.0, "Average": 0.440,
}


def test_majority_baseline_cli_matches_published_numbers(real_data_env, tmp_path, capsys):
    main(["baseline", "--task", "slo-superglue", "--strategy", "majority", "--split", "val", "--output", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name, expected in PUBLISHED_MAJORITY.items():
        assert metrics["leaderboard"][name] == pytest.approx(expected, abs=5e-4), name
    assert "0.440" in capsys.readouterr().out


def test_test_split_submission_passes_the_check(real_data_env, tmp_path, capsys):
    out = tmp_path / "out.zip"
    main(["baseline", "--task", "slo-superglue", "--strategy", "majority", "--split", "test",
          "--output", str(tmp_path / "run"), "--submission", str(out)])
    main(["submission", "check", str(out), "--task", "slo-superglue"])
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("strategy", ["random", "stratified"])
def test_seeded_baselines_are_reproducible_and_differ_by_seed(real_data_env, strategy):
    (task,) = get_tasks("si-nli")
    first = run_baseline([task], strategy, "val", seed=1)
    assert first == run_baseline([task], strategy, "val", seed=1)
    assert first != run_baseline([task], strategy, "val", seed=2)
    assert set(first["si-nli"].values()) <= set(task.spec.labels)


def test_copy_source_scores_translation_and_refuses_classification(real_data_env):
    (task,) = get_tasks("mt/sl-en")
    predictions = run_baseline([task], "copy-source", "val")["mt/sl-en"]
    assert predictions[0] == task.examples("val")[0].inputs["source"]
    from slopeft.errors import ConfigError

    with pytest.raises(ConfigError, match="copy-source"):
        run_baseline(get_tasks("slo-superglue/cb"), "copy-source", "val")
    with pytest.raises(ConfigError, match="generation task"):
        run_baseline([task], "majority", "val")


def test_an_unknown_strategy_names_the_known_ones(real_data_env):
    from slopeft.errors import ConfigError

    (task,) = get_tasks("si-nli")
    with pytest.raises(ConfigError, match=r"Unknown baseline strategy 'majorty'\. Did you mean 'majority'\? "
                                          r"Known baseline strategies: copy-source, few-shot, majority"):
        run_baseline([task], "majorty", "val")


def test_a_prompting_max_length_beyond_the_model_is_noted(real_data_env, tiny_models):
    from slopeft.evaluation.baselines import BASELINES
    from slopeft.tasks import get_task

    task = get_task("slo-superglue/cb")
    targets = task.examples("val")[:2]
    notes: list[str] = []
    BASELINES.get("zero-shot")(task, task.examples("train"), targets, model=str(tiny_models("gemma")),
                                max_length=100_000, batch_size=2, notes=notes)
    assert any("max_length 100000 is more than this model takes: inputs are cut at" in note for note in notes), notes
    notes.clear()
    BASELINES.get("zero-shot")(task, task.examples("train"), targets, model=str(tiny_models("gemma")),
                                max_length=64, batch_size=2, notes=notes)
    assert not any("more than this model takes" in note for note in notes), notes
