"""Typed configs: every training option is documented where `slopeft methods` can show it."""

from __future__ import annotations

import dataclasses

from slopeft.cli import main
from slopeft.config import TrainingConfig, field_docs


def test_every_training_option_has_its_docstring():
    docs = field_docs(TrainingConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(TrainingConfig)}
    assert docs["batch_size"] == "Examples per forward pass."
    assert docs["malloc_mmap_threshold_kib"].startswith("On CPU with glibc")


def test_methods_command_lists_methods_and_training_options(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    main(["methods"])
    out = capsys.readouterr().out
    assert "bitfit-subset" in out and "sparse_embeddings=False" in out
    assert "Training options (--set training.KEY=...)" in out
    assert "malloc_mmap_threshold_kib" in out and "group_by_length" in out
