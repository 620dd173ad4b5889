"""Tests for engine.export: atomic writes, PNG/NPY files, streamed CSV and output folders."""

from __future__ import annotations

import csv
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import export
from engine.errors import InspectorError
from engine.export import (
    CsvAppender,
    atomic_write_bytes,
    atomic_write_text,
    encode_png,
    ensure_output_dir,
    write_error,
    write_npy,
    write_png,
)


def _fail_with(code: int) -> Callable[..., None]:
    """A stand-in for an os function that fails with the given errno."""

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"a much longer earlier content" * 100)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_creates_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(str(target), "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"


@pytest.mark.parametrize("step", ["replace", "fsync"])
def test_failed_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    monkeypatch.setattr(export.os, step, _fail_with(errno.ENOSPC))
    with pytest.raises(InspectorError) as info:
        atomic_write_bytes(target, b"new content")
    assert str(info.value) == (
        f"cannot write '{target}': no space left on device; "
        "free some space or choose another output folder"
    )
    assert isinstance(info.value.__cause__, OSError)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_failed_write_of_new_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export.os, "replace", _fail_with(errno.EROFS))
    with pytest.raises(InspectorError, match="read-only"):
        atomic_write_bytes(tmp_path / "new.npy", b"x")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_mid_write_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "permission denied; choose a folder you can write to"),
        (errno.EROFS, "read-only; choose another output folder"),
        (errno.EIO, "input/output error; check the output folder"),
    ],
)
def test_write_error_messages_are_one_actionable_line(code: int, reason: str) -> None:
    message = str(write_error("/x/y.png", OSError(code, os.strerror(code))))
    assert message.startswith("cannot write '/x/y.png': ")
    assert message.endswith(reason)
    assert "\n" not in message


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    target.chmod(0o640)
    atomic_write_bytes(target, b"y")
    assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


# --- PNG and NPY -----------------------------------------------------------------------------


def test_png_round_trips_rgb_pixels_in_rgb_order(tmp_path: Path) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    decoded = cv2.imdecode(np.frombuffer(encode_png(rgb), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == rgb.shape
    assert tuple(decoded[0, 0]) == (0, 0, 255)  # cv2 decodes BGR: red is last
    np.testing.assert_array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), rgb)

    write_png(tmp_path / "img.png", rgb)
    from_disk = cv2.imread(str(tmp_path / "img.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(from_disk[:, :, ::-1], rgb)


def test_png_keeps_gray_single_channel() -> None:
    gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
    decoded = cv2.imdecode(np.frombuffer(encode_png(gray), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.ndim == 2
    np.testing.assert_array_equal(decoded, gray)


def test_png_rejects_bad_input() -> None:
    with pytest.raises(InspectorError, match="uint8"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(InspectorError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_npy_round_trips(tmp_path: Path) -> None:
    cam = np.random.default_rng(5).random((7, 9), dtype=np.float32)
    write_npy(tmp_path / "cams" / "cam.npy", cam)
    loaded = np.load(tmp_path / "cams" / "cam.npy", allow_pickle=False)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, cam)


# --- CSV -------------------------------------------------------------------------------------


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_rows_are_readable_while_the_file_is_open(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    with CsvAppender(target, ["image", "pred", "score"]) as out:
        assert target.read_bytes() == b"image,pred,score\r\n"  # RFC 4180 line ends
        out.append({"image": "a, b.png", "pred": "scratches", "score": 0.97})
        assert _read_rows(target) == [{"image": "a, b.png", "pred": "scratches", "score": "0.97"}]
        out.append({"image": "c.png", "score": None})
        assert _read_rows(target)[1] == {"image": "c.png", "pred": "", "score": ""}
    assert len(_read_rows(target)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_csv_crash_keeps_completed_rows_of_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    with pytest.raises(RuntimeError), CsvAppender(target, ["image"]) as out:
        out.append({"image": "1.png"})
        raise RuntimeError("model crashed")
    assert _read_rows(target) == [{"image": "1.png"}]


def test_csv_replaces_an_earlier_file_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    target.write_bytes(b"old,run\r\n1,2\r\n")
    partial = tmp_path / "results.csv.partial"

    with pytest.raises(RuntimeError), CsvAppender(target, ["image"]) as out:
        out.append({"image": "1.png"})
        assert out.writing_path == partial
        assert _read_rows(partial) == [{"image": "1.png"}]
        raise RuntimeError("model crashed")
    assert target.read_bytes() == b"old,run\r\n1,2\r\n"
    assert _read_rows(partial) == [{"image": "1.png"}]  # the crashed run's rows are kept

    with CsvAppender(target, ["image"]) as out:
        out.append({"image": "2.png"})
        assert target.read_bytes() == b"old,run\r\n1,2\r\n"
    assert _read_rows(target) == [{"image": "2.png"}]
    assert not partial.exists()


def test_csv_write_failure_is_a_user_error(tmp_path: Path) -> None:
    out = CsvAppender(tmp_path / "r.csv", ["a"])
    out._file.flush = _fail_with(errno.ENOSPC)  # type: ignore[union-attr]
    with pytest.raises(InspectorError, match=r"r\.csv': no space left on device"):
        out.append({"a": 1})
    out.abort()


def test_csv_unknown_column_is_a_caller_bug(tmp_path: Path) -> None:
    with CsvAppender(tmp_path / "r.csv", ["a"]) as out, pytest.raises(ValueError):
        out.append({"b": 1})


def test_csv_refuses_appends_after_close(tmp_path: Path) -> None:
    out = CsvAppender(tmp_path / "r.csv", ["a"])
    out.close()
    out.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        out.append({"a": 1})


# --- output folders --------------------------------------------------------------------------


def test_output_dir_is_created(tmp_path: Path) -> None:
    out = ensure_output_dir(tmp_path / "runs" / "1", tmp_path / "images")
    assert out.is_dir() and out == (tmp_path / "runs" / "1").resolve()


@pytest.mark.parametrize("inside", [".", "out", "out/deeper"])
def test_output_inside_input_is_refused(tmp_path: Path, inside: str) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(InspectorError, match=r"inside the input folder.*--allow-inside-input"):
        ensure_output_dir(images / inside, images)
    assert not (images / "out").exists()


def test_output_inside_input_when_allowed(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    assert ensure_output_dir(images / "out", images, allow_inside_input=True).is_dir()


def test_sibling_with_common_prefix_is_not_inside(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    assert ensure_output_dir(tmp_path / "images_out", tmp_path / "images").is_dir()


def test_single_input_file_does_not_restrict_output(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"png")
    assert ensure_output_dir(tmp_path / "out", image).is_dir()


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InspectorError, match="is a file"):
        ensure_output_dir(tmp_path / "f", None)


def test_durable_false_skips_fsync_but_stays_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(export.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    image = np.full((8, 8, 3), (255, 0, 0), np.uint8)
    export.write_png(tmp_path / "fast.png", image, durable=False)
    assert synced == []
    assert not [p for p in tmp_path.iterdir() if p.name != "fast.png"]  # no temp file left
    decoded = cv2.imdecode(np.fromfile(tmp_path / "fast.png", np.uint8), cv2.IMREAD_COLOR)
    assert tuple(decoded[0, 0]) == (0, 0, 255)  # BGR of pure red
    export.write_png(tmp_path / "safe.png", image)
    assert len(synced) >= 1
