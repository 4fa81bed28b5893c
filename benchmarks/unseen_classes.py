"""Does a triplet head trained on some classes help on classes it never saw?

Fashion-MNIST. Base features (``--embedder``, default lite0) of the first ``--train-images``
train-split images and the first ``--test-images`` test-split images are computed once (cached
under ``--work``, keyed by the embedder's spec). For each split, one triplet head learns from
the train images of the 7 seen classes only and is compared with the base features and with a
head that learned from all 10 classes (the seen-class reference; it saw the held-out classes'
train images, never their test images). Both heads are the README's (256-d, one 1024-unit
hidden layer) trained as ``lookalike train triplet`` trains one (benchmarks/_triplet.py).

Scoring: the test images of the 3 held-out classes, each a query against all the others of
those classes (the gallery is those classes' test images only); for contrast, the same on the
test images of the 7 seen classes. Vectors are the head applied to the base features, ranked by
cosine: what an index built with the head stores, without building one. Below the table, the
unseen-class mAP of each head minus the base's over the same queries, with a paired bootstrap
95 % interval (queries resampled, seeded).

Default splits (Fashion-MNIST label numbers):
- 7,8,9 sneaker, bag, ankle boot: the head has seen sandals but no other shoes and no bags;
- 3,4,5 dress, coat, sandal: two garments with close seen relatives (pullover, shirt), one shoe;
- 0,2,6 t-shirt, pullover, shirt: the three tops most often confused with each other, held out
  together, so the head never learns to tell tops apart (the hardest split for the base too).

Measured with the defaults (6,000 train and 6,000 test images, lite0, 1 training thread):
1,230 s on the 2-core reference machine shared with other jobs (load average 11; 421 s of
CPU time); 490 s (161 s of CPU) with the base features cached, and the same figures. About
1,800 held-out queries per split; "unseen" is the 3 held-out classes, "seen" the other 7 (test
images both).

| held out | embedder | unseen mAP | unseen P@10 | seen mAP | seen P@10 |
|---|---|---|---|---|---|
| 7,8,9 | base | 0.773 | 0.939 | 0.546 | 0.763 |
| 7,8,9 | head, 7 seen classes | 0.727 | 0.845 | 0.761 | 0.804 |
| 7,8,9 | head, all 10 classes | 0.958 | 0.961 | 0.771 | 0.802 |
| 3,4,5 | base | 0.840 | 0.941 | 0.671 | 0.858 |
| 3,4,5 | head, 7 seen classes | 0.835 | 0.913 | 0.862 | 0.876 |
| 3,4,5 | head, all 10 classes | 0.931 | 0.946 | 0.850 | 0.877 |
| 0,2,6 | base | 0.578 | 0.758 | 0.697 | 0.905 |
| 0,2,6 | head, 7 seen classes | 0.533 | 0.621 | 0.934 | 0.934 |
| 0,2,6 | head, all 10 classes | 0.730 | 0.777 | 0.921 | 0.935 |

Unseen-class mAP, head minus base (95 % interval): head on the 7 seen classes -0.046
(-0.055 to -0.036), -0.005 (-0.011 to +0.001), -0.045 (-0.052 to -0.038); head on all 10
+0.185, +0.091, +0.152 (each within +-0.008). The head does not carry over to classes it never
saw: it lifts the seen classes (+0.19 to +0.24 mAP) and leaves the unseen ones level or
slightly worse than the base network, with P@10 lower in every split. What it learns is the
boundaries between the classes it is shown.

Usage: python benchmarks/unseen_classes.py [--embedder lite0] [--holdout 7,8,9 ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from _triplet import fashion_head, fit_head

from lookalike.embedders import create_embedder, resolve_spec
from lookalike.embedders.quality import spec_for
from lookalike.errors import InvalidInputError
from lookalike.evaluation import metrics
from lookalike.evaluation.bootstrap import paired_bootstrap
from lookalike.evaluation.datasets import FASHION_MNIST_CLASSES, fashion_mnist
from lookalike.evaluation.runner import slug
from lookalike.training.data import LabelledFeatures, labelled_features

SPLITS = ("7,8,9", "3,4,5", "0,2,6")


@dataclass(frozen=True)
class Scored:
    """Per-query scores of one embedding on one set of classes."""

    average_precision: npt.NDArray[np.float64]
    precision_at_10: npt.NDArray[np.float64]

    @property
    def map(self) -> float:
        return float(np.nanmean(self.average_precision))


def fashion_features(
    work: Path,
    embedder: str,
    *,
    train_images: int,
    test_images: int,
    quality: str | None = None,
) -> tuple[LabelledFeatures, LabelledFeatures]:
    """Base features of the train and test subsets, labels as Fashion-MNIST's numbers."""
    spec = spec_for(embedder, quality) if quality else resolve_spec(embedder)
    base = create_embedder(spec)
    cache = work / "features" / slug(spec.key())
    found = []
    for split, limit in (("train", train_images), ("test", test_images)):
        root = fashion_mnist(work / "data", split=split, limit=limit).root
        data = labelled_features(root, base, cache=cache)
        numbers = np.array([FASHION_MNIST_CLASSES.index(c) for c in data.classes])
        found.append(
            LabelledFeatures(data.features, numbers[data.labels], FASHION_MNIST_CLASSES, ())
        )
    return found[0], found[1]


