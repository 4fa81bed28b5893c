#!/usr/bin/env bash
# Index a real photo collection and search it: scikit-image's colour photos plus edited copies
# (cropped, flipped, rotated, recompressed...), then query with a copy and with the originals.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=demo-data

$BIN/python - <<'PY'
from pathlib import Path
from lookalike.evaluation.copies import make_copy_set, skimage_originals
copies = make_copy_set(skimage_originals(), Path("demo-data/photos"), seed=0)
print(f"wrote {len(copies.originals)} photos and {len(copies.copies)} edited copies to {copies.root}")
PY

$BIN/lookalike index "$DATA/photos" --index "$DATA/photos.idx"
$BIN/lookalike info --index "$DATA/photos.idx"
$BIN/lookalike verify --index "$DATA/photos.idx"
echo
echo "Query: a 60 % crop of the coffee photo. Its original and the other coffee copies come first."
$BIN/lookalike search "$DATA/photos/copies/coffee__crop60.jpg" --index "$DATA/photos.idx" -k 5
$BIN/lookalike search "$DATA/photos/originals/chelsea.jpg" --index "$DATA/photos.idx" -k 3 --json
echo
echo "Copy mode: a mirrored copy, each candidate checked with local features (inliers shown)."
$BIN/lookalike search "$DATA/photos/copies/rocket__hflip.jpg" --index "$DATA/photos.idx" -k 3 --verify
