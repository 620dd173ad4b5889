"""A report's gallery overlays drawn again from the image files, with the map of each verdict.

The command line and the window's File > Export report both write through `write_model_report`,
so the two reports are the same bytes apart from the report's date.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.dataset import ImageRecord, load_boxes, scan_images
from engine.errors import InspectorError
from engine.images import load_image
from engine.render import RenderStyle, render_overlay
from engine.report import ReportData, ReportFiles, ReportModel, write_report

if TYPE_CHECKING:  # torch: only the caller that has a model imports it
    from engine.cam import CamEngine


def weights_mismatch(recorded: str, loaded: str | None) -> str:
    """A sentence when the loaded weights are not those the verdicts were given on, else ''."""
    if (loaded or "") == recorded:
        return ""
    return (
        f"The model's weights changed since the session was reviewed: the verdicts were given "
        f"on weights sha256 {recorded or '(random initialisation)'}, the overlays below are drawn "
        f"with {loaded or '(random initialisation)'}; they may not show what the reviewer saw."
    )


class GalleryOverlays:
    """Computes a card's overlay: the image file, the verdict's layer, method, class and blur,
    drawn in the profile's colours with the ground-truth boxes. Errors are the card's note."""

    def __init__(self, engine: CamEngine, data: ReportData) -> None:
        self.engine = engine
        self.data = data
        self.folder = Path(data.info.folder)
        cam = engine.cam
        self.style = RenderStyle(cam.colormap, cam.alpha, 0.0, cam.blend)
        self._records = self._scan()

    def _scan(self) -> dict[str, ImageRecord]:
        """The folder's images by relative path, for their annotation files (names only)."""
        try:
            found = scan_images(self.folder, self.engine.classes)
        except InspectorError:
            return {}  # a folder that has gone: each card says its image is missing
        return {r.rel_path.as_posix(): r for r in found}

    def __call__(self, rel_path: str) -> np.ndarray:
        record = self._records.get(rel_path)
        path = record.path if record is not None else self.folder / rel_path
        image = load_image(path)
        view, _ = self.data.view(rel_path)
        classes = self.engine.classes
        truth = record.ground_truth if record is not None else None
        result = self.engine.explain(
            [image],
            view.method,
            view.layer or None,
            target=view.target,
            ground_truth=[classes.index(truth) if truth in classes else None],
            blur_sigma=view.blur_sigma,
        )[0]
        return render_overlay(image, result.cam, self.style, self._boxes(record))

    @staticmethod
    def _boxes(record: ImageRecord | None) -> tuple:
        try:
            return load_boxes(record) if record is not None else ()
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
) -> ReportFiles:
    """report.csv and report.html with the gallery's overlays drawn by engine.

    engine None: the cards say no_model_reason (a missing profile, --no-images).
    """
    if engine is None:
        model = ReportModel(_Unavailable(no_model_reason), model_name)
    else:
        loaded = engine.load_info.weights_sha256 or ""
        mismatch = weights_mismatch(data.info.weights_sha256, loaded)
        notices = (mismatch,) if mismatch else ()
        model = ReportModel(GalleryOverlays(engine, data), model_name, loaded, notices)
    return write_report(data, output_dir, model=model, generated=generated)
