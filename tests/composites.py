"""Composite query images for region search: one photo pasted into a quarter of a canvas whose
other quarters hold other photos, with the box around the pasted photo."""

from __future__ import annotations

from PIL import Image, ImageOps

from lookalike.region import Box

#: The canvas: four 512 x 384 quarters.
CANVAS = (1024, 768)


def composite(
    target: Image.Image, others: list[Image.Image], quarter: int
) -> tuple[Image.Image, Box]:
    """``target`` fitted (aspect kept, centred) into quarter ``quarter`` (0 top-left, 1
    top-right, 2 bottom-left, 3 bottom-right) and ``others`` filling the other three; the box
    is exactly the pasted target."""
    if len(others) != 3:
        raise ValueError(f"three other photos needed, got {len(others)}")
    cell_w, cell_h = CANVAS[0] // 2, CANVAS[1] // 2
    canvas = Image.new("RGB", CANVAS, (128, 128, 128))
    rest = iter(others)
    box = Box(0, 0, 1, 1)
    for cell in range(4):
        left, top = (cell % 2) * cell_w, (cell // 2) * cell_h
        if cell == quarter:
            fitted = ImageOps.contain(target.convert("RGB"), (cell_w, cell_h))
            x, y = left + (cell_w - fitted.width) // 2, top + (cell_h - fitted.height) // 2
            canvas.paste(fitted, (x, y))
            box = Box(x, y, x + fitted.width, y + fitted.height)
        else:
            canvas.paste(ImageOps.fit(next(rest).convert("RGB"), (cell_w, cell_h)), (left, top))
    return canvas, box
