"""What a prefix does to a frozen encoder before training: P-tuning v2's N(0, 1) against activations of real words.

The study found prefix tuning at the majority baseline at every learning rate (results/sweep). This
script measures the state training starts from, on e5-small-multilingual and SI-NLI validation
pairs, for the encoder without a prefix and with each ``init`` of ``prefix-tuning``:

- the scale of the prefix's keys and values against the keys and values the model computes itself;
- the share of every token's attention that goes to the prefix slots, per layer;
- the first token's final hidden state (what the classification head reads): its cosine to the
  state without a prefix, and the mean cosine between different inputs (how alike the prefix makes
  them; 1 = every input looks the same to the head).

Forward passes only (a minute on one thread). Usage:
    python benchmarks/prefix_init.py [--examples 64] [--virtual-tokens 20] [--seed 1]
Writes benchmarks/results/prefix_init.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MODEL = "e5-small-multilingual"


def measure(init: str | None, examples: int, virtual_tokens: int, seed: int) -> dict:
    """One encoder (without a prefix when ``init`` is None), scored on the first validation pairs."""
    import torch

    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.methods import deep_prompt
    from slopeft.training.build import load_base, prepare_parts

    options = {} if init is None else {"init": init, "num_virtual_tokens": virtual_tokens}
    config = RunConfig(task="si-nli", model=MODEL, method="prefix-tuning", method_options=options,
                       training=TrainingConfig(max_length=128))
    parts = prepare_parts(config)
    model, context = load_base(parts)
    torch.manual_seed(seed)
    if init is not None:
        model = parts.method.apply(model, context)
    model.set_attn_implementation("eager")  # attention probabilities are returned by eager attention only
    model.eval()
    features = parts.head.encode(parts.task.examples("val")[:examples], with_labels=False)
    batch = parts.head.collate(features)
    batch.pop("labels", None)
    own: dict[str, list[float]] = {"key": [], "value": []}
    handles = []
    for layer in deep_prompt.encoder_layers(model):
        for name, projection in zip(("key", "value"), deep_prompt.key_value_projections(layer.attention.self), strict=True):
            handles.append(projection.register_forward_hook(
                lambda module, args, output, name=name: own[name].append(float(output.std()))))
    with torch.no_grad():
        out = model(**batch, output_attentions=True, output_hidden_states=True)
    for handle in handles:
        handle.remove()
    first = out.hidden_states[-1][:, 0]
    result = {
        "init": init or "no prefix",
        "model_key_std": own["key"],
        "model_value_std": own["value"],
        "first_token": first,
    }
    if init is not None:
        layers, heads, head_dim = deep_prompt.attention_shape(model)
        prefix = model.deep_prompt.resolved().detach().view(virtual_tokens, layers, 2, heads * head_dim)
        result["prefix_key_std"] = [float(prefix[:, i, 0].std()) for i in range(layers)]
        result["prefix_value_std"] = [float(prefix[:, i, 1].std()) for i in range(layers)]
        tokens = batch["attention_mask"].bool()
        # attentions: (batch, heads, queries, prefix + keys); the prefix slots come first
        result["attention_to_prefix"] = [
            float(a[:, :, :, :virtual_tokens].sum(-1).mean(1)[tokens].mean()) for a in out.attentions
        ]
    return result


def alike(states) -> float:
    """Mean cosine between the states of different inputs."""
    import torch

    unit = torch.nn.functional.normalize(states, dim=-1)
    n = len(unit)
    return float(((unit @ unit.T).sum() - n) / (n * n - n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--virtual-tokens", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(args.threads)
    runs = [measure(init, args.examples, args.virtual_tokens, args.seed) for init in (None, "normal", "vocabulary")]
    bare = runs[0]["first_token"]

    def fmt(values: list[float]) -> str:
        return " ".join(f"{v:.2f}" for v in values)

    table = Table(title=f"{MODEL}, {args.examples} SI-NLI validation pairs, {args.virtual_tokens} prefix slots per layer")
    for column in ("init", "value std: model / prefix (layers 1-12)", "attention to the prefix (layers 1-12)",
                   "head input: cosine to no prefix", "head input: cosine between inputs"):
        table.add_column(column)
    rows = []
    for run in runs:
        first = run.pop("first_token")
        run["cosine_to_no_prefix"] = float(torch.nn.functional.cosine_similarity(first, bare).mean())
        run["cosine_between_inputs"] = alike(first)
        values = fmt(run["model_value_std"]) + ("" if "prefix_value_std" not in run else " / " + fmt(run["prefix_value_std"]))
        table.add_row(run["init"], values, fmt(run.get("attention_to_prefix", [])),
                      f"{run['cosine_to_no_prefix']:.3f}", f"{run['cosine_between_inputs']:.3f}")
        rows.append(run)
    Console().print(table)
    out = Path(__file__).parent / "results" / "prefix_init.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": MODEL, **vars(args), "runs": rows}, indent=1) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
