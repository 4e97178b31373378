"""Where a model comes from: a local folder, a shipped alias (:mod:`slopeft.models.catalogue`), or a
Hugging Face Hub id.

:func:`resolve_model` only looks at the name and the disk; it never touches the network.
:func:`model_path` turns a :class:`ModelSource` into a local folder that transformers'
``from_pretrained`` loads: Hub models are downloaded (short timeouts, clear errors when the
Hub cannot be reached), pip-installable models are prepared once into the slopeft cache.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slopeft.errors import ConfigError, SlopeftError
from slopeft.models.catalogue import MODELS, PREPARED_MARKER, Family, family_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SourceKind = Literal["local", "hub", "pip"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model name.

    Attributes:
        name: what the user passed.
        kind: ``"local"`` (a folder), ``"hub"`` (downloaded on first use) or ``"pip"`` (prepared once
            from a pip package into the slopeft cache).
        alias: the alias from the shipped table, or None.
        hub_id: the Hub id to download (hub), or the id the model was built from (pip); None for folders.
        path: the local folder (local), or the folder a pip model is prepared into (pip).
        architecture: transformers ``model_type`` when known before downloading.
        family: ``"encoder"``, ``"causal"`` or ``"seq2seq"`` when known.
        offline: True for models that come from pip packages (prepared or still to prepare).
        input_prefix: text the model expects in front of every input.
        package: pip distribution carrying the weights (pip models only).
    """

    name: str
    kind: SourceKind
    alias: str | None = None
    hub_id: str | None = None
    path: Path | None = None
    architecture: str | None = None
    family: Family | None = None
    offline: bool = False
    input_prefix: str = ""
    package: str | None = None


def _from_directory(name: str, path: Path) -> ModelSource:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"{path} is a directory but has no config.json, so it is not a transformers model folder. "
            "Point --model at the folder that holds config.json (and the weights and tokenizer files), "
            "e.g. one written by save_pretrained or downloaded with `huggingface-cli download`."
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"Could not read {config_file}: {e}. Is the model folder complete?") from None
    meta: dict[str, Any] = {}
    if (path / PREPARED_MARKER).is_file():
        meta = json.loads((path / PREPARED_MARKER).read_text(encoding="utf-8"))
    return ModelSource(
        name=name,
        kind="local",
        alias=meta.get("alias"),
        hub_id=meta.get("hub_id"),
        path=path.resolve(),
        architecture=config.get("model_type"),
        family=family_of(config),
        offline=bool(meta),
        input_prefix=meta.get("input_prefix", ""),
        package=meta.get("package"),
    )


