"""The public API is pinned, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import lookalike


def test_public_names_are_pinned() -> None:
    assert sorted(lookalike.__all__) == sorted(
        [
            "Box",
            "EmbedderMismatchError",
            "EmbedderSpec",
            "ImageError",
            "IndexDirectoryError",
            "IndexFormatError",
            "IndexInfo",
            "IndexLockedError",
            "IndexOptions",
            "IndexProgress",
            "IndexReport",
            "InputSpec",
            "InvalidInputError",
            "LookalikeError",
            "Match",
            "ModelError",
            "NotAnIndexError",
            "NumericRange",
            "Region",
            "SearchEngine",
            "SearchFilter",
            "SearchResult",
            "SkippedFile",
            "UnknownImageError",
            "__version__",
        ]
    )
    for name in lookalike.__all__:
        assert hasattr(lookalike, name), name


def test_import_does_not_load_torch_or_onnxruntime() -> None:
    code = (
        "import sys, lookalike, lookalike.cli.app; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_errors_share_one_root() -> None:
    for name in lookalike.__all__:
        obj = getattr(lookalike, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, lookalike.LookalikeError), name
