"""The scheduler: one thread that gathers requests for many adapters into batches and runs them.

Requests are split into jobs (one per example). The engine thread waits for the first job, then
for more until ``max_batch`` jobs are waiting or the oldest has waited ``max_wait_ms``, takes up
to ``max_batch`` of them and runs them:

* jobs are grouped by *lane* — encoder classification, candidate scoring, generation — because
  only rows of one kind can share a forward pass;
* within a lane, the jobs of every *mixed* adapter are sorted by adapter and run as **one**
  forward pass of the shared model (each layer applies each adapter to its own block of rows);
  encoder heads then read their adapter's rows of the shared hidden states;
* jobs of *grouped* adapters run one forward pass per adapter, on the adapter's own model.

Everything that touches the shared layers (a forward pass, installing or removing an adapter's
patches) happens on the engine thread, so no locks are needed around the model. A full queue
refuses new jobs (the API answers 429 with Retry-After); stopping drains the queue first.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

from slopeft.models.heads.base import PAD_MULTIPLE, pad
from slopeft.serving.adapters import ServedAdapter, SharedBase, install, load_adapter, uninstall
from slopeft.serving.layers import RowPlan, Segment
from slopeft.tasks.base import Example

log = logging.getLogger("slopeft.serving")


#: The longest Retry-After the server answers a full queue with, in seconds. The HTTP keep-alive
#: timeout is longer (see ``serving.cli``): a client that waits as told and then reuses its pooled
#: connection must not find it just closed by the server (the race ends in a ReadError on the client).
MAX_RETRY_AFTER = 30


class QueueFull(Exception):
    """The queue cannot take the jobs now; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The engine is stopping and takes no new jobs."""


class AdapterExists(Exception):
    """An adapter of that name is loaded (or being loaded)."""


@dataclass
class Classification:
    """One classified example: its label and the probability of every label (or candidate)."""

    label: Any
    probabilities: dict[str, float]


@dataclass
class Generation:
    """One generated translation."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of text or of the first line) or "length" (max_tokens reached)


@dataclass
class Job:
    """One example of one request.

    Attributes:
        features: what the head encoded (encoder features; candidate rows; prompt ids).
        done: called once, on the engine thread, with the result or the exception.
    """

    adapter: ServedAdapter
    example: Example
    features: Any
    done: Callable[[Any], None]
    max_tokens: int | None = None
    enqueued: float = field(default_factory=time.monotonic)


