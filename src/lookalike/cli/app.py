"""`lookalike`: index a folder of images, then search it with an image."""

from __future__ import annotations

import sys
import warnings
from typing import Annotated, TextIO

import typer

from lookalike.cli.console import EXIT_INTERRUPTED, EXIT_USER_ERROR, err, out
from lookalike.cli.duplicates_actions import apply as apply_plan
from lookalike.cli.duplicates_actions import undo as undo_journal
from lookalike.cli.duplicates_command import duplicates_app
from lookalike.cli.evaluate_command import evaluate
from lookalike.cli.index_command import index
from lookalike.cli.manage import info, remove
from lookalike.cli.search_command import search
from lookalike.cli.serve_command import serve
from lookalike.cli.verify_command import verify
from lookalike.cli.watch_command import watch
from lookalike.errors import LookalikeError
from lookalike.version import __version__

app = typer.Typer(
    help="lookalike: reverse image search. Index a folder of images, then find the most "
    "similar ones to a query image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"lookalike {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """lookalike: reverse image search."""


for command in (index, search, info, remove, verify, evaluate):
    app.command()(command)
app.add_typer(duplicates_app, name="duplicates")
duplicates_app.command()(apply_plan)
duplicates_app.command()(undo_journal)
app.command()(serve)


def _mount_train() -> None:
    """`lookalike train ...` lives in its own module (model training needs PyTorch)."""
    try:
        from lookalike.cli.train import train_app
    except ImportError:  # the training module is optional while it is being built
        return
    app.add_typer(train_app, name="train")


_mount_train()
app.command()(watch)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """The library's warnings as one line on stderr, without its source location."""
    err.print(f"warning: {message}", markup=False, highlight=False)


def main() -> None:
    """Console entry point: library errors become one line on stderr and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        app()
    except LookalikeError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err.print(
            "interrupted: the index keeps everything committed so far; run the command again "
            "to finish",
            markup=False,
        )
        sys.exit(EXIT_INTERRUPTED)
