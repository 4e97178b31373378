"""`slopeft models ...`: list the known models, prepare pip-installable ones, build tiny test models.

Errors are raised as :class:`~slopeft.errors.SlopeftError`; the main CLI prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="List, prepare and build models.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Every model alias: where it comes from, its architecture, size, Slovene support and licence."""
    from slopeft.models.catalogue import MODELS
    from slopeft.models.offline import is_prepared

    table = Table(title="Models (pass an alias, a Hub id or a local folder as --model)")
    # Only the long Hub id / package names fold on narrow terminals; every other cell stays whole.
    for column in ("alias", "source", "hub id / package", "arch", "family", "params", "Slovene", "licence", "prepared"):
        table.add_column(column, no_wrap=column != "hub id / package", overflow="fold")
    for alias, info in MODELS.items():
        where = info.hub_id if info.source == "hub" else f"{info.package} ({info.hub_id})"
        prepared = ("yes" if is_prepared(alias) else "no") if info.source == "pip" else "-"
        table.add_row(
            alias, info.source, where, info.architecture, info.family, info.params_label,
            "yes" if info.slovene else "no", info.licence, prepared,
        )
    console = Console()
    console.print(table)
    for alias, info in MODELS.items():
        if info.note:
            console.print(f"  {alias}: {info.note}", highlight=False)


@app.command("prepare")
def prepare(
    name: Annotated[str, typer.Argument(help="A pip-installable model: minilm, e5-small-multilingual, gemma-3-270m.")],
    force: Annotated[bool, typer.Option("--force", help="Prepare again even if already prepared.")] = False,
) -> None:
    """Convert a pip-installed model into a transformers folder in the cache; prints the folder."""
    from slopeft.models.offline import prepare_model

    typer.echo(str(prepare_model(name, force=force)))


@app.command("make-tiny")
def make_tiny(
    arch: Annotated[str, typer.Option("--arch", help="bert, camembert, xlm-roberta, gemma, opt, marian or t5.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model into.")],
    texts: Annotated[
        Path | None,
        typer.Option("--texts", help="Text file (one sentence a line) to train the tokenizer on.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the random weights.")] = 0,
) -> None:
    """Write a tiny randomly initialised model with a trained tokenizer (for tests); prints the folder."""
    from slopeft.errors import DataError
    from slopeft.models.tiny import make_tiny_model

    lines = None
    if texts is not None:
        try:
            lines = [ln.strip() for ln in texts.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except OSError as e:
            raise DataError(f"Could not read --texts {texts}: {e}") from None
        if not lines:
            raise DataError(f"--texts {texts} has no non-empty lines to train a tokenizer on.")
    typer.echo(str(make_tiny_model(arch, out, texts=lines, seed=seed)))
