"""`lookalike info` and `lookalike remove`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.console import IndexDir, out


def info(
    index_dir: IndexDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Describe an index: images, embedder, dimension, metric, format, size on disk."""
    from lookalike.engine import SearchEngine

    with SearchEngine.open(index_dir) as engine:
        details = engine.info()
    if as_json:
        sys.stdout.write(json.dumps(details.to_json()) + "\n")
        return
    for key, value in details.to_json().items():
        if key == "size_bytes":
            value = f"{value:,} bytes ({int(value) / 1e6:.1f} MB)"  # type: ignore[call-overload]
        out.print(f"{key + ':':<19}{value}")


def remove(
    paths: Annotated[list[Path], typer.Argument(help="Indexed images or folders to remove.")],
    index_dir: IndexDir,
) -> None:
    """Remove images (or all images under a folder) from the index. Files are not touched."""
    from lookalike.engine import SearchEngine

    with SearchEngine.open(index_dir, writable=True) as engine:
        removed = engine.remove(paths)
        left = len(engine)
    out.print(f"Removed {removed} images from {index_dir}; {left} remain.")
