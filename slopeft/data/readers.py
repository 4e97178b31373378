"""Readers for the official file formats, with errors that name the file and line.

Every reader raises :class:`~slopeft.errors.DataError` for a missing, empty, non-UTF-8 or
malformed file; the message says which file, which line and what to do about it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from slopeft.errors import DataError


def read_text(path: Path) -> str:
    """Reads a whole UTF-8 file; a missing, empty or non-UTF-8 file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"Data file {path} does not exist. Check --data-dir / SLOPEFT_DATA "
            "(run `slopeft data list` to see where slopeft looks) or restore the file."
        )
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read data file {path}: {err.strerror}. Check its permissions or restore it.") from None
    text = decode_text(raw, str(path))
    if "\x00" in text:
        # UTF-16 without a byte-order mark decodes as "valid" UTF-8 with a NUL after every ASCII letter.
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(
            f"{path} holds NUL characters (first on line {line}): it is UTF-16 or a binary file, not UTF-8 "
            "text. Convert it to UTF-8 (e.g. `iconv -f utf-16 -t utf-8`) or restore the official file."
        )
    return text


def decode_text(raw: bytes, name: str, error: type[DataError] = DataError, allow_blank: bool = False) -> str:
    """Decodes UTF-8 ``raw`` read from ``name``; non-UTF-8 or (unless ``allow_blank``) empty content raises ``error``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(
            f"{name} is not valid UTF-8 (line {line}, byte {err.start}). SloBench files are UTF-8: "
            "re-export or convert the file (e.g. `iconv -f cp1250 -t utf-8`)."
        ) from None
    if not text.strip() and not (allow_blank and text):
        raise error(f"{name} is empty. Restore it from its source or write the missing content.")
    return text.removeprefix("\ufeff")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Reads JSON Lines; blank lines are skipped, every other line must be a JSON object."""
    return parse_jsonl(read_text(path), str(path))


def parse_jsonl(text: str, name: str, error: type[DataError] = DataError) -> list[dict[str, Any]]:
    """Parses JSON Lines ``text`` read from ``name``; errors name the line."""
    return [
        parse_json_object(line, name, number, error)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def parse_json_object(line: str, name: str, number: int, error: type[DataError] = DataError) -> dict[str, Any]:
    """Line ``number`` of ``name`` as the one JSON object it must hold; anything else raises ``error``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise error(
            f"{name}, line {number}: not valid JSON ({err.msg} at column {err.colno}). "
            "Each line must be one JSON object; fix or remove that line."
        ) from None
    except RecursionError:
        raise error(
            f"{name}, line {number}: JSON nested too deeply to read. Each line must be one flat JSON "
            "object as in the official files; fix or remove that line."
        ) from None
    if not isinstance(row, dict):
        raise error(
            f"{name}, line {number}: expected a JSON object, found {type(row).__name__}. "
            'Each line must be one JSON object such as {"idx": 0, "label": ...}.'
        )
    return row


def read_tsv(path: Path, required_columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Reads a tab-separated file with a header row holding at least ``required_columns``."""
    lines = read_text(path).splitlines()
    # QUOTE_NONE: SI-NLI text contains stray quotes that are part of the sentence.
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in required_columns if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"{path}: the header lacks column(s) {', '.join(missing)} (found: "
            f"{', '.join(reader.fieldnames or [])}). Use the official tab-separated file with its header row."
        )
    repeated = sorted({c for c in reader.fieldnames or [] if (reader.fieldnames or []).count(c) > 1})
    if repeated:
        raise DataError(
            f"{path}: the header names column(s) {', '.join(repeated)} more than once, so which one holds the "
            "data is ambiguous. Use the official tab-separated file with its header row."
        )
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row or any(row.get(c) is None for c in required_columns):
            raise DataError(
                f"{path}, line {number}: wrong number of tab-separated fields. "
                "Check for a stray tab or a line break inside a field."
            )
        empty = [c for c in required_columns if not row[c].strip()]
        if empty:
            raise DataError(
                f"{path}, line {number}: column(s) {', '.join(empty)} are empty. Every row needs "
                f"{', '.join(required_columns)}; fill in or remove that line."
            )
        rows.append(row)
    if not rows:
        raise DataError(f"{path} has a header but no rows. Restore the official file.")
    return rows


def read_lines(path: Path) -> list[str]:
    """Reads a line-aligned text file (one sentence per line), keeping empty lines as ''."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_parallel(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """Reads two line-aligned files; differing line counts or an empty line are a DataError."""
    src, tgt = read_lines(source), read_lines(target)
    if len(src) != len(tgt):
        raise DataError(
            f"Parallel files differ in length: {source} has {len(src)} lines, {target} has {len(tgt)}. "
            "Line i of one must translate line i of the other; re-align the files."
        )
    for path, lines in ((source, src), (target, tgt)):
        # An empty line pairs a sentence with nothing: it teaches (or scores) a translation of nothing.
        empty = [number for number, line in enumerate(lines, start=1) if not line.strip()]
        if empty:
            raise DataError(
                f"{path}: line(s) {', '.join(map(str, empty[:8]))}{' ...' if len(empty) > 8 else ''} are empty. "
                "Each line must hold one sentence translated by the same line of the other file; remove "
                "those pairs from both files."
            )
    return src, tgt
