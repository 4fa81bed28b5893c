"""Where lookalike keeps things it can make again: exported models, thumbnails."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$LOOKALIKE_CACHE_DIR, else $XDG_CACHE_HOME/lookalike, else ~/.cache/lookalike."""
    explicit = os.environ.get("LOOKALIKE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lookalike"
