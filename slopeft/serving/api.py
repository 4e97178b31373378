"""The HTTP API: FastAPI routes, pydantic bodies, errors, API-key check and metrics.

Routes (all but ``/healthz`` need ``Authorization: Bearer <key>`` when the server has a key):

* ``POST /v1/predict`` ``{adapter, inputs: [row, ...]}``: labels and per-class probabilities
  (or translations) for inputs shaped like the task's data rows;
* ``POST /v1/completions``, ``POST /v1/chat/completions``: OpenAI-compatible translation with a
  generative adapter (``model`` = adapter name); the prompt (or the last user message) is the
  source text, which the adapter's task format wraps as in training; decoding is greedy;
* ``GET /v1/models``: the adapters, each with the base model as parent;
* ``GET /v1/adapters``, ``POST /v1/adapters {name, path}``, ``DELETE /v1/adapters/{name}``;
* ``GET /healthz``, ``GET /metrics`` (Prometheus text format).

Errors: 401 missing or wrong key; 404 unknown adapter; 409 adapter name taken; 413 an input over
the token limit (or more examples than the queue holds); 422 a malformed body, naming the field;
429 queue full and 503 shutting down, both with ``Retry-After``. OpenAI routes answer errors in
OpenAI's ``{"error": {...}}`` shape so that OpenAI clients raise their usual exceptions.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from slopeft.errors import SlopeftError
from slopeft.serving.adapters import ServedAdapter
from slopeft.serving.engine import AdapterExists, Classification, Draining, Engine, Generation, Job, QueueFull
from slopeft.serving.inputs import InputError, Prepared, TooLong, parse_inputs, prepare
from slopeft.serving.metrics import ServingMetrics
from slopeft.tasks.base import Example

OPENAI_PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/models")
OPEN_PATHS = ("/healthz",)


class ApiError(Exception):
    """An error answer: HTTP status, a sentence, and (OpenAI routes) the parameter and code."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


# -- bodies ------------------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adapter: str = Field(description="The adapter's name (GET /v1/adapters lists them).")
    inputs: list[dict[str, Any]] = Field(
        min_length=1, description="Objects shaped like the task's data rows (a SloBench JSONL line as it is)."
    )


class PredictOutput(BaseModel):
    input: int = Field(description="Position of the input this example came from (a MultiRC passage gives several).")
    idx: int = Field(description="The example's idx (the row's idx, a MultiRC answer's idx, else the position).")
    label: Any = Field(description="The predicted label in the task's vocabulary, or the translation.")
    probabilities: dict[str, float] | None = Field(
        description="Probability of every label (softmax of the classifier, or of the candidates' log-likelihoods)."
    )


class PredictUsage(BaseModel):
    input_tokens: int


class PredictResponse(BaseModel):
    adapter: str
    task: str
    method: str
    outputs: list[PredictOutput]
    usage: PredictUsage


def _greedy_only(name: str, value: Any, greedy: Any) -> Any:
    if value is not None and value != greedy:
        raise ValueError(f"{name} must be {greedy} or left out: slopeft decodes greedily, as slopeft predict does")
    return value


class _GenerationParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    stop: str | list[str] | None = None
    user: str | None = None

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float | None) -> float | None:
        return _greedy_only("temperature", value, 0)

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, value: float | None) -> float | None:
        return _greedy_only("top_p", value, 1)

    @field_validator("n")
    @classmethod
    def _n(cls, value: int | None) -> int | None:
        return _greedy_only("n", value, 1)

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("stream is not supported: the answer comes whole")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value:
            raise ValueError("stop is not supported: a translation ends at end of text or of its first line")
        return value


class CompletionRequest(_GenerationParameters):
    prompt: str | list[str] = Field(description="The source text(s) to translate.")
    echo: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt needs at least one text")
        return value

    @field_validator("echo")
    @classmethod
    def _echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported")
        return value


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(_GenerationParameters):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class AdapterLoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="What requests will call it.")
    path: str = Field(min_length=1, description="A run folder written by slopeft train (or its adapter/ folder).")


