"""The session's summary tables, read by both the window's Summary tab and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.session import ReviewedImage

# How the empty class name ("" in the tables) is shown in each table.
NO_PREDICTION = "(no prediction)"
NO_GROUND_TRUTH = "(no ground truth)"


@dataclass(frozen=True)
class ClassCounts:
    """Verdict counts for one predicted class ("": not explained yet).

    per_code[i] counts code i + 1; total includes the images not reviewed.
    """

    cls: str
    total: int
    per_code: tuple[int, int, int, int]

    @property
    def reviewed(self) -> int:
        return sum(self.per_code)

    @property
    def row(self) -> tuple[int, int, int, int, int]:
        """Codes 1..4, then not reviewed (a note without a verdict counts as not reviewed)."""
        return (*self.per_code, self.total - self.reviewed)


@dataclass(frozen=True)
class ConfusionTable:
    """Counts[ground truth, prediction] over the images that have both."""

    classes: tuple[str, ...]
    counts: np.ndarray


@dataclass(frozen=True)
class LocalisationTable:
    """Per ground-truth class: pointing-game hit rate and mean energy in box (None: no data)."""

    classes: tuple[str, ...]
    pointing: tuple[float | None, ...]
    energy: tuple[float | None, ...]


def verdict_table(records: Sequence[ReviewedImage]) -> list[ClassCounts]:
    """Verdicts per predicted class, classes in name order."""
    per_class: dict[str, list[int]] = {}
    for record in records:
        counts = per_class.setdefault(record.predicted or "", [0, 0, 0, 0, 0])
        code = record.verdict.code if record.verdict else None
        counts[code or 0] += 1
    return [
        ClassCounts(cls, sum(c), (c[1], c[2], c[3], c[4])) for cls, c in sorted(per_class.items())
    ]


def verdict_counts(rows: Sequence[ClassCounts]) -> np.ndarray:
    """The table as an array of shape (classes, 5): codes 1..4, then not reviewed."""
    return np.array([row.row for row in rows], dtype=np.int64).reshape(-1, 5)


def confusion_table(records: Sequence[ReviewedImage]) -> ConfusionTable:
    """Ground truth against prediction; an image missing either cannot be placed, so is left out."""
    pairs = [(r.ground_truth, r.predicted) for r in records if r.ground_truth and r.predicted]
    classes = sorted({name for pair in pairs for name in pair})
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, predicted in pairs:
        counts[index[truth], index[predicted]] += 1
    return ConfusionTable(tuple(classes), counts)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def localisation_table(records: Sequence[ReviewedImage]) -> LocalisationTable:
    """Scores per ground-truth class, images without one in their own row ("").

    A quality engineer reads each row as "how well the heat lands on the boxes of this kind
    of defect". An image with boxes but no ground-truth class (a VOC-annotated 0001.jpg whose
    names tell no class) belongs to no defect kind: filing it under its *predicted* class would
    mix the model's guesses into a ground-truth row, and leaving it out would drop a scored
    image without a word. So it gets a row of its own, and every scored image counts once.
    """
    hits: dict[str, list[float]] = {}
    energies: dict[str, list[float]] = {}
    for r in records:
        if r.pointing_hit is None and r.energy_in_box is None:
            continue
        cls = r.ground_truth or ""
        hits.setdefault(cls, [])
        energies.setdefault(cls, [])
        if r.pointing_hit is not None:
            hits[cls].append(float(r.pointing_hit))
        if r.energy_in_box is not None:
            energies[cls].append(r.energy_in_box)
    classes = tuple(sorted(hits))
    return LocalisationTable(
        classes,
        tuple(_mean(hits[c]) for c in classes),
        tuple(_mean(energies[c]) for c in classes),
    )
