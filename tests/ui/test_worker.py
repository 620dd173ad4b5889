"""Tests for ui/worker.py: newest-wins, the capture cache, prefetch and a clean stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QObject, Slot

from engine.dataset import scan_images
from tests.conftest import NEU
from ui.jobs import CheckpointSpec, Explain, Explained, JobFailed, LoadModel, ModelLoaded
from ui.worker import WorkerThread

TIMEOUT_MS = 60_000


class Collector(QObject):
    """Lives on the GUI thread, so the worker's signals reach it queued."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[ModelLoaded] = []
        self.results: list[Explained] = []
        self.failures: list[JobFailed] = []
        self.idle = 0
        self.cam_progress: list[tuple[int, int]] = []

    @Slot(object)
    def on_loaded(self, loaded: ModelLoaded) -> None:
        self.loaded.append(loaded)

    @Slot(object)
    def on_result(self, result: Explained) -> None:
        self.results.append(result)

    @Slot(object)
    def on_failed(self, failed: JobFailed) -> None:
        self.failures.append(failed)

    @Slot(int, int)
    def on_cam_progress(self, done: int, total: int) -> None:
        self.cam_progress.append((done, total))

    @Slot()
    def on_idle(self) -> None:
        self.idle += 1


@pytest.fixture
def worker_and_collector(qtbot, tiny_profile: Path):
    threads = WorkerThread(prefetch=False)
    collector = Collector()
    worker = threads.worker
    worker.sig_model_loaded.connect(collector.on_loaded)
    worker.sig_explained.connect(collector.on_result)
    worker.sig_failed.connect(collector.on_failed)
    worker.sig_idle.connect(collector.on_idle)
    worker.sig_cam_progress.connect(collector.on_cam_progress)
    worker.submit(LoadModel(profile_path=tiny_profile, device="cpu"))
    yield threads, collector
    assert threads.shutdown()


def test_newest_job_wins(qtbot, worker_and_collector, neu_folder: Path) -> None:
    threads, collector = worker_and_collector
    records = scan_images(neu_folder, NEU)
    # Ten requests while the model is still loading: only the last one is computed.
    for job_id, record in enumerate(records[:10], start=1):
        threads.worker.submit(Explain(job_id, record, "layer4", "pred", "gradcam"))
    qtbot.waitUntil(lambda: bool(collector.results and collector.idle), timeout=TIMEOUT_MS)
    assert [r.job_id for r in collector.results] == [10]
    assert collector.results[0].record == records[9]
    assert threads.worker.model_passes == 1


def test_results_are_numpy_and_cached(qtbot, worker_and_collector, neu_folder: Path) -> None:
    threads, collector = worker_and_collector
    record = scan_images(neu_folder, NEU)[0]
    worker = threads.worker
    worker.submit(Explain(1, record, "layer4", "pred", "gradcam"))
    qtbot.waitUntil(lambda: len(collector.results) == 1, timeout=TIMEOUT_MS)
    first = collector.results[0]
    assert isinstance(first.result.cam, np.ndarray) and first.result.cam.dtype == np.float32
    assert first.result.cam.shape == first.image.shape[:2]
    assert first.model_pass and worker.model_passes == 1 and worker.cache_hits == 0
    worker.submit(Explain(2, record, "layer4", "pred", "layercam"))
    qtbot.waitUntil(lambda: len(collector.results) == 2, timeout=TIMEOUT_MS)
    second = collector.results[1]
    assert not second.model_pass and worker.model_passes == 1 and worker.cache_hits == 1
    assert second.result.method == "layercam"
    assert not np.array_equal(first.result.cam, second.result.cam)
    # Another class is another backward pass.
    worker.submit(Explain(3, record, "layer4", 2, "gradcam"))
    qtbot.waitUntil(lambda: len(collector.results) == 3, timeout=TIMEOUT_MS)
    assert collector.results[2].result.target_index == 2 and worker.model_passes == 2


def test_score_cam_reports_progress_from_the_cached_pass(
    qtbot, worker_and_collector, neu_folder: Path
) -> None:
    threads, collector = worker_and_collector
    # layer1 has 64 channels: 64 masked passes, where layer4 would need 512.
    record = scan_images(neu_folder, NEU)[0]
    threads.worker.submit(Explain(1, record, "layer1", "pred", "gradcam"))
    qtbot.waitUntil(lambda: len(collector.results) == 1, timeout=TIMEOUT_MS)
    threads.worker.submit(Explain(2, record, "layer1", "pred", "scorecam"))
    qtbot.waitUntil(lambda: len(collector.results) == 2, timeout=TIMEOUT_MS)
    assert collector.results[1].result.method == "scorecam"
    assert threads.worker.model_passes == 1  # Score-CAM's own masked passes are not captures
    done, total = collector.cam_progress[-1]
    assert done == total > 0


