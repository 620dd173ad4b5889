"""Tests for ui/explain.py: the explain cycle driven by a fake worker, no model."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal

from engine.dataset import ImageRecord
from ui.explain import SHOWN_CACHE_SIZE, ExplainController
from ui.jobs import Explain, Explained
from ui.view_state import ViewOptions

OPTIONS = ViewOptions(layer="layer4")


class FakeWorker(QObject):
    """Takes jobs without running them; the test answers with ``finish``."""

    sig_explained = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[Explain] = []
        self.superseded: list[int] = []

    def submit(self, job: Explain) -> None:
        self.submitted.append(job)

    def supersede(self, job_id: int) -> None:
        self.superseded.append(job_id)

    def finish(self, job: Explain, value: float = 0.5) -> Explained:
        """The map the model would send for job: a flat map of value on a grey image."""
        image = np.full((8, 8, 3), 100, np.uint8)
        result = SimpleNamespace(cam=np.full((8, 8), value, np.float32), method=job.method)
        done = Explained(job.job_id, job.record, image, (), result, 12.0, True)  # type: ignore[arg-type]
        self.sig_explained.emit(done)
        return done


class Seen:
    """Everything the controller emitted, in order."""

    def __init__(self, controller: ExplainController) -> None:
        self.events: list[tuple[str, object]] = []
        for name in ("sig_computed", "sig_show", "sig_result", "sig_message"):
            getattr(controller, name).connect(self._recorder(name))

    def _recorder(self, name: str):
        return lambda *args: self.events.append((name, args[0]))

    def of(self, name: str) -> list[object]:
        return [value for kind, value in self.events if kind == name]


def record(name: str) -> ImageRecord:
    return ImageRecord(Path("/images") / name, Path(name), None, None)


@pytest.fixture
def worker(qapp) -> FakeWorker:
    return FakeWorker()


@pytest.fixture
def controller(worker: FakeWorker) -> ExplainController:
    return ExplainController(worker)


def test_a_request_sends_one_job_and_shows_its_result(
    worker: FakeWorker, controller: ExplainController
) -> None:
    seen = Seen(controller)
    prefetch = (record("b.png"),)
    job_id = controller.request(record("a.png"), OPTIONS, prefetch)
    assert worker.submitted == [
        Explain(job_id, record("a.png"), "layer4", "pred", "gradcam", False, prefetch)
    ]
    assert seen.of("sig_message") == ["Computing gradcam for a.png…"]
    done = worker.finish(worker.submitted[0])
    assert [kind for kind, _ in seen.events] == [
        "sig_message",
        "sig_computed",
        "sig_show",
        "sig_result",
    ]
    assert seen.of("sig_show") == [done] and controller.last_explained is done


def test_a_cached_map_is_shown_at_once_without_a_job(
    worker: FakeWorker, controller: ExplainController
) -> None:
    first = controller.request(record("a.png"), OPTIONS)
    done = worker.finish(worker.submitted[0])
    controller.request(record("b.png"), OPTIONS)
    worker.finish(worker.submitted[1])
    seen = Seen(controller)
    assert controller.request(record("a.png"), OPTIONS) is None  # going back
    assert len(worker.submitted) == 2
    # The cache hit still takes an id, so a map still computing is superseded and dropped.
    assert worker.superseded == [controller.job_id] and controller.job_id == first + 2
    assert seen.events == [("sig_show", done), ("sig_result", done)]
    assert controller.last_explained is done


def test_other_options_are_another_map(worker: FakeWorker, controller: ExplainController) -> None:
    controller.request(record("a.png"), OPTIONS)
    worker.finish(worker.submitted[0])
    for changed in ({"method": "gradcam++"}, {"target": 2}, {"blur": True}, {"layer": "x"}):
        options = ViewOptions(**{"layer": "layer4", **changed})  # type: ignore[arg-type]
        assert controller.request(record("a.png"), options) is not None
    assert len(worker.submitted) == 5 and worker.superseded == []


def test_a_newer_request_supersedes_an_older_job(
    worker: FakeWorker, controller: ExplainController
) -> None:
    seen = Seen(controller)
    old = controller.request(record("a.png"), OPTIONS)
    new = controller.request(record("b.png"), OPTIONS)
    assert new == old + 1 and controller.is_current(new) and not controller.is_current(old)
    stale = worker.finish(worker.submitted[0])  # the old job was already running
    assert seen.of("sig_computed") == [stale]  # its row still takes the prediction
    assert seen.of("sig_show") == [] and controller.last_explained is None
    assert seen.of("sig_result") == [stale]
    fresh = worker.finish(worker.submitted[1])
    assert seen.of("sig_show") == [fresh] and controller.last_explained is fresh
    # Only the request still wanted was kept: going back to a.png asks the model again.
    assert controller.cached() == [fresh]
    assert controller.request(record("a.png"), OPTIONS) is not None


def test_a_job_sent_after_an_explain_makes_its_result_stale(
    worker: FakeWorker, controller: ExplainController
) -> None:
    seen = Seen(controller)
    controller.request(record("a.png"), OPTIONS)
    export_id = controller.new_job_id()  # an export shares the sequence
    assert controller.is_current(export_id)
    worker.finish(worker.submitted[0])
    assert seen.of("sig_show") == [] and controller.last_explained is None
    assert len(controller.cached()) == 1  # still kept: it is this image's map for these options


def test_the_cache_keeps_the_newest_maps(qapp, worker: FakeWorker) -> None:
    controller = ExplainController(worker, cache_size=3)
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        controller.request(record(name), OPTIONS)
        worker.finish(worker.submitted[-1])
    assert [d.record.rel_path.as_posix() for d in controller.cached()] == names[2:]
    assert controller.request(record("2.png"), OPTIONS) is None  # kept, now the newest
    assert controller.request(record("1.png"), OPTIONS) is not None  # dropped
    worker.finish(worker.submitted[-1])
    assert [d.record.rel_path.as_posix() for d in controller.cached()] == [
        "4.png",
        "2.png",
        "1.png",
    ]
    assert ExplainController(worker).cached() == [] and SHOWN_CACHE_SIZE == 8


def test_failure_of_the_newest_job_drops_the_shown_map(
    worker: FakeWorker, controller: ExplainController
) -> None:
    controller.request(record("a.png"), OPTIONS)
    worker.finish(worker.submitted[0])
    old = controller.job_id
    controller.request(record("b.png"), OPTIONS)
    assert not controller.failed(old) and controller.last_explained is not None
    assert controller.failed(controller.job_id) and controller.last_explained is None


def test_clear_and_close(worker: FakeWorker, controller: ExplainController) -> None:
    controller.request(record("a.png"), OPTIONS)
    worker.finish(worker.submitted[0])
    controller.clear()  # another model: kept maps are stale
    assert controller.cached() == []
    assert controller.request(record("a.png"), OPTIONS) is not None
    seen = Seen(controller)
    controller.close()
    worker.finish(worker.submitted[-1])  # queued before the worker stopped
    assert controller.request(record("b.png"), OPTIONS) is None
    assert seen.events == [] and len(worker.submitted) == 2


def test_results_from_the_worker_thread_are_handled_on_the_gui_thread(
    qtbot, worker: FakeWorker, controller: ExplainController
) -> None:
    handled_on: list[threading.Thread] = []
    controller.sig_show.connect(lambda _done: handled_on.append(threading.current_thread()))
    controller.request(record("a.png"), OPTIONS)
    emitter = threading.Thread(target=worker.finish, args=(worker.submitted[0],))
    emitter.start()
    emitter.join()
    qtbot.waitUntil(lambda: bool(handled_on))
    assert handled_on == [threading.main_thread()]
    assert controller.last_explained is not None
