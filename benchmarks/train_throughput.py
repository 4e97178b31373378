"""Training throughput and memory: slopeft vs a plain transformers-Trainer + PEFT script.

Each variant runs in its own subprocess (so peak RSS is its own), on the same model
(e5-small-multilingual), data (SI-NLI train), batch size, thread count and number of steps:

- reference-lora: transformers' Trainer + peft LoRA written the way the transformers
  text-classification example does it (padding every input to max_length 128);
- slopeft-lora: `slopeft train` LoRA (dynamic padding, batches grouped by length);
- slopeft-bitfit, slopeft-full, slopeft-full-sparse: the same loop with other methods;
- with --bf16, slopeft-lora-bf16, slopeft-bitfit-bf16, slopeft-full-sparse-bf16: the same in bf16
  mixed precision (`training.precision=bf16`, CPU autocast).

Two more variants show where the memory difference comes from: slopeft with glibc's adaptive mmap
threshold (what the reference script runs with) and the reference with the fixed threshold (2 MiB by default)
slopeft's trainer sets on CPU.

Usage:
    python benchmarks/train_throughput.py [--steps 30] [--repeats 3] [--batch-size 16] [--threads 2]
        [--quality | --only-quality] [--flops] [--seeds 3] [--quality-train 1600] [--quality-lr 5e-5]
        [--bf16] [--variants slopeft-lora,slopeft-lora-bf16]

--variants keeps only the named throughput variants (reference-lora always runs: the ratios are to it).

--flops also runs benchmarks/train_flops.py: each method's achieved training FLOP/s against the
fp32 GEMM peak measured in the same run.
--quality also trains dense and sparse-embedding full fine-tuning (--seeds seeds each, on the first
--quality-train SI-NLI rows) and compares their accuracy on all validation rows with a paired
bootstrap: is the sparse speed-up free?
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


def _reference_lora(steps: int, batch_size: int, out: Path, fixed_mmap_threshold: bool = False) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from slopeft.config import TrainingConfig
    from slopeft.models.sources import model_path, resolve_model
    from slopeft.tasks import get_task
    from slopeft.training.memory import PeakMemory, limit_heap_fragmentation

    if fixed_mmap_threshold:  # the allocator setting slopeft's trainer applies on CPU, for comparison
        limit_heap_fragmentation(TrainingConfig().malloc_mmap_threshold_kib)
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
             train_examples: int = 0, epochs: float = 1.0, seed: int = 42, learning_rate: float | None = None,
             **training: object) -> dict:
    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.training.run import train_run

    config = RunConfig(task="si-nli", model=MODEL, method=method, output=str(out), seed=seed,
                       method_options=options or {},
                       training=TrainingConfig(max_steps=steps, epochs=epochs, batch_size=batch_size,
                                               learning_rate=learning_rate, max_length=MAX_LENGTH,
                                               max_train_examples=train_examples,
                                               max_eval_examples=0 if train_examples else 32, **training))
    record = train_run(config)
    cost = record["cost"]
    return {"examples_per_s": cost["train_examples_per_s"], "peak_rss_mb": cost["peak_rss_mb"],
            "seconds": cost["train_seconds"], "val_accuracy": record["metrics"]["val"]["accuracy"],
            "trainable": cost["trainable"]}


SPARSE = {"sparse_embeddings": True}
THROUGHPUT = {
    "reference-lora": lambda a, out: _reference_lora(a.steps, a.batch_size, out),
    "slopeft-lora": lambda a, out: _slopeft("lora", a.steps, a.batch_size, out),
    "slopeft-bitfit": lambda a, out: _slopeft("bitfit", a.steps, a.batch_size, out),
    "slopeft-full": lambda a, out: _slopeft("full", a.steps, a.batch_size, out),
    "slopeft-full-sparse": lambda a, out: _slopeft("full", a.steps, a.batch_size, out, SPARSE),
    # Where the memory difference comes from: slopeft with glibc's adaptive mmap threshold, and the
    # reference with the fixed threshold slopeft's trainer sets on CPU (slopeft/training/memory.py).
    "slopeft-lora-adaptive-malloc": lambda a, out: _slopeft("lora", a.steps, a.batch_size, out,
                                                            malloc_mmap_threshold_kib=0),
    "reference-lora-fixed-malloc": lambda a, out: _reference_lora(a.steps, a.batch_size, out, True),
}
# bf16 mixed precision (CPU autocast): pays where the CPU multiplies bf16 natively (AVX512_BF16, AMX)
BF16 = {
    "slopeft-lora-bf16": lambda a, out: _slopeft("lora", a.steps, a.batch_size, out, precision="bf16"),
    "slopeft-bitfit-bf16": lambda a, out: _slopeft("bitfit", a.steps, a.batch_size, out, precision="bf16"),
    "slopeft-full-sparse-bf16": lambda a, out: _slopeft("full", a.steps, a.batch_size, out, SPARSE, precision="bf16"),
}
QUALITY = {
    "quality-full": lambda a, out: _slopeft("full", 0, a.batch_size, out, None, a.quality_train, a.quality_epochs,
                                            a.seed, a.quality_lr),
    "quality-full-sparse": lambda a, out: _slopeft("full", 0, a.batch_size, out, SPARSE, a.quality_train,
                                                   a.quality_epochs, a.seed, a.quality_lr),
}


def _run_child(args: argparse.Namespace, variant: str, seed: int = 42, round_: int = 0) -> dict:
    command = [sys.executable, __file__, "--variant", variant, "--seed", str(seed), "--round", str(round_),
               "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--workdir", args.workdir,
               "--quality-train", str(args.quality_train), "--quality-epochs", str(args.quality_epochs),
               "--quality-lr", str(args.quality_lr)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{variant} (seed {seed}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{variant} seed {seed} round {round_}: {result}", file=sys.stderr)
    return result


def _median_of(runs: list[dict]) -> dict:
    import statistics

    summary = {}
    for key in ("examples_per_s", "peak_rss_mb"):
        values = [r[key] for r in runs]
        summary |= {key: statistics.median(values), f"{key}_min": min(values), f"{key}_max": max(values)}
    return summary


def _quality(args: argparse.Namespace) -> dict:
    """Dense vs sparse-embedding full fine-tuning, several seeds each, scored on all of SI-NLI's
    validation rows; the difference is tested with the paired bootstrap the reports use."""
    import numpy as np

    from slopeft.evaluation.baselines import majority
    from slopeft.records import VAL_PREDICTIONS
    from slopeft.reporting.stats import mean_std, paired_bootstrap
    from slopeft.tasks import get_task

    task = get_task("si-nli")
    val = task.examples("val")
    runs: dict[str, list[dict]] = {name: [] for name in QUALITY}
    predictions: dict[str, list[dict]] = {name: [] for name in QUALITY}
    for seed in range(args.seeds):
        for name in QUALITY:
            runs[name].append(_run_child(args, name, seed))
            saved = json.loads((Path(args.workdir) / f"{name}-seed{seed}" / VAL_PREDICTIONS).read_text())
            predictions[name].append({int(k): v for k, v in saved.items()})
    test = paired_bootstrap(task, val, predictions["quality-full-sparse"], predictions["quality-full"],
                            metric="accuracy")
    majority_accuracy = task.metrics(majority(task, task.examples("train")[: args.quality_train], val), val)["accuracy"]
    summary = {}
    for name, results in runs.items():
        accuracies = [r["val_accuracy"] for r in results]
        mean, std = mean_std(accuracies)
        summary[name] = {"accuracies": accuracies, "mean": mean, "std": std,
                         "examples_per_s": float(np.mean([r["examples_per_s"] for r in results]))}
    return {"runs": summary, "majority_accuracy": majority_accuracy, "val_examples": len(val),
            "sparse_minus_dense": {"delta": test.delta, "low": test.low, "high": test.high,
                                   "p_value": test.p_value, "draws": test.draws}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the throughput variants (median shown)")
    parser.add_argument("--quality", action="store_true", help="also compare dense and sparse full FT quality")
    parser.add_argument("--only-quality", action="store_true", help="skip the throughput variants")
    parser.add_argument("--flops", action="store_true",
                        help="also print every method's achieved training FLOP/s against the fp32 GEMM peak "
                             "(benchmarks/train_flops.py, same threads and batch size)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per quality variant")
    parser.add_argument("--quality-train", type=int, default=1600, help="training rows for the quality runs")
    parser.add_argument("--quality-epochs", type=float, default=1.0)
    parser.add_argument("--quality-lr", type=float, default=5e-5)
    parser.add_argument("--bf16", action="store_true", help="also run the bf16 mixed-precision variants")
    parser.add_argument("--variants", help="comma-separated throughput variants to run (default: all)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="benchmarks/results/work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # child process: one variant, JSON on the last stdout line
        import torch

        torch.set_num_threads(args.threads)
        throughput = {**THROUGHPUT, **BF16}
        name = f"{args.variant}-round{args.round}" if args.variant in throughput else f"{args.variant}-seed{args.seed}"
        result = {**throughput, **QUALITY}[args.variant](args, Path(args.workdir) / name)
        print(json.dumps(result))
        return

    import shutil

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # logs keep whole variant names
    shutil.rmtree(args.workdir, ignore_errors=True)
    report: dict = {"settings": vars(args)}
    if not args.only_quality:
        # Variants take turns, --repeats rounds, so a slow spell of a shared machine hits them all;
        # the table shows each variant's median and the range over rounds.
        variants = [*THROUGHPUT, *(BF16 if args.bf16 else ())]
        if args.variants:
            wanted = args.variants.split(",")
            unknown = sorted(set(wanted) - set(THROUGHPUT) - set(BF16))
            if unknown:
                raise SystemExit(f"unknown variants {unknown}; known: {', '.join([*THROUGHPUT, *BF16])}")
            variants = ["reference-lora", *(v for v in wanted if v != "reference-lora")]
        rounds = [{name: _run_child(args, name, round_=i) for name in variants} for i in range(args.repeats)]
        results = {name: _median_of([r[name] for r in rounds]) for name in variants}
        reference = results["reference-lora"]
        table = Table(title=f"Training throughput · {MODEL} · SI-NLI · batch {args.batch_size} · {args.steps} steps "
                            f"· {args.threads} threads · median of {args.repeats}")
        for column in ("variant", "examples/s (range)", "× reference", "peak RSS MB (range)", "RSS vs reference"):
            table.add_column(column)
        for name, r in results.items():
            table.add_row(name, f"{r['examples_per_s']:.1f} ({r['examples_per_s_min']:.1f}–{r['examples_per_s_max']:.1f})",
                          f"{r['examples_per_s'] / reference['examples_per_s']:.2f}",
                          f"{r['peak_rss_mb']:.0f} ({r['peak_rss_mb_min']:.0f}–{r['peak_rss_mb_max']:.0f})",
                          f"{r['peak_rss_mb'] / reference['peak_rss_mb']:.2f}")
        console.print(table)
        report["rounds"] = rounds
        report["results"] = results
    if args.quality or args.only_quality:
        quality = _quality(args)
        table = Table(title=f"Full fine-tuning, dense vs sparse embeddings · {args.quality_train} SI-NLI rows · "
                            f"{args.quality_epochs:g} epoch(s) · lr {args.quality_lr:g} · {args.seeds} seeds · "
                            f"{quality['val_examples']} validation rows")
        for column in ("variant", "accuracy per seed", "mean ± sd", "examples/s"):
            table.add_column(column)
        for name, r in quality["runs"].items():
            table.add_row(name, " ".join(f"{a:.3f}" for a in r["accuracies"]),
                          f"{r['mean']:.3f} ± {r['std'] or 0:.3f}", f"{r['examples_per_s']:.1f}")
        console.print(table)
        diff = quality["sparse_minus_dense"]
        console.print(f"sparse − dense accuracy: {diff['delta']:+.3f} (95% paired bootstrap interval "
                      f"{diff['low']:+.3f} … {diff['high']:+.3f}, p = {diff['p_value']:.2f}); "
                      f"majority baseline {quality['majority_accuracy']:.3f}")
        report["quality"] = quality
    if args.flops:
        flops = subprocess.run([sys.executable, str(Path(__file__).with_name("train_flops.py")),
                                "--threads", str(args.threads), "--batch-size", str(args.batch_size)])
        if flops.returncode:
            raise SystemExit("train_flops.py failed")
    target = Path("benchmarks/results/train_throughput.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
