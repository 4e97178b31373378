"""Converters: an official distribution, downloaded, into the local layout slopeft reads.

Each converter takes the downloaded files by their source key and writes one dataset's folder. The
datasets' declarations (:mod:`slopeft.data.catalogue`, made by the task modules) name the converter
and pass what it needs to know of the distribution, such as which task files a zip holds.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from slopeft.errors import DataError


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


def convert_slo_superglue(
    files: dict[str, Path], out: Path, *, tasks: Sequence[str], machine_tasks: Sequence[str]
) -> None:
    """SloBench's QA zips (human-translated train, validation, unlabelled test: ``<Task>.jsonl`` each) and
    the Slovene SuperGLUE Google-MT zip into ``human-translated/``, ``test-unlabelled/`` and
    ``machine-translated/`` folders of ``tasks`` (``machine_tasks``: those the MT part has)."""
    # The SloBench evaluator unzips qa_*.zip and reads <folder>/<Task>.jsonl, so each zip holds one
    # <Task>.jsonl per task; we accept them at any depth in case of a wrapping folder.
    for key, target in (("qa_train", "train"), ("qa_validation", "val"), ("qa_test", None)):
        with _open_zip(files[key], key) as zf:
            names = zf.namelist()
            for task in tasks:
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
        for task in machine_tasks:
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


def convert_si_nli(files: dict[str, Path], out: Path) -> None:
    """Hugging Face's Parquet copy of SI-NLI into the official ``train.tsv`` and ``test-unlabelled.tsv``."""
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


def convert_mt(files: dict[str, Path], out: Path) -> None:
    """NTREX-128 (en, sl, document ids) and the FLORES-200 tarball's English and Slovene dev/devtest files."""
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
