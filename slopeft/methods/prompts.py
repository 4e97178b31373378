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

On encoder multiple choice (COPA's ``AutoModelForMultipleChoice``) PEFT has no task type, and its
generic ``PeftModel.forward`` calls the bare model without the prompt; prompt tuning and P-tuning
there use PEFT's prompt modules inside slopeft's own injection (:class:`MultipleChoicePrompt`): the
same prompt in front of every (premise, choice) row. Prefix tuning's deep prompts work there as
they are (keys and values in every layer, nothing in front of the text).

Learning rates (``slopeft/resources/recipes/``; the sweep on e5-small-multilingual and 1,600 SI-NLI
rows, one seed, 440 validation rows): prompt tuning 3e-2 (1e-2 0.339, 3e-2 0.350, 1e-1 diverged;
the majority scores 0.330), where the paper trains 0.3 for 30,000 steps — on a small encoder and
300 steps it hardly learns at any rate. P-tuning 3e-3 (1e-3 0.357, after 0.425 at epoch 2;
3e-3 0.445; 1e-2 0.400): it learns, unsteadily, at three times the common rate of 1e-3.
Prefix tuning 1e-2 with ``init: vocabulary`` (0.423; 1e-3 0.371, 3e-3 0.386). With P-tuning v2's N(0, 1)
start it failed at every rate on this encoder in 300 steps (1e-3 0.330, 3e-3 0.330 with every
prediction one class, 1e-2 0.341, 3e-2 0.330): such a prefix draws up to 68% of a layer's attention
at the start and makes the head's inputs for different pairs alike (``benchmarks/prefix_init.py``);
starting from the frozen encoder's own keys and values for vocabulary tokens, Li & Liang's
initialisation with real-word activations, it learns.

Every input-level prompt takes positions from the text (:meth:`Method.added_positions`): the head
encodes ``num_virtual_tokens`` fewer tokens, so text + prompt fits the model's position table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from slopeft.config import check_choice, check_range
from slopeft.errors import ConfigError
from slopeft.methods import deep_prompt
from slopeft.methods.base import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    METHODS,
    AddedPositions,
    MethodContext,
    float32_head,
    freeze_all_but,
    load_own_adapter,
)
from slopeft.methods.lora import PeftMethod

DEFAULT_INIT_TEXT = "Preberi besedilo in izberi pravilen odgovor."
"""Slovene: "Read the text and choose the correct answer." — a task description, in the model's language."""


MULTIPLE_CHOICE_PEFT_TYPE = "SLOPEFT_MULTIPLE_CHOICE_PROMPT"
"""``peft_type`` of a soft prompt saved from a multiple-choice model (PEFT cannot load it: it would
attach the prompt to a generic PeftModel that never uses it)."""


