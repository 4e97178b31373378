"""Soft prompts: prompt tuning, p-tuning and prefix tuning.

* ``prompt-tuning`` (Lester et al. 2021): ℓ trainable vectors prepended to the input embeddings,
  the model frozen; initialised from the embeddings of real vocabulary text (a Slovene task
  description by default), which the paper finds better than random vectors. PEFT's
  ``PromptTuningConfig``.
* ``p-tuning`` (Liu et al. 2021, "GPT Understands, Too"): the input prompt produced by a small
  prompt encoder (MLP or LSTM). PEFT's ``PromptEncoderConfig``.
* ``prefix-tuning`` (Li & Liang 2021; P-tuning v2 for NLU): key/value prefixes in every attention
  layer, optionally produced during training by an MLP from a smaller matrix. Causal and
  seq2seq models use PEFT's ``PrefixTuningConfig``; encoders use slopeft's own deep prompts
  (:mod:`slopeft.methods.deep_prompt`), because PEFT's prefix tuning fails on transformers 5
  encoders ("Model does not support past key values").

Input-level prompts (prompt-tuning, p-tuning) do not apply to encoder multiple choice (COPA):
PEFT has no task type for it, and its generic ``PeftModel.forward`` calls the bare model without
the prompt, so the prompt would silently never be used. Prefix tuning's deep prompts work there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods import deep_prompt
from slopeft.methods.base import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    METHODS,
    MethodContext,
    freeze_all_but,
    load_own_adapter,
)
from slopeft.methods.lora import PeftMethod

DEFAULT_INIT_TEXT = "Preberi besedilo in izberi pravilen odgovor."
"""Slovene: "Read the text and choose the correct answer." — a task description, in the model's language."""


class _PromptLearning(PeftMethod):
    """Shared by the PEFT prompt-learning methods: no multiple choice, no merge."""

    def check(self, context: MethodContext) -> None:
        super().check(context)
        if context.task_type is None:
            raise ConfigError(
                f"{self.name} cannot train an encoder's multiple-choice head (COPA): PEFT has no task type "
                "for multiple choice, and its generic PeftModel.forward passes inputs to the model without "
                "the soft prompt, so the prompt would never be used. Use prefix-tuning (deep prompts in "
                "every layer, which work with multiple choice), lora or ia3."
            )

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        self.check(context)
        return generation_compat(super().apply(model, context))

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        return generation_compat(super().load(base, adapter_dir, context))

    def merge(self, model: nn.Module) -> nn.Module:
        raise ConfigError(
            f"{self.name} has no merge step: its virtual tokens lengthen the input and cannot be folded into weights."
        )


def generation_compat(peft_model: nn.Module) -> nn.Module:
    """Makes PEFT 0.21's prompt learning see the key/value cache during ``generate`` on transformers 5.

    transformers 5's ``prepare_inputs_for_generation`` hands the cache over as ``cache``; PEFT's
    looks for ``past_key_values``. Without this, ``generate`` ignores a prefix-tuning prefix (PEFT puts
    it under ``past_key_values`` beside the model's own empty ``cache``, which wins), and re-inserts a
    prompt-tuning prompt before every new token (PEFT sees no cache, so every step looks like the
    first). The model's forward accepts ``past_key_values`` as the deprecated name of ``cache``.
    Only generation is affected (translation); training and candidate scoring use ``forward``.
    """
    prepare = getattr(peft_model, "base_model_prepare_inputs_for_generation", None)
    if prepare is None or getattr(prepare, "_slopeft_compat", False):
        return peft_model

    def prepare_with_past_key_values(*args: Any, **kwargs: Any) -> dict[str, Any]:
        inputs = prepare(*args, **kwargs)
        if "cache" in inputs and "past_key_values" not in inputs:
            inputs["past_key_values"] = inputs.pop("cache")
        return inputs

    prepare_with_past_key_values._slopeft_compat = True  # type: ignore[attr-defined]
    peft_model.base_model_prepare_inputs_for_generation = prepare_with_past_key_values
    return peft_model


