"""What a PEFT method is: a typed config, ``apply`` to a model, optional training hooks, save and load.

One registered module per method. The trainer never branches on a method's name: it calls
``apply`` before training, ``on_step_end`` after every optimiser step (AdaLoRA/IncreLoRA
allocation), adds ``extra_loss`` (MoLA balancing, orthogonality regularisers) and lets a
method build its own optimiser (sparse full fine-tuning). Saving writes an adapter folder
in PEFT's layout (``adapter_config.json`` + ``adapter_model.safetensors``); methods PEFT
does not know use the same layout with their own ``peft_type``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from slopeft.config import update_dataclass
from slopeft.errors import ConfigError
from slopeft.registry import Registry

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class AddedPositions:
    """Positions a method occupies in front of the text of every sequence (:meth:`Method.added_positions`).

    The head takes them off its text budget (:meth:`slopeft.models.heads.Head.for_method`); the
    model's own limits are :class:`slopeft.models.positions.PositionLimits`.
    """

    input: int = 0
    """In the sequence the head encodes: an encoder's input, a causal LM's prompt and continuation,
    a seq2seq model's encoder input."""
    decoder: int = 0
    """In a seq2seq model's decoder sequence (its labels, or what it generates)."""
    option: str = ""
    """The method option that sets them (``num_virtual_tokens``): a budget error tells the user to
    lower it, without the head knowing the method."""


@dataclass
class MethodContext:
    """What a method needs to know about the model it adapts.

    Attributes:
        family: ``encoder``, ``causal`` or ``seq2seq``.
        architecture: transformers ``model_type`` (``bert``, ``camembert``, ``gemma3_text`` ...).
        head_modules: modules the checkpoint did not contain (the randomly initialised task head:
            classifier, pooler); every method trains and saves them.
        task_type: the PEFT task type (``SEQ_CLS``, ``CAUSAL_LM``, ``SEQ_2_SEQ_LM``) or None
            (multiple choice, for which PEFT has none).
        width: the model's hidden size, when known: no low-rank update of its layers has a higher rank.
    """

    family: str
    architecture: str
    head_modules: list[str] = field(default_factory=list)
    task_type: str | None = None
    width: int | None = None


def model_width(model) -> int | None:
    """A transformers model's hidden size (``hidden_size``, T5's ``d_model``), None when it has neither."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    width = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    return width if isinstance(width, int) else None


#: Option names that are the rank of a low-rank update (LoRA and its derivatives).
RANK_OPTIONS = ("r", "init_r", "target_r", "target_rank", "max_rank")


class Method(abc.ABC):
    """A parameter-efficient (or full) fine-tuning method.

    Subclasses set ``name``, ``config_class`` (a dataclass whose fields are the method's
    options, with docstrings), ship a recipe (``slopeft/resources/recipes/<name>.yaml``: the
    default learning rate and other training settings) and implement ``apply``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    families: ClassVar[tuple[str, ...]] = ("encoder", "causal", "seq2seq")

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.config = update_dataclass(self.config_class(), options or {}, self.name)

    def check(self, context: MethodContext) -> None:
        """Raises ConfigError when the method does not apply to this model."""
        if context.family not in self.families:
            raise ConfigError(
                f"{self.name} does not apply to {context.family} models ({context.architecture}); it "
                f"works on {', '.join(self.families)} models."
            )
        for option in RANK_OPTIONS:
            rank = getattr(self.config, option, None)
            if context.width and isinstance(rank, int) and rank > context.width:
                # Above the hidden size an update has no more rank to give, only parameters (r=100000
                # on a 384-wide encoder asked for 1.8B of them and was killed for memory).
                raise ConfigError(
                    f"{self.name}.{option}={rank} exceeds this {context.architecture} model's width ({context.width}): "
                    f"no update of its layers can have a rank above {context.width}. Set --set "
                    f"{self.name}.{option}=N with N ≤ {context.width}."
                )

    def environment_problem(self) -> str | None:
        """What this machine lacks to run the method (a library, a kernel), as a ConfigError message
        naming the fix, or None.

        Kept apart from :meth:`check` (does the method apply to this model and task): a grid keeps
        runs whose only problem is the machine, so their published records are imported and
        reported everywhere, and trains them only on a machine that lacks nothing.
        """
        return None

    def check_runnable(self, context: MethodContext) -> None:
        """:meth:`check`, then :meth:`environment_problem` as a ConfigError (what training and serving call)."""
        self.check(context)
        if problem := self.environment_problem():
            raise ConfigError(problem)

    @abc.abstractmethod
    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        """Freezes what stays frozen, adds the method's parameters; returns the model to train."""

    def added_positions(self, family: str) -> AddedPositions:
        """Positions the adapted ``family`` model spends in front of the text of every sequence.

        The head is given this (:meth:`slopeft.models.heads.Head.for_method`) and encodes that much
        less text, so that text + what the method adds fits the model's position table. Methods that
        change weights only add nothing (the default).
        """
        return AddedPositions()

    # -- training hooks (defaults do nothing) ---------------------------------------------------
    def on_step_end(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Called after every optimiser step (rank allocation, schedules)."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A regulariser added to the task loss (None: nothing to add)."""
        return None

    def build_optimizer(self, model: nn.Module, learning_rate: float, weight_decay: float) -> Any:
        """The optimiser (or list of optimisers) for ``model``'s trainable parameters: AdamW without
        decay on biases and norms, unless the method needs its own (sparse embeddings, IncreLoRA)."""
        from slopeft.methods.optim import adamw

        return adamw(model.named_parameters(), learning_rate, weight_decay)

    def cost_report(self, model: nn.Module) -> dict[str, Any]:
        """Method-specific costs for the run record (effective ranks, quantised bytes ...); empty by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Method state a resumed run needs (importance scores, rank schedules); tensors and JSON values."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`'s output."""

    # -- saving and loading ---------------------------------------------------------------------
    def save(self, model: nn.Module, out_dir: Path) -> None:
        """Writes the trained parameters (method + head) to ``out_dir`` in PEFT's layout."""
        from peft import PeftModel

        if isinstance(model, PeftModel):
            model.save_pretrained(str(out_dir))
            return
        save_own_adapter(model, out_dir, self.peft_type(), self.options_dict())

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        """Rebuilds the trained model from the base model and a saved adapter folder."""
        model = self.apply(base, context)
        load_own_adapter(model, adapter_dir)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        """The model with the adapter folded into the base weights (methods that can)."""
        raise ConfigError(f"{self.name} has no merge step: its parameters are used as they are.")

    def peft_type(self) -> str:
        return f"SLOPEFT_{self.name.upper().replace('-', '_')}"

    def options_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)


