"""training.precision resolved per machine, and bf16 mixed precision training on a CPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from slopeft.config import RunConfig, TrainingConfig
from slopeft.errors import ConfigError
from slopeft.models.tiny import make_tiny_model
from slopeft.training.precision import resolve_precision
from slopeft.training.run import train_run


@pytest.mark.parametrize(
    ("requested", "native", "expected"),
    [
        ("auto", True, "fp32"),  # a run id names "auto": it means fp32 on every CPU
        ("auto", False, "fp32"),
        ("fastest", True, "bf16"),
        ("fastest", False, "fp32"),
        ("fp32", True, "fp32"),
        ("bf16", True, "bf16"),
    ],
)
def test_cpu_resolution(requested, native, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        assert resolve_precision(requested, cuda=False, native_cpu_bf16=native) == expected


def test_bf16_on_a_cpu_that_emulates_it_warns_and_fp16_is_refused():
    with pytest.warns(UserWarning, match="emulates it, which is slower than fp32"):
        assert resolve_precision("bf16", cuda=False, native_cpu_bf16=False) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_precision("fp16", cuda=False, native_cpu_bf16=True)
    with pytest.raises(ConfigError, match="must be one of auto, fastest, fp32, bf16, fp16"):
        resolve_precision("fp8", cuda=False)


def test_unknown_precision_is_refused_in_the_config():
    with pytest.raises(ConfigError, match="training.precision must be one of"):
        TrainingConfig(precision="half")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert")


def test_bf16_trains_under_cpu_autocast_with_float32_weights(real_data_env, tiny_bert, tmp_path, monkeypatch):
    seen = []
    original = torch.nn.Linear.forward

    def watching(self, x):
        if torch.is_grad_enabled():  # a training forward
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return original(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", watching)
    warnings.simplefilter("ignore")  # this CPU may only emulate bf16
    training = TrainingConfig(epochs=1.0, batch_size=8, max_length=48, max_train_examples=16, precision="bf16")
    config = RunConfig(task="slo-superglue/cb", model=str(tiny_bert), method="lora", output=str(tmp_path / "run"),
                       training=training)
    record = train_run(config)
    assert record["cost"]["precision"] == "bf16"
    assert seen and all(seen)  # every forward ran under bf16 autocast
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert weights and all(w.dtype == torch.float32 for w in weights.values())  # float32 masters
    bf16_forwards = len(seen)
    fp32 = train_run(RunConfig(task="slo-superglue/cb", model=str(tiny_bert), method="lora",
                               output=str(tmp_path / "fp32"), training=TrainingConfig(
                                   epochs=1.0, batch_size=8, max_length=48, max_train_examples=16)))
    assert fp32["cost"]["precision"] == "fp32"
    assert len(seen) > bf16_forwards and not any(seen[bf16_forwards:])  # the fp32 run's forwards did not


def test_a_precision_this_machine_cannot_train_in_fails_before_any_work(tiny_bert, tmp_path, monkeypatch):
    """fp16 on a CPU: refused before the model loads and before any folder exists, by train and quickstart."""
    import slopeft.training.run as run_module
    from slopeft.quickstart import QuickstartConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(run_module, "prepare_parts", lambda *a, **k: pytest.fail("the model was prepared"))
    config = RunConfig(task="slo-superglue/cb", model=str(tiny_bert), method="lora", output=str(tmp_path / "run"),
                       training=TrainingConfig(precision="fp16"))
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train_run(config)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        QuickstartConfig(model=str(tiny_bert), output=tmp_path / "quickstart", precision="fp16")
    assert not (tmp_path / "run").exists() and not (tmp_path / "quickstart").exists()
