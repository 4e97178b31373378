"""Helpers shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SLOVENE_PAIR = [
    "Ljubljana je glavno mesto Slovenije.",
    "Danes je lepo vreme, zato gremo z otroki na dolg izlet v hribe nad Bohinjem.",
]


def prepared(alias: str, cache: Path) -> Path:
    """Prepare ``alias`` into ``cache`` (once; later calls return the folder at once)."""
    from slopeft.models.offline import prepare_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLOPEFT_CACHE", str(cache))
        return prepare_model(alias)
