"""`lookalike train`: learn an embedding from your own images, then index with
`lookalike index PHOTOS --index DIR --embedder MODEL_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TextColumn

from lookalike.cli.console import err, out
from lookalike.cli.progress import PhaseBars
from lookalike.errors import InvalidInputError
from lookalike.training.progress import TrainingProgress

train_app = typer.Typer(
    help="Train an embedding on your own images: a convolutional autoencoder (no labels), a "
    "triplet-loss projection head on pretrained features (labelled folders), or a bag of visual "
    "words (ORB + k-means). The model folder it writes is used with `lookalike index PHOTOS "
    "--index DIR --embedder MODEL_DIR`.",
    no_args_is_help=True,
)

_LABELS = {
    "decode": "Decoding",
    "features": "Base features",
    "train": "Training",
}

OutDir = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Model folder to write (replaced if it holds a model).",
        show_default=False,
    ),
]
Photos = Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")]
Epochs = Annotated[int, typer.Option(help="Most passes over the training images.")]
LearningRate = Annotated[float, typer.Option(help="Adam learning rate.")]
Seed = Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")]
Workers = Annotated[
    int | None, typer.Option(help="Decoding processes (default: one per core; 0: none).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Threads = Annotated[
    int | None,
    typer.Option(
        help="PyTorch threads (default: one per core; 1 is faster while other work keeps a "
        "core busy)."
    ),
]


class TrainingBar(PhaseBars):
    """Draws training progress events: one bar per phase, with the latest losses."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        super().__init__(console, TextColumn("{task.fields[losses]}"), enabled=enabled)

    def __call__(self, event: TrainingProgress) -> None:
        parts = []
        if event.train_loss is not None:
            parts.append(f"train loss {event.train_loss:.4f}")
        if event.validation_loss is not None:
            parts.append(f"val loss {event.validation_loss:.4f}")
        if event.validation_map is not None:
            parts.append(f"val mAP {event.validation_map:.3f}")
        label = _LABELS.get(event.phase, event.phase)
        self.show(event.phase, label, event.done, event.total, losses=", ".join(parts))


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise InvalidInputError(f"{name} must be positive, got {value}")


def _skipped(skipped: tuple[tuple[str, str], ...] | tuple[str, ...]) -> None:
    for item in skipped:
        path, reason = item if isinstance(item, tuple) else (item, "could not be decoded")
        out.print(f"  skipped {path}: {reason}")


@train_app.command()
def autoencoder(
    photos: Photos,
    model_dir: OutDir,
    latent_dim: Annotated[
        int, typer.Option(help="Size of the latent vector (the embedding).")
    ] = 128,
    image_size: Annotated[
        int, typer.Option(help="Images are resized to this square size: 16, 32, 64, 128 or 256.")
    ] = 64,
    width: Annotated[
        int, typer.Option(help="Channels of the first conv layer (doubling down).")
    ] = 16,
    epochs: Epochs = 20,
    batch_size: Annotated[int, typer.Option(help="Images per training step.")] = 128,
    learning_rate: LearningRate = 1e-3,
    validation: Annotated[
        float, typer.Option(help="Fraction of the images held out to measure validation loss.")
    ] = 0.1,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better validation loss.")
    ] = 3,
    seed: Seed = 0,
    threads: Threads = None,
    workers: Workers = None,
    quiet: Quiet = False,
) -> None:
    """Train a convolutional autoencoder on the images of PHOTOS (no labels needed).

    Encoder -> latent vector -> decoder, trained to reconstruct its input; the best epoch on
    the validation images is kept. Writes weights (safetensors), the encoder as ONNX, the
    config, and reconstructions.png (validation images above their reconstructions).
    """
    from lookalike.embedders.base import InputSpec
    from lookalike.training.autoencoder import ConvAutoencoder
    from lookalike.training.data import decode_images, image_folder

    _positive("--learning-rate", learning_rate)
    model = ConvAutoencoder(
        latent_dim=latent_dim,
        image_size=image_size,
        width=width,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_fraction=validation,
        patience=patience,
        seed=seed,
        threads=threads,
    )
    model.check_params()
    folder = image_folder(photos)
    spec = InputSpec(size=image_size, crop_fraction=1.0)
    with TrainingBar(err, enabled=not quiet) as bar:
        images = decode_images(folder.paths, spec, workers=workers, progress=bar)
        model.fit(images.pixels, progress=bar)
    saved = model.save(model_dir)
    last = model.history_[-1]
    out.print(
        f"Trained an autoencoder ({latent_dim}-d, {image_size} px) on {len(images.pixels)} "
        f"images in {model.train_seconds_:.1f} s: {len(model.history_)} epochs, best epoch "
        f"{model.best_epoch_} (validation loss {model.validation_loss_:.5f}; last train loss "
        f"{last.train_loss:.5f}). Saved to {saved} (see reconstructions.png there)."
    )
    _skipped(images.skipped)


