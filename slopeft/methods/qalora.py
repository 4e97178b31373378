"""QA-LoRA (Xu et al., "QA-LoRA: Quantization-Aware Low-Rank Adaptation of Large Language Models").

Own code in pure PyTorch (runs on a CPU; no bitsandbytes or GPTQ kernels):

* the base weights of the target layers are quantised to INT-k (default INT4) **group-wise along the
  input dimension** (group size L, default 32), each group with its own scale α and zero point β
  (β = the group minimum, as in the paper: w ≈ α·q + β); codes are stored packed in ``uint8`` and
  dequantised on the fly (:class:`slopeft.methods.quant.QuantLinear`); α and β are float32 on any
  base (bf16 zero points would round a merged update away), and so are A and B (master weights; the
  forward runs in the model's dtype);
* the adapter sees the layer input **average-pooled within each group** (D_in → D_in / L), so
  A is r × D_in/L and B is D_out × r: ``y = W̃x + b + (α_lora / r)·B·A·pool(x)``. Its contribution is
  constant inside each group, so
* :meth:`QALora.merge` folds it exactly into the zero points, β' = β + (α_lora / r)·(B·A) / L, and the
  merged model is still INT4 — no re-quantisation step.

Choices the paper leaves open: the pooling is an average (the reference code sums, i.e. scales A by L;
the two differ only by A's scale); dropout acts on the pooled input, as in the reference code; A is
Kaiming-uniform and B zero, so training starts at the quantised base model. The default targets are all
linear layers of the attention and MLP blocks (the paper quantises the whole network and adapts every
linear layer); the task head and embeddings stay in float.

:meth:`QALora.cost_report` gives the memory of base + adapter and of the merged model in bytes.

Learning rate: the recipe (``slopeft/resources/recipes/qa-lora.yaml``) is 4e-3, the best of the sweep on
e5-small-multilingual and 1,600 SI-NLI rows (1e-3 0.425, 2e-3 0.434, 4e-3 0.464, 8e-3 collapsed; one seed, 440
validation rows), four times LoRA's.
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
from slopeft.methods.base import METHODS, Method, MethodContext, float32_head
from slopeft.methods.quant import (
    ALL_LINEAR_ROLES,
    QuantLinear,
    freeze_base,
    linear_targets,
    model_bytes,
    tensor_bytes,
)


@dataclass
class QALoraOptions:
    r: int = 8
    """Rank of the adapter B·A."""
    alpha: float = 16.0
    """Scaling numerator: the adapter output is multiplied by alpha / r."""
    dropout: float = 0.05
    """Dropout on the adapter's (pooled) input; the paper's recipe uses 0.05."""
    group_size: int = 32
    """Quantisation group size L along the input dimension (the paper's default is 32); must divide every
    target layer's input size. The adapter's A has input size D_in / L."""
    bits: int = 4
    """Bits per base weight: 4 (the paper's main setting), or 2 or 8."""
    target_modules: list[str] | None = None
    """Module-name suffixes to quantise and adapt; default: every linear layer of the attention and MLP
    blocks (queries, keys, values, attention output, both MLP layers)."""

    def __post_init__(self) -> None:
        check_range(self, "qa-lora", "r", low=1)
        check_range(self, "qa-lora", "alpha", low=0, low_open=True)
        check_range(self, "qa-lora", "dropout", low=0, high=1, high_open=True)
        check_range(self, "qa-lora", "group_size", low=1)
        if self.bits not in (2, 4, 8):
            raise ConfigError(f"qa-lora.bits must be 2, 4 or 8, not {self.bits!r}. Set it with --set qa-lora.bits=4.")
        check_modules(self, "qa-lora", "target_modules")


class QALoraLinear(QuantLinear):
    """An INT-k group-quantised Linear layer plus a group-pooled low-rank adapter."""

    def __init__(
        self, linear: nn.Linear, group_size: int, bits: int, r: int, alpha: float, dropout: float
    ) -> None:
        super().__init__(linear, group_size, bits)
        groups = self.in_features // group_size
        device = linear.weight.device
        self.r = r
        self.scaling = alpha / r
        # float32 masters whatever the base dtype (a bf16 checkpoint loads as bf16); forward casts them
        # to the compute dtype.
        self.lora_A = nn.Parameter(torch.empty(r, groups, dtype=torch.float32, device=device))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, dtype=torch.float32, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The input averaged within each quantisation group: [..., D_in] → [..., D_in / L]."""
        return x.view(*x.shape[:-1], self.in_features // self.group_size, self.group_size).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapter = F.linear(
            F.linear(self.lora_dropout(self.pool(x)), self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype)
        )
        return self.base_forward(x) + self.scaling * adapter

    @torch.no_grad()
    def group_delta(self) -> torch.Tensor:
        """The adapter as a change of every weight in each group, [D_out, D_in / L] (constant in a group)."""
        return self.scaling * (self.lora_B.float() @ self.lora_A.float()) / self.group_size

    @torch.no_grad()
    def merged(self) -> QuantLinear:
        """The same layer with the adapter folded into the zero points: still INT-k, no adapter."""
        layer = QuantLinear.__new__(QuantLinear)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = self.in_features, self.out_features
        layer.group_size, layer.bits, layer.weight_dtype = self.group_size, self.bits, self.weight_dtype
        layer.register_buffer("qweight", self.qweight.clone())
        layer.register_buffer("scales", self.scales.clone())
        # float32 zero points hold β + δ exactly enough for any base dtype (see slopeft.methods.quant).
        layer.register_buffer("zeros", self.zeros.float() + self.group_delta())
        layer.bias = self.bias
        return layer


@METHODS.register("qa-lora")
class QALora(Method):
    name = "qa-lora"
    config_class = QALoraOptions

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        c = self.config
        if c.r < 1:
            raise ConfigError(f"qa-lora.r must be at least 1, not {c.r}.")
        freeze_base(model, context)
        float32_head(model, context)
        targets = linear_targets(model, context, c.target_modules, ALL_LINEAR_ROLES, self.name)
        for name, linear in targets:
            try:
                layer = QALoraLinear(linear, c.group_size, c.bits, c.r, c.alpha, c.dropout)
            except ConfigError as err:
                raise ConfigError(f"{name}: {err}") from None
            model.set_submodule(name, layer)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        """Folds every adapter into its layer's zero points; the result is still INT-k (see module docs)."""
        for name, module in list(model.named_modules()):
            if isinstance(module, QALoraLinear):
                model.set_submodule(name, module.merged())
        return model

    def cost_report(self, model: nn.Module) -> dict[str, Any]:
        """Memory in bytes of the quantised base + adapter and of the merged (still INT-k) model.

        ``float_target_bytes`` is what the quantised layers' weights took in float before quantisation,
        ``quantized_target_bytes`` what they take now (codes + scales + zero points). Works on a trained
        model and on a merged one (then the adapter counts zero).
        """
        layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
        adapters = [m for m in layers if isinstance(m, QALoraLinear)]
        adapter_bytes = tensor_bytes([p for m in adapters for p in (m.lora_A, m.lora_B)])
        total = model_bytes(model)
        float_size = layers[0].weight_dtype.itemsize if layers else 4
        return {
            "base_plus_adapter_bytes": total,
            "adapter_bytes": adapter_bytes,
            "merged_bytes": total - adapter_bytes,
            "quantized_target_bytes": tensor_bytes(
                [t for m in layers for t in (m.qweight, m.scales, m.zeros)]
            ),
            "float_target_bytes": sum(m.in_features * m.out_features * float_size for m in layers),
            "quantized_layers": len(layers),
            "bits": self.config.bits,
            "group_size": self.config.group_size,
        }
