"""Tiny randomly initialised models with real tokenizers, for tests.

:func:`make_tiny_model` writes a folder exactly like a real checkpoint (config.json, model.safetensors,
tokenizer files) so tests load it through the same ``from_pretrained`` path as real models. The
tokenizer is trained with the ``tokenizers`` library on local Slovene and English text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slopeft.models.catalogue import pin_fast_tokenizer
from slopeft.registry import Registry

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

VOCAB_SIZE = 1000
HIDDEN = 64
MAX_LEN = 128

#: Used when ``$SLOPEFT_DATA/mt/ntrex128`` is not available.
BUILTIN_TEXTS = [
    "Ljubljana je glavno mesto Slovenije.",
    "Danes je lepo vreme, zato gremo na izlet v hribe.",
    "Kje je najbližja lekarna?",
    "Moj brat študira računalništvo na univerzi v Mariboru.",
    "Vlak za Koper odpelje ob osmih zjutraj.",
    "Včeraj smo si ogledali razstavo v Narodni galeriji.",
    "Otroci se igrajo na igrišču za šolo.",
    "Ali lahko prosim ponovite vprašanje?",
    "Triglav je najvišja gora v Sloveniji.",
    "Kosilo bo pripravljeno čez pol ure.",
    "Ta knjiga je bila prevedena v več kot dvajset jezikov.",
    "Reka Sava teče skozi Ljubljano in Zagreb.",
    "Žal mi je, ampak danes nimam časa.",
    "Čebelarstvo ima v Sloveniji dolgo tradicijo.",
    "Šolsko leto se začne prvega septembra.",
    "Ljubljana is the capital of Slovenia.",
    "The weather is nice today, so we are going hiking.",
    "Where is the nearest pharmacy?",
    "My brother studies computer science at the University of Maribor.",
    "The train to Koper leaves at eight in the morning.",
    "Yesterday we visited an exhibition in the National Gallery.",
    "The children are playing in the playground behind the school.",
    "Could you please repeat the question?",
    "Triglav is the highest mountain in Slovenia.",
    "Lunch will be ready in half an hour.",
    "This book has been translated into more than twenty languages.",
    "The Sava river flows through Ljubljana and Zagreb.",
    "I am sorry, but I have no time today.",
    "Beekeeping has a long tradition in Slovenia.",
    "The school year starts on the first of September.",
]
# Always in the vocabulary, so Slovene text never falls back to <unk> for a letter the corpus lacks.
ALPHABET = sorted(set("abcdefghijklmnopqrstuvwxyzčćđšžABCDEFGHIJKLMNOPQRSTUVWXYZČĆĐŠŽ0123456789.,;:!?'\"()-"))


def default_texts(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Lines of ``<data_dir>/mt/ntrex128/{sl,en}.txt`` (``data_dir`` defaults to ``$SLOPEFT_DATA``) when
    present, else :data:`BUILTIN_TEXTS`."""
    root = data_dir or os.environ.get("SLOPEFT_DATA")
    if root:
        files = [Path(root) / "mt" / "ntrex128" / f"{lang}.txt" for lang in ("sl", "en")]
        if all(f.is_file() for f in files):
            lines = [ln.strip() for f in files for ln in f.read_text(encoding="utf-8").splitlines()]
            return [ln for ln in lines if ln]
    return list(BUILTIN_TEXTS)


@dataclass(frozen=True)
class _Specials:
    """Special tokens in id order, and which role each plays."""

    tokens: tuple[str, ...]
    roles: dict[str, str]  # transformers attribute ("pad_token", ...) -> token


