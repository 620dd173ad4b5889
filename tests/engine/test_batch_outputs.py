"""Tests for a batch's outputs (engine/batch.py, engine/batch_outputs.py, engine/file_lock.py):
formula-proof rows, names that cannot collide, the folder lock, a row per image, --resume."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.batch import BatchRunner
from engine.batch_options import BatchOptions
from engine.cli import EXIT_DISK_FULL, EXIT_USAGE, run
from engine.csv_cells import cell_text
from engine.dataset import load_boxes, scan_images
from engine.demo_data import write_neu_det
from engine.errors import InspectorError
from engine.export import CsvAppender, write_error
from tests.conftest import NEU, csv_rows, neu_tiny_engine
from tests.engine.memory_child import ROOT


def _images(folder: Path, names: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _, data = cv2.imencode(path.suffix, rng.integers(0, 255, (24, 24, 3), np.uint8))
        path.write_bytes(data.tobytes())
    return folder


def _run(folder: Path, out: Path, **options: object) -> list[dict[str, str]]:
    records = scan_images(folder, NEU)
    BatchRunner(neu_tiny_engine(), BatchOptions(output=out, **options)).run(records)  # type: ignore[arg-type]
    return csv_rows(out / "results.csv")


def test_file_names_that_look_like_formulas_stay_text(tmp_path: Path) -> None:
    names = ["=HYPERLINK(1).png", "+cmd|x.png", "@SUM(A1).png", "-2+3.png"]
    rows = _run(_images(tmp_path / "in", names), tmp_path / "out")
    assert sorted(row["path"] for row in rows) == sorted("'" + name for name in names)
    assert {row["status"] for row in rows} == {"ok"}


def test_names_that_differ_in_case_or_collide_get_their_own_files(tmp_path: Path) -> None:
    """x.png and x.PNG, or a.png and a_png.bmp, used to write the same files."""
    names = ["x.png", "x.PNG", "a.png", "a.PNG", "a_png.bmp"]
    rows = _run(_images(tmp_path / "in", names), tmp_path / "out")
    assert len(rows) == 5 and {row["status"] for row in rows} == {"ok"}
    overlays = [p.name.casefold() for p in (tmp_path / "out").glob("*_overlay.png")]
    assert len(overlays) == len(set(overlays)) == 5


def _hold_lock(folder: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, pathlib\n"
        "from engine.file_lock import lock_output_folder\n"
        f"lock = lock_output_folder(pathlib.Path({str(folder)!r}))\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_a_second_run_into_the_folder_is_refused_naming_the_first(
    tiny_profile: Path, neu_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_bytes(b"earlier,run\r\n")
    child = _hold_lock(out)
    try:
        code = run(["batch", "--profile", str(tiny_profile), "--input", str(neu_folder),
                    "--output", str(out), "--device", "cpu"])  # fmt: skip
    finally:
        child.communicate("")
    assert code == EXIT_USAGE
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        f"error: output folder '{out}' is in use by another batch run "
        f"(pid {child.pid} on {socket.gethostname()}, started "
    )
    assert line.endswith("); wait for it to finish or choose another output folder")
    assert (out / "results.csv").read_bytes() == b"earlier,run\r\n"
    assert not list(out.glob("*.png"))


def _full_after(files: int):
    """A stand-in for write_png on a disk that fills after `files` files."""
    from engine import map_files

    real = map_files.write_png
    written = []

    def write_png(path: Path, image: np.ndarray, durable: bool = True) -> None:
        if len(written) >= files:
            cause = OSError(errno.ENOSPC, "No space left on device")
            raise write_error(path, cause) from cause
        real(path, image, durable)
        written.append(path)

    return write_png


def test_a_full_disk_gives_every_image_a_row_and_exit_4(
    tiny_profile: Path,
    neu_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("engine.map_files.write_png", _full_after(5))  # 2 images and a half
    out = tmp_path / "out"
    code = run(["batch", "--profile", str(tiny_profile), "--input", str(neu_folder),
                "--output", str(out), "--batch-size", "4", "--device", "cpu"])  # fmt: skip
    assert code == EXIT_DISK_FULL
    rows = csv_rows(out / "results.csv")
    assert len(rows) == 12  # every image has its row
    assert [row["status"] for row in rows] == ["ok"] * 2 + ["error"] * 10
    assert {row["error"] for row in rows[2:]} == {"disk full"}
    assert (out / "results.csv").read_bytes().endswith(b"\r\n")
    assert not (out / ".gradcam-inspector.reserve").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "stopped: disk full; free some space, then run again with --resume"


def test_a_row_cut_short_by_a_full_disk_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    out = CsvAppender(target, ["path", "status"])
    out.append({"path": "a.png", "status": "ok"})
    whole = target.read_bytes()
    real_write = out._file.write  # type: ignore[union-attr]

    def half_then_full(data: memoryview) -> int:
        real_write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    out._file.write = half_then_full  # type: ignore[union-attr, method-assign]
    with pytest.raises(InspectorError, match="no space left on device"):
        out.append({"path": "b.png", "status": "ok"})
    assert target.read_bytes() == whole  # no torn row
    out._file.write = real_write  # type: ignore[union-attr, method-assign]
    out.append({"path": "c.png", "status": "ok"})
    out.close()
    assert [row["path"] for row in csv_rows(target)] == ["a.png", "c.png"]


def test_an_output_file_named_like_an_input_folder_is_an_error_row(tmp_path: Path) -> None:
    """A file 'sub' in the output folder used to end the run with a FileExistsError traceback."""
    folder = _images(tmp_path / "in", ["sub/x.png", "y.png"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_bytes(b"mine")
    records = scan_images(folder, NEU)
    summary = BatchRunner(neu_tiny_engine(), BatchOptions(output=out)).run(records)
    rows = {row["path"]: row for row in csv_rows(out / "results.csv")}
    assert rows["y.png"]["status"] == "ok"
    assert rows["sub/x.png"]["status"] == "error"
    assert rows["sub/x.png"]["error"].startswith(f"cannot create folder '{out / 'sub'}'")
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert (out / "sub").read_bytes() == b"mine"


def test_resume_skips_the_images_an_earlier_run_finished(tmp_path: Path) -> None:
    write_neu_det(tmp_path / "in", 12, seed=1)
    _images(tmp_path / "in", ["=a formula.png"])  # its row reads "'=a formula.png"
    records = scan_images(tmp_path / "in", NEU)
    out = tmp_path / "out"
    calls: list[int] = []
    first = BatchRunner(neu_tiny_engine(), BatchOptions(output=out, batch_size=4))
    first.run(records, lambda done, total, failed: calls.append(done), cancel=lambda: bool(calls))
    done_first = [row["path"] for row in csv_rows(out / "results.csv")]
    assert 4 <= len(done_first) < 13 and "'=a formula.png" in done_first
    seen: list[str] = []
    options = BatchOptions(output=out, batch_size=4, resume=True)
    runner = BatchRunner(
        neu_tiny_engine(), options, lambda record, _: seen.append(str(record.rel_path))
    )
    summary = runner.run(records)
    rows = csv_rows(out / "results.csv")
    paths = sorted(cell_text(row["path"]) for row in rows)
    assert paths == sorted(r.rel_path.as_posix() for r in records)
    assert {row["status"] for row in rows} == {"ok"}
    assert summary.resumed == len(done_first) and len(seen) == 13 - len(done_first)
    assert not set(seen) & {cell_text(path) for path in done_first}


def test_resume_remakes_rows_of_another_method_without_a_metric_or_missing_a_file(
    tmp_path: Path,
) -> None:
    write_neu_det(tmp_path / "in", 4, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    out = tmp_path / "out"
    BatchRunner(neu_tiny_engine(), BatchOptions(output=out)).run(records)

    def resume(**changes: object) -> tuple[int, list[str]]:
        seen: list[str] = []
        options = BatchOptions(output=out, resume=True, **changes)  # type: ignore[arg-type]
        runner = BatchRunner(neu_tiny_engine(), options, lambda record, _: seen.append("x"))
        return runner.run(records).resumed, seen

    # The earlier rows have no confidence_change column: kept, they would leave it empty.
    assert resume(metrics=("confidence_change",)) == (0, ["x"] * 4)
    rows = csv_rows(out / "results.csv")
    assert all(row["confidence_change"] for row in rows)
    assert resume(metrics=("confidence_change",))[0] == 4
    # Another method: the kept rows (and their files) would be Grad-CAM's.
    assert resume(method="eigencam") == (0, ["x"] * 4)
    assert {row["method"] for row in csv_rows(out / "results.csv")} == {"eigencam"}
    # Panels asked for now: the earlier images have none.
    assert resume(method="eigencam", panels=True) == (0, ["x"] * 4)
    assert len(list(out.rglob("*_panels.png"))) == 4
    # A comparison grid asked for now: the earlier images have none either.
    assert resume(method="eigencam", panels=True, compare="methods") == (0, ["x"] * 4)
    assert len(list(out.rglob("*_compare.png"))) == 4


def test_a_jpeg_decoded_reduced_has_its_boxes_scaled_with_it(tmp_path: Path) -> None:
    write_neu_det(tmp_path / "in", 6, seed=1)  # 200x200 JPEGs with VOC boxes
    records = scan_images(tmp_path / "in", NEU)
    full, half = tmp_path / "full", tmp_path / "half"
    BatchRunner(neu_tiny_engine(), BatchOptions(output=full)).run(records)
    # Under 200x200 pixels: each JPEG is decoded at 100x100; boxes in 200x200 pixels would
    # miss the map (pointing_hit 0, energy_in_box near 0 for most images).
    BatchRunner(neu_tiny_engine(), BatchOptions(output=half, max_pixels=200 * 200 - 1)).run(records)
    for whole, reduced in zip(
        csv_rows(full / "results.csv"), csv_rows(half / "results.csv"), strict=True
    ):
        assert reduced["status"] == "ok" and reduced["error"] == ""
        assert abs(float(whole["energy_in_box"]) - float(reduced["energy_in_box"])) < 0.1
    record = next(r for r in records if r.annotation is not None)
    boxes = load_boxes(record)
    assert load_boxes(record, (100, 100, 3)) == tuple(
        replace(b, x0=b.x0 // 2, y0=b.y0 // 2, x1=-(-b.x1 // 2), y1=-(-b.y1 // 2)) for b in boxes
    )
    assert load_boxes(record, (200, 200, 3)) == boxes == load_boxes(record, (77, 100))


def test_target_gt_without_a_ground_truth_says_so_in_the_warning_column(tmp_path: Path) -> None:
    _images(tmp_path / "in", ["x.png"])  # no class in its name or folder: no ground truth
    write_neu_det(tmp_path / "in" / "neu", 1, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    out = tmp_path / "out"
    BatchRunner(neu_tiny_engine(), BatchOptions(output=out, target="gt")).run(records)
    rows = {row["path"]: row for row in csv_rows(out / "results.csv")}
    assert rows["x.png"]["target"] == rows["x.png"]["predicted"]
    assert rows["x.png"]["warning"] == "no ground truth known; explained the predicted class"
    known = [row for path, row in rows.items() if path != "x.png"]
    assert known and all(row["warning"] == "" for row in known)


def test_when_the_csv_meets_the_full_disk_the_reserve_makes_room_for_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = CsvAppender.append
    calls = []

    def append(self: CsvAppender, row: dict[str, object]) -> None:
        calls.append(row["path"])
        if len(calls) == 3:  # the disk fills as the third row is written
            cause = OSError(errno.ENOSPC, "No space left on device")
            raise write_error(self.writing_path, cause) from cause
        real_append(self, row)

    monkeypatch.setattr(CsvAppender, "append", append)
    write_neu_det(tmp_path / "in", 6, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    summary = BatchRunner(
        neu_tiny_engine(), BatchOptions(output=tmp_path / "out", batch_size=2)
    ).run(records)
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert [row["path"] for row in rows] == [r.rel_path.as_posix() for r in records]
    assert [row["error"] for row in rows] == [""] * 3 + ["disk full"] * 3
    assert (summary.stopped, summary.succeeded, summary.failed) == ("disk full", 3, 3)


def test_chunks_hold_a_bounded_number_of_pixels_whatever_the_batch_size(tmp_path: Path) -> None:
    """Eight 25 MP images in each of three chunks alive at once would be ~10 GB: a chunk ends
    once its images hold max_pixels."""
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (300, 300), np.uint8))
    records = scan_images(tmp_path, NEU)
    calls: list[int] = []
    options = BatchOptions(output=tmp_path / "out", batch_size=8, max_pixels=100_000)
    BatchRunner(neu_tiny_engine(), options).run(
        records, lambda done, total, failed: calls.append(done)
    )
    assert calls == [2, 4, 5]  # 90,000 px per image: a second one passes 100,000
    assert len(csv_rows(tmp_path / "out" / "results.csv")) == 5


def test_a_pass_out_of_memory_gives_its_images_error_rows_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_neu_det(tmp_path / "in", 6, seed=1)
    records = scan_images(tmp_path / "in", NEU)
    engine = neu_tiny_engine()
    real_explain = engine.explain
    calls: list[int] = []

    def explain(images: list[np.ndarray], *args: object, **kwargs: object) -> list:
        calls.append(len(images))
        if len(calls) == 2:  # what torch's CPU allocator raises
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                "allocate memory: you tried to allocate 4294967296 bytes."
            )
        return real_explain(images, *args, **kwargs)

    monkeypatch.setattr(engine, "explain", explain)
    summary = BatchRunner(engine, BatchOptions(output=tmp_path / "out", batch_size=2)).run(records)
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert [row["status"] for row in rows] == ["ok", "ok", "error", "error", "ok", "ok"]
    assert rows[2]["error"].startswith("out of memory explaining it: [enforce fail")
    assert (summary.succeeded, summary.failed) == (4, 2)
