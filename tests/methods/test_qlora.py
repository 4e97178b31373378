"""QLoRA: without a usable bitsandbytes, a ConfigError that points to qa-lora; with it, LoRA on an NF4 base trains."""

from __future__ import annotations

import importlib.util

import pytest

from slopeft.errors import ConfigError
from slopeft.methods import METHODS, MethodContext
from slopeft.methods import qlora as qlora_module
from tests.methods._tiny import classifier, logits, token_batch, train_loop, trainer_two_steps
from tests.tolerance import assert_close

CONTEXT = MethodContext("encoder", "bert", ["classifier"], "SEQ_CLS")


def _bitsandbytes_usable() -> bool:
    return qlora_module.bitsandbytes_problem(qlora_module.training_device()) is None


def test_without_bitsandbytes_the_error_names_the_cpu_route(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "bitsandbytes" else real(name, *args)
    )
    with pytest.raises(ConfigError) as err:
        METHODS.get("qlora")({}).check_runnable(CONTEXT)
    message = str(err.value)
    assert "bitsandbytes is not installed" in message
    assert "pip install bitsandbytes" in message
    assert "--method qa-lora" in message


def test_a_bitsandbytes_that_cannot_do_nf4_here_is_a_config_error(monkeypatch):
    monkeypatch.setattr(qlora_module, "bitsandbytes_problem", lambda device: f"no NF4 kernel for {device}")
    with pytest.raises(ConfigError, match=r"no NF4 kernel for (cpu|cuda).*qa-lora"):
        METHODS.get("qlora")({}).check_runnable(CONTEXT)


def test_this_machines_status_is_reported_consistently():
    """Here (no bitsandbytes in the venv) check_runnable() fails with the qa-lora hint; with a working
    bitsandbytes it passes. check() asks only whether QLoRA applies to the model, so it passes either way
    (a grid keeps such runs: their published records count on any machine)."""
    method = METHODS.get("qlora")({})
    method.check(CONTEXT)
    if _bitsandbytes_usable():
        method.check_runnable(CONTEXT)
        assert method.environment_problem() is None
    else:
        with pytest.raises(ConfigError, match="qa-lora"):
            method.check_runnable(CONTEXT)
        assert "pip install bitsandbytes" in method.environment_problem()


@pytest.mark.parametrize("options", [{"quant_type": "int4"}, {"compute_dtype": "float64"}])
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        METHODS.get("qlora")(options)


needs_bitsandbytes = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None or not _bitsandbytes_usable(),
    reason="bitsandbytes is not installed or cannot do NF4 on this device (pip install bitsandbytes to run these)",
)


@needs_bitsandbytes
@pytest.mark.parametrize("arch", ["bert", "gemma"])
def test_two_trainer_steps_on_an_nf4_base(run_parts, tmp_path, arch):
    steps, _ = trainer_two_steps(run_parts, arch, "qlora", tmp_path)
    assert steps == 2


@needs_bitsandbytes
def test_nf4_base_save_load_and_merge(tiny_models, tmp_path):
    import bitsandbytes as bnb

    method = METHODS.get("qlora")({})
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) >= 12 and all(m.weight.quant_type == "nf4" for m in linear4)
    train_loop(method, model, steps=2)
    batch = token_batch(model)
    expected = logits(model, batch)
    method.save(model, tmp_path)
    base, context = classifier(tiny_models)
    fresh = METHODS.get("qlora")(method.options_dict())
    loaded = fresh.load(base, tmp_path, context)
    assert_close(logits(loaded, batch), expected)
    merged = fresh.merge(loaded)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in merged.modules())
    assert_close(logits(merged, batch), expected)


def test_the_nf4_probe_runs_in_its_own_interpreter(monkeypatch):
    """A grid's runner probes bitsandbytes while expanding the grid, then forks its runs: an NF4 round
    trip in the runner starts OpenMP's threads, and every forked run then hung in its first
    multi-threaded operation. The probe must run in a fresh interpreter."""
    import subprocess
    import sys

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        answer = {"ok": "", "bad": "bitsandbytes 0.0 returned wrong NF4 values on cpu"}[outcome]
        # bitsandbytes' own notes on stdout come before the answer
        stdout = f"a note bitsandbytes printed\n{qlora_module.PROBE_MARKER}{answer}\n"
        return subprocess.CompletedProcess(command, 0, stdout=stdout, stderr="")

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name, *a))
    monkeypatch.setattr(qlora_module.subprocess, "run", fake_run)
    qlora_module._probe_in_own_interpreter.cache_clear()
    outcome = "ok"
    assert qlora_module.bitsandbytes_problem("cpu") is None
    assert calls[0][:2] == [sys.executable, "-c"] and "nf4_round_trip('cpu')" in calls[0][2]
    qlora_module._probe_in_own_interpreter.cache_clear()
    outcome = "bad"
    assert qlora_module.bitsandbytes_problem("cpu") == "bitsandbytes 0.0 returned wrong NF4 values on cpu"
    qlora_module._probe_in_own_interpreter.cache_clear()

    def timeout(command, **kwargs):
        raise subprocess.TimeoutExpired(command, 300)

    monkeypatch.setattr(qlora_module.subprocess, "run", timeout)
    assert "did not finish" in qlora_module.bitsandbytes_problem("cpu")
    qlora_module._probe_in_own_interpreter.cache_clear()


# Run in a fresh interpreter: in this one, earlier tests may have trained QLoRA with bitsandbytes'
# kernels (which is what breaks a forked child); the probe alone must leave a process safe to fork.
FORK_AFTER_PROBE = """
import os, sys, time
import torch
from slopeft.methods import qlora
qlora.bitsandbytes_problem("cpu")
pid = os.fork()
if pid == 0:  # the child: a layer norm large enough for several threads (it hung here before)
    torch.set_num_threads(2)
    torch.nn.functional.layer_norm(torch.randn(256, 2000), (2000,))
    os._exit(0)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.1)
os.kill(pid, 9)
os.waitpid(pid, 0)
sys.exit("hung")
"""


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
def test_a_child_forked_after_the_probe_runs_multi_threaded_operations():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FORK_AFTER_PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        "a child forked after the bitsandbytes probe hung or failed in its first multi-threaded operation: "
        + (done.stderr.strip().splitlines() or [""])[-1]
    )
