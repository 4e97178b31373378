"""User-facing errors.

Every error a user can cause (bad data, bad flags, missing files) is raised as a
:class:`SlopeftError` whose message is one paragraph saying what is wrong and what to
do. The CLI prints that paragraph and exits with status 2 instead of a traceback.
"""

from __future__ import annotations


class SlopeftError(Exception):
    """An error caused by the user's input or environment, with a remedy in its message."""


class DataError(SlopeftError):
    """A data file is missing, malformed or inconsistent."""


class SubmissionError(DataError):
    """A submission zip or prediction folder does not match the test inputs."""


class ConfigError(SlopeftError):
    """An unknown name, option or invalid combination of options."""
