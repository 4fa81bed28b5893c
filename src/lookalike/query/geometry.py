"""Geometric verification ("copy mode"): is a candidate the same picture as the query, edited?

Two images of one picture share many local features that one homography maps onto each other,
whatever was done to them (crop, rotation, scaling, recompression, a border, text, colour);
two different photos, even of the same place, share few. So the verifier matches ORB features
of the query with each candidate's (Hamming distance, Lowe's ratio test), fits a homography
with RANSAC and counts its inliers. ORB is not mirror-invariant and mirrored copies are common,
so the query's mirror image is matched too and the better count kept.

Each image is scaled so that its long side is ``side`` pixels (up or down), which puts a copy
and its original at about the same scale whatever their file sizes, and bounds the cost.

Candidate features are computed on demand from the indexed files, not stored at index time.
Stored ORB features (1,000 keypoints: 32-byte descriptors and coordinates) measured 38 KiB an
image on 1-4 MP photos, 3.9 GB per 100,000 images, and would slow every indexing run for a
mode that is opt-in. On demand, a candidate costs one reduced-scale decode and one ORB pass
more than its matching (benchmarks/verify_cost.py: about twice the CPU time of a warm cache,
whose cost is what stored features would cost), and a bounded in-memory cache (keyed by path,
size and mtime) makes repeated candidates free. Candidates are read at the absolute paths the
catalog records (indexing resolves every path, uploads included). A candidate whose file is
gone or unreadable is not verified (its inliers are ``None``); it never fails the query.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.errors import ImageError, InvalidInputError
from lookalike.imaging import DEFAULT_MAX_PIXELS, open_image
from lookalike.indexes.base import FloatArray, IdArray
from lookalike.search_options import DEFAULT_VERIFY_TOP

GreyImage = npt.NDArray[np.uint8]

#: Inliers from which a candidate counts as a copy (measured: see :class:`GeometricVerifier`).
DEFAULT_MIN_INLIERS = 15


@dataclass(frozen=True)
class Features:
    """An image's ORB keypoints: (m, 2) float32 coordinates and (m, 32) uint8 descriptors."""

    points: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class QueryFeatures:
    """A query's features and those of its mirror image (None when mirrors are not tried)."""

    direct: Features
    mirrored: Features | None


def grey_image(image: Image.Image, side: int) -> GreyImage:
    """``image`` in greyscale, scaled so that its long side is ``side`` pixels."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    grey = image.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def grey_decode_side(side: int) -> int:
    """The shorter side a JPEG is decoded to at least for a greyscale image of long side
    ``side``: 3/4 of it, enough for a 4:3 photo without decoding detail the verifier drops."""
    return 3 * side // 4


def load_grey(
    source: Path | str | bytes | Image.Image, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> GreyImage:
    """Decode an image (path, bytes or PIL image) into the greyscale image the verifier takes;
    an undecodable one raises ``ImageError``."""
    if isinstance(source, Image.Image):
        return grey_image(source, side)
    image = open_image(source, min_side=grey_decode_side(side), max_pixels=max_pixels)
    return grey_image(image, side)


@dataclass(frozen=True)
class PairGeometry:
    """What matching two images found: matches passing the ratio test, the inliers of the
    best homography among them, and that homography (None: none found), fitted between
    images of long side ``side``."""

    matches: int
    inliers: int
    homography: npt.NDArray[np.float64] | None
    side: int

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def distortion(self) -> float:
        """How far the homography is from a similarity transform (rotation, uniform scale,
        shift): the larger of its anisotropy (1 - the ratio of the linear part's singular
        values: shear or a stretch) and its perspective (how much the scale changes across
        the image); infinity without a homography or with a reflection."""
        h = self.homography
        if h is None or abs(float(h[2, 2])) < 1e-12:
            return float("inf")
        h = h / h[2, 2]
        linear = h[:2, :2]
        if float(np.linalg.det(linear)) <= 0.0:
            return float("inf")
        low, high = np.linalg.svd(linear, compute_uv=False)[::-1]
        anisotropy = 1.0 - float(low) / float(high) if high > 0 else float("inf")
        perspective = float(np.hypot(h[2, 0], h[2, 1])) * self.side
        return max(anisotropy, perspective)

    def scale(self) -> float:
        """The homography's scale (the square root of its linear part's determinant)."""
        h = self.homography
        if h is None or abs(float(h[2, 2])) < 1e-12:
            return 0.0
        return float(np.sqrt(max(float(np.linalg.det(h[:2, :2] / h[2, 2])), 0.0)))


@dataclass(frozen=True)
class SimilarityAcceptance:
    """A stricter "same picture" than copy mode's inlier count, for pairs the embedding
    leaves undecided: enough inliers, most matches among them, and a homography near a
    similarity transform (rotation, uniform scale, shift: what a rotation or a crop does;
    chance matches on faces, stamps or products fit a distorted one, or few of their
    matches fit any). Calibrated by benchmarks/duplicate_tiers.py on its calibration half."""

    min_inliers: int = 20
    min_inlier_ratio: float = 0.85
    max_distortion: float = 0.75

    def __post_init__(self) -> None:
        if self.min_inliers < 4:
            raise InvalidInputError(f"min_inliers must be at least 4, got {self.min_inliers}")
        if not 0.0 <= self.min_inlier_ratio <= 1.0:
            raise InvalidInputError(
                f"min_inlier_ratio is a fraction (0..1), got {self.min_inlier_ratio}"
            )
        if self.max_distortion < 0.0:
            raise InvalidInputError(
                f"max_distortion must not be negative, got {self.max_distortion}"
            )

    def accepts(self, found: PairGeometry | None) -> bool:
        """Whether a pair's geometry says "the same picture" (None: unreadable, never)."""
        return (
            found is not None
            and found.inliers >= self.min_inliers
            and found.inlier_ratio >= self.min_inlier_ratio
            and found.distortion() <= self.max_distortion
        )


