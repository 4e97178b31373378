"""Bad numeric and typed options through the CLI: every TrainingConfig field, every field of every
method's options, the run's own fields and the commands' numeric flags. Each is refused with exit
status 2 and a paragraph naming the setting and its allowed range, before a run folder exists."""

from __future__ import annotations

import dataclasses

import pytest

from slopeft.config import TrainingConfig
from slopeft.methods import METHODS

# Every TrainingConfig field with values it must refuse (out of range, not finite, of the wrong type).
BAD_TRAINING = {
    "epochs": ["-1", ".nan", ".inf", "many"],
    "max_steps": ["-1", "2.5"],
    "batch_size": ["0", "-4", "1.5"],
    "grad_accumulation": ["0", "-1"],
    "learning_rate": ["0", "-1", "-1e-3", ".nan", ".inf", "fast"],
    "weight_decay": ["-0.1", ".nan"],
    "warmup_ratio": ["-0.1", "1", "1.5"],
    "scheduler": ["exponential", "3"],
    "max_length": ["0", "-1", "4"],
    "eval_batch_size": ["0"],
    "eval_every": ["-1"],
    "patience": ["-2"],
    "class_weights": ["maybe", "2"],
    "group_by_length": ["sometimes"],
    "precision": ["fp8", "16"],
    "max_train_examples": ["-5"],
    "max_eval_examples": ["-1"],
    "max_grad_norm": ["-1", ".nan", ".inf"],
    "log_every": ["0", "-3"],
    "select_best": ["best"],
    "malloc_mmap_threshold_kib": ["-1", "40000"],
}

# Every option of every method with values it must refuse.
BAD_METHOD_OPTIONS = {
    "full": {"sparse_embeddings": ["maybe"]},
    "bitfit": {"pooler_bias": ["perhaps", "2"]},
    "bitfit-subset": {},
    "lora": {"r": ["0", "-1", "2.5"], "alpha": ["0", "-8", ".nan"], "dropout": ["-0.1", "1", "2"],
             "target_modules": ["[]", "['']", "[3]"], "use_rslora": ["perhaps"]},
    "dora": {"r": ["0"], "alpha": ["-1"], "dropout": ["1.5"], "target_modules": ["[]"], "use_rslora": ["x"]},
    "adalora": {"init_r": ["0", "-1"], "target_r": ["0", "20"], "alpha": ["0"], "dropout": ["1"],
                "target_modules": ["[]"], "tinit": ["-1"], "tfinal": ["-0.5"], "deltaT": ["0"],
                "beta1": ["0", "1"], "beta2": ["1.5"], "orth_reg_weight": ["-0.1"], "total_step": ["-1"]},
    "ia3": {"target_modules": ["[]", "['']"], "feedforward_modules": ["['']", "[1]"]},
    "prompt-tuning": {"num_virtual_tokens": ["0", "-5"], "init": ["zeros"], "init_text": ["''", "'  '"]},
    "p-tuning": {"num_virtual_tokens": ["0"], "encoder": ["GRU"], "encoder_hidden_size": ["0"],
                 "encoder_num_layers": ["0"], "encoder_dropout": ["1", "-0.5"]},
    "prefix-tuning": {"num_virtual_tokens": ["0"], "prefix_projection": ["sure"], "encoder_hidden_size": ["0"], "init": ["zeros"],
                      "dropout": ["1"]},
    "increlora": {"init_r": ["0"], "target_rank": ["0"], "max_rank": ["-1", "1"], "rank_step": ["-1"],
                  "top_h": ["0"], "init_warmup": ["-1"], "incre_interval": ["0"], "finish_by": ["-0.1", "1.5"],
                  "beta1": ["0"], "beta2": ["1"], "alpha": ["0"], "dropout": ["1"], "orth_reg": ["-1"],
                  "advance_learning": ["often"], "reserve_lambda": ["-1e-5", ".nan"], "restart_warmup": ["-1"],
                  "target_modules": ["[]"]},
    "qa-lora": {"r": ["0"], "alpha": ["0"], "dropout": ["1"], "group_size": ["0", "-32"], "bits": ["3", "0"],
                "target_modules": ["[]"]},
    "qlora": {"r": ["0"], "alpha": ["-1"], "dropout": ["1"], "target_modules": ["[]"], "quant_type": ["int4"],
              "double_quant": ["twice"], "compute_dtype": ["float64"]},
    "mola": {"experts": ["0", "2-0-2", "many", "''"], "top_k": ["0"], "r": ["0"], "alpha": ["0"],
             "dropout": ["1"], "balance_coef": ["-0.01"], "target_modules": ["[]"]},
}


def test_every_setting_has_bad_cases():
    """A field added to TrainingConfig or to a method's options needs its bad values listed here."""
    assert set(BAD_TRAINING) == {f.name for f in dataclasses.fields(TrainingConfig)}
    assert set(BAD_METHOD_OPTIONS) == set(METHODS.names())
    for name, cases in BAD_METHOD_OPTIONS.items():
        fields = {f.name for f in dataclasses.fields(METHODS.get(name).config_class)}
        assert set(cases) == fields, name


TRAINING_CASES = [(field, value) for field, values in BAD_TRAINING.items() for value in values]
METHOD_CASES = [
    (method, field, value)
    for method, fields in BAD_METHOD_OPTIONS.items()
    for field, values in fields.items()
    for value in values
]


@pytest.fixture(scope="module")
def tiny_bert(tiny_models):
    return tiny_models("bert")