class Engine:
    """Owns the shared base model, the loaded adapters and the scheduler thread.

    Args:
        base: the shared base model.
        max_batch: most examples in one batch.
        max_wait_ms: how long the oldest waiting example may wait for a batch to fill.
        max_queue: most examples waiting; beyond it :meth:`submit` raises :class:`QueueFull`.
        pass_overhead_tokens: what one more forward pass costs, in padded tokens. A classification
            batch is split into passes of similar input length (every pass still mixing adapters)
            when that saves more padding than the extra passes cost. ``"auto"``: 32 on a CPU, where
            padding dominates (SloBench inputs run from 20 to 256 tokens), 4096 on a GPU, where a
            pass's fixed cost does; None: never split.
        metrics: a :class:`~slopeft.serving.metrics.ServingMetrics` (or None).
    """

    def __init__(
        self, base: SharedBase, max_batch: int = 32, max_wait_ms: float = 10.0, max_queue: int = 1024,
        pass_overhead_tokens: int | str | None = "auto", metrics: Any = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1 and max_wait_ms at least 0")
        self.base = base
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        if pass_overhead_tokens == "auto":
            pass_overhead_tokens = 4096 if base.device.type != "cpu" else 32
        self.pass_overhead_tokens = pass_overhead_tokens
        self.metrics = metrics
        self.adapters: dict[str, ServedAdapter] = {}
        self._loading: set[str] = set()
        self._slots = itertools.count(1)
        self._jobs: collections.deque[Job] = collections.deque()
        self._commands: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._stop = False
        self._finished: collections.deque[tuple[float, int]] = collections.deque()  # (when, examples): the rate
        self._thread = threading.Thread(target=self._loop, name="slopeft-engine", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    @property
    def draining(self) -> bool:
        return self._stopping

    def stop(self, timeout: float | None = None) -> None:
        """Takes no new jobs, finishes every queued one, then ends the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._jobs or self._busy) and self._thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- adapters -------------------------------------------------------------------------------
    def load(self, name: str, path: Path | str) -> ServedAdapter:
        """Loads the run at ``path`` as ``name`` (blocking; the heavy part runs on the calling thread).

        Raises:
            AdapterExists: the name is taken. AdapterLoadError / ConfigError: see
            :func:`~slopeft.serving.adapters.load_adapter`.
        """
        with self._cond:
            if name in self.adapters or name in self._loading:
                raise AdapterExists(name)
            self._loading.add(name)
        try:
            adapter = load_adapter(self.base, name, path, next(self._slots))
            self.call(lambda: install(adapter, self.base)).result()
            with self._cond:
                self.adapters[name] = adapter
            if self.metrics:
                self.metrics.adapters_loaded.set(len(self.adapters))
            log.info("loaded %s (%s on %s, %s)", name, adapter.method, adapter.task.name, adapter.mode)
            return adapter
        finally:
            with self._cond:
                self._loading.discard(name)

    def unload(self, name: str) -> ServedAdapter:
        """Stops routing requests to ``name``; its queued examples finish, then its patches go.

        Raises:
            KeyError: no adapter of that name.
        """
        with self._cond:
            adapter = self.adapters.pop(name)
            adapter.unloading = True
            idle = adapter.pending == 0
        if idle:
            self.call(lambda: uninstall(adapter, self.base))
        if self.metrics:
            self.metrics.adapters_loaded.set(len(self.adapters))
        return adapter

    def get(self, name: str) -> ServedAdapter | None:
        return self.adapters.get(name)

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Runs ``fn`` on the engine thread between batches; returns its future."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._stop or not self._thread.is_alive():
                # Not started (or stopped): nothing runs on the model concurrently, run it here.
                try:
                    future.set_result(fn())
                except Exception as err:  # noqa: BLE001 - handed to the caller
                    future.set_exception(err)
                return future
            self._commands.append((fn, future))
            self._cond.notify_all()
        return future

    # -- jobs -----------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return len(self._jobs)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained at the throughput of the last few seconds
        (1 .. :data:`MAX_RETRY_AFTER`)."""
        finished = list(self._finished)
        if len(finished) < 2 or finished[-1][0] - finished[0][0] <= 0:
            return 1
        rate = sum(n for _, n in finished[1:]) / (finished[-1][0] - finished[0][0])
        return int(min(MAX_RETRY_AFTER, max(1, math.ceil(len(self._jobs) / max(rate, 1e-3)))))

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queues ``jobs`` (all or none).

        Raises:
            Draining: the engine is stopping. QueueFull: more than ``max_queue`` examples would wait.
        """
        with self._cond:
            if self._stopping or self._stop:
                raise Draining()
            if len(self._jobs) + len(jobs) > self.max_queue:
                raise QueueFull(self.retry_after())
            for job in jobs:
                if job.adapter.unloading:
                    raise KeyError(job.adapter.name)
            now = time.monotonic()
            for job in jobs:
                job.enqueued = now
                job.adapter.pending += 1
                self._jobs.append(job)
            self._cond.notify_all()
        self._gauge_queue()

    def _gauge_queue(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._jobs))

    # -- the thread -----------------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            command = None
            with self._cond:
                while not self._jobs and not self._commands and not self._stop:
                    self._cond.wait()
                if self._commands:
                    command = self._commands.popleft()
                elif self._stop and not self._jobs:
                    return
                else:
                    deadline = self._jobs[0].enqueued + self.max_wait
                    while (
                        len(self._jobs) < self.max_batch
                        and not self._commands
                        and not self._stopping
                        and (remaining := deadline - time.monotonic()) > 0
                    ):
                        self._cond.wait(remaining)
                    if self._commands and len(self._jobs) < self.max_batch:
                        continue  # a load/unload waits no longer than a batch would
                    batch = [self._jobs.popleft() for _ in range(min(self.max_batch, len(self._jobs)))]
                    self._busy = True
            if command is not None:
                fn, future = command
                try:
                    future.set_result(fn())
                except Exception as err:  # noqa: BLE001 - handed to the caller
                    future.set_exception(err)
                continue
            self._gauge_queue()
            started = time.perf_counter()
            try:
                self._run(batch)
            except Exception:  # noqa: BLE001 - the thread must outlive any one batch
                log.exception("the engine failed on a batch of %d examples", len(batch))
            finally:
                elapsed = time.perf_counter() - started
                now = time.monotonic()
                self._finished.append((now, len(batch)))
                while self._finished and self._finished[0][0] < now - 10:
                    self._finished.popleft()
                finished = []
                with self._cond:
                    for job in batch:
                        job.adapter.pending -= 1
                        if job.adapter.unloading and job.adapter.pending == 0:
                            finished.append(job.adapter)
                    self._busy = False
                    self._cond.notify_all()
                for adapter in {id(a): a for a in finished}.values():
                    uninstall(adapter, self.base)
            if self.metrics:
                self.metrics.observe_batch(batch, elapsed)

    def _run(self, batch: list[Job]) -> None:
        lanes: dict[str, list[Job]] = collections.defaultdict(list)
        for job in batch:
            lanes[job.adapter.lane].append(job)
        with torch.inference_mode():
            for lane, jobs in lanes.items():
                mixed = [j for j in jobs if j.adapter.mode == "mixed"]
                for chunk in split_by_length(mixed, SIZES.get(lane), self.pass_overhead_tokens):
                    self._pass(lane, "mixed", chunk, RUN_MIXED[lane])
                grouped: dict[int, list[Job]] = collections.defaultdict(list)
                for job in jobs:
                    if job.adapter.mode != "mixed":
                        grouped[job.adapter.slot].append(job)
                for group in grouped.values():
                    for chunk in split_by_length(group, SIZES.get(lane), self.pass_overhead_tokens):
                        self._pass(lane, "grouped", chunk, RUN_GROUPED[lane])

    def _pass(self, lane: str, path: str, jobs: list[Job], run: Callable[[SharedBase, list[Job]], list[Any]]) -> None:
        if self.metrics:
            self.metrics.passes.labels(lane, path).inc()
        _deliver(jobs, lambda: run(self.base, jobs))


def split_by_length(
    jobs: list[Job], size: Callable[[Job], tuple[int, int]] | None, overhead: int | None
) -> list[list[Job]]:
    """Jobs in forward passes of similar length: the split minimising Σ (overhead + rows × padded length).

    ``size(job)`` is (rows, longest row in tokens). Jobs are ordered by length, so the best split
    is into consecutive runs (dynamic programming over the cut points). Without ``size`` or
    ``overhead`` the jobs stay one pass.
    """
    if size is None or overhead is None or len(jobs) < 2:
        return [jobs] if jobs else []
    sized = sorted(((size(j), i, j) for i, j in enumerate(jobs)), key=lambda t: t[0][1])
    rows = list(itertools.accumulate([r for (r, _), _, _ in sized], initial=0))
    padded = [-(-length // PAD_MULTIPLE) * PAD_MULTIPLE for (_, length), _, _ in sized]
    n = len(sized)
    best, cut = [0.0] + [math.inf] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            cost = best[start] + overhead + (rows[end] - rows[start]) * padded[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    passes, end = [], n
    while end > 0:
        passes.append([job for _, _, job in sized[cut[end] : end]])
        end = cut[end]
    return passes[::-1]


def _deliver(jobs: list[Job], run: Callable[[], list[Any]]) -> None:
    try:
        results = run()
    except Exception as err:  # noqa: BLE001 - a failed batch answers its requests, the engine goes on
        log.exception("a batch of %d examples failed", len(jobs))
        results = [err] * len(jobs)
    for job, result in zip(jobs, results, strict=True):
        try:
            job.done(result)
        except Exception:  # noqa: BLE001 - one caller's failure must not stop the others' answers
            log.exception("could not deliver a result")


def _by_adapter(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda j: j.adapter.slot)  # stable: a request's examples keep their order


def _runs(jobs: list[Job]) -> list[tuple[ServedAdapter, list[Job]]]:
    """Consecutive jobs of the same adapter (jobs sorted by adapter)."""
    return [(group[0].adapter, group) for _, grouped in itertools.groupby(jobs, key=lambda j: j.adapter.slot)
            for group in [list(grouped)]]


# -- encoder classification ---------------------------------------------------------------------------
class _Precomputed(nn.Module):
    """Stands in for an adapter's encoder inside its classifier: hands back its rows of the shared
    forward pass, pooled by the adapter's own pooler, so transformers' head code runs unchanged."""

    def __init__(self, hidden: torch.Tensor, pooler: nn.Module | None) -> None:
        super().__init__()
        self.hidden = hidden
        self.pooler = pooler

    def forward(self, *args: Any, **kwargs: Any) -> BaseModelOutputWithPoolingAndCrossAttentions:
        pooled = self.pooler(self.hidden) if self.pooler is not None else None
        return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=self.hidden, pooler_output=pooled)


def _sequences(job: Job) -> list[dict[str, list[int]]]:
    return job.features["choices"] if "choices" in job.features else [job.features]


def encoder_batch(base: SharedBase, sequences: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Pads encoder features (from every adapter's head) to one batch, as the heads pad theirs."""
    batch = {
        "input_ids": pad([s["input_ids"] for s in sequences], base.pad_id),
        "attention_mask": pad([s["attention_mask"] for s in sequences], 0),
    }
    if "token_type_ids" in sequences[0]:
        batch["token_type_ids"] = pad([s["token_type_ids"] for s in sequences], 0)
    return batch


def head_logits(adapter: ServedAdapter, hidden: torch.Tensor, batch: dict[str, torch.Tensor], examples: int) -> torch.Tensor:
    """The adapter's classifier on its rows ``hidden`` of a shared encoder pass (``batch``: those rows' inputs)."""
    hf = adapter.hf_model
    prefix = hf.base_model_prefix
    encoder = hf._modules[prefix]
    if len(batch["input_ids"]) != examples:  # multiple choice: (examples, choices, length)
        batch = {k: v.view(examples, -1, v.shape[-1]) for k, v in batch.items()}
    hf._modules[prefix] = _Precomputed(hidden, getattr(encoder, "pooler", None))
    try:
        return hf(**batch).logits
    finally:
        hf._modules[prefix] = encoder


def _classifications(adapter: ServedAdapter, logits: torch.Tensor) -> list[Classification]:
    probabilities = logits.float().softmax(-1)
    labels = adapter.labels
    results = []
    for row, index in zip(probabilities.tolist(), logits.argmax(-1).tolist(), strict=True):
        results.append(Classification(adapter.head.label_of(index), dict(zip(labels, row, strict=True))))
    return results


def run_encode_mixed(base: SharedBase, jobs: list[Job]) -> list[Any]:
    jobs_sorted = _by_adapter(jobs)
    sequences, segments, spans = [], [], []
    for adapter, group in _runs(jobs_sorted):
        start = len(sequences)
        for job in group:
            sequences += _sequences(job)
        segments.append(Segment(adapter.slot, start, len(sequences)))
        spans.append((adapter, group, start, len(sequences)))
    batch = {k: v.to(base.device) for k, v in encoder_batch(base, sequences).items()}
    with base.state.use(RowPlan(tuple(segments), len(sequences))):
        hidden = base.model(**batch).last_hidden_state
    results: dict[int, Any] = {}
    for adapter, group, start, end in spans:
        rows = {k: v[start:end] for k, v in batch.items()}
        logits = head_logits(adapter, hidden[start:end], rows, len(group))
        for job, result in zip(group, _classifications(adapter, logits), strict=True):
            results[id(job)] = result
    return [results[id(job)] for job in jobs]


def run_encode_grouped(base: SharedBase, jobs: list[Job]) -> list[Any]:
    adapter = jobs[0].adapter
    batch = {k: v.to(base.device) for k, v in adapter.head.collate([job.features for job in jobs]).items()}
    return _classifications(adapter, adapter.model(**batch).logits)


# -- candidate scoring (classification with a causal or seq2seq LM) -----------------------------------
def _score_results(jobs: list[Job], scores: list[float]) -> list[Any]:
    results, position = [], 0
    for job in jobs:
        n = len(job.features)
        mine = scores[position : position + n]
        position += n
        labels = job.adapter.head.format.candidate_labels()
        best = max(range(n), key=mine.__getitem__)  # the first of equal scores, as the head's predict
        probabilities = torch.tensor(mine, dtype=torch.float64).softmax(-1).tolist()
        results.append(Classification(labels[best], dict(zip(job.adapter.labels, probabilities, strict=True))))
    return results


def run_score_mixed(base: SharedBase, jobs: list[Job]) -> list[Any]:
    jobs_sorted = _by_adapter(jobs)
    rows, segments = [], []
    for adapter, group in _runs(jobs_sorted):
        start = len(rows)
        for job in group:
            rows += job.features
        segments.append(Segment(adapter.slot, start, len(rows)))
    with base.state.use(RowPlan(tuple(segments), len(rows))):
        scores = jobs_sorted[0].adapter.head.score_rows(base.model, rows)
    results = dict(zip(map(id, jobs_sorted), _score_results(jobs_sorted, scores), strict=True))
    return [results[id(job)] for job in jobs]


def run_score_grouped(base: SharedBase, jobs: list[Job]) -> list[Any]:
    adapter = jobs[0].adapter
    rows = [row for job in jobs for row in job.features]
    return _score_results(jobs, adapter.head.score_rows(adapter.model, rows))


# -- generation -------------------------------------------------------------------------------------
def _generations(base: SharedBase, jobs: list[Job], outputs: list[list[int]]) -> list[Any]:
    eos = base.tokenizer.eos_token_id
    results = []
    for job, ids in zip(jobs, outputs, strict=True):
        limit = job.max_tokens or job.adapter.head.max_new_tokens
        ids = ids[:limit]
        ended = eos is not None and eos in ids
        used = ids.index(eos) + 1 if ended else len(ids)
        with base.tokenizer_lock:
            text = job.adapter.head.decode(ids)
            full = base.tokenizer.decode(ids, skip_special_tokens=True).strip()
        finish = "stop" if ended or text != full else "length"
        results.append(Generation(text, len(job.features), used, finish))
    return results


def run_generate_mixed(base: SharedBase, jobs: list[Job]) -> list[Any]:
    jobs_sorted = _by_adapter(jobs)
    segments, start = [], 0
    for adapter, group in _runs(jobs_sorted):
        segments.append(Segment(adapter.slot, start, start + len(group)))
        start += len(group)
    longest = max(job.max_tokens or job.adapter.head.max_new_tokens for job in jobs_sorted)
    with base.state.use(RowPlan(tuple(segments), len(jobs_sorted))):
        outputs = jobs_sorted[0].adapter.head.generate_ids(base.model, [j.features for j in jobs_sorted], longest)
    results = dict(zip(map(id, jobs_sorted), _generations(base, jobs_sorted, outputs), strict=True))
    return [results[id(job)] for job in jobs]


def run_generate_grouped(base: SharedBase, jobs: list[Job]) -> list[Any]:
    adapter = jobs[0].adapter
    longest = max(job.max_tokens or adapter.head.max_new_tokens for job in jobs)
    outputs = adapter.head.generate_ids(adapter.model, [j.features for j in jobs], longest)
    return _generations(base, jobs, outputs)


def _encode_size(job: Job) -> tuple[int, int]:
    sequences = _sequences(job)
    return len(sequences), max(len(s["input_ids"]) for s in sequences)


def _score_size(job: Job) -> tuple[int, int]:
    return len(job.features), max(len(prompt) + len(candidate) for prompt, candidate in job.features)


# Generation is not split: its decoding steps are small matrix products, where batching pays most.
SIZES = {"encode": _encode_size, "score": _score_size}
RUN_MIXED = {"encode": run_encode_mixed, "score": run_score_mixed, "generate": run_generate_mixed}
RUN_GROUPED = {"encode": run_encode_grouped, "score": run_score_grouped, "generate": run_generate_grouped}
