"""A convolutional autoencoder learned without labels: encoder -> latent vector -> decoder,
trained to reconstruct its input (mean squared error), with a held-out validation split, early
stopping on the validation loss and a fixed seed. The encoder is the embedder."""

from __future__ import annotations

import copy
import io
import itertools
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.embedders.autoencoder import ENCODER_FILE
from lookalike.embedders.model_folder import config_int, load_arrays, read_config
from lookalike.embedders.model_folder import write_model_folder as write_folder
from lookalike.errors import InvalidInputError, ModelError
from lookalike.training.progress import TrainingCallback, TrainingProgress, silent
from lookalike.training.threads import torch_threads
from lookalike.training.validation import split_indices
from lookalike.version import __version__

PREVIEW_FILE = "reconstructions.png"
_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float


def build_network(image_size: int, latent_dim: int, width: int) -> Any:
    """(encoder, decoder) as torch modules: stride-2 conv blocks down to 4x4, then a linear map
    to the latent vector; the decoder mirrors it with transposed convolutions."""
    from torch import nn

    def down(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU())

    def up(c_in: int, c_out: int) -> nn.Module:
        layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return nn.Sequential(*layers)

    channels = [width]
    side = image_size
    while side > 4:
        channels.append(min(channels[-1] * 2, width * 8))
        side //= 2
    flat = channels[-1] * 16
    encoder = nn.Sequential(
        nn.Conv2d(3, width, 3, 1, 1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        *[down(a, b) for a, b in itertools.pairwise(channels)],
        nn.Flatten(),
        nn.Linear(flat, latent_dim),
    )
    reverse = channels[::-1]
    decoder = nn.Sequential(
        nn.Linear(latent_dim, flat),
        nn.Unflatten(1, (channels[-1], 4, 4)),
        nn.ReLU(),
        *[up(a, b) for a, b in itertools.pairwise(reverse)],
        nn.Conv2d(width, 3, 3, 1, 1),
        nn.Sigmoid(),
    )
    return nn.ModuleDict({"encoder": encoder, "decoder": decoder})


class ConvAutoencoder:
    """Learns a ``latent_dim``-d embedding of ``image_size`` px images from the images alone.

    Example:
        >>> model = ConvAutoencoder(latent_dim=128, image_size=32, epochs=10)  # doctest: +SKIP
        >>> model.fit(pixels).save("models/ae")  # pixels: uint8 (n, 32, 32, 3)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        latent_dim: int = 128,
        image_size: int = 64,
        width: int = 16,
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        patience: int = 3,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.seed = seed
        self.threads = threads

    def check_params(self) -> None:
        if self.image_size not in _SIZES:
            raise InvalidInputError(
                f"image size must be one of {', '.join(map(str, _SIZES))}, got {self.image_size}"
            )
        for name in ("latent_dim", "width", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")

    # -- learning ---------------------------------------------------------------------------------

    def fit(
        self, images: npt.NDArray[np.uint8], *, progress: TrainingCallback = silent
    ) -> ConvAutoencoder:
        """Train on uint8 (n, image_size, image_size, 3) images; keeps the best validation epoch."""

        self.check_params()
        expected = (self.image_size, self.image_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
            raise InvalidInputError(
                f"training images must be uint8 of shape (n, {self.image_size}, "
                f"{self.image_size}, 3), got {images.dtype} {images.shape}"
            )
        with torch_threads(self.threads):
            return self._fit(images, progress)

    def _fit(self, images: npt.NDArray[np.uint8], progress: TrainingCallback) -> ConvAutoencoder:
        import torch

        started = time.perf_counter()
        torch.manual_seed(self.seed)
        network = build_network(self.image_size, self.latent_dim, self.width)
        train_rows, held_rows = split_indices(len(images), self.validation_fraction, seed=self.seed)
        train, held = _tensor(images[train_rows]), _tensor(images[held_rows])
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        shuffle = torch.Generator().manual_seed(self.seed)
        steps = -(-len(train) // self.batch_size)
        best, best_state, waited = float("inf"), copy.deepcopy(network.state_dict()), 0
        history: list[EpochRecord] = []
        for epoch in range(self.epochs):
            network.train()
            order = torch.randperm(len(train), generator=shuffle)
            total = 0.0
            for step in range(steps):
                batch = train[order[step * self.batch_size : (step + 1) * self.batch_size]]
                loss = _loss(network, batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.item()) * len(batch)
                seen = min((step + 1) * self.batch_size, len(train))
                progress(
                    TrainingProgress(
                        "train",
                        epoch * steps + step + 1,
                        self.epochs * steps,
                        train_loss=total / seen,
                        validation_loss=history[-1].validation_loss if history else None,
                    )
                )
            record = EpochRecord(epoch + 1, total / len(train), self._evaluate(network, held))
            history.append(record)
            progress(
                TrainingProgress(
                    "train",
                    (epoch + 1) * steps,
                    self.epochs * steps,
                    train_loss=record.train_loss,
                    validation_loss=record.validation_loss,
                )
            )
            if record.validation_loss < best:
                best, best_state, waited = (
                    record.validation_loss,
                    copy.deepcopy(network.state_dict()),
                    0,
                )
            else:
                waited += 1
                if waited >= self.patience:
                    break
        network.load_state_dict(best_state)
        network.eval()
        self.network_ = network
        self.history_ = tuple(history)
        self.best_epoch_ = min(history, key=lambda r: r.validation_loss).epoch
        self.validation_loss_ = best
        self.train_seconds_ = time.perf_counter() - started
        # Spread over the held-out rows: files come sorted by folder, often one class a folder.
        spread = np.linspace(0, len(held_rows) - 1, min(8, len(held_rows))).astype(np.int64)
        self.preview_images_ = images[held_rows[spread]]
        return self

    def _evaluate(self, network: Any, held: Any) -> float:
        import torch

        network.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(held), 512):
                batch = held[start : start + 512]
                total += float(_loss(network, batch).item()) * len(batch)
        return total / len(held)

    # -- using ------------------------------------------------------------------------------------

    def _fitted(self) -> Any:
        network = getattr(self, "network_", None)
        if network is None:
            raise InvalidInputError("the autoencoder is not trained yet: call fit() or load()")
        return network

    def encode(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Latent vectors (not normalised) of uint8 (n, size, size, 3) images, with PyTorch."""
        import torch

        network = self._fitted()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), 512):
                out.append(network["encoder"](_tensor(images[start : start + 512])).numpy())
        return np.concatenate(out).astype(np.float32)

    def reconstruct(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        import torch

        network = self._fitted()
        with torch.no_grad():
            decoded = network["decoder"](network["encoder"](_tensor(images)))
        pixels = (decoded.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255)
        out: npt.NDArray[np.uint8] = pixels.astype(np.uint8)
        return out

    def save(self, folder: Path | str) -> Path:
        """Write the model folder: config, weights (safetensors), the encoder as ONNX for fast
        inference, and a PNG of validation images (top) above their reconstructions (bottom)."""
        network = self._fitted()
        # BatchNorm's step counters are not weights (and unused with a fixed momentum).
        state = {
            k: v.detach().numpy().copy()
            for k, v in network.state_dict().items()
            if not k.endswith("num_batches_tracked")
        }
        config = {
            "image_size": self.image_size,
            "latent_dim": self.latent_dim,
            "width": self.width,
            "seed": self.seed,
            "epochs_run": len(getattr(self, "history_", ())),
            "best_epoch": getattr(self, "best_epoch_", None),
            "validation_loss": getattr(self, "validation_loss_", None),
            "train_seconds": round(float(getattr(self, "train_seconds_", 0.0)), 1),
            "lookalike_version": __version__,
        }
        extra = {ENCODER_FILE: _export_encoder(network["encoder"], self.image_size)}
        preview = getattr(self, "preview_images_", None)
        if preview is not None and len(preview):
            extra[PREVIEW_FILE] = _preview_png(preview, self.reconstruct(preview))
        return write_folder(Path(folder), "autoencoder", config, state, extra=extra)

    @classmethod
    def load(cls, folder: Path | str) -> ConvAutoencoder:
        """The trained autoencoder saved in ``folder`` (PyTorch weights, for further use)."""
        import torch

        path = Path(folder)
        config = read_config(path, kind="autoencoder")
        model = cls(
            latent_dim=config_int(config, "latent_dim", path),
            image_size=config_int(config, "image_size", path),
            width=config_int(config, "width", path),
        )
        model.check_params()
        network = build_network(model.image_size, model.latent_dim, model.width)
        state = network.state_dict()
        expected = {
            k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")
        }
        arrays = load_arrays(path, expected)
        state.update({k: torch.from_numpy(arrays[k]) for k in expected})
        network.load_state_dict(state, strict=True)
        network.eval()
        model.network_ = network
        return model


def _tensor(images: npt.NDArray[np.uint8]) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def _loss(network: Any, batch: Any) -> Any:
    from torch.nn import functional

    return functional.mse_loss(network["decoder"](network["encoder"](batch)), batch)


def _export_encoder(encoder: Any, image_size: int) -> bytes:
    """The encoder as an ONNX graph taking uint8 NHWC pixels, checked against PyTorch."""
    import torch

    from lookalike.embedders.onnx import make_session

    class Graph(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: Any) -> Any:
            return self.net(pixels.permute(0, 3, 1, 2).float() * (1.0 / 255.0))

    graph = Graph(copy.deepcopy(encoder)).eval()
    generator = torch.Generator().manual_seed(0)
    shape = (2, image_size, image_size, 3)
    sample = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / ENCODER_FILE
        with torch.no_grad(), warnings.catch_warnings():
            # The legacy exporter works offline; its notices are not for users.
            warnings.simplefilter("ignore")
            expected = graph(sample).numpy()
            torch.onnx.export(
                graph,
                (sample,),
                str(onnx_path),
                opset_version=17,
                dynamo=False,
                input_names=["image"],
                output_names=["latent"],
                dynamic_axes={"image": {0: "n"}, "latent": {0: "n"}},
            )
        (got,) = make_session(onnx_path, threads=1).run(["latent"], {"image": sample.numpy()})
        data = onnx_path.read_bytes()
    error = float(np.abs(np.asarray(got) - expected).max())
    if error > 1e-3 * max(1.0, float(np.abs(expected).max())):
        raise ModelError(f"ONNX export of the encoder differs from PyTorch by {error:.2e}")
    return data


def _preview_png(originals: npt.NDArray[np.uint8], reconstructions: npt.NDArray[np.uint8]) -> bytes:
    from PIL import Image

    cell = max(64, originals.shape[1])
    sheet = Image.new("RGB", (cell * len(originals), cell * 2), (255, 255, 255))
    for i, (a, b) in enumerate(zip(originals, reconstructions, strict=True)):
        for row, pixels in enumerate((a, b)):
            tile = Image.fromarray(pixels).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (i * cell, row * cell))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
