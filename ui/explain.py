"""The explain cycle: job ids, the newest request wins, finished maps kept to show again at once.

Needs no model and no widgets: it sends Explain jobs to anything with ``submit``/``supersede``
and a ``sig_explained`` signal (the CamWorker; a fake in tests/ui/test_explain.py), and tells the
window what to show through signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PySide6.QtCore import QObject, Signal, SignalInstance

from engine.dataset import ImageRecord
from engine.lru import LruCache
from engine.methods.registry import Smoothing
from ui.jobs import Explain, Explained, Target
from ui.view_state import ViewOptions

SHOWN_CACHE_SIZE = 8  # finished maps kept on the GUI side: going back shows them at once
# image path, layer, target, method, blur, smoothing
ShownKey = tuple[str, str, Target, str, bool, Smoothing]


class ExplainWorker(Protocol):
    """What the controller needs of the worker."""

    sig_explained: SignalInstance  # Explained, emitted from the worker's thread

    def submit(self, job: Explain) -> None: ...

    def supersede(self, job_id: int) -> None: ...


class ExplainController(QObject):
    """Asks the worker for the shown image's map, or shows a cached one; drops stale results.

    ``sig_computed`` carries every map the model made (the current one or an older request's:
    its row and the session still take its prediction); ``sig_show`` the map to show now;
    ``sig_result`` follows either, once the window has handled it.
    """

    sig_computed = Signal(object)  # Explained
    sig_show = Signal(object)  # Explained
    sig_result = Signal(object)  # Explained
    sig_message = Signal(str, int)  # status-bar text, timeout in ms (0: until replaced)

    def __init__(
        self,
        worker: ExplainWorker,
        cache_size: int = SHOWN_CACHE_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.job_id = 0  # the newest job's; explain and export jobs share the sequence
        self.last_explained: Explained | None = None  # the map shown now
        self._requested: dict[int, ShownKey] = {}  # the running request's key, by job id
        self._shown: LruCache[ShownKey, Explained] = LruCache(cache_size)
        self._closed = False
        # A bound method: the worker emits from its thread, and only a slot of an object living
        # on the GUI thread is queued there (a lambda would run on the worker and crash Qt).
        worker.sig_explained.connect(self._explained)

    def new_job_id(self) -> int:
        """The next job id; any job sent after an Explain makes its result stale."""
        self.job_id += 1
        return self.job_id

    def is_current(self, job_id: int) -> bool:
        return job_id == self.job_id

    def cached(self) -> list[Explained]:
        """The kept maps, least recently used first."""
        return self._shown.values()

    def request(
        self, record: ImageRecord, options: ViewOptions, prefetch: Sequence[ImageRecord] = ()
    ) -> int | None:
        """Show this image's map for these options; returns the job id sent, None when cached.

        A cached map is shown at once and a map still computing is dropped; otherwise a job
        supersedes any older one, and ``prefetch`` is computed after it while the worker idles.
        """
        if self._closed:
            return None
        o = options
        job_id = self.new_job_id()
        key: ShownKey = (str(record.path), o.layer, o.target, o.method, o.blur, o.smoothing)
        cached = self._shown.get(key)
        if cached is not None:
            self.worker.supersede(job_id)  # a map still computing is not wanted now
            self._show(cached)
            self.sig_result.emit(cached)
            return None
        self._requested = {job_id: key}  # an older request's map is not kept when it comes
        job = Explain(job_id, record, o.layer, o.target, o.method, o.blur, prefetch, o.smoothing)
        self.worker.submit(job)
        self.sig_message.emit(f"Computing {o.method} for {record.rel_path.as_posix()}…", 0)
        return job_id

    def failed(self, job_id: int) -> bool:
        """A job failed: True when it was the newest (the shown map is gone), else ignore it."""
        if not self.is_current(job_id):
            return False
        self.last_explained = None
        return True

    def clear(self) -> None:
        """Forget the kept maps (another model: they are stale)."""
        self._shown.clear()

    def close(self) -> None:
        """Results queued before the worker stopped are dropped; no request is sent."""
        self._closed = True

    def _explained(self, done: Explained) -> None:
        if self._closed:
            return  # queued before the worker stopped; the window is going away
        self.sig_computed.emit(done)
        key = self._requested.pop(done.job_id, None)
        if key is not None:
            self._shown.put(key, done)
        if self.is_current(done.job_id):
            self._show(done)
        self.sig_result.emit(done)

    def _show(self, done: Explained) -> None:
        self.last_explained = done
        self.sig_show.emit(done)
