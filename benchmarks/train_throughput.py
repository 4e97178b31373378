"""Training throughput and memory: slopeft vs a plain transformers-Trainer + PEFT script.

Each variant runs in its own subprocess (so peak RSS is its own), on the same model
(e5-small-multilingual), data (SI-NLI train), batch size, thread count and number of steps:

- reference-lora: transformers' Trainer + peft LoRA written the way the transformers
  text-classification example does it (padding every input to max_length 128);
- slopeft-lora: `slopeft train` LoRA (dynamic padding, batches grouped by length);
- slopeft-bitfit, slopeft-full, slopeft-full-sparse: the same loop with other methods.

Usage:
    python benchmarks/train_throughput.py [--steps 30] [--batch-size 16] [--threads 2] [--quality]

--quality also trains dense and sparse full fine-tuning for one epoch on 800 SI-NLI rows and
compares their validation accuracy (is the sparse speed-up free?).
Prints a table and writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODEL = "e5-small-multilingual"
MAX_LENGTH = 128


def _reference_lora(steps: int, batch_size: int, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from slopeft.models.sources import model_path, resolve_model
    from slopeft.tasks import get_task
    from slopeft.training.memory import PeakMemory

    path = model_path(resolve_model(MODEL))
    task = get_task("si-nli")
    rows = task.examples("train")[: steps * batch_size]
    labels = list(task.spec.labels)
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = Dataset.from_dict({"premise": ["query: " + e.inputs["premise"] for e in rows],
                              "hypothesis": [e.inputs["hypothesis"] for e in rows],
                              "label": [labels.index(e.label) for e in rows]})
    # As in transformers' examples/pytorch/text-classification/run_glue.py with pad_to_max_length.
    data = data.map(lambda b: tokenizer(b["premise"], b["hypothesis"], padding="max_length", max_length=MAX_LENGTH,
                                        truncation=True), batched=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                                             target_modules=["query", "value"]))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps,
                             learning_rate=5e-4, report_to=[], save_strategy="no", logging_steps=10_000,
                             dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), seed=42)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    with PeakMemory() as memory:
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"examples_per_s": steps * batch_size / seconds, "peak_rss_mb": memory.peak_rss_mb, "seconds": seconds}


def _slopeft(method: str, steps: int, batch_size: int, out: Path, options: dict | None = None,
             train_examples: int = 0, epochs: float = 1.0) -> dict:
    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.training.run import train_run

    config = RunConfig(task="si-nli", model=MODEL, method=method, output=str(out), seed=42,
                       method_options=options or {},
                       training=TrainingConfig(max_steps=steps, epochs=epochs, batch_size=batch_size,
                                               max_length=MAX_LENGTH, max_train_examples=train_examples,
                                               max_eval_examples=0 if train_examples else 32))
    record = train_run(config)
    cost = record["cost"]
    return {"examples_per_s": cost["train_examples_per_s"], "peak_rss_mb": cost["peak_rss_mb"],
            "seconds": cost["train_seconds"], "val_accuracy": record["metrics"]["val"]["accuracy"],
            "trainable": cost["trainable"]}


VARIANTS = {
    "reference-lora": lambda a, out: _reference_lora(a.steps, a.batch_size, out),
    "slopeft-lora": lambda a, out: _slopeft("lora", a.steps, a.batch_size, out),
    "slopeft-bitfit": lambda a, out: _slopeft("bitfit", a.steps, a.batch_size, out),
    "slopeft-full": lambda a, out: _slopeft("full", a.steps, a.batch_size, out),
    "slopeft-full-sparse": lambda a, out: _slopeft("full", a.steps, a.batch_size, out, {"sparse_embeddings": True}),
    "quality-full": lambda a, out: _slopeft("full", 0, a.batch_size, out, train_examples=800),
    "quality-full-sparse": lambda a, out: _slopeft("full", 0, a.batch_size, out, {"sparse_embeddings": True},
                                                   train_examples=800),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="benchmarks/results/work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # child process: one variant, JSON on the last stdout line
        import torch

        torch.set_num_threads(args.threads)
        out = Path(args.workdir) / args.variant
        result = VARIANTS[args.variant](args, out)
        print(json.dumps(result))
        return

    import shutil

    from rich.console import Console
    from rich.table import Table

    shutil.rmtree(args.workdir, ignore_errors=True)
    names = [n for n in VARIANTS if args.quality or not n.startswith("quality")]
    results = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    for name in names:
        command = [sys.executable, __file__, "--variant", name, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--threads", str(args.threads), "--workdir", args.workdir]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]}", file=sys.stderr)

    reference = results["reference-lora"]
    table = Table(title=f"Training throughput · {MODEL} · SI-NLI · batch {args.batch_size} · {args.steps} steps · "
                        f"{args.threads} threads")
    for column in ("variant", "examples/s", "× reference", "peak RSS MB", "RSS vs reference", "val acc"):
        table.add_column(column)
    for name, r in results.items():
        table.add_row(name, f"{r['examples_per_s']:.1f}", f"{r['examples_per_s'] / reference['examples_per_s']:.2f}",
                      f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / reference['peak_rss_mb']:.2f}",
                      f"{r['val_accuracy']:.3f}" if "val_accuracy" in r else "-")
    Console().print(table)
    target = Path("benchmarks/results/train_throughput.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"settings": vars(args), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
