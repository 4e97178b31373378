"""GPU check: LoRA, QLoRA and QA-LoRA side by side on an XLM-R-base-sized encoder — peak memory and speed.

No Hub access is needed: the model is built from a config the size of XLM-R base (12 layers, hidden 768,
12 heads, FFN 3072, 250,002-token vocabulary, 278M parameters) with random weights and a 2-way
classification head; batches are random token ids shaped like a SloBench pair task (default 32 × 256
tokens, all real tokens). Every variant starts from the same random weights and runs slopeft's own train
step (``slopeft.training.step.TrainStep``: the method's optimiser, ``extra_loss``, gradient clipping at
1.0, ``on_step_end``) with a linear schedule over 6% warmup, under bf16 autocast over float32 weights.

Variants (``--variants``):
  lora      slopeft's LoRA, r=8 on queries and values (the default LoRA recipe)
  lora-all  LoRA r=8 on every linear layer of the blocks (the same targets as the two below)
  qlora     LoRA r=8 on an NF4 base through bitsandbytes (skipped with the reason if it is unusable)
  qa-lora   slopeft's QA-LoRA: group-wise INT4 base (L=32), pooled-input adapter r=8

Reported per variant: peak GPU memory (``torch.cuda.max_memory_allocated`` from before the model is
built: weights, activations, gradients, optimiser state), memory right after the model is on the GPU,
training examples/s after ``--warmup`` steps, the last loss, trainable parameters, and the method's
``cost_report`` (QA-LoRA: bytes of base + adapter and of the merged INT4 model). The embedding matrix
(192M of the 278M parameters) stays in float in every variant; quantisation only shrinks the blocks.

Usage (GPU machine, about 2-4 minutes on one H100 with the defaults):
    python benchmarks/gpu_lora_variants.py [--steps 300] [--batch-size 32] [--seq-len 256]
        [--variants lora,lora-all,qlora,qa-lora] [--out results.json]
    python benchmarks/gpu_lora_variants.py --tiny --steps 4   # CPU smoke test of this script
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import time

import torch

ALL_LINEAR = ["query", "key", "value", "output.dense", "intermediate.dense"]  # XLM-R names of the six roles
VARIANTS = {
    "lora": ("lora", {}),
    "lora-all": ("lora", {"target_modules": ALL_LINEAR}),
    "qlora": ("qlora", {}),
    "qa-lora": ("qa-lora", {}),
}


def build_model(tiny: bool):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    if tiny:
        config = XLMRobertaConfig(
            vocab_size=1000,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=300,
            type_vocab_size=1,
            num_labels=2,
            pad_token_id=1,
        )
    else:
        config = XLMRobertaConfig(
            vocab_size=250_002,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=514,
            type_vocab_size=1,
            num_labels=2,
            pad_token_id=1,
        )
    return XLMRobertaForSequenceClassification(config)


def run_variant(name: str, args, device: torch.device) -> dict:
    from slopeft.errors import ConfigError
    from slopeft.methods import METHODS, MethodContext
    from slopeft.methods.recipes import recipe_for
    from slopeft.training.step import TrainStep, build_optimizers, build_schedulers

    method_name, options = VARIANTS[name]
    cuda = device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    method = METHODS.get(method_name)(options)
    context = MethodContext("encoder", "xlm-roberta", ["classifier"], "SEQ_CLS")
    try:
        method.check(context)
    except ConfigError as err:
        return {"variant": name, "skipped": str(err)}
    model = build_model(args.tiny)
    model = method.apply(model, context).to(device)
    weights_mb = torch.cuda.memory_allocated() / 2**20 if cuda else None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lr = recipe_for(method.name).learning_rate
    optimizers = build_optimizers(method, model, lr, 0.0)
    schedulers = build_schedulers(optimizers, "linear", int(0.06 * args.steps), args.steps)
    train = TrainStep(model, method, optimizers, schedulers, max_grad_norm=1.0)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cuda and torch.cuda.is_bf16_supported()
        else contextlib.nullcontext()
    )
    vocab = model.config.vocab_size
    generator = torch.Generator(device=device).manual_seed(0)
    model.train()
    loss_value, start = math.nan, None
    for step in range(1, args.steps + 1):
        if step == args.warmup + 1:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        ids = torch.randint(5, vocab, (args.batch_size, args.seq_len), device=device, generator=generator)
        labels = torch.randint(0, 2, (args.batch_size,), device=device, generator=generator)
        with autocast:
            loss = train.loss({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
        train.backward(loss)
        train.update()
        train.end(step, args.steps)
        if step == args.steps:
            loss_value = loss.item()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start if start is not None else math.nan
    timed = args.steps - args.warmup
    result = {
        "variant": name,
        "method": method_name,
        "options": options,
        "trainable_parameters": trainable,
        "weights_mb": weights_mb,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "examples_per_s": timed * args.batch_size / seconds if timed > 0 else None,
        "final_loss": loss_value,
        "cost_report": method.cost_report(model) if hasattr(method, "cost_report") else None,
    }
    del model, optimizers, schedulers, train
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed (CUDA warm-up, allocator)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--variants", default="lora,lora-all,qlora,qa-lora")
    parser.add_argument(
        "--tiny", action="store_true", help="a 64-wide 2-layer model: smoke-test the script on a CPU"
    )
    parser.add_argument("--out", help="also write the results as a JSON list to this file")
    args = parser.parse_args()
    args.warmup = min(args.warmup, max(args.steps - 1, 0))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        parser.error(
            "no GPU here: this check is for a GPU machine (use --tiny to smoke-test the script on a CPU)"
        )
    print(
        f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"batch {args.batch_size} x {args.seq_len} tokens, {args.steps} steps ({args.warmup} untimed)",
        flush=True,
    )
    results = []
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        result = run_variant(name, args, device)
        results.append(result)
        print(json.dumps(result), flush=True)

    print(f"\n{'variant':<10} {'trainable':>11} {'weights MB':>11} {'peak MB':>9} {'ex/s':>8} {'loss':>7}")
    for r in results:
        if "skipped" in r:
            print(f"{r['variant']:<10} skipped: {r['skipped'][:150]}")
            continue

        def fmt(value, width, digits):
            return f"{value:>{width}.{digits}f}" if value is not None else "-".rjust(width)

        print(
            f"{r['variant']:<10} {r['trainable_parameters']:>11,} {fmt(r['weights_mb'], 11, 0)} "
            f"{fmt(r['peak_gpu_mb'], 9, 0)} {fmt(r['examples_per_s'], 8, 1)} {r['final_loss']:>7.4f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
