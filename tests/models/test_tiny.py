"""Tiny test models: every architecture saves like a real checkpoint and loads through the Auto classes."""

from __future__ import annotations

import hashlib

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from slopeft.errors import ConfigError
from slopeft.models.tiny import BUILTIN_TEXTS, default_texts, make_tiny_model
from tests.models._helpers import SLOVENE_PAIR

AUTO = {
    "bert": (AutoModel, "BertModel"),
    "camembert": (AutoModel, "CamembertModel"),
    "xlm-roberta": (AutoModel, "XLMRobertaModel"),
    "gemma": (AutoModelForCausalLM, "Gemma3ForCausalLM"),
    "marian": (AutoModelForSeq2SeqLM, "MarianMTModel"),
    "t5": (AutoModelForSeq2SeqLM, "T5ForConditionalGeneration"),
}


@pytest.mark.parametrize("arch", list(AUTO))
def test_tiny_model_loads_encodes_a_padded_batch_and_runs(tiny_model_dir, arch):
    folder = tiny_model_dir(arch)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    auto, class_name = AUTO[arch]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = auto.from_pretrained(folder, use_safetensors=True).eval()
    assert type(model).__name__ == class_name
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert len(tokenizer) <= 1000 and model.config.vocab_size == len(tokenizer)
    for token in ("pad_token", "eos_token", "unk_token"):
        assert getattr(tokenizer, token) is not None, token
    if auto is AutoModel:
        assert None not in (tokenizer.cls_token, tokenizer.sep_token, tokenizer.mask_token)

    batch = tokenizer(SLOVENE_PAIR, padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(1)
    assert lengths[0] < lengths[1] == batch["input_ids"].shape[1]
    padded = batch["input_ids"][batch["attention_mask"] == 0]
    assert padded.numel() > 0 and (padded == tokenizer.pad_token_id).all()
    assert tokenizer.unk_token_id not in batch["input_ids"][batch["attention_mask"] == 1]

    with torch.no_grad():
        if arch in ("marian", "t5"):
            labels = tokenizer(text_target=SLOVENE_PAIR, padding=True, return_tensors="pt")["input_ids"]
            out = model(**batch, labels=labels)
            assert torch.isfinite(out.loss)
            assert model.config.decoder_start_token_id == tokenizer.pad_token_id
            generated = model.generate(**batch, max_new_tokens=4)
            assert generated.shape[0] == 2
        elif arch == "gemma":
            assert tokenizer.padding_side == "left" and batch["attention_mask"][0, -1] == 1
            out = model(**batch)
            assert out.logits.shape == (*batch["input_ids"].shape, len(tokenizer))
            generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
            assert generated.shape == (2, batch["input_ids"].shape[1] + 3)
        else:
            out = model(**batch)
            assert out.last_hidden_state.shape == (*batch["input_ids"].shape, model.config.hidden_size)


def _digest(folder) -> str:
    return hashlib.sha256(b"".join((folder / f).read_bytes() for f in ("model.safetensors", "tokenizer.json"))).hexdigest()


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_same_seed_same_files(tmp_path, arch):
    a = make_tiny_model(arch, tmp_path / "a", texts=BUILTIN_TEXTS, seed=3)
    b = make_tiny_model(arch, tmp_path / "b", texts=BUILTIN_TEXTS, seed=3)
    c = make_tiny_model(arch, tmp_path / "c", texts=BUILTIN_TEXTS, seed=4)
    assert _digest(a) == _digest(b) != _digest(c)


def test_default_texts_come_from_the_data_or_the_builtin_list(monkeypatch, tmp_path):
    assert default_texts() == BUILTIN_TEXTS  # the test environment unsets SLOPEFT_DATA
    mt = tmp_path / "mt" / "ntrex128"
    mt.mkdir(parents=True)
    (mt / "sl.txt").write_text("Dober dan.\n\nHvala.\n", encoding="utf-8")
    (mt / "en.txt").write_text("Good day.\nThanks.\n", encoding="utf-8")
    monkeypatch.setenv("SLOPEFT_DATA", str(tmp_path))
    assert default_texts() == ["Dober dan.", "Hvala.", "Good day.", "Thanks."]


def test_unknown_architecture_suggests_close_names(tmp_path):
    with pytest.raises(ConfigError, match="'gemma'"):
        make_tiny_model("gema", tmp_path)