@pytest.mark.parametrize(("field", "value"), TRAINING_CASES, ids=[f"{f}={v}" for f, v in TRAINING_CASES])
def test_a_bad_training_setting_is_refused(cli, tmp_path, tiny_bert, field, value):
    out = tmp_path / "run"
    message = cli.fails("train", "--task", "slo-superglue/cb", "--model", tiny_bert, "--method", "lora",
                        "--set", f"training.{field}={value}", "--output", out, watch=out)
    assert f"training.{field}" in message or f"TrainingConfig.{field}" in message, message


@pytest.mark.parametrize(("method", "field", "value"), METHOD_CASES, ids=[f"{m}.{f}={v}" for m, f, v in METHOD_CASES])
def test_a_bad_method_option_is_refused(cli, tmp_path, tiny_bert, method, field, value):
    out = tmp_path / "run"
    message = cli.fails("train", "--task", "slo-superglue/cb", "--model", tiny_bert, "--method", method,
                        "--set", f"{method}.{field}={value}", "--output", out, watch=out)
    assert field in message, message


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [("training.learning_rate=0", "learning_rate > 0"), ("training.max_train_examples=-5", "max_train_examples ≥ 0"),
     ("training.max_grad_norm=-1", "max_grad_norm ≥ 0"), ("lora.r=0", "r ≥ 1"), ("lora.dropout=2", "0 ≤ dropout < 1"),
     ("training.max_length=0", "max_length ≥ 8"), ("training.warmup_ratio=1", "0 ≤ warmup_ratio < 1")],
)
def test_the_message_gives_the_allowed_range(cli, tmp_path, tiny_bert, setting, allowed):
    message = cli.fails("train", "--task", "slo-superglue/cb", "--model", tiny_bert, "--method", "lora",
                        "--set", setting, "--output", tmp_path / "run", watch=tmp_path / "run")
    assert allowed in message, message


def test_an_explicit_learning_rate_is_the_one_used(real_data_env, tiny_bert, tmp_path):
    """`training.learning_rate` set is used as it is (the trainer once read 0 as 'the recipe')."""
    from slopeft.config import RunConfig
    from slopeft.training.run import train_run

    config = RunConfig(task="slo-superglue/cb", model=str(tiny_bert), method="lora", output=str(tmp_path / "r"),
                       training=TrainingConfig(learning_rate=3e-7, max_steps=1, epochs=0, batch_size=4,
                                               max_train_examples=4, max_eval_examples=4, max_length=16))
    assert train_run(config)["learning_rate"] == 3e-7


@pytest.mark.parametrize(
    "yaml_text",
    ["seed: -1\n", f"seed: {2**32}\n", "seed: 1.5\n", "extra_val_sets: ['']\n", "extra_val_sets: [3]\n",
     "method: ''\n", "training: {epochs: -1}\n", "training: 3\n", "lora: {r: 0}\n"],
)
def test_bad_run_settings_in_a_config_file_are_refused(cli, tmp_path, tiny_bert, yaml_text):
    path = tmp_path / "run.yaml"
    path.write_text(f"task: slo-superglue/cb\nmodel: {tiny_bert}\n{yaml_text}")
    out = tmp_path / "run"
    cli.fails("train", "--config", path, "--output", out, watch=out)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--task", "slo-superglue/cb", "--seed", "-1"],
        ["baseline", "--task", "slo-superglue/cb", "--strategy", "few-shot", "--shots", "0"],
        ["baseline", "--task", "slo-superglue/cb", "--strategy", "zero-shot", "--batch-size", "0"],
        ["baseline", "--task", "slo-superglue/cb", "--strategy", "zero-shot", "--max-length", "2"],
        ["baseline", "--task", "slo-superglue/cb", "--seed", "-3"],
        ["evaluate", "--run", "runs/x", "--batch-size", "0"],
        ["predict", "--run", "runs/x", "--batch-size", "-1"],
        ["submit", "--runs", "runs/x", "--out", "x.zip", "--batch-size", "0"],
        ["quickstart", "--train-examples", "-1"],
        ["quickstart", "--eval-examples", "-5"],
        ["quickstart", "--epochs", "0"],
        ["quickstart", "--learning-rate", "0"],
        ["quickstart", "--learning-rate", "nan"],
        ["grid", "run", "configs/grids/smoke.yaml", "--workers", "0"],
        ["report", "--grid", "configs/grids/smoke.yaml", "--out", "report", "--draws", "0"],
        ["models", "make-tiny", "--arch", "bert", "--out", "tiny", "--seed", "-1"],
        ["evaluate", "--run", "runs/x", "--batch-size", "many"],
        ["train", "--task", "slo-superglue/cb", "--seed", "forty-two"],
        ["quickstart", "--epochs", "one"],
        ["train", "--task", "slo-superglue/cb", "--no-such-flag", "1"],
    ],
    ids=lambda args: " ".join(args[:2]) + " " + " ".join(args[-2:]),
)
def test_a_bad_numeric_flag_is_refused(cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    cli.fails(*args, watch=tmp_path)


def test_prompting_settings_from_a_grid_are_checked_too(real_data_env):
    from slopeft.errors import ConfigError
    from slopeft.evaluation.prompting import few_shot, zero_shot
    from slopeft.tasks import get_task

    task = get_task("slo-superglue/cb")
    for strategy, setting in ((zero_shot, {"batch_size": 0}), (zero_shot, {"max_length": 3}),
                              (few_shot, {"shots": -1})):
        with pytest.raises(ConfigError, match=next(iter(setting))):
            strategy(task, [], task.examples("val")[:2], model="gemma-3-270m", **setting)
