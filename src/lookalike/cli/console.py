"""Where the CLI writes, how it fails, and the options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

#: Markup is off: what the CLI prints is full of untrusted text (file paths, labels, metadata,
#: error messages naming files), and `[`/`]` in a path must print as they are, not as styles.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

#: Exit codes, decided here and nowhere else.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

IndexDir = Annotated[
    Path, typer.Option("--index", "-i", help="Index directory.", show_default=False)
]


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)
