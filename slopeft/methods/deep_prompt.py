"""Deep prompts for encoders (P-tuning v2, Liu et al. 2022; prefix tuning, Li & Liang 2021).

PEFT's prefix tuning hands the prefix to the model as ``past_key_values``; transformers 5's
BERT-family encoders do not take them ("Model does not support past key values"), so slopeft
injects the prefixes itself: every self-attention layer gets ``num_virtual_tokens`` trainable key
and value vectors in front of the keys and values the tokens project to, and the attention mask
gets as many "attend" columns. Queries, positions and the output length are unchanged, so the
classification head still reads the first token and multiple-choice models (which flatten the
choices into the batch) work as they are.

Training may produce the prefix through Li & Liang's re-parameterisation: a smaller matrix
(one ``hidden``-wide row per virtual token) passed through an MLP (Linear–Tanh–Linear) that emits
the keys and values of every layer. After training only the resulting key/value vectors are
kept (:meth:`DeepPrompt.resolved`), so a loaded adapter holds a plain prefix tensor.

How the prefix reaches each layer:

* BERT, RoBERTa, CamemBERT, XLM-R (``*SelfAttention``): their forward routes the projected
  keys and values through ``cache.update(key, value, ...)``, which for a decoder appends the new
  tokens to the cached ones. A forward pre-hook passes a stand-in "cache" whose ``update`` puts the
  layer's prefix in front instead, and extends the 4-d attention mask (additive float mask for
  eager attention, boolean for SDPA, None = attend everywhere). A post-hook checks the stand-in was
  used, so a transformers release that stops routing keys through the cache fails loudly.
* DeBERTa-v2/v3 (``DisentangledSelfAttention``): its forward has no cache path and adds
  relative-position terms; slopeft replaces the forward of each instance with the same computation
  plus the prefix. Prefix keys have no position, so they get content-to-content scores only (their
  relative-position bias columns are zero), as in the P-tuning v2 reference code for DeBERTa.

Layout of the prefix (as PEFT's ``prompt_embeddings`` for prefix tuning): a tensor
``(num_virtual_tokens, num_layers * 2 * num_heads * head_dim)``; column block ``2·l`` holds layer
``l``'s keys and ``2·l + 1`` its values.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from slopeft.errors import ConfigError

MODULE_NAME = "deep_prompt"
"""Attribute of the adapted model that holds the :class:`DeepPrompt` (so its parameters are ``deep_prompt.*``)."""


class DeepPrompt(nn.Module):
    """Key/value prefixes for every layer, directly or through Li & Liang's MLP re-parameterisation.

    Args:
        num_layers: attention layers of the encoder.
        num_heads: attention heads per layer.
        head_dim: size of one head.
        num_virtual_tokens: prefix length.
        projection_hidden: width of the re-parameterisation MLP's hidden layer; 0 trains the
            prefix directly.
        embedding_dim: width of the smaller matrix the MLP reads (the model's hidden size).
        dropout: dropout on the prefix during training (P-tuning v2 uses the model's hidden dropout).
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        head_dim: int,
        num_virtual_tokens: int,
        projection_hidden: int = 0,
        embedding_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_layers, self.num_heads, self.head_dim = num_layers, num_heads, head_dim
        self.num_virtual_tokens = num_virtual_tokens
        width = num_layers * 2 * num_heads * head_dim
        self.dropout = nn.Dropout(dropout)
        if projection_hidden:
            # Li & Liang: P = MLP(P'), P' with one row per virtual token, the MLP shared by all rows.
            self.embedding = nn.Parameter(
                torch.randn(num_virtual_tokens, embedding_dim or num_heads * head_dim)
            )
            self.mlp = nn.Sequential(
                nn.Linear(self.embedding.shape[1], projection_hidden),
                nn.Tanh(),
                nn.Linear(projection_hidden, width),
            )
            self.prefix = None
        else:
            # N(0, 1), as P-tuning v2's and PEFT's prefix encoders (an nn.Embedding) initialise it.
            self.prefix = nn.Parameter(torch.randn(num_virtual_tokens, width))
        self._current: torch.Tensor | None = None

    def resolved(self) -> torch.Tensor:
        """The prefix tensor ``(num_virtual_tokens, layers * 2 * heads * head_dim)`` (no dropout)."""
        if self.prefix is not None:
            return self.prefix
        return self.mlp(self.embedding)

    def key_values(self) -> torch.Tensor:
        """Prefix keys and values of every layer: ``(layers, 2, heads, num_virtual_tokens, head_dim)``."""
        prefix = self.dropout(self.resolved())
        n = self.num_virtual_tokens
        return prefix.view(n, self.num_layers, 2, self.num_heads, self.head_dim).permute(1, 2, 3, 0, 4)

    # The encoder computes the prefix once per forward pass; each layer takes its slice.
    def begin(self) -> None:
        self._current = self.key_values()

    def end(self) -> None:
        self._current = None

    def layer(self, index: int, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``index``'s prefix keys and values, ``(batch, heads, num_virtual_tokens, head_dim)`` each."""
        current = self._current if self._current is not None else self.key_values()
        keys, values = current[index, 0], current[index, 1]
        shape = (batch, *keys.shape)
        return keys.to(dtype).unsqueeze(0).expand(shape), values.to(dtype).unsqueeze(0).expand(shape)


def key_value_projections(attention: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The key and value projections of a BERT-like or DeBERTa self-attention module."""
    for key, value in (("key", "value"), ("key_proj", "value_proj")):
        projections = getattr(attention, key, None), getattr(attention, value, None)
        if all(isinstance(projection, nn.Module) for projection in projections):
            return projections
    raise ConfigError(f"Deep prompts find no key/value projections in {type(attention).__name__}.")


def random_vocabulary_ids(model: nn.Module, n: int) -> torch.Tensor:
    """``n`` token ids drawn from ``model``'s vocabulary with torch's global generator (the run's seed)."""
    vocab = int(model.config.vocab_size)
    low = min(1000, vocab // 2)  # skip the low ids, where tokenizers keep their special and unused tokens
    return torch.randint(low, vocab, (n,))


@torch.no_grad()
def vocabulary_activations(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The prefix of Li & Liang's initialisation with "activations of real words": the keys and values
    every layer of the frozen ``model`` computes for the tokens ``ids`` (one sequence, no special
    tokens), laid out as :attr:`DeepPrompt.prefix` (one row per token). Call it before :func:`attach`.

    Why it exists: P-tuning v2's N(0, 1) keys and values are 2-3x the scale of an encoder's own values
    (e5-small-multilingual: value std 0.31-0.56 per layer) and draw up to two thirds of a layer's
    attention at the start, so the frozen model's outputs for different inputs become alike before
    training starts (``benchmarks/prefix_init.py`` measures it); activations of real tokens start the
    prefix inside the model's own distribution.
    """
    layers = encoder_layers(model)
    caught: dict[tuple[int, int], torch.Tensor] = {}
    handles = []
    for index, layer in enumerate(layers):
        for part, projection in enumerate(key_value_projections(layer.attention.self)):
            def catch(module: nn.Module, args: tuple, output: torch.Tensor, key: tuple[int, int] = (index, part)) -> None:
                caught[key] = output[0].float()

            handles.append(projection.register_forward_hook(catch))
    was_training = model.training
    model.eval()  # no dropout in the activations
    device = next(model.parameters()).device
    ids = ids.view(1, -1).to(device)
    backbone = getattr(model, "base_model", model)  # the encoder alone: a multiple-choice head wants choices
    try:
        backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return torch.cat([caught[(index, part)] for index in range(len(layers)) for part in (0, 1)], dim=1)


def extend_mask(mask: Any, n: int) -> Any:
    """A 4-d attention mask with ``n`` leading key columns every query may attend to."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise ConfigError(
            f"Deep prompts need a tensor attention mask (eager or sdpa attention), not {type(mask).__name__}; "
            "load the model with attn_implementation='sdpa' or 'eager'."
        )
    shape = (*mask.shape[:-1], n)
    # Boolean (SDPA, DeBERTa): True attends. Float (eager): an additive bias, 0 attends.
    prefix = torch.ones(shape, dtype=mask.dtype, device=mask.device)
    if mask.is_floating_point():
        prefix = torch.zeros(shape, dtype=mask.dtype, device=mask.device)
    return torch.cat([prefix, mask], dim=-1)


class _PrefixCache:
    """Stands in for a transformers Cache: ``update`` returns the prefix followed by the tokens' keys/values."""

    def __init__(self, prompt: DeepPrompt, layer: int) -> None:
        self.prompt, self.layer, self.used = prompt, layer, False

    def update(self, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any):
        prefix_key, prefix_value = self.prompt.layer(self.layer, key.shape[0], key.dtype)
        self.used = True
        return torch.cat([prefix_key, key], dim=2), torch.cat([prefix_value, value], dim=2)


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer layers of an encoder model (BERT-family or DeBERTa), in order."""
    backbone = getattr(model, "base_model", model)
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(
            f"Deep prompts find no encoder.layer list in {type(model).__name__}; they support BERT, "
            "RoBERTa, CamemBERT/SloBERTa, XLM-R and DeBERTa-v2/v3 encoders."
        )
    return list(layers)


def attach(model: nn.Module, prompt: DeepPrompt) -> list[Any]:
    """Adds ``prompt`` to ``model`` (as ``model.deep_prompt``) and hooks it into every self-attention.

    Returns the hook handles (removing them, and the replaced DeBERTa forwards, detaches the prompt).
    """
    layers = encoder_layers(model)
    if len(layers) != prompt.num_layers:
        raise ConfigError(f"The deep prompt has {prompt.num_layers} layers, the encoder {len(layers)}.")
    setattr(model, MODULE_NAME, prompt)
    backbone = getattr(model, "base_model", model)
    handles = [
        backbone.encoder.register_forward_pre_hook(lambda *_: prompt.begin()),
        backbone.encoder.register_forward_hook(lambda *_: prompt.end()),
    ]
    for index, layer in enumerate(layers):
        attention = layer.attention.self
        kind = type(attention).__name__
        if kind == "DisentangledSelfAttention":
            attention.forward = types.MethodType(_deberta_forward(prompt, index), attention)
        elif kind.endswith("SelfAttention") and hasattr(attention, "key") and hasattr(attention, "value"):
            handles += _hook_bert_like(attention, prompt, index)
        else:
            raise ConfigError(
                f"Deep prompts do not know the attention module {kind}; they support BERT, RoBERTa, "
                "CamemBERT/SloBERTa, XLM-R and DeBERTa-v2/v3 encoders."
            )
    return handles


def attention_shape(model: nn.Module) -> tuple[int, int, int]:
    """(layers, heads, head_dim) of an encoder's self-attention."""
    layers = encoder_layers(model)
    attention = layers[0].attention.self
    return len(layers), attention.num_attention_heads, attention.attention_head_size


def _hook_bert_like(attention: nn.Module, prompt: DeepPrompt, index: int) -> list[Any]:
    import inspect

    if "cache" not in inspect.signature(attention.forward).parameters:
        raise ConfigError(
            f"{type(attention).__name__}.forward takes no `cache` argument in this transformers version; "
            "slopeft's deep prompts route the prefix through it (written for transformers 5.x)."
        )
    state: dict[str, _PrefixCache] = {}

    def before(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if kwargs.get("cache") is not None:
            raise ConfigError("Deep prompts cannot be combined with a key/value cache (encoders have none).")
        args = list(args)
        if len(args) > 1:  # attention_mask given positionally
            args[1] = extend_mask(args[1], prompt.num_virtual_tokens)
        else:
            kwargs["attention_mask"] = extend_mask(kwargs.get("attention_mask"), prompt.num_virtual_tokens)
        state["cache"] = kwargs["cache"] = _PrefixCache(prompt, index)
        return tuple(args), kwargs

    def after(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        cache = state.pop("cache", None)
        if cache is None or not cache.used:
            raise RuntimeError(
                f"{type(module).__name__} did not pass its keys through `cache.update`; this transformers "
                "version changed the attention code slopeft's deep prompts rely on."
            )

    return [
        attention.register_forward_pre_hook(before, with_kwargs=True),
        attention.register_forward_hook(after, with_kwargs=True),
    ]


def _deberta_forward(prompt: DeepPrompt, index: int):
    """DeBERTa-v2's ``DisentangledSelfAttention.forward`` (transformers 5) with the layer's prefix."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import scaled_size_sqrt

    def forward(
        self,
        hidden_states,
        attention_mask,
        output_attentions=False,
        query_states=None,
        relative_pos=None,
        rel_embeddings=None,
    ):
        heads = self.num_attention_heads
        if query_states is None:
            query_states = hidden_states
        query_layer = self.transpose_for_scores(self.query_proj(query_states), heads)
        key_layer = self.transpose_for_scores(self.key_proj(hidden_states), heads)
        value_layer = self.transpose_for_scores(self.value_proj(hidden_states), heads)

        rel_att = None
        scale_factor = 1
        if "c2p" in self.pos_att_type:
            scale_factor += 1
        if "p2c" in self.pos_att_type:
            scale_factor += 1
        scale = scaled_size_sqrt(query_layer, scale_factor)
        attention_scores = torch.bmm(
            query_layer, key_layer.transpose(-1, -2) / scale.to(dtype=query_layer.dtype)
        )
        if self.relative_attention:
            rel_embeddings = self.pos_dropout(rel_embeddings)
            rel_att = self.disentangled_attention_bias(
                query_layer, key_layer, relative_pos, rel_embeddings, scale_factor
            )
        if rel_att is not None:
            attention_scores = attention_scores + rel_att

        # The prefix: content-to-content scores only (prefix keys have no position).
        batch = hidden_states.shape[0]
        prefix_key, prefix_value = prompt.layer(index, batch, key_layer.dtype)
        n = prefix_key.shape[2]
        prefix_key = prefix_key.reshape(batch * heads, n, prefix_key.shape[-1])
        prefix_value = prefix_value.reshape(batch * heads, n, prefix_value.shape[-1])
        prefix_scores = torch.bmm(
            query_layer, prefix_key.transpose(-1, -2) / scale.to(dtype=query_layer.dtype)
        )
        attention_scores = torch.cat([prefix_scores, attention_scores], dim=-1)
        value_layer = torch.cat([prefix_value, value_layer], dim=1)

        attention_scores = attention_scores.view(
            -1, heads, attention_scores.size(-2), attention_scores.size(-1)
        )
        attention_mask = extend_mask(attention_mask.bool(), n)
        attention_scores = attention_scores.masked_fill(~attention_mask, torch.finfo(query_layer.dtype).min)
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        attention_probs = self.dropout(attention_probs)
        context_layer = torch.bmm(
            attention_probs.view(-1, attention_probs.size(-2), attention_probs.size(-1)), value_layer
        )
        context_layer = (
            context_layer.view(-1, heads, context_layer.size(-2), context_layer.size(-1))
            .permute(0, 2, 1, 3)
            .contiguous()
        )
        context_layer = context_layer.view(context_layer.size()[:-2] + (-1,))
        if not output_attentions:
            return (context_layer, None)
        return (context_layer, attention_probs)

    return forward
