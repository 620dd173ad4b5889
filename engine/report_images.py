"""A report's gallery overlays drawn again from the image files, with the map of each verdict.

The command line and the window's File > Export report both write through `write_model_report`,
so the two reports are the same bytes apart from the report's date.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.dataset import ImageRecord, load_boxes, scan_images
from engine.errors import InspectorError
from engine.images import load_image
from engine.localization import Box
from engine.render import RenderStyle, render_overlay
from engine.report import ReportData, ReportFiles, ReportModel, thumbnail, write_report

if TYPE_CHECKING:  # torch: only the caller that has a model imports it
    from engine.cam import CamEngine


def weights_mismatch(recorded: str, loaded: str | None) -> str:
    """A sentence when the loaded weights are not those the verdicts were given on, else ''."""
    if (loaded or "") == recorded:
        return ""
    return (
        f"The model's weights changed since the session was reviewed: the verdicts were given "
        f"on weights sha256 {recorded or '(random initialisation)'}, the model's weights are now "
        f"{loaded or '(random initialisation)'}; overlays drawn with them may not show what the "
        "reviewer saw."
    )


# Cards whose verdicts share a map are drawn in one model pass of up to this many images: on
# the demo model a batch of 8 costs 5-6x less per image than one pass each (2-core CPU).
BATCH_SIZE = 8
Overlay = np.ndarray | InspectorError  # a card's overlay, or why it has none
Progress = Callable[[int, int], None]  # (cards drawn, cards in the gallery)


class GalleryOverlays:
    """Computes a card's overlay: the image file, the verdict's layer, method, class and blur,
    drawn in the profile's colours with the ground-truth boxes, as a thumbnail. Errors are the
    card's note.

    Asked for one card, it draws the next BATCH_SIZE cards given on the same map in one pass;
    they wait (as thumbnails) until their card is written. ``between(drawn, cards)`` runs after
    each pass (the window shows progress and answers the user there, and stops when it closes).
    """

    def __init__(
        self,
        engine: CamEngine,
        data: ReportData,
        between: Progress | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.data = data
        self.between = between
        self.warn = warn  # told each card whose overlay cannot be drawn (the CLI's stderr)
        self.folder = Path(data.info.folder)
        cam = engine.cam
        self.style = RenderStyle(cam.colormap, cam.alpha, 0.0, cam.blend)
        self._records = self._scan()
        self._cards = [r.rel_path for r in data.shown()]
        self._drawn = 0
        self._ready: dict[str, Overlay] = {}

    def _scan(self) -> dict[str, ImageRecord]:
        """The folder's images by relative path, for their annotation files (names only)."""
        try:
            found = scan_images(self.folder, self.engine.classes)
        except InspectorError:
            return {}  # a folder that has gone: each card says its image is missing
        return {r.rel_path.as_posix(): r for r in found}

    def __call__(self, rel_path: str) -> np.ndarray:
        if rel_path not in self._ready:
            batch = self._batch(rel_path)
            self._draw(batch)
            self._drawn += len(batch)
            if self.between is not None:
                self.between(self._drawn, len(self._cards))
        found = self._ready.pop(rel_path)
        if isinstance(found, InspectorError):
            if self.warn is not None:
                self.warn(f"overlay unavailable for '{rel_path}': {found}")
            raise found
        return found

    def _batch(self, rel_path: str) -> list[str]:
        """rel_path and the cards after it given on the same map, not drawn yet."""
        view = self.data.view(rel_path)[0]
        later = self._cards[self._cards.index(rel_path) + 1 :] if rel_path in self._cards else []
        same = [r for r in later if r not in self._ready and self.data.view(r)[0] == view]
        return [rel_path, *same[: BATCH_SIZE - 1]]

    def _record(self, rel_path: str) -> ImageRecord:
        found = self._records.get(rel_path)
        return found or ImageRecord(self.folder / rel_path, Path(rel_path), None, None)

    def _draw(self, rel_paths: list[str]) -> None:
        images: dict[str, np.ndarray] = {}
        for rel in rel_paths:
            try:
                images[rel] = load_image(self._record(rel).path)
            except InspectorError as exc:
                self._ready[rel] = exc
        if not images:
            return
        view = self.data.view(rel_paths[0])[0]
        classes = self.engine.classes
        truths = [self._record(rel).ground_truth for rel in images]
        try:
            results = self.engine.explain(
                list(images.values()),
                view.method,
                view.layer or None,
                target=view.target,
                ground_truth=[classes.index(t) if t in classes else None for t in truths],
                blur_sigma=view.blur_sigma,
            )
        except InspectorError as exc:  # a layer or method this model does not have
            self._ready.update(dict.fromkeys(images, exc))
            return
        for (rel, image), result in zip(images.items(), results, strict=True):
            boxes = self._boxes(self._record(rel), image.shape)
            self._ready[rel] = thumbnail(render_overlay(image, result.cam, self.style, boxes))

    @staticmethod
    def _boxes(record: ImageRecord, shape: tuple[int, ...]) -> tuple[Box, ...]:
        try:
            return load_boxes(record, shape)
        except InspectorError:
            return ()  # a broken annotation loses its boxes, not the overlay


class _Unavailable:
    """Every card gets the same note: there is no model to draw with."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __call__(self, _rel_path: str) -> np.ndarray:
        raise InspectorError(self.reason)


def write_model_report(
    data: ReportData,
    output_dir: str | Path,
    engine: CamEngine | None,
    model_name: str = "",
    no_model_reason: str = "no model is loaded",
    generated: str = "",
    between: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> ReportFiles:
    """report.csv and report.html with the gallery's overlays drawn by engine.

    engine None: the cards say no_model_reason (a missing profile, --no-images); ``between``
    runs after each model pass (see GalleryOverlays).
    """
    if engine is None:
        model = ReportModel(_Unavailable(no_model_reason), model_name)
    else:
        loaded = engine.load_info.weights_sha256 or ""
        mismatch = weights_mismatch(data.info.weights_sha256, loaded)
        notices = (mismatch,) if mismatch else ()
        overlays = GalleryOverlays(engine, data, between, warn)
        model = ReportModel(overlays, model_name, loaded, notices)
    return write_report(data, output_dir, model=model, generated=generated)
