"""Exports from the window: the shown map's files, and the folder export with progress, cancel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar, QPushButton

from engine.batch_options import BatchOptions
from engine.dataset import ImageRecord
from engine.errors import InspectorError
from engine.export import ensure_output_dir
from engine.map_files import MapFiles, safe_layer_name, write_map_files
from ui.jobs import Explained, ExportFinished, ExportFolder, ExportProgress
from ui.view_state import ViewOptions
from ui.worker import CamWorker


class ExportController(QObject):
    """Writes the shown map's files; runs one folder export at a time in the worker.

    ``bar`` and ``cancel_button`` are shown while a folder export runs (the window puts them in
    its status bar); ``sig_progress``/``sig_finished`` repeat the worker's reports after them.
    """

    sig_message = Signal(str, int)  # status-bar text, timeout in ms (0: until replaced)
    sig_warning = Signal(str, str)  # title, message
    sig_progress = Signal(object)  # ExportProgress
    sig_finished = Signal(object)  # ExportFinished

    def __init__(
        self, worker: CamWorker, new_job_id: Callable[[], int], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self._new_job_id = new_job_id  # the window's: one sequence for explain and export jobs
        self.job_id: int | None = None  # the running folder export's
        self._closed = False
        self.metrics: tuple[str, ...] = ()  # faithfulness metrics added to folder exports
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(260)
        self.bar.setFormat("%v/%m")
        self.cancel_button = QPushButton("Cancel export")
        # A slot of this GUI-thread object, not of the worker: a queued call would wait for the
        # export. The worker's reports come in through bound methods for the same reason.
        self.cancel_button.clicked.connect(self.cancel)
        self._hide_progress()
        worker.sig_export_progress.connect(self._progress)
        worker.sig_export_finished.connect(self._finished)

    @property
    def running(self) -> bool:
        return self.job_id is not None

    def export_current(
        self, done: Explained | None, folder: Path, options: ViewOptions
    ) -> list[Path]:
        """Heatmap, overlay and three-panel PNGs and the raw map of the shown image."""
        if done is None:
            self.sig_message.emit("Nothing to export yet: no map is shown", 5000)
            return []
        result = done.result
        boxes = done.boxes if options.show_boxes else ()
        stem = folder / f"{done.record.path.stem}_{result.method}_{safe_layer_name(result.layer)}"
        try:
            written = write_map_files(
                stem, done.image, result, options.style, boxes, MapFiles(panels=True, raw=True)
            )
        except InspectorError as exc:
            self.sig_warning.emit("Export failed", str(exc))
            return []
        self.sig_message.emit(f"Wrote {len(written)} files to {folder}", 8000)
        return written

    def export_folder(
        self,
        records: Sequence[ImageRecord],
        image_folder: Path | None,
        output: Path,
        options: ViewOptions,
        batch_size: int,
    ) -> int | None:
        """Start the batch export of these records in the worker; returns its job id."""
        try:
            output = ensure_output_dir(output, image_folder)
        except InspectorError as exc:
            self.sig_warning.emit("Cannot export there", str(exc))
            return None
        batch = BatchOptions(
            output=output,
            method=options.method,
            layer=options.layer,
            target=str(options.target),
            style=options.style,
            batch_size=batch_size,
            save_raw=True,
            panels=True,
            draw_boxes=options.show_boxes,
            metrics=self.metrics,
        )
        self.job_id = self._new_job_id()
        self.worker.submit(ExportFolder(self.job_id, tuple(records), batch))
        self.bar.setRange(0, len(records))
        self.bar.setValue(0)
        self.bar.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.sig_message.emit(f"Exporting {len(records)} images to {output}…", 0)
        return self.job_id

    def cancel(self) -> None:
        """Stop the folder export after the chunk in progress; what is written stays."""
        self.worker.cancel_export()
        self.cancel_button.setEnabled(False)
        self.sig_message.emit("Cancelling the export…", 0)

    def failed(self, message: str) -> None:
        """The worker reported the folder export as failed."""
        self._hide_progress()
        self.sig_warning.emit("Folder export failed", message)

    def close(self) -> None:
        """The window is closing: reports queued before the worker stopped are dropped."""
        self._closed = True

    def _progress(self, progress: ExportProgress) -> None:
        if self._closed:
            return
        self.bar.setValue(progress.done)
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0
        eta = (progress.total - progress.done) / rate if rate > 0 else 0.0
        failed = f", {progress.failed} failed" if progress.failed else ""
        self.bar.setToolTip(f"{rate:.1f} images/s")
        self.sig_message.emit(
            f"Exporting: {progress.done}/{progress.total}{failed}, ETA {eta:.0f} s", 0
        )
        self.sig_progress.emit(progress)

    def _finished(self, finished: ExportFinished) -> None:
        if self._closed:
            return
        self._hide_progress()
        s = finished.summary
        verb = "Export cancelled after" if s.cancelled else "Exported"
        self.sig_message.emit(
            f"{verb} {s.succeeded + s.failed}/{s.total} images "
            f"({s.failed} failed) in {s.seconds:.1f} s; see {s.csv_path}",
            15000,
        )
        if s.stopped:  # every image has its row, but most have no files: say why, and what to do
            self.sig_warning.emit(
                "Folder export stopped",
                f"Stopped: {s.stopped}. Free some space, then export the folder again "
                f"(the images already written are in {s.csv_path}).",
            )
        self.sig_finished.emit(finished)

    def _hide_progress(self) -> None:
        self.job_id = None
        self.bar.hide()
        self.cancel_button.hide()
