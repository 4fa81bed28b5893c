"""The DCT perceptual hash: stable under resizing and re-encoding, far apart for different
photos, the same whether computed while indexing or from the file."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.duplicates.perceptual import file_phash, hamming, phash
from lookalike.evaluation.copies import skimage_originals
from lookalike.imaging import decode_for_model
from lookalike.input_spec import InputSpec


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return dict(skimage_originals())


def _reencoded(image: Image.Image, fmt: str, **params: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def test_resized_and_recompressed_copies_stay_within_a_few_bits(
    photos: dict[str, Image.Image],
) -> None:
    for name, image in photos.items():
        original = phash(image)
        half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        for copy in (half, _reencoded(image, "JPEG", quality=70), _reencoded(image, "PNG")):
            assert hamming(original, phash(copy)) <= 4, name


def test_different_photos_and_mirrors_are_far_apart(photos: dict[str, Image.Image]) -> None:
    hashes = {name: phash(image) for name, image in photos.items()}
    distances = [int(hamming(hashes[a], hashes[b])) for a, b in itertools.combinations(hashes, 2)]
    assert len(distances) >= 15
    assert min(distances) >= 16  # unrelated photos differ in about half of the 64 bits
    assert 24 <= float(np.mean(distances)) <= 40
    for name, image in photos.items():
        assert hamming(hashes[name], phash(ImageOps.mirror(image))) >= 16, name


def test_hash_is_a_signed_64_bit_integer_and_hamming_is_elementwise(
    photos: dict[str, Image.Image],
) -> None:
    values = [phash(image) for image in photos.values()]
    assert all(-(2**63) <= v < 2**63 for v in values)
    pairwise = hamming(values, values[::-1])
    assert pairwise.shape == (len(values),)
    assert hamming(-1, 0) == 64 and hamming(5, 5) == 0


def test_decoding_for_the_model_gives_the_files_hash(
    photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    path = tmp_path / "chelsea.jpg"
    photos["chelsea"].save(path, quality=92)
    spec = InputSpec(size=224)
    decoded = decode_for_model(path, spec, perceptual=True)
    assert decoded.pixels is not None and decoded.phash is not None
    from_file = file_phash(path)
    assert from_file is not None
    assert hamming(decoded.phash, from_file) <= 2
    assert decode_for_model(path, spec).phash is None  # only when asked for
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert file_phash(broken) is None
    assert decode_for_model(broken, spec, perceptual=True).phash is None