METHODS: Registry[type[Method]] = Registry("method")
"""Registered methods by name (``full``, ``lora``, ``bitfit`` ...)."""


HALF_PRECISION = (torch.float16, torch.bfloat16)


def has_half_precision(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` is bf16 or fp16 (transformers 5 loads a checkpoint's own dtype)."""
    return any(p.dtype in HALF_PRECISION for p in module.parameters())


def _float32_inputs(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    def cast(value: Any) -> Any:
        return value.float() if isinstance(value, torch.Tensor) and value.dtype in HALF_PRECISION else value

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def float32_head(model: nn.Module, context: MethodContext) -> None:
    """Makes the task head float32 on a half-precision model: AdamW on bf16 weights loses every update
    smaller than the weight's last bit, so the head keeps float32 weights (the masters) and takes its
    inputs in float32 (its logits come out float32). Under GPU autocast its matmuls still run in bf16."""
    for name in context.head_modules:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if has_half_precision(module):
            module.float()
            module.register_forward_pre_hook(_float32_inputs, with_kwargs=True)


def float32_masters(model: nn.Module) -> nn.Module:
    """The whole model in float32 when it holds half-precision weights, for methods that train base
    weights in place (full fine-tuning, BitFit): their optimiser then updates float32 masters, and with
    ``training.precision=bf16`` on a GPU autocast still runs the matmuls in bf16."""
    return model.float() if has_half_precision(model) else model


def freeze_all_but(model: nn.Module, trainable: list[str]) -> None:
    """Freezes every parameter except those whose name starts with one of ``trainable`` (module paths)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = any(name == t or name.startswith(t + ".") for t in trainable)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters (what an adapter stores), contiguous and detached."""
    # clone: on a CPU .cpu() is the same storage, and a "best" snapshot must not follow later updates
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_own_adapter(model: nn.Module, out_dir: Path, peft_type: str, options: dict[str, Any]) -> None:
    """PEFT-style folder for a method PEFT does not know: the trainable tensors and a typed config."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(out_dir / ADAPTER_WEIGHTS))
    (out_dir / ADAPTER_CONFIG).write_text(json.dumps({"peft_type": peft_type, **options}, indent=2) + "\n")


def load_own_adapter(model: nn.Module, adapter_dir: Path) -> None:
    """Loads tensors saved by :func:`save_own_adapter` into ``model``; any mismatch is a clear error."""
    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}: it is not a slopeft adapter folder.")
    state = load_file(str(path))
    parameters = dict(model.named_parameters())
    missing = sorted(n for n, p in parameters.items() if p.requires_grad and n not in state)
    unknown = sorted(n for n in state if n not in parameters)
    mismatched = sorted(n for n, t in state.items() if n in parameters and parameters[n].shape != t.shape)
    if missing or unknown or mismatched:
        raise ConfigError(
            f"The adapter in {adapter_dir} does not fit this model: "
            f"{len(missing)} trainable tensors missing (e.g. {missing[:2]}), {len(unknown)} unknown "
            f"(e.g. {unknown[:2]}), {len(mismatched)} of another shape (e.g. {mismatched[:2]}). Load it onto the base "
            "model and method it was trained with (see its slopeft_adapter.json)."
        )
    with torch.no_grad():
        for name, tensor in state.items():
            parameters[name].copy_(tensor.to(parameters[name].dtype))
