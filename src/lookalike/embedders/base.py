"""The contract every embedder keeps: a batch of prepared images in, float32 (n, d) vectors out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError
from lookalike.input_spec import InputSpec

#: Re-exported: InputSpec lived here, and callers import it from here.
__all__ = ["Embedder", "EmbedderSpec", "InputSpec", "check_batch", "l2_normalise"]

JsonScalar = str | int | float | bool | None
Params = dict[str, JsonScalar | list[float] | list[int]]


@dataclass(frozen=True)
class EmbedderSpec:
    """Names an embedder and its parameters; round-trips through JSON into the index manifest."""

    name: str
    params: Params = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: object) -> EmbedderSpec:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise InvalidInputError(f"embedder spec must be an object with a 'name', got {data!r}")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise InvalidInputError(f"embedder params must be an object, got {params!r}")
        return cls(name=data["name"], params=params)

    def key(self) -> str:
        """A canonical string, equal for equal specs."""
        return json.dumps(self.to_json(), sort_keys=True)


@runtime_checkable
class Embedder(Protocol):
    """Turns batches of prepared images into vectors."""

    @property
    def spec(self) -> EmbedderSpec: ...

    @property
    def input_spec(self) -> InputSpec: ...

    @property
    def dim(self) -> int: ...

    @property
    def weights_digest(self) -> str:
        """SHA-256 of the weights, recorded in the index so a different model is never mixed in."""
        ...

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(n, h, w, 3) uint8 RGB, all of one shape the input spec accepts -> (n, dim)
        float32, L2-normalised rows. Images of several shapes: ``batching.embed_images``."""
        ...


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def check_batch(batch: npt.NDArray[np.uint8], spec: InputSpec) -> None:
    """Refuse a batch that does not keep the spec's input contract (shape, dtype)."""
    if (
        batch.ndim != 4
        or batch.shape[3] != 3
        or batch.dtype != np.uint8
        or not spec.accepts(batch.shape[1], batch.shape[2])
    ):
        if spec.whole:
            wanted = (
                f"(n, h, w, 3) with the shorter side {spec.size} and both sides multiples of "
                f"{spec.multiple}"
            )
        else:
            wanted = f"(n, {spec.size}, {spec.size}, 3)"
        raise InvalidInputError(
            f"embedder input must be uint8 of shape {wanted}, got {batch.dtype} {batch.shape}"
        )
