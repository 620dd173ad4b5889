"""The one thread that owns the model: takes jobs, caches captures, sends back numpy results."""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from engine.dataset import ImageRecord, load_boxes
from engine.errors import CamCancelled, InspectorError, TrustNeeded
from engine.images import load_image
from engine.localization import Box
from engine.lru import LruCache
from engine.profile import ModelProfile
from ui.jobs import (
    BLUR_SIGMA,
    ClassTrust,
    Explain,
    Explained,
    ExportFinished,
    ExportFolder,
    ExportProgress,
    ExportReport,
    JobFailed,
    LoadModel,
    ModelLoaded,
    ReportWritten,
    Target,
    TrustCheck,
    TrustChecked,
)

log = logging.getLogger(__name__)

GC_INTERVAL_MS = 500
FULL_GC_EVERY = 20  # ticks: a full collection every 10 s, cheap once the imports are frozen
CAPTURE_CACHE_SIZE = 128  # one resnet18 capture at 160x160 is ~0.4 MB
IMAGE_CACHE_SIZE = 8
CaptureKey = tuple[str, str, Target, int | None]


def _failure(exc: Exception, what: str) -> str:
    """A failed job's one line: the user's error as it is; anything else logged with its
    traceback (a bug, or a broken file that raised something odd) and named by its type."""
    if isinstance(exc, InspectorError):
        return str(exc)
    log.exception("%s failed", what)
    return f"{type(exc).__name__}: {exc}"


