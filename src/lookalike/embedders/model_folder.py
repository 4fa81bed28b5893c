"""A trained model on disk: a folder holding ``lookalike-model.json`` (kind, format version and
config) beside its weights (safetensors) and any other non-pickle parts (ONNX, PNG).

Folders are written atomically: the parts go to a temporary sibling folder that is renamed into
place, so a crash never leaves a half-written model behind a valid config file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.embedders.trained_kinds import TRAINED_KINDS
from lookalike.errors import InvalidInputError, ModelError

CONFIG_FILE = "lookalike-model.json"
WEIGHTS_FILE = "weights.safetensors"
#: The newest model format this version reads.
FORMAT_VERSION = 1
#: Files that describe a model but never change what it computes (left out of the digest).
_NOT_DIGESTED = frozenset({"reconstructions.png"})


def require(module: str, purpose: str, *, extra: str = "train") -> None:
    """Fail with the install command when an optional package of an extra is missing."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"{purpose} needs the Python package {module!r}: pip install 'lookalike[{extra}]'"
        ) from exc


def read_config(folder: Path, *, kind: str | None = None) -> dict[str, Any]:
    """The parsed config of a model folder, checked for kind and format version."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelError(
            f"{path}: not found; a model folder is made by `lookalike train "
            f"{'|'.join(TRAINED_KINDS)} ... --out FOLDER`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model config ({exc}); train the model again") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path}: model config must be a JSON object; train the model again")
    found = config.get("kind")
    if found not in TRAINED_KINDS:
        kinds = ", ".join(TRAINED_KINDS)
        raise ModelError(f"{path}: field 'kind' must be one of {kinds}, got {found!r}")
    if kind is not None and found != kind:
        raise ModelError(f"{path}: holds a {found} model, not a {kind} model")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelError(f"{path}: field 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format {version} is newer than this lookalike reads "
            f"({FORMAT_VERSION}); upgrade lookalike"
        )
    return config


def config_int(config: Mapping[str, Any], key: str, folder: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModelError(
            f"{folder / CONFIG_FILE}: field {key!r} must be a positive integer, got {value!r}"
        )
    return value


def folder_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of the files that define the model, in name order."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name in _NOT_DIGESTED or path.name.startswith("."):
            continue
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_arrays(
    folder: Path, expected: Mapping[str, tuple[int, ...]]
) -> dict[str, npt.NDArray[Any]]:
    """The tensors of ``weights.safetensors`` as NumPy arrays, each checked against the
    shape the config implies (a model trained for another size or dim is refused here)."""
    require("safetensors", "reading trained weights")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found; train the model again")
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from exc
    for name, shape in expected.items():
        if name not in arrays:
            raise ModelError(
                f"{path}: tensor {name!r} is missing; the weights do not fit the network "
                f"{CONFIG_FILE} describes (trained for another image size or dimension?): keep "
                "the config that came with them, or train again"
            )
        if tuple(arrays[name].shape) != shape:
            raise ModelError(
                f"{path}: tensor {name!r} has shape {tuple(arrays[name].shape)} but "
                f"{CONFIG_FILE} implies {shape}; the weights were trained for another image "
                "size or dimension: keep the config that came with them, or train again"
            )
    return dict(arrays)


def write_model_folder(
    target: Path,
    kind: str,
    config: Mapping[str, Any],
    arrays: Mapping[str, npt.NDArray[Any]],
    *,
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """Write config, weights and extra files into ``target``, replacing an older model there.
    The config file gets ``kind`` and ``format_version`` first."""
    require("safetensors", "saving trained weights")
    from safetensors.numpy import save_file

    target = target.expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target}: is a file; --out must name a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / CONFIG_FILE).is_file():
        raise InvalidInputError(
            f"{target}: folder is not empty and holds no model; choose a new --out folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with durable.staged_folder(target) as staging:
        tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(tensors, str(staging / WEIGHTS_FILE))
        for name, data in (extra or {}).items():
            (staging / name).write_bytes(data)
        document = {"kind": kind, "format_version": FORMAT_VERSION, **config}
        (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return target
