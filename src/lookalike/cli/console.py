"""Where the CLI writes, how it fails, and the options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: Exit codes, decided here and nowhere else.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

IndexDir = Annotated[
    Path, typer.Option("--index", "-i", help="Index directory.", show_default=False)
]


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)
