"""BitFit (Ben Zaken, Ravfogel & Goldberg): train only bias terms, plus the task head.

Own code: PEFT has no BitFit (its BEFT adds bias deltas on chosen Linear layers, and LoRA's
``bias="all"`` trains biases beside LoRA weights). ``bitfit`` trains every bias of the
encoder/decoder (LayerNorm biases included, as in the paper) and, as the authors' reference code does,
the bias of a pre-trained pooler (``bitfit.pooler_bias=false``: not that one); ``bitfit-subset`` trains
only the attention query biases and the first MLP layer's biases — the paper's 0.04% subset. The
randomly initialised head (classifier, and a pooler the checkpoint lacks) is trained with both and
counted separately in the run record.

Trainable parameters without the head, for a BERT-style encoder with L layers and hidden size H
(feed-forward size 4H): ``bitfit`` L·11H (per layer: query, key, value 3H, attention output H, its
LayerNorm H, first MLP layer 4H, second H, its LayerNorm H) + H (embedding LayerNorm) + H (pooler) =
102,912 for BERT-base (L=12, H=768; 0.094% of its 109.5M), H fewer (102,144) with
``pooler_bias=false`` or a checkpoint without a pooler; ``bitfit-subset`` L·5H (query H, first MLP
layer 4H) = 46,080 for BERT-base (0.042%).

Learning rates: the paper sweeps 1e-4 to 1e-3. slopeft's recipes (``slopeft/resources/recipes/``),
from the sweep on e5-small-multilingual and 1,600 SI-NLI rows (one seed, 440 validation rows): ``bitfit``
1e-3 (3e-4 0.420, 1e-3 0.427, 3e-3 0.411, 1e-2 collapsed to the majority's 0.330), the paper's top;
``bitfit-subset`` 1e-2 (3e-3 0.434, 1e-2 0.439, 3e-2 0.430), ten times the paper's top — with 5 of
the 11 bias vectors per layer the subset needs larger steps.

On a bf16/fp16 checkpoint the model is trained in float32 (the weights AdamW updates are float32
masters; a bf16 bias would lose every update below its last bit); with ``training.precision=bf16`` on
a GPU autocast still runs the matmuls in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, Method, MethodContext, float32_masters, freeze_all_but
from slopeft.methods.targets import modules_for


@dataclass
class BitFitOptions:
    pooler_bias: bool = True
    """Also train the bias of a pre-trained pooler (the authors' reference code does). A pooler the
    checkpoint lacks is part of the randomly initialised head and trains whatever this says."""


@dataclass
class BitFitSubsetOptions:
    """bitfit-subset has no options: which biases train is the variant's definition."""


class _BiasMethod(Method):
    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        raise NotImplementedError

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        biases = self.bias_names(model, context)
        if not biases:
            raise ConfigError(
                f"{context.architecture} has no bias terms that {self.name} trains (Gemma/Llama-style "
                "layers have none); use lora or ia3 for this model."
            )
        model = float32_masters(model)
        freeze_all_but(model, [*biases, *context.head_modules])
        return model


def _is_head(name: str, context: MethodContext) -> bool:
    return any(name == h or name.startswith(h + ".") for h in context.head_modules)


@METHODS.register("bitfit")
class BitFit(_BiasMethod):
    name = "bitfit"
    config_class = BitFitOptions

    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        return [
            n
            for n, _ in model.named_parameters()
            if n.endswith(".bias")
            and not _is_head(n, context)
            and (self.config.pooler_bias or ".pooler." not in n)
        ]


@METHODS.register("bitfit-subset")
class BitFitSubset(_BiasMethod):
    name = "bitfit-subset"
    config_class = BitFitSubsetOptions

    def bias_names(self, model: nn.Module, context: MethodContext) -> list[str]:
        suffixes = tuple(f".{m}.bias" for m in modules_for(context.architecture, "query", "ffn_in"))
        return [n for n, _ in model.named_parameters() if n.endswith(suffixes) and not _is_head(n, context)]
