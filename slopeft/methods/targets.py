"""Per-architecture module names: which Linear layers are queries, values, MLP layers ...

PEFT's own default table has no entry for SloBERTa's ``camembert`` (see offline-models.md)
and none for several others, so slopeft ships its own, keyed by transformers ``model_type``.
Names are module-name suffixes as PEFT's ``target_modules`` matches them.
"""

from __future__ import annotations

from slopeft.errors import ConfigError

_BERT_LIKE = {
    "query": ["query"],
    "key": ["key"],
    "value": ["value"],
    "attention_output": ["attention.output.dense"],
    "ffn_in": ["intermediate.dense"],
    "ffn_out": ["output.dense"],  # also matches attention.output.dense; see ffn_out_regex
}
_DEBERTA = {
    "query": ["query_proj"],
    "key": ["key_proj"],
    "value": ["value_proj"],
    "attention_output": ["attention.output.dense"],
    "ffn_in": ["intermediate.dense"],
    "ffn_out": ["output.dense"],
}
_DECODER = {  # Gemma, Llama, Mistral, Qwen
    "query": ["q_proj"],
    "key": ["k_proj"],
    "value": ["v_proj"],
    "attention_output": ["o_proj"],
    "ffn_in": ["gate_proj", "up_proj"],
    "ffn_out": ["down_proj"],
}
_OPT = {
    "query": ["q_proj"],
    "key": ["k_proj"],
    "value": ["v_proj"],
    "attention_output": ["out_proj"],
    "ffn_in": ["fc1"],
    "ffn_out": ["fc2"],
}
_T5 = {
    "query": ["q"],
    "key": ["k"],
    "value": ["v"],
    "attention_output": ["o"],
    "ffn_in": ["wi", "wi_0", "wi_1"],
    "ffn_out": ["wo"],
}

ARCHITECTURE_MODULES: dict[str, dict[str, list[str]]] = {
    "bert": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "deberta-v2": _DEBERTA,
    "gemma": _DECODER,
    "gemma2": _DECODER,
    "gemma3": _DECODER,
    "gemma3_text": _DECODER,
    "llama": _DECODER,
    "mistral": _DECODER,
    "qwen2": _DECODER,
    "opt": _OPT,
    "marian": _OPT,
    "m2m_100": _OPT,
    "nllb-moe": _OPT,
    "t5": _T5,
    "mt5": _T5,
}

# The layer whose *bias* the BitFit subset trains besides the query bias: the MLP's first layer.
ROLES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")


def modules_for(architecture: str, *roles: str) -> list[str]:
    """Module-name suffixes of ``roles`` in ``architecture`` (e.g. bert, query+value → [query, value])."""
    if architecture not in ARCHITECTURE_MODULES:
        raise ConfigError(
            f"slopeft has no module table for architecture {architecture!r}; pass target modules explicitly "
            f"(e.g. --set lora.target_modules=[q_proj,v_proj]). Known: {', '.join(sorted(ARCHITECTURE_MODULES))}."
        )
    table = ARCHITECTURE_MODULES[architecture]
    return [name for role in roles for name in table[role]]


def role_regex(architecture: str, *roles: str) -> str:
    """A regex matching exactly the modules of ``roles`` (PEFT accepts a regex string as target_modules).

    Suffix lists are ambiguous in BERT naming (``output.dense`` is both the attention output and the
    FFN output); the regex anchors the FFN output as ``layer.N.output.dense``.
    """
    names = modules_for(architecture, *roles)
    parts = []
    for name in names:
        if (
            ARCHITECTURE_MODULES[architecture] in (_BERT_LIKE, _DEBERTA)
            and name == "output.dense"
            and "ffn_out" in roles
        ):
            parts.append(r".*layer\.\d+\.output\.dense")
        else:
            parts.append(rf".*\.{name.replace('.', chr(92) + '.')}")
    return "^(" + "|".join(parts) + ")$"