class _PromptLearning(PeftMethod):
    """Shared by prompt tuning and p-tuning: virtual tokens in front of the input, no merge."""

    def added_positions(self, family: str) -> AddedPositions:
        # The prompt is prepended to the input embeddings, on every family. On seq2seq models PEFT
        # 0.21 puts it in front of the encoder input only (the decoder's positions stay the tokens').
        return AddedPositions(input=self.config.num_virtual_tokens, option="num_virtual_tokens")

    def prompt_module(self, config: Any, word_embeddings: nn.Module) -> nn.Module:
        """PEFT's module that produces the ``(num_virtual_tokens, token_dim)`` prompt."""
        raise NotImplementedError

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        self.check(context)
        if context.task_type is None:
            return self._multiple_choice(model, context)
        return generation_compat(super().apply(model, context))

    def _multiple_choice(self, model: nn.Module, context: MethodContext, loading: bool = False) -> nn.Module:
        """``model`` (an ``AutoModelForMultipleChoice``) inside :class:`MultipleChoicePrompt`.

        ``loading``: PEFT's inference mode, where the prompt module is a plain embedding holding the
        saved (resolved) prompt, as :meth:`save` writes it.
        """
        if not type(model).__name__.endswith("ForMultipleChoice"):
            raise ConfigError(
                f"{self.name} found no PEFT task type for {type(model).__name__}; slopeft injects the prompt "
                "itself only into multiple-choice models (COPA). Use lora, ia3 or prefix-tuning."
            )
        config = self.peft_config(context)
        embeddings = model.get_input_embeddings()
        config.num_transformer_submodules = 1  # an encoder: one prompt
        config.token_dim = embeddings.embedding_dim
        config.inference_mode = loading
        module = self.prompt_module(config, embeddings)
        module.to(embeddings.weight.device)
        wrapped = MultipleChoicePrompt(model, module, self.config.num_virtual_tokens, context.head_modules, loading)
        if loading:
            freeze_all_but(wrapped, [])  # as PEFT loads an adapter: for inference
        else:
            freeze_all_but(wrapped, ["prompt_encoder", *(f"base_model.{h}" for h in context.head_modules)])
        return wrapped

    def save(self, model: nn.Module, out_dir: Path) -> None:
        if not isinstance(model, MultipleChoicePrompt):
            return super().save(model, out_dir)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        training = model.training
        model.eval()  # an LSTM encoder's dropout must not reach the saved prompt
        with torch.no_grad():  # as PEFT: the prompt itself, not the encoder that produced it
            state = {"prompt_embeddings": model.resolved_prompt().detach().float().cpu().clone().contiguous()}
        model.train(training)
        state.update({name: tensor.detach().cpu().clone().contiguous() for name, tensor in model.head_state().items()})
        save_file(state, str(out_dir / ADAPTER_WEIGHTS))
        config = {
            "peft_type": MULTIPLE_CHOICE_PEFT_TYPE,
            "method": self.name,
            **self.options_dict(),
            "token_dim": state["prompt_embeddings"].shape[1],
            "head_modules": list(model.head_modules),
            "layout": (
                "prompt_embeddings: (num_virtual_tokens, token_dim), in front of the input embeddings of every "
                "(premise, choice) row of an AutoModelForMultipleChoice; other tensors: the task head, named "
                "as in the base model"
            ),
        }
        (out_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        if context.task_type is not None:
            return generation_compat(super().load(base, adapter_dir, context))
        adapter_dir = Path(adapter_dir)
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
        if config.get("peft_type") != MULTIPLE_CHOICE_PEFT_TYPE or config.get("method") != self.name:
            raise ConfigError(
                f"{adapter_dir} holds a {config.get('method') or config.get('peft_type')} adapter, not a "
                f"{self.name} prompt for a multiple-choice model."
            )
        model = self._multiple_choice(base, context, loading=True)
        state = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
        prompt = state.pop("prompt_embeddings")
        target = model.prompt_encoder["default"].embedding.weight
        parameters = dict(base.named_parameters())
        head = {n for n in parameters if any(n == h or n.startswith(h + ".") for h in context.head_modules)}
        if prompt.shape != target.shape or set(state) != head or any(
            parameters[n].shape != t.shape for n, t in state.items()
        ):
            raise ConfigError(
                f"The prompt in {adapter_dir} does not fit this model: prompt {tuple(prompt.shape)} for "
                f"{tuple(target.shape)}, head tensors {sorted(state)[:4]} for {sorted(head)[:4]}. Load it onto "
                "the base model and method it was trained with (see its slopeft_adapter.json)."
            )
        with torch.no_grad():
            target.copy_(prompt.to(target.dtype))
            for name, tensor in state.items():
                parameters[name].copy_(tensor.to(parameters[name].dtype))
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        raise ConfigError(
            f"{self.name} has no merge step: its virtual tokens lengthen the input and cannot be folded into weights."
        )


class MultipleChoicePrompt(nn.Module):
    """A soft prompt in front of every (premise, choice) row of an ``AutoModelForMultipleChoice``.

    Why not PEFT: it has no task type for multiple choice, so ``get_peft_model`` gives the generic
    ``PeftModel``, whose forward calls the model with the inputs as they are (the prompt is never
    used); and its sequence-classification forward, which does prepend the prompt, expects
    ``(batch, length)`` inputs, where a multiple-choice model takes ``(batch, choices, length)``.
    So this wrapper does the injection around PEFT's own prompt module (``PromptEmbedding`` for
    prompt tuning, ``PromptEncoder`` for P-tuning), as PEFT's sequence-classification forward does
    per row: the word embeddings of every flattened (example, choice) row get the same prompt in
    front, the attention mask as many ones, the token types as many zeros, and the model is called
    with ``inputs_embeds``. Names follow PEFT's: ``base_model.*`` and ``prompt_encoder.default.*``.

    Args:
        model: the multiple-choice model (frozen but for its head).
        prompt_module: PEFT's prompt module; ``module(indices)`` gives the prompt.
        num_virtual_tokens: the prompt's length.
        head_modules: the task head's modules in ``model`` (trained and saved with the prompt).
        inference_mode: the module is a plain embedding holding a saved prompt (PEFT's inference mode).
    """

    def __init__(
        self,
        model: nn.Module,
        prompt_module: nn.Module,
        num_virtual_tokens: int,
        head_modules: list[str],
        inference_mode: bool = False,
    ) -> None:
        super().__init__()
        self.base_model = model
        self.prompt_encoder = nn.ModuleDict({"default": prompt_module})
        self.active_adapter = "default"
        self.num_virtual_tokens = num_virtual_tokens
        self.head_modules = list(head_modules)
        self.inference_mode = inference_mode

    @property
    def config(self) -> Any:
        return self.base_model.config

    @property
    def device(self) -> torch.device:
        return self.base_model.device

    def get_base_model(self) -> nn.Module:
        return self.base_model

    def resolved_prompt(self) -> torch.Tensor:
        """The prompt ``(num_virtual_tokens, hidden)``: the module's output (or, loaded, its stored rows)."""
        module = self.prompt_encoder["default"]
        if self.inference_mode:
            return module.embedding.weight
        indices = torch.arange(self.num_virtual_tokens, device=module.embedding.weight.device)
        return module(indices.unsqueeze(0))[0]  # PEFT's LSTM encoder reads (batch, tokens)

    def head_state(self) -> dict[str, torch.Tensor]:
        """The task head's tensors, named as in the base model."""
        return {
            name: parameter
            for name, parameter in self.base_model.named_parameters()
            if any(name == h or name.startswith(h + ".") for h in self.head_modules)
        }

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if inputs_embeds is None:
            inputs_embeds = self.base_model.get_input_embeddings()(input_ids)
        batch, choices, length, width = inputs_embeds.shape
        n = self.num_virtual_tokens
        rows = inputs_embeds.reshape(batch * choices, length, width)
        prompt = self.resolved_prompt().to(rows.dtype).unsqueeze(0).expand(batch * choices, -1, -1)
        embeds = torch.cat([prompt, rows], dim=1).view(batch, choices, n + length, width)

        def in_front(values: torch.Tensor | None, fill: int) -> torch.Tensor | None:
            if values is None:
                return None
            return torch.cat([values.new_full((batch, choices, n), fill), values], dim=-1)

        return self.base_model(
            inputs_embeds=embeds,
            attention_mask=in_front(attention_mask, 1),
            token_type_ids=in_front(token_type_ids, 0),
            **kwargs,
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

    def __post_init__(self) -> None:
        check_choice(self, "prompt-tuning", "init", ("text", "vocab", "random"))
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"prompt-tuning.num_virtual_tokens must be at least 1, not {self.num_virtual_tokens}.")
        if self.init == "text" and not self.init_text.strip():
            raise ConfigError("prompt-tuning.init_text is empty; give a task description or the label words.")


@METHODS.register("prompt-tuning")
class PromptTuning(_PromptLearning):
    name = "prompt-tuning"
    config_class = PromptTuningOptions
    # Lester et al. use 0.3 with Adafactor; with AdamW, PEFT's prompt-tuning guides use 3e-2.

    def prompt_module(self, config: Any, word_embeddings: nn.Module) -> nn.Module:
        from peft import PromptEmbedding

        return PromptEmbedding(config, word_embeddings)

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

    def __post_init__(self) -> None:
        check_range(self, "p-tuning", "num_virtual_tokens", low=1)
        if not isinstance(self.encoder, str) or self.encoder.upper() not in ("MLP", "LSTM"):
            raise ConfigError(f"p-tuning.encoder must be MLP or LSTM, not {self.encoder!r}.")
        check_range(self, "p-tuning", "encoder_hidden_size", low=1)
        check_range(self, "p-tuning", "encoder_num_layers", low=1)
        check_range(self, "p-tuning", "encoder_dropout", low=0, high=1, high_open=True)


@METHODS.register("p-tuning")
class PTuning(_PromptLearning):
    name = "p-tuning"
    config_class = PTuningOptions
    # PEFT's p-tuning examples; the prompt encoder's MLP needs smaller steps than raw prompt vectors.

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)  # PTuningOptions.__post_init__ checks the options
        self.config.encoder = self.config.encoder.upper()

    def prompt_module(self, config: Any, word_embeddings: nn.Module) -> nn.Module:
        from peft import PromptEncoder

        return PromptEncoder(config)

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


