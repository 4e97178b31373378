"""BitFit (Ben Zaken, Ravfogel & Goldberg): train only bias terms, plus the task head.

Own code: PEFT has no BitFit (its BEFT adds bias deltas on chosen Linear layers, and LoRA's
``bias="all"`` trains biases beside LoRA weights). ``bitfit`` trains every bias of the
encoder/decoder (LayerNorm biases included, as in the paper); ``bitfit-subset`` trains only
the attention query biases and the first MLP layer's biases — the paper's 0.04% subset. The
randomly initialised head (classifier, and a pooler the checkpoint lacks) is trained with
both and counted separately in the run record; a pre-trained pooler stays frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, Method, MethodContext, freeze_all_but
from slopeft.methods.targets import modules_for


@dataclass
class BitFitOptions:
    """BitFit has no options: which biases train is the method's definition."""


class _BiasMethod(Method):
    config_class = BitFitOptions

    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        raise NotImplementedError

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        biases = self.bias_names(model, context)
        if not biases:
            raise ConfigError(
                f"{context.architecture} has no bias terms that {self.name} trains (Gemma/Llama-style "
                "layers have none); use lora or ia3 for this model."
            )
        freeze_all_but(model, [*biases, *context.head_modules])
        return model


def _is_head(name: str, context: MethodContext) -> bool:
    return any(name == h or name.startswith(h + ".") for h in context.head_modules)


@METHODS.register("bitfit")
class BitFit(_BiasMethod):
    name = "bitfit"

    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        return [
            n
            for n, _ in model.named_parameters()
            if n.endswith(".bias") and not _is_head(n, context) and ".pooler." not in n
        ]


@METHODS.register("bitfit-subset")
class BitFitSubset(_BiasMethod):
    name = "bitfit-subset"

    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        suffixes = tuple(f".{m}.bias" for m in modules_for(context.architecture, "query", "ffn_in"))
        return [n for n, _ in model.named_parameters() if n.endswith(suffixes) and not _is_head(n, context)]
