"""MoLA (Gao et al. 2024, "Higher Layers Need More LoRA Experts"): a mixture of LoRA experts per layer.

Own code, checked against the authors' ``src/mola_lora_hacked.py`` (GCYZSL/MoLA):

* every target Linear layer holds E LoRA experts (Aₑ Kaiming-uniform, Bₑ zero, scaling α/r) and a
  router, a bias-free Linear d_in → E;
* each token's router logits go through a softmax; the top-k experts (k = 2) are kept and their
  probabilities renormalised to sum to one (as the reference code does); the layer adds
  Σₑ gₑ·Bₑ·Aₑ·dropout(x)·α/r;
* E differs by layer: ``experts`` is a pattern over equal groups of consecutive layers, e.g. ``2-4-6-8``
  (triangle, the paper's best), ``8-6-4-2`` (inverted), ``5-5-5-5`` (rectangle), ``8-2-2-8`` (hourglass).
  Layer i of a stack of L layers takes group ⌊i·G/L⌋ of the G groups; encoder and decoder stacks of a
  seq2seq model are patterned separately;
* an auxiliary load-balancing loss (Switch/Mixtral form) keeps experts in use: per layer
  E·Σₑ fₑ·Pₑ, with fₑ the share of the token→expert assignments that go to expert e and Pₑ its mean
  router probability (1 when the load is uniform); ``extra_loss`` adds ``balance_coef`` × its mean
  over layers. Padding tokens are counted like the others (the layer does not see the attention mask).

The experts are computed densely (one rank-E·r product, unselected experts weighted zero), which equals
the sparse top-k sum and suits small ranks. The router is input-dependent, so MoLA has no merge step.

Learning rate: the recipe (``slopeft/resources/recipes/mola.yaml``) is 1e-3, the best of the sweep on
e5-small-multilingual and 1,600 SI-NLI rows (5e-4 0.441, 1e-3 0.457, 2e-3 0.421, 4e-3 collapsed to one
class; one seed, 440 validation rows), as for LoRA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slopeft.config import check_modules, check_range
from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, Method, MethodContext, float32_head, save_own_adapter
from slopeft.methods.quant import freeze_base, layer_index, linear_targets


@dataclass
class MolaOptions:
    experts: str = "2-4-6-8"
    """Experts per layer group, low layers first ("2-4-6-8" triangle, "8-6-4-2", "5-5-5-5", "8-2-2-8"); the
    groups split each layer stack into equal runs of consecutive layers. A single number: every layer."""
    top_k: int = 2
    """Experts each token uses (the paper: 2)."""
    r: int = 8
    """Rank of every expert (the paper: 8)."""
    alpha: float = 16.0
    """Scaling numerator: each expert's update is multiplied by alpha / r (the paper: 16)."""
    dropout: float = 0.05
    """Dropout on the experts' input (the paper: 0.05)."""
    balance_coef: float = 0.01
    """Weight of the load-balancing loss (Switch Transformer's 0.01)."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: the architecture's query and value projections (as slopeft's
    LoRA). The paper adapts every projection of LLaMA (q, k, v, o, gate, up, down)."""

    def __post_init__(self) -> None:
        parse_pattern(self.experts)
        check_range(self, "mola", "top_k", low=1)
        check_range(self, "mola", "r", low=1)
        check_range(self, "mola", "alpha", low=0, low_open=True)
        check_range(self, "mola", "dropout", low=0, high=1, high_open=True)
        check_range(self, "mola", "balance_coef", low=0)
        check_modules(self, "mola", "target_modules")


