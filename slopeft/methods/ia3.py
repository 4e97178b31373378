"""(IA)³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning") on PEFT: learned vectors that rescale the attention keys, the attention values and the
MLP's inner activations.

PEFT scales a target layer's *output*, or its *input* when the layer is listed in
``feedforward_modules``. The paper's three vectors are therefore: the key and value projections
(outputs scaled) and the MLP's output layer (its input — the activation γ(W₁x) — scaled).
Module names come from slopeft's per-architecture table; BERT-style names are given as a regex
because ``output.dense`` is both the attention output and the MLP output layer there.

Learning rate: T-Few trains (IA)³ at 3e-3; slopeft's recipe (``slopeft/resources/recipes/ia3.yaml``)
is 1e-2, the best of the sweep on e5-small-multilingual and 1,600 SI-NLI rows (3e-3 0.450, 1e-2 0.468,
3e-2 0.427; one seed, 440 validation rows): with 300 steps instead of T-Few's thousands the larger rate
learns more.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from slopeft.config import check_modules
from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, MethodContext
from slopeft.methods.lora import PeftMethod
from slopeft.methods.targets import role_regex


@dataclass
class IA3Options:
    target_modules: list[str] | None = None
    """Module-name suffixes to rescale; default: the architecture's key, value and MLP output layers."""
    feedforward_modules: list[str] | None = None
    """Which of ``target_modules`` get their input scaled (the MLP output layer); default from the
    architecture table. Must be given together with ``target_modules``."""

    def __post_init__(self) -> None:
        check_modules(self, "ia3", "target_modules")
        # feedforward_modules may be an empty list: no target's input is scaled.
        if self.feedforward_modules and not all(isinstance(v, str) and v.strip() for v in self.feedforward_modules):
            raise ConfigError(f"ia3.feedforward_modules must list module-name suffixes, not {self.feedforward_modules!r}.")


@METHODS.register("ia3")
class IA3(PeftMethod):
    name = "ia3"
    config_class = IA3Options

    def peft_config(self, context: MethodContext):
        from peft import IA3Config

        c = self.config
        if (c.target_modules is None) != (c.feedforward_modules is None):
            raise ConfigError(
                "ia3.target_modules and ia3.feedforward_modules go together: feedforward_modules must be "
                "the subset of target_modules whose input is scaled (e.g. target_modules=[k,v,wo] "
                "feedforward_modules=[wo])."
            )
        if c.target_modules is not None:
            targets, feedforward = list(c.target_modules), list(c.feedforward_modules or [])
            if not set(feedforward) <= set(targets):
                raise ConfigError(
                    f"ia3.feedforward_modules {feedforward} must be a subset of ia3.target_modules {targets}."
                )
        else:
            targets = role_regex(context.architecture, "key", "value", "ffn_out")
            feedforward = role_regex(context.architecture, "ffn_out")
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, **self.common(context))

    def merge(self, model: nn.Module) -> nn.Module:
        # PEFT's (IA)³ unload copies `.weight` onto every unwrapped module, which fails for a head that is
        # not a single Linear (XLM-R's classifier.dense + out_proj). Put the trained head copies in place
        # first; the (IA)³ layers then merge as usual.
        from peft.utils.other import ModulesToSaveWrapper

        base = model.get_base_model()
        for name, module in list(base.named_modules()):
            if isinstance(module, ModulesToSaveWrapper):
                parent_name, _, child = name.rpartition(".")
                parent = base.get_submodule(parent_name) if parent_name else base
                setattr(parent, child, module.modules_to_save[module.active_adapters[0]])
        return model.merge_and_unload()
