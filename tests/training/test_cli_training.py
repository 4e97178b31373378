"""train → evaluate → predict → submit through the CLI on a tiny model."""

from __future__ import annotations

import json
import zipfile

import pytest

from slopeft.cli import main
from slopeft.models.tiny import make_tiny_model

QUICK = ["--set", "training.epochs=1", "--set", "training.max_train_examples=8", "--set",
         "training.max_length=32", "--set", "training.batch_size=4", "--set", "training.max_eval_examples=16"]


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory):
    return make_tiny_model("xlm-roberta", tmp_path_factory.mktemp("tiny") / "xlmr")


def test_six_superglue_runs_make_one_valid_submission(real_data_env, tiny_xlmr, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runs = []
    for task in ("boolq", "cb", "copa", "multirc", "rte", "wsc"):
        out = tmp_path / task
        main(["train", "--task", f"slo-superglue/{task}", "--model", str(tiny_xlmr), "--method", "bitfit",
              "--output", str(out), *QUICK])
        runs.append(str(out))
    main(["evaluate", "--run", runs[1]])
    assert "macro_f1" in capsys.readouterr().out
    zip_path = tmp_path / "superglue.zip"
    args = ["submit", "--out", str(zip_path)]
    for run in runs:
        args += ["--runs", run]
    main(args)
    out = capsys.readouterr().out
    assert "valid submission for slo-superglue" in out
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ["BoolQ.jsonl", "CB.jsonl", "COPA.jsonl", "MultiRC.jsonl", "RTE.jsonl",
                                              "WSC.jsonl"]
        assert len(archive.read("COPA.jsonl").decode().splitlines()) == 500


def test_incomplete_submission_and_unknown_method_are_clear_errors(real_data_env, tiny_xlmr, tmp_path, capsys):
    out = tmp_path / "cb"
    main(["train", "--task", "slo-superglue/cb", "--model", str(tiny_xlmr), "--method", "lora", "--output",
          str(out), *QUICK])
    with pytest.raises(SystemExit) as exit_info:
        main(["submit", "--runs", str(out), "--runs", str(out), "--out", str(tmp_path / "x.zip")])
    assert exit_info.value.code == 2
    assert "Two runs for slo-superglue/cb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--task", "slo-superglue/cb", "--model", str(tiny_xlmr), "--method", "loraa", "--output",
              str(tmp_path / "typo")])
    assert "Unknown method 'loraa'. Did you mean 'lora'" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()  # a rejected command leaves nothing behind
    record = json.loads((out / "record.json").read_text())
    assert record["config"]["method"] == "lora"


def test_predict_writes_leaderboard_files(real_data_env, tiny_xlmr, tmp_path):
    out = tmp_path / "nli"
    main(["train", "--task", "si-nli", "--model", str(tiny_xlmr), "--method", "lora", "--output", str(out), *QUICK])
    main(["predict", "--run", str(out), "--split", "test"])
    lines = (out / "predictions" / "test" / "submission.txt").read_text().splitlines()
    assert len(lines) == 998 and set(lines) <= {"entailment", "neutral", "contradiction"}


def test_mt_run_records_the_nltk_release_of_its_metrics(real_data_env, tiny_models, tmp_path, capsys):
    out = tmp_path / "mt"
    main(["train", "--task", "mt/sl-en", "--model", str(tiny_models("marian")), "--method", "lora", "--output",
          str(out), *QUICK, "--set", "training.max_eval_examples=4", "--nltk", "3.6.5"])
    metrics = json.loads((out / "record.json").read_text())["metrics"]
    assert metrics["scoring"] == {"nltk": "3.6.5"} and isinstance(metrics["warnings"], list)
    main(["evaluate", "--run", str(out)])  # scored again, with the default (the evaluator's pin, 3.6.6)
    assert "chrF (corpus)" in capsys.readouterr().out
