"""Shared fixtures: the real SloBench data (../shared/data or $SLOPEFT_DATA) and tiny data roots."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ("tests.bad_input",)  # the `cli` fixture of the bad-input tests


def _real_data_root() -> Path | None:
    for candidate in (os.environ.get("SLOPEFT_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "slo-superglue").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data. CI always has it (../shared/data); elsewhere set SLOPEFT_DATA."""
    root = _real_data_root()
    if root is None:
        pytest.skip("real SloBench data not found: set SLOPEFT_DATA or place it at ../shared/data")
    return root


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """No test reads the developer's cache; SLOPEFT_DATA is set only when a test asks for it."""
    monkeypatch.setenv("SLOPEFT_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SLOPEFT_DATA", raising=False)


@pytest.fixture
def real_data_env(monkeypatch, data_root) -> Path:
    monkeypatch.setenv("SLOPEFT_DATA", str(data_root))
    return data_root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def tiny_superglue(tmp_path) -> Path:
    """A data root with three labelled val rows per task, built to reproduce the evaluator's sample numbers."""
    root = tmp_path / "data"
    base = root / "slo-superglue"
    pair = {"premise": "Ana je doma.", "hypothesis": "Ana ni doma."}
    vals = {
        "BoolQ": [
            {"idx": i, "question": "Ali?", "passage": "Da.", "label": lab}
            for i, lab in enumerate([True, True, False])
        ],
        "CB": [
            {"idx": i, **pair, "label": lab}
            for i, lab in enumerate(["entailment", "entailment", "contradiction"])
        ],
        "COPA": [
            {
                "idx": i,
                "premise": "Deževalo je.",
                "question": "effect",
                "choice1": "Mokro.",
                "choice2": "Suho.",
                "label": lab,
            }
            for i, lab in enumerate([0, 1, 1])
        ],
        "RTE": [
            {"idx": i, **pair, "label": lab}
            for i, lab in enumerate(["entailment", "not_entailment", "entailment"])
        ],
        "WSC": [
            {
                "idx": i,
                "text": "Marko je rekel Petru, da on zmore.",
                "label": lab,
                "target": {"span1_index": 0, "span1_text": "Marko", "span2_index": 5, "span2_text": "on"},
            }
            for i, lab in enumerate([True, False, True])
        ],
        "MultiRC": [
            {
                "idx": 0,
                "passage": {
                    "text": "Besedilo.",
                    "questions": [
                        {
                            "idx": 0,
                            "question": "Kdo?",
                            "answers": [
                                {"idx": 0, "text": "A", "label": 1},
                                {"idx": 1, "text": "B", "label": 0},
                            ],
                        },
                        {
                            "idx": 1,
                            "question": "Kaj?",
                            "answers": [
                                {"idx": 2, "text": "C", "label": 1},
                                {"idx": 3, "text": "D", "label": 1},
                            ],
                        },
                    ],
                },
            }
        ],
    }
    for task, rows in vals.items():
        write_jsonl(base / "human-translated" / task / "val.jsonl", rows)
        write_jsonl(base / "human-translated" / task / "train.jsonl", rows)
        unlabelled = [{k: v for k, v in r.items() if k != "label"} for r in rows]
        if task == "MultiRC":
            unlabelled = json.loads(json.dumps(rows).replace(', "label": 1', "").replace(', "label": 0', ""))
        write_jsonl(base / "test-unlabelled" / f"{task}.jsonl", unlabelled)
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_models(arch)``: the folder of a tiny model of that architecture, built once per session."""
    from slopeft.models.tiny import default_texts, make_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}
    # The corpus is fixed here, not read from $SLOPEFT_DATA when a model is first asked for: otherwise
    # the tokenizer (and every later test's inputs) would depend on which test happened to ask first.
    texts = default_texts(_real_data_root())

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = make_tiny_model(arch, root / arch, texts=texts)
        return built[arch]

    return get