class CamWorker(QObject):
    """Lives in its own QThread; the only object that touches torch.

    ``submit`` may be called from any thread. Interactive ``Explain`` jobs share one slot, so
    the newest replaces any waiting one (flipping through 50 images computes the last); model
    loads and folder exports queue in order. ``model_passes`` and ``cache_hits`` count captures
    made and captures reused, for the tests and the status bar.
    """

    sig_model_loaded = Signal(object)  # ModelLoaded
    sig_explained = Signal(object)  # Explained
    sig_failed = Signal(object)  # JobFailed
    sig_export_progress = Signal(object)  # ExportProgress
    sig_export_finished = Signal(object)  # ExportFinished
    sig_report_written = Signal(object)  # ReportWritten
    sig_report_progress = Signal(int, int)  # overlays drawn, gallery cards
    sig_predicted = Signal(object, str, float)  # a prefetched or exported record's prediction
    sig_exported = Signal(object, object)  # a folder export's record and its CamResult
    sig_cam_progress = Signal(int, int)  # Score-CAM passes done, total
    sig_trust_checked = Signal(object)  # TrustChecked
    sig_class_trust = Signal(object)  # ClassTrust, after a folder export
    sig_notice = Signal(str)  # a remark on the model, once: how loading or its output was read
    sig_idle = Signal()
    _wake = Signal()

    def __init__(self, prefetch: bool = True) -> None:
        super().__init__()
        self.prefetch_enabled = prefetch
        self.model_passes = 0
        self.cache_hits = 0
        self._lock = threading.Lock()
        self._latest: Explain | None = None
        self._queue: deque[LoadModel | ExportFolder | ExportReport | TrustCheck] = deque()
        self._prefetch: deque[tuple[ImageRecord, str, Target]] = deque()
        self._stopping = threading.Event()
        self._cancel_export = threading.Event()
        self._superseded = 0  # explain jobs below this number are cancelled (see supersede)
        self.job_lock = threading.Lock()  # held while a job may touch torch (see GcPolicy)
        self._engine: Any = None
        self._profile_name = ""  # the loaded model's, for reports
        self._output_note_said = False  # the model's output note is said once per loaded model
        self._captures: LruCache[CaptureKey, Any] = LruCache(CAPTURE_CACHE_SIZE)
        self._images: LruCache[str, tuple[np.ndarray, tuple[Box, ...]]] = LruCache(IMAGE_CACHE_SIZE)
        self._wake.connect(self._drain)

    # -- called from the GUI thread -------------------------------------------------------------
    def submit(self, job: LoadModel | Explain | ExportFolder | ExportReport | TrustCheck) -> None:
        with self._lock:
            if isinstance(job, Explain):
                self._latest = job
            else:
                self._queue.append(job)
        self._wake.emit()

    def cancel_export(self) -> None:
        self._cancel_export.set()

    def supersede(self, job_id: int) -> None:
        """Explain jobs numbered below job_id are no longer wanted (the window showed a cached
        map instead): a running one stops at its next cancel check, e.g. a long Score-CAM."""
        self._superseded = job_id  # one int store: atomic under the GIL

    def stop(self) -> None:
        """Ask every running job to end at its next cancel check; the thread can then quit."""
        self._stopping.set()
        self._cancel_export.set()

    # -- the worker thread ----------------------------------------------------------------------
    def _pending(self) -> bool:
        with self._lock:
            return self._latest is not None or bool(self._queue)

    def _take(self) -> LoadModel | Explain | ExportFolder | ExportReport | TrustCheck | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            job, self._latest = self._latest, None
            return job

    @Slot()
    def _drain(self) -> None:
        with self.job_lock:
            while not self._stopping.is_set():
                job = self._take()
                if job is not None:
                    self._run(job)
                elif not self._prefetch_one():
                    break
        if not self._stopping.is_set():
            self.sig_idle.emit()

    def _run(self, job: LoadModel | Explain | ExportFolder | ExportReport | TrustCheck) -> None:
        if isinstance(job, LoadModel):
            self._load(job)
        elif isinstance(job, Explain):
            self._explain(job)
        elif isinstance(job, ExportReport):
            self._report(job)
        elif isinstance(job, TrustCheck):
            self._trust(job)
        else:
            self._export(job)

    def _load(self, job: LoadModel) -> None:
        start = time.perf_counter()
        try:
            import torch  # first import happens here, off the GUI thread

            from engine.cam import CamEngine

            profile = _read_profile(job)
            engine = CamEngine.from_profile(profile, job.device, profile.trust_pickle)
            inventory = engine.inventory
            weights_sha256 = engine.load_info.weights_sha256 or ""
            # The model file may fix what the profile left open (an ONNX input size).
            profile = dataclasses.replace(profile, preprocess=engine.preprocess)
        except TrustNeeded as exc:
            self.sig_failed.emit(JobFailed(0, "model", str(exc), trust=exc.what))
            return
        except Exception as exc:  # a broken checkpoint can raise anything; show, don't crash
            self.sig_failed.emit(JobFailed(0, "model", _failure(exc, "model load")))
            return
        self._engine = engine
        self._profile_name = profile.name
        self._output_note_said = False
        self._captures.clear()
        self._prefetch.clear()
        # Automatic GC is off (GcPolicy), so everything `import torch` and the model made sits in
        # the youngest generation; the GUI timer's next collection would walk all of it (~0.35 s
        # of frozen window). Freezing here, before the job lock is released, keeps those objects
        # out of every later collection; freeze only moves lists, it traverses nothing.
        gc.freeze()
        loaded = ModelLoaded(
            profile,
            str(engine.device),
            engine.classes,
            inventory,
            time.perf_counter() - start,
            torch.cuda.is_available(),
            weights_sha256,
        )
        self.sig_model_loaded.emit(loaded)
        if engine.load_info.notes:
            self.sig_notice.emit("; ".join(engine.load_info.notes))

    def _image(self, record: ImageRecord) -> tuple[np.ndarray, tuple[Box, ...]]:
        key = str(record.path)
        cached = self._images.get(key)
        if cached is None:
            image = load_image(record.path)
            try:
                boxes = load_boxes(record, image.shape)
            except InspectorError as exc:
                log.warning("%s", exc)
                boxes = ()
            cached = (image, boxes)
            self._images.put(key, cached)
        return cached

    def _truth(self, record: ImageRecord) -> int | None:
        classes = self._engine.classes
        return classes.index(record.ground_truth) if record.ground_truth in classes else None

    def _capture(
        self, record: ImageRecord, layer: str, target: Target, cancel: Callable[[], bool]
    ) -> tuple[Any, bool]:
        """The cached capture or a new model pass; returns (capture, made_a_pass)."""
        truth = self._truth(record)
        key: CaptureKey = (str(record.path), layer, target, truth)
        capture = self._captures.get(key)
        if capture is not None:
            return capture, False
        image, _ = self._image(record)
        capture = self._engine.capture([image], layer, target, [truth], cancel)[0]
        self.model_passes += 1
        note = "" if self._output_note_said else capture.output_note
        if note:  # the first pass found logits inside a tuple/dict output: say which, once
            self._output_note_said = True
            self.sig_notice.emit(note)
            joined = f"{capture.note}; {note}" if capture.note else note
            capture = dataclasses.replace(capture, note=joined)
        self._captures.put(key, capture)
        return capture, True

    def _explain(self, job: Explain) -> None:
        if self._engine is None:
            self.sig_failed.emit(JobFailed(job.job_id, "explain", "no model loaded", job.record))
            return
        start = time.perf_counter()

        def cancel() -> bool:
            return self._stopping.is_set() or self._pending() or job.job_id < self._superseded

        try:
            image, boxes = self._image(job.record)
            if job.smoothing.aug:
                result, made_pass = self._augmented(job, image, cancel), True
            else:
                capture, made_pass = self._capture(job.record, job.layer, job.target, cancel)
                if not made_pass:
                    self.cache_hits += 1
                result = self._engine.cam_from_capture(
                    capture,
                    job.method,
                    job.layer,
                    BLUR_SIGMA if job.blur else 0.0,
                    cancel,
                    self.sig_cam_progress.emit,
                    eigen_smooth=job.smoothing.eigen,
                )
        except CamCancelled:
            return
        except Exception as exc:
            message = _failure(exc, f"CAM for {job.record.path}")
            self.sig_failed.emit(JobFailed(job.job_id, "explain", message, job.record))
            return
        milliseconds = 1000 * (time.perf_counter() - start)
        self.sig_explained.emit(
            Explained(job.job_id, job.record, image, boxes, result, milliseconds, made_pass)
        )
        if self.prefetch_enabled:
            self._prefetch = deque((r, job.layer, job.target) for r in job.prefetch)

    def _augmented(self, job: Explain, image: np.ndarray, cancel: Callable[[], bool]) -> Any:
        """aug_smooth's map: six passes of its own (a capture holds one), never cached here."""
        from engine.cam import TargetSpec

        target = TargetSpec("pred") if job.target == "pred" else TargetSpec("index", job.target)
        self.model_passes += 1
        return self._engine.explain(
            [image],
            job.method,
            job.layer,
            target=target,
            ground_truth=[self._truth(job.record)],
            blur_sigma=BLUR_SIGMA if job.blur else 0.0,
            cancel=cancel,
            progress=self.sig_cam_progress.emit,
            smoothing=job.smoothing,
        )[0]

    def _prefetch_one(self) -> bool:
        """Capture the next queued neighbour; False when there is nothing left to do."""
        if not self._prefetch or self._engine is None:
            return False
        record, layer, target = self._prefetch.popleft()
        try:
            capture, _ = self._capture(record, layer, target, self._pending)
            index = capture.predicted_index
            probability = float(capture.probabilities[index])
            self.sig_predicted.emit(record, self._engine.class_name(index), probability)
        except (CamCancelled, InspectorError):
            pass  # a newer job came, or a bad file: its own Explain will report it
        except Exception:
            log.exception("prefetch failed for %s", record.path)
        return True

    def _export(self, job: ExportFolder) -> None:
        from engine.batch import BatchRunner

        self._cancel_export.clear()
        start = time.perf_counter()
        if self._engine is None:
            self.sig_failed.emit(JobFailed(job.job_id, "export", "no model loaded"))
            return

        def progress(done: int, total: int, failed: int) -> None:
            elapsed = time.perf_counter() - start
            self.sig_export_progress.emit(ExportProgress(job.job_id, done, total, failed, elapsed))
            self._serve_interactive()

        from engine.class_average import ClassAverages

        averages = ClassAverages(self._engine.size)

        def exported(record: ImageRecord, result: Any) -> None:
            self._exported(record, result)
            averages.add(record.ground_truth, result.predicted.name, result.cam)

        try:
            runner = BatchRunner(self._engine, job.options, exported)
            summary = runner.run(job.records, progress, self._cancel_export.is_set)
        except Exception as exc:
            self.sig_failed.emit(JobFailed(job.job_id, "export", _failure(exc, "folder export")))
            return
        self.sig_export_finished.emit(ExportFinished(job.job_id, summary))
        self._send_class_trust(job, averages, summary.csv_path)

    def _send_class_trust(self, job: ExportFolder, averages: Any, csv_path: Any) -> None:
        """The export's class-average maps and per-class metric means, for the Summary tab."""
        import csv

        from engine.class_average import class_average_figure, metric_means, summary_lines

        figure = class_average_figure(averages, job.options.style.colormap)
        if figure is None:
            return
        try:
            with csv_path.open(newline="", encoding="utf-8") as handle:
                means = metric_means(csv.DictReader(handle), job.options.metrics)
        except OSError as exc:
            log.warning("could not read %s: %s", csv_path, exc)
            means = {}
        lines = summary_lines(averages, means, job.options.metrics)
        self.sig_class_trust.emit(ClassTrust(job.job_id, figure, tuple(lines)))

    def _trust(self, job: TrustCheck) -> None:
        """A trust tool on one image (sanity check, comparison grid, metrics)."""
        from engine.choices import TrustTool
        from engine.trust import TrustQuestion, answer

        try:
            if self._engine is None:
                raise InspectorError("no model loaded")
            image, boxes = self._image(job.record)
            tool = TrustTool.parse(job.tool)
            capture = None
            # The methods grid draws from the image's cached pass (aug_smooth needs its own).
            if tool in (TrustTool.METHODS, TrustTool.ALL_METHODS) and not job.smoothing.aug:
                capture, _ = self._capture(job.record, job.layer, job.target, self._stopping.is_set)
            question = TrustQuestion(
                tool,
                job.record.rel_path.as_posix(),
                image,
                boxes,
                job.layer,
                job.method,
                job.target,
                self._truth(job.record),
                job.style,
                capture,
                job.smoothing,
            )
            found = answer(
                self._engine, question, self._stopping.is_set, self.sig_cam_progress.emit
            )
        except CamCancelled:
            return
        except Exception as exc:
            found, message = None, _failure(exc, f"trust tool {job.tool} for {job.record.path}")
        if found is None:
            done = TrustChecked(job.job_id, job.tool, job.record, None, message, failed=True)
        else:
            done = TrustChecked(job.job_id, job.tool, job.record, found.figure, found.text)
        self.sig_trust_checked.emit(done)

    def _report(self, job: ExportReport) -> None:
        """The same writer as the command line's `report`, with this model (or none loaded);
        between its model passes the image the user is looking at is answered."""
        from engine.report_images import write_model_report

        def between(drawn: int, cards: int) -> None:
            if self._stopping.is_set():
                raise CamCancelled  # the window is closing: the report is not finished
            self.sig_report_progress.emit(drawn, cards)
            self._serve_interactive()

        try:
            files = write_model_report(
                job.data, job.output, self._engine, self._profile_name, between=between
            )
        except CamCancelled:
            return
        except Exception as exc:
            self.sig_failed.emit(JobFailed(job.job_id, "report", _failure(exc, "report")))
            return
        self.sig_report_written.emit(ReportWritten(job.job_id, files))

    def _exported(self, record: ImageRecord, result: object) -> None:
        """Fill the list's predicted column as the folder export goes (any thread may emit)."""
        predicted = result.predicted
        self.sig_predicted.emit(record, predicted.name, predicted.probability)
        self.sig_exported.emit(record, result)  # the gallery draws its thumbnail

    def _serve_interactive(self) -> None:
        """Between export chunks the model is free: answer the image the user is looking at."""
        with self._lock:
            job, self._latest = self._latest, None
        if job is not None and not self._stopping.is_set():
            self._explain(job)