def parse_pattern(pattern: str | int) -> list[int]:
    """``"2-4-6-8"`` → [2, 4, 6, 8]; every count at least 1."""
    try:
        counts = [int(p) for p in str(pattern).replace(",", "-").split("-") if p.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ConfigError(
            f"mola.experts must be positive expert counts per layer group joined by '-', e.g. 2-4-6-8, not {pattern!r}."
        )
    return counts


def experts_per_layer(pattern: str | int, num_layers: int) -> list[int]:
    """Experts of each of ``num_layers`` layers: layer i takes group ⌊i·G/L⌋ of the pattern's G groups."""
    counts = parse_pattern(pattern)
    return [counts[i * len(counts) // num_layers] for i in range(num_layers)]


class MolaLinear(nn.Module):
    """A frozen Linear layer plus ``num_experts`` LoRA experts and a top-k softmax router."""

    def __init__(
        self, base: nn.Linear, num_experts: int, top_k: int, r: int, alpha: float, dropout: float
    ) -> None:
        super().__init__()
        self.base_layer = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.num_experts, self.top_k, self.r = num_experts, min(top_k, num_experts), r
        self.scaling = alpha / r
        # float32 masters whatever the base dtype (a bf16 checkpoint loads as bf16); forward casts them.
        dtype, device = torch.float32, base.weight.device
        self.router = nn.Linear(self.in_features, num_experts, bias=False, dtype=dtype, device=device)
        self.lora_A = nn.Parameter(torch.empty(num_experts, r, self.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(num_experts, self.out_features, r, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.router.weight, a=math.sqrt(5))
        for expert in self.lora_A:
            nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.aux_loss: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def router_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over the experts for every token, [..., E] (float32)."""
        return F.softmax(F.linear(x, self.router.weight.to(x.dtype)).float(), dim=-1)

    def gates(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token expert weights ([N, E]: the top-k probabilities renormalised, zero elsewhere) and the
        chosen experts [N, k]."""
        top, chosen = probs.topk(self.top_k, dim=-1)
        top = top / top.sum(dim=-1, keepdim=True)
        return torch.zeros_like(probs).scatter(-1, chosen, top), chosen

    def balance_loss(self, probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """E · Σₑ fₑ·Pₑ (1 for a uniform load)."""
        share = F.one_hot(chosen, self.num_experts).float().mean(dim=(0, 1))
        return self.num_experts * (share * probs.mean(dim=0)).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.delta(x)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """What the routed experts add to the base layer's output for input ``x`` (each token its own top-k)."""
        flat = x.reshape(-1, self.in_features)
        probs = self.router_probabilities(flat)
        gates, chosen = self.gates(probs)
        if self.training and torch.is_grad_enabled():
            self.aux_loss = self.balance_loss(probs, chosen)
        dtype = x.dtype
        hidden = F.linear(self.lora_dropout(flat), self.lora_A.to(dtype).reshape(-1, self.in_features))
        hidden = (hidden.view(-1, self.num_experts, self.r) * gates.to(dtype)[..., None]).reshape(
            hidden.shape
        )
        experts_b = self.lora_B.to(dtype).permute(1, 0, 2).reshape(self.out_features, -1)
        update = F.linear(hidden, experts_b) * self.scaling
        return update.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, experts={self.num_experts}, top_k={self.top_k}, r={self.r}"


def mola_layers(model: nn.Module) -> dict[str, MolaLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, MolaLinear)}


@METHODS.register("mola")
class Mola(Method):
    name = "mola"
    config_class = MolaOptions

    def expert_counts(self, names: list[str]) -> dict[str, int]:
        """Experts of each target module, by the pattern over its layer stack."""
        stacks: dict[str, int] = {}
        for name in names:
            where = layer_index(name)
            if where is not None:
                stacks[where[0]] = max(stacks.get(where[0], 0), where[1] + 1)
        counts = {}
        for name in names:
            where = layer_index(name)
            if where is None:
                counts[name] = parse_pattern(self.config.experts)[0]
            else:
                counts[name] = experts_per_layer(self.config.experts, stacks[where[0]])[where[1]]
        return counts

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        c = self.config
        freeze_base(model, context)
        float32_head(model, context)
        targets = linear_targets(model, context, c.target_modules, ("query", "value"), self.name)
        counts = self.expert_counts([name for name, _ in targets])
        for name, linear in targets:
            model.set_submodule(name, MolaLinear(linear, counts[name], c.top_k, c.r, c.alpha, c.dropout))
        return model

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        losses = []
        for layer in mola_layers(model).values():
            if layer.aux_loss is not None:
                losses.append(layer.aux_loss)
                layer.aux_loss = None
        if not losses or not self.config.balance_coef:
            return None
        return self.config.balance_coef * torch.stack(losses).mean()

    def save(self, model: nn.Module, out_dir) -> None:
        experts = {n: layer.num_experts for n, layer in mola_layers(model).items()}
        save_own_adapter(
            model, out_dir, self.peft_type(), {**self.options_dict(), "experts_per_module": experts}
        )

    def cost_report(self, model: nn.Module) -> dict[str, Any]:
        layers = mola_layers(model)
        return {
            "experts_per_module": {n: layer.num_experts for n, layer in layers.items()},
            "total_experts": sum(layer.num_experts for layer in layers.values()),
        }
