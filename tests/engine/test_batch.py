"""Tests for engine/batch.py: streaming, cancel, name collisions, broken annotations."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from engine.batch import BatchRunner, output_stems
from engine.batch_options import BatchOptions
from engine.cam import CamEngine
from engine.dataset import ImageRecord, scan_images
from engine.demo_data import write_neu_det
from tests.conftest import NEU, csv_rows, engine_records, neu_tiny_engine
from tests.engine.silent_models import ClassTokenNet, NanForBrightNet


def test_cancel_midway_keeps_finished_rows(tmp_path: Path) -> None:
    write_neu_det(tmp_path / "in", 20, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    calls = []

    def progress(done: int, total: int, failed: int) -> None:
        calls.append((done, total, failed))

    seen: list[str] = []
    runner = BatchRunner(
        neu_tiny_engine(),
        BatchOptions(output=tmp_path / "out", batch_size=4),
        on_result=lambda record, result: seen.append(record.rel_path.as_posix()),
    )
    summary = runner.run(records, progress, cancel=lambda: len(calls) >= 2)
    assert summary.cancelled
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert 8 <= len(rows) < 20
    assert calls[0] == (4, 20, 0) and calls[1] == (8, 20, 0)
    written = sorted((tmp_path / "out" / "IMAGES").glob("*_overlay.png"))
    assert len(written) == len(rows)
    assert seen == [r["path"] for r in rows]


def test_same_stem_different_extension_do_not_collide(tmp_path: Path) -> None:
    records = [
        ImageRecord(tmp_path / "a.png", Path("sub/a.png"), None, None),
        ImageRecord(tmp_path / "a.jpg", Path("sub/a.jpg"), None, None),
        ImageRecord(tmp_path / "b.png", Path("b.png"), None, None),
    ]
    stems = output_stems(records, tmp_path / "o")
    assert stems == [tmp_path / "o/sub/a_png", tmp_path / "o/sub/a_jpg", tmp_path / "o/b"]


def test_broken_annotation_is_reported_but_the_image_is_explained(tmp_path: Path) -> None:
    write_neu_det(tmp_path / "in", 2, seed=1)
    (tmp_path / "in" / "ANNOTATIONS" / "crazing_1.xml").write_text("<annotation><object>")
    records = scan_images(tmp_path / "in", NEU)
    summary = BatchRunner(neu_tiny_engine(), BatchOptions(output=tmp_path / "out")).run(records)
    rows = {r["path"]: r for r in csv_rows(tmp_path / "out" / "results.csv")}
    broken = rows["IMAGES/crazing_1.jpg"]
    assert broken["status"] == "ok" and "annotation ignored" in broken["error"]
    assert broken["pointing_hit"] == ""
    assert rows["IMAGES/inclusion_1.jpg"]["pointing_hit"] in ("0", "1")
    assert summary.succeeded == 2 and summary.failed == 0


def test_threaded_and_inline_pipelines_write_the_same(tmp_path: Path, monkeypatch) -> None:
    write_neu_det(tmp_path / "in", 10, seed=2)
    records = scan_images(tmp_path / "in", NEU)
    engine = neu_tiny_engine()
    outputs = {}
    for name, cores in (("inline", 1), ("threaded", 64)):
        monkeypatch.setattr("engine.batch.os.cpu_count", lambda cores=cores: cores)
        runner = BatchRunner(engine, BatchOptions(output=tmp_path / name, batch_size=3))
        assert runner.run(records).succeeded == 10
        outputs[name] = csv_rows(tmp_path / name / "results.csv")
    assert outputs["inline"] == outputs["threaded"]


def test_blend_option_reaches_overlays_and_panels(tmp_path: Path) -> None:
    import cv2
    import numpy as np
    import pytest

    from engine.errors import InspectorError
    from engine.images import load_image
    from engine.render import RenderStyle, render_overlay, render_panels

    write_neu_det(tmp_path / "in", 2, seed=4)
    records = scan_images(tmp_path / "in", NEU)
    style = RenderStyle(alpha=0.6, blend="additive")
    options = BatchOptions(output=tmp_path / "out", style=style, save_raw=True, panels=True)
    results = {}
    BatchRunner(neu_tiny_engine(), options, lambda r, result: results.update({r.path: result})).run(
        records
    )
    for record in records:
        stem = tmp_path / "out" / record.rel_path.with_suffix("")
        image = load_image(record.path)
        cam = np.load(stem.with_name(stem.name + "_cam.npy"))

        def written(suffix: str, stem: Path = stem) -> np.ndarray:
            data = cv2.imread(str(stem.with_name(stem.name + suffix)), cv2.IMREAD_COLOR)
            return cv2.cvtColor(data, cv2.COLOR_BGR2RGB)

        expected = render_overlay(image, cam, style)
        np.testing.assert_array_equal(written("_overlay.png"), expected)
        assert not np.array_equal(expected, render_overlay(image, cam, RenderStyle(alpha=0.6)))
        result = results[record.path]
        pred = result.predicted
        title = (
            f"pred: {pred.name} {pred.probability:.2f} | target: {result.target_name} | "
            f"{result.method} @ {result.layer}"
        )
        panels = render_panels(image, cam, style, title)
        np.testing.assert_array_equal(written("_panels.png"), panels)
    with pytest.raises(InspectorError, match="unknown blend 'screen': use weighted, additive"):
        RenderStyle(blend="screen")


def test_a_flat_map_gets_a_warning_in_the_csv(tmp_path: Path) -> None:
    write_neu_det(tmp_path / "in", 2, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    torch.manual_seed(1)
    engine = CamEngine(ClassTokenNet(len(NEU)), NEU, *engine_records((64, 64)), "cpu")
    BatchRunner(engine, BatchOptions(output=tmp_path / "auto")).run(records)
    assert [r["warning"] for r in csv_rows(tmp_path / "auto" / "results.csv")] == ["", ""]
    BatchRunner(engine, BatchOptions(output=tmp_path / "norm", layer="norm")).run(records)
    rows = csv_rows(tmp_path / "norm" / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    expected = "flat map at 'norm' (no positive value); try layer 'patch'"
    assert [r["warning"] for r in rows] == [expected, expected]


def test_nan_scores_are_an_error_row_and_spare_the_other_images(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, value in (("bright.png", 250), ("dark.png", 5), ("dim.png", 20)):
        cv2.imwrite(str(folder / name), np.full((32, 32, 3), value, np.uint8))
    records = scan_images(folder, NEU)
    torch.manual_seed(0)
    engine = CamEngine(NanForBrightNet(classes=6), NEU, *engine_records((32, 32)), "cpu")
    summary = BatchRunner(engine, BatchOptions(output=tmp_path / "out")).run(records)
    rows = {r["path"]: r for r in csv_rows(tmp_path / "out" / "results.csv")}
    assert rows["bright.png"]["status"] == "error"
    assert rows["bright.png"]["error"].startswith("the model gave non-finite scores (NaN")
    assert rows["bright.png"]["confidence"] == ""
    assert [rows[n]["status"] for n in ("dark.png", "dim.png")] == ["ok", "ok"]
    assert summary.succeeded == 2 and summary.failed == 1
