"""Batch export: streams images through the engine and writes heatmaps, overlays and results.csv."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.batch_options import BatchOptions, BatchSummary
from engine.cam import CamEngine, CamResult, CancelCheck, parse_target
from engine.dataset import ImageRecord, load_boxes
from engine.errors import CamCancelled, InspectorError
from engine.export import CsvAppender, write_png
from engine.images import load_image
from engine.localization import Box, energy_in_box, pointing_hit
from engine.map_files import MapFiles, write_map_files

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
)
BatchProgress = Callable[[int, int, int], None]  # done, total, failed
BatchResult = Callable[[ImageRecord, CamResult], None]  # one image's finished map


@dataclass(frozen=True)
class _Loaded:
    record: ImageRecord
    image: np.ndarray | None
    boxes: tuple[Box, ...]
    error: str


# item, map, error, metric fields, extra figures (file suffix -> RGB image)
Outcome = tuple[_Loaded, CamResult | None, str, dict[str, str], dict[str, np.ndarray]]


def output_stems(records: Sequence[ImageRecord], output: Path) -> list[Path]:
    """Output path prefix per image, mirroring sub-folders; 'a.png' and 'a.jpg' stay apart."""
    seen: dict[Path, int] = {}
    for record in records:
        key = record.rel_path.with_suffix("")
        seen[key] = seen.get(key, 0) + 1
    stems = []
    for record in records:
        key = record.rel_path.with_suffix("")
        if seen[key] > 1:
            key = key.with_name(f"{key.name}_{record.rel_path.suffix.lstrip('.').lower()}")
        stems.append(output / key)
    return stems


def _load(record: ImageRecord) -> _Loaded:
    try:
        image = load_image(record.path)
    except InspectorError as exc:
        return _Loaded(record, None, (), str(exc))
    try:
        boxes = load_boxes(record)
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


def _load_all(records: Sequence[ImageRecord]) -> list[_Loaded]:
    return [_load(record) for record in records]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def _format_score(value: float | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    return f"{value:.4f}"


class BatchRunner:
    """Runs one batch export; decoding and file writing overlap the model on a helper thread."""

    def __init__(
        self, engine: CamEngine, options: BatchOptions, on_result: BatchResult | None = None
    ) -> None:
        self.engine = engine
        self.options = options
        self.on_result = on_result  # called once the image's files are written
        self._target = parse_target(options.target, engine.classes)
        self.layer = engine.resolve_layers(options.layer)[0]
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
            }
        return row

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
        """Explain the decodable images of a chunk; undecodable ones keep their error."""
        good = [item for item in chunk if item.image is not None]
        try:
            explained = self._explain(good, cancel) if good else []
            measured = self._measure(good, explained, cancel)
            figures = iter(self._compare(good))
            results, metrics = iter(explained), iter(measured)
            batch_error = ""
        except InspectorError as exc:
            results, metrics, figures, batch_error = iter(()), iter(()), iter(()), str(exc)
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

    def _write_chunk(
        self,
        outcomes: Sequence[Outcome],
        stems: Sequence[Path],
        csv: CsvAppender,
    ) -> int:
        """Write each image's files and its CSV row; returns how many failed."""
        failed = 0
        for (item, result, error, metrics, figures), stem in zip(outcomes, stems, strict=True):
            if result is not None:
                try:
                    self._write_files(stem, item, result)
                    for suffix, figure in figures.items():
                        write_png(stem.with_name(f"{stem.name}_{suffix}.png"), figure, False)
                except InspectorError as exc:
                    result, error = None, str(exc)
            if result is not None and self.on_result is not None:
                self.on_result(item.record, result)
            failed += result is None
            csv.append(self._row(item, result, error) | (metrics if result is not None else {}))
        return failed

    def run(
        self,
        records: Sequence[ImageRecord],
        progress: BatchProgress | None = None,
        cancel: CancelCheck | None = None,
    ) -> BatchSummary:
        """Process every record; a bad file becomes an error row and the run goes on.

        Where a core is free, one helper thread decodes the next chunk and writes the previous
        one while the model works on the current one (OpenCV releases the GIL); at most three
        chunks are alive at once, so memory stays flat however long the run.
        """
        start = time.perf_counter()
        output = self.options.output
        output.mkdir(parents=True, exist_ok=True)
        stems = output_stems(records, output)
        size = max(1, self.options.batch_size)
        chunks = list(zip(_chunks(records, size), _chunks(stems, size), strict=True))
        done = failed = 0
        cancelled = False
        csv_path = output / "results.csv"
        with CsvAppender(csv_path, self.columns) as csv, self._executor() as pool:

            def settle(writing: Future | None, count: int) -> None:
                nonlocal done, failed
                if writing is None:
                    return
                failed += writing.result()
                done += count
                if progress is not None:
                    progress(done, len(records), failed)

            loading = pool.submit(_load_all, chunks[0][0]) if chunks else None
            writing: Future | None = None
            written = 0
            for index, (_records, chunk_stems) in enumerate(chunks):
                loaded = loading.result()
                if index + 1 < len(chunks):
                    loading = pool.submit(_load_all, chunks[index + 1][0])
                try:
                    outcomes = self._explain_chunk(loaded, cancel)
                except CamCancelled:
                    cancelled = True
                    break
                settle(writing, written)
                writing = pool.submit(self._write_chunk, outcomes, chunk_stems, csv)
                written = len(outcomes)
            settle(writing, written)
        return BatchSummary(
            len(records), done - failed, failed, cancelled, csv_path, time.perf_counter() - start
        )
