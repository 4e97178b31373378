"""What a checkpoint tells about its run's progress without loading it (for `grid status`)."""

from __future__ import annotations

import torch

from slopeft.training.checkpoint import save_checkpoint, saved_progress


def _state(epoch: int, batch: int, step: int) -> dict:
    trainer = {"step": step, "epoch": epoch, "batch_in_epoch": batch, "train_cpu_seconds": 12.5, "history": []}
    return {"trainer": trainer, "weights": {"w": torch.ones(2)}, "optimizers": [], "schedulers": []}


def test_saved_progress_reads_the_trainer_counters(tmp_path):
    save_checkpoint(tmp_path / "checkpoint", _state(2, 5, 317))
    progress = saved_progress(tmp_path / "checkpoint")
    assert {k: progress[k] for k in ("epoch", "batch_in_epoch", "step", "train_cpu_seconds")} == {
        "epoch": 2,
        "batch_in_epoch": 5,
        "step": 317,
        "train_cpu_seconds": 12.5,
    }
    assert progress["saved"] == (tmp_path / "checkpoint" / "checkpoint.json").stat().st_mtime


def test_saved_progress_is_none_without_a_readable_checkpoint(tmp_path):
    assert saved_progress(tmp_path / "checkpoint") is None
    save_checkpoint(tmp_path / "checkpoint", _state(1, 0, 16))
    (tmp_path / "checkpoint" / "checkpoint.json").write_text("{not json")
    assert saved_progress(tmp_path / "checkpoint") is None  # a display never fails on a damaged file
