"""LoRA (Hu et al.) and DoRA (Liu et al.) on PEFT, with slopeft's per-architecture targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from slopeft.methods.base import METHODS, Method, MethodContext
from slopeft.methods.targets import modules_for


@dataclass
class LoraOptions:
    r: int = 8
    """Rank of the update B·A (the paper's NLU setting: 8)."""
    alpha: float = 16.0
    """Scaling numerator: the update is multiplied by alpha / r."""
    dropout: float = 0.1
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: the architecture's query and value projections."""
    use_rslora: bool = False
    """Scale by alpha / sqrt(r) (rank-stabilised LoRA)."""


class PeftMethod(Method):
    """Shared plumbing for methods PEFT implements: build a PEFT config, wrap, save and load with PEFT."""

    def peft_config(self, context: MethodContext):  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(context))

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        from peft import PeftModel

        return PeftModel.from_pretrained(base, str(adapter_dir))

    def merge(self, model: nn.Module) -> nn.Module:
        return model.merge_and_unload()

    @staticmethod
    def common(context: MethodContext) -> dict:
        return {"task_type": context.task_type, "modules_to_save": list(context.head_modules) or None}


@METHODS.register("lora")
class Lora(PeftMethod):
    name = "lora"
    config_class = LoraOptions
    use_dora = False

    def peft_config(self, context: MethodContext):
        from peft import LoraConfig

        c = self.config
        return LoraConfig(
            r=c.r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            use_rslora=c.use_rslora,
            target_modules=c.target_modules or modules_for(context.architecture, "query", "value"),
            use_dora=self.use_dora,
            **self.common(context),
        )


@METHODS.register("dora")
class Dora(Lora):
    """DoRA: LoRA's direction update plus a trained magnitude vector per output feature."""

    name = "dora"
    use_dora = True