@train_app.command()
def triplet(
    labelled: Annotated[
        Path, typer.Argument(help="Labelled folder: one subfolder of images per class.")
    ],
    model_dir: OutDir,
    base: Annotated[
        str,
        typer.Option(
            help="Pretrained network whose features the head projects: lite0, lite1 or lite2."
        ),
    ] = "lite0",
    quality: Annotated[
        str,
        typer.Option(
            help="Descriptor recipe of the base features (as `lookalike index --quality`: "
            "fast, balanced, best or classic; int8 is not used for training)."
        ),
    ] = "balanced",
    dim: Annotated[int, typer.Option(help="Size of the learned embedding.")] = 256,
    hidden: Annotated[
        list[int] | None,
        typer.Option(help="Hidden layer size (repeat for more layers; default: a linear head)."),
    ] = None,
    epochs: Epochs = 30,
    classes_per_batch: Annotated[int, typer.Option(help="P: classes in each batch.")] = 16,
    images_per_class: Annotated[int, typer.Option(help="K: images of each class per batch.")] = 8,
    margin: Annotated[float, typer.Option(help="Triplet margin (on L2-normalised vectors).")] = 0.2,
    mining: Annotated[
        str, typer.Option(help="Online triplet mining in each batch: semihard, hard or all.")
    ] = "semihard",
    learning_rate: LearningRate = 1e-3,
    validation: Annotated[
        float, typer.Option(help="Fraction of each class held out to measure mAP.")
    ] = 0.2,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better held-out mAP.")
    ] = 5,
    force: Annotated[
        bool, typer.Option("--force", help="Save the head even if it is worse than its base.")
    ] = False,
    cache: Annotated[
        bool, typer.Option(help="Reuse base features cached by an earlier run on the same files.")
    ] = True,
    seed: Seed = 0,
    threads: Threads = None,
    workers: Workers = None,
    quiet: Quiet = False,
) -> None:
    """Train a projection head with triplet loss on a labelled folder.

    Base features of every image are computed once with the pretrained network (and cached),
    a share of each class is held out, and the held-out mAP is reported before (base
    features) and after (the head). A head that does not beat its base is not saved unless
    --force.
    """
    from lookalike.cache import cache_dir
    from lookalike.embedders import resolve_spec
    from lookalike.embedders.pretrained import EfficientNetLite
    from lookalike.embedders.quality import quality_named
    from lookalike.training.data import labelled_features
    from lookalike.training.triplet import TripletHead
    from lookalike.training.validation import split_indices

    _positive("--learning-rate", learning_rate)
    _positive("--margin", margin)
    base_name = resolve_spec(base).name
    if not base_name.startswith("efficientnet-lite"):
        raise InvalidInputError(f"--base must be lite0, lite1 or lite2, got {base!r}")
    head = TripletHead(
        dim=dim,
        hidden=hidden or (),
        epochs=epochs,
        classes_per_batch=classes_per_batch,
        images_per_class=images_per_class,
        margin=margin,
        mining=mining,
        learning_rate=learning_rate,
        patience=patience,
        seed=seed,
        threads=threads,
    )
    recipe = quality_named(quality).recipe
    embedder = EfficientNetLite(base_name, recipe=recipe)
    with TrainingBar(err, enabled=not quiet) as bar:
        data = labelled_features(
            labelled,
            embedder,
            cache=cache_dir() / "features" if cache else None,
            workers=workers,
            progress=bar,
        )
        train, held = split_indices(len(data.labels), validation, seed=seed, labels=data.labels)
        head.fit(
            data.features[train],
            data.labels[train],
            validation=(data.features[held], data.labels[held]),
            progress=bar,
        )
    out.print(
        f"Trained a {dim}-d triplet head on {base_name} features of {len(train)} images "
        f"({len(data.classes)} classes) in {head.train_seconds_:.1f} s, best epoch "
        f"{head.best_epoch_} of {len(head.history_)}. Held-out mAP ({len(held)} images): "
        f"{head.base_map_:.3f} with {base_name} features, {head.map_:.3f} with the head."
    )
    _skipped(data.skipped)
    saved = head.save(
        model_dir,
        base=base_name,
        base_digest=embedder.weights_digest,
        base_recipe=recipe.to_params(),
        force=force,
    )
    out.print(f"Saved to {saved}.")


@train_app.command()
def bovw(
    photos: Photos,
    model_dir: OutDir,
    words: Annotated[
        int, typer.Option(help="Visual words in the vocabulary (the dimension).")
    ] = 256,
    image_size: Annotated[
        int, typer.Option(help="Images are resized to this square size before ORB.")
    ] = 256,
    keypoints: Annotated[int, typer.Option(help="Most ORB corners detected per image.")] = 500,
    grid_step: Annotated[
        int, typer.Option(help="Pixels between the dense grid points also described.")
    ] = 16,
    max_images: Annotated[
        int, typer.Option(help="Most images (a seeded sample) used to learn the vocabulary.")
    ] = 10_000,
    seed: Seed = 0,
    workers: Workers = None,
    quiet: Quiet = False,
) -> None:
    """Learn a bag-of-visual-words vocabulary (ORB descriptors, k-means, tf-idf weights).

    The classical baseline: an image becomes the tf-idf weighted histogram of the visual words
    of its ORB descriptors (at detected corners and on a dense grid).
    """
    from lookalike.embedders.bovw import BagOfVisualWords
    from lookalike.training.data import decode_images, image_folder

    model = BagOfVisualWords(
        words=words,
        image_size=image_size,
        keypoints=keypoints,
        grid_step=grid_step,
        max_images=max_images,
        seed=seed,
    )
    folder = image_folder(photos)
    with TrainingBar(err, enabled=not quiet) as bar:
        images = decode_images(folder.paths, model.input_spec, workers=workers, progress=bar)
    err.print(f"Learning {words} visual words from {min(len(images.pixels), max_images)} images")
    model.fit(images.pixels)
    saved = model.save(model_dir)
    out.print(
        f"Learned {words} visual words from {model.train_images_} images in "
        f"{model.train_seconds_:.1f} s. Saved to {saved}."
    )
    _skipped(images.skipped)
