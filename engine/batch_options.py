"""What a batch run is asked to do and how it ended: torch-free records the window also sends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.images import DEFAULT_MAX_PIXELS
from engine.methods.registry import Smoothing
from engine.render import DEFAULT_STYLE, RenderStyle

DISK_FULL = "disk full"  # the error of every image a full disk stopped, and BatchSummary.stopped


@dataclass(frozen=True)
class BatchOptions:
    """What a batch run computes and writes."""

    output: Path
    method: str = "gradcam"
    layer: str | None = None
    target: str = "pred"
    style: RenderStyle = DEFAULT_STYLE
    batch_size: int = 8
    save_raw: bool = False
    panels: bool = False
    draw_boxes: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are decoded reduced (JPEG) or refused
    resume: bool = False  # keep the ok rows of results.csv and skip their images
    smoothing: Smoothing | None = None  # None: the profile's
    compare: str | None = None  # engine.choices.Compare: also write <stem>_compare.png
    metrics: tuple[str, ...] = ()  # faithfulness metrics to add as columns (engine.metrics)
    road_noise: float = 0.01  # ROAD's imputation noise (engine.metrics.registry.ROAD_NOISE)
    seed: int = 0  # seeds ROAD's noise


@dataclass(frozen=True)
class BatchSummary:
    """How a batch run ended."""

    total: int
    succeeded: int
    failed: int
    cancelled: bool
    csv_path: Path
    seconds: float
    stopped: str = ""  # why the run stopped early: "" or DISK_FULL
    resumed: int = 0  # images skipped because an earlier run's results.csv has them ok
