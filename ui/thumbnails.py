"""Small previews for the image list, decoded on a helper thread, newest request first."""

from __future__ import annotations

import logging
import queue
import threading

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.errors import InspectorError
from engine.images import load_image, to_rgb

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 32


def stop_helper(tasks: queue.Queue, thread: threading.Thread) -> None:
    """End a helper thread that takes tasks until None: what is still queued is dropped
    (nobody will look at it any more), then the thread finishes its current task and exits."""
    while not tasks.empty():
        try:
            tasks.get_nowait()
        except queue.Empty:
            break
    tasks.put(None)
    thread.join()


def make_thumbnail(path: str, size: int = THUMBNAIL_SIZE) -> np.ndarray | None:
    """An RGB uint8 preview that fits size x size, or None when the file does not decode."""
    try:
        rgb = to_rgb(load_image(path))
    except InspectorError:
        return None
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(rgb, target, interpolation=cv2.INTER_AREA))


class ThumbnailLoader(QObject):
    """One helper thread; the rows the user scrolled to last are decoded first (LIFO)."""

    sig_ready = Signal(str, object)  # path, thumbnail array or None

    def __init__(self) -> None:
        super().__init__()
        self._queue: queue.LifoQueue[str | None] = queue.LifoQueue()
        self._requested: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="thumbnails", daemon=True)
        self._thread.start()

    def request(self, path: str) -> None:
        if path not in self._requested:
            self._requested.add(path)
            self._queue.put(path)

    def close(self) -> None:
        stop_helper(self._queue, self._thread)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                self.sig_ready.emit(path, make_thumbnail(path))
            except Exception:  # one odd file must not end the previews of all the others
                log.exception("thumbnail failed for %s", path)
