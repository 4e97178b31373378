"""One mixed batch over many adapters gives, row for row, what `slopeft predict` gives for each adapter alone.

Each server holds one tiny base model. All requests are queued while the engine is held, so the
engine computes them as exactly one batch (checked with its metrics). Labels come from
``predict_workflow`` (what ``slopeft predict --run RUN`` runs) on the same rows; probabilities from
the model ``load_run`` builds for the adapter alone; translations from ``slopeft predict --test-src``.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import torch

from slopeft.evaluation.prediction import load_run
from slopeft.evaluation.workflows import predict_workflow
from slopeft.serving.adapters import SERVING, SharedBase, probe_difference
from slopeft.serving.api import create_app
from slopeft.serving.engine import Engine
from slopeft.serving.inputs import parse_inputs
from slopeft.serving.layers import RowPlan
from slopeft.tasks.base import Example
from tests.serving.conftest import RUNS, held

ENCODER_ADAPTERS = [name for name, (arch, _, _) in RUNS.items() if arch == "bert"]
CAUSAL_ADAPTERS = [name for name, (arch, _, _) in RUNS.items() if arch == "opt"]
FOLDERS = {"boolq": "BoolQ", "cb": "CB", "copa": "COPA", "multirc": "MultiRC", "rte": "RTE", "wsc": "WSC"}
SOURCES = {
    "mt/sl-en": ["Ljubljana je glavno mesto Slovenije.", "Danes je lepo vreme.", "Kje je najbližja lekarna?"],
    "mt/en-sl": ["Ljubljana is the capital of Slovenia.", "Where is the nearest pharmacy?"],
}


def val_rows(data_root, task: str) -> list[dict]:
    path = data_root / "slo-superglue" / "human-translated" / FOLDERS[task.rsplit("/", 1)[1]] / "val.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reference(run_dir, task: str, data_root, tmp_path) -> dict[int, tuple]:
    """idx → (label, probabilities or None) for the adapter alone, as slopeft predict computes it."""
    if task.startswith("mt/"):
        source = tmp_path / f"{run_dir.name}-source.txt"
        source.write_text("".join(s + "\n" for s in SOURCES[task]), encoding="utf-8")
        predict_workflow(run_dir, "test", data_root, batch_size=8, test_src=source)
        lines = (run_dir / "predictions" / "test" / "submission.txt").read_text(encoding="utf-8").splitlines()
        return {i: (line, None) for i, line in enumerate(lines)}
    predict_workflow(run_dir, "val", data_root, batch_size=8)
    parts, model, _ = load_run(run_dir, data_dir=str(data_root))
    examples = parts.task.examples("val")
    folder = run_dir / "predictions" / "val"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    labels = parts.task.parse_submission(files, examples)
    with torch.no_grad():
        if hasattr(parts.head, "candidate_scores"):
            probabilities = torch.tensor(parts.head.candidate_scores(model, examples), dtype=torch.float64).softmax(-1)
        else:
            batch = parts.head.collate(parts.head.encode(examples, with_labels=False))
            probabilities = model(**batch).logits.float().softmax(-1)
    return {e.idx: (labels[e.idx], probabilities[i].tolist()) for i, e in enumerate(examples)}


def serve(base_path: str, names: list[str], serving_runs) -> tuple[Engine, object]:
    engine = Engine(SharedBase(base_path), max_batch=4096, max_wait_ms=1, max_queue=8192)
    engine.start()
    for name in names:
        engine.load(name, serving_runs(name))
    return engine, create_app(engine)


async def post_as_one_batch(engine: Engine, app, bodies: list[dict]) -> list[httpx.Response]:
    expected = sum(len(parse_inputs(engine.get(b["adapter"]).task, b["inputs"])) for b in bodies)  # examples
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        with held(engine) as release:
            tasks = [asyncio.create_task(client.post("/v1/predict", json=body)) for body in bodies]
            for _ in range(2000):
                if engine.queue_depth >= expected:
                    break
                await asyncio.sleep(0.005)
            release.set()
            return await asyncio.gather(*tasks)


def check_one_mixed_batch(engine: Engine, names: list[str], responses, references) -> None:
    registry = engine.metrics.registry
    # The engine thread records a batch's metrics after it has answered the batch's requests, so the
    # count may lag the responses by a moment (seen on a loaded machine with OMP_NUM_THREADS=1).
    for _ in range(500):
        if registry.get_sample_value("slopeft_batch_examples_count"):
            break
        time.sleep(0.01)
    assert registry.get_sample_value("slopeft_batch_examples_count") == 1  # the engine ran exactly one batch
    assert registry.get_sample_value("slopeft_batch_adapters_sum") == len(names)
    for name, response in zip(names, responses, strict=True):
        assert response.status_code == 200, response.text
        outputs = response.json()["outputs"]
        ref = references[name]
        assert {o["idx"] for o in outputs} == set(ref), name
        for output in outputs:
            label, probabilities = ref[output["idx"]]
            assert output["label"] == label, (name, output["idx"])
            if probabilities is not None:
                served = list(output["probabilities"].values())
                assert max(abs(a - b) for a, b in zip(served, probabilities, strict=True)) <= 1e-5, name


def adapters_differ(references: dict, names: list[str]) -> None:
    """The adapters of one task give different probabilities: a server that mixed them up would fail.

    The gap asked for is ten times the 1e-5 the served rows are held to, so a row answered by another
    adapter of its task cannot pass (the tiny adapters of one task differ by about 1e-3)."""
    by_task: dict[str, list[str]] = {}
    for name in names:
        by_task.setdefault(RUNS[name][2], []).append(name)
    for task, group in by_task.items():
        for a, b in zip(group, group[1:], strict=False):
            gap = max(
                abs(x - y)
                for idx in references[a]
                for x, y in zip(references[a][idx][1], references[b][idx][1], strict=True)
            )
            assert gap > 1e-4, f"{a} and {b} ({task}) predict alike; the test could not tell them apart"


def test_encoder_mixed_batch_equals_predict(serving_runs, bert_base, data_root, tmp_path):
    names = ENCODER_ADAPTERS
    engine, app = serve(bert_base, names, serving_runs)
    try:
        for name in names:
            assert engine.get(name).mode == SERVING[RUNS[name][1]][0], engine.get(name).note
        references = {n: reference(serving_runs(n), RUNS[n][2], data_root, tmp_path) for n in names}
        adapters_differ(references, names)
        # Raw SloBench JSONL lines (labels included, ignored): the WSC/MultiRC nesting parsed by the task.
        bodies = [{"adapter": n, "inputs": val_rows(data_root, RUNS[n][2])} for n in names]
        responses = asyncio.run(post_as_one_batch(engine, app, bodies))
        check_one_mixed_batch(engine, names, responses, references)
        # The batch ran in passes of similar input length (inputs are cut to 48 tokens: at most six padded
        # lengths), each mixing adapters: fewer passes than the twelve adapters served mixed.
        passes = engine.metrics.registry.get_sample_value("slopeft_forward_passes_total", {"lane": "encode", "path": "mixed"})
        assert 1 <= passes <= 6
    finally:
        engine.stop()


def test_causal_lm_mixed_batch_with_translation_equals_predict(serving_runs, opt_base, data_root, tmp_path):
    """LoRA translation, prompt-tuned translation and four classifiers (DoRA, IncreLoRA, BitFit, prompt
    tuning; candidate scoring) on one decoder base: one batch, each row as slopeft predict gives it."""
    names = CAUSAL_ADAPTERS
    engine, app = serve(opt_base, names, serving_runs)
    try:
        for name in names:
            assert engine.get(name).mode == SERVING[RUNS[name][1]][0], engine.get(name).note
        references = {n: reference(serving_runs(n), RUNS[n][2], data_root, tmp_path) for n in names}
        adapters_differ(references, [n for n in names if not RUNS[n][2].startswith("mt/")])
        # The translation LoRA changes the base model's output (else the check below would prove nothing).
        parts, _, _ = load_run(serving_runs("opt-lora-sl-en"), data_dir=str(data_root))
        examples = [Example(i, {"source": s}) for i, s in enumerate(SOURCES["mt/sl-en"])]
        base_output = parts.head.predict(engine.base.model, examples)
        translations = [references["opt-lora-sl-en"][i][0] for i in range(3)]
        assert [base_output[i] for i in range(len(examples))] != translations
        assert len(set(translations)) > 1  # each source gets its own output: mixing up rows would show
        bodies = []
        for name in names:
            task = RUNS[name][2]
            rows = [{"source": s} for s in SOURCES[task]] if task.startswith("mt/") else val_rows(data_root, task)
            bodies.append({"adapter": name, "inputs": rows})
        responses = asyncio.run(post_as_one_batch(engine, app, bodies))
        check_one_mixed_batch(engine, names, responses, references)
    finally:
        engine.stop()


@pytest.mark.parametrize("name", [n for n in ENCODER_ADAPTERS if SERVING[RUNS[n][1]][0] == "mixed"])
def test_each_mixed_patch_changes_the_shared_model_as_the_adapter_does(serving_runs, bert_base, name):
    """On random tokens the mixed path equals the adapter's own model, and differs from the bare base."""
    base = SharedBase(bert_base)
    engine = Engine(base)
    adapter = engine.load(name, serving_runs(name))
    assert adapter.patches, "a mixed adapter with no patch would serve the bare base model"
    assert probe_difference(adapter, base) < 1e-5
    ids = torch.randint(5, 500, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = base.model(input_ids=ids).last_hidden_state
        with base.state.use(RowPlan.single(adapter.slot, 3)):
            patched = base.model(input_ids=ids).last_hidden_state
    assert (plain - patched).abs().max() > 1e-4