PREFIX_INITS = ("normal", "vocabulary")


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
    init: str = "normal"
    """How an encoder's deep prompt starts (without ``prefix_projection``): ``normal``, N(0, 1) as P-tuning
    v2 and PEFT; ``vocabulary``, the keys and values the frozen encoder computes for random vocabulary
    tokens (Li & Liang's initialisation with activations of real words; the recipe's, chosen by the
    sweep). On causal and seq2seq models the prefix is PEFT's, which keeps its own initialisation: the
    recipe holds for every family, so this option does not make them an error."""

    def __post_init__(self) -> None:
        check_choice(self, "prefix-tuning", "init", PREFIX_INITS)
        if self.init != "normal" and self.prefix_projection:
            raise ConfigError(
                "prefix-tuning: init applies to a prefix trained directly; with prefix_projection the MLP "
                "produces it. Drop one of the two."
            )
        check_range(self, "prefix-tuning", "num_virtual_tokens", low=1)
        check_range(self, "prefix-tuning", "encoder_hidden_size", low=1)
        check_range(self, "prefix-tuning", "dropout", low=0, high=1, high_open=True)


@METHODS.register("prefix-tuning")
class PrefixTuning(PeftMethod):
    name = "prefix-tuning"
    config_class = PrefixTuningOptions
    # P-tuning v2 trains encoder prefixes with 5e-3 .. 1e-2 (Li & Liang's 5e-5 is for GPT-2 with the MLP).

    def peft_type(self) -> str:
        return "SLOPEFT_DEEP_PROMPT"

    def added_positions(self, family: str) -> AddedPositions:
        n = self.config.num_virtual_tokens
        if family == "causal":  # PEFT's prefix sits in the key/value cache: the tokens' positions start at n
            return AddedPositions(input=n, option="num_virtual_tokens")
        if family == "seq2seq":  # the same in the decoder (its self-attention cache); the encoder has none
            return AddedPositions(decoder=n, option="num_virtual_tokens")
        return AddedPositions()  # encoders' deep prompts: extra keys and values, the tokens keep their positions

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
    def apply(self, model: nn.Module, context: MethodContext, loading: bool = False) -> nn.Module:
        if context.family != "encoder":
            return generation_compat(super().apply(model, context))
        c = self.config
        layers, heads, head_dim = deep_prompt.attention_shape(model)
        # A saved prefix is already resolved (no MLP) and replaces whatever the start would have been.
        use_projection = c.prefix_projection and not loading
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
        # float32 masters whatever the base dtype; each layer casts its prefix to the attention's dtype.
        prompt.to(device=parameter.device)
        if c.init == "vocabulary" and not loading:  # options refuse it with prefix_projection
            with torch.no_grad():
                ids = deep_prompt.random_vocabulary_ids(model, c.num_virtual_tokens)
                prompt.prefix.copy_(deep_prompt.vocabulary_activations(model, ids))
        deep_prompt.attach(model, prompt)
        freeze_all_but(model, [deep_prompt.MODULE_NAME, *context.head_modules])
        float32_head(model, context)
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
        model = self.apply(base, context, loading=True)
        load_own_adapter(model, adapter_dir)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        raise ConfigError(
            "prefix-tuning has no merge step: its prefixes are extra keys and values, not a weight update."
        )
