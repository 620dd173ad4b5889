"""Batch export: streams images through the engine and writes heatmaps, overlays and results.csv."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.batch_options import DISK_FULL, BatchOptions, BatchSummary
from engine.batch_outputs import RowReserve, finished_rows, is_disk_full, output_stems
from engine.cam import CamEngine, CamResult, CancelCheck, parse_target
from engine.csv_cells import cell_text
from engine.dataset import ImageRecord, load_boxes
from engine.errors import CamCancelled, InspectorError, first_line
from engine.export import CsvAppender, write_png
from engine.file_lock import lock_output_folder
from engine.images import DecodeLimits, load_image
from engine.localization import Box, energy_in_box, pointing_hit
from engine.map_files import MapFiles, map_file_paths, write_map_files

CSV_COLUMNS = (
    "path",
    "status",
    "error",
    "ground_truth",
    "predicted",
    "confidence",
    "target",
    "layer",
    "method",
    "pointing_hit",
    "energy_in_box",
    "top5",
    "warning",
)
BatchProgress = Callable[[int, int, int], None]  # done, total, failed
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# torch's CPU allocator raises a plain RuntimeError when an allocation fails.
_CPU_ALLOCATION_FAILED = "can't allocate memory"


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a pass failed for want of memory (CPU or GPU), not from a bug."""
    return isinstance(exc, MemoryError | _OUT_OF_MEMORY) or _CPU_ALLOCATION_FAILED in str(exc)


BatchResult = Callable[[ImageRecord, CamResult], None]  # one image's finished map


@dataclass
class _Tally:
    """How many images a run has finished and how many of those failed; tells progress."""

    total: int
    progress: BatchProgress | None
    done: int = 0
    failed: int = 0

    def settle(self, writing: Future | None, count: int) -> None:
        """Wait for a chunk's writing and count its images."""
        if writing is None:
            return
        self.failed += writing.result()
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total, self.failed)


@dataclass(frozen=True)
class _Loaded:
    record: ImageRecord
    image: np.ndarray | None
    boxes: tuple[Box, ...]
    error: str


# item, map, error, metric fields, extra figures (file suffix -> RGB image)
Outcome = tuple[_Loaded, CamResult | None, str, dict[str, str], dict[str, np.ndarray]]


def _load(record: ImageRecord, limits: DecodeLimits) -> _Loaded:
    try:
        image = load_image(record.path, limits)
    except InspectorError as exc:
        return _Loaded(record, None, (), str(exc))
    except MemoryError:
        return _Loaded(record, None, (), "cannot read it: out of memory while decoding")
    try:
        boxes = load_boxes(record, image.shape)
    except InspectorError as exc:
        # A broken annotation must not hide the map: explain the image, report the XML.
        return _Loaded(record, image, (), f"annotation ignored: {exc}")
    return _Loaded(record, image, boxes, "")