def resolve_model(name_or_path: str | os.PathLike[str]) -> ModelSource:
    """Resolve a model name without touching the network.

    Order: an existing directory; an alias from :data:`MODELS`; a Hub id of the form ``org/name``.

    Args:
        name_or_path: a local model folder, an alias (``slopeft models list``) or a Hub id.

    Returns:
        The resolved :class:`ModelSource`.

    Raises:
        ConfigError: a directory without config.json, a path that does not exist, or an unknown alias
            (the message lists the closest aliases).
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_directory(name, path)
    if name in MODELS:
        info = MODELS.get(name)
        if info.source == "pip":
            from slopeft.models.offline import prepared_dir

            return ModelSource(
                name=name, kind="pip", alias=name, hub_id=info.hub_id, path=prepared_dir(name),
                architecture=info.architecture, family=info.family, offline=True,
                input_prefix=info.input_prefix, package=info.package,
            )
        return ModelSource(
            name=name, kind="hub", alias=name, hub_id=info.hub_id, architecture=info.architecture,
            family=info.family, input_prefix=info.input_prefix,
        )
    if path.exists():
        raise ConfigError(f"{name} is a file; --model needs a model folder (with config.json), an alias or a Hub id.")
    if _HUB_ID.match(name):
        return ModelSource(name=name, kind="hub", hub_id=name)
    if os.sep in name or name.startswith((".", "~")):
        raise ConfigError(f"The model folder {name} does not exist.")
    raise ConfigError(
        MODELS.unknown_message(name)
        + " Alternatively pass a local model folder or a Hugging Face Hub id (org/name)."
    )


def _as_source(source: ModelSource | str | os.PathLike[str]) -> ModelSource:
    return source if isinstance(source, ModelSource) else resolve_model(source)


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False


def _hub_timeout() -> float:
    # Short by default so an unreachable Hub fails in seconds, not minutes; the user's setting wins.
    return float(os.environ.get("HF_HUB_ETAG_TIMEOUT", "10"))


def _unreachable(hub_id: str, reason: str) -> SlopeftError:
    return SlopeftError(
        f"Could not reach the Hugging Face Hub to download {hub_id!r} ({reason}), and no local copy is "
        "cached. Either run with network access once, or copy the model onto this machine: on a "
        f"connected machine run `huggingface-cli download {hub_id} --local-dir {hub_id.split('/')[-1]}` "
        "(`hf download` in newer huggingface_hub), move that folder here and pass it with "
        "--model /path/to/dir. Models that install through pip work without the Hub: see `slopeft models list`."
    )


# Weight formats of other frameworks that transformers never reads for PyTorch.
_IGNORE = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "onnx/*", "*.tflite", "openvino/*", "coreml/*", "*.gguf"]


def _download(hub_id: str) -> str:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    def cached() -> str:
        try:
            return snapshot_download(hub_id, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any failure here means "no usable local copy"
            raise _unreachable(hub_id, "offline mode, HF_HUB_OFFLINE is set" if _hub_offline() else str(e)) from e

    if _hub_offline():
        return cached()
    timeout = _hub_timeout()
    try:
        files = [s.rfilename for s in HfApi().model_info(hub_id, timeout=timeout).siblings or []]
        ignore = list(_IGNORE)
        if any(f.endswith(".safetensors") for f in files):
            ignore += ["*.bin", "*.pt", "*.pth"]  # both formats present: fetch only the safe one
        return snapshot_download(hub_id, ignore_patterns=ignore, etag_timeout=timeout)
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as e:
        raise ConfigError(
            f"{hub_id!r} is not a model on the Hugging Face Hub, or it is private or gated ({type(e).__name__}). "
            "Check the spelling, log in with `huggingface-cli login` for gated models, or pass a local folder."
        ) from None
    except Exception as e:  # noqa: BLE001 - connection, DNS, timeout and HTTP errors all come here
        try:
            return cached()
        except SlopeftError:
            raise _unreachable(hub_id, f"{type(e).__name__}: {e}".splitlines()[0]) from e


def model_path(source: ModelSource | str | os.PathLike[str], *, prepare: bool = True) -> str:
    """The local folder to pass to transformers' ``from_pretrained``.

    Args:
        source: a :class:`ModelSource` or anything :func:`resolve_model` accepts.
        prepare: prepare a pip-installable model on first use (else fail if it is not prepared).

    Raises:
        SlopeftError: the Hub cannot be reached, a pip package is missing, or a model is not prepared.
    """
    src = _as_source(source)
    if src.kind == "local":
        assert src.path is not None
        return str(src.path)
    if src.kind == "pip":
        from slopeft.models.offline import is_prepared, prepare_model, prepared_dir

        assert src.alias is not None
        if is_prepared(src.alias):
            return str(prepared_dir(src.alias))
        if not prepare:
            raise SlopeftError(f"{src.alias} is not prepared yet; run `slopeft models prepare {src.alias}`.")
        return str(prepare_model(src.alias))
    assert src.hub_id is not None
    return _download(src.hub_id)


def cached_model_path(source: ModelSource | str | os.PathLike[str]) -> str | None:
    """The folder of ``source`` when it is on this machine already (a local folder, a prepared pip
    model, a Hub snapshot in the cache), else None. Never downloads, converts or raises: for
    questions such as ``grid status``'s pricing, which must not fetch gigabytes to count tokens."""
    try:
        src = _as_source(source)
    except SlopeftError:
        return None
    if src.kind == "local":
        return str(src.path) if src.path is not None and Path(src.path).is_dir() else None
    if src.kind == "pip":
        from slopeft.models.offline import is_prepared, prepared_dir

        return str(prepared_dir(src.alias)) if src.alias and is_prepared(src.alias) else None
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(src.hub_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "no local copy"
        return None


def load_tokenizer(source: ModelSource | str | os.PathLike[str], **kwargs: Any) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model through ``AutoTokenizer.from_pretrained(model_path(source))``.

    Args:
        source: a :class:`ModelSource` or anything :func:`resolve_model` accepts.
        **kwargs: passed on to ``AutoTokenizer.from_pretrained``.
    """
    from transformers import AutoTokenizer

    path = model_path(source)
    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise SlopeftError(f"Could not load a tokenizer from {path}: {e}") from e


#: Files a tokenizer is read from (one of these, or a pair such as vocab.json + merges.txt, is needed).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "spm.model",
    "tokenizer.model",
    "source.spm",
    "target.spm",
)
#: A tokenizer with fewer tokens than this share of the model's vocabulary does not belong to it.
MIN_TOKENIZER_SHARE = 0.5


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuses a tokenizer that does not fit the model's ``config.json``: token ids beyond the embedding
    (an index error mid-training), or far fewer tokens than the embedding has — what transformers builds
    from a folder without tokenizer files (5 special tokens: every word becomes [UNK])."""
    vocab_size = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        return
    size = len(tokenizer)
    highest = max(tokenizer.get_vocab().values(), default=-1)
    folder = Path(path)
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    found = f"it holds {', '.join(present)}" if present else "it holds no tokenizer files at all"
    if size < MIN_TOKENIZER_SHARE * vocab_size:
        raise ConfigError(
            f"The tokenizer of {path} has {size:,} tokens but the model's embedding has {vocab_size:,} (vocab_size "
            f"in config.json): the tokenizer files are missing or belong to another model ({found}; a tokenizer "
            f"needs e.g. {', '.join(TOKENIZER_FILES[:3])} or sentencepiece.bpe.model). Copy the tokenizer files of "
            "the same checkpoint into the folder (AutoTokenizer.from_pretrained(...).save_pretrained(folder))."
        )
    if highest >= vocab_size:
        raise ConfigError(
            f"The tokenizer of {path} has token ids up to {highest:,}, beyond the model's embedding of {vocab_size:,} "
            f"rows (vocab_size in config.json): those tokens would fail mid-training. Use the tokenizer saved with "
            "this checkpoint, or resize the model's embeddings to the tokenizer and save both."
        )