def _read_profile(job: LoadModel) -> ModelProfile:
    from engine.profile import (
        demo_profile_path,
        load_profile,
        profile_from_checkpoint,
        save_profile,
    )

    spec = job.checkpoint
    if spec is None:
        profile = load_profile(job.profile_path or demo_profile_path())
    else:
        profile = profile_from_checkpoint(
            spec.weights, spec.architecture, spec.classes, spec.size, spec.mean, spec.std
        )
    profile = dataclasses.replace(
        profile,
        trust_pickle=profile.trust_pickle or job.trust_pickle,
        trust_code=profile.trust_code or job.trust_code,
    )
    saved_to = spec.save_profile_to if spec is not None else None
    if saved_to is None and job.remember_trust:
        saved_to = profile.source  # None for a Hugging Face folder: nothing to write into
    if saved_to is not None:
        save_profile(profile, saved_to)
        profile = load_profile(saved_to)
    return profile


class GcPolicy:
    """Python's cyclic garbage collector runs on the GUI thread, and never during a torch job.

    A collection traverses every tensor in the process, including the autograd graph the
    worker is building with the GIL released, and that race segfaults. Collecting on the
    GUI thread also keeps Qt wrappers from being deleted in the worker thread. So automatic
    collection is off while a worker exists, and a GUI timer collects whenever the worker's
    job lock is free.
    """

    _users = 0

    def __init__(self, job_lock: threading.Lock) -> None:
        self._lock = job_lock
        self._ticks = 0
        self._timer = QTimer()
        self._timer.setInterval(GC_INTERVAL_MS)
        self._timer.timeout.connect(self.collect)
        if GcPolicy._users == 0:
            gc.disable()
        GcPolicy._users += 1
        self._timer.start()

    def collect(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a job is running: try again at the next tick
        try:
            self._ticks += 1
            gc.collect(2 if self._ticks % FULL_GC_EVERY == 0 else 1)
        finally:
            self._lock.release()

    def close(self) -> None:
        self._timer.stop()
        GcPolicy._users -= 1
        if GcPolicy._users == 0:
            gc.enable()


class WorkerThread:
    """A CamWorker in its own QThread, with a clean shutdown."""

    def __init__(self, prefetch: bool = True) -> None:
        self.thread = QThread()
        self.thread.setObjectName("cam-worker")
        self.worker = CamWorker(prefetch)
        self.worker.moveToThread(self.thread)
        # The worker is deleted in its own thread as that thread ends, never by the garbage
        # collector on the GUI thread (deleting a QObject of another thread can crash).
        self.thread.finished.connect(self.worker.deleteLater)
        self._gc = GcPolicy(self.worker.job_lock)
        self.thread.start()

    def shutdown(self) -> bool:
        """Cancel, quit the event loop and wait for the thread to end.

        Every CAM and export job stops at its next cancel check; only a model load (importing
        torch, reading weights) cannot be interrupted, so the wait has no time limit: giving up
        would destroy a running QThread and abort the process.
        """
        self.worker.stop()
        self.thread.quit()
        ended = self.thread.wait()
        if self._gc is not None:
            self._gc.close()
            self._gc = None
        return ended