class _InlineExecutor:
    """The executor interface, running each task at once in the calling thread."""

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def __enter__(self) -> _InlineExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def _format_score(value: float | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    return f"{value:.4f}"


def completed_rows(
    csv_path: Path,
    records: Sequence[ImageRecord],
    stems: Sequence[Path],
    options: BatchOptions,
    layer: str,
    exists: Callable[[Path], bool] = Path.is_file,
) -> dict[int, dict[str, str]]:
    """Rows of an earlier run to keep (--resume), by record index: status ok, made with this
    method at this layer, with every column this run writes (its metrics), and every file the
    options ask for still present. Any other image is made again."""
    columns = BatchWriter(options, layer).columns
    same = {"method": options.method, "layer": layer}
    earlier = finished_rows(csv_path, records, columns, same)
    files = MapFiles(panels=options.panels, raw=options.save_raw)
    kept = {}
    for index, (record, stem) in enumerate(zip(records, stems, strict=True)):
        row = earlier.get(record.rel_path.as_posix())
        needed = map_file_paths(stem, files)
        if options.compare:
            needed.append(stem.with_name(f"{stem.name}_compare.png"))
        if row is not None and all(exists(p) for p in needed):
            # Cells as read back (the writer guards them again, exactly once).
            kept[index] = {name: cell_text(row.get(name) or "") for name in columns}
    return kept


class BatchWriter:
    """Writes explained images' files and results rows; needs no model, so a Ray task can too."""

    def __init__(
        self, options: BatchOptions, layer: str, on_result: BatchResult | None = None
    ) -> None:
        self.options = options
        self.layer = layer
        self.on_result = on_result  # called once the image's files are written
        self._limits = DecodeLimits(max_pixels=options.max_pixels)
        self._stopped = ""  # set by the writer when the disk fills; the rest is not explained
        self._reserve: RowReserve | None = None
        self.columns = CSV_COLUMNS + tuple(options.metrics)

    def _write_files(self, stem: Path, loaded: _Loaded, result: CamResult) -> None:
        """The image's PNGs (and .npy): atomic, not fsynced, as they can be made again."""
        opts = self.options
        boxes = loaded.boxes if opts.draw_boxes else ()
        files = MapFiles(panels=opts.panels, raw=opts.save_raw, durable=False)
        write_map_files(stem, loaded.image, result, opts.style, boxes, files)

    def _row(self, loaded: _Loaded, result: CamResult | None, error: str) -> dict[str, str]:
        row = {
            "path": loaded.record.rel_path.as_posix(),
            "status": "error" if result is None else "ok",
            "error": error,
            "ground_truth": loaded.record.ground_truth or "",
            "layer": self.layer,
            "method": self.options.method,
        }
        if result is not None:
            row |= {
                "predicted": result.predicted.name,
                "confidence": f"{result.predicted.probability:.4f}",
                "target": result.target_name,
                "pointing_hit": _format_score(pointing_hit(result.cam, loaded.boxes)),
                "energy_in_box": _format_score(energy_in_box(result.cam, loaded.boxes)),
                "top5": ";".join(f"{p.name}:{p.probability:.4f}" for p in result.top_k),
                # --target gt without a ground truth explains the prediction: said, not silent.
                "warning": "; ".join(text for text in (result.warning, result.note) if text),
            }
        return row

    def _write_chunk(
        self,
        outcomes: Sequence[Outcome],
        stems: Sequence[Path],
        csv: CsvAppender,
    ) -> int:
        """Write each image's files and its CSV row; returns how many failed."""
        failed = 0
        for (item, result, error, metrics, figures), stem in zip(outcomes, stems, strict=True):
            if self._stopped:
                result, error = None, self._stopped
            elif result is not None:
                result, error = self._try_write(stem, item, result, error, figures)
            if result is not None and self.on_result is not None:
                self.on_result(item.record, result)
            failed += result is None
            row = self._row(item, result, error) | (metrics if result is not None else {})
            self._append(csv, row)
        return failed

    def _try_write(
        self,
        stem: Path,
        item: _Loaded,
        result: CamResult,
        error: str,
        figures: dict[str, np.ndarray],
    ) -> tuple[CamResult | None, str]:
        """The image's files, or no result and why; a full disk stops the run's writing."""
        try:
            self._write_files(stem, item, result)
            for suffix, figure in figures.items():
                write_png(stem.with_name(f"{stem.name}_{suffix}.png"), figure, False)
        except InspectorError as exc:
            if not is_disk_full(exc):
                return None, str(exc)
            self._stop(DISK_FULL)
            return None, DISK_FULL
        except (MemoryError, cv2.error) as exc:
            return None, f"cannot draw its files: {first_line(exc) or 'out of memory'}"
        return result, error

    def _stop(self, reason: str) -> None:
        self._stopped = reason
        if self._reserve is not None:  # the space kept for the remaining rows
            self._reserve.release()

    def _append(self, csv: CsvAppender, row: dict[str, str]) -> None:
        try:
            csv.append(row)
        except InspectorError as exc:
            if not is_disk_full(exc) or self._reserve is None or self._stopped:
                raise
            self._stop(DISK_FULL)  # frees the reserve: the row fits now
            csv.append(row)


class BatchRunner(BatchWriter):
    """Runs one batch export; decoding and file writing overlap the model on a helper thread."""

    def __init__(
        self, engine: CamEngine, options: BatchOptions, on_result: BatchResult | None = None
    ) -> None:
        super().__init__(options, engine.resolve_layers(options.layer)[0], on_result)
        self.engine = engine
        self._target = parse_target(options.target, engine.classes)

    def _explain(self, good: list[_Loaded], cancel: CancelCheck | None) -> list[CamResult]:
        truth = [self._truth_index(item.record) for item in good]
        return self.engine.explain(
            [item.image for item in good],
            self.options.method,
            self.layer,
            target=self._target,
            ground_truth=truth,
            blur_sigma=self.options.style.blur_sigma,
            cancel=cancel,
            smoothing=self.options.smoothing,
        )

    def _truth_index(self, record: ImageRecord) -> int | None:
        if record.ground_truth in self.engine.classes:
            return self.engine.classes.index(record.ground_truth)
        return None

    def _measure(
        self, good: list[_Loaded], results: list[CamResult], cancel: CancelCheck | None
    ) -> list[dict[str, str]]:
        """The chunk's faithfulness metrics as CSV fields (none unless asked for)."""
        if not self.options.metrics or not results:
            return [{} for _ in results]
        from engine.metrics.faithfulness import MetricSettings
        from engine.metrics.measure import measure

        opts = self.options
        settings = MetricSettings(opts.metrics, opts.road_noise, opts.seed)
        images = [item.image for item in good]
        rows = measure(self.engine, images, results, settings, opts.style.blur_sigma, cancel)
        return [{name: f"{value:.4f}" for name, value in row.items()} for row in rows]

    def _compare(self, good: list[_Loaded]) -> list[dict[str, np.ndarray]]:
        """The chunk's comparison grids (none unless asked for), from one pass."""
        if not self.options.compare or not good:
            return [{} for _ in good]
        from engine.choices import Compare
        from engine.compare import CompareRequest, compare_figure, compare_results

        opts = self.options
        request = CompareRequest(
            Compare.parse(opts.compare),
            opts.method,
            self.layer,
            self._target,
            opts.style,
            opts.smoothing,
        )
        truth = [self._truth_index(item.record) for item in good]
        found = compare_results(self.engine, [item.image for item in good], request, truth)
        boxes = [item.boxes if opts.draw_boxes else () for item in good]
        return [
            {
                "compare": compare_figure(
                    item.image, maps, opts.style, box, item.record.rel_path.as_posix()
                )
            }
            for item, maps, box in zip(good, found, boxes, strict=True)
        ]

    def _explain_chunk(self, chunk: Sequence[_Loaded], cancel: CancelCheck | None) -> list[Outcome]:
        """Explain the decodable images of a chunk (maps, then metrics and comparison grids
        where asked for); undecodable ones keep their error."""
        good = [item for item in chunk if item.image is not None]
        try:
            explained = self._explain(good, cancel) if good else []
            measured = self._measure(good, explained, cancel)
            figures = iter(self._compare(good))
            results, metrics = iter(explained), iter(measured)
            batch_error = ""
        except InspectorError as exc:
            if len(good) > 1:  # one image's NaN scores must not fail its neighbours
                return [o for item in chunk for o in self._explain_chunk([item], cancel)]
            results, metrics, figures, batch_error = iter(()), iter(()), iter(()), str(exc)
        except (MemoryError, RuntimeError) as exc:  # every image still gets its row
            if not _out_of_memory(exc):
                raise
            results, metrics, figures = iter(()), iter(()), iter(())
            batch_error = f"out of memory explaining it: {first_line(exc)}"
        outcomes: list[Outcome] = []
        for item in chunk:
            if item.image is None or batch_error:
                outcomes.append((item, None, item.error or batch_error, {}, {}))
            else:
                outcomes.append((item, next(results), item.error, next(metrics), next(figures)))
        return outcomes

    def _executor(self) -> ThreadPoolExecutor | _InlineExecutor:
        """A helper thread only when it does not take a core from the model's own threads:
        on a CPU whose every core runs torch, OpenMP workers would stall waiting for it."""
        spare_core = (os.cpu_count() or 1) > torch.get_num_threads()
        if self.engine.device.type == "cuda" or spare_core:
            return ThreadPoolExecutor(1)
        return _InlineExecutor()

    def run(
        self,
        records: Sequence[ImageRecord],
        progress: BatchProgress | None = None,
        cancel: CancelCheck | None = None,
    ) -> BatchSummary:
        """Process every record; a bad file becomes an error row and the run goes on.

        The output folder is locked for the run (a second run into it is refused). Every image
        gets one row: when the disk fills, the rest get 'disk full' rows, written into space
        set aside at the start, and the summary says the run stopped. With options.resume the
        ok rows of an earlier results.csv are kept and their images skipped.
        """
        start = time.perf_counter()
        output = self.options.output
        output.mkdir(parents=True, exist_ok=True)
        lock = lock_output_folder(output)
        self._stopped = ""
        try:
            self._reserve = RowReserve(output, len(records))
            try:
                return self._run_locked(records, progress, cancel, start)
            finally:
                self._reserve.release()
        finally:
            lock.close()

    def _run_locked(
        self,
        records: Sequence[ImageRecord],
        progress: BatchProgress | None,
        cancel: CancelCheck | None,
        start: float,
    ) -> BatchSummary:
        output = self.options.output
        csv_path = output / "results.csv"
        stems = output_stems(records, output)
        kept = (
            completed_rows(csv_path, records, stems, self.options, self.layer)
            if self.options.resume
            else {}
        )
        todo = [(records[i], stems[i]) for i in range(len(records)) if i not in kept]
        tally = _Tally(len(records), progress, done=len(kept))
        with CsvAppender(csv_path, self.columns) as csv, self._executor() as pool:
            for row in kept.values():
                csv.append(row)
            reached, cancelled = self._stream(todo, csv, pool, tally, cancel)
            if self._stopped:
                rest = self._rows_for_the_rest(csv, todo[reached:])
                tally.done, tally.failed = tally.done + rest, tally.failed + rest
        return BatchSummary(
            len(records),
            tally.done - tally.failed,
            tally.failed,
            cancelled,
            csv_path,
            time.perf_counter() - start,
            self._stopped,
            len(kept),
        )

    def _stream(
        self,
        todo: Sequence[tuple[ImageRecord, Path]],
        csv: CsvAppender,
        pool: ThreadPoolExecutor | _InlineExecutor,
        tally: _Tally,
        cancel: CancelCheck | None,
    ) -> tuple[int, bool]:
        """Decode, explain and write todo chunk by chunk; returns (how many images it took on,
        whether it was cancelled). At most three chunks are alive at once: one decoding, one on
        the model, one being written."""
        loading = pool.submit(self._load_chunk, todo, 0) if todo else None
        writing: Future | None = None
        written = first = 0
        cancelled = False
        while loading is not None:
            loaded, end = loading.result()
            if self._stopped:
                break
            loading = pool.submit(self._load_chunk, todo, end) if end < len(todo) else None
            try:
                outcomes = self._explain_chunk(loaded, cancel)
            except CamCancelled:
                cancelled = True
                break
            tally.settle(writing, written)
            stems = [stem for _, stem in todo[first:end]]
            writing = pool.submit(self._write_chunk, outcomes, stems, csv)
            written, first = len(outcomes), end
        tally.settle(writing, written)
        return first, cancelled

    def _load_chunk(
        self, todo: Sequence[tuple[ImageRecord, Path]], first: int
    ) -> tuple[list[_Loaded], int]:
        """Decode todo[first:end] and return it with end: batch_size images, fewer once they
        hold max_pixels, so a chunk stays under twice that however large the corpus' images."""
        loaded: list[_Loaded] = []
        pixels, end = 0, first
        size = max(1, self.options.batch_size)
        while end < len(todo) and len(loaded) < size and pixels < self.options.max_pixels:
            item = _load(todo[end][0], self._limits)
            loaded.append(item)
            end += 1
            if item.image is not None:
                pixels += item.image.shape[0] * item.image.shape[1]
        return loaded, end

    def _rows_for_the_rest(self, csv: CsvAppender, rest: Sequence[tuple[ImageRecord, Path]]) -> int:
        """A row saying why for every image the run did not reach; returns how many."""
        for record, _ in rest:
            self._append(csv, self._row(_Loaded(record, None, (), ""), None, self._stopped))
        return len(rest)
