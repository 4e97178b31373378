"""What every bad-input test asserts: through the CLI entry point, exit status 2, one paragraph
starting with "Error:", no traceback, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from slopeft.cli import main


class CLI:
    """Runs ``slopeft.cli.main`` in-process and checks how a refused command ends."""

    def __init__(self, capsys, monkeypatch) -> None:
        self.capsys = capsys
        # Wide enough that rich does not fold the paragraph (paths are long); messages are compared flattened.
        monkeypatch.setenv("COLUMNS", "400")

    def ok(self, *args) -> str:
        """Runs a command that must succeed; returns its output."""
        main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return out + err

    def fails(self, *args, watch: Path | list[Path] | None = None) -> str:
        """Runs a command that must be refused; returns the error paragraph with whitespace collapsed.

        ``watch``: folders whose contents must be the same before and after (nothing left behind);
        a folder that did not exist before must not exist after.
        """
        watched = [watch] if isinstance(watch, Path) else list(watch or [])
        before = [tree(p) for p in watched]
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err, out + err
        assert info.value.code == 2, out + err
        assert "Error:" in err, out + err  # slopeft's paragraph, or click's usage error for a bad flag value
        for path, old in zip(watched, before, strict=True):
            assert tree(path) == old, f"{path} changed: {sorted(set(tree(path) or ()) ^ set(old or ()))}"
        return " ".join(err.split())


def tree(path: Path) -> frozenset[str] | None:
    """The files and folders under ``path`` (relative names), None when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    return frozenset(str(p.relative_to(path)) + ("/" if p.is_dir() else "") for p in path.rglob("*"))


@pytest.fixture
def cli(capsys, monkeypatch) -> CLI:
    return CLI(capsys, monkeypatch)