# -- the app -------------------------------------------------------------------------------------------
def create_app(
    engine: Engine,
    *,
    api_key: str | None = None,
    max_input_tokens: int = 1024,
    metrics: ServingMetrics | None = None,
) -> FastAPI:
    """The FastAPI app serving ``engine``'s adapters.

    Args:
        engine: the engine (started by the app's lifespan if it is not running; stopped, after
            draining its queue, when the app shuts down).
        api_key: the key clients must send as ``Authorization: Bearer <key>``; None: no check.
        max_input_tokens: longest input in tokens (before the head's cut to the run's max_length).
        metrics: where to count; a fresh :class:`ServingMetrics` by default.
    """
    metrics = metrics or engine.metrics or ServingMetrics()
    engine.metrics = metrics
    base = engine.base

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        engine.start()
        metrics.adapters_loaded.set(len(engine.adapters))
        try:
            yield
        finally:
            # uvicorn has finished the requests in flight; finish whatever they queued, then stop.
            await run_in_threadpool(engine.stop)

    app = FastAPI(
        title="slopeft serve",
        summary=f"SloBench adapters on one {base.name} base model",
        lifespan=lifespan,
    )

    # -- errors ---------------------------------------------------------------------------------
    def _error_response(request: Request, error: ApiError) -> JSONResponse:
        if request.url.path.startswith(OPENAI_PATHS):
            kinds = {401: "authentication_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}
            body: dict[str, Any] = {"error": {
                "message": error.message, "type": kinds.get(error.status, "invalid_request_error"),
                "param": error.param, "code": error.code,
            }}
        else:
            body = {"detail": error.message}
        return JSONResponse(body, status_code=error.status, headers=error.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        if request.url.path.startswith(OPENAI_PATHS):
            first = errors[0] if errors else {"loc": (), "msg": "invalid body"}
            param = ".".join(str(p) for p in first["loc"][1:]) or None
            message = f"{param}: {first['msg']}" if param else first["msg"]
            return _error_response(request, ApiError(422, message, param=param))
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    # -- API key and metrics ----------------------------------------------------------------------
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        started = time.perf_counter()
        if api_key is not None and request.url.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                response = _error_response(request, ApiError(
                    401, "Missing or wrong API key: send the header Authorization: Bearer <key>.",
                    code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"},
                ))
                _observe(request, response.status_code, started)
                return response
        response = await call_next(request)
        _observe(request, response.status_code, started)
        return response

    def _observe(request: Request, status: int, started: float) -> None:
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "other")
        adapter = getattr(request.state, "adapter", "-")
        metrics.requests.labels(endpoint, adapter, str(status)).inc()
        metrics.latency.labels(endpoint, adapter).observe(time.perf_counter() - started)

    # -- helpers ----------------------------------------------------------------------------------
    def _adapter(request: Request, name: str, param: str) -> ServedAdapter:
        adapter = engine.get(name)
        if adapter is None:
            request.state.adapter = "unknown"  # an unbounded set of names must not become metric labels
            known = ", ".join(sorted(engine.adapters)) or "none"
            raise ApiError(404, f"No adapter named {name!r}. Loaded: {known}.", param=param, code="model_not_found")
        request.state.adapter = name
        return adapter

    def _prepare(adapter: ServedAdapter, examples: Sequence[tuple[int, Example]]) -> list[Prepared]:
        if len(examples) > engine.max_queue:
            raise ApiError(
                413, f"The request holds {len(examples)} examples; this server queues at most {engine.max_queue} "
                "(--max-queue). Send them in smaller requests."
            )
        try:
            return prepare(base, adapter, examples, max_input_tokens)
        except TooLong as err:
            metrics.rejected.labels("too_long").inc()
            raise ApiError(413, str(err)) from None

    async def _compute(adapter: ServedAdapter, prepared: list[Prepared], max_tokens: int | None = None) -> list[Any]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future = loop.create_future()
        results: list[Any] = [None] * len(prepared)
        remaining = [len(prepared)]
        lock = threading.Lock()

        def finish() -> None:
            if not answer.done():
                answer.set_result(results)

        def done_for(i: int):
            def done(result: Any) -> None:
                results[i] = result
                with lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    loop.call_soon_threadsafe(finish)

            return done

        jobs = [Job(adapter, p.example, p.features, done_for(i), max_tokens) for i, p in enumerate(prepared)]
        try:
            engine.submit(jobs)
        except QueueFull as full:
            metrics.rejected.labels("queue_full").inc()
            raise ApiError(
                429, f"The queue is full ({engine.max_queue} examples); retry in {full.retry_after} s.",
                code="queue_full", headers={"Retry-After": str(full.retry_after)},
            ) from None
        except Draining:
            metrics.rejected.labels("draining").inc()
            raise ApiError(503, "The server is shutting down.", headers={"Retry-After": "5"}) from None
        except KeyError:
            raise ApiError(404, f"Adapter {adapter.name!r} is being unloaded.", code="model_not_found") from None
        metrics.adapter_queue.labels(adapter.name).set(adapter.pending)
        done = await answer
        failures = [r for r in done if isinstance(r, BaseException)]
        if failures:
            raise ApiError(500, f"The model failed on this request: {type(failures[0]).__name__}: {failures[0]}")
        return done

    # -- routes -----------------------------------------------------------------------------------
    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest, request: Request) -> PredictResponse:
        """Labels and per-class probabilities (or translations) for task-shaped inputs."""
        adapter = _adapter(request, body.adapter, "adapter")
        try:
            examples = parse_inputs(adapter.task, body.inputs)
        except InputError as err:
            raise RequestValidationError([{"loc": err.loc, "msg": err.message, "type": "value_error"}]) from None
        prepared = await run_in_threadpool(_prepare, adapter, examples)
        results = await _compute(adapter, prepared)
        outputs = []
        for p, result in zip(prepared, results, strict=True):
            if isinstance(result, Classification):
                outputs.append(PredictOutput(input=p.position, idx=p.example.idx, label=result.label,
                                             probabilities=result.probabilities))
            else:
                outputs.append(PredictOutput(input=p.position, idx=p.example.idx, label=result.text, probabilities=None))
        return PredictResponse(
            adapter=adapter.name, task=adapter.task.name, method=adapter.method, outputs=outputs,
            usage=PredictUsage(input_tokens=sum(p.tokens for p in prepared)),
        )

    async def _translate(request: Request, model: str, sources: list[str], max_tokens: int | None, field: str):
        adapter = _adapter(request, model, "model")
        if adapter.lane != "generate":
            raise ApiError(
                400, f"{model!r} is a {adapter.task.name} classifier, not a translation adapter; use POST /v1/predict.",
                param="model",
            )
        limit = adapter.head.max_new_tokens
        if max_tokens is not None and max_tokens > limit:
            raise ApiError(422, f"{field}: at most {limit} for {model!r} (the run's generation budget)", param=field)
        examples = [(i, Example(i, {"source": text})) for i, text in enumerate(sources)]
        prepared = await run_in_threadpool(_prepare, adapter, examples)
        results: list[Generation] = await _compute(adapter, prepared, max_tokens)
        usage = {
            "prompt_tokens": sum(r.prompt_tokens for r in results),
            "completion_tokens": sum(r.completion_tokens for r in results),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return adapter, results, usage

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> dict[str, Any]:
        """OpenAI-compatible completion: each prompt is a source text, each choice its translation."""
        sources = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        adapter, results, usage = await _translate(request, body.model, sources, body.max_tokens, "max_tokens")
        return {
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": adapter.name,
            "choices": [
                {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                for i, r in enumerate(results)
            ],
            "usage": usage,
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> dict[str, Any]:
        """OpenAI-compatible chat: the last user message is the source text, the answer its translation."""
        users = [m for m in body.messages if m.role == "user"]
        if not users:
            raise ApiError(422, "messages: needs a user message (the text to translate)", param="messages")
        max_tokens = body.max_completion_tokens or body.max_tokens
        field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        adapter, results, usage = await _translate(request, body.model, [users[-1].text()], max_tokens, field)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": adapter.name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": results[0].text},
                 "finish_reason": results[0].finish_reason, "logprobs": None}
            ],
            "usage": usage,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The adapters as OpenAI models, each with the base model as parent."""
        return {"object": "list", "data": [
            {"id": a.name, "object": "model", "created": int(a.loaded_at), "owned_by": "slopeft",
             "root": base.name, "parent": base.name}
            for a in list(engine.adapters.values())
        ]}

    @app.get("/v1/adapters")
    async def adapters() -> dict[str, Any]:
        """Every loaded adapter: method, task, base, trainable parameters, size, when loaded, how served."""
        return {"base": base.name, "adapters": [a.info(base.name) for a in list(engine.adapters.values())]}

    @app.post("/v1/adapters", status_code=201)
    async def load(body: AdapterLoadRequest, request: Request) -> dict[str, Any]:
        """Hot-loads a run folder (safetensors only; base and format checked as slopeft predict checks them)."""
        request.state.adapter = "-"
        try:
            adapter = await run_in_threadpool(engine.load, body.name, body.path)
        except AdapterExists:
            raise ApiError(409, f"An adapter named {body.name!r} is already loaded; DELETE it first.") from None
        except SlopeftError as err:
            raise RequestValidationError(
                [{"loc": ("body", "path"), "msg": str(err), "type": "value_error"}]
            ) from None
        return adapter.info(base.name)

    @app.delete("/v1/adapters/{name}")
    async def unload(name: str, request: Request) -> dict[str, Any]:
        """Unloads an adapter; examples already queued for it still finish."""
        _adapter(request, name, "name")
        try:
            adapter = engine.unload(name)
        except KeyError:  # unloaded by a concurrent request
            raise ApiError(404, f"No adapter named {name!r}.") from None
        return {"name": name, "status": "unloading" if adapter.pending else "unloaded", "pending": adapter.pending}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while serving; 503 once the engine drains for shutdown."""
        status = "draining" if engine.draining else "ok"
        body = {"status": status, "base": base.name, "adapters": len(engine.adapters), "queue_depth": engine.queue_depth}
        return JSONResponse(body, status_code=503 if engine.draining else 200)

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        """Prometheus metrics (text exposition format)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.queue_depth.set(engine.queue_depth)
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
