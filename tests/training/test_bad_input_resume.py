"""Resume, interrupts and a full disk through the CLI: --resume without a checkpoint, with a changed
configuration or a damaged checkpoint is refused (exit 2, one paragraph, nothing changed); SIGTERM
saves a checkpoint like SIGINT; a resumed run is bit-identical to an uninterrupted one; a full disk
when the results are written keeps the trained state, and --resume writes them without training."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch

from slopeft.models.tiny import make_tiny_model

ARGS = ["train", "--task", "slo-superglue/cb", "--method", "lora"]
SETTINGS = ["training.epochs=2", "training.batch_size=4", "training.grad_accumulation=2", "training.max_length=32",
            "training.max_train_examples=24", "training.max_eval_examples=8", "training.eval_batch_size=8",
            "lora.dropout=0.3"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert")


def _train(cli, model, out, *extra: str, fails: bool = False, watch=None):
    args = [*ARGS, "--model", model, "--output", out, *(a for s in SETTINGS for a in ("--set", s)), *extra]
    return cli.fails(*args, watch=watch) if fails else cli.ok(*args)


def _sigterm_at_step(monkeypatch, step: int) -> None:
    """Sends SIGTERM to this process during the optimiser update of ``step`` (the signal waits for it)."""
    from slopeft.training import trainer as trainer_module

    real = trainer_module.Trainer._optimizer_step
    calls = {"n": 0}

    def step_then_signal(self, optimizers, schedulers):
        real(self, optimizers, schedulers)
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", step_then_signal)


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def test_resume_without_a_checkpoint_is_refused(cli, tmp_path, tiny_bert, real_data_env):
    out = tmp_path / "run"
    message = _train(cli, tiny_bert, out, "--resume", fails=True, watch=tmp_path)
    assert "Nothing to resume" in message and "without --resume" in message


def test_sigterm_checkpoints_and_the_resumed_run_is_bit_identical(cli, tmp_path, tiny_bert, real_data_env,
                                                                 monkeypatch):
    """3 steps per epoch (24 examples, 4 per batch, 2 batches per step); SIGTERM after step 4, in the
    middle of the second epoch, with dropout drawing from the RNG on every batch."""
    reference = tmp_path / "reference"
    _train(cli, tiny_bert, reference)
    interrupted = tmp_path / "interrupted"
    _sigterm_at_step(monkeypatch, 4)
    message = _train(cli, tiny_bert, interrupted, fails=True)
    assert "Interrupted at step 4" in message and "--resume" in message
    assert (interrupted / "checkpoint" / "checkpoint.json").is_file()
    assert not (interrupted / "record.json").exists()
    monkeypatch.undo()
    monkeypatch.setenv("COLUMNS", "400")
    _train(cli, tiny_bert, interrupted, "--resume")
    first, second = _weights(reference), _weights(interrupted)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), "the resumed run's adapter differs"
    records = [json.loads((run / "record.json").read_text()) for run in (reference, interrupted)]
    assert [h["metrics"] for h in records[0]["metrics"]["history"]] == [
        h["metrics"] for h in records[1]["metrics"]["history"]
    ]
    assert records[1]["cost"]["steps"] == records[0]["cost"]["steps"]


@pytest.fixture
def interrupted_run(cli, tmp_path, tiny_bert, real_data_env, monkeypatch):
    """A run interrupted (SIGTERM) after step 2: its folder holds a checkpoint to resume."""
    out = tmp_path / "run"
    _sigterm_at_step(monkeypatch, 2)
    _train(cli, tiny_bert, out, fails=True)
    monkeypatch.undo()
    monkeypatch.setenv("COLUMNS", "400")
    return out


def test_resume_with_a_changed_configuration_names_the_keys(cli, tmp_path, tiny_bert, interrupted_run):
    message = _train(cli, tiny_bert, interrupted_run, "--resume", "--set", "training.batch_size=2",
                     "--set", "training.learning_rate=0.01", "--set", "lora.r=4", fails=True, watch=interrupted_run)
    for key in ("training.batch_size was 4, now 2", "training.learning_rate", "lora.r"):
        assert key in message, message
    assert "training.epochs" not in message


@pytest.mark.parametrize(
    "damage",
    ["truncated-json", "no-tensors", "truncated-tensors", "not-a-checkpoint"],
)
def test_a_damaged_checkpoint_is_refused(cli, tmp_path, tiny_bert, interrupted_run, damage):
    checkpoint = interrupted_run / "checkpoint"
    state, tensors = checkpoint / "checkpoint.json", checkpoint / "checkpoint.safetensors"
    if damage == "truncated-json":
        state.write_text(state.read_text()[:100])
    elif damage == "no-tensors":
        tensors.unlink()
    elif damage == "truncated-tensors":
        tensors.write_bytes(tensors.read_bytes()[:200])
    else:
        state.write_text("[1, 2, 3]")
    message = _train(cli, tiny_bert, interrupted_run, "--resume", fails=True, watch=interrupted_run)
    assert str(checkpoint) in message and "delete" in message.lower()


def test_an_unfinished_run_without_resume_is_refused(cli, tmp_path, tiny_bert, interrupted_run):
    message = _train(cli, tiny_bert, interrupted_run, fails=True, watch=interrupted_run)
    assert "--resume" in message


def test_a_full_disk_at_the_record_keeps_the_trained_state(cli, tmp_path, tiny_bert, real_data_env, monkeypatch):
    """The last epoch saves its checkpoint before the results are written: a full disk then loses
    nothing, and --resume writes the results without another optimiser step."""
    import slopeft.files as files
    from slopeft.training import trainer as trainer_module

    out = tmp_path / "run"
    real = files.write_text_atomic

    def full_disk_for_the_record(path, text, what=""):
        if str(path).endswith("record.json"):
            with files.atomic_path(path, what) as tmp:
                tmp.write_text(text[:10])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        return real(path, text, what)

    monkeypatch.setattr(files, "write_text_atomic", full_disk_for_the_record)
    message = _train(cli, tiny_bert, out, fails=True)
    assert "No space left on device" in message and "--resume" in message
    assert (out / "checkpoint" / "checkpoint.json").is_file()
    assert not (out / "record.json").exists()
    assert not [p.name for p in out.rglob("*.tmp")], "a temporary file was left behind"
    monkeypatch.setattr(files, "write_text_atomic", real)

    def no_training(self, optimizers, schedulers):
        raise AssertionError("the resumed run trained again")

    monkeypatch.setattr(trainer_module.Trainer, "_optimizer_step", no_training)
    _train(cli, tiny_bert, out, "--resume")
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "completed" and record["cost"]["steps"] == 6
    assert not (out / "checkpoint").exists()


def test_divergence_stops_the_run(cli, tmp_path, tiny_bert, real_data_env, monkeypatch):
    """A loss that climbs far above where it started (finite, so the NaN check does not see it)."""
    from slopeft.training import trainer as trainer_module

    real = trainer_module.Trainer._loss
    calls = {"n": 0}

    def climbing(self, batch):
        calls["n"] += 1
        return real(self, batch) * (1 if calls["n"] <= 2 else 1e4)

    monkeypatch.setattr(trainer_module.Trainer, "_loss", climbing)
    out = tmp_path / "run"
    message = _train(cli, tiny_bert, out, fails=True, watch=tmp_path)
    assert "diverged" in message and "learning_rate" in message


def test_a_second_signal_while_the_interrupts_checkpoint_is_written_does_not_cut_it_short(
    cli, tmp_path, tiny_bert, real_data_env, monkeypatch
):
    """A process group's SIGTERM reaches a grid worker twice, directly and from its runner; the worker's
    handler stops the run on every SIGTERM it sees (and exits at once on a second). The second one,
    arriving while the first one's checkpoint is written, is ignored: the checkpoint is of step 4."""
    from slopeft.training import checkpoint as ckpt
    from slopeft.training import trainer as trainer_module

    seen = []

    def like_the_grid_worker(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    real_save = ckpt.save_checkpoint

    def save_under_a_second_signal(directory, state):
        if state["trainer"]["step"] == 4:  # the interrupt's checkpoint (epochs end at steps 3 and 6)
            os.kill(os.getpid(), signal.SIGTERM)
        real_save(directory, state)

    out = tmp_path / "run"
    previous = signal.signal(signal.SIGTERM, like_the_grid_worker)
    try:
        _sigterm_at_step(monkeypatch, 4)
        monkeypatch.setattr(trainer_module.ckpt, "save_checkpoint", save_under_a_second_signal)
        message = _train(cli, tiny_bert, out, fails=True)
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "Interrupted at step 4" in message and "--resume" in message
    assert ckpt.load_checkpoint(out / "checkpoint")["trainer"]["step"] == 4
    assert seen == [signal.SIGTERM]  # the handler saw the first signal only
    assert after is like_the_grid_worker  # and is back once the checkpoint is written
