"""Products in results: an index made from a product feed records which metadata field names
each image's product; a search may then return each product once (its best-matching image)
and leave a product out (the product a "more like this product" search starts from)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lookalike.matches import Match

#: Candidates searched per result when results are grouped (products have several images);
#: searched deeper while a query still has fewer than k products and more images exist.
GROUP_DEPTH = 4


@dataclass(frozen=True)
class ProductGrouping:
    """``field``: the metadata field naming products; ``one_per_product``: keep only each
    product's best image; ``exclude``: per query, a product to leave out (or None)."""

    field: str
    one_per_product: bool = True
    exclude: Sequence[str | None] | None = None

    def apply(self, matches: list[Match], row: int) -> list[Match]:
        """The matches of query ``row`` without its excluded product, one per product if asked."""
        excluded = self.exclude[row] if self.exclude is not None else None
        seen: set[str] = set()
        kept = []
        for match in matches:
            product = match.product_id
            if product is not None and product == excluded:
                continue
            if self.one_per_product and product is not None:
                if product in seen:
                    continue
                seen.add(product)
            kept.append(match)
        return kept


def product_of(field: str | None, metadata: dict[str, object]) -> str | None:
    """An image's product id (None: the index records no product field, or the image has none)."""
    if field is None:
        return None
    value = metadata.get(field)
    return None if value is None else str(value)


__all__ = ["GROUP_DEPTH", "ProductGrouping", "product_of"]
