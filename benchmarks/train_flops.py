"""Achieved training FLOP/s of every method against this machine's fp32 GEMM peak, measured in one run.

The limit a training step can reach on a CPU is its matrix-multiply throughput. This script
measures that peak first (fp32 ``torch.mm`` of large square matrices and of the shapes the model
multiplies, on the same threads), then, for each registered method in its own subprocess:
counts the floating-point operations of real training steps (``torch.utils.flop_counter``: the
forward and backward matmuls and attention, on SI-NLI batches grouped by length as the trainer
groups them) and times the same steps. Achieved FLOP/s = counted FLOPs / step time.

Usage (from train_throughput.py --flops, or directly):
    python benchmarks/train_flops.py [--steps 12] [--warmup 3] [--batch-size 16] [--threads 2]
        [--rounds 2] [--methods lora,bitfit,...] [--profile METHOD]

--profile prints torch.profiler's table of one method's step (where the time goes).
Writes benchmarks/results/train_flops.json.
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


def gemm_peak(threads: int, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of fp32 matmuls: large squares (the machine's peak) and the model's own shapes."""
    import torch

    torch.set_num_threads(threads)
    shapes = {
        "square 2048": (2048, 2048, 2048),
        "square 1024": (1024, 1024, 1024),
        # 16 sequences x 64 tokens through e5-small's layers: hidden 384, feed-forward 1536
        "tokens x 384 x 384 (attention projections)": (1024, 384, 384),
        "tokens x 384 x 1536 (feed-forward in)": (1024, 384, 1536),
        "tokens x 1536 x 384 (feed-forward out)": (1024, 1536, 384),
    }
    results = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b)
            best = min(best, (time.perf_counter() - start) / 5)
        results[name] = 2 * m * k * n / best / 1e9
    return results


def _batches(head, examples, batch_size: int, count: int, seed: int = 0):
    from slopeft.training.trainer import length_grouped_batches

    features = head.encode(examples, with_labels=True)
    lengths = [head.feature_length(f) for f in features]
    order = length_grouped_batches(lengths, batch_size, seed, True)[:count]
    return [head.collate([features[i] for i in batch]) for batch in order]


def measure_method(method: str, steps: int, warmup: int, batch_size: int, profile: bool = False) -> dict:
    """FLOPs and seconds of ``steps`` training steps of ``method`` (after ``warmup`` untimed ones)."""
    from torch.utils.flop_counter import FlopCounterMode

    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.training.build import load_base, prepare_parts
    from slopeft.training.memory import limit_heap_fragmentation
    from slopeft.training.step import TrainStep, build_optimizers
    from slopeft.training.trainer import Trainer

    config = RunConfig(task="si-nli", model=MODEL, method=method, training=TrainingConfig(
        batch_size=batch_size, max_length=MAX_LENGTH))
    parts = prepare_parts(config)
    model, context = load_base(parts)
    model = parts.method.apply(model, context)
    trainer = Trainer(model, parts.head, parts.method, parts.task, config.training, Path("/tmp"), 0)
    # The trainer's own step (forward + extra loss, backward, clipping, optimisers, the method's hook),
    # at a constant learning rate: no schedule.
    train = TrainStep(
        model,
        parts.method,
        build_optimizers(parts.method, model, trainer.learning_rate, config.training.weight_decay),
        [],
        max_grad_norm=config.training.max_grad_norm,
        loss=trainer._task_loss,
    )
    model.train()
    limit_heap_fragmentation(config.training.malloc_mmap_threshold_kib)
    batches = _batches(parts.head, parts.task.examples("train"), batch_size, warmup + steps)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[warmup:])
    padded = sum(b["input_ids"].numel() for b in batches[warmup:])

    def step(batch):
        train(dict(batch), 1, 10_000)

    for batch in batches[:warmup]:
        step(batch)
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in batches[warmup:]:
            step(batch)
    flops = counter.get_total_flops()
    start = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    seconds = time.perf_counter() - start
    result = {"method": method, "steps": steps, "flops": flops, "seconds": seconds,
              "gflop_per_s": flops / seconds / 1e9, "examples_per_s": steps * batch_size / seconds,
              "tokens": tokens, "padded_tokens": padded}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches[warmup:warmup + 4]:
                step(batch)
        result["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="", help="comma-separated (default: every registered method)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds over all methods, in turn; each method's fastest round is shown")
    parser.add_argument("--profile", default="", help="print torch.profiler's table for this method")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure_method(args.child, args.steps, args.warmup, args.batch_size,
                                        profile=args.child == args.profile)))
        return

    from rich.console import Console
    from rich.table import Table

    from slopeft.methods import METHODS

    console = Console(width=None if sys.stdout.isatty() else 140)
    peak = gemm_peak(args.threads)
    ceiling = max(peak.values())
    methods = [m for m in args.methods.split(",") if m] or METHODS.names()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    console.print("fp32 GEMM GFLOP/s: " + "; ".join(f"{k} {v:.1f}" for k, v in peak.items()))
    target = Path("benchmarks/results/train_flops.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    best: dict[str, dict] = {}
    for round_ in range(args.rounds):  # methods take turns, so a slow spell does not land on one alone
        for position, method in enumerate(methods, 1):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--child", method, "--steps", str(args.steps),
                                   "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                                   "--threads", str(args.threads), "--profile", args.profile],
                                  capture_output=True, text=True, env=env)
            where = f"round {round_ + 1}/{args.rounds}, method {position}/{len(methods)} {method}"
            if done.returncode:
                best[method] = {"method": method, "error": done.stderr.strip().splitlines()[-1][:200]}
                console.print(f"{where}: failed: {best[method]['error']}", highlight=False)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            if method not in best or "error" in best[method] or row["seconds"] < best[method]["seconds"]:
                best[method] = row
            # One line per measurement as it lands (a long run shows where it is, and a stopped one
            # keeps what it measured: the JSON is rewritten after every method).
            console.print(f"{where}: {row['gflop_per_s']:.1f} GFLOP/s ({row['gflop_per_s'] / ceiling:.0%} of peak), "
                          f"{row['examples_per_s']:.1f} examples/s; {time.perf_counter() - started:.0f} s with "
                          "loading", highlight=False)
            target.write_text(json.dumps({"settings": vars(args), "gemm_gflop_per_s": peak,
                                          "methods": list(best.values()), "complete": False}, indent=2) + "\n")
    rows = [best[m] for m in methods]
    table = Table(title=f"Training FLOP/s · {MODEL} · SI-NLI · batch {args.batch_size} · {args.threads} threads · "
                        f"{args.steps} steps · best of {args.rounds} rounds · fp32 GEMM peak {ceiling:.1f} GFLOP/s")
    for column in ("method", "GFLOP per step", "GFLOP/s", "share of peak", "examples/s", "padding"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["method"], "—", "—", "—", "—", row["error"])
            continue
        table.add_row(row["method"], f"{row['flops'] / row['steps'] / 1e9:.1f}", f"{row['gflop_per_s']:.1f}",
                      f"{row['gflop_per_s'] / ceiling:.0%}", f"{row['examples_per_s']:.1f}",
                      f"{1 - row['tokens'] / row['padded_tokens']:.0%}")
    console.print(table)
    for row in rows:
        if row.get("profile"):
            console.print(f"torch.profiler, {row['method']}:\n{row['profile']}")
    target.write_text(json.dumps({"settings": vars(args), "gemm_gflop_per_s": peak, "methods": rows,
                                  "complete": True}, indent=2) + "\n")


if __name__ == "__main__":
    main()
