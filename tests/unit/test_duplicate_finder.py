"""Tiered duplicate finding on real photos indexed with the fast embedder: identical files,
same pictures (perceptual hash stored at index time), dismissed pairs, perceptual hashes
filled in lazily for an index without them, and edited copies that stand out from their
neighbourhood (the density rule) while look-alike faces do not."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import skimage.data
from PIL import Image

from lookalike import SearchEngine
from lookalike.duplicates.finder import DEFAULT_TIERS, TierThresholds, find_duplicates
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport, Tier
from lookalike.duplicates.stored_hashes import StoredPerceptualHashes
from lookalike.errors import InvalidInputError
from lookalike.evaluation.copies import make_copy_set, skimage_originals
from lookalike.evaluation.duplicate_set import VARIANT_TIERS, make_duplicate_set
from lookalike.query.geometry import GeometricVerifier, SimilarityAcceptance
from lookalike.store import IndexStore
from tests.conftest import FAST_EMBEDDER

COPIED = ("chelsea", "coffee", "rocket")
#: Raw pixels make unrelated photos look alike (cosine 0.75-0.95 here), so these tests start
#: the edited-copy tier where the fast embedder tells copies from other photos.
OPTIONS = DuplicateOptions(threshold=0.97)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight photos; three of them also as a byte copy, a half-size copy and a PNG."""
    root = tmp_path_factory.mktemp("archive")
    (root / "copies").mkdir()
    for name, image in skimage_originals():
        image.save(root / f"{name}.jpg", quality=92)
        if name in COPIED:
            shutil.copyfile(root / f"{name}.jpg", root / "copies" / f"{name}-copy.jpg")
            half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
            half.save(root / "copies" / f"{name}-half.jpg", quality=90)
            image.save(root / "copies" / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def archive_index(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("indexes") / "archive.idx"
    with SearchEngine.create(directory, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(archive)
    return directory


def _name(report: DuplicateReport, image_id: int) -> str:
    return Path(report.records[image_id].path).name


def _tiers(report: DuplicateReport) -> dict[frozenset[str], Tier]:
    return {
        frozenset((_name(report, p.first), _name(report, p.second))): p.tier
        for g in report.groups
        for p in g.pairs
    }


def _stored_phashes(index: Path) -> int:
    with sqlite3.connect(index / "catalog.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM perceptual_hashes").fetchone()[0])


def test_index_time_hashes_are_stored_for_every_file_content(archive_index: Path) -> None:
    with sqlite3.connect(archive_index / "catalog.sqlite") as db:
        contents = db.execute("SELECT COUNT(DISTINCT hash) FROM images").fetchone()[0]
    assert contents == 8 + 2 * len(COPIED)  # byte copies share their content hash
    assert _stored_phashes(archive_index) == contents


def test_pairs_are_labelled_identical_and_same_picture(archive_index: Path) -> None:
    with SearchEngine.open(archive_index) as engine:
        report = engine.find_duplicates(OPTIONS)
    tiers = _tiers(report)
    for name in COPIED:
        assert tiers[frozenset((f"{name}.jpg", f"{name}-copy.jpg"))] is Tier.IDENTICAL
        assert tiers[frozenset((f"{name}.jpg", f"{name}-half.jpg"))] is Tier.SAME_PICTURE
        assert tiers[frozenset((f"{name}.jpg", f"{name}.png"))] is Tier.SAME_PICTURE
    # Each copied photo is one group of four; no pair links two different photos.
    families = [
        {n.split("-")[0].split(".")[0] for n in map(lambda i: _name(report, i), g.ids)}
        for g in report.groups
    ]
    assert sorted(len(g.ids) for g in report.groups if len(g.ids) == 4) == [4, 4, 4]
    assert all(len(f) == 1 for f in families)
    assert report.dismissed_pairs == 0


def test_dismissed_pairs_are_left_out_and_counted(archive_index: Path) -> None:
    store = IndexStore.open(archive_index)
    try:
        records = {r.id: r for r in store.catalog.all_records()}
        ids, vectors = store.load_vectors()
        by_name = {Path(r.path).name: r for r in records.values()}
        a, b = by_name["coffee.jpg"].hash, by_name["coffee-half.jpg"].hash
        options = OPTIONS
        lookup = StoredPerceptualHashes(store, records)
        before = find_duplicates(ids, vectors, records, options, phashes=lookup)
        after = find_duplicates(
            ids, vectors, records, options, phashes=lookup, dismissed={(min(a, b), max(a, b))}
        )
    finally:
        store.close()
    pair = frozenset(("coffee.jpg", "coffee-half.jpg"))
    assert pair in _tiers(before) and pair not in _tiers(after)
    # The byte copy of coffee.jpg has the same content, so its pair with the half-size
    # copy is the same decision and goes too.
    assert after.dismissed_pairs == before_count(before, "coffee-half.jpg")
    assert (
        sum(len(g.pairs) for g in after.groups)
        == sum(len(g.pairs) for g in before.groups) - after.dismissed_pairs
    )


def before_count(report: DuplicateReport, name: str) -> int:
    """Pairs of ``name`` with a file of the other content (the original or its byte copy)."""
    return sum(
        1
        for pair, _ in _tiers(report).items()
        if name in pair and any(n in pair for n in ("coffee.jpg", "coffee-copy.jpg"))
    )


def test_hashes_are_computed_lazily_for_an_index_without_them(
    archive_index: Path, tmp_path: Path
) -> None:
    older = tmp_path / "older.idx"
    shutil.copytree(archive_index, older)
    with sqlite3.connect(older / "catalog.sqlite") as db:
        db.execute("DELETE FROM perceptual_hashes")
    with SearchEngine.open(older) as engine:  # read-only: computed, not kept
        read_only = _tiers(engine.find_duplicates(OPTIONS))
    assert _stored_phashes(older) == 0
    with SearchEngine.open(older, writable=True) as engine:
        writable = _tiers(engine.find_duplicates(OPTIONS))
    with SearchEngine.open(archive_index) as engine:
        stored = _tiers(engine.find_duplicates(OPTIONS))
    assert read_only == writable == stored
    # Only the candidates' hashes were needed: the copied photos' three contents each.
    assert _stored_phashes(older) == 3 * len(COPIED)


def test_without_hashes_or_files_same_pictures_need_the_cosine_alone(
    archive_index: Path, tmp_path: Path
) -> None:
    older = tmp_path / "older.idx"
    shutil.copytree(archive_index, older)
    with sqlite3.connect(older / "catalog.sqlite") as db:
        db.execute("DELETE FROM perceptual_hashes")
    store = IndexStore.open(older)
    try:
        ids, vectors = store.load_vectors()
        # The files moved away since indexing: no hash can be computed.
        records = {r.id: replace(r, path=r.path + ".gone") for r in store.catalog.all_records()}
        lookup = StoredPerceptualHashes(store, records)
        assert lookup(ids.tolist()) == {}

        def labels(alone: float) -> set[Tier]:
            tiers = replace(DEFAULT_TIERS, same_picture_alone=alone)
            report = find_duplicates(ids, vectors, records, OPTIONS, phashes=lookup, tiers=tiers)
            return {p.tier for g in report.groups for p in g.pairs}

        assert labels(1.0) == {Tier.IDENTICAL, Tier.EDITED_COPY}
        assert labels(0.97) == {Tier.IDENTICAL, Tier.SAME_PICTURE}
    finally:
        store.close()
    assert lookup.computed == 0


def test_thresholds_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="same_picture_bits"):
        replace(DEFAULT_TIERS, same_picture_bits=65)
    with pytest.raises(InvalidInputError, match="agree_bits"):
        replace(DEFAULT_TIERS, agree_bits=-1)
    with pytest.raises(InvalidInputError, match="edited_copy"):
        replace(DEFAULT_TIERS, edited_copy=1.5)
    with pytest.raises(InvalidInputError, match="contrast"):
        replace(DEFAULT_TIERS, contrast=1.5)
    with pytest.raises(InvalidInputError, match="contrast_floor"):
        replace(DEFAULT_TIERS, contrast_floor=-2.0)
    with pytest.raises(InvalidInputError, match="undecided_contrast"):
        replace(DEFAULT_TIERS, undecided_contrast=-0.1)
    with pytest.raises(InvalidInputError, match="undecided_floor"):
        replace(DEFAULT_TIERS, undecided_floor=1.2)
    with pytest.raises(InvalidInputError, match="background_rank"):
        replace(DEFAULT_TIERS, background_rank=0)
    assert DEFAULT_TIERS.lowest(True) <= DEFAULT_TIERS.lowest(False)
    vectors = np.eye(3, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="threshold"):
        find_duplicates(np.arange(3), vectors, {}, DuplicateOptions(threshold=2.0))


@pytest.fixture(scope="module")
def crowded_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight photos, a colour-changed and a 60 % crop of each, among 100 faces (with raw
    pixels, faces crowd each other: hundreds of face pairs reach cosine 0.9); coffee and
    retina also have four resized copies each (with the photo, as many as the background
    rank)."""
    root = tmp_path_factory.mktemp("crowded")
    made = make_copy_set(skimage_originals(), root / "set", seed=7, edits=("colour", "crop60"))
    (root / "set" / "resized").mkdir()
    for path in made.originals:
        if path.stem in RESIZED:
            with Image.open(path) as image:
                for scale in (0.8, 0.6, 0.5, 0.4):
                    size = (round(image.width * scale), round(image.height * scale))
                    copy = image.resize(size, Image.Resampling.LANCZOS)
                    copy.save(root / "set" / "resized" / f"{path.stem}__{scale}.jpg", quality=90)
    (root / "set" / "faces").mkdir()
    for number, face in enumerate(skimage.data.lfw_subset()[:100]):
        pixels = np.clip(face * 255.0, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels).resize((100, 100), Image.Resampling.BICUBIC)
        image.save(root / "set" / "faces" / f"face{number:03d}.jpg", quality=92)
    with SearchEngine.create(root / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(root / "set")
    return root / "idx"


RESIZED = ("coffee", "retina")
#: Only the density rule labels pairs (every cosine and hash tier is out of reach: without
#: hashes, same pictures need ``same_picture_alone``; ``same_picture_cosine`` only says which
#: pictures are near-identical and count once in a background).
DENSITY_ONLY = replace(
    DEFAULT_TIERS,
    same_picture_cosine=0.99,
    same_picture_alone=1.0,
    edited_copy=1.0,
    agree_cosine=1.0,
    background_rank=5,
    contrast=0.45,
    contrast_floor=0.9,
)


def test_copies_that_stand_out_pair_and_crowded_faces_do_not(crowded_index: Path) -> None:
    store = IndexStore.open(crowded_index)
    try:
        records = {r.id: r for r in store.catalog.all_records()}
        ids, vectors = store.load_vectors()

        def pairs(tiers: TierThresholds) -> dict[frozenset[str], float]:
            report = find_duplicates(ids, vectors, records, DuplicateOptions(), tiers=tiers)
            return {
                frozenset((_name(report, p.first), _name(report, p.second))): p.score
                for g in report.groups
                for p in g.pairs
            }

        found = pairs(DENSITY_ONLY)
        off = pairs(replace(DENSITY_ONLY, contrast=1.0))
        crowded = pairs(replace(DENSITY_ONLY, same_picture_cosine=1.0))
    finally:
        store.close()
    stem = {Path(r.path).name: Path(r.path).stem.split("__")[0] for r in records.values()}
    assert all(len({stem[n] for n in pair}) == 1 for pair in found)  # never two pictures
    names = {stem[n] for pair in found for n in pair}
    assert not any(n.startswith("face") for n in names)
    photos = [name for name, _ in skimage_originals()]
    assert all(frozenset((f"{n}.jpg", f"{n}__colour.jpg")) in found for n in photos)
    crops = {n: found.get(frozenset((f"{n}.jpg", f"{n}__crop60.jpg"))) for n in photos}
    crops = {n: score for n, score in crops.items() if score is not None}
    assert {"coffee", "retina"} <= set(crops)
    # Faces pair at higher cosines than these crops: the cosine alone cannot tell them apart.
    by_id = {r.id: r for r in records.values()}
    faces = np.array(["faces" in by_id[i].path for i in ids.tolist()])
    face_vectors = vectors[faces]
    sims = face_vectors @ face_vectors.T
    np.fill_diagonal(sims, -1.0)
    assert int((sims >= max(crops.values())).sum()) // 2 >= 10
    assert off == {}
    # Counted one by one, the resized copies crowd their photo's crop and hide it.
    for name in RESIZED:
        assert frozenset((f"{name}.jpg", f"{name}__crop60.jpg")) not in crowded


@pytest.mark.heavy
def test_default_tiers_on_real_copies_with_the_default_network(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Three photos with a copy of every tier, among the other scikit-image photos: the
    calibrated defaults label them, group nearly every edited copy (more than without the
    density rule) and never join two photos."""
    photos = skimage_originals()
    root = tmp_path_factory.mktemp("tiers-set")
    made = make_duplicate_set(
        [(n, im) for n, im in photos if n in COPIED],
        [],
        root / "set",
        seed=3,
    )
    for name, image in photos:
        if name not in COPIED:
            image.save(root / "set" / f"{name}.jpg", quality=92)
    with SearchEngine.create(root / "idx") as engine:
        engine.index_folder(root / "set")
        report = engine.find_duplicates()
    store = IndexStore.open(root / "idx")
    try:
        ids, vectors = store.load_vectors()
        records = {r.id: r for r in store.catalog.all_records()}
        lookup = StoredPerceptualHashes(store, records)
        without = find_duplicates(
            ids,
            vectors,
            records,
            DuplicateOptions(),
            phashes=lookup,
            tiers=replace(DEFAULT_TIERS, contrast=1.0),
        )
    finally:
        store.close()
    family = {
        i: Path(r.path).parent.name for i, r in report.records.items() if "families" in r.path
    }
    for group in report.groups:
        assert len({family.get(i, f"other{i}") for i in group.ids}) == 1
    tiers = _tiers(report)
    edits = grouped = grouped_without = 0
    for name, files in made.families.items():
        original = files[0][0].name
        members = next(
            g.ids for g in report.groups if any(_name(report, i) == original for i in g.ids)
        )
        names = {_name(report, i) for i in members}
        by_id = {i: Path(r.path).name for i, r in records.items()}
        groups_without = [{by_id[i] for i in g.ids} for g in without.groups]
        names_without = next((g for g in groups_without if original in g), set())
        for path, variant in files[1:]:
            tier = VARIANT_TIERS[variant]
            if tier is Tier.IDENTICAL:
                assert tiers[frozenset((original, path.name))] is Tier.IDENTICAL
            elif tier is Tier.SAME_PICTURE:
                assert path.name in names, (name, variant)
            elif tier is Tier.EDITED_COPY:
                edits += 1
                grouped += path.name in names
                grouped_without += path.name in names_without
            else:  # another shot: never a copy's tier (the density rule may call it edited)
                shot = tiers.get(frozenset((original, path.name)))
                assert shot in (None, Tier.EDITED_COPY), shot
    # The density rule groups the edited copies the cosine and hash tiers miss (crops,
    # rotations): all 21 here, against 17 without it.
    assert grouped >= 0.95 * edits
    assert grouped_without < grouped


#: Only undecided pairs can be linked: no cosine, hash or density tier reaches any pair.
UNDECIDED_ONLY = replace(DENSITY_ONLY, contrast=1.0, undecided_floor=0.6, undecided_contrast=0.0)


def test_undecided_pairs_are_linked_only_when_the_files_are_the_same_picture(
    crowded_index: Path, tmp_path: Path
) -> None:
    store = IndexStore.open(crowded_index)
    try:
        records = {r.id: r for r in store.catalog.all_records()}
        ids, vectors = store.load_vectors()
    finally:
        store.close()
    verifier, accept = GeometricVerifier(), SimilarityAcceptance()
    asked: list[int] = []

    def settle(
        first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        asked.append(len(first))
        return np.array(
            [
                accept.accepts(verifier.pair_geometry(chosen[a].path, chosen[b].path))
                for a, b in zip(first.tolist(), second.tolist(), strict=True)
            ]
        )

    chosen = records
    report = find_duplicates(
        ids, vectors, records, DuplicateOptions(), tiers=UNDECIDED_ONLY, settle=settle
    )
    assert report.undecided_pairs == sum(asked) > report.settled_pairs > 0
    stem = {i: Path(r.path).stem.split("__")[0] for i, r in records.items()}
    pairs = [p for g in report.groups for p in g.pairs]
    assert all(p.tier is Tier.EDITED_COPY for p in pairs)
    assert all(stem[p.first] == stem[p.second] for p in pairs)  # never two pictures, no faces
    photos = {stem[p.first] for p in pairs}
    assert len(photos) >= 6
    # Without the check, or with every file gone, undecided pairs are not linked.
    plain = find_duplicates(ids, vectors, records, DuplicateOptions(), tiers=UNDECIDED_ONLY)
    assert plain.groups == [] and plain.undecided_pairs == 0
    chosen = {
        i: replace(r, path=str(tmp_path / "gone" / Path(r.path).name)) for i, r in records.items()
    }
    gone = find_duplicates(
        ids, vectors, chosen, DuplicateOptions(), tiers=UNDECIDED_ONLY, settle=settle
    )
    assert gone.groups == [] and gone.undecided_pairs == report.undecided_pairs
