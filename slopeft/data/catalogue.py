"""The datasets slopeft can find and download, as the task modules declare them.

A :class:`Dataset` is one distribution of files under a data root: where the files come from
(:class:`Source`, each with its licence and the evidence for its address), how they are laid out
(``layout``, shown in every error message that asks for the files; ``probe``, the path whose
presence means the dataset is there) and how a download becomes that layout (``convert``, one of
:mod:`slopeft.data.convert`). Each task family module declares the dataset it reads and registers it
with :func:`register_dataset`; the data layer itself names no dataset and no task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from slopeft.errors import DataError


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


@dataclass
class Dataset:
    """One dataset: its files' sources, their local layout, and how a download becomes that layout.

    Attributes:
        name: the folder under a data root (``slo-superglue``, ``si-nli``, ``mt``).
        probe: a path relative to the data root that exists when the dataset does.
        layout: the expected files, one ``  <root>/...`` line each, for error messages.
        sources: every file of the official distribution.
        convert: ``convert(files, out)``: the downloaded files (by source key) → the dataset's folder.
    """

    name: str
    probe: str
    layout: str
    sources: tuple[Source, ...]
    convert: Callable[[dict[str, Path], Path], None]


DATASETS: dict[str, Dataset] = {}
"""Registered datasets by name, in the order the task modules declared them."""


def register_dataset(dataset: Dataset) -> Dataset:
    """Adds ``dataset`` to :data:`DATASETS`; a second dataset of the same name is a programming error."""
    if dataset.name in DATASETS:
        raise ValueError(f"dataset {dataset.name!r} is registered twice")
    DATASETS[dataset.name] = dataset
    return dataset


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; known: {', '.join(DATASETS)}.")
    return DATASETS[name]


def expected_layout() -> str:
    """Every registered dataset's layout, for messages that ask for a data root."""
    return "\n".join(dataset.layout for dataset in DATASETS.values())


def describe_sources() -> list[dict[str, str | None]]:
    """Every download source as a flat record, for ``slopeft data sources``.

    Returns:
        One dict per file with keys ``dataset``, ``key``, ``url``, ``sha256`` (None: trust on
        first use), ``licence``, ``description`` and ``evidence``.
    """
    return [{"dataset": name, **asdict(src)} for name, dataset in DATASETS.items() for src in dataset.sources]
