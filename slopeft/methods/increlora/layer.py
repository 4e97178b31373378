"""The IncreLoRA layer: a frozen Linear with pre-allocated rank components, switched on in order."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class IncreLoraLinear(nn.Module):
    """A frozen Linear layer plus ``capacity`` pre-allocated rank components, the first ``lora_rank`` on."""

    def __init__(
        self,
        base: nn.Linear,
        capacity: int,
        init_rank: int,
        alpha: float,
        dropout: float,
        reserve_lambda: float,
    ) -> None:
        super().__init__()
        self.base_layer = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.capacity, self.alpha, self.reserve_lambda = capacity, alpha, reserve_lambda
        # float32 masters whatever the base dtype (a bf16 checkpoint loads as bf16); forward casts them.
        dtype, device = torch.float32, base.weight.device
        self.lora_A = nn.Parameter(torch.empty(capacity, self.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, capacity, dtype=dtype, device=device))
        self.lora_E = nn.Parameter(torch.zeros(capacity, dtype=dtype, device=device))
        nn.init.normal_(self.lora_A, std=0.02)
        nn.init.normal_(self.lora_B, std=0.02)
        # The rank travels with the weights (snapshots, checkpoints); never optimised, used detached.
        self.lora_rank = nn.Parameter(torch.tensor([float(init_rank)], device=device))
        self.register_buffer("slot", torch.arange(capacity, device=device), persistent=False)
        self.register_buffer("ab_scale", torch.zeros(capacity, device=device), persistent=False)
        self.register_buffer("e_scale", torch.zeros(capacity, device=device), persistent=False)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reserve = 0  # spare components after the active ones (training only)
        self.tracking = False  # materialise ΔW and record its sensitivity
        self.score: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def rank(self) -> int:
        return int(round(float(self.lora_rank.detach())))

    def lambdas(self, with_reserve: bool) -> torch.Tensor:
        """λ of every slot times α / r: λ on active slots, reserve_lambda on spare ones (if asked), else 0."""
        rank = self.lora_rank.detach()
        lam = self.lora_E * (self.slot < rank).to(self.lora_E.dtype)
        if with_reserve and self.reserve:
            spare = (self.slot >= rank) & (self.slot < rank + self.reserve)
            lam = lam + spare.to(lam.dtype) * self.reserve_lambda
        return lam * (self.alpha / rank.clamp(min=1))

    def training_mask(self) -> torch.Tensor:
        rank = self.lora_rank.detach()
        return (self.slot < rank + self.reserve).to(self.lora_A.dtype)

    def delta_weight(self) -> torch.Tensor:
        """ΔW of the active components, [out, in]."""
        return (self.lora_B * self.lambdas(with_reserve=False)) @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.tracking and self.training and torch.is_grad_enabled():
            dtype = x.dtype
            lam = self.lambdas(with_reserve=True).to(dtype)
            delta = (self.lora_B.to(dtype) * lam) @ self.lora_A.to(dtype)
            if delta.requires_grad:
                value = delta.detach()
                delta.register_hook(lambda grad: self._record(value, grad))
            return result + F.linear(self.lora_dropout(x), delta)
        return result + self.delta(x)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """What the components add to the base layer's output for input ``x`` (x·Aᵀ·diag(λ·α/r)·Bᵀ)."""
        dtype = x.dtype
        lam = self.lambdas(with_reserve=self.training).to(dtype)
        return F.linear(F.linear(self.lora_dropout(x), self.lora_A.to(dtype)) * lam, self.lora_B.to(dtype))

    def _record(self, delta: torch.Tensor, grad: torch.Tensor) -> None:
        score = (delta * grad).abs().sum().float() / math.sqrt(delta.numel())
        self.score = score if self.score is None else self.score + score

    def pop_score(self) -> float:
        score, self.score = self.score, None
        return 0.0 if score is None else float(score)

    def orthogonality(self) -> torch.Tensor:
        """‖AAᵀ − I‖²_F + ‖BᵀB − I‖²_F over the components in training."""
        mask = self.training_mask()
        eye = torch.diag(mask)
        a = self.lora_A * mask[:, None]
        b = self.lora_B * mask[None, :]
        return ((a @ a.T - eye) ** 2).sum() + ((b.T @ b - eye) ** 2).sum()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, capacity={self.capacity}"


def increlora_layers(model: nn.Module) -> dict[str, IncreLoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, IncreLoraLinear)}
