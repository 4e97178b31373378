"""The HTTP API on a tiny BERT base: answers, limits and bad input, hot-loading, metrics, API keys."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from slopeft.serving.adapters import SharedBase
from slopeft.serving.api import create_app
from slopeft.serving.engine import Engine
from slopeft.serving.layers import MixedLayer
from tests.serving.conftest import held

CB_ROW = {"idx": 7, "premise": "Ana je rekla, da bo jutri deževalo.", "hypothesis": "Jutri bo deževalo.", "label": "neutral"}
RTE_ROW = {"premise": "Marko živi v Ljubljani.", "hypothesis": "Marko živi v Sloveniji."}


@pytest.fixture
def engine(serving_runs, bert_base):
    engine = Engine(SharedBase(bert_base), max_batch=8, max_wait_ms=1, max_queue=6)
    engine.load("cb", serving_runs("dora-cb"))
    engine.load("rte", serving_runs("lora-rte"))
    yield engine
    engine.stop(10)


def client_for(engine: Engine, **options) -> TestClient:
    return TestClient(create_app(engine, **options))


def test_predict_takes_raw_data_rows_and_answers_labels_and_probabilities(engine):
    with client_for(engine) as client:
        response = client.post("/v1/predict", json={"adapter": "cb", "inputs": [CB_ROW, {**CB_ROW, "idx": 8}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "slo-superglue/cb" and body["method"] == "dora"
    assert [o["idx"] for o in body["outputs"]] == [7, 8] and [o["input"] for o in body["outputs"]] == [0, 1]
    for output in body["outputs"]:
        assert set(output["probabilities"]) == {"entailment", "contradiction", "neutral"}
        assert output["label"] == max(output["probabilities"], key=output["probabilities"].get)
        assert abs(sum(output["probabilities"].values()) - 1) < 1e-6
    assert body["usage"]["input_tokens"] > 10


def test_bad_requests_get_clear_statuses(engine):
    with client_for(engine, max_input_tokens=40) as client:
        unknown = client.post("/v1/predict", json={"adapter": "boolq", "inputs": [RTE_ROW]})
        assert unknown.status_code == 404 and "Loaded: cb, rte" in unknown.json()["detail"]

        missing = client.post("/v1/predict", json={"adapter": "rte", "inputs": [{"premise": "Samo premisa."}]})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "inputs", 0, "hypothesis"]

        wrong_type = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW, {**RTE_ROW, "premise": 5}]})
        assert wrong_type.status_code == 422
        assert wrong_type.json()["detail"][0]["loc"] == ["body", "inputs", 1, "premise"]

        no_inputs = client.post("/v1/predict", json={"adapter": "rte"})
        assert no_inputs.status_code == 422 and no_inputs.json()["detail"][0]["loc"] == ["body", "inputs"]
        extra = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW], "temperature": 1})
        assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "temperature"]
        not_json = client.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422

        long_row = {**RTE_ROW, "premise": "Zelo dolga premisa. " * 40}
        too_long = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW, long_row]})
        assert too_long.status_code == 413 and "Input 1 has" in too_long.json()["detail"]

        too_many = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW] * 7})
        assert too_many.status_code == 413 and "--max-queue" in too_many.json()["detail"]

        classifier = client.post("/v1/completions", json={"model": "rte", "prompt": "Dober dan."})
        assert classifier.status_code == 400 and classifier.json()["error"]["param"] == "model"

        # the server still answers after all that
        assert client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW]}).status_code == 200


def test_full_queue_answers_429_with_retry_after_and_the_queued_request_finishes(engine):
    with client_for(engine) as client:
        answers = {}

        def first() -> None:
            answers["first"] = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW] * 5})

        with held(engine):
            thread = threading.Thread(target=first)
            thread.start()
            for _ in range(500):
                if engine.queue_depth == 5:
                    break
                threading.Event().wait(0.01)
            full = client.post("/v1/predict", json={"adapter": "cb", "inputs": [CB_ROW, CB_ROW]})
        thread.join(30)
        assert full.status_code == 429
        assert int(full.headers["Retry-After"]) >= 1
        assert answers["first"].status_code == 200 and len(answers["first"].json()["outputs"]) == 5
        metrics = client.get("/metrics").text
        assert 'slopeft_rejected_total{reason="queue_full"} 1.0' in metrics


def test_a_draining_engine_answers_503_with_retry_after(engine):
    engine.start()
    client = client_for(engine)  # no lifespan: the engine is stopped by hand below
    engine.stop(10)
    response = client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW]})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 503


def test_api_key_is_required_except_for_healthz(engine):
    with client_for(engine, api_key="s3cret") as client:
        body = {"adapter": "rte", "inputs": [RTE_ROW]}
        missing = client.post("/v1/predict", json=body)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert client.post("/v1/predict", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        # the key is checked before the body: no schema details for strangers
        assert client.post("/v1/predict", json={"bad": 1}).status_code == 401
        assert client.get("/v1/adapters").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200
        ok = client.post("/v1/predict", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_hot_load_list_and_unload(engine, serving_runs, opt_base):
    with client_for(engine) as client:
        loaded = client.post("/v1/adapters", json={"name": "boolq", "path": str(serving_runs("increlora-boolq"))})
        assert loaded.status_code == 201, loaded.text
        info = loaded.json()
        assert info["method"] == "increlora" and info["task"] == "slo-superglue/boolq" and info["serving"] == "mixed"
        assert info["trainable_parameters"] > 0 and info["adapter_bytes"] > 0 and info["loaded_at"]
        names = [a["name"] for a in client.get("/v1/adapters").json()["adapters"]]
        assert names == ["cb", "rte", "boolq"]
        models = client.get("/v1/models").json()["data"]
        assert {m["id"] for m in models} == {"cb", "rte", "boolq"} and {m["parent"] for m in models} == {engine.base.name}
        row = {"question": "Ali je Ljubljana glavno mesto?", "passage": "Ljubljana je glavno mesto Slovenije."}
        assert client.post("/v1/predict", json={"adapter": "boolq", "inputs": [row]}).status_code == 200
        assert client.post("/v1/adapters", json={"name": "boolq", "path": str(serving_runs("mola-boolq"))}).status_code == 409

        adapter = engine.get("boolq")
        layers = [m for m in engine.base.model.modules() if isinstance(m, MixedLayer) and adapter.slot in m.patches]
        assert layers
        gone = client.delete("/v1/adapters/boolq")
        assert gone.status_code == 200 and gone.json()["status"] == "unloaded"
        assert client.post("/v1/predict", json={"adapter": "boolq", "inputs": [row]}).status_code == 404
        assert client.delete("/v1/adapters/boolq").status_code == 404
        client.get("/healthz")  # the engine removes patches between batches; a round trip lets it
        engine.call(lambda: None).result(10)
        assert all(adapter.slot not in m.patches for m in layers)


def test_unloading_lets_queued_requests_finish(engine):
    with client_for(engine) as client:
        answers = {}
        with held(engine):
            thread = threading.Thread(
                target=lambda: answers.setdefault("queued", client.post("/v1/predict", json={"adapter": "cb", "inputs": [CB_ROW] * 3}))
            )
            thread.start()
            for _ in range(500):
                if engine.queue_depth == 3:
                    break
                threading.Event().wait(0.01)
            gone = client.delete("/v1/adapters/cb")
            assert gone.json() == {"name": "cb", "status": "unloading", "pending": 3}
            assert client.post("/v1/predict", json={"adapter": "cb", "inputs": [CB_ROW]}).status_code == 404
        thread.join(30)
        assert answers["queued"].status_code == 200 and len(answers["queued"].json()["outputs"]) == 3


def test_hot_load_refuses_pickle_other_bases_and_non_runs(engine, serving_runs, tmp_path):
    with client_for(engine) as client:
        pickled = tmp_path / "pickled"
        shutil.copytree(serving_runs("lora-rte"), pickled)
        (pickled / "adapter" / "adapter_model.bin").write_bytes(b"\x80\x04not really a pickle")
        refused = client.post("/v1/adapters", json={"name": "p", "path": str(pickled)})
        assert refused.status_code == 422 and "pickle" in refused.json()["detail"][0]["msg"]
        assert refused.json()["detail"][0]["loc"] == ["body", "path"]

        other_base = client.post("/v1/adapters", json={"name": "o", "path": str(serving_runs("opt-dora-rte"))})
        assert other_base.status_code == 422 and "different shape" in other_base.json()["detail"][0]["msg"]

        nothing = client.post("/v1/adapters", json={"name": "n", "path": str(tmp_path)})
        assert nothing.status_code == 422 and "not a slopeft run" in nothing.json()["detail"][0]["msg"]
        bad_name = client.post("/v1/adapters", json={"name": "../x", "path": str(tmp_path)})
        assert bad_name.status_code == 422 and bad_name.json()["detail"][0]["loc"] == ["body", "name"]
        assert sorted(engine.adapters) == ["cb", "rte"]


def test_metrics_count_requests_latency_batches_and_queue_per_adapter(engine):
    with client_for(engine) as client:
        for _ in range(3):
            assert client.post("/v1/predict", json={"adapter": "rte", "inputs": [RTE_ROW]}).status_code == 200
        client.post("/v1/predict", json={"adapter": "nope", "inputs": [RTE_ROW]})
        text = client.get("/metrics").text
    assert 'slopeft_requests_total{adapter="rte",endpoint="/v1/predict",status="200"} 3.0' in text
    assert 'slopeft_requests_total{adapter="unknown",endpoint="/v1/predict",status="404"} 1.0' in text
    assert 'slopeft_request_seconds_count{adapter="rte",endpoint="/v1/predict"} 3.0' in text
    assert 'slopeft_examples_total{adapter="rte"} 3.0' in text
    assert "slopeft_batch_examples_bucket" in text and "slopeft_batch_adapters_bucket" in text
    assert "slopeft_queue_depth 0.0" in text
    assert 'slopeft_adapter_pending{adapter="rte"} 0.0' in text
    assert "slopeft_adapters_loaded 2.0" in text


def test_adapters_listing_is_json_serialisable_with_serving_notes(engine):
    with client_for(engine) as client:
        listing = client.get("/v1/adapters").json()
    assert listing["base"] == engine.base.name
    for adapter in listing["adapters"]:
        assert adapter["serving"] == "mixed" and adapter["serving_note"]
    json.dumps(listing)