def _train(kind: str, texts: Sequence[str], specials: _Specials, prepend: str = "always") -> Tokenizer:
    """Train a WordPiece (``kind="wordpiece"``) or SentencePiece-style BPE (``"bpe"``) tokenizer.

    Both come from the BPE trainer, the only ``tokenizers`` trainer that gives the same vocabulary on
    every run (the WordPiece and Unigram trainers, and BPE with a continuation prefix, break ties in
    hash-map order). The WordPiece vocabulary is the BPE one plus a ``##`` copy of every piece.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    unk = specials.roles["unk_token"]
    wordpiece = kind == "wordpiece"
    tok = Tokenizer(models.BPE(unk_token=unk))
    if wordpiece:
        # Cased and accent-preserving: č/š/ž carry meaning in Slovene.
        tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
    else:
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE // 2 if wordpiece else VOCAB_SIZE, special_tokens=list(specials.tokens),
        initial_alphabet=ALPHABET, show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Ids come out of a hash map; renumber canonically (specials first, then sorted) so that the same
    # text always gives the same files. Neither model depends on the id order.
    data = json.loads(tok.to_str())
    pieces = [t for t in data["model"]["vocab"] if t not in specials.tokens]
    if wordpiece:
        pieces += ["##" + t for t in pieces]
    vocab = {t: i for i, t in enumerate([*specials.tokens, *sorted(pieces)])}
    assert all(a["id"] == vocab[a["content"]] for a in data["added_tokens"])
    if wordpiece:
        data["model"] = {
            "type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab,
        }
    else:
        data["model"]["vocab"] = vocab
    return Tokenizer.from_str(json.dumps(data))


def _template(tok: Tokenizer, single: str, pair: str) -> None:
    from tokenizers import processors

    names = {t.split(":")[0] for t in f"{single} {pair}".split() if not t.startswith("$")}
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(n, tok.token_to_id(n)) for n in sorted(names)]
    )


def _wrap(
    tok: Tokenizer, specials: _Specials, model_max_length: int = MAX_LEN, **kwargs: Any
) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    # model_max_length: the model's position limit, as real checkpoints' tokenizers state it.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model_max_length, **specials.roles, **kwargs
    )


Builder = Callable[[Sequence[str]], tuple["PreTrainedTokenizerFast", "PreTrainedModel"]]
#: Architecture name -> function building (tokenizer, randomly initialised model) from training text.
TINY_ARCHS: Registry[Builder] = Registry("tiny model architecture")


def _ids(tok: PreTrainedTokenizerFast) -> dict[str, int]:
    return {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}


def _bert(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    from transformers import BertConfig, BertModel

    sp = _Specials(
        ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
        {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
         "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"},
    )
    tok = _train("wordpiece", texts, sp)
    _template(tok, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
    fast = _wrap(tok, sp)
    config = BertConfig(
        vocab_size=len(fast), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_LEN, type_vocab_size=2, **_ids(fast),
    )
    return fast, BertModel(config)


def _roberta_like(model_type: str) -> Builder:
    def build(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
        from transformers import AutoConfig, AutoModel

        # XLM-R's layout of the first ids (pad=1 matters: RoBERTa positions start after padding_idx).
        sp = _Specials(
            ("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
            {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
             "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"},
        )
        tok = _train("bpe", texts, sp)
        _template(tok, "<s> $A </s>", "<s> $A </s> </s> $B </s>")
        fast = _wrap(tok, sp)
        config = AutoConfig.for_model(
            model_type, vocab_size=len(fast), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_LEN + 2, type_vocab_size=1, **_ids(fast),
        )
        return fast, AutoModel.from_config(config)

    return build


def _gemma(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    # Gemma's special-token ids; like Gemma, no dummy space before the first word and <bos> only.
    sp = _Specials(
        ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"),
        {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>",
         "mask_token": "<mask>"},
    )
    tok = _train("bpe", texts, sp, prepend="never")
    _template(tok, "<bos> $A", "<bos> $A <bos>:1 $B:1")
    # As Gemma's tokenizer: batched generation pads on the left.
    fast = _wrap(tok, sp, model_max_length=2 * MAX_LEN, padding_side="left")
    config = Gemma3TextConfig(
        vocab_size=len(fast), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
        max_position_embeddings=2 * MAX_LEN, sliding_window=32, layer_types=["sliding_attention", "full_attention"],
        tie_word_embeddings=True, **_ids(fast),
    )
    return fast, Gemma3ForCausalLM(config)


def _opt(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    from transformers import OPTConfig, OPTForCausalLM

    # A causal LM with biases in every linear layer and LayerNorm (Gemma has none), so that BitFit
    # and a translation LoRA can share one decoder base.
    sp = _Specials(
        ("<pad>", "</s>", "<s>", "<unk>"),
        {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"},
    )
    tok = _train("bpe", texts, sp, prepend="never")
    _template(tok, "<s> $A", "<s> $A <s>:1 $B:1")
    # Room for a translation prompt besides the 128 tokens a translation may generate.
    fast = _wrap(tok, sp, model_max_length=2 * MAX_LEN, padding_side="left")
    config = OPTConfig(
        vocab_size=len(fast), hidden_size=HIDDEN, word_embed_proj_dim=HIDDEN, ffn_dim=2 * HIDDEN,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=2 * MAX_LEN, **_ids(fast),
    )
    return fast, OPTForCausalLM(config)


def _marian(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    from transformers import MarianConfig, MarianMTModel

    sp = _Specials(("</s>", "<unk>", "<pad>"), {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    tok = _train("bpe", texts, sp)
    _template(tok, "$A </s>", "$A </s> $B </s>")
    fast = _wrap(tok, sp)
    ids = _ids(fast) | {"bos_token_id": None}
    # Like the opus-mt checkpoints: decoding starts from <pad>, and there is no <s>.
    config = MarianConfig(
        vocab_size=len(fast), decoder_vocab_size=len(fast), d_model=HIDDEN, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * HIDDEN,
        decoder_ffn_dim=2 * HIDDEN, max_position_embeddings=MAX_LEN, decoder_start_token_id=fast.pad_token_id,
        forced_eos_token_id=fast.eos_token_id, share_encoder_decoder_embeddings=True, **ids,
    )
    return fast, MarianMTModel(config)


def _t5(texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    from transformers import T5Config, T5ForConditionalGeneration

    sp = _Specials(("<pad>", "</s>", "<unk>"), {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    tok = _train("bpe", texts, sp)
    _template(tok, "$A </s>", "$A </s> $B </s>")
    fast = _wrap(tok, sp)
    config = T5Config(
        vocab_size=len(fast), d_model=HIDDEN, d_kv=16, d_ff=2 * HIDDEN, num_layers=2, num_decoder_layers=2,
        num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=MAX_LEN,
        decoder_start_token_id=fast.pad_token_id, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
    )
    return fast, T5ForConditionalGeneration(config)


for _name, _build in [
    ("bert", _bert), ("camembert", _roberta_like("camembert")), ("xlm-roberta", _roberta_like("xlm-roberta")),
    ("gemma", _gemma), ("opt", _opt), ("marian", _marian), ("t5", _t5),
]:
    TINY_ARCHS.add(_name, _build)


def make_tiny_model(
    arch: str, out_dir: str | os.PathLike[str], texts: Sequence[str] | None = None, seed: int = 0
) -> Path:
    """Write a tiny randomly initialised model and its trained tokenizer to ``out_dir``.

    Encoders (bert, camembert, xlm-roberta) are saved as the bare ``AutoModel`` (heads come later);
    gemma as ``Gemma3ForCausalLM``; opt as ``OPTForCausalLM``; marian as ``MarianMTModel``; t5 as ``T5ForConditionalGeneration``.
    Every model has hidden size 64, 2 layers and a vocabulary of at most 1000 tokens (< 1M parameters).

    Args:
        arch: ``bert``, ``camembert``, ``xlm-roberta``, ``gemma``, ``opt``, ``marian`` or ``t5``.
        out_dir: the folder to write (created; existing files are overwritten).
        texts: text to train the tokenizer on (default: :func:`default_texts`).
        seed: seed of the weight initialisation; the same arguments give the same files.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ConfigError: an unknown ``arch`` (the message lists the known ones).
    """
    import torch

    build = TINY_ARCHS.get(arch)
    corpus = list(texts) if texts is not None else default_texts()
    torch.manual_seed(seed)
    tokenizer, model = build(corpus)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    pin_fast_tokenizer(out)
    return out