def test_prefetch_makes_next_image_a_cache_hit(qtbot, tiny_profile: Path, neu_folder: Path) -> None:
    threads = WorkerThread(prefetch=True)
    collector = Collector()
    threads.worker.sig_explained.connect(collector.on_result)
    threads.worker.sig_idle.connect(collector.on_idle)
    try:
        records = scan_images(neu_folder, NEU)
        threads.worker.submit(LoadModel(profile_path=tiny_profile, device="cpu"))
        threads.worker.submit(
            Explain(1, records[0], "layer4", "pred", "gradcam", False, (records[1],))
        )
        qtbot.waitUntil(lambda: bool(collector.results and collector.idle), timeout=TIMEOUT_MS)
        assert threads.worker.model_passes == 2  # the image and its neighbour
        threads.worker.submit(Explain(2, records[1], "layer4", "pred", "gradcam"))
        qtbot.waitUntil(lambda: len(collector.results) == 2, timeout=TIMEOUT_MS)
        assert not collector.results[1].model_pass and threads.worker.model_passes == 2
    finally:
        assert threads.shutdown()


def test_bad_profile_is_a_message(qtbot, tmp_path: Path) -> None:
    threads = WorkerThread()
    collector = Collector()
    threads.worker.sig_failed.connect(collector.on_failed)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\narchitecture = "resnet999"\n', encoding="utf-8")
    try:
        threads.worker.submit(LoadModel(profile_path=bad, device="cpu"))
        qtbot.waitUntil(lambda: bool(collector.failures), timeout=TIMEOUT_MS)
        failure = collector.failures[0]
        assert failure.kind == "model" and "resnet999" in failure.message
    finally:
        assert threads.shutdown()


def test_checkpoint_load_can_save_a_profile(qtbot, tiny_profile: Path, tmp_path: Path) -> None:
    threads = WorkerThread()
    collector = Collector()
    threads.worker.sig_model_loaded.connect(collector.on_loaded)
    threads.worker.sig_failed.connect(collector.on_failed)
    target = tmp_path / "mine.toml"
    spec = CheckpointSpec(tiny_profile.parent / "weights.pth", "resnet18", NEU, (64, 64), target)
    try:
        threads.worker.submit(LoadModel(checkpoint=spec, device="cpu"))
        qtbot.waitUntil(lambda: bool(collector.loaded or collector.failures), timeout=TIMEOUT_MS)
        assert not collector.failures
        loaded = collector.loaded[0]
        assert loaded.classes == NEU and loaded.profile.source == target.resolve()
        assert target.is_file() and loaded.inventory.default_layer is not None
    finally:
        assert threads.shutdown()


def test_tuple_output_note_is_sent_once(qtbot, tmp_path: Path, neu_folder: Path) -> None:
    import torch

    from tests.engine.test_cli import TupleNet

    torch.save(TupleNet(), tmp_path / "tuple.pt")
    classes = ", ".join(f'"{c}"' for c in NEU)
    (tmp_path / "tuple.toml").write_text(
        f'architecture = "resnet18"\nweights = "tuple.pt"\ntrust_pickle = true\n'
        f"classes = [{classes}]\n[preprocess]\nsize = [32, 32]\n"
        '[cam]\nlayer = "features"\nblend = "additive"\n',
        encoding="utf-8",
    )
    threads = WorkerThread(prefetch=False)
    collector = Collector()
    notices: list[str] = []
    worker = threads.worker
    worker.sig_explained.connect(collector.on_result)
    worker.sig_notice.connect(notices.append)
    worker.submit(LoadModel(profile_path=tmp_path / "tuple.toml", device="cpu"))
    records = scan_images(neu_folder, NEU)
    try:
        for job_id, record in enumerate(records[:2], start=1):
            worker.submit(Explain(job_id, record, "features", "pred", "gradcam"))
            qtbot.waitUntil(lambda n=job_id: len(collector.results) == n, timeout=TIMEOUT_MS)
    finally:
        assert threads.shutdown()
    note = (
        "the model returns a tuple of 2 (tensor (1, 6), tensor (1, 2)); explained element 0; "
        "set [output] logits in the profile to choose"
    )
    assert len(notices) == 2 and notices[1] == note
    assert notices[0].endswith("(trusted); used the pickled TupleNet as is; architecture ignored")
    # The first explained image carries it to the prediction panel; the next does not.
    assert collector.results[0].result.note == note
    assert collector.results[1].result.note == ""


def test_superseded_score_cam_stops_early(qtbot, worker_and_collector, neu_folder: Path) -> None:
    threads, collector = worker_and_collector
    record = scan_images(neu_folder, NEU)[0]
    threads.worker.submit(Explain(1, record, "layer4", "pred", "gradcam"))
    qtbot.waitUntil(lambda: len(collector.results) == 1, timeout=TIMEOUT_MS)
    idle = collector.idle
    threads.worker.submit(Explain(2, record, "layer4", "pred", "scorecam"))
    qtbot.waitUntil(lambda: bool(collector.cam_progress), timeout=TIMEOUT_MS)
    threads.worker.supersede(3)  # the window showed a cached map instead
    qtbot.waitUntil(lambda: collector.idle > idle, timeout=TIMEOUT_MS)
    assert [r.job_id for r in collector.results] == [1]  # no Score-CAM result arrived
    done, total = collector.cam_progress[-1]
    assert done < total  # it stopped part-way
    threads.worker.submit(Explain(3, record, "layer4", "pred", "layercam"))  # later jobs run
    qtbot.waitUntil(lambda: len(collector.results) == 2, timeout=TIMEOUT_MS)