def score(
    vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], classes: list[int]
) -> Scored:
    rows = np.isin(labels, classes)
    found = metrics.query_scores(vectors[rows], labels[rows], k=10)
    return Scored(found.average_precision, found.precision_at_k)


def holdout(text: str) -> list[int]:
    classes = sorted({int(c) for c in text.split(",")})
    if len(classes) < 2 or not set(classes) <= set(range(10)) or len(classes) > 8:
        raise InvalidInputError(f"--holdout takes 2 to 8 class numbers in 0-9, got {text!r}")
    return classes


def run(
    work: Path,
    *,
    embedder: str = "lite0",
    quality: str | None = None,
    splits: tuple[str, ...] = SPLITS,
    train_images: int = 6000,
    test_images: int = 6000,
    threads: int | None = 1,
    resamples: int = 2000,
) -> list[str]:
    """Train and score every split; return the table and the intervals as Markdown lines."""
    train, test = fashion_features(
        work, embedder, train_images=train_images, test_images=test_images, quality=quality
    )
    started = time.perf_counter()
    everything = fit_head(fashion_head(threads), train.features, train.labels)
    print(f"  head on all 10 classes: {time.perf_counter() - started:.0f} s", flush=True)
    rows = [
        "| held out | embedder | unseen mAP | unseen P@10 | seen mAP | seen P@10 |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for text in splits:
        unseen = holdout(text)
        seen = [c for c in range(10) if c not in unseen]
        started = time.perf_counter()
        keep = np.isin(train.labels, seen)
        partial = fit_head(fashion_head(threads), train.features[keep], train.labels[keep])
        print(f"  head on classes {seen}: {time.perf_counter() - started:.0f} s", flush=True)
        results: dict[str, tuple[Scored, Scored]] = {}
        heads = (f"head, {len(seen)} seen classes", "head, all 10 classes")
        for label, vectors in (
            ("base", test.features),
            (heads[0], partial.transform(test.features)),
            (heads[1], everything.transform(test.features)),
        ):
            results[label] = (
                score(vectors, test.labels, unseen),
                score(vectors, test.labels, seen),
            )
            u, s = results[label]
            rows.append(
                f"| {','.join(map(str, unseen))} | {label} | {u.map:.3f} | "
                f"{u.precision_at_10.mean():.3f} | {s.map:.3f} | {s.precision_at_10.mean():.3f} |"
            )
        names = ", ".join(FASHION_MNIST_CLASSES[c] for c in unseen)
        base_unseen = results["base"][0]
        notes.append(f"held out {names} ({len(base_unseen.average_precision)} queries):")
        for label in heads:
            interval = paired_bootstrap(
                base_unseen.average_precision,
                results[label][0].average_precision,
                resamples=resamples,
                seed=0,
            )
            notes.append(
                f"  {label} - base, unseen mAP: {interval.mean:+.3f} "
                f"(95 % interval {interval.low:+.3f} to {interval.high:+.3f})"
            )
    return [*rows, "", *notes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-unseen-classes"))
    parser.add_argument(
        "--embedder", default="lite0", help="base features (a name or spec lookalike knows)"
    )
    parser.add_argument(
        "--quality",
        default=None,
        help="descriptor recipe of the base features, as `index --quality` (default: the "
        "name as written, i.e. the classic recipe)",
    )
    parser.add_argument(
        "--holdout",
        action="append",
        help=f"class numbers held out, e.g. 7,8,9 (repeat; default {' '.join(SPLITS)})",
    )
    parser.add_argument("--train-images", type=int, default=6000, help="first N of train split")
    parser.add_argument("--test-images", type=int, default=6000, help="first N of test split")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch training threads")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    started = time.perf_counter()
    lines = run(
        args.work,
        embedder=args.embedder,
        quality=args.quality,
        splits=tuple(args.holdout or SPLITS),
        train_images=args.train_images,
        test_images=args.test_images,
        threads=args.threads,
        resamples=args.resamples,
    )
    print("\n".join(lines))
    print(f"\nTotal: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
