"""Serving six SloBench task adapters from one base model: slopeft's mixed batches vs the alternatives.

One stream of requests, each one real validation example of one of six SuperGLUE tasks (BoolQ,
CB, COPA, MultiRC, RTE, WSC) with its task's LoRA adapter (r=8 on queries and values, the task
head trained with it), sent by ``--concurrency`` closed-loop clients (each sends its next request
when the last is answered). Side by side, each in its own subprocess (so its peak RSS is its own):

* ``a-mixed``:   slopeft's engine: requests for all six adapters in one batch, the base computed once;
* ``b-merged``:  the single-adapter ceiling: the same engine and batches on one model with one LoRA
                 merged into its weights and no per-row adapter work (the heads still per task);
* ``c-swap``:    per-request adapter swapping, what a PEFT user writes: one PeftModel holding the six
                 LoRAs, ``set_adapter(task)`` then a forward pass for each request alone;
* ``d-copies``:  six merged copies of the model, one per task; each batch split by task;
* ``base``:      the bare base model on the same batches (no adapter, no head): the memory reference.

Requests are tokenised before timing (the same work in every variant). Throughput needs no
trained weights: the adapters are trained for one optimiser step (``prepare``), which makes every
LoRA B non-zero, so each adapter's update is real work. ``--random-base`` runs the same benchmark
on a randomly initialised model of XLM-R-base's shape (12 layers, hidden 768, 250k vocabulary,
e5's tokenizer) with ``--adapters`` random LoRA adapters (the six trained ones, then copies with
random B matrices).

    python benchmarks/serving.py                       # e5-small-multilingual, six adapters
    python benchmarks/serving.py --random-base --adapters 32 --requests 200
    python benchmarks/serving.py --device cuda ...     # the same on a GPU
    python benchmarks/serving.py --batching-gain       # what batching alone gains on this machine

Writes benchmarks/results/serving[-random-N].json and prints the table with ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

TASKS = ("boolq", "cb", "copa", "multirc", "rte", "wsc")
MODEL = "e5-small-multilingual"
VARIANTS = ("base", "a-mixed", "b-merged", "c-swap", "d-copies")
RESULTS = Path(__file__).resolve().parent / "results"


# -- preparing adapters -----------------------------------------------------------------------------
def train_one_step(model: str, task: str, out: Path, max_length: int) -> None:
    from rich.console import Console

    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.training.run import train_run

    # 16 / 8 examples: a MultiRC slice ends on a question boundary, and its first training question
    # has 9 answers, its first validation question 4 (smaller limits keep nothing to train or score).
    config = RunConfig(
        task=f"slo-superglue/{task}", model=model, method="lora", output=str(out),
        training=TrainingConfig(max_steps=1, batch_size=2, max_train_examples=16, max_eval_examples=8,
                                eval_batch_size=2, max_length=max_length),
    )
    train_run(config, console=Console(file=io.StringIO()))


def random_copy(source: Path, out: Path, seed: int) -> None:
    """A copy of a LoRA run whose B matrices are random (another adapter, same shapes and head)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, out)
    weights = out / "adapter" / "adapter_model.safetensors"
    state = load_file(str(weights))
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in state.items():
        if "lora_B" in name:
            state[name] = torch.randn(tensor.shape, generator=generator) * 0.01
    save_file(state, str(weights))


