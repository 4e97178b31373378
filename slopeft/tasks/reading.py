"""Submitted files read the way the official SloBench evaluator reads them.

The evaluator (``clarinsi/slobench-eval-docker``: ``run.py`` unzips, then each board's script reads the
files; Python 3.8 on Debian, UTF-8 locale) differs from a forgiving reader in three ways that decide
whether a submission is accepted:

- It never strips a UTF-8 byte-order mark. SuperGLUE's ``pandas.read_json(path, lines=True)`` then fails
  on the whole file ("Expected object or value"); SI-NLI's first label becomes ``"\\ufeffentailment"``
  ("Unrecognized predicted class in row 0"); in MT the mark becomes part of the first token of line 1.
- SI-NLI and MT read with ``open(path).readlines()``: universal newlines, so ``\\r\\n`` and a lone ``\\r``
  end a line as ``\\n`` does (and nothing else does: not U+2028, not a form feed).
- SuperGLUE's pandas 1.3 splits at ``\\n`` only, strips each line and drops empty ones: a lone ``\\r``
  between two objects leaves them on one line, which is not JSON.
"""

from __future__ import annotations

import re
from typing import Any

from slopeft.data.readers import decode_text, parse_json_object
from slopeft.errors import SubmissionError

UTF8_BOM = b"\xef\xbb\xbf"
_LONE_CR = re.compile(r"\r(?!\n)")


def decode_submission(raw: bytes, name: str, bom_effect: str, allow_blank: bool = False) -> str:
    """The UTF-8 text of submitted file ``name``; a byte-order mark is refused, ``bom_effect`` saying
    what the evaluator makes of it (one sentence)."""
    if raw.startswith(UTF8_BOM):
        raise SubmissionError(
            f"{name} starts with a UTF-8 byte-order mark (bytes EF BB BF), which the leaderboard's "
            f"evaluator does not strip: {bom_effect} Save the file as plain UTF-8 without a BOM (your "
            "editor's \"UTF-8\", not \"UTF-8 with BOM\"; or `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`) and re-zip it."
        )
    return decode_text(raw, name, SubmissionError, allow_blank=allow_blank)


def readlines(text: str) -> list[str]:
    """The lines of ``text`` as ``open(path).readlines()`` yields them, without their line ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the final line end closes the last line; it does not open another
        lines.pop()
    return lines


def lone_carriage_returns(text: str) -> list[int]:
    """1-based numbers (counting ``\\n`` line ends) of the lines holding a ``\\r`` not followed by ``\\n``."""
    return [text.count("\n", 0, m.start()) + 1 for m in _LONE_CR.finditer(text)]


def parse_submitted_jsonl(text: str, name: str) -> list[dict[str, Any]]:
    """The JSON objects of a SuperGLUE file, one per line as pandas' ``read_json(lines=True)`` splits it."""
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()  # pandas strips every line (str.strip) and drops empty ones
        if not line:
            continue
        if "\r" in line:
            raise SubmissionError(
                f"{name}, line {number}: holds a carriage return (\\r) not followed by a line feed. The "
                "evaluator (pandas.read_json with lines=True) ends lines at \\n only, so it reads what is "
                "on either side as one line, which is not JSON, and rejects the file. End every line with "
                "\\n (or \\r\\n)."
            )
        rows.append(parse_json_object(line, name, number, SubmissionError))
    return rows
