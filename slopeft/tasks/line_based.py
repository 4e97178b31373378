"""Shared submission handling for boards whose submission is one text file, one line per input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slopeft.errors import SubmissionError
from slopeft.tasks.base import Example, Task, check_complete
from slopeft.tasks.reading import decode_submission, readlines


class LineSubmissionTask(Task):
    """A task whose submission is a single UTF-8 file holding one prediction per input line."""

    submission_name = "submission.txt"
    submission_name_required = False  # the MT evaluator takes any single file; SI-NLI names it
    drop_blank_lines = False  # SI-NLI's evaluator drops blank lines; MT keeps empty hypotheses
    bom_effect = ""  # what the evaluator makes of a byte-order mark (one sentence)

    def format_line(self, prediction: Any) -> str:
        return str(prediction)

    def parse_line(self, line: str) -> Any:
        """Parses one submitted line; raises ValueError with a reason when it is illegal."""
        return line

    def submission_contents(
        self, predictions: Mapping[int, Any], examples: Sequence[Example]
    ) -> dict[str, str]:
        check_complete(self.name, predictions, examples, "the predictions")
        lines = [self.format_line(predictions[e.idx]) for e in examples]
        bad = [i for i, line in enumerate(lines) if "\n" in line or "\r" in line]
        if bad:
            raise SubmissionError(
                f"{self.name}: predictions for idx {bad[:5]} contain line breaks, which would "
                "shift every later line. Replace them with spaces."
            )
        return {self.submission_name: "".join(line + "\n" for line in lines)}

    def parse_submission(self, files: Mapping[str, bytes], examples: Sequence[Example]) -> dict[int, Any]:
        if len(files) != 1:
            raise SubmissionError(
                f"{self.name}: a submission holds exactly one text file; found "
                f"{len(files)} ({', '.join(sorted(files)) or 'none'}). Keep only the predictions file."
            )
        ((name, raw),) = files.items()
        # Empty hypotheses are legal MT lines: a file of n blank lines is n (useless) translations.
        text = decode_submission(raw, name, self.bom_effect, allow_blank=not self.drop_blank_lines)
        self.check_text(name, text)
        lines = readlines(text)  # the evaluator's open().readlines(): a lone \r ends a line too
        if self.drop_blank_lines:
            lines = [line for line in lines if line.strip()]
        if len(lines) != len(examples):
            raise SubmissionError(
                f"{name} has {len(lines)} line(s) but the inputs have {len(examples)}. "
                "Write exactly one prediction per input line, in input order."
            )
        predictions, problems = {}, []
        for number, (line, example) in enumerate(zip(lines, examples, strict=True), start=1):
            try:
                predictions[example.idx] = self.parse_line(line)
            except ValueError as err:
                problems.append(f"line {number}: {err}")
        if problems:
            raise SubmissionError(
                f"{name} has {len(problems)} illegal line(s): {'; '.join(problems[:8])}. "
                "Fix those lines and re-check."
            )
        self.check_lines(name, lines)
        return predictions

    def check_text(self, name: str, text: str) -> None:
        """Raises SubmissionError for what the evaluator would read wrongly in the whole file."""

    def check_lines(self, name: str, lines: list[str]) -> None:
        """Raises SubmissionError for lines the evaluator would fail on (after each parsed)."""