@dataclass
class PromptTuningOptions:
    num_virtual_tokens: int = 20
    """Prompt length ℓ (Lester et al. use 20–100; 20 is their recommended minimum)."""
    init: str = "text"
    """Initialisation: ``text`` (embeddings of ``init_text``'s tokens, repeated to fill the prompt),
    ``vocab`` (embeddings of randomly sampled vocabulary tokens) or ``random``."""
    init_text: str = DEFAULT_INIT_TEXT
    """Text whose token embeddings initialise the prompt when ``init`` is ``text`` (a task description
    or the label words)."""


@METHODS.register("prompt-tuning")
class PromptTuning(_PromptLearning):
    name = "prompt-tuning"
    config_class = PromptTuningOptions
    # Lester et al. use 0.3 with Adafactor; with AdamW, PEFT's prompt-tuning guides use 3e-2.

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.config.init not in ("text", "vocab", "random"):
            raise ConfigError(f"prompt-tuning.init must be text, vocab or random, not {self.config.init!r}.")
        if self.config.num_virtual_tokens < 1:
            raise ConfigError("prompt-tuning.num_virtual_tokens must be at least 1.")
        if self.config.init == "text" and not self.config.init_text.strip():
            raise ConfigError("prompt-tuning.init_text is empty; give a task description or the label words.")

    def peft_config(self, context: MethodContext):
        from peft import PromptTuningConfig, PromptTuningInit

        # The text initialisation is done in apply() with the model's own tokenizer, so the saved
        # adapter does not point at a tokenizer path (PEFT's TEXT init would store and reload it).
        init = PromptTuningInit.SAMPLE_VOCAB if self.config.init == "vocab" else PromptTuningInit.RANDOM
        return PromptTuningConfig(
            num_virtual_tokens=self.config.num_virtual_tokens,
            prompt_tuning_init=init,
            **self.common(context),
        )

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        peft_model = super().apply(model, context)
        if self.config.init == "text":
            embedding = peft_model.prompt_encoder[peft_model.active_adapter].embedding
            ids = text_token_ids(peft_model, self.config.init_text)
            rows = embedding.weight.shape[0]  # seq2seq models hold one prompt per transformer stack
            ids = (ids * (rows // len(ids) + 1))[:rows]
            words = peft_model.get_base_model().get_input_embeddings()
            with torch.no_grad():
                embedding.weight.copy_(words.weight[torch.tensor(ids, device=words.weight.device)].float())
        return peft_model


def text_token_ids(model: nn.Module, text: str) -> list[int]:
    """Token ids of ``text`` (no special tokens) from the tokenizer saved beside the model's weights."""
    from transformers import AutoTokenizer

    config = getattr(model, "config", None)
    path = getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", "")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"prompt-tuning's text initialisation needs the model's tokenizer, which could not be loaded from "
            f"{path!r} ({str(err).splitlines()[0]}). Use --set prompt-tuning.init=vocab."
        ) from None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"prompt-tuning.init_text {text!r} gives no tokens.")
    return list(ids)


@dataclass
class PTuningOptions:
    num_virtual_tokens: int = 20
    """Number of continuous prompt tokens."""
    encoder: str = "MLP"
    """Prompt encoder re-parameterising the prompt: ``MLP`` or ``LSTM`` (the paper's bidirectional LSTM + MLP)."""
    encoder_hidden_size: int = 128
    """Hidden size of the prompt encoder."""
    encoder_num_layers: int = 2
    """Layers of the LSTM (LSTM encoder only)."""
    encoder_dropout: float = 0.0
    """Dropout inside the prompt encoder."""


@METHODS.register("p-tuning")
class PTuning(_PromptLearning):
    name = "p-tuning"
    config_class = PTuningOptions
    # PEFT's p-tuning examples; the prompt encoder's MLP needs smaller steps than raw prompt vectors.

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.config.encoder = self.config.encoder.upper()
        if self.config.encoder not in ("MLP", "LSTM"):
            raise ConfigError(f"p-tuning.encoder must be MLP or LSTM, not {self.config.encoder!r}.")

    def peft_config(self, context: MethodContext):
        from peft import PromptEncoderConfig

        c = self.config
        return PromptEncoderConfig(
            num_virtual_tokens=c.num_virtual_tokens,
            encoder_reparameterization_type=c.encoder,
            encoder_hidden_size=c.encoder_hidden_size,
            encoder_num_layers=c.encoder_num_layers,
            encoder_dropout=c.encoder_dropout,
            **self.common(context),
        )


