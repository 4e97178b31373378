"""Artefacts slopeft reads back, through the CLI: a damaged record, adapter metadata or adapter
weights, a pickle-only adapter or model folder, a model folder without (or with another model's)
tokenizer, and an adapter on a base with other weights. Each is refused with exit status 2 and one
paragraph, and nothing is left behind; --allow-other-base is the explicit override."""

from __future__ import annotations

import json
import shutil

import pytest

from slopeft.models.tiny import make_tiny_model

SETTINGS = ["training.epochs=1", "training.batch_size=8", "training.max_length=32", "training.max_train_examples=16",
            "training.max_eval_examples=8", "training.eval_batch_size=8"]


def _train_args(model, out):
    return ["train", "--task", "slo-superglue/cb", "--method", "lora", "--model", model, "--output", out,
            *(a for s in SETTINGS for a in ("--set", s))]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture
def trained(cli, tmp_path, tiny_bert, real_data_env):
    run = tmp_path / "run"
    cli.ok(*_train_args(tiny_bert, run))
    return run


def test_the_record_names_the_base_weights(trained):
    record = json.loads((trained / "record.json").read_text())
    meta = json.loads((trained / "adapter" / "slopeft_adapter.json").read_text())
    assert record["base"]["weights"] == meta["base"]["weights"]
    assert len(record["base"]["weights"]["sha256"]) == 32 and record["base"]["revision"] is None


@pytest.mark.parametrize(
    "damage",
    ["record-truncated", "record-not-an-object", "meta-truncated", "meta-without-base", "adapter-truncated",
     "adapter-pickle-only"],
)
def test_a_damaged_run_folder_is_refused(cli, trained, damage):
    record, adapter = trained / "record.json", trained / "adapter"
    meta, weights = adapter / "slopeft_adapter.json", adapter / "adapter_model.safetensors"
    if damage == "record-truncated":
        record.write_text(record.read_text()[:200])
    elif damage == "record-not-an-object":
        record.write_text("[]")
    elif damage == "meta-truncated":
        meta.write_text(meta.read_text()[:50])
    elif damage == "meta-without-base":
        meta.write_text(json.dumps({"format_version": 1}))
    elif damage == "adapter-truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.unlink()
        (adapter / "adapter_model.bin").write_bytes(b"\x80\x04not really a pickle")
    message = cli.fails("evaluate", "--run", trained, watch=trained)
    assert str(trained) in message
    if damage == "adapter-pickle-only":
        assert "pickle" in message and "safetensors" in message


def test_an_adapter_on_a_base_with_other_weights_is_refused_unless_allowed(cli, tmp_path, trained, tiny_bert):
    import torch
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other-bert"
    shutil.copytree(tiny_bert, other)
    weights_file = other / "model.safetensors"
    weights = load_file(str(weights_file))
    weights = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    record = json.loads((trained / "record.json").read_text())
    record["config"]["model"] = str(other)
    (trained / "record.json").write_text(json.dumps(record))
    message = cli.fails("evaluate", "--run", trained, watch=trained)
    assert "other base weights" in message and "--allow-other-base" in message
    out = cli.ok("evaluate", "--run", trained, "--allow-other-base")
    assert "Traceback" not in out


def test_a_pickle_only_model_folder_is_refused(cli, tmp_path, tiny_bert, real_data_env):
    model = tmp_path / "pickled"
    shutil.copytree(tiny_bert, model)
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    out = tmp_path / "run"
    message = cli.fails(*_train_args(model, out), watch=tmp_path)
    assert "pickle" in message and "pytorch_model.bin" in message


def test_a_model_folder_without_tokenizer_files_is_refused(cli, tmp_path, tiny_bert, real_data_env):
    model = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_bert, model)
    for path in model.iterdir():
        if "token" in path.name or path.name in ("vocab.txt", "special_tokens_map.json"):
            path.unlink()
    out = tmp_path / "run"
    message = cli.fails(*_train_args(model, out), watch=tmp_path)
    assert "tokenizer" in message.lower() and str(model) in message


def test_a_tokenizer_of_another_size_is_refused(cli, tmp_path, tiny_bert, real_data_env):
    model = tmp_path / "small-vocab"
    shutil.copytree(tiny_bert, model)
    config = json.loads((model / "config.json").read_text())
    config["vocab_size"] = 50  # the tokenizer's ids go beyond the embedding
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    message = cli.fails(*_train_args(model, out), watch=tmp_path)
    assert "vocab_size" in message


def test_predictions_are_written_atomically(cli, trained, monkeypatch):
    """A full disk while writing the predictions leaves no half-written file (only what was there)."""
    import errno
    import os

    import slopeft.files as files

    predictions = trained / "predictions"

    def full(path, text, what=""):
        with files.atomic_path(path, what) as tmp:
            tmp.write_text(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("slopeft.evaluation.workflows.write_text_atomic", full)
    message = cli.fails("predict", "--run", trained, "--split", "val", watch=trained)
    assert "No space left" in message
    assert not predictions.exists() or not any(predictions.rglob("*.jsonl"))


@pytest.mark.parametrize("where", ["the-file", "the-file/run"])
def test_an_output_that_is_a_file_or_lies_under_one_is_refused(cli, tmp_path, tiny_bert, real_data_env, where):
    (tmp_path / "the-file").write_text("my notes\n")
    message = cli.fails(*_train_args(tiny_bert, tmp_path / where), watch=tmp_path)
    assert "--output" in message and str(tmp_path / where) in message
    assert (tmp_path / "the-file").read_text() == "my notes\n"
