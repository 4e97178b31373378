"""`slopeft models ...` commands (placeholder until the models issue lands)."""

import typer

app = typer.Typer(help="List, prepare and build models.", no_args_is_help=True)