def random_base(out: Path) -> Path:
    """A randomly initialised XLM-R-base-shaped encoder with e5's (XLM-R's) tokenizer."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from slopeft.models.sources import model_path, resolve_model

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    XLMRobertaModel(config).save_pretrained(out)
    e5 = Path(model_path(resolve_model(MODEL)))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(e5 / name, out / name)
    return out


def prepare(model: str, root: Path, adapters: int, max_length: int) -> dict[str, str]:
    runs: dict[str, str] = {}
    for i in range(adapters):
        task = TASKS[i % len(TASKS)]
        name = task if i < len(TASKS) else f"{task}-{i // len(TASKS)}"
        out = root / name
        if not (out / "record.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            if i < len(TASKS):
                print(f"training {name} for one step ...", file=sys.stderr)
                train_one_step(model, task, out, max_length)
            else:
                random_copy(root / task, out, seed=i)
        runs[name] = str(out)
    return runs


# -- one variant (child process) ----------------------------------------------------------------------
class Batcher:
    """A minimal batching server for the baselines: up to ``max_batch`` requests, ``max_wait`` seconds."""

    def __init__(self, run, max_batch: int, max_wait: float) -> None:
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.items: list = []
        self.cond = threading.Condition()
        threading.Thread(target=self.loop, daemon=True).start()

    def submit(self, item, done) -> None:
        with self.cond:
            self.items.append((time.monotonic(), item, done))
            self.cond.notify_all()

    def loop(self) -> None:
        import torch

        while True:
            with self.cond:
                while not self.items:
                    self.cond.wait()
                deadline = self.items[0][0] + self.max_wait
                while len(self.items) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self.cond.wait(left)
                batch, self.items = self.items[: self.max_batch], self.items[self.max_batch :]
            with torch.inference_mode():
                self.run([item for _, item, _ in batch])
            for _, _, done in batch:
                done(None)


def child(variant: str, spec: dict) -> dict:
    import resource

    import torch

    from slopeft.models.sources import load_tokenizer
    from slopeft.records import read_record
    from slopeft.serving.adapters import SharedBase, _run_config, install, load_adapter, uninstall
    from slopeft.serving.engine import Engine, Job, encoder_batch, head_logits
    from slopeft.training.build import load_base, prepare_parts
    from slopeft.training.memory import PeakMemory, limit_heap_fragmentation

    limit_heap_fragmentation(2048)  # what `slopeft serve` applies on CPU, in every variant
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    started_load = time.perf_counter()
    names = sorted(spec["runs"])
    runs = {n: Path(spec["runs"][n]) for n in names}
    tokenizer = load_tokenizer(spec["model"])
    base = SharedBase(spec["model"], tokenizer=tokenizer, device=device) if variant != "d-copies" else None
    # The same heads tokenise the same requests in every variant (before timing).
    parts = {n: prepare_parts(_run_config(read_record(runs[n]), base or _Named(spec["model"])), tokenizer=tokenizer)
             for n in names}
    rng = random.Random(spec["seed"])
    stream = []
    for _ in range(spec["requests"] + spec["warmup"]):
        name = rng.choice(names)
        example = rng.choice(parts[name].task.examples("val"))
        stream.append((name, example, parts[name].head.encode([example], with_labels=False)[0]))

    def sequences(features):
        return features["choices"] if "choices" in features else [features]

    def on_device(batch):
        return {k: v.to(device) for k, v in batch.items()}

    copies: dict = {}
    if base is not None:
        adapters = {n: load_adapter(base, n, runs[n], slot=i + 1) for i, n in enumerate(names)}

    if variant in ("a-mixed", "b-merged"):
        engine = Engine(base, max_batch=spec["max_batch"], max_wait_ms=spec["max_wait_ms"], max_queue=10**6)
        engine.start()
        for adapter in adapters.values():
            engine.call(lambda a=adapter: install(a, base)).result()
            engine.adapters[adapter.name] = adapter
        if variant == "b-merged":
            with torch.no_grad():  # one LoRA folded into the shared weights; nobody's rows get patched
                for patch in adapters[names[0]].patches.values():
                    patch.module.get_base_layer().weight += patch.module.get_delta_weight("default")
            engine.call(lambda: [uninstall(a, base) for a in adapters.values()]).result()

        def submit(name, example, features, done):
            engine.submit([Job(adapters[name], example, features, done)])

    elif variant == "c-swap":
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from safetensors.torch import load_file

        peft_model = None
        for name in names:
            config = json.loads((runs[name] / "adapter" / "adapter_config.json").read_text())
            lora = LoraConfig(r=config["r"], lora_alpha=config["lora_alpha"], target_modules=config["target_modules"])
            if peft_model is None:
                peft_model = get_peft_model(base.model, lora, adapter_name=name)
            else:
                peft_model.add_adapter(name, lora)
            prefix = "base_model.model." + adapters[name].hf_model.base_model_prefix + "."
            saved = load_file(str(runs[name] / "adapter" / "adapter_model.safetensors"))
            state = {k.replace(prefix, "base_model.model."): v for k, v in saved.items() if "lora_" in k}
            loaded = set_peft_model_state_dict(peft_model, state, adapter_name=name)
            mine = [k for k in peft_model.state_dict() if f".{name}." in k and "lora_" in k]
            assert not loaded.unexpected_keys and len(mine) == len(state), (loaded.unexpected_keys[:3], len(mine))
        peft_model.to(device).eval()

        def one_request(items) -> None:
            ((name, features),) = items
            peft_model.set_adapter(name)  # what a PEFT user does before each request
            batch = on_device(encoder_batch(base, sequences(features)))
            head_logits(adapters[name], peft_model(**batch).last_hidden_state, batch, 1)

        server = Batcher(one_request, 1, 0.0)

        def submit(name, example, features, done):
            server.submit((name, features), done)

    elif variant == "d-copies":
        for name in names:
            own, context = load_base(parts[name])
            copies[name] = parts[name].method.merge(parts[name].method.load(own, runs[name] / "adapter", context))
            copies[name].to(device).eval()

        def per_task(items) -> None:
            groups: dict[str, list] = {}
            for name, features in items:
                groups.setdefault(name, []).append(features)
            for name, group in groups.items():
                copies[name](**on_device(parts[name].head.collate(group)))

        server = Batcher(per_task, spec["max_batch"], spec["max_wait_ms"] / 1000)

        def submit(name, example, features, done):
            server.submit((name, features), done)

    else:  # base: the shared encoder alone on the same batches (no adapter, no head)

        def backbone(items) -> None:
            base.model(**on_device(encoder_batch(base, [s for _, f in items for s in sequences(f)])))

        server = Batcher(backbone, spec["max_batch"], spec["max_wait_ms"] / 1000)

        def submit(name, example, features, done):
            server.submit((name, features), done)

    # transformers maps safetensors files lazily: untouched weights (most of a 250k-row embedding matrix)
    # are not resident yet. Touch every tensor of every model the variant holds, as a long-running
    # server eventually has, so that peak RSS counts each variant's weights in full.
    models = [base.model] if base is not None and variant != "d-copies" else []
    models += [a.model for a in adapters.values()] if base is not None else list(copies.values())
    seen = set()
    with torch.no_grad():
        for model_ in models:
            for tensor in [*model_.parameters(), *model_.buffers()]:
                if tensor.data_ptr() not in seen:
                    seen.add(tensor.data_ptr())
                    float(tensor.float().sum())
    load_seconds = time.perf_counter() - started_load

    def closed_loop(items, concurrency) -> tuple[float, list[float]]:
        queue = list(reversed(items))
        lock = threading.Lock()
        latencies: list[float] = []

        def client() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    name, example, features = queue.pop()
                finished = threading.Event()
                sent = time.perf_counter()
                submit(name, example, features, lambda _, event=finished: event.set())
                finished.wait()
                latencies.append(time.perf_counter() - sent)

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - begin, latencies

    closed_loop(stream[: spec["warmup"]], spec["concurrency"])
    with PeakMemory() as serving_memory:
        wall, latencies = closed_loop(stream[spec["warmup"] :], spec["concurrency"])
    latencies.sort()
    return {
        "variant": variant,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "serving_peak_rss_mb": serving_memory.peak_rss_mb,
        "serving_peak_gpu_mb": serving_memory.peak_gpu_mb,
        "load_seconds": load_seconds,
    }


class _Named:
    """Stands in for the shared base where only its name is read (the six-copies variant has none)."""

    def __init__(self, name: str) -> None:
        self.name = name


# -- the parent -----------------------------------------------------------------------------------------
def run_variant(variant: str, spec_path: Path) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--spec", str(spec_path)],
        capture_output=True, text=True, env=environment,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def table(results: dict[str, list[dict]]) -> str:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    first = next(iter(results))
    reference = {"requests_per_s": median("b-merged" if "b-merged" in results else first, "requests_per_s")}
    base_rss = median("base" if "base" in results else first, "peak_rss_mb")
    rows = ["| variant | req/s | × (b) | p50 ms | p99 ms | peak RSS MB | RSS × base | serving-phase peak RSS MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for variant in VARIANTS:
        if variant not in results:
            continue
        rps = median(variant, "requests_per_s")
        spread = [r["requests_per_s"] for r in results[variant]]
        rows.append(
            f"| {variant} | {rps:.1f} ({min(spread):.1f}–{max(spread):.1f}) | {rps / reference['requests_per_s']:.2f} | "
            f"{median(variant, 'p50_ms'):.0f} | {median(variant, 'p99_ms'):.0f} | {median(variant, 'peak_rss_mb'):.0f} | "
            f"{median(variant, 'peak_rss_mb') / base_rss:.2f} | {median(variant, 'serving_peak_rss_mb'):.0f} |"
        )
    if {"a-mixed", "b-merged", "c-swap", "base"} <= set(results):
        rows.append("")
        rows.append(
            f"(a) / (b) throughput {median('a-mixed', 'requests_per_s') / reference['requests_per_s']:.2f} (goal ≥ 0.8); "
            f"(a) / (c) {median('a-mixed', 'requests_per_s') / median('c-swap', 'requests_per_s'):.2f} (goal ≥ 3); "
            f"(a) peak RSS / base {median('a-mixed', 'peak_rss_mb') / base_rss:.2f} (goal ≤ 1.2)."
        )
    return "\n".join(rows)


def batching_gain(model: str, threads: int) -> str:
    """Time per token of the bare base model for one sequence vs batches: what batching can gain here."""
    import torch
    import transformers

    from slopeft.models.sources import model_path, resolve_model

    transformers.logging.set_verbosity_error()
    if threads:
        torch.set_num_threads(threads)
    encoder = transformers.AutoModel.from_pretrained(model_path(resolve_model(model))).eval()
    rows = ["| tokens per sequence | µs/token, 1 sequence | 8 sequences | 32 sequences |", "| ---: | ---: | ---: | ---: |"]
    with torch.inference_mode():
        for length in (32, 64, 128):
            cells = []
            for batch in (1, 8, 32):
                ids = torch.randint(5, 1000, (batch, length))
                for _ in range(3):  # new shapes: kernels are set up on the first calls
                    encoder(input_ids=ids)
                times = []
                for _ in range(max(3, 96 // batch)):
                    started = time.perf_counter()
                    encoder(input_ids=ids)
                    times.append(time.perf_counter() - started)
                cells.append(f"{statistics.median(times) / (batch * length) * 1e6:.0f}")
            rows.append(f"| {length} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--random-base", action="store_true", help="XLM-R-base-shaped random model instead.")
    parser.add_argument("--adapters", type=int, default=6, help="Adapters (6 tasks, then random copies).")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--max-length", type=int, default=128, help="The adapters' training max_length.")
    parser.add_argument("--repeats", type=int, default=1, help="Rounds; each variant once per round, medians shown.")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("outputs/bench-serving"))
    parser.add_argument("--batching-gain", action="store_true",
                        help="Only time the bare base model per token for 1, 8 and 32 sequences.")
    args = parser.parse_args(argv)
    if args.batching_gain:
        print(batching_gain(args.model, args.threads))
        return 0
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.spec.read_text()))))
        return 0
    model = args.model
    work = args.work / ("random-xlmr-base" if args.random_base else Path(model).name)
    if args.random_base:
        model = str(random_base(args.work / "random-xlmr-base-model"))
    runs = prepare(model, work, args.adapters, args.max_length)
    spec = {"model": model, "runs": runs, "requests": args.requests, "warmup": args.warmup,
            "concurrency": args.concurrency, "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
            "seed": 0, "threads": args.threads, "device": args.device}
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    results: dict[str, list[dict]] = {}
    for round_ in range(args.repeats):
        for variant in args.variants.split(","):
            result = run_variant(variant, spec_path)
            results.setdefault(variant, []).append(result)
            print(f"round {round_ + 1} {variant}: {result['requests_per_s']:.1f} req/s, "
                  f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, peak RSS {result['peak_rss_mb']:.0f} MB",
                  file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    name = f"serving{'-random' if args.random_base else ''}-{args.adapters}{'-' + args.device if args.device != 'cpu' else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps({"spec": spec, "results": results}, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
