"""Downloading a dataset into the user cache, verified and laid out as slopeft reads it.

This is the last step of data resolution (``--data-dir``, ``$SLOPEFT_DATA``, ``cache_dir()/data``,
then a download). :func:`ensure_dataset` fetches every file of one registered dataset
(:mod:`slopeft.data.catalogue`) from its official source, verifies it, converts it into the local
layout inside a temporary folder of the cache, writes a ``.complete`` marker and only then renames
the folder into place, so an interrupted download never leaves a dataset that looks complete.

Checksums: where a sha256 is published (FLORES-200) it is pinned in the dataset's sources and every
download must match it. No source of the other files publishes one, so they are verified by
trust on first use: the sha256 of the first successful download is stored in
``<cache_root>/manifest.json`` and every later download of the same URL must match it. A mismatch
is a :class:`~slopeft.errors.DataError` and installs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from slopeft import __version__
from slopeft.data.catalogue import DATASETS, Source
from slopeft.errors import DataError

try:  # POSIX only; elsewhere concurrent downloads are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

TIMEOUT_S = 15.0  # connect and per-read timeout: a dead host fails fast, a slow one still streams
_CHUNK = 1 << 16
COMPLETE_MARKER = ".complete"
MANIFEST = "manifest.json"


def is_complete(name: str, cache_root: Path) -> bool:
    """Whether ``cache_root`` holds a fully installed download of dataset ``name``."""
    return (Path(cache_root) / name / COMPLETE_MARKER).is_file()


def ensure_dataset(name: str, cache_root: Path, *, progress: bool = True) -> Path:
    """Makes sure dataset ``name`` is in ``cache_root``, downloading it if needed.

    Downloads every file of the dataset's sources (streamed to a temporary file, with a progress bar),
    verifies its sha256 (published, or trust on first use via ``<cache_root>/manifest.json``),
    converts it into the local layout inside ``<cache_root>/.partial-<name>-*`` and renames the
    result to ``<cache_root>/<name>`` with a ``.complete`` marker. A failure or a kill at any point
    leaves no ``<cache_root>/<name>`` behind (leftover ``.partial-*`` folders are removed by the
    next call).

    Args:
        name: a registered dataset (:data:`~slopeft.data.catalogue.DATASETS`).
        cache_root: the data cache, normally ``cache_dir() / "data"``.
        progress: show a progress bar per file on stderr.

    Returns:
        ``cache_root``, the data root that now holds the dataset.

    Raises:
        DataError: unknown name, a download failed, a checksum did not match, or the
            distribution did not hold the expected files.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; slopeft can download: {', '.join(DATASETS)}.")
    dataset = DATASETS[name]
    cache_root = Path(cache_root)
    if is_complete(name, cache_root):
        return cache_root
    cache_root.mkdir(parents=True, exist_ok=True)
    with _lock(cache_root):
        if is_complete(name, cache_root):  # another process finished it while we waited
            return cache_root
        for stale in cache_root.glob(f".partial-{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if (cache_root / name).exists():  # an incomplete leftover: never let it pass for data
            shutil.rmtree(cache_root / name)
        work = Path(tempfile.mkdtemp(prefix=f".partial-{name}-", dir=cache_root))
        try:
            manifest = _read_manifest(cache_root)
            files: dict[str, Path] = {}
            digests: dict[str, str] = {}
            for src in dataset.sources:
                path = work / "downloads" / src.key
                path.parent.mkdir(parents=True, exist_ok=True)
                digests[src.url] = _fetch(name, src, path, progress)
                _verify(src, digests[src.url], manifest, cache_root)
                files[src.key] = path
            out = work / name
            out.mkdir()
            dataset.convert(files, out)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            marker = {"completed": stamp, "slopeft": __version__, "sha256": digests}
            (out / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            os.replace(out, cache_root / name)  # one rename: the dataset appears whole or not at all
            for url, digest in digests.items():  # trust on first use: pin what just worked
                manifest["files"].setdefault(url, {"sha256": digest, "first_seen": stamp})
            _write_manifest(cache_root, manifest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return cache_root


# --------------------------------------------------------------------------- downloading


def _network_error(name: str, url: str, reason: object) -> DataError:
    return DataError(
        f"Downloading the {name} dataset failed: could not fetch {url} ({reason}). Nothing was "
        f"installed. slopeft reads this dataset from a folder laid out as:\n{DATASETS[name].layout}\n"
        "If this machine cannot reach the source, copy the files there from elsewhere and point "
        "slopeft at them with `export SLOPEFT_DATA=/path/to/data` or `--data-dir /path/to/data`; "
        "otherwise check the connection and run the command again."
    )


def _fetch(name: str, src: Source, dest: Path, progress: bool) -> str:
    """Streams ``src.url`` into ``dest`` and returns its sha256."""
    request = urllib.request.Request(src.url, headers={"User-Agent": f"slopeft/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise _network_error(name, src.url, f"HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as err:  # URLError, timeouts, bad URL
        raise _network_error(name, src.url, getattr(err, "reason", None) or err) from None
    digest, received = hashlib.sha256(), 0
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    with response, dest.open("wb") as out, _progress_bar(progress, src, total) as advance:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise _network_error(name, src.url, err) from None
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            advance(len(chunk))
    if total is not None and received < total:
        raise _network_error(name, src.url, f"connection closed after {received} of {total} bytes")
    return digest.hexdigest()


@contextlib.contextmanager
def _progress_bar(enabled: bool, src: Source, total: int | None) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{src.key} ({src.url.split('/')[2]})", total=total)
        yield lambda n: bar.update(task, advance=n)


def _verify(src: Source, digest: str, manifest: dict, cache_root: Path) -> None:
    """Checks ``digest`` against the published sha256, else against the one recorded at first use."""
    recorded = manifest["files"].get(src.url, {}).get("sha256")
    expected, kind = (src.sha256, "published") if src.sha256 else (recorded, "first-use")
    if expected is None or digest == expected:
        return
    remedy = (
        "Retry; if it persists, the upstream file has changed."
        if src.sha256
        else f"Retry; if the upstream file changed on purpose, delete its entry from {cache_root / MANIFEST} "
        "to trust the new version."
    )
    raise DataError(
        f"{src.url} does not match its {kind} checksum (expected sha256 {expected}, got {digest}), "
        f"so it was discarded and nothing was installed. The download may be truncated, altered on the "
        f"way, or the file was replaced upstream. {remedy} Alternatively point `SLOPEFT_DATA` or "
        "`--data-dir` at a copy you trust."
    )


# --------------------------------------------------------------------------- cache bookkeeping


@contextlib.contextmanager
def _lock(cache_root: Path) -> Iterator[None]:
    """Serialises downloads into one cache across processes (so stale .partial folders are safe to remove)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with (cache_root / ".download.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(cache_root: Path) -> dict:
    path = cache_root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(
            f"{path} is unreadable ({err}). It records the checksums of earlier downloads; delete it "
            "to start over (the next downloads are then trusted on first use again)."
        ) from None
    manifest.setdefault("files", {})
    return manifest


def _write_manifest(cache_root: Path, manifest: dict) -> None:
    tmp = cache_root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, cache_root / MANIFEST)
