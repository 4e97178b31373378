"""Finding a dataset on disk: ``--data-dir``, then ``SLOPEFT_DATA``, then the cache, then a download."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slopeft.data.catalogue import DATASETS, expected_layout
from slopeft.errors import DataError
from slopeft.paths import cache_dir


@dataclass(frozen=True)
class DataLocation:
    """Where a dataset was found and why there."""

    root: Path
    origin: str  # "--data-dir", "SLOPEFT_DATA", "cache" or "download"


def _has(root: Path, dataset: str) -> bool:
    return (root / DATASETS[dataset].probe).exists()


def _missing(root: Path, dataset: str, origin: str) -> DataError:
    return DataError(
        f"{origin} points to {root}, which has no {dataset} data ({root / DATASETS[dataset].probe} is "
        f"missing). Expected layout:\n{expected_layout()}\nFix the path, or unset it to use the cache."
    )


def locate_dataset(
    dataset: str, data_dir: Path | str | None = None, *, download: bool = True
) -> DataLocation:
    """Finds ``dataset``'s root folder.

    An explicit ``data_dir`` or ``SLOPEFT_DATA`` that lacks the dataset is an error rather
    than a silent fall-through: the user asked for that folder.

    Args:
        dataset: a registered dataset (:data:`~slopeft.data.catalogue.DATASETS`).
        data_dir: the ``--data-dir`` flag, if given.
        download: whether to fetch from the official source when nothing is local.
    """
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}; known: {', '.join(DATASETS)}.")
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not _has(root, dataset):
            raise _missing(root, dataset, "--data-dir")
        return DataLocation(root, "--data-dir")
    if env := os.environ.get("SLOPEFT_DATA"):
        root = Path(env).expanduser()
        if not _has(root, dataset):
            raise _missing(root, dataset, "SLOPEFT_DATA")
        return DataLocation(root, "SLOPEFT_DATA")
    from slopeft.data.fetch import ensure_dataset, is_complete

    cached = cache_dir() / "data"
    # The cache counts only when a download finished (its .complete marker), never a half-written folder.
    if is_complete(dataset, cached):
        return DataLocation(cached, "cache")
    if download:
        try:
            return DataLocation(ensure_dataset(dataset, cached), "download")
        except DataError:
            raise
        except Exception as err:  # network stacks raise many types; all mean "not available"
            raise DataError(f"Downloading {dataset} failed ({err}). {_nothing_local(dataset)}") from None
    raise DataError(_nothing_local(dataset))


def _nothing_local(dataset: str) -> str:
    return (
        f"No local copy of {dataset} was found and it could not be downloaded. Point slopeft at a copy "
        f"with `--data-dir DIR` or `export SLOPEFT_DATA=DIR`, where DIR has this layout:\n{expected_layout()}"
    )
