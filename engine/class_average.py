"""Class-average maps and per-class metric means: where does the model look, on average?

Every image's normalised map is resized to one size (the model's input) and averaged per
ground-truth class and per predicted class. Heat piled on the borders or corners of a class's
average is a shortcut (the model reads the frame, not the defect); ``border_share`` puts a
number on it beside the area the border covers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.export import atomic_write_text, write_png
from engine.figures import render_tiles
from engine.render import render_heatmap

BORDER = 1 / 8  # the border band's width, as a share of each side


@dataclass
class ClassAverages:
    """Running sums of maps per ground-truth class and per predicted class."""

    size: tuple[int, int]  # (height, width) every map is resized to
    sums: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (kind, class)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, ground_truth: str | None, predicted: str, cam: np.ndarray) -> None:
        """One image's normalised map (any size) under its classes."""
        height, width = self.size
        resized = cv2.resize(np.float32(cam), (width, height), interpolation=cv2.INTER_AREA)
        keys = [("predicted", predicted)] + (
            [("ground truth", ground_truth)] if ground_truth else []
        )
        for key in keys:
            self.sums[key] = self.sums.get(key, 0) + resized
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[tuple[str, str], np.ndarray]:
        """(kind, class) -> the mean map, ground-truth classes first, each kind by class name."""
        keys = sorted(self.sums, key=lambda k: (k[0] != "ground truth", k[1]))
        return {key: self.sums[key] / self.counts[key] for key in keys}


def border_share(mean_map: np.ndarray) -> float:
    """Share of the map's heat within the outer ``BORDER`` of each side (0 for a zero map)."""
    height, width = mean_map.shape
    bh, bw = max(1, round(height * BORDER)), max(1, round(width * BORDER))
    total = float(mean_map.sum())
    inner = float(mean_map[bh : height - bh, bw : width - bw].sum())
    return 0.0 if total <= 0 else (total - inner) / total


def border_area(size: tuple[int, int]) -> float:
    """The share of the pixels the border band covers: a map spread evenly has this share."""
    height, width = size
    bh, bw = max(1, round(height * BORDER)), max(1, round(width * BORDER))
    return 1 - (height - 2 * bh) * (width - 2 * bw) / (height * width)


def class_average_figure(averages: ClassAverages, colormap: str = "jet") -> np.ndarray | None:
    """One labelled heatmap per class, ground-truth classes first; None with no map."""
    means = averages.means()
    if not means:
        return None
    tiles = [render_heatmap(m / max(float(m.max()), 1e-7), colormap) for m in means.values()]
    labels = [
        f"{'gt' if kind == 'ground truth' else 'pred'} {name} n={averages.counts[(kind, name)]}"
        for kind, name in means
    ]
    return render_tiles(tiles, labels, columns=min(6, len(tiles)))


def metric_means(
    rows: Iterable[Mapping[str, str]], metrics: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per ground-truth class (results.csv rows with status ok), the mean of each metric column
    that has values; classes by name, images without ground truth under ''."""
    values: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        per_class = values.setdefault(row.get("ground_truth", ""), {})
        for name in metrics:
            text = row.get(name, "")
            if text:
                per_class.setdefault(name, []).append(float(text))
    return {
        cls: {name: math.fsum(v) / len(v) for name, v in found.items()}
        for cls, found in sorted(values.items())
    }


def summary_lines(
    averages: ClassAverages, means: Mapping[str, Mapping[str, float]], metrics: Sequence[str]
) -> list[str]:
    """The class section in plain lines: border heat per average, metric means per class."""
    area = border_area(averages.size)
    lines = [f"heat on the border (the border is {area:.0%} of the area):"]
    lines += [
        f"  {kind} {name} (n={averages.counts[(kind, name)]}): {border_share(mean):.0%}"
        for (kind, name), mean in averages.means().items()
    ]
    for cls, found in means.items():
        shown = ", ".join(f"{m} {found[m]:+.3f}" for m in metrics if m in found)
        if shown:
            lines.append(f"{cls or '(no ground truth)'}: {shown}")
    return lines


def write_class_summary(
    output: Path,
    averages: ClassAverages,
    rows: Iterable[Mapping[str, str]],
    metrics: Sequence[str],
    colormap: str = "jet",
) -> Path:
    """``class_summary.html`` (the report's class section: average maps, border heat, metric
    means per class) and ``class_averages.png`` beside it; returns the HTML's path."""
    from engine.report import class_trust_section

    figure = class_average_figure(averages, colormap)
    if figure is not None:
        write_png(output / "class_averages.png", figure)
    section = class_trust_section(averages, metric_means(rows, metrics), metrics, colormap)
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Class summary</title></head>'
        f"<body>{section}</body></html>"
    )
    path = output / "class_summary.html"
    atomic_write_text(path, page)
    return path