@dataclass
class PrefixTuningOptions:
    num_virtual_tokens: int = 20
    """Prefix length per layer (P-tuning v2: ~20 for simple classification, 100+ for reading comprehension)."""
    prefix_projection: bool = False
    """Produce the prefix during training with an MLP from a smaller matrix (Li & Liang's
    re-parameterisation); only the resulting key/value vectors are saved. P-tuning v2 finds it
    helps some tasks and hurts others, and its default is off."""
    encoder_hidden_size: int = 512
    """Hidden width of the re-parameterisation MLP (Li & Liang use 512)."""
    dropout: float = 0.1
    """Dropout on the prefix during training (encoders' deep prompts only; P-tuning v2 uses the model's
    hidden dropout, 0.1 for BERT-style models)."""


@METHODS.register("prefix-tuning")
class PrefixTuning(PeftMethod):
    name = "prefix-tuning"
    config_class = PrefixTuningOptions
    # P-tuning v2 trains encoder prefixes with 5e-3 .. 1e-2 (Li & Liang's 5e-5 is for GPT-2 with the MLP).

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.config.num_virtual_tokens < 1:
            raise ConfigError("prefix-tuning.num_virtual_tokens must be at least 1.")

    def peft_type(self) -> str:
        return "SLOPEFT_DEEP_PROMPT"

    # -- causal and seq2seq: PEFT ----------------------------------------------------------------
    def peft_config(self, context: MethodContext):
        from peft import PrefixTuningConfig

        c = self.config
        return PrefixTuningConfig(
            num_virtual_tokens=c.num_virtual_tokens,
            prefix_projection=c.prefix_projection,
            encoder_hidden_size=c.encoder_hidden_size,
            **self.common(context),
        )

    # -- encoders: slopeft's deep prompts --------------------------------------------------------
    def apply(self, model: nn.Module, context: MethodContext, projection: bool | None = None) -> nn.Module:
        if context.family != "encoder":
            return generation_compat(super().apply(model, context))
        c = self.config
        layers, heads, head_dim = deep_prompt.attention_shape(model)
        use_projection = c.prefix_projection if projection is None else projection
        prompt = deep_prompt.DeepPrompt(
            layers,
            heads,
            head_dim,
            c.num_virtual_tokens,
            projection_hidden=c.encoder_hidden_size if use_projection else 0,
            embedding_dim=model.config.hidden_size,
            dropout=c.dropout,
        )
        parameter = next(model.parameters())
        prompt.to(device=parameter.device, dtype=parameter.dtype)
        deep_prompt.attach(model, prompt)
        freeze_all_but(model, [deep_prompt.MODULE_NAME, *context.head_modules])
        return model

    def save(self, model: nn.Module, out_dir: Path) -> None:
        prompt = getattr(model, deep_prompt.MODULE_NAME, None)
        if prompt is None:
            return super().save(model, out_dir)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        prefix_name = f"{deep_prompt.MODULE_NAME}.prefix"
        state = {
            n: p.detach().cpu().clone()
            for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(deep_prompt.MODULE_NAME + ".")
        }
        with torch.no_grad():  # only the resulting key/value vectors are kept, never the MLP
            state[prefix_name] = prompt.resolved().detach().cpu().clone().contiguous()
        save_file(state, str(out_dir / ADAPTER_WEIGHTS))
        config = {
            "peft_type": self.peft_type(),
            **self.options_dict(),
            "num_layers": prompt.num_layers,
            "num_attention_heads": prompt.num_heads,
            "head_dim": prompt.head_dim,
            "layout": "prefix: (num_virtual_tokens, num_layers * 2 * heads * head_dim); block 2l = keys, 2l+1 = values",
        }
        (out_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        if context.family != "encoder":
            return generation_compat(super().load(base, adapter_dir, context))
        config = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
        if config.get("peft_type") != self.peft_type():
            raise ConfigError(
                f"{adapter_dir} holds a {config.get('peft_type')} adapter, not slopeft's encoder deep prompt."
            )
        model = self.apply(base, context, projection=False)  # the saved prefix is already resolved
        load_own_adapter(model, adapter_dir)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        raise ConfigError(
            "prefix-tuning has no merge step: its prefixes are extra keys and values, not a weight update."
        )
