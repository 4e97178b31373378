"""Downloading the public datasets into the user cache, verified and laid out as slopeft reads them.

This is the last step of data resolution (``--data-dir``, ``$SLOPEFT_DATA``, ``cache_dir()/data``,
then a download). :func:`ensure_dataset` fetches every file of one dataset from its official
source (:data:`SOURCES`), verifies it, converts it into the local layout (:data:`LAYOUT`) inside a
temporary folder of the cache, writes a ``.complete`` marker and only then renames the folder into
place, so an interrupted download never leaves a dataset that looks complete.

Checksums: where a sha256 is published (FLORES-200) it is pinned in :data:`SOURCES` and every
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
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from slopeft import __version__
from slopeft.errors import DataError

try:  # POSIX only; elsewhere concurrent downloads are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

TASKS = ("BoolQ", "CB", "COPA", "MultiRC", "RTE", "WSC")
MT_TASKS = ("BoolQ", "CB", "COPA", "MultiRC", "RTE")  # the Google-MT part has no WSC
TIMEOUT_S = 15.0  # connect and per-read timeout: a dead host fails fast, a slow one still streams
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """One file of a dataset's official distribution.

    Attributes:
        key: the name the converter knows the file by.
        url: where it is downloaded from.
        sha256: the published checksum, or None for trust on first use.
        licence: the licence the file is distributed under.
        description: what the file holds and where it goes in the local layout.
        evidence: where the URL (and checksum) was seen referenced.
    """

    key: str
    url: str
    sha256: str | None
    licence: str
    description: str
    evidence: str


_SLOBENCH_QA = (
    # Pinned to the commit that added the zips (listed in clarinsi/slobench-eval-docker at
    # e3345f801a7d7c94b231a8d233384f22030eff4b, folder evaluation_scripts/eval_question_answering).
    "https://raw.githubusercontent.com/clarinsi/slobench-eval-docker/"
    "e3345f801a7d7c94b231a8d233384f22030eff4b/evaluation_scripts/eval_question_answering/"
)
_SLOBENCH_EVIDENCE = (
    "github.com/clarinsi/slobench-eval-docker evaluation_scripts/eval_question_answering (README.md "
    "runs the evaluator on qa_validation.zip; evaluate.py reads <Task>.jsonl from the unzipped folder)"
)
_NTREX = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/main/"
_NTREX_EVIDENCE = (
    "github.com/MicrosoftTranslator/NTREX README.md (data structure, CC BY-SA 4.0); the same raw "
    "main-branch URLs are used by e.g. the SEACrowd ntrex_128 loader"
)
_SI_NLI = "https://huggingface.co/datasets/cjvt/si_nli/resolve/refs%2Fconvert%2Fparquet/public/"
_SI_NLI_EVIDENCE = (
    "huggingface.co/datasets/cjvt/si_nli tree refs/convert/parquet (commit 6f28095 moved "
    "public/si_nli-<split>.parquet to public/<split>/0000.parquet); dataset card cites "
    "http://hdl.handle.net/11356/1707. The CLARIN.SI bitstream's file name could not be verified."
)

SOURCES: dict[str, tuple[Source, ...]] = {
    "slo-superglue": (
        Source(
            "qa_train",
            _SLOBENCH_QA + "qa_train.zip",
            None,
            "CC BY-SA 4.0",
            "SloBench QA training split, human-translated: <Task>.jsonl -> "
            "human-translated/<Task>/train.jsonl",
            _SLOBENCH_EVIDENCE,
        ),
        Source(
            "qa_validation",
            _SLOBENCH_QA + "qa_validation.zip",
            None,
            "CC BY-SA 4.0",
            "SloBench QA validation split, human-translated: <Task>.jsonl -> "
            "human-translated/<Task>/val.jsonl",
            _SLOBENCH_EVIDENCE,
        ),
        Source(
            "qa_test",
            _SLOBENCH_QA + "qa_test.zip",
            None,
            "CC BY-SA 4.0",
            "SloBench QA test inputs without labels: <Task>.jsonl -> test-unlabelled/<Task>.jsonl",
            _SLOBENCH_EVIDENCE,
        ),
        Source(
            "googlemt",
            "https://www.clarin.si/repository/xmlui/bitstream/handle/11356/1380/"
            "SuperGLUE-GoogleMT.zip?sequence=2&isAllowed=y",
            None,
            "CC BY-SA 4.0",
            "Slovene SuperGLUE (hdl.handle.net/11356/1380), Google-MT translation of the full English "
            "sets: <Task>/{train,val}.jsonl -> machine-translated/<Task>/",
            "github.com/eriknovak/SLM4IE configs/data/download.yaml, entry superglue_sl (lists this URL "
            "and .../SuperGLUE-HumanT.zip?sequence=1&isAllowed=y)",
        ),
    ),
    "si-nli": (
        Source(
            "train",
            _SI_NLI + "train/0000.parquet",
            None,
            "CC BY-NC-SA 4.0 (dataset card; the CLARIN.SI record 11356/1707 is the original)",
            "SI-NLI training split, Hugging Face's Parquet conversion of cjvt/si_nli -> si-nli/train.tsv",
            _SI_NLI_EVIDENCE,
        ),
        Source(
            "test",
            _SI_NLI + "test/0000.parquet",
            None,
            "CC BY-NC-SA 4.0 (dataset card; the CLARIN.SI record 11356/1707 is the original)",
            "SI-NLI test pairs without labels (the SloBench test inputs) -> si-nli/test-unlabelled.tsv",
            _SI_NLI_EVIDENCE,
        ),
    ),
    "mt": (
        Source(
            "ntrex_en",
            _NTREX + "NTREX-128/newstest2019-src.eng.txt",
            None,
            "CC BY-SA 4.0",
            "NTREX-128 English source (WMT19 newstest, 1,997 lines) -> mt/ntrex128/en.txt",
            _NTREX_EVIDENCE,
        ),
        Source(
            "ntrex_sl",
            _NTREX + "NTREX-128/newstest2019-ref.slv.txt",
            None,
            "CC BY-SA 4.0",
            "NTREX-128 Slovene reference translation -> mt/ntrex128/sl.txt",
            _NTREX_EVIDENCE,
        ),
        Source(
            "ntrex_docs",
            _NTREX + "DOCUMENT_IDS.tsv",
            None,
            "CC BY-SA 4.0",
            "NTREX-128 line-aligned document ids -> mt/ntrex128/document_ids.tsv",
            _NTREX_EVIDENCE,
        ),
        Source(
            "flores",
            "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz",
            "b8b0b76783024b85797e5cc75064eb83fc5288b41e9654dabc7be6ae944011f6",
            "CC BY-SA 4.0",
            "FLORES-200 (eng_Latn, slv_Latn): the full dev split -> mt/flores200-dev/ (the shipped "
            "533-line flores200-dev-subset cannot be re-derived) and devtest -> mt/flores200-devtest/",
            "github.com/facebookresearch/flores flores200/README.md (download link tinyurl.com/"
            "flores200dataset, which resolves to this file); sha256 and size 25,585,843 B published in "
            "the MLCommons Croissant spec's example and pinned by several projects",
        ),
    ),
}

LAYOUT: dict[str, str] = {
    "slo-superglue": (
        "  <root>/slo-superglue/human-translated/<Task>/{train,val}.jsonl   (BoolQ CB COPA MultiRC RTE WSC)\n"
        "  <root>/slo-superglue/machine-translated/<Task>/{train,val}.jsonl (no WSC)\n"
        "  <root>/slo-superglue/test-unlabelled/<Task>.jsonl"
    ),
    "si-nli": "  <root>/si-nli/train.tsv\n  <root>/si-nli/test-unlabelled.tsv",
    "mt": (
        "  <root>/mt/ntrex128/{en,sl}.txt and document_ids.tsv\n"
        "  <root>/mt/flores200-dev-subset/{en,sl}.txt  (a download provides the full mt/flores200-dev/)\n"
        "  <root>/mt/flores200-devtest/{en,sl}.txt"
    ),
}

COMPLETE_MARKER = ".complete"
MANIFEST = "manifest.json"


def describe_sources() -> list[dict[str, str | None]]:
    """Every download source as a flat record, for ``slopeft data sources``.

    Returns:
        One dict per file with keys ``dataset``, ``key``, ``url``, ``sha256`` (None: trust on
        first use), ``licence``, ``description`` and ``evidence``.
    """
    return [{"dataset": name, **asdict(src)} for name, sources in SOURCES.items() for src in sources]


def is_complete(name: str, cache_root: Path) -> bool:
    """Whether ``cache_root`` holds a fully installed download of dataset ``name``."""
    return (Path(cache_root) / name / COMPLETE_MARKER).is_file()


def ensure_dataset(name: str, cache_root: Path, *, progress: bool = True) -> Path:
    """Makes sure dataset ``name`` is in ``cache_root``, downloading it if needed.

    Downloads every file in ``SOURCES[name]`` (streamed to a temporary file, with a progress bar),
    verifies its sha256 (published, or trust on first use via ``<cache_root>/manifest.json``),
    converts it into the local layout inside ``<cache_root>/.partial-<name>-*`` and renames the
    result to ``<cache_root>/<name>`` with a ``.complete`` marker. A failure or a kill at any point
    leaves no ``<cache_root>/<name>`` behind (leftover ``.partial-*`` folders are removed by the
    next call).

    Args:
        name: ``"slo-superglue"``, ``"si-nli"`` or ``"mt"``.
        cache_root: the data cache, normally ``cache_dir() / "data"``.
        progress: show a progress bar per file on stderr.

    Returns:
        ``cache_root``, the data root that now holds the dataset.

    Raises:
        DataError: unknown name, a download failed, a checksum did not match, or the
            distribution did not hold the expected files.
    """
    if name not in SOURCES:
        raise DataError(f"Unknown dataset {name!r}; slopeft can download: {', '.join(SOURCES)}.")
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
            for src in SOURCES[name]:
                path = work / "downloads" / src.key
                path.parent.mkdir(parents=True, exist_ok=True)
                digests[src.url] = _fetch(name, src, path, progress)
                _verify(src, digests[src.url], manifest, cache_root)
                files[src.key] = path
            out = work / name
            out.mkdir()
            _CONVERTERS[name](files, out)
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
        f"installed. slopeft reads this dataset from a folder laid out as:\n{LAYOUT[name]}\n"
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


# --------------------------------------------------------------------------- converters


def _member(names: list[str], pattern: str, archive: str, what: str) -> str:
    """The archive member whose path matches ``pattern`` (case-insensitive); the shortest wins."""
    rx = re.compile(pattern, re.IGNORECASE)
    hits = sorted((n for n in names if rx.search(n) and "__MACOSX" not in n), key=len)
    if not hits:
        sample = ", ".join(sorted(names)[:12]) or "nothing"
        raise DataError(
            f"The downloaded {archive} has no {what} (it holds: {sample}). The distribution's layout "
            "may have changed; report this to slopeft, and meanwhile provide the files yourself via "
            "`SLOPEFT_DATA` or `--data-dir`."
        )
    return hits[0]


def _text(raw: bytes) -> str:
    """UTF-8 text without BOM or CRs, ending in a newline (line-aligned files are compared by count)."""
    try:
        text = raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as err:
        raise DataError(f"A downloaded text file is not UTF-8 ({err}). Run the command again.") from None
    return text if text.endswith("\n") else text + "\n"


def _open_zip(path: Path, key: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(
            f"The download {key} is not a zip archive (the server may have sent an error page). "
            "Run the command again, or provide the files via `SLOPEFT_DATA` or `--data-dir`."
        ) from None


def _convert_slo_superglue(files: dict[str, Path], out: Path) -> None:
    # The SloBench evaluator unzips qa_*.zip and reads <folder>/<Task>.jsonl, so each zip holds one
    # <Task>.jsonl per task; we accept them at any depth in case of a wrapping folder.
    for key, target in (("qa_train", "train"), ("qa_validation", "val"), ("qa_test", None)):
        with _open_zip(files[key], key) as zf:
            names = zf.namelist()
            for task in TASKS:
                member = _member(names, rf"(^|/){task}\.jsonl$", f"{key}.zip", f"{task}.jsonl")
                dest = (
                    out / "test-unlabelled" / f"{task}.jsonl"
                    if target is None
                    else out / "human-translated" / task / f"{target}.jsonl"
                )
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(member))
    # Assumption: SuperGLUE-GoogleMT.zip holds <Task>/{train,val,test}.jsonl, possibly under a
    # SuperGLUE-GoogleMT/ and/or json/ folder (public code reads SuperGLUE-GoogleMT/<Task>/ and
    # SuperGLUE-HumanT/json/<Task>/; the release also has csv/txt copies). We take the
    # shortest-path <Task>/<split>.jsonl anywhere in the archive and copy it byte for byte.
    with _open_zip(files["googlemt"], "SuperGLUE-GoogleMT") as zf:
        names = zf.namelist()
        for task in MT_TASKS:
            for split in ("train", "val"):
                pattern, what = rf"(^|/){task}/{split}\.jsonl$", f"{task}/{split}.jsonl"
                member = _member(names, pattern, "SuperGLUE-GoogleMT.zip", what)
                dest = out / "machine-translated" / task / f"{split}.jsonl"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(member))


def _read_table(path: Path) -> list[dict[str, str]]:
    """Reads a Parquet file into rows of strings (needs pyarrow, imported only here)."""
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError(
            "Converting the SI-NLI download needs pyarrow to read Parquet: `pip install pyarrow`, then "
            "run the command again; or provide si-nli/train.tsv and si-nli/test-unlabelled.tsv via "
            "`SLOPEFT_DATA` or `--data-dir`."
        ) from None
    except Exception as err:  # pyarrow raises its own types for a damaged file
        raise DataError(
            f"The SI-NLI download {path.name} is not readable Parquet ({err}). Run the command again."
        ) from None
    return [{k: "" if v is None else str(v) for k, v in row.items()} for row in frame.to_dict("records")]


# Hugging Face renamed the CLARIN.SI columns; map back to the names of the official train.tsv.
_SI_NLI_COLUMNS = {
    "annotation1": "annotation_1",
    "annotation2": "annotation_2",
    "annotation3": "annotation_3",
    "annotation_final": "annotation_FINAL",
}


def _write_tsv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    # Unquoted, one record per line (readers.read_tsv parses with QUOTE_NONE): tabs and line
    # breaks inside a field become spaces.
    lines = ["\t".join(re.sub(r"[\t\r\n]+", " ", row.get(c, "")) for c in columns) for row in rows]
    path.write_text("\n".join(["\t".join(columns), *lines]) + "\n", encoding="utf-8")


def _convert_si_nli(files: dict[str, Path], out: Path) -> None:
    # Values are as Hugging Face serves them (e.g. annotation_1 "entailment" where the CLARIN.SI
    # file has "E"), and its comment_N columns are absent; premise/hypothesis/label are unchanged.
    train = [{_SI_NLI_COLUMNS.get(k, k): v for k, v in row.items()} for row in _read_table(files["train"])]
    test = _read_table(files["test"])
    for rows, what in ((train, "train"), (test, "test")):
        if not rows or not {"premise", "hypothesis"} <= rows[0].keys():
            raise DataError(
                f"The SI-NLI {what} download has no premise/hypothesis columns. The Hugging Face "
                "conversion may have changed; provide the files via `SLOPEFT_DATA` or `--data-dir`."
            )
    _write_tsv(out / "train.tsv", train, list(train[0]))
    _write_tsv(out / "test-unlabelled.tsv", test, ["premise", "hypothesis"])


def _convert_mt(files: dict[str, Path], out: Path) -> None:
    ntrex = {
        name: _text(files[key].read_bytes())
        for key, name in (("ntrex_en", "en.txt"), ("ntrex_sl", "sl.txt"), ("ntrex_docs", "document_ids.tsv"))
    }
    if len({text.count("\n") for text in ntrex.values()}) != 1:
        counts = ", ".join(f"{n}: {t.count(chr(10))}" for n, t in ntrex.items())
        raise DataError(f"The NTREX-128 downloads are not line-aligned ({counts}). Run the command again.")
    (out / "ntrex128").mkdir()
    for name, text in ntrex.items():
        (out / "ntrex128" / name).write_text(text, encoding="utf-8")
    try:
        with tarfile.open(files["flores"]) as tar:
            names = tar.getnames()
            for split, folder in (("dev", "flores200-dev"), ("devtest", "flores200-devtest")):
                (out / folder).mkdir()
                for code, lang in (("eng_Latn", "en"), ("slv_Latn", "sl")):
                    # Members look like [./]flores200_dataset/<split>/<code>.<split>; read only these
                    # four instead of extracting all 200 languages.
                    what = f"{split}/{code}.{split}"
                    member = _member(names, rf"(^|/){re.escape(what)}$", "FLORES-200 tarball", what)
                    handle = tar.extractfile(member)
                    if handle is None:
                        raise DataError(f"FLORES-200 member {member} is not a regular file. Run again.")
                    (out / folder / f"{lang}.txt").write_text(_text(handle.read()), encoding="utf-8")
    except tarfile.TarError as err:
        raise DataError(f"The FLORES-200 download is not a readable tarball ({err}). Run again.") from None


_CONVERTERS: dict[str, Callable[[dict[str, Path], Path], None]] = {
    "slo-superglue": _convert_slo_superglue,
    "si-nli": _convert_si_nli,
    "mt": _convert_mt,
}
