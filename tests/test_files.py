"""Output paths of the wrong shape (slopeft.files.check_output): a file where a folder must go, a folder
where a file must go, a file among the folders above. Every command that writes is refused before any
work, with exit status 2 and a paragraph naming the option, and nothing is created."""

from __future__ import annotations

import errno

import pytest

from slopeft.errors import ConfigError
from slopeft.files import check_output, path_shape_error, write_text_atomic
from tests.experiments.smoke import SMOKE

# Each command with the output option under test last, and whether that option names a file or a folder.
COMMANDS = {
    "baseline --output": (["baseline", "--task", "si-nli", "--strategy", "majority", "--output"], "folder"),
    "baseline --submission": (["baseline", "--task", "si-nli", "--strategy", "majority", "--submission"], "file"),
    "score --json": (["score", "--task", "si-nli", "--predictions", "{existing}", "--json"], "file"),
    "submit --out": (["submit", "--runs", "{existing}", "--out"], "file"),
    "quickstart --output": (["quickstart", "--output"], "folder"),
    "report --out": (["report", "--grid", str(SMOKE), "--out"], "folder"),
    "results export --output": (["results", "export", "--store", "{existing}/results.sqlite", "--output"], "file"),
    "grid run --out": (["grid", "run", str(SMOKE), "--out"], "folder"),
    "grid run --results": (["grid", "run", str(SMOKE), "--results"], "folder"),
}


@pytest.mark.parametrize("shape", ["the wrong kind", "under a file"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_writing_command_refuses_an_output_of_the_wrong_shape_before_any_work(
    cli, tmp_path, real_data_env, command, shape
):
    args, kind = COMMANDS[command]
    existing = tmp_path / "existing"
    existing.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    if shape == "under a file":
        target = notes / "out"
    else:
        target = notes if kind == "folder" else existing  # a file for a folder, a folder for a file
    args = [a.replace("{existing}", str(existing)) for a in args]
    message = cli.fails(*args, target, watch=tmp_path)
    option = args[-1]
    assert f"{option} {target}" in message
    assert ("is a file" in message) if kind == "folder" or shape == "under a file" else ("is a folder" in message)
    assert notes.read_text() == "mine\n"


def test_check_output_accepts_what_can_be_written(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert check_output(tmp_path / "new" / "deeper" / "out.zip") == tmp_path / "new" / "deeper" / "out.zip"
    check_output(tmp_path / "file.txt")  # a file may be replaced by a file
    check_output(tmp_path / "folder", "folder")
    check_output(tmp_path / "new-folder", "folder")
    with pytest.raises(ConfigError, match="is a folder; it must name a file"):
        check_output(tmp_path / "folder")
    with pytest.raises(ConfigError, match=r"file.txt is a file, not a folder"):
        check_output(tmp_path / "file.txt" / "a" / "b", "folder", "--out")


def test_the_atomic_writers_name_the_destination_not_their_temporary(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match=r"taken is a folder") as raised:
        write_text_atomic(tmp_path / "taken", "text")
    assert ".tmp" not in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_os_error_of_a_path_of_the_wrong_shape_reads_as_one_paragraph():
    assert "part of it is a file" in str(path_shape_error(NotADirectoryError(errno.ENOTDIR, "x", "a/b")))
    assert "a file of that name is in the way" in str(path_shape_error(FileExistsError(errno.EEXIST, "x", "a")))
    assert "a folder where a file must be" in str(path_shape_error(IsADirectoryError(errno.EISDIR, "x", "a")))
    assert path_shape_error(PermissionError(errno.EACCES, "x", "a")) is None
