"""Fixtures for the serving tests: tiny adapters trained once per session, and a server around them.

Adapters are trained for a few steps with a large learning rate on real SloBench rows, so that
each one's outputs differ clearly from the base model's and from the other adapters' (a test that
mixed up adapters would see it).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console

from slopeft.config import RunConfig, TrainingConfig

# name → (tiny architecture, method, task). Translation runs keep max_length 224 (the tiny OPT takes
# 256 tokens): GenerationHead reserves 128 for the translation, which leaves 96 for the prompt.
RUNS = {
    # encoder (tiny BERT): every method slopeft trains but QLoRA (no bitsandbytes here)
    "lora-rte": ("bert", "lora", "slo-superglue/rte"),
    "dora-cb": ("bert", "dora", "slo-superglue/cb"),
    "increlora-boolq": ("bert", "increlora", "slo-superglue/boolq"),
    "bitfit-rte": ("bert", "bitfit", "slo-superglue/rte"),
    "prompt-cb": ("bert", "prompt-tuning", "slo-superglue/cb"),
    "adalora-rte": ("bert", "adalora", "slo-superglue/rte"),
    "ia3-cb": ("bert", "ia3", "slo-superglue/cb"),
    "mola-boolq": ("bert", "mola", "slo-superglue/boolq"),
    "qalora-rte": ("bert", "qa-lora", "slo-superglue/rte"),
    "prefix-cb": ("bert", "prefix-tuning", "slo-superglue/cb"),
    "ptuning-rte": ("bert", "p-tuning", "slo-superglue/rte"),
    "full-rte": ("bert", "full", "slo-superglue/rte"),
    "bitfit-subset-boolq": ("bert", "bitfit-subset", "slo-superglue/boolq"),
    "lora-copa": ("bert", "lora", "slo-superglue/copa"),
    "lora-multirc": ("bert", "lora", "slo-superglue/multirc"),
    # causal LM (tiny OPT, which has biases for BitFit): classification by candidate scoring + translation
    "opt-lora-sl-en": ("opt", "lora", "mt/sl-en"),
    "opt-prompt-en-sl": ("opt", "prompt-tuning", "mt/en-sl"),
    "opt-dora-rte": ("opt", "dora", "slo-superglue/rte"),
    "opt-increlora-cb": ("opt", "increlora", "slo-superglue/cb"),
    "opt-bitfit-boolq": ("opt", "bitfit", "slo-superglue/boolq"),
    "opt-prompt-rte": ("opt", "prompt-tuning", "slo-superglue/rte"),
}


@pytest.fixture(scope="session")
def serving_runs(tiny_models, data_root, tmp_path_factory) -> Callable[[str], Path]:
    """``serving_runs(name)``: the run folder of adapter ``name`` of :data:`RUNS`, trained on first use."""
    from slopeft.training.run import train_run

    root = tmp_path_factory.mktemp("serving-runs")
    lock = threading.Lock()

    def get(name: str) -> Path:
        arch, method, task = RUNS[name]
        out = root / name
        with lock:
            if not (out / "record.json").is_file():
                translation = task.startswith("mt/")
                # A MultiRC slice ends on a question boundary (Task.first): its first training question
                # has 9 answers and its first validation question 4, so smaller limits keep nothing.
                config = RunConfig(
                    task=task, model=str(tiny_models(arch)), method=method, output=str(out), data_dir=str(data_root),
                    training=TrainingConfig(
                        max_steps=4, batch_size=2, learning_rate=1e-2, max_train_examples=16, max_eval_examples=8,
                        eval_batch_size=2, max_length=224 if translation else 48,
                    ),
                )
                train_run(config, console=Console(file=io.StringIO()))
        return out

    return get


@pytest.fixture(scope="session")
def bert_base(tiny_models) -> str:
    return str(tiny_models("bert"))


@pytest.fixture(scope="session")
def opt_base(tiny_models) -> str:
    return str(tiny_models("opt"))


@contextmanager
def held(engine) -> Iterator[threading.Event]:
    """Keeps the engine thread busy until the event is set, so that requests queue up into one batch."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(60)

    future = engine.call(hold)
    started.wait(10)
    try:
        yield release
    finally:
        release.set()
        future.result(10)


@contextmanager
def live_server(app) -> Iterator[str]:
    """Runs ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
