"""The OpenAI-compatible routes, driven by the official `openai` client against a live uvicorn server."""

from __future__ import annotations

import openai
import pytest

from slopeft.evaluation.prediction import load_run
from slopeft.serving.adapters import SharedBase
from slopeft.serving.api import create_app
from slopeft.serving.engine import Engine
from slopeft.tasks.base import Example
from tests.serving.conftest import live_server

SOURCES = ["Ljubljana je glavno mesto Slovenije.", "Danes je lepo vreme."]


@pytest.fixture(scope="module")
def server(serving_runs, opt_base):
    engine = Engine(SharedBase(opt_base), max_batch=16, max_wait_ms=2)
    engine.load("sl-en", serving_runs("opt-lora-sl-en"))
    engine.load("en-sl", serving_runs("opt-prompt-en-sl"))
    engine.load("rte", serving_runs("opt-dora-rte"))
    with live_server(create_app(engine, api_key="test-key")) as url:
        yield engine, url


def expected_translations(run_dir, sources):
    parts, model, _ = load_run(run_dir)
    predictions = parts.head.predict(model, [Example(i, {"source": s}) for i, s in enumerate(sources)])
    return [predictions[i] for i in range(len(sources))]


def test_models_completions_and_chat_through_the_openai_client(server, serving_runs):
    engine, url = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test-key", max_retries=0)
    models = client.models.list().data
    assert {m.id for m in models} == {"sl-en", "en-sl", "rte"}
    assert all(m.model_extra["parent"] == engine.base.name for m in models)

    expected = expected_translations(serving_runs("opt-lora-sl-en"), SOURCES)
    completion = client.completions.create(model="sl-en", prompt=SOURCES)
    assert [c.text for c in sorted(completion.choices, key=lambda c: c.index)] == expected
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.choices[0].finish_reason in ("stop", "length")

    chat = client.chat.completions.create(model="sl-en", messages=[{"role": "user", "content": SOURCES[1]}])
    assert chat.choices[0].message.content == expected[1]
    assert chat.choices[0].message.role == "assistant"

    grouped = client.completions.create(model="en-sl", prompt="Where is the nearest pharmacy?", max_tokens=5)
    assert grouped.choices[0].finish_reason in ("stop", "length") and grouped.usage.completion_tokens <= 5


def test_openai_client_errors(server):
    _, url = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test-key", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="de-sl", prompt="Guten Tag.")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="rte", prompt="Dober dan.")
    with pytest.raises(openai.UnprocessableEntityError) as sampled:
        client.completions.create(model="sl-en", prompt="Dober dan.", temperature=0.7)
    assert sampled.value.param == "temperature"
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="sl-en", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