class GeometricVerifier:
    """Counts the inliers of a RANSAC homography between a query and candidate images.

    ``min_inliers`` (15): on the copy-detection set (8 photos, 9 edits each, seed 7) against
    the other originals and 30 unrelated photos, every copy had at least 31 inliers with its
    original (the crop + JPEG 15 + colour combination; 80 or more for every single edit) and no
    unrelated pair more than 10 (benchmarks/verify_thresholds.py).
    ``ratio`` is Lowe's ratio test; ``cache_size`` bounds how many candidates' features are
    kept in memory (about 40 KB each); ``mirror``: also match the query's mirror image (twice
    the matching cost; without it a mirrored copy is not recognised).

    Example:
        >>> verifier = GeometricVerifier()  # doctest: +SKIP
        >>> verifier.inliers(verifier.query_features(grey), "photo.jpg")  # doctest: +SKIP
        87
    """

    def __init__(
        self,
        *,
        side: int = 512,
        features: int = 1000,
        ratio: float = 0.8,
        min_inliers: int = DEFAULT_MIN_INLIERS,
        cache_size: int = 512,
        mirror: bool = True,
    ) -> None:
        if side < 64:
            raise InvalidInputError(f"side must be at least 64 pixels, got {side}")
        if min_inliers < 4:
            raise InvalidInputError(f"min_inliers must be at least 4, got {min_inliers}")
        if not 0.0 < ratio <= 1.0:
            raise InvalidInputError(f"ratio must be in (0, 1], got {ratio}")
        self.side = side
        self.features = features
        self.ratio = ratio
        self.min_inliers = min_inliers
        self.cache_size = cache_size
        self.mirror = mirror
        self._cache: OrderedDict[tuple[str, int, int, bool], Features] = OrderedDict()
        self._lock = threading.Lock()

    # -- features -------------------------------------------------------------------------------

    def extract(self, grey: GreyImage) -> Features:
        """ORB features of a greyscale image (as :func:`grey_image` makes them)."""
        cv2 = _cv2()
        orb = cv2.ORB_create(nfeatures=self.features)
        # Equalised, a dark or low-contrast copy still has corners over FAST's threshold.
        keypoints, descriptors = orb.detectAndCompute(cv2.equalizeHist(grey), None)
        if descriptors is None or not keypoints:
            return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        points = np.array([k.pt for k in keypoints], dtype=np.float32)
        return Features(points, np.asarray(descriptors, dtype=np.uint8))

    def query_features(self, grey: GreyImage) -> QueryFeatures:
        mirrored = self.extract(np.ascontiguousarray(grey[:, ::-1])) if self.mirror else None
        return QueryFeatures(self.extract(grey), mirrored)

    def file_features(self, path: str, *, mirrored: bool = False) -> Features | None:
        """The features of an indexed file (or of its mirror image), from the cache when the
        file has not changed since; ``None`` when it is gone or cannot be decoded."""
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        key = (path, stat.st_size, stat.st_mtime_ns, mirrored)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            grey = load_grey(Path(path), self.side)
            found = self.extract(np.ascontiguousarray(grey[:, ::-1]) if mirrored else grey)
        except ImageError:
            return None
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def forget(self) -> None:
        """Drop every cached candidate's features (a benchmark measures the cold cost so)."""
        with self._lock:
            self._cache.clear()

    # -- matching -------------------------------------------------------------------------------

    def match(self, query: Features, candidate: Features) -> int:
        """Inliers of the best homography mapping ``query``'s features onto ``candidate``'s."""
        return self.fit(query, candidate).inliers

    def fit(self, query: Features, candidate: Features) -> PairGeometry:
        """The best homography mapping ``query``'s features onto ``candidate``'s, with its
        inliers among the matches that passed the ratio test."""
        if len(query) < 4 or len(candidate) < 4:
            return PairGeometry(0, 0, None, self.side)
        cv2 = _cv2()
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        pairs = matcher.knnMatch(query.descriptors, candidate.descriptors, k=2)
        best: dict[int, tuple[float, int]] = {}  # candidate keypoint -> (distance, query keypoint)
        for p in pairs:
            if len(p) == 2 and p[0].distance < self.ratio * p[1].distance:
                first = p[0]
                if first.trainIdx not in best or first.distance < best[first.trainIdx][0]:
                    best[first.trainIdx] = (first.distance, first.queryIdx)
        # One match per candidate keypoint: a candidate with few distinct features (a tiny,
        # blurred image) would otherwise "match" hundreds of query features onto a few points.
        if len(best) < 4:
            return PairGeometry(len(best), 0, None, self.side)
        source = query.points[[q for _, q in best.values()]]
        target = candidate.points[list(best)]
        # 1 % of the long side: a copy's features land within a few pixels of where H says.
        threshold = max(3.0, 0.01 * self.side)
        # USAC's fast RANSAC: the same inlier counts here as classic RANSAC, at a tenth of the
        # cost on unrelated pairs (classic RANSAC runs its full 2,000 iterations on them).
        homography, mask = cv2.findHomography(source, target, cv2.USAC_FAST, threshold)
        if homography is None or mask is None:
            return PairGeometry(len(best), 0, None, self.side)
        return PairGeometry(len(best), int(mask.sum()), np.asarray(homography), self.side)

    def inliers(self, query: QueryFeatures, path: str) -> int | None:
        """Inliers between a query and an indexed file, the mirror image's count if better;
        ``None`` when the file cannot be read."""
        candidate = self.file_features(path)
        if candidate is None:
            return None
        count = self.match(query.direct, candidate)
        if query.mirrored is not None:
            count = max(count, self.match(query.mirrored, candidate))
        return count

    def pair_inliers(self, first: str, second: str) -> int | None:
        """Inliers between two indexed files (the mirror image of the first tried only when
        the direct match falls short); ``None`` when either cannot be read."""
        one, other = self.file_features(first), self.file_features(second)
        if one is None or other is None:
            return None
        count = self.match(one, other)
        if count < self.min_inliers and self.mirror:
            mirror = self.file_features(first, mirrored=True)
            count = max(count, self.match(mirror, other)) if mirror is not None else count
        return count

    def pair_geometry(self, first: str, second: str) -> PairGeometry | None:
        """The homography between two indexed files, or between the first's mirror image and
        the second when that has more inliers; ``None`` when either cannot be read."""
        one, other = self.file_features(first), self.file_features(second)
        if one is None or other is None:
            return None
        found = self.fit(one, other)
        if self.mirror:
            mirror = self.file_features(first, mirrored=True)
            if mirror is not None:
                flipped = self.fit(mirror, other)
                found = flipped if flipped.inliers > found.inliers else found
        return found

    def is_copy(self, inliers: int | None) -> bool:
        """Whether a verification's count says "the same picture"."""
        return inliers is not None and inliers >= self.min_inliers

    # -- the re-ranking stage -------------------------------------------------------------------

    def rerank(
        self,
        greys: Sequence[GreyImage | None],
        scores: FloatArray,
        ids: IdArray,
        paths: Mapping[int, str],
        *,
        top: int = DEFAULT_VERIFY_TOP,
        exclude: Sequence[int | None] | None = None,
    ) -> tuple[FloatArray, IdArray, list[dict[int, int]]]:
        """Verify each query's first ``top`` candidates (files named by ``paths``; ids missing
        from it, -1 and excluded ids are skipped) and put the verified copies first, most
        inliers first; the rest keep their order. Scores stay each candidate's similarity.
        Returns the re-ordered (scores, ids) and, per query, the inliers of each candidate
        checked. A query without an image (``None``) keeps its order, unverified."""
        if top < 1:
            raise InvalidInputError(f"verify_top must be at least 1, got {top}")
        skip = list(exclude) if exclude is not None else [None] * len(ids)
        new_scores, new_ids, inliers = scores.copy(), ids.copy(), []
        rows = zip(greys, scores, ids, skip, strict=True)
        for row, (grey, row_scores, row_ids, excluded) in enumerate(rows):
            counts: dict[int, int] = {}
            if grey is not None:
                query = self.query_features(grey)
                checked = 0
                for image_id in row_ids.tolist():
                    if checked == top:
                        break
                    if image_id < 0 or image_id == excluded or image_id not in paths:
                        continue
                    checked += 1
                    count = self.inliers(query, paths[image_id])
                    if count is not None:
                        counts[image_id] = count
            copies = [c for c, i in enumerate(row_ids.tolist()) if self.is_copy(counts.get(i))]
            copies.sort(key=lambda c: -counts[int(row_ids[c])])  # stable: ties keep their order
            chosen = set(copies)
            order = copies + [c for c in range(len(row_ids)) if c not in chosen]
            new_scores[row], new_ids[row] = row_scores[order], row_ids[order]
            inliers.append(counts)
        return new_scores, new_ids, inliers


def _cv2() -> ModuleType:
    from lookalike.embedders.model_folder import require

    require("cv2", "copy mode (geometric verification, --verify)", extra="copies")
    import cv2

    return cv2


__all__ = [
    "DEFAULT_MIN_INLIERS",
    "DEFAULT_VERIFY_TOP",
    "Features",
    "GeometricVerifier",
    "PairGeometry",
    "QueryFeatures",
    "SimilarityAcceptance",
    "grey_decode_side",
    "grey_image",
    "load_grey",
]
