"""Every (task × model family) pair encodes a batch, gives a finite loss and predicts task labels."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from slopeft.errors import ConfigError
from slopeft.models.heads import build_head
from slopeft.models.tiny import make_tiny_model
from slopeft.tasks import TASKS, get_task
from slopeft.tasks.formats import TaskFormat
from slopeft.tasks.superglue import mark_wsc_spans

ARCH_FAMILY = {
    "bert": "encoder",
    "xlm-roberta": "encoder",
    "gemma": "causal",
    "t5": "seq2seq",
    "marian": "seq2seq",
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: make_tiny_model(arch, root / arch) for arch in ARCH_FAMILY}


def _head(task, arch, tiny_models, max_length=64):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
    return build_head(TaskFormat.for_task(task), tokenizer, ARCH_FAMILY[arch], max_length=max_length)


PAIRS = [
    (task, arch)
    for task in TASKS.names()
    for arch in ARCH_FAMILY
    if not (task.startswith("mt/") and ARCH_FAMILY[arch] == "encoder")
]


@pytest.mark.parametrize(("task_name", "arch"), PAIRS)
def test_encode_train_step_and_predict(real_data_env, tiny_models, task_name, arch):
    task = get_task(task_name)
    head = _head(task, arch, tiny_models)
    head.max_new_tokens = 6
    torch.manual_seed(0)
    model = head.load_model(str(tiny_models[arch]))
    batch = head.collate(head.encode(task.examples("train")[:3]))
    loss = model(**batch).loss
    assert math.isfinite(loss.item())
    loss.backward()  # gradients flow through the head's batch
    examples = task.examples("val")[:4]
    predictions = head.predict(model, examples, batch_size=2)
    assert set(predictions) == {e.idx for e in examples}
    if task.spec.labels is not None:
        assert set(predictions.values()) <= set(task.spec.labels)
        assert "accuracy" in task.metrics(predictions, examples) or "f1a" in task.metrics(
            predictions, examples
        )
    else:
        assert all(isinstance(p, str) for p in predictions.values())
    # Predictions are written and read back as a submission, then scored by the metric code.
    files = {k: v.encode() for k, v in task.submission_contents(predictions, examples).items()}
    assert task.parse_submission(files, examples) == predictions


def test_encoder_cannot_translate(real_data_env, tiny_models):
    with pytest.raises(ConfigError, match="cannot run on an encoder model; use a causal or seq2seq model"):
        _head(get_task("mt/sl-en"), "bert", tiny_models)


def test_long_passages_are_cut_on_the_passage_side(real_data_env, tiny_models):
    task = get_task("slo-superglue/boolq")
    head = _head(task, "bert", tiny_models, max_length=48)
    example = task.examples("val")[0]
    (feature,) = head.encode([example])
    assert head.truncated == 1 and len(feature["input_ids"]) == 48
    question_ids = head.tokenizer(example.inputs["question"], add_special_tokens=False)["input_ids"]
    ids = feature["input_ids"]
    assert ids[1 : 1 + len(question_ids)] == question_ids  # the question survives whole


def test_causal_batched_scores_equal_one_by_one(real_data_env, tiny_models):
    """Left padding with explicit positions must not change a candidate's log-likelihood."""
    task = get_task("slo-superglue/copa")
    head = _head(task, "gemma", tiny_models, max_length=128)
    model = head.load_model(str(tiny_models["gemma"]))
    examples = task.examples("val")[:4]
    batched = head.candidate_scores(model, examples, batch_size=4)
    single = [head.candidate_scores(model, [e], batch_size=1)[0] for e in examples]
    assert sum(batched, []) == pytest.approx(sum(single, []), abs=1e-4)


def test_wsc_spans_are_marked_in_the_text(real_data_env):
    example = get_task("slo-superglue/wsc").examples("train")[0]
    marked = mark_wsc_spans(example)
    assert "*Mark*" in marked and "[On]" in marked


def test_verbalizer_override_and_bad_label(real_data_env):
    task = get_task("slo-superglue/rte")
    custom = TaskFormat.for_task(task, {"entailment": "drži"})
    assert custom.candidates(task.examples("val")[0]) == [" drži", " ne"]
    with pytest.raises(ConfigError, match="not labels of"):
        TaskFormat.for_task(task, {"yes": "da"})
