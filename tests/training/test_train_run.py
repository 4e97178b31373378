"""The trainer end to end on a tiny model: records, reproducibility, resume, failures, adapters."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from slopeft.config import RunConfig, TrainingConfig, load_run_config
from slopeft.errors import ConfigError
from slopeft.evaluation.prediction import load_run, predict_split
from slopeft.models.tiny import make_tiny_model
from slopeft.training.run import train_run
from slopeft.training.trainer import TrainingError, epoch_order_seed, length_grouped_batches


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert")


def _config(tmp_path, model, **training) -> RunConfig:
    settings = {"epochs": 1.0, "batch_size": 8, "max_length": 48, "max_train_examples": 32, "eval_batch_size": 16,
                **training}
    return RunConfig(task="slo-superglue/cb", model=str(model), method="lora", output=str(tmp_path / "run"),
                     training=TrainingConfig(**settings))


def test_record_has_config_versions_metrics_and_costs(real_data_env, tiny_bert, tmp_path):
    record = train_run(_config(tmp_path, tiny_bert))
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved == json.loads(json.dumps(record, default=str))
    assert record["status"] == "completed"
    assert set(record["versions"]) >= {"slopeft", "torch", "transformers", "peft"}
    assert len(record["data"]["fingerprint"]) == 64
    assert record["data"]["train_examples"] == 32
    assert record["metrics"]["main_metric"] == "average"
    cost = record["cost"]
    assert cost["trainable"] == cost["trainable_head"] + cost["trainable_without_head"]
    assert cost["trainable_head"] == 64 * 3 + 3  # the classifier: hidden 64 → 3 CB classes
    assert 0 < cost["trainable_share"] < 0.1
    assert cost["adapter_bytes"] > 0 and cost["peak_rss_mb"] > 0 and cost["train_examples_per_s"] > 0
    assert cost["train_cpu_seconds"] > 0
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_max_length_beyond_the_model_is_said_and_recorded(real_data_env, tiny_bert, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    record = train_run(_config(tmp_path, tiny_bert, max_length=1000, max_train_examples=8), console=console)
    assert "training.max_length 1000 is more than this model takes: inputs are cut at 128 tokens" in console.export_text()
    assert record["data"]["sequence_limit"] == 128
    assert record["config"]["training"]["max_length"] == 1000  # what was asked stays in the config


def test_same_seed_same_numbers(real_data_env, tiny_bert, tmp_path):
    from safetensors.torch import load_file

    first = train_run(_config(tmp_path / "a", tiny_bert))
    second = train_run(_config(tmp_path / "b", tiny_bert))
    assert [h["metrics"] for h in first["metrics"]["history"]] == [h["metrics"] for h in second["metrics"]["history"]]
    weights_a = load_file(str(tmp_path / "a" / "run" / "adapter" / "adapter_model.safetensors"))
    weights_b = load_file(str(tmp_path / "b" / "run" / "adapter" / "adapter_model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    other_seed = train_run(dataclasses.replace(_config(tmp_path / "c", tiny_bert), seed=7))
    assert other_seed["cost"]["trainable"] == first["cost"]["trainable"]
    weights_c = load_file(str(tmp_path / "c" / "run" / "adapter" / "adapter_model.safetensors"))
    assert not all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


def test_saved_adapter_reloads_with_the_same_predictions(real_data_env, tiny_bert, tmp_path):
    record = train_run(_config(tmp_path, tiny_bert))
    parts, model, _ = load_run(tmp_path / "run")
    predictions = predict_split(parts, model, "val", 16)
    assert parts.task.metrics(predictions, parts.task.examples("val")) == pytest.approx(record["metrics"]["val"])


def test_finished_run_is_never_retrained(real_data_env, tiny_bert, tmp_path):
    first = train_run(_config(tmp_path, tiny_bert))
    again = train_run(_config(tmp_path, tiny_bert))
    assert again["finished_at"] == first["finished_at"]


def test_interrupted_run_resumes_to_the_same_result(real_data_env, tiny_bert, tmp_path, monkeypatch):
    reference = train_run(_config(tmp_path / "ref", tiny_bert, epochs=2.0))
    from slopeft.training import trainer as trainer_module

    calls = {"n": 0}
    real_step = trainer_module.Trainer._optimizer_step

    def interrupt_after_epoch_one(self, optimizers, schedulers):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 steps per epoch: the first epoch's checkpoint exists
            raise KeyboardInterrupt
        real_step(self, optimizers, schedulers)

    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", interrupt_after_epoch_one)
    config = _config(tmp_path / "killed", tiny_bert, epochs=2.0)
    with pytest.raises(TrainingError, match="--resume"):
        train_run(config)
    with pytest.raises(ConfigError, match="unfinished run"):
        train_run(config)
    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", real_step)
    resumed = train_run(config, resume=True)
    assert resumed["metrics"]["val"] == pytest.approx(reference["metrics"]["val"], abs=1e-6)


def test_non_finite_loss_stops_with_the_step_and_causes(real_data_env, tiny_bert, tmp_path, monkeypatch):
    from slopeft.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module.Trainer, "_loss", lambda self, batch: torch.tensor(float("nan")))
    with pytest.raises(TrainingError, match=r"loss became nan at step 1 .*learning rate"):
        train_run(_config(tmp_path, tiny_bert))


def test_adapter_on_a_different_base_is_a_clear_error(real_data_env, tiny_bert, tmp_path):
    train_run(_config(tmp_path, tiny_bert))
    other = make_tiny_model("xlm-roberta", tmp_path / "xlmr")
    with pytest.raises(ConfigError, match="different shape|does not fit"):
        load_run(tmp_path / "run", model_override=str(other))
    meta = tmp_path / "run" / "adapter" / "slopeft_adapter.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ConfigError, match="adapter format 99"):
        load_run(tmp_path / "run")


@pytest.mark.parametrize("method", ["full", "bitfit", "bitfit-subset", "dora"])
def test_core_methods_train_and_reload(real_data_env, tiny_bert, tmp_path, method):
    config = dataclasses.replace(_config(tmp_path, tiny_bert), method=method)
    record = train_run(config)
    parts, model, _ = load_run(tmp_path / "run")
    predictions = predict_split(parts, model, "val", 16)
    assert parts.task.metrics(predictions, parts.task.examples("val")) == pytest.approx(record["metrics"]["val"])


def test_bitfit_subset_trains_only_query_and_intermediate_biases(real_data_env, tiny_bert, tmp_path):
    record = train_run(dataclasses.replace(_config(tmp_path, tiny_bert), method="bitfit-subset"))
    from safetensors.torch import load_file

    names = set(load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors")))
    assert names and all(n.endswith(("query.bias", "intermediate.dense.bias")) or n.startswith("classifier.")
                         for n in names), names
    config = json.loads((tiny_bert / "config.json").read_text())
    per_layer = config["hidden_size"] + config["intermediate_size"]  # query bias + FFN-in bias
    assert record["cost"]["trainable_without_head"] == config["num_hidden_layers"] * per_layer


def test_class_weights_and_sparse_full_finetuning(real_data_env, tiny_bert, tmp_path):
    weighted = train_run(_config(tmp_path / "w", tiny_bert, class_weights=True))
    assert weighted["status"] == "completed"
    sparse = RunConfig(**{**dataclasses.asdict(_config(tmp_path / "s", tiny_bert)), "method": "full",
                          "training": _config(tmp_path / "s", tiny_bert).training,
                          "method_options": {"sparse_embeddings": True}})
    assert train_run(sparse)["status"] == "completed"


def test_length_grouping_is_seeded_and_covers_every_example():
    lengths = [5, 50, 7, 48, 6, 51, 9, 47] * 10
    first = length_grouped_batches(lengths, 4, seed=1, group=True)
    assert first == length_grouped_batches(lengths, 4, seed=1, group=True)
    assert sorted(i for b in first for i in b) == list(range(len(lengths)))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    plain = length_grouped_batches(lengths, 4, seed=1, group=False)
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)


def test_no_two_seeds_of_a_run_share_an_epochs_batch_order():
    seeds = {(seed, epoch): epoch_order_seed(seed, epoch) for seed in range(6) for epoch in range(20)}
    assert len(set(seeds.values())) == len(seeds)  # one order per (seed, epoch)
    assert [epoch_order_seed(1, epoch) for epoch in range(3)] == [1, 2, 3]  # seed 1's published orders
    lengths = [5, 50, 7, 48, 6, 51, 9, 47] * 10
    # What seed + epoch got wrong: seed 2's first epoch was seed 1's second.
    assert (length_grouped_batches(lengths, 4, epoch_order_seed(2, 0), True)
            != length_grouped_batches(lengths, 4, epoch_order_seed(1, 1), True))


def test_training_draws_each_epochs_order_from_its_seed_and_epoch(real_data_env, tiny_bert, tmp_path, monkeypatch):
    import slopeft.training.trainer as trainer_module

    drawn = []

    def recording(lengths, batch_size, seed, group):
        drawn.append(seed)
        return length_grouped_batches(lengths, batch_size, seed, group)

    monkeypatch.setattr(trainer_module, "length_grouped_batches", recording)
    config = dataclasses.replace(_config(tmp_path, tiny_bert, epochs=2.0), seed=2)
    assert train_run(config)["status"] == "completed"
    assert drawn == [epoch_order_seed(2, 0), epoch_order_seed(2, 1)]


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: si-nli\nmethod: lora\ntraining:\n  epochs: 2\nlora:\n  r: 4\n")
    config = load_run_config(path, ["lora.alpha=8", "training.learning_rate=1e-4"])
    assert (config.task, config.training.epochs, config.training.learning_rate) == ("si-nli", 2.0, 1e-4)
    assert config.method_options == {"r": 4, "alpha": 8}
    with pytest.raises(ConfigError, match="Did you mean epochs"):
        load_run_config(None, ["training.epoch=3"])
    with pytest.raises(ConfigError, match="unknown section 'dora'"):
        load_run_config(None, ["dora.r=3"])


def test_cpu_training_fixes_the_mmap_threshold_from_the_config(real_data_env, tiny_bert, tmp_path, monkeypatch):
    import slopeft.training.trainer as trainer_module

    applied = []
    monkeypatch.setattr(trainer_module, "limit_heap_fragmentation", applied.append)
    train_run(_config(tmp_path, tiny_bert, malloc_mmap_threshold_kib=2048, max_train_examples=8))
    assert applied == [2048]


def test_final_weights_are_kept_without_best_selection_and_scored_once(
    real_data_env, tiny_bert, tmp_path, monkeypatch
):
    from slopeft.models.heads.encoder import EncoderPairHead

    calls = []
    original = EncoderPairHead.predict

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EncoderPairHead, "predict", counting)
    config = _config(tmp_path, tiny_bert, epochs=3.0, learning_rate=5e-2, select_best=False)
    record = train_run(config)
    history = record["metrics"]["history"]
    assert len(history) == 3 and len(calls) == 3  # one evaluation per epoch; the record reuses the last
    assert record["metrics"]["val"] == history[-1]["metrics"]  # the final weights, whatever was best
    parts, model, _ = load_run(tmp_path / "run")
    assert predict_split(parts, model, "val", 16) == {
        int(k): v for k, v in json.loads((tmp_path / "run" / "val_predictions.json").read_text()).items()
    }


def test_machine_validation_set_and_extra_validation_sets_are_scored_and_kept(real_data_env, tiny_bert, tmp_path):
    config = dataclasses.replace(
        _config(tmp_path, tiny_bert, max_eval_examples=40), task="slo-superglue/rte", train_set="machine",
        val_set="machine", extra_val_sets=["human"],
    )
    record = train_run(config)
    assert record["data"]["val_examples"] == 40  # the first 40 of the 277 machine-translated dev rows
    extra = record["metrics"]["extra_val"]["human"]
    assert extra["examples"] == 29 and set(extra["metrics"]) == {"accuracy"}  # the leaderboard's HT val
    saved = json.loads((tmp_path / "run" / "val_predictions.human.json").read_text())
    assert len(saved) == 29
    assert set(saved.values()) <= {"entailment", "not_entailment"}
    with pytest.raises(ConfigError, match="no validation set 'machine'"):
        train_run(dataclasses.replace(config, task="slo-superglue/wsc", train_set=None, output=str(tmp_path / "w")))


def test_history_counts_the_epochs_each_evaluation_follows(real_data_env, tiny_bert, tmp_path):
    # 32 rows in batches of 8: 4 batches an epoch. The last evaluation of 3 epochs follows 3 epochs (not
    # the 2 the epoch counter said before it moved on); a stop after 1.5 epochs says 1.5.
    three = train_run(_config(tmp_path / "three", tiny_bert, epochs=3.0))
    assert [h["epoch"] for h in three["metrics"]["history"]] == [1, 2, 3]
    assert [h["step"] for h in three["metrics"]["history"]] == [4, 8, 12]
    partial = train_run(_config(tmp_path / "partial", tiny_bert, epochs=1.5))
    assert [(h["step"], h["epoch"]) for h in partial["metrics"]["history"]] == [(4, 1), (6, 1.5)]
