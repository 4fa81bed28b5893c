"""A region of a query image: the part a user boxed ("the sofa in this lobby photo").

Coordinates are pixels of the image as a viewer shows it, i.e. after its EXIF orientation is
applied: ``x0, y0`` the top-left corner, ``x1, y1`` the bottom-right one (exclusive), floats
allowed (a page sends what the pointer gave). Every front end parses the same text,
``x0,y0,x1,y1``, through :meth:`Box.parse`, and every consumer checks a box against its image
through :meth:`Box.check` before cutting it out: one set of rules, one set of messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lookalike.errors import InvalidInputError

#: The smallest region side, in pixels of the original image. Smaller regions hold too little
#: for the network (a 32-pixel side is one cell of its last feature map at full scale).
MIN_BOX_SIDE = 32

#: An image to search with or explain: a file path, the bytes of an image file, or a decoded
#: (upright) PIL image.
ImageSource = str | Path | bytes | Image.Image


@dataclass(frozen=True)
class Box:
    """A rectangle of an image, in pixels: ``x0 <= x < x1`` and ``y0 <= y < y1``.

    Example:
        >>> Box.parse("10,20,110,220")
        Box(x0=10.0, y0=20.0, x1=110.0, y1=220.0)
        >>> Box.parse("10,20,110,220").size
        (100.0, 200.0)
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(v) for v in values):
            raise InvalidInputError(f"box: coordinates must be finite numbers, got {values}")
        for low, high, axis in ((self.x0, self.x1, "x"), (self.y0, self.y1, "y")):
            if high <= low:
                raise InvalidInputError(
                    f"box {self.text()}: {axis}1 must be greater than {axis}0 (x0,y0 is the "
                    "top-left corner, x1,y1 the bottom-right one)"
                )

    @classmethod
    def parse(cls, text: str) -> Box:
        """``"x0,y0,x1,y1"`` (pixels, spaces allowed) as a box; a clear error otherwise."""
        parts = [p.strip() for p in text.split(",")]
        try:
            if len(parts) != 4:
                raise ValueError
            x0, y0, x1, y1 = (float(p) for p in parts)
        except ValueError:
            raise InvalidInputError(
                f"box {text!r}: expected four numbers x0,y0,x1,y1 (pixels of the image as "
                "shown, top-left then bottom-right corner), e.g. 40,30,360,290"
            ) from None
        return cls(x0, y0, x1, y1)

    @property
    def size(self) -> tuple[float, float]:
        """Width and height in pixels."""
        return self.x1 - self.x0, self.y1 - self.y0

    def text(self) -> str:
        """The box as :meth:`parse` reads it."""
        return ",".join(f"{v:g}" for v in (self.x0, self.y0, self.x1, self.y1))

    def to_json(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]

    def check(self, width: int, height: int, *, name: str = "query") -> None:
        """Refuse a box that leaves a ``width`` x ``height`` image or is too small for the
        network, naming ``name`` (the query), the image's size and the fix."""
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise InvalidInputError(
                f"{name}: box {self.text()} is not inside the image, which is {width}x{height} "
                f"pixels (as shown, after its EXIF orientation); use 0 <= x0 < x1 <= {width} "
                f"and 0 <= y0 < y1 <= {height}"
            )
        w, h = self.size
        if min(w, h) < MIN_BOX_SIDE:
            raise InvalidInputError(
                f"{name}: box {self.text()} is {w:g}x{h:g} pixels, too small for the network; "
                f"make both sides at least {MIN_BOX_SIDE} pixels"
            )

    def pixels(self) -> tuple[int, int, int, int]:
        """The box rounded to whole pixels (left, top, right, bottom), as PIL's crop takes it."""
        left, top = math.floor(self.x0), math.floor(self.y0)
        return left, top, max(left + 1, round(self.x1)), max(top + 1, round(self.y1))

    def scaled(self, factor_x: float, factor_y: float) -> Box:
        """The same region of the image decoded at another scale (JPEG draft decoding)."""
        return Box(self.x0 * factor_x, self.y0 * factor_y, self.x1 * factor_x, self.y1 * factor_y)

    def crop(self, image: Image.Image, *, name: str = "query") -> Image.Image:
        """The region of an upright ``image`` (checked first)."""
        self.check(*image.size, name=name)
        return image.crop(self.pixels())


@dataclass(frozen=True)
class Region:
    """A query that is part of an image: search with what ``box`` holds, not the whole picture.
    Accepted wherever a query image is (``SearchEngine.search``, ``QueryPipeline.decode``);
    ``image`` is a path, the bytes of an image file or a decoded (upright) PIL image.

    Example:
        >>> engine.search([Region("lobby.jpg", Box.parse("420,310,980,720"))])  # doctest: +SKIP
    """

    image: ImageSource = field(repr=False)
    box: Box


__all__ = ["MIN_BOX_SIDE", "Box", "ImageSource", "Region"]
